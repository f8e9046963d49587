/*
 * test_annotation_cache.c — unit tests for include/annotation_cache.h.
 *
 * Time is an argument of every call, so TTLs run on simulated time from
 * T0, a realistic non-zero monotonic time, and never look at the clock.
 *
 * The cache: hit and miss (an empty value is a hit); TTL expiry exactly at
 * its boundary, no expiry with TTL 0, a hit that does not extend the TTL;
 * LRU eviction by the entry cap and by the byte cap as scenario tables of
 * puts and gets; replacement (bytes, recency, no eviction); values too big
 * to store, without overflow for absurd lengths; every stats counter; keys
 * that share a hash chain; growth of the table; and 100 000 random puts
 * and gets checked step by step against a plain reference model (caps,
 * bytes, every hit's bytes, every counter).
 *
 * The key: a known answer built by hand from the format documented in the
 * header (pins the framing, the version tag and the normalisation, with a
 * text longer than the hashing buffer), then pairs of conversations that
 * must share a key or must not.
 */
#include "unit.h"

#include <cjson/cJSON.h>
#include <openssl/sha.h>

#include "annotation_cache.h"

#define T0_US   1000000000ull /* 1000 s after boot */
#define KEY_LEN CAIRN_ANNOTATION_KEY_LEN
#define E(n)    CAIRN_ANNOTATION_CACHE_ENTRY_BYTES(n)

/* A key per letter; distinct in their first 8 bytes, like digests. */
static void key_of(char name, unsigned char key[KEY_LEN])
{
    for (size_t i = 0; i < KEY_LEN; i++)
        key[i] = (unsigned char)(name * 31 + i * 7);
}

/* `n` bytes of value that tell which put made them. */
static void fill_value(char *buf, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)('a' + (seed + i) % 26);
}

static void put_n(struct cairn_annotation_cache *c, char name, size_t n, uint64_t now)
{
    unsigned char key[KEY_LEN];
    char *v = malloc(n ? n : 1);
    assert_non_null(v);
    fill_value(v, n, (unsigned)name);
    key_of(name, key);
    cairn_annotation_cache_put(c, key, v, n, now);
    free(v);
}

static bool has(struct cairn_annotation_cache *c, char name, uint64_t now)
{
    unsigned char key[KEY_LEN];
    const char *v;
    size_t len;
    key_of(name, key);
    return cairn_annotation_cache_get(c, key, now, &v, &len);
}

static struct cairn_annotation_cache_stats stats_of(const struct cairn_annotation_cache *c)
{
    struct cairn_annotation_cache_stats s;
    cairn_annotation_cache_stats(c, &s);
    return s;
}

/* ---- hit, miss, TTL ----------------------------------------------------- */

static void test_hit_miss(void **state)
{
    (void)state;
    rows_begin();
    struct cairn_annotation_cache *c = cairn_annotation_cache_new(10, 10000, 0);
    unsigned char a[KEY_LEN], b[KEY_LEN], empty[KEY_LEN];
    key_of('A', a);
    key_of('B', b);
    key_of('Z', empty);
    const char *v = NULL;
    size_t len = 99;

    check(!cairn_annotation_cache_get(c, a, T0_US, &v, &len), "empty cache", "hit");
    check(v == NULL && len == 99, "empty cache", "a miss wrote its outputs");
    cairn_annotation_cache_put(c, a, LIT("task=CodeFix\ndomain=Code"), T0_US);
    cairn_annotation_cache_put(c, empty, "", 0, T0_US);
    if (check(cairn_annotation_cache_get(c, a, T0_US, &v, &len), "A", "miss"))
        check(len == 24 && memcmp(v, "task=CodeFix\ndomain=Code", 24) == 0 && v[len] == '\0', "A",
              "got \"%.*s\" (%zu bytes)", (int)len, v, len);
    check(!cairn_annotation_cache_get(c, b, T0_US, &v, &len), "B never put", "hit");
    if (check(cairn_annotation_cache_get(c, empty, T0_US, &v, &len), "empty value",
              "miss: \"nothing applies\" must be a hit"))
        check(len == 0 && v[0] == '\0', "empty value", "len %zu", len);
    check(!has(c, 'B', T0_US), "B after other puts", "hit");
    cairn_annotation_cache_free(c);
    cairn_annotation_cache_free(NULL);
    rows_end();
}

/* Put at T0 with a TTL of 1000 us: served up to T0 + 999, gone at T0 +
 * 1000. Each row on a fresh cache, since an expired get removes. */
