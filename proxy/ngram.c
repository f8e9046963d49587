/*
 * ngram.c — n-gram language classification with libexttextcat's answers
 * at a fraction of its cost (see ngram.h).
 *
 * Why not call libexttextcat: on the short texts cairn gives it (at most
 * "max_bytes" of a prompt or an answer) most of the time of a call went
 * to fixed work — a 64 KB hash table zeroed and a memory pool set up per
 * call, every entry copied through the heap as a 32-byte struct, the top
 * 400 n-grams sorted by string and then merged, string compare by string
 * compare, with each of the 15 fingerprints — about 0.5 to 0.9 million
 * instructions a call, more than half of a whole request in rules mode.
 *
 * Here the fingerprints are merged at load into one hash table from an
 * n-gram to its rank in every language, so a text's n-grams are looked up
 * once each, and the per-call work is the n-gram count itself. The
 * answers are the library's, bit for bit, because every step that decides
 * which n-grams a text keeps and in what rank is done the way the library
 * does it (tests/unit/test_ngram.c checks this against the library):
 *   - the text is cut where the library cuts it: runs of white space and
 *     digits become one "_", a leading "_" is added, a trailing one only
 *     after trailing white space, and the kept text stops at `limit`
 *     bytes (so the library reads on past `limit` when runs shrink);
 *   - n-grams are 1 to 5 characters (a character being a lead byte and as
 *     many bytes as it announces), from every character on, each
 *     extension stopping after a "_"; the whole count stops the first time
 *     an extension reaches the end of the text;
 *   - equal counts are ordered as the library's heap orders them: the
 *     n-grams enter a 400-entry min-heap in the order of its hash table
 *     (bucket by bucket, newest first in a bucket, with its hash
 *     function), and ranks follow the order they leave it;
 *   - the distance adds |rank difference| for an n-gram the fingerprint
 *     has and 400 for one it lacks; candidates are those under 1.03 times
 *     the best distance, in the order of the configuration among equal
 *     distances, and more than 5 is no answer.
 * (The library's early exit when a distance passes the running threshold
 * changes no answer: a distance only grows, and one past the threshold
 * can never be a candidate.)
 */
#include "ngram.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

#define NGRAM_TOP      400 /* n-grams in a fingerprint, and kept of a text */
#define NGRAM_CHARS    5   /* characters in an n-gram, at most */
#define NGRAM_BYTES    (NGRAM_CHARS * 4)
#define NGRAM_OUTPLACE 400 /* the distance of an n-gram a fingerprint lacks */
#define NGRAM_BUCKETS  (1u << 13)
#define NGRAM_MAX_CAND 5
#define NGRAM_LANES    16 /* languages scored at once */

/* An n-gram as a key: its bytes, zero-padded. A text holds no NUL, so
 * the padding tells the length, and two n-grams are equal when their
 * three words are; most (ASCII) fit the first. */
struct key {
    uint64_t w[3];
};

_Static_assert(NGRAM_BYTES <= sizeof(struct key), "an n-gram fits a key");

static bool key_eq(const struct key *a, const struct key *b)
{
    return a->w[0] == b->w[0] && a->w[1] == b->w[1] && a->w[2] == b->w[2];
}

static uint32_t key_hash(const struct key *k)
{
    uint64_t h = k->w[0] * 0x9E3779B97F4A7C15u ^ k->w[1] * 0xC2B2AE3D27D4EB4Fu ^
                 k->w[2] * 0x165667B19E3779F9u;
    return (uint32_t)(h >> 32);
}

/* One fingerprint file as read: its n-grams in rank order (an all-zero
 * key for a line that holds a rank but matches nothing). */
struct print {
    struct key *g;
    size_t n;
};

/* Sixteen languages' ranks of one n-gram, and the arithmetic on them. */
typedef int16_t rank16 __attribute__((vector_size(32)));
typedef int32_t dist16 __attribute__((vector_size(64)));

