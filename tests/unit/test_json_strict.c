/*
 * test_json_strict.c — unit tests for include/json_strict.h.
 *
 * cairn_json_parse_strict: invalid JSON, trailing bytes, duplicate keys at
 * any depth (also when spelled with escapes or in another case, in small
 * and very large objects), escaped NUL, raw control characters, invalid
 * UTF-8, the depth limit at its exact boundary, the error messages (kind,
 * byte, path), and valid input it must keep accepting.
 * cairn_json_print: numbers leave exactly as they came, escaping is
 * cJSON's, the tree is left as it was.
 *
 * The parser and printer are cairn's own since they replaced "pre-scan,
 * cJSON_Parse, walk the tree" and "numbers as raw nodes, then
 * cJSON_PrintUnformatted". That pipeline is kept below as the reference
 * (ref_*), and a differential test runs both over the vectors here, every
 * JSON file of rules/, conf/ and tests/ (each line of the JSONL sets), the
 * chat_request fuzz corpus and some thousands of generated and mutated
 * inputs (fixed seed): same verdict, same tree bit for bit, same printed
 * text. The reference carries two fixes, marked, where the old pipeline
 * was more lenient than its own contract.
 */
#include "unit.h"

#include <limits.h>
#include <math.h>
#include <strings.h>

#include "json_strict.h"
#include "utf8.h"

#define DEPTH 64

/* ---------------------------------------------------------- reference */

static size_t ref_number_length(const unsigned char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return 0;
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start)
            return 0;
    }
    if (i < n && (s[i] == '.' || s[i] == '+' || s[i] == '-' || (s[i] >= '0' && s[i] <= '9') ||
                  s[i] == 'e' || s[i] == 'E' || s[i] == 'x' || s[i] == 'X'))
        return 0;
    return i;
}

static bool ref_is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool ref_is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int ref_prescan(const char *buf, size_t len, int max_depth, char *err, size_t errlen)
{
    const unsigned char *s = (const unsigned char *)buf;
    bool in_string = false;
    int depth = 0;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t n = cairn_utf8_sequence(s + i, len - i);
            if (n == 0) {
                snprintf(err, errlen, "invalid UTF-8 at byte %zu", i);
                return -1;
            }
            i += n;
            continue;
        }
        if (c == '\0') {
            snprintf(err, errlen, "NUL byte at byte %zu", i);
            return -1;
        }
        if (in_string) {
            if (c == '"') {
                in_string = false;
            } else if (c < 0x20) {
                snprintf(err, errlen, "control character in a string at byte %zu", i);
                return -1;
            } else if (c == '\\' && i + 1 < len) {
                if (s[i + 1] == 'u' && len - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0) {
                    snprintf(err, errlen, "escaped NUL (\\u0000) in a string at byte %zu", i);
                    return -1;
                }
                /* FIX 1: cJSON reads a non-hex digit of \uXXXX as the value
                 * 0, which cuts the string there like \u0000 would. */
                if (s[i + 1] == 'u' &&
                    (len - i < 6 || !ref_is_hex(s[i + 2]) || !ref_is_hex(s[i + 3]) ||
                     !ref_is_hex(s[i + 4]) || !ref_is_hex(s[i + 5]))) {
                    snprintf(err, errlen, "invalid JSON at byte %zu", i);
                    return -1;
                }
                i++;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c < 0x20 && !ref_is_space(c)) {
            /* FIX 2: cJSON skips every byte up to 0x20 as whitespace; RFC
             * 8259 has four. */
            snprintf(err, errlen, "invalid JSON at byte %zu", i);
            return -1;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t n = ref_number_length(s + i, len - i);
            if (n == 0) {
                snprintf(err, errlen, "invalid number at byte %zu", i);
                return -1;
            }
            i += n;
            continue;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth) {
                snprintf(err, errlen, "nesting deeper than %d", max_depth);
                return -1;
            }
        } else if (c == '}' || c == ']') {
            depth--;
        }
        i++;
    }
    return 0;
}

