/*
 * report_html.c — `cairn report --html FILE` (see report.h): one page that
 * stands alone — no script, no fetched font or style, inline SVG charts —
 * so that it can be mailed, attached to a ticket or opened years later.
 *
 * Every chart is the same kind: rows of a dot with its 95% interval as a
 * whisker, grouped (by figure, by marker, by percentile), one colour per
 * arm throughout an experiment. Each chart and each dot carries an SVG <title>
 * that a screen reader or a hovering pointer reads out in words. The
 * numbers behind the charts follow in tables, then every difference from
 * the baseline with its verdict.
 *
 * Tenant, experiment, arm and marker names come from the log: everything
 * from there is escaped, and the page forbids itself any resource through
 * its Content-Security-Policy, so a hostile name cannot load or run
 * anything.
 */
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* Okabe and Ito's palette, distinct to readers with any common kind of
 * colour blindness; grey past eight arms. */
static const char *const PALETTE[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7",
                                      "#e69f00", "#56b4e9", "#7a5c3e", "#000000"};
#define NPALETTE (sizeof(PALETTE) / sizeof(PALETTE[0]))

static const char *colour(size_t arm)
{
    return arm < NPALETTE ? PALETTE[arm] : "#888888";
}

/* ---- escaping ---------------------------------------------------------- */

/* Text from the log, for element content and quoted attributes alike; at
 * most `max` characters (then "…"), control characters as '?' (they are
 * not allowed in SVG, which is XML). */
static void put_text(FILE *out, const char *s, size_t max)
{
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        bool starts_char = (*p & 0xc0) != 0x80;
        if (starts_char && chars++ == max) {
            fputs("…", out);
            return;
        }
        switch (*p) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default: fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, out);
        }
    }
}

static void put(FILE *out, const char *s)
{
    put_text(out, s, SIZE_MAX);
}

/* ---- charts ------------------------------------------------------------ */

struct row {
    const char *group; /* a row whose group differs from the one above starts a group */
    const char *label;
    size_t arm;       /* for its colour */
    double v, lo, hi; /* lo, hi NAN: no interval */
    char note[64];    /* added to the dot's title: "5 of 40" */
};

struct chart {
    const char *title, *unit;
    double reference; /* a dashed line here, NAN for none */
    bool unit_axis;   /* the axis is 0 to 100%, whatever the data */
    struct row *rows;
    size_t n, cap;
};

static struct row *add_row(struct chart *c, const char *group, const char *label, size_t arm,
                           double v, double lo, double hi)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->rows = cairn_realloc(c->rows, c->cap * sizeof(*c->rows));
    }
    struct row *r = &c->rows[c->n++];
    *r = (struct row){.group = group, .label = label, .arm = arm, .v = v, .lo = lo, .hi = hi};
    return r;
}

/* The top of an axis that holds `max`, and a round step (1, 2 or 5 times
 * a power of ten) that puts at most five ticks above 0. */
