/*
 * stats.c — cairn's metric families and what feeds them (see stats.h).
 *
 * Latencies are histograms in seconds, with buckets from 1 ms (the
 * gateway's own work) to two minutes (a long generation). Gauges that the
 * process already knows (connections, streams, the cache) are not kept up
 * to date on every event: each worker refreshes them a few times a second.
 *
 * Each worker keeps its stats in its shared arena (shm.h); the master sums
 * the workers' registries for a scrape and adds what only it knows: the
 * configuration generation, its reloads, and the workers themselves.
 */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "metrics.h"
#include "shm.h"

struct cairn_stats {
    struct cairn_metrics *reg;
    struct cairn_metric *requests;
    struct cairn_metric *duration;
    struct cairn_metric *upstream_first_byte;
    struct cairn_metric *stream_first_byte;
    struct cairn_metric *markers;
    struct cairn_metric *annotations;
    struct cairn_metric *validations;
    struct cairn_metric *violations;
    struct cairn_metric *retries;
    struct cairn_metric *cache_entries;
    struct cairn_metric *cache_bytes;
    struct cairn_metric *cache_lookups;
    uint64_t cache_hits, cache_misses; /* the cache's own counts at the last refresh */
    struct cairn_metric *connections;
    struct cairn_metric *streams;
    struct cairn_metric *log_dropped;
    struct cairn_metric *log_errors;
    struct cairn_log_counters logged; /* the logs' own counts at the last refresh */
    struct cairn_metric *shadows;
    struct cairn_metric *judgements;
    /* The configuration versions (shm.h) this worker loaded and last failed
     * to load: the master reads them to tell a reload applied everywhere. */
    unsigned long config_loaded, config_failed;
};

static const double latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5,   1,      2.5,   5,    10,    30,   60,  120};
#define NBUCKETS (sizeof(latency_buckets) / sizeof(latency_buckets[0]))

struct cairn_stats *cairn_stats_new(struct cairn_arena *arena)
{
    struct cairn_stats *st = arena != NULL ? cairn_arena_root(arena) : NULL;
    if (st != NULL) {
        /* A worker started again: its counters go on, but the counts that
         * refreshes follow (the cache's, the logs') start again at 0 in the
         * new process, which has loaded no configuration yet. */
        st->cache_hits = st->cache_misses = 0;
        memset(&st->logged, 0, sizeof(st->logged));
        __atomic_store_n(&st->config_loaded, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&st->config_failed, 0, __ATOMIC_RELEASE);
        return st;
    }
    st = arena != NULL ? cairn_arena_alloc(arena, sizeof(*st)) : cairn_calloc(1, sizeof(*st));
    struct cairn_metrics *r = st->reg = cairn_metrics_new_in(arena);
    static const char *const by_request[] = {"tenant", "route", "status", "arm", NULL};
    static const char *const by_route[] = {"tenant", "route", NULL};
    static const char *const by_marker[] = {"tenant", "tag", "value", "source", NULL};
    static const char *const by_annotation[] = {"tenant", "source", "outcome", NULL};

