/*
 * chat_request.c — parse and validate an OpenAI chat completion request
 * (see chat_request.h).
 *
 * Only what cairn relies on, or what would reach the upstream as a
 * malformed value, is checked; unknown fields (tools, response_format,
 * user, ...) pass through untouched so new API features keep working.
 */
#include "chat_request.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "json_strict.h"

enum scalar_kind { SCALAR_INT, SCALAR_NUMBER, SCALAR_BOOL };

/* Optional top-level scalars and their ranges (OpenAI's documented ones,
 * with a generous ceiling for token counts). */
static const struct {
    const char *name;
    enum scalar_kind kind;
    double min, max;
} scalar_fields[] = {
    {"max_tokens", SCALAR_INT, 1, 1000000},
    {"max_completion_tokens", SCALAR_INT, 1, 1000000},
    {"n", SCALAR_INT, 1, 128},
    {"temperature", SCALAR_NUMBER, 0, 2},
    {"top_p", SCALAR_NUMBER, 0, 1},
    {"presence_penalty", SCALAR_NUMBER, -2, 2},
    {"frequency_penalty", SCALAR_NUMBER, -2, 2},
    {"stream", SCALAR_BOOL, 0, 0},
};

static int check_scalar(const cJSON *v, size_t i, char *err, size_t errlen)
{
    const char *name = scalar_fields[i].name;
    if (scalar_fields[i].kind == SCALAR_BOOL) {
        if (!cJSON_IsBool(v)) {
            snprintf(err, errlen, "'%s' must be a boolean", name);
            return -1;
        }
        return 0;
    }
    double d = v->valuedouble;
    bool integral = scalar_fields[i].kind == SCALAR_INT;
    if (!cJSON_IsNumber(v) || !isfinite(d) || (integral && d != floor(d)) ||
        d < scalar_fields[i].min || d > scalar_fields[i].max) {
        snprintf(err, errlen, "'%s' must be %s between %g and %g", name,
                 integral ? "an integer" : "a number", scalar_fields[i].min, scalar_fields[i].max);
        return -1;
    }
    return 0;
}

static int check_content(const cJSON *msg, const char *role, size_t idx, char *err, size_t errlen)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (cJSON_IsString(content))
        return 0;
    if (content == NULL || cJSON_IsNull(content)) {
        /* An assistant turn that only calls tools has no content. */
        if (strcmp(role, "assistant") == 0)
            return 0;
        snprintf(err, errlen, "'messages[%zu].content' is required", idx);
        return -1;
    }
    if (!cJSON_IsArray(content)) {
        snprintf(err, errlen, "'messages[%zu].content' must be a string or an array of parts", idx);
        return -1;
    }
    size_t p = 0;
    for (const cJSON *part = content->child; part != NULL; part = part->next, p++) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type)) {
            snprintf(err, errlen,
                     "'messages[%zu].content[%zu]' must be an object with a string 'type'", idx, p);
            return -1;
        }
    }
    return 0;
}

static int check_messages(const cJSON *messages, char *err, size_t errlen)
{
    if (!cJSON_IsArray(messages) || messages->child == NULL) {
        snprintf(err, errlen, "'messages' must be a non-empty array");
        return -1;
    }
    size_t i = 0;
    for (const cJSON *msg = messages->child; msg != NULL; msg = msg->next, i++) {
        if (!cJSON_IsObject(msg)) {
            snprintf(err, errlen, "'messages[%zu]' must be an object", i);
            return -1;
        }
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
        if (!cJSON_IsString(role) || role->valuestring[0] == '\0') {
            snprintf(err, errlen, "'messages[%zu].role' must be a non-empty string", i);
            return -1;
        }
        if (check_content(msg, role->valuestring, i, err, errlen) < 0)
            return -1;
    }
    return 0;
}

int cairn_chat_request_parse(struct cairn_chat_request *req, const char *body, size_t len,
                             int max_depth, char *err, size_t errlen)
{
    memset(req, 0, sizeof(*req));
    char why[160];
    cJSON *root = cairn_json_parse_strict(body, len, max_depth, why, sizeof(why));
    if (root == NULL) {
        snprintf(err, errlen, "invalid request body: %s", why);
        return -1;
    }
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "the request body must be a JSON object");
        goto fail;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsString(model) || model->valuestring[0] == '\0') {
        snprintf(err, errlen, "'model' must be a non-empty string");
        goto fail;
    }
    cJSON *messages = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (check_messages(messages, err, errlen) < 0)
        goto fail;
    for (size_t i = 0; i < sizeof(scalar_fields) / sizeof(scalar_fields[0]); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, scalar_fields[i].name);
        if (v != NULL && !cJSON_IsNull(v) && check_scalar(v, i, err, errlen) < 0)
            goto fail;
    }
    req->root = root;
    req->model = model->valuestring;
    req->messages = messages;
    req->stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "stream"));
    return 0;
fail:
    cJSON_Delete(root);
    return -1;
}

char *cairn_chat_request_print(const struct cairn_chat_request *req, size_t *len)
{
    return cairn_json_print(req->root, len);
}

void cairn_chat_request_free(struct cairn_chat_request *req)
{
    cJSON_Delete(req->root);
    memset(req, 0, sizeof(*req));
}

char *cairn_chat_request_internal(const char *model, const char *system, const char *user,
                                  int max_tokens, size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", model);
    cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
    cJSON *sys = cJSON_CreateObject(), *turn = cJSON_CreateObject();
    cJSON_AddStringToObject(sys, "role", "system");
    cJSON_AddStringToObject(sys, "content", system);
    cJSON_AddStringToObject(turn, "role", "user");
    cJSON_AddStringToObject(turn, "content", user);
    cJSON_AddItemToArray(msgs, sys);
    cJSON_AddItemToArray(msgs, turn);
    cJSON_AddNumberToObject(root, "temperature", 0);
    cJSON_AddNumberToObject(root, "max_tokens", max_tokens);
    cJSON_AddFalseToObject(root, "stream");
    char *out = cairn_json_print(root, len);
    cJSON_Delete(root);
    return out;
}

const char *cairn_chat_completion_text(const cJSON *completion)
{
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(completion, "choices");
    const cJSON *first = cJSON_IsArray(choices) ? choices->child : NULL;
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(first, "message");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(message, "content");
    return cJSON_IsString(content) ? content->valuestring : NULL;
}
