/*
 * validate.c — one validator per checkable tag (see validate.h), and the
 * feedback, ranking and JSON form of what they find.
 *
 *   length_tokens      the answer's length (cairn_answer_length, by the
 *                      configured counting) against the value as an upper
 *                      limit; limit * (1 + tolerance) still passes
 *   length_sentences   sentences of prose (cairn_answer_sentences), same rule
 *   length_paragraphs  paragraphs (cairn_answer_paragraphs), same rule
 *   length_bucket      the same length inside the bucket's range from
 *                      rules/validation.json, widened by the tolerance at
 *                      both edges
 *   format             answer_format.c
 *   lang               the language of the prose (code, markup and tables
 *                      left out) by the rule annotator's identifier (langid.h,
 *                      rules/languages.json); no answer from it (too short,
 *                      unclear) is no violation, nor is a mismatch on prose
 *                      under lang.min_letters letters (rules/validation.json)
 *                      or an answer that is all data (a JSON object or array)
 *   code_type          each fenced block's language: its info string by the
 *                      code types' fence names (rules/annotator.json), else
 *                      a shebang or the syntax score of its content, as the
 *                      annotator reads code. Some block in the expected
 *                      language passes (a shell block of install commands
 *                      beside the Python is fine); with none, a block in
 *                      another taxonomy language or one declared as
 *                      something else (```json) is a violation, and so is
 *                      an answer without any block, unless its whole text
 *                      reads as code of the expected language. Blocks whose
 *                      language cannot be told are no evidence either way.
 *
 * Everything is compiled at load; a call is a few linear passes over the
 * answer (the fences once, then each validator asked for). On a 4 KB
 * answer with all seven the language identifier's n-grams were most of
 * the cost while libexttextcat computed them (some 45 us of 80 on the
 * project's machine); ngram.c gives its answers for a fraction of that
 * (tests/bench/marker_bench.c). Scoring an unlabelled code block's syntax
 * adds some 25 us (test_validate prints the figures).
 */
#include "validate.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "answer_format.h"
#include "answer_text.h"
#include "code_types.h"
#include "langid.h"
#include "pattern.h"
#include "rules_files.h"
#include "utf8.h"

#define CODE_SCAN   512  /* bytes of a block whose syntax is scored */
#define CODE_BUDGET 1024 /* bytes scored per answer, all blocks together */
/* Bytes of prose given to the identifier: it reads script shares from
 * them and n-grams from the first "max_bytes" (languages.json). */
#define PROSE_MAX     768
#define LIMIT_EPSILON 1e-9

enum check {
    CHECK_NONE,
    CHECK_LENGTH,
    CHECK_SENTENCES,
    CHECK_PARAGRAPHS,
    CHECK_BUCKET,
    CHECK_FORMAT,
    CHECK_LANG,
    CHECK_CODE,
    CHECK_COUNT,
};

/* The tag key each check is for; also the static strings violations carry. */
static const char *const check_keys[CHECK_COUNT] = {
    NULL,     "length_tokens", "length_sentences", "length_paragraphs", "length_bucket",
    "format", "lang",          "code_type",
};

struct bucket {
    char value[CAIRN_MARKER_VALUE_MAX];
    long min, max; /* inclusive; max < 0: no upper bound */
};

#define MAX_BUCKETS 8

struct cairn_validator {
    const struct cairn_taxonomy *tx;
    unsigned char check[CAIRN_MAX_TAGS]; /* enum check of each taxonomy tag */
    struct cairn_langid *langid;         /* owned */
    struct cairn_sentence_rules *sentences;
    struct cairn_formats *formats;
    struct cairn_code_types code_types; /* annotator.json's, as the annotator reads code */
    int min_syntax_score;
    struct bucket buckets[MAX_BUCKETS];
    size_t nbuckets;
    size_t lang_min_letters; /* prose needed before a language counts as broken */
};

/* ---- loading ---------------------------------------------------------- */

/* The code types of the rule annotator's annotator.json: the fence names
 * and syntax the validator reads code by are the ones the annotator reads
 * prompts by. */
