/*
 * test_json_model.c — unit tests for include/json_strict.h and
 * include/chat_request.h.
 *
 * cairn_json_parse_strict: invalid JSON, trailing bytes, duplicate keys at
 * any depth (also when spelled with escapes), escaped NUL, raw control
 * characters, invalid UTF-8, the depth limit at its exact boundary, and
 * valid input it must keep accepting (unicode escapes, surrogate pairs).
 * cairn_chat_request_parse: a valid request in its usual shapes, and every
 * field check with an error that names the field (PITFALLS.md 11-13).
 * cairn_chat_request_print: the printed body parses back to an equal tree
 * with no duplicate keys, unknown fields kept.
 */
#include "unit.h"

#include "chat_request.h"
#include "json_strict.h"

#define DEPTH 64

/* ------------------------------------------------------------ strict */

struct json_case {
    const char *name;
    const char *in;
    size_t len;
    const char *want; /* accepted root string's decoded value, or NULL */
};

#define J(name, in) {name, LIT(in), NULL}
#define JS(name, in, want) {name, LIT(in), want}

static const struct json_case json_rejects[] = {
    J("empty input", ""),
    J("only whitespace", " \n"),
    J("unterminated object", "{"),
    J("missing value", "{\"a\":}"),
    J("trailing comma", "[1,]"),
    J("single quotes", "{'a':1}"),
    J("bare word", "nul"),
    J("NaN", "NaN"),
    J("two values", "{} {}"),
    J("trailing garbage", "{}x"),
    J("trailing NUL byte", "{}\0"),
    J("duplicate key", "{\"a\":1,\"a\":2}"),
    J("duplicate key, same value", "{\"a\":1,\"a\":1}"),
    J("duplicate key nested", "{\"x\":{\"b\":1,\"b\":2}}"),
    J("duplicate key in array element", "[1,{\"b\":[],\"c\":1,\"b\":{}}]"),
    J("duplicate key deep", "{\"x\":[{\"y\":{\"z\":1,\"z\":null}}]}"),
    J("duplicate key via escape", "{\"a\":1,\"\\u0061\":2}"),
    J("escaped NUL in value", "{\"a\":\"hi\\u0000<x>\"}"),
    J("escaped NUL in key", "{\"a\\u0000b\":1}"),
    J("escaped NUL alone", "\"\\u0000\""),
    J("raw NUL in a string", "\"a\0b\""),
    J("raw control char", "\"a\x01z\""),
    J("raw tab", "\"a\tz\""),
    J("raw newline", "\"a\nz\""),
    J("raw control char in key", "{\"a\x1f\":1}"),
    J("overlong slash", "\"\xC0\xAF\""),
    J("overlong 3-byte", "\"\xE0\x80\xAF\""),
    J("lone continuation", "\"a\x80z\""),
    J("truncated 2-byte", "\"\xC3\""),
    J("truncated 3-byte", "\"\xE2\x82\""),
    J("surrogate in UTF-8", "\"\xED\xA0\x80\""),
    J("above U+10FFFF", "\"\xF4\x90\x80\x80\""),
    J("byte 0xFF", "\"\xFF\""),
    J("invalid UTF-8 in key", "{\"\xC0\xAF\":1}"),
    J("lone high surrogate escape", "\"\\ud800\""),
    J("lone low surrogate escape", "\"\\udc00\""),
    J("invalid escape", "\"\\x41\""),
    J("keys differing only in case", "{\"a\":1,\"A\":2}"),
};

