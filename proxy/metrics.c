/*
 * metrics.c — the Prometheus metrics registry (see metrics.h).
 *
 * Each family keeps its series in an array, in the order they were first
 * seen, which is the order they render in. A family with labels also keeps
 * an open-addressing table (linear probing, at most half full) of indexes
 * into that array, keyed by an FNV-1a hash of the label values; a hit is
 * confirmed by comparing the values exactly, so a collision costs a probe,
 * never a wrong series. A series stores its (truncated) label values back
 * to back, each NUL-terminated, in one allocation.
 *
 * Histogram series count observations per bucket, not cumulatively, so an
 * observation touches one counter; render adds them up.
 *
 * A registry may live in a worker's shared arena (shm.h), where the master
 * reads it while the worker writes: one writer, readers in other
 * processes. Nothing there is ever freed or moved, only added; a grown
 * array is a new copy, published before the series count that needs it.
 * So the writer stores the series array and the count with release, and a
 * reader that loads the count with acquire and then the array sees every
 * series below the count complete. Values are stored and loaded whole
 * (relaxed atomics), so a reader sees an old or a new value, never a torn
 * one.
 */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "shm.h"

#define DROPPED_NAME "cairn_metrics_series_dropped_total"
#define FIRST_SLOTS  16
#define MAX_LABELS   16

struct series {
    uint64_t hash;
    char *key;        /* owned: the label values, each NUL-terminated */
    double value;     /* a counter's or gauge's value, a histogram's sum */
    uint64_t *counts; /* owned, histogram only: per bucket, the last is +Inf */
};

struct cairn_metric {
    struct cairn_metric *next; /* the registry's next family */
    struct cairn_metrics *reg; /* to count dropped series */
    enum cairn_metric_type type;
    char *name, *help; /* owned */
    char **labels;     /* owned, nlabels names */
    size_t nlabels;
    double *buckets; /* owned, nbuckets upper bounds */
    size_t nbuckets;
    struct series *series; /* owned, nseries used of cap */
    size_t nseries, cap;
    uint32_t *slots; /* owned: series index + 1, 0 = free; NULL without labels */
    size_t nslots;   /* a power of two, at least 2 * nseries */
};

struct cairn_metrics {
    struct cairn_metric *first, *last; /* owned, in the order added */
    struct cairn_metric *dropped;      /* one of them */
    struct cairn_arena *arena;         /* where it all lives, or NULL: the heap */
    size_t max_series;                 /* per family */
};

/* Memory for the registry: zeroed; in the arena nothing is freed. */
static void *mem_alloc(const struct cairn_metrics *reg, size_t n)
{
    return reg->arena != NULL ? cairn_arena_alloc(reg->arena, n) : cairn_calloc(1, n);
}

static void mem_free(const struct cairn_metrics *reg, void *p)
{
    if (reg->arena == NULL)
        free(p);
}

static char *mem_strdup(const struct cairn_metrics *reg, const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(mem_alloc(reg, n), s, n);
}

/* Values that a reader in another process may load while they change. */
static double load_value(const double *p)
{
    double v;
    __atomic_load(p, &v, __ATOMIC_RELAXED);
    return v;
}

static void store_value(double *p, double v)
{
    __atomic_store(p, &v, __ATOMIC_RELAXED);
}

static uint64_t load_count(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

__attribute__((format(printf, 1, 2), noreturn)) static void misuse(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cairn: metrics: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* Metric names may contain ':' (reserved for recording rules), label
 * names may not: the exposition parser rejects it there. */
static bool valid_name(const char *s, bool colon)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || (colon && c == ':')))
            return false;
    }
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static const char *const type_names[] = {
    [CAIRN_METRIC_COUNTER] = "counter",
    [CAIRN_METRIC_GAUGE] = "gauge",
    [CAIRN_METRIC_HISTOGRAM] = "histogram",
};

