/*
 * report.h — `cairn report LOG...`: the statistics of the gateway's A/B
 * experiments, read from its experiment log (JSON Lines).
 *
 * report.c reads the logs into a `struct cairn_report` and computes every
 * figure once; report_text.c, report_json.c and report_html.c only print
 * that model. Two kinds of records count:
 *
 *   request    one request served by an arm: status, latency, validation
 *              (markers checked, markers the answer still breaks,
 *              attempts) and token usage;
 *   judgement  a judge model's verdict on one request, the served arm's
 *              answer against another arm's: win, loss or tie.
 *
 * Records are grouped by (tenant, experiment). A record with "forced":
 * true had its arm chosen by a QA caller's header, not at random, so it is
 * counted but kept out of every figure. Other kinds of records and unknown
 * members are ignored; a line that is not a well-formed record is counted,
 * reported with its file and line, and skipped.
 */
#ifndef CAIRN_REPORT_H
#define CAIRN_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "report_stats.h"

/* A longer line is skipped and counted, never held in memory. The limit of
 * the other offline commands (jsonl.h): a record may carry the prompt of a
 * request body of the gateway's default 4 MiB limit, and a record dropped
 * for its length would bias every figure against long prompts. */
#define CAIRN_REPORT_MAX_LINE (4u << 20)
/* Intervals are at 1 - ALPHA, tests significant below ALPHA. */
#define CAIRN_REPORT_ALPHA 0.05
/* Below these, a difference is reported with "too few to say": the normal
 * approximations behind the tests do not hold yet. A rate needs n·p and
 * n·(1 - p) of at least RATE_MIN in both arms, p the pooled rate (the
 * counts expected if the arms did not differ); latency and tokens need
 * SAMPLE_MIN values in each. */
#define CAIRN_REPORT_RATE_MIN   5
#define CAIRN_REPORT_SAMPLE_MIN 30

/* The verdicts, compared by pointer. */
extern const char CAIRN_REPORT_SIGNIFICANT[];     /* "significant at 5%" */
extern const char CAIRN_REPORT_NOT_SIGNIFICANT[]; /* "not significant" */
extern const char CAIRN_REPORT_TOO_FEW[];         /* "too few to say" */

/* A proportion: hits out of n, with its rate and Wilson interval (all
 * three NAN when n is 0). */
struct cairn_report_rate {
    double hits, n;
    double rate, lo, hi;
};

struct cairn_report_marker {
    char *name;                        /* owned */
    struct cairn_report_rate violated; /* among the requests that checked it */
};

/* Values kept whole for their order statistics; sorted once read. */
struct cairn_report_sample {
    double *v; /* owned */
    size_t n, cap;
};

enum { CAIRN_REPORT_PROMPT, CAIRN_REPORT_COMPLETION, CAIRN_REPORT_TOTAL, CAIRN_REPORT_NTOKENS };

struct cairn_report_arm {
    char *name;                          /* owned */
    uint64_t requests;                   /* randomised: every figure is over these */
    uint64_t forced;                     /* arm chosen by a header: counted here only */
    struct cairn_report_rate errors;     /* status 0 (no answer) or >= 500 */
    struct cairn_report_rate retries;    /* attempts > 1 among attempts >= 1 */
    struct cairn_report_marker *markers; /* owned, sorted by name */
    size_t nmarkers;
    struct cairn_report_sample latency, first_byte; /* ms; first byte where known */
    double latency_p[3];                            /* p50, p95, p99; NAN when empty */
    double first_byte_p50;
    /* Prompt, completion and total tokens of the requests with usage, and
     * the interval of each mean (NAN below two values). */
    struct cairn_rstats_mean tokens[CAIRN_REPORT_NTOKENS];
    struct cairn_rstats_interval tokens_ci[CAIRN_REPORT_NTOKENS];
};

/* The outcome of one statistical test. */
struct cairn_report_test {
    double stat, df, p; /* NAN where undefined (df: Welch's t only) */
    const char *verdict;
    const char *why; /* with CAIRN_REPORT_TOO_FEW: what was too small */
};

/* Shadow judging of two arms, both directions pooled and seen from `a`
 * (the first by name): a win of b over a is a loss of a. */
