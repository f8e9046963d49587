/*
 * experiment.c — arm assignment by weighted rendezvous hashing (see
 * experiment.h for the scheme and what it guarantees).
 */
#include "experiment.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include <stdlib.h>

/* The first 53 bits of a digest as a number in (0, 1): never 0, so that
 * its logarithm is finite, and never 1. */
static double unit_interval(const unsigned char *digest)
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | digest[i];
    return ((double)(x >> 11) + 0.5) / 9007199254740992.0; /* 2^53 */
}

static void digest_failed(void)
{
    fprintf(stderr, "cairn: SHA-256 failed assigning an experiment arm\n");
    abort();
}

/* SHA-256 of a || b. */
static void digest2(EVP_MD_CTX *ctx, const void *a, size_t alen, const void *b, size_t blen,
                    unsigned char out[32])
{
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(ctx, a, alen) != 1 ||
        EVP_DigestUpdate(ctx, b, blen) != 1 || EVP_DigestFinal_ex(ctx, out, NULL) != 1)
        digest_failed();
}

void cairn_experiment_assign(const struct cairn_experiment_config *e, const char *unit, size_t len,
                             struct cairn_assignment *out)
{
    /* d = SHA-256(salt || 0 || unit): the terminating 0 of the salt keeps
     * ("ab", "c") and ("a", "bc") apart. */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        digest_failed();
    unsigned char d[32];
    digest2(ctx, e->salt, strlen(e->salt) + 1, unit, len, d);
    for (int i = 0; i < CAIRN_UNIT_HASH_LEN / 2; i++)
        snprintf(out->unit_hash + 2 * i, 3, "%02x", d[i]);

    double best = INFINITY;
    out->arm = 0;
    for (size_t i = 0; i < e->narms; i++) {
        const struct cairn_arm_config *arm = &e->arms[i];
        if (arm->weight <= 0)
            continue;
        unsigned char h[32];
        digest2(ctx, d, sizeof(d), arm->name, strlen(arm->name), h);
        double score = -log(unit_interval(h)) / arm->weight;
        if (score < best) {
            best = score;
            out->arm = i;
        }
    }
    EVP_MD_CTX_free(ctx);
}

long cairn_experiment_find_arm(const struct cairn_experiment_config *e, const char *name)
{
    for (size_t i = 0; i < e->narms; i++)
        if (strcmp(e->arms[i].name, name) == 0)
            return (long)i;
    return -1;
}