static void check_family(const struct cairn_metrics *reg, enum cairn_metric_type type,
                         const char *name, const char *help, const char *const *labels,
                         const double *buckets, size_t nbuckets)
{
    if ((unsigned)type > CAIRN_METRIC_HISTOGRAM)
        misuse("unknown metric type %d", (int)type);
    if (!valid_name(name, true))
        misuse("invalid metric name \"%s\"", name ? name : "(null)");
    if (type == CAIRN_METRIC_COUNTER && !ends_with(name, "_total"))
        misuse("counter \"%s\" must be named *_total", name);
    if (help == NULL)
        misuse("%s has no help text", name);
    for (const struct cairn_metric *m = reg->first; m; m = m->next)
        if (strcmp(m->name, name) == 0)
            misuse("%s is added twice", name);
    for (size_t i = 0; labels && labels[i]; i++) {
        if (i == MAX_LABELS)
            misuse("%s: more than %d labels", name, MAX_LABELS);
        if (!valid_name(labels[i], false) || strncmp(labels[i], "__", 2) == 0)
            misuse("%s: invalid label name \"%s\"", name, labels[i]);
        if (type == CAIRN_METRIC_HISTOGRAM && strcmp(labels[i], "le") == 0)
            misuse("%s: \"le\" is the histogram's own label", name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(labels[i], labels[j]) == 0)
                misuse("%s: label \"%s\" is repeated", name, labels[i]);
    }
    if (type != CAIRN_METRIC_HISTOGRAM && (buckets || nbuckets))
        misuse("%s: only a histogram has buckets", name);
    if (nbuckets && buckets == NULL)
        misuse("%s: %zu buckets but no bounds", name, nbuckets);
    for (size_t i = 0; i < nbuckets; i++) {
        /* The +Inf bucket is always rendered; a finite bound keeps it unique. */
        double b = buckets[i];
        if (!isfinite(b) || (i > 0 && !(b > buckets[i - 1])))
            misuse("%s: bucket bounds must be finite and strictly increasing", name);
    }
}

static const char *value_at(const char *const *values, size_t i)
{
    return values && values[i] ? values[i] : "";
}

/* The stored length of a label value: at most CAIRN_METRICS_MAX_VALUE
 * bytes, cut before a UTF-8 continuation byte so that a truncated value
 * is still valid UTF-8 when the original was. */
