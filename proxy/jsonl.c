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

bool cairn_jsonl_next(struct cairn_jsonl_reader *r, cJSON **in, cJSON **out)
{
    bool too_long;
    long len;
    while ((len = read_line(r->in, &r->buf, &r->cap, &too_long)) >= 0) {
        if (!too_long && blank(r->buf, (size_t)len))
            continue;
        char err[256];
        *out = cJSON_CreateObject();
        *in = NULL;
        if (too_long) {
            snprintf(err, sizeof(err), "line longer than %u bytes", CAIRN_JSONL_MAX_LINE);
            cJSON_AddStringToObject(*out, "error", err);
            return true;
        }
        *in = cairn_json_parse_strict(r->buf, (size_t)len, CAIRN_JSONL_MAX_DEPTH, err, sizeof(err));
        if (*in == NULL) {
            cJSON_AddStringToObject(*out, "error", err);
            return true;
        }
        const cJSON *id = cJSON_IsObject(*in) ? cJSON_GetObjectItemCaseSensitive(*in, "id") : NULL;
        if (id != NULL)
            cJSON_AddItemToObject(*out, "id", cJSON_Duplicate(id, true));
        return true;
    }
    return false;
}

int cairn_jsonl_write(FILE *out, cJSON *obj)
{
    size_t n;
    char *text = cairn_json_print(obj, &n);
    cJSON_Delete(obj);
    int rc = fwrite(text, 1, n, out) == n && fputc('\n', out) != EOF ? 0 : -1;
    free(text);
    return rc;
}

void cairn_jsonl_reader_free(struct cairn_jsonl_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
}

int cairn_jsonl_map(FILE *in, FILE *out, cairn_jsonl_line_cb on_line, void *ctx)
{
    struct cairn_jsonl_reader r = {.in = in};
    cJSON *line, *result;
    int rc = 0;
    while (rc == 0 && cairn_jsonl_next(&r, &line, &result)) {
        if (line != NULL)
            on_line(ctx, line, result);
        cJSON_Delete(line);
        rc = cairn_jsonl_write(out, result);
    }
    if (ferror(in))
        rc = -1;
    cairn_jsonl_reader_free(&r);
    return fflush(out) == 0 ? rc : -1;
}
