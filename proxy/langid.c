/*
 * langid.c — identify the language of a prompt's prose (see langid.h).
 *
 * Why libexttextcat and not CLD2 (measured on 84 short prompts, 6 each in
 * the 14 taxonomy languages written in Latin or Cyrillic script, 20-70
 * characters, Debian bookworm, -O2, one core):
 *
 *   libexttextcat 3.4.5, all 160 fingerprints of fpdb.conf:
 *       first guess right 67/84, 219 us per call
 *   libexttextcat, only the 15 fingerprints of our languages:
 *       first guess right 79/84, 49 us per call; accepting an answer only
 *       when textcat names at most 2 candidates (all within 3% of the
 *       best score): 74 right, 1 wrong (pl taken for cs), 9 no answer;
 *       a single candidate only: 69 / 1 / 14
 * On the 445 labelled prompts of tests/annotator, with the scripts rules
 * and explicit instructions in front, "max_candidates" 2 gives lang
 * accuracy 0.94 at precision 0.99, 1 gives 0.90 at 0.99; 2 is shipped.
 *   CLD2 (git20150806): 72/84 right, 77 us per call; its misses are short
 *       Romance sentences taken for English (flagged unreliable) and
 *       Indonesian taken for Malay (flagged reliable): keeping only
 *       reliable answers, 72 right, 3 wrong, 9 no answer
 *
 * So textcat restricted to the taxonomy's languages is both more accurate
 * and faster on the short texts that prompts are, and it is C: no C++
 * shim, no second runtime. Its fingerprints and its answers are kept, but
 * not its code: ngram.c gives the library's answers bit for bit at a
 * third to a sixth of the cost (the library's fixed per-call work was
 * most of a request's). The scripts that name their language (Hangul,
 * Kana, Han, Greek, Hebrew, Arabic, Devanagari) never reach it. Texts
 * under "min_letters" letters get no answer: a wrong marker is worse than
 * none, and so is an answer naming more than "max_candidates" languages.
 */
#include "langid.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "ngram.h"
#include "pattern.h"
#include "utf8.h"

#define LANGID_MAX_RULES   32
#define LANGID_MAX_IDS     64
#define LANGID_MAX_LETTERS 16 /* code points in a rule's "letters" */

/* Writing systems, told apart by code-point blocks: a Unicode fact, not a
 * value list. */
enum script {
    SC_LATIN,
    SC_CYRILLIC,
    SC_GREEK,
    SC_ARABIC,
    SC_HEBREW,
    SC_DEVANAGARI,
    SC_THAI,
    SC_HANGUL,
    SC_KANA,
    SC_HAN,
    SC_COUNT,
    SC_NONE = SC_COUNT,
};

static const char *const script_names[SC_COUNT] = {
    "latin", "cyrillic", "greek", "arabic", "hebrew", "devanagari", "thai", "hangul", "kana", "han",
};

struct script_rule {
    enum script script;
    double min_share;                     /* of all letters */
    unsigned letters[LANGID_MAX_LETTERS]; /* one must occur, when nletters > 0 */
    size_t nletters;
    char value[CAIRN_MARKER_VALUE_MAX]; /* "" = ask the library */
};

struct cairn_langid {
    struct script_rule rules[LANGID_MAX_RULES];
    size_t nrules;
    unsigned min_letter;       /* the smallest of any rule's letters: most text is below it */
    struct cairn_ngram *ngram; /* owned; NULL when no rule asks for n-grams */
    size_t min_letters, max_bytes, max_candidates;
    char ids[LANGID_MAX_IDS][CAIRN_MARKER_VALUE_MAX]; /* textcat ids = lang values */
    size_t nids;
};

