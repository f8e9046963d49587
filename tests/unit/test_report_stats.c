/*
 * test_report_stats.c — unit tests for include/report_stats.h.
 *
 * Every expected value comes from somewhere other than the code under
 * test: a closed form (t with 1 or 2 degrees of freedom), a published
 * example (Welch's test: Wikipedia's "Welch's t-test", example 1, whose
 * t = 2.46, ν = 24.99, p = 0.021 are given there to two or three digits),
 * or an example worked by hand here, its ranks written out in a comment.
 * Digits beyond the published ones were computed independently in Python
 * (statistics.NormalDist, Simpson's rule on the t density).
 */
#include "unit.h"

#include <math.h>

#include "report_stats.h"

/* |got - want| <= tol, or both NAN. */
static bool near(double got, double want, double tol)
{
    return (isnan(got) && isnan(want)) || fabs(got - want) <= tol;
}

#define CHECK_NEAR(row, got, want, tol)                                                            \
    check(near(got, want, tol), row, "%s = %.15g, want %.15g (±%g)", #got, (double)(got),          \
          (double)(want), (double)(tol))

static void test_normal(void **state)
{
    (void)state;
    static const struct {
        double p, x;
    } rows[] = {
        {0.975, 1.9599639845400536},
        {0.5, 0},
        {0.025, -1.9599639845400538},
        {0.001, -3.090232306167813},
        {1e-10, -6.361340902404056},
        {0.9999999, 5.199337582290662},
        /* the seams of the approximation's three regions */
        {0.02425, -1.9729610513118845},
        {0.97575, 1.9729610513118847},
    };
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        char row[32];
        snprintf(row, sizeof(row), "p = %g", rows[i].p);
        CHECK_NEAR(row, cairn_rstats_normal_quantile(rows[i].p), rows[i].x, 1e-12);
        CHECK_NEAR(row, cairn_rstats_normal_cdf(rows[i].x), rows[i].p, 1e-14 + 1e-12 * rows[i].p);
    }
    CHECK_NEAR("Φ(1.96)", cairn_rstats_normal_cdf(1.96), 0.9750021048517796, 1e-15);
    CHECK_NEAR("Φ(-3)", cairn_rstats_normal_cdf(-3), 0.0013498980316301035, 1e-17);
    check(cairn_rstats_normal_quantile(0) == -HUGE_VAL, "p = 0", "not -inf");
    check(cairn_rstats_normal_quantile(1) == HUGE_VAL, "p = 1", "not +inf");
    check(isnan(cairn_rstats_normal_quantile(1.5)), "p = 1.5", "not NAN");
    check(isnan(cairn_rstats_normal_quantile(NAN)), "p = NAN", "not NAN");
    rows_end();
}

static void test_student_t(void **state)
{
    (void)state;
    /* P(|T| >= t): df 1 is Cauchy, 1 - (2/π)·atan(t); df 2 is 1 - t/√(t² + 2). */
    static const struct {
        const char *row;
        double t, df, p;
    } tails[] = {
        {"df 1, t 1", 1, 1, 0.5},
        {"df 1, t 3", 3, 1, 0.20483276469913336},
        {"df 2, t 2", 2, 2, 0.18350341907227385},
        {"df 2, t -2: two-sided", -2, 2, 0.18350341907227385},
        {"df 10, t 2", 2, 10, 0.07338803477074551},
        {"t 0", 0, 7, 1},
        {"df 1e6: near the normal (0.049996)", 1.96, 1e6, 0.049996068104597224},
    };
    static const struct {
        double alpha, df, t;
    } critical[] = {
        {0.05, 1, 12.706204736174707}, /* tan(π/2 · 0.95) */
        {0.05, 2, 4.302652729749464},  /* √(2·0.95² / (1 - 0.95²)) */
        {0.05, 10, 2.228138851986274},
        {0.05, 29, 2.045229642132703},
    };
    rows_begin();
    for (size_t i = 0; i < NELEM(tails); i++)
        CHECK_NEAR(tails[i].row, cairn_rstats_t_two_sided(tails[i].t, tails[i].df), tails[i].p,
                   tails[i].df > 1e5 ? 1e-9 : 1e-12);
    for (size_t i = 0; i < NELEM(critical); i++) {
        char row[32];
        snprintf(row, sizeof(row), "critical, df %g", critical[i].df);
        CHECK_NEAR(row, cairn_rstats_t_critical(critical[i].alpha, critical[i].df), critical[i].t,
                   1e-9 * critical[i].t);
    }
    check(isnan(cairn_rstats_t_two_sided(1, 0)), "df 0", "not NAN");
    check(isnan(cairn_rstats_t_critical(0, 5)), "alpha 0", "not NAN");
    rows_end();
}

