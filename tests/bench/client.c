/*
 * client.c — the measurements of `make bench` that wrk cannot make.
 *
 *   bench-client [--gap-ms N] COMMAND ...
 *       --gap-ms N asks the canned backend (tests/bench/canned.c) to space
 *       the events of a stream N ms apart (header X-Bench-Gap-Ms).
 *   bench-client port
 *       prints a free TCP port on 127.0.0.1 (for nginx and cairn, which are
 *       given their port rather than asked for it).
 *   bench-client ttfb PORT N BODY [WARMUP]
 *       N streamed requests (BODY, a JSON text) one after another on one
 *       keep-alive connection to 127.0.0.1:PORT, after WARMUP (default 20)
 *       that are not counted. For each, the clock starts just before the request is
 *       written and stops when read() returns the first byte of the
 *       response body (after the head and the chunk-size line: the "d" of
 *       the first "data:"); the whole answer is read before the next
 *       request. Prints "ttfb_p50_us ttfb_p99_us full_p50_us counted errors".
 *   bench-client idle PORT N BODY SECONDS
 *   bench-client streams PORT N BODY SECONDS
 *       opens N connections at once and sends BODY on each, then prints
 *       "ready REACHED FAILED" when every connection has failed or reached
 *       its state — idle: its answer is complete and it is an idle
 *       keep-alive connection; streams: the first byte of its answer's
 *       body has come — and goes on reading. idle keeps the connections
 *       open until SECONDS have passed since the start; streams stops as
 *       soon as every answer is complete. Both end with "done COMPLETE
 *       FAILED".
 *   bench-client load PORT CONNS N SECONDS BODY1 BODY2
 *       N requests over CONNS connections, BODY1 and BODY2 in turn, each
 *       connection sending its next request when its answer is complete;
 *       ends when all are answered or after SECONDS: "done COMPLETE FAILED".
 *
 * Percentiles are nearest-rank over the counted requests. Every wait is
 * bounded (10 s per read for ttfb, SECONDS for idle and streams).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long gap_ms;

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* An HTTP/1.1 response read incrementally: the head, then a body framed by
 * Content-Length, by chunks, or by the end of the connection. */
enum rstate { R_HEAD, R_BODY, R_CHUNK_SIZE, R_CHUNK_DATA, R_CHUNK_END, R_TRAILER, R_DONE };

struct response {
    enum rstate state;
    char line[8192]; /* the head, or the current chunk-size or trailer line */
    size_t linelen;
    int status;
    long long remaining; /* body or chunk bytes left; -1: until close */
    bool body_started;   /* a body byte has been seen */
};

static void response_reset(struct response *r)
{
    memset(r, 0, sizeof *r);
}

static long long head_number(const char *head, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = strchr(head, '\n'); p != NULL; p = strchr(p, '\n')) {
        p++;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':')
            return strtoll(p + nl + 1, NULL, 10);
    }
    return -1;
}

static bool head_has(const char *head, const char *name, const char *value)
{
    size_t nl = strlen(name);
    for (const char *p = strchr(head, '\n'); p != NULL; p = strchr(p, '\n')) {
        p++;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *eol = strchr(p, '\r');
            size_t vl = strlen(value);
            for (const char *v = p + nl + 1; v && (!eol || v < eol) && *v; v++)
                if (strncasecmp(v, value, vl) == 0)
                    return true;
        }
    }
    return false;
}

