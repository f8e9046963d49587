/*
 * lengths.c — length instructions and length words (see lengths.h).
 *
 * Conversions, all data in rules/lengths.json: a limit in words or in
 * characters of a CJK text becomes length_tokens through the rule's
 * "tokens_per_unit" (1 in the shipped rules: "in under 100 words" gives
 * length_tokens=100, which is what the marker-trained models saw for such
 * prompts; a limit in tokens is taken as is). length_bucket is derived from
 * the number: from the token limit when there is one, otherwise from a
 * sentence or paragraph limit times an estimated size ("tokens_per_sentence",
 * "tokens_per_paragraph"), and only without any number from words such as
 * "briefly" or "in depth".
 */
#include "lengths.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

#define LENGTHS_MAX_RANGES 8

enum limit_kind { LIM_TOKENS, LIM_SENTENCES, LIM_PARAGRAPHS, LIM_COUNT };

/* The tags whose meaning this file knows; their values come from data. */
static const char *const limit_keys[LIM_COUNT] = {"length_tokens", "length_sentences",
                                                  "length_paragraphs"};

struct limit_rule {
    enum limit_kind kind;
    double per_unit;          /* tokens per counted unit, LIM_TOKENS only */
    struct cairn_pattern *re; /* owned */
};

struct bucket_range {
    char value[CAIRN_MARKER_VALUE_MAX];
    double up_to; /* inclusive; < 0 = no upper bound */
};

struct word_rule {
    char value[CAIRN_MARKER_VALUE_MAX];
    struct cairn_pattern *re; /* owned */
};

struct cairn_lengths {
    struct limit_rule *limits; /* owned */
    size_t nlimits;
    struct bucket_range ranges[LENGTHS_MAX_RANGES];
    size_t nranges;
    double per_sentence, per_paragraph;
    struct word_rule *words; /* owned */
    size_t nwords;
    struct cairn_names *numbers; /* owned: what {NUM} accepts besides digits */
    uint32_t groups;
};

static void note_groups(struct cairn_lengths *l, const struct cairn_pattern *re)
{
    if (cairn_pattern_groups(re) > l->groups)
        l->groups = cairn_pattern_groups(re);
}

/* number_words: {"2": ["two", "deux", ...], ...} into the {NUM} table. */
static int load_numbers(struct cairn_lengths *l, const cJSON *words, char *why, size_t whylen)
{
    if (!cJSON_IsObject(words)) {
        snprintf(why, whylen, "number_words: must be an object {\"2\": [\"two\", ...], ...}");
        return -1;
    }
    for (const cJSON *w = words->child; w != NULL; w = w->next) {
        char *end;
        long v = strtol(w->string, &end, 10);
        if (*end != '\0' || v < 1 || v > 100000 || !cJSON_IsArray(w) || cJSON_GetArraySize(w) < 1) {
            snprintf(why, whylen,
                     "number_words.%s: keys must be numbers 1-100000, values non-empty "
                     "arrays of words",
                     w->string);
            return -1;
        }
        size_t i = 0;
        for (const cJSON *s = w->child; s != NULL; s = s->next, i++) {
            if (!cJSON_IsString(s) || s->valuestring[0] == '\0') {
                snprintf(why, whylen, "number_words.%s[%zu]: must be a non-empty string", w->string,
                         i);
                return -1;
            }
            cairn_names_add(l->numbers, s->valuestring, (int)v, false);
        }
    }
    cairn_names_seal(l->numbers);
    return 0;
}

static int load_limits(struct cairn_lengths *l, const cJSON *limits,
                       const struct cairn_pattern_env *env, char *why, size_t whylen)
{
    static const char *const keys[] = {"tag", "tokens_per_unit", "patterns", "comment", NULL};
    char path[64];
    if (!cJSON_IsArray(limits) || cJSON_GetArraySize(limits) < 1) {
        snprintf(why, whylen, "limits: must be a non-empty array of rules");
        return -1;
    }
    l->limits = cairn_calloc((size_t)cJSON_GetArraySize(limits), sizeof(*l->limits));
    for (const cJSON *r = limits->child; r != NULL; r = r->next) {
        struct limit_rule *rule = &l->limits[l->nlimits];
        snprintf(path, sizeof(path), "limits[%zu]", l->nlimits);
        if (!cJSON_IsObject(r)) {
            snprintf(why, whylen, "%s: must be an object", path);
            return -1;
        }
        if (cairn_pattern_check_keys(r, keys, path, why, whylen) < 0)
            return -1;
        const cJSON *tag = cJSON_GetObjectItemCaseSensitive(r, "tag");
        rule->kind = LIM_COUNT;
        for (int k = 0; k < LIM_COUNT && cJSON_IsString(tag); k++)
            if (strcmp(tag->valuestring, limit_keys[k]) == 0)
                rule->kind = (enum limit_kind)k;
        if (rule->kind == LIM_COUNT) {
            snprintf(why, whylen,
                     "%s.tag: must be length_tokens, length_sentences or length_paragraphs", path);
            return -1;
        }
        const cJSON *per = cJSON_GetObjectItemCaseSensitive(r, "tokens_per_unit");
        rule->per_unit = 1;
        if (per != NULL) {
            if (rule->kind != LIM_TOKENS || !cJSON_IsNumber(per) || per->valuedouble <= 0 ||
                per->valuedouble > 100) {
                snprintf(why, whylen,
                         "%s.tokens_per_unit: a number in (0, 100], for length_tokens only", path);
                return -1;
            }
            rule->per_unit = per->valuedouble;
        }
        char where[96];
        snprintf(where, sizeof(where), "%s.patterns", path);
        rule->re = cairn_pattern_compile_list(cJSON_GetObjectItemCaseSensitive(r, "patterns"), env,
                                              where, why, whylen);
        if (rule->re == NULL)
            return -1;
        l->nlimits++;
        note_groups(l, rule->re);
    }
    return 0;
}

