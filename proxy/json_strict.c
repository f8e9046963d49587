/*
 * json_strict.c — strict JSON into and out of cJSON trees (see json_strict.h).
 *
 * Every request body and every upstream answer passes through here twice
 * (parsed, then printed to be forwarded), so both directions are written
 * for one pass and few allocations:
 *
 * - The parser is a recursive descent over the bytes that checks what the
 *   header promises as it goes (RFC 8259 grammar with its number grammar,
 *   UTF-8, raw control characters, escaped NULs, the depth limit, duplicate
 *   keys in any case, numbers a double cannot carry) and builds the tree
 *   cJSON_Parse would build, node for node: same types, strings, valueint,
 *   valuedouble (strtod's), children in order with the first child's prev
 *   pointing at the last. Nodes and strings come from malloc, so
 *   cJSON_Delete frees them (cairn never installs cJSON hooks).
 * - The printer writes the compact text into one growing buffer with
 *   cJSON_PrintUnformatted's escaping, and numbers in the shortest of
 *   %.15g, %.16g and %.17g that reads back as the same double.
 */
#include "json_strict.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "files.h"
#include "utf8.h"

/* Largest magnitude a double holds with every integer below it exact. */
#define EXACT_INTEGER_LIMIT 9007199254740992.0

/* Keys of one object compared one by one up to this many; past it, the
 * object gets a hash index so that a body of 100k keys stays linear. */
#define LINEAR_KEYS 16

/* One key of an object being parsed: its case-folded hash and its node. */
struct key_entry {
    uint32_t hash;
    cJSON *node;
};

struct parser {
    const unsigned char *start, *end;
    const unsigned char *p; /* the next byte to read */
    int max_depth, depth;
    cJSON *root; /* the tree so far: freed by the caller on failure */
    /* The keys of every object still open, innermost last (a stack: an
     * object's keys are [base, nkeys) while it is parsed). */
    struct key_entry *keys;
    size_t nkeys, capkeys;
    char *err;
    size_t errlen;
};

/* Byte classes inside a string: STR_PLAIN copies as it is. */
enum { STR_PLAIN, STR_QUOTE, STR_ESCAPE, STR_CONTROL, STR_HIGH };

static inline int string_class(unsigned char c)
{
    return c < 0x20    ? STR_CONTROL
           : c == '"'  ? STR_QUOTE
           : c == '\\' ? STR_ESCAPE
           : c >= 0x80 ? STR_HIGH
                       : STR_PLAIN;
}

static int fail_at(struct parser *p, const char *what, const unsigned char *at)
{
    snprintf(p->err, p->errlen, "%s at byte %zu", what, (size_t)(at - p->start));
    return -1;
}

/* A byte the grammar does not allow here (or the end of the input). A NUL
 * byte or invalid UTF-8 is named as such, as everywhere else. */
static int fail_syntax(struct parser *p, const unsigned char *at)
{
    if (at < p->end && *at == '\0')
        return fail_at(p, "NUL byte", at);
    if (at < p->end && *at >= 0x80 && cairn_utf8_sequence(at, (size_t)(p->end - at)) == 0)
        return fail_at(p, "invalid UTF-8", at);
    return fail_at(p, "invalid JSON", at);
}

/* Append to `path` the dotted path from `node` down to `target`
 * ("limits.body_bytes", "messages[2].content"). Only run when a check has
 * failed, so the walk costs nothing on valid input. */
static bool find_path(const cJSON *node, const cJSON *target, char *path, size_t len)
{
    size_t used = strlen(path), i = 0;
    for (const cJSON *c = node->child; c != NULL; c = c->next, i++) {
        if (c->string != NULL)
            snprintf(path + used, len - used, "%s%s", used ? "." : "", c->string);
        else
            snprintf(path + used, len - used, "[%zu]", i);
        if (c == target || find_path(c, target, path, len))
            return true;
        path[used] = '\0';
    }
    return false;
}

/* A value that is well-formed but refused: the message names where it is
 * in the tree, which holds every node parsed so far. */
static int fail_value(struct parser *p, const cJSON *bad, const char *why)
{
    char path[192] = "";
    if (bad == p->root || !find_path(p->root, bad, path, sizeof(path)))
        snprintf(path, sizeof(path), "the top level");
    snprintf(p->err, p->errlen, "%s: %s", path, why);
    return -1;
}

