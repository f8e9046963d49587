/*
 * pattern.c — compile the rules' pattern lists once, at load time, and
 * match them cheaply per request (see pattern.h).
 *
 * A list of patterns becomes one alternation "(?:p0)|(?:p1)|..." so that a
 * rule costs one scan of the text, not one per pattern; each pattern is
 * first compiled on its own so that an error names the pattern and an
 * offset the operator can find in the file. A pattern that starts with a
 * placeholder and requires a CJK character ("字" in "{NUM}字以内") gets a
 * compiled piece of its own, run only on texts that contain that character
 * (see needed_unit). A piece whose every pattern needs one of a few
 * literals (literals.h) is not run on a text that has none of them.
 * Placeholders expand to a generic word
 * in a named group, then a callout (see pattern.h); lists repeat the
 * names, hence PCRE2_DUPNAMES, and the reading side walks the name table
 * to find which group of a name was set.
 */
#include "pattern.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "literals.h"
#include "utf8.h"

#define PATTERN_OPTIONS (PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS | PCRE2_MULTILINE | PCRE2_DUPNAMES)

/* Texts are valid UTF-8 (prompt_text.c makes sure), so matching skips
 * PCRE2's check of the whole subject, which would otherwise run again on
 * every call: hundreds per request. */
#define MATCH_OPTIONS PCRE2_NO_UTF_CHECK

static void append(char **buf, size_t *len, size_t *cap, const char *text)
{
    size_t n = strlen(text);
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = cairn_realloc(*buf, *cap);
    }
    memcpy(*buf + *len, text, n + 1);
    *len += n;
}

/* The generic words. Alphabetic words are taken whole and atomically
 * (two at most: "a single", "tiếng Anh", "bahasa Indonesia"), so the
 * engine tries two spans per start, not every prefix; CJK runs have no
 * spaces, so there a word is any 1-3 (numbers) or 1-8 (names) letters.
 * Each pattern with placeholders ends in a callout (see compile_join) that
 * checks the words against the tables. */
enum placeholder { PH_NUM = 1, PH_LANG = 2, PH_CODE = 3 };
#define ALPHA "[\\p{Latin}\\p{Cyrillic}\\p{Greek}\\p{Arabic}\\p{Hebrew}\\p{Devanagari}\\p{M}]"
#define CJK   "[\\p{Han}\\p{Hangul}\\p{Hiragana}\\p{Katakana}\\x{30FC}]"
/* ASCII, Arabic-Indic and Persian digits ("٥٠", "۱۰۰"). */
#define DIGIT   "[0-9\\x{660}-\\x{669}\\x{6F0}-\\x{6F9}]"
#define WORD(n) "(?>" ALPHA "{1," #n "})(?!\\p{L})"
/* Words start only after a non-letter: without the lookbehind the engine
 * would try again from every letter inside each word. */
#define AT_WORD "(?<![\\p{L}\\p{M}\\p{N}])"
#define EXPAND_NUM                                                                                 \
    "(?<num>(?<![0-9])" DIGIT "{1,7}+(?:[,.'\\x{202F} ]" DIGIT                                     \
    "{3})*+(?![0-9])|" AT_WORD WORD(12) "(?:\\h+" WORD(10) ")?|[\\p{Han}\\p{Hangul}]{1,3})"
#define EXPAND_LANG "(?<lang>" AT_WORD WORD(24) "(?:\\h+" WORD(16) ")?|" CJK "{1,8})"
/* Programming-language names: a Latin word with +, #, a dotted or dashed
 * suffix ("C++", "C#", "node.js", "Java-Methode" backtracks to "Java"), or
 * a run of CJK or other letters ("파이썬으로" backtracks to "파이썬"). */
