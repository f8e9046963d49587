/*
 * fuzz_gateway.c — the whole gateway in one process: the server (with
 * cairn's HTTP parser and limits), the request pipeline (proxy.c: auth,
 * JSON model, annotation, markers, validation and retry, unwrapping,
 * streaming) and the upstream client (libcurl on the same event loop),
 * against a fake upstream on 127.0.0.1 whose answer comes from the input.
 *
 * Input: a flags byte, eight cut seeds (fuzz.h), then the client's bytes,
 * then SEP, then the upstream's answer bytes (status line, headers, body
 * or SSE: everything it writes, for every request it gets). Flags: bit 0
 * picks the configuration (open, or "keys" with one tenant whose policy
 * buffers and resamples), bit 1 half-closes the client once its bytes are
 * written (a client that goes away mid-request).
 *
 * The client's bytes are written into one end of a socketpair whose other
 * end the server adopts (cairn_server_adopt); the fake upstream answers
 * each request once it has read its head and body, in pieces cut by the
 * seeds, then closes. The loop runs until the client reads the close (the
 * keep-alive timeout is 1 ms here, so it ends soon after the last answer),
 * with a bound on loop turns and time. Then everything of the run is
 * freed: the server cancels what is still in flight. Invariants: whatever
 * the client gets starts as an HTTP/1.1 response, and never holds the
 * upstream's key (even when the upstream echoes it) unless the client
 * sent it itself.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "fuzz.h"
#include "log.h"
#include "proxy.h"
#include "server.h"
#include "shadow.h"
#include "snapshot.h"
#include "stats.h"
#include "upstream.h"

#define SEP          "\n--upstream--\n"
#define MAX_TURNS    100000
#define MAX_RUN_MS   1000
#define MAX_RESPONSE (1 << 20) /* what the client keeps of what it reads */

/* The tenant's key in keys mode: its SHA-256 is the digest in
 * tenants_keys; the seeds and cairn.dict spell it out. */
#define FUZZ_KEY "sk-cairn-fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuz"
/* The upstream's key, which no response may carry. */
#define UPSTREAM_KEY "sk-upstream-fuzz"

static const char config_fmt[] =
    "{\"listen\": [\"127.0.0.1:0\"], \"workers\": 1,"
    " \"limits\": {\"max_connections\": 8, \"header_bytes\": 4096, \"header_lines\": 32,"
    "   \"body_bytes\": 65536, \"json_depth\": 32, \"stream_buffer_bytes\": 65536},"
    " \"rules_dir\": \"rules\", \"annotation_cache\": {\"entries\": 0},"
    " \"upstreams\": {\"fake\": {\"base_url\": \"http://127.0.0.1:%u/v1\","
    "   \"api_key_env\": \"CAIRN_FUZZ_UPSTREAM_KEY\", \"connect_timeout_ms\": 200,"
    "   \"first_byte_timeout_ms\": 300, \"idle_timeout_ms\": 200,"
    "   \"max_response_bytes\": 65536}},"
    " \"policy\": {\"upstream\": \"fake\", \"markers\": {\"annotate\": \"rules\","
    "   \"allow_pinning\": true, \"unwrap\": true},"
    "   \"validation\": {\"markers\": [\"length_tokens\", \"format\", \"lang\"],"
    "     \"retry\": {\"attempts\": 2, \"deadline_ms\": 500}, \"stream\": \"observe\"}},"
    " \"auth\": \"%s\", \"tenants\": {%s},"
    " \"log\": {\"access\": \"/dev/null\"}}";

static const char tenants_keys[] =
    "\"acme\": {\"keys\": [{\"sha256\": "
    "\"3d66ed71ff6cf6eb522292b427a6a9e50897121a2ad5b8d48cb2bdd526d956b3\"}],"
    " \"models\": [\"gpt-*\"], \"markers\": {\"injected\": \"escape\"},"
    " \"validation\": {\"markers\": [\"length_tokens\", \"format\"], \"stream\": \"buffer\","
    "   \"retry\": {\"attempts\": 2, \"deadline_ms\": 500, \"mode\": \"resample\"}}}";

/* --- the fake upstream ---------------------------------------------------- */

struct fake_conn {
    struct bufferevent *bev;
    struct fake_conn *next;
    bool answered; /* all of the answer is queued */
    bool closing;  /* written and shut down: waiting for the peer's close */
    size_t off;    /* of the answer, queued so far */
};

static struct {
    struct event_base *base;
    struct evconnlistener *listener;
    uint16_t port;
    struct cairn_upstream *client;
    struct cairn_snapshot *snap[2];
    struct cairn_stats *stats;
    struct fake_conn *conns;
    /* this run's */
    const uint8_t *answer;
    size_t answer_len;
    struct fuzz_cuts cuts;
} g;