struct cairn_ngram {
    struct print prints[CAIRN_NGRAM_MAX_LANGS];
    int ids[CAIRN_NGRAM_MAX_LANGS];
    size_t nprints;
    /* Sealed: every distinct n-gram of every print, found through an
     * open-addressing table of their numbers, each in a row of its own
     * that holds its key and then its rank in each print (-1: not in that
     * print), the prints padded to a multiple of NGRAM_LANES with "not in
     * it"; a row is whole cache lines, so that a lookup on a cold cache
     * costs the slot and one line. The prints' own arrays are then freed. */
    unsigned char *rows; /* owned: nkeys rows of `row` bytes, 64-aligned */
    size_t nkeys, lanes, row;
    uint16_t *slots; /* owned: cap; 0 is empty, else 1 + the n-gram's number */
    size_t cap;      /* power of two; 0 before seal */
};

_Static_assert(CAIRN_NGRAM_MAX_LANGS *NGRAM_TOP < UINT16_MAX, "n-gram numbers fit 16 bits");
_Static_assert(CAIRN_NGRAM_MAX_LANGS % NGRAM_LANES == 0, "lanes cover every print");

static struct key *row_key(const struct cairn_ngram *g, size_t n)
{
    return (struct key *)(g->rows + n * g->row);
}

static int16_t *row_ranks(const struct cairn_ngram *g, size_t n)
{
    return (int16_t *)(g->rows + n * g->row + sizeof(struct key));
}

/* The slot of k in the sealed table, or the empty slot it would take. */
static size_t slot_of(const struct cairn_ngram *g, const struct key *k)
{
    size_t i = key_hash(k) & (g->cap - 1);
    while (g->slots[i] != 0 && !key_eq(row_key(g, g->slots[i] - 1u), k))
        i = (i + 1) & (g->cap - 1);
    return i;
}

struct cairn_ngram *cairn_ngram_new(void)
{
    return cairn_calloc(1, sizeof(struct cairn_ngram));
}

void cairn_ngram_free(struct cairn_ngram *g)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < g->nprints; i++)
        free(g->prints[i].g);
    free(g->rows);
    free(g->slots);
    free(g);
}

/* A fingerprint file line as the library reads it: white space trimmed
 * at both ends, cut at the first space or tab (the count that follows),
 * dropped when longer than an n-gram can be; at most 400 lines kept. */
int cairn_ngram_add(struct cairn_ngram *g, const char *path, int id, char *why, size_t whylen)
{
    if (g->nprints == CAIRN_NGRAM_MAX_LANGS) {
        snprintf(why, whylen, "%s: at most %d fingerprints", path, CAIRN_NGRAM_MAX_LANGS);
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(why, whylen, "%s: cannot be read", path);
        return -1;
    }
    struct print *p = &g->prints[g->nprints];
    p->g = cairn_calloc(NGRAM_TOP, sizeof(*p->g));
    p->n = 0;
    char line[1024];
    while (p->n < NGRAM_TOP && fgets(line, sizeof(line), f) != NULL) {
        char *s = line, *e = line + strlen(line);
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        *e = '\0';
        while (isspace((unsigned char)*s))
            s++;
        s[strcspn(s, " \t")] = '\0';
        size_t n = strlen(s);
        if (n > NGRAM_BYTES)
            continue;
        memcpy(&p->g[p->n++], s, n); /* zero-padded: calloc */
    }
    fclose(f);
    g->ids[g->nprints++] = id;
    return 0;
}

