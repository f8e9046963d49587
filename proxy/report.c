/*
 * report.c — `cairn report`: reading experiment logs and computing every
 * figure of every experiment (see report.h); the renderers print the
 * result.
 *
 * A log can hold millions of lines, so it is read in large blocks and cut
 * at newlines in place: a line is never copied, and one longer than
 * CAIRN_REPORT_MAX_LINE is skipped to its end without being held. Per
 * arm, counts are kept for the rates and running means for the tokens;
 * latencies are kept whole (8 bytes a request), because percentiles and
 * the Mann–Whitney test need every value.
 *
 * Names come from the log, so how many distinct ones are kept is bounded:
 * a record that would pass a limit is skipped and counted, and a log that
 * is all noise cannot make the report quadratic in its size.
 */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "alloc.h"
#include "json_strict.h"

#define MAX_EXPERIMENTS 1024 /* (tenant, experiment) groups */
#define MAX_ARMS        64   /* per experiment */
#define MAX_PAIRS       256  /* judged pairs of arms, per experiment */
#define MAX_MARKERS     128  /* per arm */
#define MAX_DEPTH       64   /* records are flat, but a "prompt" may nest */
#define MAX_MESSAGES    5    /* about bad lines, on stderr; then only counts */

const char CAIRN_REPORT_SIGNIFICANT[] = "significant at 5%";
const char CAIRN_REPORT_NOT_SIGNIFICANT[] = "not significant";
const char CAIRN_REPORT_TOO_FEW[] = "too few to say";

static const char USAGE[] = "usage: cairn report [--json] [--html FILE] [--baseline NAME] LOG...\n";

/* ---- reading lines ----------------------------------------------------- */

struct line_reader {
    FILE *in;
    char *buf;         /* MAX_LINE + 1 bytes: the longest line and its '\n' */
    size_t start, end; /* buf[start..end): read, not yet returned */
    bool eof;
};

#define READER_CAP (CAIRN_REPORT_MAX_LINE + 1)

/* The next line without its "\n" (or "\r\n") in *line, *len: not
 * NUL-terminated, valid until the next call.
 * @return 1 for a line, 0 for a line too long (skipped), -1 at the end. */
static int next_line(struct line_reader *lr, const char **line, size_t *len)
{
    bool too_long = false;
    for (;;) {
        char *nl = memchr(lr->buf + lr->start, '\n', lr->end - lr->start);
        if (nl != NULL || (lr->eof && lr->start < lr->end)) {
            size_t stop = nl != NULL ? (size_t)(nl - lr->buf) : lr->end;
            *line = lr->buf + lr->start;
            *len = stop - lr->start;
            lr->start = nl != NULL ? stop + 1 : stop;
            if (*len > 0 && (*line)[*len - 1] == '\r')
                (*len)--;
            return too_long ? 0 : 1;
        }
        if (lr->eof)
            return too_long ? 0 : -1;
        if (lr->end - lr->start == READER_CAP) {
            /* A full buffer and no newline: drop it, keep reading to the
             * line's end. */
            too_long = true;
            lr->start = lr->end = 0;
        } else if (lr->start > 0) {
            memmove(lr->buf, lr->buf + lr->start, lr->end - lr->start);
            lr->end -= lr->start;
            lr->start = 0;
        }
        size_t n = fread(lr->buf + lr->end, 1, READER_CAP - lr->end, lr->in);
        lr->end += n;
        lr->eof = n == 0;
    }
}

/* ---- the members of a record ------------------------------------------- */

/* A record's members are checked as they are read; the first bad one is
 * described in `why` and the record is skipped. */
struct record {
    const cJSON *o;
    char why[256];
};

static const char *get_string(struct record *rec, const char *key)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(rec->o, key);
    if (cJSON_IsString(m))
        return m->valuestring;
    snprintf(rec->why, sizeof(rec->why), m == NULL ? "no \"%s\"" : "\"%s\" is not a string", key);
    return NULL;
}

enum { REQUIRED = 1, INTEGER = 2 };

/* A number in [0, max]; absent or null is `dflt` unless REQUIRED.
 * @return 0, or -1 with rec->why set. */
static int get_number(struct record *rec, const char *key, int flags, double max, double dflt,
                      double *out)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(rec->o, key);
    if ((m == NULL || cJSON_IsNull(m)) && !(flags & REQUIRED)) {
        *out = dflt;
        return 0;
    }
    double v = cJSON_IsNumber(m) ? m->valuedouble : NAN;
    if (!(v >= 0 && v <= max) || ((flags & INTEGER) && v != floor(v))) {
        snprintf(rec->why, sizeof(rec->why), "\"%s\" is not %s from 0 to %g", key,
                 flags & INTEGER ? "an integer" : "a number", max);
        return -1;
    }
    *out = v;
    return 0;
}