static enum script script_of(unsigned cp)
{
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
        (cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7) || (cp >= 0x1E00 && cp <= 0x1EFF))
        return SC_LATIN;
    if (cp >= 0x400 && cp <= 0x52F)
        return SC_CYRILLIC;
    if ((cp >= 0x370 && cp <= 0x3FF) || (cp >= 0x1F00 && cp <= 0x1FFF))
        return SC_GREEK;
    if ((cp >= 0x5D0 && cp <= 0x5F2))
        return SC_HEBREW;
    if ((cp >= 0x620 && cp <= 0x64A) || (cp >= 0x66E && cp <= 0x6D3) ||
        (cp >= 0x750 && cp <= 0x77F) || (cp >= 0xFB50 && cp <= 0xFDFF) ||
        (cp >= 0xFE70 && cp <= 0xFEFF))
        return SC_ARABIC;
    if (cp >= 0x904 && cp <= 0x939)
        return SC_DEVANAGARI;
    if (cp >= 0xE01 && cp <= 0xE30)
        return SC_THAI;
    if ((cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0x3130 && cp <= 0x318F) ||
        (cp >= 0xAC00 && cp <= 0xD7AF))
        return SC_HANGUL;
    if ((cp >= 0x3041 && cp <= 0x30FA) || (cp >= 0x31F0 && cp <= 0x31FF) ||
        (cp >= 0xFF66 && cp <= 0xFF9D))
        return SC_KANA;
    if ((cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
        (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x2FFFF))
        return SC_HAN;
    return SC_NONE;
}

/* A lang value named by the data must be one the taxonomy has (when the
 * deployment kept the tag at all); the canonical spelling is kept. */
static int lang_value(const struct cairn_taxonomy *tx, const char *value,
                      char out[CAIRN_MARKER_VALUE_MAX], char *why, size_t whylen)
{
    int tag = cairn_taxonomy_key(tx, "lang");
    if (tag < 0) {
        snprintf(out, CAIRN_MARKER_VALUE_MAX, "%s", value);
        return 0;
    }
    return cairn_taxonomy_canonical(tx, tag, value, out, why, whylen);
}

static int load_script_rule(struct cairn_langid *l, const struct cairn_taxonomy *tx, const cJSON *r,
                            const char *path, char *why, size_t whylen)
{
    static const char *const keys[] = {"script",   "min_share", "letters", "lang",
                                       "identify", "comment",   NULL};
    struct script_rule *rule = &l->rules[l->nrules];
    char msg[160];
    if (!cJSON_IsObject(r)) {
        snprintf(why, whylen, "%s: must be an object", path);
        return -1;
    }
    if (cairn_pattern_check_keys(r, keys, path, why, whylen) < 0)
        return -1;
    const cJSON *script = cJSON_GetObjectItemCaseSensitive(r, "script");
    rule->script = SC_NONE;
    for (int i = 0; i < SC_COUNT && cJSON_IsString(script); i++)
        if (strcmp(script->valuestring, script_names[i]) == 0)
            rule->script = (enum script)i;
    if (rule->script == SC_NONE) {
        snprintf(why, whylen,
                 "%s.script: must be one of latin, cyrillic, greek, arabic, hebrew, "
                 "devanagari, thai, hangul, kana, han",
                 path);
        return -1;
    }
    const cJSON *share = cJSON_GetObjectItemCaseSensitive(r, "min_share");
    rule->min_share = 0.5;
    if (share != NULL) {
        if (!cJSON_IsNumber(share) || share->valuedouble <= 0 || share->valuedouble > 1) {
            snprintf(why, whylen, "%s.min_share: must be a number in (0, 1]", path);
            return -1;
        }
        rule->min_share = share->valuedouble;
    }
    const cJSON *letters = cJSON_GetObjectItemCaseSensitive(r, "letters");
    if (letters != NULL) {
        if (!cJSON_IsString(letters) || letters->valuestring[0] == '\0') {
            snprintf(why, whylen, "%s.letters: must be a non-empty string", path);
            return -1;
        }
        size_t n = strlen(letters->valuestring);
        for (size_t i = 0; i < n;) {
            if (rule->nletters == LANGID_MAX_LETTERS) {
                snprintf(why, whylen, "%s.letters: at most %d letters", path, LANGID_MAX_LETTERS);
                return -1;
            }
            unsigned cp = cairn_utf8_next(letters->valuestring, n, &i);
            rule->letters[rule->nletters++] = cp;
            if (cp < l->min_letter)
                l->min_letter = cp;
        }
    }
    const cJSON *lang = cJSON_GetObjectItemCaseSensitive(r, "lang");
    const cJSON *identify = cJSON_GetObjectItemCaseSensitive(r, "identify");
    if ((lang == NULL) == (identify == NULL) || (identify != NULL && !cJSON_IsTrue(identify))) {
        snprintf(why, whylen, "%s: needs either \"lang\" or \"identify\": true", path);
        return -1;
    }
    if (lang != NULL) {
        if (!cJSON_IsString(lang) ||
            lang_value(tx, lang->valuestring, rule->value, msg, sizeof(msg)) < 0) {
            snprintf(why, whylen, "%s.lang: %s", path,
                     cJSON_IsString(lang) ? msg : "must be a string");
            return -1;
        }
    }
    l->nrules++;
    return 0;
}

