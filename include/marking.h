/*
 * marking.h — the marker stage of the request pipeline: everything loaded
 * once from the configuration (taxonomy, template, spoof detector, rule
 * annotator, fixed markers), and the per-request step that decides a
 * request's markers and appends their block to the prompt.
 */
#ifndef CAIRN_MARKING_H
#define CAIRN_MARKING_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "annotator.h"
#include "config.h"
#include "marker_block.h"
#include "markers.h"
#include "spoof.h"
#include "taxonomy.h"

struct cairn_marking {
    const struct cairn_config *cfg;
    struct cairn_taxonomy tx;
    struct cairn_marker_format format;
    struct cairn_spoof *spoof;         /* owned */
    struct cairn_annotator *annotator; /* owned; NULL when annotation is off */
    struct cairn_markers fixed;        /* the policy's fixed markers, validated */
};

/** Load rules_dir/taxonomy.json, the template, the fixed markers and the
 *  annotator. @return 0, or -1 with err naming the file or key. */
int cairn_marking_load(struct cairn_marking *mk, const struct cairn_config *cfg, char *err,
                       size_t errlen);
void cairn_marking_free(struct cairn_marking *mk);

/**
 * Decide the markers of a validated chat request and append their block:
 * takes the caller's pinned markers (the body's "cairn" field, removed
 * here, and the X-Cairn-Markers header value, may be NULL), neutralises
 * marker-like text in the messages, adds fixed and annotated markers, and
 * appends the block to the template's target message.
 * @return 0 with `out` filled, or an HTTP status (400, 403) with `err`.
 */
int cairn_marking_apply(const struct cairn_marking *mk, cJSON *request, const char *header,
                        struct cairn_markers *out, char *err, size_t errlen);

#endif