void cairn_ngram_seal(struct cairn_ngram *g)
{
    size_t total = 0;
    for (size_t i = 0; i < g->nprints; i++)
        total += g->prints[i].n;
    g->lanes = (g->nprints + NGRAM_LANES - 1) / NGRAM_LANES * NGRAM_LANES;
    if (g->lanes == 0)
        g->lanes = NGRAM_LANES;
    g->cap = 16;
    while (g->cap < 2 * total)
        g->cap *= 2;
    g->slots = cairn_calloc(g->cap, sizeof(*g->slots));
    g->row = (sizeof(struct key) + g->lanes * sizeof(int16_t) + 63) / 64 * 64;
    g->rows = cairn_aligned_alloc(64, (total ? total : 1) * g->row);
    memset(g->rows, 0xFF, (total ? total : 1) * g->row);
    g->nkeys = 0;
    static const struct key none;
    for (size_t k = 0; k < g->nprints; k++) {
        for (size_t r = 0; r < g->prints[k].n; r++) {
            const struct key *x = &g->prints[k].g[r];
            if (key_eq(x, &none))
                continue; /* an empty line holds a rank but matches nothing */
            size_t i = slot_of(g, x);
            if (g->slots[i] == 0) {
                *row_key(g, g->nkeys) = *x;
                g->slots[i] = (uint16_t)++g->nkeys;
            }
            /* A repeated line: the library's sorted merge meets the
             * first (lowest rank) one. */
            int16_t *rank = &row_ranks(g, g->slots[i] - 1u)[k];
            if (*rank < 0)
                *rank = (int16_t)r;
        }
    }
    for (size_t k = 0; k < g->nprints; k++) {
        free(g->prints[k].g);
        g->prints[k].g = NULL;
    }
}

/* ---- one text ------------------------------------------------------- */

/* The library's "invalid" bytes, which separate words (C locale). */
static bool separator(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '0' && c <= '9');
}

/* The text as the library keeps it (see the top of the file); `out` has
 * room for limit + 3 bytes. @return its length (NUL not counted). */
static size_t prepare(const char *text, size_t len, size_t limit, char *out)
{
    size_t i = 0, w = 0, wlimit = limit + 1;
#define AT(k) ((k) < len ? (unsigned char)text[k] : 0u)
    if (separator(AT(0)))
        goto space;
    if (AT(0) == 0)
        goto end;
    out[w++] = '_';
    if (w == wlimit)
        goto stop;
    goto word;
space:
    i++;
    if (separator(AT(i)))
        goto space;
    if (AT(i) == 0)
        goto end;
    out[w++] = '_';
    if (w == wlimit)
        goto stop;
word:
    out[w++] = (char)AT(i);
    i++;
    if (w == wlimit)
        goto end;
    if (separator(AT(i)))
        goto space;
    if (AT(i) == 0)
        goto stop;
    goto word;
end:
    out[w++] = '_';
stop:
    out[w] = '\0';
#undef AT
    return w;
}

/* Bytes of the character at s: the lead byte's announced length, cut
 * short by the end of the text (the library's own reading, which does
 * not check the bytes that follow). */
static size_t char_len(const char *s)
{
    unsigned char c = (unsigned char)s[0];
    size_t n = 0;
    if (c & 0x80) {
        unsigned char esc = (unsigned char)((c & 0xF0) << 1);
        while ((esc & 0x80) && s[n] != '\0') {
            esc = (unsigned char)(esc << 1);
            n++;
        }
    }
    if (s[n] != '\0')
        n++;
    return n;
}

/* The library's hash table, without its cost: a bucket's head is only
 * read once the bucket is marked used, so nothing is zeroed but the
 * bitmap (1 KB rather than 64 KB), and the walk in bucket order skips
 * empty words of the bitmap 64 buckets at a time. */
struct entry {
    struct key k;
    uint32_t cnt;
    int32_t next; /* in the bucket's chain, newest first */
};

#define SMALL_ENTRIES 1400 /* on the stack: enough for max_bytes 256 */

struct counts {
    uint64_t used[NGRAM_BUCKETS / 64];
    int32_t heads[NGRAM_BUCKETS];
    struct entry *e;
    size_t n;
};

