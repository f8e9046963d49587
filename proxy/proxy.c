/*
 * proxy.c — the request pipeline (see proxy.h).
 *
 * A route table maps paths to handlers. Proxied requests become a
 * `struct proxy_call` that ties the client request to one upstream
 * transfer and ends when either side does: the upstream finishing calls
 * on_done, the client leaving calls on_cancel, and each frees the call.
 *
 * Answers come back in one of two modes. A stream (the client asked for
 * one and the upstream answers 200 text/event-stream) is relayed as the
 * bytes arrive, pausing the upstream while the client's backlog is over
 * its limit. Everything else is buffered, up to max_response_bytes, so
 * that it can be checked (error bodies) or, later, rewritten.
 */
#include "proxy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "alloc.h"
#include "annotation.h"
#include "attempts.h"
#include "completion_stream.h"
#include "chat_request.h"
#include "experiment.h"
#include "json_strict.h"
#include "log.h"
#include "shadow.h"
#include "snapshot.h"
#include "stats.h"
#include "stream_observe.h"
#include "unwrap.h"
#include "validate.h"

struct proxy_call {
    struct cairn_proxy *proxy;
    struct cairn_snapshot *snap;       /* a reference: the config it runs on */
    const struct cairn_tenant *tenant; /* in `snap` */
    struct cairn_request *req;         /* the client's; the server owns it */
    struct cairn_transfer *transfer;   /* NULL once finished or cancelled */
    struct evbuffer *answer;           /* owned: buffered upstream body */
    char *content_type;                /* owned: the upstream's */
    char **relay;                      /* owned: upstream headers to pass on,
                                          each "name\0value" in one block */
    size_t nrelay;
    int status;                             /* upstream status */
    bool want_stream;                       /* the client asked for SSE */
    bool streaming;                         /* relaying the answer as it comes */
    bool congested;                         /* client backlog over the limit */
    bool paused;                            /* the upstream transfer is paused */
    const char *failure;                    /* why on_data stopped the transfer */
    size_t nchoices;                        /* the request's n */
    struct cairn_markers sent;              /* the markers appended to the prompt */
    struct cairn_markers model;             /* the markers the model wrote */
    char tail[4];                           /* a stream's last bytes from the upstream */
    size_t ntail;                           /* bytes in tail */
    struct cairn_sse_unwrap *unwrap;        /* owned: while a stream's start is read */
    struct evbuffer *scratch;               /* owned: unwrapped stream bytes */
    bool filter_models;                     /* a model list, cut to what the tenant may use */
    char *prompt;                           /* owned: the body sent, when the tenant logs content */
    char *answer_text;                      /* owned: the answer relayed, for the content log */
    char *path;                             /* owned: the upstream path, for further attempts */
    struct cairn_attempts *attempts;        /* owned: validation and retries, or NULL */
    struct event *deadline;                 /* owned: cuts a late attempt, or NULL */
    struct cairn_stream_observer *observer; /* owned: a stream being validated */
    struct evbuffer *observed;              /* owned: stream bytes past the observer */
    char **best_relay;                      /* owned: the relay headers of the best attempt */
    size_t nbest_relay;
    bool reported;                       /* the stream's validation report went out */
    bool buffer_stream;                  /* SSE asked, answer held and validated first */
    bool include_usage;                  /* the stream asked for a usage chunk */
    struct cairn_chat_request chat;      /* owned while the annotator model answers */
    struct cairn_annotation *annotation; /* owned: that call, while in flight */
    const char *annotation_outcome;      /* of the model call, for logs; NULL = none */
    /* An experiment's request (call->tenant is then its arm): */
    bool forced;                             /* the caller chose the arm */
    const char *unit;                        /* what assigned it: "user", ..., "request" */
    char unit_hash[CAIRN_UNIT_HASH_LEN + 1]; /* the unit, for the experiment log */
    cJSON *usage;                            /* owned: the answer's token usage, or NULL */
    const struct cairn_tenant *owner;        /* the tenant whose arm call->tenant is */
};

/* Request headers never forwarded: hop-by-hop (RFC 9110 §7.6.1), framing
 * that the upstream request gets from libcurl, the client's credentials
 * and account selectors, and what cairn sets itself. */
/* clang-format off */
static const char *const request_header_denylist[] = {
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "proxy-authorization", "proxy-authenticate", "host", "content-length",
    "content-type", "content-encoding", "expect", "accept-encoding", "authorization",
    "api-key", "x-api-key", "x-cairn-markers", "x-cairn-arm", "openai-organization", "openai-project",
    "cookie", "x-request-id", NULL,
};
/* clang-format on */

/* Response headers not relayed: hop-by-hop and framing, what cairn sets,
 * and what would tell the client about the upstream account or its
 * cookies. The upstream's request id is kept under another name. */
/* clang-format off */
static const char *const response_header_denylist[] = {
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "content-length", "content-type", "date", "server", "set-cookie", "alt-svc",
    "openai-organization", "openai-project", "x-request-id", NULL,
};
/* clang-format on */

/* Header names compared as a CGI or WSGI server would see them: any case,
 * and '_' read as '-' ("Transfer_Encoding" becomes HTTP_TRANSFER_ENCODING
 * there), so that a name listed here cannot pass under a disguise. */
static bool same_header_name(const char *listed, const char *name)
{
    for (; *listed != '\0' && *name != '\0'; listed++, name++) {
        char a = (char)tolower((unsigned char)*listed), b = (char)tolower((unsigned char)*name);
        if (a != b && !(a == '-' && b == '_'))
            return false;
    }
    return *listed == *name;
}

static bool in_list(const char *const *list, const char *name)
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (same_header_name(list[i], name))
            return true;
    return false;
}

