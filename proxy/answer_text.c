/*
 * answer_text.c — fences, prose and counts of a model's answer (see
 * answer_text.h). What each count counts (tests/validate/README.md says
 * the same for operators):
 *
 *   words       runs of non-white-space that hold a letter or a digit
 *               ("-", "|", "---" and "**" alone are not words); Chinese and
 *               Japanese are written without spaces, so each Han ideograph
 *               and each kana counts as one word of its own ("我用Python"
 *               is 3); Thai is written without spaces between words, so a
 *               run of Thai counts one word per 4 spacing letters (its
 *               combining vowel and tone marks not counted), rounded up —
 *               the mean length of a Thai word. Korean separates its words
 *               with spaces and counts like any alphabet.
 *   characters  Unicode code points that are not white space.
 *   tokens      an estimate of a BPE tokenizer's count, fitted to the mean
 *               of OpenAI's cl100k_base and o200k_base on sample texts in
 *               15 languages and code (within about 20% of it for each):
 *               a run of letters and digits costs ceil(A/8 + N/2.5), A its
 *               ASCII and N its other code points (a common English word is
 *               one token, a Cyrillic or Greek one three letters a token);
 *               a run of punctuation and symbols ceil(n/3); each Han, kana
 *               and Hangul syllable 1; a run of Thai ceil(n/2); and white
 *               space that holds a line break and is longer than it (blank
 *               lines, indentation) 1.
 *
 * Sentences end at a terminator (". ! ? …" and the Arabic and Devanagari
 * ones, from rules/validation.json) followed, after closing quotes or
 * brackets, by white space or the end of a line; CJK terminators ("。！？")
 * end one whatever follows. A dot does not end a sentence after an
 * abbreviation from the list ("e.g.", "Dr."), after a single capital
 * before another capital ("J. Smith"), inside a number ("3.14"), or when
 * the next word starts with a small letter or a digit; nothing inside
 * brackets ends one ("(why?)"). A list item ends its sentence at the end
 * of its line, and so does a line without a terminator when the next line
 * starts with a capital and this one does not end in ", ; : - (". Text left
 * without a terminator at a blank line or the end counts as one. Headings
 * (ATX and setext), table rows and fenced code hold no sentences, and a
 * fragment without a letter or digit is none.
 *
 * Paragraphs, prose and letters: see answer_text.h. Every reading is one
 * pass over the text with a fast path for ASCII; anything that searches
 * ahead (a closing backtick, a link target) stops after SPAN_MAX bytes, so
 * that a hostile line of a megabyte costs what its length costs.
 */
#include "answer_text.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "pattern.h"
#include "utf8.h"

#define ABBREV_MAX  24 /* bytes of an abbreviation, NUL included */
#define ABBREVS_MAX 512
#define SENT_CHARS  32  /* code points per terminator / closer list */
#define SPAN_MAX    512 /* bytes an inline code span or link target may run */

struct cairn_sentence_rules {
    unsigned terminators[SENT_CHARS]; /* end a sentence before white space */
    size_t nterminators;
    unsigned spaceless[SENT_CHARS]; /* end a sentence whatever follows */
    size_t nspaceless;
    unsigned closers[SENT_CHARS]; /* may follow a terminator: quotes, brackets */
    size_t ncloses;
    char (*abbrev)[ABBREV_MAX]; /* owned; lowercase, without the final dot, sorted */
    size_t nabbrev;
    bool ascii_stop[128]; /* ASCII terminators of either kind: the counter's fast path */
};

/* ---- code points ------------------------------------------------------ */

/* isalnum() for ASCII without the locale table's call. */
static inline bool ascii_alnum(unsigned char c)
{
    return (unsigned)((c | 0x20) - 'a') < 26u || (unsigned)(c - '0') < 10u;
}

static bool is_space_cp(unsigned cp)
{
    return cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200B) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

/* Han ideographs and kana: the units of text written without spaces. */
static bool is_cjk_unit(unsigned cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x2FFFF) || cp == 0x3005 ||
           cp == 0x3007 || (cp >= 0x3041 && cp <= 0x309F) || (cp >= 0x30A0 && cp <= 0x30FF) ||
           (cp >= 0x31F0 && cp <= 0x31FF) || (cp >= 0xFF66 && cp <= 0xFF9D);
}