/* "forced", false when absent. @return 0, or -1 with rec->why set. */
static int get_forced(struct record *rec, bool *forced)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(rec->o, "forced");
    if (m != NULL && !cJSON_IsBool(m)) {
        snprintf(rec->why, sizeof(rec->why), "\"forced\" is not true or false");
        return -1;
    }
    *forced = cJSON_IsTrue(m);
    return 0;
}

static bool array_has(const cJSON *array, const char *s, const cJSON *before)
{
    for (const cJSON *e = array != NULL ? array->child : NULL; e != NULL && e != before;
         e = e->next)
        if (strcmp(e->valuestring, s) == 0)
            return true;
    return false;
}

/* An array of at most MAX_MARKERS distinct strings (which bounds the
 * quadratic checks on it); absent or null is empty (NULL).
 * @return 0, or -1 with rec->why set. */
static int get_names(struct record *rec, const char *key, const cJSON **out)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(rec->o, key);
    *out = NULL;
    if (m == NULL || cJSON_IsNull(m))
        return 0;
    if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) > MAX_MARKERS) {
        snprintf(rec->why, sizeof(rec->why), "\"%s\" is not an array of at most %d names", key,
                 MAX_MARKERS);
        return -1;
    }
    for (const cJSON *e = m->child; e != NULL; e = e->next) {
        if (!cJSON_IsString(e) || array_has(m, e->valuestring, e)) {
            snprintf(rec->why, sizeof(rec->why), "\"%s\" is not an array of distinct strings", key);
            return -1;
        }
    }
    *out = m;
    return 0;
}

/* ---- grouping ---------------------------------------------------------- */

/* Room for one more element in a growable array. */
static void *grow(void *items, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return items;
    *cap = *cap ? *cap * 2 : 8;
    return cairn_realloc(items, *cap * size);
}

/* The experiment (tenant, name), added when new. NULL past the limit. */
static struct cairn_report_experiment *find_experiment(struct cairn_report *r, const char *tenant,
                                                       const char *name)
{
    for (size_t i = 0; i < r->nexps; i++)
        if (strcmp(r->exps[i].name, name) == 0 && strcmp(r->exps[i].tenant, tenant) == 0)
            return &r->exps[i];
    if (r->nexps == MAX_EXPERIMENTS)
        return NULL;
    r->exps = grow(r->exps, r->nexps, &r->exps_cap, sizeof(*r->exps));
    struct cairn_report_experiment *e = &r->exps[r->nexps++];
    *e = (struct cairn_report_experiment){.tenant = cairn_strdup(tenant),
                                          .name = cairn_strdup(name)};
    return e;
}

static struct cairn_report_arm *find_arm(struct cairn_report_experiment *e, const char *name)
{
    for (size_t i = 0; i < e->narms; i++)
        if (strcmp(e->arms[i].name, name) == 0)
            return &e->arms[i];
    if (e->narms == MAX_ARMS)
        return NULL;
    e->arms = grow(e->arms, e->narms, &e->arms_cap, sizeof(*e->arms));
    struct cairn_report_arm *a = &e->arms[e->narms++];
    *a = (struct cairn_report_arm){.name = cairn_strdup(name)};
    return a;
}

/* The pair {x, y}, stored in name order, added when new. NULL past the
 * limit. *swapped when x is its second arm. */
static struct cairn_report_pair *find_pair(struct cairn_report_experiment *e, const char *x,
                                           const char *y, bool *swapped)
{
    *swapped = strcmp(x, y) > 0;
    const char *a = *swapped ? y : x, *b = *swapped ? x : y;
    for (size_t i = 0; i < e->npairs; i++)
        if (strcmp(e->pairs[i].a, a) == 0 && strcmp(e->pairs[i].b, b) == 0)
            return &e->pairs[i];
    if (e->npairs == MAX_PAIRS)
        return NULL;
    e->pairs = grow(e->pairs, e->npairs, &e->pairs_cap, sizeof(*e->pairs));
    struct cairn_report_pair *p = &e->pairs[e->npairs++];
    *p = (struct cairn_report_pair){.a = cairn_strdup(a), .b = cairn_strdup(b)};
    return p;
}

