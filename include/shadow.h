/*
 * shadow.h — shadow judging of A/B experiments: for a sampled fraction of
 * the requests that an experiment's arms served, the same request also
 * runs, in the background, through the arm named in shadow.against, and a
 * judge model compares the two answers pairwise, position-swapped
 * (judge.h). Each judgement is one "judgement" record in the experiment
 * log: the served arm's win, loss or tie against the other arm, which is
 * the win rate of the experiment measured online.
 *
 * The user's request is never delayed or changed: a shadow is offered only
 * once the complete answer has been handed to the server, the offer does
 * no more than a random draw, two counters and a few copies, and the work
 * itself starts from the event loop after the answer's bytes. What a
 * shadow costs is bounded by the experiment's sample rate, a number of
 * shadows in flight and a number started per UTC day, both per worker
 * process. A shadow outlives its client (a disconnect does not stop it)
 * but not its process: cairn_shadows_free cancels every one in flight.
 *
 * The shadow request is the client's body run through the other arm's
 * marker stage — pinned markers, fixed ones, the rule annotator and its
 * annotator model when it has one — and sent whole (never streamed) to
 * that arm's backend, with that arm's model. Its answer loses the model's
 * marker block where the arm's policy unwraps, and is not validated or
 * retried: it is compared as the arm's first answer.
 */
#ifndef CAIRN_SHADOW_H
#define CAIRN_SHADOW_H

#include <cjson/cJSON.h>

#include "server.h"
#include "snapshot.h"

struct event_base;
struct cairn_stats;
struct cairn_annotation_cache;
struct cairn_shadows;

/* Outcomes of an offer, and of a shadow that ends without a judgement;
 * compared by pointer, the text is the metric label. */
extern const char *const CAIRN_SHADOW_SAMPLED_OUT;
extern const char *const CAIRN_SHADOW_IN_FLIGHT_CAP;
extern const char *const CAIRN_SHADOW_DAILY_CAP;
extern const char *const CAIRN_SHADOW_STARTED;
extern const char *const CAIRN_SHADOW_FAILED;

/** A worker's shadows. `stats` and `cache` (may be NULL) must outlive it. */
struct cairn_shadows *cairn_shadows_new(struct event_base *base, struct cairn_stats *stats,
                                        struct cairn_annotation_cache *cache);

/** Cancel and free every shadow in flight (no record, no count), then the
 *  rest. Before the upstream client is freed. NULL is fine. */
void cairn_shadows_free(struct cairn_shadows *sh);

/**
 * A request of `owner`'s experiment, served by its arm `served`, has had
 * its complete 200 answer `answer` handed to the server. When the
 * experiment shadows and `served` is not the arm it shadows against,
 * decide now whether this one runs, counting every outcome; a shadow
 * takes its own reference to `snap` and copies what it needs of `req`
 * (the id, the body, X-Cairn-Markers) and `answer` (the first choice's
 * text; an answer without text is not judged), so neither need outlive
 * the call.
 */
void cairn_shadow_offer(struct cairn_shadows *sh, struct cairn_snapshot *snap,
                        const struct cairn_tenant *owner, const struct cairn_tenant *served,
                        const struct cairn_request *req, const cJSON *answer);

#endif
