/*
 * test_metrics.c — unit tests for include/metrics.h.
 *
 * Whole renders are compared byte for byte: counters with and without
 * labels, gauges (set and add), histograms (cumulative buckets, the bound
 * itself counted in its bucket, +Inf, _sum and _count, le after the
 * family's labels). Tables cover the escaping of label values and HELP
 * text, number formatting, label value truncation at a UTF-8 boundary and
 * NULL values. Families render in the order added and series in the order
 * first seen, whatever is updated later. A family stops at
 * CAIRN_METRICS_MAX_SERIES series and the registry counts what it dropped.
 * Programming errors abort (checked in a forked child), and near-misses
 * that are valid do not. Last, a registry with every kind of family goes
 * through `promtool check metrics` when promtool is installed.
 */
#include "unit.h"

#include <math.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metrics.h"

#define PROMTOOL "/usr/bin/promtool"

/* A NULL-terminated list of label names; an array of label values. */
#define NAMES(...)  ((const char *const[]){__VA_ARGS__, NULL})
#define VALUES(...) ((const char *const[]){__VA_ARGS__})

/* What every registry renders first: its own dropped-series counter. */
#define DROPPED_HEAD                                                                               \
    "# HELP cairn_metrics_series_dropped_total Label combinations not recorded because their "     \
    "family had reached its series limit.\n"                                                       \
    "# TYPE cairn_metrics_series_dropped_total counter\n"

