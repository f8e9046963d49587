/*
 * server.c — listeners, client connections and response framing
 * (see server.h).
 *
 * A connection is a socket with a read event, a write event, an input and
 * an output buffer, and a small state machine:
 *
 *   IDLE ──first byte──▶ HEAD ──head parsed──▶ BODY ──body read──▶ HANDLING
 *    ▲                                                                │
 *    └──────────── response flushed, keep-alive ◀─────────────────────┘
 *                  response flushed, close ──▶ LINGER ──▶ closed
 *
 * One timer per connection carries the deadline of the current state:
 * keep-alive idleness, the total head deadline (armed at the head's first
 * byte and never extended, so a byte every second cannot hold a connection
 * open), body idleness, and the lingering close. While a handler works, the
 * server imposes no read deadline (a quiet stream is not an idle client);
 * the write event's timeout catches a client that stops reading.
 *
 * Reading is the connection's own rather than a bufferevent's: libevent's
 * evbuffer_read asks the kernel how much is waiting (ioctl FIONREAD) before
 * every read, one system call per request more than needed. Here one
 * recv(2) per readable event takes what fits (see on_readable). The read
 * event stays armed across requests; it is taken off only while a head's
 * worth of input waits unread (the bound on pipelined bytes while a
 * request is handled) or after a request was rejected.
 *
 * Handlers finish requests from arbitrary call stacks (an upstream callback,
 * say), so completing a request never frees anything there: it sets flags
 * and activates the connection's `resume` event, and the connection moves
 * on from the event loop, at a safe point.
 *
 * Output is written from that same event: whatever the handlers queued in
 * one pass of the loop leaves in one writev(2), at once. Only bytes the
 * socket does not take are left to the write event, armed for them and
 * disarmed once they are out; arming it for every answer instead cost two
 * epoll_ctl(2) calls per request.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "alloc.h"
#include "decimal.h"
#include "listen.h"
#include "log.h"

#define LINGER_MS       2000
#define ACCEPT_RETRY_MS 500
#define SPARE_REFUSALS  64 /* clients answered 503 per accept failure, at most */
#define MAX_LISTENERS   CAIRN_MAX_LISTEN
#define READ_MAX        16384 /* bytes taken from a client per read, at most */
#define WRITE_MAX       16384 /* bytes given to a slow client per write event, at most */

enum conn_state { CONN_IDLE, CONN_HEAD, CONN_BODY, CONN_HANDLING, CONN_LINGER };

struct cairn_conn {
    struct cairn_server *srv;
    evutil_socket_t fd;             /* owned: the client's socket */
    struct event *readable;         /* owned: persistent; added while `reading` */
    struct event *writable;         /* owned: persistent; added while `writing` */
    struct evbuffer *in;            /* owned: bytes read, not yet parsed */
    struct evbuffer *out;           /* owned: bytes queued, not yet written */
    struct event *timer;            /* owned: the deadline of `state` */
    struct event *resume;           /* owned: deferred "move on" at a safe point */
    struct cairn_conn *prev, *next; /* the server's list of connections */
    enum conn_state state;
    struct cairn_http_parser parser;
    struct cairn_chunked chunked;
    struct cairn_request *req; /* owned: the request being read or answered */
    uint64_t body_left;        /* Content-Length bytes not yet read */
    uint64_t body_deadline_us; /* the whole body is due by then */
    bool served;               /* a request was answered on this connection */
    bool close_after;          /* close once the current response is flushed */
    bool want_drained;         /* a handler waits for the backlog to shrink */
    bool reading;              /* `readable` is added */
    bool read_stopped;         /* a rejected request: read no more until it is answered */
    bool writing;              /* `writable` is added: output waits for the socket */
};

struct cairn_server {
    struct event_base *base;
    const struct cairn_config *cfg;
    cairn_handler_fn handler;
    void *handler_arg;
    cairn_request_end_fn on_end; /* each request, when its record is written */
    void *on_end_arg;
    struct evconnlistener *listeners[MAX_LISTENERS];
    size_t nlisteners;
    struct event *accept_retry; /* re-enables accepting after EMFILE */
    int spare_fd;               /* held for refusing clients when out of them */
    uint64_t refused_spare;     /* clients refused that way since the last message */
    uint64_t spare_said_us;     /* when that was last said */
    struct event *drain_timer;
    struct cairn_conn *conns;
    size_t nconns;
    bool draining;
    char id_prefix[17]; /* random per process: request ids are unique */
    uint64_t id_counter;
};