/* "application/json", with or without parameters (RFC 9110 §8.3.1). */
static bool is_json_content_type(const char *ct)
{
    return ct != NULL && strncasecmp(ct, "application/json", 16) == 0 &&
           (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ' || ct[16] == '\t');
}

/* --- upstream callbacks ---------------------------------------------------- */

/* What the pipeline did with a request, as members of `root`:
 * "markers":{"task":{"value":"CodeFix","source":"rules"}}, and when its
 * answer was validated "attempts":N, "checked":[…], "violations":[…]. */
static void describe_markers(const struct proxy_call *call, cJSON *root)
{
    const struct cairn_markers *m = &call->sent;
    cJSON *sent = cJSON_AddObjectToObject(root, "markers");
    for (size_t i = 0; i < m->tx->ntags; i++) {
        if (m->source[i] == CAIRN_SRC_NONE)
            continue;
        cJSON *one = cJSON_AddObjectToObject(sent, m->tx->tags[i].name);
        cJSON_AddStringToObject(one, "value", m->value[i]);
        cJSON_AddStringToObject(one, "source", cairn_marker_source_name(m->source[i]));
    }
    if (call->attempts == NULL)
        return;
    const struct cairn_violations *v = cairn_attempts_violations(call->attempts);
    uint32_t checked = cairn_attempts_checked(call->attempts);
    cJSON_AddNumberToObject(root, "attempts", (double)cairn_attempts_count(call->attempts));
    cJSON *keys = cJSON_AddArrayToObject(root, "checked");
    for (size_t i = 0; i < m->tx->ntags; i++)
        if (checked & (1u << i))
            cJSON_AddItemToArray(keys, cJSON_CreateString(m->tx->tags[i].key));
    keys = cJSON_AddArrayToObject(root, "violations");
    for (size_t i = 0; i < v->n; i++)
        cJSON_AddItemToArray(keys, cJSON_CreateString(m->tx->tags[v->items[i].tag].key));
}

/* The members of an object (taken), without its braces: a record takes
 * them as members of its own. */
static char *members_text(cJSON *root)
{
    size_t n;
    char *text = cairn_json_print(root, &n);
    cJSON_Delete(root);
    text[n - 1] = '\0';
    memmove(text, text + 1, n - 1);
    return text;
}

/* The access record's part: the markers, the model's own, the annotator
 * model's outcome and the validation. */
static void log_markers(struct proxy_call *call)
{
    if (call->sent.tx == NULL || !cairn_log_access_enabled())
        return;
    cJSON *root = cJSON_CreateObject();
    if (call->tenant->arm != NULL) {
        cJSON_AddStringToObject(root, "experiment", call->owner->experiment->name);
        cJSON_AddStringToObject(root, "arm", call->tenant->arm);
    }
    describe_markers(call, root);
    if (cairn_markers_count(&call->model) > 0)
        cairn_markers_to_json(&call->model, cJSON_AddObjectToObject(root, "model_markers"));
    if (call->annotation_outcome != NULL)
        cJSON_AddStringToObject(root, "annotator", call->annotation_outcome);
    free(call->req->log_fields);
    call->req->log_fields = members_text(root);
}

/* The experiment record's part (log.h adds the time, the request id, the
 * status and the latencies): the arm and how it was chosen, the markers
 * and the validation, the token usage, and — where the tenant logs
 * content — the prompt sent and the answer relayed. */
static void log_experiment(struct proxy_call *call)
{
    const struct cairn_tenant *t = call->tenant;
    if (t->arm == NULL || call->sent.tx == NULL || !cairn_log_experiment_enabled())
        return;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "tenant", t->name);
    cJSON_AddStringToObject(root, "experiment", call->owner->experiment->name);
    cJSON_AddStringToObject(root, "arm", t->arm);
    cJSON_AddBoolToObject(root, "forced", call->forced);
    cJSON_AddStringToObject(root, "unit", call->unit);
    cJSON_AddStringToObject(root, "unit_hash", call->unit_hash);
    describe_markers(call, root);
    if (call->attempts == NULL) {
        cJSON_AddNumberToObject(root, "attempts", 0);
        cJSON_AddArrayToObject(root, "checked");
        cJSON_AddArrayToObject(root, "violations");
    }
    cJSON_AddItemToObject(root, "usage", call->usage != NULL ? call->usage : cJSON_CreateNull());
    call->usage = NULL;
    if (call->prompt != NULL) {
        cJSON_AddItemToObject(root, "prompt", cJSON_CreateRaw(call->prompt));
        cJSON_AddItemToObject(root, "answer",
                              call->answer_text != NULL ? cJSON_CreateRaw(call->answer_text)
                                                        : cJSON_CreateNull());
    }
    char *text = members_text(root);
    if (call->prompt != NULL)
        cairn_log_mask(text, strlen(text), cairn_endpoint_key(t->backend->endpoint));
    free(call->req->experiment_fields);
    call->req->experiment_fields = text;
}

static void free_headers(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static void call_free(struct proxy_call *call)
{
    log_markers(call);
    log_experiment(call);
    cJSON_Delete(call->usage);
    cairn_annotation_cancel(call->annotation);
    cairn_chat_request_free(&call->chat);
    if (call->prompt != NULL)
        cairn_log_content(call->req->id, call->tenant->name, call->prompt, call->answer_text,
                          cairn_endpoint_key(call->tenant->backend->endpoint));
    free(call->prompt);
    free(call->answer_text);
    free(call->path);
    if (call->attempts != NULL)
        cairn_stats_validation(call->proxy->stats, call->tenant->name, call->req->arm,
                               cairn_attempts_count(call->attempts),
                               cairn_attempts_violations(call->attempts), call->sent.tx);
    cairn_attempts_free(call->attempts);
    if (call->deadline != NULL)
        event_free(call->deadline);
    cairn_stream_observer_free(call->observer);
    if (call->observed != NULL)
        evbuffer_free(call->observed);
    if (call->streaming)
        call->proxy->streams--;
    cairn_limiter_release(call->tenant->limiter);
    cairn_snapshot_unref(call->snap);
    cairn_sse_unwrap_free(call->unwrap);
    if (call->scratch != NULL)
        evbuffer_free(call->scratch);
    free_headers(call->relay, call->nrelay);
    free_headers(call->best_relay, call->nbest_relay);
    /* The request may outlive the call (its record is written later):
     * nothing of it may point here any more. */
    call->req->cancel = NULL;
    call->req->drained = NULL;
    call->req->handler_ctx = NULL;
    if (call->answer != NULL)
        evbuffer_free(call->answer);
    free(call->content_type);
    free(call);
}

static void keep_header(struct proxy_call *call, const char *name, const char *value)
{
    size_t nlen = strlen(name), vlen = strlen(value);
    char *block = cairn_malloc(nlen + vlen + 2);
    memcpy(block, name, nlen + 1);
    memcpy(block + nlen + 1, value, vlen + 1);
    call->relay = cairn_realloc(call->relay, (call->nrelay + 1) * sizeof(*call->relay));
    call->relay[call->nrelay++] = block;
}

/* Put the upstream's headers on the response: only when the answer is the
 * upstream's own (or its status with cairn's body), never on a 502/504. */
static void relay_headers(struct proxy_call *call)
{
    char **list = call->best_relay != NULL ? call->best_relay : call->relay;
    size_t n = call->best_relay != NULL ? call->nbest_relay : call->nrelay;
    for (size_t i = 0; i < n; i++)
        cairn_response_add_header(call->req, list[i], list[i] + strlen(list[i]) + 1);
}

/* Whether the upstream headers to relay include `name`. */
static bool relays_header(const struct proxy_call *call, const char *name)
{
    char *const *list = call->best_relay != NULL ? call->best_relay : call->relay;
    size_t n = call->best_relay != NULL ? call->nbest_relay : call->nrelay;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(list[i], name) == 0)
            return true;
    return false;
}