static int ref_compare_keys(const void *a, const void *b)
{
    return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *ref_small_duplicate(const cJSON *obj)
{
    for (const cJSON *a = obj->child; a != NULL; a = a->next)
        for (const cJSON *b = a->next; b != NULL; b = b->next)
            if (strcasecmp(a->string, b->string) == 0)
                return b->string;
    return NULL;
}

static const char *ref_sorted_duplicate(const cJSON *obj, size_t n)
{
    const char **keys = malloc(n * sizeof(*keys));
    size_t k = 0;
    for (const cJSON *c = obj->child; c != NULL; c = c->next)
        keys[k++] = c->string;
    qsort(keys, n, sizeof(*keys), ref_compare_keys);
    const char *dup = NULL;
    for (size_t i = 1; i < n && dup == NULL; i++)
        if (strcasecmp(keys[i - 1], keys[i]) == 0)
            dup = keys[i];
    free(keys);
    return dup;
}

static bool ref_find_path(const cJSON *node, const cJSON *target, char *path, size_t len)
{
    size_t used = strlen(path), i = 0;
    for (const cJSON *c = node->child; c != NULL; c = c->next, i++) {
        if (c->string != NULL)
            snprintf(path + used, len - used, "%s%s", used ? "." : "", c->string);
        else
            snprintf(path + used, len - used, "[%zu]", i);
        if (c == target || ref_find_path(c, target, path, len))
            return true;
        path[used] = '\0';
    }
    return false;
}

static const char *ref_check_tree(const cJSON *node, const cJSON **bad)
{
    if (cJSON_IsNumber(node)) {
        double d = node->valuedouble;
        *bad = node;
        /* FIX 3: an integer that reached 2^53 may have been rounded to
         * it (9007199254740993 reads as ...992): I-JSON's range is what a
         * double carries exactly. */
        if (!isfinite(d) || (fabs(d) >= 9007199254740992.0 && d == floor(d)))
            return "number out of range";
        return NULL;
    }
    size_t n = 0;
    for (const cJSON *c = node->child; c != NULL; c = c->next)
        n++;
    if (cJSON_IsObject(node) && n > 1) {
        const char *dup = n <= 16 ? ref_small_duplicate(node) : ref_sorted_duplicate(node, n);
        if (dup != NULL) {
            *bad = node;
            for (const cJSON *c = node->child; c != NULL; c = c->next)
                if (strcasecmp(c->string, dup) == 0)
                    *bad = c;
            return "duplicate key";
        }
    }
    for (const cJSON *c = node->child; c != NULL; c = c->next) {
        const char *why = ref_check_tree(c, bad);
        if (why != NULL)
            return why;
    }
    return NULL;
}

static cJSON *ref_parse(const char *buf, size_t len, int max_depth, char *err, size_t errlen)
{
    if (ref_prescan(buf, len, max_depth, err, errlen) < 0)
        return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (root == NULL) {
        size_t at = end != NULL && end >= buf ? (size_t)(end - buf) : 0;
        snprintf(err, errlen, "invalid JSON at byte %zu", at);
        return NULL;
    }
    for (const char *p = end; p < buf + len; p++) {
        if (!ref_is_space((unsigned char)*p)) {
            snprintf(err, errlen, "unexpected data after the JSON value at byte %zu",
                     (size_t)(p - buf));
            cJSON_Delete(root);
            return NULL;
        }
    }
    const cJSON *bad = NULL;
    const char *why = ref_check_tree(root, &bad);
    if (why != NULL) {
        char path[192] = "";
        if (bad == root || !ref_find_path(root, bad, path, sizeof(path)))
            snprintf(path, sizeof(path), "the top level");
        snprintf(err, errlen, "%s: %s", path, why);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static void ref_format_exact(double d, char *buf, size_t len)
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, len, "%.*g", digits, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

static void ref_numbers_as_raw(cJSON *node, bool undo)
{
    for (cJSON *c = node; c != NULL; c = c->next) {
        if (!undo && cJSON_IsNumber(c)) {
            char text[32];
            ref_format_exact(c->valuedouble, text, sizeof(text));
            c->valuestring = strdup(text);
            c->type = cJSON_Raw;
        } else if (undo && cJSON_IsRaw(c)) {
            free(c->valuestring);
            c->valuestring = NULL;
            c->type = cJSON_Number;
        }
        if (c->child != NULL)
            ref_numbers_as_raw(c->child, undo);
    }
}

/* The old printer (trees without raw nodes only: it turned them into
 * numbers). NULL when cJSON cannot print the tree. */
static char *ref_print(cJSON *root)
{
    ref_numbers_as_raw(root, false);
    char *out = cJSON_PrintUnformatted(root);
    ref_numbers_as_raw(root, true);
    return out;
}

/* ------------------------------------------------------- comparisons */

/* Same shape and the same bits in every field cJSON users read, and
 * cJSON's list invariant (the first child's prev is the last child). */
static bool same_tree(const cJSON *a, const cJSON *b)
{
    if (a->type != b->type || a->valueint != b->valueint ||
        memcmp(&a->valuedouble, &b->valuedouble, sizeof(double)) != 0)
        return false;
    if ((a->string == NULL) != (b->string == NULL) ||
        (a->string != NULL && strcmp(a->string, b->string) != 0))
        return false;
    if ((a->valuestring == NULL) != (b->valuestring == NULL) ||
        (a->valuestring != NULL && strcmp(a->valuestring, b->valuestring) != 0))
        return false;
    const cJSON *ca = a->child, *cb = b->child, *last_a = NULL, *last_b = NULL;
    for (; ca != NULL && cb != NULL; ca = ca->next, cb = cb->next) {
        if (!same_tree(ca, cb) || (last_a != NULL && ca->prev != last_a) ||
            (last_b != NULL && cb->prev != last_b))
            return false;
        last_a = ca;
        last_b = cb;
    }
    if (ca != NULL || cb != NULL)
        return false;
    return a->child == NULL || (a->child->prev == last_a && b->child->prev == last_b);
}

/* The kind of an error message: its text without byte offsets. */
static void error_kind(const char *err, char *kind, size_t len)
{
    const char *at = strstr(err, " at byte ");
    size_t n = at != NULL ? (size_t)(at - err) : strlen(err);
    snprintf(kind, len, "%.*s", (int)(n < len ? n : len - 1), err);
}

struct diff_stats {
    size_t inputs, accepted, rejected, same_message, same_kind;
};

static void show(const char *in, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < outlen; i++) {
        unsigned char c = (unsigned char)in[i];
        o += (size_t)(c >= 0x20 && c < 0x7F ? snprintf(out + o, outlen - o, "%c", c)
                                            : snprintf(out + o, outlen - o, "\\x%02x", c));
    }
    out[o] = '\0';
}

/* Parse in[0..len) with both parsers and compare everything. */
static void differ(const char *in, size_t len, int depth, struct diff_stats *st)
{
    char *copy = dup_exact(in, len);
    char err_new[256] = "", err_ref[256] = "", row[200];
    cJSON *got = cairn_json_parse_strict(copy, len, depth, err_new, sizeof err_new);
    cJSON *want = ref_parse(copy, len, depth, err_ref, sizeof err_ref);
    show(in, len < 60 ? len : 60, row, sizeof row);
    st->inputs++;
    if (!check((got != NULL) == (want != NULL), row, "new %s, reference %s",
               got ? "accepts" : err_new, want ? "accepts" : err_ref)) {
    } else if (got == NULL) {
        char k1[128], k2[128];
        error_kind(err_new, k1, sizeof k1);
        error_kind(err_ref, k2, sizeof k2);
        st->rejected++;
        st->same_message += strcmp(err_new, err_ref) == 0;
        st->same_kind += strcmp(k1, k2) == 0;
        check(err_new[0] != '\0', row, "no error message");
    } else {
        st->accepted++;
        check(same_tree(got, want), row, "trees differ");
        size_t n;
        char *text = cairn_json_print(got, &n);
        char *old = ref_print(want);
        check(old != NULL && strcmp(text, old) == 0 && n == strlen(text), row,
              "printed %s, reference %s", text, old ? old : "(null)");
        free(old);
        free(text);
    }
    cJSON_Delete(got);
    cJSON_Delete(want);
    free(copy);
}

/* ------------------------------------------------------------ vectors */

struct json_case {
    const char *name;
    const char *in;
    size_t len;
    const char *want; /* accepts: the root string's decoded value, or NULL;
                         rejects: the error message, or NULL */
};

#define J(name, in)                                                                                \
    {                                                                                              \
        name, LIT(in), NULL                                                                        \
    }
#define JS(name, in, want)                                                                         \
    {                                                                                              \
        name, LIT(in), want                                                                        \
    }

static const struct json_case json_rejects[] = {
    JS("empty input", "", "invalid JSON at byte 0"),
    JS("only whitespace", " \n", "invalid JSON at byte 2"),
    JS("unterminated object", "{", "invalid JSON at byte 1"),
    JS("missing value", "{\"a\":}", "invalid JSON at byte 5"),
    JS("trailing comma", "[1,]", "invalid JSON at byte 3"),
    JS("trailing comma in object", "{\"a\":1,}", "invalid JSON at byte 7"),
    JS("single quotes", "{'a':1}", "invalid JSON at byte 1"),
    JS("bare word", "nul", "invalid JSON at byte 0"),
    JS("not json", "not json", "invalid JSON at byte 0"),
    JS("word after literal", "[truex]", "invalid JSON at byte 5"),
    J("NaN", "NaN"),
    J("Infinity", "[Infinity]"),
    JS("two values", "{} {}", "unexpected data after the JSON value at byte 3"),
    JS("trailing garbage", "{}x", "unexpected data after the JSON value at byte 2"),
    JS("trailing NUL byte", "{}\0", "NUL byte at byte 2"),
    JS("missing colon", "{\"a\" 1}", "invalid JSON at byte 5"),
    JS("unterminated string", "[\"abc", "invalid JSON at byte 5"),
    JS("backslash at the end", "[\"abc\\", "invalid JSON at byte 6"),
    JS("duplicate key", "{\"a\":1,\"a\":2}", "a: duplicate key"),
    J("duplicate key, same value", "{\"a\":1,\"a\":1}"),
    JS("duplicate key nested", "{\"x\":{\"b\":1,\"b\":2}}", "x.b: duplicate key"),
    JS("duplicate key in array element", "[1,{\"b\":[],\"c\":1,\"b\":{}}]", "[1].b: duplicate key"),
    JS("duplicate key deep", "{\"x\":[{\"y\":{\"z\":1,\"z\":null}}]}", "x[0].y.z: duplicate key"),
    JS("duplicate key via escape", "{\"a\":1,\"\\u0061\":2}", "a: duplicate key"),
    JS("keys differing only in case", "{\"a\":1,\"A\":2}", "A: duplicate key"),
    JS("escaped NUL in value", "{\"a\":\"hi\\u0000<x>\"}",
       "escaped NUL (\\u0000) in a string at byte 8"),
    J("escaped NUL in key", "{\"a\\u0000b\":1}"),
    J("escaped NUL alone", "\"\\u0000\""),
    JS("escaped NUL after a high surrogate", "\"\\ud800\\u0000\"",
       "escaped NUL (\\u0000) in a string at byte 7"),
    JS("non-hex digit in \\u", "\"a\\uzzzzb\"", "invalid JSON at byte 2"),
    J("non-hex last digit in \\u", "\"a\\u00eZb\""),
    J("\\u cut by the end", "\"\\u00e"),
    JS("raw NUL in a string", "\"a\0b\"", "NUL byte at byte 2"),
    JS("raw control char", "\"a\x01z\"", "control character in a string at byte 2"),
    J("raw tab", "\"a\tz\""),
    J("raw newline", "\"a\nz\""),
    J("raw control char in key", "{\"a\x1f\":1}"),
    JS("control char as whitespace", "[1,\x01 2]", "invalid JSON at byte 3"),
    J("form feed as whitespace", "\x0c[]"),
    JS("overlong slash", "\"\xC0\xAF\"", "invalid UTF-8 at byte 1"),
    J("overlong 3-byte", "\"\xE0\x80\xAF\""),
    J("lone continuation", "\"a\x80z\""),
    J("truncated 2-byte", "\"\xC3\""),
    J("truncated 3-byte", "\"\xE2\x82\""),
    J("surrogate in UTF-8", "\"\xED\xA0\x80\""),
    J("above U+10FFFF", "\"\xF4\x90\x80\x80\""),
    J("byte 0xFF", "\"\xFF\""),
    J("invalid UTF-8 in key", "{\"\xC0\xAF\":1}"),
    JS("invalid UTF-8 outside strings", "[\xFF]", "invalid UTF-8 at byte 1"),
    JS("lone high surrogate escape", "\"\\ud800\"", "invalid JSON at byte 1"),
    J("high surrogate then a letter", "\"\\ud800\\u0041\""),
    J("lone low surrogate escape", "\"\\udc00\""),
    J("invalid escape", "\"\\x41\""),
    J("escaped non-ASCII", "\"\\\xC3\xA9\""),
    JS("leading zero", "[01]", "invalid number at byte 1"),
    J("plus sign", "[+1]"),
    JS("bare dot", "[1.]", "invalid number at byte 1"),
    J("leading dot", "[.5]"),
    JS("hex", "[0x10]", "invalid number at byte 1"),
    J("minus alone", "[-]"),
    J("minus space", "[- 1]"),
    J("exponent without digits", "[1e]"),
    J("exponent sign only", "[1e+]"),
    J("two dots", "[1.5.3]"),
    J("dot exponent", "[1.e5]"),
    JS("1e400", "{\"a\":[1e400]}", "a[0]: number out of range"),
    JS("-1e400", "-1e400", "the top level: number out of range"),
    JS("2^53 + 2", "[9007199254740994]", "[0]: number out of range"),
    JS("2^53 + 1, which a double reads as 2^53", "[9007199254740993]", "[0]: number out of range"),
    JS("2^53", "{\"n\":9007199254740992}", "n: number out of range"),
    JS("-2^53", "-9007199254740992", "the top level: number out of range"),
    JS("2^53 - 0.5, which a double reads as 2^53", "[9007199254740991.5]",
       "[0]: number out of range"),
    J("2^64", "18446744073709551616"),
    J("1e300 (an integer past 2^53)", "1e300"),
    J("BOM on a short input", "\xEF\xBB\xBF"
                              "1"),
};

static const struct json_case json_accepts[] = {
    J("empty object", "{}"),
    J("whitespace around", " \t\r\n{\"a\":[1,2,{}]} \n"),
    J("same key in sibling objects", "[{\"a\":1},{\"a\":2}]"),
    J("same key at two depths", "{\"a\":{\"a\":1}}"),
    J("keys differing past ASCII case", "{\"\xC3\xA9\":1,\"\xC3\x89\":2}"),
    J("scalars", "[true,false,null,0,-1.5e3,\"\"]"),
    J("numbers", "[0,-0,1,-1,0.5,-0.0,1E5,1e+5,1e-5,123456789012345,1234567890123456,"
                 "9007199254740991,-9007199254740991,9007199254740990.5,4.9e-324,1e-400,"
                 "2147483647,2147483648,-2147483648,-2147483649,1.5e-300,"
                 "0.1000000000000000055511151231257827021181583404541015625,"
                 "100000000000000000000000000000000000000000000000000000000000000000e-60]"),
    JS("escaped backslash then u0000", "\"\\\\u0000\"", "\\u0000"),
    JS("unicode escape", "\"\\u00e9\\u20AC\"", "\xC3\xA9\xE2\x82\xAC"),
    JS("surrogate pair", "\"\\ud83d\\ude00\"", "\xF0\x9F\x98\x80"),
    JS("highest pair", "\"\\uDBFF\\uDFFF\"", "\xF4\x8F\xBF\xBF"),
    JS("raw UTF-8", "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"",
       "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"),
    JS("U+10FFFF", "\"\xF4\x8F\xBF\xBF\"", "\xF4\x8F\xBF\xBF"),
    JS("DEL is not a control char in JSON", "\"a\x7Fz\"", "a\x7Fz"),
    JS("escaped controls", "\"\\n\\t\\u0001\\b\\f\\r\\/\\\"\"", "\n\t\x01\b\f\r/\""),
    JS("long plain string", "\"abcdefghijklmnopqrstuvwxyz0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ\"",
       "abcdefghijklmnopqrstuvwxyz0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    JS("BOM", "\xEF\xBB\xBF\"ab\"", "ab"),
    J("BOM then space", "\xEF\xBB\xBF 1 "),
};

static cJSON *strict_copy(const char *in, size_t len, int depth, char *err, size_t errlen)
{
    char *copy = dup_exact(in, len);
    err[0] = '\0';
    cJSON *j = cairn_json_parse_strict(copy, len, depth, err, errlen);
    free(copy);
    return j;
}

static void test_strict_rejects(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(json_rejects); i++) {
        const struct json_case *c = &json_rejects[i];
        char err[256];
        cJSON *j = strict_copy(c->in, c->len, DEPTH, err, sizeof err);
        check(j == NULL, c->name, "accepted");
        if (j == NULL)
            check(err[0] != '\0', c->name, "err is empty");
        if (j == NULL && c->want != NULL)
            check(strcmp(err, c->want) == 0, c->name, "err \"%s\", want \"%s\"", err, c->want);
        cJSON_Delete(j);
    }
    rows_end();
}

static void test_strict_accepts(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(json_accepts); i++) {
        const struct json_case *c = &json_accepts[i];
        char err[256];
        cJSON *j = strict_copy(c->in, c->len, DEPTH, err, sizeof err);
        if (check(j != NULL, c->name, "rejected: %s", err) && c->want)
            check(cJSON_IsString(j) && strcmp(j->valuestring, c->want) == 0, c->name,
                  "decoded to \"%s\"", cJSON_IsString(j) ? j->valuestring : "(not a string)");
        cJSON_Delete(j);
    }
    rows_end();
}

