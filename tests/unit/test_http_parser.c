/*
 * test_http_parser.c — unit tests for include/http_parser.h.
 *
 * cairn_http_parse_head: valid heads (methods, HTTP/1.0 and 1.1, body kind,
 * keep-alive defaults, Expect, OWS trimming, case-insensitive lookup,
 * leading CRLF, pipelined bytes left untouched), each parsed one-shot and
 * again fed one byte more per call; every rejection of PITFALLS.md items
 * 1, 5-7, 9 and 10 with its exact status, one-shot and incrementally.
 * cairn_chunked_decode: valid bodies fed in pieces of every size (one byte
 * up to one shot), exact consumed count, and its 400/413 errors.
 * Every input sits at the end of a heap block of its exact size (ASan).
 */
#include "unit.h"

#include <event2/buffer.h>

#include "http_parser.h"

#define MAX_BYTES 8192
#define MAX_LINES 100

/* ---------------------------------------------------------------- heads */

struct hdr_want {
    const char *name;  /* looked up with cairn_http_head_find */
    const char *value; /* NULL: must be absent */
};

struct head_case {
    const char *name;
    const char *head; /* the request head */
    const char *tail; /* pipelined bytes after it (body, next request) */
    const char *method, *target;
    int minor;
    enum cairn_http_body body;
    uint64_t clen;
    bool keep_alive, expect_continue;
    size_t nheaders;
    struct hdr_want hdrs[4];
    size_t max_bytes, max_lines; /* 0: MAX_BYTES / MAX_LINES */
};

#define H11 "Host: a\r\n"