#define CODE_WORD "(?>[\\p{Latin}\\p{N}][\\p{Latin}\\p{N}+#]{0,15})(?![\\p{Latin}\\p{N}+#])"
#define EXPAND_CODE                                                                                \
    "(?<code>(?<![\\p{L}\\p{N}+#])(?:" CODE_WORD                                                   \
    "(?:[./-](?>[\\p{L}\\p{N}]{1,8}))?(?:\\h+" CODE_WORD ")?|" CJK                                 \
    "{2,8}|[\\p{Arabic}\\p{Cyrillic}]{2,16}))"

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
    const char *with[] = {env && env->num ? EXPAND_NUM : NULL,
                          env && env->lang ? EXPAND_LANG : NULL,
                          env && env->code ? EXPAND_CODE : NULL};
    bool used[3] = {false, false, false};
    char *out = NULL;
    size_t len = 0, cap = 0;
    append(&out, &len, &cap, "");
    *nexp = 0;
    for (const char *p = pattern; *p != '\0';) {
        int which = -1;
        for (int i = 0; i < 3; i++)
            if (strncmp(p, names[i], strlen(names[i])) == 0)
                which = i;
        if (which < 0) {
            char one[2] = {*p, '\0'};
            append(&out, &len, &cap, one);
            /* Keep an escaped brace escaped: "\{NUM}" is literal text. */
            if (*p == '\\' && p[1] != '\0') {
                one[0] = p[1];
                append(&out, &len, &cap, one);
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
        append(&out, &len, &cap, with[which]);
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
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED, PATTERN_OPTIONS, &code,
                                   erroff, NULL);
    if (re == NULL)
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, msglen);
    return re;
}

/* A checked pattern: its expansion, how many groups it has, and which of
 * them hold placeholders (group numbers within the pattern, 0 = none). */
struct checked {
    char gate[300];       /* a lookahead on the first character, or "" */
    const char *original; /* the pattern as written (not owned) */
    int need;             /* see needed_unit(), for a pattern led by a placeholder */
    int family;           /* cairn_literals_family() of its literals */
    char *text;
    uint32_t captures;
    uint32_t group[4]; /* indexed by enum placeholder */
};

static uint32_t group_named(const pcre2_code *re, const char *name)
{
    int n = pcre2_substring_number_from_name(re, (PCRE2_SPTR)name);
    return n > 0 ? (uint32_t)n : 0;
}

/* In an alternation, PCRE2 tries every branch at every position a match
 * may start, and a branch of many keywords costs a compare per keyword to
 * fail. Each pattern alone, PCRE2 knows which first bytes it can start
 * with; a lookahead on that set makes its branch fail in one step at
 * every other position. (In UTF-8 mode a class can only name characters,
 * so all non-ASCII first bytes become "any non-ASCII character".) */
static void first_gate(const pcre2_code *re, char *gate, size_t len)
{
    uint32_t type = 2;
    const uint8_t *bits = NULL;
    gate[0] = '\0';
    pcre2_pattern_info(re, PCRE2_INFO_FIRSTCODETYPE, &type);
    if (type != 0)
        return; /* a known first unit: PCRE2 already skips to it */
    pcre2_pattern_info(re, PCRE2_INFO_FIRSTBITMAP, &bits);
    if (bits == NULL)
        return;
    size_t o = 0;
    bool high = false;
    /* Case-sensitive: the bitmap holds both cases already, and a caseless
     * class over all of Unicode is slow to compile. */
    o += (size_t)snprintf(gate + o, len - o, "(?=(?-i)[");
    for (unsigned c = 0; c < 0x80 && o + 24 < len; c++) {
        if (!(bits[c / 8] & (1u << (c % 8))))
            continue;
        unsigned end = c; /* ranges keep the gate short */
        while (end + 1 < 0x80 && (bits[(end + 1) / 8] & (1u << ((end + 1) % 8))))
            end++;
        o += (size_t)snprintf(gate + o, len - o, end > c ? "\\x{%x}-\\x{%x}" : "\\x{%x}", c, end);
        c = end;
    }
    for (unsigned c = 0x80; c < 256; c++)
        high |= (bits[c / 8] & (1u << (c % 8))) != 0;
    if (o + 16 >= len) {
        gate[0] = '\0';
        return;
    }
    if (high)
        o += (size_t)snprintf(gate + o, len - o, "\\x{80}-\\x{10ffff}");
    snprintf(gate + o, len - o, "])");
}

/* Compile `pattern` alone to check it; on success the expansion is
 * returned (for joining into a list), the test compile is discarded. */
