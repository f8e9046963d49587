/*
 * marker_block.h — the <MARKER_LIST> block: rendering a request's markers
 * in the backend's template, and reading the block a marker-trained model
 * writes at the start of its answer.
 */
#ifndef CAIRN_MARKER_BLOCK_H
#define CAIRN_MARKER_BLOCK_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "markers.h"
#include "taxonomy.h"

/* A template resolved against the taxonomy once, at load time. */
struct cairn_marker_format {
    const struct cairn_marker_template *t; /* open, close, separator, prefix */
    const struct cairn_taxonomy *tx;
    int order[CAIRN_MAX_TAGS]; /* tag indexes in rendering order */
    size_t norder;
};

/** Resolve `t->order` (tag keys or wire names) and append the remaining
 *  tags alphabetically by wire name. @return 0, or -1 naming an unknown
 *  or repeated tag in err. */
int cairn_marker_format_init(struct cairn_marker_format *f, const struct cairn_taxonomy *tx,
                             const struct cairn_marker_template *t, char *err, size_t errlen);

/**
 * Render the markers that have a value:
 *   open SEP <name>value</name> SEP ... SEP close
 * @return a malloc'd string, or NULL when no marker has a value.
 */
char *cairn_marker_block_render(const struct cairn_marker_format *f, const struct cairn_markers *m);

/**
 * Find a block at the start of text[0..len) (after whitespace). On success
 * `*end` is the offset just past the block and any whitespace after it,
 * and each <tag>value</tag> inside whose tag and value the taxonomy knows
 * is offered to `out` with `source`; others are counted in `*dropped`.
 * @return 1 found, 0 no block at the start, -1 an opened block that does
 *         not close within text[0..len).
 */
int cairn_marker_block_parse(const struct cairn_marker_format *f, const char *text, size_t len,
                             size_t *end, struct cairn_markers *out,
                             enum cairn_marker_source source, size_t *dropped);

/** Append `markers` as "tag=value; tag=value" (wire names) to out[] —
 *  the X-Cairn-Markers header form. */
void cairn_markers_format_header(const struct cairn_markers *m, char *out, size_t outlen);

/** Add `markers` to `obj` as {"wire name": value}, integers as numbers. */
void cairn_markers_to_json(const struct cairn_markers *m, cJSON *obj);

#endif