static const struct head_case head_cases[] = {
    {.name = "GET 1.1 minimal", .head = "GET / HTTP/1.1\r\n" H11 "\r\n", .method = "GET",
     .target = "/", .minor = 1, .keep_alive = true, .nheaders = 1,
     .hdrs = {{"host", "a"}, {"HOST", "a"}, {"Content-Length", NULL}}},
    {.name = "GET 1.0 no host closes", .head = "GET /x?y=1 HTTP/1.0\r\n\r\n", .method = "GET",
     .target = "/x?y=1", .minor = 0, .keep_alive = false, .nheaders = 0},
    {.name = "1.0 Connection: keep-alive", .head = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
     .method = "GET", .target = "/", .minor = 0, .keep_alive = true, .nheaders = 1},
    {.name = "1.1 Connection: close", .head = "GET / HTTP/1.1\r\n" H11 "Connection: close\r\n\r\n",
     .method = "GET", .target = "/", .minor = 1, .keep_alive = false, .nheaders = 2,
     .hdrs = {{"connection", "close"}}},
    {.name = "1.1 Connection: Close (case)",
     .head = "GET / HTTP/1.1\r\n" H11 "Connection: Close\r\n\r\n", .method = "GET", .target = "/",
     .minor = 1, .keep_alive = false, .nheaders = 2},
    {.name = "POST Content-Length, body pipelined",
     .head = "POST /v1/chat/completions HTTP/1.1\r\n" H11 "Content-Length: 5\r\n\r\n",
     .tail = "hello", .method = "POST", .target = "/v1/chat/completions", .minor = 1,
     .body = CAIRN_BODY_LENGTH, .clen = 5, .keep_alive = true, .nheaders = 2,
     .hdrs = {{"content-length", "5"}}},
    {.name = "Content-Length: 0", .head = "POST / HTTP/1.1\r\n" H11 "Content-Length: 0\r\n\r\n",
     .method = "POST", .target = "/", .minor = 1, .body = CAIRN_BODY_LENGTH, .clen = 0,
     .keep_alive = true, .nheaders = 2},
    {.name = "Content-Length with OWS",
     .head = "POST / HTTP/1.1\r\n" H11 "Content-Length: \t 12345 \t\r\n\r\n", .method = "POST",
     .target = "/", .minor = 1, .body = CAIRN_BODY_LENGTH, .clen = 12345, .keep_alive = true,
     .nheaders = 2, .hdrs = {{"Content-Length", "12345"}}},
    {.name = "POST chunked, body pipelined",
     .head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n" H11 "\r\n",
     .tail = "3\r\nabc\r\n0\r\n\r\n", .method = "POST", .target = "/", .minor = 1,
     .body = CAIRN_BODY_CHUNKED, .keep_alive = true, .nheaders = 2,
     .hdrs = {{"transfer-encoding", "chunked"}}},
    {.name = "Transfer-Encoding: CHUNKED (case)",
     .head = "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: CHUNKED\r\n\r\n", .method = "POST",
     .target = "/", .minor = 1, .body = CAIRN_BODY_CHUNKED, .keep_alive = true, .nheaders = 2},
    {.name = "Expect: 100-continue",
     .head = "POST / HTTP/1.1\r\n" H11 "Content-Length: 2\r\nExpect: 100-continue\r\n\r\n",
     .method = "POST", .target = "/", .minor = 1, .body = CAIRN_BODY_LENGTH, .clen = 2,
     .keep_alive = true, .expect_continue = true, .nheaders = 3},
    {.name = "Expect: 100-Continue (case)",
     .head = "POST / HTTP/1.1\r\n" H11 "Content-Length: 2\r\nExpect: 100-Continue\r\n\r\n",
     .method = "POST", .target = "/", .minor = 1, .body = CAIRN_BODY_LENGTH, .clen = 2,
     .keep_alive = true, .expect_continue = true, .nheaders = 3},
    {.name = "OWS trimmed, empty values, inner colon",
     .head = "GET / HTTP/1.1\r\n" H11 "X-A:   spaced  value \t \r\nX-B:\tv\r\nX-C:\r\n"
             "X-D: a: b\r\n\r\n",
     .method = "GET", .target = "/", .minor = 1, .keep_alive = true, .nheaders = 5,
     .hdrs = {{"x-a", "spaced  value"}, {"X-b", "v"}, {"x-C", ""}, {"x-d", "a: b"}}},
    {.name = "all tchars in a name",
     .head = "GET / HTTP/1.1\r\n" H11 "X!#$%&'*+-.^_`|~9: v\r\n\r\n", .method = "GET",
     .target = "/", .minor = 1, .keep_alive = true, .nheaders = 2,
     .hdrs = {{"x!#$%&'*+-.^_`|~9", "v"}}},
    {.name = "leading CRLF ignored", .head = "\r\nDELETE /d HTTP/1.1\r\n" H11 "\r\n",
     .method = "DELETE", .target = "/d", .minor = 1, .keep_alive = true, .nheaders = 1},
    {.name = "pipelined request untouched", .head = "GET /a HTTP/1.1\r\n" H11 "\r\n",
     .tail = "GET /b HTTP/1.1\r\n" H11 "\r\n", .method = "GET", .target = "/a", .minor = 1,
     .keep_alive = true, .nheaders = 1},
    {.name = "head exactly max_head_bytes, pipelined past it",
     .head = "GET / HTTP/1.1\r\n" H11 "\r\n", .tail = "GET /b HTTP/1.1\r\n" H11 "\r\n",
     .method = "GET", .target = "/", .minor = 1, .keep_alive = true, .nheaders = 1,
     .max_bytes = 27},
    {.name = "HTTP/1.2 read as 1.1 (RFC 9110 2.5)", .head = "GET / HTTP/1.2\r\n" H11 "\r\n",
     .method = "GET", .target = "/", .minor = 1, .keep_alive = true, .nheaders = 1},
    {.name = "HTTP/1.0 Expect ignored",
     .head = "POST / HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
     .method = "POST", .target = "/", .minor = 0, .body = CAIRN_BODY_LENGTH, .clen = 2,
     .nheaders = 2},
    {.name = "close wins over keep-alive",
     .head = "GET / HTTP/1.1\r\n" H11 "Connection: keep-alive, close\r\n\r\n", .method = "GET",
     .target = "/", .minor = 1, .keep_alive = false, .nheaders = 2},
    {.name = "obs-text in a value", .head = "GET / HTTP/1.1\r\n" H11 "X: caf\xc3\xa9\r\n\r\n",
     .method = "GET", .target = "/", .minor = 1, .keep_alive = true, .nheaders = 2,
     .hdrs = {{"x", "caf\xc3\xa9"}}},
    {.name = "lines below max_head_lines",
     .head = "GET / HTTP/1.1\r\n" H11 "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", .method = "GET",
     .target = "/", .minor = 1, .keep_alive = true, .nheaders = 4, .max_lines = 6,
     .hdrs = {{"c", "3"}}},
};