static bool is_hangul(unsigned cp)
{
    return (cp >= 0xAC00 && cp <= 0xD7AF) || (cp >= 0x1100 && cp <= 0x11FF) ||
           (cp >= 0x3130 && cp <= 0x318F);
}

static bool is_thai(unsigned cp)
{
    return cp >= 0x0E01 && cp <= 0x0E5B;
}

/* Thai vowel and tone marks written above or below a letter. */
static bool is_thai_mark(unsigned cp)
{
    return cp == 0x0E31 || (cp >= 0x0E34 && cp <= 0x0E3A) || (cp >= 0x0E47 && cp <= 0x0E4E);
}

/* Punctuation and symbols: ASCII non-alphanumerics and the blocks that
 * hold only punctuation, symbols, arrows, box drawing and emoji. Every
 * other code point is taken as (part of) a letter or digit. */
static bool is_punct_cp(unsigned cp)
{
    if (cp < 0x80)
        return !ascii_alnum((unsigned char)cp);
    return (cp >= 0x80 && cp <= 0xBF && cp != 0xAA && cp != 0xB5 && cp != 0xBA && cp != 0xB2 &&
            cp != 0xB3 && cp != 0xB9) ||
           cp == 0xD7 || cp == 0xF7 || (cp >= 0x2010 && cp <= 0x206F) ||
           (cp >= 0x20A0 && cp <= 0x20CF) || (cp >= 0x2190 && cp <= 0x2BFF) ||
           (cp >= 0x3000 && cp <= 0x303F && cp != 0x3005 && cp != 0x3007) ||
           (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF01 && cp <= 0xFF0F) ||
           (cp >= 0xFF1A && cp <= 0xFF20) || (cp >= 0xFF3B && cp <= 0xFF40) ||
           (cp >= 0xFF5B && cp <= 0xFF65) || (cp >= 0x1F000 && cp <= 0x1FAFF) || cp == 0x055D ||
           cp == 0x060C || cp == 0x061B || cp == 0x061F || cp == 0x06D4 || cp == 0x0964 ||
           cp == 0x0965 || cp == 0x0E5A || cp == 0x0E5B || cp == 0xFFFD ||
           (cp >= 0xE000 && cp <= 0xF8FF);
}

static bool is_wordish(unsigned cp)
{
    return !is_space_cp(cp) && !is_punct_cp(cp);
}

static bool has_wordish(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        if ((unsigned char)s[i] < 0x80) {
            if (ascii_alnum((unsigned char)s[i]))
                return true;
            i++;
            continue;
        }
        if (is_wordish(cairn_utf8_next(s, len, &i)))
            return true;
    }
    return false;
}

static bool in_set(unsigned cp, const unsigned *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == cp)
            return true;
    return false;
}

/* ---- counting --------------------------------------------------------- */

/* What the counters tell apart. */
enum cls {
    CL_SPACE,
    CL_ASCII,  /* ASCII letter or digit */
    CL_LETTER, /* any other letter or digit (and combining marks) */
    CL_PUNCT,  /* punctuation and symbols */
    CL_CJK,    /* a Han ideograph or kana */
    CL_HANGUL, /* a Hangul syllable or jamo */
    CL_THAI,   /* a spacing Thai letter */
    CL_THAI_MARK,
};

static enum cls classify(unsigned cp)
{
    if (is_space_cp(cp))
        return CL_SPACE;
    if (is_cjk_unit(cp))
        return CL_CJK;
    if (is_hangul(cp))
        return CL_HANGUL;
    if (is_thai(cp))
        return is_thai_mark(cp) ? CL_THAI_MARK : CL_THAI;
    return is_punct_cp(cp) ? CL_PUNCT : CL_LETTER;
}

/* The class of the character at s[*i], moving past it: ASCII, nearly all
 * of most answers, costs a comparison or two. */
static inline enum cls next_class(const char *s, size_t len, size_t *i)
{
    unsigned char c = (unsigned char)s[*i];
    if (c < 0x80) {
        (*i)++;
        return c == ' ' || (c >= '\t' && c <= '\r') ? CL_SPACE
               : ascii_alnum(c)                     ? CL_ASCII
                                                    : CL_PUNCT;
    }
    return classify(cairn_utf8_next(s, len, i));
}

