/*
 * test_ngram.c — the n-gram classifier (ngram.h) gives libexttextcat's
 * answers: both load the fingerprints of rules/textcat.conf, and every
 * text is classified by both at several cut lengths and compared as
 * textcat_Classify prints its answer ("[fr][it]", "UNKNOWN").
 *
 * The texts: every string of the annotator's and the validator's labelled
 * cases (prompts and answers in 30 languages), and generated ones — words
 * of every fingerprint language and of other scripts, with runs of spaces
 * and digits, leading and trailing separators, cuts inside a multi-byte
 * character — which reach the library's corner cases (equal counts in the
 * 400-n-gram heap, runs that make it read past the cut, a cut that splits
 * a character).
 */
#include "unit.h"

#include <cjson/cJSON.h>
#include <libexttextcat/textcat.h>

#include "ngram.h"

#define FP_DIR "/usr/share/libexttextcat/"

struct both {
    void *lib;
    struct cairn_ngram *ours;
    char names[CAIRN_NGRAM_MAX_LANGS][32];
    size_t n;
};

static struct both fx;

static int setup(void **state)
{
    (void)state;
    FILE *f = fopen("rules/textcat.conf", "r");
    if (f == NULL)
        return -1;
    fx.ours = cairn_ngram_new();
    char line[512], file[256], id[32], path[600], why[256];
    while (fgets(line, sizeof(line), f) != NULL) {
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        if (sscanf(line, "%255s %31s", file, id) != 2)
            continue;
        snprintf(path, sizeof(path), FP_DIR "%s", file);
        if (cairn_ngram_add(fx.ours, path, (int)fx.n, why, sizeof(why)) < 0) {
            fclose(f);
            return -1;
        }
        snprintf(fx.names[fx.n++], sizeof(fx.names[0]), "%s", id);
    }
    fclose(f);
    cairn_ngram_seal(fx.ours);
    fx.lib = special_textcat_Init("rules/textcat.conf", FP_DIR);
    return fx.lib != NULL && fx.n > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    textcat_Done(fx.lib);
    cairn_ngram_free(fx.ours);
    return 0;
}

/* Our answer in the library's words. */
static void ours(const char *text, size_t limit, char *out, size_t outlen)
{
    int ids[5];
    int n = cairn_ngram_classify(fx.ours, text, strlen(text), limit, ids);
    size_t o = 0;
    out[0] = '\0';
    if (n == 0)
        snprintf(out, outlen, "UNKNOWN");
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(out + o, outlen - o, "[%s]", fx.names[ids[i]]);
}

static size_t compared, differed;

/* Compare both on text cut at several lengths (the library reads the
 * text to its NUL, keeping at most `limit` bytes). */
static void compare(const char *row, const char *text)
{
    static const size_t limits[] = {16, 64, 100, 256, 257, 1000};
    size_t len = strlen(text);
    for (size_t i = 0; i < NELEM(limits); i++) {
        size_t limit = limits[i] < len ? limits[i] : len;
        if (limit == 0)
            continue;
        char mine[256];
        const char *lib = textcat_Classify(fx.lib, text, limit);
        ours(text, limit, mine, sizeof(mine));
        compared++;
        if (!check(strcmp(lib, mine) == 0, row, "limit %zu: textcat %s, ours %s: \"%.60s\"", limit,
                   lib, mine, text))
            differed++;
        if (limits[i] >= len)
            break;
    }
}

static void each_string(const cJSON *j, const char *row)
{
    for (const cJSON *c = j; c != NULL; c = c->next) {
        if (cJSON_IsString(c) && strlen(c->valuestring) >= 2)
            compare(row, c->valuestring);
        if (c->child != NULL)
            each_string(c->child, row);
    }
}

