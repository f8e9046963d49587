/*
 * report_stats.c — the statistics of `cairn report` (see report_stats.h).
 *
 * The normal quantile is Acklam's rational approximation (relative error
 * 1.15e-9) polished by one Halley step against erfc, which brings it to
 * the precision of erfc itself. The t distribution goes through the
 * regularized incomplete beta function, evaluated by its continued
 * fraction with the modified Lentz method; its quantile, needed once per
 * interval, is found by bisection, which is slow only next to what it
 * saves in code.
 */
#include "report_stats.h"

#include <math.h>
#include <stdbool.h>

double cairn_rstats_normal_cdf(double x)
{
    return 0.5 * erfc(-x / M_SQRT2);
}

double cairn_rstats_normal_quantile(double p)
{
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                               -2.759285104469687e+02, 1.383577518672690e+02,
                               -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                               -1.556989798598866e+02, 6.680131188771972e+01,
                               -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                               -2.400758277161838e+00, -2.549732539343734e+00,
                               4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    const double p_low = 0.02425;

    if (isnan(p) || p < 0 || p > 1)
        return NAN;
    if (p == 0)
        return -HUGE_VAL;
    if (p == 1)
        return HUGE_VAL;

    double x;
    if (p < p_low || p > 1 - p_low) {
        /* The tails, by symmetry from the lower one. */
        double q = sqrt(-2 * log(p < p_low ? p : 1 - p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        if (p > 1 - p_low)
            x = -x;
    } else {
        double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    /* Halley's step on Φ(x) - p = 0. Above the median the error is taken
     * as (1 - p) - Q(x), Q the upper tail, which erfc gives to full
     * precision where Φ(x) itself would round to 1. */
    double e = p > 0.5 ? (1 - p) - 0.5 * erfc(x / M_SQRT2) : 0.5 * erfc(-x / M_SQRT2) - p;
    double u = e * sqrt(2 * M_PI) * exp(x * x / 2);
    return x - u / (1 + x * u / 2);
}

/* The continued fraction of the incomplete beta function I_x(a, b), by the
 * modified Lentz method; it converges fast for x < (a + 1) / (a + b + 2). */
static double beta_fraction(double a, double b, double x)
{
    const double tiny = 1e-300, eps = 1e-15;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    if (fabs(d) < tiny)
        d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 10000; m++) {
        /* Two terms per step: the even one, then the odd one. */
        for (int odd = 0; odd <= 1; odd++) {
            double k = odd ? -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
                           : m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
            d = 1 + k * d;
            if (fabs(d) < tiny)
                d = tiny;
            c = 1 + k / c;
            if (fabs(c) < tiny)
                c = tiny;
            d = 1 / d;
            h *= d * c;
            if (odd && fabs(d * c - 1) < eps)
                return h;
        }
    }
    return h;
}

/* The regularized incomplete beta function I_x(a, b), 0 <= x <= 1. */
static double incomplete_beta(double a, double b, double x)
{
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    double front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x));
    if (x < (a + 1) / (a + b + 2))
        return front * beta_fraction(a, b, x) / a;
    return 1 - front * beta_fraction(b, a, 1 - x) / b;
}

double cairn_rstats_t_two_sided(double t, double df)
{
    if (isnan(t) || !(df > 0))
        return NAN;
    return incomplete_beta(df / 2, 0.5, df / (df + t * t));
}

double cairn_rstats_t_critical(double alpha, double df)
{
    if (!(alpha > 0 && alpha < 1) || !(df > 0))
        return NAN;
    double lo = 0, hi = 1;
    /* The tail falls as t grows: bracket the answer, then halve. df = 1 at
     * alpha = 1e-12 needs hi near 3e11, well inside 64 doublings. */
    for (int i = 0; i < 64 && cairn_rstats_t_two_sided(hi, df) > alpha; i++)
        hi *= 2;
    for (int i = 0; i < 200 && hi - lo > 1e-13 * hi; i++) {
        double mid = (lo + hi) / 2;
        if (cairn_rstats_t_two_sided(mid, df) > alpha)
            lo = mid;
        else
            hi = mid;
    }
    return (lo + hi) / 2;
}

int cairn_rstats_wilson(double hits, double n, double alpha, struct cairn_rstats_interval *ci)
{
    if (!(n > 0))
        return -1;
    double z = cairn_rstats_normal_quantile(1 - alpha / 2), z2 = z * z;
    double p = hits / n;
    double centre = (p + z2 / (2 * n)) / (1 + z2 / n);
    double half = z / (1 + z2 / n) * sqrt(p * (1 - p) / n + z2 / (4 * n * n));
    /* Rounding must not carry the ends past what they bound. */
    ci->lo = fmax(0, centre - half);
    ci->hi = fmin(1, centre + half);
    return 0;
}