static size_t value_len(const char *v)
{
    size_t n = strnlen(v, CAIRN_METRICS_MAX_VALUE + 1);
    if (n <= CAIRN_METRICS_MAX_VALUE)
        return n;
    n = CAIRN_METRICS_MAX_VALUE;
    while (n > 0 && ((unsigned char)v[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static uint64_t hash_values(size_t nlabels, const char *const *values)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < nlabels; i++) {
        const char *v = value_at(values, i);
        size_t len = value_len(v);
        for (size_t j = 0; j < len; j++)
            h = (h ^ (unsigned char)v[j]) * UINT64_C(1099511628211);
        /* A separator, so that ("ab", "") and ("a", "b") hash apart. */
        h = (h ^ 0xFF) * UINT64_C(1099511628211);
    }
    return h;
}

static bool key_equal(const char *key, size_t nlabels, const char *const *values)
{
    for (size_t i = 0; i < nlabels; i++) {
        const char *v = value_at(values, i);
        size_t len = value_len(v);
        /* strncmp, not memcmp: the stored value may be shorter than len. */
        if (strncmp(key, v, len) != 0 || key[len] != '\0')
            return false;
        key += len + 1;
    }
    return true;
}

static size_t free_slot(const struct cairn_metric *m, uint64_t hash)
{
    size_t mask = m->nslots - 1, i = hash & mask;
    while (m->slots[i] != 0)
        i = (i + 1) & mask;
    return i;
}

static void grow_slots(struct cairn_metric *m)
{
    /* The new table before the new size: a worker that dies in between
     * (the arena outlives it) leaves a table that matches its size. */
    uint32_t *slots = mem_alloc(m->reg, 2 * m->nslots * sizeof *slots);
    mem_free(m->reg, m->slots);
    m->slots = slots;
    m->nslots *= 2;
    for (size_t i = 0; i < m->nseries; i++)
        m->slots[free_slot(m, m->series[i].hash)] = (uint32_t)(i + 1);
}

/* A new series, complete before the count that shows it to readers. */
static struct series *new_series(struct cairn_metric *m, const char *const *values, uint64_t hash)
{
    if (m->nseries == m->cap) {
        struct series *grown = mem_alloc(m->reg, 2 * m->cap * sizeof *grown);
        memcpy(grown, m->series, m->cap * sizeof *grown);
        mem_free(m->reg, m->series);
        __atomic_store_n(&m->series, grown, __ATOMIC_RELEASE);
        m->cap *= 2;
    }
    size_t size = 0;
    for (size_t i = 0; i < m->nlabels; i++)
        size += value_len(value_at(values, i)) + 1;
    struct series *s = &m->series[m->nseries];
    s->hash = hash;
    s->key = mem_alloc(m->reg, size ? size : 1);
    s->value = 0;
    s->counts = m->type == CAIRN_METRIC_HISTOGRAM
                    ? mem_alloc(m->reg, (m->nbuckets + 1) * sizeof *s->counts)
                    : NULL;
    char *p = s->key;
    for (size_t i = 0; i < m->nlabels; i++) {
        const char *v = value_at(values, i);
        size_t len = value_len(v);
        memcpy(p, v, len);
        p[len] = '\0';
        p += len + 1;
    }
    __atomic_store_n(&m->nseries, m->nseries + 1, __ATOMIC_RELEASE);
    return s;
}

/* The series for these label values, created on first use; NULL when the
 * family is full, after counting the drop. */
static struct series *find_series(struct cairn_metric *m, const char *const *values)
{
    if (m->nlabels == 0)
        return &m->series[0];
    uint64_t hash = hash_values(m->nlabels, values);
    size_t mask = m->nslots - 1, i = hash & mask;
    for (uint32_t at; (at = m->slots[i]) != 0; i = (i + 1) & mask) {
        struct series *s = &m->series[at - 1];
        if (s->hash == hash && key_equal(s->key, m->nlabels, values))
            return s;
    }
    if (m->nseries == m->reg->max_series) {
        /* The dropped family itself fills up only with 4096 families;
         * counting that would recurse forever. */
        if (m != m->reg->dropped)
            cairn_metric_add(m->reg->dropped, (const char *const[]){m->name}, 1);
        return NULL;
    }
    if ((m->nseries + 1) * 2 > m->nslots) {
        grow_slots(m);
        i = free_slot(m, hash);
    }
    m->slots[i] = (uint32_t)(m->nseries + 1);
    return new_series(m, values, hash);
}

struct cairn_metrics *cairn_metrics_new(void)
{
    return cairn_metrics_new_in(NULL);
}

struct cairn_metrics *cairn_metrics_new_in(struct cairn_arena *arena)
{
    struct cairn_metrics *reg =
        arena != NULL ? cairn_arena_alloc(arena, sizeof *reg) : cairn_calloc(1, sizeof *reg);
    reg->arena = arena;
    reg->max_series = CAIRN_METRICS_MAX_SERIES;
    reg->dropped = cairn_metrics_add(
        reg, CAIRN_METRIC_COUNTER, DROPPED_NAME,
        "Label combinations not recorded because their family had reached its series limit.",
        (const char *const[]){"family", NULL}, NULL, 0);
    return reg;
}

static void free_family(struct cairn_metric *m)
{
    for (size_t i = 0; i < m->nseries; i++) {
        free(m->series[i].key);
        free(m->series[i].counts);
    }
    for (size_t i = 0; i < m->nlabels; i++)
        free(m->labels[i]);
    free(m->labels);
    free(m->series);
    free(m->slots);
    free(m->buckets);
    free(m->name);
    free(m->help);
    free(m);
}

void cairn_metrics_free(struct cairn_metrics *reg)
{
    if (reg == NULL || reg->arena != NULL) /* an arena lives as long as the processes */
        return;
    for (struct cairn_metric *m = reg->first, *next; m; m = next) {
        next = m->next;
        free_family(m);
    }
    free(reg);
}

struct cairn_metric *cairn_metrics_add(struct cairn_metrics *reg, enum cairn_metric_type type,
                                       const char *name, const char *help,
                                       const char *const *labels, const double *buckets,
                                       size_t nbuckets)
{
    check_family(reg, type, name, help, labels, buckets, nbuckets);
    struct cairn_metric *m = mem_alloc(reg, sizeof *m);
    m->reg = reg;
    m->type = type;
    m->name = mem_strdup(reg, name);
    m->help = mem_strdup(reg, help);
    while (labels && labels[m->nlabels])
        m->nlabels++;
    m->labels = mem_alloc(reg, (m->nlabels + 1) * sizeof *m->labels);
    for (size_t i = 0; i < m->nlabels; i++)
        m->labels[i] = mem_strdup(reg, labels[i]);
    m->nbuckets = nbuckets;
    m->buckets = mem_alloc(reg, (nbuckets + 1) * sizeof *m->buckets);
    if (nbuckets)
        memcpy(m->buckets, buckets, nbuckets * sizeof *buckets);
    if (m->nlabels == 0) {
        /* Its only series exists from the start, so a scrape shows 0
         * rather than nothing before the first event. */
        m->cap = 1;
        m->series = mem_alloc(reg, m->cap * sizeof *m->series);
        new_series(m, NULL, 0);
    } else {
        m->cap = FIRST_SLOTS / 2;
        m->series = mem_alloc(reg, m->cap * sizeof *m->series);
        m->nslots = FIRST_SLOTS;
        m->slots = mem_alloc(reg, m->nslots * sizeof *m->slots);
    }
    if (reg->last)
        reg->last->next = m;
    else
        reg->first = m;
    reg->last = m;
    return m;
}

/* Add the series of `src` (a family of the same name, maybe in another
 * process's arena) to `dst`. */
static void sum_family(struct cairn_metric *dst, const struct cairn_metric *src)
{
    size_t n = __atomic_load_n(&src->nseries, __ATOMIC_ACQUIRE);
    const struct series *series = __atomic_load_n(&src->series, __ATOMIC_ACQUIRE);
    for (size_t i = 0; i < n; i++) {
        const struct series *from = &series[i];
        const char *values[MAX_LABELS];
        const char *v = from->key;
        for (size_t k = 0; k < src->nlabels; k++, v += strlen(v) + 1)
            values[k] = v;
        struct series *to = find_series(dst, values);
        if (to == NULL)
            continue;
        to->value += load_value(&from->value);
        for (size_t b = 0; to->counts != NULL && b <= dst->nbuckets; b++)
            to->counts[b] += load_count(&from->counts[b]);
    }
}

bool cairn_metrics_in_arena(const struct cairn_metrics *reg)
{
    return reg->arena != NULL;
}

struct cairn_metrics *cairn_metrics_sum(struct cairn_metrics *const *regs, size_t n)
{
    struct cairn_metrics *sum = cairn_metrics_new();
    /* Each worker's families are capped: their union is bounded by that,
     * and a cap here would drop different series from scrape to scrape. */
    sum->max_series = SIZE_MAX;
    for (const struct cairn_metric *f = n > 0 ? regs[0]->first : NULL; f; f = f->next) {
        struct cairn_metric *out =
            f == regs[0]->dropped
                ? sum->dropped
                : cairn_metrics_add(sum, f->type, f->name, f->help, (const char *const *)f->labels,
                                    f->nbuckets > 0 ? f->buckets : NULL, f->nbuckets);
        for (size_t r = 0; r < n; r++)
            for (const struct cairn_metric *g = regs[r]->first; g; g = g->next)
                if (strcmp(g->name, f->name) == 0)
                    sum_family(out, g);
    }
    return sum;
}

static void require_type(const struct cairn_metric *m, bool ok, const char *what)
{
    if (!ok)
        misuse("%s: a %s cannot %s", m->name, type_names[m->type], what);
}

void cairn_metric_add(struct cairn_metric *m, const char *const *values, double by)
{
    require_type(m, m->type == CAIRN_METRIC_COUNTER || m->type == CAIRN_METRIC_GAUGE, "add");
    if (m->type == CAIRN_METRIC_COUNTER && !(by >= 0))
        misuse("%s: a counter cannot add %g", m->name, by);
    struct series *s = find_series(m, values);
    if (s)
        store_value(&s->value, s->value + by);
}

void cairn_metric_set(struct cairn_metric *m, const char *const *values, double v)
{
    require_type(m, m->type == CAIRN_METRIC_GAUGE, "set");
    struct series *s = find_series(m, values);
    if (s)
        store_value(&s->value, v);
}

void cairn_metric_observe(struct cairn_metric *m, const char *const *values, double v)
{
    require_type(m, m->type == CAIRN_METRIC_HISTOGRAM, "observe");
    struct series *s = find_series(m, values);
    if (s == NULL)
        return;
    /* Bucket lists are short (about a dozen bounds), so a scan beats a
     * binary search. NaN is <= no bound and lands in +Inf, as in the Go
     * client. */
    size_t b = 0;
    while (b < m->nbuckets && !(v <= m->buckets[b]))
        b++;
    __atomic_store_n(&s->counts[b], s->counts[b] + 1, __ATOMIC_RELAXED);
    store_value(&s->value, s->value + v);
}

/* Rendering: a growing text buffer. */

struct out {
    char *p;
    size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        while (o->len + n + 1 > o->cap)
            o->cap *= 2;
        o->p = cairn_realloc(o->p, o->cap);
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* HELP text escapes backslash and newline; label values also escape the
 * double quote (exposition format 0.0.4). */
static void put_escaped(struct out *o, const char *s, bool quote)
{
    for (const char *run = s;; s++) {
        const char *esc = NULL;
        switch (*s) {
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '"': esc = quote ? "\\\"" : NULL; break;
        case '\0': put(o, run, (size_t)(s - run)); return;
        default: break;
        }
        if (esc) {
            put(o, run, (size_t)(s - run));
            put_str(o, esc);
            run = s + 1;
        }
    }
}

/* Integral values of magnitude below 1e15 print as integers; others take
 * the fewest significant digits (15 to 17) that read back as the same
 * double, so 0.1 prints as "0.1" rather than %.17g's 0.10000000000000001. */
static const char *format_number(char *buf, size_t len, double v)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v) {
        snprintf(buf, len, "%" PRId64, (int64_t)v);
        return buf;
    }
    for (int prec = 15; prec < 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return buf;
    }
    snprintf(buf, len, "%.17g", v);
    return buf;
}

static void put_number(struct out *o, double v)
{
    char buf[32];
    put_str(o, format_number(buf, sizeof buf, v));
}

/* name{label="value",...,le="bound"} value */
static void put_sample(struct out *o, const struct cairn_metric *m, const char *suffix,
                       const struct series *s, const char *le, double v)
{
    put_str(o, m->name);
    put_str(o, suffix);
    if (m->nlabels || le) {
        const char *value = s->key;
        put_str(o, "{");
        for (size_t i = 0; i < m->nlabels; i++) {
            put_str(o, i ? "," : "");
            put_str(o, m->labels[i]);
            put_str(o, "=\"");
            put_escaped(o, value, true);
            put_str(o, "\"");
            value += strlen(value) + 1;
        }
        if (le) {
            put_str(o, m->nlabels ? ",le=\"" : "le=\"");
            put_str(o, le);
            put_str(o, "\"");
        }
        put_str(o, "}");
    }
    put_str(o, " ");
    put_number(o, v);
    put_str(o, "\n");
}

static void put_histogram(struct out *o, const struct cairn_metric *m, const struct series *s)
{
    uint64_t total = 0;
    char le[32];
    for (size_t b = 0; b < m->nbuckets; b++) {
        total += load_count(&s->counts[b]);
        put_sample(o, m, "_bucket", s, format_number(le, sizeof le, m->buckets[b]), (double)total);
    }
    total += load_count(&s->counts[m->nbuckets]);
    put_sample(o, m, "_bucket", s, "+Inf", (double)total);
    put_sample(o, m, "_sum", s, NULL, load_value(&s->value));
    put_sample(o, m, "_count", s, NULL, (double)total);
}

char *cairn_metrics_render(const struct cairn_metrics *reg, size_t *len)
{
    struct out o = {.cap = 4096};
    o.p = cairn_malloc(o.cap);
    o.p[0] = '\0';
    for (const struct cairn_metric *m = reg->first; m; m = m->next) {
        put_str(&o, "# HELP ");
        put_str(&o, m->name);
        put_str(&o, " ");
        put_escaped(&o, m->help, false);
        put_str(&o, "\n# TYPE ");
        put_str(&o, m->name);
        put_str(&o, " ");
        put_str(&o, type_names[m->type]);
        put_str(&o, "\n");
        for (size_t i = 0; i < m->nseries; i++) {
            if (m->type == CAIRN_METRIC_HISTOGRAM)
                put_histogram(&o, m, &m->series[i]);
            else
                put_sample(&o, m, "", &m->series[i], NULL, load_value(&m->series[i].value));
        }
    }
    if (len)
        *len = o.len;
    return o.p;
}
