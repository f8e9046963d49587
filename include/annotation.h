/*
 * annotation.h — one request's call to the annotator model: the cache
 * first, then the circuit breaker, then one chat completion to the
 * annotator's endpoint on the same event loop, bounded by the policy's
 * deadline. Whatever happens — an answer, a timeout, an error, garbage, a
 * breaker open — `done` runs exactly once, with the markers the model gave
 * (none on failure) and the outcome; the request then goes on (fail-open).
 */
#ifndef CAIRN_ANNOTATION_H
#define CAIRN_ANNOTATION_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "annotation_cache.h"
#include "markers.h"
#include "snapshot.h"

struct event_base;
struct cairn_annotation;

/* Outcomes, compared by pointer; the text is the metric label and log value. */
extern const char *const CAIRN_ANNOTATION_OK;
extern const char *const CAIRN_ANNOTATION_CACHE_HIT;
extern const char *const CAIRN_ANNOTATION_TIMEOUT;
extern const char *const CAIRN_ANNOTATION_ERROR;
extern const char *const CAIRN_ANNOTATION_UNPARSABLE;
extern const char *const CAIRN_ANNOTATION_BREAKER_OPEN;

/** `model` holds what the model said (empty unless ok or cache hit); it
 *  lives until the callback returns. */
typedef void (*cairn_annotation_done_fn)(void *ctx, const struct cairn_markers *model,
                                         const char *outcome);

/**
 * Annotate `messages` (which must outlive the call) for `tenant`, whose
 * policy calls the model. `cache` may be NULL. `done` may run before this
 * returns (a cache hit, an open breaker).
 * @return the call in flight, or NULL when `done` has already run.
 */
struct cairn_annotation *cairn_annotation_start(struct event_base *base,
                                                struct cairn_annotation_cache *cache,
                                                const struct cairn_snapshot *snap,
                                                const struct cairn_tenant *tenant,
                                                const cJSON *messages, const char *request_id,
                                                cairn_annotation_done_fn done, void *ctx);

/** Abandon a call in flight (the client left); `done` does not run. */
void cairn_annotation_cancel(struct cairn_annotation *a);

#endif
