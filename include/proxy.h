/*
 * proxy.h — the request pipeline: routes a request to a local answer
 * (health, readiness) or, once its key names a tenant and the tenant's
 * limits admit it, to the tenant's upstream (chat completions, models),
 * and carries the upstream answer back, buffered or streamed.
 */
#ifndef CAIRN_PROXY_H
#define CAIRN_PROXY_H

#include "server.h"
#include "snapshot.h"

struct cairn_stats;
struct cairn_annotation_cache;
struct cairn_shadows;

struct event_base;

struct cairn_proxy {
    struct event_base *base;
    struct cairn_snapshot *current; /* what new requests run on; reload swaps it */
    struct cairn_server *server;    /* for readiness */
    struct cairn_stats *stats;
    struct cairn_annotation_cache *annotation_cache; /* NULL when off */
    size_t streams;                                  /* answers being relayed as SSE now */
    struct cairn_shadows *shadows; /* shadow judging, made on first use; NULL until then */
};

/** The server's handler; `arg` is a struct cairn_proxy. */
void cairn_proxy_handle(struct cairn_request *req, void *arg);

#endif