static double axis_top(double max, double *step)
{
    if (!(max > 0))
        max = 1;
    double raw = max / 5, p = pow(10, floor(log10(raw))), m = raw / p;
    *step = (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
    return ceil(max / *step - 1e-9) * *step;
}

/* A tick's label: as short as the value allows ("20%", "2.5%", "150"). */
static void put_tick(FILE *out, const char *unit, double v)
{
    if (unit[0] == '\0')
        fprintf(out, "%.4g%%", v * 100);
    else
        fprintf(out, "%.6g", v);
}

#define CHART_W  560
#define LABEL_W  150 /* left of the plot: group and arm names */
#define VALUE_W  70  /* right of the plot: the value */
#define ROW_H    20
#define GROUP_H  22
#define AXIS_H   26
#define LABEL_CH 20 /* characters of a name shown; the title has it whole */
#define PLOT_X0  (LABEL_W + 8)
#define PLOT_X1  (CHART_W - VALUE_W)

/* Where v falls on an axis from 0 to `top`; an interval reaching below 0
 * (a mean's, of few values) stops at the axis. */
static double at(double v, double top)
{
    return PLOT_X0 + fmin(fmax(v, 0), top) / top * (PLOT_X1 - PLOT_X0);
}

static void write_chart(FILE *out, struct chart *c, unsigned id)
{
    double max = c->unit_axis ? 1 : 0, step;
    for (size_t i = 0; i < c->n; i++)
        max = fmax(max, fmax(c->rows[i].v, isnan(c->rows[i].hi) ? 0 : c->rows[i].hi));
    double top = axis_top(max, &step);
    int height = 8 + AXIS_H;
    for (size_t i = 0; i < c->n; i++)
        height +=
            ROW_H + (i == 0 || strcmp(c->rows[i].group, c->rows[i - 1].group) != 0 ? GROUP_H : 0);

    fputs("<figure><figcaption>", out);
    put(out, c->title);
    fprintf(out,
            "</figcaption><svg viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\" "
            "aria-labelledby=\"c%u\"><title id=\"c%u\">",
            CHART_W, height, CHART_W, height, id, id);
    put(out, c->title);
    fputs("</title>\n", out);

    /* Grid and ticks first, so that the data is drawn over them. */
    int plot_bottom = height - AXIS_H;
    for (double t = 0; t <= top + step / 2; t += step) {
        double x = at(t, top);
        fprintf(out,
                "<line class=\"grid\" x1=\"%.1f\" y1=\"4\" x2=\"%.1f\" y2=\"%d\"/>"
                "<text class=\"tick\" x=\"%.1f\" y=\"%d\">",
                x, x, plot_bottom, x, plot_bottom + 16);
        put_tick(out, c->unit, t);
        fputs("</text>\n", out);
    }
    if (!isnan(c->reference)) {
        double x = at(c->reference, top);
        fprintf(out, "<line class=\"ref\" x1=\"%.1f\" y1=\"4\" x2=\"%.1f\" y2=\"%d\"/>\n", x, x,
                plot_bottom);
    }

    int y = 8;
    for (size_t i = 0; i < c->n; i++) {
        const struct row *r = &c->rows[i];
        char v[32], ci[64];
        if (i == 0 || strcmp(r->group, c->rows[i - 1].group) != 0) {
            fprintf(out, "<text class=\"group\" x=\"0\" y=\"%d\">", y + 15);
            put_text(out, r->group, LABEL_CH + 8);
            fputs("</text>\n", out);
            y += GROUP_H;
        }
        int mid = y + ROW_H / 2;
        fputs("<g><title>", out);
        put(out, r->group);
        fputs(" — ", out);
        put(out, r->label);
        fprintf(out, ": %s", cairn_report_fmt_value(v, sizeof(v), c->unit, r->v));
        if (!isnan(r->lo))
            fprintf(out, ", 95%% interval %s",
                    cairn_report_fmt_interval(ci, sizeof(ci), c->unit, r->lo, r->hi));
        if (r->note[0] != '\0')
            fprintf(out, " (%s)", r->note);
        fprintf(out, "</title><text class=\"label\" x=\"12\" y=\"%d\">", mid + 4);
        put_text(out, r->label, LABEL_CH);
        fputs("</text>", out);
        if (!isnan(r->lo)) {
            double a = at(r->lo, top), b = at(r->hi, top);
            fprintf(out,
                    "<path class=\"whisker\" stroke=\"%s\" d=\"M%.1f %dv8M%.1f %dH%.1fM%.1f "
                    "%dv8\"/>",
                    colour(r->arm), a, mid - 4, a, mid, b, b, mid - 4);
        }
        if (!isnan(r->v))
            fprintf(out, "<circle cx=\"%.1f\" cy=\"%d\" r=\"4.5\" fill=\"%s\"/>", at(r->v, top),
                    mid, colour(r->arm));
        fprintf(out, "<text class=\"value\" x=\"%d\" y=\"%d\">%s</text></g>\n", CHART_W - 4,
                mid + 4, isnan(r->v) ? "no data" : v);
        y += ROW_H;
    }
    fputs("</svg></figure>\n", out);
    free(c->rows);
    c->rows = NULL;
    c->n = c->cap = 0;
}

/* ---- the charts of an experiment --------------------------------------- */

__attribute__((format(printf, 2, 3))) static void note(struct row *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->note, sizeof(r->note), fmt, ap);
    va_end(ap);
}

