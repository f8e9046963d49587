/*
 * spoof.c — strip or escape user-typed marker tags (see spoof.h).
 *
 * One PCRE2 pattern, compiled (and JIT-compiled) at load time from the
 * taxonomy's tag keys and wire names and the block delimiters, finds
 * anything that reads as <tag>, </tag> or the block's open/close line:
 * ASCII or look-alike brackets (full-width ＜＞, small ﹤﹥, angle quotes
 * ‹›, CJK 〈〉, mathematical ⟨⟩), any case, white space inside.
 *
 * The text parts of one message are matched as one joined string, so a
 * tag split across parts ("<MARK" + "ER_LIST>") is found; each match is
 * then neutralised piece by piece in the parts it spans: stripped
 * (removed), or escaped (its brackets written as &lt; and &gt;, which no
 * longer read as a tag).
 */
#include "spoof.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "alloc.h"

/* '<' and '>' and what renders like them: full-width ＜＞, small ﹤﹥, angle
 * quotes ‹›, CJK 〈〉, mathematical ⟨⟩, technical 〈〉, ornaments ❮❯,
 * modifier letters ˂˃, Canadian syllabics ᐸᐳ, ornaments ❬❭. */
/* clang-format off */
static const char *const open_brackets[] = {
    "<", "\xef\xbc\x9c", "\xef\xb9\xa4", "\xe2\x80\xb9", "\xe3\x80\x88", "\xe2\x9f\xa8",
    "\xe2\x8c\xa9", "\xe2\x9d\xae", "\xcb\x82", "\xe1\x90\xb8", "\xe2\x9d\xac", NULL,
};
static const char *const close_brackets[] = {
    ">", "\xef\xbc\x9e", "\xef\xb9\xa5", "\xe2\x80\xba", "\xe3\x80\x89", "\xe2\x9f\xa9",
    "\xe2\x8c\xaa", "\xe2\x9d\xaf", "\xcb\x83", "\xe1\x90\xb3", "\xe2\x9d\xad", NULL,
};
/* clang-format on */

/* Strip passes before the rest is escaped instead: stripping can join the
 * text around a tag into a new one ("<ta<task>sk>"), escaping cannot. */
#define MAX_STRIP_PASSES 8

struct cairn_spoof {
    pcre2_code *re;
    pcre2_match_data *md;
};

/* Append name `s` to the alternation in buf: each character also matches
 * its full-width form (ｔａｓｋ), and invisible format characters (zero-width
 * space, joiners, soft hyphen: \p{Cf}) may sit between characters. Names
 * are letters, digits and '_' (taxonomy.c checks). */
static void add_name(char *buf, size_t len, const char *s)
{
    size_t o = strlen(buf);
    if (o > 0 && buf[o - 1] != '(')
        o += (size_t)snprintf(buf + o, len - o, "|");
    for (; *s != '\0' && o + 32 < len; s++) {
        unsigned char c = (unsigned char)*s;
        unsigned int wide = c == '_' ? 0xff3f : 0xff01 + (unsigned)(c - '!');
        if (o > 0 && buf[o - 1] != '(' && buf[o - 1] != '|')
            o += (size_t)snprintf(buf + o, len - o, "\\p{Cf}*");
        if (c >= 'a' && c <= 'z')
            o += (size_t)snprintf(buf + o, len - o, "[%c\\x{%x}\\x{%x}]", c, wide, wide - 0x20);
        else if (c >= 'A' && c <= 'Z')
            o += (size_t)snprintf(buf + o, len - o, "[%c\\x{%x}\\x{%x}]", c, wide, wide + 0x20);
        else
            o += (size_t)snprintf(buf + o, len - o, "[%c\\x{%x}]", c, wide);
    }
}

/* The name inside a delimiter such as "<MARKER_LIST>" or "</MARKER_LIST>". */
static void add_delimiter_name(char *buf, size_t len, const char *delim)
{
    char name[64];
    size_t n = 0;
    for (const char *p = delim; *p != '\0' && n + 1 < sizeof(name); p++)
        if (*p != '<' && *p != '>' && *p != '/' && *p != ' ')
            name[n++] = *p;
    name[n] = '\0';
    if (n > 0)
        add_name(buf, len, name);
}

static void add_alternatives(char *buf, size_t len, const char *const *list)
{
    strcat(buf, "(?:");
    for (size_t i = 0; list[i] != NULL; i++) {
        if (i > 0)
            strcat(buf, "|");
        strncat(buf, list[i], len - strlen(buf) - 1);
    }
    strcat(buf, ")");
}