/* `depth` nested containers: arrays "[[]]" or objects {"k":{"k":{}}}. */
static char *nested(int depth, bool objects)
{
    struct sbuf b = {0};
    sb_repeat(&b, objects ? "{\"k\":" : "[", (size_t)depth - 1);
    sb_puts(&b, objects ? "{}" : "[]");
    sb_repeat(&b, objects ? "}" : "]", (size_t)depth - 1);
    return b.p;
}

static void test_strict_depth(void **state)
{
    (void)state;
    static const int limits[] = {1, 2, 5, DEPTH, 512};
    rows_begin();
    for (size_t i = 0; i < NELEM(limits); i++) {
        for (int objects = 0; objects < 2; objects++) {
            for (int extra = 0; extra < 2; extra++) {
                char row[64], err[256], want[64];
                char *in = nested(limits[i] + extra, objects);
                snprintf(row, sizeof row, "%s nested %d, limit %d", objects ? "objects" : "arrays",
                         limits[i] + extra, limits[i]);
                cJSON *j = strict_copy(in, strlen(in), limits[i], err, sizeof err);
                check((j != NULL) == (extra == 0), row, "%s", j ? "accepted" : err);
                snprintf(want, sizeof want, "nesting deeper than %d", limits[i]);
                if (j == NULL)
                    check(strcmp(err, want) == 0, row, "err \"%s\"", err);
                cJSON_Delete(j);
                free(in);
            }
        }
    }
    /* Far past both our limit and cJSON's own: refused, no stack blow-up. */
    char err[256], *deep = nested(100000, false);
    cJSON *j = strict_copy(deep, strlen(deep), DEPTH, err, sizeof err);
    check(j == NULL, "arrays nested 100000", "accepted");
    cJSON_Delete(j);
    j = strict_copy(deep, strlen(deep), INT_MAX, err, sizeof err);
    check(j == NULL && strcmp(err, "nesting deeper than 1000") == 0, "limit INT_MAX", "%s",
          j ? "accepted" : err);
    cJSON_Delete(j);
    free(deep);
    rows_end();
}