static size_t count_words(const char *s, size_t len)
{
    size_t words = 0, thai = 0;
    bool seg = false; /* the current run of other letters holds a letter or digit */
    for (size_t i = 0; i < len;) {
        enum cls c = next_class(s, len, &i);
        if (c == CL_THAI || c == CL_THAI_MARK) {
            words += seg;
            seg = false;
            thai += c == CL_THAI;
            continue;
        }
        words += (thai + 3) / 4;
        thai = 0;
        if (c == CL_SPACE || c == CL_CJK) {
            words += seg + (c == CL_CJK);
            seg = false;
        } else {
            seg |= c != CL_PUNCT;
        }
    }
    return words + seg + (thai + 3) / 4;
}

static size_t count_characters(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len;)
        n += next_class(s, len, &i) != CL_SPACE;
    return n;
}

enum run { RUN_NONE, RUN_WORD, RUN_PUNCT, RUN_THAI };

static size_t run_tokens(enum run kind, size_t ascii, size_t other)
{
    switch (kind) {
    case RUN_WORD: return (5 * ascii + 16 * other + 39) / 40; /* ceil(A/8 + N/2.5) */
    case RUN_PUNCT: return (ascii + 2) / 3;
    case RUN_THAI: return (ascii + 1) / 2;
    default: return 0;
    }
}

static size_t count_tokens(const char *s, size_t len)
{
    size_t tokens = 0, ascii = 0, other = 0, ws = 0;
    bool newline = false;
    enum run kind = RUN_NONE;
    for (size_t i = 0; i < len;) {
        size_t at = i;
        enum cls c = next_class(s, len, &i);
        if (c == CL_SPACE) {
            tokens += run_tokens(kind, ascii, other);
            kind = RUN_NONE;
            ascii = other = 0;
            ws++;
            newline |= s[at] == '\n';
            continue;
        }
        tokens += ws > 1 && newline;
        ws = 0;
        newline = false;
        enum run k = c == CL_CJK || c == CL_HANGUL       ? RUN_NONE
                     : c == CL_THAI || c == CL_THAI_MARK ? RUN_THAI
                     : c == CL_PUNCT                     ? RUN_PUNCT
                                                         : RUN_WORD;
        if (k != kind) {
            tokens += run_tokens(kind, ascii, other);
            ascii = other = 0;
            kind = k;
        }
        if (k == RUN_NONE)
            tokens++;
        else if (c == CL_LETTER)
            other++;
        else
            ascii++; /* punctuation and Thai count every code point alike */
    }
    return tokens + run_tokens(kind, ascii, other);
}

size_t cairn_answer_length(const char *text, size_t len, enum cairn_counting how)
{
    switch (how) {
    case CAIRN_COUNT_CHARACTERS: return count_characters(text, len);
    case CAIRN_COUNT_TOKENS: return count_tokens(text, len);
    case CAIRN_COUNT_WORDS:
    default: return count_words(text, len);
    }
}

/* ---- lines and fences ------------------------------------------------- */

/* The end of the line starting at i (its '\n' or len). */
static size_t line_end(const char *s, size_t len, size_t i)
{
    const char *nl = memchr(s + i, '\n', len - i);
    return nl ? (size_t)(nl - s) : len;
}