static void fake_free(struct fake_conn *c)
{
    for (struct fake_conn **p = &g.conns; *p != NULL; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    bufferevent_free(c->bev);
    free(c);
}

/* Queue the next piece of the answer; shut down once all of it left. */
static void fake_send_more(struct fake_conn *c)
{
    if (c->off < g.answer_len) {
        /* Pieces of 16 bytes and up: the SSE target covers every single
         * boundary; here a byte per loop turn would make a run take long. */
        size_t left = g.answer_len - c->off, n = fuzz_cuts_next(&g.cuts, left);
        n = n < left ? (n * 16 < left ? n * 16 : left) : left;
        bufferevent_write(c->bev, g.answer + c->off, n);
        c->off += n;
        return;
    }
    if (!c->closing) {
        c->closing = true;
        shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    }
}

/* Whether `in` holds a whole request: a head and its Content-Length body. */
static bool fake_request_complete(struct evbuffer *in)
{
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0)
        return false;
    size_t head = (size_t)end.pos + 4, body = 0;
    char *h = (char *)evbuffer_pullup(in, (ssize_t)head);
    for (char *p = h; p < h + head; p++)
        if (strncasecmp(p, "\r\ncontent-length:", 17) == 0) {
            body = strtoul(p + 17, NULL, 10);
            break;
        }
    return evbuffer_get_length(in) >= head + body;
}

static void on_fake_read(struct bufferevent *bev, void *arg)
{
    struct fake_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (!c->answered && fake_request_complete(in)) {
        c->answered = true;
        fake_send_more(c);
    }
    if (c->answered)
        evbuffer_drain(in, evbuffer_get_length(in));
}

static void on_fake_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct fake_conn *c = arg;
    if (c->answered)
        fake_send_more(c);
}

static void on_fake_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what; /* EOF or error: curl is done with it */
    fake_free(arg);
}

