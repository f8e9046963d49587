/*
 * test_upstream_h1.c — unit tests for cairn's HTTP/1.1 upstream client
 * (proxy/upstream_h1.c), through the public API of include/upstream.h only.
 *
 * Each case opens its own event_base, a listening socket on 127.0.0.1 port
 * 0 and an endpoint whose base_url is http://127.0.0.1:PORT/v1, and plays
 * the upstream itself: accepting and reading requests are events on the
 * same base, and answers are written by the test between turns of the
 * loop, whole or one byte per write. A byte-per-write answer waits after
 * each byte until the client's socket has nothing left unread, so every
 * byte is a read of its own. The owner's callbacks record what they saw:
 * the status, the headers, the body bytes concatenated, on_done's errstr
 * (compared by pointer with the CAIRN_UPSTREAM_E* constants) and any
 * callback after the end or after a cancel. Counting accepts on the
 * listener across two transfers tells whether the connection was reused,
 * and every case counts the process's descriptors before and after: a
 * connection left open is a failure.
 *
 * Covered: the request on the wire; answers framed by length, chunks or
 * the close, 204, interim 1xx heads, each whole, byte by byte, and in one
 * write with the next answer's bytes; when a connection is reused; an idle
 * connection the upstream closed; malformed and truncated answers;
 * refused connections; a host name looked up; the gateway's key echoed;
 * back-pressure; cancel.
 * Nothing waits on the clock: the transfers' deadlines are generous and a
 * guard timer only stops a case that hangs.
 */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "config.h"
#include "upstream.h"

#define KEY_ENV   "CAIRN_H1T_KEY"
#define KEY       "sk-h1t-0123456789abcdef"
#define MAX_PEERS 8
#define DEADLINE  10000 /* ms: connect, first byte, idleness; never reached */
#define GUARD_S   60    /* a case that waits this long has hung */

/* What the answer after the first one is, in the reuse checks. */
#define NEXT_ANSWER "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
/* An answer nobody asked for: if a transfer gets it, a connection was
 * reused that should not have been. */
#define STRAY_ANSWER "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray"

/* ---- the owner of a transfer --------------------------------------------- */

struct owner {
    const char *pauses; /* per on_data call: 'p' pause, 'a' abort, else take; NULL: take */
    int heads, calls, dones;
    int status;
    struct sbuf hdrs; /* "name: value\n" per header */
    struct sbuf body; /* the bytes taken, concatenated */
    const char *err;  /* on_done's */
    int late;         /* callbacks after on_done or after a cancel */
    int odd;          /* on_data with no bytes, or before the head */
    bool cancelled;
    bool paused; /* on_data said 1: the test resumes */
    char *again; /* the bytes of the paused delivery, due again */
    size_t again_len;
    int mismatches; /* deliveries after a pause that were not those bytes */
};

static void on_head(void *ctx, int status, const struct cairn_upstream_header *headers,
                    size_t nheaders)
{
    struct owner *o = ctx;
    if (o->dones > 0 || o->cancelled)
        o->late++;
    o->heads++;
    o->status = status;
    for (size_t i = 0; i < nheaders; i++) {
        sb_puts(&o->hdrs, headers[i].name);
        sb_puts(&o->hdrs, ": ");
        sb_puts(&o->hdrs, headers[i].value);
        sb_puts(&o->hdrs, "\n");
    }
}

static int on_data(void *ctx, const char *data, size_t len)
{
    struct owner *o = ctx;
    if (o->dones > 0 || o->cancelled)
        o->late++;
    if (len == 0 || o->heads == 0)
        o->odd++;
    if (o->again != NULL) {
        if (len != o->again_len || memcmp(data, o->again, len) != 0)
            o->mismatches++;
        free(o->again);
        o->again = NULL;
    }
    char what =
        o->pauses != NULL && (size_t)o->calls < strlen(o->pauses) ? o->pauses[o->calls] : '.';
    o->calls++;
    if (what == 'p') {
        o->again = dup_exact(data, len);
        o->again_len = len;
        o->paused = true;
        return 1;
    }
    if (what == 'a')
        return -1;
    sb_putn(&o->body, data, len);
    return 0;
}

static void on_done(void *ctx, const char *errstr)
{
    struct owner *o = ctx;
    if (o->dones > 0 || o->cancelled)
        o->late++;
    o->dones++;
    o->err = errstr;
}

static const struct cairn_transfer_callbacks callbacks = {on_head, on_data, on_done};

static void owner_init(struct owner *o, const char *pauses)
{
    memset(o, 0, sizeof(*o));
    o->pauses = pauses;
    sb_puts(&o->hdrs, ""); /* never NULL */
    sb_puts(&o->body, "");
}

static void owner_free(struct owner *o)
{
    free(o->hdrs.p);
    free(o->body.p);
    free(o->again);
}

static const char *err_name(const char *err)
{
    const struct {
        const char *const *err;
        const char *name;
    } names[] = {
        {&CAIRN_UPSTREAM_ECONNECT, "ECONNECT"},
        {&CAIRN_UPSTREAM_ECONNECT_TIMEOUT, "ECONNECT_TIMEOUT"},
        {&CAIRN_UPSTREAM_EFIRST_BYTE_TIMEOUT, "EFIRST_BYTE_TIMEOUT"},
        {&CAIRN_UPSTREAM_EIDLE_TIMEOUT, "EIDLE_TIMEOUT"},
        {&CAIRN_UPSTREAM_ETLS, "ETLS"},
        {&CAIRN_UPSTREAM_ECLOSED, "ECLOSED"},
        {&CAIRN_UPSTREAM_EPROTOCOL, "EPROTOCOL"},
        {&CAIRN_UPSTREAM_ETOO_LARGE, "ETOO_LARGE"},
        {&CAIRN_UPSTREAM_EABORTED, "EABORTED"},
        {&CAIRN_UPSTREAM_EKEY_ECHO, "EKEY_ECHO"},
    };
    if (err == NULL)
        return "success";
    for (size_t i = 0; i < NELEM(names); i++)
        if (err == *names[i].err)
            return names[i].name;
    return err;
}

