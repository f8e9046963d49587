/*
 * gateway.c — one worker process (see gateway.h).
 *
 * The process holds one reference to the current snapshot; each request
 * takes its own (proxy.c). A reload builds the new snapshot completely —
 * rules, templates, endpoints, keys — before it swaps the pointer, so a
 * bad file changes nothing and a good one is seen by the next request
 * while requests and streams in flight keep the one they started with.
 */
#include "gateway.h"

#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "annotation_cache.h"
#include "listen.h"
#include "literals.h"
#include "log.h"
#include "pattern.h"
#include "proxy.h"
#include "ratelimit.h"
#include "server.h"
#include "shadow.h"
#include "shm.h"
#include "snapshot.h"
#include "stats.h"
#include "upstream.h"

/* How often a worker brings its gauges up to date for the master. */
#define REFRESH_MS 250
/* A burst is over once no request has ended for this long (see on_quiet). */
#define QUIET_MS 100

struct cairn_gateway {
    cairn_config_loader load;
    void *load_arg;
    struct cairn_shared *shared; /* holds the configuration the master checked */
    unsigned index;              /* the worker's, for messages */
    struct event_base *base;
    struct cairn_upstream *client;
    struct cairn_proxy proxy; /* holds the current snapshot and the public server */
    struct cairn_stats *stats;
    uint64_t generation;
    uint64_t ended;          /* requests ended, ever */
    uint64_t ended_at_check; /* ... when on_quiet last looked */
    size_t conns_high;       /* most connections open since the last trim */
    struct event *quiet;     /* armed while requests end or connections close */
};

/* The configuration the master checked last (shm.h), loaded; *version
 * says which. */
static int load(struct cairn_gateway *gw, struct cairn_config *cfg, unsigned long *version,
                char *err, size_t errlen)
{
    size_t len;
    char *text = cairn_shared_config(gw->shared, &len, version);
    int rc = gw->load(gw->load_arg, text, len, cfg, err, errlen);
    free(text);
    return rc;
}

/* SIGHUP from the master, which has checked a new configuration: load it
 * and make it the one new requests run on; requests in flight finish on
 * theirs. What the master checked can still fail here (a rules file that
 * changed since, an upstream key's variable): the worker keeps its own. */
static int reload(struct cairn_gateway *gw, char *err, size_t errlen)
{
    struct cairn_config cfg;
    struct cairn_snapshot *old = gw->proxy.current, *snap = NULL;
    unsigned long version = 0;
    if (load(gw, &cfg, &version, err, errlen) < 0 ||
        (snap = cairn_snapshot_new(&cfg, gw->client, old, gw->generation + 1, err, errlen)) ==
            NULL ||
        cairn_log_open(snap->cfg.log.access, snap->cfg.log.content, snap->cfg.log.experiment, err,
                       errlen) < 0) {
        cairn_snapshot_unref(snap);
        cairn_stats_config_loaded(gw->stats, version, false);
        cairn_log_msg("error", "worker %u: reload rejected, its configuration stays: %s", gw->index,
                      err);
        return -1;
    }
    gw->generation++;
    gw->proxy.current = snap;
    cairn_server_set_config(gw->proxy.server, &snap->cfg);
    cairn_snapshot_unref(old);
    cairn_stats_config_loaded(gw->stats, version, true);
    return 0;
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct cairn_gateway *gw = arg;
    cairn_log_msg("info", "signal %d: draining", (int)sig);
    cairn_server_drain(gw->proxy.server);
}

static void on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    char err[512];
    reload(arg, err, sizeof(err)); /* logs what went wrong */
}

/* A burst of requests leaves the heap grown and fragmented, and malloc
 * keeps what is freed inside it. Once the burst is over (no request ended
 * for QUIET_MS), the free pages go back to the system: idle connections
 * then cost what they hold, not the burst's high water. Under steady load
 * this only re-arms itself; after a burst it trims once. */
static void on_quiet(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct cairn_gateway *gw = arg;
    if (gw->ended != gw->ended_at_check) {
        gw->ended_at_check = gw->ended;
        event_add(gw->quiet, &(struct timeval){0, QUIET_MS * 1000});
        return;
    }
    cairn_pattern_release_unused(); /* a reload's old rules, once their requests ended */
    cairn_literals_forget();        /* the texts the last requests' rules read */
    malloc_trim(0);
    gw->conns_high = cairn_server_connections(gw->proxy.server);
}

static void quiet_watch(struct cairn_gateway *gw)
{
    if (!event_pending(gw->quiet, EV_TIMEOUT, NULL)) {
        gw->ended_at_check = gw->ended;
        event_add(gw->quiet, &(struct timeval){0, QUIET_MS * 1000});
    }
}

static void on_refresh(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct cairn_gateway *gw = arg;
    size_t conns = cairn_server_connections(gw->proxy.server);
    cairn_stats_refresh(gw->stats, conns, gw->proxy.streams, gw->proxy.annotation_cache);
    /* Connections that closed since the last trim freed their memory
     * into the heap too. */
    if (conns > gw->conns_high)
        gw->conns_high = conns;
    else if (conns < gw->conns_high)
        quiet_watch(gw);
}