static void count(struct counts *t, const struct key *k, uint32_t b)
{
    if (!(t->used[b / 64] & (UINT64_C(1) << (b % 64)))) {
        t->used[b / 64] |= UINT64_C(1) << (b % 64);
        t->heads[b] = -1;
    }
    for (int32_t i = t->heads[b]; i >= 0; i = t->e[i].next)
        if (key_eq(&t->e[i].k, k)) {
            t->e[i].cnt++;
            return;
        }
    struct entry *x = &t->e[t->n];
    x->k = *k;
    x->cnt = 1;
    x->next = t->heads[b];
    t->heads[b] = (int32_t)t->n++;
}

/* Every n-gram of the prepared text p, counted: from each character on,
 * the n-grams of 1 to 5 characters, built a character at a time. The
 * library's bucket hash of an n-gram of `chars` characters and bytes
 * b[0..m) is chars*13*31^m + sum b[j]*31^(m-1-j) (signed bytes, 32-bit),
 * so its second term and the power grow with the n-gram. */
static void count_all(struct counts *t, const char *p)
{
    size_t at = 0;
    for (;;) {
        /* The key is built in registers: bytes stored one by one and read
         * back as words would stall every store-to-load forwarding. */
        struct key n = {{0, 0, 0}};
        uint32_t poly = 0, pow = 1;
        size_t m = 0;
        const char *q = p + at;
        for (int chars = 1; chars <= NGRAM_CHARS; chars++) {
            size_t d = char_len(q);
            for (size_t j = 0; j < d; j++, m++) {
                unsigned char c = (unsigned char)q[j];
                n.w[m / 8] |= (uint64_t)c << (m % 8 * 8);
                poly = poly * 31u + (uint32_t)(int32_t)(signed char)c;
                pow *= 31u;
            }
            count(t, &n, ((uint32_t)chars * 13u * pow + poly) & (NGRAM_BUCKETS - 1));
            /* After the first character, an extension ends with a "_";
             * the whole count ends where an extension meets the end. */
            if (chars > 1 && *q == '_')
                break;
            q += d;
            if (*q == '\0')
                return;
        }
        at += char_len(p + at);
    }
}

/* The library's min-heap on counts. */
struct slot {
    uint32_t cnt;
    int32_t e; /* entry number */
};

struct heap {
    struct slot v[NGRAM_TOP];
    size_t size;
};

static void swap(struct heap *h, size_t a, size_t b)
{
    struct slot t = h->v[a];
    h->v[a] = h->v[b];
    h->v[b] = t;
}

static void sift_up(struct heap *h, size_t child)
{
    while (child > 0) {
        size_t parent = (child - 1) >> 1;
        if (!(h->v[parent].cnt > h->v[child].cnt))
            return;
        swap(h, parent, child);
        child = parent;
    }
}

static void sift_down(struct heap *h, size_t size, size_t parent)
{
    size_t child = parent * 2 + 1;
    while (child < size) {
        if (child + 1 < size && h->v[child].cnt > h->v[child + 1].cnt)
            child++;
        if (!(h->v[parent].cnt > h->v[child].cnt))
            return;
        swap(h, parent, child);
        parent = child;
        child = parent * 2 + 1;
    }
}

static void heap_insert(struct heap *h, const struct entry *e, int32_t k)
{
    struct slot s = {e[k].cnt, k};
    if (h->size < NGRAM_TOP) {
        h->v[h->size] = s;
        sift_up(h, h->size);
        h->size++;
        return;
    }
    if (s.cnt < h->v[0].cnt)
        return;
    h->v[0] = s;
    sift_down(h, h->size, 0);
}

static int32_t heap_extract(struct heap *h)
{
    int32_t top = h->v[0].e;
    h->v[0] = h->v[h->size - 1];
    sift_down(h, h->size, 0); /* as the library: before the size shrinks */
    h->size--;
    return top;
}

/* Add the out-of-place distance of the text's n-gram of rank r to sixteen
 * languages' sums at once: |rank - r|, or 400 where the language lacks
 * it. */