struct cairn_report_marker *cairn_report_arm_marker(const struct cairn_report_arm *a,
                                                    const char *name)
{
    for (size_t i = 0; i < a->nmarkers; i++)
        if (strcmp(a->markers[i].name, name) == 0)
            return &a->markers[i];
    return NULL;
}

static void sample_add(struct cairn_report_sample *s, double v)
{
    s->v = grow(s->v, s->n, &s->cap, sizeof(*s->v));
    s->v[s->n++] = v;
}

/* ---- taking records ---------------------------------------------------- */

struct reading {
    struct cairn_report *r;
    const char *path; /* of the file being read, for messages */
    uint64_t line;    /* its line being read */
    unsigned messages;
};

__attribute__((format(printf, 2, 3))) static void complain(struct reading *rd, const char *fmt, ...)
{
    if (rd->messages++ >= MAX_MESSAGES)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "cairn: %s:%llu: %s\n", rd->path, (unsigned long long)rd->line, msg);
}

static void malformed(struct reading *rd, const char *why)
{
    rd->r->malformed++;
    complain(rd, "%s: line skipped", why);
}

static void over_limit(struct reading *rd, const char *what, unsigned limit)
{
    rd->r->over_limits++;
    complain(rd, "more than %u %s: record skipped", limit, what);
}

/* What a request record adds to its arm. */
struct request {
    bool forced;
    double status, latency, first_byte, attempts;
    const cJSON *checked, *violations;
    bool has_usage;
    double tokens[CAIRN_REPORT_NTOKENS];
};

/* @return 0, or -1 with rec->why set. */
static int read_usage(struct record *rec, struct request *q)
{
    static const char *const keys[CAIRN_REPORT_NTOKENS] = {"prompt_tokens", "completion_tokens",
                                                           "total_tokens"};
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(rec->o, "usage");
    q->has_usage = cJSON_IsObject(usage);
    if (usage == NULL || cJSON_IsNull(usage))
        return 0;
    if (!q->has_usage) {
        snprintf(rec->why, sizeof(rec->why), "\"usage\" is not an object or null");
        return -1;
    }
    struct record in_usage = {.o = usage};
    for (int k = 0; k < CAIRN_REPORT_NTOKENS; k++) {
        if (get_number(&in_usage, keys[k], REQUIRED | INTEGER, 1e15, 0, &q->tokens[k]) < 0) {
            snprintf(rec->why, sizeof(rec->why), "usage: %s", in_usage.why);
            return -1;
        }
    }
    return 0;
}

/* @return 0, or -1 with rec->why set. */
static int read_request(struct record *rec, struct request *q)
{
    if (get_forced(rec, &q->forced) < 0 ||
        get_number(rec, "status", REQUIRED | INTEGER, 999, 0, &q->status) < 0 ||
        get_number(rec, "latency_ms", REQUIRED, 1e12, 0, &q->latency) < 0 ||
        get_number(rec, "first_byte_ms", 0, 1e12, NAN, &q->first_byte) < 0 ||
        get_number(rec, "attempts", INTEGER, 1e6, 0, &q->attempts) < 0 ||
        get_names(rec, "checked", &q->checked) < 0 ||
        get_names(rec, "violations", &q->violations) < 0 || read_usage(rec, q) < 0)
        return -1;
    /* A violation is a failed check: one outside "checked" would make a
     * rate above 100%. */
    for (const cJSON *v = q->violations != NULL ? q->violations->child : NULL; v; v = v->next) {
        if (!array_has(q->checked, v->valuestring, NULL)) {
            snprintf(rec->why, sizeof(rec->why), "violation \"%.64s\" is not in \"checked\"",
                     v->valuestring);
            return -1;
        }
    }
    return 0;
}

/* Markers of `checked` that `a` has not seen yet. */
static size_t new_markers(struct cairn_report_arm *a, const cJSON *checked)
{
    size_t n = 0;
    for (const cJSON *c = checked != NULL ? checked->child : NULL; c != NULL; c = c->next)
        n += cairn_report_arm_marker(a, c->valuestring) == NULL;
    return n;
}

