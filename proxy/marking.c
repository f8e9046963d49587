/*
 * marking.c — decide a request's markers and put their block in the
 * prompt (see marking.h).
 *
 * Order of work for one request: take the caller's pinned markers out of
 * the body (so they never reach the backend as a field), neutralise
 * marker-looking text typed into the messages (so nobody sets markers by
 * typing tags), offer the fixed and annotated markers (lower sources never
 * override higher ones: markers.h), render, append.
 */
#include "marking.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "json_strict.h"

int cairn_marking_init(struct cairn_marking *mk, const struct cairn_taxonomy *tx,
                       const struct cairn_marker_format *format, const struct cairn_spoof *spoof,
                       const struct cairn_annotator *annotator, const struct cairn_policy *policy,
                       const char *where, char *err, size_t errlen)
{
    memset(mk, 0, sizeof(*mk));
    mk->tx = tx;
    mk->format = format;
    mk->spoof = spoof;
    /* The rules run when the policy uses them, and in "model" mode as the
     * fallback ready for when the model fails. */
    enum cairn_annotate_mode mode = (enum cairn_annotate_mode)policy->markers.annotate;
    bool rules =
        mode == CAIRN_ANNOTATE_RULES || mode == CAIRN_ANNOTATE_RULES_MODEL ||
        (mode == CAIRN_ANNOTATE_MODEL && policy->annotator.fallback == CAIRN_FALLBACK_RULES);
    mk->annotator = rules ? annotator : NULL;
    mk->policy = policy;
    for (size_t i = 0; i < policy->annotator.prefer_rules.n; i++) {
        int t = cairn_taxonomy_key(tx, policy->annotator.prefer_rules.items[i]);
        if (t < 0) {
            snprintf(err, errlen, "%s.annotator.prefer_rules[%zu]: no tag \"%s\"", where, i,
                     policy->annotator.prefer_rules.items[i]);
            return -1;
        }
        mk->prefer_rules |= 1u << t;
    }
    cairn_markers_init(&mk->fixed, tx);
    for (size_t i = 0; i < policy->markers.fixed.n; i++) {
        const char *tag = policy->markers.fixed.keys[i];
        char why[256];
        if (cairn_markers_offer(&mk->fixed, cairn_taxonomy_find(tx, tag),
                                policy->markers.fixed.values[i], CAIRN_SRC_FIXED, why,
                                sizeof(why)) < 0) {
            snprintf(err, errlen, "%s.markers.fixed.%s: %s", where, tag, why);
            return -1;
        }
    }
    return 0;
}