static void note_rate(struct row *r, const struct cairn_report_rate *rate)
{
    note(r, "%.0f of %.0f", rate->hits, rate->n);
}

static void chart_rates(FILE *out, const struct cairn_report_experiment *e, unsigned id)
{
    struct chart c = {.title = "Error and retry rates", .unit = "", .reference = NAN};
    for (size_t i = 0; i < e->narms; i++) {
        const struct cairn_report_rate *r = &e->arms[i].errors;
        note_rate(add_row(&c, "error rate", e->arms[i].name, i, r->rate, r->lo, r->hi), r);
    }
    for (size_t i = 0; i < e->narms; i++) {
        const struct cairn_report_rate *r = &e->arms[i].retries;
        note_rate(add_row(&c, "retry rate", e->arms[i].name, i, r->rate, r->lo, r->hi), r);
    }
    write_chart(out, &c, id);
}

/* Markers in name order, each with the arms that checked it. */
static void chart_violations(FILE *out, const struct cairn_report_experiment *e, unsigned id)
{
    struct chart c = {.title = "Violation rate per marker", .unit = "", .reference = NAN};
    for (size_t k = 0; k < e->nmarkers; k++)
        for (size_t i = 0; i < e->narms; i++) {
            const struct cairn_report_marker *m =
                cairn_report_arm_marker(&e->arms[i], e->markers[k]);
            if (m != NULL)
                note_rate(add_row(&c, e->markers[k], e->arms[i].name, i, m->violated.rate,
                                  m->violated.lo, m->violated.hi),
                          &m->violated);
        }
    if (c.n > 0)
        write_chart(out, &c, id);
}

static void chart_latency(FILE *out, const struct cairn_report_experiment *e, unsigned id)
{
    static const char *const groups[] = {"p50", "p95", "p99"};
    struct chart c = {.title = "Latency percentiles (ms)", .unit = "ms", .reference = NAN};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < e->narms; i++) {
            const struct cairn_report_arm *a = &e->arms[i];
            note(add_row(&c, groups[k], a->name, i, a->latency_p[k], NAN, NAN), "%zu requests",
                 a->latency.n);
        }
    for (size_t i = 0; i < e->narms; i++) {
        const struct cairn_report_arm *a = &e->arms[i];
        note(add_row(&c, "first byte p50", a->name, i, a->first_byte_p50, NAN, NAN), "%zu requests",
             a->first_byte.n);
    }
    write_chart(out, &c, id);
}

static void chart_tokens(FILE *out, const struct cairn_report_experiment *e, unsigned id)
{
    static const char *const groups[CAIRN_REPORT_NTOKENS] = {"prompt", "completion", "total"};
    struct chart c = {.title = "Tokens per request (mean)", .unit = "tokens", .reference = NAN};
    for (int k = 0; k < CAIRN_REPORT_NTOKENS; k++)
        for (size_t i = 0; i < e->narms; i++) {
            const struct cairn_rstats_mean *m = &e->arms[i].tokens[k];
            note(add_row(&c, groups[k], e->arms[i].name, i, m->n ? m->mean : NAN,
                         e->arms[i].tokens_ci[k].lo, e->arms[i].tokens_ci[k].hi),
                 "%llu requests with usage", (unsigned long long)m->n);
        }
    write_chart(out, &c, id);
}

static size_t arm_index(const struct cairn_report_experiment *e, const char *name)
{
    for (size_t i = 0; i < e->narms; i++)
        if (strcmp(e->arms[i].name, name) == 0)
            return i;
    return NPALETTE; /* grey: judged, never served */
}