static char *check_one(const char *pattern, const struct cairn_pattern_env *env, const char *path,
                       char *why, size_t whylen, struct checked *info)
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
    memset(info, 0, sizeof(*info));
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &info->captures);
    info->group[PH_NUM] = group_named(re, "num");
    info->group[PH_LANG] = group_named(re, "lang");
    info->group[PH_CODE] = group_named(re, "code");
    first_gate(re, info->gate, sizeof(info->gate));
    pcre2_code_free(re);
    if (rc >= 0) {
        snprintf(why, whylen, "%s: the pattern matches empty text", path);
        free(text);
        return NULL;
    }
    info->text = text;
    info->original = pattern;
    return text;
}

#define PATTERN_MAX_PIECES 64

/* Literals a piece may need, at most: past that, looking for them costs
 * about what PCRE2 does. */
#define PATTERN_MAX_LITERALS 96

struct cairn_pattern {
    pcre2_code *re[PATTERN_MAX_PIECES]; /* owned */
    /* Machine code is made for a piece the first time a text gets past its
     * gates (see cairn_pattern_find), not at load: JIT code is ten times
     * the size of the compiled pattern, and the pieces of a script or of
     * phrases the traffic never has would hold it for nothing. */
    bool jit_tried[PATTERN_MAX_PIECES];
    int need[PATTERN_MAX_PIECES]; /* a byte every match contains, or -1 */
    /* owned: one of these is in every match of the piece; NULL = unknown */
    struct cairn_literals *lits[PATTERN_MAX_PIECES];
    size_t n;
    uint32_t groups;
};

static void add_piece(struct cairn_pattern *p, pcre2_code *re)
{
    uint32_t n = 0;
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &n);
    if (n + 1 > p->groups)
        p->groups = n + 1;
    p->need[p->n] = -1;
    p->re[p->n++] = re;
}

void cairn_pattern_free(struct cairn_pattern *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++) {
        pcre2_code_free(p->re[i]);
        cairn_literals_free(p->lits[i]);
    }
    free(p);
}

uint32_t cairn_pattern_groups(const struct cairn_pattern *p)
{
    return p ? p->groups : 1;
}

/* Join items[from..to) as one alternation and compile it. A pattern with
 * placeholders ends in a callout whose string lists "<kind>:<group>" with
 * the group's number in the joined pattern, so that the callout checks
 * exactly the words of the alternative that matched. */
static pcre2_code *compile_join(const struct checked *items, size_t from, size_t to, char *msg,
                                size_t msglen)
{
    char *joined = NULL, part[64];
    size_t len = 0, cap = 0;
    uint32_t base = 0; /* groups of the patterns before this one */
    for (size_t i = from; i < to; i++) {
        append(&joined, &len, &cap, i > from ? "|(?:" : "(?:");
        append(&joined, &len, &cap, items[i].gate);
        append(&joined, &len, &cap, items[i].text);
        bool any = false;
        for (int k = PH_NUM; k <= PH_CODE; k++) {
            if (items[i].group[k] == 0)
                continue;
            snprintf(part, sizeof(part), "%s%d:%u", any ? "," : "(?C\"", k,
                     base + items[i].group[k]);
            append(&joined, &len, &cap, part);
            any = true;
        }
        append(&joined, &len, &cap, any ? "\"))" : ")");
        base += items[i].captures;
    }
    PCRE2_SIZE off;
    pcre2_code *re = compile(joined, msg, msglen, &off);
    free(joined);
    return re;
}

/* A pattern led by a placeholder may start at almost any letter, so a scan
 * costs a try at every position. When every match must contain a given
 * byte, looking for that byte first skips texts that cannot match ("句" in
 * "{NUM}句" on an English prompt). PCRE2 reports such a byte only for a
 * case-sensitive compile; it holds for the caseless one too when every
 * non-ASCII character the pattern names is caseless: CJK, kana, Hangul
 * (U+2E80 and up) are. `original` is the pattern as written. @return the
 * byte, or -1. */
static unsigned decode(const unsigned char *s, size_t len, size_t *i);