static void add_distance16(dist16 *sum, const int16_t *ranks, int32_t r)
{
    rank16 raw;
    memcpy(&raw, ranks, sizeof(raw));
    dist16 rank = __builtin_convertvector(raw, dist16);
    dist16 d = rank - r;
    dist16 sign = d >> 31;
    dist16 lacks = rank >> 31; /* -1 where the rank is -1 */
    *sum += (((d ^ sign) - sign) & ~lacks) | (NGRAM_OUTPLACE & lacks);
}

int cairn_ngram_classify(const struct cairn_ngram *g, const char *text, size_t len, size_t limit,
                         int ids[NGRAM_MAX_CAND])
{
    if (g == NULL || g->cap == 0 || g->nprints == 0 || limit == 0)
        return 0;
    char small[1024];
    char *buf = limit + 3 <= sizeof(small) ? small : cairn_malloc(limit + 3);
    prepare(text, len, limit, buf);

    /* At most 5 n-grams start at each of the limit + 2 kept bytes. */
    struct counts t;
    struct entry small_e[SMALL_ENTRIES];
    size_t most = 5 * (limit + 2) + 8;
    memset(t.used, 0, sizeof(t.used));
    t.n = 0;
    t.e = most <= SMALL_ENTRIES ? small_e : cairn_malloc(most * sizeof(*t.e));
    count_all(&t, buf);

    struct heap h = {.size = 0};
    for (size_t w = 0; w < NGRAM_BUCKETS / 64; w++)
        for (uint64_t bits = t.used[w]; bits != 0; bits &= bits - 1) {
            size_t b = w * 64 + (size_t)__builtin_ctzll(bits);
            for (int32_t k = t.heads[b]; k >= 0; k = t.e[k].next)
                heap_insert(&h, t.e, k);
        }

    /* An n-gram no fingerprint has (most of a text's) costs every
     * language the same: counted once, added at the end. */
    dist16 acc[CAIRN_NGRAM_MAX_LANGS / NGRAM_LANES] = {0};
    size_t groups = g->lanes / NGRAM_LANES;
    int32_t unknown = 0;
    for (size_t r = h.size; r-- > 0;) {
        size_t i = slot_of(g, &t.e[heap_extract(&h)].k);
        if (g->slots[i] == 0) {
            unknown += NGRAM_OUTPLACE;
            continue;
        }
        const int16_t *ranks = row_ranks(g, g->slots[i] - 1u);
        for (size_t x = 0; x < groups; x++)
            add_distance16(&acc[x], ranks + x * NGRAM_LANES, (int32_t)r);
    }
    int32_t dist[CAIRN_NGRAM_MAX_LANGS];
    for (size_t k = 0; k < g->nprints; k++)
        dist[k] = acc[k / NGRAM_LANES][k % NGRAM_LANES] + unknown;
    if (t.e != small_e)
        free(t.e);
    if (buf != small)
        free(buf);

    /* The library's verdict: the running best sets a threshold 3% above
     * it; those under the last threshold are candidates, in order. */
    int32_t best = -1, threshold = 0;
    for (size_t k = 0; k < g->nprints; k++)
        if (best < 0 || dist[k] < best) {
            best = dist[k];
            threshold = (int32_t)((double)dist[k] * 1.03);
        }
    int n = 0;
    int32_t score[NGRAM_MAX_CAND];
    for (size_t k = 0; k < g->nprints; k++) {
        if (dist[k] >= threshold)
            continue;
        if (n == NGRAM_MAX_CAND)
            return 0;
        /* Insert in order of distance, after equal ones (a stable sort). */
        int at = n;
        while (at > 0 && score[at - 1] > dist[k]) {
            score[at] = score[at - 1];
            ids[at] = ids[at - 1];
            at--;
        }
        score[at] = dist[k];
        ids[at] = g->ids[k];
        n++;
    }
    return n;
}