struct cairn_spoof *cairn_spoof_new(const struct cairn_taxonomy *tx,
                                    const struct cairn_marker_template *t, char *err, size_t errlen)
{
    char names[32768] = "(";
    for (size_t i = 0; i < tx->ntags; i++) {
        add_name(names, sizeof(names), tx->tags[i].key);
        add_name(names, sizeof(names), tx->tags[i].name);
    }
    add_delimiter_name(names, sizeof(names), t->open);
    add_delimiter_name(names, sizeof(names), t->close);
    add_name(names, sizeof(names), "MARKER_LIST");
    strcat(names, ")");

    char pattern[40000] = "";
    add_alternatives(pattern, sizeof(pattern), open_brackets);
    /* Possessive repeats: white space is never re-split on backtracking. */
    strcat(pattern, "[\\s\\p{Cf}]*+(?:/|\xef\xbc\x8f|\xe2\x88\x95|\xe2\x81\x84)?[\\s\\p{Cf}]*+");
    strncat(pattern, names, sizeof(pattern) - strlen(pattern) - 1);
    strcat(pattern, "[\\s\\p{Cf}]*+");
    add_alternatives(pattern, sizeof(pattern), close_brackets);

    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, &code, &at, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof(msg));
        snprintf(err, errlen, "marker tag detector: %s at offset %zu", (char *)msg, (size_t)at);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter still works if JIT fails */
    struct cairn_spoof *s = cairn_calloc(1, sizeof(*s));
    s->re = re;
    s->md = pcre2_match_data_create_from_pattern(re, NULL);
    return s;
}

void cairn_spoof_free(struct cairn_spoof *s)
{
    if (s == NULL)
        return;
    pcre2_match_data_free(s->md);
    pcre2_code_free(s->re);
    free(s);
}

/* Length of the bracket from `list` at p[0..n), or 0. */
static size_t bracket_at(const char *const *list, const char *p, size_t n)
{
    for (size_t i = 0; list[i] != NULL; i++) {
        size_t l = strlen(list[i]);
        if (l <= n && memcmp(p, list[i], l) == 0)
            return l;
    }
    return 0;
}

/* A growing, NUL-terminated string. */
struct text_buf {
    char *p;
    size_t len, cap;
};

static void buf_add(struct text_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = cairn_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Append the neutralised form of the match piece p[0..n) to out. */
static void neutralise(struct text_buf *out, const char *p, size_t n,
                       enum cairn_injected_policy policy)
{
    if (policy == CAIRN_INJECTED_STRIP)
        return;
    size_t i = 0;
    while (i < n) {
        size_t l;
        if ((l = bracket_at(open_brackets, p + i, n - i)) > 0) {
            buf_add(out, "&lt;", 4);
            i += l;
        } else if ((l = bracket_at(close_brackets, p + i, n - i)) > 0) {
            buf_add(out, "&gt;", 4);
            i += l;
        } else {
            buf_add(out, p + i, 1);
            i++;
        }
    }
}

struct range {
    size_t start, end;
};

#define MATCH_FAILED ((size_t)-1)

/* All matches in text[0..len), as ranges; @return their count, or
 * MATCH_FAILED when the engine gave up (a resource limit): the caller must
 * then assume the worst. */
static size_t find_matches(const struct cairn_spoof *s, const char *text, size_t len,
                           struct range **out)
{
    size_t n = 0, cap = 0, at = 0;
    *out = NULL;
    while (at <= len) {
        /* The subject is valid UTF-8 (json_strict.c): check it once, not
         * on every call, or many matches cost length x matches. */
        uint32_t opts = at > 0 ? PCRE2_NO_UTF_CHECK : 0;
        int rc = pcre2_match(s->re, (PCRE2_SPTR)text, len, at, opts, s->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0)
            return MATCH_FAILED;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            *out = cairn_realloc(*out, cap * sizeof(**out));
        }
        (*out)[n].start = ov[0];
        (*out)[n].end = ov[1];
        n++;
        at = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
    }
    return n;
}

/* Rebuild text[from..to) of the joined string with the matches that touch
 * it neutralised; `*cursor` is the first match that may touch it. */
static char *rebuild(const char *joined, size_t from, size_t to, const struct range *m, size_t nm,
                     size_t *cursor, enum cairn_injected_policy policy)
{
    struct text_buf out = {0};
    buf_add(&out, "", 0);
    size_t at = from;
    /* Parts are rebuilt in order: matches wholly before this one are done. */
    while (*cursor < nm && m[*cursor].end <= from)
        (*cursor)++;
    for (size_t i = *cursor; i < nm && at < to; i++) {
        if (m[i].end <= at || m[i].start >= to)
            continue;
        size_t s = m[i].start > at ? m[i].start : at;
        size_t e = m[i].end < to ? m[i].end : to;
        buf_add(&out, joined + at, s - at);
        neutralise(&out, joined + s, e - s, policy);
        at = e;
    }
    buf_add(&out, joined + at, to - at);
    return out.p;
}

