/*
 * server.h — the front door: listeners, client connections, and the
 * request/response interface that handlers (proxy.c) program against.
 *
 * The server reads requests with cairn's own parser (http_parser.h),
 * enforces every client-side limit and deadline, and serialises responses.
 * A handler receives a complete request (head and body) and answers it
 * exactly once: cairn_response_send() for a whole response, or
 * cairn_response_start() + cairn_response_write()* + cairn_response_end()
 * for a streamed one, or cairn_response_abort() to cut a stream that broke.
 * If the client goes away first, the server calls the handler's `cancel`
 * hook once, and the handler must forget the request.
 */
#ifndef CAIRN_SERVER_H
#define CAIRN_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "http_parser.h"

struct event_base;
struct evbuffer;
struct cairn_server;
struct cairn_conn;

#define CAIRN_REQUEST_ID_MAX 64

struct cairn_request {
    struct cairn_conn *conn; /* the client connection (owner of this struct) */
    struct cairn_server *server;
    struct cairn_http_head head;
    struct evbuffer *body; /* owned: the complete, de-chunked body */
    char id[CAIRN_REQUEST_ID_MAX + 1];
    char path[256];    /* target without the query, for routing and logs */
    const char *query; /* after '?', inside head.block, or NULL */

    /* response state */
    struct evbuffer *resp_headers; /* owned: extra "Name: value\r\n" lines */
    int status;
    bool started;   /* status line sent */
    bool chunked;   /* streaming with chunked framing */
    bool completed; /* the handler has answered */
    bool stream;    /* answered as an SSE stream (for the log) */

    /* what the log reports */
    uint64_t start_us;
    uint64_t upstream_first_byte_us; /* 0 = none */
    int upstream_status;             /* 0 = no upstream answer */
    uint64_t first_byte_us;          /* from start_us to the response head queued */
    char tenant[CAIRN_NAME_MAX + 1]; /* "" until a key names one */
    char arm[CAIRN_NAME_MAX + 1];    /* experiment arm, "" for none */
    const char *error_code;          /* set by cairn_response_error */
    char *log_fields;                /* owned: extra JSON members for the access
                                        record ("k":v,"k2":v2), or NULL */
    char *experiment_fields;         /* owned: the same for its experiment
                                        record, or NULL when it has none */
    uint64_t bytes_in, bytes_out;

    /* set by the handler that takes the request */
    void (*cancel)(void *handler_ctx);  /* client gone before completion */
    void (*drained)(void *handler_ctx); /* output fell below low water */
    void *handler_ctx;
};

/** A handler: called once per request, with the body complete. */
typedef void (*cairn_handler_fn)(struct cairn_request *req, void *arg);

/** Called for every request once it has ended (answered, or its client
 *  gone), right after its access record is written. */
typedef void (*cairn_request_end_fn)(const struct cairn_request *req, void *arg);

/**
 * Create a server on `base` with the limits and timeouts of `cfg`,
 * accepting on the listening sockets fds[0..nfds) (listen.h), which it
 * takes over: they close with the server, or when it drains.
 */
struct cairn_server *cairn_server_new(struct event_base *base, const struct cairn_config *cfg,
                                      const int *fds, size_t nfds, cairn_handler_fn handler,
                                      void *arg);

/**
 * Serve a client connection that is already open (one end of a socketpair
 * in the fuzz harness, say), exactly as if a listener had accepted it: the
 * server takes `fd` over, makes it non-blocking and closes it with the
 * connection. @return 0, or -1 when refused like an accept past
 * limits.max_connections or while draining (503 written, `fd` closed).
 */
int cairn_server_adopt(struct cairn_server *srv, int fd);

/** Limits and timeouts from now on come from `cfg` (a reload); the
 *  listening addresses stay. `cfg` must outlive its use. */
void cairn_server_set_config(struct cairn_server *srv, const struct cairn_config *cfg);

void cairn_server_on_end(struct cairn_server *srv, cairn_request_end_fn fn, void *arg);

/** Client connections open now. */
size_t cairn_server_connections(const struct cairn_server *srv);

/** Stop accepting, close idle connections, let the rest finish; when the
 *  last connection closes (or after timeouts.drain_ms) the loop exits. */
void cairn_server_drain(struct cairn_server *srv);
bool cairn_server_draining(const struct cairn_server *srv);

void cairn_server_free(struct cairn_server *srv);

/* --- answering --------------------------------------------------------- */

/** Add a response header (name and value are copied; CR/LF are refused). */
void cairn_response_add_header(struct cairn_request *req, const char *name, const char *value);

/** A whole response with a Content-Length. Completes the request. */
void cairn_response_send(struct cairn_request *req, int status, const char *content_type,
                         const void *body, size_t len);

/** An OpenAI-shaped error: {"error":{"message","type","code"}}; the type is
 *  derived from the status. Completes the request. */
void cairn_response_error(struct cairn_request *req, int status, const char *code, const char *fmt,
                          ...) __attribute__((format(printf, 4, 5)));

/** Start a streamed response (chunked on HTTP/1.1, close-delimited on 1.0). */
void cairn_response_start(struct cairn_request *req, int status, const char *content_type);

/** Queue stream bytes. @return true while the client's backlog is below
 *  limits.stream_buffer_bytes; false means "stop producing until
 *  req->drained is called". */
bool cairn_response_write(struct cairn_request *req, const void *data, size_t len);

/** Finish a streamed response. Completes the request. */
void cairn_response_end(struct cairn_request *req);

/** The stream broke: close the connection without a terminating chunk so
 *  the client cannot mistake a truncated answer for a complete one. */
void cairn_response_abort(struct cairn_request *req);

/** Whether the request's method is `method`; if not, answers 405 with
 *  `Allow: method` (the request is then complete). */
bool cairn_request_method_is(struct cairn_request *req, const char *method);

/** Microseconds on a monotonic clock. */
uint64_t cairn_now_us(void);

#endif