static void on_head(void *ctx, int status, const struct cairn_upstream_header *headers,
                    size_t nheaders)
{
    struct proxy_call *call = ctx;
    struct cairn_request *req = call->req;
    bool cache_control = false;
    call->status = status;
    req->upstream_status = status;
    req->upstream_first_byte_us = cairn_now_us() - req->start_us;

    for (size_t i = 0; i < nheaders; i++) {
        const char *name = headers[i].name;
        if (strcasecmp(name, "content-type") == 0 && call->content_type == NULL)
            call->content_type = cairn_strdup(headers[i].value);
        else if (strcasecmp(name, "x-request-id") == 0)
            keep_header(call, "X-Upstream-Request-Id", headers[i].value);
        cache_control |= strcasecmp(name, "cache-control") == 0;
        /* cairn's own headers say what cairn did; an upstream (another
         * cairn, say) does not get to say it for us. */
        if (!in_list(response_header_denylist, name) && strncasecmp(name, "x-cairn-", 8) != 0)
            keep_header(call, name, headers[i].value);
    }
    if (call->want_stream && status == 200 && call->content_type != NULL &&
        strncasecmp(call->content_type, "text/event-stream", 17) == 0) {
        call->streaming = true;
        call->proxy->streams++;
        call->scratch = evbuffer_new();
        if (call->tenant->policy->markers.unwrap)
            call->unwrap =
                cairn_sse_unwrap_new(call->tenant->marking.format, call->nchoices, &call->model);
        if (call->attempts != NULL) {
            call->observer = cairn_stream_observer_new(CAIRN_VALIDATE_MAX_TEXT);
            call->observed = evbuffer_new();
        }
        relay_headers(call);
        if (!cache_control)
            cairn_response_add_header(req, "Cache-Control", "no-cache");
        cairn_response_start(req, 200, call->content_type);
    }
}

/* Stream bytes from the upstream on their way to the client: through the
 * unwrapper while the model's block may still come, through the observer
 * when the answer is validated. @return -1 on a broken stream. */
static char *report_comment(cJSON *report);

/* Validate a streamed answer and release its report and [DONE] event
 * (into call->observed), once. */
static void report_stream(struct proxy_call *call)
{
    if (call->reported)
        return;
    call->reported = true;
    size_t tlen;
    const char *text = cairn_stream_observer_text(call->observer, &tlen);
    cairn_attempts_add_text(call->attempts, text, tlen);
    cJSON *report = cJSON_CreateObject();
    cairn_attempts_report(call->attempts, report);
    char *comment = report_comment(report);
    cairn_stream_observer_finish(call->observer, comment, call->observed);
    free(comment);
}

static int stream_out(struct proxy_call *call, const char *data, size_t len)
{
    bool unwrapping = call->unwrap != NULL && !cairn_sse_unwrap_done(call->unwrap);
    struct evbuffer *out = NULL; /* NULL: data[0..len) goes out as it is */
    if (unwrapping) {
        if (cairn_sse_unwrap_feed(call->unwrap, data, len, call->scratch) < 0)
            return -1;
        len = evbuffer_get_length(call->scratch);
        data = len > 0 ? (const char *)evbuffer_pullup(call->scratch, -1) : "";
        out = call->scratch;
    }
    if (call->observer != NULL) {
        if (cairn_stream_observer_feed(call->observer, data, len, call->observed) < 0)
            return -1;
        if (unwrapping)
            evbuffer_drain(call->scratch, len);
        if (cairn_stream_observer_done(call->observer))
            report_stream(call); /* the answer is complete: no need to wait for the end */
        out = call->observed;
    }
    if (out == NULL) {
        call->congested = !cairn_response_write(call->req, data, len);
        return 0;
    }
    size_t n = evbuffer_get_length(out);
    if (n > 0)
        call->congested = !cairn_response_write(call->req, evbuffer_pullup(out, -1), n);
    evbuffer_drain(out, n);
    return 0;
}

/* Keep the last bytes of the upstream's stream: where it ends tells a
 * finished stream from one cut short (ends_between_events). */
static void keep_tail(struct proxy_call *call, const char *data, size_t len)
{
    size_t cap = sizeof(call->tail);
    if (len >= cap) {
        memcpy(call->tail, data + len - cap, cap);
        call->ntail = cap;
        return;
    }
    size_t keep = call->ntail + len > cap ? cap - len : call->ntail;
    memmove(call->tail, call->tail + call->ntail - keep, keep);
    memcpy(call->tail + keep, data, len);
    call->ntail = keep + len;
}

/* Whether the stream ends where an event does: it is empty, or its last
 * line is empty (WHATWG SSE: lines end in CRLF, LF or CR, and an empty
 * line ends an event). One that stops inside an event was cut short — an
 * upstream that died, framed by closing its connection — and a client
 * would drop that last event without a word: it must see a broken stream. */
static bool ends_between_events(const struct proxy_call *call)
{
    const char *t = call->tail;
    size_t n = call->ntail;
    if (n >= 2 && t[n - 2] == '\r' && t[n - 1] == '\n')
        n -= 2; /* the last line's end... */
    else if (n >= 1 && (t[n - 1] == '\n' || t[n - 1] == '\r'))
        n -= 1;
    else
        return call->ntail == 0;
    return n == 0 || t[n - 1] == '\n' || t[n - 1] == '\r'; /* ...ends an empty line */
}

static const char *const STREAM_ENDS_INSIDE_EVENT = "the upstream's stream ended inside an event";

static int on_data(void *ctx, const char *data, size_t len)
{
    struct proxy_call *call = ctx;
    if (call->streaming) {
        if (call->congested) {
            call->paused = true;
            return 1; /* not consumed: curl delivers it again on resume */
        }
        if (stream_out(call, data, len) < 0) {
            call->failure = CAIRN_UPSTREAM_EPROTOCOL;
            return -1;
        }
        keep_tail(call, data, len);
        return 0;
    }
    size_t max = (size_t)call->tenant->backend->cfg->max_response_bytes;
    if (evbuffer_get_length(call->answer) + len > max) {
        call->failure = CAIRN_UPSTREAM_ETOO_LARGE;
        return -1;
    }
    evbuffer_add(call->answer, data, len);
    return 0;
}

/* The client drained its backlog: let the upstream continue. */
static void on_client_drained(void *ctx)
{
    struct proxy_call *call = ctx;
    call->congested = false;
    if (call->paused && call->transfer != NULL) {
        call->paused = false;
        cairn_transfer_resume(call->transfer);
    }
}

