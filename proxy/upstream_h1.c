/*
 * upstream_h1.c — the http:// transport: cairn's own HTTP/1.1 client
 * (RFC 9112) on the worker's libevent base.
 *
 * A gateway's upstream connection does one thing: POST a body, read one
 * answer, keep the connection for the next. Under load, libcurl's general
 * machinery cost a pass-through worker about a quarter of its time: a poll
 * to see a pooled connection alive, epoll registrations made and undone for
 * every request, a generic transfer state machine. Here a connection keeps
 * one persistent read event for its whole life (an idle connection that
 * turns readable has closed or misbehaved, and is dropped: that is the
 * liveness check), the request goes out in one sendmsg with the key read
 * straight from secret memory, and the answer is read into one buffer the
 * worker shares and handed to upstream.c from there.
 *
 * An answer is framed by Content-Length, by chunks, or by the close of the
 * connection (RFC 9112 §6.3). Anything else is a malformed answer: a
 * Transfer-Encoding other than chunked, lengths that disagree, a folded
 * header line. A connection is reused only after a complete answer framed
 * by length or chunks, with nothing after it, over HTTP/1.1 and without
 * "Connection: close".
 *
 * Names are resolved with evdns; a numeric host needs no lookup.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "alloc.h"
#include "decimal.h"
#include "upstream_transport.h"

#define READ_BUF       (64 * 1024)
#define HEAD_MAX       (CAIRN_UPSTREAM_MAX_HEADER_BYTES + 8 * 1024) /* status lines, line ends */
#define CHUNK_LINE_MAX 1024 /* a chunk-size line with its extensions */

struct cairn_h1_conn {
    struct cairn_h1_client *client;
    struct cairn_h1_conn *prev, *next; /* in the idle list */
    bool idle;
    bool connected;
    char *authority; /* owned: the upstream it goes to (the pool's key) */
    evutil_socket_t fd;
    struct event *rev;        /* persistent, from connected to closed (off while paused) */
    struct event *wev;        /* connecting, or a request that did not go out whole */
    struct cairn_transfer *t; /* the transfer on it; NULL while idle */
};

struct cairn_h1_client {
    struct event_base *base;
    struct evdns_base *dns;          /* made for the first name that is not numeric */
    struct cairn_h1_conn *idle_head; /* most recently used first */
    struct cairn_h1_conn *idle_tail;
    size_t nidle;
    char rbuf[READ_BUF]; /* every read lands here: one loop, one reader at a time */
};

/* Where the answer is. */
enum phase {
    P_HEAD,
    P_LENGTH,
    P_CHUNK_SIZE,
    P_CHUNK_DATA,
    P_CHUNK_END,
    P_TRAILERS,
    P_TO_CLOSE,
    P_DONE
};

/* What take() did with the bytes it was given. */
enum taken { TAKEN_ALL, TAKEN_PAUSED, TAKEN_DONE, TAKEN_ERROR };

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

/* --- connections and the idle pool ---------------------------------------- */

static void idle_unlink(struct cairn_h1_conn *conn)
{
    struct cairn_h1_client *c = conn->client;
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        c->idle_head = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    else
        c->idle_tail = conn->prev;
    conn->prev = conn->next = NULL;
    conn->idle = false;
    c->nidle--;
}

static void conn_close(struct cairn_h1_conn *conn)
{
    if (conn->idle)
        idle_unlink(conn);
    event_free(conn->rev);
    event_free(conn->wev);
    evutil_closesocket(conn->fd);
    free(conn->authority);
    free(conn);
}

static void idle_put(struct cairn_h1_conn *conn)
{
    struct cairn_h1_client *c = conn->client;
    conn->t = NULL;
    event_del(conn->wev);
    conn->idle = true;
    conn->prev = NULL;
    conn->next = c->idle_head;
    if (c->idle_head != NULL)
        c->idle_head->prev = conn;
    else
        c->idle_tail = conn;
    c->idle_head = conn;
    if (++c->nidle > CAIRN_UPSTREAM_MAX_IDLE)
        conn_close(c->idle_tail);
}