static void test_ttl_boundary(void **state)
{
    static const struct {
        const char *name;
        uint64_t ttl_us, at_us; /* at: from T0 */
        bool hit;
    } rows[] = {
        {"at the put", 1000, 0, true},
        {"1 us before the TTL", 1000, 999, true},
        {"exactly at the TTL", 1000, 1000, false},
        {"after the TTL", 1000, 5000, false},
        {"TTL 1: the same microsecond only", 1, 0, true},
        {"TTL 1: the next", 1, 1, false},
        {"TTL 0: never expires", 0, UINT64_MAX - T0_US, true},
        {"huge TTL does not wrap", UINT64_MAX - 5, 1000000, true},
    };
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct cairn_annotation_cache *c = cairn_annotation_cache_new(10, 10000, rows[i].ttl_us);
        put_n(c, 'A', 5, T0_US);
        bool hit = has(c, 'A', T0_US + rows[i].at_us);
        check(hit == rows[i].hit, rows[i].name, "%s, want %s", hit ? "hit" : "miss",
              rows[i].hit ? "hit" : "miss");
        struct cairn_annotation_cache_stats s = stats_of(c);
        if (rows[i].hit)
            check(s.entries == 1 && s.expirations == 0, rows[i].name, "%zu entries, %llu expired",
                  s.entries, (unsigned long long)s.expirations);
        else
            check(s.entries == 0 && s.bytes == 0 && s.expirations == 1 && s.misses == 1,
                  rows[i].name, "expired entry kept: %zu entries, %zu bytes, %llu expired",
                  s.entries, s.bytes, (unsigned long long)s.expirations);
        cairn_annotation_cache_free(c);
    }
    rows_end();
}

/* The TTL runs from the put: hits do not extend it, a new put does. */
static void test_ttl_from_put(void **state)
{
    (void)state;
    rows_begin();
    struct cairn_annotation_cache *c = cairn_annotation_cache_new(10, 10000, 1000);
    put_n(c, 'A', 5, T0_US);
    check(has(c, 'A', T0_US + 900), "hit at 900", "miss");
    check(!has(c, 'A', T0_US + 1000), "at 1000 after a hit at 900", "hit: the hit extended it");
    put_n(c, 'A', 5, T0_US + 1000);
    check(has(c, 'A', T0_US + 1999), "put again at 1000, get at 1999", "miss");
    put_n(c, 'A', 5, T0_US + 1500);
    check(has(c, 'A', T0_US + 2499), "replaced at 1500, get at 2499", "miss");
    check(!has(c, 'A', T0_US + 2500), "replaced at 1500, get at 2500", "hit");
    cairn_annotation_cache_free(c);
    rows_end();
}

/* ---- eviction scenarios ------------------------------------------------- */

enum op { END, PUT, GET };

struct op_step {
    enum op op;
    char key;
    size_t len;  /* PUT: value length */
    uint64_t at; /* from T0 */
    bool hit;    /* GET: expected */
};

#define P(k, n)                                                                                    \
    {                                                                                              \
        PUT, k, n, 0, false                                                                        \
    }
#define PT(k, n, at)                                                                               \
    {                                                                                              \
        PUT, k, n, at, false                                                                       \
    }
#define G(k, hit)                                                                                  \
    {                                                                                              \
        GET, k, 0, 0, hit                                                                          \
    }
#define GT(k, hit, at)                                                                             \
    {                                                                                              \
        GET, k, 0, at, hit                                                                         \
    }