static char *render(const struct cairn_metrics *reg)
{
    size_t len = 0;
    char *text = cairn_metrics_render(reg, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    return text;
}

/* The registry renders exactly DROPPED_HEAD followed by `want`. */
static void expect_render(const struct cairn_metrics *reg, const char *row, const char *want)
{
    char *text = render(reg);
    size_t head = strlen(DROPPED_HEAD);
    if (check(strncmp(text, DROPPED_HEAD, head) == 0, row, "no dropped-series head:\n%s", text))
        check(strcmp(text + head, want) == 0, row, "rendered\n%s\nwant\n%s", text + head, want);
    free(text);
}

/* The registry's text contains `line` as a whole line. */
static bool has_line(const struct cairn_metrics *reg, const char *line)
{
    char *text = render(reg);
    size_t n = strlen(line);
    bool found = false;
    for (const char *p = text; !found && (p = strstr(p, line)) != NULL; p++)
        found = (p == text || p[-1] == '\n') && p[n] == '\n';
    free(text);
    return found;
}

static void test_counter(void **state)
{
    (void)state;
    struct cairn_metrics *reg = cairn_metrics_new();
    rows_begin();
    struct cairn_metric *req =
        cairn_metrics_add(reg, CAIRN_METRIC_COUNTER, "req_total", "Requests.", NULL, NULL, 0);
    expect_render(reg, "unlabelled, new",
                  "# HELP req_total Requests.\n# TYPE req_total counter\n"
                  "req_total 0\n");
    cairn_metric_add(req, NULL, 1);
    cairn_metric_add(req, NULL, 2);
    expect_render(reg, "unlabelled, 1 + 2",
                  "# HELP req_total Requests.\n# TYPE req_total counter\nreq_total 3\n");

    struct cairn_metric *resp = cairn_metrics_add(reg, CAIRN_METRIC_COUNTER, "resp_total",
                                                  "Responses.", NAMES("code", "method"), NULL, 0);
    expect_render(reg, "labelled, new",
                  "# HELP req_total Requests.\n# TYPE req_total counter\nreq_total 3\n"
                  "# HELP resp_total Responses.\n# TYPE resp_total counter\n");
    cairn_metric_add(resp, VALUES("200", "POST"), 1);
    cairn_metric_add(resp, VALUES("500", "POST"), 1);
    cairn_metric_add(resp, VALUES("200", "POST"), 2);
    cairn_metric_add(resp, VALUES("200", "GET"), 0.5);
    cairn_metric_add(resp, VALUES("500", "POST"), 0);
    expect_render(reg, "labelled",
                  "# HELP req_total Requests.\n# TYPE req_total counter\nreq_total 3\n"
                  "# HELP resp_total Responses.\n# TYPE resp_total counter\n"
                  "resp_total{code=\"200\",method=\"POST\"} 3\n"
                  "resp_total{code=\"500\",method=\"POST\"} 1\n"
                  "resp_total{code=\"200\",method=\"GET\"} 0.5\n");
    cairn_metrics_free(reg);
    rows_end();
}

static void test_gauge(void **state)
{
    static const struct {
        bool set; /* else add */
        double v;
        const char *want;
    } rows[] = {
        {true, 5, "g 5"},        {false, -7, "g -2"},       {true, 0.25, "g 0.25"},
        {false, 1, "g 1.25"},    {true, 1e300, "g 1e+300"}, {true, 0, "g 0"},
        {false, -0.5, "g -0.5"},
    };
    (void)state;
    struct cairn_metrics *reg = cairn_metrics_new();
    struct cairn_metric *g =
        cairn_metrics_add(reg, CAIRN_METRIC_GAUGE, "g", "G.", NAMES(NULL), NULL, 0);
    rows_begin();
    check(has_line(reg, "g 0"), "new", "an unlabelled gauge starts at 0");
    for (size_t i = 0; i < NELEM(rows); i++) {
        if (rows[i].set)
            cairn_metric_set(g, NULL, rows[i].v);
        else
            cairn_metric_add(g, NULL, rows[i].v);
        check(has_line(reg, rows[i].want), rows[i].want, "%s %g: line missing",
              rows[i].set ? "set" : "add", rows[i].v);
    }

    struct cairn_metric *lg =
        cairn_metrics_add(reg, CAIRN_METRIC_GAUGE, "lg", "Labelled.", NAMES("k"), NULL, 0);
    cairn_metric_set(lg, VALUES("a"), 1);
    cairn_metric_add(lg, VALUES("b"), 2);
    cairn_metric_set(lg, VALUES("a"), 3);
    cairn_metric_add(lg, VALUES("b"), -4);
    expect_render(reg, "labelled",
                  "# HELP g G.\n# TYPE g gauge\ng -0.5\n"
                  "# HELP lg Labelled.\n# TYPE lg gauge\nlg{k=\"a\"} 3\nlg{k=\"b\"} -2\n");
    cairn_metrics_free(reg);
    rows_end();
}

static void test_histogram(void **state)
{
    static const double bounds[] = {0.25, 0.5, 1};
    (void)state;
    struct cairn_metrics *reg = cairn_metrics_new();
    rows_begin();
    struct cairn_metric *plain =
        cairn_metrics_add(reg, CAIRN_METRIC_HISTOGRAM, "h_seconds", "H.", NULL, bounds, 3);
    static const char plain_new[] = "# HELP h_seconds H.\n# TYPE h_seconds histogram\n"
                                    "h_seconds_bucket{le=\"0.25\"} 0\n"
                                    "h_seconds_bucket{le=\"0.5\"} 0\n"
                                    "h_seconds_bucket{le=\"1\"} 0\n"
                                    "h_seconds_bucket{le=\"+Inf\"} 0\n"
                                    "h_seconds_sum 0\n"
                                    "h_seconds_count 0\n";
    expect_render(reg, "unlabelled, new", plain_new);

    /* 0.25 and 1 sit on bounds and count in those buckets; 3 only in +Inf. */
    static const double seen[] = {0.125, 0.25, 0.75, 1, 3};
    for (size_t i = 0; i < NELEM(seen); i++)
        cairn_metric_observe(plain, NULL, seen[i]);
    static const char plain_seen[] = "# HELP h_seconds H.\n# TYPE h_seconds histogram\n"
                                     "h_seconds_bucket{le=\"0.25\"} 2\n"
                                     "h_seconds_bucket{le=\"0.5\"} 2\n"
                                     "h_seconds_bucket{le=\"1\"} 4\n"
                                     "h_seconds_bucket{le=\"+Inf\"} 5\n"
                                     "h_seconds_sum 5.125\n"
                                     "h_seconds_count 5\n";
    expect_render(reg, "unlabelled", plain_seen);

    struct cairn_metric *lab = cairn_metrics_add(reg, CAIRN_METRIC_HISTOGRAM, "lh", "Labelled.",
                                                 NAMES("model", "code"), bounds, 3);
    cairn_metric_observe(lab, VALUES("m1", "200"), 0.5);
    cairn_metric_observe(lab, VALUES("m2", "200"), 2);
    cairn_metric_observe(lab, VALUES("m1", "200"), 0.125);
    struct cairn_metric *only_inf =
        cairn_metrics_add(reg, CAIRN_METRIC_HISTOGRAM, "inf_only", "No bounds.", NULL, NULL, 0);
    cairn_metric_observe(only_inf, NULL, 7);
    cairn_metric_observe(only_inf, NULL, NAN);
    expect_render(reg, "labelled",
                  "# HELP h_seconds H.\n# TYPE h_seconds histogram\n"
                  "h_seconds_bucket{le=\"0.25\"} 2\n"
                  "h_seconds_bucket{le=\"0.5\"} 2\n"
                  "h_seconds_bucket{le=\"1\"} 4\n"
                  "h_seconds_bucket{le=\"+Inf\"} 5\n"
                  "h_seconds_sum 5.125\n"
                  "h_seconds_count 5\n"
                  "# HELP lh Labelled.\n# TYPE lh histogram\n"
                  "lh_bucket{model=\"m1\",code=\"200\",le=\"0.25\"} 1\n"
                  "lh_bucket{model=\"m1\",code=\"200\",le=\"0.5\"} 2\n"
                  "lh_bucket{model=\"m1\",code=\"200\",le=\"1\"} 2\n"
                  "lh_bucket{model=\"m1\",code=\"200\",le=\"+Inf\"} 2\n"
                  "lh_sum{model=\"m1\",code=\"200\"} 0.625\n"
                  "lh_count{model=\"m1\",code=\"200\"} 2\n"
                  "lh_bucket{model=\"m2\",code=\"200\",le=\"0.25\"} 0\n"
                  "lh_bucket{model=\"m2\",code=\"200\",le=\"0.5\"} 0\n"
                  "lh_bucket{model=\"m2\",code=\"200\",le=\"1\"} 0\n"
                  "lh_bucket{model=\"m2\",code=\"200\",le=\"+Inf\"} 1\n"
                  "lh_sum{model=\"m2\",code=\"200\"} 2\n"
                  "lh_count{model=\"m2\",code=\"200\"} 1\n"
                  "# HELP inf_only No bounds.\n# TYPE inf_only histogram\n"
                  "inf_only_bucket{le=\"+Inf\"} 2\n"
                  "inf_only_sum NaN\n"
                  "inf_only_count 2\n");
    cairn_metrics_free(reg);
    rows_end();
}

static void test_escaping(void **state)
{
    static const struct {
        const char *in, *label, *help; /* in as a label value, as HELP text */
    } rows[] = {
        {"plain", "plain", "plain"},
        {"", "", ""},
        {"back\\slash", "back\\\\slash", "back\\\\slash"},
        {"say \"hi\"", "say \\\"hi\\\"", "say \"hi\""},
        {"two\nlines", "two\\nlines", "two\\nlines"},
        {"\\\"\n", "\\\\\\\"\\n", "\\\\\"\\n"},
        {"\\n", "\\\\n", "\\\\n"},
        {"tab\tcr\r{}=,", "tab\tcr\r{}=,", "tab\tcr\r{}=,"},
        {"caf\xc3\xa9", "caf\xc3\xa9", "caf\xc3\xa9"},
    };
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct cairn_metrics *reg = cairn_metrics_new();
        struct cairn_metric *g =
            cairn_metrics_add(reg, CAIRN_METRIC_GAUGE, "g", rows[i].in, NAMES("v"), NULL, 0);
        cairn_metric_set(g, VALUES(rows[i].in), 1);
        char want[256];
        snprintf(want, sizeof want, "# HELP g %s\n# TYPE g gauge\ng{v=\"%s\"} 1\n", rows[i].help,
                 rows[i].label);
        expect_render(reg, rows[i].in, want);
        cairn_metrics_free(reg);
    }
    rows_end();
}

