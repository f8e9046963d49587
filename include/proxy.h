/*
 * proxy.h — the request pipeline: routes a request to a local answer
 * (health, readiness) or to the upstream (chat completions, models), and
 * carries the upstream answer back, buffered or streamed.
 */
#ifndef CAIRN_PROXY_H
#define CAIRN_PROXY_H

#include "marking.h"
#include "server.h"
#include "upstream.h"

struct cairn_proxy {
    const struct cairn_config *cfg;
    struct cairn_upstream *upstream;
    struct cairn_server *server;         /* for readiness */
    const struct cairn_marking *marking; /* the marker stage */
};

/** The server's handler; `arg` is a struct cairn_proxy. */
void cairn_proxy_handle(struct cairn_request *req, void *arg);

#endif
