/*
 * test_json_model.c — unit tests for include/chat_request.h (the strict
 * JSON underneath has its own, test_json_strict.c).
 *
 * cairn_chat_request_parse: a valid request in its usual shapes, and every
 * field check with an error that names the field (PITFALLS.md 11-13).
 * cairn_chat_request_print: the printed body parses back to an equal tree
 * with no duplicate keys, unknown fields kept.
 */
#include "unit.h"

#include "chat_request.h"
#include "json_strict.h"

#define DEPTH 64

/* `depth` nested containers: arrays "[[]]" or objects {"k":{"k":{}}}. */
static char *nested(int depth, bool objects)
{
    struct sbuf b = {0};
    sb_repeat(&b, objects ? "{\"k\":" : "[", (size_t)depth - 1);
    sb_puts(&b, objects ? "{}" : "[]");
    sb_repeat(&b, objects ? "}" : "]", (size_t)depth - 1);
    return b.p;
}

/* ------------------------------------------------------ chat request */

#define MSG_USER "{\"role\":\"user\",\"content\":\"hi\"}"
#define MINIMAL  "{\"model\":\"m\",\"messages\":[" MSG_USER "]}"

/* A minimal valid request with `extra` members appended (NULL: none). */
static char *with_fields(const char *extra)
{
    struct sbuf b = {0};
    sb_puts(&b, "{\"model\":\"m\",\"messages\":[" MSG_USER "]");
    if (extra) {
        sb_puts(&b, ",");
        sb_puts(&b, extra);
    }
    sb_puts(&b, "}");
    return b.p;
}

struct chat_case {
    const char *name;
    const char *body;  /* full body, or NULL to use with_fields(extra) */
    const char *extra; /* members added to the minimal request */
    const char *field; /* rejects: must appear in err */
    bool stream;       /* accepts: expected req.stream */
};

static const struct chat_case chat_accepts[] = {
    {"minimal", MINIMAL, NULL, NULL, false},
    {"content parts",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
     "[{\"type\":\"text\",\"text\":\"hi\"}]}]}",
     NULL, NULL, false},
    {"assistant tool_calls, content null",
     "{\"model\":\"gpt-4o\",\"messages\":[" MSG_USER ",{\"role\":\"assistant\",\"content\":null,"
     "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\","
     "\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"42\"}]}",
     NULL, NULL, false},
    {"system + user",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be "
     "brief\"}," MSG_USER "]}",
     NULL, NULL, false},
    {"stream true", NULL, "\"stream\":true", NULL, true},
    {"stream false", NULL, "\"stream\":false", NULL, false},
    {"max_tokens 1", NULL, "\"max_tokens\":1", NULL, false},
    {"max_tokens 1000000", NULL, "\"max_tokens\":1000000", NULL, false},
    {"temperature 0", NULL, "\"temperature\":0", NULL, false},
    {"temperature 2", NULL, "\"temperature\":2", NULL, false},
    {"temperature 0.7", NULL, "\"temperature\":0.7", NULL, false},
    {"n 1", NULL, "\"n\":1", NULL, false},
    {"n 128", NULL, "\"n\":128", NULL, false},
    {"unknown fields kept", NULL,
     "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":"
     "{\"type\":\"object\",\"properties\":{}}}}],\"response_format\":{\"type\":\"json_object\"},"
     "\"user\":\"u1\",\"seed\":7,\"stream\":true,\"stream_options\":{\"include_usage\":true}",
     NULL, true},
    {"unicode content",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
     "\"\\u00e9\\ud83d\\ude00 \xE2\x82\xAC \\\"q\\\" \\\\\"}]}",
     NULL, NULL, false},
};

