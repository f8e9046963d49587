/*
 * attempts.c — validation and retry budget of one chat request (see
 * attempts.h).
 *
 * Only the first choice's text is validated: it is what a client shows,
 * and an answer with n > 1 is asked for again as a whole. An answer whose
 * first choice carries no text (tool calls only) has nothing to check and
 * counts as compliant.
 */
#include "attempts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "json_strict.h"

struct cairn_attempts {
    const struct cairn_validator *validator;
    const struct cairn_validation_config *cfg;
    const struct cairn_marking *mk;
    const struct cairn_markers *sent;
    struct cairn_validate_opts opts;
    cJSON *request; /* owned: the body of the first attempt */
    cJSON *last;    /* borrowed from `best` or owned by `last_owned` */
    cJSON *last_owned;
    cJSON *best;  /* owned */
    cJSON *usage; /* owned: the sum over all attempts */
    struct cairn_violations best_violations, last_violations;
    size_t count;
    bool last_is_best;
    uint64_t deadline_us;
};

struct cairn_attempts *cairn_attempts_new(const struct cairn_validator *v,
                                          const struct cairn_validation_config *cfg,
                                          const struct cairn_marking *mk,
                                          const struct cairn_markers *sent, cJSON *request,
                                          int json_depth, uint64_t deadline_us)
{
    uint32_t tags = 0;
    for (size_t i = 0; v != NULL && i < cfg->markers.n; i++) {
        int t = cairn_taxonomy_key(sent->tx, cfg->markers.items[i]);
        if (t >= 0 && sent->source[t] != CAIRN_SRC_NONE)
            tags |= 1u << t;
    }
    if (tags == 0) {
        cJSON_Delete(request);
        return NULL;
    }
    struct cairn_attempts *a = cairn_calloc(1, sizeof(*a));
    a->validator = v;
    a->cfg = cfg;
    a->mk = mk;
    a->sent = sent;
    a->opts.tags = tags;
    a->opts.counting = (enum cairn_counting)cfg->counting;
    a->opts.tolerance = cfg->tolerance;
    a->opts.json_depth = json_depth;
    a->request = request;
    a->deadline_us = deadline_us;
    return a;
}

void cairn_attempts_free(struct cairn_attempts *a)
{
    if (a == NULL)
        return;
    cJSON_Delete(a->request);
    cJSON_Delete(a->last_owned);
    cJSON_Delete(a->best);
    cJSON_Delete(a->usage);
    free(a);
}

/* choices[0].message.content, or NULL. */
static const char *first_text(const cJSON *completion)
{
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(completion, "choices");
    const cJSON *message =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(choices, 0), "message");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(message, "content");
    return cJSON_IsString(content) ? content->valuestring : NULL;
}

/* sum += usage, member by member (nested detail objects too). */
static void add_usage(cJSON *sum, const cJSON *usage)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, usage)
    {
        cJSON *mine = cJSON_GetObjectItemCaseSensitive(sum, m->string);
        if (cJSON_IsNumber(m) && cJSON_IsNumber(mine))
            cJSON_SetNumberValue(mine, mine->valuedouble + m->valuedouble);
        else if (cJSON_IsObject(m) && cJSON_IsObject(mine))
            add_usage(mine, m);
        else if (mine == NULL)
            cJSON_AddItemToObject(sum, m->string, cJSON_Duplicate(m, true));
    }
}

/* Validators run on the event loop, in time that grows with the text: a
 * longer answer is judged by its first CAIRN_VALIDATE_MAX_TEXT bytes (cut
 * on a character boundary). A length limit is still seen broken, and the
 * rest is rare enough to accept: a 1 MiB answer is not what markers ask for. */
static void check_text(struct cairn_attempts *a, const char *text, size_t len,
                       struct cairn_violations *out)
{
    memset(out, 0, sizeof(*out));
    if (text == NULL)
        return;
    if (len > CAIRN_VALIDATE_MAX_TEXT) {
        len = CAIRN_VALIDATE_MAX_TEXT;
        while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
            len--;
    }
    cairn_validate(a->validator, a->sent, text, len, &a->opts, out);
}

bool cairn_attempts_add(struct cairn_attempts *a, cJSON *completion, uint64_t now_us)
{
    a->count++;
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(completion, "usage");
    if (cJSON_IsObject(usage)) {
        if (a->usage == NULL)
            a->usage = cJSON_CreateObject();
        add_usage(a->usage, usage);
    }
    const char *text = first_text(completion);
    check_text(a, text, text != NULL ? strlen(text) : 0, &a->last_violations);

    cJSON_Delete(a->last_owned);
    a->last_owned = NULL;
    a->last_is_best =
        a->best == NULL || cairn_violations_compare(&a->last_violations, &a->best_violations) < 0;
    if (a->last_is_best) {
        cJSON_Delete(a->best);
        a->best = completion;
        a->best_violations = a->last_violations;
        a->last = completion;
    } else {
        a->last = a->last_owned = completion;
    }
    return a->best_violations.n > 0 && a->count < (size_t)a->cfg->attempts &&
           now_us < a->deadline_us;
}

void cairn_attempts_add_text(struct cairn_attempts *a, const char *text, size_t len)
{
    a->count++;
    check_text(a, text, len, &a->best_violations);
}

char *cairn_attempts_next_body(struct cairn_attempts *a, size_t *len)
{
    cJSON *body = cJSON_Duplicate(a->request, true);
    if (a->cfg->retry == CAIRN_RETRY_FEEDBACK && a->last != NULL) {
        /* The answer just judged, and what to change about it. */
        char instruction[1024];
        const char *text = first_text(a->last);
        cairn_violations_feedback(&a->last_violations, instruction, sizeof(instruction));
        cairn_marking_add_turn(a->mk, cJSON_GetObjectItemCaseSensitive(body, "messages"),
                               text != NULL ? text : "", instruction, a->sent);
    }
    char *out = cairn_json_print(body, len);
    cJSON_Delete(body);
    return out;
}

cJSON *cairn_attempts_take_best(struct cairn_attempts *a)
{
    cJSON *best = a->best;
    a->best = NULL;
    a->last = NULL;
    if (best != NULL && a->usage != NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(best, "usage");
        cJSON_AddItemToObject(best, "usage", a->usage);
        a->usage = NULL;
    }
    return best;
}

bool cairn_attempts_last_is_best(const struct cairn_attempts *a)
{
    return a->last_is_best;
}

size_t cairn_attempts_count(const struct cairn_attempts *a)
{
    return a->count;
}

const struct cairn_violations *cairn_attempts_violations(const struct cairn_attempts *a)
{
    return &a->best_violations;
}

void cairn_attempts_violation_list(const struct cairn_attempts *a, char *out, size_t outlen)
{
    const struct cairn_violations *v = &a->best_violations;
    snprintf(out, outlen, "%s", v->n == 0 ? "none" : "");
    for (size_t i = 0; i < v->n; i++)
        snprintf(out + strlen(out), outlen - strlen(out), "%s%s", i > 0 ? ", " : "",
                 a->sent->tx->tags[v->items[i].tag].key);
}

uint32_t cairn_attempts_checked(const struct cairn_attempts *a)
{
    return a->opts.tags;
}

void cairn_attempts_report(const struct cairn_attempts *a, cJSON *obj)
{
    cJSON_AddNumberToObject(obj, "attempts", (double)a->count);
    cairn_violations_to_json(&a->best_violations, a->sent->tx,
                             cJSON_AddArrayToObject(obj, "violations"));
}
