/*
 * gateway.h — one worker process: its event loop, the upstream client,
 * the public server on the sockets the master opened, the configuration
 * snapshot that new requests run on, and the signals that reload (SIGHUP)
 * and stop it (SIGTERM, SIGINT: drain, then exit 0). The master (master.h)
 * starts workers and serves the admin listener.
 */
#ifndef CAIRN_GATEWAY_H
#define CAIRN_GATEWAY_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/** Load the configuration — from the file when `text` is NULL, else from
 *  text[0..len) (what the master read and checked) — and apply whatever the
 *  command line overrides. */
typedef int (*cairn_config_loader)(void *arg, const char *text, size_t len,
                                   struct cairn_config *cfg, char *err, size_t errlen);

struct cairn_arena;
struct cairn_limiter_zone;
struct cairn_shared;

/* What the master gives a worker. */
struct cairn_worker_spec {
    unsigned index; /* 0 .. workers-1 */
    int *fds;       /* its listening sockets, taken over; -1s when
                       it must open them itself (on ports[]) */
    size_t nfds;
    const uint16_t *ports;               /* the public addresses' ports */
    struct cairn_shared *shared;         /* the configuration to load, from the master */
    struct cairn_arena *arena;           /* where its metrics live */
    struct cairn_limiter_zone *limiters; /* the tenants' shared rate limits */
};

/** The signals the master passes on to its workers (SIGTERM, SIGINT,
 *  SIGHUP): blocked in a new worker until it can handle them. */
void cairn_worker_signals(sigset_t *set);

/** Serve until stopped. @return the process exit code. */
int cairn_gateway_run(cairn_config_loader load, void *arg, const struct cairn_worker_spec *w);

#endif