/* A pooled connection may have been closed by the upstream, or written to
 * unasked, since its last answer without the read event having said so:
 * in this same loop turn (a keep-alive timeout, a server going down), or
 * while a pause held the end of that answer. One peek tells. */
static bool still_clean(const struct cairn_h1_conn *conn)
{
    char byte;
    ssize_t n = recv(conn->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static struct cairn_h1_conn *idle_take(struct cairn_h1_client *c, const char *authority)
{
    struct cairn_h1_conn *conn = c->idle_head;
    while (conn != NULL) {
        struct cairn_h1_conn *next = conn->next;
        if (strcmp(conn->authority, authority) == 0) {
            idle_unlink(conn);
            if (still_clean(conn))
                return conn;
            conn_close(conn);
        }
        conn = next;
    }
    return NULL;
}

struct cairn_h1_client *cairn_h1_client_new(struct event_base *base)
{
    struct cairn_h1_client *c = cairn_calloc(1, sizeof(*c));
    c->base = base;
    return c;
}

void cairn_h1_client_free(struct cairn_h1_client *c)
{
    if (c == NULL)
        return;
    while (c->idle_head != NULL)
        conn_close(c->idle_head);
    if (c->dns != NULL) {
        /* libevent finishes a lookup that a transfer cancelled in a
         * callback of the loop, and frees it there: let those run (every
         * transfer is gone, nothing of this client is left on the loop),
         * or a worker that stops during a lookup leaks it. */
        event_base_loop(c->base, EVLOOP_NONBLOCK);
        evdns_base_free(c->dns, 0);
    }
    free(c);
}

/* --- endpoints ------------------------------------------------------------ */

/* The worker's resolver (resolv.conf and /etc/hosts read once): made for
 * the first endpoint that names its host, and kept, with its socket. */
static struct evdns_base *resolver(struct cairn_h1_client *c)
{
    if (c->dns == NULL)
        c->dns = evdns_base_new(c->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                             EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    return c->dns;
}

static bool numeric_host(const char *host)
{
    struct in6_addr a;
    return inet_pton(AF_INET, host, &a) == 1 || inet_pton(AF_INET6, host, &a) == 1;
}

int cairn_h1_endpoint_init(struct cairn_endpoint *ep, char *err, size_t errlen)
{
    const char *url = ep->cfg->base_url + strlen("http://");
    size_t alen = strcspn(url, "/");
    const char *host = url, *port = NULL;
    size_t hlen = alen;
    if (url[0] == '[') { /* an IPv6 literal, RFC 3986 §3.2.2 */
        const char *close = memchr(url, ']', alen);
        if (close == NULL || (close + 1 != url + alen && close[1] != ':'))
            goto bad;
        host = url + 1;
        hlen = (size_t)(close - host);
        port = close + 1 != url + alen ? close + 2 : NULL;
    } else {
        const char *colon = memchr(url, ':', alen);
        if (colon != NULL) {
            hlen = (size_t)(colon - url);
            port = colon + 1;
        }
    }
    size_t plen = port != NULL ? (size_t)(url + alen - port) : 0;
    if (hlen == 0 || (port != NULL && (plen == 0 || plen > 5 || strspn(port, "0123456789") < plen ||
                                       atoi(port) == 0 || atoi(port) > 65535)))
        goto bad;
    ep->h1.authority = cairn_strndup(url, alen);
    ep->h1.host = cairn_strndup(host, hlen);
    ep->h1.port = port != NULL ? cairn_strndup(port, plen) : cairn_strndup("80", 2);
    ep->h1.prefix = cairn_strndup(url + alen, strlen(url + alen));
    if (ep->up != NULL && !numeric_host(ep->h1.host))
        resolver(ep->up->h1);
    return 0;
bad:
    snprintf(err, errlen, "upstreams.%s: base_url has no usable host and port", ep->cfg->name);
    return -1;
}

void cairn_h1_endpoint_clear(struct cairn_endpoint *ep)
{
    free(ep->h1.authority);
    free(ep->h1.host);
    free(ep->h1.port);
    free(ep->h1.prefix);
}

/* --- the request ---------------------------------------------------------- */

/* The request is four pieces: the head up to the key's line, that line
 * (from secret memory, never copied), the end of the head, the body. */
static size_t request_pieces(const struct cairn_transfer *t, struct iovec piece[4])
{
    const char *auth = t->ep->authorization;
    piece[0] = (struct iovec){t->h1.head, t->h1.head_len};
    piece[1] = (struct iovec){(char *)(auth != NULL ? auth : ""), auth != NULL ? strlen(auth) : 0};
    piece[2] = (struct iovec){(char *)(auth != NULL ? "\r\n\r\n" : "\r\n"), auth != NULL ? 4 : 2};
    piece[3] = (struct iovec){t->body != NULL ? t->body : "", t->body_len};
    return piece[0].iov_len + piece[1].iov_len + piece[2].iov_len + piece[3].iov_len;
}

static char *put(char *at, const char *s, size_t n)
{
    memcpy(at, s, n);
    return at + n;
}

/* The request line and headers, copied into one block (a formatted print
 * would cost more than the rest of the request's head together). */
static void build_head(struct cairn_transfer *t, const char *path, const char *const *headers)
{
    const struct cairn_h1_target *to = &t->ep->h1;
    const char *method = t->body != NULL ? "POST " : "GET ";
    size_t mlen = strlen(method), plen = strlen(to->prefix), pathlen = strlen(path),
           alen = strlen(to->authority);
    size_t cap = 96 + mlen + plen + pathlen + alen;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        cap += strlen(headers[i]) + 2;
    char *head = cairn_malloc(cap), *p = head;
    p = put(p, method, mlen);
    p = put(p, to->prefix, plen);
    p = put(p, path, pathlen);
    p = put(p, " HTTP/1.1\r\nHost: ", 17);
    p = put(p, to->authority, alen);
    p = put(p, "\r\n", 2);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        p = put(p, headers[i], strlen(headers[i]));
        p = put(p, "\r\n", 2);
    }
    if (t->body != NULL) {
        char digits[CAIRN_DECIMAL_MAX];
        const char *d = cairn_decimal(digits, t->body_len);
        p = put(p, "Content-Length: ", 16);
        p = put(p, d, (size_t)(digits + CAIRN_DECIMAL_MAX - d));
        p = put(p, "\r\n", 2);
    }
    t->h1.head = head;
    t->h1.head_len = (size_t)(p - head);
}

/* Write what is left of the request; the write event finishes it.
 * @return 0, or -1 when the connection failed. */
static int send_request(struct cairn_transfer *t)
{
    struct cairn_h1_state *s = &t->h1;
    struct iovec piece[4], iov[4];
    size_t total = request_pieces(t, piece), skip = s->sent;
    int n = 0;
    for (int i = 0; i < 4; i++) {
        if (skip >= piece[i].iov_len) {
            skip -= piece[i].iov_len;
            continue;
        }
        iov[n++] = (struct iovec){(char *)piece[i].iov_base + skip, piece[i].iov_len - skip};
        skip = 0;
    }
    if (n == 0)
        return 0;
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t w = sendmsg(s->conn->fd, &msg, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return -1;
    if (w > 0)
        s->sent += (size_t)w;
    if (s->sent < total)
        event_add(s->conn->wev, NULL);
    return 0;
}

/* The connection is up: the request goes out. */
static void on_connected(struct cairn_transfer *t)
{
    struct cairn_h1_conn *conn = t->h1.conn;
    conn->connected = true;
    event_add(conn->rev, NULL);
    cairn_transfer_sending(t);
    if (send_request(t) < 0)
        cairn_transfer_fail_soon(t, CAIRN_UPSTREAM_ECLOSED);
}

/* Connect to the next address of the lookup; none left: a failure. */
static void connect_next(struct cairn_transfer *t)
{
    struct cairn_h1_state *s = &t->h1;
    struct cairn_h1_client *c = t->ep->up->h1;
    while (s->next_addr != NULL) {
        struct evutil_addrinfo *ai = s->next_addr;
        s->next_addr = ai->ai_next;
        evutil_socket_t fd =
            socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
        if (fd < 0)
            break; /* out of descriptors: the next address would fare no better */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
            evutil_closesocket(fd);
            continue;
        }
        struct cairn_h1_conn *conn = cairn_calloc(1, sizeof(*conn));
        conn->client = c;
        conn->fd = fd;
        conn->authority = cairn_strndup(t->ep->h1.authority, strlen(t->ep->h1.authority));
        conn->rev = event_new(c->base, fd, EV_READ | EV_PERSIST, on_read, conn);
        conn->wev = event_new(c->base, fd, EV_WRITE, on_write, conn);
        if (conn->rev == NULL || conn->wev == NULL) {
            fprintf(stderr, "cairn: out of memory connecting upstream\n");
            abort();
        }
        conn->t = t;
        s->conn = conn;
        event_add(conn->wev, NULL); /* writable: connected, or failed */
        return;
    }
    cairn_transfer_fail_soon(t, CAIRN_UPSTREAM_ECONNECT);
}

static void on_lookup(int result, struct evutil_addrinfo *res, void *arg)
{
    if (result == EVUTIL_EAI_CANCEL)
        return; /* the transfer is gone */
    struct cairn_transfer *t = arg;
    struct cairn_h1_state *s = &t->h1;
    s->lookup = NULL;
    if (result != 0 || res == NULL) {
        cairn_transfer_fail_soon(t, CAIRN_UPSTREAM_ECONNECT);
        return;
    }
    s->addrs = s->next_addr = res;
    connect_next(t);
}

static void look_up(struct cairn_transfer *t)
{
    struct cairn_h1_client *c = t->ep->up->h1;
    const struct cairn_h1_target *to = &t->ep->h1;
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC,
                                    .ai_socktype = SOCK_STREAM,
                                    .ai_protocol = IPPROTO_TCP,
                                    .ai_flags = EVUTIL_AI_NUMERICHOST | EVUTIL_AI_NUMERICSERV};
    if (evutil_getaddrinfo(to->host, to->port, &hints, &t->h1.addrs) == 0) {
        t->h1.next_addr = t->h1.addrs;
        connect_next(t);
        return;
    }
    if (resolver(c) == NULL) {
        cairn_transfer_fail_soon(t, CAIRN_UPSTREAM_ECONNECT);
        return;
    }
    hints.ai_flags = EVUTIL_AI_NUMERICSERV;
    /* The answer may come before this returns (/etc/hosts). */
    struct evdns_getaddrinfo_request *r =
        evdns_getaddrinfo(c->dns, to->host, to->port, &hints, on_lookup, t);
    if (r != NULL)
        t->h1.lookup = r;
}

void cairn_h1_start(struct cairn_transfer *t, const char *path, const char *const *headers)
{
    struct cairn_h1_state *s = &t->h1;
    build_head(t, path, headers);
    s->phase = P_HEAD;
    s->left = HEAD_MAX;
    struct cairn_h1_conn *conn = idle_take(t->ep->up->h1, t->ep->h1.authority);
    if (conn == NULL) {
        look_up(t);
        return;
    }
    conn->t = t;
    s->conn = conn;
    cairn_transfer_sending(t);
    if (send_request(t) < 0)
        cairn_transfer_fail_soon(t, CAIRN_UPSTREAM_ECLOSED);
}

void cairn_h1_resume(struct cairn_transfer *t)
{
    struct cairn_h1_conn *conn = t->h1.conn;
    event_add(conn->rev, NULL);
    event_active(conn->rev, EV_READ, 1); /* the bytes kept, from the loop */
}

void cairn_h1_stop(struct cairn_transfer *t)
{
    struct cairn_h1_state *s = &t->h1;
    struct iovec piece[4];
    if (s->lookup != NULL)
        evdns_getaddrinfo_cancel(s->lookup);
    if (s->addrs != NULL)
        evutil_freeaddrinfo(s->addrs);
    if (s->conn != NULL) {
        if (t->clean_end && s->keep_alive && s->sent == request_pieces(t, piece))
            idle_put(s->conn);
        else
            conn_close(s->conn);
    }
    free(s->head);
    free(s->line);
    free(s->pending);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct cairn_h1_conn *conn = arg;
    struct cairn_transfer *t = conn->t;
    if (conn->connected) {
        if (send_request(t) < 0)
            cairn_transfer_finish(t, CAIRN_UPSTREAM_ECLOSED);
        return;
    }
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr == 0) {
        on_connected(t);
        return;
    }
    t->h1.conn = NULL;
    conn_close(conn);
    connect_next(t);
}