static cJSON *new_node(void)
{
    cJSON *node = cairn_malloc(sizeof(*node));
    memset(node, 0, sizeof(*node));
    return node;
}

/* RFC 8259 whitespace only: cJSON alone also skips every control byte. */
static void skip_space(struct parser *p)
{
    while (p->p < p->end && (*p->p == ' ' || *p->p == '\n' || *p->p == '\r' || *p->p == '\t'))
        p->p++;
}

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The code unit of the "\u" escape and its four hex digits at s (s + 6 <=
 * end checked by the caller), or -1 when it is not one. */
static long utf16_unit(const unsigned char *s)
{
    if (s[0] != '\\' || s[1] != 'u')
        return -1;
    long v = 0;
    for (int i = 2; i < 6; i++) {
        int d = hex_digit(s[i]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/*
 * Check the escape at s (a backslash) and return its length, with its
 * code point in *cp (a character of a short escape is its own code point).
 * "\u" escapes are read as cJSON reads them: a high surrogate must be
 * followed by a low one and the pair is one code point; a low surrogate
 * alone, like "\u0000" (which cJSON would store as the string's end), is
 * refused. Unlike cJSON, four hex digits are required: cJSON reads a bad
 * digit as the value 0, a second way to cut a string short.
 */
static size_t check_escape(struct parser *p, const unsigned char *s, unsigned *cp)
{
    if (s + 1 >= p->end) {
        fail_syntax(p, p->end);
        return 0;
    }
    switch (s[1]) {
    case '"':
    case '\\':
    case '/': *cp = s[1]; return 2;
    case 'b': *cp = '\b'; return 2;
    case 'f': *cp = '\f'; return 2;
    case 'n': *cp = '\n'; return 2;
    case 'r': *cp = '\r'; return 2;
    case 't': *cp = '\t'; return 2;
    case 'u': break;
    default: fail_at(p, "invalid JSON", s); return 0;
    }
    long first = p->end - s >= 6 ? utf16_unit(s) : -1;
    if (first == 0) {
        fail_at(p, "escaped NUL (\\u0000) in a string", s);
        return 0;
    }
    if (first < 0 || (first >= 0xDC00 && first <= 0xDFFF)) {
        fail_at(p, "invalid JSON", s);
        return 0;
    }
    if (first < 0xD800 || first > 0xDBFF) {
        *cp = (unsigned)first;
        return 6;
    }
    long second = p->end - s >= 12 ? utf16_unit(s + 6) : -1;
    if (second == 0) {
        fail_at(p, "escaped NUL (\\u0000) in a string", s + 6);
        return 0;
    }
    if (second < 0xDC00 || second > 0xDFFF) {
        fail_at(p, "invalid JSON", s);
        return 0;
    }
    *cp = 0x10000 + (((unsigned)first & 0x3FF) << 10 | ((unsigned)second & 0x3FF));
    return 12;
}

/* True when none of the 8 bytes at s needs a look: no quote, backslash,
 * control character or non-ASCII byte (each test is exact for "any"). */
static bool plain8(const unsigned char *s)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    uint64_t w;
    memcpy(&w, s, 8);
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    uint64_t below_space = (w - ones * 0x20) & ~w, quote = (q - ones) & ~q, slash = (b - ones) & ~b;
    return ((below_space | quote | slash | w) & highs) == 0;
}

/*
 * Parse the string whose opening quote is at p->p into a malloc'd,
 * NUL-terminated copy with its escapes decoded (*out). A first pass checks
 * the bytes and finds the closing quote; the copy is one memcpy unless
 * there were escapes.
 */
static int parse_string(struct parser *p, char **out)
{
    const unsigned char *begin = p->p + 1, *s = begin, *end = p->end;
    bool escaped = false;
    for (;;) {
        while (end - s >= 8 && plain8(s))
            s += 8;
        while (s < end && string_class(*s) == STR_PLAIN)
            s++;
        if (s >= end)
            return fail_syntax(p, end);
        unsigned cp;
        size_t n;
        switch (string_class(*s)) {
        case STR_QUOTE: goto closed;
        case STR_ESCAPE:
            n = check_escape(p, s, &cp);
            if (n == 0)
                return -1;
            escaped = true;
            s += n;
            break;
        case STR_CONTROL:
            return fail_at(p, *s == '\0' ? "NUL byte" : "control character in a string", s);
        default:
            n = cairn_utf8_sequence(s, (size_t)(end - s));
            if (n == 0)
                return fail_at(p, "invalid UTF-8", s);
            s += n;
        }
    }
closed:;
    size_t raw = (size_t)(s - begin);
    char *copy = cairn_malloc(raw + 1);
    if (!escaped) {
        memcpy(copy, begin, raw);
        copy[raw] = '\0';
    } else {
        char *o = copy;
        for (const unsigned char *q = begin; q < s;) {
            if (*q != '\\') {
                *o++ = (char)*q++;
                continue;
            }
            unsigned cp;
            q += check_escape(p, q, &cp); /* checked above: cannot fail */
            char utf8[4];
            size_t n = cairn_utf8_encode(cp, utf8);
            memcpy(o, utf8, n);
            o += n;
        }
        *o = '\0';
    }
    *out = copy;
    p->p = s + 1;
    return 0;
}

/* A double's integer part as cJSON keeps it: saturated to int's range. */
static int saturate_int(double d)
{
    if (d >= INT_MAX)
        return INT_MAX;
    if (d <= (double)INT_MIN)
        return INT_MIN;
    return (int)d;
}

/*
 * A number by RFC 8259 §6: cJSON alone accepts "01", "1." and "-" forms
 * that other parsers reject or read differently, so the text must match
 * the grammar and be followed by a delimiter, never by more number-like
 * text ("1.5.3", "0x10"). Integers of up to 15 digits are exact in a
 * double and computed directly; anything else goes through strtod, as
 * cJSON's values do, so that every bit is the same.
 */
static int parse_number(struct parser *p, cJSON *item)
{
    const unsigned char *s = p->p, *q = s, *end = p->end;
    bool negative = false, integer = true;
    if (*q == '-') {
        negative = true;
        q++;
    }
    const unsigned char *digits = q;
    if (q < end && *q == '0')
        q++;
    else if (q < end && *q >= '1' && *q <= '9')
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    else
        return fail_at(p, "invalid number", s);
    size_t int_digits = (size_t)(q - digits);
    if (q < end && *q == '.') {
        integer = false;
        const unsigned char *frac = ++q;
        while (q < end && *q >= '0' && *q <= '9')
            q++;
        if (q == frac)
            return fail_at(p, "invalid number", s);
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        integer = false;
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        const unsigned char *exp = q;
        while (q < end && *q >= '0' && *q <= '9')
            q++;
        if (q == exp)
            return fail_at(p, "invalid number", s);
    }
    if (q < end && (*q == '.' || *q == '+' || *q == '-' || (*q >= '0' && *q <= '9') || *q == 'e' ||
                    *q == 'E' || *q == 'x' || *q == 'X'))
        return fail_at(p, "invalid number", s);

    double d;
    if (integer && int_digits <= 15) {
        uint64_t v = 0;
        for (const unsigned char *c = digits; c < q; c++)
            v = v * 10 + (uint64_t)(*c - '0');
        d = negative ? -(double)v : (double)v; /* "-0" is -0.0, as strtod reads it */
    } else {
        size_t n = (size_t)(q - s);
        char small[64], *text = n < sizeof(small) ? small : cairn_malloc(n + 1);
        memcpy(text, s, n);
        text[n] = '\0';
        d = strtod(text, NULL); /* cairn never sets a locale: '.' is the decimal point */
        if (text != small)
            free(text);
    }
    item->type = cJSON_Number;
    item->valuedouble = d;
    item->valueint = saturate_int(d);
    p->p = q;
    /* 1e400 would print as null, 2^64 would lose digits, and an integer
     * at 2^53 may be one past it rounded (I-JSON's range ends below). */
    if (!isfinite(d) || (fabs(d) >= EXACT_INTEGER_LIMIT && d == floor(d)))
        return fail_value(p, item, "number out of range");
    return 0;
}

static int parse_value(struct parser *p, cJSON *item);

/* After a member of an array or object: a comma, which leaves the reader
 * at the next member (1), or `closer`, read (0); anything else is refused
 * (-1). */
static int next_member(struct parser *p, char closer)
{
    skip_space(p);
    if (p->p < p->end && *p->p == ',') {
        p->p++;
        skip_space(p);
        return 1;
    }
    if (p->p < p->end && *p->p == (unsigned char)closer) {
        p->p++;
        return 0;
    }
    return fail_syntax(p, p->p);
}

static int enter(struct parser *p)
{
    if (++p->depth > p->max_depth) {
        snprintf(p->err, p->errlen, "nesting deeper than %d", p->max_depth);
        return -1;
    }
    return 0;
}

/* Append `child` to `parent`'s children, `*last` being the last so far. */
static void append(cJSON *parent, cJSON **last, cJSON *child)
{
    if (*last == NULL) {
        parent->child = child;
    } else {
        (*last)->next = child;
        child->prev = *last;
    }
    *last = child;
}

static int parse_array(struct parser *p, cJSON *item)
{
    if (enter(p) < 0)
        return -1;
    item->type = cJSON_Array;
    p->p++;
    skip_space(p);
    cJSON *last = NULL;
    if (p->p < p->end && *p->p == ']') {
        p->p++;
        p->depth--;
        return 0;
    }
    for (;;) {
        cJSON *child = new_node();
        append(item, &last, child);
        if (parse_value(p, child) < 0)
            return -1;
        int more = next_member(p, ']');
        if (more < 0)
            return -1;
        if (more == 0)
            break;
    }
    item->child->prev = last; /* cJSON's list: the head's prev is the tail */
    p->depth--;
    return 0;
}

/* FNV-1a over the key with ASCII letters folded: keys that strcasecmp
 * calls equal hash the same. */
static uint32_t key_hash(const char *key)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *k = (const unsigned char *)key; *k; k++) {
        unsigned c = *k >= 'A' && *k <= 'Z' ? *k | 0x20u : *k;
        h = (h ^ c) * 16777619u;
    }
    return h;
}