static void on_request_end(const struct cairn_request *req, void *arg)
{
    struct cairn_gateway *gw = arg;
    gw->ended++;
    quiet_watch(gw);
    cairn_stats_request(gw->stats, req);
}

/* The sockets of a worker whose predecessor kept dying at start (master.c
 * closed them): on the same addresses and ports, now that this one has a
 * configuration to serve. */
static int open_sockets(const struct cairn_worker_spec *w, const struct cairn_config *c, char *err,
                        size_t errlen)
{
    struct cairn_listen items[CAIRN_MAX_LISTEN];
    struct cairn_listen_list list = {items, w->nfds};
    for (size_t i = 0; i < w->nfds && i < c->listen.n; i++) {
        items[i] = c->listen.items[i];
        items[i].port = w->ports[i];
    }
    return cairn_listen_open(&list, 1, NULL, w->fds, err, errlen);
}

void cairn_worker_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
}

int cairn_gateway_run(cairn_config_loader loader, void *arg, const struct cairn_worker_spec *w)
{
    struct cairn_gateway gw = {
        .load = loader, .load_arg = arg, .shared = w->shared, .index = w->index, .generation = 1};
    struct cairn_config cfg;
    struct event *signals[3] = {NULL}, *refresh = NULL;
    char err[512];
    int rc = 1;

    signal(SIGPIPE, SIG_IGN);
    gw.base = event_base_new();
    if (gw.base == NULL) {
        fprintf(stderr, "cairn: worker %u: cannot create the event loop\n", w->index);
        return 1;
    }
    cairn_limiter_zone_attach(w->limiters, w->index);
    gw.stats = cairn_stats_new(w->arena);
    gw.client = cairn_upstream_new(gw.base);
    unsigned long version = 0;
    if (load(&gw, &cfg, &version, err, sizeof(err)) < 0)
        goto fail;
    gw.proxy.current = cairn_snapshot_new(&cfg, gw.client, NULL, gw.generation, err, sizeof(err));
    if (gw.proxy.current == NULL)
        goto fail;
    const struct cairn_config *c = &gw.proxy.current->cfg;
    if (cairn_log_open(c->log.access, c->log.content, c->log.experiment, err, sizeof(err)) < 0)
        goto fail;
    gw.proxy.stats = gw.stats;
    /* Per process, sized at start: a reload keeps the cache (its keys name
     * the annotator and prompt, so new ones miss what old ones stored). */
    if (c->annotation_cache.entries > 0 && c->annotation_cache.bytes > 0)
        gw.proxy.annotation_cache = cairn_annotation_cache_new(
            (size_t)c->annotation_cache.entries, (size_t)c->annotation_cache.bytes,
            (uint64_t)c->annotation_cache.ttl_ms * 1000u);
    gw.proxy.base = gw.base;
    if (w->nfds > 0 && w->fds[0] < 0 && open_sockets(w, c, err, sizeof(err)) < 0)
        goto fail;
    gw.proxy.server = cairn_server_new(gw.base, c, w->fds, w->nfds, cairn_proxy_handle, &gw.proxy);
    cairn_server_on_end(gw.proxy.server, on_request_end, &gw);
    cairn_stats_config_loaded(gw.stats, version, true);

    signals[0] = evsignal_new(gw.base, SIGTERM, on_stop_signal, &gw);
    signals[1] = evsignal_new(gw.base, SIGINT, on_stop_signal, &gw);
    signals[2] = evsignal_new(gw.base, SIGHUP, on_reload_signal, &gw);
    for (size_t i = 0; i < 3; i++)
        event_add(signals[i], NULL);
    sigset_t passed;
    cairn_worker_signals(&passed);
    sigprocmask(SIG_UNBLOCK, &passed, NULL); /* blocked by the master since the fork */
    refresh = event_new(gw.base, -1, EV_PERSIST, on_refresh, &gw);
    event_add(refresh, &(struct timeval){0, REFRESH_MS * 1000});
    gw.quiet = evtimer_new(gw.base, on_quiet, &gw);

    event_base_dispatch(gw.base);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "cairn: worker %u: %s\n", w->index, err);
out:
    for (size_t i = 0; i < 3; i++)
        if (signals[i] != NULL)
            event_free(signals[i]);
    if (refresh != NULL)
        event_free(refresh);
    cairn_server_free(gw.proxy.server); /* cancels what is still in flight */
    if (gw.quiet != NULL)               /* after: the requests it cancels end */
        event_free(gw.quiet);
    cairn_shadows_free(gw.proxy.shadows); /* and shadows: never waited for */
    cairn_snapshot_unref(gw.proxy.current);
    cairn_upstream_free(gw.client);
    cairn_annotation_cache_free(gw.proxy.annotation_cache);
    cairn_stats_free(gw.stats);
    event_base_free(gw.base);
    cairn_log_close();
    return rc;
}