static int needed_unit(const char *original, const char *text)
{
    const unsigned char *o = (const unsigned char *)original;
    size_t olen = strlen(original);
    bool non_ascii = false;
    for (size_t i = 0; i < olen;) {
        unsigned c = decode(o, olen, &i);
        if (c >= 0x80 && c < 0x2E80)
            return -1;
        non_ascii |= c >= 0x80;
    }
    if (!non_ascii)
        return -1;
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED,
                                   PATTERN_OPTIONS & ~(uint32_t)PCRE2_CASELESS, &code, &off, NULL);
    if (re == NULL)
        return -1;
    uint32_t type = 0, unit = 0;
    pcre2_pattern_info(re, PCRE2_INFO_LASTCODETYPE, &type);
    pcre2_pattern_info(re, PCRE2_INFO_LASTCODEUNIT, &unit);
    pcre2_code_free(re);
    return type == 1 && unit >= 0x80 ? (int)unit : -1;
}

/* Does the pattern start (after a lookbehind) with a placeholder? */
static bool leads_with_placeholder(const char *pattern)
{
    if (strncmp(pattern, "(?<!", 4) == 0 || strncmp(pattern, "(?<=", 4) == 0) {
        const char *close = strchr(pattern, ')');
        if (close == NULL)
            return false;
        pattern = close + 1;
    }
    return strncmp(pattern, "{NUM}", 5) == 0 || strncmp(pattern, "{LANG}", 6) == 0 ||
           strncmp(pattern, "{CODE}", 6) == 0;
}

static bool use_literals = true;

void cairn_pattern_use_literals(bool on)
{
    use_literals = on;
}

/* The literals one of which every match of items[from..to) contains
 * (one of each pattern's), or NULL when a pattern has none to show or
 * there are too many to look for cheaply. */
static struct cairn_literals *piece_literals(const struct checked *items, size_t from, size_t to)
{
    struct cairn_literals *all = NULL;
    for (size_t i = from; i < to; i++) {
        struct cairn_literals *l = cairn_literals_of(items[i].original);
        if (l == NULL) {
            cairn_literals_free(all);
            return NULL;
        }
        if (all == NULL) {
            all = l;
            continue;
        }
        cairn_literals_merge(all, l);
        cairn_literals_free(l);
    }
    if (cairn_literals_count(all) > PATTERN_MAX_LITERALS) {
        cairn_literals_free(all);
        return NULL;
    }
    cairn_literals_seal(all);
    return all;
}

/* Pack the checked patterns into as few compiled pieces as PCRE2's size
 * limit allows, except that a pattern with a needed byte stays alone. */
static struct cairn_pattern *pack(const struct checked *items, const bool *alone, size_t n,
                                  const char *path, char *why, size_t whylen)
{
    struct cairn_pattern *p = cairn_calloc(1, sizeof(*p));
    char msg[160];
    size_t from = 0;
    while (from < n) {
        size_t to = from + 1;
        int need = alone[from] ? items[from].need : -1;
        /* Patterns written in ASCII and in other scripts go to different
         * pieces (in order: the leftmost match over pieces is the one the
         * whole alternation finds), so that an English text does not run
         * the Cyrillic or CJK patterns of a list, nor a Russian one the
         * English patterns; a list that alternates scripts too often
         * stops being split long before the limit on pieces. */
        bool split = use_literals && p->n < PATTERN_MAX_PIECES / 2;
        while (!alone[from] && to < n && !alone[to] &&
               (!split || items[to].family == items[from].family))
            to++;
        pcre2_code *re = NULL;
        /* Halve the span until it compiles; one pattern alone always does. */
        while ((re = compile_join(items, from, to, msg, sizeof(msg))) == NULL && to - from > 1)
            to = from + (to - from) / 2;
        if (re == NULL || p->n == PATTERN_MAX_PIECES) {
            if (re != NULL)
                pcre2_code_free(re);
            snprintf(why, whylen, "%s: too many patterns to compile (at most %d pieces)", path,
                     PATTERN_MAX_PIECES);
            cairn_pattern_free(p);
            return NULL;
        }
        add_piece(p, re);
        p->need[p->n - 1] = need;
        p->lits[p->n - 1] = use_literals ? piece_literals(items, from, to) : NULL;
        from = to;
    }
    return p;
}