static void init_parser(struct cairn_http_parser *p, size_t max_bytes, size_t max_lines)
{
    cairn_http_parser_init(p, max_bytes ? max_bytes : MAX_BYTES,
                           max_lines ? max_lines : MAX_LINES);
}

static bool span_is(const char *p, size_t n, const char *want)
{
    return p && n == strlen(want) && memcmp(p, want, n) == 0;
}

/* Check a parsed head against its row; `how` says which feeding mode. */
static void check_head(const struct head_case *c, const char *how,
                       const struct cairn_http_head *h)
{
    char row[160];
    snprintf(row, sizeof row, "%s, %s", c->name, how);
    check(span_is(h->method, h->method_len, c->method), row, "method");
    check(span_is(h->target, h->target_len, c->target), row, "target");
    check(h->minor_version == c->minor, row, "minor_version %d", h->minor_version);
    check(h->body == c->body, row, "body kind %d, want %d", (int)h->body, (int)c->body);
    if (c->body == CAIRN_BODY_LENGTH)
        check(h->content_length == c->clen, row, "content_length %llu",
              (unsigned long long)h->content_length);
    check(h->keep_alive == c->keep_alive, row, "keep_alive %d", h->keep_alive);
    check(h->expect_continue == c->expect_continue, row, "expect_continue %d",
          h->expect_continue);
    check(h->nheaders == c->nheaders, row, "nheaders %zu, want %zu", h->nheaders, c->nheaders);
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct cairn_http_header *f = &h->headers[i];
        check(f->name && strlen(f->name) == f->name_len, row, "header %zu name not NUL-ended", i);
        check(f->value && strlen(f->value) == f->value_len, row, "header %zu value not NUL-ended",
              i);
    }
    for (size_t i = 0; i < NELEM(c->hdrs) && c->hdrs[i].name; i++) {
        const struct cairn_http_header *f = cairn_http_head_find(h, c->hdrs[i].name);
        if (!c->hdrs[i].value)
            check(f == NULL, row, "header %s should be absent", c->hdrs[i].name);
        else if (check(f != NULL, row, "header %s not found", c->hdrs[i].name))
            check(span_is(f->value, f->value_len, c->hdrs[i].value), row,
                  "header %s = \"%s\", want \"%s\"", c->hdrs[i].name, f->value, c->hdrs[i].value);
    }
}

/* Parse buf[0..len) from its own exact-size copy, freed before returning
 * so that a head still pointing into the input is a use-after-free. */
static ssize_t parse_copy(struct cairn_http_parser *p, const char *buf, size_t len,
                          struct cairn_http_head *h, const char **errstr)
{
    char *copy = dup_exact(buf, len);
    memset(h, 0, sizeof *h);
    *errstr = NULL;
    ssize_t r = cairn_http_parse_head(p, copy, len, h, errstr);
    free(copy);
    return r;
}

static char *join(const char *a, const char *b, size_t *len)
{
    struct sbuf s = {0};
    sb_puts(&s, a);
    sb_puts(&s, b ? b : "");
    *len = s.len;
    return s.p;
}

static void test_head_valid_one_shot(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(head_cases); i++) {
        const struct head_case *c = &head_cases[i];
        size_t len;
        char *in = join(c->head, c->tail, &len);
        struct cairn_http_parser p;
        struct cairn_http_head h;
        const char *errstr;
        init_parser(&p, c->max_bytes, c->max_lines);
        ssize_t r = parse_copy(&p, in, len, &h, &errstr);
        if (check(r == (ssize_t)strlen(c->head), c->name, "returned %zd (%s), want %zu", r,
                  errstr ? errstr : "-", strlen(c->head))) {
            check_head(c, "one shot", &h);
            cairn_http_head_free(&h);
        }
        free(in);
    }
    rows_end();
}

