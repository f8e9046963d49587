/*
 * canned.c — the backend of `make bench`: one thread, epoll, and the same
 * bytes for every request: a canned chat completion, or, when the body asks
 * for "stream": true, a canned SSE stream of seven chat.completion.chunk
 * events (the stand-in's shape: role, four content deltas, finish, [DONE]),
 * chunked. Any method, any path; HTTP/1.1 keep-alive and pipelining. A
 * request header X-Bench-Gap-Ms: N (proxies pass it on) spaces the events
 * of its stream N ms apart: a stream that takes time, as a model's does,
 * for the time to first byte and for the memory test's slow streams.
 *
 * Why not the stand-in (tests/standin): it parses every body with cJSON and
 * builds every answer: measured directly with wrk at 64 connections on
 * the 2-core machine, 19 000-29 000 requests/s, against 50 000-57 000 for
 * this server and for nginx `return 200` with the same bytes. On the
 * bench's two shared cores that CPU is taken from the proxy being measured,
 * and the "direct" row would be the stand-in's speed rather than the floor.
 *
 * The answer is 30 English words, so that cairn's validators (length under
 * 40 words, language) find nothing to report and never retry.
 *
 * GET /bench/accepted answers with the number of connections accepted so
 * far (this one included), as text: how many connections a proxy opened to
 * its backend during a run, which tells whether it keeps them alive.
 *
 *   bench-canned [--listen HOST:PORT]
 * HOST is an IPv4 address; port 0 picks a free port. Prints "canned:
 * listening on HOST:PORT" to stderr, then nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD (64 * 1024)
#define MAX_BODY (16 * 1024 * 1024)
#define NEVENTS  7

#define ANSWER_ID "\"id\":\"chatcmpl-bench\",\"created\":1700000000,\"model\":\"standin-1\""
#define CHUNK(delta, finish)                                                                     \
    "data: {" ANSWER_ID ",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"      \
    "\"delta\":" delta ",\"logprobs\":null,\"finish_reason\":" finish "}]}\n\n"

static const char plain_body[] =
    "{" ANSWER_ID ",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":"
    "{\"role\":\"assistant\",\"content\":\"The sky looks blue because air molecules scatter "
    "the short blue wavelengths of sunlight far more than the longer red ones, so blue light "
    "reaches our eyes from every direction.\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":40,\"total_tokens\":60}}";

static const char *const events[NEVENTS] = {
    CHUNK("{\"role\":\"assistant\",\"content\":\"\"}", "null"),
    CHUNK("{\"content\":\"The sky looks blue because air molecules \"}", "null"),
    CHUNK("{\"content\":\"scatter the short blue wavelengths of sunlight \"}", "null"),
    CHUNK("{\"content\":\"far more than the longer red ones, so blue \"}", "null"),
    CHUNK("{\"content\":\"light reaches our eyes from every direction.\"}", "null"),
    CHUNK("{}", "\"stop\""),
    "data: [DONE]\n\n",
};

static const char stream_head[] = "HTTP/1.1 200 OK\r\n"
                                  "Content-Type: text/event-stream\r\n"
                                  "Cache-Control: no-cache\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n";

/* Built once at start: whole answers and each event as one HTTP chunk. */
static char plain_answer[1024], stream_answer[4096], chunks[NEVENTS][512];
static size_t plain_len, stream_len, chunk_len[NEVENTS];
static unsigned long accepted;

struct conn {
    int fd;
    char *in;
    size_t inlen, incap;
    char *out;
    size_t outlen, outoff, outcap;
    int next_event;   /* a slow stream's next event, or -1 */
    long long due_ms; /* when to send it */
    long gap_ms;      /* between its events */
    bool close_after; /* "Connection: close" asked */
    bool want_out;    /* EPOLLOUT armed */
};

static int epfd;
static struct conn **conns; /* by fd */
static int nconns_cap, slow_streams;

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    if ((*buf = realloc(*buf, n)) == NULL)
        die("realloc");
    *cap = n;
}

static void out_add(struct conn *c, const char *p, size_t n)
{
    grow(&c->out, &c->outcap, c->outlen + n);
    memcpy(c->out + c->outlen, p, n);
    c->outlen += n;
}