/* ---- the fixture: a loop, a listener playing the upstream, an endpoint --- */

struct peer { /* an accepted connection */
    int fd;   /* -1 once closed */
    struct event *ev;
    struct sbuf in; /* bytes read and not yet taken as a request */
    bool eof;
};

struct fx {
    struct event_base *base;
    int lfd, port;
    int rfd; /* bound, never listening: the refused port, or -1 */
    struct event *lev, *guard;
    bool stuck;
    int accepts;
    struct peer peers[MAX_PEERS];
    char url[96];
    struct cairn_upstream_config cfg;
    struct cairn_upstream *up;
    struct cairn_endpoint *ep;
    struct owner *o; /* of the transfer running */
    int fds_before;
};

struct fx_opts {
    const char *prefix;  /* the base URL's path */
    const char *key_env; /* api_key_env */
    bool refuse;         /* base_url names a port nobody listens on */
};

static const struct fx_opts DEFAULT_OPTS = {"/v1", KEY_ENV, false};

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int open_peers(const struct fx *fx)
{
    int n = 0;
    for (int i = 0; i < fx->accepts; i++)
        n += fx->peers[i].fd >= 0;
    return n;
}

/* Descriptors of the process apart from the test's own accepted ones. */
static int client_fds(const struct fx *fx)
{
    return count_fds() - open_peers(fx);
}

static int bound_socket(int *port, bool listening)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    if (listening)
        assert_int_equal(listen(fd, 16), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void on_peer_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct peer *p = arg;
    char buf[16384];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
        sb_putn(&p->in, buf, (size_t)n);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        p->eof = true;
        event_del(p->ev);
    }
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct fx *fx = arg;
    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0)
        return;
    if (fx->accepts == MAX_PEERS) {
        close(c);
        fx->accepts++; /* counted: the case checks the number */
        return;
    }
    struct peer *p = &fx->peers[fx->accepts++];
    p->fd = c;
    p->ev = event_new(fx->base, c, EV_READ | EV_PERSIST, on_peer_read, p);
    assert_non_null(p->ev);
    event_add(p->ev, NULL);
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fx *fx = arg;
    fx->stuck = true;
}

static void fx_open(struct fx *fx, const struct fx_opts *opts)
{
    memset(fx, 0, sizeof(*fx));
    fx->fds_before = count_fds();
    fx->base = event_base_new();
    assert_non_null(fx->base);
    fx->lfd = bound_socket(&fx->port, true);
    int port = fx->port;
    fx->rfd = opts->refuse ? bound_socket(&port, false) : -1;
    fx->lev = event_new(fx->base, fx->lfd, EV_READ | EV_PERSIST, on_accept, fx);
    fx->guard = evtimer_new(fx->base, on_guard, fx);
    assert_non_null(fx->lev);
    assert_non_null(fx->guard);
    event_add(fx->lev, NULL);
    snprintf(fx->url, sizeof(fx->url), "http://127.0.0.1:%d%s", port, opts->prefix);
    fx->cfg.name = (char *)"h1t";
    fx->cfg.base_url = fx->url;
    fx->cfg.api_key_env = (char *)opts->key_env;
    fx->cfg.connect_timeout_ms = DEADLINE;
    fx->cfg.first_byte_timeout_ms = DEADLINE;
    fx->cfg.idle_timeout_ms = DEADLINE;
    fx->cfg.max_response_bytes = 1 << 20;
    char err[256] = "";
    fx->up = cairn_upstream_new(fx->base);
    assert_non_null(fx->up);
    fx->ep = cairn_endpoint_new(fx->up, &fx->cfg, err, sizeof(err));
    if (fx->ep == NULL)
        fail_msg("cairn_endpoint_new: %s", err);
}

static void peer_close(struct peer *p)
{
    if (p->fd < 0)
        return;
    event_free(p->ev);
    close(p->fd);
    p->fd = -1;
}

/* Everything closed: no descriptor may be left over. */
static void fx_close(struct fx *fx, const char *row)
{
    cairn_endpoint_free(fx->ep);
    cairn_upstream_free(fx->up);
    for (int i = 0; i < fx->accepts && i < MAX_PEERS; i++) {
        peer_close(&fx->peers[i]);
        free(fx->peers[i].in.p);
    }
    event_free(fx->lev);
    event_free(fx->guard);
    close(fx->lfd);
    if (fx->rfd >= 0)
        close(fx->rfd);
    event_base_free(fx->base);
    int after = count_fds();
    check(after == fx->fds_before, row, "%d descriptors before, %d after", fx->fds_before, after);
}