static size_t skip_blanks(const char *s, size_t i, size_t end)
{
    while (i < end && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
        i++;
    return i;
}

/* A fence at the start of line s[0..len) (after any indentation: fences
 * sit indented inside list items): its character and length, or 0. */
static size_t fence_at(const char *s, size_t len, char *ch, size_t *after)
{
    size_t i = skip_blanks(s, 0, len);
    if (i >= len || (s[i] != '`' && s[i] != '~'))
        return 0;
    size_t n = 0;
    while (i + n < len && s[i + n] == s[i])
        n++;
    if (n < 3)
        return 0;
    *ch = s[i];
    *after = i + n;
    return n;
}

static void push_fence(struct cairn_answer *a, const struct cairn_fence *f)
{
    if (a->nfences == a->cap) {
        size_t cap = a->cap * 2;
        struct cairn_fence *p = cairn_malloc(cap * sizeof(*p));
        memcpy(p, a->fences, a->nfences * sizeof(*p));
        if (a->fences != a->inline_fences)
            free(a->fences);
        a->fences = p;
        a->cap = cap;
    }
    a->fences[a->nfences++] = *f;
}

static void fence_info(struct cairn_fence *f, const char *s, size_t i, size_t end)
{
    i = skip_blanks(s, i, end);
    while (i < end && (s[i] == '{' || s[i] == '.'))
        i++;
    size_t k = 0;
    while (i < end && k + 1 < CAIRN_FENCE_INFO && !isspace((unsigned char)s[i]) && s[i] != '`' &&
           s[i] != '{' && s[i] != '}' && s[i] != ',')
        f->info[k++] = (char)tolower((unsigned char)s[i++]);
    f->info[k] = '\0';
}

void cairn_answer_scan(struct cairn_answer *a, const char *text, size_t len)
{
    a->text = text;
    a->len = len;
    a->fences = a->inline_fences;
    a->cap = CAIRN_FENCES_INLINE;
    a->nfences = 0;
    struct cairn_fence cur = {0};
    size_t open_len = 0;
    char open_ch = 0;
    for (size_t i = 0; i < len;) {
        size_t e = line_end(text, len, i), next = e < len ? e + 1 : len, after = 0;
        char ch = 0;
        size_t n = fence_at(text + i, e - i, &ch, &after);
        if (open_len == 0 && n > 0) {
            /* A backtick fence's info string holds no backtick (CommonMark):
             * "```a``` b" is inline code, not a block. */
            if (ch == '`' && memchr(text + i + after, '`', e - i - after) != NULL) {
                i = next;
                continue;
            }
            memset(&cur, 0, sizeof(cur));
            cur.open = i;
            cur.body = next;
            fence_info(&cur, text + i, after, e - i);
            open_len = n;
            open_ch = ch;
        } else if (open_len > 0 && n >= open_len && ch == open_ch &&
                   skip_blanks(text + i, after, e - i) == e - i) {
            cur.body_end = i;
            cur.end = next;
            cur.closed = true;
            push_fence(a, &cur);
            open_len = 0;
        }
        i = next;
    }
    if (open_len > 0) {
        cur.body_end = len;
        cur.end = len;
        push_fence(a, &cur);
    }
}

void cairn_answer_free(struct cairn_answer *a)
{
    if (a->fences != a->inline_fences)
        free(a->fences);
    a->fences = a->inline_fences;
    a->nfences = 0;
}

/* An ATX heading: up to 3 spaces, 1 to 6 '#', then a space or the end. */
static bool is_heading(const char *s, size_t i, size_t end)
{
    size_t k = 0;
    while (i < end && k < 3 && s[i] == ' ')
        i++, k++;
    size_t n = 0;
    while (i + n < end && s[i + n] == '#')
        n++;
    return n >= 1 && n <= 6 && (i + n == end || s[i + n] == ' ' || s[i + n] == '\t');
}

size_t cairn_answer_list_marker(const char *s, size_t len)
{
    static const char *const bullets[] = {"-",
                                          "*",
                                          "+",
                                          "\xE2\x80\xA2",
                                          "\xE2\x97\xA6",
                                          "\xE2\x96\xAA",
                                          "\xE2\x80\xA3",
                                          "\xC2\xB7",
                                          "\xE2\x80\x93"};
    for (size_t b = 0; b < sizeof(bullets) / sizeof(bullets[0]); b++) {
        size_t n = strlen(bullets[b]);
        if (len > n && memcmp(s, bullets[b], n) == 0 && (s[n] == ' ' || s[n] == '\t'))
            return skip_blanks(s, n, len);
    }
    size_t i = len > 0 && s[0] == '(' ? 1 : 0, d = i; /* "> " quotes an empty line */
    while (d < len && d - i < 3 && isdigit((unsigned char)s[d]))
        d++;
    bool letter = false;
    if (d == i && i + 1 < len && isalpha((unsigned char)s[i]) &&
        (s[i + 1] == ')' || (s[i + 1] == '.' && islower((unsigned char)s[i])))) {
        d = i + 1; /* "a) ", "(b) ", "c. " */
        letter = true;
    }
    if (d > i && d < len) {
        if ((s[d] == '.' || s[d] == ')') && (i == 0 || s[d] == ')') && d + 1 < len &&
            (s[d + 1] == ' ' || s[d + 1] == '\t'))
            return skip_blanks(s, d + 1, len);
        /* "1、" and "1．" (CJK lists) need no space after them. */
        if (i == 0 && !letter && d + 3 <= len &&
            (memcmp(s + d, "\xE3\x80\x81", 3) == 0 || memcmp(s + d, "\xEF\xBC\x8E", 3) == 0))
            return skip_blanks(s, d + 3, len);
    }
    /* Circled numbers ① .. ⑳ (U+2460..U+2473). */
    if (len >= 3 && (unsigned char)s[0] == 0xE2 && (unsigned char)s[1] == 0x91 &&
        (unsigned char)s[2] >= 0xA0 && (unsigned char)s[2] <= 0xB3)
        return skip_blanks(s, 3, len);
    return 0;
}

/* A setext heading's underline: only '=' or only '-' (two or more), then
 * blanks. The line above it is a heading. */
static bool is_underline(const char *s, size_t i, size_t end)
{
    i = skip_blanks(s, i, end);
    if (i >= end || (s[i] != '=' && s[i] != '-'))
        return false;
    char c = s[i];
    size_t n = 0;
    while (i < end && s[i] == c)
        i++, n++;
    return n >= 2 && skip_blanks(s, i, end) == end;
}

/* Whether the line after the one ending at `e` underlines it. */
static bool underlined(const char *s, size_t len, size_t e)
{
    if (e >= len)
        return false;
    return is_underline(s, e + 1, line_end(s, len, e + 1));
}

/* Whether s[i..end) starts with a capital letter (Latin, Greek, Cyrillic). */
static bool starts_capital(const char *s, size_t i, size_t end)
{
    if (i >= end)
        return false;
    if ((unsigned char)s[i] < 0x80)
        return s[i] >= 'A' && s[i] <= 'Z';
    unsigned cp = cairn_utf8_next(s, end, &i);
    return (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) || (cp >= 0x391 && cp <= 0x3A9) ||
           (cp >= 0x400 && cp <= 0x42F);
}

/* ---- paragraphs ------------------------------------------------------- */

size_t cairn_answer_paragraphs(const struct cairn_answer *a)
{
    const char *s = a->text;
    size_t count = 0, f = 0;
    bool prose = false, content = false;
    for (size_t i = 0; i < a->len;) {
        if (f < a->nfences && i == a->fences[f].open) {
            content |=
                has_wordish(s + a->fences[f].body, a->fences[f].body_end - a->fences[f].body);
            i = a->fences[f++].end;
            continue;
        }
        size_t e = line_end(s, a->len, i), next = e < a->len ? e + 1 : a->len;
        size_t p = skip_blanks(s, i, e);
        if (p == e) {
            count += prose;
            prose = false;
        } else if (underlined(s, a->len, e)) {
            next = line_end(s, a->len, next); /* a setext heading and its underline */
            next = next < a->len ? next + 1 : a->len;
        } else if (!is_heading(s, p, e) && has_wordish(s + p, e - p)) {
            prose = true;
            content = true;
        }
        i = next;
    }
    count += prose;
    return count == 0 && content ? 1 : count;
}

/* ---- sentences -------------------------------------------------------- */

static int by_abbrev(const void *x, const void *y)
{
    return strcmp((const char *)x, (const char *)y);
}

static bool is_abbreviation(const struct cairn_sentence_rules *r, const char *s, size_t dot)
{
    size_t start = dot;
    while (start > 0 && dot - start < ABBREV_MAX && !isspace((unsigned char)s[start - 1]) &&
           s[start - 1] != '(' && s[start - 1] != '"' && s[start - 1] != '[' && s[start - 1] != '*')
        start--;
    size_t n = dot - start;
    if (n == 0 || n >= ABBREV_MAX)
        return false;
    char word[ABBREV_MAX];
    for (size_t k = 0; k < n; k++)
        word[k] = (char)tolower((unsigned char)s[start + k]);
    word[n] = '\0';
    return bsearch(word, r->abbrev, r->nabbrev, sizeof(*r->abbrev), by_abbrev) != NULL;
}

/* Whether the dot at s[dot] ends a sentence, given what follows it after
 * white space (at `next`, possibly the end of the line). */
static bool dot_ends(const struct cairn_sentence_rules *r, const char *s, size_t dot, size_t next,
                     size_t end)
{
    if (is_abbreviation(r, s, dot))
        return false;
    /* "approx. ten", "Jan. 5": a sentence starts with neither. */
    if (next < end && (islower((unsigned char)s[next]) || isdigit((unsigned char)s[next])))
        return false;
    /* "J. Smith": a lone capital before another capital is an initial. */
    bool lone = dot >= 1 && isupper((unsigned char)s[dot - 1]) &&
                (dot == 1 || isspace((unsigned char)s[dot - 2]));
    return !(lone && next < end && isupper((unsigned char)s[next]));
}

size_t cairn_answer_sentences(const struct cairn_answer *a, const struct cairn_sentence_rules *r,
                              size_t upto)
{
    const char *s = a->text;
    size_t len = upto < a->len ? upto : a->len;
    size_t count = 0, f = 0, depth = 0; /* depth: of brackets opened in the sentence */
    bool pending = false;               /* the sentence being read has a letter or digit */
    for (size_t i = 0; i < len;) {
        if (f < a->nfences && i == a->fences[f].open) {
            count += pending;
            pending = false;
            i = a->fences[f++].end;
            continue;
        }
        size_t e = line_end(s, len, i), next = e < len ? e + 1 : len;
        size_t p = skip_blanks(s, i, e);
        if (p == e || is_heading(s, p, e) || s[p] == '|' || underlined(s, len, e)) {
            count += pending;
            pending = false;
            depth = 0;
            if (p < e && s[p] != '|' && !is_heading(s, p, e)) {
                next = line_end(s, len, next); /* a setext heading and its underline */
                next = next < len ? next + 1 : len;
            }
            i = next;
            continue;
        }
        size_t marker = cairn_answer_list_marker(s + p, e - p);
        if (marker > 0) {
            count += pending;
            pending = false;
            p += marker;
        }
        for (size_t k = p; k < e;) {
            size_t at = k;
            unsigned char b = (unsigned char)s[k];
            if (b < 0x80 && !r->ascii_stop[b]) {
                pending |= ascii_alnum(b);
                depth += b == '(';
                depth -= b == ')' && depth > 0;
                k++;
                continue;
            }
            unsigned cp = cairn_utf8_next(s, e, &k);
            bool spaceless = in_set(cp, r->spaceless, r->nspaceless);
            if (!spaceless && !in_set(cp, r->terminators, r->nterminators)) {
                pending |= is_wordish(cp);
                continue;
            }
            /* "(why change it?)": no end inside brackets. */
            bool inside = depth > 0;
            /* The run of terminators and closing quotes after it. */
            size_t run = k, dots = cp == '.';
            while (run < e) {
                size_t n = run;
                unsigned c = cairn_utf8_next(s, e, &n);
                if (in_set(c, r->spaceless, r->nspaceless))
                    spaceless = true;
                else if (!in_set(c, r->terminators, r->nterminators) &&
                         !in_set(c, r->closers, r->ncloses))
                    break;
                dots += c == '.';
                depth -= c == ')' && depth > 0;
                run = n;
            }
            k = run;
            if (inside)
                continue;
            if (!spaceless) {
                size_t after = run;
                if (run < e && !is_space_cp(cairn_utf8_next(s, e, &after)))
                    continue; /* "3.14", "example.com", "e.g.x" */
                if (cp == '.' && dots == 1 && !dot_ends(r, s, at, skip_blanks(s, run, e), e))
                    continue;
            }
            count += pending;
            pending = false;
            depth = 0;
        }
        /* A list item ends at its line's end; so does a line without a
         * terminator that the next line does not continue: "Hello there"
         * then "How are you" are two sentences, and a line ending in a
         * comma or colon goes on. */
        size_t last = e;
        while (last > p && isspace((unsigned char)s[last - 1]))
            last--;
        bool open = last > p && strchr(",;:-(", s[last - 1]) != NULL;
        if (marker > 0 ||
            (pending && !open && next < len && starts_capital(s, skip_blanks(s, next, len), len))) {
            count += pending;
            pending = false;
            depth = 0;
        }
        i = next;
    }
    return count + pending;
}

/* ---- prose ------------------------------------------------------------ */

struct out {
    char *p;
    size_t len, cap;
};

static bool put(struct out *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap)
        return false;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
    return true;
}