/* An open-addressing index over an object's key entries [base, nkeys),
 * built once the object passes LINEAR_KEYS keys: slot = entry - base + 1. */
struct key_index {
    size_t *slot;
    size_t mask;
};

static void index_insert(struct key_index *ix, const struct key_entry *keys, size_t entry)
{
    size_t i = keys[entry].hash & ix->mask;
    while (ix->slot[i] != 0)
        i = (i + 1) & ix->mask;
    ix->slot[i] = entry + 1;
}

static void index_build(struct key_index *ix, const struct key_entry *keys, size_t base, size_t n)
{
    size_t cap = 64;
    while (cap < 4 * n)
        cap *= 2;
    free(ix->slot);
    ix->slot = cairn_calloc(cap, sizeof(*ix->slot));
    ix->mask = cap - 1;
    for (size_t e = 0; e < n; e++)
        index_insert(ix, keys + base, e);
}

/*
 * Record `node`'s key in the open object whose keys start at `base`, or
 * refuse it when an earlier key of the same object is the same in any
 * case: cJSON reads the first of two equal keys, many upstreams the last,
 * and a case-insensitive decoder picks one of two spellings.
 */
static int add_key(struct parser *p, size_t base, struct key_index *ix, cJSON *node)
{
    uint32_t h = key_hash(node->string);
    size_t n = p->nkeys - base;
    const struct key_entry *mine = n > 0 ? p->keys + base : NULL; /* no keys yet: no array */
    if (ix->slot != NULL) {
        for (size_t i = h & ix->mask; ix->slot[i] != 0; i = (i + 1) & ix->mask) {
            const struct key_entry *e = &mine[ix->slot[i] - 1];
            if (e->hash == h && strcasecmp(e->node->string, node->string) == 0)
                return fail_value(p, node, "duplicate key");
        }
    } else {
        for (size_t i = 0; i < n; i++)
            if (mine[i].hash == h && strcasecmp(mine[i].node->string, node->string) == 0)
                return fail_value(p, node, "duplicate key");
    }
    if (p->nkeys == p->capkeys) {
        p->capkeys = p->capkeys ? 2 * p->capkeys : 32;
        p->keys = cairn_realloc(p->keys, p->capkeys * sizeof(*p->keys));
    }
    p->keys[p->nkeys++] = (struct key_entry){h, node};
    n++;
    if (n == LINEAR_KEYS + 1 || (ix->slot != NULL && 2 * n > ix->mask))
        index_build(ix, p->keys, base, n);
    else if (ix->slot != NULL)
        index_insert(ix, p->keys + base, n - 1);
    return 0;
}

