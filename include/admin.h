/*
 * admin.h — the admin listener's routes: GET /metrics (Prometheus text
 * format), POST /admin/reload, GET /healthz. The admin listener is
 * separate from the public one and on loopback by default: nothing here
 * asks for a key.
 */
#ifndef CAIRN_ADMIN_H
#define CAIRN_ADMIN_H

#include "server.h"

/** The admin server's handler; `arg` is the struct cairn_master. */
void cairn_admin_handle(struct cairn_request *req, void *arg);

#endif