static void take_request(struct reading *rd, struct cairn_report_experiment *e, const char *name,
                         const struct request *q)
{
    struct cairn_report_arm *a = find_arm(e, name);
    if (a == NULL) {
        over_limit(rd, "arms in an experiment", MAX_ARMS);
        return;
    }
    size_t fresh = new_markers(a, q->checked);
    if (a->nmarkers + fresh > MAX_MARKERS) {
        over_limit(rd, "markers in an arm", MAX_MARKERS);
        return;
    }
    rd->r->records++;
    if (q->forced) {
        a->forced++;
        return;
    }
    a->requests++;
    a->errors.n++;
    a->errors.hits += q->status == 0 || q->status >= 500;
    if (q->attempts >= 1) {
        a->retries.n++;
        a->retries.hits += q->attempts > 1;
    }
    if (fresh > 0)
        a->markers = cairn_realloc(a->markers, (a->nmarkers + fresh) * sizeof(*a->markers));
    for (const cJSON *c = q->checked != NULL ? q->checked->child : NULL; c != NULL; c = c->next) {
        struct cairn_report_marker *m = cairn_report_arm_marker(a, c->valuestring);
        if (m == NULL) {
            m = &a->markers[a->nmarkers++];
            *m = (struct cairn_report_marker){.name = cairn_strdup(c->valuestring)};
        }
        m->violated.n++;
        m->violated.hits += array_has(q->violations, c->valuestring, NULL);
    }
    sample_add(&a->latency, q->latency);
    if (!isnan(q->first_byte))
        sample_add(&a->first_byte, q->first_byte);
    if (q->has_usage)
        for (int k = 0; k < CAIRN_REPORT_NTOKENS; k++)
            cairn_rstats_mean_add(&a->tokens[k], q->tokens[k]);
}

/* What a judgement record says: "arm" against "other". */
struct judgement {
    const char *other;
    bool forced;
    int score; /* 0 loss, 1 tie, 2 win */
};

/* @return 0, or -1 with rec->why set. */
static int read_judgement(struct record *rec, const char *arm, struct judgement *j)
{
    static const char *const results[] = {"loss", "tie", "win"};
    const char *result;
    if ((j->other = get_string(rec, "other")) == NULL ||
        (result = get_string(rec, "result")) == NULL || get_forced(rec, &j->forced) < 0)
        return -1;
    j->score = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(result, results[i]) == 0)
            j->score = i;
    if (j->score < 0)
        snprintf(rec->why, sizeof(rec->why), "\"result\" is not \"win\", \"loss\" or \"tie\"");
    else if (strcmp(arm, j->other) == 0)
        snprintf(rec->why, sizeof(rec->why), "an arm judged against itself");
    else
        return 0;
    return -1;
}

static void take_judgement(struct reading *rd, struct cairn_report_experiment *e, const char *arm,
                           const struct judgement *j)
{
    if (j->forced) {
        e->forced++;
        rd->r->records++;
        return;
    }
    bool swapped;
    struct cairn_report_pair *p = find_pair(e, arm, j->other, &swapped);
    if (p == NULL) {
        over_limit(rd, "judged pairs of arms in an experiment", MAX_PAIRS);
        return;
    }
    /* The pair is seen from its first arm: a win of the second is a loss. */
    int score = swapped ? 2 - j->score : j->score;
    p->losses += score == 0;
    p->ties += score == 1;
    p->wins += score == 2;
    rd->r->records++;
}

static void take_line(struct reading *rd, const char *line, size_t len)
{
    char why[256];
    cJSON *root = cairn_json_parse_strict(line, len, MAX_DEPTH, why, sizeof(why));
    if (root == NULL) {
        malformed(rd, why);
        return;
    }
    struct record rec = {.o = root};
    const char *kind = cJSON_IsObject(root) ? get_string(&rec, "kind") : NULL;
    bool request = kind != NULL && strcmp(kind, "request") == 0;
    if (!cJSON_IsObject(root)) {
        malformed(rd, "not a JSON object");
    } else if (kind == NULL) {
        malformed(rd, rec.why);
    } else if (!request && strcmp(kind, "judgement") != 0) {
        rd->r->ignored++;
    } else {
        /* The whole record is read before it is counted anywhere. */
        struct request q;
        struct judgement j;
        const char *tenant = get_string(&rec, "tenant");
        const char *name = tenant ? get_string(&rec, "experiment") : NULL;
        const char *arm = name ? get_string(&rec, "arm") : NULL;
        struct cairn_report_experiment *e = NULL;
        if (arm == NULL || (request ? read_request(&rec, &q) : read_judgement(&rec, arm, &j)) < 0)
            malformed(rd, rec.why);
        else if ((e = find_experiment(rd->r, tenant, name)) == NULL)
            over_limit(rd, "experiments", MAX_EXPERIMENTS);
        else if (request)
            take_request(rd, e, arm, &q);
        else
            take_judgement(rd, e, arm, &j);
    }
    cJSON_Delete(root);
}

static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return false;
    return true;
}

