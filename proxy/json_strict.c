/*
 * json_strict.c — strict JSON parsing on top of cJSON (see json_strict.h).
 *
 * A linear pre-scan of the raw text checks what cJSON cannot tell us after
 * the fact or is lenient about (UTF-8 validity, control characters and
 * escaped NULs inside strings, the number grammar, nesting depth — before
 * cJSON recurses), cJSON builds the tree, and a walk over the tree rejects
 * duplicate keys and numbers a double cannot carry.
 */
#include "json_strict.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "files.h"
#include "utf8.h"

/* Length of the JSON number at s[0..n) (RFC 8259 §6), or 0 if it is not
 * one. cJSON alone accepts "01", "1." and "-" forms that other parsers
 * reject or read differently. */
static size_t number_length(const unsigned char *s, size_t n)
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
    /* A number is followed by a delimiter, never by more number-like text. */
    if (i < n && (s[i] == '.' || s[i] == '+' || s[i] == '-' || (s[i] >= '0' && s[i] <= '9') ||
                  s[i] == 'e' || s[i] == 'E' || s[i] == 'x' || s[i] == 'X'))
        return 0;
    return i;
}

static int prescan(const char *buf, size_t len, int max_depth, char *err, size_t errlen)
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
                i++; /* skip the escaped character: \" does not end the string */
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t n = number_length(s + i, len - i);
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

static int compare_keys(const void *a, const void *b)
{
    return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

/* Objects up to this many keys are checked pairwise, without allocating. */
#define SMALL_OBJECT 16

/* A key of `obj` that another key repeats (in any case), or NULL. */
static const char *small_duplicate(const cJSON *obj)
{
    for (const cJSON *a = obj->child; a != NULL; a = a->next)
        for (const cJSON *b = a->next; b != NULL; b = b->next)
            if (strcasecmp(a->string, b->string) == 0)
                return b->string;
    return NULL;
}

static const char *sorted_duplicate(const cJSON *obj, size_t n)
{
    const char **keys = cairn_malloc(n * sizeof(*keys));
    size_t k = 0;
    for (const cJSON *c = obj->child; c != NULL; c = c->next)
        keys[k++] = c->string;
    qsort(keys, n, sizeof(*keys), compare_keys);
    const char *dup = NULL;
    for (size_t i = 1; i < n && dup == NULL; i++)
        if (strcasecmp(keys[i - 1], keys[i]) == 0)
            dup = keys[i];
    free(keys);
    return dup;
}

/* Largest magnitude a double holds with every integer below it exact. */
#define EXACT_INTEGER_LIMIT 9007199254740992.0

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

/*
 * Walk the tree and reject what would be forwarded differently from what
 * was validated: an object holding the same key twice, or two keys that
 * differ only in case (a case-insensitive decoder upstream would pick one
 * of them); numbers that do not survive the trip through a double (1e400
 * prints as null, 2^64 loses digits). Sorting keeps objects with very many
 * keys O(n log n). On failure, `*bad` is the offending value.
 */
static const char *check_tree(const cJSON *node, const cJSON **bad)
{
    if (cJSON_IsNumber(node)) {
        double d = node->valuedouble;
        *bad = node;
        if (!isfinite(d) || (fabs(d) > EXACT_INTEGER_LIMIT && d == floor(d)))
            return "number out of range";
        return NULL;
    }
    size_t n = 0;
    for (const cJSON *c = node->child; c != NULL; c = c->next)
        n++;
    if (cJSON_IsObject(node) && n > 1) {
        const char *dup = n <= SMALL_OBJECT ? small_duplicate(node) : sorted_duplicate(node, n);
        if (dup != NULL) {
            *bad = node;
            for (const cJSON *c = node->child; c != NULL; c = c->next)
                if (strcasecmp(c->string, dup) == 0)
                    *bad = c; /* the second spelling: the path names the key */
            return "duplicate key";
        }
    }
    for (const cJSON *c = node->child; c != NULL; c = c->next) {
        const char *why = check_tree(c, bad);
        if (why != NULL)
            return why;
    }
    return NULL;
}

static bool is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

cJSON *cairn_json_parse_strict(const char *buf, size_t len, int max_depth, char *err, size_t errlen)
{
    if (prescan(buf, len, max_depth, err, errlen) < 0)
        return NULL;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (root == NULL) {
        size_t at = end != NULL && end >= buf ? (size_t)(end - buf) : 0;
        snprintf(err, errlen, "invalid JSON at byte %zu", at);
        return NULL;
    }
    for (const char *p = end; p < buf + len; p++) {
        if (!is_json_space(*p)) {
            snprintf(err, errlen, "unexpected data after the JSON value at byte %zu",
                     (size_t)(p - buf));
            cJSON_Delete(root);
            return NULL;
        }
    }
    const cJSON *bad = NULL;
    const char *why = check_tree(root, &bad);
    if (why != NULL) {
        char path[192] = "";
        if (bad == root || !find_path(root, bad, path, sizeof(path)))
            snprintf(path, sizeof(path), "the top level");
        snprintf(err, errlen, "%s: %s", path, why);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Shortest "%.Ng" text that reads back as exactly `d`. cJSON prints with
 * 15 digits and keeps them when its own tolerant comparison calls the
 * result equal, so 9007199254740991 would go out as 9.00719925474099e+15. */
static void format_exact(double d, char *buf, size_t len)
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, len, "%.*g", digits, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

/* Turn every number node into a raw node holding its exact text (undo ==
 * false), or back into the number it was (undo == true). */
static void numbers_as_raw(cJSON *node, bool undo)
{
    for (cJSON *c = node; c != NULL; c = c->next) {
        if (!undo && cJSON_IsNumber(c)) {
            char text[32];
            format_exact(c->valuedouble, text, sizeof(text));
            c->valuestring = cairn_strdup(text);
            c->type = cJSON_Raw;
        } else if (undo && cJSON_IsRaw(c)) {
            free(c->valuestring);
            c->valuestring = NULL;
            c->type = cJSON_Number;
        }
        if (c->child != NULL)
            numbers_as_raw(c->child, undo);
    }
}

char *cairn_json_print(cJSON *root, size_t *len)
{
    numbers_as_raw(root, false);
    char *out = cJSON_PrintUnformatted(root);
    numbers_as_raw(root, true);
    if (out == NULL) {
        fprintf(stderr, "cairn: out of memory printing JSON\n");
        abort();
    }
    *len = strlen(out);
    return out;
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