/* The client went away: stop the upstream at once. */
static void on_client_gone(void *ctx)
{
    struct proxy_call *call = ctx;
    cairn_transfer_cancel(call->transfer);
    call_free(call); /* cancels the annotator call too, if one is out */
}

static void fail_upstream(struct cairn_request *req, const char *errstr)
{
    bool timeout = errstr == CAIRN_UPSTREAM_ECONNECT_TIMEOUT ||
                   errstr == CAIRN_UPSTREAM_EFIRST_BYTE_TIMEOUT ||
                   errstr == CAIRN_UPSTREAM_EIDLE_TIMEOUT;
    const char *code = timeout                               ? "upstream_timeout"
                       : errstr == CAIRN_UPSTREAM_ETOO_LARGE ? "upstream_response_too_large"
                       : errstr == CAIRN_UPSTREAM_ECONNECT   ? "upstream_unreachable"
                                                             : "upstream_error";
    cairn_log_msg("warn", "request %s: %s", req->id, errstr);
    cairn_response_error(req, timeout ? 504 : 502, code, "%s", errstr);
}

/* Remove the model's own block from a completion into `model`.
 * @return whether it had one. */
static bool take_model_block(struct proxy_call *call, cJSON *tree, struct cairn_markers *model)
{
    cairn_markers_init(model, call->sent.tx);
    return call->tenant->policy->markers.unwrap &&
           cairn_unwrap_json(call->tenant->marking.format, tree, model) > 0;
}

/* The "cairn" extension member: {"markers": {…sent…}, "model_markers":
 * {…}, "attempts": N, "violations": […]}, and the headers that go with it. */
static cJSON *cairn_report(struct proxy_call *call)
{
    cJSON *ext = cJSON_CreateObject();
    cairn_markers_to_json(&call->sent, cJSON_AddObjectToObject(ext, "markers"));
    if (cairn_markers_count(&call->model) > 0) {
        char hdr[1024];
        cairn_markers_to_json(&call->model, cJSON_AddObjectToObject(ext, "model_markers"));
        cairn_markers_format_header(&call->model, hdr, sizeof(hdr));
        cairn_response_add_header(call->req, "X-Cairn-Model-Markers", hdr);
    }
    if (call->attempts != NULL) {
        char n[16], list[512];
        cairn_attempts_report(call->attempts, ext);
        snprintf(n, sizeof(n), "%zu", cairn_attempts_count(call->attempts));
        cairn_attempts_violation_list(call->attempts, list, sizeof(list));
        cairn_response_add_header(call->req, "X-Cairn-Attempts", n);
        cairn_response_add_header(call->req, "X-Cairn-Violations", list);
    }
    return ext;
}

/* A successful answer, with the "cairn" report when there is anything to
 * report; the upstream's own bytes go out untouched when there is not. */
/* The token usage of the answer relayed, for the experiment log. */
static void keep_usage(struct proxy_call *call, const cJSON *completion)
{
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(completion, "usage");
    if (call->tenant->arm == NULL || !cJSON_IsObject(usage))
        return;
    cJSON_Delete(call->usage);
    call->usage = cJSON_Duplicate(usage, true);
}

static void relay_completion(struct proxy_call *call, cJSON *tree, bool changed, const char *body,
                             size_t len)
{
    struct cairn_request *req = call->req;
    keep_usage(call, tree);
    bool report = tree != NULL && call->sent.tx != NULL &&
                  (changed || call->attempts != NULL || cairn_markers_count(&call->sent) > 0);
    size_t n;
    if (!report) {
        if (call->prompt != NULL && tree != NULL)
            call->answer_text = cairn_json_print(tree, &n);
        cairn_response_send(req, call->status, call->content_type, body, len);
        return;
    }
    /* cairn's member replaces one of the same name from the upstream. */
    cJSON_DeleteItemFromObjectCaseSensitive(tree, "cairn");
    cJSON_AddItemToObject(tree, "cairn", cairn_report(call));
    char *out = cairn_json_print(tree, &n);
    cairn_response_send(req, 200, "application/json", out, n);
    if (call->prompt != NULL)
        call->answer_text = out;
    else
        free(out);
}

/* "cairn {…}": a report (taken) as the text of an SSE comment line. */
static char *report_comment(cJSON *report)
{
    size_t n;
    char *json = cairn_json_print(report, &n);
    cJSON_Delete(report);
    char *comment = cairn_malloc(n + sizeof("cairn "));
    snprintf(comment, n + sizeof("cairn "), "cairn %s", json);
    free(json);
    return comment;
}

/* A complete answer has gone to the client: its experiment may judge it
 * against another arm's, in the background (shadow.h). */
static void offer_shadow(struct proxy_call *call, const cJSON *answer)
{
    struct cairn_proxy *proxy = call->proxy;
    if (call->owner == NULL || !call->owner->experiment->shadow.enabled ||
        cairn_server_draining(proxy->server))
        return;
    if (proxy->shadows == NULL) /* on first use: in the worker, on its loop */
        proxy->shadows = cairn_shadows_new(proxy->base, proxy->stats, proxy->annotation_cache);
    cairn_shadow_offer(proxy->shadows, call->snap, call->owner, call->tenant, call->req, answer);
}

/* The budget is spent (or the answer is good): the best attempt goes to
 * the client, as JSON or, for a held stream, replayed as SSE. */
static void finish_attempts(struct proxy_call *call)
{
    cJSON *best = cairn_attempts_take_best(call->attempts);
    relay_headers(call);
    if (!call->buffer_stream) {
        relay_completion(call, best, true, NULL, 0);
        offer_shadow(call, best);
        cJSON_Delete(best);
        return;
    }
    keep_usage(call, best);
    char *comment = report_comment(cairn_report(call));
    struct evbuffer *sse = evbuffer_new();
    cairn_completion_to_sse(best, call->include_usage, comment, sse);
    free(comment);
    if (!relays_header(call, "cache-control"))
        cairn_response_add_header(call->req, "Cache-Control", "no-cache");
    cairn_response_start(call->req, 200, "text/event-stream");
    cairn_response_write(call->req, evbuffer_pullup(sse, -1), evbuffer_get_length(sse));
    cairn_response_end(call->req);
    offer_shadow(call, best);
    size_t n;
    if (call->prompt != NULL)
        call->answer_text = cairn_json_print(best, &n);
    evbuffer_free(sse);
    cJSON_Delete(best);
}

/* The retry deadline passed with an attempt in flight: it is abandoned and
 * the best answer so far goes out. */
static void on_attempts_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct proxy_call *call = arg;
    if (call->transfer == NULL)
        return;
    cairn_transfer_cancel(call->transfer);
    call->transfer = NULL;
    finish_attempts(call);
    call_free(call);
}