static int load_code_types(struct cairn_validator *v, const cJSON *root, char *why, size_t whylen)
{
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "code");
    const cJSON *min = cJSON_GetObjectItemCaseSensitive(code, "min_syntax_score");
    if (!cJSON_IsNumber(min) || min->valuedouble < 1 || min->valuedouble > CAIRN_CODE_MAX_SCORE ||
        min->valuedouble != (int)min->valuedouble) {
        snprintf(why, whylen, "code.min_syntax_score: must be an integer from 1 to %d",
                 CAIRN_CODE_MAX_SCORE);
        return -1;
    }
    v->min_syntax_score = (int)min->valuedouble;
    return cairn_code_types_load(&v->code_types, v->tx,
                                 cJSON_GetObjectItemCaseSensitive(root, "code_types"), NULL, why,
                                 whylen);
}

static int load_buckets(struct cairn_validator *v, const cJSON *obj, char *why, size_t whylen)
{
    char path[160];
    if (!cJSON_IsObject(obj) || cJSON_GetArraySize(obj) < 1 ||
        cJSON_GetArraySize(obj) > MAX_BUCKETS) {
        snprintf(why, whylen,
                 "length_buckets: must be an object {\"<length_bucket value>\": [min, max]} of 1 "
                 "to %d buckets",
                 MAX_BUCKETS);
        return -1;
    }
    for (const cJSON *b = obj->child; b != NULL; b = b->next) {
        struct bucket *k = &v->buckets[v->nbuckets];
        snprintf(path, sizeof(path), "length_buckets.%s", b->string);
        cJSON key = {.type = cJSON_String, .valuestring = b->string};
        if (cairn_taxonomy_rule_value(v->tx, "length_bucket", &key, k->value, path, why, whylen) <
            0)
            return -1;
        const cJSON *lo = cJSON_GetArrayItem(b, 0), *hi = cJSON_GetArrayItem(b, 1);
        if (!cJSON_IsArray(b) || cJSON_GetArraySize(b) != 2 || !cJSON_IsNumber(lo) ||
            lo->valuedouble < 0 || lo->valuedouble != (long)lo->valuedouble ||
            !(cJSON_IsNull(hi) || (cJSON_IsNumber(hi) && hi->valuedouble >= lo->valuedouble &&
                                   hi->valuedouble == (long)hi->valuedouble))) {
            snprintf(why, whylen,
                     "%s: must be [min, max], whole numbers with min <= max (max null: no upper "
                     "bound)",
                     path);
            return -1;
        }
        k->min = (long)lo->valuedouble;
        k->max = cJSON_IsNull(hi) ? -1 : (long)hi->valuedouble;
        v->nbuckets++;
    }
    return 0;
}

static int load_validation(struct cairn_validator *v, const cJSON *root, char *why, size_t whylen)
{
    static const char *const keys[] = {"sentences", "formats", "length_buckets",
                                       "lang",      "comment", NULL};
    if (cairn_pattern_check_object(root, keys, "", why, whylen) < 0)
        return -1;
    v->sentences = cairn_sentence_rules_load(cJSON_GetObjectItemCaseSensitive(root, "sentences"),
                                             "sentences", why, whylen);
    if (v->sentences == NULL)
        return -1;
    v->formats = cairn_formats_load(cJSON_GetObjectItemCaseSensitive(root, "formats"), "formats",
                                    v->sentences, why, whylen);
    if (v->formats == NULL)
        return -1;
    if (load_buckets(v, cJSON_GetObjectItemCaseSensitive(root, "length_buckets"), why, whylen) < 0)
        return -1;
    static const char *const lang_keys[] = {"min_letters", "comment", NULL};
    const cJSON *lang = cJSON_GetObjectItemCaseSensitive(root, "lang");
    const cJSON *min = cJSON_GetObjectItemCaseSensitive(lang, "min_letters");
    if (!cJSON_IsObject(lang)) {
        snprintf(why, whylen, "lang: must be an object {\"min_letters\"}");
        return -1;
    }
    if (cairn_pattern_check_keys(lang, lang_keys, "lang", why, whylen) < 0)
        return -1;
    if (!cJSON_IsNumber(min) || min->valuedouble < 0 || min->valuedouble > 10000 ||
        min->valuedouble != (int)min->valuedouble) {
        snprintf(why, whylen, "lang.min_letters: must be an integer from 0 to 10000");
        return -1;
    }
    v->lang_min_letters = (size_t)min->valuedouble;
    return 0;
}