static int load_bucket(struct cairn_lengths *l, const struct cairn_taxonomy *tx, const cJSON *b,
                       char *why, size_t whylen)
{
    static const char *const keys[] = {
        "tokens_per_sentence", "tokens_per_paragraph", "from_tokens", "words", "comment", NULL};
    static const char *const range_keys[] = {"value", "up_to", "comment", NULL};
    static const char *const word_keys[] = {"value", "patterns", "comment", NULL};
    char path[64];
    if (!cJSON_IsObject(b)) {
        snprintf(why, whylen, "bucket: must be an object");
        return -1;
    }
    if (cairn_pattern_check_keys(b, keys, "bucket", why, whylen) < 0)
        return -1;
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(b, "tokens_per_sentence");
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(b, "tokens_per_paragraph");
    if (!cJSON_IsNumber(ps) || ps->valuedouble <= 0 || !cJSON_IsNumber(pp) ||
        pp->valuedouble <= 0) {
        snprintf(why, whylen,
                 "bucket: tokens_per_sentence and tokens_per_paragraph must be numbers > 0");
        return -1;
    }
    l->per_sentence = ps->valuedouble;
    l->per_paragraph = pp->valuedouble;

    const cJSON *ranges = cJSON_GetObjectItemCaseSensitive(b, "from_tokens");
    int nr = cJSON_GetArraySize(ranges);
    if (!cJSON_IsArray(ranges) || nr < 1 || nr > LENGTHS_MAX_RANGES) {
        snprintf(why, whylen, "bucket.from_tokens: must be an array of 1 to %d ranges",
                 LENGTHS_MAX_RANGES);
        return -1;
    }
    for (const cJSON *r = ranges->child; r != NULL; r = r->next) {
        struct bucket_range *range = &l->ranges[l->nranges];
        snprintf(path, sizeof(path), "bucket.from_tokens[%zu]", l->nranges);
        if (!cJSON_IsObject(r) || cairn_pattern_check_keys(r, range_keys, path, why, whylen) < 0) {
            if (!cJSON_IsObject(r))
                snprintf(why, whylen, "%s: must be an object", path);
            return -1;
        }
        char vpath[96];
        snprintf(vpath, sizeof(vpath), "%s.value", path);
        if (cairn_taxonomy_rule_value(tx, "length_bucket",
                                      cJSON_GetObjectItemCaseSensitive(r, "value"), range->value,
                                      vpath, why, whylen) < 0)
            return -1;
        const cJSON *up = cJSON_GetObjectItemCaseSensitive(r, "up_to");
        bool last = r->next == NULL;
        /* Ranges ascend and the last one is open, so every number has one. */
        if (last != (up == NULL) ||
            (up != NULL &&
             (!cJSON_IsNumber(up) || up->valuedouble < 1 ||
              (l->nranges > 0 && up->valuedouble <= l->ranges[l->nranges - 1].up_to)))) {
            snprintf(why, whylen,
                     "%s.up_to: every range but the last needs an ascending number; the last "
                     "has none",
                     path);
            return -1;
        }
        range->up_to = up != NULL ? up->valuedouble : -1;
        l->nranges++;
    }

    const cJSON *words = cJSON_GetObjectItemCaseSensitive(b, "words");
    if (words == NULL)
        return 0;
    if (!cJSON_IsArray(words)) {
        snprintf(why, whylen, "bucket.words: must be an array of rules");
        return -1;
    }
    l->words = cairn_calloc((size_t)cJSON_GetArraySize(words) + 1, sizeof(*l->words));
    for (const cJSON *w = words->child; w != NULL; w = w->next) {
        struct word_rule *rule = &l->words[l->nwords];
        snprintf(path, sizeof(path), "bucket.words[%zu]", l->nwords);
        if (!cJSON_IsObject(w) || cairn_pattern_check_keys(w, word_keys, path, why, whylen) < 0) {
            if (!cJSON_IsObject(w))
                snprintf(why, whylen, "%s: must be an object", path);
            return -1;
        }
        char vpath[96];
        snprintf(vpath, sizeof(vpath), "%s.value", path);
        if (cairn_taxonomy_rule_value(tx, "length_bucket",
                                      cJSON_GetObjectItemCaseSensitive(w, "value"), rule->value,
                                      vpath, why, whylen) < 0)
            return -1;
        snprintf(vpath, sizeof(vpath), "%s.patterns", path);
        rule->re = cairn_pattern_compile_list(cJSON_GetObjectItemCaseSensitive(w, "patterns"), NULL,
                                              vpath, why, whylen);
        if (rule->re == NULL)
            return -1;
        l->nwords++;
        note_groups(l, rule->re);
    }
    return 0;
}