static void test_numbers(void **state)
{
    static const struct {
        double v;
        const char *text;
    } rows[] = {
        {0, "0"},
        {3, "3"},
        {-2, "-2"},
        {123456789012, "123456789012"},
        {999999999999999, "999999999999999"},
        {1e15, "1e+15"},
        {1e20, "1e+20"},
        {-1e20, "-1e+20"},
        {0.5, "0.5"},
        {0.1, "0.1"},
        {0.005, "0.005"},
        {2.5e-7, "2.5e-07"},
        {1.0 / 3, "0.3333333333333333"},
        {0.1 + 0.2, "0.30000000000000004"},
        {-1.5, "-1.5"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {5e-324, "4.94065645841247e-324"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct cairn_metrics *reg = cairn_metrics_new();
        struct cairn_metric *g =
            cairn_metrics_add(reg, CAIRN_METRIC_GAUGE, "g", "G.", NULL, NULL, 0);
        cairn_metric_set(g, NULL, rows[i].v);
        char line[64];
        snprintf(line, sizeof line, "g %s", rows[i].text);
        check(has_line(reg, line), rows[i].text, "no line \"%s\"", line);
        /* The same text, read back, is the same double. */
        if (isfinite(rows[i].v))
            check(strtod(rows[i].text, NULL) == rows[i].v, rows[i].text, "does not read back");
        cairn_metrics_free(reg);
    }

    /* Bucket bounds take the same format inside le="...". */
    static const double bounds[] = {-1, 0.005, 0.1, 2.5, 10, 1e20};
    struct cairn_metrics *reg = cairn_metrics_new();
    cairn_metrics_add(reg, CAIRN_METRIC_HISTOGRAM, "h", "H.", NULL, bounds, NELEM(bounds));
    expect_render(reg, "bounds",
                  "# HELP h H.\n# TYPE h histogram\n"
                  "h_bucket{le=\"-1\"} 0\nh_bucket{le=\"0.005\"} 0\nh_bucket{le=\"0.1\"} 0\n"
                  "h_bucket{le=\"2.5\"} 0\nh_bucket{le=\"10\"} 0\nh_bucket{le=\"1e+20\"} 0\n"
                  "h_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n");
    cairn_metrics_free(reg);
    rows_end();
}

static void test_label_values(void **state)
{
    char a200[201], a127e[130], a126e[129];
    memset(a200, 'a', 200);
    a200[200] = '\0';
    memset(a127e, 'a', 127);
    memcpy(a127e + 127, "\xc3\xa9", 3); /* é straddles the 128-byte cut */
    memset(a126e, 'a', 126);
    memcpy(a126e + 126, "\xc3\xa9", 3); /* é ends exactly at the cut */
    const struct {
        const char *row, *in;
        size_t keep; /* bytes of `in` that are kept */
    } rows[] = {
        {"200 bytes", a200, 128},
        {"char across the cut", a127e, 127},
        {"char up to the cut", a126e, 128},
        {"NULL value", NULL, 0},
    };
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct cairn_metrics *reg = cairn_metrics_new();
        struct cairn_metric *c =
            cairn_metrics_add(reg, CAIRN_METRIC_COUNTER, "c_total", "C.", NAMES("v"), NULL, 0);
        cairn_metric_add(c, VALUES(rows[i].in), 1);
        char want[256];
        snprintf(want, sizeof want, "c_total{v=\"%.*s\"} 1", (int)rows[i].keep,
                 rows[i].in ? rows[i].in : "");
        check(has_line(reg, want), rows[i].row, "no line %s", want);
        cairn_metrics_free(reg);
    }

    /* Values that differ only past the cut share a series; NULL is "". */
    struct cairn_metrics *reg = cairn_metrics_new();
    struct cairn_metric *c =
        cairn_metrics_add(reg, CAIRN_METRIC_COUNTER, "c_total", "C.", NAMES("v", "w"), NULL, 0);
    char b200[201];
    memcpy(b200, a200, sizeof b200);
    b200[150] = 'b';
    cairn_metric_add(c, VALUES(a200, "x"), 1);
    cairn_metric_add(c, VALUES(b200, "x"), 1);
    cairn_metric_add(c, NULL, 1);
    cairn_metric_add(c, VALUES(NULL, ""), 1);
    cairn_metric_add(c, VALUES("", NULL), 1);
    /* Same bytes, split differently between the labels. */
    cairn_metric_add(c, VALUES("ab", ""), 1);
    cairn_metric_add(c, VALUES("a", "b"), 1);
    char want[512];
    snprintf(want, sizeof want,
             "# HELP c_total C.\n# TYPE c_total counter\n"
             "c_total{v=\"%.128s\",w=\"x\"} 2\n"
             "c_total{v=\"\",w=\"\"} 3\n"
             "c_total{v=\"ab\",w=\"\"} 1\n"
             "c_total{v=\"a\",w=\"b\"} 1\n",
             a200);
    expect_render(reg, "shared series", want);
    cairn_metrics_free(reg);
    rows_end();
}

static void test_stable_order(void **state)
{
    (void)state;
    struct cairn_metrics *reg = cairn_metrics_new();
    rows_begin();
    struct cairn_metric *z =
        cairn_metrics_add(reg, CAIRN_METRIC_COUNTER, "zeta_total", "Z.", NAMES("k"), NULL, 0);
    struct cairn_metric *a =
        cairn_metrics_add(reg, CAIRN_METRIC_GAUGE, "alpha", "A.", NAMES("k"), NULL, 0);
    static const char *const keys[] = {"z", "a", "m", "b"};
    for (size_t i = 0; i < NELEM(keys); i++) {
        cairn_metric_add(a, VALUES(keys[NELEM(keys) - 1 - i]), 1);
        cairn_metric_add(z, VALUES(keys[i]), 1);
    }
    /* Later updates, in another order, move nothing. */
    cairn_metric_add(z, VALUES("b"), 1);
    cairn_metric_set(a, VALUES("z"), 5);
    static const char want[] = "# HELP zeta_total Z.\n# TYPE zeta_total counter\n"
                               "zeta_total{k=\"z\"} 1\nzeta_total{k=\"a\"} 1\n"
                               "zeta_total{k=\"m\"} 1\nzeta_total{k=\"b\"} 2\n"
                               "# HELP alpha A.\n# TYPE alpha gauge\n"
                               "alpha{k=\"b\"} 1\nalpha{k=\"m\"} 1\n"
                               "alpha{k=\"a\"} 1\nalpha{k=\"z\"} 5\n";
    expect_render(reg, "first render", want);
    expect_render(reg, "second render", want);
    cairn_metrics_free(reg);
    rows_end();
}

static size_t count_lines_starting(const char *text, const char *prefix)
{
    size_t n = 0, k = strlen(prefix);
    for (const char *p = text; p != NULL;) {
        n += strncmp(p, prefix, k) == 0;
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return n;
}

static void test_series_cap(void **state)
{
    static const double bounds[] = {1};
    (void)state;
    struct cairn_metrics *reg = cairn_metrics_new();
    rows_begin();
    struct cairn_metric *c =
        cairn_metrics_add(reg, CAIRN_METRIC_COUNTER, "cap_total", "C.", NAMES("id"), NULL, 0);
    struct cairn_metric *g =
        cairn_metrics_add(reg, CAIRN_METRIC_GAUGE, "cap_g", "G.", NAMES("id", "other"), NULL, 0);
    struct cairn_metric *h =
        cairn_metrics_add(reg, CAIRN_METRIC_HISTOGRAM, "cap_h", "H.", NAMES("id"), bounds, 1);
    char id[32];
    /* Fill each family, then look every series up again: all must still be
     * found after the table has grown. */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < CAIRN_METRICS_MAX_SERIES; i++) {
            snprintf(id, sizeof id, "%d", i);
            cairn_metric_add(c, VALUES(id), 1);
            cairn_metric_set(g, VALUES(id, "x"), i);
            cairn_metric_observe(h, VALUES(id), 0.5);
        }
    /* Ten new combinations for the counter, one each for the others. */
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof id, "new%d", i);
        cairn_metric_add(c, VALUES(id), 1);
    }
    cairn_metric_set(g, VALUES("0", "y"), 1);
    cairn_metric_observe(h, VALUES("new"), 1);
    /* Existing series are still updated. */
    cairn_metric_add(c, VALUES("7"), 1);
    cairn_metric_observe(h, VALUES("7"), 2);

    char *text = render(reg);
    check(count_lines_starting(text, "cap_total{") == CAIRN_METRICS_MAX_SERIES, "counter",
          "%zu series", count_lines_starting(text, "cap_total{"));
    check(count_lines_starting(text, "cap_total{id=\"new") == 0, "counter",
          "a dropped value was recorded");
    check(count_lines_starting(text, "cap_g{") == CAIRN_METRICS_MAX_SERIES, "gauge", "%zu series",
          count_lines_starting(text, "cap_g{"));
    check(count_lines_starting(text, "cap_h_count{") == CAIRN_METRICS_MAX_SERIES, "histogram",
          "%zu series", count_lines_starting(text, "cap_h_count{"));
    free(text);
    check(has_line(reg, "cap_total{id=\"0\"} 2"), "counter", "first series not found again");
    check(has_line(reg, "cap_total{id=\"4095\"} 2"), "counter", "last series not found again");
    check(has_line(reg, "cap_total{id=\"7\"} 3"), "counter", "full family stopped updating");
    check(has_line(reg, "cap_g{id=\"4095\",other=\"x\"} 4095"), "gauge", "last series");
    check(has_line(reg, "cap_h_count{id=\"7\"} 3"), "histogram", "full family stopped updating");
    check(has_line(reg, "cairn_metrics_series_dropped_total{family=\"cap_total\"} 10"), "dropped",
          "counter drops");
    check(has_line(reg, "cairn_metrics_series_dropped_total{family=\"cap_g\"} 1"), "dropped",
          "gauge drops");
    check(has_line(reg, "cairn_metrics_series_dropped_total{family=\"cap_h\"} 1"), "dropped",
          "histogram drops");
    cairn_metrics_free(reg);
    rows_end();
}

