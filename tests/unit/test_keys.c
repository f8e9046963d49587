/*
 * test_keys.c — unit tests for include/keys.h.
 *
 * cairn_key_generate: the key's shape (prefix, 43 base64url characters),
 * fresh randomness on each call, and a hex digest that is the SHA-256 of
 * the key. cairn_key_digest against the FIPS 180-2 test vectors.
 * cairn_keytable_find: a table of several tenants' keys against a table of
 * Authorization values (known, disabled, unknown, malformed, too long);
 * 1000 keys; entries forced onto one home slot so that a lookup has to
 * probe past others; an empty table. Header values are placed at the end
 * of their own heap block so that ASan sees any read past the NUL.
 */
#include "unit.h"

#include "keys.h"

static void to_hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void digest_hex(const char *s, size_t len, char out[CAIRN_KEY_HEX_LEN + 1])
{
    unsigned char d[CAIRN_KEY_DIGEST_LEN];
    cairn_key_digest(s, len, d);
    to_hex(d, sizeof d, out);
}

static void test_digest_vectors(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        const char *hex;
    } rows[] = {
        {LIT(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {LIT("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {LIT("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        /* Only `len` bytes count, not the string up to its NUL. */
        {"abcdef", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    };
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        char hex[CAIRN_KEY_HEX_LEN + 1];
        char *in = dup_exact(rows[i].in, rows[i].len);
        digest_hex(in, rows[i].len, hex);
        check(strcmp(hex, rows[i].hex) == 0, rows[i].in, "%s, want %s", hex, rows[i].hex);
        free(in);
    }
    rows_end();
}

#define NGEN 32

static void test_generate(void **state)
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const size_t prefix = strlen(CAIRN_KEY_PREFIX);
    char keys[NGEN][CAIRN_KEY_MAX + 1];
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NGEN; i++) {
        char *key = keys[i], hex[CAIRN_KEY_HEX_LEN + 1], want[CAIRN_KEY_HEX_LEN + 1], err[256];
        char row[32];
        snprintf(row, sizeof row, "key %zu", i);
        memset(hex, 'X', sizeof hex);
        if (!check(cairn_key_generate(key, hex, err, sizeof err) == 0, row, "failed: %s", err))
            continue;
        size_t len = strlen(key);
        check(strncmp(key, CAIRN_KEY_PREFIX, prefix) == 0, row, "\"%s\" lacks the prefix", key);
        check(len == prefix + 43, row, "\"%s\": %zu characters, want %zu", key, len, prefix + 43);
        check(strspn(key + prefix, b64url) == len - prefix, row, "\"%s\": not base64url", key);
        /* 256 bits in 43 characters: the last one carries 4 bits and 2 zero bits. */
        const char *last = strchr(b64url, key[len - 1]);
        check(last != NULL && (last - b64url) % 4 == 0, row, "\"%s\": last character not canonical",
              key);
        check(strlen(hex) == CAIRN_KEY_HEX_LEN &&
                  strspn(hex, "0123456789abcdef") == CAIRN_KEY_HEX_LEN,
              row, "hex \"%.70s\" is not 64 lowercase hex digits", hex);
        digest_hex(key, len, want);
        check(strcmp(hex, want) == 0, row, "hex %s is not SHA-256 of the key (%s)", hex, want);
        for (size_t j = 0; j < i; j++)
            check(strcmp(keys[j], key) != 0, row, "the same as key %zu", j);
    }
    rows_end();
}

/* The keys of the lookup table: tenant numbers as cairn_keytable_add
 * takes them. The 256- and 257-character tokens are filled in at run time. */
static char tok256[CAIRN_KEY_MAX + 1], tok257[CAIRN_KEY_MAX + 2];
static char hdr256[sizeof "Bearer " + CAIRN_KEY_MAX], hdr257[sizeof "Bearer " + CAIRN_KEY_MAX + 1];

static const struct {
    const char *key;
    size_t tenant;
    bool disabled;
} table_keys[] = {
    {"sk-cairn-alpha", 0, false},
    {"sk-cairn-beta", 1, false},
    {"sk-cairn-gamma", 1, false},
    {"sk-cairn-off", 2, true},
    {"k", 3, false},
    {"a-b.c_d~e+f/g==", 4, false},
    {tok256, 5, false},
    {tok257, 6, false}, /* too long to present: never found */
    {"sk-cairn-big", 9999, false},
};

static const struct {
    const char *row;
    const char *authorization; /* NULL: no header */
    long tenant;
} finds[] = {
    {"first tenant", "Bearer sk-cairn-alpha", 0},
    {"second tenant", "Bearer sk-cairn-beta", 1},
    {"second tenant, other key", "Bearer sk-cairn-gamma", 1},
    {"one-character token", "Bearer k", 3},
    {"every token68 character", "Bearer a-b.c_d~e+f/g==", 4},
    {"large tenant number", "Bearer sk-cairn-big", 9999},
    {"256 characters", hdr256, 5},
    {"scheme lowercase", "bearer sk-cairn-alpha", 0},
    {"scheme uppercase", "BEARER sk-cairn-beta", 1},
    {"scheme mixed case", "bEaReR sk-cairn-alpha", 0},
    {"several spaces after the scheme", "Bearer   sk-cairn-alpha", 0},
    {"trailing whitespace (OWS)", "Bearer sk-cairn-alpha \t", 0},
    {"disabled key", "Bearer sk-cairn-off", -1},
    {"unknown key", "Bearer sk-cairn-delta", -1},
    {"key differs in case", "Bearer sk-cairn-ALPHA", -1},
    {"prefix of a key", "Bearer sk-cairn-alph", -1},
    {"key and one more character", "Bearer sk-cairn-alphaa", -1},
    {"no header", NULL, -1},
    {"empty header", "", -1},
    {"Basic scheme", "Basic xyz", -1},
    {"a known key under Basic", "Basic sk-cairn-alpha", -1},
    {"scheme only", "Bearer", -1},
    {"scheme and a space", "Bearer ", -1},
    {"scheme and spaces", "Bearer    ", -1},
    {"no space after the scheme", "Bearersk-cairn-alpha", -1},
    {"tab after the scheme", "Bearer\tsk-cairn-alpha", -1},
    {"leading space", " Bearer sk-cairn-alpha", -1},
    {"space inside the token", "Bearer sk-cairn-al pha", -1},
    {"a second word", "Bearer sk-cairn-alpha extra", -1},
    {"control character", "Bearer sk-cairn-alpha\x01", -1},
    {"control character inside", "Bearer sk-cairn\x7f-alpha", -1},
    {"CR LF", "Bearer sk-cairn-alpha\r\n", -1},
    {"comma", "Bearer sk-cairn-alpha,", -1},
    {"quoted", "Bearer \"sk-cairn-alpha\"", -1},
    {"non-ASCII", "Bearer sk-cairn-alph\xc3\xa4", -1},
    {"257 characters, registered", hdr257, -1},
};

static struct cairn_keytable *build_table(void)
{
    memset(tok256, 'x', CAIRN_KEY_MAX);
    memset(tok257, 'y', CAIRN_KEY_MAX + 1);
    snprintf(hdr256, sizeof hdr256, "Bearer %s", tok256);
    snprintf(hdr257, sizeof hdr257, "Bearer %s", tok257);
    struct cairn_keytable *kt = cairn_keytable_new(NELEM(table_keys));
    for (size_t i = 0; i < NELEM(table_keys); i++) {
        unsigned char d[CAIRN_KEY_DIGEST_LEN];
        cairn_key_digest(table_keys[i].key, strlen(table_keys[i].key), d);
        cairn_keytable_add(kt, d, table_keys[i].tenant, table_keys[i].disabled);
    }
    return kt;
}

static long find(const struct cairn_keytable *kt, const char *authorization)
{
    if (authorization == NULL)
        return cairn_keytable_find(kt, NULL);
    char *h = dup_exact(authorization, strlen(authorization) + 1);
    long t = cairn_keytable_find(kt, h);
    free(h);
    return t;
}

static void test_find(void **state)
{
    (void)state;
    rows_begin();
    struct cairn_keytable *kt = build_table();
    for (size_t i = 0; i < NELEM(finds); i++) {
        long t = find(kt, finds[i].authorization);
        check(t == finds[i].tenant, finds[i].row, "tenant %ld, want %ld", t, finds[i].tenant);
    }
    cairn_keytable_free(kt);
    rows_end();
}

#define NMANY 1000

static void test_many_keys(void **state)
{
    (void)state;
    rows_begin();
    struct cairn_keytable *kt = cairn_keytable_new(NMANY);
    for (size_t i = 0; i < NMANY; i++) {
        char key[64];
        unsigned char d[CAIRN_KEY_DIGEST_LEN];
        snprintf(key, sizeof key, "sk-cairn-many-%04zu", i);
        cairn_key_digest(key, strlen(key), d);
        cairn_keytable_add(kt, d, i % 37, i % 100 == 99);
    }
    for (size_t i = 0; i < NMANY; i++) {
        char hdr[80], row[32];
        snprintf(hdr, sizeof hdr, "Bearer sk-cairn-many-%04zu", i);
        snprintf(row, sizeof row, "key %zu", i);
        long want = i % 100 == 99 ? -1 : (long)(i % 37), t = find(kt, hdr);
        check(t == want, row, "tenant %ld, want %ld", t, want);
        snprintf(hdr, sizeof hdr, "Bearer sk-cairn-none-%04zu", i);
        snprintf(row, sizeof row, "unknown %zu", i);
        t = find(kt, hdr);
        check(t == -1, row, "tenant %ld", t);
    }
    cairn_keytable_free(kt);
    rows_end();
}

/* Entries that share a key's home slot (equal first bytes, another last
 * byte) are added before it and after it: the lookup probes past the ones
 * before, the ones after do not hide it, and none of them matches. */
static void test_collisions(void **state)
{
    static const struct {
        const char *row;
        size_t before, after;
        bool disabled_neighbours;
    } rows[] = {
        {"alone", 0, 0, false},           {"after 1", 1, 0, false},
        {"after 5", 5, 0, false},         {"before 5", 0, 5, false},
        {"between 3 and 3", 3, 3, false}, {"between disabled neighbours", 3, 3, true},
    };
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        static const char key[] = "sk-cairn-collide";
        unsigned char d[CAIRN_KEY_DIGEST_LEN], other[CAIRN_KEY_DIGEST_LEN];
        size_t n = rows[i].before + rows[i].after + 1;
        struct cairn_keytable *kt = cairn_keytable_new(n);
        cairn_key_digest(key, strlen(key), d);
        memcpy(other, d, sizeof d);
        for (size_t k = 0; k < n; k++) {
            other[CAIRN_KEY_DIGEST_LEN - 1] =
                (unsigned char)(d[CAIRN_KEY_DIGEST_LEN - 1] ^ (k + 1));
            if (k == rows[i].before)
                cairn_keytable_add(kt, d, 7, false);
            else
                cairn_keytable_add(kt, other, 100 + k, rows[i].disabled_neighbours);
        }
        long t = find(kt, "Bearer sk-cairn-collide");
        check(t == 7, rows[i].row, "tenant %ld, want 7", t);
        t = find(kt, "Bearer sk-cairn-collidf");
        check(t == -1, rows[i].row, "another key: tenant %ld", t);
        cairn_keytable_free(kt);
    }
    rows_end();
}

static void test_empty_table(void **state)
{
    static const char *const hdrs[] = {"Bearer sk-cairn-alpha", "Bearer k", "", NULL};
    (void)state;
    rows_begin();
    struct cairn_keytable *kt = cairn_keytable_new(0);
    for (size_t i = 0; i < NELEM(hdrs); i++) {
        long t = find(kt, hdrs[i]);
        check(t == -1, hdrs[i] ? hdrs[i] : "(no header)", "tenant %ld", t);
    }
    cairn_keytable_free(kt);
    cairn_keytable_free(NULL);
    rows_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_vectors), cmocka_unit_test(test_generate),
        cmocka_unit_test(test_find),           cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_collisions),     cmocka_unit_test(test_empty_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