/* Objects with many keys have a hash index: a repeat (or a case variant)
 * anywhere among 200 keys is still found, and named. */
static void test_strict_duplicates_in_large_objects(void **state)
{
    (void)state;
    static const char *const last_keys[] = {"k7", "K7", "k199", "k0", "K16", "k17", "fresh"};
    rows_begin();
    for (size_t i = 0; i < NELEM(last_keys); i++) {
        for (int keys = 10; keys <= 2000; keys *= 10) {
            struct sbuf b = {0};
            char key[32], row[64];
            sb_puts(&b, "{");
            for (int k = 0; k < keys; k++) {
                snprintf(key, sizeof key, "\"k%d\":%d,", k, k);
                sb_puts(&b, key);
            }
            snprintf(key, sizeof key, "\"%s\":0}", last_keys[i]);
            sb_puts(&b, key);
            char err[256], want[64];
            int n = atoi(last_keys[i] + 1);
            bool want_ok = strcmp(last_keys[i], "fresh") == 0 || n >= keys;
            snprintf(row, sizeof row, "%s after %d keys", last_keys[i], keys);
            cJSON *j = strict_copy(b.p, strlen(b.p), DEPTH, err, sizeof err);
            check((j != NULL) == want_ok, row, want_ok ? "rejected: %s" : "accepted%s",
                  want_ok ? err : "");
            snprintf(want, sizeof want, "%s: duplicate key", last_keys[i]);
            if (!want_ok && j == NULL)
                check(strcmp(err, want) == 0, row, "err \"%s\"", err);
            cJSON_Delete(j);
            free(b.p);
        }
    }
    rows_end();
}

