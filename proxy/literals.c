/*
 * literals.c — the literals a pattern needs (see literals.h).
 *
 * A small reader of the PCRE2 syntax the rules use, which computes for
 * each part of a pattern a set of strings one of which every match of
 * the part contains, or "anything" (no constraint):
 *   - a run of plain characters is one string ("answer in" in
 *     "answer in {LANG}"), cut where a character is not safe (see
 *     literals.h) or is optional ("words?" gives "word");
 *   - an alternation needs one of its branches: the union of their sets,
 *     "anything" as soon as one branch is;
 *   - a sequence needs all of its parts: the best-constrained one is kept
 *     (its shortest string the longest), a group repeated at least once
 *     counts as a part;
 *   - classes, escapes, dots, anchors, lookarounds and placeholders
 *     constrain nothing; what the reader does not know (\Q, conditionals,
 *     recursion, verbs, (?x)) makes the whole pattern "anything".
 * Keeping one part of a sequence loses nothing of soundness, only
 * selectivity, and selectivity is all a prefilter needs. Each literal also
 * carries its bounds (literals.h): what the pattern puts right next to it,
 * read as the sequence goes (see enum edge), so that a one-letter literal
 * with \b on both sides is not found inside every word that holds the
 * letter.
 */
#include "literals.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

#define LIT_MAX_LEN   48 /* bytes of one literal kept */
#define LIT_MAX_COUNT 64 /* literals in a set: more, and the scan costs more than it saves */

/* A literal's bounds: the pattern puts a \b right before its first
 * character, or right after its last one (see sequence()), so that a
 * match holds it only where the text has a word boundary there. Kept
 * only where that character is ASCII, whose side of \b is known. */
#define LIT_B_BEFORE 1u
#define LIT_B_AFTER  2u
/* While a pattern is read: the literal starts (ends) its branch, so that
 * a \b right before (after) the group holding it is its own. */
#define LIT_OPEN_START 4u
#define LIT_OPEN_END   8u
/* The pattern puts a character that is never ASCII (a letter with case
 * outside ASCII: see non_ascii()) right before the literal, or right
 * after it: "t" of "tòa" is found only before a byte from 0x80 up. */
#define LIT_WIDE_BEFORE 16u
#define LIT_WIDE_AFTER  32u

struct cairn_literals {
    char **s;              /* owned, lower case */
    unsigned char *bounds; /* owned: each literal's LIT_B_* (and, while read, LIT_OPEN_*) */
    size_t n;
    /* Sealed: how each literal is looked up (see search), those by pair
     * first: probe[0..npairs) */
    struct probe *probe; /* owned */
    size_t npairs;
    bool sealed;
};

struct reader {
    const char *p;
    bool fail; /* a construct it does not know: give up */
};

static struct cairn_literals *set_new(void)
{
    return cairn_calloc(1, sizeof(struct cairn_literals));
}

void cairn_literals_free(struct cairn_literals *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->s[i]);
    free(l->s);
    free(l->bounds);
    free(l->probe);
    free(l);
}

size_t cairn_literals_count(const struct cairn_literals *l)
{
    return l != NULL ? l->n : 0;
}

int cairn_literals_family(const struct cairn_literals *l)
{
    int f = 0;
    for (size_t i = 0; l != NULL && i < l->n; i++)
        f |= (unsigned char)l->s[i][0] >= 0x80 ? 2 : 1;
    return f;
}

/* Add literal s with its bounds; a literal already there keeps only the
 * bounds both have: a match of either kind holds it with those. */
static void set_add(struct cairn_literals *l, const char *s, unsigned bounds)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->s[i], s) == 0) {
            l->bounds[i] &= (unsigned char)bounds;
            return;
        }
    l->s = cairn_realloc(l->s, (l->n + 1) * sizeof(*l->s));
    l->bounds = cairn_realloc(l->bounds, (l->n + 1) * sizeof(*l->bounds));
    l->bounds[l->n] = (unsigned char)bounds;
    l->s[l->n++] = cairn_strdup(s);
}

void cairn_literals_merge(struct cairn_literals *dst, const struct cairn_literals *src)
{
    for (size_t i = 0; src != NULL && i < src->n; i++)
        set_add(dst, src->s[i], src->bounds[i]);
}

/* How well a set constrains: its shortest literal. */
static size_t score(const struct cairn_literals *l)
{
    size_t m = SIZE_MAX;
    for (size_t i = 0; i < l->n; i++)
        if (strlen(l->s[i]) < m)
            m = strlen(l->s[i]);
    return l->n ? m : 0;
}

/* Keep the better of *best and cand (cand is consumed). */
static void keep_better(struct cairn_literals **best, struct cairn_literals *cand)
{
    if (cand == NULL)
        return;
    if (*best == NULL || score(cand) > score(*best) ||
        (score(cand) == score(*best) && cand->n < (*best)->n)) {
        cairn_literals_free(*best);
        *best = cand;
    } else {
        cairn_literals_free(cand);
    }
}

/* A plain character a literal may hold: printable ASCII. Caselessly, a
 * letter matches its other ASCII case and, for three of them, more: k
 * the Kelvin sign, s the long s, i the dotted capital and the dotless i
 * (at most; which PCRE2 takes is checked by the tests), which the search
 * below accepts too. */
static bool safe(unsigned char c)
{
    return c >= 0x20 && c <= 0x7E;
}

