/*
 * upstream.h — HTTP transfers to upstream APIs, driven by the worker's
 * libevent base: http:// ones over cairn's own HTTP/1.1 client, https://
 * ones over libcurl's multi interface (upstream_transport.h).
 *
 * Nothing here blocks: sockets and timers are handed to libevent, results
 * come back through callbacks.
 * A transfer reports its final response head once, then body bytes, then
 * exactly one `on_done`; after `on_done`, or after cairn_transfer_cancel(),
 * no callback runs again and the transfer is gone.
 */
#ifndef CAIRN_UPSTREAM_H
#define CAIRN_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct event_base;
struct cairn_upstream; /* the worker's client, on its loop */
struct cairn_endpoint; /* one configured upstream: URL, key, options */
struct cairn_transfer;

/* Asynchronous errors, compared by pointer; the text is what logs show. */
extern const char *const CAIRN_UPSTREAM_ECONNECT; /* refused, unreachable, DNS */
extern const char *const CAIRN_UPSTREAM_ECONNECT_TIMEOUT;
extern const char *const CAIRN_UPSTREAM_EFIRST_BYTE_TIMEOUT;
extern const char *const CAIRN_UPSTREAM_EIDLE_TIMEOUT;
extern const char *const CAIRN_UPSTREAM_ETLS;       /* handshake or verification */
extern const char *const CAIRN_UPSTREAM_ECLOSED;    /* closed after the request was sent */
extern const char *const CAIRN_UPSTREAM_EPROTOCOL;  /* malformed or truncated answer */
extern const char *const CAIRN_UPSTREAM_ETOO_LARGE; /* answer over the limit */
extern const char *const CAIRN_UPSTREAM_EABORTED;   /* our side gave up (on_data < 0) */
extern const char *const CAIRN_UPSTREAM_EKEY_ECHO;  /* the answer held the gateway's key */

/** Upstream response header, as received (name without the colon). */
struct cairn_upstream_header {
    const char *name;
    const char *value;
};

struct cairn_transfer_callbacks {
    /** The final (non-1xx) response head. `headers` live until it returns. */
    void (*on_head)(void *ctx, int status, const struct cairn_upstream_header *headers,
                    size_t nheaders);
    /** Body bytes. @return 0 consumed; 1 not consumed, pause until
     *  cairn_transfer_resume() (the same bytes come again); -1 abort. */
    int (*on_data)(void *ctx, const char *data, size_t len);
    /** Exactly once at the end: `errstr` NULL on a complete answer. */
    void (*on_done)(void *ctx, const char *errstr);
};

struct cairn_upstream *cairn_upstream_new(struct event_base *base);
/** After every endpoint of it is freed. */
void cairn_upstream_free(struct cairn_upstream *up);

/**
 * An endpoint for `cfg` (which must outlive it) on client `up` (NULL for
 * one that is only checked, never used). The key is read from the
 * environment variable the config names, now.
 * @return NULL with err when the key cannot be used in a header.
 */
struct cairn_endpoint *cairn_endpoint_new(struct cairn_upstream *up,
                                          const struct cairn_upstream_config *cfg, char *err,
                                          size_t errlen);
/** After every transfer on it has ended. */
void cairn_endpoint_free(struct cairn_endpoint *ep);

/** The endpoint's API key (to mask it where text is logged), or NULL. */
const char *cairn_endpoint_key(const struct cairn_endpoint *ep);

/**
 * Start a request to base_url + `path` (path begins with '/', may carry a
 * query). `body` NULL means GET, else POST of body[0..len): a malloc'd
 * buffer that the transfer owns (and frees) from now on.
 * `headers` is a NULL-terminated list of "Name: value" lines added to the
 * upstream request (the Authorization header is added here from the
 * configured environment variable, never from the client).
 */
struct cairn_transfer *cairn_transfer_start(struct cairn_endpoint *ep, const char *path,
                                            const char *const *headers, char *body, size_t len,
                                            const struct cairn_transfer_callbacks *cb, void *ctx);

/** Continue a transfer paused by on_data returning 1. */
void cairn_transfer_resume(struct cairn_transfer *t);

/** Abort and free; no callback runs afterwards. Not from inside a callback
 *  of this transfer (return -1 from on_data instead). */
void cairn_transfer_cancel(struct cairn_transfer *t);

#endif