static void chart_judgements(FILE *out, const struct cairn_report_experiment *e, unsigned id)
{
    struct chart c = {.title = "Judged win rate of each arm in bold against the arms under it "
                               "(ties count half)",
                      .unit = "",
                      .reference = 0.5,
                      .unit_axis = true};
    for (size_t i = 0; i < e->npairs; i++) {
        const struct cairn_report_pair *p = &e->pairs[i];
        note(add_row(&c, p->a, p->b, arm_index(e, p->a), p->win_rate.rate, p->win_rate.lo,
                     p->win_rate.hi),
             "%llu W, %llu L, %llu T", (unsigned long long)p->wins, (unsigned long long)p->losses,
             (unsigned long long)p->ties);
    }
    write_chart(out, &c, id);
}

/* ---- tables ------------------------------------------------------------ */

static void td_rate(FILE *out, const struct cairn_report_rate *r)
{
    char v[32], ci[64];
    fprintf(out, "<td>%s</td><td class=\"ci\">%s</td>",
            cairn_report_fmt_value(v, sizeof(v), "", r->rate),
            cairn_report_fmt_interval(ci, sizeof(ci), "", r->lo, r->hi));
}

static void td_name(FILE *out, const char *name, size_t arm)
{
    fprintf(out, "<th scope=\"row\"><span class=\"swatch\" style=\"background:%s\"></span>",
            colour(arm));
    put(out, name);
    fputs("</th>", out);
}

static void table_arms(FILE *out, const struct cairn_report_experiment *e)
{
    fputs("<h3>Arms</h3><div class=\"scroll\"><table><thead><tr><th>arm</th><th>requests</th>"
          "<th>forced</th><th>error rate</th><th>95% CI</th><th>retry rate</th><th>95% CI</th>"
          "<th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>first byte p50</th>"
          "<th>tokens</th><th>95% CI</th></tr></thead><tbody>\n",
          out);
    for (size_t i = 0; i < e->narms; i++) {
        const struct cairn_report_arm *a = &e->arms[i];
        const struct cairn_rstats_mean *t = &a->tokens[CAIRN_REPORT_TOTAL];
        char v[32], ci[64];
        fputs("<tr>", out);
        td_name(out, a->name, i);
        fprintf(out, "<td>%llu</td><td>%llu</td>", (unsigned long long)a->requests,
                (unsigned long long)a->forced);
        td_rate(out, &a->errors);
        td_rate(out, &a->retries);
        for (int k = 0; k < 3; k++)
            fprintf(out, "<td>%s</td>",
                    cairn_report_fmt_value(v, sizeof(v), "ms", a->latency_p[k]));
        fprintf(out, "<td>%s</td>", cairn_report_fmt_value(v, sizeof(v), "ms", a->first_byte_p50));
        fprintf(out, "<td>%s</td>",
                cairn_report_fmt_value(v, sizeof(v), "tokens", t->n ? t->mean : NAN));
        fprintf(out, "<td class=\"ci\">%s</td></tr>\n",
                cairn_report_fmt_interval(ci, sizeof(ci), "tokens",
                                          a->tokens_ci[CAIRN_REPORT_TOTAL].lo,
                                          a->tokens_ci[CAIRN_REPORT_TOTAL].hi));
    }
    fputs("</tbody></table></div>\n", out);
}

static void verdict(FILE *out, const struct cairn_report_test *t)
{
    const char *cls = t->verdict == CAIRN_REPORT_SIGNIFICANT ? "sig"
                      : t->verdict == CAIRN_REPORT_TOO_FEW   ? "few"
                                                             : "ns";
    fprintf(out, "<td class=\"name\"><span class=\"verdict %s\">%s</span>", cls, t->verdict);
    if (t->why != NULL)
        fprintf(out, " <span class=\"why\">%s</span>", t->why);
    fputs("</td>", out);
}