static void forward(struct proxy_call *call, const char *path, char *body, size_t len);

/* Ask again: the per-attempt state is reset and the next body goes out. */
static void next_attempt(struct proxy_call *call)
{
    evbuffer_drain(call->answer, evbuffer_get_length(call->answer));
    free(call->content_type);
    call->content_type = NULL;
    free_headers(call->relay, call->nrelay);
    call->relay = NULL;
    call->nrelay = 0;
    call->want_stream = false; /* retries are asked for whole (see start_validation) */
    call->status = 0;
    call->failure = NULL;
    if (call->deadline == NULL) {
        uint64_t at =
            call->req->start_us + (uint64_t)call->tenant->policy->validation.deadline_ms * 1000u;
        uint64_t now = cairn_now_us(), left = at > now ? at - now : 0;
        struct timeval tv = {(time_t)(left / 1000000u), (suseconds_t)(left % 1000000u)};
        call->deadline = evtimer_new(call->proxy->base, on_attempts_deadline, call);
        evtimer_add(call->deadline, &tv);
    }
    size_t len;
    char *body = cairn_attempts_next_body(call->attempts, &len);
    forward(call, call->path, body, len);
}

/* A 200 chat completion: checked, and either relayed or asked again.
 * @return true when another attempt is under way. */
static bool judge_completion(struct proxy_call *call, cJSON *tree, const char *body, size_t len)
{
    struct cairn_markers model;
    bool changed = take_model_block(call, tree, &model);
    if (call->attempts == NULL) {
        call->model = model;
        relay_headers(call);
        relay_completion(call, tree, changed, body, len);
        offer_shadow(call, tree);
        cJSON_Delete(tree);
        return false;
    }
    bool again = cairn_attempts_add(call->attempts, tree, cairn_now_us());
    if (cairn_attempts_last_is_best(call->attempts)) {
        /* What goes with the answer goes with it: its block, its headers. */
        call->model = model;
        free_headers(call->best_relay, call->nbest_relay);
        call->best_relay = call->relay;
        call->nbest_relay = call->nrelay;
        call->relay = NULL;
        call->nrelay = 0;
    }
    if (again) {
        next_attempt(call);
        return true;
    }
    finish_attempts(call);
    return false;
}

/* GET /v1/models for a tenant limited to some models: the list without
 * the others, so that a client picking from it picks one it may use. */
static void relay_model_list(struct proxy_call *call, cJSON *tree)
{
    cJSON *data = cJSON_GetObjectItemCaseSensitive(tree, "data");
    cJSON *model = cJSON_IsArray(data) ? data->child : NULL;
    while (model != NULL) {
        cJSON *next = model->next;
        cJSON *id = cJSON_GetObjectItemCaseSensitive(model, "id");
        if (!cJSON_IsString(id) || !cairn_tenant_allows_model(call->tenant, id->valuestring))
            cJSON_Delete(cJSON_DetachItemViaPointer(data, model));
        model = next;
    }
    size_t n;
    char *out = cairn_json_print(tree, &n);
    cairn_response_send(call->req, call->status, call->content_type, out, n);
    free(out);
}

/* A complete buffered answer: relay it if it is what it claims to be.
 * JSON answers must parse (later stages read them, and a client must not
 * get half an object with a 200); error bodies must be OpenAI-shaped; and
 * nothing the upstream said about the gateway's own key is relayed. A
 * later attempt that fails leaves the client with the best earlier one.
 * @return true when another attempt is under way. */
static bool relay_answer(struct proxy_call *call)
{
    struct cairn_request *req = call->req;
    int status = call->status;
    size_t len = evbuffer_get_length(call->answer);
    const char *body = (const char *)evbuffer_pullup(call->answer, -1);
    bool json = is_json_content_type(call->content_type);
    cJSON *tree = NULL;
    if (json || status >= 400 || call->filter_models) {
        char why[128];
        tree = cairn_json_parse_strict(body != NULL ? body : "", len,
                                       (int)call->snap->cfg.limits.json_depth, why, sizeof(why));
    }
    bool retried = call->attempts != NULL && cairn_attempts_count(call->attempts) > 0;
    if (retried && !(status == 200 && cJSON_IsObject(tree))) {
        cairn_log_msg("warn", "request %s: attempt %zu failed (HTTP %d); answering with the best",
                      req->id, cairn_attempts_count(call->attempts) + 1, status);
        cJSON_Delete(tree);
        finish_attempts(call);
        return false;
    }
    bool shaped = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(tree, "error"));
    if (status == 401 || status == 403) {
        cairn_response_error(req, status, "upstream_auth_failed",
                             "the upstream API rejected the gateway's credentials");
    } else if (status < 400 && json && tree == NULL) {
        fail_upstream(req, CAIRN_UPSTREAM_EPROTOCOL);
    } else if (status >= 300 && status < 400) {
        /* Redirects are not followed, and not relayed: they would send the
         * client to the upstream itself, around the gateway. */
        cairn_response_error(req, 502, "upstream_error",
                             "the upstream answered with a redirect (HTTP %d)", status);
    } else if (status >= 400) {
        relay_headers(call); /* the status is the upstream's (Retry-After matters) */
        if (shaped)
            cairn_response_send(req, status, call->content_type, body, len);
        else
            cairn_response_error(req, status, "upstream_error", "the upstream answered HTTP %d",
                                 status);
    } else if (call->filter_models && tree == NULL) {
        fail_upstream(req, CAIRN_UPSTREAM_EPROTOCOL); /* a list we cannot cut: not relayed */
    } else if (call->filter_models) {
        relay_headers(call);
        relay_model_list(call, tree);
    } else if (status == 200 && cJSON_IsObject(tree) && call->sent.tx != NULL) {
        return judge_completion(call, tree, body, len); /* takes the tree */
    } else {
        relay_headers(call);
        relay_completion(call, tree, false, body, len);
    }
    cJSON_Delete(tree);
    return false;
}

/* A stream ended well: what the unwrapper still holds, then the
 * validation report (observe mode), then the end. */
static void end_stream(struct proxy_call *call)
{
    if (call->unwrap != NULL)
        cairn_sse_unwrap_finish(call->unwrap, call->scratch);
    struct evbuffer *out = call->scratch;
    if (call->observer != NULL) {
        size_t n = evbuffer_get_length(call->scratch);
        cairn_stream_observer_feed(call->observer,
                                   n > 0 ? (const char *)evbuffer_pullup(call->scratch, -1) : "", n,
                                   call->observed);
        evbuffer_drain(call->scratch, n);
        report_stream(call);                                                /* unless [DONE] did */
        cairn_stream_observer_finish(call->observer, NULL, call->observed); /* what is left */
        out = call->observed;
    }
    size_t n = evbuffer_get_length(out);
    if (n > 0)
        cairn_response_write(call->req, evbuffer_pullup(out, -1), n);
    evbuffer_drain(out, n);
    cairn_response_end(call->req);
}