static void test_head_valid_incremental(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(head_cases); i++) {
        const struct head_case *c = &head_cases[i];
        size_t len, want = strlen(c->head);
        char *in = join(c->head, c->tail, &len);
        struct cairn_http_parser p;
        struct cairn_http_head h;
        const char *errstr;
        init_parser(&p, c->max_bytes, c->max_lines);
        for (size_t n = 1; n <= len; n++) {
            ssize_t r = parse_copy(&p, in, n, &h, &errstr);
            if (n < want) {
                if (!check(r == 0, c->name, "prefix of %zu bytes returned %zd (%s), want 0", n,
                           r, errstr ? errstr : "-")) {
                    if (r > 0)
                        cairn_http_head_free(&h);
                    break;
                }
                continue;
            }
            if (check(r == (ssize_t)want, c->name, "prefix of %zu bytes returned %zd, want %zu",
                      n, r, want)) {
                check_head(c, "incremental", &h);
                cairn_http_head_free(&h);
            }
            break;
        }
        free(in);
    }
    rows_end();
}

/* ----------------------------------------------------------- rejections */

struct reject_case {
    const char *name;
    const char *in;
    size_t len;
    int status; /* the negative return expected */
    size_t max_bytes, max_lines;
};

#define RL "GET / HTTP/1.1\r\n"
#define PH "POST / HTTP/1.1\r\n" H11
#define TE "Transfer-Encoding: "
#define CL "Content-Length: "
#define REJ(name, in, status) {name, LIT(in), status, 0, 0}
#define LIMITED(name, in, status, bytes, lines) {name, LIT(in), status, bytes, lines}
#define LONG40 "0123456789012345678901234567890123456789"
#define LINES8 "A: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nH: 1\r\n"