/* As much of s[0..n) as fits, in whole characters. @return false when
 * not all of it did. */
static bool put_whole(struct out *o, const char *s, size_t n)
{
    if (put(o, s, n))
        return true;
    size_t room = o->cap > o->len + 1 ? o->cap - o->len - 1 : 0;
    while (room > 0 && ((unsigned char)s[room] & 0xC0) == 0x80)
        room--;
    put(o, s, room);
    return false;
}

/* Length of a markup tag at s[0..len) ("<b>", "</item>", "<a href=...>"). */
static size_t tag_len(const char *s, size_t len)
{
    size_t i = 1 + (len > 1 && s[1] == '/');
    if (i >= len || !(isalpha((unsigned char)s[i]) || s[i] == '?' || s[i] == '!'))
        return 0;
    for (size_t k = i; k < len && k < 256; k++) {
        if (s[k] == '>')
            return k + 1;
        if (s[k] == '<')
            return 0;
    }
    return 0;
}

static bool starts_url(const char *s, size_t len, bool word_start)
{
    return (len > 7 && strncmp(s, "http://", 7) == 0) ||
           (len > 8 && strncmp(s, "https://", 8) == 0) ||
           (word_start && len > 4 && strncmp(s, "www.", 4) == 0);
}

/* One line of prose into `o`, without inline code, URLs, tags, link
 * targets and emphasis or table markup. @return false once `o` is full. */
