/*
 * keys.h — client API keys: making them, their digests, and finding the
 * tenant that a presented key belongs to.
 *
 * The configuration holds only SHA-256 digests of keys: a copy of the file
 * (or of a config backup, or of a support ticket) does not let anyone in.
 * A key is the prefix "sk-cairn-" and 43 base64url characters (256 random
 * bits), so a digest without salt or stretching is enough: nobody can
 * search that space.
 */
#ifndef CAIRN_KEYS_H
#define CAIRN_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define CAIRN_KEY_PREFIX  "sk-cairn-"
#define CAIRN_KEY_MAX     256 /* longest token accepted in Authorization */
#define CAIRN_KEY_HEX_LEN (2 * CAIRN_KEY_DIGEST_LEN)

/** A new random key, and its digest in lowercase hex for the config.
 *  @return 0, or -1 with err when the system has no randomness to give. */
int cairn_key_generate(char key[CAIRN_KEY_MAX + 1], char hex[CAIRN_KEY_HEX_LEN + 1], char *err,
                       size_t errlen);

/** SHA-256 of key[0..len). */
void cairn_key_digest(const char *key, size_t len, unsigned char out[CAIRN_KEY_DIGEST_LEN]);

struct cairn_keytable;

/** A table for `n` keys. */
struct cairn_keytable *cairn_keytable_new(size_t n);
void cairn_keytable_free(struct cairn_keytable *kt);

/** Register a digest for tenant number `tenant`; a disabled key is kept so
 *  that using it costs what using any other key costs. */
void cairn_keytable_add(struct cairn_keytable *kt, const unsigned char digest[CAIRN_KEY_DIGEST_LEN],
                        size_t tenant, bool disabled);

/**
 * The tenant of the key in an Authorization header value ("Bearer KEY"),
 * or -1 when the header is missing (NULL) or malformed, or the key is
 * unknown or disabled. All of these do the same work — hash, probe, compare
 * with CRYPTO_memcmp — so that the time taken does not tell them apart.
 */
long cairn_keytable_find(const struct cairn_keytable *kt, const char *authorization);

#endif