static void on_fake_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                           int socklen, void *arg)
{
    (void)lev;
    (void)sa;
    (void)socklen;
    (void)arg;
    struct fake_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        abort();
    c->bev = bufferevent_socket_new(g.base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->next = g.conns;
    g.conns = c;
    bufferevent_setcb(c->bev, on_fake_read, on_fake_write, on_fake_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* --- setup, once per process ------------------------------------------- */

static struct cairn_snapshot *make_snapshot(bool keys)
{
    char text[4096], err[1024];
    snprintf(text, sizeof(text), config_fmt, (unsigned)g.port, keys ? "keys" : "open",
             keys ? tenants_keys : "");
    struct cairn_config cfg;
    struct cairn_snapshot *s = NULL;
    if (cairn_config_load_buffer(&cfg, "fuzz-gateway.json", text, strlen(text), err, sizeof(err)) <
            0 ||
        (s = cairn_snapshot_new(&cfg, g.client, NULL, 1, err, sizeof(err))) == NULL) {
        fprintf(stderr, "fuzz_gateway: %s (run from the repository root)\n", err);
        exit(1);
    }
    /* Below what a file may say (100 ms): each input runs in milliseconds.
     * The whole request is in the socket before the server reads it. */
    s->cfg.timeouts.header_ms = 5;
    s->cfg.timeouts.body_idle_ms = 5;
    s->cfg.timeouts.body_ms = 10;
    s->cfg.timeouts.keepalive_ms = 1;
    s->cfg.timeouts.send_idle_ms = 200;
    s->cfg.timeouts.drain_ms = 0;
    return s;
}

static void teardown(void)
{
    while (g.conns != NULL)
        fake_free(g.conns);
    cairn_snapshot_unref(g.snap[0]);
    cairn_snapshot_unref(g.snap[1]);
    cairn_upstream_free(g.client);
    evconnlistener_free(g.listener);
    cairn_stats_free(g.stats);
    event_base_free(g.base);
    cairn_log_close();
}

static void setup(void)
{
    char err[512];
    if (g.base != NULL)
        return;
    signal(SIGPIPE, SIG_IGN);
    setenv("CAIRN_FUZZ_UPSTREAM_KEY", UPSTREAM_KEY, 1);
    g.base = event_base_new();
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    g.listener = evconnlistener_new_bind(g.base, on_fake_accept, NULL,
                                         LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 64,
                                         (struct sockaddr *)&sin, sizeof(sin));
    socklen_t slen = sizeof(sin);
    if (g.base == NULL || g.listener == NULL ||
        getsockname(evconnlistener_get_fd(g.listener), (struct sockaddr *)&sin, &slen) < 0) {
        fprintf(stderr, "fuzz_gateway: cannot listen on 127.0.0.1\n");
        exit(1);
    }
    g.port = ntohs(sin.sin_port);
    g.client = cairn_upstream_new(g.base);
    if (cairn_log_open("/dev/null", NULL, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_gateway: %s\n", err);
        exit(1);
    }
    g.snap[0] = make_snapshot(false);
    g.snap[1] = make_snapshot(true);
    g.stats = cairn_stats_new(NULL);
    atexit(teardown);
}

/* --- one run -------------------------------------------------------------- */

struct client {
    int fd;
    const uint8_t *req;
    size_t req_len, written;
    bool half_close;
    bool eof;
    struct evbuffer *got; /* what the server sent (the first MAX_RESPONSE bytes) */
    struct event *rd, *wr;
};

static void on_client_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct client *c = arg;
    char buf[16384];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            if (evbuffer_get_length(c->got) < MAX_RESPONSE)
                evbuffer_add(c->got, buf, (size_t)n);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            c->eof = true; /* closed (or reset): the run is over */
            event_base_loopbreak(g.base);
        }
        return;
    }
}

static void on_client_write(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct client *c = arg;
    while (c->written < c->req_len) {
        ssize_t n = write(fd, c->req + c->written, c->req_len - c->written);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return; /* the event brings us back */
            break;      /* the server closed: the reader sees it */
        }
        c->written += (size_t)n;
    }
    event_del(c->wr);
    if (c->half_close)
        shutdown(fd, SHUT_WR);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
    event_base_loopbreak(g.base);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    struct fuzz_in in = {data, size};
    uint8_t flags = fuzz_byte(&in);
    fuzz_cuts_init(&g.cuts, &in);
    const uint8_t *sep = memmem(in.p, in.n, SEP, sizeof(SEP) - 1);
    size_t req_len = sep ? (size_t)(sep - in.p) : in.n;
    g.answer = sep ? sep + sizeof(SEP) - 1 : NULL;
    g.answer_len = sep ? in.n - req_len - (sizeof(SEP) - 1) : 0;

    struct cairn_proxy proxy = {.base = g.base, .current = g.snap[flags & 1], .stats = g.stats};
    proxy.server =
        cairn_server_new(g.base, &proxy.current->cfg, NULL, 0, cairn_proxy_handle, &proxy);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        perror("socketpair");
        abort();
    }
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    struct client c = {.fd = sv[1],
                       .req = in.p,
                       .req_len = req_len,
                       .half_close = (flags & 2) != 0,
                       .got = evbuffer_new()};
    c.rd = event_new(g.base, sv[1], EV_READ | EV_PERSIST, on_client_read, &c);
    c.wr = event_new(g.base, sv[1], EV_WRITE | EV_PERSIST, on_client_write, &c);
    on_client_write(sv[1], EV_WRITE, &c); /* what fits now; the event writes the rest */
    if (c.written < c.req_len)
        event_add(c.wr, NULL);
    event_add(c.rd, NULL);
    cairn_server_adopt(proxy.server, sv[0]);

    bool late = false;
    struct event *deadline = evtimer_new(g.base, on_deadline, &late);
    event_add(deadline, &(struct timeval){MAX_RUN_MS / 1000, (MAX_RUN_MS % 1000) * 1000});
    uint64_t t0 = cairn_now_us();
    int turn = 0;
    for (; turn < MAX_TURNS && !c.eof && !late; turn++)
        event_base_loop(g.base, EVLOOP_ONCE);

    size_t got = evbuffer_get_length(c.got);
    const char *resp = (const char *)evbuffer_pullup(c.got, -1);
    if (got >= 9)
        FUZZ_CHECK(memcmp(resp, "HTTP/1.1 ", 9) == 0);
    if (memmem(in.p, req_len, UPSTREAM_KEY, sizeof(UPSTREAM_KEY) - 1) == NULL)
        FUZZ_CHECK(got == 0 || memmem(resp, got, UPSTREAM_KEY, sizeof(UPSTREAM_KEY) - 1) == NULL);
    if (getenv("CAIRN_FUZZ_VERBOSE") != NULL) /* to see what an input does */
        fprintf(stderr, "--- client got %zu bytes in %d loop turns, %.1f ms%s:\n%.*s\n---\n", got,
                turn, (double)(cairn_now_us() - t0) / 1000.0,
                c.eof  ? ""
                : late ? " (no close: timed out)"
                       : " (no close)",
                (int)got, resp);

    event_free(deadline);
    cairn_server_free(proxy.server);   /* cancels what is still in flight */
    cairn_shadows_free(proxy.shadows); /* none: no experiment is configured */
    while (g.conns != NULL)
        fake_free(g.conns);
    event_free(c.rd);
    event_free(c.wr);
    close(sv[1]);
    evbuffer_free(c.got);
    /* Let the upstream client see its transfers' sockets closed. */
    event_base_loop(g.base, EVLOOP_NONBLOCK);
    return 0;
}