static void table_judgements(FILE *out, const struct cairn_report_experiment *e)
{
    fputs("<h3>Judgements</h3><div class=\"scroll\"><table><thead><tr><th>arm</th><th "
          "class=\"name\">vs</th>"
          "<th>judged</th><th>W</th><th>L</th><th>T</th><th>win rate</th><th>95% CI</th>"
          "<th>sign test p</th><th class=\"name\">verdict</th></tr></thead><tbody>\n",
          out);
    for (size_t i = 0; i < e->npairs; i++) {
        const struct cairn_report_pair *p = &e->pairs[i];
        char pv[32];
        fputs("<tr>", out);
        td_name(out, p->a, arm_index(e, p->a));
        fputs("<td class=\"name\">", out);
        put(out, p->b);
        fprintf(out, "</td><td>%.0f</td><td>%llu</td><td>%llu</td><td>%llu</td>", p->win_rate.n,
                (unsigned long long)p->wins, (unsigned long long)p->losses,
                (unsigned long long)p->ties);
        td_rate(out, &p->win_rate);
        fprintf(out, "<td>%s</td>", cairn_report_fmt_p(pv, sizeof(pv), p->sign.p));
        verdict(out, &p->sign);
        fputs("</tr>\n", out);
    }
    fputs("</tbody></table></div>\n", out);
}

static void table_differences(FILE *out, const struct cairn_report_experiment *e)
{
    fputs("<h3>Differences from the baseline, ", out);
    put(out, e->baseline);
    fputs("</h3><div class=\"scroll\"><table><thead><tr><th>arm</th><th "
          "class=\"name\">figure</th><th>",
          out);
    put(out, e->baseline);
    fputs("</th><th>arm</th><th>difference</th><th "
          "class=\"name\">method</th><th>statistic</th><th>p</th>"
          "<th class=\"name\">verdict</th></tr></thead><tbody>\n",
          out);
    for (size_t i = 0; i < e->ndiffs; i++) {
        const struct cairn_report_diff *d = &e->diffs[i];
        const char *unit = d->figure->unit;
        char base[32], value[32], diff[32], stat[48], p[32];
        fputs("<tr>", out);
        td_name(out, d->arm, arm_index(e, d->arm));
        fputs("<td class=\"name\">", out);
        put(out, d->figure->label);
        if (d->marker != NULL) {
            fputs(" <code>", out);
            put(out, d->marker);
            fputs("</code>", out);
        }
        fprintf(out,
                "</td><td>%s</td><td>%s</td><td>%s</td><td class=\"name\">%s</td>"
                "<td>%s</td><td>%s</td>",
                cairn_report_fmt_value(base, sizeof(base), unit, d->base),
                cairn_report_fmt_value(value, sizeof(value), unit, d->value),
                cairn_report_fmt_difference(diff, sizeof(diff), unit, d->value - d->base),
                d->figure->method, cairn_report_fmt_statistic(stat, sizeof(stat), &d->test),
                cairn_report_fmt_p(p, sizeof(p), d->test.p));
        verdict(out, &d->test);
        fputs("</tr>\n", out);
    }
    fputs("</tbody></table></div>\n", out);
}

/* ---- the page ---------------------------------------------------------- */