double cairn_rstats_percentile(const double *sorted, size_t n, double q)
{
    if (n == 0)
        return NAN;
    double h = (double)(n - 1) * q;
    size_t i = (size_t)h;
    if (i >= n - 1)
        return sorted[n - 1];
    return sorted[i] + (h - (double)i) * (sorted[i + 1] - sorted[i]);
}

void cairn_rstats_mean_add(struct cairn_rstats_mean *m, double x)
{
    m->n++;
    double delta = x - m->mean;
    m->mean += delta / (double)m->n;
    m->m2 += delta * (x - m->mean);
}

double cairn_rstats_variance(const struct cairn_rstats_mean *m)
{
    return m->n < 2 ? NAN : m->m2 / (double)(m->n - 1);
}

int cairn_rstats_mean_interval(const struct cairn_rstats_mean *m, double alpha,
                               struct cairn_rstats_interval *ci)
{
    if (m->n < 2)
        return -1;
    double half = cairn_rstats_t_critical(alpha, (double)(m->n - 1)) *
                  sqrt(cairn_rstats_variance(m) / (double)m->n);
    ci->lo = m->mean - half;
    ci->hi = m->mean + half;
    return 0;
}

/* The two-sided p-value of a statistic that is standard normal under H0. */
static double normal_two_sided(double z)
{
    return erfc(fabs(z) / M_SQRT2);
}

int cairn_rstats_two_proportions(double x1, double n1, double x2, double n2,
                                 struct cairn_rstats_test *t)
{
    if (!(n1 > 0 && n2 > 0))
        return -1;
    double p = (x1 + x2) / (n1 + n2);
    double se = sqrt(p * (1 - p) * (1 / n1 + 1 / n2));
    if (!(se > 0))
        return -1;
    t->stat = (x2 / n2 - x1 / n1) / se;
    t->df = NAN;
    t->p = normal_two_sided(t->stat);
    return 0;
}

int cairn_rstats_mann_whitney(const double *a, size_t na, const double *b, size_t nb, double *u,
                              struct cairn_rstats_test *t)
{
    if (na == 0 || nb == 0)
        return -1;
    /* Walk both samples in order, one run of equal values at a time: the
     * run takes ranks rank+1 .. rank+run, each of them their average. */
    size_t i = 0, j = 0;
    double rank = 0, rank_sum_a = 0, ties = 0;
    while (i < na || j < nb) {
        double v = j >= nb || (i < na && a[i] <= b[j]) ? a[i] : b[j];
        size_t in_a = 0, in_b = 0;
        while (i < na && a[i] == v)
            i++, in_a++;
        while (j < nb && b[j] == v)
            j++, in_b++;
        double run = (double)(in_a + in_b);
        rank_sum_a += (double)in_a * (rank + (run + 1) / 2);
        rank += run;
        ties += run * run * run - run;
    }
    double n1 = (double)na, n2 = (double)nb, n = n1 + n2;
    double var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)));
    if (!(var > 0))
        return -1;
    *u = rank_sum_a - n1 * (n1 + 1) / 2;
    double off = *u - n1 * n2 / 2;
    t->stat = copysign(fmax(fabs(off) - 0.5, 0), off) / sqrt(var);
    t->df = NAN;
    t->p = normal_two_sided(t->stat);
    return 0;
}

int cairn_rstats_sign_test(double wins, double losses, struct cairn_rstats_test *t)
{
    if (!(wins + losses > 0))
        return -1;
    double off = wins - losses;
    t->stat = copysign(fmax(fabs(off) - 1, 0), off) / sqrt(wins + losses);
    t->df = NAN;
    t->p = normal_two_sided(t->stat);
    return 0;
}

int cairn_rstats_welch(const struct cairn_rstats_mean *s1, const struct cairn_rstats_mean *s2,
                       struct cairn_rstats_test *t)
{
    if (s1->n < 2 || s2->n < 2)
        return -1;
    double e1 = cairn_rstats_variance(s1) / (double)s1->n;
    double e2 = cairn_rstats_variance(s2) / (double)s2->n;
    if (!(e1 + e2 > 0))
        return -1;
    t->stat = (s2->mean - s1->mean) / sqrt(e1 + e2);
    t->df = (e1 + e2) * (e1 + e2) / (e1 * e1 / (double)(s1->n - 1) + e2 * e2 / (double)(s2->n - 1));
    t->p = cairn_rstats_t_two_sided(t->stat, t->df);
    return 0;
}
