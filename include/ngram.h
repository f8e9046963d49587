/*
 * ngram.h — the n-gram language classifier the language identifier
 * (langid.c) asks for Latin and Cyrillic prose: Cavnar and Trenkle's
 * "out-of-place" distance between the ranked n-grams of a text and those
 * of each language's fingerprint file (libexttextcat's .lm files), with
 * the answers libexttextcat 3.4's textcat_Classify gives, computed in a
 * fraction of its time (see ngram.c; tests/unit/test_ngram.c compares the
 * two on generated texts).
 */
#ifndef CAIRN_NGRAM_H
#define CAIRN_NGRAM_H

#include <stddef.h>

#define CAIRN_NGRAM_MAX_LANGS 64

struct cairn_ngram;

struct cairn_ngram *cairn_ngram_new(void);
void cairn_ngram_free(struct cairn_ngram *g);

/** Add the fingerprint file at `path` as language number `id` (the order
 *  of adding is the order of the textcat configuration, which breaks
 *  ties). @return 0, or -1 with `why` set. */
int cairn_ngram_add(struct cairn_ngram *g, const char *path, int id, char *why, size_t whylen);

/** Build the lookup table; call once, after the last add. */
void cairn_ngram_seal(struct cairn_ngram *g);

/**
 * Classify the first `limit` bytes of text[0..len) as textcat_Classify
 * would (which reads on past `limit` while runs of spaces and digits
 * shrink the text it keeps, up to `limit` bytes kept).
 * @return the number of candidates written to ids[] (at most 5, best
 *         first, all within 3% of the best distance), 0 when there are
 *         more than 5 (textcat's "UNKNOWN").
 */
int cairn_ngram_classify(const struct cairn_ngram *g, const char *text, size_t len, size_t limit,
                         int ids[5]);

#endif
