/*
 * admin.c — the admin listener's routes (see admin.h).
 */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "master.h"

static void do_metrics(struct cairn_master *m, struct cairn_request *req)
{
    size_t len;
    char *text = cairn_master_metrics(m, &len);
    cairn_response_send(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

static void do_reload(struct cairn_master *m, struct cairn_request *req)
{
    cairn_master_reload_request(m, req);
}

static void do_health(struct cairn_master *m, struct cairn_request *req)
{
    (void)m;
    static const char ok[] = "{\"status\":\"ok\"}\n";
    cairn_response_send(req, 200, "application/json", ok, sizeof(ok) - 1);
}

static const struct admin_route {
    const char *path;
    const char *method;
    void (*handle)(struct cairn_master *, struct cairn_request *);
} admin_routes[] = {
    {"/metrics", "GET", do_metrics},
    {"/admin/reload", "POST", do_reload},
    {"/healthz", "GET", do_health},
};

void cairn_admin_handle(struct cairn_request *req, void *arg)
{
    for (size_t i = 0; i < sizeof(admin_routes) / sizeof(admin_routes[0]); i++) {
        const struct admin_route *r = &admin_routes[i];
        if (strcmp(req->path, r->path) != 0)
            continue;
        if (cairn_request_method_is(req, r->method))
            r->handle(arg, req);
        return;
    }
    cairn_response_error(req, 404, "not_found", "no such route: %.200s", req->path);
}