/* Misuse: run in a child, which must die of abort(). */

static const char *const no_labels[] = {NULL};
static const double increasing[] = {1, 2};
static const double repeated[] = {1, 1};
static const double decreasing[] = {2, 1};
static const double with_nan[] = {1, NAN};
static const double with_inf[] = {1, INFINITY};

static const struct add_row {
    const char *row;
    enum cairn_metric_type type;
    const char *name;
    const char *const *labels;
    const double *buckets;
    size_t nbuckets;
    bool aborts;
} add_rows[] = {
    {"counter", CAIRN_METRIC_COUNTER, "ok_total", no_labels, NULL, 0, false},
    {"colon in name", CAIRN_METRIC_COUNTER, "job:ok_total", NULL, NULL, 0, false},
    {"underscore label", CAIRN_METRIC_GAUGE, "g", NAMES("_x"), NULL, 0, false},
    {"histogram, +Inf only", CAIRN_METRIC_HISTOGRAM, "h", NULL, NULL, 0, false},
    {"histogram", CAIRN_METRIC_HISTOGRAM, "h", NAMES("code"), increasing, 2, false},
    {"counter without _total", CAIRN_METRIC_COUNTER, "requests", NULL, NULL, 0, true},
    {"_total not at the end", CAIRN_METRIC_COUNTER, "a_total_x", NULL, NULL, 0, true},
    {"empty name", CAIRN_METRIC_GAUGE, "", NULL, NULL, 0, true},
    {"NULL name", CAIRN_METRIC_GAUGE, NULL, NULL, NULL, 0, true},
    {"digit first", CAIRN_METRIC_GAUGE, "1g", NULL, NULL, 0, true},
    {"dash in name", CAIRN_METRIC_GAUGE, "a-b", NULL, NULL, 0, true},
    {"non-ASCII name", CAIRN_METRIC_GAUGE, "caf\xc3\xa9", NULL, NULL, 0, true},
    {"duplicate name", CAIRN_METRIC_GAUGE, "dup", NULL, NULL, 0, true},
    {"registry's own name", CAIRN_METRIC_COUNTER, "cairn_metrics_series_dropped_total", NULL, NULL,
     0, true},
    {"dash in label", CAIRN_METRIC_GAUGE, "g", NAMES("a-b"), NULL, 0, true},
    {"colon in label", CAIRN_METRIC_GAUGE, "g", NAMES("a:b"), NULL, 0, true},
    {"empty label", CAIRN_METRIC_GAUGE, "g", NAMES(""), NULL, 0, true},
    {"reserved label", CAIRN_METRIC_GAUGE, "g", NAMES("__name__"), NULL, 0, true},
    {"repeated label", CAIRN_METRIC_GAUGE, "g", NAMES("a", "b", "a"), NULL, 0, true},
    {"le in histogram", CAIRN_METRIC_HISTOGRAM, "h", NAMES("le"), NULL, 0, true},
    {"buckets on gauge", CAIRN_METRIC_GAUGE, "g", NULL, increasing, 2, true},
    {"repeated bound", CAIRN_METRIC_HISTOGRAM, "h", NULL, repeated, 2, true},
    {"decreasing bounds", CAIRN_METRIC_HISTOGRAM, "h", NULL, decreasing, 2, true},
    {"NaN bound", CAIRN_METRIC_HISTOGRAM, "h", NULL, with_nan, 2, true},
    {"+Inf bound", CAIRN_METRIC_HISTOGRAM, "h", NULL, with_inf, 2, true},
    {"count without bounds", CAIRN_METRIC_HISTOGRAM, "h", NULL, NULL, 2, true},
};

