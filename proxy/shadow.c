/*
 * shadow.c — shadow judging of A/B experiments (see shadow.h).
 *
 * A shadow goes through four stages, each a callback on the loop:
 *
 *   on_start      the client's body parsed again and run through the other
 *                 arm's marker stage (and its annotator model, if any);
 *   send_shadow   the other arm's request sent to its backend;
 *   on_answer     its answer read, and the two judge requests sent;
 *   on_reply      both replies in: a verdict recorded, or a failure counted.
 *
 * The budgets (shadows in flight, started today) are kept per tenant and
 * experiment name rather than on the configuration snapshot, so that a
 * reload neither resets a day's count nor forgets shadows still running
 * on the previous snapshot. They are per process: each worker has its own.
 */
#include "shadow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "alloc.h"
#include "annotation.h"
#include "chat_request.h"
#include "experiment.h"
#include "judge.h"
#include "json_strict.h"
#include "log.h"
#include "model_annotator.h"
#include "model_call.h"
#include "stats.h"
#include "unwrap.h"

const char *const CAIRN_SHADOW_SAMPLED_OUT = "sampled_out";
const char *const CAIRN_SHADOW_IN_FLIGHT_CAP = "in_flight_cap";
const char *const CAIRN_SHADOW_DAILY_CAP = "daily_cap";
const char *const CAIRN_SHADOW_STARTED = "started";
const char *const CAIRN_SHADOW_FAILED = "failed";

#define BUDGET_BUCKETS 1024
/* Budgets of one day: past this many tenant/experiment pairs (a file holds
 * at most 10000 tenants) a new pair is refused as if capped. */
#define BUDGET_MAX 20000

struct budget {
    struct budget *next; /* in its hash chain */
    char tenant[CAIRN_NAME_MAX + 1];
    char experiment[CAIRN_NAME_MAX + 1];
    int64_t started; /* today (cairn_shadows.today) */
    int64_t in_flight;
};

struct shadow;

/* One of the judge's two replies: order 0 shows the served answer as A,
 * order 1 as B. */
struct reply {
    struct shadow *s;
    struct cairn_model_call *call; /* NULL once in */
    enum cairn_judge_pick pick;
    const char *failure; /* why there is no pick, for the log */
};

struct shadow {
    struct cairn_shadows *sh;
    struct shadow *prev, *next;  /* in sh->running */
    struct budget *budget;       /* in sh: holds this shadow's slot */
    struct cairn_snapshot *snap; /* a reference: everything below points into it */
    const struct cairn_tenant *served, *against;
    const char *experiment;
    const struct cairn_shadow_config *cfg;
    char request_id[CAIRN_REQUEST_ID_MAX + 1];
    char *body; /* owned: the client's request body, until parsed */
    size_t len;
    char *pins;                     /* owned: its X-Cairn-Markers value, or NULL */
    char *served_text;              /* owned: the answer the client got */
    char *other_text;               /* owned: the other arm's answer */
    char *conversation;             /* owned: what the judge is shown of the request */
    struct event *start;            /* owned: the deferred start */
    struct cairn_chat_request chat; /* owned while the markers are decided */
    struct cairn_markers sent;
    struct cairn_annotation *annotation; /* the other arm's annotator model call */
    struct cairn_model_call *call;       /* the other arm's request */
    struct reply replies[2];
};

struct cairn_shadows {
    struct event_base *base;
    struct cairn_stats *stats;
    struct cairn_annotation_cache *cache;
    struct budget *buckets[BUDGET_BUCKETS];
    size_t nbudgets;
    int64_t today;          /* UTC day the budgets count */
    struct shadow *running; /* in flight */
    uint64_t rng;           /* splitmix64 state */
};

/* --- budgets ---------------------------------------------------------------- */

/* A new UTC day: nobody has started anything yet, and the budgets of
 * pairs with nothing in flight can go. */
static void new_day(struct cairn_shadows *sh, int64_t today)
{
    sh->today = today;
    for (size_t i = 0; i < BUDGET_BUCKETS; i++) {
        struct budget **p = &sh->buckets[i];
        while (*p != NULL) {
            struct budget *b = *p;
            b->started = 0;
            if (b->in_flight > 0) {
                p = &b->next;
                continue;
            }
            *p = b->next;
            free(b);
            sh->nbudgets--;
        }
    }
}

