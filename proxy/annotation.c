/*
 * annotation.c — the annotator model call of one request (see
 * annotation.h).
 *
 * Cached answers are stored as "key=value" lines of the model's markers
 * (the empty string when nothing applied): small, and checked against the
 * taxonomy again when read, so a reload that changes the taxonomy cannot
 * serve a value it no longer knows.
 */
#include "annotation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "alloc.h"
#include "log.h"
#include "server.h"
#include "upstream.h"

const char *const CAIRN_ANNOTATION_OK = "ok";
const char *const CAIRN_ANNOTATION_CACHE_HIT = "cache_hit";
const char *const CAIRN_ANNOTATION_TIMEOUT = "timeout";
const char *const CAIRN_ANNOTATION_ERROR = "error";
const char *const CAIRN_ANNOTATION_UNPARSABLE = "unparsable";
const char *const CAIRN_ANNOTATION_BREAKER_OPEN = "breaker_open";

struct cairn_annotation {
    struct cairn_annotation_cache *cache;
    const struct cairn_snapshot *snap;
    const struct cairn_tenant *tenant;
    unsigned char key[CAIRN_ANNOTATION_KEY_LEN];
    struct cairn_transfer *transfer; /* NULL once finished */
    struct event *deadline;
    struct evbuffer *answer;
    int status;
    cairn_annotation_done_fn done;
    void *ctx;
};

static void annotation_free(struct cairn_annotation *a)
{
    cairn_transfer_cancel(a->transfer);
    if (a->deadline != NULL)
        event_free(a->deadline);
    if (a->answer != NULL)
        evbuffer_free(a->answer);
    free(a);
}

/* Report once, then go: the breaker hears how the annotator did. */
static void finish(struct cairn_annotation *a, const struct cairn_markers *model,
                   const char *outcome)
{
    uint64_t now = cairn_now_us();
    if (outcome == CAIRN_ANNOTATION_OK)
        cairn_breaker_success(a->tenant->breaker, now);
    else
        cairn_breaker_failure(a->tenant->breaker, now);
    a->done(a->ctx, model, outcome);
    annotation_free(a);
}

static void cache_put(struct cairn_annotation *a, const struct cairn_markers *m)
{
    char value[CAIRN_MAX_TAGS * (CAIRN_MARKER_VALUE_MAX + 32)];
    size_t n = 0;
    value[0] = '\0';
    for (size_t i = 0; i < m->tx->ntags; i++)
        if (m->source[i] != CAIRN_SRC_NONE)
            n += (size_t)snprintf(value + n, sizeof(value) - n, "%s=%s\n", m->tx->tags[i].key,
                                  m->value[i]);
    cairn_annotation_cache_put(a->cache, a->key, value, n, cairn_now_us());
}

static void on_head(void *ctx, int status, const struct cairn_upstream_header *headers,
                    size_t nheaders)
{
    (void)headers;
    (void)nheaders;
    struct cairn_annotation *a = ctx;
    a->status = status;
}

static int on_data(void *ctx, const char *data, size_t len)
{
    struct cairn_annotation *a = ctx;
    if (evbuffer_get_length(a->answer) + len > CAIRN_MODEL_BODY_MAX)
        return -1; /* an answer that long is no marker block */
    evbuffer_add(a->answer, data, len);
    return 0;
}

static void on_done(void *ctx, const char *errstr)
{
    struct cairn_annotation *a = ctx;
    a->transfer = NULL;
    struct cairn_markers model;
    cairn_markers_init(&model, &a->snap->tx);
    if (errstr != NULL || a->status != 200) {
        finish(a, &model, CAIRN_ANNOTATION_ERROR);
        return;
    }
    size_t len = evbuffer_get_length(a->answer), dropped = 0;
    const char *body = len > 0 ? (const char *)evbuffer_pullup(a->answer, -1) : "";
    if (cairn_model_annotator_parse(&a->snap->tx, body, len, &model, &dropped) != CAIRN_MODEL_OK) {
        finish(a, &model, CAIRN_ANNOTATION_UNPARSABLE);
        return;
    }
    if (a->cache != NULL)
        cache_put(a, &model);
    finish(a, &model, CAIRN_ANNOTATION_OK);
}

static const struct cairn_transfer_callbacks callbacks = {on_head, on_data, on_done};

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct cairn_annotation *a = arg;
    struct cairn_markers none;
    cairn_markers_init(&none, &a->snap->tx);
    finish(a, &none, CAIRN_ANNOTATION_TIMEOUT);
}

/* A cached answer, or false. */
static bool from_cache(struct cairn_annotation *a, struct cairn_markers *model)
{
    const char *value;
    size_t len;
    if (a->cache == NULL ||
        !cairn_annotation_cache_get(a->cache, a->key, cairn_now_us(), &value, &len))
        return false;
    char *copy = cairn_strndup(value, len), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (eq != NULL) {
            *eq = '\0';
            cairn_markers_offer_key(model, line, eq + 1, CAIRN_SRC_MODEL);
        }
    }
    free(copy);
    return true;
}

struct cairn_annotation *cairn_annotation_start(struct event_base *base,
                                                struct cairn_annotation_cache *cache,
                                                const struct cairn_snapshot *snap,
                                                const struct cairn_tenant *tenant,
                                                const cJSON *messages, const char *request_id,
                                                cairn_annotation_done_fn done, void *ctx)
{
    struct cairn_annotation *a = cairn_calloc(1, sizeof(*a));
    a->cache = cache;
    a->snap = snap;
    a->tenant = tenant;
    a->done = done;
    a->ctx = ctx;
    const struct cairn_annotator_config *cfg = &tenant->policy->annotator;
    struct cairn_markers model;
    cairn_markers_init(&model, &snap->tx);
    cairn_annotation_cache_key(messages, tenant->annotator_id, a->key);
    if (from_cache(a, &model)) {
        done(ctx, &model, CAIRN_ANNOTATION_CACHE_HIT);
        free(a);
        return NULL;
    }
    if (!cairn_breaker_allow(tenant->breaker, cairn_now_us())) {
        done(ctx, &model, CAIRN_ANNOTATION_BREAKER_OPEN);
        free(a);
        return NULL;
    }
    size_t len;
    char *body = cairn_model_annotator_request(snap->prompt, cfg->model, messages,
                                               (size_t)cfg->max_conversation_bytes, &len);
    char idline[CAIRN_REQUEST_ID_MAX + 16];
    snprintf(idline, sizeof(idline), "X-Request-Id: %s", request_id);
    const char *headers[] = {"Content-Type: application/json", idline, NULL};
    a->answer = evbuffer_new();
    a->deadline = evtimer_new(base, on_deadline, a);
    struct timeval tv = {(time_t)(cfg->deadline_ms / 1000),
                         (suseconds_t)((cfg->deadline_ms % 1000) * 1000)};
    evtimer_add(a->deadline, &tv);
    a->transfer = cairn_transfer_start(tenant->annotator->endpoint, "/chat/completions", headers,
                                       body, len, &callbacks, a);
    return a;
}

void cairn_annotation_cancel(struct cairn_annotation *a)
{
    if (a != NULL)
        annotation_free(a);
}
