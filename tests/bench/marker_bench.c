/*
 * marker_bench.c — what the marker stage costs per request: loads rules/
 * (or the directory given) and prints the mean microseconds per
 * cairn_annotator_run for a short prompt and for a 20 KB prompt with code,
 * and per cairn_validate (all seven validators) for a 4 KB answer.
 *
 *   build/marker-bench [RULES_DIR [DIVISOR]]
 *
 * DIVISOR (default 1) divides every round count: under valgrind
 * --tool=callgrind, whose instruction counts are repeatable where wall
 * clock is not, `marker-bench rules 100` runs in seconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "annotator.h"
#include "markers.h"
#include "taxonomy.h"
#include "validate.h"

static int divisor = 1;

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static cJSON *conversation(const char *prompt)
{
    cJSON *messages = cJSON_CreateArray();
    cJSON *system = cJSON_CreateObject();
    cJSON_AddStringToObject(system, "role", "system");
    cJSON_AddStringToObject(system, "content", "You are a helpful assistant.");
    cJSON_AddItemToArray(messages, system);
    cJSON *user = cJSON_CreateObject();
    cJSON_AddStringToObject(user, "role", "user");
    cJSON_AddStringToObject(user, "content", prompt);
    cJSON_AddItemToArray(messages, user);
    return messages;
}

static void measure(const char *label, const struct cairn_annotator *a,
                    const struct cairn_taxonomy *tx, const char *prompt, int rounds)
{
    cJSON *messages = conversation(prompt);
    struct cairn_markers m;
    rounds = rounds / divisor > 0 ? rounds / divisor : 1;
    for (int i = 0; i < 50; i++) { /* warm caches and JIT stacks */
        cairn_markers_init(&m, tx);
        cairn_annotator_run(a, messages, &m);
    }
    double t0 = now_us();
    for (int i = 0; i < rounds; i++) {
        cairn_markers_init(&m, tx);
        cairn_annotator_run(a, messages, &m);
    }
    double us = (now_us() - t0) / rounds;
    printf("%-28s %7zu bytes  %8.1f us/annotation  (%zu markers)\n", label, strlen(prompt), us,
           cairn_markers_count(&m));
    cJSON_Delete(messages);
}

/* A 4 KB answer — paragraphs of prose, a list, a Go block — checked
 * against one marker of every validated kind. */
static int measure_validation(const struct cairn_taxonomy *tx, const char *dir)
{
    char err[1024];
    struct cairn_validator *v = cairn_validator_load(tx, dir, err, sizeof(err));
    if (v == NULL) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    static const char *const markers[][2] = {
        {"length_tokens", "900"},    {"length_sentences", "60"}, {"length_paragraphs", "12"},
        {"length_bucket", "medium"}, {"format", "Markdown"},     {"lang", "English"},
        {"code_type", "go"},
    };
    struct cairn_markers m;
    cairn_markers_init(&m, tx);
    uint32_t tags = 0;
    for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++) {
        cairn_markers_offer_key(&m, markers[i][0], markers[i][1], CAIRN_SRC_PINNED);
        tags |= 1u << cairn_taxonomy_key(tx, markers[i][0]);
    }
    char answer[4200];
    size_t len = 0;
    const char *para = "The service reads each request, checks it against the policy and "
                       "forwards it when it passes. Errors are reported with a clear message. ";
    while (len < 1500)
        len += (size_t)snprintf(answer + len, sizeof(answer) - len, "%s", para);
    len += (size_t)snprintf(answer + len, sizeof(answer) - len,
                            "\n\nThe steps are:\n\n- parse the body\n- check the markers\n"
                            "- forward the request\n\n```go\nfunc handle(w http.ResponseWriter, "
                            "r *http.Request) {\n\tbody, _ := io.ReadAll(r.Body)\n\t"
                            "w.Write(body)\n}\n```\n\n");
    while (len < 4000)
        len += (size_t)snprintf(answer + len, sizeof(answer) - len, "%s", para);
    struct cairn_validate_opts o = {tags, CAIRN_COUNT_WORDS, 0.1, 64};
    struct cairn_violations out;
    for (int i = 0; i < 200; i++)
        cairn_validate(v, &m, answer, len, &o, &out);
    int rounds = 5000 / divisor > 0 ? 5000 / divisor : 1;
    double t0 = now_us();
    for (int i = 0; i < rounds; i++)
        cairn_validate(v, &m, answer, len, &o, &out);
    printf("%-28s %7zu bytes  %8.1f us/validation  (%zu markers, %zu violations)\n",
           "4 KB answer, 7 validators", len, (now_us() - t0) / rounds, cairn_markers_count(&m),
           out.n);
    cairn_validator_free(v);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "rules";
    if (argc > 2 && atoi(argv[2]) > 0)
        divisor = atoi(argv[2]);
    char err[1024];
    struct cairn_taxonomy tx;
    if (cairn_taxonomy_load_dir(&tx, dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double t0 = now_us();
    struct cairn_annotator *a = cairn_annotator_load(&tx, dir, err, sizeof(err));
    if (a == NULL) {
        fprintf(stderr, "%s\n", err);
        cairn_taxonomy_free(&tx);
        return 1;
    }
    printf("rules loaded and compiled in %.1f ms\n", (now_us() - t0) / 1e3);

    measure("short prompt", a, &tx, "Fix this bug in my Go code, answer in under 100 words", 20000);
    measure("short prompt (French)", a, &tx,
            "Peux-tu m'expliquer la photosynthèse en moins de 100 mots ?", 20000);

    /* 20 KB: prose, a code block, more prose, the instruction at the end. */
    size_t cap = 24 << 10, len = 0;
    char *big = malloc(cap);
    const char *prose = "The quarterly report describes revenue growth across regions, "
                        "with notes on costs, hiring and the outlook for next year. ";
    const char *code = "def handle(request):\n    data = parse(request.body)\n"
                       "    return respond(data, status=200)\n";
    len += (size_t)snprintf(big + len, cap - len, "Here is the context:\n");
    while (len < 9000)
        len += (size_t)snprintf(big + len, cap - len, "%s", prose);
    len += (size_t)snprintf(big + len, cap - len, "\n```python\n");
    while (len < 14000)
        len += (size_t)snprintf(big + len, cap - len, "%s", code);
    len += (size_t)snprintf(big + len, cap - len, "```\n");
    while (len < 20300)
        len += (size_t)snprintf(big + len, cap - len, "%s", prose);
    snprintf(big + len, cap - len,
             "\nSummarize the above in three bullet points, "
             "in under 150 words.");
    measure("20 KB prompt", a, &tx, big, 2000);
    free(big);

    if (measure_validation(&tx, dir) < 0) {
        cairn_annotator_free(a);
        cairn_taxonomy_free(&tx);
        return 1;
    }

    cairn_annotator_free(a);
    cairn_taxonomy_free(&tx);
    return 0;
}