static void on_done(void *ctx, const char *errstr)
{
    struct proxy_call *call = ctx;
    struct cairn_request *req = call->req;
    call->transfer = NULL;
    if (call->streaming) {
        if (errstr == NULL && !ends_between_events(call))
            errstr = call->failure = STREAM_ENDS_INSIDE_EVENT;
        if (errstr == NULL) {
            end_stream(call);
        } else {
            cairn_log_msg("warn", "request %s: stream cut: %s", req->id,
                          call->failure != NULL ? call->failure : errstr);
            req->error_code = "upstream_stream_broken";
            cairn_response_abort(req);
        }
    } else if (errstr != NULL && call->attempts != NULL &&
               cairn_attempts_count(call->attempts) > 0) {
        cairn_log_msg("warn", "request %s: attempt %zu failed (%s); answering with the best",
                      req->id, cairn_attempts_count(call->attempts) + 1, errstr);
        finish_attempts(call);
    } else if (errstr != NULL) {
        fail_upstream(req, call->failure != NULL ? call->failure : errstr);
    } else if (relay_answer(call)) {
        return; /* another attempt is under way: the call lives on */
    }
    call_free(call);
}

static const struct cairn_transfer_callbacks transfer_callbacks = {on_head, on_data, on_done};

/* --- forwarding ---------------------------------------------------------- */

#define MAX_FORWARDED_HEADERS 128

/* Headers named by any Connection header are hop-by-hop too (RFC 9110
 * §7.6.1). */
static bool named_by_connection(const struct cairn_http_head *head, const char *name)
{
    for (size_t i = 0; i < head->nheaders; i++)
        if (strcasecmp(head->headers[i].name, "connection") == 0 &&
            cairn_http_list_has_token(head->headers[i].value, name))
            return true;
    return false;
}

/* A call for an admitted request of `tenant`: it holds the snapshot and
 * the tenant's in-flight slot until call_free. */
static struct proxy_call *call_new(struct cairn_proxy *proxy, struct cairn_request *req,
                                   const struct cairn_tenant *tenant)
{
    struct proxy_call *call = cairn_calloc(1, sizeof(*call));
    call->proxy = proxy;
    call->snap = cairn_snapshot_ref(proxy->current);
    call->tenant = tenant;
    call->req = req;
    call->nchoices = 1;
    call->answer = evbuffer_new();
    return call;
}

/* Start the upstream transfer of `call`; the answer completes the request.
 * `body` (malloc'd, or NULL for a GET) goes to the transfer. */
static void forward(struct proxy_call *call, const char *path, char *body, size_t len)
{
    struct cairn_request *req = call->req;
    const struct cairn_http_head *head = &req->head;
    const char *lines[MAX_FORWARDED_HEADERS + 3];
    const struct cairn_http_header *pass[MAX_FORWARDED_HEADERS];
    size_t n = 0, bytes = 0;

    for (size_t i = 0; i < head->nheaders && n < MAX_FORWARDED_HEADERS; i++) {
        const struct cairn_http_header *h = &head->headers[i];
        if (in_list(request_header_denylist, h->name) || h->value_len == 0 ||
            named_by_connection(head, h->name))
            continue;
        pass[n++] = h;
        bytes += h->name_len + h->value_len + 3;
    }
    /* "Name: value" lines, all in one block. */
    char *block = cairn_malloc(bytes + 1), *at = block;
    for (size_t i = 0; i < n; i++) {
        lines[i] = at;
        memcpy(at, pass[i]->name, pass[i]->name_len);
        at += pass[i]->name_len;
        *at++ = ':';
        *at++ = ' ';
        memcpy(at, pass[i]->value, pass[i]->value_len + 1); /* with its NUL */
        at += pass[i]->value_len + 1;
    }
    char idline[CAIRN_REQUEST_ID_MAX + 16] = "X-Request-Id: ";
    memcpy(idline + 14, req->id, strnlen(req->id, CAIRN_REQUEST_ID_MAX) + 1);
    lines[n++] = idline;
    if (body != NULL)
        lines[n++] = "Content-Type: application/json";
    lines[n] = NULL;

    req->cancel = on_client_gone;
    req->drained = on_client_drained;
    req->handler_ctx = call;
    call->transfer = cairn_transfer_start(call->tenant->backend->endpoint, path, lines, body, len,
                                          &transfer_callbacks, call);
    free(block);
}

/* "/v1/chat/completions" → "/chat/completions" (+ "?query"): the base URL
 * already names the API version. */
static void upstream_path(const struct cairn_request *req, char *out, size_t outlen)
{
    const char *rest = req->path + 3; /* routes all start with "/v1" */
    if (req->query != NULL)
        snprintf(out, outlen, "%s?%.*s", rest,
                 (int)(req->head.target + req->head.target_len - req->query), req->query);
    else
        snprintf(out, outlen, "%s", rest);
}

/* --- routes --------------------------------------------------------------- */

/* Answer an error for a call that goes no further. */
static void reject(struct proxy_call *call, int status, const char *code, const char *message)
{
    cairn_response_error(call->req, status, code, "%s", message);
    call_free(call);
}

/* Set up the validation of a chat request's answer, when its policy checks
 * a marker it was sent. A stream in "buffer" mode is asked for as a whole
 * answer, which is validated (and retried) before it is replayed as SSE. */
static void start_validation(struct proxy_call *call, struct cairn_chat_request *chat)
{
    const struct cairn_tenant *tenant = call->tenant;
    const struct cairn_validation_config *vc = &tenant->policy->validation;
    bool buffer = chat->stream && vc->stream == CAIRN_STREAM_BUFFER;
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(chat->root, "stream_options");
    bool usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(opts, "include_usage"));
    /* The body kept for further attempts, only when there can be some.
     * Another attempt is only ever asked for whole: a stream in observe
     * mode is never asked again, and one answered with JSON, or held in
     * buffer mode, is read whole. */
    cJSON *as_sent = NULL;
    if (vc->attempts > 1) {
        as_sent = cJSON_Duplicate(chat->root, true);
        cJSON_DeleteItemFromObjectCaseSensitive(as_sent, "stream");
        cJSON_DeleteItemFromObjectCaseSensitive(as_sent, "stream_options");
    }
    uint64_t deadline = call->req->start_us + (uint64_t)vc->deadline_ms * 1000u;
    call->attempts = cairn_attempts_new(call->snap->validator, vc, &tenant->marking, &call->sent,
                                        as_sent, (int)call->snap->cfg.limits.json_depth, deadline);
    if (call->attempts != NULL && buffer) {
        cJSON_DeleteItemFromObjectCaseSensitive(chat->root, "stream");
        cJSON_DeleteItemFromObjectCaseSensitive(chat->root, "stream_options");
        call->want_stream = false;
        call->buffer_stream = true;
        call->include_usage = usage;
    }
}

