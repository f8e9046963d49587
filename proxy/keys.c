/*
 * keys.c — client API keys (see keys.h).
 *
 * The table is open addressing over the digests, indexed by their first
 * bytes. Probing always runs to the end of the cluster, and every slot on
 * the way is compared in constant time: a key that matches, one that
 * matches a disabled entry and one that matches nothing take the same
 * path. What the probe position reveals is a few bits of a SHA-256 of the
 * presented key, which says nothing about any configured key.
 */
#include "keys.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "alloc.h"

#define KEY_RANDOM_BYTES 32

struct slot {
    unsigned char digest[CAIRN_KEY_DIGEST_LEN];
    long tenant; /* -1 = empty slot */
    bool disabled;
};

struct cairn_keytable {
    struct slot *slots;
    size_t mask; /* capacity - 1; capacity a power of two, over twice the keys */
};

int cairn_key_generate(char key[CAIRN_KEY_MAX + 1], char hex[CAIRN_KEY_HEX_LEN + 1], char *err,
                       size_t errlen)
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[KEY_RANDOM_BYTES];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        snprintf(err, errlen, "the system's random number generator failed");
        return -1;
    }
    char *p = key + strlen(CAIRN_KEY_PREFIX);
    memcpy(key, CAIRN_KEY_PREFIX, strlen(CAIRN_KEY_PREFIX));
    /* base64url without padding: 6 bits per character, 256 bits → 43. */
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < sizeof(raw); i++) {
        acc = acc << 8 | raw[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            *p++ = b64url[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        *p++ = b64url[(acc << (6 - bits)) & 63];
    *p = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));

    unsigned char digest[CAIRN_KEY_DIGEST_LEN];
    cairn_key_digest(key, strlen(key), digest);
    for (size_t i = 0; i < sizeof(digest); i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return 0;
}

void cairn_key_digest(const char *key, size_t len, unsigned char out[CAIRN_KEY_DIGEST_LEN])
{
    SHA256((const unsigned char *)key, len, out);
}

struct cairn_keytable *cairn_keytable_new(size_t n)
{
    struct cairn_keytable *kt = cairn_calloc(1, sizeof(*kt));
    size_t cap = 8;
    while (cap < 2 * n + 1)
        cap *= 2;
    kt->slots = cairn_calloc(cap, sizeof(*kt->slots));
    for (size_t i = 0; i < cap; i++)
        kt->slots[i].tenant = -1;
    kt->mask = cap - 1;
    return kt;
}

void cairn_keytable_free(struct cairn_keytable *kt)
{
    if (kt == NULL)
        return;
    OPENSSL_cleanse(kt->slots, (kt->mask + 1) * sizeof(*kt->slots));
    free(kt->slots);
    free(kt);
}

static size_t home_slot(const struct cairn_keytable *kt, const unsigned char *digest)
{
    uint64_t h;
    memcpy(&h, digest, sizeof(h));
    return (size_t)h & kt->mask;
}

void cairn_keytable_add(struct cairn_keytable *kt, const unsigned char digest[CAIRN_KEY_DIGEST_LEN],
                        size_t tenant, bool disabled)
{
    size_t i = home_slot(kt, digest);
    while (kt->slots[i].tenant >= 0)
        i = (i + 1) & kt->mask;
    memcpy(kt->slots[i].digest, digest, CAIRN_KEY_DIGEST_LEN);
    kt->slots[i].tenant = (long)tenant;
    kt->slots[i].disabled = disabled;
}

/* The token of "Bearer TOKEN" (RFC 6750 §2.1: the scheme is
 * case-insensitive, the token is token68), or NULL. */
static const char *bearer_token(const char *authorization, size_t *len)
{
    static const char token68[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                  "0123456789-._~+/=";
    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    const char *token = authorization + 7 + strspn(authorization + 7, " ");
    size_t n = strspn(token, token68);
    if (n == 0 || n > CAIRN_KEY_MAX || token[n + strspn(token + n, " \t")] != '\0')
        return NULL;
    *len = n;
    return token;
}

long cairn_keytable_find(const struct cairn_keytable *kt, const char *authorization)
{
    size_t len = 0;
    const char *token = bearer_token(authorization, &len);
    bool malformed = token == NULL;
    unsigned char digest[CAIRN_KEY_DIGEST_LEN];
    cairn_key_digest(malformed ? "" : token, len, digest);

    long found = -1;
    bool disabled = false;
    for (size_t i = home_slot(kt, digest); kt->slots[i].tenant >= 0; i = (i + 1) & kt->mask) {
        /* No early exit: the rest of the cluster is compared all the same. */
        if (CRYPTO_memcmp(kt->slots[i].digest, digest, sizeof(digest)) == 0) {
            found = kt->slots[i].tenant;
            disabled = kt->slots[i].disabled;
        }
    }
    OPENSSL_cleanse(digest, sizeof(digest));
    return malformed || disabled ? -1 : found;
}