/* Read one log ("-": standard input) into the report.
 * @return 0, or -1 having said why on stderr. */
static int read_log(struct reading *rd, struct line_reader *lr, const char *path)
{
    bool is_stdin = strcmp(path, "-") == 0;
    lr->in = is_stdin ? stdin : fopen(path, "rb");
    if (lr->in == NULL) {
        fprintf(stderr, "cairn: %s: %s\n", path, strerror(errno));
        return -1;
    }
    lr->start = lr->end = 0;
    lr->eof = false;
    rd->path = is_stdin ? "(stdin)" : path;
    rd->line = 0;
    const char *line;
    size_t len;
    int got;
    while ((got = next_line(lr, &line, &len)) >= 0) {
        rd->line++;
        rd->r->lines++;
        if (got == 0) {
            char why[64];
            snprintf(why, sizeof(why), "line longer than %u bytes", CAIRN_REPORT_MAX_LINE);
            malformed(rd, why);
        } else if (!blank(line, len)) {
            take_line(rd, line, len);
        }
    }
    int failed = ferror(lr->in);
    if (!is_stdin)
        fclose(lr->in);
    if (failed) {
        fprintf(stderr, "cairn: %s: read error\n", rd->path);
        return -1;
    }
    return 0;
}

/* ---- the figures ------------------------------------------------------- */

static const struct cairn_report_figure FIG_ERRORS = {"error_rate", "error rate",
                                                      "two-proportion z", ""};
static const struct cairn_report_figure FIG_RETRIES = {"retry_rate", "retry rate",
                                                       "two-proportion z", ""};
static const struct cairn_report_figure FIG_VIOLATIONS = {"violation_rate", "violation rate",
                                                          "two-proportion z", ""};
static const struct cairn_report_figure FIG_LATENCY = {"latency_ms", "latency p50",
                                                       "Mann-Whitney U", "ms"};
static const struct cairn_report_figure FIG_FIRST_BYTE = {"first_byte_ms", "first byte p50",
                                                          "Mann-Whitney U", "ms"};
static const struct cairn_report_figure FIG_TOKENS[CAIRN_REPORT_NTOKENS] = {
    {"prompt_tokens", "prompt tokens", "Welch t", "tokens"},
    {"completion_tokens", "completion tokens", "Welch t", "tokens"},
    {"total_tokens", "total tokens", "Welch t", "tokens"},
};

static void finish_rate(struct cairn_report_rate *r)
{
    struct cairn_rstats_interval ci;
    r->rate = r->lo = r->hi = NAN;
    if (cairn_rstats_wilson(r->hits, r->n, CAIRN_REPORT_ALPHA, &ci) == 0) {
        r->rate = r->hits / r->n;
        r->lo = ci.lo;
        r->hi = ci.hi;
    }
}

/* The outcome of test `t`, which had no answer when `rc` < 0, and its
 * verdict: too few to say for the reason `too_few` when a sample is too
 * small for the test, else by the p-value. */
static void judge(struct cairn_report_test *out, int rc, const struct cairn_rstats_test *t,
                  const char *too_few)
{
    out->stat = rc == 0 ? t->stat : NAN;
    out->df = rc == 0 ? t->df : NAN;
    out->p = rc == 0 ? t->p : NAN;
    out->why = too_few != NULL ? too_few : rc < 0 ? "no variation" : NULL;
    out->verdict = out->why != NULL              ? CAIRN_REPORT_TOO_FEW
                   : out->p < CAIRN_REPORT_ALPHA ? CAIRN_REPORT_SIGNIFICANT
                                                 : CAIRN_REPORT_NOT_SIGNIFICANT;
}

static const char RATE_TOO_FEW[] = "n·p or n·(1-p) < 5, p pooled";
static const char SAMPLE_TOO_FEW[] = "n < 30";

/* The normal approximation of the pooled two-proportion test holds when
 * every arm expects at least CAIRN_REPORT_RATE_MIN hits and misses under
 * the null hypothesis, at the pooled rate: an arm with no violations left
 * (0 of 100, against 43 of 101) is a clear difference, not too few. */
static bool rates_too_few(const struct cairn_report_rate *a, const struct cairn_report_rate *b)
{
    double n = (double)a->n + (double)b->n;
    if (a->n == 0 || b->n == 0)
        return true;
    double p = ((double)a->hits + (double)b->hits) / n;
    double least = (double)(a->n < b->n ? a->n : b->n);
    return least * p < CAIRN_REPORT_RATE_MIN || least * (1 - p) < CAIRN_REPORT_RATE_MIN;
}