static bool put_prose_line(struct out *o, const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        const char *close;
        size_t n;
        /* Spans end within SPAN_MAX bytes: a line of a megabyte with no
         * closing mark must not be searched again from every opening. */
        size_t span = len - i - 1 < SPAN_MAX ? len - i - 1 : SPAN_MAX;
        if (c == '`' && (close = memchr(s + i + 1, '`', span)) != NULL) {
            i = (size_t)(close - s) + 1;
        } else if ((c == 'h' || c == 'w') &&
                   starts_url(s + i, len - i, i == 0 || isspace((unsigned char)s[i - 1]))) {
            while (i < len && !isspace((unsigned char)s[i]))
                i++;
        } else if (c == '<' && (n = tag_len(s + i, len - i)) > 0) {
            i += n;
        } else if (c == ']' && i + 1 < len && s[i + 1] == '(' &&
                   (close = memchr(s + i + 1, ')', span)) != NULL) {
            i = (size_t)(close - s) + 1;
        } else if (c == '*' || c == '_' || c == '|' || c == '#' || c == '~' || c == '[' ||
                   c == ']' || (c == '!' && i + 1 < len && s[i + 1] == '[')) {
            i++;
        } else {
            /* A run of plain text up to the next byte that may start
             * markup, in one copy. */
            size_t k = i + 1;
            while (k < len && !strchr("`<]*_|#~[!hw", s[k]))
                k++;
            while (k < len && (s[k] & 0xC0) == 0x80)
                k++;
            if (!put_whole(o, s + i, k - i))
                return false;
            i = k;
            continue;
        }
        if (!put(o, " ", 1))
            return false;
    }
    return put(o, "\n", 1);
}