static const struct {
    const char *name;
    struct {
        size_t entries, bytes;
        uint64_t ttl_us;
    } cap;
    struct op_step steps[12]; /* up to the first END */
    struct {
        const char *present, *absent; /* keys, after the steps */
        uint64_t evictions, expirations;
    } want;
} scenarios[] = {
    {"entry cap: the least recently put goes",
     {3, 1 << 20, 0},
     {P('A', 5), P('B', 5), P('C', 5), P('D', 5)},
     {"BCD", "A", 1, 0}},
    {"entry cap: a get makes an entry recent",
     {3, 1 << 20, 0},
     {P('A', 5), P('B', 5), P('C', 5), G('A', true), P('D', 5)},
     {"ACD", "B", 1, 0}},
    {"entry cap: a miss changes no order",
     {3, 1 << 20, 0},
     {P('A', 5), P('B', 5), P('C', 5), G('X', false), P('D', 5), P('E', 5)},
     {"CDE", "AB", 2, 0}},
    {"entry cap: a replacement makes an entry recent and evicts nothing",
     {3, 1 << 20, 0},
     {P('A', 5), P('B', 5), P('C', 5), P('A', 7), P('D', 5)},
     {"ACD", "B", 1, 0}},
    {"entry cap 1",
     {1, 1 << 20, 0},
     {P('A', 5), P('B', 5), G('A', false), G('B', true)},
     {"B", "A", 1, 0}},
    {"byte cap: exactly full holds",
     {100, 2 * E(10), 0},
     {P('A', 10), P('B', 10)},
     {"AB", "", 0, 0}},
    {"byte cap: when full, even a small entry evicts the oldest",
     {100, 2 * E(10), 0},
     {P('A', 10), P('B', 10), P('C', 1)},
     {"BC", "A", 1, 0}},
    {"byte cap: a big value evicts as many as it needs, oldest first",
     {100, 3 * E(10), 0},
     {P('A', 10), P('B', 10), P('C', 10), G('A', true), P('D', 30)},
     {"AD", "BC", 2, 0}},
    {"byte cap: a value of exactly the cap empties the cache",
     {100, E(100), 0},
     {P('A', 10), P('B', 10), P('C', 100)},
     {"C", "AB", 2, 0}},
    {"byte cap: a value too big stores nothing and evicts nothing",
     {100, E(100), 0},
     {P('A', 10), P('B', 101), G('B', false)},
     {"A", "B", 0, 0}},
    {"an expired entry at the LRU end counts as expired, not evicted",
     {2, 1 << 20, 1000},
     {PT('A', 5, 0), PT('B', 5, 500), PT('C', 5, 1200)},
     {"BC", "A", 0, 1}},
    {"an expired entry found by get is removed",
     {2, 1 << 20, 1000},
     {PT('A', 5, 0), PT('B', 5, 500), GT('A', false, 1000), PT('C', 5, 1000)},
     {"BC", "A", 0, 1}},
};

static void test_eviction_scenarios(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(scenarios); i++) {
        const char *row = scenarios[i].name;
        struct cairn_annotation_cache *c = cairn_annotation_cache_new(
            scenarios[i].cap.entries, scenarios[i].cap.bytes, scenarios[i].cap.ttl_us);
        uint64_t now = T0_US;
        for (size_t k = 0; k < NELEM(scenarios[i].steps) && scenarios[i].steps[k].op != END; k++) {
            const struct op_step *st = &scenarios[i].steps[k];
            now = T0_US + st->at;
            if (st->op == PUT) {
                put_n(c, st->key, st->len, now);
            } else {
                bool hit = has(c, st->key, now);
                check(hit == st->hit, row, "step %zu, get %c: %s", k, st->key,
                      hit ? "hit" : "miss");
            }
            struct cairn_annotation_cache_stats s = stats_of(c);
            check(s.entries <= scenarios[i].cap.entries && s.bytes <= scenarios[i].cap.bytes, row,
                  "after step %zu: %zu entries, %zu bytes, over the caps", k, s.entries, s.bytes);
        }
        struct cairn_annotation_cache_stats s = stats_of(c);
        check(s.evictions == scenarios[i].want.evictions, row, "%llu evictions, want %llu",
              (unsigned long long)s.evictions, (unsigned long long)scenarios[i].want.evictions);
        check(s.expirations == scenarios[i].want.expirations, row, "%llu expirations, want %llu",
              (unsigned long long)s.expirations, (unsigned long long)scenarios[i].want.expirations);
        /* Last, since gets reorder: the survivors, then the evicted. */
        for (const char *p = scenarios[i].want.present; *p; p++)
            check(has(c, *p, now), row, "%c evicted, want it kept", *p);
        for (const char *p = scenarios[i].want.absent; *p; p++)
            check(!has(c, *p, now), row, "%c kept, want it evicted", *p);
        cairn_annotation_cache_free(c);
    }
    rows_end();
}

/* ---- replacement, oversize, stats --------------------------------------- */

