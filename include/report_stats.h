/*
 * report_stats.h — the statistics of `cairn report`: intervals for rates
 * and means, percentiles, and the tests that say whether two arms of an
 * experiment differ by more than chance would make them.
 *
 * Pure functions of their arguments, no allocation, nothing but libm
 * (erfc, lgamma): the normal quantile and the Student t distribution are
 * computed here rather than pulled in from a numerics library. The prefix
 * is rstats, "report statistics", apart from stats.h (the gateway's
 * metrics).
 *
 * Every p-value is two-sided. A function that cannot give an answer
 * (an empty sample, no variance) returns -1 and leaves its result alone;
 * the caller reports the figure as undefined rather than as a number.
 */
#ifndef CAIRN_REPORT_STATS_H
#define CAIRN_REPORT_STATS_H

#include <stddef.h>
#include <stdint.h>

/** The standard normal distribution: P(Z <= x). */
double cairn_rstats_normal_cdf(double x);

/** The x with P(Z <= x) = p, for 0 < p < 1 (±HUGE_VAL at 0 and 1, NAN
 *  outside); accurate to a few units in the last place. */
double cairn_rstats_normal_quantile(double p);

/** Student's t distribution with `df` > 0 degrees of freedom: the
 *  two-sided tail P(|T| >= |t|). */
double cairn_rstats_t_two_sided(double t, double df);

/** The t > 0 with P(|T| >= t) = alpha, for 0 < alpha < 1: the critical
 *  value of a two-sided test, or the half-width of a 1 - alpha interval in
 *  standard errors. */
double cairn_rstats_t_critical(double alpha, double df);

struct cairn_rstats_interval {
    double lo, hi;
};

/**
 * Wilson's score interval for a proportion `hits` / `n` at confidence
 * 1 - alpha. `hits` may be fractional (a judged tie counts half a win).
 * Unlike the textbook p ± z·se it stays inside [0, 1] and does not shrink
 * to nothing at 0/n or n/n.
 * @return 0, or -1 when n is 0.
 */
int cairn_rstats_wilson(double hits, double n, double alpha, struct cairn_rstats_interval *ci);

/**
 * The q-quantile (0 <= q <= 1) of `n` values sorted ascending, linearly
 * interpolated between the two closest ranks: with h = (n - 1)·q,
 * x[⌊h⌋] + (h - ⌊h⌋)·(x[⌊h⌋+1] - x[⌊h⌋]) (Hyndman and Fan's definition 7,
 * the default of R and NumPy). NAN when n is 0.
 */
double cairn_rstats_percentile(const double *sorted, size_t n, double q);

/* A running mean and variance (Welford's update, which keeps its precision
 * over millions of values where a sum of squares would not). {0} is an
 * empty one. */
struct cairn_rstats_mean {
    uint64_t n;
    double mean;
    double m2; /* the sum of squared deviations from the mean */
};

void cairn_rstats_mean_add(struct cairn_rstats_mean *m, double x);

/** The sample variance (n - 1 in the denominator), NAN below two values. */
double cairn_rstats_variance(const struct cairn_rstats_mean *m);

/** The t interval of the mean at confidence 1 - alpha: mean ± t·s/√n.
 *  @return 0, or -1 below two values. */
int cairn_rstats_mean_interval(const struct cairn_rstats_mean *m, double alpha,
                               struct cairn_rstats_interval *ci);

/* The outcome of a test: its statistic (z, or t), the degrees of freedom
 * where the statistic has them (NAN otherwise) and the p-value. */
struct cairn_rstats_test {
    double stat, df, p;
};

/**
 * The two-proportion z-test with a pooled variance, of H0: both samples
 * come from one rate. z = (p2 - p1) / √(p(1 - p)(1/n1 + 1/n2)) with p the
 * pooled rate (x1 + x2) / (n1 + n2); positive when sample 2's rate is the
 * higher.
 * @return 0, or -1 when a sample is empty or p is 0 or 1 (no variance).
 */
int cairn_rstats_two_proportions(double x1, double n1, double x2, double n2,
                                 struct cairn_rstats_test *t);

/**
 * The Mann–Whitney U test of H0: a value of `a` is as likely to be above a
 * value of `b` as below it. Both samples must be sorted ascending: they are
 * ranked together by merging them. Tied values get their average rank and
 * the variance of U is corrected for ties; z = (U - n_a·n_b/2 ∓ 1/2) / σ
 * with a continuity correction of 1/2 towards the mean, positive when `a`
 * tends to be the larger.
 * @param u  set to U of `a`: the pairs (x in a, y in b) with x > y, plus
 *           half those with x = y
 * @return 0, or -1 when a sample is empty or every value is the same.
 */
int cairn_rstats_mann_whitney(const double *a, size_t na, const double *b, size_t nb, double *u,
                              struct cairn_rstats_test *t);

/**
 * The sign test of H0: a win is as likely as a loss (ties left out), by
 * the normal approximation with a continuity correction:
 * z = (|W - L| - 1) / √(W + L), signed as W - L.
 * @return 0, or -1 when there is neither a win nor a loss.
 */
int cairn_rstats_sign_test(double wins, double losses, struct cairn_rstats_test *t);

/**
 * Welch's t-test of H0: two means are equal, without assuming equal
 * variances: t = (m2 - m1) / √(v1/n1 + v2/n2), with Welch–Satterthwaite
 * degrees of freedom; positive when sample 2's mean is the higher.
 * @return 0, or -1 when a sample has fewer than two values or both have
 *         no variance.
 */
int cairn_rstats_welch(const struct cairn_rstats_mean *s1, const struct cairn_rstats_mean *s2,
                       struct cairn_rstats_test *t);

#endif
