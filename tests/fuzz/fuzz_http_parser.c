/*
 * fuzz_http_parser.c — the request head parser and the chunked body
 * decoder (include/http_parser.h), fed the way the connection layer feeds
 * them: a buffer that grows piece by piece, parsed again after each piece.
 *
 * Input: one mode byte, eight cut seeds (fuzz.h), then the bytes. Even
 * mode: a request head, parsed whole and incrementally; both must give
 * the same answer (length, status, every parsed field), and every string
 * of the head must lie inside it with the length it claims. A chunked
 * head's body (the bytes after it) then goes to the decoder. Odd mode:
 * the bytes are a chunked body. The decoder, too, must decode the same
 * bytes, consume as much and end (or fail) the same way whole and in
 * pieces. Each prefix sits at the very end of its own heap block, so
 * AddressSanitizer catches any read past what arrived.
 */
#include <string.h>

#include <event2/buffer.h>

#include "fuzz.h"
#include "http_parser.h"

#define MAX_HEAD_BYTES 4096
#define MAX_HEAD_LINES 32
#define MAX_BODY       65536
#define MAX_LINE       256

/* buf[0..len) in a heap block of exactly len bytes. */
static char *dup_exact(const uint8_t *buf, size_t len)
{
    char *p = malloc(len ? len : 1);
    if (p == NULL)
        abort();
    if (len)
        memcpy(p, buf, len);
    return p;
}

/* Every string of a parsed head lies in its block, NUL-terminated at the
 * length it claims. */
static void check_head(const struct cairn_http_head *h)
{
    FUZZ_CHECK(h->block != NULL && h->method != NULL && h->target != NULL);
    FUZZ_CHECK(strlen(h->method) == h->method_len && h->method_len > 0);
    FUZZ_CHECK(strlen(h->target) == h->target_len && h->target[0] == '/');
    FUZZ_CHECK(h->minor_version == 0 || h->minor_version == 1);
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct cairn_http_header *f = &h->headers[i];
        FUZZ_CHECK(strlen(f->name) == f->name_len && f->name_len > 0);
        FUZZ_CHECK(strlen(f->value) == f->value_len);
        FUZZ_CHECK(cairn_http_head_find(h, f->name) != NULL);
        (void)cairn_http_list_has_token(f->value, "close");
    }
    const struct cairn_http_header *cl = cairn_http_head_find(h, "content-length");
    const struct cairn_http_header *te = cairn_http_head_find(h, "transfer-encoding");
    FUZZ_CHECK(!(cl != NULL && te != NULL)); /* smuggling: both is a 400 */
    if (h->body == CAIRN_BODY_LENGTH)
        FUZZ_CHECK(cl != NULL);
    if (h->body == CAIRN_BODY_CHUNKED)
        FUZZ_CHECK(te != NULL && h->minor_version == 1);
}

static void check_same_head(const struct cairn_http_head *a, const struct cairn_http_head *b)
{
    FUZZ_CHECK(strcmp(a->method, b->method) == 0 && strcmp(a->target, b->target) == 0);
    FUZZ_CHECK(a->minor_version == b->minor_version && a->nheaders == b->nheaders);
    FUZZ_CHECK(a->body == b->body && a->content_length == b->content_length);
    FUZZ_CHECK(a->keep_alive == b->keep_alive && a->expect_continue == b->expect_continue);
    for (size_t i = 0; i < a->nheaders; i++) {
        FUZZ_CHECK(strcmp(a->headers[i].name, b->headers[i].name) == 0);
        FUZZ_CHECK(strcmp(a->headers[i].value, b->headers[i].value) == 0);
    }
}