/* Feeds n received bytes; returns -1 on a malformed answer, else 0. */
static int response_feed(struct response *r, const char *p, size_t n)
{
    while (n > 0 && r->state != R_DONE) {
        switch (r->state) {
        case R_HEAD:
        case R_CHUNK_SIZE:
        case R_CHUNK_END:
        case R_TRAILER: {
            if (r->linelen + 1 >= sizeof r->line)
                return -1;
            r->line[r->linelen++] = *p++;
            n--;
            r->line[r->linelen] = '\0';
            if (r->state == R_HEAD) {
                if (r->linelen < 4 || memcmp(r->line + r->linelen - 4, "\r\n\r\n", 4) != 0)
                    break;
                if (sscanf(r->line, "HTTP/1.%*d %d", &r->status) != 1)
                    return -1;
                bool chunked = head_has(r->line, "transfer-encoding", "chunked");
                r->remaining = head_number(r->line, "content-length");
                r->linelen = 0;
                if (chunked)
                    r->state = R_CHUNK_SIZE;
                else if (r->remaining == 0 || r->status == 204 || r->status == 304)
                    r->state = R_DONE;
                else
                    r->state = R_BODY;
                break;
            }
            if (r->line[r->linelen - 1] != '\n')
                break;
            if (r->state == R_CHUNK_SIZE) {
                r->remaining = strtoll(r->line, NULL, 16);
                r->state = r->remaining > 0 ? R_CHUNK_DATA : R_TRAILER;
            } else if (r->state == R_CHUNK_END) {
                r->state = R_CHUNK_SIZE;
            } else if (r->linelen <= 2) { /* the empty line that ends the trailer */
                r->state = R_DONE;
            }
            r->linelen = 0;
            break;
        }
        case R_BODY:
        case R_CHUNK_DATA: {
            size_t take = n;
            if (r->remaining >= 0 && (long long)take > r->remaining)
                take = (size_t)r->remaining;
            r->body_started = r->body_started || take > 0;
            p += take;
            n -= take;
            if (r->remaining >= 0) {
                r->remaining -= (long long)take;
                if (r->remaining == 0)
                    r->state = r->state == R_BODY ? R_DONE : R_CHUNK_END;
            }
            break;
        }
        case R_DONE:
            break;
        }
    }
    return 0;
}