/* Numbers must leave exactly as they came: the printed text reads back as
 * the same double (cJSON's own printer rounds 9007199254740991 to
 * 9.00719925474099e+15), and the tree is unchanged afterwards. */
static void test_print_numbers_exactly(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } rows[] = {
        {"[9007199254740991]", "[9007199254740991]"},
        {"[0.30000000000000004]", "[0.30000000000000004]"},
        {"[0.1]", "[0.1]"},
        {"[-0.5,100,1e-7]", "[-0.5,100,1e-07]"},
        {"[-0,0,-0.0,1e2,-7]", "[-0,0,-0,100,-7]"},
        {"[999999999999999,1000000000000000,1234567890123456]",
         "[999999999999999,1e+15,1234567890123456]"},
        {"{\"a\":{\"b\":[2.2250738585072014e-308]}}", "{\"a\":{\"b\":[2.2250738585072014e-308]}}"},
        {"[\"9007199254740991\",true,null]", "[\"9007199254740991\",true,null]"},
        {"[\"\\u0001\\u001f\\b\\f\\n\\r\\t\\\"\\\\\\/\x7f\xC3\xA9\"]",
         "[\"\\u0001\\u001f\\b\\f\\n\\r\\t\\\"\\\\/\x7f\xC3\xA9\"]"},
    };
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        char err[256];
        cJSON *j = strict_copy(rows[i].in, strlen(rows[i].in), DEPTH, err, sizeof err);
        if (!check(j != NULL, rows[i].in, "rejected: %s", err))
            continue;
        cJSON *before = cJSON_Duplicate(j, true);
        size_t len = 0;
        char *out = cairn_json_print(j, &len);
        check(strcmp(out, rows[i].out) == 0, rows[i].in, "printed %s", out);
        check(len == strlen(out), rows[i].in, "len %zu", len);
        check(cJSON_Compare(before, j, true) && !cJSON_IsRaw(j->child), rows[i].in,
              "the tree changed");
        free(out);
        cJSON_Delete(before);
        cJSON_Delete(j);
    }
    rows_end();
}

