/*
 * validate.h — checking an answer against the markers it was asked with.
 *
 * A marker is a promise about the answer ("at most 199 tokens", "JSON",
 * "in French", "Go code"); each tag that can be checked has a validator,
 * and a broken promise is data — {marker, expected, observed} — that the
 * retry step turns into feedback for the model, the headers and logs
 * report, and `cairn validate` prints. The answer given is the model's
 * text with its own leading marker block already removed.
 */
#ifndef CAIRN_VALIDATE_H
#define CAIRN_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "markers.h"
#include "taxonomy.h"

#define CAIRN_VIOLATION_TEXT 96

/* The most of one answer the validators read (see attempts.c). */
#define CAIRN_VALIDATE_MAX_TEXT (1u << 20)

struct cairn_violation {
    int tag;                             /* taxonomy index of the marker */
    const char *key;                     /* its key ("length_tokens"; static storage):
                                            what the feedback is worded by */
    char expected[CAIRN_VIOLATION_TEXT]; /* "at most 199 words", "JSON", "French" */
    char observed[CAIRN_VIOLATION_TEXT]; /* "312 words", "not JSON (line 3)", "English" */
    double excess;                       /* how far off, to rank attempts: the relative
                                            excess for a limit (0.57 = 57% over), 1 for a
                                            category missed */
};

struct cairn_violations {
    struct cairn_violation items[CAIRN_MAX_TAGS];
    size_t n;
};

/* How one answer is checked. */
struct cairn_validate_opts {
    uint32_t tags;                /* bit i set: check taxonomy tag i (when it has a value) */
    enum cairn_counting counting; /* what length_tokens and length_bucket count */
    double tolerance;             /* 0.1: up to 10% over a length limit passes */
    int json_depth;               /* deepest JSON accepted by the format validator */
};

struct cairn_validator;

/** Load what the validators need from `rules_dir` (language
 *  identification, code-language hints). @return NULL with err. */
struct cairn_validator *cairn_validator_load(const struct cairn_taxonomy *tx, const char *rules_dir,
                                             char *err, size_t errlen);
void cairn_validator_free(struct cairn_validator *v);

/** Whether the tag with key `key` ("format", "length_tokens") has a validator. */
bool cairn_validator_has(const struct cairn_validator *v, const char *key);

/** Check answer[0..len) against the markers in `m` that `o->tags` selects;
 *  `out` gets one violation per broken marker. */
void cairn_validate(const struct cairn_validator *v, const struct cairn_markers *m,
                    const char *answer, size_t len, const struct cairn_validate_opts *o,
                    struct cairn_violations *out);

/** The length of text[0..len) as `how` counts it (see the README). */
size_t cairn_count_length(const char *text, size_t len, enum cairn_counting how);

/** A short instruction for the model about what to change, e.g. "Your
 *  previous answer had 312 words; answer again in at most 199 words." */
void cairn_violations_feedback(const struct cairn_violations *v, char *out, size_t outlen);

/** <0 when `a` is a better attempt than `b` (fewer violations, then a
 *  smaller total excess), >0 when worse, 0 when as good. */
int cairn_violations_compare(const struct cairn_violations *a, const struct cairn_violations *b);

/** Append {"marker","expected","observed"} objects to the JSON array `arr`
 *  (the marker by its taxonomy key). */
void cairn_violations_to_json(const struct cairn_violations *v, const struct cairn_taxonomy *tx,
                              cJSON *arr);

#endif