struct cairn_validator *cairn_validator_load(const struct cairn_taxonomy *tx, const char *rules_dir,
                                             char *err, size_t errlen)
{
    struct cairn_validator *v = cairn_calloc(1, sizeof(*v));
    v->tx = tx;
    for (size_t t = 0; t < tx->ntags; t++)
        for (int c = 1; c < CHECK_COUNT; c++)
            if (strcmp(tx->tags[t].key, check_keys[c]) == 0)
                v->check[t] = (unsigned char)c;
    static const char *const base[3] = {"languages.json", "annotator.json", "validation.json"};
    struct cairn_rules_files f;
    char why[768];
    int failed = -1; /* the file an error is about; -1: err is complete */
    if (cairn_rules_files_load(&f, rules_dir, base, 3, err, errlen) < 0)
        goto out;
    v->langid = cairn_langid_load(tx, f.root[0], rules_dir, f.path[0], err, errlen);
    if (v->langid == NULL)
        goto out;
    failed = 1;
    if (load_code_types(v, f.root[1], why, sizeof(why)) < 0)
        goto out;
    failed = 2;
    if (load_validation(v, f.root[2], why, sizeof(why)) < 0)
        goto out;
    failed = CAIRN_RULES_LOADED;
out:
    if (cairn_rules_files_finish(&f, failed, why, err, errlen) < 0) {
        cairn_validator_free(v);
        return NULL;
    }
    return v;
}

void cairn_validator_free(struct cairn_validator *v)
{
    if (v == NULL)
        return;
    cairn_langid_free(v->langid);
    cairn_formats_free(v->formats);
    cairn_sentence_rules_free(v->sentences);
    cairn_code_types_free(&v->code_types);
    free(v);
}

bool cairn_validator_has(const struct cairn_validator *v, const char *key)
{
    (void)v;
    for (int c = 1; c < CHECK_COUNT; c++)
        if (strcmp(check_keys[c], key) == 0)
            return true;
    return false;
}

size_t cairn_count_length(const char *text, size_t len, enum cairn_counting how)
{
    return cairn_answer_length(text, len, how);
}

/* ---- one answer ------------------------------------------------------- */

/* What the validators of one call share. */
struct call {
    const struct cairn_validator *v;
    const struct cairn_validate_opts *o;
    struct cairn_answer a;
    size_t length; /* by o->counting; SIZE_MAX until counted */
    size_t budget; /* bytes of code syntax may still be scored for */
    struct cairn_match m;
};

static const char *unit_name(enum cairn_counting how, size_t n)
{
    switch (how) {
    case CAIRN_COUNT_CHARACTERS: return n == 1 ? "character" : "characters";
    case CAIRN_COUNT_TOKENS: return n == 1 ? "token" : "tokens";
    case CAIRN_COUNT_WORDS:
    default: return n == 1 ? "word" : "words";
    }
}

static struct cairn_violation *add(struct cairn_violations *out, int tag, enum check c,
                                   double excess)
{
    struct cairn_violation *x = &out->items[out->n++];
    memset(x, 0, sizeof(*x));
    x->tag = tag;
    x->key = check_keys[c];
    x->excess = excess;
    return x;
}

static size_t answer_length(struct call *c)
{
    if (c->length == SIZE_MAX)
        c->length = cairn_answer_length(c->a.text, c->a.len, c->o->counting);
    return c->length;
}

/* An upper limit: n against `value`, with the tolerance. */
static void check_limit(struct call *c, int tag, enum check k, const char *value, size_t n,
                        const char *one, const char *many, struct cairn_violations *out)
{
    long limit = strtol(value, NULL, 10);
    if (limit <= 0 || (double)n <= (double)limit * (1 + c->o->tolerance) + LIMIT_EPSILON)
        return;
    struct cairn_violation *x = add(out, tag, k, ((double)n - (double)limit) / (double)limit);
    snprintf(x->expected, sizeof(x->expected), "at most %ld %s", limit, limit == 1 ? one : many);
    snprintf(x->observed, sizeof(x->observed), "%zu %s", n, n == 1 ? one : many);
}