static int connect_to(int port, bool nonblocking)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | (nonblocking ? SOCK_NONBLOCK : 0), 0), one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static char *request_for(int port, const char *body, size_t *len)
{
    size_t n = strlen(body) + 256;
    char *req = malloc(n), gap[64] = "";
    if (req == NULL)
        return NULL;
    if (gap_ms > 0)
        snprintf(gap, sizeof gap, "X-Bench-Gap-Ms: %ld\r\n", gap_ms);
    *len = (size_t)snprintf(req, n,
                            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s"
                            "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                            port, gap, strlen(body), body);
    return req;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest value with at least p% of the values at or below it. */
static double percentile(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    return sorted[rank == 0 ? 0 : rank - 1];
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int cmd_ttfb(int port, long count, const char *body, long warmup)
{
    size_t reqlen;
    char *req = request_for(port, body, &reqlen);
    double *ttfb = calloc((size_t)count, sizeof *ttfb), *full = calloc((size_t)count, sizeof *full);
    if (req == NULL || ttfb == NULL || full == NULL)
        return 1;
    struct timeval tv = {10, 0};
    struct response r;
    char buf[65536];
    long counted = 0, errors = 0;
    int fd = -1;
    for (long i = 0; i < count + warmup && errors < 10; i++) {
        if (fd < 0) {
            if ((fd = connect_to(port, false)) < 0) {
                errors++;
                continue;
            }
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        }
        response_reset(&r);
        double t0 = now_us(), first = 0;
        bool failed = write_all(fd, req, reqlen) != 0;
        while (!failed && r.state != R_DONE) {
            ssize_t n = read(fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0 || response_feed(&r, buf, (size_t)n) != 0) {
                failed = true;
                break;
            }
            if (first == 0 && r.body_started)
                first = now_us();
        }
        double t1 = now_us();
        if (failed || r.status != 200) {
            errors++;
            close(fd);
            fd = -1;
            continue;
        }
        if (i >= warmup) {
            ttfb[counted] = first - t0;
            full[counted++] = t1 - t0;
        }
    }
    if (fd >= 0)
        close(fd);
    qsort(ttfb, (size_t)counted, sizeof *ttfb, cmp_double);
    qsort(full, (size_t)counted, sizeof *full, cmp_double);
    printf("%.0f %.0f %.0f %ld %ld\n", percentile(ttfb, (size_t)counted, 50),
           percentile(ttfb, (size_t)counted, 99), percentile(full, (size_t)counted, 50), counted,
           errors);
    free(req);
    free(ttfb);
    free(full);
    return 0;
}

/* What many connections at once are for. */
enum many { IDLE, STREAMS, LOAD };

struct held {
    int fd;
    const char *req; /* the request being sent */
    size_t reqlen, sent;
    bool failed, started, done;
    struct response r;
};

/* idle and streams: one request per connection, see the top of the file.
 * load: `total` requests over the connections, each connection sending its
 * next one when its answer is complete, the bodies alternating; ends when
 * all are answered or failed, or after SECONDS, with "done COMPLETE FAILED". */
static int cmd_many(enum many what, int port, long conns, long total, double seconds,
                    const char *body1, const char *body2)
{
    size_t len[2];
    const char *req[2] = {request_for(port, body1, &len[0]), request_for(port, body2, &len[1])};
    struct held *h = calloc((size_t)conns, sizeof *h);
    struct pollfd *pfd = calloc((size_t)conns, sizeof *pfd);
    if (req[0] == NULL || req[1] == NULL || h == NULL || pfd == NULL)
        return 1;
    double deadline = now_us() + seconds * 1e6;
    long issued = 0, complete = 0, failed = 0;
    for (long i = 0; i < conns && issued < total; i++, issued++) {
        h[i].fd = connect_to(port, true);
        h[i].failed = h[i].fd < 0;
        failed += h[i].failed;
        h[i].req = req[issued % 2];
        h[i].reqlen = len[issued % 2];
    }
    char buf[65536];
    bool ready_said = what == LOAD;
    for (;;) {
        long started = 0, waiting = 0;
        for (long i = 0; i < conns; i++) {
            struct held *c = &h[i];
            started += c->started;
            pfd[i].fd = c->failed || c->done || c->req == NULL ? -1 : c->fd;
            pfd[i].events = c->sent < c->reqlen ? POLLOUT : POLLIN;
            waiting += pfd[i].fd >= 0;
        }
        /* idle: every answer complete; streams: every answer begun */
        long reached = what == STREAMS ? started : complete;
        if (!ready_said && reached + failed == conns) {
            printf("ready %ld %ld\n", reached, failed);
            fflush(stdout);
            ready_said = true;
        }
        double left = deadline - now_us();
        if (left <= 0 || (what != IDLE && waiting == 0)) {
            printf("done %ld %ld\n", complete, failed);
            return 0;
        }
        if (poll(pfd, (nfds_t)conns, (int)(left / 1000) + 1) < 0 && errno != EINTR)
            return 1;
        for (long i = 0; i < conns; i++) {
            struct held *c = &h[i];
            if (pfd[i].fd < 0 || pfd[i].revents == 0)
                continue;
            if (c->sent < c->reqlen) {
                ssize_t w = write(c->fd, c->req + c->sent, c->reqlen - c->sent);
                if (w > 0)
                    c->sent += (size_t)w;
                else if (w < 0 && errno != EAGAIN && errno != EINTR)
                    c->failed = true, failed++;
                continue;
            }
            ssize_t n = read(c->fd, buf, sizeof buf);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (n <= 0 || response_feed(&c->r, buf, (size_t)n) != 0 ||
                (c->r.state == R_DONE && c->r.status != 200)) {
                c->failed = true;
                failed++;
                continue;
            }
            c->started = c->started || c->r.body_started;
            if (c->r.state != R_DONE)
                continue;
            complete++;
            c->done = true;
            if (what == LOAD && issued < total) { /* the next request on this connection */
                response_reset(&c->r);
                c->req = req[issued % 2];
                c->reqlen = len[issued++ % 2];
                c->sent = 0;
                c->done = false;
            }
        }
    }
}

static int cmd_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        perror("bench-client: port");
        return 1;
    }
    printf("%d\n", ntohs(sa.sin_port));
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "--gap-ms") == 0) {
        gap_ms = atol(argv[2]);
        argv[2] = argv[0];
        argv += 2;
        argc -= 2;
    }
    const char *cmd = argc > 1 ? argv[1] : "";
    if (strcmp(cmd, "port") == 0)
        return cmd_port();
    if (strcmp(cmd, "ttfb") == 0 && (argc == 5 || argc == 6) && atol(argv[3]) > 0)
        return cmd_ttfb(atoi(argv[2]), atol(argv[3]), argv[4], argc == 6 ? atol(argv[5]) : 20);
    if ((strcmp(cmd, "idle") == 0 || strcmp(cmd, "streams") == 0) && argc == 6 &&
        atol(argv[3]) > 0)
        return cmd_many(cmd[0] == 'i' ? IDLE : STREAMS, atoi(argv[2]), atol(argv[3]),
                        atol(argv[3]), atof(argv[5]), argv[4], argv[4]);
    if (strcmp(cmd, "load") == 0 && argc == 8 && atol(argv[3]) > 0 && atol(argv[4]) > 0)
        return cmd_many(LOAD, atoi(argv[2]), atol(argv[3]), atol(argv[4]), atof(argv[5]),
                        argv[6], argv[7]);
    fprintf(stderr, "usage: %s [--gap-ms N] port | ttfb PORT N BODY [WARMUP] |"
                    " idle PORT N BODY SECONDS | streams PORT N BODY SECONDS |"
                    " load PORT CONNS N SECONDS BODY1 BODY2\n",
            argv[0]);
    return 2;
}
