/*
 * report_text.c — `cairn report` for a terminal (see report.h): one
 * section per experiment, a table per kind of figure, then every
 * difference from the baseline with its test and verdict.
 *
 * Tables are built cell by cell and printed once their column widths are
 * known, so that names of any length from the log still line up. Those
 * names are the log's, not ours: control characters in them are shown as
 * '?' rather than sent to the terminal.
 */
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* ---- formatting, shared with the page ----------------------------------- */

static const char NONE[] = "—"; /* an undefined figure */

const char *cairn_report_fmt_value(char *buf, size_t len, const char *unit, double v)
{
    if (isnan(v))
        snprintf(buf, len, "%s", NONE);
    else if (unit[0] == '\0')
        snprintf(buf, len, "%.1f%%", v * 100);
    else if (strcmp(unit, "ms") == 0)
        snprintf(buf, len, "%.*f", fabs(v) < 10 ? 2 : 1, v);
    else
        snprintf(buf, len, "%.1f", v);
    return buf;
}

const char *cairn_report_fmt_interval(char *buf, size_t len, const char *unit, double lo, double hi)
{
    char a[32], b[32];
    if (isnan(lo) || isnan(hi))
        snprintf(buf, len, "%s", NONE);
    else
        snprintf(buf, len, "[%s, %s]", cairn_report_fmt_value(a, sizeof(a), unit, lo),
                 cairn_report_fmt_value(b, sizeof(b), unit, hi));
    return buf;
}

const char *cairn_report_fmt_difference(char *buf, size_t len, const char *unit, double d)
{
    if (isnan(d))
        snprintf(buf, len, "%s", NONE);
    else if (unit[0] == '\0')
        snprintf(buf, len, "%+.1f pt", d * 100); /* percentage points */
    else
        snprintf(buf, len, "%+.*f %s", strcmp(unit, "ms") == 0 && fabs(d) < 10 ? 2 : 1, d, unit);
    return buf;
}

const char *cairn_report_fmt_p(char *buf, size_t len, double p)
{
    if (isnan(p))
        snprintf(buf, len, "%s", NONE);
    else if (p < 1e-4)
        snprintf(buf, len, "< 0.0001");
    else
        snprintf(buf, len, "%.4f", p);
    return buf;
}

const char *cairn_report_fmt_statistic(char *buf, size_t len, const struct cairn_report_test *t)
{
    if (isnan(t->stat))
        snprintf(buf, len, "%s", NONE);
    else if (isnan(t->df))
        snprintf(buf, len, "z = %.2f", t->stat);
    else
        snprintf(buf, len, "t = %.2f, df %.1f", t->stat, t->df);
    return buf;
}

const char *cairn_report_fmt_input(char *buf, size_t len, const struct cairn_report *r)
{
    snprintf(buf, len,
             "%llu record(s) from %llu line(s): %llu malformed, %llu of other kinds, %llu past "
             "the limits on names",
             (unsigned long long)r->records, (unsigned long long)r->lines,
             (unsigned long long)r->malformed, (unsigned long long)r->ignored,
             (unsigned long long)r->over_limits);
    return buf;
}

/* ---- tables ------------------------------------------------------------ */

#define MAX_COLS 12

struct table {
    int ncols;
    const char *align; /* 'l' or 'r' for each column */
    char **cells;      /* owned, row after row */
    size_t n, cap;
};

/* Control characters (a log can hold "\u001b" escaped) become '?'. */
static void printable(char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

__attribute__((format(printf, 2, 3))) static void cell(struct table *t, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    printable(text);
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->cells = cairn_realloc(t->cells, t->cap * sizeof(*t->cells));
    }
    t->cells[t->n++] = cairn_strdup(text);
}