static void conn_close(struct conn *c)
{
    if (c->next_event >= 0)
        slow_streams--;
    conns[c->fd] = NULL;
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

static void want_out(struct conn *c, bool on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.fd = c->fd};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

/* Writes what is pending; returns false when the connection was closed. */
static bool flush(struct conn *c)
{
    while (c->outoff < c->outlen) {
        ssize_t n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            want_out(c, true);
            return true;
        }
        if (n <= 0) {
            conn_close(c);
            return false;
        }
        c->outoff += (size_t)n;
    }
    c->outoff = c->outlen = 0;
    want_out(c, false);
    if (c->close_after && c->next_event < 0) {
        conn_close(c);
        return false;
    }
    return true;
}

/* The value of header `name` in the request head, or NULL. */
static const char *header(const char *head, size_t len, const char *name)
{
    size_t nl = strlen(name);
    const char *end = head + len;
    for (const char *p = memchr(head, '\n', len); p && p + 1 < end; p = memchr(p, '\n', (size_t)(end - p))) {
        p++;
        if ((size_t)(end - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            p += nl + 1;
            while (p < end && (*p == ' ' || *p == '\t'))
                p++;
            return p;
        }
    }
    return NULL;
}

/* Whether the JSON body holds "stream": true (a member named exactly so). */
static bool asks_stream(const char *body, size_t len)
{
    const char *end = body + len, *p = body;
    while ((p = memmem(p, (size_t)(end - p), "\"stream\"", 8)) != NULL) {
        p += 8;
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
            p++;
        if (p < end && *p == ':') {
            p++;
            while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
                p++;
            if (end - p >= 4 && memcmp(p, "true", 4) == 0)
                return true;
        }
    }
    return false;
}

/* Answers every complete request in the input buffer, in order; a slow
 * stream holds the requests after it until it ends. Returns false when the
 * connection was closed. */
static bool serve(struct conn *c)
{
    while (c->next_event < 0 && !c->close_after) {
        char *end = c->inlen ? memmem(c->in, c->inlen, "\r\n\r\n", 4) : NULL;
        if (end == NULL) {
            if (c->inlen > MAX_HEAD) {
                conn_close(c);
                return false;
            }
            break;
        }
        size_t head = (size_t)(end + 4 - c->in);
        const char *cl = header(c->in, head, "content-length");
        const char *te = header(c->in, head, "transfer-encoding");
        const char *co = header(c->in, head, "connection");
        const char *gap = header(c->in, head, "x-bench-gap-ms");
        long body = cl ? strtol(cl, NULL, 10) : 0;
        if (te != NULL || body < 0 || body > MAX_BODY) {
            /* chunked request bodies: none of the bench's clients sends one */
            static const char no[] = "HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\n"
                                     "Connection: close\r\n\r\n";
            out_add(c, no, sizeof no - 1);
            c->close_after = true;
            c->inlen = 0;
            break;
        }
        if (c->inlen < head + (size_t)body)
            break;
        c->close_after = co != NULL && strncasecmp(co, "close", 5) == 0;
        if (strncmp(c->in, "GET /bench/accepted ", 20) == 0) {
            char count[32], reply[160];
            int n = snprintf(count, sizeof count, "%lu", accepted);
            int len = snprintf(reply, sizeof reply,
                               "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                               "Content-Length: %d\r\n\r\n%s",
                               n, count);
            out_add(c, reply, (size_t)len);
        } else if (!asks_stream(c->in + head, (size_t)body)) {
            out_add(c, plain_answer, plain_len);
        } else if (gap == NULL || (c->gap_ms = strtol(gap, NULL, 10)) <= 0) {
            out_add(c, stream_answer, stream_len);
        } else {
            if (c->gap_ms > 60000)
                c->gap_ms = 60000;
            out_add(c, stream_head, sizeof stream_head - 1);
            out_add(c, chunks[0], chunk_len[0]);
            c->next_event = 1;
            c->due_ms = now_ms() + c->gap_ms;
            slow_streams++;
        }
        c->inlen -= head + (size_t)body;
        memmove(c->in, c->in + head + (size_t)body, c->inlen);
    }
    return flush(c);
}

static void on_readable(struct conn *c)
{
    for (;;) {
        grow(&c->in, &c->incap, c->inlen + 16384);
        ssize_t n = read(c->fd, c->in + c->inlen, c->incap - c->inlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->inlen += (size_t)n;
        if ((size_t)n < 16384)
            break;
    }
    serve(c);
}

/* Sends the events of slow streams that are due; returns the ms until the
 * next one is (0 when one is already late), or -1 when no stream waits. */
static int run_timers(void)
{
    if (slow_streams == 0)
        return -1;
    long long now = now_ms(), next = -1;
    for (int fd = 0; fd < nconns_cap; fd++) {
        struct conn *c = conns[fd];
        if (c == NULL || c->next_event < 0)
            continue;
        if (c->due_ms <= now) {
            out_add(c, chunks[c->next_event], chunk_len[c->next_event]);
            if (++c->next_event == NEVENTS) {
                out_add(c, "0\r\n\r\n", 5);
                c->next_event = -1;
                slow_streams--;
                /* flushes, and answers a request that waited: maybe a new stream */
                if (!serve(c) || c->next_event < 0)
                    continue;
            } else {
                c->due_ms += c->gap_ms;
                if (!flush(c))
                    continue;
            }
        }
        long long wait = c->due_ms > now ? c->due_ms - now : 0;
        if (next < 0 || wait < next)
            next = wait;
    }
    return (int)next;
}

static void on_accept(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or out of descriptors: the client sees it */
        if (fd >= nconns_cap) {
            int n = nconns_cap ? nconns_cap : 1024;
            while (n <= fd)
                n *= 2;
            if ((conns = realloc(conns, (size_t)n * sizeof *conns)) == NULL)
                die("realloc");
            memset(conns + nconns_cap, 0, (size_t)(n - nconns_cap) * sizeof *conns);
            nconns_cap = n;
        }
        struct conn *c = calloc(1, sizeof *c);
        if (c == NULL)
            die("calloc");
        c->fd = fd;
        c->next_event = -1;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            free(c);
            continue;
        }
        conns[fd] = c;
        accepted++;
    }
}