static int parse_object_members(struct parser *p, cJSON *item, struct key_index *ix)
{
    size_t base = p->nkeys;
    cJSON *last = NULL;
    for (;;) {
        if (p->p >= p->end || *p->p != '"')
            return fail_syntax(p, p->p);
        cJSON *child = new_node();
        append(item, &last, child);
        if (parse_string(p, &child->string) < 0 || add_key(p, base, ix, child) < 0)
            return -1;
        skip_space(p);
        if (p->p >= p->end || *p->p != ':')
            return fail_syntax(p, p->p);
        p->p++;
        skip_space(p);
        if (parse_value(p, child) < 0)
            return -1;
        int more = next_member(p, '}');
        if (more < 0)
            return -1;
        if (more == 0)
            break;
    }
    item->child->prev = last;
    p->nkeys = base;
    return 0;
}

static int parse_object(struct parser *p, cJSON *item)
{
    if (enter(p) < 0)
        return -1;
    item->type = cJSON_Object;
    p->p++;
    skip_space(p);
    if (p->p < p->end && *p->p == '}') {
        p->p++;
        p->depth--;
        return 0;
    }
    struct key_index ix = {NULL, 0};
    int rc = parse_object_members(p, item, &ix);
    free(ix.slot);
    p->depth--;
    return rc;
}