/* Read the textcat configuration (libexttextcat's format): its ids must be
 * taxonomy values, and each line's fingerprint is loaded for ngram.c. */
static int load_textcat_conf(struct cairn_langid *l, const struct cairn_taxonomy *tx,
                             const char *conf, const char *prefix, char *why, size_t whylen)
{
    FILE *f = fopen(conf, "r");
    if (f == NULL) {
        snprintf(why, whylen, "%s: cannot be read", conf);
        return -1;
    }
    char line[512], file[256], id[128], msg[160];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        int n = sscanf(line, "%255s %127s", file, id);
        if (n <= 0)
            continue;
        if (n != 2) {
            snprintf(why, whylen, "%s:%d: expected \"<fingerprint file> <lang value>\"", conf,
                     lineno);
            rc = -1;
        } else if (l->nids == LANGID_MAX_IDS) {
            snprintf(why, whylen, "%s:%d: at most %d fingerprints", conf, lineno, LANGID_MAX_IDS);
            rc = -1;
        } else if (lang_value(tx, id, l->ids[l->nids], msg, sizeof(msg)) < 0) {
            snprintf(why, whylen, "%s:%d: %s", conf, lineno, msg);
            rc = -1;
        } else {
            /* The fingerprint, read as libexttextcat reads it (ngram.h). */
            char path[1024], msg2[1100];
            snprintf(path, sizeof(path), "%s%s", prefix, file);
            if (cairn_ngram_add(l->ngram, path, (int)l->nids, msg2, sizeof(msg2)) < 0) {
                snprintf(why, whylen, "%s:%d: %s", conf, lineno, msg2);
                rc = -1;
            } else {
                l->nids++;
            }
        }
    }
    fclose(f);
    if (rc == 0 && l->nids == 0) {
        snprintf(why, whylen, "%s: names no fingerprint", conf);
        rc = -1;
    }
    return rc;
}

static int load_identify(struct cairn_langid *l, const struct cairn_taxonomy *tx, const cJSON *id,
                         const char *rules_dir, char *why, size_t whylen)
{
    static const char *const keys[] = {"textcat_conf",   "fingerprints", "min_letters", "max_bytes",
                                       "max_candidates", "comment",      NULL};
    if (!cJSON_IsObject(id)) {
        snprintf(why, whylen, "identify: must be an object");
        return -1;
    }
    if (cairn_pattern_check_keys(id, keys, "identify", why, whylen) < 0)
        return -1;
    struct {
        const char *key;
        size_t *field;
        double min, max;
    } nums[] = {
        {"min_letters", &l->min_letters, 1, 10000},
        {"max_bytes", &l->max_bytes, 64, 65536},
        {"max_candidates", &l->max_candidates, 1, 10},
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(id, nums[i].key);
        if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long)v->valuedouble ||
            v->valuedouble < nums[i].min || v->valuedouble > nums[i].max) {
            snprintf(why, whylen, "identify.%s: must be an integer from %g to %g", nums[i].key,
                     nums[i].min, nums[i].max);
            return -1;
        }
        *nums[i].field = (size_t)v->valuedouble;
    }
    const cJSON *conf = cJSON_GetObjectItemCaseSensitive(id, "textcat_conf");
    const cJSON *fp = cJSON_GetObjectItemCaseSensitive(id, "fingerprints");
    if (!cJSON_IsString(conf) || conf->valuestring[0] == '\0' || !cJSON_IsString(fp) ||
        fp->valuestring[0] == '\0') {
        snprintf(why, whylen,
                 "identify: \"textcat_conf\" (relative to the rules directory) and "
                 "\"fingerprints\" (a directory) must be non-empty strings");
        return -1;
    }
    char path[1024], prefix[1024];
    snprintf(path, sizeof(path), "%s/%s", rules_dir, conf->valuestring);
    /* libexttextcat glues prefix and file name together as they are. */
    size_t fl = strlen(fp->valuestring);
    snprintf(prefix, sizeof(prefix), "%s%s", fp->valuestring,
             fp->valuestring[fl - 1] == '/' ? "" : "/");
    l->ngram = cairn_ngram_new();
    if (load_textcat_conf(l, tx, path, prefix, why, whylen) < 0)
        return -1;
    cairn_ngram_seal(l->ngram);
    return 0;
}

