/*
 * marker_block.c — render and read <MARKER_LIST> blocks (see
 * marker_block.h).
 *
 * The wire format is the one the backend was trained on (DESIGN.md): plain
 * text, one <name>value</name> per line between the open and close lines.
 * Everything about it that a deployment may change — delimiters,
 * separator, order, tag names — comes from the template and the taxonomy.
 */
#include "marker_block.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"

int cairn_marker_format_init(struct cairn_marker_format *f, const struct cairn_taxonomy *tx,
                             const struct cairn_marker_template *t, char *err, size_t errlen)
{
    memset(f, 0, sizeof(*f));
    f->t = t;
    f->tx = tx;
    bool placed[CAIRN_MAX_TAGS] = {false};
    for (size_t i = 0; i < t->order.n; i++) {
        int tag = cairn_taxonomy_find(tx, t->order.items[i]);
        if (tag < 0 || placed[tag]) {
            snprintf(err, errlen, "template.order[%zu]: \"%s\" is %s", i, t->order.items[i],
                     tag < 0 ? "not a tag of the taxonomy" : "listed twice");
            return -1;
        }
        placed[tag] = true;
        f->order[f->norder++] = tag;
    }
    /* The rest, alphabetically by wire name (an insertion sort: a few tags). */
    size_t first_rest = f->norder;
    for (size_t i = 0; i < tx->ntags; i++) {
        if (placed[i])
            continue;
        size_t k = f->norder++;
        while (k > first_rest && strcmp(tx->tags[f->order[k - 1]].name, tx->tags[i].name) > 0) {
            f->order[k] = f->order[k - 1];
            k--;
        }
        f->order[k] = (int)i;
    }
    return 0;
}

char *cairn_marker_block_render(const struct cairn_marker_format *f, const struct cairn_markers *m)
{
    const struct cairn_marker_template *t = f->t;
    size_t sep = strlen(t->separator), len = strlen(t->open) + strlen(t->close) + 1, n = 0;
    for (size_t i = 0; i < f->norder; i++) {
        int tag = f->order[i];
        if (m->source[tag] == CAIRN_SRC_NONE)
            continue;
        len += sep + 2 * strlen(f->tx->tags[tag].name) + 5 + strlen(m->value[tag]);
        n++;
    }
    if (n == 0)
        return NULL;
    len += sep;
    char *out = cairn_malloc(len);
    size_t o = (size_t)snprintf(out, len, "%s", t->open);
    for (size_t i = 0; i < f->norder; i++) {
        int tag = f->order[i];
        if (m->source[tag] == CAIRN_SRC_NONE)
            continue;
        const char *name = f->tx->tags[tag].name;
        o += (size_t)snprintf(out + o, len - o, "%s<%s>%s</%s>", t->separator, name, m->value[tag],
                              name);
    }
    snprintf(out + o, len - o, "%s%s", t->separator, t->close);
    return out;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Read "<name>value</name>" items from body[0..len) into `out`. */
static void parse_items(const struct cairn_marker_format *f, const char *body, size_t len,
                        struct cairn_markers *out, enum cairn_marker_source source, size_t *dropped)
{
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (lt == NULL)
            break;
        const char *gt = memchr(lt, '>', (size_t)(end - lt));
        if (gt == NULL)
            break;
        char name[48], value[CAIRN_MARKER_VALUE_MAX];
        size_t nlen = (size_t)(gt - lt - 1);
        if (nlen == 0 || nlen >= sizeof(name) || lt[1] == '/') {
            p = gt + 1;
            continue;
        }
        memcpy(name, lt + 1, nlen);
        name[nlen] = '\0';
        /* The value runs to the matching close tag. */
        char close[52];
        snprintf(close, sizeof(close), "</%s>", name);
        const char *vstart = gt + 1;
        const char *vend = memmem(vstart, (size_t)(end - vstart), close, strlen(close));
        if (vend == NULL) {
            (*dropped)++;
            p = gt + 1;
            continue;
        }
        while (vstart < vend && is_space(*vstart))
            vstart++;
        const char *vlast = vend;
        while (vlast > vstart && is_space(vlast[-1]))
            vlast--;
        size_t vlen = (size_t)(vlast - vstart);
        char why[128];
        int tag = cairn_taxonomy_find(f->tx, name);
        if (vlen == 0 || vlen >= sizeof(value) || tag < 0) {
            (*dropped)++;
        } else {
            memcpy(value, vstart, vlen);
            value[vlen] = '\0';
            if (cairn_markers_offer(out, tag, value, source, why, sizeof(why)) < 0)
                (*dropped)++;
        }
        p = vend + strlen(close);
    }
}

int cairn_marker_block_parse(const struct cairn_marker_format *f, const char *text, size_t len,
                             size_t *end, struct cairn_markers *out,
                             enum cairn_marker_source source, size_t *dropped)
{
    const char *open = f->t->open, *close = f->t->close;
    size_t olen = strlen(open), clen = strlen(close), i = 0;
    while (i < len && is_space(text[i]))
        i++;
    if (len - i < olen || strncasecmp(text + i, open, olen) != 0)
        return 0;
    const char *body = text + i + olen;
    const char *stop = NULL;
    for (const char *p = body; p + clen <= text + len; p++) {
        if (strncasecmp(p, close, clen) == 0) {
            stop = p;
            break;
        }
    }
    if (stop == NULL)
        return -1;
    parse_items(f, body, (size_t)(stop - body), out, source, dropped);
    size_t e = (size_t)(stop - text) + clen;
    while (e < len && is_space(text[e]))
        e++;
    *end = e;
    return 1;
}

void cairn_markers_format_header(const struct cairn_markers *m, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < m->tx->ntags && o < outlen; i++) {
        if (m->source[i] == CAIRN_SRC_NONE)
            continue;
        o += (size_t)snprintf(out + o, outlen - o, "%s%s=%s", o ? "; " : "", m->tx->tags[i].name,
                              m->value[i]);
    }
}

void cairn_markers_to_json(const struct cairn_markers *m, cJSON *obj)
{
    for (size_t i = 0; i < m->tx->ntags; i++) {
        if (m->source[i] == CAIRN_SRC_NONE)
            continue;
        const struct cairn_tag *tag = &m->tx->tags[i];
        if (tag->type == CAIRN_TAG_ENUM)
            cJSON_AddStringToObject(obj, tag->name, m->value[i]);
        else
            cJSON_AddNumberToObject(obj, tag->name, strtod(m->value[i], NULL));
    }
}
