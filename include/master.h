/*
 * master.h — the master process: the nginx model.
 *
 * The master checks the configuration, opens every listening socket,
 * maps the memory the workers share (shm.h), and forks the workers
 * ("workers" in the config; 0 = one per CPU), each a gateway with its own
 * event loop and upstream client (gateway.h). It does not serve traffic:
 * it serves the admin listener (/metrics sums every worker's counters,
 * POST /admin/reload), passes SIGHUP and SIGTERM/SIGINT on to the workers,
 * and starts a worker again when one dies (at once, or with a growing
 * delay when it keeps dying right after starting).
 */
#ifndef CAIRN_MASTER_H
#define CAIRN_MASTER_H

#include <stddef.h>
#include <stdint.h>

#include "gateway.h"

struct cairn_master;

/** Run the master and its workers until stopped. @return the exit code:
 *  0 when every worker drained and exited cleanly. */
int cairn_master_run(cairn_config_loader load, void *arg);

/**
 * Check the configuration again and, when it is valid, make it the
 * master's and tell every worker to load it (SIGHUP). @return 0, or -1
 * with err (nothing changes).
 */
int cairn_master_reload(struct cairn_master *m, char *err, size_t errlen);

struct cairn_request;

/** POST /admin/reload: cairn_master_reload, then the answer once every
 *  worker has applied the new configuration — 200 with the generation, or
 *  500 when the master or a worker refused it or the workers did not
 *  confirm within 10 s. */
void cairn_master_reload_request(struct cairn_master *m, struct cairn_request *req);

/** The Prometheus exposition of every worker and of the master. malloc'd. */
char *cairn_master_metrics(struct cairn_master *m, size_t *len);

#endif
