/*
 * test_judge.c — unit tests for include/judge.h.
 *
 * Tables: every pair of replies and the verdict it makes (position bias
 * cancels: a judge that always says A, or always B, yields a tie); reply
 * texts and whether they read as A, B, TIE or nothing; HTTP answers of the
 * judge endpoint (a completion, an error shape, junk, one over the size
 * limit). Then the prompt's bounds: answers far over the limit are cut on
 * a character boundary with a note, a conversation is cut to its end by
 * the limit the shadow uses, and the request is one JSON object with both
 * answers in the order given.
 */
#include "unit.h"

#include <cjson/cJSON.h>

#include "judge.h"
#include "model_annotator.h"
#include "utf8.h"

/* --- verdicts --------------------------------------------------------------------- */

enum { A = CAIRN_PICK_A, B = CAIRN_PICK_B, T = CAIRN_PICK_TIE, N = CAIRN_PICK_NONE };

/* served_first: the served answer was A; served_second: it was B. */
static const struct {
    int first, second;
    const char *want; /* "win", "loss", "tie", or NULL for no judgement */
} verdicts[] = {
    {A, B, "win"},  /* both prefer the served answer */
    {B, A, "loss"}, /* both prefer the other */
    {A, A, "tie"},  /* position bias: always the first */
    {B, B, "tie"},  /* always the second */
    {T, T, "tie"},  {A, T, "tie"}, {T, B, "tie"}, {B, T, "tie"}, {T, A, "tie"},
    {N, A, NULL},   {A, N, NULL},  {N, N, NULL},  {T, N, NULL},  {N, B, NULL},
};

static void test_verdicts(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(verdicts); i++) {
        char row[32];
        snprintf(row, sizeof row, "%s,%s", cairn_judge_pick_name(verdicts[i].first),
                 cairn_judge_pick_name(verdicts[i].second));
        const char *got = cairn_judge_verdict(verdicts[i].first, verdicts[i].second);
        const char *want = verdicts[i].want;
        check(want == NULL ? got == NULL : got != NULL && strcmp(got, want) == 0, row,
              "verdict %s, want %s", got ? got : "(none)", want ? want : "(none)");
    }
    /* Results are compared by pointer in shadow.c. */
    check(cairn_judge_verdict(CAIRN_PICK_A, CAIRN_PICK_B) == CAIRN_JUDGE_WIN, "pointer", "win");
    check(cairn_judge_verdict(CAIRN_PICK_B, CAIRN_PICK_A) == CAIRN_JUDGE_LOSS, "pointer", "loss");
    check(cairn_judge_verdict(CAIRN_PICK_A, CAIRN_PICK_A) == CAIRN_JUDGE_TIE, "pointer", "tie");
    rows_end();
}

/* --- replies ------------------------------------------------------------------------ */

#define JUNK   X64("why A? ")
#define X64(s) X8(X8(s))
#define X8(s)  s s s s s s s s

/* clang-format off */
static const struct {
    const char *text;
    int want;
} replies[] = {
    {"A", A},
    {"B", B},
    {"TIE", T},
    {"a", A},
    {"b", B},
    {"tie", T},
    {"Tie", T},
    {" TIE.", T},
    {"A.", A},
    {"\n\tB \r\n", B},
    {"  b.  ", B},
    {"A and B", N},
    {"", N},
    {"   ", N},
    {".", N},
    {"A..", N},
    {"A .", N},
    {".A", N},
    {"AB", N},
    {"TIES", N},
    {"TI", N},
    {"**A**", N},
    {"\"A\"", N},
    {"Answer A", N},
    {"A\nB", N},
    {"C", N},
    {JUNK, N},
};
/* clang-format on */

static void test_parse(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(replies); i++) {
        char row[48];
        snprintf(row, sizeof row, "%.40s", replies[i].text);
        int got = (int)cairn_judge_parse(replies[i].text);
        check(got == replies[i].want, row, "read as %s, want %s",
              cairn_judge_pick_name((enum cairn_judge_pick)got),
              cairn_judge_pick_name((enum cairn_judge_pick)replies[i].want));
    }
    rows_end();
}

#define COMPLETION(content)                                                                        \
    "{\"id\":\"c\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":"          \
    "{\"role\":\"assistant\",\"content\":" content "},\"finish_reason\":\"stop\"}]}"

static const struct {
    const char *row, *body;
    int want;
} answers[] = {
    {"completion A", COMPLETION("\"A\""), A},
    {"completion tie.", COMPLETION("\" tie.\""), T},
    {"content null", COMPLETION("null"), N},
    {"content sentence", COMPLETION("\"A is better\""), N},
    {"no choices", "{\"choices\":[]}", N},
    {"error shape", "{\"error\":{\"message\":\"overloaded\"}}", N},
    {"not JSON", "A", N},
    {"trailing bytes", COMPLETION("\"A\"") " x", N},
    {"duplicate key", "{\"choices\":[],\"choices\":[]}", N},
    {"array", "[\"A\"]", N},
    {"empty", "", N},
};

static void test_read(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(answers); i++) {
        size_t n = strlen(answers[i].body);
        char *body = dup_exact(answers[i].body, n); /* an over-read trips ASan */
        int got = (int)cairn_judge_read(body, n);
        check(got == answers[i].want, answers[i].row, "read as %s",
              cairn_judge_pick_name((enum cairn_judge_pick)got));
        free(body);
    }
    /* A valid answer past the limit is not read at all. */
    struct sbuf big = {0};
    sb_puts(&big, "{\"pad\":\"");
    while (big.len < CAIRN_JUDGE_BODY_MAX)
        sb_puts(&big, "xxxxxxxxxxxxxxxx");
    sb_puts(&big, "\",\"choices\":[{\"message\":{\"content\":\"A\"}}]}");
    check(cairn_judge_read(big.p, big.len) == CAIRN_PICK_NONE, "over the limit", "read");
    free(big.p);
    rows_end();
}