/* --- the answer ----------------------------------------------------------- */

static int malformed(struct cairn_transfer *t)
{
    t->error = CAIRN_UPSTREAM_EPROTOCOL;
    return TAKEN_ERROR;
}

/*
 * The next line of data[*at..len), at most `max` bytes: 1 with it in
 * *line and *n (without its LF, nor a CR before that); 0 when the data ran
 * out first (the part read is kept); -1 when it is longer than `max`.
 * The line is not NUL-terminated: it is read by its length only. The
 * caller sets s->line_len to 0 once it is done with the line.
 */
static int take_line(struct cairn_h1_state *s, const char *data, size_t len, size_t *at, size_t max,
                     const char **line, size_t *n)
{
    const char *from = data + *at;
    const char *lf = memchr(from, '\n', len - *at);
    size_t part = lf != NULL ? (size_t)(lf - from) : len - *at;
    if (s->line_len + part > max)
        return -1;
    *at += part + (lf != NULL);
    if (lf != NULL && s->line_len == 0) { /* whole in this read: no copy */
        *line = from;
        *n = part;
    } else {
        s->line = cairn_realloc(s->line, s->line_len + part);
        memcpy(s->line + s->line_len, from, part);
        s->line_len += part;
        if (lf == NULL)
            return 0;
        *line = s->line;
        *n = s->line_len;
    }
    if (*n > 0 && (*line)[*n - 1] == '\r')
        (*n)--;
    return 1;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool names(const char *line, size_t nlen, const char *name)
{
    return nlen == strlen(name) && strncasecmp(line, name, nlen) == 0;
}

/* "close" among the comma-separated options of a Connection header. */
static bool says_close(const char *v, size_t n)
{
    for (size_t i = 0; i + 5 <= n; i++)
        if (strncasecmp(v + i, "close", 5) == 0 && (i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') &&
            (i + 5 == n || v[i + 5] == ',' || v[i + 5] == ' '))
            return true;
    return false;
}

/* A status line: "HTTP/1.x SSS[ reason]". */
static int status_line(struct cairn_transfer *t, const char *line, size_t n)
{
    struct cairn_h1_state *s = &t->h1;
    if (n < 12 || strncmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
        line[8] != ' ' || !all_digits(line + 9, 3) || (n > 12 && line[12] != ' '))
        return malformed(t);
    s->in_block = true;
    s->chunked = s->has_length = false;
    s->keep_alive = line[7] == '1';
    return cairn_transfer_head_line(t, line, n) < 0 ? TAKEN_ERROR : TAKEN_ALL;
}

static int header_line(struct cairn_transfer *t, const char *line, size_t n)
{
    struct cairn_h1_state *s = &t->h1;
    /* A folded line (obsolete, RFC 9112 §5.2) continues the previous
     * header: refused, as a line without a colon is. A name that is not a
     * token is let through here, to be dropped where headers are relayed
     * (nginx's ignore_invalid_headers); only exact names frame the body. */
    const char *colon = memchr(line, ':', n);
    if (colon == NULL || line[0] == ' ' || line[0] == '\t')
        return malformed(t);
    size_t nlen = (size_t)(colon - line);
    const char *v = colon + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vlen = (size_t)(end - v);
    if (names(line, nlen, "content-length")) {
        uint64_t len = 0;
        if (vlen == 0 || vlen > 18 || !all_digits(v, vlen))
            return malformed(t);
        for (size_t i = 0; i < vlen; i++)
            len = len * 10 + (uint64_t)(v[i] - '0');
        if (s->has_length && len != s->length)
            return malformed(t);
        s->has_length = true;
        s->length = len;
    } else if (names(line, nlen, "transfer-encoding")) {
        if (vlen != 7 || strncasecmp(v, "chunked", 7) != 0)
            return malformed(t); /* no coding was asked for */
        s->chunked = true;
    } else if (names(line, nlen, "connection") && says_close(v, vlen)) {
        s->keep_alive = false;
    }
    return cairn_transfer_head_line(t, line, n) < 0 ? TAKEN_ERROR : TAKEN_ALL;
}

/* The blank line that ends a head: what frames the body (RFC 9112 §6.3). */
static int end_of_head(struct cairn_transfer *t)
{
    struct cairn_h1_state *s = &t->h1;
    s->in_block = false;
    if (cairn_transfer_head_line(t, "", 0) < 0)
        return TAKEN_ERROR;
    if (t->status < 200)
        return t->status == 101 ? malformed(t) : TAKEN_ALL; /* an interim answer */
    if (t->status == 204 || t->status == 304) {
        s->phase = P_DONE;
    } else if (s->chunked) {
        s->phase = P_CHUNK_SIZE;
        if (s->has_length) /* a request smuggler's answer: never reused */
            s->keep_alive = false;
    } else if (s->has_length) {
        s->left = s->length;
        s->phase = s->length > 0 ? P_LENGTH : P_DONE;
    } else {
        s->phase = P_TO_CLOSE;
        s->keep_alive = false;
    }
    return TAKEN_ALL;
}

static int chunk_size(struct cairn_transfer *t, const char *line, size_t n)
{
    struct cairn_h1_state *s = &t->h1;
    uint64_t size = 0;
    size_t i = 0;
    for (; i < n; i++) {
        char ch = line[i];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0)
            break;
        if (i == 15)
            return malformed(t);
        size = size * 16 + (uint64_t)d;
    }
    if (i == 0 || (i < n && line[i] != ';' && line[i] != ' ' && line[i] != '\t'))
        return malformed(t);
    if (size == 0) {
        s->phase = P_TRAILERS;
        s->left = HEAD_MAX;
    } else {
        s->phase = P_CHUNK_DATA;
        s->left = size;
    }
    return TAKEN_ALL;
}

/* A line of a head, or of trailers: together they may take s->left
 * bytes more. @return as take_line. */
static int take_head_line(struct cairn_h1_state *s, const char *data, size_t len, size_t *at,
                          const char **line, size_t *n)
{
    size_t start = *at;
    int got = take_line(s, data, len, at, HEAD_MAX, line, n);
    if (got < 0 || *at - start > s->left)
        return -1;
    s->left -= *at - start;
    return got;
}

/*
 * Read the answer from data[0..len): *used says how far it got. Body bytes
 * go to upstream.c as they come, without a copy.
 */
static int take(struct cairn_transfer *t, const char *data, size_t len, size_t *used)
{
    struct cairn_h1_state *s = &t->h1;
    size_t at = 0;
    int rc = TAKEN_ALL;
    while (rc == TAKEN_ALL && s->phase != P_DONE && at < len) {
        const char *line;
        size_t n;
        int got;
        switch (s->phase) {
        case P_LENGTH:
        case P_CHUNK_DATA:
        case P_TO_CLOSE:
            n = len - at;
            if (s->phase != P_TO_CLOSE && n > s->left)
                n = (size_t)s->left;
            got = cairn_transfer_body(t, data + at, n);
            if (got != 0) {
                *used = at;
                return got > 0 ? TAKEN_PAUSED : TAKEN_ERROR;
            }
            at += n;
            if (s->phase != P_TO_CLOSE && (s->left -= n) == 0)
                s->phase = s->phase == P_LENGTH ? P_DONE : P_CHUNK_END;
            break;
        case P_HEAD:
            got = take_head_line(s, data, len, &at, &line, &n);
            if (got < 0)
                return malformed(t);
            if (got == 0)
                break;
            rc = !s->in_block ? status_line(t, line, n)
                 : n == 0     ? end_of_head(t)
                              : header_line(t, line, n);
            s->line_len = 0;
            break;
        case P_CHUNK_SIZE:
            got = take_line(s, data, len, &at, CHUNK_LINE_MAX, &line, &n);
            if (got < 0)
                return malformed(t);
            if (got > 0) {
                rc = chunk_size(t, line, n);
                s->line_len = 0;
            }
            break;
        case P_CHUNK_END: /* the CRLF after a chunk's data */
            got = take_line(s, data, len, &at, 1, &line, &n);
            if (got < 0 || (got > 0 && n > 0))
                return malformed(t);
            if (got > 0) {
                s->phase = P_CHUNK_SIZE;
                s->line_len = 0;
            }
            break;
        case P_TRAILERS:
            got = take_head_line(s, data, len, &at, &line, &n);
            if (got < 0)
                return malformed(t);
            if (got > 0) {
                /* not kept, but checked for the key like the head */
                if (n == 0)
                    s->phase = P_DONE;
                else if (cairn_transfer_head_line(t, line, n) < 0)
                    rc = TAKEN_ERROR;
                s->line_len = 0;
            }
            break;
        }
    }
    *used = at;
    if (rc != TAKEN_ALL)
        return rc;
    return s->phase == P_DONE ? TAKEN_DONE : TAKEN_ALL;
}

/* take() said the answer is complete, or wrong: the transfer ends. */
static void settle(struct cairn_transfer *t, int taken, size_t used, size_t len)
{
    if (taken == TAKEN_ERROR) {
        cairn_transfer_finish(t, t->error);
        return;
    }
    if (used < len) /* bytes after the answer: the connection is not trusted again */
        t->h1.keep_alive = false;
    t->clean_end = true;
    cairn_transfer_finish(t, NULL);
}

/* The upstream closed (or reset) the connection. */
static void closed(struct cairn_transfer *t, bool clean)
{
    struct cairn_h1_state *s = &t->h1;
    if (s->phase == P_TO_CLOSE && clean) {
        t->clean_end = true;
        cairn_transfer_finish(t, NULL);
        return;
    }
    bool nothing = !t->got_first_byte && s->line_len == 0;
    cairn_transfer_finish(t, nothing ? CAIRN_UPSTREAM_ECLOSED : CAIRN_UPSTREAM_EPROTOCOL);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct cairn_h1_conn *conn = arg;
    struct cairn_transfer *t = conn->t;
    if (t == NULL) { /* idle: closed by the upstream, or it said something unasked */
        conn_close(conn);
        return;
    }
    if (t->paused)
        return;
    struct cairn_h1_state *s = &t->h1;
    size_t used = 0;
    int taken;
    if (s->pending != NULL) { /* what a pause kept, first */
        size_t n = s->pending_len - s->pending_off;
        taken = take(t, s->pending + s->pending_off, n, &used);
        if (taken == TAKEN_PAUSED) {
            s->pending_off += used;
            event_del(conn->rev);
            return;
        }
        if (taken != TAKEN_ALL) {
            settle(t, taken, used, n);
            return;
        }
        free(s->pending);
        s->pending = NULL;
    }
    ssize_t n = recv(fd, conn->client->rbuf, READ_BUF, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        closed(t, n == 0);
        return;
    }
    taken = take(t, conn->client->rbuf, (size_t)n, &used);
    if (taken == TAKEN_PAUSED) {
        s->pending_len = (size_t)n - used;
        s->pending_off = 0;
        s->pending = cairn_malloc(s->pending_len);
        memcpy(s->pending, conn->client->rbuf + used, s->pending_len);
        event_del(conn->rev);
        return;
    }
    if (taken != TAKEN_ALL)
        settle(t, taken, used, (size_t)n);
}