/* qsort, which must not be given the NULL of an array never grown. */
static void sort(void *items, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(items, n, size, cmp);
}

static int by_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static int by_marker(const void *x, const void *y)
{
    return strcmp(((const struct cairn_report_marker *)x)->name,
                  ((const struct cairn_report_marker *)y)->name);
}

static void finish_arm(struct cairn_report_arm *a)
{
    static const double q[3] = {0.50, 0.95, 0.99};
    finish_rate(&a->errors);
    finish_rate(&a->retries);
    sort(a->markers, a->nmarkers, sizeof(*a->markers), by_marker);
    for (size_t i = 0; i < a->nmarkers; i++)
        finish_rate(&a->markers[i].violated);
    sort(a->latency.v, a->latency.n, sizeof(double), by_double);
    sort(a->first_byte.v, a->first_byte.n, sizeof(double), by_double);
    for (int i = 0; i < 3; i++)
        a->latency_p[i] = cairn_rstats_percentile(a->latency.v, a->latency.n, q[i]);
    a->first_byte_p50 = cairn_rstats_percentile(a->first_byte.v, a->first_byte.n, 0.5);
    for (int k = 0; k < CAIRN_REPORT_NTOKENS; k++)
        if (cairn_rstats_mean_interval(&a->tokens[k], CAIRN_REPORT_ALPHA, &a->tokens_ci[k]) < 0)
            a->tokens_ci[k].lo = a->tokens_ci[k].hi = NAN;
}

static void finish_pair(struct cairn_report_pair *p)
{
    p->win_rate.n = (double)(p->wins + p->losses + p->ties);
    p->win_rate.hits = (double)p->wins + (double)p->ties / 2;
    finish_rate(&p->win_rate);
    /* H0 of the sign test is p = 1/2, so n·p >= 5 asks for 10 decisions. */
    struct cairn_rstats_test t;
    int rc = cairn_rstats_sign_test((double)p->wins, (double)p->losses, &t);
    judge(&p->sign, rc, &t, p->wins + p->losses < 2 * CAIRN_REPORT_RATE_MIN ? "W + L < 10" : NULL);
}

static struct cairn_report_diff *add_diff(struct cairn_report_experiment *e, size_t *cap,
                                          const struct cairn_report_figure *f,
                                          const struct cairn_report_arm *arm, double base,
                                          double value)
{
    e->diffs = grow(e->diffs, e->ndiffs, cap, sizeof(*e->diffs));
    struct cairn_report_diff *d = &e->diffs[e->ndiffs++];
    *d = (struct cairn_report_diff){
        .figure = f, .arm = arm->name, .base = base, .value = value, .u = NAN};
    return d;
}

static void diff_rates(struct cairn_report_experiment *e, size_t *cap,
                       const struct cairn_report_figure *f, const struct cairn_report_arm *arm,
                       const char *marker, const struct cairn_report_rate *base,
                       const struct cairn_report_rate *r)
{
    struct cairn_report_diff *d = add_diff(e, cap, f, arm, base->rate, r->rate);
    struct cairn_rstats_test t;
    int rc = cairn_rstats_two_proportions(base->hits, base->n, r->hits, r->n, &t);
    d->marker = marker;
    judge(&d->test, rc, &t, rates_too_few(base, r) ? RATE_TOO_FEW : NULL);
}

static void diff_samples(struct cairn_report_experiment *e, size_t *cap,
                         const struct cairn_report_figure *f, const struct cairn_report_arm *arm,
                         const struct cairn_report_sample *base, double base_p50,
                         const struct cairn_report_sample *s, double p50)
{
    struct cairn_report_diff *d = add_diff(e, cap, f, arm, base_p50, p50);
    struct cairn_rstats_test t;
    int rc = cairn_rstats_mann_whitney(s->v, s->n, base->v, base->n, &d->u, &t);
    judge(&d->test, rc, &t,
          base->n < CAIRN_REPORT_SAMPLE_MIN || s->n < CAIRN_REPORT_SAMPLE_MIN ? SAMPLE_TOO_FEW
                                                                              : NULL);
}

static void diff_means(struct cairn_report_experiment *e, size_t *cap,
                       const struct cairn_report_figure *f, const struct cairn_report_arm *arm,
                       const struct cairn_rstats_mean *base, const struct cairn_rstats_mean *m)
{
    struct cairn_report_diff *d =
        add_diff(e, cap, f, arm, base->n ? base->mean : NAN, m->n ? m->mean : NAN);
    struct cairn_rstats_test t;
    int rc = cairn_rstats_welch(base, m, &t);
    judge(&d->test, rc, &t,
          base->n < CAIRN_REPORT_SAMPLE_MIN || m->n < CAIRN_REPORT_SAMPLE_MIN ? SAMPLE_TOO_FEW
                                                                              : NULL);
}