static void conn_close(struct cairn_conn *conn);
static void conn_process_input(struct cairn_conn *conn);

uint64_t cairn_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void arm_timer(struct cairn_conn *conn, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    event_add(conn->timer, &tv);
}

/* --- status lines and error bodies --------------------------------------- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* The OpenAI error "type" for a status. */
static const char *error_type(int status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

/* --- requests ------------------------------------------------------------ */

static bool valid_request_id(const char *s, size_t len)
{
    if (len == 0 || len > CAIRN_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static struct cairn_request *request_new(struct cairn_conn *conn)
{
    struct cairn_request *req = cairn_calloc(1, sizeof(*req));
    req->conn = conn;
    req->server = conn->srv;
    req->resp_headers = evbuffer_new();
    req->start_us = cairn_now_us();
    /* The process's random prefix, then a counter in 8 hex digits. */
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(conn->srv->id_prefix);
    uint32_t count = (uint32_t)++conn->srv->id_counter;
    memcpy(req->id, conn->srv->id_prefix, n);
    for (int i = 7; i >= 0; i--, count >>= 4)
        req->id[n + (size_t)i] = hex[count & 0xF];
    req->id[n + 8] = '\0';
    return req;
}

/* Fill the fields derived from a parsed head: path, query, request id. */
static void request_take_head(struct cairn_request *req)
{
    const char *target = req->head.target;
    const char *q = memchr(target, '?', req->head.target_len);
    size_t plen = q ? (size_t)(q - target) : req->head.target_len;
    if (plen < sizeof(req->path)) {
        memcpy(req->path, target, plen);
        req->path[plen] = '\0';
    }
    req->query = q ? q + 1 : NULL;
    const struct cairn_http_header *h = cairn_http_head_find(&req->head, "x-request-id");
    if (h != NULL && valid_request_id(h->value, h->value_len))
        memcpy(req->id, h->value, h->value_len + 1);
}

static void request_free(struct cairn_request *req)
{
    if (req == NULL)
        return;
    cairn_http_head_free(&req->head);
    free(req->log_fields);
    free(req->experiment_fields);
    if (req->body != NULL)
        evbuffer_free(req->body);
    evbuffer_free(req->resp_headers);
    free(req);
}

/* --- writing responses --------------------------------------------------- */

/* The Date header's value (RFC 9110 §5.6.7), made once a second. */
static const char *http_date(void)
{
    static time_t cached_sec;
    static char cached[40];
    time_t now = time(NULL);
    if (now != cached_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(cached, sizeof(cached), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached_sec = now;
    }
    return cached;
}

static void add_text(struct evbuffer *out, const char *s)
{
    evbuffer_add(out, s, strlen(s));
}

static void add_decimal(struct evbuffer *out, uint64_t v)
{
    char buf[CAIRN_DECIMAL_MAX];
    const char *d = cairn_decimal(buf, v);
    evbuffer_add(out, d, (size_t)(buf + CAIRN_DECIMAL_MAX - d));
}

/* Queue the status line and headers; `content_length` < 0 means none. */
static void write_head(struct cairn_request *req, int status, const char *content_type,
                       long long content_length)
{
    struct cairn_conn *conn = req->conn;
    struct evbuffer *out = conn->out;

    if (!req->head.keep_alive || conn->srv->draining)
        conn->close_after = true;
    req->status = status;
    req->started = true;
    req->first_byte_us = cairn_now_us() - req->start_us;

    size_t before = evbuffer_get_length(out);
    /* Piece by piece: a formatted print would cost more than all the rest
     * of the request's writing. */
    evbuffer_add(out, "HTTP/1.1 ", 9);
    add_decimal(out, (uint64_t)(status > 0 ? status : 0));
    evbuffer_add(out, " ", 1);
    add_text(out, reason_phrase(status));
    evbuffer_add(out, "\r\nDate: ", 8);
    add_text(out, http_date());
    evbuffer_add(out, "\r\nX-Request-Id: ", 16);
    add_text(out, req->id);
    evbuffer_add(out, "\r\n", 2);
    if (content_type != NULL && cairn_http_field_valid("Content-Type", content_type)) {
        evbuffer_add(out, "Content-Type: ", 14);
        add_text(out, content_type);
        evbuffer_add(out, "\r\n", 2);
    }
    bool bodiless = status == 204 || status == 304 || (status >= 100 && status < 200);
    if (content_length >= 0 && !bodiless) { /* RFC 9110 §8.6 */
        evbuffer_add(out, "Content-Length: ", 16);
        add_decimal(out, (uint64_t)content_length);
        evbuffer_add(out, "\r\n", 2);
    } else if (req->chunked)
        evbuffer_add(out, "Transfer-Encoding: chunked\r\n", 28);
    evbuffer_add_buffer(out, req->resp_headers);
    if (conn->close_after)
        evbuffer_add(out, "Connection: close\r\n", 19);
    else if (req->head.minor_version == 0)
        evbuffer_add(out, "Connection: keep-alive\r\n", 24);
    evbuffer_add(out, "\r\n", 2);
    req->bytes_out += evbuffer_get_length(out) - before;
}

/* Bytes were queued for the client: write them from the loop (on_resume),
 * after whatever else this pass queues. */
static void queued(struct cairn_conn *conn)
{
    event_active(conn->resume, EV_TIMEOUT, 0);
}

/* The handler is done with the request: let the connection move on once
 * the output is flushed (decided in on_resume / on_write, not here). */
static void complete(struct cairn_request *req)
{
    req->completed = true;
    req->cancel = NULL;
    req->drained = NULL;
    queued(req->conn);
}

void cairn_response_add_header(struct cairn_request *req, const char *name, const char *value)
{
    if (!cairn_http_field_valid(name, value))
        return; /* an upstream's malformed header is dropped, not relayed */
    evbuffer_add_printf(req->resp_headers, "%s: %s\r\n", name, value);
}

void cairn_response_send(struct cairn_request *req, int status, const char *content_type,
                         const void *body, size_t len)
{
    if (req->completed || req->started)
        return;
    write_head(req, status, content_type, (long long)len);
    if (status != 204 && status != 304) {
        evbuffer_add(req->conn->out, body, len);
        req->bytes_out += len;
    }
    complete(req);
}

void cairn_response_error(struct cairn_request *req, int status, const char *code, const char *fmt,
                          ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);

    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "message", message);
    cJSON_AddStringToObject(err, "type", error_type(status));
    if (code != NULL)
        cJSON_AddStringToObject(err, "code", code);
    else
        cJSON_AddNullToObject(err, "code");
    char *body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (body == NULL) {
        fprintf(stderr, "cairn: out of memory printing an error\n");
        abort();
    }
    req->error_code = code;
    cairn_response_send(req, status, "application/json", body, strlen(body));
    free(body);
}

void cairn_response_start(struct cairn_request *req, int status, const char *content_type)
{
    if (req->completed || req->started)
        return;
    req->stream = true;
    if (req->head.minor_version == 1)
        req->chunked = true;
    else
        req->conn->close_after = true; /* HTTP/1.0: the close ends the body */
    write_head(req, status, content_type, -1);
    queued(req->conn);
}

bool cairn_response_write(struct cairn_request *req, const void *data, size_t len)
{
    struct cairn_conn *conn = req->conn;
    struct evbuffer *out = conn->out;
    if (req->completed || !req->started)
        return false;
    if (len > 0) {
        size_t before = evbuffer_get_length(out);
        if (req->chunked)
            evbuffer_add_printf(out, "%zx\r\n", len);
        evbuffer_add(out, data, len);
        if (req->chunked)
            evbuffer_add(out, "\r\n", 2);
        req->bytes_out += evbuffer_get_length(out) - before;
        queued(conn);
    }
    if (evbuffer_get_length(out) < (size_t)conn->srv->cfg->limits.stream_buffer_bytes)
        return true;
    conn->want_drained = true;
    return false;
}

void cairn_response_end(struct cairn_request *req)
{
    if (req->completed || !req->started)
        return;
    if (req->chunked) {
        evbuffer_add(req->conn->out, "0\r\n\r\n", 5);
        req->bytes_out += 5;
    }
    complete(req);
}

void cairn_response_abort(struct cairn_request *req)
{
    if (req->completed)
        return;
    req->conn->close_after = true;
    if (!req->started)
        req->status = 502;
    complete(req);
}

/* --- connection life ----------------------------------------------------- */

/* How many more bytes the input may take: up to a head's worth waiting
 * unparsed (the bound on pipelined bytes while a request is handled; a
 * head larger than limits.header_bytes is a 431). */
static size_t read_room(const struct cairn_conn *conn)
{
    size_t cap = (size_t)conn->srv->cfg->limits.header_bytes + 1;
    size_t len = evbuffer_get_length(conn->in);
    return len < cap ? cap - len : 0;
}

/* Read while the connection may take more: not after a rejected request,
 * and not while the input is full. Called whenever the input shrinks or
 * the state moves. */
static void update_reading(struct cairn_conn *conn)
{
    bool want = !conn->read_stopped && read_room(conn) > 0;
    if (want == conn->reading)
        return;
    if (want)
        event_add(conn->readable, NULL);
    else
        event_del(conn->readable);
    conn->reading = want;
}

/* Answer an error found while reading the request, then close. */
static void reject(struct cairn_conn *conn, int status, const char *why)
{
    if (conn->req == NULL)
        conn->req = request_new(conn);
    conn->close_after = true;
    conn->state = CONN_HANDLING;
    event_del(conn->timer);
    conn->read_stopped = true;
    update_reading(conn);
    const char *code = status == 408   ? "request_timeout"
                       : status == 413 ? "body_too_large"
                       : status == 431 ? "headers_too_large"
                       : status == 501 ? "not_implemented"
                       : status == 505 ? "http_version_not_supported"
                                       : "bad_request";
    cairn_response_error(conn->req, status, code, "%s", why);
}

static void dispatch(struct cairn_conn *conn)
{
    struct cairn_request *req = conn->req;
    conn->state = CONN_HANDLING;
    event_del(conn->timer);
    conn->srv->handler(req, conn->srv->handler_arg);
}

/* The body's deadline: idle time since the last bytes, but never past the
 * total deadline, so a body trickled a byte at a time cannot hold the
 * connection for ever. */
static void arm_body_timer(struct cairn_conn *conn)
{
    uint64_t now = cairn_now_us();
    int64_t idle = conn->srv->cfg->timeouts.body_idle_ms;
    int64_t left =
        conn->body_deadline_us > now ? (int64_t)((conn->body_deadline_us - now) / 1000u) : 0;
    arm_timer(conn, idle < left ? idle : left);
}

/* A head was parsed: decide how the body is read. */
static void start_body(struct cairn_conn *conn)
{
    const struct cairn_config *cfg = conn->srv->cfg;
    struct cairn_request *req = conn->req;
    req->body = evbuffer_new();
    request_take_head(req);
    if (req->head.target_len >= sizeof(req->path)) {
        reject(conn, 414, "request target too long");
        return;
    }
    if (req->head.body == CAIRN_BODY_NONE ||
        (req->head.body == CAIRN_BODY_LENGTH && req->head.content_length == 0)) {
        dispatch(conn);
        return;
    }
    if (req->head.body == CAIRN_BODY_LENGTH &&
        req->head.content_length > (uint64_t)cfg->limits.body_bytes) {
        reject(conn, 413, "request body too large");
        return;
    }
    conn->body_left = req->head.content_length;
    cairn_chunked_init(&conn->chunked, (uint64_t)cfg->limits.body_bytes,
                       (size_t)cfg->limits.header_bytes);
    conn->state = CONN_BODY;
    conn->body_deadline_us = cairn_now_us() + (uint64_t)cfg->timeouts.body_ms * 1000u;
    if (req->head.expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        evbuffer_add(conn->out, cont, sizeof(cont) - 1);
        queued(conn);
    }
    arm_body_timer(conn);
}

static void read_head(struct cairn_conn *conn)
{
    struct evbuffer *in = conn->in;
    size_t len = evbuffer_get_length(in);
    if (len == 0)
        return;
    if (conn->state == CONN_IDLE) {
        conn->state = CONN_HEAD;
        conn->req = request_new(conn);
        cairn_http_parser_init(&conn->parser, (size_t)conn->srv->cfg->limits.header_bytes,
                               (size_t)conn->srv->cfg->limits.header_lines);
        /* A fresh connection's head deadline runs from the accept. */
        if (conn->served)
            arm_timer(conn, conn->srv->cfg->timeouts.header_ms);
    }
    char *buf = (char *)evbuffer_pullup(in, -1);
    const char *why = NULL;
    ssize_t n = cairn_http_parse_head(&conn->parser, buf, len, &conn->req->head, &why);
    if (n == 0)
        return;
    if (n < 0) {
        reject(conn, (int)-n, why);
        return;
    }
    /* The head now lives in head.block; its bytes here may hold a key, and
     * a drained chain keeps them until it is reused or freed. */
    explicit_bzero(buf, (size_t)n);
    evbuffer_drain(in, (size_t)n);
    conn->req->bytes_in = (uint64_t)n;
    start_body(conn);
}

static void read_body(struct cairn_conn *conn)
{
    struct evbuffer *in = conn->in;
    struct cairn_request *req = conn->req;
    size_t avail = evbuffer_get_length(in);
    if (avail == 0)
        return;
    arm_body_timer(conn);

    if (req->head.body == CAIRN_BODY_LENGTH) {
        size_t n = avail < conn->body_left ? avail : (size_t)conn->body_left;
        evbuffer_remove_buffer(in, req->body, n);
        conn->body_left -= n;
        req->bytes_in += n;
        if (conn->body_left == 0)
            dispatch(conn);
        return;
    }

    /* Chunked: feed each contiguous piece of the input to the decoder. */
    struct evbuffer_iovec vec[8];
    bool done = false;
    while (!done && evbuffer_get_length(in) > 0) {
        int nvec = evbuffer_peek(in, -1, NULL, vec, 8);
        if (nvec > 8)
            nvec = 8;
        size_t used = 0;
        for (int i = 0; i < nvec && !done; i++) {
            const char *why = NULL;
            ssize_t n = cairn_chunked_decode(&conn->chunked, vec[i].iov_base, vec[i].iov_len,
                                             req->body, &done, &why);
            if (n < 0) {
                evbuffer_drain(in, used);
                reject(conn, (int)-n, why);
                return;
            }
            used += (size_t)n;
        }
        evbuffer_drain(in, used);
        req->bytes_in += used;
    }
    if (done)
        dispatch(conn);
}

static void conn_process_input(struct cairn_conn *conn)
{
    switch (conn->state) {
    case CONN_IDLE:
    case CONN_HEAD:
        read_head(conn);
        if (conn->state == CONN_BODY)
            read_body(conn);
        break;
    case CONN_BODY: read_body(conn); break;
    case CONN_HANDLING: break; /* pipelined bytes wait; update_reading bounds them */
    case CONN_LINGER: evbuffer_drain(conn->in, evbuffer_get_length(conn->in)); break;
    }
    update_reading(conn);
}

/* The current request is answered and its bytes have left: log it, then
 * keep the connection for the next request or close it. */
static void request_ended(struct cairn_server *srv, struct cairn_request *req)
{
    cairn_log_access(req);
    cairn_log_experiment_request(req);
    if (srv->on_end != NULL)
        srv->on_end(req, srv->on_end_arg);
}

static void request_done(struct cairn_conn *conn)
{
    request_ended(conn->srv, conn->req);
    request_free(conn->req);
    conn->req = NULL;
    conn->want_drained = false;
    conn->served = true;

    if (conn->close_after) {
        /* Lingering close: stop sending, keep reading (and discarding) for
         * a moment so unread request bytes do not turn into an RST that
         * destroys the response before the client read it. */
        conn->state = CONN_LINGER;
        shutdown(conn->fd, SHUT_WR);
        conn->read_stopped = false;
        arm_timer(conn, LINGER_MS);
        conn_process_input(conn); /* discards the input, reads again */
        return;
    }
    conn->state = CONN_IDLE;
    arm_timer(conn, conn->srv->cfg->timeouts.keepalive_ms);
    conn_process_input(conn); /* a pipelined request may be waiting */
}

static bool retriable(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/* Write the queued output now. What the socket does not take is left to
 * the write event, armed here with the send timeout: on_writable writes
 * the rest as the client reads, and takes the event off once all is out.
 * @return 0, or -1 when the write failed: the client is gone. */
static int flush(struct cairn_conn *conn)
{
    if (evbuffer_get_length(conn->out) == 0 || conn->writing)
        return 0;
    if (evbuffer_write(conn->out, conn->fd) < 0 && !retriable(errno))
        return -1;
    if (evbuffer_get_length(conn->out) > 0) {
        int64_t ms = conn->srv->cfg->timeouts.send_idle_ms;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
        event_add(conn->writable, &tv);
        conn->writing = true;
    }
    return 0;
}

/* Output went out (from flush or on_writable): a completed request whose
 * bytes have all left ends; a producer waiting for the client's backlog
 * to shrink to half of limits.stream_buffer_bytes is resumed. */
static void output_moved(struct cairn_conn *conn)
{
    struct cairn_request *req = conn->req;
    size_t left = evbuffer_get_length(conn->out);
    if (req == NULL)
        return;
    if (req->completed) {
        if (left == 0)
            request_done(conn);
        return;
    }
    if (conn->want_drained && req->drained != NULL &&
        left <= (size_t)conn->srv->cfg->limits.stream_buffer_bytes / 2) {
        conn->want_drained = false;
        req->drained(req->handler_ctx);
    }
}

/* EOF, a read or write error, or the send timeout: the client is gone
 * either way. */
static void client_gone(struct cairn_conn *conn)
{
    if (conn->req != NULL && conn->state == CONN_HANDLING && !conn->req->completed)
        conn->req->status = 499; /* nginx's "client closed request" */
    conn_close(conn);
}

/* Deferred work: runs from the event loop after a handler queued output,
 * completed a request, or a stream was aborted. */
static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct cairn_conn *conn = arg;
    if (flush(conn) < 0) {
        client_gone(conn);
        return;
    }
    output_moved(conn);
}

/* The client sent bytes (or closed). One recv(2) takes at most what
 * update_reading allows into a buffer on the stack, and the input gets a
 * copy sized to what came: reading into the input's own free space would
 * give every request a chain of READ_MAX bytes, which the wiping free
 * (secret.h) then clears whole. The stack copy is wiped too: a head may
 * hold a key. */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct cairn_conn *conn = arg;
    size_t room = read_room(conn);
    if (room == 0) { /* limits.header_bytes shrank in a reload */
        update_reading(conn);
        return;
    }
    char buf[READ_MAX];
    ssize_t n = recv(fd, buf, room < sizeof(buf) ? room : sizeof(buf), 0);
    if (n < 0 && retriable(errno))
        return;
    if (n <= 0) {
        client_gone(conn);
        return;
    }
    evbuffer_add(conn->in, buf, (size_t)n);
    explicit_bzero(buf, (size_t)n);
    conn_process_input(conn);
}

/* The socket takes output again, or it did not for timeouts.send_idle_ms
 * (the timeout of a persistent event restarts each time it fires).
 * A backlog goes out WRITE_MAX bytes at a time, as a bufferevent's does:
 * a socket stays writable until its send buffer is two-thirds full, so
 * small writes keep it there and it is writable again after the client
 * read a little; filling the buffer whole would leave it unwritable until
 * the client read a third of it, a second or more of a slow reader's
 * progress that the send timeout would not see. */
static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct cairn_conn *conn = arg;
    if ((what & EV_TIMEOUT) ||
        (evbuffer_write_atmost(conn->out, fd, WRITE_MAX) < 0 && !retriable(errno))) {
        client_gone(conn);
        return;
    }
    if (evbuffer_get_length(conn->out) == 0) {
        event_del(conn->writable); /* all out: flush writes again */
        conn->writing = false;
    }
    output_moved(conn);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct cairn_conn *conn = arg;
    switch (conn->state) {
    case CONN_HEAD: reject(conn, 408, "timed out reading the request head"); break;
    case CONN_BODY: reject(conn, 408, "timed out reading the request body"); break;
    default: conn_close(conn); break;
    }
}

