/*
 * test_server.c — unit tests for cairn_server_adopt (include/server.h):
 * a connection handed to the server already open is served like an
 * accepted one.
 *
 * One end of a socketpair goes to a server that has no listener; the test
 * writes requests into the other end and reads what comes back. Adopted:
 * two pipelined requests are answered in order on the same connection and
 * the handler sees each one's path and body; a malformed head is a 400 and
 * the connection closes. Refused: past limits.max_connections, and while
 * draining, adopt returns -1 and the peer reads a 503 and the close, as an
 * accepted client would.
 */
#include "unit.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "server.h"

/* Answers 200 with "<path>:<body>". */
static void echo_handler(struct cairn_request *req, void *arg)
{
    int *calls = arg;
    (*calls)++;
    char body[512];
    size_t blen = evbuffer_get_length(req->body);
    int n = snprintf(body, sizeof(body), "%s:%.*s", req->path, (int)blen,
                     (const char *)evbuffer_pullup(req->body, -1));
    cairn_response_send(req, 200, "text/plain", body, (size_t)n);
}

/* Read `fd` (non-blocking) into `out` until EOF, running the loop
 * meanwhile; gives up after a generous bound of loop turns. */
static void read_until_eof(struct event_base *base, int fd, struct sbuf *out)
{
    for (int turns = 0; turns < 20000; turns++) {
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == 0)
            return;
        if (n > 0) {
            sb_putn(out, buf, (size_t)n);
            continue;
        }
        event_base_loop(base, EVLOOP_NONBLOCK);
        usleep(100);
    }
    fail_msg("no EOF; read so far: %s", out->p ? out->p : "");
}

struct fx {
    struct event_base *base;
    struct cairn_config cfg;
    struct cairn_server *srv;
    int calls;
};

static void fx_open(struct fx *fx, int64_t max_connections)
{
    memset(fx, 0, sizeof(*fx));
    fx->base = event_base_new();
    assert_non_null(fx->base);
    cairn_config_defaults(&fx->cfg);
    fx->cfg.limits.max_connections = max_connections;
    fx->cfg.timeouts.keepalive_ms = 100; /* the connection ends soon after the answers */
    fx->srv = cairn_server_new(fx->base, &fx->cfg, NULL, 0, echo_handler, &fx->calls);
}

static void fx_close(struct fx *fx)
{
    cairn_server_free(fx->srv);
    cairn_config_free(&fx->cfg);
    event_base_free(fx->base);
}

/* A socketpair: sv[0] for the server, sv[1] (non-blocking) for the test. */
static void pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
}

static void test_adopt_serves_pipelined(void **state)
{
    (void)state;
    struct fx fx;
    fx_open(&fx, 16);
    int sv[2];
    pair(sv);
    static const char reqs[] = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                               "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(sv[1], reqs, sizeof(reqs) - 1), (ssize_t)(sizeof(reqs) - 1));
    assert_int_equal(cairn_server_adopt(fx.srv, sv[0]), 0);
    assert_int_equal(cairn_server_connections(fx.srv), 1);

    struct sbuf out = {0};
    read_until_eof(fx.base, sv[1], &out); /* the keep-alive timeout closes it */
    assert_non_null(out.p);
    const char *first = strstr(out.p, "HTTP/1.1 200 OK\r\n");
    assert_non_null(first);
    const char *a = strstr(out.p, "\r\n\r\n/a:abc");
    const char *b = strstr(out.p, "\r\n\r\n/b:");
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a < b);
    assert_int_equal(fx.calls, 2);
    assert_int_equal(cairn_server_connections(fx.srv), 0);
    free(out.p);
    close(sv[1]);
    fx_close(&fx);
}

static void test_adopt_rejects_bad_head(void **state)
{
    (void)state;
    struct fx fx;
    fx_open(&fx, 16);
    int sv[2];
    pair(sv);
    static const char bad[] = "GET /a HTTP/1.1\r\nHost : x\r\n\r\n";
    assert_int_equal(write(sv[1], bad, sizeof(bad) - 1), (ssize_t)(sizeof(bad) - 1));
    assert_int_equal(cairn_server_adopt(fx.srv, sv[0]), 0);
    struct sbuf out = {0};
    read_until_eof(fx.base, sv[1], &out);
    assert_non_null(out.p);
    assert_true(strncmp(out.p, "HTTP/1.1 400 ", 13) == 0);
    assert_non_null(strstr(out.p, "Connection: close\r\n"));
    assert_int_equal(fx.calls, 0);
    free(out.p);
    close(sv[1]);
    fx_close(&fx);
}

/* The peer of a refused descriptor reads a 503 and EOF. */
static void expect_refused(struct fx *fx)
{
    int sv[2];
    pair(sv);
    assert_int_equal(cairn_server_adopt(fx->srv, sv[0]), -1);
    struct sbuf out = {0};
    read_until_eof(fx->base, sv[1], &out);
    assert_non_null(out.p);
    assert_true(strncmp(out.p, "HTTP/1.1 503 ", 13) == 0);
    assert_non_null(strstr(out.p, "too_many_connections"));
    free(out.p);
    close(sv[1]);
}

static void test_adopt_refused_past_max(void **state)
{
    (void)state;
    struct fx fx;
    fx_open(&fx, 1);
    int held[2];
    pair(held);
    assert_int_equal(cairn_server_adopt(fx.srv, held[0]), 0);
    expect_refused(&fx);
    assert_int_equal(cairn_server_connections(fx.srv), 1);
    close(held[1]);
    fx_close(&fx);
}

static void test_adopt_refused_draining(void **state)
{
    (void)state;
    struct fx fx;
    fx_open(&fx, 16);
    cairn_server_drain(fx.srv);
    expect_refused(&fx);
    assert_int_equal(cairn_server_connections(fx.srv), 0);
    fx_close(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adopt_serves_pipelined),
        cmocka_unit_test(test_adopt_rejects_bad_head),
        cmocka_unit_test(test_adopt_refused_past_max),
        cmocka_unit_test(test_adopt_refused_draining),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