static int parse_literal(struct parser *p, cJSON *item, const char *word, size_t n, int type)
{
    if ((size_t)(p->end - p->p) < n || memcmp(p->p, word, n) != 0)
        return fail_syntax(p, p->p);
    item->type = type;
    item->valueint = type == cJSON_True; /* as cJSON sets it */
    p->p += n;
    return 0;
}

/* One value at p->p (no whitespace before it). */
static int parse_value(struct parser *p, cJSON *item)
{
    if (p->p >= p->end)
        return fail_syntax(p, p->p);
    switch (*p->p) {
    case '"': item->type = cJSON_String; return parse_string(p, &item->valuestring);
    case '{': return parse_object(p, item);
    case '[': return parse_array(p, item);
    case 't': return parse_literal(p, item, "true", 4, cJSON_True);
    case 'f': return parse_literal(p, item, "false", 5, cJSON_False);
    case 'n': return parse_literal(p, item, "null", 4, cJSON_NULL);
    default:
        if (*p->p == '-' || (*p->p >= '0' && *p->p <= '9'))
            return parse_number(p, item);
        return fail_syntax(p, p->p);
    }
}

cJSON *cairn_json_parse_strict(const char *buf, size_t len, int max_depth, char *err, size_t errlen)
{
    struct parser p = {
        .start = (const unsigned char *)buf,
        .end = (const unsigned char *)buf + len,
        .p = (const unsigned char *)buf,
        /* cJSON's own limit bounds the recursion whatever the caller asks. */
        .max_depth = max_depth < CJSON_NESTING_LIMIT ? max_depth : CJSON_NESTING_LIMIT,
        .err = err,
        .errlen = errlen,
    };
    /* A UTF-8 byte order mark is skipped as cJSON skips it (RFC 8259 §8.1
     * lets a parser ignore it), only in inputs of 5 bytes or more. */
    if (len >= 5 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        p.p += 3;
    skip_space(&p);
    p.root = new_node();
    int rc = parse_value(&p, p.root);
    if (rc == 0) {
        skip_space(&p);
        if (p.p < p.end) {
            if (*p.p == '\0')
                fail_at(&p, "NUL byte", p.p);
            else
                fail_at(&p, "unexpected data after the JSON value", p.p);
            rc = -1;
        }
    }
    free(p.keys);
    if (rc < 0) {
        cJSON_Delete(p.root);
        return NULL;
    }
    return p.root;
}

/* ------------------------------------------------------------ printing */

/* The text being printed: one buffer, doubled when full. */
struct out {
    char *p;
    size_t len, cap;
};

/* Room for n more bytes and the final NUL: the rare, out-of-line part. */
__attribute__((noinline)) static void out_grow(struct out *o, size_t n)
{
    while (o->len + n + 1 > o->cap)
        o->cap *= 2;
    o->p = cairn_realloc(o->p, o->cap);
}

static inline void out_put(struct out *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap)
        out_grow(o, n);
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static inline void out_byte(struct out *o, char c)
{
    if (o->len + 2 > o->cap)
        out_grow(o, 1);
    o->p[o->len++] = c;
}

/* Bytes a string cannot hold as they are (cJSON's print_string_ptr): the
 * quote, the backslash and the control characters; 0 ends the string. */
static inline bool must_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

/* Escaped as cJSON_PrintUnformatted does: two-character escapes for " \ b
 * f n r t, \u00xx (lowercase) for the other control characters, and
 * everything else, '/' and non-ASCII UTF-8 included, as it is. NULL is "". */
static void print_string(struct out *o, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    out_byte(o, '"');
    const unsigned char *s = (const unsigned char *)(text != NULL ? text : "");
    for (;;) {
        const unsigned char *run = s;
        while (!must_escape(*s))
            s++;
        out_put(o, (const char *)run, (size_t)(s - run));
        if (*s == '\0')
            break;
        char e[6] = {'\\', (char)*s};
        size_t n = 2;
        switch (*s) {
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        case '"':
        case '\\': break;
        default:
            memcpy(e + 1, "u00", 3);
            e[4] = hex[*s >> 4];
            e[5] = hex[*s & 0xF];
            n = 6;
        }
        out_put(o, e, n);
        s++;
    }
    out_byte(o, '"');
}

/* Shortest "%.Ng" text that reads back as exactly `d`. cJSON prints with
 * 15 digits and keeps them when its own tolerant comparison calls the
 * result equal, so 9007199254740991 would go out as 9.00719925474099e+15.
 * An integer below 10^15 prints in full with 15 digits: written directly. */
static void print_number(struct out *o, double d)
{
    char text[32];
    int n = 0;
    if (d > -1e15 && d < 1e15 && d == (double)(int64_t)d && !(d == 0 && signbit(d))) {
        int64_t v = (int64_t)d;
        uint64_t u = v < 0 ? (uint64_t)-v : (uint64_t)v;
        char digits[20];
        int k = 0;
        do {
            digits[k++] = (char)('0' + u % 10);
            u /= 10;
        } while (u != 0);
        if (v < 0)
            text[n++] = '-';
        while (k > 0)
            text[n++] = digits[--k];
    } else {
        for (int digits = 15; digits <= 17; digits++) {
            n = snprintf(text, sizeof(text), "%.*g", digits, d);
            if (strtod(text, NULL) == d)
                break;
        }
    }
    out_put(o, text, (size_t)n);
}

/* False for a node cJSON cannot print either (an invalid type, a raw node
 * without text). */
static bool print_value(struct out *o, const cJSON *item)
{
    switch (item->type & 0xFF) {
    case cJSON_NULL: out_put(o, "null", 4); return true;
    case cJSON_False: out_put(o, "false", 5); return true;
    case cJSON_True: out_put(o, "true", 4); return true;
    case cJSON_Number: print_number(o, item->valuedouble); return true;
    case cJSON_String: print_string(o, item->valuestring); return true;
    case cJSON_Raw: /* not allowed in the tree; printed as it is, like cJSON does */
        if (item->valuestring == NULL)
            return false;
        out_put(o, item->valuestring, strlen(item->valuestring));
        return true;
    case cJSON_Array:
        out_byte(o, '[');
        for (const cJSON *c = item->child; c != NULL; c = c->next) {
            if (!print_value(o, c))
                return false;
            if (c->next != NULL)
                out_byte(o, ',');
        }
        out_byte(o, ']');
        return true;
    case cJSON_Object:
        out_byte(o, '{');
        for (const cJSON *c = item->child; c != NULL; c = c->next) {
            print_string(o, c->string);
            out_byte(o, ':');
            if (!print_value(o, c))
                return false;
            if (c->next != NULL)
                out_byte(o, ',');
        }
        out_byte(o, '}');
        return true;
    default: return false;
    }
}

char *cairn_json_print(cJSON *root, size_t *len)
{
    struct out o = {cairn_malloc(256), 0, 256};
    if (root == NULL || !print_value(&o, root)) {
        fprintf(stderr, "cairn: cannot print a JSON tree with an invalid node\n");
        abort();
    }
    o.p[o.len] = '\0';
    *len = o.len;
    return o.p;
}

cJSON *cairn_json_load_file(const char *path, size_t max_bytes, int max_depth, char *err,
                            size_t errlen)
{
    size_t len;
    char *buf = cairn_read_file(path, max_bytes, &len, err, errlen);
    if (buf == NULL)
        return NULL;
    char why[256];
    cJSON *root = cairn_json_parse_strict(buf, len, max_depth, why, sizeof(why));
    if (root == NULL)
        snprintf(err, errlen, "%s: %s", path, why);
    free(buf);
    return root;
}