/* Terminal columns of UTF-8 text: its bytes that start a character. */
static size_t columns(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* Print the table, indented, and empty it. */
static void table_print(struct table *t, FILE *out)
{
    size_t width[MAX_COLS] = {0};
    for (size_t i = 0; i < t->n; i++) {
        size_t w = columns(t->cells[i]);
        if (w > width[i % (size_t)t->ncols])
            width[i % (size_t)t->ncols] = w;
    }
    for (size_t i = 0; i < t->n; i++) {
        size_t col = i % (size_t)t->ncols, pad = width[col] - columns(t->cells[i]);
        bool last = col + 1 == (size_t)t->ncols;
        if (col == 0)
            fputs("    ", out);
        if (t->align[col] == 'r')
            fprintf(out, "%*s%s", (int)pad, "", t->cells[i]);
        else
            fprintf(out, "%s%*s", t->cells[i], last ? 0 : (int)pad, "");
        fputs(last ? "\n" : "  ", out);
        free(t->cells[i]);
    }
    free(t->cells);
    *t = (struct table){0};
}

/* The first row: one title for each column. */
static void header(struct table *t, ...)
{
    va_list ap;
    va_start(ap, t);
    for (int i = 0; i < t->ncols; i++)
        cell(t, "%s", va_arg(ap, const char *));
    va_end(ap);
}

/* A section's title and what its figures are over. */
static void heading(FILE *out, const char *title, const char *over)
{
    fprintf(out, "\n  %s: %s\n", title, over);
}

/* ---- sections ---------------------------------------------------------- */

/* A rate's cells: out of how many, how many, the rate, its interval. */
static void cells_rate(struct table *t, const struct cairn_report_rate *r)
{
    char rate[32], ci[64];
    cell(t, "%.0f", r->n);
    cell(t, "%.0f", r->hits);
    cell(t, "%s", cairn_report_fmt_value(rate, sizeof(rate), "", r->rate));
    cell(t, "%s", cairn_report_fmt_interval(ci, sizeof(ci), "", r->lo, r->hi));
}

static void write_errors(const struct cairn_report_experiment *e, FILE *out)
{
    struct table t = {.ncols = 6, .align = "lrrrrl"};
    heading(out, "Errors", "status 0 (no answer) or 500 and above, among randomised requests");
    header(&t, "arm", "forced", "requests", "errors", "rate", "95% CI");
    for (size_t i = 0; i < e->narms; i++) {
        cell(&t, "%s", e->arms[i].name);
        cell(&t, "%llu", (unsigned long long)e->arms[i].forced);
        cells_rate(&t, &e->arms[i].errors);
    }
    table_print(&t, out);
}

static void write_retries(const struct cairn_report_experiment *e, FILE *out)
{
    struct table t = {.ncols = 5, .align = "lrrrl"};
    heading(out, "Retries", "more than one attempt, among validated requests");
    header(&t, "arm", "validated", "retried", "rate", "95% CI");
    for (size_t i = 0; i < e->narms; i++) {
        cell(&t, "%s", e->arms[i].name);
        cells_rate(&t, &e->arms[i].retries);
    }
    table_print(&t, out);
}

/* One row per marker and arm that checked it, each marker named once. */
static void write_violations(const struct cairn_report_experiment *e, FILE *out)
{
    struct table t = {.ncols = 6, .align = "llrrrl"};
    heading(out, "Violations", "answers still breaking a marker, among requests that checked it");
    if (e->nmarkers == 0) {
        fputs("    no request was validated\n", out);
        return;
    }
    header(&t, "marker", "arm", "checked", "violated", "rate", "95% CI");
    for (size_t k = 0; k < e->nmarkers; k++) {
        bool first = true;
        for (size_t i = 0; i < e->narms; i++) {
            const struct cairn_report_marker *m =
                cairn_report_arm_marker(&e->arms[i], e->markers[k]);
            if (m == NULL)
                continue;
            cell(&t, "%s", first ? e->markers[k] : "");
            cell(&t, "%s", e->arms[i].name);
            cells_rate(&t, &m->violated);
            first = false;
        }
    }
    table_print(&t, out);
}

static void write_latency(const struct cairn_report_experiment *e, FILE *out)
{
    char v[32];
    struct table t = {.ncols = 7, .align = "lrrrrrr"};
    heading(out, "Latency (ms)", "randomised requests, errors included");
    header(&t, "arm", "n", "p50", "p95", "p99", "first byte n", "first byte p50");
    for (size_t i = 0; i < e->narms; i++) {
        const struct cairn_report_arm *a = &e->arms[i];
        cell(&t, "%s", a->name);
        cell(&t, "%zu", a->latency.n);
        for (int k = 0; k < 3; k++)
            cell(&t, "%s", cairn_report_fmt_value(v, sizeof(v), "ms", a->latency_p[k]));
        cell(&t, "%zu", a->first_byte.n);
        cell(&t, "%s", cairn_report_fmt_value(v, sizeof(v), "ms", a->first_byte_p50));
    }
    table_print(&t, out);
}

static void write_tokens(const struct cairn_report_experiment *e, FILE *out)
{
    char v[32], ci[64];
    struct table t = {.ncols = 6, .align = "lrrrrl"};
    heading(out, "Tokens per request", "means over the requests with usage");
    header(&t, "arm", "n", "prompt", "completion", "total", "95% CI (total)");
    for (size_t i = 0; i < e->narms; i++) {
        const struct cairn_report_arm *a = &e->arms[i];
        const struct cairn_rstats_mean *tk = a->tokens;
        cell(&t, "%s", a->name);
        cell(&t, "%llu", (unsigned long long)tk[CAIRN_REPORT_TOTAL].n);
        for (int k = 0; k < CAIRN_REPORT_NTOKENS; k++)
            cell(&t, "%s",
                 cairn_report_fmt_value(v, sizeof(v), "tokens", tk[k].n ? tk[k].mean : NAN));
        const struct cairn_rstats_interval *c = &a->tokens_ci[CAIRN_REPORT_TOTAL];
        cell(&t, "%s", cairn_report_fmt_interval(ci, sizeof(ci), "tokens", c->lo, c->hi));
    }
    table_print(&t, out);
}

/* The verdict, and why when there is none. */
static void cell_verdict(struct table *t, const struct cairn_report_test *test)
{
    if (test->why != NULL)
        cell(t, "%s (%s)", test->verdict, test->why);
    else
        cell(t, "%s", test->verdict);
}

static void write_judgements(const struct cairn_report_experiment *e, FILE *out)
{
    char rate[32], ci[64], p[32];
    struct table t = {.ncols = 10, .align = "llrrrrrlrl"};
    heading(out, "Judged win rates",
            "shadow judging, both directions pooled; win rate = (W + T/2) / judged");
    header(&t, "arm", "vs", "judged", "W", "L", "T", "win rate", "95% CI", "sign test p",
           "verdict");
    for (size_t i = 0; i < e->npairs; i++) {
        const struct cairn_report_pair *pr = &e->pairs[i];
        cell(&t, "%s", pr->a);
        cell(&t, "%s", pr->b);
        cell(&t, "%.0f", pr->win_rate.n);
        cell(&t, "%llu", (unsigned long long)pr->wins);
        cell(&t, "%llu", (unsigned long long)pr->losses);
        cell(&t, "%llu", (unsigned long long)pr->ties);
        cell(&t, "%s", cairn_report_fmt_value(rate, sizeof(rate), "", pr->win_rate.rate));
        cell(&t, "%s",
             cairn_report_fmt_interval(ci, sizeof(ci), "", pr->win_rate.lo, pr->win_rate.hi));
        cell(&t, "%s", cairn_report_fmt_p(p, sizeof(p), pr->sign.p));
        cell_verdict(&t, &pr->sign);
    }
    table_print(&t, out);
}

static void write_differences(const struct cairn_report_experiment *e, FILE *out)
{
    char base[32], value[32], diff[32], stat[48], p[32], title[256];
    struct table t = {.ncols = 8, .align = "llrrrlrl"};
    snprintf(title, sizeof(title), "Differences from the baseline, %s", e->baseline);
    printable(title);
    heading(out, title,
            "rates by a two-proportion z-test,\n  latency by Mann-Whitney U (p50 shown), "
            "tokens by Welch's t-test (means shown)");
    header(&t, "arm", "figure", e->baseline, "arm", "difference", "statistic", "p", "verdict");
    for (size_t i = 0; i < e->ndiffs; i++) {
        const struct cairn_report_diff *d = &e->diffs[i];
        const char *unit = d->figure->unit;
        cell(&t, "%s", d->arm);
        if (d->marker != NULL)
            cell(&t, "%s %s", d->figure->label, d->marker);
        else
            cell(&t, "%s", d->figure->label);
        cell(&t, "%s", cairn_report_fmt_value(base, sizeof(base), unit, d->base));
        cell(&t, "%s", cairn_report_fmt_value(value, sizeof(value), unit, d->value));
        cell(&t, "%s", cairn_report_fmt_difference(diff, sizeof(diff), unit, d->value - d->base));
        cell(&t, "%s", cairn_report_fmt_statistic(stat, sizeof(stat), &d->test));
        cell(&t, "%s", cairn_report_fmt_p(p, sizeof(p), d->test.p));
        cell_verdict(&t, &d->test);
    }
    table_print(&t, out);
}

static void write_experiment(const struct cairn_report_experiment *e, FILE *out)
{
    char line[1024];
    snprintf(line, sizeof(line), "%s / %s", e->tenant, e->name);
    printable(line);
    fprintf(out, "\n== %s ==\n", line);
    if (e->baseline != NULL) {
        snprintf(line, sizeof(line), "%s", e->baseline);
        printable(line);
        fprintf(out, "  baseline arm: %s%s\n", line,
                e->baseline_not_found ? " (the arm asked for with --baseline is not here)" : "");
    }
    if (e->forced > 0)
        fprintf(out,
                "  %llu forced record(s) left out of every figure: a QA header chose their arm,\n"
                "  so they are not randomised\n",
                (unsigned long long)e->forced);
    if (e->narms > 0) {
        write_errors(e, out);
        write_retries(e, out);
        write_violations(e, out);
        write_latency(e, out);
        write_tokens(e, out);
    }
    if (e->npairs > 0)
        write_judgements(e, out);
    if (e->ndiffs > 0)
        write_differences(e, out);
}

int cairn_report_write_text(const struct cairn_report *r, FILE *out)
{
    if (r->nexps == 0) {
        fprintf(out, "no experiment records (%llu line(s) read)\n", (unsigned long long)r->lines);
        return ferror(out) ? -1 : 0;
    }
    char input[256];
    fprintf(out,
            "cairn report: %s\n"
            "Intervals are 95%%. \"significant at 5%%\": a two-sided p below 0.05; \"too few to "
            "say\":\na sample too small for the test's approximation.\n",
            cairn_report_fmt_input(input, sizeof(input), r));
    for (size_t i = 0; i < r->nexps; i++)
        write_experiment(&r->exps[i], out);
    return ferror(out) ? -1 : 0;
}