static void check_bucket(struct call *c, int tag, const char *value, struct cairn_violations *out)
{
    const struct bucket *b = NULL;
    for (size_t i = 0; i < c->v->nbuckets; i++)
        if (strcmp(c->v->buckets[i].value, value) == 0)
            b = &c->v->buckets[i];
    if (b == NULL)
        return;
    size_t n = answer_length(c);
    double tol = c->o->tolerance, excess = 0;
    if ((double)n < (double)b->min * (1 - tol) - LIMIT_EPSILON)
        excess = ((double)b->min - (double)n) / (double)b->min;
    else if (b->max >= 0 && (double)n > (double)b->max * (1 + tol) + LIMIT_EPSILON)
        excess = ((double)n - (double)b->max) / (double)(b->max > 0 ? b->max : 1);
    else
        return;
    struct cairn_violation *x = add(out, tag, CHECK_BUCKET, excess);
    const char *unit = unit_name(c->o->counting, 2);
    if (b->max < 0)
        snprintf(x->expected, sizeof(x->expected), "at least %ld %s (%s)", b->min, unit, value);
    else if (b->min == 0)
        snprintf(x->expected, sizeof(x->expected), "at most %ld %s (%s)", b->max, unit, value);
    else
        snprintf(x->expected, sizeof(x->expected), "%ld to %ld %s (%s)", b->min, b->max, unit,
                 value);
    snprintf(x->observed, sizeof(x->observed), "%zu %s", n, unit_name(c->o->counting, n));
}

static void check_format(struct call *c, int tag, const char *value, struct cairn_violations *out)
{
    char observed[CAIRN_VIOLATION_TEXT];
    if (cairn_format_check(c->v->formats, value, &c->a, c->o->json_depth, observed,
                           sizeof(observed)) != 0)
        return;
    struct cairn_violation *x = add(out, tag, CHECK_FORMAT, 1);
    snprintf(x->expected, sizeof(x->expected), "%s", value);
    snprintf(x->observed, sizeof(x->observed), "%s", observed);
}

/* An answer that is all data ({…} or […]) has no prose to identify. */
static bool all_data(const struct cairn_answer *a)
{
    size_t s = 0, e = a->len;
    while (s < e && isspace((unsigned char)a->text[s]))
        s++;
    while (e > s && isspace((unsigned char)a->text[e - 1]))
        e--;
    return e > s && ((a->text[s] == '{' && a->text[e - 1] == '}') ||
                     (a->text[s] == '[' && a->text[e - 1] == ']'));
}

static void check_lang(struct call *c, int tag, const char *value, struct cairn_violations *out)
{
    if (all_data(&c->a))
        return;
    char prose[PROSE_MAX];
    size_t n = cairn_answer_prose(&c->a, prose, sizeof(prose));
    const char *got = cairn_langid_identify(c->v->langid, prose, n);
    /* A wrong violation costs a retry that makes things worse: a short
     * answer ("Paris, Berlin, Rome.") is no evidence of a language. */
    if (got == NULL || strcmp(got, value) == 0 ||
        cairn_answer_letters(prose, n) < c->v->lang_min_letters)
        return;
    struct cairn_violation *x = add(out, tag, CHECK_LANG, 1);
    snprintf(x->expected, sizeof(x->expected), "%s", value);
    snprintf(x->observed, sizeof(x->observed), "%s", got);
}

/* The language of code[0..len) by a shebang on its first line, else by the
 * best syntax score when it is high enough and not tied (C and C++,
 * JavaScript and TypeScript share much: a tie is no evidence). Scoring is
 * the costly part of validation (every code type's patterns over the
 * code), so it reads CODE_SCAN bytes of a block and CODE_BUDGET bytes per
 * answer: models nearly always label their blocks, and a label is read
 * for free. */
