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

struct cairn_stats;

/** Stats for a process that started on configuration `generation`. */
struct cairn_stats *cairn_stats_new(uint64_t generation);
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

/** A validated answer of `tenant`: retries (attempts - 1) and the markers
 *  its final answer still breaks. */
void cairn_stats_validation(struct cairn_stats *st, const char *tenant, size_t attempts,
                            const struct cairn_violations *v, const struct cairn_taxonomy *tx);

/** A reload was tried (not the start): `generation` is the one serving now. */
void cairn_stats_reload(struct cairn_stats *st, uint64_t generation, bool ok);

/** The exposition text, with the gauges read now (`cache` may be NULL).
 *  malloc'd; *len set. */
char *cairn_stats_render(struct cairn_stats *st, size_t connections, size_t streams,
                         const struct cairn_annotation_cache *cache, size_t *len);

#endif