enum op { ADD, SET, OBSERVE };

static const struct update_row {
    const char *row;
    enum cairn_metric_type type;
    enum op op;
    double v;
    bool aborts;
} update_rows[] = {
    {"counter += 0", CAIRN_METRIC_COUNTER, ADD, 0, false},
    {"gauge += -1", CAIRN_METRIC_GAUGE, ADD, -1, false},
    {"gauge = NaN", CAIRN_METRIC_GAUGE, SET, NAN, false},
    {"histogram observes -1", CAIRN_METRIC_HISTOGRAM, OBSERVE, -1, false},
    {"counter += -1", CAIRN_METRIC_COUNTER, ADD, -1, true},
    {"counter += NaN", CAIRN_METRIC_COUNTER, ADD, NAN, true},
    {"counter set", CAIRN_METRIC_COUNTER, SET, 1, true},
    {"counter observe", CAIRN_METRIC_COUNTER, OBSERVE, 1, true},
    {"gauge observe", CAIRN_METRIC_GAUGE, OBSERVE, 1, true},
    {"histogram add", CAIRN_METRIC_HISTOGRAM, ADD, 1, true},
    {"histogram set", CAIRN_METRIC_HISTOGRAM, SET, 1, true},
};

static void do_add_row(const void *arg)
{
    const struct add_row *r = arg;
    struct cairn_metrics *reg = cairn_metrics_new();
    cairn_metrics_add(reg, CAIRN_METRIC_GAUGE, "dup", "Taken.", NULL, NULL, 0);
    cairn_metrics_add(reg, r->type, r->name, "Help.", r->labels, r->buckets, r->nbuckets);
    cairn_metrics_free(reg);
}

