/*
 * annotation_cache.c — bounded LRU cache of annotator answers (see
 * annotation_cache.h).
 *
 * Each entry is one allocation: its links, key and value together. Entries
 * sit on a doubly linked list, most recently used first, and in a chained
 * hash table indexed by the first 8 bytes of the key: a SHA-256 digest is
 * already uniformly random, so no further hashing is needed, and nobody
 * can aim many conversations at one chain without breaking SHA-256. The
 * table doubles when the entries would outnumber its buckets, which keeps
 * chains short on average and get/put O(1); it never shrinks, so its size
 * follows the peak number of entries, which the caps bound.
 *
 * Expired entries are removed when they are looked up, or when they reach
 * the least-recently-used end while a put needs room; until then they
 * count towards the caps, which stay honest about the memory held.
 */
#include "annotation_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "alloc.h"

#define MIN_BUCKETS 16

struct entry {
    struct entry *prev, *next; /* LRU list, most recently used first */
    struct entry *hnext;       /* hash chain */
    uint64_t expires_us;       /* a hit while now is before this */
    size_t len;                /* of value, without its NUL */
    unsigned char key[CAIRN_ANNOTATION_KEY_LEN];
    char value[]; /* len bytes and a NUL */
};

/* The documented overhead covers the entry's own fields, the NUL, two
 * bucket pointers and the allocator's 16 bytes. */
_Static_assert(offsetof(struct entry, value) - CAIRN_ANNOTATION_KEY_LEN + 1 + 2 * sizeof(void *) +
                       16 <=
                   CAIRN_ANNOTATION_CACHE_ENTRY_OVERHEAD,
               "CAIRN_ANNOTATION_CACHE_ENTRY_OVERHEAD is below what an entry takes");

struct cairn_annotation_cache {
    size_t max_entries, max_bytes;
    uint64_t ttl_us;                           /* 0 = no expiry */
    struct entry **buckets;                    /* owned; chains of entries */
    size_t mask;                               /* bucket count - 1; a power of two */
    struct entry *head, *tail;                 /* LRU list; the entries are owned */
    struct cairn_annotation_cache_stats stats; /* entries and bytes kept current */
};

/* ---- the key ------------------------------------------------------------ */

static const char KEY_VERSION[16] = {'c', 'a', 'i', 'r', 'n', '-', 'a', 'n',
                                     'n', 'o', 't', '-', 'k', 'e', 'y', '1'};

/* SHA-256 over memory that is there can only fail for want of memory:
 * treated as cairn_malloc treats it. */
static void digest_failed(void)
{
    fprintf(stderr, "cairn: SHA-256 failed computing an annotation cache key\n");
    abort();
}

static void hash_bytes(EVP_MD_CTX *ctx, const void *p, size_t n)
{
    if (n > 0 && EVP_DigestUpdate(ctx, p, n) != 1)
        digest_failed();
}

