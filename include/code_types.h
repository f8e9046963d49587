/*
 * code_types.h — the programming languages code is told apart by: the
 * "code_types" section of rules/annotator.json, read here for both readers
 * of code, the rule annotator (code in a prompt) and the validator (the
 * code blocks of an answer), so that the two name and recognise code alike.
 *
 * A type is a code_type value of the taxonomy with the words a fence's
 * info string may name it by ("```py"), an optional list of shebang
 * patterns, an optional list of syntax patterns whose matches are counted,
 * and optionally the type whose syntax it builds on (TypeScript is
 * JavaScript plus types).
 */
#ifndef CAIRN_CODE_TYPES_H
#define CAIRN_CODE_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "pattern.h"
#include "taxonomy.h"

#define CAIRN_CODE_TYPES_MAX 64
#define CAIRN_CODE_MAX_SCORE 20 /* syntax matches counted per type */

struct cairn_code_type {
    char value[CAIRN_MARKER_VALUE_MAX];
    char **names; /* owned: fence info words, lowercase */
    size_t nnames;
    struct cairn_pattern *shebang; /* owned, may be NULL */
    struct cairn_pattern *syntax;  /* owned, may be NULL */
    int extends;                   /* type whose syntax this one builds on, or -1 */
};

struct cairn_code_types {
    struct cairn_code_type type[CAIRN_CODE_TYPES_MAX];
    size_t n;
    uint32_t groups; /* ovector pairs the largest pattern needs */
};

/**
 * Load the "code_types" array `types` of annotator.json into `ct` (all
 * zero before). Errors name the key path from "code_types".
 * @param mentions the annotator's table of {CODE} names, or NULL. The
 *        annotator, which owns the file, passes it and holds each entry to
 *        the file's whole schema: no unknown keys, a "mentions" array (its
 *        names are added to `mentions` with the type's index) and
 *        "extends" only on a type with "syntax" of its own. The validator
 *        passes NULL and reads only what telling code apart needs.
 * @return 0, or -1 with `why`; free with cairn_code_types_free either way.
 */
int cairn_code_types_load(struct cairn_code_types *ct, const struct cairn_taxonomy *tx,
                          const cJSON *types, struct cairn_names *mentions, char *why,
                          size_t whylen);
void cairn_code_types_free(struct cairn_code_types *ct);

/** The type a fence's info word (lowercase) names, or -1. */
int cairn_code_types_by_name(const struct cairn_code_types *ct, const char *name);

/** The first type whose shebang patterns match the first line of
 *  code[0..len), or -1. */
int cairn_code_types_by_shebang(const struct cairn_code_types *ct, const char *code, size_t len,
                                struct cairn_match *md);

/**
 * The type whose syntax patterns match code[0..len) most often (each type
 * counted up to CAIRN_CODE_MAX_SCORE, plus the count of the type it builds
 * on when it scores at all), when that score is at least `min_score` and
 * no other type ties it: C and C++, JavaScript and TypeScript share much,
 * and a tie is no evidence. Every type's patterns run over the code, so
 * the caller bounds `len`. @return the type, or -1.
 */
int cairn_code_types_by_syntax(const struct cairn_code_types *ct, const char *code, size_t len,
                               int min_score, struct cairn_match *md);

#endif