/* Trees built in code (not parsed) print as the old printer printed them:
 * any double, non-finite ones included, every byte in strings, NULL
 * strings and keys. */
static void test_print_matches_reference(void **state)
{
    (void)state;
    uint64_t x = 88172645463325252u;
    rows_begin();
    cJSON *arr = cJSON_CreateArray();
    static const double special[] = {0.0,   -0.0,   1e15, -1e15,   1e15 - 1, 9007199254740993.0,
                                     1e300, 5e-324, 0.1,  1.0 / 3, INFINITY, -INFINITY,
                                     NAN};
    for (size_t i = 0; i < NELEM(special); i++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(special[i]));
    for (int i = 0; i < 3000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double d;
        if (i % 3 == 0) {
            memcpy(&d, &x, sizeof d); /* any bit pattern */
        } else if (i % 3 == 1) {
            d = (double)(int64_t)(x % 4000000000000000u) - 2e15; /* integers around 10^15 */
        } else {
            d = (double)(x % 1000000) / pow(10, (double)(x >> 60)); /* short decimals */
        }
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(d));
    }
    char all[256];
    for (int i = 1; i < 256; i++)
        all[i - 1] = (char)i;
    all[255] = '\0';
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddItemToObject(obj, all, cJSON_CreateString(all));
    cJSON *s = cJSON_CreateString("x");
    free(s->valuestring);
    s->valuestring = NULL;
    cJSON_AddItemToObject(obj, "null string", s);
    cJSON *k = cJSON_CreateTrue();
    cJSON_AddItemToArray(obj, k); /* a member without a key */
    cJSON_AddItemToArray(arr, obj);
    cJSON_AddItemToArray(arr, cJSON_CreateArray());
    cJSON_AddItemToArray(arr, cJSON_CreateObject());
    size_t n;
    char *got = cairn_json_print(arr, &n);
    char *want = ref_print(arr);
    check(want != NULL && strcmp(got, want) == 0 && n == strlen(got), "built tree",
          "prints differ");
    if (want != NULL && strcmp(got, want) != 0) {
        size_t i = 0;
        while (got[i] == want[i])
            i++;
        print_error("    first difference at %zu: %.40s | %.40s\n", i, got + i, want + i);
    }
    free(got);
    free(want);
    cJSON_Delete(arr);
    rows_end();
}

/* ------------------------------------------------------- differential */

static uint64_t rng = 0x9E3779B97F4A7C15u;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)((rng >> 11) % n);
}

static const char *const NUMBERS[] = {"0",
                                      "-0",
                                      "1",
                                      "-1",
                                      "7",
                                      "42",
                                      "0.5",
                                      "-0.0",
                                      "1e5",
                                      "1E+5",
                                      "1e-5",
                                      "2147483647",
                                      "2147483648",
                                      "-2147483648",
                                      "-2147483649",
                                      "999999999999999",
                                      "1000000000000000",
                                      "9007199254740991",
                                      "9007199254740992",
                                      "9007199254740993",
                                      "-9007199254740993",
                                      "18446744073709551616",
                                      "1e300",
                                      "1e400",
                                      "-1e400",
                                      "1e-400",
                                      "4.9e-324",
                                      "0.1",
                                      "0.30000000000000004",
                                      "3.141592653589793238462643383279",
                                      "123.456e-7",
                                      "1.5e15",
                                      "1.7976931348623157e308",
                                      "1.8e308",
                                      "01",
                                      "1.",
                                      ".5",
                                      "+1",
                                      "1e",
                                      "0x1",
                                      "--1",
                                      "1.5.3",
                                      "-",
                                      "00",
                                      "1e+",
                                      "-01"};

