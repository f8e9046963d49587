/*
 * pattern.c — compile the rules' pattern lists once, at load time, and
 * match them cheaply per request (see pattern.h).
 *
 * A list of patterns becomes one alternation "(?:p0)|(?:p1)|..." so that a
 * rule costs one scan of the text, not one per pattern; each pattern is
 * first compiled on its own so that an error names the pattern and an
 * offset the operator can find in the file. Placeholders expand to named
 * groups; lists repeat names, hence PCRE2_DUPNAMES, and the reading side
 * walks the name table to find which group of a name was set.
 */
#include "pattern.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

#define PATTERN_OPTIONS                                                                        \
    (PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS | PCRE2_MULTILINE | PCRE2_DUPNAMES |              \
     PCRE2_MATCH_INVALID_UTF)

/* Checked JSON strings are valid UTF-8; PCRE2_MATCH_INVALID_UTF still keeps
 * a stray byte from turning into an error in the middle of a request. */

void cairn_pattern_append(char **buf, size_t *len, size_t *cap, const char *text)
{
    size_t n = strlen(text);
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = cairn_realloc(*buf, *cap);
    }
    memcpy(*buf + *len, text, n + 1);
    *len += n;
}

void cairn_pattern_escape(char **buf, size_t *len, size_t *cap, const char *text)
{
    char one[3] = {0};
    for (const char *p = text; *p != '\0'; p++) {
        /* Spaces inside names ("Visual Basic") match any run of white space. */
        if (*p == ' ') {
            cairn_pattern_append(buf, len, cap, "\\s+");
            continue;
        }
        size_t k = 0;
        if (strchr("\\^$.|?*+()[]{}#-", *p) != NULL)
            one[k++] = '\\';
        one[k++] = *p;
        one[k] = '\0';
        cairn_pattern_append(buf, len, cap, one);
    }
}

/* Expand placeholders in `pattern`; the offset of the i-th expansion is
 * recorded so that a compile error can be mapped back to the pattern as
 * written. @return the expansion, or NULL with `why` set. */
struct expansion {
    size_t at;         /* where the placeholder starts in the original */
    size_t orig_len;   /* its length there */
    size_t expand_len; /* the length it was expanded to */
};

static char *expand(const char *pattern, const struct cairn_pattern_env *env,
                    struct expansion exp[3], size_t *nexp, const char *path, char *why,
                    size_t whylen)
{
    static const char *const names[] = {"{NUM}", "{LANG}", "{CODE}"};
    const char *with[] = {env ? env->num : NULL, env ? env->lang : NULL,
                          env ? env->code : NULL};
    bool used[3] = {false, false, false};
    char *out = NULL;
    size_t len = 0, cap = 0;
    cairn_pattern_append(&out, &len, &cap, "");
    *nexp = 0;
    for (const char *p = pattern; *p != '\0';) {
        int which = -1;
        for (int i = 0; i < 3; i++)
            if (strncmp(p, names[i], strlen(names[i])) == 0)
                which = i;
        if (which < 0) {
            char one[2] = {*p, '\0'};
            cairn_pattern_append(&out, &len, &cap, one);
            /* Keep an escaped brace escaped: "\{NUM}" is literal text. */
            if (*p == '\\' && p[1] != '\0') {
                one[0] = p[1];
                cairn_pattern_append(&out, &len, &cap, one);
                p++;
            }
            p++;
            continue;
        }
        if (with[which] == NULL || used[which]) {
            snprintf(why, whylen, "%s: %s %s", path, names[which],
                     used[which] ? "may appear only once in a pattern"
                                 : "is not available in this list");
            free(out);
            return NULL;
        }
        used[which] = true;
        exp[*nexp].at = (size_t)(p - pattern);
        exp[*nexp].orig_len = strlen(names[which]);
        exp[*nexp].expand_len = strlen(with[which]);
        (*nexp)++;
        cairn_pattern_append(&out, &len, &cap, with[which]);
        p += strlen(names[which]);
    }
    return out;
}

static size_t original_offset(size_t off, const struct expansion *exp, size_t nexp)
{
    size_t shift = 0; /* expanded minus original, over the placeholders passed */
    for (size_t i = 0; i < nexp; i++) {
        size_t start = exp[i].at + shift;
        if (off < start)
            break;
        if (off < start + exp[i].expand_len)
            return exp[i].at;
        shift += exp[i].expand_len - exp[i].orig_len;
    }
    return off - shift;
}

static pcre2_code *compile(const char *text, char *msg, size_t msglen, PCRE2_SIZE *erroff)
{
    int code;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED, PATTERN_OPTIONS,
                                   &code, erroff, NULL);
    if (re == NULL)
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, msglen);
    return re;
}