struct cairn_lengths *cairn_lengths_load(const struct cairn_taxonomy *tx, const cJSON *root,
                                         const char *file, char *err, size_t errlen)
{
    static const char *const keys[] = {"number_words", "limits", "bucket", "comment", NULL};
    struct cairn_lengths *l = cairn_calloc(1, sizeof(*l));
    char why[512];
    l->numbers = cairn_names_new();
    if (!cJSON_IsObject(root)) {
        snprintf(why, sizeof(why), "must be an object");
        goto fail;
    }
    if (cairn_pattern_check_keys(root, keys, "", why, sizeof(why)) < 0)
        goto fail;
    if (load_numbers(l, cJSON_GetObjectItemCaseSensitive(root, "number_words"), why, sizeof(why)) <
        0)
        goto fail;
    struct cairn_pattern_env env = {.num = true};
    if (load_limits(l, cJSON_GetObjectItemCaseSensitive(root, "limits"), &env, why, sizeof(why)) <
            0 ||
        load_bucket(l, tx, cJSON_GetObjectItemCaseSensitive(root, "bucket"), why, sizeof(why)) < 0)
        goto fail;
    return l;
fail:
    snprintf(err, errlen, "%s: %s", file, why);
    cairn_lengths_free(l);
    return NULL;
}

void cairn_lengths_free(struct cairn_lengths *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->nlimits; i++)
        cairn_pattern_free(l->limits[i].re);
    for (size_t i = 0; i < l->nwords; i++)
        cairn_pattern_free(l->words[i].re);
    free(l->limits);
    free(l->words);
    cairn_names_free(l->numbers);
    free(l);
}

uint32_t cairn_lengths_groups(const struct cairn_lengths *l)
{
    return l->groups;
}

const struct cairn_names *cairn_lengths_numbers(const struct cairn_lengths *l)
{
    return l->numbers;
}

/* The first limit of `kind` in the text, scaled to tokens, or -1. Matches
 * whose number does not read (or reads 0) are skipped, not fatal. */
static double find_limit(const struct cairn_lengths *l, enum limit_kind kind, const char *s,
                         size_t len, struct cairn_match *md)
{
    for (size_t i = 0; i < l->nlimits; i++) {
        const struct limit_rule *rule = &l->limits[i];
        if (rule->kind != kind)
            continue;
        size_t at = 0;
        while (cairn_pattern_find(rule->re, s, len, at, md)) {
            long n = cairn_pattern_number(md, s);
            if (n > 0)
                return (double)n * rule->per_unit;
            at = cairn_pattern_end(md) > at ? cairn_pattern_end(md) : at + 1;
        }
    }
    return -1;
}

static const char *bucket_for(const struct cairn_lengths *l, double tokens)
{
    for (size_t i = 0; i < l->nranges; i++)
        if (l->ranges[i].up_to < 0 || tokens <= l->ranges[i].up_to)
            return l->ranges[i].value;
    return NULL;
}

void cairn_lengths_run(const struct cairn_lengths *l, const char *const *texts, const size_t *lens,
                       size_t n, struct cairn_match *md, struct cairn_markers *out)
{
    double found[LIM_COUNT] = {-1, -1, -1};
    for (int k = 0; k < LIM_COUNT; k++) {
        for (size_t t = 0; t < n && found[k] < 0; t++)
            found[k] = find_limit(l, (enum limit_kind)k, texts[t], lens[t], md);
        if (found[k] > 0) {
            char num[32];
            snprintf(num, sizeof(num), "%.0f", found[k] < 1 ? 1 : found[k]);
            cairn_markers_offer_key(out, limit_keys[k], num, CAIRN_SRC_RULES);
        }
    }
    double tokens = found[LIM_TOKENS];
    if (tokens < 0 && found[LIM_SENTENCES] > 0)
        tokens = found[LIM_SENTENCES] * l->per_sentence;
    if (tokens < 0 && found[LIM_PARAGRAPHS] > 0)
        tokens = found[LIM_PARAGRAPHS] * l->per_paragraph;
    const char *bucket = tokens > 0 ? bucket_for(l, tokens) : NULL;
    for (size_t t = 0; t < n && bucket == NULL; t++)
        for (size_t i = 0; i < l->nwords && bucket == NULL; i++)
            if (cairn_pattern_find(l->words[i].re, texts[t], lens[t], 0, md))
                bucket = l->words[i].value;
    if (bucket != NULL)
        cairn_markers_offer_key(out, "length_bucket", bucket, CAIRN_SRC_RULES);
}
