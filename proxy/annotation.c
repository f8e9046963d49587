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

#include "alloc.h"
#include "model_call.h"
#include "server.h"

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
    struct cairn_model_call *call; /* NULL once finished */
    cairn_annotation_done_fn done;
    void *ctx;
};

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
    free(a);
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

static void on_answer(void *ctx, const char *errstr, int status, const char *body, size_t len)
{
    struct cairn_annotation *a = ctx;
    a->call = NULL;
    struct cairn_markers model;
    cairn_markers_init(&model, &a->snap->tx);
    if (errstr != NULL || status != 200) {
        finish(a, &model,
               errstr == CAIRN_MODEL_CALL_ETIMEOUT ? CAIRN_ANNOTATION_TIMEOUT
                                                   : CAIRN_ANNOTATION_ERROR);
        return;
    }
    size_t dropped = 0;
    if (cairn_model_annotator_parse(&a->snap->tx, body, len, &model, &dropped) != CAIRN_MODEL_OK) {
        finish(a, &model, CAIRN_ANNOTATION_UNPARSABLE);
        return;
    }
    if (a->cache != NULL)
        cache_put(a, &model);
    finish(a, &model, CAIRN_ANNOTATION_OK);
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
    /* An answer that long is no marker block. */
    a->call = cairn_model_call_start(base, tenant->annotator->endpoint, request_id, body, len,
                                     CAIRN_MODEL_BODY_MAX, cfg->deadline_ms, on_answer, a);
    return a;
}

void cairn_annotation_cancel(struct cairn_annotation *a)
{
    if (a != NULL) {
        cairn_model_call_cancel(a->call);
        free(a);
    }
}
