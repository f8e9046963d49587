/*
 * jsonl.c — the JSON Lines loop of the offline commands (see jsonl.h).
 *
 * Lines are read a byte at a time into one buffer that grows up to the
 * limit and is reused: a sample file is read once, front to back, and the
 * per-line work (parsing, annotating, validating) dwarfs getc().
 */
#include "jsonl.h"

#include <stdbool.h>
#include <stdlib.h>

#include "alloc.h"
#include "json_strict.h"

/* Read one line (without its '\n') into *buf. @return its length, or -1 at
 * the end of input; *too_long when the line passed the limit (its bytes
 * past the limit are dropped). */
static long read_line(FILE *in, char **buf, size_t *cap, bool *too_long)
{
    size_t len = 0;
    int c;
    bool any = false;
    *too_long = false;
    while ((c = getc(in)) != EOF) {
        any = true;
        if (c == '\n')
            break;
        if (len >= CAIRN_JSONL_MAX_LINE) {
            *too_long = true;
            continue;
        }
        if (len + 1 >= *cap) {
            *cap = *cap ? *cap * 2 : 4096;
            *buf = cairn_realloc(*buf, *cap);
        }
        (*buf)[len++] = (char)c;
    }
    if (!any)
        return -1;
    if (*cap == 0) {
        *cap = 64;
        *buf = cairn_realloc(*buf, *cap);
    }
    (*buf)[len] = '\0';
    if (len > 0 && (*buf)[len - 1] == '\r')
        (*buf)[--len] = '\0';
    return (long)len;
}

static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return false;
    return true;
}

/* The output object for one input line. */
static cJSON *map_line(const char *line, size_t len, bool too_long, cairn_jsonl_line_cb on_line,
                       void *ctx)
{
    cJSON *out = cJSON_CreateObject();
    char err[256];
    if (too_long) {
        snprintf(err, sizeof(err), "line longer than %u bytes", CAIRN_JSONL_MAX_LINE);
        cJSON_AddStringToObject(out, "error", err);
        return out;
    }
    cJSON *in = cairn_json_parse_strict(line, len, CAIRN_JSONL_MAX_DEPTH, err, sizeof(err));
    if (in == NULL) {
        cJSON_AddStringToObject(out, "error", err);
        return out;
    }
    const cJSON *id = cJSON_IsObject(in) ? cJSON_GetObjectItemCaseSensitive(in, "id") : NULL;
    if (id != NULL)
        cJSON_AddItemToObject(out, "id", cJSON_Duplicate(id, true));
    on_line(ctx, in, out);
    cJSON_Delete(in);
    return out;
}

int cairn_jsonl_map(FILE *in, FILE *out, cairn_jsonl_line_cb on_line, void *ctx)
{
    char *buf = NULL;
    size_t cap = 0;
    bool too_long;
    long len;
    int rc = 0;
    while ((len = read_line(in, &buf, &cap, &too_long)) >= 0) {
        if (!too_long && blank(buf, (size_t)len))
            continue;
        cJSON *obj = map_line(buf, (size_t)len, too_long, on_line, ctx);
        size_t n;
        char *text = cairn_json_print(obj, &n);
        cJSON_Delete(obj);
        if (fwrite(text, 1, n, out) != n || fputc('\n', out) == EOF)
            rc = -1;
        free(text);
        if (rc < 0)
            break;
    }
    if (ferror(in))
        rc = -1;
    free(buf);
    return fflush(out) == 0 ? rc : -1;
}