static void conn_close(struct cairn_conn *conn)
{
    struct cairn_server *srv = conn->srv;
    struct cairn_request *req = conn->req;
    if (req != NULL && conn->state == CONN_HANDLING) {
        if (!req->completed && req->cancel != NULL)
            req->cancel(req->handler_ctx);
        if (req->status == 0)
            req->status = 499;
        request_ended(srv, req);
    }
    request_free(req);
    event_free(conn->readable);
    event_free(conn->writable);
    evbuffer_free(conn->in);
    evbuffer_free(conn->out);
    evutil_closesocket(conn->fd);
    event_free(conn->timer);
    event_free(conn->resume);
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        srv->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    free(conn);
    srv->nconns--;
    if (srv->draining && srv->nconns == 0)
        event_base_loopexit(srv->base, NULL);
}

/* --- accepting ----------------------------------------------------------- */

static void refuse_busy(evutil_socket_t fd)
{
    static const char body[] = "{\"error\":{\"message\":\"too many connections\","
                               "\"type\":\"server_error\",\"code\":\"too_many_connections\"}}\n";
    char busy[512];
    int n = snprintf(busy, sizeof(busy),
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     sizeof(body) - 1, body);
    /* Best effort on a fresh non-blocking socket; shutting down the write
     * side first lets the answer arrive before the close. */
    ssize_t w = write(fd, busy, (size_t)n);
    (void)w;
    shutdown(fd, SHUT_WR);
    evutil_closesocket(fd);
}

