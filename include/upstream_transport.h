/*
 * upstream_transport.h — what upstream.c shares with the two transports
 * behind it. Only those three files include it.
 *
 * upstream.c owns the public API (upstream.h) and everything a transfer
 * means whatever carries it: the deadlines, the response head as header
 * lines, the key-echo check, back-pressure. A transport moves bytes:
 *   upstream_h1.c    cairn's own HTTP/1.1 client, for http:// upstreams
 *                    (the hot path: a gateway in front of a model server on
 *                    its network);
 *   upstream_curl.c  libcurl's multi interface, for https:// upstreams
 *                    (TLS, certificate checks, what public APIs need).
 */
#ifndef CAIRN_UPSTREAM_TRANSPORT_H
#define CAIRN_UPSTREAM_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <event2/util.h>

#include "upstream.h"

/* Idle upstream connections kept for reuse, per worker, every upstream
 * together: enough for the concurrency one worker serves steadily, few
 * enough that a burst does not leave hundreds open. */
#define CAIRN_UPSTREAM_MAX_IDLE         64
#define CAIRN_UPSTREAM_MAX_HEADER_BYTES (64 * 1024) /* response header lines together */
#define CAIRN_UPSTREAM_KEY_TAIL_MAX     256         /* longer keys: checked within each write */

struct cairn_curl_client;
struct cairn_h1_client;
struct cairn_h1_conn;
struct evdns_getaddrinfo_request;

struct cairn_upstream {
    struct event_base *base;
    struct cairn_curl_client *curl; /* https transfers; made with the first https endpoint */
    struct cairn_h1_client *h1;     /* http transfers */
};

/* Where an http:// endpoint's requests go, read once from its base URL. */
struct cairn_h1_target {
    char *authority; /* owned: "host:port" as written, the Host header and pool key */
    char *host;      /* owned: for the lookup (no IPv6 brackets) */
    char *port;      /* owned: "80" when the URL names none */
    char *prefix;    /* owned: the base URL's path ("/v1"), or "" */
};

struct cairn_endpoint {
    struct cairn_upstream *up; /* NULL for an endpoint that is only checked */
    const struct cairn_upstream_config *cfg;
    char *authorization; /* secret memory: "Authorization: Bearer …" or NULL; never logged */
    const char *key;     /* the key inside `authorization` */
    size_t keylen;
    bool tls; /* https: libcurl carries its transfers */
    struct cairn_h1_target h1;
    CURL *idle_easy[CAIRN_UPSTREAM_MAX_IDLE]; /* libcurl: finished handles, for reuse */
    size_t nidle_easy;
};

/* libcurl's side of a transfer. */
struct cairn_curl_state {
    CURL *easy;
    struct curl_slist *headers; /* owned: request headers */
    struct curl_slist auth;     /* the endpoint's Authorization, linked last in `headers` */
};

/* The HTTP/1.1 client's side of a transfer. */
struct cairn_h1_state {
    struct cairn_h1_conn *conn;                /* the connection it holds, or NULL */
    struct evdns_getaddrinfo_request *lookup;  /* a name being resolved, or NULL */
    struct evutil_addrinfo *addrs, *next_addr; /* owned: addresses to try in turn */
    char *head;                                /* owned: the request head, key line apart */
    size_t head_len;
    size_t sent;     /* bytes of head, key line and body written so far */
    int phase;       /* of the answer being read (upstream_h1.c) */
    uint64_t left;   /* body or chunk bytes still due; in a head, bytes it may still take */
    uint64_t length; /* the head's Content-Length */
    char *line;      /* owned: the part of a line read so far */
    size_t line_len;
    char *pending; /* owned: bytes read but not taken while paused */
    size_t pending_off, pending_len;
    bool in_block;   /* a status line has come, the blank line that ends its block not yet */
    bool chunked;    /* the head says Transfer-Encoding: chunked */
    bool has_length; /* the head has a Content-Length */
    bool keep_alive; /* the connection may serve another request */
};

struct cairn_transfer {
    struct cairn_endpoint *ep;
    const struct cairn_transfer_callbacks *cb;
    void *ctx;
    char *body; /* owned: POST body, or NULL */
    size_t body_len;
    struct event *deadline; /* connect, first byte, then idleness */

    int status;                          /* of the header block being read */
    struct cairn_upstream_header *rhdrs; /* owned strings: response headers */
    size_t nrhdrs;
    size_t rhdr_bytes;
    bool request_sent;
    bool got_first_byte;
    bool head_done;
    bool paused;
    bool paused_data;  /* the bytes of the last delivery are coming again */
    bool clean_end;    /* the transport completed it */
    const char *error; /* why we stopped it from inside a transport callback */
    char key_tail[CAIRN_UPSTREAM_KEY_TAIL_MAX]; /* last body bytes, for a key split across writes */
    size_t key_tail_len;

    union {
        struct cairn_curl_state curl;
        struct cairn_h1_state h1;
    };
};

/* --- upstream.c, for the transports --------------------------------------- */

/** Connected: the request goes out now, its answer's first byte is due. */
void cairn_transfer_sending(struct cairn_transfer *t);
/** One response head line without its line end, the status line first, an
 *  empty line at the end of each block; trailer lines too.
 *  @return 0, or -1 with t->error set. */
int cairn_transfer_head_line(struct cairn_transfer *t, const char *line, size_t len);
/** Body bytes. @return 0 taken; 1 paused (the same bytes must come again
 *  after the transport's resume); -1 with t->error set. */
int cairn_transfer_body(struct cairn_transfer *t, const char *data, size_t len);
/** End it: free it (the transport's stop included), then call on_done. */
void cairn_transfer_finish(struct cairn_transfer *t, const char *errstr);
/** End it with `errstr` from the loop, not from inside the caller. */
void cairn_transfer_fail_soon(struct cairn_transfer *t, const char *errstr);

/* --- upstream_curl.c ------------------------------------------------------ */

struct cairn_curl_client *cairn_curl_client_new(struct event_base *base);
void cairn_curl_client_free(struct cairn_curl_client *c);
void cairn_curl_endpoint_clear(struct cairn_endpoint *ep);
void cairn_curl_start(struct cairn_transfer *t, const char *path, const char *const *headers);
void cairn_curl_resume(struct cairn_transfer *t);
void cairn_curl_stop(struct cairn_transfer *t);

/* --- upstream_h1.c -------------------------------------------------------- */

struct cairn_h1_client *cairn_h1_client_new(struct event_base *base);
void cairn_h1_client_free(struct cairn_h1_client *c);
/** Read the endpoint's base URL into ep->h1. @return 0, or -1 with err. */
int cairn_h1_endpoint_init(struct cairn_endpoint *ep, char *err, size_t errlen);
void cairn_h1_endpoint_clear(struct cairn_endpoint *ep);
void cairn_h1_start(struct cairn_transfer *t, const char *path, const char *const *headers);
void cairn_h1_resume(struct cairn_transfer *t);
void cairn_h1_stop(struct cairn_transfer *t);

#endif
