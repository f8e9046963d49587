/*
 * report_json.c — `cairn report --json` (see report.h): every figure and
 * interval in one document, for programs and for the tests.
 *
 * Numbers are printed so that they read back as the same doubles; an
 * undefined figure (an empty sample, a test without an answer) is null,
 * never a made-up 0. Arms and markers are objects keyed by name, pairs
 * and differences arrays in the report's order.
 */
#include "report.h"

#include <math.h>

#include <cjson/cJSON.h>

#include "jsonl.h"

static void add_number(cJSON *o, const char *key, double v)
{
    cJSON_AddItemToObject(o, key, isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v));
}

static void add_interval(cJSON *o, double lo, double hi)
{
    if (isnan(lo) || isnan(hi)) {
        cJSON_AddNullToObject(o, "ci");
        return;
    }
    cJSON *ci = cJSON_AddArrayToObject(o, "ci");
    cJSON_AddItemToArray(ci, cJSON_CreateNumber(lo));
    cJSON_AddItemToArray(ci, cJSON_CreateNumber(hi));
}

static cJSON *rate(const struct cairn_report_rate *r)
{
    cJSON *o = cJSON_CreateObject();
    add_number(o, "hits", r->hits);
    add_number(o, "n", r->n);
    add_number(o, "rate", r->rate);
    add_interval(o, r->lo, r->hi);
    return o;
}

static void add_test(cJSON *o, const struct cairn_report_test *t)
{
    add_number(o, "statistic", t->stat);
    add_number(o, "df", t->df);
    add_number(o, "p", t->p);
    cJSON_AddStringToObject(o, "verdict", t->verdict);
    if (t->why != NULL)
        cJSON_AddStringToObject(o, "why", t->why);
    else
        cJSON_AddNullToObject(o, "why");
}

static cJSON *arm(const struct cairn_report_arm *a)
{
    static const char *const token_keys[CAIRN_REPORT_NTOKENS] = {"prompt", "completion", "total"};
    cJSON *o = cJSON_CreateObject();
    add_number(o, "requests", (double)a->requests);
    add_number(o, "forced", (double)a->forced);
    cJSON_AddItemToObject(o, "error_rate", rate(&a->errors));
    cJSON_AddItemToObject(o, "retry_rate", rate(&a->retries));
    cJSON *v = cJSON_AddObjectToObject(o, "violation_rates");
    for (size_t i = 0; i < a->nmarkers; i++)
        cJSON_AddItemToObject(v, a->markers[i].name, rate(&a->markers[i].violated));

    cJSON *lat = cJSON_AddObjectToObject(o, "latency_ms");
    add_number(lat, "n", (double)a->latency.n);
    add_number(lat, "p50", a->latency_p[0]);
    add_number(lat, "p95", a->latency_p[1]);
    add_number(lat, "p99", a->latency_p[2]);
    cJSON *fb = cJSON_AddObjectToObject(o, "first_byte_ms");
    add_number(fb, "n", (double)a->first_byte.n);
    add_number(fb, "p50", a->first_byte_p50);

    cJSON *tk = cJSON_AddObjectToObject(o, "tokens");
    add_number(tk, "n", (double)a->tokens[CAIRN_REPORT_TOTAL].n);
    for (int k = 0; k < CAIRN_REPORT_NTOKENS; k++) {
        cJSON *m = cJSON_AddObjectToObject(tk, token_keys[k]);
        add_number(m, "mean", a->tokens[k].n ? a->tokens[k].mean : NAN);
        add_number(m, "sd", sqrt(cairn_rstats_variance(&a->tokens[k])));
        add_interval(m, a->tokens_ci[k].lo, a->tokens_ci[k].hi);
    }
    return o;
}

static cJSON *pair(const struct cairn_report_pair *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "arm", p->a);
    cJSON_AddStringToObject(o, "other", p->b);
    add_number(o, "wins", (double)p->wins);
    add_number(o, "losses", (double)p->losses);
    add_number(o, "ties", (double)p->ties);
    add_number(o, "judged", p->win_rate.n);
    add_number(o, "win_rate", p->win_rate.rate);
    add_interval(o, p->win_rate.lo, p->win_rate.hi);
    cJSON *sign = cJSON_AddObjectToObject(o, "sign_test");
    add_test(sign, &p->sign);
    return o;
}

static cJSON *difference(const struct cairn_report_diff *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "arm", d->arm);
    cJSON_AddStringToObject(o, "figure", d->figure->key);
    if (d->marker != NULL)
        cJSON_AddStringToObject(o, "marker", d->marker);
    else
        cJSON_AddNullToObject(o, "marker");
    cJSON_AddStringToObject(o, "method", d->figure->method);
    add_number(o, "baseline_value", d->base);
    add_number(o, "value", d->value);
    add_number(o, "difference", d->value - d->base);
    add_number(o, "u", d->u);
    add_test(o, &d->test);
    return o;
}

static cJSON *experiment(const struct cairn_report_experiment *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "tenant", e->tenant);
    cJSON_AddStringToObject(o, "experiment", e->name);
    if (e->baseline != NULL)
        cJSON_AddStringToObject(o, "baseline", e->baseline);
    else
        cJSON_AddNullToObject(o, "baseline");
    cJSON_AddBoolToObject(o, "baseline_not_found", e->baseline_not_found);
    add_number(o, "forced", (double)e->forced);
    cJSON *arms = cJSON_AddObjectToObject(o, "arms");
    for (size_t i = 0; i < e->narms; i++)
        cJSON_AddItemToObject(arms, e->arms[i].name, arm(&e->arms[i]));
    cJSON *pairs = cJSON_AddArrayToObject(o, "judgements");
    for (size_t i = 0; i < e->npairs; i++)
        cJSON_AddItemToArray(pairs, pair(&e->pairs[i]));
    cJSON *diffs = cJSON_AddArrayToObject(o, "differences");
    for (size_t i = 0; i < e->ndiffs; i++)
        cJSON_AddItemToArray(diffs, difference(&e->diffs[i]));
    return o;
}

int cairn_report_write_json(const struct cairn_report *r, FILE *out)
{
    cJSON *root = cJSON_CreateObject();
    add_number(root, "alpha", CAIRN_REPORT_ALPHA);
    cJSON *in = cJSON_AddObjectToObject(root, "input");
    add_number(in, "lines", (double)r->lines);
    add_number(in, "records", (double)r->records);
    add_number(in, "malformed", (double)r->malformed);
    add_number(in, "ignored", (double)r->ignored);
    add_number(in, "over_limits", (double)r->over_limits);
    cJSON *exps = cJSON_AddArrayToObject(root, "experiments");
    for (size_t i = 0; i < r->nexps; i++)
        cJSON_AddItemToArray(exps, experiment(&r->exps[i]));
    return cairn_jsonl_write(out, root);
}