struct cairn_langid *cairn_langid_load(const struct cairn_taxonomy *tx, const cJSON *root,
                                       const char *rules_dir, const char *file, char *err,
                                       size_t errlen)
{
    struct cairn_langid *l = cairn_calloc(1, sizeof(*l));
    l->min_letter = UINT_MAX;
    char why[512], path[64];
    const cJSON *scripts = cJSON_GetObjectItemCaseSensitive(root, "scripts");
    bool library = false;
    if (!cJSON_IsArray(scripts) || cJSON_GetArraySize(scripts) < 1 ||
        cJSON_GetArraySize(scripts) > LANGID_MAX_RULES) {
        snprintf(why, sizeof(why), "scripts: must be an array of 1 to %d rules", LANGID_MAX_RULES);
        goto fail;
    }
    for (const cJSON *r = scripts->child; r != NULL; r = r->next) {
        snprintf(path, sizeof(path), "scripts[%zu]", l->nrules);
        if (load_script_rule(l, tx, r, path, why, sizeof(why)) < 0)
            goto fail;
        library |= l->rules[l->nrules - 1].value[0] == '\0';
    }
    if (library && load_identify(l, tx, cJSON_GetObjectItemCaseSensitive(root, "identify"),
                                 rules_dir, why, sizeof(why)) < 0)
        goto fail;
    return l;
fail:
    snprintf(err, errlen, "%s: %s", file, why);
    cairn_langid_free(l);
    return NULL;
}

void cairn_langid_free(struct cairn_langid *l)
{
    if (l == NULL)
        return;
    cairn_ngram_free(l->ngram);
    free(l);
}

/* The n-gram classifier names up to 5 languages, all within 3% of the
 * best; take the first when the list is short enough to mean something.
 * It reads on past `n` to the end of the text (libexttextcat's way,
 * which ngram.c keeps). */
static const char *ask_ngram(const struct cairn_langid *l, const char *text, size_t len, size_t n)
{
    int ids[5];
    int k = cairn_ngram_classify(l->ngram, text, len, n, ids);
    if (k == 0 || (size_t)k > l->max_candidates)
        return NULL;
    return l->ids[ids[0]];
}

const char *cairn_langid_identify(const struct cairn_langid *l, const char *text, size_t len)
{
    size_t counts[SC_COUNT] = {0}, letters = 0;
    size_t hits[LANGID_MAX_RULES] = {0};
    const unsigned char *s = (const unsigned char *)text;
    size_t scan = len < 4 * l->max_bytes + 256 ? len : 4 * l->max_bytes + 256;
    for (size_t i = 0; i < scan;) {
        unsigned cp = cairn_utf8_next(text, scan, &i);
        enum script sc = script_of(cp);
        if (sc == SC_NONE)
            continue;
        counts[sc]++;
        letters++;
        for (size_t r = 0; cp >= l->min_letter && r < l->nrules; r++)
            for (size_t k = 0; k < l->rules[r].nletters; k++)
                hits[r] += l->rules[r].letters[k] == cp;
    }
    if (letters < 2)
        return NULL;
    for (size_t r = 0; r < l->nrules; r++) {
        const struct script_rule *rule = &l->rules[r];
        if ((double)counts[rule->script] < rule->min_share * (double)letters)
            continue;
        if (rule->nletters > 0 && hits[r] == 0)
            continue;
        if (rule->value[0] != '\0')
            return rule->value;
        if (l->ngram == NULL || letters < l->min_letters)
            return NULL;
        /* Cost grows with the text; a few hundred bytes decide. Cut on a
         * character boundary. */
        size_t n = len < l->max_bytes ? len : l->max_bytes;
        while (n < len && n > 0 && (s[n] & 0xC0) == 0x80)
            n--;
        return ask_ngram(l, text, len, n);
    }
    return NULL;
}
