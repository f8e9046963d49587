/*
 * annotate_cli.c — `cairn annotate`: the rule annotator over JSON Lines
 * (see annotate_cli.h).
 *
 * One bad line must not end a run over a day of traffic samples: every
 * problem becomes an {"error"} object on that line's output line, and a
 * line over the limit is skipped to its end without being held in memory.
 */
#include "annotate_cli.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "json_strict.h"
#include "markers.h"

#define ANNOTATE_JSON_DEPTH 64

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
        if (len >= CAIRN_ANNOTATE_MAX_LINE) {
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

static cJSON *markers_object(const struct cairn_taxonomy *tx, const struct cairn_markers *m)
{
    cJSON *obj = cJSON_CreateObject();
    for (size_t i = 0; i < tx->ntags; i++) {
        if (m->source[i] == CAIRN_SRC_NONE)
            continue;
        const struct cairn_tag *tag = &tx->tags[i];
        if (tag->type == CAIRN_TAG_ENUM)
            cJSON_AddStringToObject(obj, tag->name, m->value[i]);
        else
            cJSON_AddNumberToObject(obj, tag->name, strtod(m->value[i], NULL));
    }
    return obj;
}

/* The output object for one input line. */
static cJSON *annotate_line(const struct cairn_annotator *a, const struct cairn_taxonomy *tx,
                            const char *line, size_t len, bool too_long)
{
    cJSON *out = cJSON_CreateObject();
    char err[256];
    if (too_long) {
        snprintf(err, sizeof(err), "line longer than %u bytes", CAIRN_ANNOTATE_MAX_LINE);
        cJSON_AddStringToObject(out, "error", err);
        return out;
    }
    cJSON *in = cairn_json_parse_strict(line, len, ANNOTATE_JSON_DEPTH, err, sizeof(err));
    if (in == NULL) {
        cJSON_AddStringToObject(out, "error", err);
        return out;
    }
    const cJSON *id = cJSON_IsObject(in) ? cJSON_GetObjectItemCaseSensitive(in, "id") : NULL;
    if (id != NULL)
        cJSON_AddItemToObject(out, "id", cJSON_Duplicate(id, true));
    const cJSON *messages =
        cJSON_IsObject(in) ? cJSON_GetObjectItemCaseSensitive(in, "messages") : NULL;
    if (!cJSON_IsArray(messages)) {
        cJSON_AddStringToObject(out, "error", "expected an object with a \"messages\" array");
    } else {
        struct cairn_markers m;
        cairn_markers_init(&m, tx);
        cairn_annotator_run(a, messages, &m);
        cJSON_AddItemToObject(out, "markers", markers_object(tx, &m));
    }
    cJSON_Delete(in);
    return out;
}

int cairn_annotate_stream(const struct cairn_annotator *a, const struct cairn_taxonomy *tx,
                          FILE *in, FILE *out)
{
    char *buf = NULL;
    size_t cap = 0;
    bool too_long;
    long len;
    int rc = 0;
    while ((len = read_line(in, &buf, &cap, &too_long)) >= 0) {
        if (!too_long && blank(buf, (size_t)len))
            continue;
        cJSON *obj = annotate_line(a, tx, buf, (size_t)len, too_long);
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