static void do_update_row(const void *arg)
{
    static const char *const names[] = {
        [CAIRN_METRIC_COUNTER] = "c_total",
        [CAIRN_METRIC_GAUGE] = "g",
        [CAIRN_METRIC_HISTOGRAM] = "h",
    };
    const struct update_row *r = arg;
    struct cairn_metrics *reg = cairn_metrics_new();
    struct cairn_metric *m =
        cairn_metrics_add(reg, r->type, names[r->type], "Help.", NAMES("k"), NULL, 0);
    switch (r->op) {
    case ADD: cairn_metric_add(m, VALUES("x"), r->v); break;
    case SET: cairn_metric_set(m, VALUES("x"), r->v); break;
    case OBSERVE: cairn_metric_observe(m, VALUES("x"), r->v); break;
    }
    cairn_metrics_free(reg);
}

/* Whether fn(arg) ends the process with abort(). */
static bool aborts_in_child(void (*fn)(const void *), const void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGABRT, SIG_DFL);
        if (freopen("/dev/null", "w", stderr) == NULL)
            _exit(2);
        fn(arg);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void test_misuse_aborts(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(add_rows); i++)
        check(aborts_in_child(do_add_row, &add_rows[i]) == add_rows[i].aborts, add_rows[i].row,
              "%s", add_rows[i].aborts ? "did not abort" : "aborted");
    for (size_t i = 0; i < NELEM(update_rows); i++)
        check(aborts_in_child(do_update_row, &update_rows[i]) == update_rows[i].aborts,
              update_rows[i].row, "%s", update_rows[i].aborts ? "did not abort" : "aborted");
    rows_end();
}

