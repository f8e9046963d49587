/*
 * stats.c — cairn's metric families and what feeds them (see stats.h).
 *
 * Latencies are histograms in seconds, with buckets from 1 ms (the
 * gateway's own work) to two minutes (a long generation). Gauges that the
 * process already knows (connections, streams) are read at scrape time
 * rather than kept up to date on every event.
 */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "metrics.h"

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
    struct cairn_metric *cache_bytes;    struct cairn_metric *cache_lookups;
    uint64_t cache_hits, cache_misses; /* the cache's own counts at the last scrape */
    struct cairn_metric *connections;
    struct cairn_metric *streams;
    struct cairn_metric *generation;
    struct cairn_metric *reloads;
    struct cairn_metric *last_reload_ok;
};

static const double latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5,   1,      2.5,   5,    10,    30,   60,  120};
#define NBUCKETS (sizeof(latency_buckets) / sizeof(latency_buckets[0]))

struct cairn_stats *cairn_stats_new(uint64_t generation)
{
    struct cairn_stats *st = cairn_calloc(1, sizeof(*st));
    struct cairn_metrics *r = st->reg = cairn_metrics_new();
    static const char *const by_request[] = {"tenant", "route", "status", "arm", NULL};
    static const char *const by_route[] = {"tenant", "route", NULL};
    static const char *const by_marker[] = {"tenant", "tag", "value", "source", NULL};
    static const char *const by_annotation[] = {"tenant", "source", "outcome", NULL};
    static const char *const by_result[] = {"result", NULL};

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
    static const char *const by_tenant[] = {"tenant", NULL};
    static const char *const by_violation[] = {"tenant", "marker", NULL};
    st->validations =
        cairn_metrics_add(r, CAIRN_METRIC_COUNTER, "cairn_validations_total",
                          "Answers validated against their markers.", by_tenant, NULL, 0);
    st->violations = cairn_metrics_add(
        r, CAIRN_METRIC_COUNTER, "cairn_violations_total",
        "Markers broken by the answer the client got (after any retries), by marker.", by_violation,
        NULL, 0);
    st->retries = cairn_metrics_add(r, CAIRN_METRIC_COUNTER, "cairn_retries_total",
                                    "Attempts beyond the first, asked for because an answer "
                                    "broke its markers.",
                                    by_tenant, NULL, 0);
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
    st->generation = cairn_metrics_add(r, CAIRN_METRIC_GAUGE, "cairn_config_generation",
                                       "Configuration generation serving (1 = as started, +1 "
                                       "per successful reload).",
                                       NULL, NULL, 0);
    st->reloads = cairn_metrics_add(r, CAIRN_METRIC_COUNTER, "cairn_config_reloads_total",
                                    "Reloads tried, by result (ok, error).", by_result, NULL, 0);
    st->last_reload_ok =
        cairn_metrics_add(r, CAIRN_METRIC_GAUGE, "cairn_config_last_reload_ok",
                          "1 if the last reload (or the start) succeeded.", NULL, NULL, 0);
    cairn_metric_set(st->generation, NULL, (double)generation);
    cairn_metric_set(st->last_reload_ok, NULL, 1);
    return st;
}

void cairn_stats_free(struct cairn_stats *st)
{
    if (st == NULL)
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
    char status[8];
    snprintf(status, sizeof(status), "%03d",
             req->status >= 100 && req->status <= 999 ? req->status : 0);
    const char *route = route_label(req->path);
    cairn_metric_add(st->requests, (const char *[]){req->tenant, route, status, ""}, 1);
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

void cairn_stats_validation(struct cairn_stats *st, const char *tenant, size_t attempts,
                            const struct cairn_violations *v, const struct cairn_taxonomy *tx)
{
    const char *const who[] = {tenant};
    if (attempts == 0)
        return; /* the answer never came */
    cairn_metric_add(st->validations, who, 1);
    if (attempts > 1)
        cairn_metric_add(st->retries, who, (double)(attempts - 1));
    for (size_t i = 0; i < v->n; i++)
        cairn_metric_add(st->violations, (const char *[]){tenant, tx->tags[v->items[i].tag].key},
                         1);
}

void cairn_stats_reload(struct cairn_stats *st, uint64_t generation, bool ok)
{
    cairn_metric_set(st->generation, NULL, (double)generation);
    cairn_metric_set(st->last_reload_ok, NULL, ok ? 1 : 0);
    cairn_metric_add(st->reloads, (const char *[]){ok ? "ok" : "error"}, 1);
}

char *cairn_stats_render(struct cairn_stats *st, size_t connections, size_t streams,
                         const struct cairn_annotation_cache *cache, size_t *len)
{
    if (cache != NULL) {
        struct cairn_annotation_cache_stats cs;
        cairn_annotation_cache_stats(cache, &cs);
        cairn_metric_set(st->cache_entries, NULL, (double)cs.entries);
        cairn_metric_set(st->cache_bytes, NULL, (double)cs.bytes);        /* The cache counts on its own; the counters take what it counted since. */
        cairn_metric_add(st->cache_lookups, (const char *[]){"hit"},
                         (double)(cs.hits - st->cache_hits));
        cairn_metric_add(st->cache_lookups, (const char *[]){"miss"},
                         (double)(cs.misses - st->cache_misses));
        st->cache_hits = cs.hits;
        st->cache_misses = cs.misses;
    }
    cairn_metric_set(st->connections, NULL, (double)connections);
    cairn_metric_set(st->streams, NULL, (double)streams);
    return cairn_metrics_render(st->reg, len);
}