/* The policy for pass `pass`: strip a few times, then escape. */
static enum cairn_injected_policy pass_policy(enum cairn_injected_policy policy, int pass)
{
    return pass < MAX_STRIP_PASSES ? policy : CAIRN_INJECTED_ESCAPE;
}

/*
 * Clean the strings texts[0..n) (malloc'd; replaced in place) as one joined
 * text, so that a tag split across them is seen whole; again until nothing
 * reads as a tag. @return how many tags were found.
 */
static size_t clean_strings(const struct cairn_spoof *s, char **texts, size_t n,
                            enum cairn_injected_policy policy)
{
    size_t found = 0;
    size_t *bounds = cairn_malloc((n + 1) * sizeof(*bounds));
    for (int pass = 0;; pass++) {
        size_t total = 0;
        for (size_t i = 0; i < n; i++) {
            bounds[i] = total;
            total += strlen(texts[i]);
        }
        bounds[n] = total;
        char *joined = cairn_malloc(total + 1);
        for (size_t i = 0; i < n; i++)
            memcpy(joined + bounds[i], texts[i], bounds[i + 1] - bounds[i]);
        joined[total] = '\0';
        struct range *m, all = {0, total};
        size_t nm = find_matches(s, joined, total, &m);
        enum cairn_injected_policy how = pass_policy(policy, pass);
        bool failed = nm == MATCH_FAILED;
        if (failed) {
            /* Fail closed: every bracket of the text is escaped. */
            free(m);
            m = &all;
            nm = 1;
            how = CAIRN_INJECTED_ESCAPE;
        }
        size_t cursor = 0;
        for (size_t i = 0; i < n && nm > 0; i++) {
            char *part = rebuild(joined, bounds[i], bounds[i + 1], m, nm, &cursor, how);
            free(texts[i]);
            texts[i] = part;
        }
        if (!failed)
            free(m);
        free(joined);
        found += nm;
        if (nm == 0 || failed)
            break;
    }
    free(bounds);
    return found;
}

char *cairn_spoof_clean_text(const struct cairn_spoof *s, const char *text,
                             enum cairn_injected_policy policy, size_t *found)
{
    char *copy = cairn_strdup(text);
    *found = clean_strings(s, &copy, 1, policy);
    if (*found > 0)
        return copy;
    free(copy);
    return NULL;
}

/* The text nodes of a message: its string content, or all of its "text"
 * parts, however many (a part left out would be a way around). */
static size_t text_nodes(cJSON *msg, cJSON ***nodes)
{
    cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    size_t n = cJSON_IsString(content) ? 1 : (size_t)cJSON_GetArraySize(content);
    *nodes = cairn_calloc(n ? n : 1, sizeof(**nodes));
    if (cJSON_IsString(content)) {
        (*nodes)[0] = content;
        return 1;
    }
    n = 0;
    cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(text))
            (*nodes)[n++] = text;
    }
    return n;
}

static size_t clean_message(const struct cairn_spoof *s, cJSON *msg,
                            enum cairn_injected_policy policy)
{
    cJSON **nodes;
    size_t n = text_nodes(msg, &nodes);
    if (n == 1) {
        /* The usual message, one string with nothing marker-like: look
         * before copying anything. */
        struct range *m;
        const char *text = nodes[0]->valuestring;
        size_t nm = find_matches(s, text, strlen(text), &m);
        free(m);
        if (nm == 0) {
            free(nodes);
            return 0;
        }
    }
    char **texts = cairn_calloc(n ? n : 1, sizeof(*texts));
    for (size_t i = 0; i < n; i++)
        texts[i] = cairn_strdup(nodes[i]->valuestring);
    size_t found = n > 0 ? clean_strings(s, texts, n, policy) : 0;
    for (size_t i = 0; i < n; i++) {
        if (found > 0)
            cJSON_SetValuestring(nodes[i], texts[i]);
        free(texts[i]);
    }
    free(texts);
    free(nodes);
    return found;
}

size_t cairn_spoof_clean(const struct cairn_spoof *s, cJSON *messages,
                         enum cairn_injected_policy policy)
{
    size_t found = 0;
    cJSON *msg;
    cJSON_ArrayForEach(msg, messages)
    {
        found += clean_message(s, msg, policy);
    }
    return found;
}