static void test_replace_updates_bytes(void **state)
{
    (void)state;
    rows_begin();
    struct cairn_annotation_cache *c = cairn_annotation_cache_new(10, 1 << 20, 0);
    unsigned char a[KEY_LEN];
    key_of('A', a);
    cairn_annotation_cache_put(c, a, LIT("task=Chat"), T0_US);
    struct cairn_annotation_cache_stats s = stats_of(c);
    check(s.entries == 1 && s.bytes == E(9), "first put", "%zu entries, %zu bytes, want 1, %zu",
          s.entries, s.bytes, E(9));
    cairn_annotation_cache_put(c, a, LIT("task=CodeFix\ndomain=Code"), T0_US);
    s = stats_of(c);
    check(s.entries == 1 && s.bytes == E(24), "bigger value", "%zu entries, %zu bytes, want 1, %zu",
          s.entries, s.bytes, E(24));
    cairn_annotation_cache_put(c, a, "", 0, T0_US);
    s = stats_of(c);
    check(s.entries == 1 && s.bytes == E(0), "empty value", "%zu entries, %zu bytes, want 1, %zu",
          s.entries, s.bytes, E(0));
    check(s.insertions == 3 && s.evictions == 0, "counters", "%llu insertions, %llu evictions",
          (unsigned long long)s.insertions, (unsigned long long)s.evictions);
    const char *v;
    size_t len;
    check(cairn_annotation_cache_get(c, a, T0_US, &v, &len) && len == 0, "latest value",
          "not the empty value last put");
    cairn_annotation_cache_free(c);
    rows_end();
}

static void test_not_stored(void **state)
{
    static const struct {
        const char *name;
        size_t max_entries, max_bytes, len;
    } rows[] = {
        {"value alone over the byte cap", 10, E(100), 101},
        {"byte cap below the fixed cost", 10, E(0) - 1, 0},
        {"byte cap 0", 10, 0, 0},
        {"entry cap 0", 0, 1 << 20, 1},
        {"length that would wrap a sum", 10, 1 << 20, SIZE_MAX},
        {"length that would wrap with the fixed cost", 10, SIZE_MAX, SIZE_MAX - KEY_LEN},
    };
    (void)state;
    rows_begin();
    char value[128] = "x"; /* never read past the stored length: none is stored */
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct cairn_annotation_cache *c =
            cairn_annotation_cache_new(rows[i].max_entries, rows[i].max_bytes, 0);
        unsigned char a[KEY_LEN];
        key_of('A', a);
        cairn_annotation_cache_put(c, a, value, rows[i].len, T0_US);
        struct cairn_annotation_cache_stats s = stats_of(c);
        check(s.entries == 0 && s.bytes == 0 && s.insertions == 0, rows[i].name,
              "stored: %zu entries, %zu bytes", s.entries, s.bytes);
        check(!has(c, 'A', T0_US), rows[i].name, "hit");
        cairn_annotation_cache_free(c);
    }

    /* A replacement too big removes the old value: it is out of date. */
    struct cairn_annotation_cache *c = cairn_annotation_cache_new(10, 2 * E(10), 0);
    put_n(c, 'A', 10, T0_US);
    put_n(c, 'B', 10, T0_US);
    put_n(c, 'A', 2 * E(10), T0_US);
    check(!has(c, 'A', T0_US), "oversize replacement", "the old value is still served");
    check(has(c, 'B', T0_US), "oversize replacement", "another entry was evicted");
    struct cairn_annotation_cache_stats s = stats_of(c);
    check(s.entries == 1 && s.bytes == E(10) && s.evictions == 0, "oversize replacement",
          "%zu entries, %zu bytes, %llu evictions", s.entries, s.bytes,
          (unsigned long long)s.evictions);
    cairn_annotation_cache_free(c);
    rows_end();
}