/* Every kind of family, with awkward values, as promtool should see it. */
static struct cairn_metrics *showcase(void)
{
    static const double bounds[] = {0.005, 0.01, 0.1, 1, 10};
    struct cairn_metrics *reg = cairn_metrics_new();
    struct cairn_metric *req =
        cairn_metrics_add(reg, CAIRN_METRIC_COUNTER, "cairn_requests_total",
                          "Requests \"served\",\nby \\ path.", NULL, NULL, 0);
    struct cairn_metric *resp =
        cairn_metrics_add(reg, CAIRN_METRIC_COUNTER, "cairn_responses_total", "Responses.",
                          NAMES("code", "model"), NULL, 0);
    struct cairn_metric *up =
        cairn_metrics_add(reg, CAIRN_METRIC_GAUGE, "cairn_upstream_up", "Up.", NULL, NULL, 0);
    struct cairn_metric *odd =
        cairn_metrics_add(reg, CAIRN_METRIC_GAUGE, "cairn_odd_values", "Odd.", NAMES("k"), NULL, 0);
    struct cairn_metric *lat =
        cairn_metrics_add(reg, CAIRN_METRIC_HISTOGRAM, "cairn_request_duration_seconds", "Latency.",
                          NAMES("model"), bounds, NELEM(bounds));
    cairn_metrics_add(reg, CAIRN_METRIC_HISTOGRAM, "cairn_unused_seconds", "Never observed.", NULL,
                      bounds, NELEM(bounds));
    cairn_metrics_add(reg, CAIRN_METRIC_GAUGE, "cairn_no_series", "No series yet.", NAMES("k"),
                      NULL, 0);
    struct cairn_metric *full = cairn_metrics_add(reg, CAIRN_METRIC_COUNTER, "cairn_full_total",
                                                  "Full.", NAMES("id"), NULL, 0);
    char id[32];
    for (int i = 0; i <= CAIRN_METRICS_MAX_SERIES; i++) {
        snprintf(id, sizeof id, "%d", i);
        cairn_metric_add(full, VALUES(id), 1);
    }
    cairn_metric_add(req, NULL, 12);
    cairn_metric_add(resp, VALUES("200", "gpt-4o"), 3);
    cairn_metric_add(resp, VALUES("502", "a \"quoted\\\" \nmodel"), 1);
    cairn_metric_set(up, NULL, 1);
    cairn_metric_set(odd, VALUES("inf"), INFINITY);
    cairn_metric_set(odd, VALUES("-inf"), -INFINITY);
    cairn_metric_set(odd, VALUES("nan"), NAN);
    cairn_metric_set(odd, VALUES("tiny"), 5e-324);
    cairn_metric_set(odd, VALUES("third"), 1.0 / 3);
    cairn_metric_set(odd, VALUES("caf\xc3\xa9"), -0.5);
    cairn_metric_observe(lat, VALUES("gpt-4o"), 0.003);
    cairn_metric_observe(lat, VALUES("gpt-4o"), 0.3);
    cairn_metric_observe(lat, VALUES("other"), 30);
    return reg;
}