struct cairn_pattern *cairn_pattern_compile_one(const char *pattern,
                                                const struct cairn_pattern_env *env,
                                                const char *path, char *why, size_t whylen)
{
    struct checked item;
    if (check_one(pattern, env, path, why, whylen, &item) == NULL)
        return NULL;
    bool alone = false;
    struct cairn_pattern *p = pack(&item, &alone, 1, path, why, whylen);
    free(item.text);
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
    struct checked *items = cairn_calloc((size_t)count, sizeof(*items));
    bool *alone = cairn_calloc((size_t)count, sizeof(*alone));
    size_t i = 0;
    struct cairn_pattern *p = NULL;
    char where[512];
    for (const cJSON *e = array->child; e != NULL; e = e->next, i++) {
        snprintf(where, sizeof(where), "%s[%zu]", path, i);
        if (!cJSON_IsString(e) || e->valuestring[0] == '\0') {
            snprintf(why, whylen, "%s: must be a non-empty string", where);
            goto out;
        }
        if (check_one(e->valuestring, env, where, why, whylen, &items[i]) == NULL)
            goto out;
        struct cairn_literals *lits = cairn_literals_of(e->valuestring);
        items[i].family = cairn_literals_family(lits);
        cairn_literals_free(lits);
        items[i].need = leads_with_placeholder(e->valuestring)
                            ? needed_unit(items[i].original, items[i].text)
                            : -1;
        alone[i] = items[i].need >= 0;
    }
    p = pack(items, alone, i, path, why, whylen);
out:
    for (size_t k = 0; k < (size_t)count; k++)
        free(items[k].text);
    free(items);
    free(alone);
    return p;
}

/* JIT-compile piece i of `p` on its first use. The one change a match
 * makes to a list: the lists belong to one process's snapshot and are
 * matched from its event loop only. A few hundred microseconds at most,
 * once per piece and process; without JIT (it failed, or PCRE2 has none)
 * the interpreter matches the same, only slower. */
static void jit_on_first_use(const struct cairn_pattern *p, size_t i)
{
    struct cairn_pattern *mut = (struct cairn_pattern *)p;
    if (mut->jit_tried[i])
        return;
    mut->jit_tried[i] = true;
    (void)pcre2_jit_compile(mut->re[i], PCRE2_JIT_COMPLETE);
}

void cairn_pattern_release_unused(void)
{
    pcre2_jit_free_unused_memory(NULL);
}

bool cairn_pattern_find(const struct cairn_pattern *p, const char *s, size_t len, size_t start,
                        struct cairn_match *m)
{
    if (p == NULL || s == NULL || start > len)
        return false;
    /* The leftmost match over the pieces; the winner is matched again if a
     * later piece overwrote the match data. */
    size_t best = SIZE_MAX, winner = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (p->need[i] >= 0 && memchr(s + start, p->need[i], len - start) == NULL)
            continue;
        /* A match lies in s[start..len), so it holds one of the literals. */
        if (p->lits[i] != NULL && !cairn_literals_any_in(p->lits[i], s, len, start))
            continue;
        jit_on_first_use(p, i);
        if (pcre2_match(p->re[i], (PCRE2_SPTR)s, len, start, MATCH_OPTIONS, m->md, m->mc) < 0)
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
        pcre2_match(p->re[winner], (PCRE2_SPTR)s, len, start, MATCH_OPTIONS, m->md, m->mc);
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

/* ---- name tables ------------------------------------------------------ */

struct name {
    char *key; /* folded (or as written, for exact-case names), spaces single */
    int value;
    bool exact;
};

struct cairn_names {
    struct name *v;
    size_t n, cap;
};

/* Decode one UTF-8 character at s[*i] (input is valid UTF-8: it passed the
 * strict JSON parser). */
static unsigned decode(const unsigned char *s, size_t len, size_t *i)
{
    unsigned c = s[*i];
    size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (*i + n > len) {
        *i = len;
        return 0xFFFD;
    }
    unsigned cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (size_t k = 1; k < n; k++)
        cp = (cp << 6) | (s[*i + k] & 0x3F);
    *i += n;
    return cp;
}

/* Simple case folding for the scripts whose names and number words have
 * case: ASCII, Latin-1, Latin Extended-A and Additional (Vietnamese),
 * Greek, Cyrillic; Turkish dotted capital I folds to i. */
static unsigned fold(unsigned c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7) ||
        (c >= 0x391 && c <= 0x3A9) || (c >= 0x410 && c <= 0x42F))
        return c + 32;
    if (c >= 0x400 && c <= 0x40F)
        return c + 80;
    if (c == 0x130)
        return 'i';
    if (((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177) ||
         (c >= 0x1E00 && c <= 0x1EFF)) &&
        c % 2 == 0)
        return c + 1;
    if (((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) && c % 2 == 1)
        return c + 1;
    return c;
}