/* Offer one pinned tag=value; a 400 naming what is wrong otherwise. */
static int pin(const struct cairn_marking *mk, struct cairn_markers *out, const char *tag,
               const char *value, char *err, size_t errlen)
{
    char why[160];
    int t = cairn_taxonomy_find(mk->tx, tag);
    if (t < 0) {
        snprintf(err, errlen, "unknown marker '%.40s'", tag);
        return 400;
    }
    if (cairn_markers_offer(out, t, value, CAIRN_SRC_PINNED, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s", why);
        return 400;
    }
    return 0;
}

/* Pinned markers from a JSON object {"tag": "value" | number}. */
static int pin_object(const struct cairn_marking *mk, const cJSON *obj, struct cairn_markers *out,
                      const char *where, char *err, size_t errlen)
{
    if (!cJSON_IsObject(obj)) {
        snprintf(err, errlen, "%s must be an object of marker values", where);
        return 400;
    }
    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        char num[32];
        const char *value = m->valuestring;
        if (cJSON_IsNumber(m)) {
            snprintf(num, sizeof(num), "%.17g", m->valuedouble);
            value = num;
        } else if (!cJSON_IsString(m)) {
            snprintf(err, errlen, "%s.%.40s must be a string or a number", where, m->string);
            return 400;
        }
        int rc = pin(mk, out, m->string, value, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Pinned markers from the X-Cairn-Markers header: a JSON object, or
 * "tag=value; tag=value". */
static int pin_header(const struct cairn_marking *mk, const char *header, struct cairn_markers *out,
                      char *err, size_t errlen)
{
    const char *p = header + strspn(header, " \t");
    if (*p == '{') {
        char why[128];
        cJSON *obj = cairn_json_parse_strict(p, strlen(p), 4, why, sizeof(why));
        if (obj == NULL) {
            snprintf(err, errlen, "X-Cairn-Markers: %s", why);
            return 400;
        }
        int rc = pin_object(mk, obj, out, "X-Cairn-Markers", err, errlen);
        cJSON_Delete(obj);
        return rc;
    }
    char *copy = cairn_strdup(p), *save = NULL;
    int rc = 0;
    for (char *item = strtok_r(copy, ";", &save); item != NULL && rc == 0;
         item = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(item, '=');
        char *tag = item + strspn(item, " \t");
        if (eq == NULL) {
            if (*tag == '\0')
                continue;
            snprintf(err, errlen, "X-Cairn-Markers: '%.40s' is not tag=value", tag);
            rc = 400;
            break;
        }
        *eq = '\0';
        char *value = eq + 1 + strspn(eq + 1, " \t");
        for (char *e = eq; e > tag && (e[-1] == ' ' || e[-1] == '\t'); e--)
            e[-1] = '\0';
        for (size_t n = strlen(value); n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t');)
            value[--n] = '\0';
        rc = pin(mk, out, tag, value, err, errlen);
    }
    free(copy);
    return rc;
}

/* The body's "cairn" extension: {"markers": {...}}; detached from the body. */
static int take_body_pins(const struct cairn_marking *mk, cJSON *request, struct cairn_markers *out,
                          bool *pinned, char *err, size_t errlen)
{
    cJSON *ext = cJSON_DetachItemFromObjectCaseSensitive(request, "cairn");
    if (ext == NULL)
        return 0;
    int rc = 0;
    if (!cJSON_IsObject(ext)) {
        snprintf(err, errlen, "'cairn' must be an object");
        rc = 400;
    }
    for (const cJSON *m = ext->child; m != NULL && rc == 0; m = m->next) {
        if (strcmp(m->string, "markers") != 0) {
            snprintf(err, errlen, "unknown field 'cairn.%.40s'", m->string);
            rc = 400;
        } else {
            if (m->child != NULL)
                *pinned = true;
            rc = pin_object(mk, m, out, "cairn.markers", err, errlen);
        }
    }
    cJSON_Delete(ext);
    return rc;
}

/* Append `block` to the text of `msg`: its string content, or its last
 * text part (a new text part when it has none). */
static void append_to_message(cJSON *msg, const char *prefix, const char *block)
{
    cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    cJSON *target = NULL;
    bool has_text = false; /* the message has text before the block */
    if (cJSON_IsString(content)) {
        target = content;
        has_text = content->valuestring[0] != '\0';
    } else if (cJSON_IsArray(content)) {
        cJSON *part;
        cJSON_ArrayForEach(part, content)
        {
            cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
            cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (cJSON_IsString(type) && strcmp(type->valuestring, "text") == 0 &&
                cJSON_IsString(text)) {
                target = text;
                has_text |= text->valuestring[0] != '\0';
            }
        }
        if (target == NULL) {
            cJSON *part_new = cJSON_CreateObject();
            cJSON_AddStringToObject(part_new, "type", "text");
            cJSON_AddStringToObject(part_new, "text", block);
            cJSON_AddItemToArray(content, part_new);
            return;
        }
    } else {
        cJSON_DeleteItemFromObjectCaseSensitive(msg, "content");
        cJSON_AddStringToObject(msg, "content", block);
        return;
    }
    const char *old = target->valuestring;
    size_t n = strlen(old) + strlen(prefix) + strlen(block) + 1;
    char *text = cairn_malloc(n);
    snprintf(text, n, "%s%s%s", old, has_text ? prefix : "", block);
    cJSON_SetValuestring(target, text);
    free(text);
}

static cJSON *find_message(cJSON *messages, const char *role, bool last)
{
    cJSON *found = NULL, *msg;
    cJSON_ArrayForEach(msg, messages)
    {
        cJSON *r = cJSON_GetObjectItemCaseSensitive(msg, "role");
        if (cJSON_IsString(r) && strcmp(r->valuestring, role) == 0) {
            found = msg;
            if (!last)
                break;
        }
    }
    return found;
}

static void append_block(const struct cairn_marking *mk, cJSON *messages, const char *block)
{
    const struct cairn_marker_template *t = mk->format->t;
    if (t->target == CAIRN_TARGET_SYSTEM) {
        cJSON *sys = find_message(messages, "system", false);
        if (sys == NULL) {
            sys = cJSON_CreateObject();
            cJSON_AddStringToObject(sys, "role", "system");
            cJSON_AddStringToObject(sys, "content", "");
            cJSON_InsertItemInArray(messages, 0, sys);
        }
        append_to_message(sys, t->prefix, block);
        return;
    }
    cJSON *user = find_message(messages, "user", true);
    if (user != NULL)
        append_to_message(user, t->prefix, block);
}

int cairn_marking_decide(const struct cairn_marking *mk, cJSON *request, const char *header,
                         struct cairn_markers *out, char *err, size_t errlen)
{
    const struct cairn_policy *policy = mk->policy;
    cairn_markers_init(out, mk->tx);
    bool pinned = header != NULL;
    int rc = take_body_pins(mk, request, out, &pinned, err, errlen);
    if (rc == 0 && header != NULL)
        rc = pin_header(mk, header, out, err, errlen);
    if (rc != 0)
        return rc;
    if (pinned && !policy->markers.allow_pinning) {
        snprintf(err, errlen, "setting markers is not allowed by this gateway's policy");
        return 403;
    }
    for (size_t i = 0; i < mk->tx->ntags; i++) {
        if (mk->fixed.source[i] != CAIRN_SRC_NONE && out->source[i] < CAIRN_SRC_FIXED) {
            memcpy(out->value[i], mk->fixed.value[i], sizeof(out->value[i]));
            out->source[i] = CAIRN_SRC_FIXED;
        }
    }
    cJSON *messages = cJSON_GetObjectItemCaseSensitive(request, "messages");
    cairn_spoof_clean(mk->spoof, messages, (enum cairn_injected_policy)policy->markers.injected);
    if (mk->annotator != NULL)
        cairn_annotator_run(mk->annotator, messages, out);
    return 0;
}

void cairn_marking_merge_model(const struct cairn_marking *mk, struct cairn_markers *out,
                               const struct cairn_markers *model)
{
    bool model_only = mk->policy->markers.annotate == CAIRN_ANNOTATE_MODEL;
    for (size_t i = 0; i < mk->tx->ntags; i++) {
        bool rules = out->source[i] == CAIRN_SRC_RULES;
        if (rules && model_only)
            out->source[i] = CAIRN_SRC_NONE; /* the rules were only the fallback */
        else if (rules && (mk->prefer_rules >> i & 1u))
            continue; /* the policy trusts the rules for this tag */
        if (model->source[i] != CAIRN_SRC_NONE && out->source[i] < CAIRN_SRC_MODEL) {
            memcpy(out->value[i], model->value[i], sizeof(out->value[i]));
            out->source[i] = CAIRN_SRC_MODEL;
        }
    }
}

void cairn_marking_append(const struct cairn_marking *mk, cJSON *request,
                          const struct cairn_markers *m)
{
    char *block = cairn_marker_block_render(mk->format, m);
    if (block != NULL)
        append_block(mk, cJSON_GetObjectItemCaseSensitive(request, "messages"), block);
    free(block);
}

void cairn_marking_add_turn(const struct cairn_marking *mk, cJSON *messages, const char *answer,
                            const char *instruction, const struct cairn_markers *m)
{
    /* The answer goes back as text of the conversation: what reads as a
     * tag in it is neutralised like anything a caller typed. */
    size_t found;
    char *clean = cairn_spoof_clean_text(
        mk->spoof, answer, (enum cairn_injected_policy)mk->policy->markers.injected, &found);
    cJSON *assistant = cJSON_CreateObject();
    cJSON_AddStringToObject(assistant, "role", "assistant");
    cJSON_AddStringToObject(assistant, "content", clean != NULL ? clean : answer);
    free(clean);
    cJSON_AddItemToArray(messages, assistant);
    cJSON *user = cJSON_CreateObject();
    cJSON_AddStringToObject(user, "role", "user");
    cJSON_AddStringToObject(user, "content", instruction);
    cJSON_AddItemToArray(messages, user);
    /* A block in the system message is still there; one in the last user
     * turn has to follow the conversation to its new last user turn. */
    if (mk->format->t->target != CAIRN_TARGET_LAST_USER)
        return;
    char *block = cairn_marker_block_render(mk->format, m);
    if (block != NULL)
        append_to_message(user, mk->format->t->prefix, block);
    free(block);
}