/* --- the prompt ----------------------------------------------------------------------- */

/* `n` bytes of "é" (2 bytes each) after a one-byte lead, so that a cut at
 * any even limit would land inside a character. */
static char *long_answer(const char *lead, size_t n)
{
    struct sbuf b = {0};
    sb_puts(&b, lead);
    while (b.len < n)
        sb_puts(&b, "\xc3\xa9");
    return b.p;
}

static void test_prompt_bounds(void **state)
{
    (void)state;
    rows_begin();
    char *a = long_answer("A", 100 * 1024), *b = long_answer("B", 300 * 1024);
    size_t len;
    char *p = cairn_judge_prompt("USER: hi", a, b, &len);
    check(len == strlen(p), "length", "%zu vs strlen %zu", len, strlen(p));
    check(len <= 2 * CAIRN_JUDGE_ANSWER_MAX + 1024, "bounded", "%zu bytes", len);
    check(cairn_utf8_valid(p, len) == len, "cut on a character", "invalid UTF-8 at %zu",
          cairn_utf8_valid(p, len));
    const char *sa = strstr(p, "<answer_a>\nA"), *sb = strstr(p, "<answer_b>\nB");
    check(sa != NULL && sb != NULL && sa < sb, "order", "answers missing or swapped");
    const char *note = "[the rest of this answer is not shown]";
    const char *n1 = strstr(p, note), *n2 = n1 ? strstr(n1 + 1, note) : NULL;
    check(n1 != NULL && n2 != NULL, "notes", "each cut answer says so");
    check(strstr(p, "<conversation>\nUSER: hi\n</conversation>") != NULL, "conversation",
          "not shown as given");
    free(p);

    /* A short answer is shown whole, without a note. */
    p = cairn_judge_prompt("USER: hi", "short one", "short two", &len);
    check(strstr(p, note) == NULL, "short", "a note on an answer that was not cut");
    check(strstr(p, "<answer_a>\nshort one\n</answer_a>") != NULL, "short", "answer A altered");
    free(p);

    /* The conversation as the shadow renders it for the judge: its end. */
    char *question = long_answer("Q", 50 * 1024);
    cJSON *messages = cJSON_CreateArray();
    cJSON *turn = cJSON_CreateObject();
    cJSON_AddStringToObject(turn, "role", "user");
    cJSON_AddStringToObject(turn, "content", question);
    cJSON_AddItemToArray(messages, turn);
    char *conv = cairn_model_conversation(messages, CAIRN_JUDGE_CONVERSATION_MAX);
    size_t clen = strlen(conv);
    check(clen <= CAIRN_JUDGE_CONVERSATION_MAX, "conversation bounded", "%zu bytes", clen);
    check(clen > CAIRN_JUDGE_CONVERSATION_MAX - 4, "conversation kept", "only %zu bytes", clen);
    check(cairn_utf8_valid(conv, clen) == clen, "conversation cut", "not on a character");
    check(strcmp(conv + clen - 2, "\xc3\xa9") == 0, "conversation end", "the end was not kept");

    /* The request: one object, the model, both turns, the answers in order. */
    char *body = cairn_judge_request("judge-1", conv, a, b, &len);
    cJSON *req = cJSON_ParseWithLength(body, len);
    check(req != NULL, "request", "not JSON");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
    check(cJSON_IsString(model) && strcmp(model->valuestring, "judge-1") == 0, "request", "model");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(req, "messages");
    check(cJSON_GetArraySize(msgs) == 2, "request", "%d messages", cJSON_GetArraySize(msgs));
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(msgs, 1), "content");
    size_t bound = CAIRN_JUDGE_CONVERSATION_MAX + 2 * CAIRN_JUDGE_ANSWER_MAX + 1024;
    check(cJSON_IsString(user) && strlen(user->valuestring) <= bound, "request", "unbounded");
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(req, "max_tokens");
    check(cJSON_IsNumber(max) && max->valuedouble == CAIRN_JUDGE_MAX_TOKENS, "request",
          "max_tokens");
    cJSON_Delete(req);
    free(body);
    free(conv);
    cJSON_Delete(messages);
    free(question);
    free(a);
    free(b);
    rows_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_read),
        cmocka_unit_test(test_prompt_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