static void build_answers(void)
{
    plain_len = (size_t)snprintf(plain_answer, sizeof plain_answer,
                                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 "Content-Length: %zu\r\n\r\n%s",
                                 strlen(plain_body), plain_body);
    stream_len = (size_t)snprintf(stream_answer, sizeof stream_answer, "%s", stream_head);
    for (int i = 0; i < NEVENTS; i++) {
        chunk_len[i] = (size_t)snprintf(chunks[i], sizeof chunks[i], "%zx\r\n%s\r\n",
                                        strlen(events[i]), events[i]);
        stream_len += (size_t)snprintf(stream_answer + stream_len, sizeof stream_answer - stream_len,
                                       "%s", chunks[i]);
    }
    stream_len += (size_t)snprintf(stream_answer + stream_len, sizeof stream_answer - stream_len,
                                   "0\r\n\r\n");
}

int main(int argc, char **argv)
{
    const char *listen_at = "127.0.0.1:0";
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v != NULL && strcmp(argv[i], "--listen") == 0) {
            listen_at = v;
        } else {
            fprintf(stderr, "usage: %s [--listen HOST:PORT]\n", argv[0]);
            return 2;
        }
    }
    char host[64];
    const char *colon = strrchr(listen_at, ':');
    struct sockaddr_in sa = {.sin_family = AF_INET};
    if (colon == NULL || (size_t)(colon - listen_at) >= sizeof host) {
        fprintf(stderr, "canned: bad --listen address, want HOST:PORT\n");
        return 2;
    }
    memcpy(host, listen_at, (size_t)(colon - listen_at));
    host[colon - listen_at] = '\0';
    sa.sin_port = htons((unsigned short)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "canned: bad --listen address, want an IPv4 HOST:PORT\n");
        return 2;
    }
    build_answers();
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    socklen_t salen = sizeof sa;
    if (lfd < 0)
        die("socket");
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 4096) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &salen) != 0) {
        fprintf(stderr, "canned: cannot listen on %s: %s\n", listen_at, strerror(errno));
        return 1;
    }
    if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1");
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) != 0)
        die("epoll_ctl");
    fprintf(stderr, "canned: listening on %s:%d\n", host, ntohs(sa.sin_port));

    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(epfd, evs, 256, run_timers());
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                on_accept(lfd);
                continue;
            }
            struct conn *c = fd < nconns_cap ? conns[fd] : NULL;
            if (c == NULL)
                continue;
            if ((evs[i].events & EPOLLOUT) && !flush(c))
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(c);
        }
    }
}