static const struct reject_case reject_cases[] = {
    REJ("two Content-Length, same", PH CL "3\r\n" CL "3\r\n\r\n", -400),
    REJ("two Content-Length, different", PH CL "3\r\n" CL "4\r\n\r\n", -400),
    REJ("Content-Length list 3,3", PH CL "3,3\r\n\r\n", -400),
    REJ("space before colon", PH "Content-Length : 3\r\n\r\n", -400),
    REJ("Content-Length +3", PH CL "+3\r\n\r\n", -400),
    REJ("Content-Length -1", PH CL "-1\r\n\r\n", -400),
    REJ("Content-Length 3 3", PH CL "3 3\r\n\r\n", -400),
    REJ("Content-Length empty", PH CL "\r\n\r\n", -400),
    REJ("Content-Length 0x3", PH CL "0x3\r\n\r\n", -400),
    REJ("Content-Length overflow", PH CL "99999999999999999999999\r\n\r\n", -400),
    REJ("Content-Length 2^64", PH CL "18446744073709551616\r\n\r\n", -400),
    REJ("Content-Length then TE", PH CL "3\r\n" TE "chunked\r\n\r\n", -400),
    REJ("TE then Content-Length", PH TE "chunked\r\n" CL "3\r\n\r\n", -400),
    REJ("TE on HTTP/1.0", "POST / HTTP/1.0\r\n" TE "chunked\r\n\r\n", -400),
    REJ("TE gzip", PH TE "gzip\r\n\r\n", -501),
    REJ("TE chunked, gzip", PH TE "chunked, gzip\r\n\r\n", -501),
    REJ("TE gzip, chunked", PH TE "gzip, chunked\r\n\r\n", -501),
    REJ("TE xchunked", PH TE "xchunked\r\n\r\n", -501),
    REJ("TE repeated", PH TE "chunked\r\n" TE "chunked\r\n\r\n", -400),
    REJ("NUL in a value", RL H11 "X: a\0b\r\n\r\n", -400),
    REJ("NUL in the target", "GET /a\0b HTTP/1.1\r\n" H11 "\r\n", -400),
    REJ("bare LF ends request line", "GET / HTTP/1.1\n" H11 "\r\n", -400),
    REJ("bare LF ends a header", RL "Host: a\n\r\n", -400),
    REJ("bare LF ends the head", RL H11 "\n", -400),
    REJ("bare LF everywhere", "GET / HTTP/1.1\nHost: a\n\n", -400),
    REJ("bare LF inside a value", RL H11 "X: a\nb\r\n\r\n", -400),
    REJ("bare CR inside a value", RL H11 "X: a\rb\r\n\r\n", -400),
    REJ("control char in a value", RL H11 "X: a\x01z\r\n\r\n", -400),
    REJ("bare CR in request line", "GET /\r HTTP/1.1\r\n" H11 "\r\n", -400),
    REJ("obs-fold with space", RL H11 "X: a\r\n b\r\n\r\n", -400),
    REJ("obs-fold with tab", RL H11 "X: a\r\n\tb\r\n\r\n", -400),
    REJ("whitespace before first header", RL " Host: a\r\n\r\n", -400),
    REJ("space inside a name", RL H11 "X Y: 1\r\n\r\n", -400),
    REJ("paren in a name", RL H11 "X(y): 1\r\n\r\n", -400),
    REJ("quote in a name", RL H11 "X\"y: 1\r\n\r\n", -400),
    REJ("UTF-8 in a name", RL H11 "X\xc3\xa9: 1\r\n\r\n", -400),
    REJ("empty name", RL H11 ": v\r\n\r\n", -400),
    REJ("line without colon", RL H11 "Xvalue\r\n\r\n", -400),
    REJ("double space in request line", "GET  / HTTP/1.1\r\n" H11 "\r\n", -400),
    REJ("missing version", "GET /\r\n" H11 "\r\n", -400),
    /* Heads that never end: refused where the fault is, not at a deadline. */
    REJ("HTTP/0.9 request line alone", "GET /v1/models\r\n", -400),
    REJ("not HTTP, line ended", "SSH-2.0-OpenSSH_9.2\r\n", -400),
    REJ("bare CR line ends, unterminated", "GET / HTTP/1.1\rHost: a\r", -400),
    REJ("empty version", "GET / \r\n" H11 "\r\n", -400),
    REJ("lowercase http/1.1", "GET / http/1.1\r\n" H11 "\r\n", -400),
    REJ("target without slash", "GET x HTTP/1.1\r\n" H11 "\r\n", -400),
    REJ("empty method", " / HTTP/1.1\r\n" H11 "\r\n", -400),
    REJ("bad char in method", "G(T / HTTP/1.1\r\n" H11 "\r\n", -400),
    REJ("trailing space after version", "GET / HTTP/1.1 \r\n" H11 "\r\n", -400),
    REJ("HTTP/2.0", "GET / HTTP/2.0\r\n" H11 "\r\n", -505),
    REJ("missing Host on 1.1", RL "X: 1\r\n\r\n", -400),
    REJ("two Host headers", RL H11 "Host: b\r\n\r\n", -400),
    LIMITED("unterminated head over limit", RL H11 "X: " LONG40 LONG40, -431, 64, 0),
    LIMITED("unterminated request line over limit", "GET /" LONG40 LONG40, -431, 64, 0),
    LIMITED("head over max_head_bytes", RL H11 "X: " LONG40 "\r\n\r\n", -431, 64, 0),
    LIMITED("head one byte over max_head_bytes", RL "Host: ab\r\n\r\n", -431, 27, 0),
    LIMITED("header lines one over limit", RL H11 "A: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n", -431, 0, 4),
    LIMITED("header lines over limit", RL H11 LINES8 "\r\n", -431, 0, 5),
    LIMITED("header lines over limit, unterminated", RL H11 LINES8, -431, 0, 5),
};

static void test_head_reject_one_shot(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(reject_cases); i++) {
        const struct reject_case *c = &reject_cases[i];
        struct cairn_http_parser p;
        struct cairn_http_head h;
        const char *errstr;
        init_parser(&p, c->max_bytes, c->max_lines);
        ssize_t r = parse_copy(&p, c->in, c->len, &h, &errstr);
        check(r == c->status, c->name, "returned %zd, want %d", r, c->status);
        if (r < 0)
            check(errstr != NULL, c->name, "errstr is NULL");
        if (r > 0)
            cairn_http_head_free(&h);
    }
    rows_end();
}