/* FNV-1a over both names. */
static size_t budget_bucket(const char *tenant, const char *experiment)
{
    uint64_t h = 14695981039346656037u;
    for (const char *p = tenant; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    h = (h ^ 0xff) * 1099511628211u; /* no name holds 0xff: "ab"+"c" differs from "a"+"bc" */
    for (const char *p = experiment; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    return (size_t)(h % BUDGET_BUCKETS);
}

/* The budget of a pair, made on first use; NULL when the table is full. */
static struct budget *budget_of(struct cairn_shadows *sh, const char *tenant,
                                const char *experiment)
{
    int64_t today = (int64_t)(time(NULL) / 86400);
    if (today != sh->today)
        new_day(sh, today);
    struct budget **head = &sh->buckets[budget_bucket(tenant, experiment)];
    for (struct budget *b = *head; b != NULL; b = b->next)
        if (strcmp(b->tenant, tenant) == 0 && strcmp(b->experiment, experiment) == 0)
            return b;
    if (sh->nbudgets >= BUDGET_MAX)
        return NULL;
    struct budget *b = cairn_calloc(1, sizeof(*b));
    snprintf(b->tenant, sizeof(b->tenant), "%s", tenant);
    snprintf(b->experiment, sizeof(b->experiment), "%s", experiment);
    b->next = *head;
    *head = b;
    sh->nbudgets++;
    return b;
}

/* A uniform draw in [0, 1) (splitmix64: sampling needs no more). */
static double draw(struct cairn_shadows *sh)
{
    uint64_t z = (sh->rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

/* --- a shadow's end ---------------------------------------------------------- */

/* Release everything, wherever the shadow is; its slot goes back. */
static void shadow_free(struct shadow *s)
{
    struct cairn_shadows *sh = s->sh;
    cairn_annotation_cancel(s->annotation);
    cairn_model_call_cancel(s->call);
    for (size_t i = 0; i < 2; i++)
        cairn_model_call_cancel(s->replies[i].call);
    if (s->start != NULL)
        event_free(s->start);
    cairn_chat_request_free(&s->chat);
    free(s->body);
    free(s->pins);
    free(s->served_text);
    free(s->other_text);
    free(s->conversation);
    s->budget->in_flight--;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        sh->running = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    cairn_snapshot_unref(s->snap);
    free(s);
}

static void fail(struct shadow *s, const char *stage, const char *why)
{
    cairn_stats_shadow(s->sh->stats, s->served->name, s->experiment, CAIRN_SHADOW_FAILED);
    cairn_log_msg("warn", "request %s: shadow judging in experiment %s: %s: %s", s->request_id,
                  s->experiment, stage, why);
    shadow_free(s);
}

/* The judgement: one experiment record, one count. */
static void record(struct shadow *s, const char *result)
{
    const char *arm = s->served->arm, *other = s->against->arm;
    cairn_stats_judgement(s->sh->stats, s->served->name, s->experiment, arm, other, result);
    if (!cairn_log_experiment_enabled())
        return;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "request_id", s->request_id);
    cJSON_AddStringToObject(root, "tenant", s->served->name);
    cJSON_AddStringToObject(root, "experiment", s->experiment);
    cJSON_AddStringToObject(root, "arm", arm);
    cJSON_AddStringToObject(root, "other", other);
    cJSON_AddStringToObject(root, "result", result);
    cJSON *verdicts = cJSON_AddArrayToObject(root, "verdicts");
    for (size_t i = 0; i < 2; i++)
        cJSON_AddItemToArray(verdicts,
                             cJSON_CreateString(cairn_judge_pick_name(s->replies[i].pick)));
    size_t n;
    char *text = cairn_json_print(root, &n);
    cJSON_Delete(root);
    text[n - 1] = '\0'; /* the members, without the object's braces */
    cairn_log_experiment_record("judgement", text + 1);
    free(text);
}

/* --- the judge ----------------------------------------------------------------- */

static void on_reply(void *ctx, const char *errstr, int status, const char *body, size_t len)
{
    struct reply *r = ctx;
    struct shadow *s = r->s;
    r->call = NULL;
    r->pick = CAIRN_PICK_NONE;
    if (errstr != NULL)
        r->failure = errstr;
    else if (status != 200)
        r->failure = "answered with an error status";
    else if ((r->pick = cairn_judge_read(body, len)) == CAIRN_PICK_NONE)
        r->failure = "a reply other than A, B or TIE";
    if (s->replies[0].call != NULL || s->replies[1].call != NULL)
        return; /* the other order is still out */
    const char *verdict = cairn_judge_verdict(s->replies[0].pick, s->replies[1].pick);
    if (verdict == NULL) {
        fail(s, "judge",
             s->replies[0].failure != NULL ? s->replies[0].failure : s->replies[1].failure);
        return;
    }
    record(s, verdict);
    shadow_free(s);
}

/* Both orders at once: the served answer as A, then as B. */
static void ask_judge(struct shadow *s)
{
    /* The loader checked the name; backends are in the upstreams' order. */
    const struct cairn_upstream_config *u =
        cairn_config_upstream(&s->snap->cfg, s->cfg->judge.upstream);
    const struct cairn_backend *judge = &s->snap->backends[u - s->snap->cfg.upstreams];
    const char *answers[2][2] = {{s->served_text, s->other_text}, {s->other_text, s->served_text}};
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        char *body = cairn_judge_request(s->cfg->judge.model, s->conversation, answers[i][0],
                                         answers[i][1], &len);
        s->replies[i].s = s;
        s->replies[i].call = cairn_model_call_start(
            s->sh->base, judge->endpoint, s->request_id, body, len, CAIRN_JUDGE_BODY_MAX,
            s->cfg->judge.deadline_ms, on_reply, &s->replies[i]);
    }
}

/* --- the other arm ------------------------------------------------------------- */

static void on_answer(void *ctx, const char *errstr, int status, const char *body, size_t len)
{
    struct shadow *s = ctx;
    s->call = NULL;
    if (errstr != NULL || status != 200) {
        fail(s, "the other arm", errstr != NULL ? errstr : "answered with an error status");
        return;
    }
    char why[128];
    cJSON *tree =
        cairn_json_parse_strict(body, len, (int)s->snap->cfg.limits.json_depth, why, sizeof(why));
    if (tree != NULL && s->against->policy->markers.unwrap) {
        struct cairn_markers model;
        cairn_markers_init(&model, s->against->marking.tx);
        cairn_unwrap_json(s->against->marking.format, tree, &model);
    }
    const char *text = cJSON_IsObject(tree) ? cairn_chat_completion_text(tree) : NULL;
    if (text != NULL)
        s->other_text = cairn_strdup(text);
    cJSON_Delete(tree);
    if (s->other_text == NULL) {
        fail(s, "the other arm", "an answer that is no chat completion with text");
        return;
    }
    ask_judge(s);
}

/* The markers are decided: append their block and send. */
static void send_shadow(struct shadow *s)
{
    cairn_marking_append(&s->against->marking, s->chat.root, &s->sent);
    size_t len;
    char *body = cairn_chat_request_print(&s->chat, &len);
    cairn_chat_request_free(&s->chat);
    s->call = cairn_model_call_start(
        s->sh->base, s->against->backend->endpoint, s->request_id, body, len,
        (size_t)s->against->backend->cfg->max_response_bytes, s->cfg->deadline_ms, on_answer, s);
}

/* The other arm's annotator model answered, or failed: as for a served
 * request, it goes on with the markers it has. */
static void on_annotated(void *ctx, const struct cairn_markers *model, const char *outcome)
{
    struct shadow *s = ctx;
    s->annotation = NULL;
    if (outcome == CAIRN_ANNOTATION_OK || outcome == CAIRN_ANNOTATION_CACHE_HIT)
        cairn_marking_merge_model(&s->against->marking, &s->sent, model);
    send_shadow(s);
}

static void on_start(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct shadow *s = arg;
    char err[256];
    if (cairn_chat_request_parse(&s->chat, s->body, s->len, (int)s->snap->cfg.limits.json_depth,
                                 err, sizeof(err)) < 0) {
        fail(s, "the request", err); /* served once, so only a reload's new limits get here */
        return;
    }
    free(s->body);
    s->body = NULL;
    /* What the judge sees is what the client wrote, before any marker. */
    s->conversation = cairn_model_conversation(s->chat.messages, CAIRN_JUDGE_CONVERSATION_MAX);
    if (s->against->model != NULL)
        cJSON_ReplaceItemInObjectCaseSensitive(s->chat.root, "model",
                                               cJSON_CreateString(s->against->model));
    cJSON_DeleteItemFromObjectCaseSensitive(s->chat.root, "stream");
    cJSON_DeleteItemFromObjectCaseSensitive(s->chat.root, "stream_options");
    if (cairn_marking_decide(&s->against->marking, s->chat.root, s->pins, &s->sent, err,
                             sizeof(err)) != 0) {
        fail(s, "the other arm's markers", err);
        return;
    }
    if (s->against->annotator == NULL) {
        send_shadow(s);
        return;
    }
    s->annotation = cairn_annotation_start(s->sh->base, s->sh->cache, s->snap, s->against,
                                           s->chat.messages, s->request_id, on_annotated, s);
}

/* --- offers -------------------------------------------------------------------- */

struct cairn_shadows *cairn_shadows_new(struct event_base *base, struct cairn_stats *stats,
                                        struct cairn_annotation_cache *cache)
{
    struct cairn_shadows *sh = cairn_calloc(1, sizeof(*sh));
    sh->base = base;
    sh->stats = stats;
    sh->cache = cache;
    /* Each worker draws its own sample: seeded here, after the fork. */
    if (getrandom(&sh->rng, sizeof(sh->rng), 0) != (ssize_t)sizeof(sh->rng))
        sh->rng = cairn_now_us() ^ ((uint64_t)getpid() << 32);
    return sh;
}

void cairn_shadows_free(struct cairn_shadows *sh)
{
    if (sh == NULL)
        return;
    while (sh->running != NULL)
        shadow_free(sh->running);
    for (size_t i = 0; i < BUDGET_BUCKETS; i++) {
        struct budget *next;
        for (struct budget *b = sh->buckets[i]; b != NULL; b = next) {
            next = b->next;
            free(b);
        }
    }
    free(sh);
}

/* Whether this offer may start a shadow, and if not, why. */
static const char *admit(struct cairn_shadows *sh, const struct cairn_shadow_config *cfg,
                         struct budget *b)
{
    if (!(draw(sh) < cfg->sample))
        return CAIRN_SHADOW_SAMPLED_OUT;
    if (b == NULL)
        return CAIRN_SHADOW_DAILY_CAP;
    if (b->in_flight >= cfg->max_in_flight)
        return CAIRN_SHADOW_IN_FLIGHT_CAP;
    if (cfg->daily_cap > 0 && b->started >= cfg->daily_cap)
        return CAIRN_SHADOW_DAILY_CAP;
    return CAIRN_SHADOW_STARTED;
}

void cairn_shadow_offer(struct cairn_shadows *sh, struct cairn_snapshot *snap,
                        const struct cairn_tenant *owner, const struct cairn_tenant *served,
                        const struct cairn_request *req, const cJSON *answer)
{
    const struct cairn_experiment_config *e = owner->experiment;
    const struct cairn_shadow_config *cfg = &e->shadow;
    const char *text = cairn_chat_completion_text(answer);
    if (!cfg->enabled || strcmp(served->arm, cfg->against) == 0 || text == NULL)
        return;
    struct budget *b = budget_of(sh, owner->name, e->name);
    const char *outcome = admit(sh, cfg, b);
    cairn_stats_shadow(sh->stats, owner->name, e->name, outcome);
    if (outcome != CAIRN_SHADOW_STARTED)
        return;
    b->started++;
    b->in_flight++;

    struct shadow *s = cairn_calloc(1, sizeof(*s));
    s->sh = sh;
    s->budget = b;
    s->snap = cairn_snapshot_ref(snap);
    s->served = served;
    s->against = &owner->arms[cairn_experiment_find_arm(e, cfg->against)];
    s->experiment = e->name;
    s->cfg = cfg;
    snprintf(s->request_id, sizeof(s->request_id), "%s", req->id);
    s->len = evbuffer_get_length(req->body);
    s->body = cairn_malloc(s->len + 1);
    evbuffer_copyout(req->body, s->body, s->len);
    const struct cairn_http_header *pins = cairn_http_head_find(&req->head, "x-cairn-markers");
    s->pins = pins != NULL ? cairn_strdup(pins->value) : NULL;
    s->served_text = cairn_strdup(text);
    s->next = sh->running;
    if (sh->running != NULL)
        sh->running->prev = s;
    sh->running = s;
    /* The answer is queued, not yet written: from a timer, the work comes
     * after the loop's pass that writes it. */
    static const struct timeval now = {0, 0};
    s->start = evtimer_new(sh->base, on_start, s);
    evtimer_add(s->start, &now);
}
