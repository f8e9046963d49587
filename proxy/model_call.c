/*
 * model_call.c — a chat completion cairn sends itself (see model_call.h).
 *
 * The deadline is a timer of the call's own rather than a libcurl total
 * timeout: the endpoint's transfers keep the upstream's connect, first-byte
 * and idle limits, and the caller's deadline cuts whatever is left.
 */
#include "model_call.h"

#include <stdio.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "alloc.h"
#include "server.h"
#include "upstream.h"

const char *const CAIRN_MODEL_CALL_ETIMEOUT = "deadline passed";

struct cairn_model_call {
    struct cairn_transfer *transfer; /* NULL once finished */
    struct event *deadline;          /* owned */
    struct evbuffer *answer;         /* owned: the body so far */
    size_t max_answer;
    int status;
    const char *failure; /* why on_data stopped the transfer */
    cairn_model_call_done_fn done;
    void *ctx;
};

static void call_free(struct cairn_model_call *c)
{
    cairn_transfer_cancel(c->transfer);
    event_free(c->deadline);
    evbuffer_free(c->answer);
    free(c);
}

/* Report once, then go. */
static void finish(struct cairn_model_call *c, const char *errstr)
{
    size_t len = 0;
    const char *body = "";
    if (errstr == NULL) {
        evbuffer_add(c->answer, "", 1); /* the NUL the callback is promised */
        len = evbuffer_get_length(c->answer) - 1;
        body = (const char *)evbuffer_pullup(c->answer, -1);
    }
    c->done(c->ctx, errstr, errstr == NULL ? c->status : 0, body, len);
    call_free(c);
}

static void on_head(void *ctx, int status, const struct cairn_upstream_header *headers,
                    size_t nheaders)
{
    (void)headers;
    (void)nheaders;
    struct cairn_model_call *c = ctx;
    c->status = status;
}

static int on_data(void *ctx, const char *data, size_t len)
{
    struct cairn_model_call *c = ctx;
    if (evbuffer_get_length(c->answer) + len > c->max_answer) {
        c->failure = CAIRN_UPSTREAM_ETOO_LARGE;
        return -1;
    }
    evbuffer_add(c->answer, data, len);
    return 0;
}

static void on_done(void *ctx, const char *errstr)
{
    struct cairn_model_call *c = ctx;
    c->transfer = NULL;
    finish(c, errstr != NULL && c->failure != NULL ? c->failure : errstr);
}

static const struct cairn_transfer_callbacks callbacks = {on_head, on_data, on_done};

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    finish(arg, CAIRN_MODEL_CALL_ETIMEOUT);
}

struct cairn_model_call *cairn_model_call_start(struct event_base *base, struct cairn_endpoint *ep,
                                                const char *request_id, char *body, size_t len,
                                                size_t max_answer, int64_t deadline_ms,
                                                cairn_model_call_done_fn done, void *ctx)
{
    struct cairn_model_call *c = cairn_calloc(1, sizeof(*c));
    c->max_answer = max_answer;
    c->done = done;
    c->ctx = ctx;
    c->answer = evbuffer_new();
    c->deadline = evtimer_new(base, on_deadline, c);
    struct timeval tv = {(time_t)(deadline_ms / 1000), (suseconds_t)((deadline_ms % 1000) * 1000)};
    evtimer_add(c->deadline, &tv);
    char idline[CAIRN_REQUEST_ID_MAX + 16];
    snprintf(idline, sizeof(idline), "X-Request-Id: %s", request_id);
    const char *headers[] = {"Content-Type: application/json", idline, NULL};
    c->transfer = cairn_transfer_start(ep, "/chat/completions", headers, body, len, &callbacks, c);
    return c;
}

void cairn_model_call_cancel(struct cairn_model_call *c)
{
    if (c != NULL)
        call_free(c);
}