static void test_promtool(void **state)
{
    (void)state;
    if (access(PROMTOOL, X_OK) != 0) {
        print_message("skipped: promtool not installed (" PROMTOOL ")\n");
        return;
    }
    char in[] = "/tmp/cairn-metrics-XXXXXX", out[] = "/tmp/cairn-promtool-XXXXXX";
    int fd = mkstemp(in), ofd = mkstemp(out);
    assert_true(fd >= 0 && ofd >= 0);
    close(ofd);
    struct cairn_metrics *reg = showcase();
    size_t len;
    char *text = cairn_metrics_render(reg, &len);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);

    char cmd[256];
    snprintf(cmd, sizeof cmd, PROMTOOL " check metrics < %s > %s 2>&1", in, out);
    int status = system(cmd);
    char *said = slurp(out);
    rows_begin();
    check(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "promtool",
          "status %d: %s", status, said ? said : "");
    free(said);
    free(text);
    cairn_metrics_free(reg);
    unlink(in);
    unlink(out);
    rows_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter),       cmocka_unit_test(test_gauge),
        cmocka_unit_test(test_histogram),     cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_numbers),       cmocka_unit_test(test_label_values),
        cmocka_unit_test(test_stable_order),  cmocka_unit_test(test_series_cap),
        cmocka_unit_test(test_misuse_aborts), cmocka_unit_test(test_promtool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