struct cairn_report_pair {
    char *a, *b; /* owned */
    uint64_t wins, losses, ties;
    struct cairn_report_rate win_rate; /* (wins + ties/2) / judged */
    struct cairn_report_test sign;     /* sign test of wins against losses */
};

/* What a figure is and how two arms' values of it are compared. */
struct cairn_report_figure {
    const char *key;    /* in JSON: "error_rate" */
    const char *label;  /* for a person: "error rate" */
    const char *method; /* "two-proportion z", "Mann-Whitney U", "Welch t" */
    const char *unit;   /* "" for rates (shown as %), "ms", "tokens" */
};

/* One figure of one arm against the baseline. */
struct cairn_report_diff {
    const struct cairn_report_figure *figure;
    const char *arm;    /* the arm's name (owned by the arm) */
    const char *marker; /* a violation rate's marker, else NULL */
    double base, value; /* the baseline's figure and the arm's: a rate, a median, a mean */
    double u;           /* Mann-Whitney: U of the arm; else NAN */
    struct cairn_report_test test;
};

struct cairn_report_experiment {
    char *tenant, *name;           /* owned */
    struct cairn_report_arm *arms; /* owned, sorted by name */
    size_t narms, arms_cap;
    struct cairn_report_pair *pairs; /* owned, sorted by (a, b) */
    size_t npairs, pairs_cap;
    const char **markers; /* owned array, names owned by the arms: every marker
                             any arm checked, sorted */
    size_t nmarkers;
    uint64_t forced;                 /* records of either kind left out as forced */
    const char *baseline;            /* its arm's name, NULL without arms */
    bool baseline_not_found;         /* --baseline names no arm here: the default was used */
    struct cairn_report_diff *diffs; /* owned: for each other arm, every figure */
    size_t ndiffs;
};

struct cairn_report {
    struct cairn_report_experiment *exps; /* owned, sorted by (tenant, name) */
    size_t nexps, exps_cap;
    uint64_t lines;       /* read, blank ones included */
    uint64_t records;     /* request and judgement records used */
    uint64_t malformed;   /* lines skipped: too long, not JSON, a bad record */
    uint64_t ignored;     /* records of other kinds */
    uint64_t over_limits; /* records skipped past the limits on names */
};

/** `cairn report [--json] [--html FILE] [--baseline NAME] LOG...` with
 *  `argv` the arguments after "report". @return the exit status. */
int cairn_report_main(int argc, char **argv);

/** The marker `name` of arm `a`, NULL when it never checked it. */
struct cairn_report_marker *cairn_report_arm_marker(const struct cairn_report_arm *a,
                                                    const char *name);

/** The report for a terminal: one section of aligned tables per
 *  experiment. @return 0, or -1 on a write error. */
int cairn_report_write_text(const struct cairn_report *r, FILE *out);

/** The report as one JSON document with every figure. @return 0 or -1. */
int cairn_report_write_json(const struct cairn_report *r, FILE *out);

/** The report as one self-contained HTML page with SVG charts.
 *  @return 0 or -1. */
int cairn_report_write_html(const struct cairn_report *r, FILE *out);

/* Figures as a person reads them, shared by the text and the page; each
 * returns `buf`. `unit` is a figure's: "" (a rate, as a percentage), "ms"
 * or "tokens". An undefined figure (NAN) is "—". */
const char *cairn_report_fmt_value(char *buf, size_t len, const char *unit, double v);
/** "[lo, hi]" */
const char *cairn_report_fmt_interval(char *buf, size_t len, const char *unit, double lo,
                                      double hi);
/** Signed; rates in percentage points ("+2.5 pt"). */
const char *cairn_report_fmt_difference(char *buf, size_t len, const char *unit, double d);
/** "0.0123", or "< 0.0001". */
const char *cairn_report_fmt_p(char *buf, size_t len, double p);
/** What was read: "112 record(s) from 117 line(s): 3 malformed, ...". */
const char *cairn_report_fmt_input(char *buf, size_t len, const struct cairn_report *r);
/** "z = 1.23" or "t = 1.23, df 45.6". */
const char *cairn_report_fmt_statistic(char *buf, size_t len, const struct cairn_report_test *t);

#endif