/* Is c a word character, as \w is with PCRE2_UCP? Every ASCII one is
 * decided (letters, digits and "_" are; the tests check it against
 * PCRE2); a byte from 0x80 up, part of a character that may be a letter or
 * not, is not called either. */
static bool word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

#define LIT_WIDE      (-2) /* a caseless non-ASCII character, kept as its bytes */
#define LIT_ANY_WIDE  (-3) /* a non-ASCII character that has case */
#define LIT_ANY_CYR   (-4) /* a Cyrillic letter */
#define LIT_ANY_GREEK (-5) /* a Greek letter */
/* The literal that stands for "some byte from 0x80 up". */
#define ANY_WIDE "\x80"
/* ... "some Cyrillic character", "some Greek character": what a letter of
 * those scripts matches caselessly stays in its script's blocks (and for
 * Greek the micro sign, the ohm sign and the combining ypogegrammeni),
 * which the tests check against PCRE2. */
#define ANY_CYR   "\x81"
#define ANY_GREEK "\x82"

/* Scripts without case (a character matches only itself, caseless or
 * not): Hebrew, Arabic, Devanagari, Thai, Hangul, CJK punctuation, kana,
 * CJK ideographs, halfwidth katakana. */
static bool caseless_script(unsigned cp)
{
    return (cp >= 0x591 && cp <= 0x5F4) || (cp >= 0x600 && cp <= 0x6FF) ||
           (cp >= 0x900 && cp <= 0x97F) || (cp >= 0xE01 && cp <= 0xE5B) ||
           (cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0x3000 && cp <= 0x303F) ||
           (cp >= 0x3041 && cp <= 0x30FF) || (cp >= 0x3131 && cp <= 0x318E) ||
           (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
           (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
           (cp >= 0xFF61 && cp <= 0xFF9F);
}

/* A non-ASCII character of a pattern, s[0..n): LIT_WIDE when it has no
 * case, -1 for the four that match an ASCII letter caselessly (the Kelvin
 * sign K, the long s, dotted capital and dotless i), else LIT_ANY_WIDE:
 * every character it matches is non-ASCII. */
static int non_ascii(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned cp = n == 2   ? ((u[0] & 0x1Fu) << 6) | (u[1] & 0x3Fu)
                  : n == 3 ? ((u[0] & 0x0Fu) << 12) | ((u[1] & 0x3Fu) << 6) | (u[2] & 0x3Fu)
                  : n == 4 ? ((u[0] & 0x07u) << 18) | ((u[1] & 0x3Fu) << 12) |
                                 ((u[2] & 0x3Fu) << 6) | (u[3] & 0x3Fu)
                           : 0;
    if (cp == 0)
        return -1;
    if (caseless_script(cp))
        return LIT_WIDE;
    if (cp == 0x212A || cp == 0x17F || cp == 0x130 || cp == 0x131)
        return -1;
    if (cp >= 0x400 && cp <= 0x52F)
        return LIT_ANY_CYR;
    if ((cp >= 0x370 && cp <= 0x3FF) || (cp >= 0x1F00 && cp <= 0x1FFF))
        return LIT_ANY_GREEK;
    return LIT_ANY_WIDE;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* Skip to just past `close` (not nested). */
static void skip_to(struct reader *r, char close)
{
    const char *e = strchr(r->p, close);
    if (e == NULL)
        r->fail = true;
    else
        r->p = e + 1;
}

/* After a backslash: what the escape is. @return the literal character,
 * or -1 for an escape that constrains nothing (its arguments skipped). */
static int escape(struct reader *r)
{
    unsigned char c = (unsigned char)*r->p;
    if (c == '\0') {
        r->fail = true;
        return -1;
    }
    r->p++;
    if (c >= 0x80) { /* an escaped non-ASCII character: skip the rest of it */
        while (((unsigned char)*r->p & 0xC0) == 0x80)
            r->p++;
        return -1;
    }
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
        return c; /* \. \- \( ... */
    switch (c) {
    case 'Q': r->fail = true; return -1;
    case 'p':
    case 'P':
    case 'o':
    case 'N':
        if (*r->p == '{')
            skip_to(r, '}');
        else if (c == 'p' || c == 'P')
            r->p += *r->p != '\0';
        return -1;
    case 'x':
        if (*r->p == '{') {
            skip_to(r, '}');
        } else {
            for (int k = 0; k < 2 && strchr("0123456789abcdefABCDEF", *r->p) && *r->p; k++)
                r->p++;
        }
        return -1;
    case 'c': r->p += *r->p != '\0'; return -1;
    case 'g':
    case 'k':
        if (*r->p == '{')
            skip_to(r, '}');
        else if (*r->p == '<')
            skip_to(r, '>');
        else if (*r->p == '\'') {
            r->p++;
            skip_to(r, '\'');
        } else {
            if (*r->p == '+' || *r->p == '-')
                r->p++;
            while (*r->p >= '0' && *r->p <= '9')
                r->p++;
        }
        return -1;
    default:
        while (c >= '0' && c <= '9' && *r->p >= '0' && *r->p <= '9')
            r->p++; /* a back reference or an octal escape */
        return -1;
    }
}

/* A character class: skipped, it constrains nothing. */
static void skip_class(struct reader *r)
{
    if (*r->p == '^')
        r->p++;
    if (*r->p == ']')
        r->p++;
    while (*r->p != '\0' && *r->p != ']') {
        if (*r->p == '\\') {
            r->p++;
            if (*r->p == 'Q' || *r->p == '\0') {
                r->fail = true;
                return;
            }
            r->p++;
        } else if (r->p[0] == '[' && r->p[1] == ':') {
            const char *e = strstr(r->p + 2, ":]");
            if (e == NULL) {
                r->fail = true;
                return;
            }
            r->p = e + 2;
        } else {
            r->p++;
        }
    }
    if (*r->p != ']')
        r->fail = true;
    else
        r->p++;
}

/* A quantifier after an atom, if any: @return its minimum (1 without
 * one), `*had` whether there was one. */
static unsigned long quantifier(struct reader *r, bool *had)
{
    unsigned long min = 1;
    *had = true;
    if (*r->p == '?' || *r->p == '*') {
        min = 0;
        r->p++;
    } else if (*r->p == '+') {
        r->p++;
    } else if (*r->p == '{') {
        const char *q = r->p + 1;
        if (*q == ',') {
            r->fail = true; /* "{,n}": a quantifier in newer PCRE2 only */
            return 0;
        }
        if (*q < '0' || *q > '9') {
            *had = false;
            return 1; /* not a quantifier: a literal "{" follows */
        }
        char *end;
        min = strtoul(q, &end, 10);
        if (*end == ',') {
            end++;
            while (*end >= '0' && *end <= '9')
                end++;
        }
        if (*end != '}') {
            *had = false;
            return 1;
        }
        r->p = end + 1;
    } else {
        *had = false;
        return 1;
    }
    if (*r->p == '?' || *r->p == '+')
        r->p++; /* lazy or possessive */
    return min;
}

static struct cairn_literals *alternation(struct reader *r, int depth);

/* What a group after "(" is. */
enum group { G_CAPTURE, G_LOOK, G_OPTIONS_ONLY, G_COMMENT };

static enum group group_kind(struct reader *r)
{
    if (*r->p == '*') {
        r->fail = true; /* (*VERB) */
        return G_COMMENT;
    }
    if (*r->p != '?')
        return G_CAPTURE;
    r->p++;
    char c = *r->p;
    if (c == ':' || c == '>' || c == '|') {
        r->p++;
        return G_CAPTURE;
    }
    if (c == '=' || c == '!') {
        r->p++;
        return G_LOOK;
    }
    if (c == '#')
        return G_COMMENT;
    if (c == '<' && (r->p[1] == '=' || r->p[1] == '!')) {
        r->p += 2;
        return G_LOOK;
    }
    if (c == '<' || c == '\'' || (c == 'P' && r->p[1] == '<')) {
        skip_to(r, c == '\'' ? '\'' : '>'); /* a named group */
        return G_CAPTURE;
    }
    /* Options: (?i) (?-i) (?i:...) ; anything else is unknown here. */
    const char *q = r->p;
    while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || *q == '-' || *q == '^')
        q++;
    if (q == r->p || (*q != ')' && *q != ':') || memchr(r->p, 'x', (size_t)(q - r->p)) != NULL) {
        r->fail = true;
        return G_COMMENT;
    }
    r->p = q + 1;
    return *q == ':' ? G_CAPTURE : G_OPTIONS_ONLY;
}

/* What a pattern says about the text right next to a literal, on one
 * side: nothing; the literal starts or ends its branch (open: the group
 * around the branch may say more); a \b; a (?<!\w) or (?!\w), or the
 * same with a class holding \w (no word character there); a character
 * that is always non-ASCII (a letter with case outside ASCII). */
enum edge { EDGE_NONE, EDGE_OPEN, EDGE_BOUNDARY, EDGE_NOT_WORD, EDGE_WIDE };

/* The bound an edge gives literal `lit` on one side. A \b is kept where the
 * literal's character there is ASCII (word or not: the search compares);
 * "no word character" is a \b where that character is a word character. */
static unsigned edge_bound(const char *lit, bool after, enum edge e)
{
    const unsigned char *u = (const unsigned char *)lit;
    unsigned char c = after ? u[strlen(lit) - 1] : u[0];
    switch (e) {
    case EDGE_OPEN: return after ? LIT_OPEN_END : LIT_OPEN_START;
    case EDGE_BOUNDARY: return c < 0x80 ? (after ? LIT_B_AFTER : LIT_B_BEFORE) : 0;
    case EDGE_NOT_WORD: return word_byte(c) ? (after ? LIT_B_AFTER : LIT_B_BEFORE) : 0;
    case EDGE_WIDE: return after ? LIT_WIDE_AFTER : LIT_WIDE_BEFORE;
    default: return 0;
    }
}

/* A sequence being read: the best candidate so far, and the one whose
 * end is not settled yet because what follows it is not read yet (the run
 * of plain characters, or else the last group's literals). */
struct seq {
    struct cairn_literals *best;
    char run[LIT_MAX_LEN + 1];
    size_t len;
    enum edge run_edge;          /* what comes right before the run */
    struct cairn_literals *tail; /* the last group's literals, or NULL */
    enum edge prev;              /* what the last thing read says about what follows it */
};

/* The run or the tail, now that what follows it is known (`next`),
 * becomes a candidate. */
static void settle(struct seq *q, enum edge next)
{
    if (q->len > 0) {
        q->run[q->len] = '\0';
        struct cairn_literals *l = set_new();
        set_add(l, q->run, edge_bound(q->run, false, q->run_edge) | edge_bound(q->run, true, next));
        keep_better(&q->best, l);
        q->len = 0;
    }
    if (q->tail != NULL) {
        struct cairn_literals *t = q->tail;
        for (size_t i = 0; i < t->n; i++)
            if (t->bounds[i] & LIT_OPEN_END)
                t->bounds[i] = (unsigned char)((t->bounds[i] & ~LIT_OPEN_END) |
                                               edge_bound(t->s[i], true, next));
        keep_better(&q->best, t);
        q->tail = NULL;
    }
}

/* A group read once, right after what `q` read before it: a literal that
 * starts one of its branches gets the bound of what precedes the group.
 * A repeated group gives its literals no bound from outside: the one
 * found may be one of a middle repetition. */
static void group_bounds(const struct seq *q, struct cairn_literals *inner, bool repeated)
{
    for (size_t i = 0; i < inner->n; i++) {
        unsigned b = inner->bounds[i];
        if (repeated)
            b &= ~(LIT_OPEN_START | LIT_OPEN_END);
        else if (b & LIT_OPEN_START)
            b = (b & ~LIT_OPEN_START) | edge_bound(inner->s[i], false, q->prev);
        inner->bounds[i] = (unsigned char)b;
    }
}

/* At "(": a negative lookaround of \w alone or of a class holding \w
 * ("(?<!\w)", "(?![\w#+])"), which says that no word character is right
 * before (behind) or right after? @return its length, or 0. */
static size_t not_word_look(const char *p, bool *behind)
{
    *behind = strncmp(p, "(?<!", 4) == 0;
    if (!*behind && strncmp(p, "(?!", 3) != 0)
        return 0;
    const char *q = p + (*behind ? 4 : 3);
    if (strncmp(q, "\\w)", 3) == 0)
        return (size_t)(q + 3 - p);
    if (strncmp(q, "[\\w", 3) != 0)
        return 0;
    struct reader c = {q + 1, false};
    skip_class(&c);
    return !c.fail && *c.p == ')' ? (size_t)(c.p + 1 - p) : 0;
}

/* A sequence up to "|", ")" or the end. A literal gets a bound from what
 * the pattern puts right next to it (see enum edge; options and comments
 * between them take up and assert nothing); anything else between them (a
 * class, \B, another lookaround, an optional or repeated part) gives
 * none. */
static struct cairn_literals *sequence(struct reader *r, int depth)
{
    struct seq q = {.prev = EDGE_OPEN};
    while (!r->fail && *r->p != '\0' && *r->p != '|' && *r->p != ')') {
        unsigned char c = (unsigned char)*r->p;
        int lit = -1; /* a plain character, or LIT_WIDE / LIT_ANY_WIDE */
        char wbytes[4];
        size_t wide = 0, look;
        struct cairn_literals *inner = NULL;
        bool group = false, boundary = false, behind;
        if (c == '(' && (look = not_word_look(r->p, &behind)) > 0) {
            r->p += look;
            bool had;
            (void)quantifier(r, &had);
            if (had || r->fail) { /* an assertion that may be skipped */
                settle(&q, EDGE_NONE);
                q.prev = EDGE_NONE;
            } else if (behind) {
                settle(&q, EDGE_NONE);
                q.prev = EDGE_NOT_WORD;
            } else {
                settle(&q, EDGE_NOT_WORD);
                q.prev = EDGE_NONE;
            }
            continue;
        }
        if (c == '(') {
            r->p++;
            enum group g = group_kind(r);
            if (r->fail)
                break;
            if (g == G_COMMENT) {
                skip_to(r, ')');
                continue;
            }
            if (g == G_OPTIONS_ONLY)
                continue;
            settle(&q, EDGE_NONE);
            inner = alternation(r, depth + 1);
            if (*r->p != ')') {
                r->fail = true;
                cairn_literals_free(inner);
                break;
            }
            r->p++;
            if (g == G_LOOK) {
                cairn_literals_free(inner);
                inner = NULL;
            }
            group = true;
        } else if (c == '\\') {
            r->p++;
            boundary = *r->p == 'b';
            lit = escape(r);
        } else if (c == '[') {
            r->p++;
            skip_class(r);
        } else if (c == '{' && (!strncmp(r->p, "{NUM}", 5) || !strncmp(r->p, "{LANG}", 6) ||
                                !strncmp(r->p, "{CODE}", 6))) {
            skip_to(r, '}'); /* a placeholder: any word */
        } else if (c == '.' || c == '^' || c == '$') {
            r->p++;
        } else if (c >= 0x80) {
            const char *at = r->p;
            r->p++;
            while (((unsigned char)*r->p & 0xC0) == 0x80)
                r->p++;
            wide = (size_t)(r->p - at);
            memcpy(wbytes, at, wide < 4 ? wide : 4);
            lit = non_ascii(at, wide);
        } else {
            lit = c;
            r->p++;
        }
        if (r->fail) {
            cairn_literals_free(inner);
            break;
        }
        bool had;
        unsigned long min = quantifier(r, &had);
        if (group) {
            if (min >= 1 && inner != NULL) {
                group_bounds(&q, inner, had);
                q.tail = inner;
            } else {
                cairn_literals_free(inner);
            }
            q.prev = EDGE_NONE;
            continue;
        }
        if (boundary && !had) {
            settle(&q, EDGE_BOUNDARY);
            q.prev = EDGE_BOUNDARY;
            continue;
        }
        if (lit == LIT_ANY_WIDE || lit == LIT_ANY_CYR || lit == LIT_ANY_GREEK) {
            /* A character with case outside ASCII: some character of its
             * kind must be there (see non_ascii), and a non-ASCII one is
             * right next to what comes before and after it. */
            settle(&q, min >= 1 ? EDGE_WIDE : EDGE_NONE);
            if (min >= 1) {
                struct cairn_literals *l = set_new();
                set_add(l,
                        lit == LIT_ANY_CYR     ? ANY_CYR
                        : lit == LIT_ANY_GREEK ? ANY_GREEK
                                               : ANY_WIDE,
                        0);
                keep_better(&q.best, l);
            }
            q.prev = min >= 1 ? EDGE_WIDE : EDGE_NONE;
            continue;
        }
        bool ok = lit == LIT_WIDE || (lit >= 0 && safe((unsigned char)lit));
        size_t n = lit == LIT_WIDE ? wide : 1;
        if (!ok || min == 0) {
            settle(&q, EDGE_NONE);
            q.prev = EDGE_NONE;
            continue;
        }
        if (q.tail != NULL || q.len + n > LIT_MAX_LEN)
            settle(&q, EDGE_NONE);
        if (q.len == 0)
            q.run_edge = q.prev;
        q.prev = EDGE_NONE;
        if (lit == LIT_WIDE)
            memcpy(q.run + q.len, wbytes, n);
        else
            q.run[q.len] = lower((char)lit);
        q.len += n;
        if (had)
            settle(&q, EDGE_NONE); /* a repeated character ends the run */
    }
    settle(&q, EDGE_OPEN);
    return q.best;
}

static struct cairn_literals *alternation(struct reader *r, int depth)
{
    struct cairn_literals *all = set_new();
    bool anything = false;
    for (;;) {
        struct cairn_literals *b = sequence(r, depth);
        if (b == NULL)
            anything = true;
        else
            cairn_literals_merge(all, b);
        cairn_literals_free(b);
        if (r->fail || *r->p != '|')
            break;
        r->p++;
    }
    if (anything || r->fail || all->n == 0 || all->n > LIT_MAX_COUNT) {
        cairn_literals_free(all);
        return NULL;
    }
    return all;
}

struct cairn_literals *cairn_literals_of(const char *pattern)
{
    struct reader r = {pattern, false};
    struct cairn_literals *l = alternation(&r, 0);
    if (r.fail || *r.p != '\0') {
        cairn_literals_free(l);
        return NULL;
    }
    /* The pattern's edges assert nothing: pattern.c only wraps it in a
     * group. */
    for (size_t i = 0; l != NULL && i < l->n; i++)
        l->bounds[i] &= (unsigned char)~(LIT_OPEN_START | LIT_OPEN_END);
    return l;
}

/* ---- search ------------------------------------------------------------
 *
 * Dozens of lists run over one text per request, each in a few pieces with
 * their own literals: looking for each piece's literals along the text
 * would read the text once per piece. Instead the text is read once into
 * an index (struct text_index) that lists, for every key, the positions
 * where it occurs, and a piece's check is one look-up per literal, most
 * of them ending at an empty key. A literal's key is its first two bytes
 * (hashed), or its one byte, or its marker; in the text, a position's keys
 * are made of the first bytes of the character there and of the next one,
 * folded as match_at() compares them. The index only proposes positions:
 * match_at() (or the marker's own test) decides, bounded by the end the
 * caller gave, so the answer is the one a scan of every byte would give. */

/* Does literal `lit` (lower case) start at u[i], caselessly? The three
 * non-ASCII characters that match an ASCII letter are taken for it.
 * @return where it ends in u, or 0 where it does not start. */
static size_t match_at(const unsigned char *lit, const unsigned char *u, size_t len, size_t i)
{
    for (; *lit != '\0'; lit++) {
        unsigned char c = i < len ? u[i] : 0;
        if (i < len && (c >= 'A' && c <= 'Z' ? c + 32 : c) == *lit) {
            i++;
        } else if (*lit == 'k' && i + 3 <= len && c == 0xE2 && u[i + 1] == 0x84 &&
                   u[i + 2] == 0xAA) {
            i += 3; /* U+212A KELVIN SIGN */
        } else if (*lit == 's' && i + 2 <= len && c == 0xC5 && u[i + 1] == 0xBF) {
            i += 2; /* U+017F LATIN SMALL LETTER LONG S */
        } else if (*lit == 'i' && i + 2 <= len && c == 0xC4 &&
                   (u[i + 1] == 0xB0 || u[i + 1] == 0xB1)) {
            i += 2; /* U+0130, U+0131: dotted capital I, dotless i */
        } else {
            return 0;
        }
    }
    return i;
}

/* Does a Cyrillic character (U+0400-U+052F, U+1C80-U+1C88) start at
 * u[i]? A Greek one (U+0340-U+03FF, U+1F00-U+1FFF, the micro sign, the
 * ohm sign)? */
static bool cyrillic_at(const unsigned char *u, size_t len, size_t i)
{
    return (u[i] >= 0xD0 && u[i] <= 0xD4) || (u[i] == 0xE1 && i + 2 < len && u[i + 1] == 0xB2 &&
                                              u[i + 2] >= 0x80 && u[i + 2] <= 0x88);
}

static bool greek_at(const unsigned char *u, size_t len, size_t i)
{
    return (u[i] >= 0xCD && u[i] <= 0xCF) || (u[i] == 0xC2 && i + 1 < len && u[i + 1] == 0xB5) ||
           (u[i] == 0xE1 && i + 1 < len && u[i + 1] >= 0xBC && u[i + 1] <= 0xBF) ||
           (u[i] == 0xE2 && i + 2 < len && u[i + 1] == 0x84 && u[i + 2] == 0xA6);
}

/* The first byte a literal has where the character at u[i] matches it,
 * and in `*width` how many bytes that character takes: an ASCII letter in
 * lower case, the Kelvin sign, the long s and the Turkish i as the letters
 * match_at() takes them for, any other byte as itself. The one case where
 * match_at() would also take u[i] as itself, a literal byte 0xC4, 0xC5 or
 * 0xE2, cannot arise: non-ASCII literals are characters of the caseless
 * scripts (non_ascii()), none of which is written with those bytes. */
static unsigned folded_at(const unsigned char *u, size_t len, size_t i, size_t *width)
{
    unsigned char c = u[i];
    *width = 1;
    if (c >= 'A' && c <= 'Z')
        return c + 32u;
    if (c == 0xE2 && i + 3 <= len && u[i + 1] == 0x84 && u[i + 2] == 0xAA) {
        *width = 3;
        return 'k';
    }
    if (c == 0xC5 && i + 2 <= len && u[i + 1] == 0xBF) {
        *width = 2;
        return 's';
    }
    if (c == 0xC4 && i + 2 <= len && (u[i + 1] == 0xB0 || u[i + 1] == 0xB1)) {
        *width = 2;
        return 'i';
    }
    return c;
}

/* The keys of the index: a folded ASCII byte (where one-byte literals are
 * looked up), the three markers, then the pairs, hashed into 2^bits
 * buckets (a bucket's positions may hold other pairs: match_at() sorts
 * them out). */
#define KEY_WIDE    0x80 /* every byte from 0x80 up */
#define KEY_CYR     0x81 /* where cyrillic_at() holds */
#define KEY_GREEK   0x82 /* where greek_at() holds */
#define KEY_PAIR(h) (0x83u + (h))

/* A pair's hash; its top `bits` bits are its bucket. */
static uint32_t pair_hash(unsigned pair)
{
    return (uint32_t)pair * 2654435761u;
}

/* How a literal is looked up: by the hashes of its first two bytes and
 * of its first three (the first two again for a two-byte literal), or by
 * its key. */
struct probe {
    uint32_t hash_or_key, seen_hash;
    const unsigned char *s; /* the literal (owned by the set) */
    unsigned bounds;        /* LIT_B_* */
};

void cairn_literals_seal(struct cairn_literals *l)
{
    if (l == NULL)
        return;
    free(l->probe);
    l->probe = cairn_malloc((l->n ? l->n : 1) * sizeof(*l->probe));
    size_t pairs = 0, other = l->n;
    for (size_t k = 0; k < l->n; k++) {
        const unsigned char *u = (const unsigned char *)l->s[k];
        if (u[1] != '\0') {
            unsigned pair = (unsigned)u[0] << 8 | u[1];
            l->probe[pairs++] =
                (struct probe){pair_hash(pair), pair_hash(u[2] != '\0' ? pair << 8 | u[2] : pair),
                               u, l->bounds[k]};
            continue;
        }
        uint32_t key = strcmp(l->s[k], ANY_WIDE) == 0    ? KEY_WIDE
                       : strcmp(l->s[k], ANY_CYR) == 0   ? KEY_CYR
                       : strcmp(l->s[k], ANY_GREEK) == 0 ? KEY_GREEK
                                                         : u[0];
        l->probe[--other] = (struct probe){key, 0, u, l->bounds[k]};
    }
    l->npairs = pairs;
    l->sealed = true;
}

/* One text (or a window of one) read for literal look-ups. */
struct text_index {
    /* Which text it was built from: base[from..from + n), copied to
     * text[] so that a later call can be told to be on the same content
     * (a pointer alone may have been freed and reused since). */
    const char *base;
    size_t from, n;
    unsigned char *text; /* owned */
    /* The pairs' hashes, cut to `bits` bits, are buckets of positions; the
     * hashes of pairs and of triples (the first three bytes), cut to
     * `seen_bits` (more), are bits of seen[]: whether one with that hash
     * is in the text at all. Most literals' first three bytes are not,
     * which that one bit tells. */
    unsigned bits, seen_bits;
    uint64_t *seen; /* owned */
    /* Positions in text[], grouped by key and rising within one: key k
     * holds at[first[k]..first[k + 1]). */
    uint32_t *at;    /* owned */
    uint32_t *first; /* owned */
    size_t text_cap, at_cap, first_cap, seen_cap;
    unsigned long used; /* when it was last looked up, for replacing the oldest */
};

/* Texts kept indexed: a request's rules alternate between a few texts
 * (the prompt, its system part, the answer, a code block). */
#define INDEX_KEPT 4
/* Bytes indexed at once: a longer text is looked up in windows that
 * overlap by more than a match of the longest literal can take (three
 * bytes a character: the Kelvin sign), so that each match lies whole in
 * one window and the memory an index holds stays bounded. */
#define INDEX_WINDOW  (64u << 10)
#define INDEX_OVERLAP (4 * LIT_MAX_LEN)

static struct text_index kept[INDEX_KEPT];
static unsigned long index_clock;

static void mark_seen(const struct text_index *ix, uint64_t *seen, uint32_t hash)
{
    uint32_t bit = hash >> (32 - ix->seen_bits);
    seen[bit >> 6] |= (uint64_t)1 << (bit & 63);
}

/* The keys of position i of u[0..n): at most four; and the hashes of its
 * pair and triple, where it has them, marked in seen[] unless NULL. */
static size_t keys_at(const struct text_index *ix, const unsigned char *u, size_t n, size_t i,
                      uint32_t key[4], uint64_t *seen)
{
    size_t k = 0, w = 1, w2 = 1, w3;
    unsigned c = u[i], pair, third = 0;
    if (c < 0x80 && i + 2 < n && u[i + 1] < 0x80 && u[i + 2] < 0x80) {
        /* ASCII, as most of most texts: no folded_at() */
        unsigned d = u[i + 1], e = u[i + 2];
        c |= (c - 'A' < 26u) << 5;
        key[k++] = c;
        pair = c << 8 | d | (d - 'A' < 26u) << 5;
        third = e | (e - 'A' < 26u) << 5;
    } else {
        if (c >= 0x80) {
            key[k++] = KEY_WIDE;
            if (cyrillic_at(u, n, i))
                key[k++] = KEY_CYR;
            if (greek_at(u, n, i))
                key[k++] = KEY_GREEK;
            if (c < 0xC0)
                return k; /* inside a character: no literal starts there */
        }
        c = folded_at(u, n, i, &w);
        if (c < 0x80)
            key[k++] = c;
        if (i + w >= n)
            return k;
        pair = c << 8 | folded_at(u, n, i + w, &w2);
        if (i + w + w2 < n)
            third = folded_at(u, n, i + w + w2, &w3);
    }
    uint32_t h = pair_hash(pair);
    key[k++] = KEY_PAIR(h >> (32 - ix->bits));
    if (seen != NULL) {
        mark_seen(ix, seen, h);
        if (third != 0)
            mark_seen(ix, seen, pair_hash(pair << 8 | third));
    }
    return k;
}

static void *grow(void *p, size_t *cap, size_t want, size_t size)
{
    if (want <= *cap)
        return p;
    *cap = want;
    return cairn_realloc(p, want * size);
}

/* Index s[from..from + n) into ix: a counting sort of the positions by
 * key, filled from the last position down so that each key's positions
 * come out rising. Two buckets a byte keep most short; 64 bits of seen[]
 * a byte, most of them clear. */
static void index_build(struct text_index *ix, const char *s, size_t from, size_t n)
{
    ix->text = grow(ix->text, &ix->text_cap, n, 1);
    memcpy(ix->text, s + from, n);
    ix->base = s;
    ix->from = from;
    ix->n = n;
    ix->bits = 6;
    while (ix->bits < 16 && (1u << ix->bits) < 2 * n)
        ix->bits++;
    ix->seen_bits = ix->bits + 5;
    size_t keys = KEY_PAIR(1u << ix->bits), words = (size_t)1 << (ix->seen_bits - 6);
    ix->first = grow(ix->first, &ix->first_cap, keys + 1, sizeof(*ix->first));
    memset(ix->first, 0, (keys + 1) * sizeof(*ix->first));
    ix->seen = grow(ix->seen, &ix->seen_cap, words, sizeof(*ix->seen));
    memset(ix->seen, 0, words * sizeof(*ix->seen));
    uint32_t key[4];
    for (size_t i = 0; i < n; i++)
        for (size_t k = keys_at(ix, ix->text, n, i, key, ix->seen); k-- > 0;)
            ix->first[key[k]]++;
    uint32_t total = 0;
    for (size_t k = 0; k < keys; k++)
        ix->first[k] = total += ix->first[k]; /* now where each key ends */
    ix->first[keys] = total;
    ix->at = grow(ix->at, &ix->at_cap, total ? total : 1, sizeof(*ix->at));
    for (size_t i = n; i-- > 0;)
        for (size_t k = keys_at(ix, ix->text, n, i, key, NULL); k-- > 0;)
            ix->at[--ix->first[key[k]]] = (uint32_t)i;
}

/* Does kept[k] hold s[start..len)? Then *off is where s[start] is in its
 * text[]: built from the same pointer over a wider span, or from a copy
 * of the same bytes; either way the bytes decide. */
static bool index_holds(const struct text_index *ix, const char *s, size_t start, size_t len,
                        size_t *off)
{
    if (ix->base == s && ix->from <= start && len <= ix->from + ix->n)
        *off = start - ix->from;
    else if (ix->n == len - start)
        *off = 0;
    else
        return false;
    return memcmp(ix->text + *off, s + start, len - start) == 0;
}

/* The index of s[start..len), and in *off where s[start] is in its
 * text[]: the one used last if it holds it (the common case: one list's
 * pieces after another on one text), another kept one, else the one used
 * least lately, rebuilt. */
static const struct text_index *index_of(const char *s, size_t start, size_t len, size_t *off)
{
    static struct text_index *last = &kept[0];
    if (index_holds(last, s, start, len, off)) {
        last->used = ++index_clock;
        return last;
    }
    struct text_index *old = &kept[0];
    for (size_t k = 0; k < INDEX_KEPT; k++) {
        if (kept[k].used < old->used)
            old = &kept[k];
        if (&kept[k] != last && index_holds(&kept[k], s, start, len, off)) {
            last = &kept[k];
            last->used = ++index_clock;
            return last;
        }
    }
    index_build(old, s, start, len - start);
    old->used = ++index_clock;
    *off = 0;
    last = old;
    return old;
}

void cairn_literals_forget(void)
{
    for (size_t k = 0; k < INDEX_KEPT; k++) {
        struct text_index *ix = &kept[k];
        if (ix->text != NULL)
            explicit_bzero(ix->text, ix->text_cap); /* a prompt or an answer */
        free(ix->text);
        free(ix->seen);
        free(ix->at);
        free(ix->first);
        *ix = (struct text_index){.used = 0};
    }
}

/* Where key's positions from `from` on start in at[]. */
static size_t first_from(const struct text_index *ix, uint32_t key, size_t from)
{
    size_t lo = ix->first[key], hi = ix->first[key + 1];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->at[mid] < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The caller's text, whose bytes around a literal found decide its
 * bounds: the index holds a window of it, maybe a copy, and position i of
 * the index is s[origin + i]. */
struct subject {
    const unsigned char *s;
    size_t len, origin;
};

/* May \b hold between s[at - 1] and s[at] (the text's start and end count
 * as non-word), given whether the literal's character on its side of `at`
 * is a word character? As PCRE2 decides with PCRE2_UCP, which looks at
 * s[at - 1] even before the start of the match, as here; a non-ASCII
 * neighbour may be a letter or not, so it passes. */
static bool boundary_at(const struct subject *t, size_t at, bool after, bool lit_word)
{
    size_t other = after ? at : at - 1;
    if (after ? at >= t->len : at == 0)
        return lit_word;
    return t->s[other] >= 0x80 || word_byte(t->s[other]) != lit_word;
}

/* Does the literal found at index position i to `end` have the bounds it
 * needs? */
static bool bounds_hold(const struct probe *p, const struct subject *t, size_t i, size_t end)
{
    size_t at = t->origin + i, to = t->origin + end;
    if ((p->bounds & LIT_B_BEFORE) && !boundary_at(t, at, false, word_byte(p->s[0])))
        return false;
    if ((p->bounds & LIT_B_AFTER) &&
        !boundary_at(t, to, true, word_byte(p->s[strlen((const char *)p->s) - 1])))
        return false;
    if ((p->bounds & LIT_WIDE_BEFORE) && (at == 0 || t->s[at - 1] < 0x80))
        return false;
    return !(p->bounds & LIT_WIDE_AFTER) || (to < t->len && t->s[to] >= 0x80);
}

/* Does the probe's literal (or marker) start at one of key's positions in
 * text[from..to), with its bounds? Cyrillic and Greek are tested again
 * against `to`, which may cut a character the index saw whole. */
static bool probe_in(const struct probe *p, uint32_t key, const struct text_index *ix, size_t from,
                     size_t to, const struct subject *t)
{
    const unsigned char *u = ix->text;
    for (size_t x = first_from(ix, key, from); x < ix->first[key + 1] && ix->at[x] < to; x++) {
        size_t i = ix->at[x], end;
        if (key == KEY_WIDE    ? true
            : key == KEY_CYR   ? cyrillic_at(u, to, i)
            : key == KEY_GREEK ? greek_at(u, to, i)
                               : (end = match_at(p->s, u, to, i)) != 0 &&
                                     (p->bounds == 0 || bounds_hold(p, t, i, end)))
            return true;
    }
    return false;
}

/* Does one of the literals occur in text[from..to) of the index? */
static bool any_in_index(const struct cairn_literals *l, const struct text_index *ix, size_t from,
                         size_t to, const struct subject *t)
{
    unsigned seen_shift = 32 - ix->seen_bits, bucket_shift = 32 - ix->bits;
    for (size_t k = 0; k < l->npairs; k++) {
        uint32_t bit = l->probe[k].seen_hash >> seen_shift;
        if ((ix->seen[bit >> 6] >> (bit & 63) & 1) &&
            probe_in(&l->probe[k], KEY_PAIR(l->probe[k].hash_or_key >> bucket_shift), ix, from, to,
                     t))
            return true;
    }
    for (size_t k = l->npairs; k < l->n; k++) {
        uint32_t key = l->probe[k].hash_or_key;
        if (ix->first[key] != ix->first[key + 1] && probe_in(&l->probe[k], key, ix, from, to, t))
            return true;
    }
    return false;
}

bool cairn_literals_any_in(const struct cairn_literals *l, const char *s, size_t len, size_t start)
{
    if (!l->sealed)
        return true; /* not looked for: the piece runs */
    for (size_t at = start; at < len; at += INDEX_WINDOW - INDEX_OVERLAP) {
        size_t end = len - at > INDEX_WINDOW ? at + INDEX_WINDOW : len, off;
        const struct text_index *ix = index_of(s, at, end, &off);
        struct subject t = {(const unsigned char *)s, len, at - off};
        if (any_in_index(l, ix, off, off + (end - at), &t))
            return true;
        if (end == len)
            break;
    }
    return false;
}

void cairn_literals_print(const struct cairn_literals *l, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; l != NULL && i < l->n && o < outlen; i++) {
        unsigned b = l->bounds[i];
        o += (size_t)snprintf(out + o, outlen - o, "%s%s%s%s%s%s", i ? "|" : "",
                              b & LIT_WIDE_BEFORE ? "~" : "", b & LIT_B_BEFORE ? "\\b" : "",
                              strcmp(l->s[i], ANY_WIDE) == 0    ? "<non-ascii>"
                              : strcmp(l->s[i], ANY_CYR) == 0   ? "<cyrillic>"
                              : strcmp(l->s[i], ANY_GREEK) == 0 ? "<greek>"
                                                                : l->s[i],
                              b & LIT_B_AFTER ? "\\b" : "", b & LIT_WIDE_AFTER ? "~" : "");
    }
}
