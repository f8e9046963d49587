/*
 * stats.h — cairn's own metrics: the families /metrics exports, and the
 * events of the request pipeline that feed them.
 *
 * Every label value is bounded: tenants and upstreams are names from the
 * configuration, routes a fixed set, statuses three digits, marker values
 * the taxonomy's closed lists (numeric markers are counted by tag only).
 * No prompt text or request id ever becomes a label.
 */
#ifndef CAIRN_STATS_H
#define CAIRN_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "annotation_cache.h"
#include "markers.h"
#include "server.h"
#include "validate.h"

struct cairn_arena;
struct cairn_stats;

/** A worker's stats, kept in its shared arena (NULL: on the heap, for
 *  tests). A worker started again after a crash gets the stats that its
 *  predecessor kept, and goes on counting. */
struct cairn_stats *cairn_stats_new(struct cairn_arena *arena);
void cairn_stats_free(struct cairn_stats *st);

/** A request has ended: requests by tenant, route, status and arm, and its
 *  latencies (total; upstream first byte; time to first byte of a stream). */
void cairn_stats_request(struct cairn_stats *st, const struct cairn_request *req);

/** The markers sent with a request of `tenant`: by tag, value and source. */
void cairn_stats_markers(struct cairn_stats *st, const char *tenant,
                         const struct cairn_markers *sent);

/** An annotator run: source "rules" or "model", outcome "ok", "cache_hit",
 *  "timeout", "error", "unparsable" or "breaker_open". */
void cairn_stats_annotation(struct cairn_stats *st, const char *tenant, const char *source,
                            const char *outcome);

/** A validated answer of `tenant` in experiment arm `arm` ("" for none):
 *  retries (attempts - 1) and the markers its final answer still breaks. */
void cairn_stats_validation(struct cairn_stats *st, const char *tenant, const char *arm,
                            size_t attempts, const struct cairn_violations *v,
                            const struct cairn_taxonomy *tx);

/** Shadow judging (shadow.h) in `experiment` of `tenant`: an offer's
 *  outcome, or a shadow that failed. */
void cairn_stats_shadow(struct cairn_stats *st, const char *tenant, const char *experiment,
                        const char *outcome);

/** A judgement of arm `arm`'s answer against arm `other`'s: "win",
 *  "loss" or "tie". */
void cairn_stats_judgement(struct cairn_stats *st, const char *tenant, const char *experiment,
                           const char *arm, const char *other, const char *result);

/** Bring the gauges a worker knows (`cache` may be NULL) and the counts
 *  kept elsewhere (the cache's lookups, the logs' losses) up to date: a
 *  worker calls this a few times a second. */
void cairn_stats_refresh(struct cairn_stats *st, size_t connections, size_t streams,
                         const struct cairn_annotation_cache *cache);

/** A worker loaded configuration `version` (shm.h), or failed to (`ok`
 *  false); and what it says it did last, for the master. */
void cairn_stats_config_loaded(struct cairn_stats *st, unsigned long version, bool ok);
void cairn_stats_config_state(const struct cairn_stats *st, unsigned long *loaded,
                              unsigned long *failed);

/** In the master, for a worker that died: its gauges no longer count
 *  (its successor sets them again). */
void cairn_stats_forget_gauges(struct cairn_stats *st);

/* What the master itself knows. */
struct cairn_master_stats {
    uint64_t generation; /* of the configuration serving: 1 as started, +1 per reload */
    uint64_t reloads_ok, reloads_failed;
    bool last_reload_ok;
    unsigned workers;  /* running */
    unsigned stale;    /* running on another configuration than the master's */
    uint64_t restarts; /* workers started again after they died */
};

/** The exposition text: the sum of the workers' stats, and the master's.
 *  malloc'd; *len set. */
char *cairn_stats_render(struct cairn_stats *const *workers, size_t n,
                         const struct cairn_master_stats *ms, size_t *len);

#endif