static void compare_file(const char *path)
{
    char *all = slurp(path);
    assert_non_null(all);
    char *save = NULL;
    for (char *line = strtok_r(all, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        if (j != NULL)
            each_string(j->child, cJSON_IsString(id) ? id->valuestring : path);
        cJSON_Delete(j);
    }
    free(all);
}

static void test_labelled_texts_agree(void **state)
{
    (void)state;
    rows_begin();
    compared = differed = 0;
    compare_file("tests/annotator/prompts.jsonl");
    compare_file("tests/validate/cases.jsonl");
    print_message("    %zu texts x cuts compared, %zu differ\n", compared, differed);
    assert_true(compared > 1000);
    rows_end();
}

/* Words in the fingerprint languages and in scripts they do not cover,
 * with separators the library collapses. */
static const char *const words[] = {
    "the",      "and",   "which",   "über",  "straße",  "école",   "été",     "niño",
    "ação",     "şehir", "ğüzel",   "język", "źródło",  "čeština", "přítel",  "việt",
    "người",    "tiếng", "română",  "țară",  "русский", "язык",    "україна", "їжак",
    "ελληνικά", "עברית", "العربية", "हिन्दी", "日本語",  "中文",    "한국어",  "a",
    "I",        "of",    "de",      "la",    "het",     "een",     "und",     "die",
    "il",       "che",   "não",     "sie",   "bir",     "ve",      "dan",     "yang",
    "și",       "que",   "est",     "les",   "qu'il",   "l'été",   "don't",   "e-mail",
    "x",        "ﬁ",     "𝔘𝔫𝔦",     "🙂",  "—",       "«»",      "(note)",  "C++",
};
static const char *const seps[] = {
    " ", " ", " ", "  ", "\n", "\t", " 12 ", "3", " 2024-01-01 ", "\n\n", ", ", ". ", "\r\n",
};

static uint32_t rnd_state = 12345;

static uint32_t rnd(uint32_t n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 8) % n;
}

static void test_generated_texts_agree(void **state)
{
    (void)state;
    rows_begin();
    compared = differed = 0;
    char text[2048], row[32];
    for (int t = 0; t < 2000; t++) {
        size_t o = 0;
        /* Mostly one language's words, as real prose is; some mixed. */
        size_t base = rnd(NELEM(words)), spread = rnd(4) == 0 ? NELEM(words) : 6;
        if (rnd(5) == 0)
            o += (size_t)snprintf(text + o, sizeof(text) - o, "%s", seps[rnd(NELEM(seps))]);
        size_t nwords = 1 + rnd(t % 3 == 0 ? 12 : 120);
        for (size_t w = 0; w < nwords && o + 64 < sizeof(text); w++) {
            o += (size_t)snprintf(text + o, sizeof(text) - o, "%s",
                                  words[(base + rnd((uint32_t)spread)) % NELEM(words)]);
            o += (size_t)snprintf(text + o, sizeof(text) - o, "%s",
                                  w + 1 < nwords || rnd(3) == 0 ? seps[rnd(NELEM(seps))] : "");
        }
        snprintf(row, sizeof(row), "generated %d", t);
        compare(row, text);
        /* Cut at a random byte, maybe inside a character. */
        size_t len = strlen(text);
        if (len > 2) {
            size_t cut = 1 + rnd((uint32_t)(len - 1));
            char mine[256];
            const char *lib = textcat_Classify(fx.lib, text, cut);
            ours(text, cut, mine, sizeof(mine));
            compared++;
            if (!check(strcmp(lib, mine) == 0, row, "cut %zu: textcat %s, ours %s", cut, lib, mine))
                differed++;
        }
    }
    print_message("    %zu generated texts x cuts compared, %zu differ\n", compared, differed);
    rows_end();
}

static void test_load_errors(void **state)
{
    (void)state;
    char why[256];
    struct cairn_ngram *g = cairn_ngram_new();
    assert_int_equal(cairn_ngram_add(g, "/nonexistent/xx.lm", 0, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "/nonexistent/xx.lm: cannot be read"));
    /* Nothing loaded: no answer, no crash. */
    cairn_ngram_seal(g);
    int ids[5];
    assert_int_equal(cairn_ngram_classify(g, LIT("some text here"), 14, ids), 0);
    cairn_ngram_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labelled_texts_agree),
        cmocka_unit_test(test_generated_texts_agree),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