static int type_of_code(struct call *c, const char *code, size_t len)
{
    const struct cairn_validator *v = c->v;
    if (c->budget == 0)
        return -1;
    if (c->m.md == NULL) {
        c->m.md = pcre2_match_data_create(v->code_types.groups, NULL);
        if (c->m.md == NULL)
            return -1;
    }
    size_t cap = c->budget < CODE_SCAN ? c->budget : CODE_SCAN;
    if (len > cap) {
        len = cap;
        while (len > 0 && ((unsigned char)code[len] & 0xC0) == 0x80)
            len--; /* end on a whole character */
    }
    c->budget -= len < c->budget ? len : c->budget;
    int t = cairn_code_types_by_shebang(&v->code_types, code, len, &c->m);
    return t >= 0
               ? t
               : cairn_code_types_by_syntax(&v->code_types, code, len, v->min_syntax_score, &c->m);
}

static void check_code(struct call *c, int tag, const char *value, struct cairn_violations *out)
{
    const struct cairn_answer *a = &c->a;
    int other = -1;             /* the largest block in another taxonomy language */
    size_t other_size = 0;      /* its size */
    const char *foreign = NULL; /* the info of a block declared as no code type */
    bool any = false;
    for (size_t i = 0; i < a->nfences; i++) {
        const struct cairn_fence *f = &a->fences[i];
        size_t s = f->body, e = f->body_end;
        while (s < e && isspace((unsigned char)a->text[s]))
            s++;
        if (s == e)
            continue;
        any = true;
        int t = f->info[0] != '\0' ? cairn_code_types_by_name(&c->v->code_types, f->info)
                                   : type_of_code(c, a->text + s, e - s);
        if (t < 0) {
            if (f->info[0] != '\0' && foreign == NULL)
                foreign = f->info;
            continue;
        }
        if (strcmp(c->v->code_types.type[t].value, value) == 0)
            return;
        if (e - s > other_size) {
            other = t;
            other_size = e - s;
        }
    }
    char observed[CAIRN_VIOLATION_TEXT];
    if (!any) {
        int t = type_of_code(c, a->text, a->len);
        if (t >= 0 && strcmp(c->v->code_types.type[t].value, value) == 0)
            return;
        if (t >= 0)
            snprintf(observed, sizeof(observed), "%s code outside a code block",
                     c->v->code_types.type[t].value);
        else
            snprintf(observed, sizeof(observed), "no code block");
    } else if (other >= 0) {
        snprintf(observed, sizeof(observed), "%s code", c->v->code_types.type[other].value);
    } else if (foreign != NULL) {
        snprintf(observed, sizeof(observed), "a ```%s block", foreign);
    } else {
        return; /* blocks of a language that cannot be told */
    }
    struct cairn_violation *x = add(out, tag, CHECK_CODE, 1);
    snprintf(x->expected, sizeof(x->expected), "%s", value);
    snprintf(x->observed, sizeof(x->observed), "%s", observed);
}

/* Replace each byte that does not start a valid UTF-8 sequence by '?' (the
 * patterns skip PCRE2's own check, see pattern.c). */
static char *valid_copy(const char *text, size_t len, size_t bad)
{
    char *p = cairn_malloc(len + 1);
    memcpy(p, text, len);
    p[len] = '\0';
    for (size_t i = bad; i < len;) {
        p[i++] = '?'; /* p[i] is the next invalid byte */
        i += cairn_utf8_valid(p + i, len - i);
    }
    return p;
}

void cairn_validate(const struct cairn_validator *v, const struct cairn_markers *m,
                    const char *answer, size_t len, const struct cairn_validate_opts *o,
                    struct cairn_violations *out)
{
    out->n = 0;
    size_t bad = cairn_utf8_valid(answer, len);
    char *copy = bad < len ? valid_copy(answer, len, bad) : NULL;
    struct call c = {.v = v, .o = o, .length = SIZE_MAX, .budget = CODE_BUDGET};
    cairn_answer_scan(&c.a, copy ? copy : answer, len);
    for (size_t t = 0; t < v->tx->ntags && t < CAIRN_MAX_TAGS; t++) {
        if (v->check[t] == CHECK_NONE || !(o->tags & (UINT32_C(1) << t)) ||
            m->source[t] == CAIRN_SRC_NONE)
            continue;
        const char *value = m->value[t];
        int tag = (int)t;
        switch ((enum check)v->check[t]) {
        case CHECK_LENGTH:
            check_limit(&c, tag, CHECK_LENGTH, value, answer_length(&c), unit_name(o->counting, 1),
                        unit_name(o->counting, 2), out);
            break;
        case CHECK_SENTENCES:
            check_limit(&c, tag, CHECK_SENTENCES, value,
                        cairn_answer_sentences(&c.a, v->sentences, c.a.len), "sentence",
                        "sentences", out);
            break;
        case CHECK_PARAGRAPHS:
            check_limit(&c, tag, CHECK_PARAGRAPHS, value, cairn_answer_paragraphs(&c.a),
                        "paragraph", "paragraphs", out);
            break;
        case CHECK_BUCKET: check_bucket(&c, tag, value, out); break;
        case CHECK_FORMAT: check_format(&c, tag, value, out); break;
        case CHECK_LANG: check_lang(&c, tag, value, out); break;
        case CHECK_CODE: check_code(&c, tag, value, out); break;
        default: break;
        }
    }
    if (c.m.md != NULL)
        pcre2_match_data_free(c.m.md);
    cairn_answer_free(&c.a);
    free(copy);
}