    st->requests = cairn_metrics_add(r, CAIRN_METRIC_COUNTER, "cairn_requests_total",
                                     "Requests answered, by tenant, route, status and experiment "
                                     "arm (status 499: the client left first).",
                                     by_request, NULL, 0);
    st->duration =
        cairn_metrics_add(r, CAIRN_METRIC_HISTOGRAM, "cairn_request_duration_seconds",
                          "Time from the request's first byte to its last response byte.", by_route,
                          latency_buckets, NBUCKETS);
    st->upstream_first_byte =
        cairn_metrics_add(r, CAIRN_METRIC_HISTOGRAM, "cairn_upstream_first_byte_seconds",
                          "Time from the request's first byte to the upstream's response head.",
                          by_route, latency_buckets, NBUCKETS);
    st->stream_first_byte = cairn_metrics_add(
        r, CAIRN_METRIC_HISTOGRAM, "cairn_stream_first_byte_seconds",
        "Streamed answers: time from the request's first byte to the start of the stream.",
        by_route, latency_buckets, NBUCKETS);
    st->markers = cairn_metrics_add(r, CAIRN_METRIC_COUNTER, "cairn_markers_sent_total",
                                    "Markers appended to prompts, by tag, value (empty for "
                                    "numeric tags) and source.",
                                    by_marker, NULL, 0);
    st->annotations =
        cairn_metrics_add(r, CAIRN_METRIC_COUNTER, "cairn_annotations_total",
                          "Annotator runs by source and outcome.", by_annotation, NULL, 0);
    static const char *const by_arm[] = {"tenant", "arm", NULL};
    static const char *const by_violation[] = {"tenant", "arm", "marker", NULL};
    st->validations =
        cairn_metrics_add(r, CAIRN_METRIC_COUNTER, "cairn_validations_total",
                          "Answers validated against their markers, by tenant and experiment "
                          "arm.",
                          by_arm, NULL, 0);
    st->violations = cairn_metrics_add(
        r, CAIRN_METRIC_COUNTER, "cairn_violations_total",
        "Markers broken by the answer the client got (after any retries), by marker.", by_violation,
        NULL, 0);
    st->retries = cairn_metrics_add(r, CAIRN_METRIC_COUNTER, "cairn_retries_total",
                                    "Attempts beyond the first, asked for because an answer "
                                    "broke its markers.",
                                    by_arm, NULL, 0);
    static const char *const by_outcome[] = {"result", NULL};
    st->cache_entries = cairn_metrics_add(r, CAIRN_METRIC_GAUGE, "cairn_annotation_cache_entries",
                                          "Annotator answers held in the cache.", NULL, NULL, 0);
    st->cache_bytes =
        cairn_metrics_add(r, CAIRN_METRIC_GAUGE, "cairn_annotation_cache_bytes",
                          "What they cost against annotation_cache.bytes.", NULL, NULL, 0);
    st->cache_lookups =
        cairn_metrics_add(r, CAIRN_METRIC_COUNTER, "cairn_annotation_cache_lookups_total",
                          "Cache lookups by result (hit, miss).", by_outcome, NULL, 0);
    st->connections = cairn_metrics_add(r, CAIRN_METRIC_GAUGE, "cairn_connections",
                                        "Client connections open.", NULL, NULL, 0);
    st->streams = cairn_metrics_add(r, CAIRN_METRIC_GAUGE, "cairn_streams",
                                    "Answers being relayed as event streams.", NULL, NULL, 0);
    static const char *const by_log[] = {"log", NULL};
    st->log_dropped = cairn_metrics_add(r, CAIRN_METRIC_COUNTER, "cairn_log_lines_dropped_total",
                                        "Log lines dropped because the log's queue was full "
                                        "(its disk too slow).",
                                        by_log, NULL, 0);
    st->log_errors =
        cairn_metrics_add(r, CAIRN_METRIC_COUNTER, "cairn_log_write_errors_total",
                          "Failed log writes (their lines are lost).", by_log, NULL, 0);
    static const char *const by_shadow[] = {"tenant", "experiment", "outcome", NULL};
    static const char *const by_judgement[] = {"tenant", "experiment", "arm",
                                               "other",  "result",     NULL};
    st->shadows = cairn_metrics_add(r, CAIRN_METRIC_COUNTER, "cairn_shadow_total",
                                    "Shadow judging: offers by outcome (sampled_out, "
                                    "in_flight_cap, daily_cap, started) and shadows that "
                                    "ended without a judgement (failed).",
                                    by_shadow, NULL, 0);
    st->judgements = cairn_metrics_add(r, CAIRN_METRIC_COUNTER, "cairn_judgements_total",
                                       "Judgements of the served arm's answer against the other "
                                       "arm's, by result (win, loss, tie).",
                                       by_judgement, NULL, 0);
    if (arena != NULL)
        cairn_arena_set_root(arena, st);
    return st;
}

void cairn_stats_free(struct cairn_stats *st)
{
    if (st == NULL || cairn_metrics_in_arena(st->reg))
        return;
    cairn_metrics_free(st->reg);
    free(st);
}