static void test_wilson(void **state)
{
    (void)state;
    static const struct {
        const char *row;
        double hits, n, lo, hi;
    } rows[] = {
        {"10 of 100", 10, 100, 0.0552291370606751, 0.17436566150491345},
        {"0 of 10: starts at 0, not a point", 0, 10, 0, 0.27753279986288915},
        {"10 of 10: ends at 1", 10, 10, 0.7224672001371109, 1},
        {"2.5 of 5: a tie counts half", 2.5, 5, 0.1704235806435878, 0.8295764193564121},
    };
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct cairn_rstats_interval ci = {NAN, NAN};
        check(cairn_rstats_wilson(rows[i].hits, rows[i].n, 0.05, &ci) == 0, rows[i].row,
              "no interval");
        CHECK_NEAR(rows[i].row, ci.lo, rows[i].lo, 1e-12);
        CHECK_NEAR(rows[i].row, ci.hi, rows[i].hi, 1e-12);
        check(ci.lo >= 0 && ci.hi <= 1, rows[i].row, "outside [0, 1]");
    }
    struct cairn_rstats_interval ci = {-1, -1};
    check(cairn_rstats_wilson(0, 0, 0.05, &ci) < 0, "n = 0", "an interval of nothing");
    check(ci.lo == -1 && ci.hi == -1, "n = 0", "result changed");
    rows_end();
}

static void test_percentile(void **state)
{
    (void)state;
    static const double four[] = {1, 2, 3, 4}, five[] = {15, 20, 35, 40, 50}, one[] = {7};
    static const struct {
        const char *row;
        const double *v;
        size_t n;
        double q, want;
    } rows[] = {
        {"min", four, 4, 0, 1},
        {"median of an even count: halfway", four, 4, 0.5, 2.5},
        {"p95: h = 2.85, 3 + 0.85·(4 - 3)", four, 4, 0.95, 3.85},
        {"max", four, 4, 1, 4},
        {"p40: h = 1.6, 20 + 0.6·(35 - 20)", five, 5, 0.4, 29},
        {"p50 of an odd count: the middle", five, 5, 0.5, 35},
        {"one value is every percentile", one, 1, 0.99, 7},
    };
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++)
        CHECK_NEAR(rows[i].row, cairn_rstats_percentile(rows[i].v, rows[i].n, rows[i].q),
                   rows[i].want, 1e-12);
    check(isnan(cairn_rstats_percentile(four, 0, 0.5)), "empty", "not NAN");
    rows_end();
}

static void test_mean(void **state)
{
    (void)state;
    static const double x[] = {2, 4, 4, 4, 5, 5, 7, 9};
    struct cairn_rstats_mean m = {0};
    struct cairn_rstats_interval ci;
    rows_begin();
    check(cairn_rstats_mean_interval(&m, 0.05, &ci) < 0, "empty", "an interval");
    check(isnan(cairn_rstats_variance(&m)), "empty", "a variance");
    for (size_t i = 0; i < NELEM(x); i++)
        cairn_rstats_mean_add(&m, x[i]);
    CHECK_NEAR("mean", m.mean, 5, 1e-15);
    CHECK_NEAR("variance: 32 / 7", cairn_rstats_variance(&m), 32.0 / 7, 1e-14);
    /* mean ± t(0.975, 7) · s/√8 */
    check(cairn_rstats_mean_interval(&m, 0.05, &ci) == 0, "interval", "none");
    CHECK_NEAR("interval lo", ci.lo, 5 - 1.7874879182362104, 1e-9);
    CHECK_NEAR("interval hi", ci.hi, 5 + 1.7874879182362104, 1e-9);

    /* Far from 0, a sum of squares loses every digit; Welford does not. */
    struct cairn_rstats_mean big = {0};
    static const double offsets[] = {4, 7, 13, 16};
    for (size_t i = 0; i < NELEM(offsets); i++)
        cairn_rstats_mean_add(&big, 1e9 + offsets[i]);
    CHECK_NEAR("1e9 + {4, 7, 13, 16}: variance 30", cairn_rstats_variance(&big), 30, 1e-6);
    rows_end();
}

static void test_two_proportions(void **state)
{
    (void)state;
    struct cairn_rstats_test t;
    rows_begin();
    /* 45/100 against 60/100: pooled p = 0.525, se = √(0.525·0.475·0.02). */
    check(cairn_rstats_two_proportions(45, 100, 60, 100, &t) == 0, "45 vs 60", "no answer");
    CHECK_NEAR("45 vs 60", t.stat, 2.1239769762143657, 1e-12);
    CHECK_NEAR("45 vs 60", t.p, 0.033672068856345876, 1e-12);
    check(isnan(t.df), "45 vs 60", "df %g", t.df);
    check(cairn_rstats_two_proportions(60, 100, 45, 100, &t) == 0 && t.stat < 0, "60 vs 45",
          "not negative");
    check(cairn_rstats_two_proportions(0, 10, 0, 20, &t) < 0, "no variance", "an answer");
    check(cairn_rstats_two_proportions(3, 10, 0, 0, &t) < 0, "an empty sample", "an answer");
    rows_end();
}