/* Turn the loop until `cond`; a case that hangs fails. */
#define RUN_UNTIL(fx, cond)                                                                        \
    do {                                                                                           \
        struct timeval guard_tv = {GUARD_S, 0};                                                    \
        evtimer_add((fx)->guard, &guard_tv);                                                       \
        while (!(cond)) {                                                                          \
            if ((fx)->stuck)                                                                       \
                fail_msg("%s:%d: still waiting for %s", __FILE__, __LINE__, #cond);                \
            event_base_loop((fx)->base, EVLOOP_ONCE);                                              \
        }                                                                                          \
        evtimer_del((fx)->guard);                                                                  \
    } while (0)

static struct cairn_transfer *start(struct fx *fx, struct owner *o, const char *path,
                                    const char *const *headers, const char *body)
{
    fx->o = o;
    char *b = body != NULL ? dup_exact(body, strlen(body)) : NULL;
    return cairn_transfer_start(fx->ep, path, headers, b, body != NULL ? strlen(body) : 0,
                                &callbacks, o);
}

/* Length of the first whole request in b, or 0. */
static size_t request_length(const struct sbuf *b)
{
    const char *end = b->len > 0 ? memmem(b->p, b->len, "\r\n\r\n", 4) : NULL;
    if (end == NULL)
        return 0;
    size_t head = (size_t)(end - b->p) + 4, body = 0;
    for (const char *l = b->p; l < end; l = strstr(l, "\r\n") + 2)
        if (strncasecmp(l, "Content-Length:", 15) == 0)
            body = strtoul(l + 15, NULL, 10);
    return b->len >= head + body ? head + body : 0;
}

static struct peer *complete_request(struct fx *fx)
{
    for (int i = 0; i < fx->accepts && i < MAX_PEERS; i++)
        if (fx->peers[i].fd >= 0 && request_length(&fx->peers[i].in) > 0)
            return &fx->peers[i];
    return NULL;
}

/* The next whole request, into `req` (may be NULL): the peer it came on,
 * or NULL when the transfer ended without sending one. */
static struct peer *next_request(struct fx *fx, struct sbuf *req)
{
    RUN_UNTIL(fx, complete_request(fx) != NULL || fx->o->dones > 0);
    struct peer *p = complete_request(fx);
    if (p == NULL)
        return NULL;
    size_t n = request_length(&p->in);
    if (req != NULL) {
        req->len = 0;
        sb_putn(req, p->in.p, n);
    }
    memmove(p->in.p, p->in.p + n, p->in.len - n);
    p->in.len -= n;
    return p;
}

static struct peer *wait_request(struct fx *fx, struct sbuf *req)
{
    struct peer *p = next_request(fx, req);
    if (p == NULL)
        fail_msg("no request: the transfer ended with %s", err_name(fx->o->err));
    return p;
}

/* The client's end of the connection `p` is the other end of. */
static int client_fd(const struct peer *p)
{
    struct sockaddr_in mine, theirs;
    socklen_t len = sizeof(theirs);
    assert_int_equal(getpeername(p->fd, (struct sockaddr *)&theirs, &len), 0);
    len = sizeof(mine);
    assert_int_equal(getsockname(p->fd, (struct sockaddr *)&mine, &len), 0);
    for (int fd = 0; fd < 4096; fd++) {
        struct sockaddr_in a, b;
        socklen_t la = sizeof(a), lb = sizeof(b);
        if (fd == p->fd || getsockname(fd, (struct sockaddr *)&a, &la) < 0 ||
            a.sin_family != AF_INET || getpeername(fd, (struct sockaddr *)&b, &lb) < 0)
            continue;
        if (a.sin_port == theirs.sin_port && b.sin_port == mine.sin_port)
            return fd;
    }
    fail_msg("the client's end of the connection is not open");
    return -1;
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static int unread(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) < 0 ? 0 : n;
}

/* Write data[0..len) as the socket takes it. @return false when the client
 * has given up on the connection (closed it, or its transfer ended). */
static bool peer_write(struct fx *fx, struct peer *p, const char *data, size_t len)
{
    struct timeval guard_tv = {GUARD_S, 0};
    evtimer_add(fx->guard, &guard_tv);
    for (size_t off = 0; off < len;) {
        ssize_t w = send(p->fd, data + off, len - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (fx->o->dones > 0)
                return false;
            if (fx->stuck)
                fail_msg("the client does not read");
            event_base_loop(fx->base, EVLOOP_ONCE);
        } else {
            return false;
        }
    }
    evtimer_del(fx->guard);
    return true;
}

/* One byte per write, each read by the client before the next goes. */
static bool peer_write_slowly(struct fx *fx, struct peer *p, const char *data, size_t len)
{
    int cfd = client_fd(p);
    for (size_t i = 0; i < len; i++) {
        if (fx->o->dones > 0 || !peer_write(fx, p, data + i, 1))
            return false;
        RUN_UNTIL(fx, unread(cfd) == 0 || fx->o->dones > 0);
    }
    return true;
}

/* The owner saw the end it should have, and nothing odd. */
static void check_end(const char *row, const struct owner *o, const char *err, int status,
                      const char *body)
{
    check(o->dones == 1, row, "on_done ran %d times", o->dones);
    check(o->err == err, row, "ended with %s, not %s", err_name(o->err), err_name(err));
    check(o->late == 0, row, "%d callbacks after the end", o->late);
    check(o->odd == 0, row, "%d deliveries empty or before the head", o->odd);
    check(o->mismatches == 0, row, "%d deliveries after a pause were other bytes", o->mismatches);
    if (status != 0) {
        check(o->heads == 1, row, "on_head ran %d times", o->heads);
        check(o->status == status, row, "status %d, not %d", o->status, status);
    }
    if (body != NULL)
        check(o->body.len == strlen(body) && memcmp(o->body.p, body, o->body.len) == 0, row,
              "body \"%.*s\", not \"%s\"", (int)o->body.len, o->body.p, body);
}

/*
 * After the first transfer of a case: a second one on the same endpoint
 * must succeed, on the first connection exactly when `reused`.
 */
static void check_next_transfer(struct fx *fx, const char *row, struct peer *first, bool reused)
{
    struct owner o;
    owner_init(&o, NULL);
    int accepts = fx->accepts;
    start(fx, &o, "/models", NULL, NULL);
    struct peer *p = next_request(fx, NULL);
    if (!check(p != NULL, row, "the second transfer ended with %s before its request",
               err_name(o.err))) {
        owner_free(&o);
        return;
    }
    check((p == first) == reused, row, "the second transfer %s the connection",
          p == first ? "reused" : "did not reuse");
    check(fx->accepts == accepts + !reused, row, "%d accepts for the second transfer",
          fx->accepts - accepts);
    peer_write(fx, p, LIT(NEXT_ANSWER));
    RUN_UNTIL(fx, o.dones > 0);
    char name[256];
    snprintf(name, sizeof(name), "%s, then another", row);
    check_end(name, &o, NULL, 200, "next");
    owner_free(&o);
}

/* ---- the request on the wire ---------------------------------------------- */

static void test_request_on_the_wire(void **state)
{
    (void)state;
    static const char *const json_headers[] = {"Content-Type: application/json",
                                               "X-Request-Id: r-1", NULL};
    static const char *const one_header[] = {"Accept: text/event-stream", NULL};
    /* "Host" stands for the Host line of the listener's authority. */
    const struct {
        const char *name;
        struct fx_opts opts;
        const char *path;
        const char *const *headers;
        const char *body; /* NULL: GET */
        const char *lines[8];
    } cases[] = {
        {"POST with the prefix, the caller's headers and the key",
         {"/v1", KEY_ENV, false},
         "/chat/completions",
         json_headers,
         "{\"model\":\"m\"}",
         {"POST /v1/chat/completions HTTP/1.1", "Host", "Content-Type: application/json",
          "X-Request-Id: r-1", "Content-Length: 13", "Authorization: Bearer " KEY}},
        {"GET with a query and no headers",
         {"/v1", KEY_ENV, false},
         "/models?limit=2",
         NULL,
         NULL,
         {"GET /v1/models?limit=2 HTTP/1.1", "Host", "Authorization: Bearer " KEY}},
        {"no prefix, no key configured",
         {"", NULL, false},
         "/chat/completions",
         one_header,
         "{}",
         {"POST /chat/completions HTTP/1.1", "Host", "Accept: text/event-stream",
          "Content-Length: 2"}},
        {"the key's variable is not set",
         {"/v1", "CAIRN_H1T_UNSET", false},
         "/embeddings",
         NULL,
         "x",
         {"POST /v1/embeddings HTTP/1.1", "Host", "Content-Length: 1"}},
        {"an empty POST body",
         {"/api/openai/v1", KEY_ENV, false},
         "/completions",
         NULL,
         "",
         {"POST /api/openai/v1/completions HTTP/1.1", "Host", "Content-Length: 0",
          "Authorization: Bearer " KEY}},
    };
    rows_begin();
    for (size_t i = 0; i < NELEM(cases); i++) {
        const char *row = cases[i].name;
        struct fx fx;
        fx_open(&fx, &cases[i].opts);
        struct owner o;
        owner_init(&o, NULL);
        start(&fx, &o, cases[i].path, cases[i].headers, cases[i].body);
        struct sbuf req = {0};
        struct peer *p = wait_request(&fx, &req);

        /* The head, line by line, against the expected lines in any order
         * after the request line; then the body. */
        char host[64];
        snprintf(host, sizeof(host), "Host: 127.0.0.1:%d", fx.port);
        const char *end = memmem(req.p, req.len, "\r\n\r\n", 4);
        size_t nwant = 0;
        while (nwant < NELEM(cases[i].lines) && cases[i].lines[nwant] != NULL)
            nwant++;
        size_t nlines = 0;
        for (const char *l = req.p; l < end + 2; nlines++) {
            const char *eol = strstr(l, "\r\n");
            size_t n = (size_t)(eol - l);
            bool found = false;
            for (size_t k = 0; k < nwant && !found; k++) {
                const char *want =
                    strcmp(cases[i].lines[k], "Host") == 0 ? host : cases[i].lines[k];
                found = strlen(want) == n && memcmp(l, want, n) == 0 && (k == 0) == (nlines == 0);
            }
            check(found, row, "unexpected line \"%.*s\"", (int)n, l);
            l = eol + 2;
        }
        check(nlines == nwant, row, "%zu lines in the head, not %zu", nlines, nwant);
        const char *body = cases[i].body != NULL ? cases[i].body : "";
        const char *got = end + 4;
        size_t glen = req.len - (size_t)(got - req.p);
        check(glen == strlen(body) && memcmp(got, body, glen) == 0, row,
              "body \"%.*s\", not \"%s\"", (int)glen, got, body);

        peer_write(&fx, p, LIT("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        RUN_UNTIL(&fx, o.dones > 0);
        check_end(row, &o, NULL, 200, "");
        free(req.p);
        owner_free(&o);
        fx_close(&fx, row);
    }
    rows_end();
}

/* ---- answers that are right ----------------------------------------------- */

enum mode { WHOLE, SLOW, WITH_NEXT };
static const char *const mode_names[] = {"whole", "one byte per write", "with the next answer"};

struct answer_case {
    const char *name;
    const char *answer;
    bool close;        /* the upstream closes after it: it frames the body */
    int status;        /* what on_head gets */
    const char *has;   /* header lines the owner sees ("name: value\n"), or NULL */
    const char *lacks; /* text no header line the owner sees holds, or NULL */
    const char *body;
    bool reused; /* the connection serves the next transfer */
};

static const struct answer_case answers[] = {
    {"Content-Length",
     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
     "11\r\n\r\nhello world",
     false, 200, "Content-Type: application/json\nContent-Length: 11\n", NULL, "hello world", true},
    {"Content-Length 0", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, 200, NULL, NULL, "",
     true},
    {"an error status with a length",
     "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 2\r\n\r\n{}", false, 429,
     "Retry-After: 3\n", NULL, "{}", true},
    {"no reason phrase, bare LF line ends",
     "HTTP/1.1 200\nX-A:  spaced \t\nContent-Length: 2\n\nok", false, 200, "X-A: spaced\n", NULL,
     "ok", true},
    {"the same Content-Length twice",
     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", false, 200, NULL, NULL,
     "ok", true},
    {"chunked, with extensions and a trailer",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6 ; "
     "name=\"v\"\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
     false, 200, "Transfer-Encoding: chunked\n", "X-Trailer", "hello world0123456789", true},
    {"chunked, coding and sizes in other cases, extension on the last chunk",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nb\r\nhello world\r\n1A\r\n"
     "abcdefghijklmnopqrstuvwxyz\r\n0;last\r\n\r\n",
     false, 200, NULL, NULL, "hello worldabcdefghijklmnopqrstuvwxyz", true},
    {"chunked with a Content-Length: the chunks frame it, never reused",
     "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: "
     "chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
     false, 200, NULL, NULL, "ok", false},
    {"framed by the close",
     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\ndata: 2\n\n", true, 200,
     "Content-Type: text/event-stream\n", NULL, "data: 1\n\ndata: 2\n\n", false},
    {"HTTP/1.0 framed by the close", "HTTP/1.0 200 OK\r\n\r\nold", true, 200, NULL, NULL, "old",
     false},
    {"HTTP/1.0 with a length", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, 200, NULL,
     NULL, "ok", false},
    {"Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
     false, 200, "Connection: close\n", NULL, "ok", false},
    {"Connection: keep-alive, Close",
     "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok", false, 200,
     NULL, NULL, "ok", false},
    {"Connection: keep-alive",
     "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", false, 200, NULL,
     NULL, "ok", true},
    {"a name that is not a token: let through to the owner, framing nothing",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 2\r\n\r\nok", false, 200,
     "Transfer-Encoding : chunked\n", NULL, "ok", true},
    {"204 without a body", "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", false, 204, "X-A: 1\n",
     NULL, "", true},
    {"100 Continue before the 200",
     "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
     false, 200, NULL, "X-Interim", "ok", true},
    {"an interim head with a long header, then a status line without a reason, bare LF",
     "HTTP/1.1 100 Continue\r\nX-Code: 1234567890123\r\n\r\nHTTP/1.1 200\nContent-Length: "
     "2\r\n\r\nok",
     false, 200, NULL, "X-Code", "ok", true},
    {"103 and 100 before the 200",
     "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
     "HTTP/1.1 200 OK\r\nX-Final: 1\r\nContent-Length: 2\r\n\r\nok",
     false, 200, "X-Final: 1\n", "Link", "ok", true},
};

static void test_answers(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(answers); i++)
        for (int m = WHOLE; m <= WITH_NEXT; m++) {
            const struct answer_case *c = &answers[i];
            if (m == WITH_NEXT && c->close)
                continue; /* the next answer's bytes would be this one's body */
            char row[256];
            snprintf(row, sizeof(row), "%s, %s", c->name, mode_names[m]);
            struct fx fx;
            fx_open(&fx, &DEFAULT_OPTS);
            struct owner o;
            owner_init(&o, NULL);
            start(&fx, &o, "/chat/completions", NULL, "{}");
            struct peer *p = wait_request(&fx, NULL);
            struct sbuf out = {0};
            sb_puts(&out, c->answer);
            if (m == WITH_NEXT)
                sb_puts(&out, NEXT_ANSWER);
            if (m == SLOW)
                peer_write_slowly(&fx, p, out.p, out.len);
            else
                peer_write(&fx, p, out.p, out.len);
            free(out.p);
            if (c->close)
                peer_close(p);
            RUN_UNTIL(&fx, o.dones > 0);
            check_end(row, &o, NULL, c->status, c->body);
            check(c->has == NULL || strstr(o.hdrs.p, c->has) != NULL, row,
                  "headers \"%s\" lack \"%s\"", o.hdrs.p, c->has);
            check(c->lacks == NULL || strstr(o.hdrs.p, c->lacks) == NULL, row,
                  "headers \"%s\" hold \"%s\"", o.hdrs.p, c->lacks);
            if (o.err == NULL)
                check_next_transfer(&fx, row, p, c->reused && m != WITH_NEXT);
            owner_free(&o);
            fx_close(&fx, row);
        }
    rows_end();
}

/*
 * An idle connection the upstream closed, or that says something unasked,
 * is dropped: the next transfer goes on a new one. The last rows start the
 * next transfer before the loop has turned since the upstream acted, as a
 * worker does when a client's request and an upstream's FIN come out of
 * the same epoll_wait (an upstream's keep-alive timeout, uvicorn's 5 s).
 */
static void test_idle_connection_closed_is_not_used(void **state)
{
    (void)state;
    const struct {
        const char *name;
        bool stray; /* writes an answer, else closes */
        bool wait;  /* the client's loop turns before the next transfer */
    } cases[] = {
        {"the upstream closed it", false, true},
        {"the upstream wrote on it", true, true},
        {"the upstream closed it, the next transfer at once", false, false},
        {"the upstream wrote on it, the next transfer at once", true, false},
    };
    rows_begin();
    for (size_t i = 0; i < NELEM(cases); i++) {
        const char *row = cases[i].name;
        struct fx fx;
        fx_open(&fx, &DEFAULT_OPTS);
        struct owner o;
        owner_init(&o, NULL);
        start(&fx, &o, "/chat/completions", NULL, "{}");
        struct peer *p = wait_request(&fx, NULL);
        peer_write(&fx, p, LIT("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        RUN_UNTIL(&fx, o.dones > 0);
        check_end(row, &o, NULL, 200, "ok");
        int cfd = client_fd(p); /* idle in the pool */
        if (cases[i].stray)
            peer_write(&fx, p, LIT(STRAY_ANSWER));
        else
            peer_close(p);
        if (cases[i].wait)
            RUN_UNTIL(&fx, !fd_open(cfd)); /* the client noticed */
        check_next_transfer(&fx, row, p, false);
        owner_free(&o);
        fx_close(&fx, row);
    }
    rows_end();
}

/* A host name, not a number: resolved (from /etc/hosts) with evdns. */
static void test_host_name_is_looked_up(void **state)
{
    (void)state;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo("localhost", NULL, &hints, &res) != 0)
        skip(); /* no name for 127.0.0.1 here */
    freeaddrinfo(res);
    struct fx fx;
    fx_open(&fx, &DEFAULT_OPTS);
    /* The same listener under its name: a second endpoint on the client. */
    struct cairn_upstream_config cfg = fx.cfg;
    char url[96], err[256] = "";
    snprintf(url, sizeof(url), "http://localhost:%d/v1", fx.port);
    cfg.base_url = url;
    struct cairn_endpoint *ep = cairn_endpoint_new(fx.up, &cfg, err, sizeof(err));
    assert_non_null(ep);
    struct cairn_endpoint *numeric = fx.ep;
    fx.ep = ep;
    struct owner o;
    owner_init(&o, NULL);
    start(&fx, &o, "/models", NULL, NULL);
    struct sbuf req = {0};
    struct peer *p = wait_request(&fx, &req);
    char host[64];
    snprintf(host, sizeof(host), "\r\nHost: localhost:%d\r\n", fx.port);
    rows_begin();
    check(strstr(req.p, host) != NULL, "localhost", "request \"%s\" lacks \"%s\"", req.p, host);
    peer_write(&fx, p, LIT("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    RUN_UNTIL(&fx, o.dones > 0);
    check_end("localhost", &o, NULL, 200, "ok");
    rows_end();
    owner_free(&o);
    free(req.p);
    cairn_endpoint_free(ep);
    fx.ep = numeric;
    fx_close(&fx, "localhost");
}

/*
 * A worker that stops while a name is being looked up: the transfer is
 * cancelled, then the client freed before the loop turns again. libevent
 * finishes a cancelled lookup in a callback of the loop; had nobody run it,
 * the lookup's memory would leak (found by CI under ASan). The name is
 * under .invalid (RFC 6761): whatever the resolver does, the lookup is
 * still in flight when the transfer goes.
 */
static void test_cancel_during_lookup(void **state)
{
    (void)state;
    struct fx fx;
    fx_open(&fx, &DEFAULT_OPTS);
    struct cairn_upstream_config cfg = fx.cfg;
    cfg.base_url = (char *)"http://cairn-h1t.invalid/v1";
    char err[256] = "";
    struct cairn_endpoint *ep = cairn_endpoint_new(fx.up, &cfg, err, sizeof(err));
    assert_non_null(ep);
    struct owner o;
    owner_init(&o, NULL);
    struct cairn_transfer *t = cairn_transfer_start(ep, "/models", NULL, NULL, 0, &callbacks, &o);
    cairn_transfer_cancel(t);
    cairn_endpoint_free(ep);
    rows_begin();
    check(o.dones == 0, "cancel during lookup", "on_done ran after the cancel");
    rows_end();
    owner_free(&o);
    fx_close(&fx, "cancel during lookup");
}

/* ---- answers that are wrong ------------------------------------------------ */

static void test_malformed_answers(void **state)
{
    (void)state;
    /* Heads over the limits, built here. */
    struct sbuf long_lines = {0}, long_line = {0}, many = {0};
    sb_puts(&long_lines, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 10; i++) { /* 70 KB of header lines */
        sb_puts(&long_lines, "X-Pad: ");
        sb_repeat(&long_lines, "a", 7000);
        sb_puts(&long_lines, "\r\n");
    }
    sb_puts(&long_lines, "Content-Length: 0\r\n\r\n");
    sb_puts(&long_line, "HTTP/1.1 200 OK\r\nX-Pad: ");
    sb_repeat(&long_line, "a", 80 * 1024);
    sb_puts(&long_line, "\r\nContent-Length: 0\r\n\r\n");
    sb_puts(&many, "HTTP/1.1 200 OK\r\n");
    sb_repeat(&many, "X-Many: 1\r\n", 101);
    sb_puts(&many, "Content-Length: 0\r\n\r\n");

    const char *const P = CAIRN_UPSTREAM_EPROTOCOL, *const K = CAIRN_UPSTREAM_EKEY_ECHO;
    const struct {
        const char *name;
        const char *answer;
        bool close; /* the upstream closes after it */
        const char *err;
        int heads; /* on_head calls */
        bool slow; /* also one byte per write */
    } cases[] = {
        {"status line: not HTTP", "HTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, P, 0, true},
        {"status line: HTTP/2", "HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n", false, P, 0, true},
        {"status line: letters in the code", "HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n", false,
         P, 0, true},
        {"status line: two digits", "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n", false, P, 0,
         true},
        {"status line: no space after the code", "HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n",
         false, P, 0, true},
        {"header without a colon", "HTTP/1.1 200 OK\r\nX-Bad\r\nContent-Length: 0\r\n\r\n", false,
         P, 0, true},
        {"folded header line", "HTTP/1.1 200 OK\r\nX-A: 1\r\n  more\r\nContent-Length: 0\r\n\r\n",
         false, P, 0, true},
        {"Transfer-Encoding gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx", true, P,
         0, true},
        {"Transfer-Encoding gzip, chunked",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", false, P, 0, true},
        {"two different Content-Lengths",
         "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", false, P, 0, true},
        {"Content-Length not a number", "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok", false, P,
         0, true},
        {"bad chunk size",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n", false, P, 1,
         true},
        {"empty chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n0\r\n\r\n",
         false, P, 1, true},
        {"chunk size over 60 bits",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nok\r\n", false,
         P, 1, true},
        {"no CRLF after chunk data",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n", false, P, 1,
         true},
        {"101 Switching Protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", false,
         P, 0, true},
        {"head over 64 KiB in long lines", long_lines.p, false, P, 0, false},
        {"a header line over 64 KiB", long_line.p, false, P, 0, false},
        {"more than 100 header lines", many.p, false, P, 0, true},
        {"EOF before Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", true, P,
         1, true},
        {"EOF inside a chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", true,
         P, 1, true},
        {"EOF before the end of the trailers",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n", true, P, 1, true},
        {"EOF inside the head", "HTTP/1.1 200 OK\r\nX-A", true, P, 0, true},
        {"EOF after a 100 Continue", "HTTP/1.1 100 Continue\r\n\r\n", true, P, 0, true},
        {"EOF with no byte", "", true, CAIRN_UPSTREAM_ECLOSED, 0, false},
        {"the key in a header",
         "HTTP/1.1 401 Unauthorized\r\nX-Echo: Bearer " KEY "\r\nContent-Length: 0\r\n\r\n", false,
         K, 0, true},
        {"the key in an interim head",
         "HTTP/1.1 100 Continue\r\nX-Echo: " KEY "\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: "
         "0\r\n\r\n",
         false, K, 0, true},
        {"the key in the body",
         "HTTP/1.1 400 Bad Request\r\nContent-Length: 34\r\n\r\n{\"auth\":\"" KEY "\"}", false, K,
         1, true},
        {"the key across two chunks",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "A\r\nsk-h1t-012\r\nD\r\n3456789abcdef\r\n0\r\n\r\n",
         false, K, 1, true},
        {"the key in a trailer",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: " KEY
         "\r\n\r\n",
         false, K, 1, true},
        {"the key in a body framed by the close", "HTTP/1.1 200 OK\r\n\r\nkey=" KEY, true, K, 1,
         true},
    };
    rows_begin();
    for (size_t i = 0; i < NELEM(cases); i++)
        for (int m = WHOLE; m <= (cases[i].slow ? SLOW : WHOLE); m++) {
            char row[256];
            snprintf(row, sizeof(row), "%s, %s", cases[i].name, mode_names[m]);
            struct fx fx;
            fx_open(&fx, &DEFAULT_OPTS);
            struct owner o;
            owner_init(&o, NULL);
            start(&fx, &o, "/chat/completions", NULL, "{}");
            struct peer *p = wait_request(&fx, NULL);
            int cfd = client_fd(p);
            const char *a = cases[i].answer;
            if (m == SLOW)
                peer_write_slowly(&fx, p, a, strlen(a));
            else
                peer_write(&fx, p, a, strlen(a));
            if (cases[i].close)
                peer_close(p);
            RUN_UNTIL(&fx, o.dones > 0);
            check_end(row, &o, cases[i].err, 0, NULL);
            check(o.heads == cases[i].heads, row, "on_head ran %d times, not %d", o.heads,
                  cases[i].heads);
            check(memmem(o.body.p, o.body.len, KEY, strlen(KEY)) == NULL &&
                      strstr(o.hdrs.p, KEY) == NULL,
                  row, "the owner saw the key");
            check(!fd_open(cfd), row, "the client kept the connection");
            owner_free(&o);
            fx_close(&fx, row);
        }
    rows_end();
    free(long_lines.p);
    free(long_line.p);
    free(many.p);
}

static void test_connection_refused(void **state)
{
    (void)state;
    const struct fx_opts opts = {"/v1", KEY_ENV, true};
    struct fx fx;
    fx_open(&fx, &opts);
    struct owner o;
    owner_init(&o, NULL);
    start(&fx, &o, "/chat/completions", NULL, "{}");
    RUN_UNTIL(&fx, o.dones > 0);
    rows_begin();
    check_end("refused", &o, CAIRN_UPSTREAM_ECONNECT, 0, "");
    check(o.heads == 0, "refused", "on_head ran");
    owner_free(&o);
    fx_close(&fx, "refused");
    rows_end();
}

/* The key split across two reads of the body: the tail of the first read
 * is kept to find it. */
static void test_key_echo_split_across_writes(void **state)
{
    (void)state;
    rows_begin();
    for (size_t cut = 1; cut < strlen(KEY); cut += 5) {
        char row[64];
        snprintf(row, sizeof(row), "cut after %zu bytes of the key", cut);
        struct fx fx;
        fx_open(&fx, &DEFAULT_OPTS);
        struct owner o;
        owner_init(&o, NULL);
        start(&fx, &o, "/chat/completions", NULL, "{}");
        struct peer *p = wait_request(&fx, NULL);
        int cfd = client_fd(p);
        struct sbuf first = {0};
        sb_puts(&first, "HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n{\"echo\":\"");
        size_t before = strlen("{\"echo\":\"");
        sb_putn(&first, KEY, cut);
        peer_write(&fx, p, first.p, first.len);
        RUN_UNTIL(&fx, o.body.len == before + cut || o.dones > 0);
        const char *rest = KEY + cut;
        peer_write(&fx, p, rest, strlen(rest));
        RUN_UNTIL(&fx, o.dones > 0);
        check_end(row, &o, CAIRN_UPSTREAM_EKEY_ECHO, 200, NULL);
        check(memmem(o.body.p, o.body.len, KEY, strlen(KEY)) == NULL, row, "the owner saw the key");
        check(!fd_open(cfd), row, "the client kept the connection");
        free(first.p);
        owner_free(&o);
        fx_close(&fx, row);
    }
    rows_end();
}

/* ---- back-pressure ---------------------------------------------------------- */

static void test_back_pressure(void **state)
{
    (void)state;
    const struct {
        const char *name;
        const char *part1; /* written first; the first pause happens in it */
        const char *part2; /* written while paused, or NULL */
        bool close;        /* after part2 */
        const char *pauses;
        const char *err;
        const char *body;
        bool reused;
    } cases[] = {
        {"length: pause on the first bytes", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
         "world", false, "p", NULL, "helloworld", true},
        {"length: pause twice on the same bytes",
         "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", "world", false, "pp.p", NULL,
         "helloworld", true},
        {"length: pause on the last bytes", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
         NULL, false, "p", NULL, "hello", true},
        {"chunked: pause inside one read",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n",
         "3\r\n!!!\r\n0\r\n\r\n", false, ".p.p", NULL, "hello world!!!", true},
        {"chunked: pause on the last chunk, the end still to come",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", "0\r\n\r\n", false,
         "p", NULL, "hello", true},
        {"framed by the close, closed while paused", "HTTP/1.1 200 OK\r\n\r\nabc", "def", true,
         "p.p", NULL, "abcdef", false},
        {"the owner aborts", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", NULL, false, "a",
         CAIRN_UPSTREAM_EABORTED, "", false},
        {"the owner aborts after a pause", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
         "world", false, "pa", CAIRN_UPSTREAM_EABORTED, "", false},
        {"bytes after the answer arrive while paused: not reused",
         "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", STRAY_ANSWER, false, "p", NULL,
         "hello", false},
    };
    rows_begin();
    for (size_t i = 0; i < NELEM(cases); i++) {
        const char *row = cases[i].name;
        struct fx fx;
        fx_open(&fx, &DEFAULT_OPTS);
        struct owner o;
        owner_init(&o, cases[i].pauses);
        struct cairn_transfer *t = start(&fx, &o, "/chat/completions", NULL, "{}");
        struct peer *p = wait_request(&fx, NULL);
        peer_write(&fx, p, cases[i].part1, strlen(cases[i].part1));
        RUN_UNTIL(&fx, o.paused || o.dones > 0);
        if (cases[i].part2 != NULL && o.dones == 0) {
            peer_write(&fx, p, cases[i].part2, strlen(cases[i].part2));
            if (cases[i].close)
                peer_close(p);
        }
        while (o.dones == 0) {
            RUN_UNTIL(&fx, o.paused || o.dones > 0);
            if (!o.paused)
                break;
            /* Nothing comes while paused: a turn of the loop delivers nothing. */
            int calls = o.calls;
            event_base_loop(fx.base, EVLOOP_NONBLOCK);
            check(o.calls == calls, row, "on_data ran while paused");
            o.paused = false;
            cairn_transfer_resume(t);
        }
        check_end(row, &o, cases[i].err, 200, cases[i].body);
        check(o.calls == (int)strlen(cases[i].pauses) || cases[i].err == NULL, row,
              "%d on_data calls", o.calls);
        if (o.err == NULL && cases[i].err == NULL)
            check_next_transfer(&fx, row, p, cases[i].reused);
        owner_free(&o);
        fx_close(&fx, row);
    }
    rows_end();
}

/* ---- cancel ----------------------------------------------------------------- */

enum stage { CONNECTING, REQUEST_SENT, MID_HEAD, MID_BODY, MID_CHUNK_LINE, PAUSED };

static void test_cancel(void **state)
{
    (void)state;
    const struct {
        const char *name;
        enum stage stage;
        const char *part; /* written before the cancel */
    } cases[] = {
        {"while connecting", CONNECTING, NULL},
        {"the request sent, no answer yet", REQUEST_SENT, NULL},
        {"inside the head", MID_HEAD, "HTTP/1.1 200 OK\r\nX-A: 1\r\nX-B"},
        {"inside a body", MID_BODY, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"},
        {"inside a chunk-size line", MID_CHUNK_LINE,
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5;ext"},
        {"while paused", PAUSED, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"},
    };
    rows_begin();
    for (size_t i = 0; i < NELEM(cases); i++) {
        const char *row = cases[i].name;
        struct fx fx;
        fx_open(&fx, &DEFAULT_OPTS);
        struct owner o;
        owner_init(&o, cases[i].stage == PAUSED ? "p" : NULL);
        int before = client_fds(&fx);
        struct cairn_transfer *t = start(&fx, &o, "/chat/completions", NULL, "{}");
        struct peer *p = NULL;
        if (cases[i].stage != CONNECTING)
            p = wait_request(&fx, NULL);
        if (cases[i].part != NULL) {
            int cfd = client_fd(p);
            peer_write(&fx, p, cases[i].part, strlen(cases[i].part));
            RUN_UNTIL(&fx, unread(cfd) == 0 || o.paused || o.dones > 0); /* all of it read */
        }
        check(o.dones == 0, row, "ended before the cancel: %s", err_name(o.err));
        o.cancelled = true;
        cairn_transfer_cancel(t);
        check(client_fds(&fx) == before, row, "%d descriptors before the transfer, %d after",
              before, client_fds(&fx));
        /* The client's end is closed: the upstream sees EOF, whatever it
         * writes. (While connecting, the connection may never be accepted.) */
        if (p != NULL) {
            peer_write(&fx, p, LIT("more bytes\r\n\r\n"));
            RUN_UNTIL(&fx, p->eof);
        } else {
            event_base_loop(fx.base, EVLOOP_NONBLOCK);
        }
        check(o.dones == 0 && o.late == 0, row, "%d callbacks after the cancel", o.late);
        owner_free(&o);
        fx_close(&fx, row);
    }
    rows_end();
}

/* The key every endpoint but a few reads: cairn_secret_env moves it out
 * of the environment at the first endpoint and keeps it for the others. */
static int group_setup(void **state)
{
    (void)state;
    return setenv(KEY_ENV, KEY, 1);
}

/* Many headers, long ones, and an interim answer's before them: the
 * answer's header store grows and keeps every line as it came. */
static void test_many_headers_grow(void **state)
{
    (void)state;
    rows_begin();
    for (int m = WHOLE; m <= SLOW; m++) {
        for (int variant = 0; variant < 3; variant++) {
            if (m == SLOW && variant != 2)
                continue;
            char row[256];
            snprintf(row, sizeof(row), "many headers v%d, %s", variant, mode_names[m]);
            struct sbuf ans = {0}, want = {0};
            int n = variant == 0 ? 99 : variant == 1 ? 20 : 40;
            int vlen = variant == 0 ? 500 : variant == 1 ? 3000 : 7;
            if (variant == 2)
                sb_puts(&ans, "HTTP/1.1 100 Continue\r\nX-I: 1\r\nX-J: 2\r\n\r\n");
            sb_puts(&ans, "HTTP/1.1 200 OK\r\n");
            for (int i = 0; i < n; i++) {
                char line[64];
                snprintf(line, sizeof(line), "X-H%d: v%d-", i, i);
                sb_puts(&ans, line);
                sb_repeat(&ans, "a", (size_t)vlen);
                sb_puts(&ans, "\r\n");
                snprintf(line, sizeof(line), "X-H%d: v%d-", i, i);
                sb_puts(&want, line);
                sb_repeat(&want, "a", (size_t)vlen);
                sb_puts(&want, "\n");
            }
            sb_puts(&ans, "Content-Length: 2\r\n\r\nok");
            sb_puts(&want, "Content-Length: 2\n");
            struct fx fx;
            fx_open(&fx, &DEFAULT_OPTS);
            struct owner o;
            owner_init(&o, NULL);
            start(&fx, &o, "/chat/completions", NULL, "{}");
            struct peer *p = wait_request(&fx, NULL);
            if (m == SLOW)
                peer_write_slowly(&fx, p, ans.p, ans.len);
            else
                peer_write(&fx, p, ans.p, ans.len);
            RUN_UNTIL(&fx, o.dones > 0);
            check_end(row, &o, NULL, 200, "ok");
            check(strcmp(o.hdrs.p, want.p) == 0, row, "headers differ (%zu vs %zu)",
                  strlen(o.hdrs.p), strlen(want.p));
            free(ans.p);
            free(want.p);
            owner_free(&o);
            fx_close(&fx, row);
        }
    }
    rows_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_on_the_wire),
        cmocka_unit_test(test_answers),
        cmocka_unit_test(test_idle_connection_closed_is_not_used),
        cmocka_unit_test(test_host_name_is_looked_up),
        cmocka_unit_test(test_cancel_during_lookup),
        cmocka_unit_test(test_malformed_answers),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_key_echo_split_across_writes),
        cmocka_unit_test(test_back_pressure),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_many_headers_grow),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
