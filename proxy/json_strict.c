/*
 * json_strict.c — strict JSON parsing on top of cJSON (see json_strict.h).
 *
 * A linear pre-scan of the raw text checks what cJSON cannot tell us after
 * the fact (UTF-8 validity, control characters and escaped NULs inside
 * strings, nesting depth — before cJSON recurses), cJSON builds the tree,
 * and a walk over the tree rejects duplicate keys.
 */
#include "json_strict.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned int cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
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
            size_t n = utf8_sequence(s + i, len - i);
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
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Reject an object holding the same key twice, anywhere in the tree.
 * Sorting keeps it O(n log n) for objects with very many keys. */
static int check_duplicates(const cJSON *node, char *err, size_t errlen)
{
    size_t n = 0;
    for (const cJSON *c = node->child; c != NULL; c = c->next)
        n++;
    if (cJSON_IsObject(node) && n > 1) {
        const char **keys = cairn_malloc(n * sizeof(*keys));
        size_t k = 0;
        for (const cJSON *c = node->child; c != NULL; c = c->next)
            keys[k++] = c->string;
        qsort(keys, n, sizeof(*keys), compare_keys);
        for (size_t i = 1; i < n; i++) {
            if (strcmp(keys[i - 1], keys[i]) == 0) {
                snprintf(err, errlen, "duplicate key \"%.64s\"", keys[i]);
                free(keys);
                return -1;
            }
        }
        free(keys);
    }
    for (const cJSON *c = node->child; c != NULL; c = c->next)
        if (check_duplicates(c, err, errlen) < 0)
            return -1;
    return 0;
}

static bool is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

cJSON *cairn_json_parse_strict(const char *buf, size_t len, int max_depth, char *err,
                               size_t errlen)
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
    if (check_duplicates(root, err, errlen) < 0) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}
