/*
 * metrics.h — a Prometheus metrics registry: counters, gauges and
 * histograms with fixed label names, rendered in the text exposition
 * format 0.0.4 for a scrape endpoint.
 *
 * One registry per worker process, written from its event loop only:
 * there are no locks. The master reads the workers' registries (each in
 * shared memory) and sums them for /metrics. Updates sit on the request path, so looking up a
 * series that already exists costs one hash of the label values and allocates nothing. Label values
 * come from requests and upstreams, so each family holds at most CAIRN_METRICS_MAX_SERIES series;
 * label combinations beyond that are not recorded but counted in the registry's own family
 * cairn_metrics_series_dropped_total{family="<name>"}.
 *
 * Misuse that can only come from cairn's own code (an invalid name, a
 * counter without the _total suffix, the wrong update for a type) prints a
 * message and aborts, like running out of memory (alloc.h).
 */
#ifndef CAIRN_METRICS_H
#define CAIRN_METRICS_H

#include <stdbool.h>
#include <stddef.h>

/** Series kept per family; new label combinations beyond it are dropped. */
#define CAIRN_METRICS_MAX_SERIES 4096

/** Label values longer than this many bytes are cut to it (at a UTF-8
 *  character boundary), so values that differ only after it share a series. */
#define CAIRN_METRICS_MAX_VALUE 128

enum cairn_metric_type { CAIRN_METRIC_COUNTER, CAIRN_METRIC_GAUGE, CAIRN_METRIC_HISTOGRAM };

/** A registry: its families in the order they were added. */
struct cairn_metrics;

/** One family: name, help, type, fixed label names and its series. */
struct cairn_metric;

struct cairn_arena;

/** An empty registry (apart from cairn_metrics_series_dropped_total). */
struct cairn_metrics *cairn_metrics_new(void);

/** The same in a worker's shared arena (shm.h), where the master can read
 *  it; cairn_metrics_free leaves such a registry alone. */
struct cairn_metrics *cairn_metrics_new_in(struct cairn_arena *arena);

/** Whether `reg` lives in an arena. */
bool cairn_metrics_in_arena(const struct cairn_metrics *reg);

/** A new (heap) registry with the families of regs[0] and, for each
 *  series, the sum over every registry's families of the same name (a
 *  gauge too: they count things, like connections, that add up). The
 *  registries may be written meanwhile by their worker processes. */
struct cairn_metrics *cairn_metrics_sum(struct cairn_metrics *const *regs, size_t n);

/** Free the registry and every family in it (NULL is ignored). */
void cairn_metrics_free(struct cairn_metrics *reg);

/** Add a family to the registry, which owns it.
 *  A family without labels has its single series from the start, at 0.
 *  Aborts on an invalid or duplicate name, a counter name without "_total",
 *  an invalid, reserved ("__*", "le" in a histogram) or repeated label
 *  name, and buckets that are not finite and strictly increasing.
 *  @param name     [a-zA-Z_:][a-zA-Z0-9_:]*; copied
 *  @param help     the HELP text, any bytes; copied
 *  @param labels   NULL-terminated label names, [a-zA-Z_][a-zA-Z0-9_]*
 *                  (NULL or {NULL}: none); copied
 *  @param buckets  histogram only (else NULL, 0): upper bounds, the +Inf
 *                  bucket is implicit; copied
 *  @param nbuckets how many bounds buckets holds
 *  @return the family, valid until cairn_metrics_free */
struct cairn_metric *cairn_metrics_add(struct cairn_metrics *reg, enum cairn_metric_type type,
                                       const char *name, const char *help,
                                       const char *const *labels, const double *buckets,
                                       size_t nbuckets);

/** Add to a counter or a gauge.
 *  @param values one label value per label name, in the same order; a NULL
 *                array or a NULL value reads as ""
 *  @param by     for a counter, >= 0 (a counter that goes down breaks
 *                rate(), so anything else aborts) */
void cairn_metric_add(struct cairn_metric *m, const char *const *values, double by);

/** Set a gauge. @param values as for cairn_metric_add */
void cairn_metric_set(struct cairn_metric *m, const char *const *values, double v);

/** Record one observation in a histogram (a bound counts values <= it).
 *  @param values as for cairn_metric_add */
void cairn_metric_observe(struct cairn_metric *m, const char *const *values, double v);

/** The whole registry in the text exposition format 0.0.4: families in the
 *  order they were added, series in the order they were first updated.
 *  @param len if not NULL, set to the length without the final NUL
 *  @return a malloc'd, NUL-terminated text for the caller to free */
char *cairn_metrics_render(const struct cairn_metrics *reg, size_t *len);

#endif