/* Decode body[0..len) whole and in pieces; both must agree. */
static void fuzz_chunked(const uint8_t *body, size_t len, struct fuzz_cuts *cuts)
{
    struct cairn_chunked c1, c2;
    struct evbuffer *out1 = evbuffer_new(), *out2 = evbuffer_new();
    const char *why1 = NULL, *why2 = NULL;
    bool done1 = false, done2 = false;

    char *whole = dup_exact(body, len);
    cairn_chunked_init(&c1, MAX_BODY, MAX_LINE);
    ssize_t n1 = cairn_chunked_decode(&c1, whole, len, out1, &done1, &why1);
    free(whole);
    FUZZ_CHECK(n1 <= (ssize_t)len);
    if (n1 >= 0) {
        FUZZ_CHECK(done1 || (size_t)n1 == len); /* all consumed unless it ended */
        /* `total` counts a chunk once its size line is read (so that the
         * limit applies before its data arrives): a whole body has it all. */
        FUZZ_CHECK(evbuffer_get_length(out1) <= c1.total && c1.total <= MAX_BODY);
        FUZZ_CHECK(!done1 || c1.total == evbuffer_get_length(out1));
    } else {
        FUZZ_CHECK((n1 == -400 || n1 == -413) && why1 != NULL);
    }

    cairn_chunked_init(&c2, MAX_BODY, MAX_LINE);
    size_t off = 0;
    ssize_t n2 = 0;
    while (off < len && !done2) {
        size_t plen = fuzz_cuts_next(cuts, len - off);
        char *piece = dup_exact(body + off, plen);
        ssize_t n = cairn_chunked_decode(&c2, piece, plen, out2, &done2, &why2);
        free(piece);
        if (n < 0) {
            n2 = n;
            break;
        }
        FUZZ_CHECK((size_t)n <= plen && (done2 || (size_t)n == plen));
        off += (size_t)n;
        n2 = (ssize_t)off;
    }
    FUZZ_CHECK(n1 == n2 && done1 == done2);
    if (n1 < 0)
        FUZZ_CHECK(why1 == why2);
    else
        FUZZ_CHECK(evbuffer_get_length(out1) == evbuffer_get_length(out2) &&
                   (evbuffer_get_length(out1) == 0 ||
                    memcmp(evbuffer_pullup(out1, -1), evbuffer_pullup(out2, -1),
                           evbuffer_get_length(out1)) == 0));
    evbuffer_free(out1);
    evbuffer_free(out2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint8_t mode = fuzz_byte(&in);
    struct fuzz_cuts cuts;
    fuzz_cuts_init(&cuts, &in);
    if (mode & 1) {
        fuzz_chunked(in.p, in.n, &cuts);
        return 0;
    }

    /* Whole. */
    struct cairn_http_parser p1, p2;
    struct cairn_http_head h1 = {0}, h2 = {0};
    const char *why1 = NULL, *why2 = NULL;
    char *whole = dup_exact(in.p, in.n);
    cairn_http_parser_init(&p1, MAX_HEAD_BYTES, MAX_HEAD_LINES);
    ssize_t r1 = cairn_http_parse_head(&p1, whole, in.n, &h1, &why1);
    free(whole);
    FUZZ_CHECK(r1 <= (ssize_t)in.n);
    if (r1 > 0)
        check_head(&h1);
    if (r1 < 0)
        FUZZ_CHECK(why1 != NULL && (r1 == -400 || r1 == -431 || r1 == -501 || r1 == -505));

    /* Incremental: the same prefix plus what arrived, after each piece. */
    cairn_http_parser_init(&p2, MAX_HEAD_BYTES, MAX_HEAD_LINES);
    ssize_t r2 = 0;
    size_t fed = 0;
    while (fed < in.n && r2 == 0) {
        fed += fuzz_cuts_next(&cuts, in.n - fed);
        char *buf = dup_exact(in.p, fed);
        r2 = cairn_http_parse_head(&p2, buf, fed, &h2, &why2);
        free(buf);
    }
    FUZZ_CHECK(r1 == r2);
    if (r1 < 0)
        FUZZ_CHECK(why1 == why2);
    if (r1 > 0) {
        check_same_head(&h1, &h2);
        if (h1.body == CAIRN_BODY_CHUNKED)
            fuzz_chunked(in.p + r1, in.n - (size_t)r1, &cuts);
    }
    cairn_http_head_free(&h1);
    cairn_http_head_free(&h2);
    return 0;
}