static const struct chat_case chat_rejects[] = {
    {"root is an array", "[" MINIMAL "]", NULL, "", false},
    {"root is a string", "\"hi\"", NULL, "", false},
    {"invalid JSON", "{\"model\":", NULL, "", false},
    {"trailing bytes", MINIMAL " {}", NULL, "", false},
    {"duplicate model", "{\"model\":\"m\",\"model\":\"x\",\"messages\":[" MSG_USER "]}", NULL, "",
     false},
    {"case-variant MODEL", "{\"model\":\"m\",\"MODEL\":\"x\",\"messages\":[" MSG_USER "]}", NULL,
     "", false},
    {"escaped NUL in content",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
     "\"a\\u0000b\"}]}",
     NULL, "", false},
    {"missing model", "{\"messages\":[" MSG_USER "]}", NULL, "model", false},
    {"model a number", "{\"model\":1,\"messages\":[" MSG_USER "]}", NULL, "model", false},
    {"model null", "{\"model\":null,\"messages\":[" MSG_USER "]}", NULL, "model", false},
    {"messages missing", "{\"model\":\"m\"}", NULL, "messages", false},
    {"messages an object", "{\"model\":\"m\",\"messages\":" MSG_USER "}", NULL, "messages", false},
    {"messages empty", "{\"model\":\"m\",\"messages\":[]}", NULL, "messages", false},
    {"message a string", "{\"model\":\"m\",\"messages\":[\"hi\"]}", NULL, "messages[0]", false},
    {"second message not object", "{\"model\":\"m\",\"messages\":[" MSG_USER ",1]}", NULL,
     "messages[1]", false},
    {"role missing", "{\"model\":\"m\",\"messages\":[{\"content\":\"hi\"}]}", NULL,
     "messages[0].role", false},
    {"role a number", "{\"model\":\"m\",\"messages\":[{\"role\":1,\"content\":\"hi\"}]}", NULL,
     "messages[0].role", false},
    {"content a number",
     "{\"model\":\"m\",\"messages\":[" MSG_USER ",{\"role\":\"user\",\"content\":5}]}", NULL,
     "messages[1].content", false},
    {"max_tokens 1e400", NULL, "\"max_tokens\":1e400", "max_tokens", false},
    {"max_tokens 3e9", NULL, "\"max_tokens\":3e9", "max_tokens", false},
    {"max_tokens -1", NULL, "\"max_tokens\":-1", "max_tokens", false},
    {"max_tokens 0", NULL, "\"max_tokens\":0", "max_tokens", false},
    {"max_tokens 1.5", NULL, "\"max_tokens\":1.5", "max_tokens", false},
    {"max_tokens \"10\"", NULL, "\"max_tokens\":\"10\"", "max_tokens", false},
    {"temperature -0.1", NULL, "\"temperature\":-0.1", "temperature", false},
    {"temperature 2.1", NULL, "\"temperature\":2.1", "temperature", false},
    {"temperature \"1\"", NULL, "\"temperature\":\"1\"", "temperature", false},
    {"temperature 1e400", NULL, "\"temperature\":1e400", "temperature", false},
    {"n 0", NULL, "\"n\":0", "n", false},
    {"n 129", NULL, "\"n\":129", "n", false},
    {"n 1.5", NULL, "\"n\":1.5", "n", false},
    {"stream \"yes\"", NULL, "\"stream\":\"yes\"", "stream", false},
    {"stream 1", NULL, "\"stream\":1", "stream", false},
};

static char *case_body(const struct chat_case *c)
{
    return c->body ? strdup(c->body) : with_fields(c->extra);
}

static int parse_copy(struct cairn_chat_request *req, const char *body, char *err, size_t errlen)
{
    size_t len = strlen(body);
    char *copy = dup_exact(body, len);
    memset(req, 0, sizeof *req);
    err[0] = '\0';
    int r = cairn_chat_request_parse(req, copy, len, DEPTH, err, errlen);
    free(copy);
    return r;
}

