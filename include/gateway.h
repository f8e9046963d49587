/*
 * gateway.h — one serving process: its event loop, the upstream client,
 * the public and admin servers, the configuration snapshot that new
 * requests run on, and the signals that reload (SIGHUP) and stop it
 * (SIGTERM, SIGINT: drain, then exit 0).
 */
#ifndef CAIRN_GATEWAY_H
#define CAIRN_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct cairn_gateway;

/** Load the configuration (the file, and whatever the command line
 *  overrides): called at start and on every reload. */
typedef int (*cairn_config_loader)(void *arg, struct cairn_config *cfg, char *err, size_t errlen);

/** Serve until stopped. @return the process exit code. */
int cairn_gateway_run(cairn_config_loader load, void *arg);

/**
 * Load the configuration again and, if all of it is valid, make it the
 * one new requests run on; requests in flight finish on theirs. On error
 * nothing changes. Listening addresses are kept (a change needs a
 * restart, and is reported). @return 0, or -1 with err.
 */
int cairn_gateway_reload(struct cairn_gateway *gw, char *err, size_t errlen);

/** The configuration generation serving now (1 = as started). */
uint64_t cairn_gateway_generation(const struct cairn_gateway *gw);

/** The Prometheus exposition of this process. malloc'd; *len set. */
char *cairn_gateway_metrics(struct cairn_gateway *gw, size_t *len);

#endif