size_t cairn_answer_prose(const struct cairn_answer *a, char *out, size_t cap)
{
    struct out o = {out, 0, cap};
    const char *s = a->text;
    size_t f = 0;
    bool blank_before = true, code_before = false;
    if (cap > 0)
        out[0] = '\0';
    for (size_t i = 0; i < a->len;) {
        if (f < a->nfences && i == a->fences[f].open) {
            i = a->fences[f++].end;
            blank_before = true;
            continue;
        }
        size_t e = line_end(s, a->len, i), next = e < a->len ? e + 1 : a->len;
        size_t p = skip_blanks(s, i, e), indent = 0;
        for (size_t k = i; k < p; k++)
            indent += s[k] == '\t' ? 4 : 1;
        i = next;
        if (p == e) {
            blank_before = true;
            continue;
        }
        /* Indented code: 4 columns, after a blank line or more code, and
         * not a nested list item. */
        if (indent >= 4 && (blank_before || code_before) &&
            cairn_answer_list_marker(s + p, e - p) == 0) {
            code_before = true;
            continue;
        }
        blank_before = code_before = false;
        if (s[p] == '>')
            p = skip_blanks(s, p + 1, e);
        /* Table cells are names and numbers, not sentences: a row of
         * "Earth | 1 | Mars" reads as any language. */
        const char *pipe = memchr(s + p, '|', e - p);
        if (pipe != NULL && (pipe == s + p || memchr(pipe + 1, '|', (size_t)(s + e - pipe - 1))))
            continue;
        if (p < e && !has_wordish(s + p, e - p))
            continue; /* rules */
        p += cairn_answer_list_marker(s + p, e - p);
        if (!put_prose_line(&o, s + p, e - p))
            break;
    }
    return o.len;
}