static void test_stats(void **state)
{
    (void)state;
    rows_begin();
    struct cairn_annotation_cache *c = cairn_annotation_cache_new(2, 1 << 20, 1000);
    struct cairn_annotation_cache_stats s = stats_of(c);
    check(s.hits == 0 && s.misses == 0 && s.insertions == 0 && s.evictions == 0 &&
              s.expirations == 0 && s.entries == 0 && s.bytes == 0,
          "new", "counters not zero");
    put_n(c, 'A', 3, T0_US);       /* insertion 1 */
    put_n(c, 'B', 4, T0_US + 100); /* insertion 2 */
    has(c, 'A', T0_US + 200);      /* hit 1; B is now least recent */
    has(c, 'C', T0_US + 200);      /* miss 1 */
    put_n(c, 'C', 5, T0_US + 300); /* insertion 3, evicts B */
    put_n(c, 'C', 6, T0_US + 400); /* insertion 4, a replacement */
    has(c, 'A', T0_US + 1000);     /* miss 2, expiration 1 */
    has(c, 'C', T0_US + 1000);     /* hit 2 */
    s = stats_of(c);
    static const struct cairn_annotation_cache_stats want = {
        .hits = 2,
        .misses = 2,
        .insertions = 4,
        .evictions = 1,
        .expirations = 1,
        .entries = 1,
        .bytes = E(6),
    };
#define FIELD(f)                                                                                   \
    check(s.f == want.f, #f, "%llu, want %llu", (unsigned long long)s.f, (unsigned long long)want.f)
    FIELD(hits);
    FIELD(misses);
    FIELD(insertions);
    FIELD(evictions);
    FIELD(expirations);
    FIELD(entries);
    FIELD(bytes);
#undef FIELD
    cairn_annotation_cache_free(c);
    rows_end();
}

/* Keys that agree in the 8 bytes the table indexes by share a chain:
 * each must still be found, and removing one from the middle of the
 * chain must keep the others. */
static void test_shared_chain(void **state)
{
    (void)state;
    rows_begin();
    struct cairn_annotation_cache *c = cairn_annotation_cache_new(4, 1 << 20, 0);
    unsigned char keys[5][KEY_LEN];
    for (int i = 0; i < 5; i++) {
        memset(keys[i], 0x5A, KEY_LEN);
        keys[i][KEY_LEN - 1] = (unsigned char)i;
    }
    for (int i = 0; i < 4; i++)
        cairn_annotation_cache_put(c, keys[i], (const char *)&"0123"[i], 1, T0_US);
    const char *v;
    size_t len;
    /* 0 is least recent: a fifth key evicts it, from the chain's end. */
    cairn_annotation_cache_get(c, keys[1], T0_US, &v, &len);
    cairn_annotation_cache_put(c, keys[4], "4", 1, T0_US);
    static const struct {
        int key;
        bool hit;
    } want[] = {{0, false}, {1, true}, {2, true}, {3, true}, {4, true}};
    for (size_t i = 0; i < NELEM(want); i++) {
        char row[32];
        snprintf(row, sizeof row, "key %d", want[i].key);
        bool hit = cairn_annotation_cache_get(c, keys[want[i].key], T0_US, &v, &len);
        if (check(hit == want[i].hit, row, "%s", hit ? "hit" : "miss") && hit)
            check(len == 1 && v[0] == '0' + want[i].key, row, "value %.*s", (int)len, v);
    }
    cairn_annotation_cache_free(c);
    rows_end();
}

/* Enough entries to double the table several times; all still found. */
static void test_growth(void **state)
{
    enum { N = 5000 };
    (void)state;
    rows_begin();
    struct cairn_annotation_cache *c = cairn_annotation_cache_new(N, (size_t)N * E(8), 0);
    unsigned char key[KEY_LEN];
    char value[9];
    for (unsigned i = 0; i < N; i++) {
        SHA256((const unsigned char *)&i, sizeof i, key);
        snprintf(value, sizeof value, "%08u", i);
        cairn_annotation_cache_put(c, key, value, 8, T0_US);
    }
    unsigned found = 0;
    for (unsigned i = 0; i < N; i++) {
        const char *v;
        size_t len;
        SHA256((const unsigned char *)&i, sizeof i, key);
        snprintf(value, sizeof value, "%08u", i);
        if (cairn_annotation_cache_get(c, key, T0_US, &v, &len) && len == 8 &&
            memcmp(v, value, 8) == 0)
            found++;
    }
    check(found == N, "all found", "%u of %d", found, N);
    struct cairn_annotation_cache_stats s = stats_of(c);
    check(s.entries == N && s.bytes == (size_t)N * E(8) && s.evictions == 0, "full, not over",
          "%zu entries, %zu bytes, %llu evictions", s.entries, s.bytes,
          (unsigned long long)s.evictions);
    cairn_annotation_cache_free(c);
    rows_end();
}

/* ---- random operations against a reference model ------------------------ */

/* The model: an array in LRU order, most recent first; O(n) per step,
 * obviously right rather than fast. */
struct model_entry {
    unsigned key;
    size_t len;
    unsigned seed;
    uint64_t expires;
};

struct model {
    struct model_entry v[64];
    size_t n, bytes, max_entries, max_bytes;
    uint64_t ttl;
    struct cairn_annotation_cache_stats s;
};

static long model_find(const struct model *m, unsigned key)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].key == key)
            return (long)i;
    return -1;
}

