/*
 * gateway.c — one serving process (see gateway.h).
 *
 * The process holds one reference to the current snapshot; each request
 * takes its own (proxy.c). A reload builds the new snapshot completely —
 * rules, templates, endpoints, keys — before it swaps the pointer, so a
 * bad file changes nothing and a good one is seen by the next request
 * while requests and streams in flight keep the one they started with.
 */
#include "gateway.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "admin.h"
#include "annotation_cache.h"
#include "log.h"
#include "proxy.h"
#include "server.h"
#include "snapshot.h"
#include "stats.h"
#include "upstream.h"

struct cairn_gateway {
    cairn_config_loader load;
    void *load_arg;
    struct event_base *base;
    struct cairn_upstream *client;
    struct cairn_proxy proxy; /* holds the current snapshot and the public server */
    struct cairn_server *admin;
    struct cairn_stats *stats;
    uint64_t generation;
};

static bool same_listen(const struct cairn_listen_list *a, const struct cairn_listen_list *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->items[i].host, b->items[i].host) != 0 || a->items[i].port != b->items[i].port)
            return false;
    return true;
}

int cairn_gateway_reload(struct cairn_gateway *gw, char *err, size_t errlen)
{
    struct cairn_config cfg;
    struct cairn_snapshot *old = gw->proxy.current, *snap = NULL;
    if (gw->load(gw->load_arg, &cfg, err, errlen) < 0 ||
        (snap = cairn_snapshot_new(&cfg, gw->client, old, gw->generation + 1, err, errlen)) ==
            NULL ||
        cairn_log_open(snap->cfg.log.access, snap->cfg.log.content, err, errlen) < 0) {
        cairn_snapshot_unref(snap);
        cairn_stats_reload(gw->stats, gw->generation, false);
        cairn_log_msg("error", "reload rejected, the previous configuration stays: %s", err);
        return -1;
    }
    if (!same_listen(&snap->cfg.listen, &old->cfg.listen) ||
        !same_listen(&snap->cfg.admin.listen, &old->cfg.admin.listen))
        cairn_log_msg("warn", "reload: listening addresses changed; they apply after a restart");
    gw->generation++;
    gw->proxy.current = snap;
    cairn_server_set_config(gw->proxy.server, &snap->cfg);
    if (gw->admin != NULL)
        cairn_server_set_config(gw->admin, &snap->cfg);
    cairn_snapshot_unref(old);
    cairn_stats_reload(gw->stats, gw->generation, true);
    cairn_log_msg("info", "configuration reloaded (generation %llu)",
                  (unsigned long long)gw->generation);
    return 0;
}

char *cairn_gateway_metrics(struct cairn_gateway *gw, size_t *len)
{
    return cairn_stats_render(gw->stats, cairn_server_connections(gw->proxy.server),
                              gw->proxy.streams, gw->proxy.annotation_cache, len);
}

uint64_t cairn_gateway_generation(const struct cairn_gateway *gw)
{
    return gw->generation;
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
    cairn_gateway_reload(arg, err, sizeof(err)); /* logs what it did */
}

static void on_request_end(const struct cairn_request *req, void *arg)
{
    cairn_stats_request(arg, req);
}

int cairn_gateway_run(cairn_config_loader load, void *arg)
{
    struct cairn_gateway gw = {.load = load, .load_arg = arg, .generation = 1};
    struct cairn_config cfg;
    struct event *signals[3] = {NULL};
    char err[512];
    int rc = 1;

    signal(SIGPIPE, SIG_IGN);
    gw.base = event_base_new();
    if (gw.base == NULL) {
        fprintf(stderr, "cairn: cannot create the event loop\n");
        return 1;
    }
    gw.stats = cairn_stats_new(gw.generation);
    gw.client = cairn_upstream_new(gw.base, err, sizeof(err));
    if (gw.client == NULL || load(arg, &cfg, err, sizeof(err)) < 0)
        goto fail;
    gw.proxy.current = cairn_snapshot_new(&cfg, gw.client, NULL, gw.generation, err, sizeof(err));
    if (gw.proxy.current == NULL)
        goto fail;
    const struct cairn_config *c = &gw.proxy.current->cfg;
    if (cairn_log_open(c->log.access, c->log.content, err, sizeof(err)) < 0)
        goto fail;
    gw.proxy.stats = gw.stats;
    /* Per process, sized at start: a reload keeps the cache (its keys name
     * the annotator and prompt, so new ones miss what old ones stored). */
    if (c->annotation_cache.entries > 0 && c->annotation_cache.bytes > 0)
        gw.proxy.annotation_cache = cairn_annotation_cache_new(
            (size_t)c->annotation_cache.entries, (size_t)c->annotation_cache.bytes,
            (uint64_t)c->annotation_cache.ttl_ms * 1000u);
    gw.proxy.base = gw.base;
    gw.proxy.server = cairn_server_new(gw.base, c, &c->listen, "", cairn_proxy_handle, &gw.proxy,
                                       err, sizeof(err));
    if (gw.proxy.server == NULL)
        goto fail;
    cairn_server_on_end(gw.proxy.server, on_request_end, gw.stats);
    if (c->admin.listen.n > 0) {
        gw.admin = cairn_server_new(gw.base, c, &c->admin.listen, "admin ", cairn_admin_handle, &gw,
                                    err, sizeof(err));
        if (gw.admin == NULL)
            goto fail;
    }

    signals[0] = evsignal_new(gw.base, SIGTERM, on_stop_signal, &gw);
    signals[1] = evsignal_new(gw.base, SIGINT, on_stop_signal, &gw);
    signals[2] = evsignal_new(gw.base, SIGHUP, on_reload_signal, &gw);
    for (size_t i = 0; i < 3; i++)
        event_add(signals[i], NULL);
    cairn_log_msg("info", "cairn %s serving, %zu tenant(s), upstream %s", CAIRN_VERSION,
                  gw.proxy.current->ntenants, c->upstreams[0].base_url);

    event_base_dispatch(gw.base);
    cairn_log_msg("info", "stopped");
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "cairn: %s\n", err);
out:
    for (size_t i = 0; i < 3; i++)
        if (signals[i] != NULL)
            event_free(signals[i]);
    cairn_server_free(gw.admin);
    cairn_server_free(gw.proxy.server); /* cancels what is still in flight */
    cairn_snapshot_unref(gw.proxy.current);
    cairn_upstream_free(gw.client);
    cairn_annotation_cache_free(gw.proxy.annotation_cache);
    cairn_stats_free(gw.stats);
    event_base_free(gw.base);
    cairn_log_close();
    return rc;
}