/* String pieces: the first CLEAN_PIECES are valid in any string. */
static const char *const PIECES[] = {
    "a", "hello world", "\\n", "\\\"", "\\\\", "\\/", "\\b\\f\\r\\t", "\\u00e9", "\\u20AC",
    "\\ud83d\\ude00", "\\uDBFF\\uDFFF", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\x7F", "/",
    "<x>", "abcdefghijklmnop",
    /* invalid */
    "\\ud800", "\\udc00", "\\u0000", "\\uzzzz", "\\u00g1", "\\x", "\xFF", "\xC0\xAF",
    "\xED\xA0\x80", "\x01", "\t", "\\ud800\\u0041"};
#define CLEAN_PIECES 18

static const char *const KEYS[] = {"a",        "A",        "b",       "model", "MODEL",
                                   "messages", "\\u0061",  "k1",      "K1",    "content",
                                   "",         "\xC3\xA9", "\xC3\x89"};

static void gen_space(struct sbuf *b)
{
    static const char *const spaces[] = {"", "", "", "", " ", "\n", "\r\n\t ", "\x0c", "\x01"};
    unsigned r = rnd(100);
    sb_puts(b, spaces[r < 96 ? r % 6 : 6 + r % 3]);
}

static void gen_string(struct sbuf *b, bool clean)
{
    sb_puts(b, "\"");
    for (unsigned i = rnd(5); i > 0; i--) {
        sb_puts(b, PIECES[rnd(clean ? CLEAN_PIECES : NELEM(PIECES))]);
    }
    sb_puts(b, "\"");
}

static void gen_value(struct sbuf *b, int depth, bool clean)
{
    unsigned r = rnd(depth > 5 ? 6 : 9);
    gen_space(b);
    switch (r) {
    case 0: sb_puts(b, rnd(3) == 0 ? "null" : rnd(2) ? "true" : "false"); break;
    case 1:
    case 2: {
        /* NUMBERS[19..24] and from [33] on are refused */
        unsigned n = clean ? (rnd(2) ? rnd(19) : 25 + rnd(8)) : rnd(NELEM(NUMBERS));
        sb_puts(b, NUMBERS[n]);
        break;
    }
    case 3: {
        char text[48];
        int len = rnd(2) ? snprintf(text, sizeof text, "%d", (int)rnd(2000000) - 1000000)
                         : snprintf(text, sizeof text, "%u.%ue%d", rnd(100000), rnd(1000000),
                                    (int)rnd(40) - 20);
        sb_putn(b, text, (size_t)len);
        break;
    }
    case 4:
    case 5: gen_string(b, clean); break;
    case 6:
    case 7: {
        sb_puts(b, "[");
        for (unsigned i = rnd(5); i > 0; i--) {
            gen_value(b, depth + 1, clean);
            if (i > 1)
                sb_puts(b, ",");
        }
        gen_space(b);
        sb_puts(b, "]");
        break;
    }
    default: {
        sb_puts(b, "{");
        unsigned n = rnd(6);
        for (unsigned i = 0; i < n; i++) {
            gen_space(b);
            sb_puts(b, "\"");
            if (clean) {
                char key[16];
                snprintf(key, sizeof key, "k%u", i);
                sb_puts(b, key);
            } else {
                sb_puts(b, KEYS[rnd(NELEM(KEYS))]);
            }
            sb_puts(b, "\"");
            gen_space(b);
            sb_puts(b, ":");
            gen_value(b, depth + 1, clean);
            if (i + 1 < n)
                sb_puts(b, ",");
        }
        gen_space(b);
        sb_puts(b, "}");
    }
    }
    gen_space(b);
}

static const char *const TOKENS[] = {"\"",
                                     "\\",
                                     "\\u0000",
                                     "\\ud800",
                                     "{",
                                     "}",
                                     "[",
                                     "]",
                                     ",",
                                     ":",
                                     "-",
                                     "0",
                                     "1e400",
                                     "01",
                                     "\x01",
                                     "\xC3",
                                     "\xFF",
                                     " ",
                                     "\"a\"",
                                     "\"A\"",
                                     "null",
                                     "\0",
                                     "9007199254740993",
                                     "\xEF\xBB\xBF",
                                     "\\u00",
                                     "e",
                                     "."};

/* Change in[0..*len) in place of out: a byte set, a token inserted, a
 * range deleted or doubled, or a cut. */
static void mutate(const char *in, size_t len, struct sbuf *out)
{
    out->len = 0;
    sb_putn(out, in, len);
    for (unsigned m = 1 + rnd(3); m > 0; m--) {
        size_t at = out->len ? rnd((uint32_t)out->len + 1) : 0;
        struct sbuf t = {0};
        switch (rnd(5)) {
        case 0:
            if (at < out->len)
                out->p[at] = (char)rnd(256);
            break;
        case 1: {
            const char *tok = TOKENS[rnd(NELEM(TOKENS))];
            sb_putn(&t, out->p, at);
            sb_putn(&t, tok, *tok ? strlen(tok) : 1);
            sb_putn(&t, out->p + at, out->len - at);
            break;
        }
        case 2: {
            size_t n = rnd(8);
            if (at + n > out->len)
                n = out->len - at;
            sb_putn(&t, out->p, at);
            sb_putn(&t, out->p + at + n, out->len - at - n);
            break;
        }
        case 3: {
            size_t n = rnd(12);
            if (at + n > out->len)
                n = out->len - at;
            sb_putn(&t, out->p, at + n);
            sb_putn(&t, out->p + at, out->len - at);
            break;
        }
        default: out->len = at;
        }
        if (t.p != NULL) {
            out->len = 0;
            sb_putn(out, t.p, t.len);
            free(t.p);
        }
    }
}