static void test_mann_whitney(void **state)
{
    (void)state;
    struct cairn_rstats_test t;
    double u;
    rows_begin();

    /* No ties. Together: 11b 12b 16a 17b 19a 20b 22a 24a 29a, so a holds
     * ranks 3 5 7 8 9 = 32 and U = 32 - 5·6/2 = 17 of 20 pairs.
     * σ² = 5·4·10/12; z = (17 - 10 - 0.5) / σ. */
    static const double a[] = {16, 19, 22, 24, 29}, b[] = {11, 12, 17, 20};
    check(cairn_rstats_mann_whitney(a, 5, b, 4, &u, &t) == 0, "no ties", "no answer");
    CHECK_NEAR("no ties: U", u, 17, 1e-12);
    CHECK_NEAR("no ties: z", t.stat, 1.5921683328090657, 1e-12);
    CHECK_NEAR("no ties: p", t.p, 0.11134688653314048, 1e-12);
    check(cairn_rstats_mann_whitney(b, 4, a, 5, &u, &t) == 0 && u == 3 && t.stat < 0, "swapped",
          "U %g, z %g", u, t.stat);

    /* Ties. Together: 1a | 2a 2a 2b | 3a 3b 3b | 4b: the runs of 2 and 3
     * take ranks 2-4 and 5-7, each at its average, 3 and 6. a holds
     * 1 + 3 + 3 + 6 = 13, U = 13 - 10 = 3. Ties correct σ² to
     * 16/12 · (9 - (24 + 24)/(8·7)). */
    static const double c[] = {1, 2, 2, 3}, d[] = {2, 3, 3, 4};
    check(cairn_rstats_mann_whitney(c, 4, d, 4, &u, &t) == 0, "ties", "no answer");
    CHECK_NEAR("ties: U", u, 3, 1e-12);
    CHECK_NEAR("ties: z", t.stat, -1.365698202000489, 1e-12);
    CHECK_NEAR("ties: p", t.p, 0.17203370892182296, 1e-12);

    /* Equal samples: U is half the pairs and the correction leaves z 0. */
    check(cairn_rstats_mann_whitney(c, 4, c, 4, &u, &t) == 0, "equal", "no answer");
    check(u == 8 && t.stat == 0 && t.p == 1, "equal", "U %g, z %g, p %g", u, t.stat, t.p);

    static const double same[] = {5, 5, 5};
    check(cairn_rstats_mann_whitney(same, 3, same, 2, &u, &t) < 0, "all one value", "an answer");
    check(cairn_rstats_mann_whitney(a, 5, b, 0, &u, &t) < 0, "an empty sample", "an answer");
    rows_end();
}

static void test_welch(void **state)
{
    (void)state;
    /* Wikipedia, "Welch's t-test", example 1. */
    static const double x1[] = {27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1,
                                21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4};
    static const double x2[] = {27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0,
                                24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4};
    struct cairn_rstats_mean s1 = {0}, s2 = {0};
    for (size_t i = 0; i < NELEM(x1); i++)
        cairn_rstats_mean_add(&s1, x1[i]);
    for (size_t i = 0; i < NELEM(x2); i++)
        cairn_rstats_mean_add(&s2, x2[i]);
    struct cairn_rstats_test t;
    rows_begin();
    check(cairn_rstats_welch(&s1, &s2, &t) == 0, "example 1", "no answer");
    CHECK_NEAR("example 1: t", t.stat, 2.455356398286006, 1e-9);
    CHECK_NEAR("example 1: df", t.df, 24.98852929023142, 1e-9);
    CHECK_NEAR("example 1: p", t.p, 0.02137800146286173, 1e-9);

    struct cairn_rstats_mean flat = {0}, one = {0};
    for (int i = 0; i < 5; i++)
        cairn_rstats_mean_add(&flat, 3);
    cairn_rstats_mean_add(&one, 3);
    check(cairn_rstats_welch(&flat, &flat, &t) < 0, "no variance", "an answer");
    check(cairn_rstats_welch(&s1, &one, &t) < 0, "one value", "an answer");
    rows_end();
}

static void test_sign(void **state)
{
    (void)state;
    struct cairn_rstats_test t;
    rows_begin();
    /* 13 wins, 6 losses: z = (7 - 1) / √19. */
    check(cairn_rstats_sign_test(13, 6, &t) == 0, "13 to 6", "no answer");
    CHECK_NEAR("13 to 6", t.stat, 1.3764944032233704, 1e-12);
    CHECK_NEAR("13 to 6", t.p, 0.16866861888781515, 1e-12);
    check(cairn_rstats_sign_test(6, 13, &t) == 0 && t.stat < 0, "6 to 13", "not negative");
    check(cairn_rstats_sign_test(4, 4, &t) == 0 && t.p == 1, "even", "p %g", t.p);
    check(cairn_rstats_sign_test(0, 0, &t) < 0, "nothing decided", "an answer");
    rows_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normal),       cmocka_unit_test(test_student_t),
        cmocka_unit_test(test_wilson),       cmocka_unit_test(test_percentile),
        cmocka_unit_test(test_mean),         cmocka_unit_test(test_two_proportions),
        cmocka_unit_test(test_mann_whitney), cmocka_unit_test(test_welch),
        cmocka_unit_test(test_sign),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