static void send_chat(struct proxy_call *call);
static void on_annotated(void *ctx, const struct cairn_markers *model, const char *outcome);

/* The unit a request of experiment `e` is assigned by, and its name for
 * the log. A request without one is a unit of its own: a random one, not
 * its request id, which a caller may choose (X-Request-Id) and so pick its
 * arm; `own` holds it. */
static const char *experiment_unit(const struct cairn_experiment_config *e,
                                   const struct cairn_request *req, const cJSON *root,
                                   const char **name, char own[33])
{
    static const char *const names[] = {"user", "header", "key", "request"};
    const char *unit = NULL;
    if (e->unit == CAIRN_UNIT_USER) {
        const cJSON *user = cJSON_GetObjectItemCaseSensitive(root, "user");
        if (cJSON_IsString(user) && user->valuestring[0] != '\0')
            unit = user->valuestring;
    } else if (e->unit != CAIRN_UNIT_REQUEST) {
        const struct cairn_http_header *h = cairn_http_head_find(
            &req->head, e->unit == CAIRN_UNIT_HEADER ? e->unit_header : "authorization");
        if (h != NULL && h->value_len > 0)
            unit = h->value;
    }
    *name = unit != NULL ? names[e->unit] : "request";
    if (unit != NULL)
        return unit;
    unsigned char rnd[16];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return req->id; /* no randomness to be had: the id is still one per request */
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(own + 2 * i, 3, "%02x", rnd[i]);
    return own;
}

/* A request of a tenant with an experiment runs under one of its arms from
 * here on: the one its unit is assigned to, or the one X-Cairn-Arm names
 * where the experiment lets callers choose (QA). Every answer names it.
 * @return 0, or the status of a refusal with `err` and `code` set. */
static int choose_arm(struct proxy_call *call, struct cairn_chat_request *chat, const char **code,
                      char *err, size_t errlen)
{
    const struct cairn_experiment_config *e = call->tenant->experiment;
    struct cairn_request *req = call->req;
    if (e == NULL)
        return 0;
    struct cairn_assignment a;
    char own[33];
    const char *unit = experiment_unit(e, req, chat->root, &call->unit, own);
    cairn_experiment_assign(e, unit, strlen(unit), &a);
    const struct cairn_http_header *force = cairn_http_head_find(&req->head, "x-cairn-arm");
    if (force != NULL) {
        long arm = cairn_experiment_find_arm(e, force->value);
        if (!e->allow_force || arm < 0) {
            *code = e->allow_force ? "unknown_arm" : "arm_choice_not_allowed";
            snprintf(err, errlen,
                     e->allow_force ? "experiment '%s' has no arm '%.64s'"
                                    : "experiment '%s' does not let callers choose an arm",
                     e->name, force->value);
            return e->allow_force ? 400 : 403;
        }
        a.arm = (size_t)arm;
        call->forced = true;
    }
    const struct cairn_arm_config *arm = &e->arms[a.arm];
    call->owner = call->tenant;
    call->tenant = &call->tenant->arms[a.arm];
    memcpy(call->unit_hash, a.unit_hash, sizeof(call->unit_hash));
    snprintf(req->arm, sizeof(req->arm), "%s", arm->name);
    cairn_response_add_header(req, "X-Cairn-Experiment", e->name);
    cairn_response_add_header(req, "X-Cairn-Arm", arm->name);
    if (arm->model != NULL) {
        cJSON_ReplaceItemInObjectCaseSensitive(chat->root, "model", cJSON_CreateString(arm->model));
        chat->model = arm->model;
    }
    return 0;
}

static void do_chat(struct proxy_call *call)
{
    struct cairn_request *req = call->req;
    const struct cairn_tenant *tenant = call->tenant; /* then its arm, in an experiment */
    const struct cairn_http_header *ct = cairn_http_head_find(&req->head, "content-type");
    if (ct == NULL || !is_json_content_type(ct->value)) {
        reject(call, 415, "unsupported_media_type", "Content-Type must be application/json");
        return;
    }
    const struct cairn_http_header *ce = cairn_http_head_find(&req->head, "content-encoding");
    if (ce != NULL && strcasecmp(ce->value, "identity") != 0) {
        reject(call, 415, "unsupported_media_type", "only Content-Encoding identity is supported");
        return;
    }
    size_t len = evbuffer_get_length(req->body);
    const char *raw = (const char *)evbuffer_pullup(req->body, -1);
    struct cairn_chat_request chat;
    char err[256];
    if (cairn_chat_request_parse(&chat, raw ? raw : "", len, (int)call->snap->cfg.limits.json_depth,
                                 err, sizeof(err)) < 0) {
        reject(call, 400, "invalid_request", err);
        return;
    }
    if (!cairn_tenant_allows_model(tenant, chat.model)) {
        snprintf(err, sizeof(err), "the model '%.100s' is not available to this API key",
                 chat.model);
        cairn_chat_request_free(&chat);
        reject(call, 403, "model_not_allowed", err);
        return;
    }
    const char *code;
    int refused = choose_arm(call, &chat, &code, err, sizeof(err));
    if (refused != 0) {
        cairn_chat_request_free(&chat);
        reject(call, refused, code, err);
        return;
    }
    tenant = call->tenant;
    call->want_stream = chat.stream;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(chat.root, "n");
    if (cJSON_IsNumber(n))
        call->nchoices = (size_t)n->valuedouble;
    cairn_markers_init(&call->model, tenant->marking.tx);
    const struct cairn_http_header *pins = cairn_http_head_find(&req->head, "x-cairn-markers");
    int status = cairn_marking_decide(&tenant->marking, chat.root, pins ? pins->value : NULL,
                                      &call->sent, err, sizeof(err));
    if (status != 0) {
        cairn_chat_request_free(&chat);
        reject(call, status, status == 403 ? "markers_not_allowed" : "invalid_markers", err);
        return;
    }
    call->chat = chat;
    if (tenant->annotator == NULL) {
        send_chat(call);
        return;
    }
    /* The client may leave while the annotator answers. */
    req->cancel = on_client_gone;
    req->handler_ctx = call;
    call->annotation =
        cairn_annotation_start(call->proxy->base, call->proxy->annotation_cache, call->snap, tenant,
                               call->chat.messages, req->id, on_annotated, call);
}

/* The annotator model has answered, or failed (the request goes on with
 * the markers it has: fail-open). */