/* Compile `pattern` alone to check it; on success the expansion is
 * returned (for joining into a list), the test compile is discarded. */
static char *check_one(const char *pattern, const struct cairn_pattern_env *env,
                       const char *path, char *why, size_t whylen)
{
    struct expansion exp[3];
    size_t nexp;
    char *text = expand(pattern, env, exp, &nexp, path, why, whylen);
    if (text == NULL)
        return NULL;
    char msg[160];
    PCRE2_SIZE off;
    pcre2_code *re = compile(text, msg, sizeof(msg), &off);
    if (re == NULL) {
        snprintf(why, whylen, "%s: PCRE2 error at offset %zu: %s", path,
                 original_offset(off, exp, nexp), msg);
        free(text);
        return NULL;
    }
    /* An empty match would make every text match the rule. */
    int rc;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    rc = pcre2_match(re, (PCRE2_SPTR) "", 0, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    if (rc >= 0) {
        snprintf(why, whylen, "%s: the pattern matches empty text", path);
        free(text);
        return NULL;
    }
    return text;
}

#define PATTERN_MAX_PIECES 64

struct cairn_pattern {
    pcre2_code *re[PATTERN_MAX_PIECES]; /* owned */
    size_t n;
    uint32_t groups;
};

static void add_piece(struct cairn_pattern *p, pcre2_code *re)
{
    uint32_t n = 0;
    /* Without JIT the interpreter still matches correctly, only slower. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &n);
    if (n + 1 > p->groups)
        p->groups = n + 1;
    p->re[p->n++] = re;
}

void cairn_pattern_free(struct cairn_pattern *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++)
        pcre2_code_free(p->re[i]);
    free(p);
}

uint32_t cairn_pattern_groups(const struct cairn_pattern *p)
{
    return p ? p->groups : 1;
}

/* Join texts[from..to) as one alternation and compile it. */
static pcre2_code *compile_join(char **texts, size_t from, size_t to, char *msg, size_t msglen)
{
    char *joined = NULL;
    size_t len = 0, cap = 0;
    for (size_t i = from; i < to; i++) {
        cairn_pattern_append(&joined, &len, &cap, i > from ? "|(?:" : "(?:");
        cairn_pattern_append(&joined, &len, &cap, texts[i]);
        cairn_pattern_append(&joined, &len, &cap, ")");
    }
    PCRE2_SIZE off;
    pcre2_code *re = compile(joined, msg, msglen, &off);
    free(joined);
    return re;
}

/* Pack the checked patterns into as few compiled pieces as PCRE2's size
 * limit allows: one for ordinary lists; patterns with a large {LANG}
 * expansion may need one each. */
static struct cairn_pattern *pack(char **texts, size_t n, const char *path, char *why,
                                  size_t whylen)
{
    struct cairn_pattern *p = cairn_calloc(1, sizeof(*p));
    char msg[160];
    size_t from = 0;
    while (from < n) {
        size_t to = n;
        pcre2_code *re = NULL;
        /* Halve the span until it compiles; one pattern alone always does. */
        while ((re = compile_join(texts, from, to, msg, sizeof(msg))) == NULL && to - from > 1)
            to = from + (to - from) / 2;
        if (re == NULL || p->n == PATTERN_MAX_PIECES) {
            if (re != NULL)
                pcre2_code_free(re);
            snprintf(why, whylen, "%s: the patterns together are too large to compile", path);
            cairn_pattern_free(p);
            return NULL;
        }
        add_piece(p, re);
        from = to;
    }
    return p;
}

struct cairn_pattern *cairn_pattern_compile_one(const char *pattern,
                                                const struct cairn_pattern_env *env,
                                                const char *path, char *why, size_t whylen)
{
    char *text = check_one(pattern, env, path, why, whylen);
    if (text == NULL)
        return NULL;
    struct cairn_pattern *p = pack(&text, 1, path, why, whylen);
    free(text);
    return p;
}

struct cairn_pattern *cairn_pattern_compile_list(const cJSON *array,
                                                 const struct cairn_pattern_env *env,
                                                 const char *path, char *why, size_t whylen)
{
    int count = cJSON_GetArraySize(array);
    if (!cJSON_IsArray(array) || count < 1) {
        snprintf(why, whylen, "%s: must be a non-empty array of patterns", path);
        return NULL;
    }
    char **texts = cairn_calloc((size_t)count, sizeof(*texts));
    size_t i = 0;
    struct cairn_pattern *p = NULL;
    char where[512];
    for (const cJSON *e = array->child; e != NULL; e = e->next, i++) {
        snprintf(where, sizeof(where), "%s[%zu]", path, i);
        if (!cJSON_IsString(e) || e->valuestring[0] == '\0') {
            snprintf(why, whylen, "%s: must be a non-empty string", where);
            goto out;
        }
        texts[i] = check_one(e->valuestring, env, where, why, whylen);
        if (texts[i] == NULL)
            goto out;
    }
    p = pack(texts, i, path, why, whylen);
out:
    for (size_t k = 0; k < (size_t)count; k++)
        free(texts[k]);
    free(texts);
    return p;
}

bool cairn_pattern_find(const struct cairn_pattern *p, const char *s, size_t len, size_t start,
                        struct cairn_match *m)
{
    if (p == NULL || start > len)
        return false;
    /* The leftmost match over the pieces; the winner is matched again if a
     * later piece overwrote the match data. */
    size_t best = SIZE_MAX, winner = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (pcre2_match(p->re[i], (PCRE2_SPTR)s, len, start, 0, m->md, NULL) < 0)
            continue;
        size_t at = pcre2_get_ovector_pointer(m->md)[0];
        if (at < best) {
            best = at;
            winner = i;
        }
    }
    if (best == SIZE_MAX)
        return false;
    m->re = p->re[winner];
    if (p->n > 1)
        pcre2_match(p->re[winner], (PCRE2_SPTR)s, len, start, 0, m->md, NULL);
    return true;
}

size_t cairn_pattern_start(const struct cairn_match *m)
{
    return pcre2_get_ovector_pointer(m->md)[0];
}

size_t cairn_pattern_end(const struct cairn_match *m)
{
    return pcre2_get_ovector_pointer(m->md)[1];
}

int cairn_pattern_count(const struct cairn_pattern *p, const char *s, size_t len, int cap,
                        struct cairn_match *m)
{
    int n = 0;
    size_t at = 0;
    while (n < cap && cairn_pattern_find(p, s, len, at, m)) {
        size_t a = cairn_pattern_start(m), b = cairn_pattern_end(m);
        n++;
        at = b > a ? b : b + 1; /* list patterns never match empty */
    }
    return n;
}

/* Walk the name table for a set group "<prefix><digits>" (exact == true:
 * the name is just `prefix`); return the digits' value, or -1 (0 for an
 * exact name that is set). Names repeat across a list (PCRE2_DUPNAMES),
 * so the table, not pcre2_substring_number_from_name, says which is set. */
static long set_group(const struct cairn_match *m, const char *prefix, bool exact,
                      size_t *start, size_t *len)
{
    uint32_t count, size;
    PCRE2_SPTR table;
    pcre2_pattern_info(m->re, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(m->re, PCRE2_INFO_NAMEENTRYSIZE, &size);
    pcre2_pattern_info(m->re, PCRE2_INFO_NAMETABLE, &table);
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
    uint32_t pairs = pcre2_get_ovector_count(m->md);
    size_t plen = strlen(prefix);
    for (uint32_t i = 0; i < count; i++) {
        PCRE2_SPTR entry = table + (size_t)i * size;
        uint32_t group = ((uint32_t)entry[0] << 8) | entry[1];
        const char *name = (const char *)entry + 2;
        if (strncmp(name, prefix, plen) != 0)
            continue;
        if (exact ? name[plen] != '\0' : (name[plen] < '0' || name[plen] > '9'))
            continue;
        if (group >= pairs || ov[2 * group] == PCRE2_UNSET)
            continue;
        if (start != NULL) {
            *start = ov[2 * group];
            *len = ov[2 * group + 1] - ov[2 * group];
        }
        return exact ? 0 : strtol(name + plen, NULL, 10);
    }
    return -1;
}

int cairn_pattern_which(const struct cairn_match *m, const char *prefix, size_t n)
{
    long i = set_group(m, prefix, false, NULL, NULL);
    return i >= 0 && (size_t)i < n ? (int)i : -1;
}

long cairn_pattern_number(const struct cairn_match *m, const char *s)
{
    long word = set_group(m, "n", false, NULL, NULL);
    if (word >= 0)
        return word;
    size_t start, len;
    if (set_group(m, "num", true, &start, &len) < 0)
        return -1;
    /* Digits with thousands separators ("1,000", "1.000", "1 000"). */
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[start + i];
        if (c >= '0' && c <= '9') {
            if (v > 100000000)
                return -1;
            v = v * 10 + (c - '0');
        }
    }
    return v;
}

int cairn_pattern_check_keys(const cJSON *obj, const char *const *allowed, const char *path,
                             char *why, size_t whylen)
{
    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        bool ok = false;
        for (size_t i = 0; allowed[i] != NULL && !ok; i++)
            ok = strcmp(m->string, allowed[i]) == 0;
        if (!ok) {
            snprintf(why, whylen, "%s%s%s: unknown key", path, path[0] ? "." : "", m->string);
            return -1;
        }
    }
    return 0;
}
