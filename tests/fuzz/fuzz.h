/*
 * fuzz.h — what the fuzz targets share: reading choices off the front of
 * an input, cutting the rest into pieces the way a socket would deliver
 * it, and failing loudly when an invariant breaks.
 *
 * A target is a plain LLVMFuzzerTestOneInput: linked with libFuzzer by
 * `make fuzz`, or with replay.c by `make test` (which runs the committed
 * corpora as regression tests with the normal compiler and sanitizers).
 */
#ifndef CAIRN_FUZZ_H
#define CAIRN_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test: a violation is a finding, so it
 * stops the run where libFuzzer (or replay) reports it with the input. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The input as it is consumed: choices are taken off the front. */
struct fuzz_in {
    const uint8_t *p;
    size_t n;
};

/* The next byte (0 once the input is used up). */
static inline uint8_t fuzz_byte(struct fuzz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

/*
 * Where to cut a stream into pieces: the seed bytes give each piece's
 * length in turn (1..64, so one-byte pieces are common), and a seed of 0
 * means "the whole rest at once". Used so that parsers fed incrementally
 * see every kind of boundary.
 */
struct fuzz_cuts {
    uint8_t seed[8];
    size_t next;
};

static inline void fuzz_cuts_init(struct fuzz_cuts *c, struct fuzz_in *in)
{
    for (size_t i = 0; i < sizeof(c->seed); i++)
        c->seed[i] = fuzz_byte(in);
    c->next = 0;
}

/* The length of the next piece of a stream that has `left` bytes left. */
static inline size_t fuzz_cuts_next(struct fuzz_cuts *c, size_t left)
{
    uint8_t s = c->seed[c->next++ % sizeof(c->seed)];
    size_t len = s == 0 ? left : (size_t)(s % 64) + 1;
    return len < left ? len : left;
}

#endif