/* The route label: a fixed set, whatever path the client sent. */
static const char *route_label(const char *path)
{
    static const char *const routes[] = {
        "/v1/chat/completions", "/v1/models", "/healthz", "/readyz", "/metrics", "/admin/reload"};
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        size_t n = strlen(routes[i]);
        if (strncmp(path, routes[i], n) == 0 && (path[n] == '\0' || path[n] == '/'))
            return routes[i];
    }
    return "other";
}

void cairn_stats_request(struct cairn_stats *st, const struct cairn_request *req)
{
    int code = req->status >= 100 && req->status <= 999 ? req->status : 0;
    const char status[4] = {(char)('0' + code / 100), (char)('0' + code / 10 % 10),
                            (char)('0' + code % 10), '\0'};
    const char *route = route_label(req->path);
    cairn_metric_add(st->requests, (const char *[]){req->tenant, route, status, req->arm}, 1);
    const char *const by_route[] = {req->tenant, route};
    cairn_metric_observe(st->duration, by_route, (double)(cairn_now_us() - req->start_us) / 1e6);
    if (req->upstream_first_byte_us != 0) {
        double s = (double)req->upstream_first_byte_us / 1e6;
        cairn_metric_observe(st->upstream_first_byte, by_route, s);
        if (req->stream)
            cairn_metric_observe(st->stream_first_byte, by_route, s);
    }
}

void cairn_stats_annotation(struct cairn_stats *st, const char *tenant, const char *source,
                            const char *outcome)
{
    cairn_metric_add(st->annotations, (const char *[]){tenant, source, outcome}, 1);
}

void cairn_stats_markers(struct cairn_stats *st, const char *tenant,
                         const struct cairn_markers *sent)
{
    for (size_t i = 0; sent->tx != NULL && i < sent->tx->ntags; i++) {
        if (sent->source[i] == CAIRN_SRC_NONE)
            continue;
        const struct cairn_tag *tag = &sent->tx->tags[i];
        const char *value = tag->type == CAIRN_TAG_ENUM ? sent->value[i] : "";
        cairn_metric_add(
            st->markers,
            (const char *[]){tenant, tag->key, value, cairn_marker_source_name(sent->source[i])},
            1);
    }
}

void cairn_stats_validation(struct cairn_stats *st, const char *tenant, const char *arm,
                            size_t attempts, const struct cairn_violations *v,
                            const struct cairn_taxonomy *tx)
{
    const char *const who[] = {tenant, arm};
    if (attempts == 0)
        return; /* the answer never came */
    cairn_metric_add(st->validations, who, 1);
    if (attempts > 1)
        cairn_metric_add(st->retries, who, (double)(attempts - 1));
    for (size_t i = 0; i < v->n; i++)
        cairn_metric_add(st->violations,
                         (const char *[]){tenant, arm, tx->tags[v->items[i].tag].key}, 1);
}

/* A counter that follows a count kept elsewhere: add what it gained. */
static void follow(struct cairn_metric *m, const char *label, uint64_t now, uint64_t *seen)
{
    if (now < *seen) /* the count started again (a log writer reopened) */
        *seen = 0;
    cairn_metric_add(m, (const char *[]){label}, (double)(now - *seen));
    *seen = now;
}

void cairn_stats_refresh(struct cairn_stats *st, size_t connections, size_t streams,
                         const struct cairn_annotation_cache *cache)
{
    if (cache != NULL) {
        struct cairn_annotation_cache_stats cs;
        cairn_annotation_cache_stats(cache, &cs);
        cairn_metric_set(st->cache_entries, NULL, (double)cs.entries);
        cairn_metric_set(st->cache_bytes, NULL, (double)cs.bytes);
        follow(st->cache_lookups, "hit", cs.hits, &st->cache_hits);
        follow(st->cache_lookups, "miss", cs.misses, &st->cache_misses);
    }
    struct cairn_log_counters lc;
    cairn_log_counters(&lc);
    for (int k = 0; k < CAIRN_LOG_KINDS; k++) {
        const char *name = cairn_log_kind_name((enum cairn_log_kind)k);
        follow(st->log_dropped, name, lc.dropped[k], &st->logged.dropped[k]);
        follow(st->log_errors, name, lc.write_errors[k], &st->logged.write_errors[k]);
    }
    cairn_metric_set(st->connections, NULL, (double)connections);
    cairn_metric_set(st->streams, NULL, (double)streams);
}