static void hash_tag_length(EVP_MD_CTX *ctx, char tag, size_t n)
{
    unsigned char b[9];
    b[0] = (unsigned char)tag;
    for (int i = 0; i < 8; i++)
        b[1 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    hash_bytes(ctx, b, sizeof(b));
}

/* A tag and FIELD(s) for s as it is. */
static void hash_field(EVP_MD_CTX *ctx, char tag, const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    hash_tag_length(ctx, tag, n);
    hash_bytes(ctx, s, n);
}

static bool is_white(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Where normalised text goes: counted only (ctx NULL), or hashed through
 * a small buffer. */
struct sink {
    EVP_MD_CTX *ctx;
    size_t count;
    size_t n;
    char buf[256];
};

static void sink_put(struct sink *k, char c)
{
    k->count++;
    if (k->ctx == NULL)
        return;
    k->buf[k->n++] = c;
    if (k->n == sizeof(k->buf)) {
        hash_bytes(k->ctx, k->buf, k->n);
        k->n = 0;
    }
}

/* s trimmed, with inner runs of white space as one space. */
static void normalise(const char *s, struct sink *k)
{
    bool space = false;
    for (; *s != '\0'; s++) {
        if (is_white(*s)) {
            space = k->count > 0; /* leading white space is dropped */
            continue;
        }
        if (space) /* only before more text: trailing white space is dropped */
            sink_put(k, ' ');
        space = false;
        sink_put(k, *s);
    }
    if (k->ctx != NULL)
        hash_bytes(k->ctx, k->buf, k->n);
}

/* 'T' and FIELD(normalised s): the length is needed first, so the text is
 * walked twice rather than copied. */
static void hash_text(EVP_MD_CTX *ctx, const char *s)
{
    struct sink count = {.ctx = NULL};
    normalise(s, &count);
    hash_tag_length(ctx, 'T', count.count);
    struct sink out = {.ctx = ctx};
    normalise(s, &out);
}

static void hash_message(EVP_MD_CTX *ctx, const cJSON *msg)
{
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
    hash_field(ctx, 'M', cJSON_IsString(role) ? role->valuestring : NULL);
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (cJSON_IsString(content)) {
        hash_text(ctx, content->valuestring);
        return;
    }
    if (!cJSON_IsArray(content))
        return;
    for (const cJSON *part = content->child; part != NULL; part = part->next) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const char *t = cJSON_IsString(type) ? type->valuestring : NULL;
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (t != NULL && strcmp(t, "text") == 0 && cJSON_IsString(text))
            hash_text(ctx, text->valuestring);
        else
            hash_field(ctx, 'P', t);
    }
}

void cairn_annotation_cache_key(const cJSON *messages,
                                const unsigned char annotator_id[CAIRN_ANNOTATION_KEY_LEN],
                                unsigned char out[CAIRN_ANNOTATION_KEY_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        digest_failed();
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        digest_failed();
    hash_bytes(ctx, KEY_VERSION, sizeof(KEY_VERSION));
    hash_bytes(ctx, annotator_id, CAIRN_ANNOTATION_KEY_LEN);
    if (cJSON_IsArray(messages))
        for (const cJSON *msg = messages->child; msg != NULL; msg = msg->next)
            hash_message(ctx, msg);
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != CAIRN_ANNOTATION_KEY_LEN)
        digest_failed();
    EVP_MD_CTX_free(ctx);
}

/* ---- the cache ---------------------------------------------------------- */

struct cairn_annotation_cache *cairn_annotation_cache_new(size_t max_entries, size_t max_bytes,
                                                          uint64_t ttl_us)
{
    struct cairn_annotation_cache *c = cairn_calloc(1, sizeof(*c));
    c->max_entries = max_entries;
    c->max_bytes = max_bytes;
    c->ttl_us = ttl_us;
    c->buckets = cairn_calloc(MIN_BUCKETS, sizeof(*c->buckets));
    c->mask = MIN_BUCKETS - 1;
    return c;
}

void cairn_annotation_cache_free(struct cairn_annotation_cache *c)
{
    if (c == NULL)
        return;
    for (struct entry *e = c->head, *next; e != NULL; e = next) {
        next = e->next;
        free(e);
    }
    free(c->buckets);
    free(c);
}

static size_t bucket_of(const struct cairn_annotation_cache *c, const unsigned char *key)
{
    uint64_t h;
    memcpy(&h, key, sizeof(h));
    return (size_t)h & c->mask;
}

/* The link that points to key's entry, or to NULL at the end of its chain. */
static struct entry **find_link(struct cairn_annotation_cache *c, const unsigned char *key)
{
    struct entry **link = &c->buckets[bucket_of(c, key)];
    while (*link != NULL && memcmp((*link)->key, key, CAIRN_ANNOTATION_KEY_LEN) != 0)
        link = &(*link)->hnext;
    return link;
}

static bool expired(const struct cairn_annotation_cache *c, const struct entry *e, uint64_t now_us)
{
    return c->ttl_us != 0 && now_us >= e->expires_us;
}

static void lru_unlink(struct cairn_annotation_cache *c, struct entry *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(struct cairn_annotation_cache *c, struct entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head != NULL)
        c->head->prev = e;
    else
        c->tail = e;
    c->head = e;
}

/* Unlink e from its chain and the list, and free it. */
static void do_remove(struct cairn_annotation_cache *c, struct entry *e)
{
    struct entry **link = find_link(c, e->key);
    *link = e->hnext;
    lru_unlink(c, e);
    c->stats.entries--;
    c->stats.bytes -= CAIRN_ANNOTATION_CACHE_ENTRY_BYTES(e->len);
    free(e);
}

/* Twice the buckets; every entry moves to its new chain. */
static void do_grow(struct cairn_annotation_cache *c)
{
    size_t n = (c->mask + 1) * 2;
    free(c->buckets);
    c->buckets = cairn_calloc(n, sizeof(*c->buckets));
    c->mask = n - 1;
    for (struct entry *e = c->head; e != NULL; e = e->next) {
        size_t b = bucket_of(c, e->key);
        e->hnext = c->buckets[b];
        c->buckets[b] = e;
    }
}

bool cairn_annotation_cache_get(struct cairn_annotation_cache *c,
                                const unsigned char key[CAIRN_ANNOTATION_KEY_LEN], uint64_t now_us,
                                const char **value, size_t *len)
{
    struct entry *e = *find_link(c, key);
    if (e != NULL && expired(c, e, now_us)) {
        do_remove(c, e);
        c->stats.expirations++;
        e = NULL;
    }
    if (e == NULL) {
        c->stats.misses++;
        return false;
    }
    if (e != c->head) {
        lru_unlink(c, e);
        lru_push_front(c, e);
    }
    c->stats.hits++;
    *value = e->value;
    *len = e->len;
    return true;
}

void cairn_annotation_cache_put(struct cairn_annotation_cache *c,
                                const unsigned char key[CAIRN_ANNOTATION_KEY_LEN],
                                const char *value, size_t len, uint64_t now_us)
{
    struct entry *old = *find_link(c, key);
    if (old != NULL)
        do_remove(c, old);

    /* Written so that no sum can wrap, whatever len and max_bytes are. */
    const size_t fixed = CAIRN_ANNOTATION_KEY_LEN + CAIRN_ANNOTATION_CACHE_ENTRY_OVERHEAD;
    if (c->max_entries == 0 || c->max_bytes < fixed || len > c->max_bytes - fixed)
        return;
    size_t cost = CAIRN_ANNOTATION_CACHE_ENTRY_BYTES(len);

    /* The list cannot run dry first: with it empty, both caps hold. */
    while (c->stats.entries >= c->max_entries || cost > c->max_bytes - c->stats.bytes) {
        struct entry *victim = c->tail;
        if (expired(c, victim, now_us))
            c->stats.expirations++;
        else
            c->stats.evictions++;
        do_remove(c, victim);
    }

    if (c->stats.entries + 1 > c->mask + 1)
        do_grow(c);
    struct entry *e = cairn_malloc(offsetof(struct entry, value) + len + 1);
    memcpy(e->key, key, CAIRN_ANNOTATION_KEY_LEN);
    e->len = len;
    if (len > 0)
        memcpy(e->value, value, len);
    e->value[len] = '\0';
    e->expires_us = now_us > UINT64_MAX - c->ttl_us ? UINT64_MAX : now_us + c->ttl_us;
    size_t b = bucket_of(c, key);
    e->hnext = c->buckets[b];
    c->buckets[b] = e;
    lru_push_front(c, e);
    c->stats.entries++;
    c->stats.bytes += cost;
    c->stats.insertions++;
}

void cairn_annotation_cache_stats(const struct cairn_annotation_cache *c,
                                  struct cairn_annotation_cache_stats *out)
{
    *out = c->stats;
}