static void model_remove(struct model *m, size_t i)
{
    m->bytes -= E(m->v[i].len);
    memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof(m->v[0]));
    m->n--;
}

static bool model_expired(const struct model *m, size_t i, uint64_t now)
{
    return m->ttl != 0 && now >= m->v[i].expires;
}

static const struct model_entry *model_get(struct model *m, unsigned key, uint64_t now)
{
    long i = model_find(m, key);
    if (i >= 0 && model_expired(m, (size_t)i, now)) {
        model_remove(m, (size_t)i);
        m->s.expirations++;
        i = -1;
    }
    if (i < 0) {
        m->s.misses++;
        return NULL;
    }
    struct model_entry e = m->v[i];
    memmove(&m->v[1], &m->v[0], (size_t)i * sizeof(m->v[0]));
    m->v[0] = e;
    m->s.hits++;
    return &m->v[0];
}

static void model_put(struct model *m, unsigned key, size_t len, unsigned seed, uint64_t now)
{
    long i = model_find(m, key);
    if (i >= 0)
        model_remove(m, (size_t)i);
    if (m->max_entries == 0 || E(len) > m->max_bytes)
        return;
    while (m->n >= m->max_entries || m->bytes + E(len) > m->max_bytes) {
        if (model_expired(m, m->n - 1, now))
            m->s.expirations++;
        else
            m->s.evictions++;
        model_remove(m, m->n - 1);
    }
    memmove(&m->v[1], &m->v[0], m->n * sizeof(m->v[0]));
    m->v[0] = (struct model_entry){key, len, seed, now + m->ttl};
    m->n++;
    m->bytes += E(len);
    m->s.insertions++;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)
{
    /* xorshift64*: deterministic, so a failure reproduces */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* Keys 3k, 3k+1, 3k+2 share their first 8 bytes, so chains are exercised. */
static void random_key(unsigned k, unsigned char key[KEY_LEN])
{
    unsigned group = k / 3;
    SHA256((const unsigned char *)&group, sizeof group, key);
    key[KEY_LEN - 1] ^= (unsigned char)(k % 3 + 1);
}

static void test_random_against_model(void **state)
{
    enum { OPS = 100000, KEYS = 300, MAX_VALUE = 300 };
    (void)state;
    rows_begin();
    struct model *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    m->max_entries = 64;
    m->max_bytes = 40 * E(100);
    m->ttl = 7000; /* evictions and expirations both frequent */
    struct cairn_annotation_cache *c =
        cairn_annotation_cache_new(m->max_entries, m->max_bytes, m->ttl);
    char value[MAX_VALUE + 50];
    uint64_t now = T0_US;
    for (unsigned op = 0; op < OPS && unit_failures < 10; op++) {
        char row[48];
        snprintf(row, sizeof row, "op %u", op);
        now += rng() % 200; /* sometimes the same microsecond */
        unsigned k = (unsigned)(rng() % KEYS);
        unsigned char key[KEY_LEN];
        random_key(k, key);
        if (rng() % 2) {
            /* Mostly small values; now and then one over the byte cap. */
            size_t len = rng() % 50 == 0 ? m->max_bytes : (size_t)(rng() % MAX_VALUE);
            unsigned seed = (unsigned)rng();
            if (len <= MAX_VALUE)
                fill_value(value, len, seed);
            cairn_annotation_cache_put(c, key, value, len, now);
            model_put(m, k, len, seed, now);
        } else {
            const char *v = NULL;
            size_t len = 0;
            bool hit = cairn_annotation_cache_get(c, key, now, &v, &len);
            const struct model_entry *want = model_get(m, k, now);
            if (check(hit == (want != NULL), row, "get %u: %s, model says %s", k,
                      hit ? "hit" : "miss", want ? "hit" : "miss") &&
                hit) {
                fill_value(value, want->len, want->seed);
                check(len == want->len && memcmp(v, value, len) == 0 && v[len] == '\0', row,
                      "get %u: wrong value (%zu bytes, want %zu)", k, len, want->len);
            }
        }
        struct cairn_annotation_cache_stats s = stats_of(c);
        check(s.entries <= m->max_entries && s.bytes <= m->max_bytes, row,
              "over the caps: %zu entries, %zu bytes", s.entries, s.bytes);
        check(s.entries == m->n && s.bytes == m->bytes && s.hits == m->s.hits &&
                  s.misses == m->s.misses && s.insertions == m->s.insertions &&
                  s.evictions == m->s.evictions && s.expirations == m->s.expirations,
              row, "stats differ from the model");
    }
    struct cairn_annotation_cache_stats s = stats_of(c);
    /* The run must have reached the cases it is meant to test. */
    check(s.evictions > 1000 && s.expirations > 1000 && s.hits > 1000, "coverage",
          "%llu evictions, %llu expirations, %llu hits", (unsigned long long)s.evictions,
          (unsigned long long)s.expirations, (unsigned long long)s.hits);
    cairn_annotation_cache_free(c);
    free(m);
    rows_end();
}

/* ---- the key ------------------------------------------------------------ */

static const unsigned char ANNOTATOR_A[KEY_LEN] = {1, 2, 3};
static const unsigned char ANNOTATOR_B[KEY_LEN] = {1, 2, 4};

static void key_json(const char *json, const unsigned char id[KEY_LEN], unsigned char out[KEY_LEN])
{
    cJSON *m = cJSON_Parse(json);
    if (json != NULL && m == NULL)
        fail_msg("bad test JSON: %s", json);
    cairn_annotation_cache_key(m, id, out);
    cJSON_Delete(m);
}

static void frame(struct sbuf *b, char tag, const char *s)
{
    size_t n = strlen(s);
    char len[9];
    len[0] = tag;
    for (int i = 0; i < 8; i++)
        len[1 + i] = (char)((uint64_t)n >> (56 - 8 * i));
    sb_putn(b, len, 9);
    sb_putn(b, s, n);
}

/* The documented format, built by hand: a change to the framing or the
 * normalisation shows here first. The long text crosses the module's
 * 256-byte hashing buffer several times. */
static void test_key_known_answer(void **state)
{
    (void)state;
    struct sbuf longtext = {0}, collapsed = {0}, json = {0};
    for (int i = 0; i < 200; i++) {
        sb_puts(&longtext, i % 3 ? "word \t\n " : "wörd   ");
        sb_puts(&collapsed, i ? (i % 3 ? " word" : " wörd") : "wörd");
    }
    sb_puts(&json, "[{\"role\":\"user\",\"content\":\"  hi \\n\\n there \"},"
                   "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"ok\"},"
                   "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:x\"}},"
                   "{\"type\":\"text\",\"text\":\"");
    for (size_t i = 0; i < longtext.len; i++) {
        char c = longtext.p[i];
        if (c == '\n')
            sb_puts(&json, "\\n");
        else if (c == '\t')
            sb_puts(&json, "\\t");
        else
            sb_putn(&json, &c, 1);
    }
    sb_puts(&json, "\"}]},{\"content\":null}]");

    struct sbuf want = {0};
    sb_putn(&want, "cairn-annot-key1", 16);
    sb_putn(&want, (const char *)ANNOTATOR_A, KEY_LEN);
    frame(&want, 'M', "user");
    frame(&want, 'T', "hi there");
    frame(&want, 'M', "assistant");
    frame(&want, 'T', "ok");
    frame(&want, 'P', "image_url");
    frame(&want, 'T', collapsed.p);
    frame(&want, 'M', ""); /* no role, null content: the message counts, empty */
    unsigned char expect[KEY_LEN], got[KEY_LEN];
    SHA256((const unsigned char *)want.p, want.len, expect);
    key_json(json.p, ANNOTATOR_A, got);
    assert_memory_equal(got, expect, KEY_LEN);

    /* No messages: the tag and the annotator alone. */
    SHA256((const unsigned char *)want.p, 16 + KEY_LEN, expect);
    key_json("[]", ANNOTATOR_A, got);
    assert_memory_equal(got, expect, KEY_LEN);
    free(longtext.p);
    free(collapsed.p);
    free(json.p);
    free(want.p);
}

static void test_key_pairs(void **state)
{
#define U(content) "[{\"role\":\"user\",\"content\":" content "}]"
#define TXT(s)     "{\"type\":\"text\",\"text\":\"" s "\"}"
#define IMG(url)   "{\"type\":\"image_url\",\"image_url\":{\"url\":\"" url "\"}}"
    static const struct {
        const char *name, *a, *b;
        bool same;
    } rows[] = {
        /* the same conversation */
        {"leading and trailing white space", U("\"hello world\""), U("\"  hello world \\n\""),
         true},
        {"runs of white space", U("\"hello world\""), U("\"hello \\t\\n\\r\\u000b\\f world\""),
         true},
        {"white-space-only text is empty", U("\"\""), U("\" \\n \""), true},
        {"string content or one text part", U("\"hi\""), U("[" TXT("hi") "]"), true},
        {"each part trimmed on its own", U("[" TXT(" a ") "," TXT("b") "]"),
         U("[" TXT("a") "," TXT("  b") "]"), true},
        {"an image's payload is not hashed", U("[" TXT("a") "," IMG("x") "]"),
         U("[" TXT("a") "," IMG("y") "]"), true},
        {"other members are not hashed", "[{\"role\":\"user\",\"content\":\"a\"}]",
         "[{\"role\":\"user\",\"name\":\"bob\",\"content\":\"a\",\"tool_call_id\":\"1\"}]", true},
        {"no messages, or not an array", "[]", NULL, true},
        /* different conversations */
        {"white space between words kept as one space", U("\"ab\""), U("\"a b\""), false},
        {"case", U("\"hello\""), U("\"Hello\""), false},
        {"text", U("\"hello\""), U("\"hellp\""), false},
        {"U+00A0 is not white space", U("\"a b\""), U("\"a\\u00a0b\""), false},
        {"role", U("\"hi\""), "[{\"role\":\"system\",\"content\":\"hi\"}]", false},
        {"part order", U("[" TXT("a") "," TXT("b") "]"), U("[" TXT("b") "," TXT("a") "]"), false},
        {"\"ab\"+\"c\" vs \"a\"+\"bc\" in parts", U("[" TXT("ab") "," TXT("c") "]"),
         U("[" TXT("a") "," TXT("bc") "]"), false},
        {"\"ab\"+\"c\" vs \"a\"+\"bc\" in messages",
         "[{\"role\":\"user\",\"content\":\"ab\"},{\"role\":\"user\",\"content\":\"c\"}]",
         "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"bc\"}]", false},
        {"two parts vs one joined", U("[" TXT("a") "," TXT("b") "]"), U("[" TXT("a b") "]"), false},
        {"text moved into the role", "[{\"role\":\"user\",\"content\":\"x\"}]",
         "[{\"role\":\"userx\",\"content\":\"\"}]", false},
        {"an image or not", U("[" TXT("a") "]"), U("[" TXT("a") "," IMG("x") "]"), false},
        {"image position", U("[" TXT("a") "," IMG("x") "]"), U("[" IMG("x") "," TXT("a") "]"),
         false},
        {"a part type vs the same text", U("[{\"type\":\"input_audio\",\"input_audio\":{}}]"),
         U("[" TXT("input_audio") "]"), false},
        {"empty text vs no content", U("\"\""), U("null"), false},
        {"message order",
         "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"}]",
         "[{\"role\":\"assistant\",\"content\":\"b\"},{\"role\":\"user\",\"content\":\"a\"}]",
         false},
        {"an extra empty message", U("\"a\""),
         "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"\"}]", false},
    };
