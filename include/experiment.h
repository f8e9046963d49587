/*
 * experiment.h — which arm of an A/B experiment a request runs in.
 *
 * Assignment is a pure function of the experiment's salt, its arms and
 * the unit (an end user, a header's value, an API key, a request id), so
 * that every worker and every instance puts the same unit in the same arm
 * without sharing any state. The scheme is weighted rendezvous hashing:
 *
 *   d     = SHA-256(salt || 0x00 || unit)
 *   u_i   = the first 53 bits of SHA-256(d || name of arm i), as a number in (0, 1)
 *   arm   = the arm with the lowest -ln(u_i) / weight_i (weight 0: never)
 *
 * -ln(u_i) / w_i is exponentially distributed with rate w_i, so arm i wins
 * with probability w_i / sum(w). Each unit's draws depend only on the salt
 * and the arm names, hence: changing one arm's weight moves units only into
 * or out of that arm; adding an arm only takes units into it; removing
 * one only moves its own units. Renaming an arm or changing the salt
 * reshuffles its units.
 */
#ifndef CAIRN_EXPERIMENT_H
#define CAIRN_EXPERIMENT_H

#include <stddef.h>

#include "config.h"

#define CAIRN_UNIT_HASH_LEN 16 /* hex digits of d kept in logs: the unit, not who it is */

struct cairn_assignment {
    size_t arm; /* index in the experiment's arms */
    char unit_hash[CAIRN_UNIT_HASH_LEN + 1];
};

/** The arm of `unit` (`len` bytes) in `e`, which has an arm of weight > 0. */
void cairn_experiment_assign(const struct cairn_experiment_config *e, const char *unit, size_t len,
                             struct cairn_assignment *out);

/** The index of the arm named `name`, or -1. */
long cairn_experiment_find_arm(const struct cairn_experiment_config *e, const char *name);

#endif