/* The key of s[0..len) into out[]: folded unless exact, white-space runs
 * as one space. @return false when it does not fit. */
static bool key_into(const char *s, size_t len, bool exact, char *out, size_t outlen)
{
    size_t o = 0;
    bool space = false;
    for (size_t i = 0; i < len;) {
        unsigned c = decode((const unsigned char *)s, len, &i);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xA0) {
            space = o > 0;
            continue;
        }
        char b[4];
        size_t n = cairn_utf8_encode(exact ? c : fold(c), b);
        if (o + n + 2 > outlen)
            return false;
        if (space)
            out[o++] = ' ';
        space = false;
        memcpy(out + o, b, n);
        o += n;
    }
    out[o] = '\0';
    return true;
}

struct cairn_names *cairn_names_new(void)
{
    return cairn_calloc(1, sizeof(struct cairn_names));
}

void cairn_names_free(struct cairn_names *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].key);
    free(t->v);
    free(t);
}

void cairn_names_add(struct cairn_names *t, const char *name, int value, bool exact_case)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->v = cairn_realloc(t->v, t->cap * sizeof(*t->v));
    }
    char key[512];
    /* Names longer than a lookup can be (64 bytes) could never match. */
    if (!key_into(name, strlen(name), exact_case, key, sizeof(key)))
        return;
    t->v[t->n].key = cairn_strdup(key);
    t->v[t->n].value = value;
    t->v[t->n].exact = exact_case;
    t->n++;
}

static int by_key(const void *a, const void *b)
{
    return strcmp(((const struct name *)a)->key, ((const struct name *)b)->key);
}

void cairn_names_seal(struct cairn_names *t)
{
    if (t->n > 0)
        qsort(t->v, t->n, sizeof(*t->v), by_key);
}