static void on_annotated(void *ctx, const struct cairn_markers *model, const char *outcome)
{
    struct proxy_call *call = ctx;
    call->annotation = NULL;
    call->annotation_outcome = outcome;
    cairn_stats_annotation(call->proxy->stats, call->tenant->name, "model", outcome);
    if (outcome == CAIRN_ANNOTATION_OK || outcome == CAIRN_ANNOTATION_CACHE_HIT)
        cairn_marking_merge_model(&call->tenant->marking, &call->sent, model);
    else if (outcome != CAIRN_ANNOTATION_BREAKER_OPEN) /* the breaker's own: no news */
        cairn_log_msg("warn", "request %s: annotator model %s; going on without its markers",
                      call->req->id, outcome);
    send_chat(call);
}

/* The markers are decided: append their block, set up validation, and
 * send the request upstream. */
static void send_chat(struct proxy_call *call)
{
    struct cairn_request *req = call->req;
    const struct cairn_tenant *tenant = call->tenant;
    cairn_marking_append(&tenant->marking, call->chat.root, &call->sent);
    if (tenant->marking.annotator != NULL)
        cairn_stats_annotation(call->proxy->stats, tenant->name, "rules", "ok");
    cairn_stats_markers(call->proxy->stats, tenant->name, &call->sent);
    char hdr[1024];
    cairn_markers_format_header(&call->sent, hdr, sizeof(hdr));
    if (hdr[0] != '\0')
        cairn_response_add_header(req, "X-Cairn-Markers", hdr);
    start_validation(call, &call->chat);
    size_t outlen;
    char *out = cairn_chat_request_print(&call->chat, &outlen);
    cairn_chat_request_free(&call->chat);
    memset(&call->chat, 0, sizeof(call->chat));
    if (tenant->policy->log_content && cairn_log_content_enabled())
        call->prompt = cairn_strndup(out, outlen);
    char path[512];
    upstream_path(req, path, sizeof(path));
    call->path = cairn_strdup(path);
    forward(call, path, out, outlen);
}

/* GET /v1/models and /v1/models/{id}: the upstream's answer, limited to
 * the models the tenant may use. */
static void do_models(struct proxy_call *call)
{
    const char *id = call->req->path + strlen("/v1/models");
    if (*id == '/' && !cairn_tenant_allows_model(call->tenant, id + 1)) {
        reject(call, 403, "model_not_allowed", "this model is not available to this API key");
        return;
    }
    call->filter_models = *id == '\0' && call->tenant->policy->models.n > 0;
    char path[512];
    upstream_path(call->req, path, sizeof(path));
    forward(call, path, NULL, 0);
}

static void do_health(struct cairn_proxy *proxy, struct cairn_request *req)
{
    (void)proxy;
    static const char ok[] = "{\"status\":\"ok\"}\n";
    cairn_response_send(req, 200, "application/json", ok, sizeof(ok) - 1);
}

static void do_ready(struct cairn_proxy *proxy, struct cairn_request *req)
{
    static const char ready[] = "{\"status\":\"ready\"}\n";
    if (cairn_server_draining(proxy->server)) {
        cairn_response_error(req, 503, "draining", "the gateway is shutting down");
        return;
    }
    cairn_response_send(req, 200, "application/json", ready, sizeof(ready) - 1);
}

/* The tenant of a request to an upstream route, admitted under its rate
 * limits; or the 401 / 429 answer and NULL. */
static struct proxy_call *admit(struct cairn_proxy *proxy, struct cairn_request *req)
{
    const struct cairn_http_header *auth = cairn_http_head_find(&req->head, "authorization");
    const struct cairn_tenant *tenant =
        cairn_snapshot_tenant(proxy->current, auth != NULL ? auth->value : NULL);
    if (tenant == NULL) {
        /* One answer for a missing, malformed, unknown or disabled key. */
        cairn_response_add_header(req, "WWW-Authenticate", "Bearer");
        cairn_response_error(req, 401, "invalid_api_key", "invalid or missing API key");
        return NULL;
    }
    snprintf(req->tenant, sizeof(req->tenant), "%s", tenant->name);
    unsigned wait = cairn_limiter_admit(tenant->limiter, &tenant->policy->rate, cairn_now_us());
    if (wait > 0) {
        char retry[16];
        snprintf(retry, sizeof(retry), "%u", wait);
        cairn_response_add_header(req, "Retry-After", retry);
        cairn_response_error(req, 429, "rate_limit_exceeded",
                             "rate limit reached for this API key; retry after %u s", wait);
        return NULL;
    }
    return call_new(proxy, req, tenant);
}

static const struct route {
    const char *path;
    bool prefix; /* also matches path + "/..." */
    const char *method;
    void (*proxied)(struct proxy_call *);                        /* a tenant's request */
    void (*local)(struct cairn_proxy *, struct cairn_request *); /* answered here */
} routes[] = {
    {"/v1/chat/completions", false, "POST", do_chat, NULL},
    {"/v1/models", true, "GET", do_models, NULL},
    {"/healthz", false, "GET", NULL, do_health},
    {"/readyz", false, "GET", NULL, do_ready},
};

/* The part after a prefix route, e.g. a model id ("gpt-4o",
 * "meta-llama/Llama-3-8B", "ft:gpt-4o:org:x:id"): plain characters only,
 * no empty, "." or ".." segment and no percent-escapes, so that neither
 * libcurl nor the upstream can resolve it to another route. */
static bool safe_suffix(const char *s)
{
    const char *seg = s;
    for (const char *p = s;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - seg);
            if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return false;
            if (*p == '\0')
                return true;
            seg = p + 1;
        } else if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || strchr("-._:@+", *p) != NULL)) {
            return false;
        }
    }
}

static bool route_matches(const struct route *r, const char *path)
{
    size_t n = strlen(r->path);
    if (strncmp(path, r->path, n) != 0)
        return false;
    return path[n] == '\0' || (r->prefix && path[n] == '/' && safe_suffix(path + n + 1));
}

void cairn_proxy_handle(struct cairn_request *req, void *arg)
{
    struct cairn_proxy *proxy = arg;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const struct route *r = &routes[i];
        if (!route_matches(r, req->path))
            continue;
        if (!cairn_request_method_is(req, r->method))
            return;
        if (r->local != NULL) {
            r->local(proxy, req);
            return;
        }
        struct proxy_call *call = admit(proxy, req);
        if (call != NULL)
            r->proxied(call);
        /* The key has been checked (and hashed into an experiment unit, which
         * do_chat does before it returns): the request keeps no copy of it
         * for the rest of its life, a long stream's included. */
        cairn_http_head_wipe(&req->head, "authorization");
        return;
    }
    cairn_response_error(req, 404, "not_found", "no such route: %.200s", req->path);
}
