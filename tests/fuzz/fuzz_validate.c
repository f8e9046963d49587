/*
 * fuzz_validate.c — the answer validators (include/validate.h), loaded
 * from rules/, on arbitrary answers.
 *
 * Input: a byte for what a length counts, a byte for the tolerance, one
 * byte per taxonomy tag choosing its marker (0: none; else a value of the
 * tag's list or range), then the answer. Every violation reported must be about
 * a marker that was set and selected, with NUL-terminated texts; feedback
 * is written when something broke; an attempt compares equal to itself;
 * and the length counters agree that an answer has no more words than
 * characters.
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "markers.h"
#include "taxonomy.h"
#include "validate.h"

static struct cairn_taxonomy tx;
static struct cairn_validator *val;

static void setup(void)
{
    char err[512];
    if (val != NULL)
        return;
    if (cairn_taxonomy_load(&tx, "rules/taxonomy.json", err, sizeof(err)) < 0 ||
        (val = cairn_validator_load(&tx, "rules", err, sizeof(err))) == NULL) {
        fprintf(stderr, "fuzz_validate: %s (run from the repository root)\n", err);
        exit(1);
    }
}

/* Tag i's marker as byte b picks it: none for 0, else the (b-1)th value
 * of its list, or min + b - 1 (clamped) for a number. */
static void pick(struct cairn_markers *m, size_t i, uint8_t b)
{
    const struct cairn_tag *t = &tx.tags[i];
    char v[CAIRN_MARKER_VALUE_MAX], err[256];
    if (b == 0)
        return;
    if (t->type == CAIRN_TAG_ENUM) {
        if (t->nvalues == 0)
            return;
        snprintf(v, sizeof(v), "%s", t->values[(b - 1) % t->nvalues]);
    } else if (t->type == CAIRN_TAG_INT) {
        double x = t->min + (double)(b - 1);
        snprintf(v, sizeof(v), "%.0f", x > t->max ? t->max : x);
    } else {
        snprintf(v, sizeof(v), "%g", t->min + (t->max - t->min) * (double)(b - 1) / 254.0);
    }
    FUZZ_CHECK(cairn_markers_offer(m, (int)i, v, CAIRN_SRC_PINNED, err, sizeof(err)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    struct fuzz_in in = {data, size};
    struct cairn_validate_opts o = {.json_depth = 64};
    o.counting = (enum cairn_counting)(fuzz_byte(&in) % 3);
    o.tolerance = (double)(fuzz_byte(&in) % 5) / 10.0;
    struct cairn_markers m;
    cairn_markers_init(&m, &tx);
    for (size_t i = 0; i < tx.ntags; i++) {
        pick(&m, i, fuzz_byte(&in));
        if (cairn_validator_has(val, tx.tags[i].key))
            o.tags |= UINT32_C(1) << i;
    }
    char *answer = malloc(in.n ? in.n : 1); /* exactly sized: over-reads are caught */
    if (answer == NULL)
        abort();
    memcpy(answer, in.p, in.n);

    struct cairn_violations v;
    memset(&v, 0xa5, sizeof(v)); /* whatever was there before */
    cairn_validate(val, &m, answer, in.n, &o, &v);
    FUZZ_CHECK(v.n <= tx.ntags);
    for (size_t k = 0; k < v.n; k++) {
        const struct cairn_violation *x = &v.items[k];
        FUZZ_CHECK(x->tag >= 0 && (size_t)x->tag < tx.ntags);
        FUZZ_CHECK(m.source[x->tag] != CAIRN_SRC_NONE && (o.tags & (UINT32_C(1) << x->tag)));
        FUZZ_CHECK(x->key != NULL && strcmp(x->key, tx.tags[x->tag].key) == 0);
        FUZZ_CHECK(memchr(x->expected, '\0', sizeof(x->expected)) != NULL);
        FUZZ_CHECK(memchr(x->observed, '\0', sizeof(x->observed)) != NULL);
        FUZZ_CHECK(x->excess >= 0);
    }
    char feedback[2048];
    feedback[0] = '\0';
    cairn_violations_feedback(&v, feedback, sizeof(feedback));
    FUZZ_CHECK(v.n == 0 || feedback[0] != '\0');
    FUZZ_CHECK(cairn_violations_compare(&v, &v) == 0);
    cJSON *arr = cJSON_CreateArray();
    cairn_violations_to_json(&v, &tx, arr);
    FUZZ_CHECK((size_t)cJSON_GetArraySize(arr) == v.n);
    cJSON_Delete(arr);

    size_t words = cairn_count_length(answer, in.n, CAIRN_COUNT_WORDS);
    size_t chars = cairn_count_length(answer, in.n, CAIRN_COUNT_CHARACTERS);
    (void)cairn_count_length(answer, in.n, CAIRN_COUNT_TOKENS);
    FUZZ_CHECK(words <= chars);
    free(answer);
    return 0;
}