#undef U
#undef TXT
#undef IMG
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        unsigned char ka[KEY_LEN], kb[KEY_LEN];
        key_json(rows[i].a, ANNOTATOR_A, ka);
        key_json(rows[i].b, ANNOTATOR_A, kb);
        bool same = memcmp(ka, kb, KEY_LEN) == 0;
        check(same == rows[i].same, rows[i].name, "keys %s, want %s", same ? "equal" : "differ",
              rows[i].same ? "equal" : "differ");
    }
    rows_end();
}

static void test_key_annotator(void **state)
{
    static const char *conv = "[{\"role\":\"user\",\"content\":\"fix my code\"}]";
    unsigned char a1[KEY_LEN], a2[KEY_LEN], b[KEY_LEN];
    (void)state;
    key_json(conv, ANNOTATOR_A, a1);
    key_json(conv, ANNOTATOR_A, a2);
    key_json(conv, ANNOTATOR_B, b);
    assert_memory_equal(a1, a2, KEY_LEN);
    assert_memory_not_equal(a1, b, KEY_LEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_miss),
        cmocka_unit_test(test_ttl_boundary),
        cmocka_unit_test(test_ttl_from_put),
        cmocka_unit_test(test_eviction_scenarios),
        cmocka_unit_test(test_replace_updates_bytes),
        cmocka_unit_test(test_not_stored),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_shared_chain),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_key_known_answer),
        cmocka_unit_test(test_key_pairs),
        cmocka_unit_test(test_key_annotator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