static const char STYLE[] =
    "body{margin:0;background:#f6f7f9;color:#1f2328;font:15px/1.5 system-ui,-apple-system,"
    "'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif}"
    "main{max-width:1240px;margin:0 auto;padding:24px 20px 48px}"
    "h1{font-size:26px;margin:0 0 4px}"
    "h2{font-size:21px;margin:0 0 2px}h2 small{font-weight:400;color:#57606a;font-size:15px}"
    "h3{font-size:16px;margin:24px 0 8px}"
    ".lead{color:#57606a;margin:0 0 20px}"
    "section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:20px 24px;"
    "margin:0 0 24px}"
    ".note{background:#fff8c5;border:1px solid #eed888;border-radius:6px;padding:6px 10px;"
    "margin:10px 0}"
    ".charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:8px 24px}"
    "figure{margin:12px 0 0}figure svg{max-width:100%;height:auto}"
    "figcaption{font-size:14px;font-weight:600;margin:0 0 2px}"
    "svg text{font:12px system-ui,sans-serif;fill:#1f2328}"
    "svg .group{font-weight:600}svg .tick{fill:#57606a;text-anchor:middle;font-size:11px}"
    "svg .value{text-anchor:end;font-variant-numeric:tabular-nums}"
    "svg .grid{stroke:#e6e8eb}svg .ref{stroke:#57606a;stroke-dasharray:4 3}"
    "svg .whisker{stroke-width:2;fill:none}"
    ".scroll{overflow-x:auto}"
    "table{border-collapse:collapse;font-size:13.5px;font-variant-numeric:tabular-nums}"
    "th,td{padding:4px 8px;border-bottom:1px solid #e6e8eb;text-align:right;white-space:nowrap}"
    "thead th{font-weight:600;color:#57606a;border-bottom:2px solid #d0d7de}"
    "th[scope=row],.name,thead th:first-child{text-align:left}"
    "tbody tr:hover{background:#f6f8fa}td.ci{color:#57606a}"
    ".swatch{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px}"
    ".verdict{display:inline-block;padding:0 8px;border-radius:10px;font-size:13px}"
    ".sig{background:#0072b2;color:#fff}.ns{background:#e6e8eb}"
    ".few{background:#fff;border:1px solid #bf8700;color:#7d4e00}"
    ".why{color:#57606a;font-size:13px}"
    "code{font-size:13px;background:#f0f2f4;padding:0 4px;border-radius:4px}"
    "footer{color:#57606a;font-size:13px}";

static void write_experiment(FILE *out, const struct cairn_report_experiment *e, unsigned *ids)
{
    fputs("<section><h2>", out);
    put(out, e->name);
    fputs(" <small>tenant ", out);
    put(out, e->tenant);
    fputs("</small></h2>\n<p class=\"lead\">", out);
    if (e->baseline != NULL) {
        fputs("Baseline arm: <b>", out);
        put(out, e->baseline);
        fputs("</b>", out);
        if (e->baseline_not_found)
            fputs(" (the arm asked for with --baseline is not in this experiment)", out);
        fputs(". ", out);
    }
    fprintf(out, "%zu arm(s), %zu judged pair(s).</p>\n", e->narms, e->npairs);
    if (e->forced > 0)
        fprintf(out,
                "<p class=\"note\">%llu forced record(s) are left out of every figure: a QA "
                "header chose their arm, so they are not randomised.</p>\n",
                (unsigned long long)e->forced);
    fputs("<div class=\"charts\">\n", out);
    if (e->narms > 0) {
        chart_rates(out, e, (*ids)++);
        chart_violations(out, e, (*ids)++);
        chart_latency(out, e, (*ids)++);
        chart_tokens(out, e, (*ids)++);
    }
    if (e->npairs > 0)
        chart_judgements(out, e, (*ids)++);
    fputs("</div>\n", out);
    if (e->narms > 0)
        table_arms(out, e);
    if (e->npairs > 0)
        table_judgements(out, e);
    if (e->ndiffs > 0)
        table_differences(out, e);
    fputs("</section>\n", out);
}

int cairn_report_write_html(const struct cairn_report *r, FILE *out)
{
    fprintf(out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'\">\n"
            "<title>cairn experiment report</title>\n<style>%s</style></head>\n<body><main>\n"
            "<h1>Experiment report</h1>\n",
            STYLE);
    char input[256];
    fprintf(out,
            "<p class=\"lead\">%s. Dots are the figures, whiskers their 95%% intervals (Wilson "
            "for rates, Student t for means). A difference is <b>significant at 5%%</b> when its "
            "two-sided p is below 0.05; <b>too few to say</b> when a sample is too small for its "
            "test.</p>\n",
            cairn_report_fmt_input(input, sizeof(input), r));
    if (r->nexps == 0)
        fputs("<section><p>No experiment records.</p></section>\n", out);
    unsigned ids = 0;
    for (size_t i = 0; i < r->nexps; i++)
        write_experiment(out, &r->exps[i], &ids);
    fputs("<footer>Made by <code>cairn report</code>.</footer>\n</main></body></html>\n", out);
    return ferror(out) ? -1 : 0;
}