size_t cairn_answer_letters(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        unsigned char b = (unsigned char)s[i];
        if (b < 0x80) {
            n += (unsigned)((b | 0x20) - 'a') < 26u;
            i++;
            continue;
        }
        enum cls c = next_class(s, len, &i);
        n += c == CL_CJK || c == CL_HANGUL ? 3 : c == CL_LETTER || c == CL_THAI;
    }
    return n;
}

/* ---- rules ------------------------------------------------------------ */

static int code_points(const cJSON *v, unsigned *set, size_t *n, const char *path, const char *key,
                       char *why, size_t whylen)
{
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0') {
        snprintf(why, whylen, "%s.%s: must be a non-empty string", path, key);
        return -1;
    }
    const char *s = v->valuestring;
    size_t len = strlen(s);
    if (cairn_utf8_valid(s, len) != len) {
        snprintf(why, whylen, "%s.%s: invalid UTF-8", path, key);
        return -1;
    }
    for (size_t i = 0; i < len;) {
        if (*n == SENT_CHARS) {
            snprintf(why, whylen, "%s.%s: at most %d characters", path, key, SENT_CHARS);
            return -1;
        }
        set[(*n)++] = cairn_utf8_next(s, len, &i);
    }
    return 0;
}

struct cairn_sentence_rules *cairn_sentence_rules_load(const cJSON *obj, const char *path,
                                                       char *why, size_t whylen)
{
    static const char *const keys[] = {
        "terminators", "spaceless_terminators", "closers", "abbreviations", "comment", NULL};
    if (cairn_pattern_check_object(obj, keys, path, why, whylen) < 0)
        return NULL;
    struct cairn_sentence_rules *r = cairn_calloc(1, sizeof(*r));
    if (code_points(cJSON_GetObjectItemCaseSensitive(obj, "terminators"), r->terminators,
                    &r->nterminators, path, "terminators", why, whylen) < 0 ||
        code_points(cJSON_GetObjectItemCaseSensitive(obj, "spaceless_terminators"), r->spaceless,
                    &r->nspaceless, path, "spaceless_terminators", why, whylen) < 0 ||
        code_points(cJSON_GetObjectItemCaseSensitive(obj, "closers"), r->closers, &r->ncloses, path,
                    "closers", why, whylen) < 0)
        goto fail;
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(obj, "abbreviations");
    if (!cJSON_IsArray(ab) || cJSON_GetArraySize(ab) > ABBREVS_MAX) {
        snprintf(why, whylen, "%s.abbreviations: must be an array of at most %d strings", path,
                 ABBREVS_MAX);
        goto fail;
    }
    r->abbrev = cairn_calloc((size_t)cJSON_GetArraySize(ab) + 1, sizeof(*r->abbrev));
    for (const cJSON *w = ab->child; w != NULL; w = w->next) {
        size_t n = cJSON_IsString(w) ? strlen(w->valuestring) : 0;
        if (n == 0 || n >= ABBREV_MAX || w->valuestring[n - 1] == '.' ||
            strpbrk(w->valuestring, " \t\n") != NULL) {
            snprintf(why, whylen,
                     "%s.abbreviations[%zu]: must be a word of 1 to %d bytes without its final "
                     "dot and without spaces",
                     path, r->nabbrev, ABBREV_MAX - 1);
            goto fail;
        }
        for (size_t k = 0; k <= n; k++)
            r->abbrev[r->nabbrev][k] = (char)tolower((unsigned char)w->valuestring[k]);
        r->nabbrev++;
    }
    qsort(r->abbrev, r->nabbrev, sizeof(*r->abbrev), by_abbrev);
    for (size_t i = 0; i < r->nterminators; i++)
        if (r->terminators[i] < 0x80)
            r->ascii_stop[r->terminators[i]] = true;
    for (size_t i = 0; i < r->nspaceless; i++)
        if (r->spaceless[i] < 0x80)
            r->ascii_stop[r->spaceless[i]] = true;
    return r;
fail:
    cairn_sentence_rules_free(r);
    return NULL;
}

void cairn_sentence_rules_free(struct cairn_sentence_rules *r)
{
    if (r == NULL)
        return;
    free(r->abbrev);
    free(r);
}