static const struct json_case json_accepts[] = {
    J("empty object", "{}"),
    J("whitespace around", " \t\r\n{\"a\":[1,2,{}]} \n"),
    J("same key in sibling objects", "[{\"a\":1},{\"a\":2}]"),
    J("same key at two depths", "{\"a\":{\"a\":1}}"),
    J("scalars", "[true,false,null,0,-1.5e3,\"\"]"),
    JS("escaped backslash then u0000", "\"\\\\u0000\"", "\\u0000"),
    JS("unicode escape", "\"\\u00e9\\u20AC\"", "\xC3\xA9\xE2\x82\xAC"),
    JS("surrogate pair", "\"\\ud83d\\ude00\"", "\xF0\x9F\x98\x80"),
    JS("raw UTF-8", "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"", "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"),
    JS("U+10FFFF", "\"\xF4\x8F\xBF\xBF\"", "\xF4\x8F\xBF\xBF"),
    JS("DEL is not a control char in JSON", "\"a\x7Fz\"", "a\x7Fz"),
    JS("escaped controls", "\"\\n\\t\\u0001\"", "\n\t\x01"),
};

static cJSON *strict_copy(const char *in, size_t len, int depth, char *err, size_t errlen)
{
    char *copy = dup_exact(in, len);
    err[0] = '\0';
    cJSON *j = cairn_json_parse_strict(copy, len, depth, err, errlen);
    free(copy);
    return j;
}

static void test_strict_rejects(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(json_rejects); i++) {
        const struct json_case *c = &json_rejects[i];
        char err[256];
        cJSON *j = strict_copy(c->in, c->len, DEPTH, err, sizeof err);
        check(j == NULL, c->name, "accepted");
        if (j == NULL)
            check(err[0] != '\0', c->name, "err is empty");
        cJSON_Delete(j);
    }
    rows_end();
}

static void test_strict_accepts(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(json_accepts); i++) {
        const struct json_case *c = &json_accepts[i];
        char err[256];
        cJSON *j = strict_copy(c->in, c->len, DEPTH, err, sizeof err);
        if (check(j != NULL, c->name, "rejected: %s", err) && c->want)
            check(cJSON_IsString(j) && strcmp(j->valuestring, c->want) == 0, c->name,
                  "decoded to \"%s\"", cJSON_IsString(j) ? j->valuestring : "(not a string)");
        cJSON_Delete(j);
    }
    rows_end();
}

/* `depth` nested containers: arrays "[[]]" or objects {"k":{"k":{}}}. */
static char *nested(int depth, bool objects)
{
    struct sbuf b = {0};
    sb_repeat(&b, objects ? "{\"k\":" : "[", (size_t)depth - 1);
    sb_puts(&b, objects ? "{}" : "[]");
    sb_repeat(&b, objects ? "}" : "]", (size_t)depth - 1);
    return b.p;
}

static void test_strict_depth(void **state)
{
    (void)state;
    static const int limits[] = {1, 2, 5, DEPTH};
    rows_begin();
    for (size_t i = 0; i < NELEM(limits); i++) {
        for (int objects = 0; objects < 2; objects++) {
            for (int extra = 0; extra < 2; extra++) {
                char row[64], err[256];
                char *in = nested(limits[i] + extra, objects);
                snprintf(row, sizeof row, "%s nested %d, limit %d", objects ? "objects" : "arrays",
                         limits[i] + extra, limits[i]);
                cJSON *j = strict_copy(in, strlen(in), limits[i], err, sizeof err);
                check((j != NULL) == (extra == 0), row, "%s", j ? "accepted" : err);
                cJSON_Delete(j);
                free(in);
            }
        }
    }
    /* Far past both our limit and cJSON's own: refused, no stack blow-up. */
    char err[256], *deep = nested(100000, false);
    cJSON *j = strict_copy(deep, strlen(deep), DEPTH, err, sizeof err);
    check(j == NULL, "arrays nested 100000", "accepted");
    cJSON_Delete(j);
    free(deep);
    rows_end();
}

/* Invalid per RFC 8259 although cJSON's number scanner takes them. */
static void test_strict_rejects_lenient_numbers(void **state)
{
    static const struct json_case rows[] = {
        J("leading zero", "[01]"), J("plus sign", "[+1]"), J("bare dot", "[1.]"),
        J("leading dot", "[.5]"),  J("hex", "[0x10]"),
    };
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        char err[256];
        cJSON *j = strict_copy(rows[i].in, rows[i].len, DEPTH, err, sizeof err);
        check(j == NULL, rows[i].name, "accepted");
        cJSON_Delete(j);
    }
    rows_end();
}

/* ------------------------------------------------------ chat request */