/* A new client connection on `fd` (non-blocking), from a listener or
 * handed over whole (cairn_server_adopt). @return 0, or -1 when it was
 * refused (answered 503 and closed). */
static int conn_open(struct cairn_server *srv, evutil_socket_t fd)
{
    if (srv->nconns >= (size_t)srv->cfg->limits.max_connections || srv->draining) {
        refuse_busy(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    struct cairn_conn *conn = cairn_calloc(1, sizeof(*conn));
    conn->srv = srv;
    conn->fd = fd;
    conn->readable = event_new(srv->base, fd, EV_READ | EV_PERSIST, on_readable, conn);
    conn->writable = event_new(srv->base, fd, EV_WRITE | EV_PERSIST, on_writable, conn);
    conn->in = evbuffer_new();
    conn->out = evbuffer_new();
    conn->timer = evtimer_new(srv->base, on_timer, conn);
    conn->resume = event_new(srv->base, -1, 0, on_resume, conn);
    if (conn->readable == NULL || conn->writable == NULL || conn->in == NULL || conn->out == NULL ||
        conn->timer == NULL || conn->resume == NULL) {
        fprintf(stderr, "cairn: out of memory accepting a connection\n");
        abort();
    }
    conn->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = conn;
    srv->conns = conn;
    srv->nconns++;

    /* Reading starts now; writing waits for output the socket does not
     * take at once (flush). */
    update_reading(conn);
    conn->state = CONN_IDLE;
    /* A new connection owes us its first request within the head deadline;
     * keepalive_ms is for idleness between requests. */
    arm_timer(conn, srv->cfg->timeouts.header_ms);
    return 0;
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    (void)lev;
    (void)sa;
    (void)socklen;
    conn_open(arg, fd);
}

int cairn_server_adopt(struct cairn_server *srv, int fd)
{
    if (evutil_make_socket_nonblocking(fd) < 0) {
        evutil_closesocket(fd);
        return -1;
    }
    return conn_open(srv, fd);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct cairn_server *srv = arg;
    if (srv->draining)
        return;
    for (size_t i = 0; i < srv->nlisteners; i++)
        evconnlistener_enable(srv->listeners[i]);
}

static int open_spare(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Out of descriptors: give up the spare one to take the waiting clients
 * off the backlog one at a time and answer each 503 at once, rather than
 * leave them hanging until a descriptor frees up. @return false when
 * there is no spare (or it could not be had back): pause instead. */
static bool refuse_with_spare(struct cairn_server *srv, struct evconnlistener *lev, int err)
{
    if (srv->spare_fd < 0)
        return false;
    size_t refused = 0;
    bool stuck = false;
    while (refused < SPARE_REFUSALS && srv->spare_fd >= 0) {
        close(srv->spare_fd);
        int fd = accept4(evconnlistener_get_fd(lev), NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int accept_err = errno;
        if (fd >= 0) {
            refuse_busy(fd); /* closes it: the spare's slot is free again */
            refused++;
        }
        srv->spare_fd = open_spare();
        if (fd < 0) {
            /* The backlog is empty, or accept fails even with a slot free
             * (the system's table is full): then pause. */
            stuck = accept_err != EAGAIN && accept_err != EWOULDBLOCK && accept_err != ECONNABORTED;
            break;
        }
    }
    srv->refused_spare += refused;
    uint64_t now = cairn_now_us();
    if (srv->refused_spare > 0 && now - srv->spare_said_us >= 1000000) {
        cairn_log_msg("error", "accept failed: %s; %llu client(s) answered 503",
                      evutil_socket_error_to_string(err), (unsigned long long)srv->refused_spare);
        srv->refused_spare = 0;
        srv->spare_said_us = now;
    }
    /* After a full batch more may wait: the listener, still readable,
     * brings them here again. */
    return !stuck && srv->spare_fd >= 0;
}

/* accept() failed: out of descriptors or memory. Out of descriptors, the
 * waiting clients are refused with the spare one; otherwise (or without
 * it) accepting stops for a moment rather than spin on a listener that
 * stays readable. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    struct cairn_server *srv = arg;
    int err = EVUTIL_SOCKET_ERROR();
    if ((err == EMFILE || err == ENFILE) && refuse_with_spare(srv, lev, err))
        return;
    cairn_log_msg("error", "accept failed: %s; pausing accepts for %d ms",
                  evutil_socket_error_to_string(err), ACCEPT_RETRY_MS);
    for (size_t i = 0; i < srv->nlisteners; i++)
        evconnlistener_disable(srv->listeners[i]);
    struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};
    event_add(srv->accept_retry, &tv);
}

struct cairn_server *cairn_server_new(struct event_base *base, const struct cairn_config *cfg,
                                      const int *fds, size_t nfds, cairn_handler_fn handler,
                                      void *arg)
{
    struct cairn_server *srv = cairn_calloc(1, sizeof(*srv));
    srv->base = base;
    srv->cfg = cfg;
    srv->handler = handler;
    srv->handler_arg = arg;
    srv->accept_retry = evtimer_new(base, on_accept_retry, srv);
    srv->spare_fd = open_spare();

    unsigned char rnd[8] = {0};
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        memcpy(rnd, &(uint64_t){cairn_now_us() ^ (uint64_t)getpid()}, sizeof(rnd));
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(srv->id_prefix + 2 * i, 3, "%02x", rnd[i]);

    for (size_t i = 0; i < nfds && i < MAX_LISTENERS; i++) {
        /* Backlog 0: the socket already listens (listen.c chose its
         * backlog); -1 would make libevent listen() again with 128. */
        struct evconnlistener *lev = evconnlistener_new(
            base, on_accept, srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fds[i]);
        if (lev == NULL) {
            fprintf(stderr, "cairn: out of memory for a listener\n");
            abort();
        }
        evconnlistener_set_error_cb(lev, on_accept_error);
        srv->listeners[srv->nlisteners++] = lev;
    }
    return srv;
}

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct cairn_server *srv = arg;
    cairn_log_msg("warn", "drain deadline reached with %zu connections open", srv->nconns);
    event_base_loopexit(srv->base, NULL);
}

void cairn_server_drain(struct cairn_server *srv)
{
    if (srv->draining)
        return;
    srv->draining = true;
    for (size_t i = 0; i < srv->nlisteners; i++)
        evconnlistener_free(srv->listeners[i]);
    srv->nlisteners = 0;
    event_del(srv->accept_retry);

    struct cairn_conn *next;
    for (struct cairn_conn *c = srv->conns; c != NULL; c = next) {
        next = c->next;
        c->close_after = true;
        if (c->state == CONN_IDLE)
            conn_close(c);
    }
    if (srv->nconns == 0) {
        event_base_loopexit(srv->base, NULL);
        return;
    }
    srv->drain_timer = evtimer_new(srv->base, on_drain_deadline, srv);
    int64_t ms = srv->cfg->timeouts.drain_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    event_add(srv->drain_timer, &tv);
}

bool cairn_server_draining(const struct cairn_server *srv)
{
    return srv->draining;
}

bool cairn_request_method_is(struct cairn_request *req, const char *method)
{
    if (strcmp(req->head.method, method) == 0)
        return true;
    cairn_response_add_header(req, "Allow", method);
    cairn_response_error(req, 405, "method_not_allowed", "%s %s is not supported", req->head.method,
                         req->path);
    return false;
}

void cairn_server_set_config(struct cairn_server *srv, const struct cairn_config *cfg)
{
    srv->cfg = cfg;
}

void cairn_server_on_end(struct cairn_server *srv, cairn_request_end_fn fn, void *arg)
{
    srv->on_end = fn;
    srv->on_end_arg = arg;
}

size_t cairn_server_connections(const struct cairn_server *srv)
{
    return srv->nconns;
}

void cairn_server_free(struct cairn_server *srv)
{
    if (srv == NULL)
        return;
    while (srv->conns != NULL)
        conn_close(srv->conns);
    for (size_t i = 0; i < srv->nlisteners; i++)
        evconnlistener_free(srv->listeners[i]);
    event_free(srv->accept_retry);
    if (srv->spare_fd >= 0)
        close(srv->spare_fd);
    if (srv->drain_timer != NULL)
        event_free(srv->drain_timer);
    free(srv);
}