/* Fed one byte more per call: the first non-zero answer must be the same
 * rejection (a head trickling in must not be accepted nor answered with
 * another status). */
static void test_head_reject_incremental(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(reject_cases); i++) {
        const struct reject_case *c = &reject_cases[i];
        struct cairn_http_parser p;
        struct cairn_http_head h;
        const char *errstr = NULL;
        ssize_t r = 0;
        size_t n;
        init_parser(&p, c->max_bytes, c->max_lines);
        for (n = 1; n <= c->len && r == 0; n++)
            r = parse_copy(&p, c->in, n, &h, &errstr);
        check(r == c->status, c->name, "first non-zero answer %zd after %zu bytes, want %d", r,
              n - 1, c->status);
        if (r < 0)
            check(errstr != NULL, c->name, "errstr is NULL");
        if (r > 0)
            cairn_http_head_free(&h);
    }
    rows_end();
}

/* -------------------------------------------------------------- chunked */

struct chunk_case {
    const char *name;
    const char *in;
    size_t len;      /* body, then pipelined bytes */
    size_t consumed; /* the chunked body's length */
    const char *payload;
    size_t payload_len;
    uint64_t max_body;
    size_t max_line;
};

#define NEXT "GET / HTTP/1.1\r\n"
#define BODY(b, tail) b tail, sizeof(b tail) - 1, sizeof(b) - 1

static const struct chunk_case chunk_cases[] = {
    {"one chunk", BODY("3\r\nabc\r\n0\r\n\r\n", ""), LIT("abc"), 1024, 64},
    {"two chunks, pipelined", BODY("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", NEXT), LIT("abcde"), 1024,
     64},
    {"empty body", BODY("0\r\n\r\n", NEXT), LIT(""), 1024, 64},
    {"extensions ignored", BODY("3;a=b\r\nabc\r\n2;q=\"x;y\";z\r\nde\r\n0;last\r\n\r\n", NEXT),
     LIT("abcde"), 1024, 64},
    {"trailers dropped", BODY("3\r\nabc\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n", NEXT), LIT("abc"), 1024,
     64},
    {"whitespace before extension", BODY("3 ;a\r\nabc\r\n0\r\n\r\n", ""), LIT("abc"), 1024, 64},
    {"uppercase hex", BODY("A\r\n0123456789\r\n0\r\n\r\n", ""), LIT("0123456789"), 1024, 64},
    {"lowercase hex", BODY("1b\r\nabcdefghijklmnopqrstuvwxyz!\r\n0\r\n\r\n", ""),
     LIT("abcdefghijklmnopqrstuvwxyz!"), 1024, 64},
    {"leading zeros, 16 digits", BODY("0000000000000003\r\nabc\r\n0\r\n\r\n", ""), LIT("abc"), 1024,
     64},
    {"data holds CRLF and NUL", BODY("5\r\n\r\n\0\r\n\r\n0\r\n\r\n", NEXT), LIT("\r\n\0\r\n"), 1024,
     64},
    {"total exactly max_body", BODY("3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", ""), LIT("abcdef"), 6, 64},
};

/* Feed c->in in pieces of `step` bytes (each in its own exact-size block)
 * until done or error. @return the first error, else the bytes consumed. */
static ssize_t feed_chunked(const struct chunk_case *c, size_t step, struct evbuffer *out,
                            bool *done, const char **errstr)
{
    struct cairn_chunked ch;
    size_t off = 0;
    cairn_chunked_init(&ch, c->max_body, c->max_line);
    *done = false;
    while (off < c->len && !*done) {
        size_t n = c->len - off < step ? c->len - off : step;
        char *piece = dup_exact(c->in + off, n);
        *errstr = NULL;
        ssize_t r = cairn_chunked_decode(&ch, piece, n, out, done, errstr);
        free(piece);
        if (r < 0)
            return r;
        if (!*done && (size_t)r != n)
            return -1000 - r; /* partial consumption before the end */
        off += (size_t)r;
    }
    if (*done && ch.total != evbuffer_get_length(out))
        return -2000;
    return (ssize_t)off;
}