static void test_chat_accepts(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(chat_accepts); i++) {
        const struct chat_case *c = &chat_accepts[i];
        struct cairn_chat_request req;
        char err[256], *body = case_body(c);
        if (check(parse_copy(&req, body, err, sizeof err) == 0, c->name, "rejected: %s", err)) {
            cJSON *want = cJSON_Parse(body);
            check(req.model &&
                      strcmp(req.model,
                             cJSON_GetObjectItemCaseSensitive(want, "model")->valuestring) == 0,
                  c->name, "model");
            check(cJSON_IsArray(req.messages) &&
                      cJSON_GetArraySize(req.messages) ==
                          cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(want, "messages")),
                  c->name, "messages");
            check(req.stream == c->stream, c->name, "stream %d", req.stream);
            cJSON_Delete(want);
            cairn_chat_request_free(&req);
        }
        free(body);
    }
    rows_end();
}

static void test_chat_rejects(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(chat_rejects); i++) {
        const struct chat_case *c = &chat_rejects[i];
        struct cairn_chat_request req;
        char err[256], *body = case_body(c);
        int r = parse_copy(&req, body, err, sizeof err);
        if (check(r == -1, c->name, "returned %d, want -1", r)) {
            check(err[0] != '\0', c->name, "err is empty");
            check(strstr(err, c->field) != NULL, c->name, "err \"%s\" does not name \"%s\"", err,
                  c->field);
        } else if (r == 0) {
            cairn_chat_request_free(&req);
        }
        free(body);
    }
    rows_end();
}

/* The depth limit counts the whole body: root object + a nested field. */
static void test_chat_depth(void **state)
{
    (void)state;
    rows_begin();
    for (int extra = 0; extra < 2; extra++) {
        struct cairn_chat_request req;
        char row[64], err[256], *deep = nested(DEPTH - 1 + extra, false);
        struct sbuf field = {0};
        sb_puts(&field, "\"x\":");
        sb_puts(&field, deep);
        char *body = with_fields(field.p);
        snprintf(row, sizeof row, "body depth %d, limit %d", DEPTH + extra, DEPTH);
        int r = parse_copy(&req, body, err, sizeof err);
        check(r == (extra ? -1 : 0), row, "returned %d (%s)", r, err);
        if (r == 0)
            cairn_chat_request_free(&req);
        free(body);
        free(field.p);
        free(deep);
    }
    rows_end();
}

/* Every member name of every object in `j` is unique (recursively). */
static bool keys_unique(const cJSON *j)
{
    for (const cJSON *a = j ? j->child : NULL; a; a = a->next) {
        if (cJSON_IsObject(j))
            for (const cJSON *b = a->next; b; b = b->next)
                if (strcmp(a->string, b->string) == 0)
                    return false;
        if (!keys_unique(a))
            return false;
    }
    return true;
}

static void test_chat_print_round_trip(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(chat_accepts); i++) {
        const struct chat_case *c = &chat_accepts[i];
        struct cairn_chat_request req;
        char err[256], *body = case_body(c);
        if (!check(parse_copy(&req, body, err, sizeof err) == 0, c->name, "rejected: %s", err)) {
            free(body);
            continue;
        }
        size_t len = 0;
        char *out = cairn_chat_request_print(&req, &len);
        if (check(out != NULL, c->name, "print returned NULL")) {
            check(len == strlen(out), c->name, "len %zu, strlen %zu", len, strlen(out));
            cJSON *want = cJSON_Parse(body);
            cJSON *back = cJSON_Parse(out);
            check(back && cJSON_Compare(want, back, true), c->name, "printed \"%s\" differs", out);
            check(back && keys_unique(back), c->name, "duplicate keys in \"%s\"", out);
            cJSON *strict = cairn_json_parse_strict(out, len, DEPTH, err, sizeof err);
            check(strict != NULL, c->name, "own output fails the strict parser: %s", err);
            cJSON_Delete(strict);
            cJSON_Delete(back);
            cJSON_Delete(want);
            free(out);
        }
        cairn_chat_request_free(&req);
        free(body);
    }
    rows_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_accepts),
        cmocka_unit_test(test_chat_rejects),
        cmocka_unit_test(test_chat_depth),
        cmocka_unit_test(test_chat_print_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