/* A family of the master's own with one series, set to `v`. */
static void add_single(struct cairn_metrics *reg, enum cairn_metric_type type, const char *name,
                       const char *help, double v)
{
    struct cairn_metric *m = cairn_metrics_add(reg, type, name, help, NULL, NULL, 0);
    if (type == CAIRN_METRIC_GAUGE)
        cairn_metric_set(m, NULL, v);
    else
        cairn_metric_add(m, NULL, v);
}

char *cairn_stats_render(struct cairn_stats *const *workers, size_t n,
                         const struct cairn_master_stats *ms, size_t *len)
{
    struct cairn_metrics *regs[CAIRN_MAX_WORKERS];
    for (size_t i = 0; i < n; i++)
        regs[i] = workers[i]->reg;
    struct cairn_metrics *sum = cairn_metrics_sum(regs, n);
    add_single(sum, CAIRN_METRIC_GAUGE, "cairn_config_generation",
               "Configuration generation serving (1 = as started, +1 per successful reload).",
               (double)ms->generation);
    static const char *const by_result[] = {"result", NULL};
    struct cairn_metric *reloads =
        cairn_metrics_add(sum, CAIRN_METRIC_COUNTER, "cairn_config_reloads_total",
                          "Reloads tried, by result (ok, error).", by_result, NULL, 0);
    cairn_metric_add(reloads, (const char *[]){"ok"}, (double)ms->reloads_ok);
    cairn_metric_add(reloads, (const char *[]){"error"}, (double)ms->reloads_failed);
    add_single(sum, CAIRN_METRIC_GAUGE, "cairn_config_last_reload_ok",
               "1 if the last reload (or the start) succeeded.", ms->last_reload_ok ? 1 : 0);
    add_single(sum, CAIRN_METRIC_GAUGE, "cairn_workers", "Worker processes running.",
               (double)ms->workers);
    add_single(sum, CAIRN_METRIC_GAUGE, "cairn_workers_stale",
               "Workers still on an older configuration than the master's (a reload they could "
               "not apply).",
               (double)ms->stale);
    add_single(sum, CAIRN_METRIC_COUNTER, "cairn_worker_restarts_total",
               "Workers started again after they died.", (double)ms->restarts);
    char *text = cairn_metrics_render(sum, len);
    cairn_metrics_free(sum);
    return text;
}

void cairn_stats_shadow(struct cairn_stats *st, const char *tenant, const char *experiment,
                        const char *outcome)
{
    cairn_metric_add(st->shadows, (const char *[]){tenant, experiment, outcome}, 1);
}

void cairn_stats_judgement(struct cairn_stats *st, const char *tenant, const char *experiment,
                           const char *arm, const char *other, const char *result)
{
    cairn_metric_add(st->judgements, (const char *[]){tenant, experiment, arm, other, result}, 1);
}

void cairn_stats_config_loaded(struct cairn_stats *st, unsigned long version, bool ok)
{
    __atomic_store_n(ok ? &st->config_loaded : &st->config_failed, version, __ATOMIC_RELEASE);
}

void cairn_stats_config_state(const struct cairn_stats *st, unsigned long *loaded,
                              unsigned long *failed)
{
    *loaded = __atomic_load_n(&st->config_loaded, __ATOMIC_ACQUIRE);
    *failed = __atomic_load_n(&st->config_failed, __ATOMIC_ACQUIRE);
}

void cairn_stats_forget_gauges(struct cairn_stats *st)
{
    cairn_metric_set(st->connections, NULL, 0);
    cairn_metric_set(st->streams, NULL, 0);
    cairn_metric_set(st->cache_entries, NULL, 0);
    cairn_metric_set(st->cache_bytes, NULL, 0);
}