/* Every figure of `arm` against the baseline `b`; violation rates for every
 * marker either of them checked. */
static void diff_arm(struct cairn_report_experiment *e, size_t *cap,
                     const struct cairn_report_arm *b, const struct cairn_report_arm *arm)
{
    static const struct cairn_report_rate none = {0, 0, NAN, NAN, NAN};
    diff_rates(e, cap, &FIG_ERRORS, arm, NULL, &b->errors, &arm->errors);
    diff_rates(e, cap, &FIG_RETRIES, arm, NULL, &b->retries, &arm->retries);
    for (size_t i = 0; i < e->nmarkers; i++) {
        const struct cairn_report_marker *in_b = cairn_report_arm_marker(b, e->markers[i]);
        const struct cairn_report_marker *in_arm = cairn_report_arm_marker(arm, e->markers[i]);
        if (in_b != NULL || in_arm != NULL)
            diff_rates(e, cap, &FIG_VIOLATIONS, arm, e->markers[i], in_b ? &in_b->violated : &none,
                       in_arm ? &in_arm->violated : &none);
    }
    diff_samples(e, cap, &FIG_LATENCY, arm, &b->latency, b->latency_p[0], &arm->latency,
                 arm->latency_p[0]);
    diff_samples(e, cap, &FIG_FIRST_BYTE, arm, &b->first_byte, b->first_byte_p50, &arm->first_byte,
                 arm->first_byte_p50);
    for (int k = 0; k < CAIRN_REPORT_NTOKENS; k++)
        diff_means(e, cap, &FIG_TOKENS[k], arm, &b->tokens[k], &arm->tokens[k]);
}

static int by_name(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* Every marker any arm checked, once each, in order: the rows of the
 * violation tables and the markers compared. */
static void collect_markers(struct cairn_report_experiment *e)
{
    size_t n = 0;
    for (size_t i = 0; i < e->narms; i++)
        n += e->arms[i].nmarkers;
    e->markers = cairn_calloc(n, sizeof(*e->markers));
    for (size_t i = 0; i < e->narms; i++)
        for (size_t m = 0; m < e->arms[i].nmarkers; m++)
            e->markers[e->nmarkers++] = e->arms[i].markers[m].name;
    sort(e->markers, e->nmarkers, sizeof(*e->markers), by_name);
    size_t unique = 0;
    for (size_t i = 0; i < e->nmarkers; i++)
        if (unique == 0 || strcmp(e->markers[unique - 1], e->markers[i]) != 0)
            e->markers[unique++] = e->markers[i];
    e->nmarkers = unique;
}

static int by_arm(const void *x, const void *y)
{
    return strcmp(((const struct cairn_report_arm *)x)->name,
                  ((const struct cairn_report_arm *)y)->name);
}

static int by_pair(const void *x, const void *y)
{
    const struct cairn_report_pair *p = x, *q = y;
    int c = strcmp(p->a, q->a);
    return c != 0 ? c : strcmp(p->b, q->b);
}

static int by_experiment(const void *x, const void *y)
{
    const struct cairn_report_experiment *p = x, *q = y;
    int c = strcmp(p->tenant, q->tenant);
    return c != 0 ? c : strcmp(p->name, q->name);
}

/* The baseline: the arm asked for, else "control", else the first by name. */
static const struct cairn_report_arm *pick_baseline(struct cairn_report_experiment *e,
                                                    const char *wanted)
{
    const struct cairn_report_arm *named = NULL, *control = NULL;
    for (size_t i = 0; i < e->narms; i++) {
        if (wanted != NULL && strcmp(e->arms[i].name, wanted) == 0)
            named = &e->arms[i];
        if (strcmp(e->arms[i].name, "control") == 0)
            control = &e->arms[i];
    }
    e->baseline_not_found = wanted != NULL && named == NULL;
    return named ? named : control ? control : e->narms ? &e->arms[0] : NULL;
}

static void finish_experiment(struct cairn_report_experiment *e, const char *wanted_baseline)
{
    sort(e->arms, e->narms, sizeof(*e->arms), by_arm);
    sort(e->pairs, e->npairs, sizeof(*e->pairs), by_pair);
    for (size_t i = 0; i < e->narms; i++) {
        finish_arm(&e->arms[i]);
        e->forced += e->arms[i].forced;
    }
    for (size_t i = 0; i < e->npairs; i++)
        finish_pair(&e->pairs[i]);
    collect_markers(e);
    const struct cairn_report_arm *b = pick_baseline(e, wanted_baseline);
    e->baseline = b ? b->name : NULL;
    size_t cap = 0;
    for (size_t i = 0; i < e->narms; i++)
        if (&e->arms[i] != b)
            diff_arm(e, &cap, b, &e->arms[i]);
}

static void report_free(struct cairn_report *r)
{
    for (size_t i = 0; i < r->nexps; i++) {
        struct cairn_report_experiment *e = &r->exps[i];
        for (size_t k = 0; k < e->narms; k++) {
            struct cairn_report_arm *a = &e->arms[k];
            for (size_t m = 0; m < a->nmarkers; m++)
                free(a->markers[m].name);
            free(a->markers);
            free(a->latency.v);
            free(a->first_byte.v);
            free(a->name);
        }
        for (size_t k = 0; k < e->npairs; k++) {
            free(e->pairs[k].a);
            free(e->pairs[k].b);
        }
        free(e->arms);
        free(e->pairs);
        free(e->diffs);
        free(e->markers);
        free(e->tenant);
        free(e->name);
    }
    free(r->exps);
}

/* ---- the command ------------------------------------------------------- */

struct report_options {
    bool json;
    const char *html;     /* write the page here, or NULL */
    const char *baseline; /* --baseline, or NULL */
    char **logs;
    int nlogs;
};

/* @return 0, or -1 having said why on stderr. */
static int parse_options(int argc, char **argv, struct report_options *o)
{
    *o = (struct report_options){.logs = argv};
    bool only_files = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (only_files || a[0] != '-' || strcmp(a, "-") == 0) {
            o->logs[o->nlogs++] = argv[i]; /* compacts argv in place: nlogs <= i */
        } else if (strcmp(a, "--") == 0) {
            only_files = true;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--html") == 0 && has_value) {
            o->html = argv[++i];
        } else if (strcmp(a, "--baseline") == 0 && has_value) {
            o->baseline = argv[++i];
        } else {
            fprintf(stderr, "cairn: report: unknown or incomplete option '%s'\n%s", a, USAGE);
            return -1;
        }
    }
    if (o->nlogs == 0) {
        fprintf(stderr, "cairn: report: no log file given\n%s", USAGE);
        return -1;
    }
    return 0;
}