/* Seeds for mutation: inputs seen so far (the vectors and files). */
struct seeds {
    char **p;
    size_t *len, n, cap;
};

static void seed_add(struct seeds *s, const char *in, size_t len)
{
    if (len > 4096)
        return;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->p = realloc(s->p, s->cap * sizeof(*s->p));
        s->len = realloc(s->len, s->cap * sizeof(*s->len));
    }
    s->p[s->n] = dup_exact(in, len);
    s->len[s->n++] = len;
}

static void diff_file(const char *path, struct diff_stats *st, struct seeds *seeds)
{
    const char *ext = strrchr(path, '.');
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return;
    struct sbuf b = {0};
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sb_putn(&b, buf, n);
    fclose(f);
    if (b.p == NULL)
        return;
    bool lines = ext != NULL && strcmp(ext, ".jsonl") == 0;
    bool fuzz = strstr(path, "fuzz/") != NULL; /* a depth byte, then a body */
    if (lines) {
        for (size_t i = 0; i < b.len;) {
            const char *nl = memchr(b.p + i, '\n', b.len - i);
            size_t end = nl ? (size_t)(nl - b.p) : b.len;
            differ(b.p + i, end - i, DEPTH, st);
            seed_add(seeds, b.p + i, end - i);
            i = end + 1;
        }
    } else if (fuzz && b.len > 0) {
        differ(b.p + 1, b.len - 1, 8 + (unsigned char)b.p[0] % 64, st);
        seed_add(seeds, b.p + 1, b.len - 1);
        differ(b.p, b.len, DEPTH, st);
    } else {
        differ(b.p, b.len, DEPTH, st);
        seed_add(seeds, b.p, b.len);
    }
    free(b.p);
}

static void diff_tree(const char *dir, struct diff_stats *st, struct seeds *seeds, size_t *files)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "node_modules") == 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0)
            continue;
        const char *ext = strrchr(e->d_name, '.');
        bool in_fuzz = strstr(dir, "fuzz/corpus/chat_request") != NULL ||
                       strstr(dir, "fuzz/regressions/chat_request") != NULL;
        if (S_ISDIR(sb.st_mode)) {
            diff_tree(path, st, seeds, files);
        } else if (in_fuzz ||
                   (ext != NULL && (strcmp(ext, ".json") == 0 || strcmp(ext, ".jsonl") == 0))) {
            diff_file(path, st, seeds);
            (*files)++;
        }
    }
    closedir(d);
}

static void report(const char *what, const struct diff_stats *st)
{
    print_message("    %s: %zu inputs, %zu accepted, %zu rejected (same message %zu, same kind "
                  "%zu)\n",
                  what, st->inputs, st->accepted, st->rejected, st->same_message, st->same_kind);
}

static void test_differential(void **state)
{
    (void)state;
    struct diff_stats st = {0};
    struct seeds seeds = {0};
    rows_begin();
    for (size_t i = 0; i < NELEM(json_rejects); i++) {
        differ(json_rejects[i].in, json_rejects[i].len, DEPTH, &st);
        differ(json_rejects[i].in, json_rejects[i].len, 2, &st);
        seed_add(&seeds, json_rejects[i].in, json_rejects[i].len);
    }
    for (size_t i = 0; i < NELEM(json_accepts); i++) {
        differ(json_accepts[i].in, json_accepts[i].len, DEPTH, &st);
        seed_add(&seeds, json_accepts[i].in, json_accepts[i].len);
    }
    report("vectors", &st);

    struct diff_stats fs = {0};
    size_t files = 0;
    diff_tree("rules", &fs, &seeds, &files);
    diff_tree("conf", &fs, &seeds, &files);
    diff_tree("tests", &fs, &seeds, &files);
    check(files >= 30, "files", "only %zu JSON files found: run from the repository root", files);
    check(fs.accepted > 500, "files", "only %zu accepted", fs.accepted);
    report("files", &fs);

    struct diff_stats gs = {0};
    struct sbuf b = {0};
    for (int i = 0; i < 6000; i++) {
        b.len = 0;
        gen_value(&b, 0, i % 2 == 0);
        differ(b.p, b.len, i % 7 == 0 ? 3 : DEPTH, &gs);
        if (i % 4 == 0)
            seed_add(&seeds, b.p, b.len);
    }
    check(gs.accepted > 1000, "generated", "only %zu accepted", gs.accepted);
    report("generated", &gs);

    struct diff_stats ms = {0};
    for (int i = 0; i < 20000; i++) {
        size_t k = rnd((uint32_t)seeds.n);
        mutate(seeds.p[k], seeds.len[k], &b);
        differ(b.p, b.len, DEPTH, &ms);
    }
    report("mutated", &ms);
    free(b.p);
    for (size_t i = 0; i < seeds.n; i++)
        free(seeds.p[i]);
    free(seeds.p);
    free(seeds.len);
    rows_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strict_rejects),
        cmocka_unit_test(test_strict_accepts),
        cmocka_unit_test(test_strict_depth),
        cmocka_unit_test(test_strict_duplicates_in_large_objects),
        cmocka_unit_test(test_print_numbers_exactly),
        cmocka_unit_test(test_print_matches_reference),
        cmocka_unit_test(test_differential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