static int find_key(const struct cairn_names *t, const char *key, bool exact)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(t->v[mid].key, key);
        if (c == 0) {
            /* Equal keys sit together: take one of the wanted kind. */
            while (mid > 0 && strcmp(t->v[mid - 1].key, key) == 0)
                mid--;
            for (; mid < t->n && strcmp(t->v[mid].key, key) == 0; mid++)
                if (t->v[mid].exact == exact)
                    return t->v[mid].value;
            return -1;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int cairn_names_find(const struct cairn_names *t, const char *s, size_t len)
{
    char key[256];
    if (t == NULL || len == 0 || len > 64)
        return -1;
    int v = key_into(s, len, false, key, sizeof(key)) ? find_key(t, key, false) : -1;
    if (v < 0 && key_into(s, len, true, key, sizeof(key)))
        v = find_key(t, key, true);
    return v;
}

/* A digit string with thousands separators ("1,000", "1.000", "1 000"),
 * or -1 when s[0..len) is not one. */
static long digits_value(const char *s, size_t len)
{
    long v = 0;
    bool any = false;
    for (size_t i = 0; i < len;) {
        unsigned c = decode((const unsigned char *)s, len, &i);
        int d = c >= '0' && c <= '9'       ? (int)(c - '0')
                : c >= 0x660 && c <= 0x669 ? (int)(c - 0x660)
                : c >= 0x6F0 && c <= 0x6F9 ? (int)(c - 0x6F0)
                                           : -1;
        if (d < 0) {
            if (!any)
                return -1; /* a word, not digits */
            continue;      /* a thousands separator */
        }
        if (v > 100000000)
            return -1;
        v = v * 10 + d;
        any = true;
    }
    return any ? v : -1;
}

static long placeholder_value(const struct cairn_lookup *l, int kind, const char *s, size_t len)
{
    switch (kind) {
    case PH_NUM: {
        long d = digits_value(s, len);
        return d >= 0 ? d : cairn_names_find(l->num, s, len);
    }
    case PH_LANG: return cairn_names_find(l->lang, s, len);
    case PH_CODE: return cairn_names_find(l->code, s, len);
    default: return -1;
    }
}

/* The callout at the end of a pattern with placeholders: its string lists
 * "<kind>:<group>,..."; a word the table lacks fails this path, and PCRE2
 * backtracks to a shorter word or another start. */
static int on_placeholders(pcre2_callout_block *cb, void *data)
{
    const struct cairn_lookup *l = data;
    const char *p = (const char *)cb->callout_string;
    if (p == NULL)
        return 0;
    while (*p != '\0') {
        char *end;
        long kind = strtol(p, &end, 10);
        if (*end != ':')
            return 1;
        unsigned long g = strtoul(end + 1, &end, 10);
        p = *end == ',' ? end + 1 : end;
        if (g >= cb->capture_top || cb->offset_vector[2 * g] == PCRE2_UNSET)
            continue; /* an optional placeholder that took no part */
        PCRE2_SIZE from = cb->offset_vector[2 * g], to = cb->offset_vector[2 * g + 1];
        long v = placeholder_value(l, (int)kind, (const char *)cb->subject + from, to - from);
        if (kind == PH_NUM ? v <= 0 : v < 0)
            return 1;
    }
    return 0;
}

pcre2_match_context *cairn_pattern_context(const struct cairn_lookup *lookup)
{
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    if (mc == NULL)
        abort(); /* as cairn_malloc: no recovery from running out of memory */
    pcre2_set_callout(mc, on_placeholders, (void *)lookup);
    return mc;
}

/* The first set group called `name` after a match (names repeat in a list,
 * so walk PCRE2's name table). @return 0 and its span, or -1. */
static int set_group(const struct cairn_match *m, const char *name, size_t *start, size_t *len)
{
    uint32_t count, size;
    PCRE2_SPTR table;
    pcre2_pattern_info(m->re, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(m->re, PCRE2_INFO_NAMEENTRYSIZE, &size);
    pcre2_pattern_info(m->re, PCRE2_INFO_NAMETABLE, &table);
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
    uint32_t pairs = pcre2_get_ovector_count(m->md);
    for (uint32_t i = 0; i < count; i++) {
        PCRE2_SPTR entry = table + (size_t)i * size;
        uint32_t group = ((uint32_t)entry[0] << 8) | entry[1];
        if (strcmp((const char *)entry + 2, name) != 0 || group >= pairs ||
            ov[2 * group] == PCRE2_UNSET)
            continue;
        *start = ov[2 * group];
        *len = ov[2 * group + 1] - ov[2 * group];
        return 0;
    }
    return -1;
}

static long group_value(const struct cairn_match *m, const char *s, const char *name, int kind)
{
    size_t start, len;
    if (m->re == NULL || m->lookup == NULL || set_group(m, name, &start, &len) < 0)
        return -1;
    return placeholder_value(m->lookup, kind, s + start, len);
}

int cairn_pattern_lang(const struct cairn_match *m, const char *s)
{
    return (int)group_value(m, s, "lang", PH_LANG);
}

int cairn_pattern_code(const struct cairn_match *m, const char *s)
{
    return (int)group_value(m, s, "code", PH_CODE);
}

long cairn_pattern_number(const struct cairn_match *m, const char *s)
{
    return group_value(m, s, "num", PH_NUM);
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

int cairn_pattern_check_object(const cJSON *obj, const char *const *allowed, const char *path,
                               char *why, size_t whylen)
{
    if (!cJSON_IsObject(obj)) {
        snprintf(why, whylen, "%s%smust be an object", path, path[0] ? ": " : "");
        return -1;
    }
    return allowed != NULL ? cairn_pattern_check_keys(obj, allowed, path, why, whylen) : 0;
}

int cairn_pattern_check_strings(const cJSON *arr, const char *path, char *why, size_t whylen)
{
    size_t i = 0;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1) {
        snprintf(why, whylen, "%s: must be a non-empty array of strings", path);
        return -1;
    }
    for (const cJSON *s = arr->child; s != NULL; s = s->next, i++) {
        if (!cJSON_IsString(s) || s->valuestring[0] == '\0') {
            snprintf(why, whylen, "%s[%zu]: must be a non-empty string", path, i);
            return -1;
        }
    }
    return 0;
}