static int write_html_file(const struct cairn_report *r, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "cairn: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = cairn_report_write_html(r, f);
    if (fclose(f) != 0 || rc < 0) {
        fprintf(stderr, "cairn: %s: write error\n", path);
        return -1;
    }
    return 0;
}

/* The page when asked for, then the text or JSON on standard output.
 * @return 0, or -1 having said why on stderr. */
static int write_outputs(const struct cairn_report *r, const struct report_options *o)
{
    if (o->html != NULL && write_html_file(r, o->html) < 0)
        return -1;
    int rc = o->json ? cairn_report_write_json(r, stdout) : cairn_report_write_text(r, stdout);
    if (fflush(stdout) != 0 || rc < 0) {
        fprintf(stderr, "cairn: report: write error on standard output\n");
        return -1;
    }
    return 0;
}

int cairn_report_main(int argc, char **argv)
{
    struct report_options o;
    if (parse_options(argc, argv, &o) < 0)
        return 1;

    struct cairn_report r = {0};
    struct reading rd = {.r = &r};
    struct line_reader lr = {.buf = cairn_malloc(READER_CAP)};
    int rc = 0;
    for (int i = 0; i < o.nlogs && rc == 0; i++)
        rc = read_log(&rd, &lr, o.logs[i]);
    free(lr.buf);
    if (rc == 0) {
        if (r.malformed > 0)
            fprintf(stderr, "cairn: %llu malformed line(s) skipped\n",
                    (unsigned long long)r.malformed);
        if (r.over_limits > 0)
            fprintf(stderr, "cairn: %llu record(s) skipped past the limits on names\n",
                    (unsigned long long)r.over_limits);
        sort(r.exps, r.nexps, sizeof(*r.exps), by_experiment);
        for (size_t i = 0; i < r.nexps; i++)
            finish_experiment(&r.exps[i], o.baseline);
        if (r.nexps == 0 && o.json)
            fprintf(stderr, "cairn: no experiment records\n");
        rc = write_outputs(&r, &o);
    }
    report_free(&r);
    return rc == 0 ? 0 : 1;
}
