/*
 * marking.h — the marker stage of the request pipeline: what a policy
 * decides (fixed markers, pinning, injected tags, annotation) joined with
 * what the snapshot loaded (taxonomy, template, spoof detector, rule
 * annotator), and the per-request step that decides a request's markers
 * and appends their block to the prompt.
 */
#ifndef CAIRN_MARKING_H
#define CAIRN_MARKING_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "annotator.h"
#include "config.h"
#include "marker_block.h"
#include "markers.h"
#include "spoof.h"
#include "taxonomy.h"

/* The marker stage as one tenant's policy sets it up for its upstream.
 * Everything pointed to belongs to the configuration snapshot. */
struct cairn_marking {
    const struct cairn_taxonomy *tx;
    const struct cairn_marker_format *format; /* the upstream's template */
    const struct cairn_spoof *spoof;          /* knows the template's delimiters */
    const struct cairn_annotator *annotator;  /* NULL when the policy does not annotate */
    const struct cairn_policy *policy;
    struct cairn_markers fixed; /* the policy's fixed markers, validated */
    uint32_t prefer_rules;      /* tags (bit = taxonomy index) where the rules beat the model */
};

/** Set up `mk`, checking the policy's fixed markers against the taxonomy;
 *  `where` names the policy in messages ("policy", "tenants.x").
 *  @return 0, or -1 with err naming the marker. */
int cairn_marking_init(struct cairn_marking *mk, const struct cairn_taxonomy *tx,
                       const struct cairn_marker_format *format, const struct cairn_spoof *spoof,
                       const struct cairn_annotator *annotator, const struct cairn_policy *policy,
                       const char *where, char *err, size_t errlen);

/**
 * Decide the markers of a validated chat request, short of the annotator
 * model: takes the caller's pinned markers (the body's "cairn" field,
 * removed here, and the X-Cairn-Markers header value, may be NULL),
 * neutralises marker-like text in the messages, adds fixed markers and,
 * when the policy runs it, the rule annotator's.
 * @return 0 with `out` filled, or an HTTP status (400, 403) with `err`.
 */
int cairn_marking_decide(const struct cairn_marking *mk, cJSON *request, const char *header,
                         struct cairn_markers *out, char *err, size_t errlen);

/**
 * Merge the annotator model's markers into `out` as the policy says:
 * never over pinned or fixed ones; over the rules' except for the tags
 * the policy trusts the rules with; and in "model" mode the rules' values
 * (the fallback) are dropped first.
 */
void cairn_marking_merge_model(const struct cairn_marking *mk, struct cairn_markers *out,
                               const struct cairn_markers *model);

/** Render `m` and append the block to the template's target message. */
void cairn_marking_append(const struct cairn_marking *mk, cJSON *request,
                          const struct cairn_markers *m);

/**
 * Continue a conversation for another attempt: the previous `answer` as an
 * assistant turn, then `instruction` as a user turn that carries the
 * marker block `m` when the template targets the last user turn.
 */
void cairn_marking_add_turn(const struct cairn_marking *mk, cJSON *messages, const char *answer,
                            const char *instruction, const struct cairn_markers *m);

#endif