#define MSG_USER "{\"role\":\"user\",\"content\":\"hi\"}"
#define MINIMAL "{\"model\":\"m\",\"messages\":[" MSG_USER "]}"

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
    {"content parts", "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                      "[{\"type\":\"text\",\"text\":\"hi\"}]}]}", NULL, NULL, false},
    {"assistant tool_calls, content null",
     "{\"model\":\"gpt-4o\",\"messages\":[" MSG_USER ",{\"role\":\"assistant\",\"content\":null,"
     "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\","
     "\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"42\"}]}",
     NULL, NULL, false},
    {"system + user", "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be "
                      "brief\"}," MSG_USER "]}", NULL, NULL, false},
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
    {"unicode content", "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                        "\"\\u00e9\\ud83d\\ude00 \xE2\x82\xAC \\\"q\\\" \\\\\"}]}", NULL, NULL,
     false},
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
    {"escaped NUL in content", "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                               "\"a\\u0000b\"}]}", NULL, "", false},
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
            check(req.model && strcmp(req.model, cJSON_GetObjectItemCaseSensitive(want, "model")->valuestring) == 0,
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

/* Objects with many keys take the sorted path of the duplicate check:
 * a repeat (or a case variant) anywhere among 200 keys is still found. */
static void test_strict_duplicates_in_large_objects(void **state)
{
    (void)state;
    static const char *const last_keys[] = {"k7", "K7", "k199", "fresh"};
    rows_begin();
    for (size_t i = 0; i < NELEM(last_keys); i++) {
        struct sbuf b = {0};
        char key[32];
        sb_puts(&b, "{");
        for (int k = 0; k < 200; k++) {
            snprintf(key, sizeof key, "\"k%d\":%d,", k, k);
            sb_puts(&b, key);
        }
        snprintf(key, sizeof key, "\"%s\":0}", last_keys[i]);
        sb_puts(&b, key);
        char err[256];
        cJSON *j = strict_copy(b.p, strlen(b.p), DEPTH, err, sizeof err);
        bool want_ok = strcmp(last_keys[i], "fresh") == 0;
        check((j != NULL) == want_ok, last_keys[i], want_ok ? "rejected: %s" : "accepted%s", want_ok ? err : "");
        if (!want_ok && j == NULL)
            check(strstr(err, "duplicate") != NULL, last_keys[i], "err \"%s\"", err);
        cJSON_Delete(j);
        free(b.p);
    }
    rows_end();
}

/* Numbers must leave exactly as they came: the printed text reads back as
 * the same double (cJSON's own printer rounds 9007199254740991 to
 * 9.00719925474099e+15), and the tree is unchanged afterwards. */
static void test_print_numbers_exactly(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } rows[] = {
        {"[9007199254740991]", "[9007199254740991]"},
        {"[0.30000000000000004]", "[0.30000000000000004]"},
        {"[0.1]", "[0.1]"},
        {"[-0.5,100,1e-7]", "[-0.5,100,1e-07]"},
        {"{\"a\":{\"b\":[2.2250738585072014e-308]}}", "{\"a\":{\"b\":[2.2250738585072014e-308]}}"},
        {"[\"9007199254740991\",true,null]", "[\"9007199254740991\",true,null]"},
    };
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        char err[256];
        cJSON *j = strict_copy(rows[i].in, strlen(rows[i].in), DEPTH, err, sizeof err);
        if (!check(j != NULL, rows[i].in, "rejected: %s", err))
            continue;
        cJSON *before = cJSON_Duplicate(j, true);
        size_t len = 0;
        char *out = cairn_json_print(j, &len);
        check(strcmp(out, rows[i].out) == 0, rows[i].in, "printed %s", out);
        check(len == strlen(out), rows[i].in, "len %zu", len);
        check(cJSON_Compare(before, j, true) && !cJSON_IsRaw(j->child), rows[i].in,
              "the tree changed");
        free(out);
        cJSON_Delete(before);
        cJSON_Delete(j);
    }
    rows_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strict_rejects),
        cmocka_unit_test(test_strict_accepts),
        cmocka_unit_test(test_strict_depth),
        cmocka_unit_test(test_strict_rejects_lenient_numbers),
        cmocka_unit_test(test_chat_accepts),
        cmocka_unit_test(test_chat_rejects),
        cmocka_unit_test(test_chat_depth),
        cmocka_unit_test(test_chat_print_round_trip),
        cmocka_unit_test(test_print_numbers_exactly),
        cmocka_unit_test(test_strict_duplicates_in_large_objects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