/* ---- reporting -------------------------------------------------------- */

/* One instruction for violation x into buf. */
static void feedback_one(const struct cairn_violation *x, char *buf, size_t len)
{
    const char *key = x->key ? x->key : "";
    if (strcmp(key, "lang") == 0) {
        snprintf(buf, len, "Your previous answer was in %s; answer again in %s.", x->observed,
                 x->expected);
    } else if (strcmp(key, "format") == 0) {
        snprintf(buf, len, "Your previous answer %s", cairn_format_feedback(x->expected));
    } else if (strcmp(key, "code_type") == 0) {
        snprintf(buf, len,
                 "Your previous answer had %s; answer again with %s code in a ```%s block.",
                 x->observed, x->expected, x->expected);
    } else if (strcmp(key, "length_bucket") == 0) {
        /* "at most 299 words (concise)": the range without the name. */
        const char *paren = strstr(x->expected, " (");
        int n = paren ? (int)(paren - x->expected) : (int)strlen(x->expected);
        snprintf(buf, len, "Your previous answer had %s; answer again in %.*s.", x->observed, n,
                 x->expected);
    } else if (strncmp(key, "length_", 7) == 0) {
        snprintf(buf, len, "Your previous answer had %s; answer again in %s.", x->observed,
                 x->expected);
    } else {
        snprintf(buf, len, "Your previous answer did not match %s \"%s\" (it had %s).",
                 key[0] ? key : "a marker", x->expected, x->observed);
    }
}

void cairn_violations_feedback(const struct cairn_violations *v, char *out, size_t outlen)
{
    size_t o = 0;
    if (outlen == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < v->n; i++) {
        char one[512];
        feedback_one(&v->items[i], one, sizeof(one));
        size_t n = strlen(one);
        /* Whole instructions only: a cut one could say the opposite. */
        if (o + (o > 0) + n + 1 > outlen)
            break;
        if (o > 0)
            out[o++] = ' ';
        memcpy(out + o, one, n + 1);
        o += n;
    }
}

int cairn_violations_compare(const struct cairn_violations *a, const struct cairn_violations *b)
{
    if (a->n != b->n)
        return a->n < b->n ? -1 : 1;
    double ea = 0, eb = 0;
    for (size_t i = 0; i < a->n; i++)
        ea += a->items[i].excess;
    for (size_t i = 0; i < b->n; i++)
        eb += b->items[i].excess;
    if (fabs(ea - eb) < 1e-9)
        return 0;
    return ea < eb ? -1 : 1;
}

void cairn_violations_to_json(const struct cairn_violations *v, const struct cairn_taxonomy *tx,
                              cJSON *arr)
{
    for (size_t i = 0; i < v->n; i++) {
        const struct cairn_violation *x = &v->items[i];
        const char *key = x->tag >= 0 && (size_t)x->tag < tx->ntags ? tx->tags[x->tag].key
                          : x->key                                  ? x->key
                                                                    : "";
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "marker", key);
        cJSON_AddStringToObject(obj, "expected", x->expected);
        cJSON_AddStringToObject(obj, "observed", x->observed);
        cJSON_AddItemToArray(arr, obj);
    }
}