static void test_chunked_valid(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(chunk_cases); i++) {
        const struct chunk_case *c = &chunk_cases[i];
        for (size_t step = 1; step <= c->len; step++) {
            char row[128];
            struct evbuffer *out = evbuffer_new();
            const char *errstr = NULL;
            bool done;
            snprintf(row, sizeof row, "%s, pieces of %zu", c->name, step);
            ssize_t r = feed_chunked(c, step, out, &done, &errstr);
            size_t got = evbuffer_get_length(out);
            bool ok = check(r == (ssize_t)c->consumed && done, row,
                            "consumed %zd (done %d, %s), want %zu (-1000-N: consumed N of a piece "
                            "before done; -2000: total != output)",
                            r, done, errstr ? errstr : "-", c->consumed);
            ok = ok && check(got == c->payload_len &&
                                 (got == 0 || memcmp(evbuffer_pullup(out, -1), c->payload, got) == 0),
                             row, "payload of %zu bytes differs", got);
            evbuffer_free(out);
            if (!ok)
                break; /* one report per row is enough */
        }
    }
    rows_end();
}

#define ERR(name, in, max_body, max_line, status) \
    {name, LIT(in), 0, NULL, 0, max_body, max_line}, status

struct chunk_error {
    struct chunk_case c;
    int status;
};

static const struct chunk_error chunk_errors[] = {
    {ERR("0x3 size", "0x3\r\nabc\r\n0\r\n\r\n", 1024, 64, -400)},
    {ERR("17 hex digits", "10000000000000000\r\nabc\r\n0\r\n\r\n", UINT64_MAX, 64, -400)},
    {ERR("17 F digits", "FFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n", UINT64_MAX, 64, -400)},
    {ERR("non-hex size", "g\r\nabc\r\n0\r\n\r\n", 1024, 64, -400)},
    {ERR("negative size", "-3\r\nabc\r\n0\r\n\r\n", 1024, 64, -400)},
    {ERR("extension without size", ";a\r\nabc\r\n0\r\n\r\n", 1024, 64, -400)},
    {ERR("empty size line", "\r\n3\r\nabc\r\n0\r\n\r\n", 1024, 64, -400)},
    {ERR("bare LF after size", "3\nabc\r\n0\r\n\r\n", 1024, 64, -400)},
    {ERR("missing CRLF after data", "3\r\nabc0\r\n\r\n", 1024, 64, -400)},
    {ERR("data longer than declared", "3\r\nabcdef\r\n0\r\n\r\n", 1024, 64, -400)},
    {ERR("total over max_body", "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", 5, 64, -413)},
    {ERR("one chunk over max_body", "64\r\n" LONG40, 5, 64, -413)},
    {ERR("size line over max_line", "3;" LONG40 "\r\nabc\r\n0\r\n\r\n", 1024, 16, -400)},
    {ERR("trailer line over max_line", "0\r\nX: " LONG40 "\r\n\r\n", 1024, 16, -400)},
};

static void test_chunked_errors(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(chunk_errors); i++) {
        const struct chunk_case *c = &chunk_errors[i].c;
        size_t steps[] = {c->len, 1};
        for (size_t s = 0; s < NELEM(steps); s++) {
            char row[128];
            struct evbuffer *out = evbuffer_new();
            const char *errstr = NULL;
            bool done;
            snprintf(row, sizeof row, "%s, pieces of %zu", c->name, steps[s]);
            ssize_t r = feed_chunked(c, steps[s], out, &done, &errstr);
            check(r == chunk_errors[i].status, row, "returned %zd (done %d), want %d", r, done,
                  chunk_errors[i].status);
            if (r < 0 && r > -1000)
                check(errstr != NULL, row, "errstr is NULL");
            evbuffer_free(out);
        }
    }
    rows_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_valid_one_shot),
        cmocka_unit_test(test_head_valid_incremental),
        cmocka_unit_test(test_head_reject_one_shot),
        cmocka_unit_test(test_head_reject_incremental),
        cmocka_unit_test(test_chunked_valid),
        cmocka_unit_test(test_chunked_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
