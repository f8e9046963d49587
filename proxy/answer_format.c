/*
 * answer_format.c — the format checks (see answer_format.h). What each
 * format value means here (tests/validate/README.md says the same):
 *
 *   JSON           the whole answer, or the content of a fenced block (of
 *                  any info string), is one JSON object or array that the
 *                  strict parser accepts, nested at most json_depth deep.
 *                  A bare number or string is not what a JSON format asks
 *                  for; a fence left open (a cut answer) is read to the end
 *                  and fails.
 *   XML            the whole answer, or a fenced block, starts with '<' and
 *                  is a well-formed XML document by expat (one root element;
 *                  external entities are never loaded).
 *   Tabular        a Markdown table outside code: a header row with '|', a
 *                  separator row of '|', '-' and ':', and a row with '|'
 *                  after it; or a "tables" pattern (an HTML table, an
 *                  ASCII-art table, three tab-separated rows).
 *   Enumeration    at least two list items outside code: lines starting
 *                  with a bullet (- * + • ◦ ▪ ‣ · –) or a number or letter
 *                  marker ("1.", "2)", "(3)", "a)", "b.", "1、", "①").
 *   Markdown       at least one Markdown construct ("markdown" patterns:
 *                  headings, emphasis, lists, links, images, block quotes,
 *                  inline code) outside code, a fenced block or a table.
 *   Latex          at least one "latex" pattern anywhere, code included:
 *                  $$…$$, \[…\], \(…\), \begin{…}, inline $…$ that is not a
 *                  price, or a common command (\frac, \sqrt, \alpha, …).
 *   MCQAnswer      a "mcq" pattern outside code states a choice: the answer
 *                  is only the choice ("B", "(B)", "**C**"), starts with one
 *                  ("B) Paris", "C. 42"), or names it ("Answer: B", "The
 *                  correct answer is (C)", "答案是B", "Ответ: B"); the two
 *                  ends of the answer are searched first (see ends_of).
 *   ChainOfThought reasoning before a conclusion: the last "conclusion"
 *                  phrase outside code ("Therefore", "So the answer is",
 *                  "Final answer:", "因此", "Donc") comes after at least
 *                  min_steps steps, a step being a sentence or a line of
 *                  prose, whichever counts more ("Step 1: x = 2" lines and
 *                  equations without full stops are steps too).
 */
#include "answer_format.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>

#include "alloc.h"
#include "json_strict.h"
#include "pattern.h"

#define FORMAT_MAX_STEPS 20
#define FORMAT_HEAD      512
#define FORMAT_TAIL      1024

/* A pattern list, each pattern compiled on its own. Joined into one
 * alternation (as the annotator's rules are), these lists would leave
 * PCRE2 nothing to skip ahead by: they start with a letter, a bracket, a
 * word in any of twenty languages, or at a line start, and an alternation
 * of "^…" with anything else is no longer anchored, so it is tried at every
 * byte (measured: the three "tables" patterns cost 0.2 us each on 4 KB and
 * over 20 us joined). */
struct set {
    struct cairn_pattern **p; /* owned */
    size_t n;
};

struct cairn_formats {
    struct set markdown, latex, tables, mcq, conclusion;
    int min_steps;
    uint32_t groups;
    const struct cairn_sentence_rules *sentences;
};

/* The values with a check, and what the model is told when one is missed. */
static const struct {
    const char *value;
    const char *feedback;
} formats[] = {
    {"JSON", "was not valid JSON; answer again with only valid JSON."},
    {"XML", "was not well-formed XML; answer again with only well-formed XML."},
    {"Tabular", "had no table; answer again with the answer as a Markdown table."},
    {"Enumeration", "was not a list; answer again as a list of items, one per line."},
    {"Markdown", "was plain text; answer again formatted with Markdown."},
    {"Latex", "had no LaTeX; answer again writing the mathematics in LaTeX."},
    {"MCQAnswer", "did not state a choice; answer again stating the letter of the correct "
                  "option, e.g. \"Answer: B\"."},
    {"ChainOfThought", "did not reason step by step to a conclusion; answer again reasoning step "
                       "by step, then give the conclusion after \"Therefore\"."},
};

bool cairn_format_known(const char *value)
{
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
        if (strcmp(formats[i].value, value) == 0)
            return true;
    return false;
}

const char *cairn_format_feedback(const char *value)
{
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
        if (strcmp(formats[i].value, value) == 0)
            return formats[i].feedback;
    return "did not have the format asked for; answer again in that format.";
}

/* ---- loading ---------------------------------------------------------- */

/* Compile the pattern list `key` of `obj`, one pattern at a time. */
static int compile_set(const cJSON *obj, const char *key, const char *path, struct set *set,
                       uint32_t *groups, char *why, size_t whylen)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, key);
    char where[160];
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) < 1) {
        snprintf(why, whylen, "%s.%s: must be a non-empty array of patterns", path, key);
        return -1;
    }
    set->p = cairn_calloc((size_t)cJSON_GetArraySize(list), sizeof(*set->p));
    for (const cJSON *e = list->child; e != NULL; e = e->next) {
        snprintf(where, sizeof(where), "%s.%s[%zu]", path, key, set->n);
        if (!cJSON_IsString(e) || e->valuestring[0] == '\0') {
            snprintf(why, whylen, "%s: must be a non-empty string", where);
            return -1;
        }
        struct cairn_pattern *p =
            cairn_pattern_compile_one(e->valuestring, NULL, where, why, whylen);
        if (p == NULL)
            return -1;
        set->p[set->n++] = p;
        if (cairn_pattern_groups(p) > *groups)
            *groups = cairn_pattern_groups(p);
    }
    return 0;
}

struct cairn_formats *cairn_formats_load(const cJSON *obj, const char *path,
                                         const struct cairn_sentence_rules *sentences, char *why,
                                         size_t whylen)
{
    static const char *const keys[] = {"markdown",   "latex",     "tables",  "mcq",
                                       "conclusion", "min_steps", "comment", NULL};
    if (cairn_pattern_check_object(obj, keys, path, why, whylen) < 0)
        return NULL;
    struct cairn_formats *f = cairn_calloc(1, sizeof(*f));
    f->sentences = sentences;
    f->groups = 1;
    if (compile_set(obj, "markdown", path, &f->markdown, &f->groups, why, whylen) < 0 ||
        compile_set(obj, "latex", path, &f->latex, &f->groups, why, whylen) < 0 ||
        compile_set(obj, "tables", path, &f->tables, &f->groups, why, whylen) < 0 ||
        compile_set(obj, "conclusion", path, &f->conclusion, &f->groups, why, whylen) < 0 ||
        compile_set(obj, "mcq", path, &f->mcq, &f->groups, why, whylen) < 0)
        goto fail;
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(obj, "min_steps");
    if (!cJSON_IsNumber(steps) || steps->valuedouble != (int)steps->valuedouble ||
        steps->valuedouble < 1 || steps->valuedouble > FORMAT_MAX_STEPS) {
        snprintf(why, whylen, "%s.min_steps: must be an integer from 1 to %d", path,
                 FORMAT_MAX_STEPS);
        goto fail;
    }
    f->min_steps = (int)steps->valuedouble;
    return f;
fail:
    cairn_formats_free(f);
    return NULL;
}

void cairn_formats_free(struct cairn_formats *f)
{
    if (f == NULL)
        return;
    struct set *sets[] = {&f->markdown, &f->latex, &f->tables, &f->mcq, &f->conclusion};
    for (size_t k = 0; k < sizeof(sets) / sizeof(sets[0]); k++) {
        for (size_t i = 0; i < sets[k]->n; i++)
            cairn_pattern_free(sets[k]->p[i]);
        free(sets[k]->p);
    }
    free(f);
}

/* ---- helpers ---------------------------------------------------------- */

static void trim(const char *s, size_t *from, size_t *to)
{
    while (*from < *to && isspace((unsigned char)s[*from]))
        (*from)++;
    while (*to > *from && isspace((unsigned char)s[*to - 1]))
        (*to)--;
}

/* The stretches of text outside fenced blocks: gap i runs from the end of
 * fence i - 1 to the opening of fence i. */
static size_t gap_start(const struct cairn_answer *a, size_t i)
{
    return i == 0 ? 0 : a->fences[i - 1].end;
}

static size_t gap_end(const struct cairn_answer *a, size_t i)
{
    return i < a->nfences ? a->fences[i].open : a->len;
}

/* The first gap that ends after `from` (a binary search: an answer may
 * have thousands of fences, and the phrase searches below resume often). */
static size_t first_gap(const struct cairn_answer *a, size_t from)
{
    size_t lo = 0, hi = a->nfences;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (gap_end(a, mid) <= from)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* A match of `p` outside code within text[from..to) (both at line
 * boundaries, so that ^ and $ keep their meaning). */
static bool find_one(const struct cairn_pattern *p, const struct cairn_answer *a, size_t from,
                     size_t to, struct cairn_match *m)
{
    for (size_t g = first_gap(a, from); g <= a->nfences; g++) {
        size_t s = gap_start(a, g), e = gap_end(a, g) < to ? gap_end(a, g) : to;
        if (s >= to)
            break;
        if (e <= from || s >= e)
            continue;
        if (cairn_pattern_find(p, a->text, e, s > from ? s : from, m))
            return true;
    }
    return false;
}

/* The start of the character after the one at `at`. */
static size_t char_after(const struct cairn_answer *a, size_t at)
{
    at++;
    while (at < a->len && ((unsigned char)a->text[at] & 0xC0) == 0x80)
        at++;
    return at;
}

/* Whether some pattern of `set` matches outside code in text[from..to). */
static bool find_outside(const struct set *set, const struct cairn_answer *a, size_t from,
                         size_t to, struct cairn_match *m)
{
    for (size_t i = 0; i < set->n; i++)
        if (find_one(set->p[i], a, from, to, m))
            return true;
    return false;
}

/* The start of the last match of any pattern of `set` outside code within
 * text[from..to), or SIZE_MAX. */
static size_t find_last_outside(const struct set *set, const struct cairn_answer *a, size_t from,
                                size_t to, struct cairn_match *m)
{
    size_t last = SIZE_MAX;
    for (size_t i = 0; i < set->n; i++) {
        /* Only a match past the latest one so far can move it; matching
         * starts on a character boundary (PCRE2 does not check UTF-8). */
        size_t at = last == SIZE_MAX ? from : char_after(a, last);
        while (at < to && find_one(set->p[i], a, at, to, m)) {
            size_t start = cairn_pattern_start(m);
            last = last == SIZE_MAX || start > last ? start : last;
            at = cairn_pattern_end(m) > start ? cairn_pattern_end(m) : char_after(a, start);
        }
    }
    return last;
}

/* Where phrases are looked for first: the first FORMAT_HEAD and the last
 * FORMAT_TAIL bytes, widened to whole lines. A choice is stated, and a
 * conclusion drawn, at the start or the end of an answer: an answer that
 * has them costs a scan of its two ends, whatever its length; the middle
 * is read only when both ends miss. */
struct ends {
    size_t head_end, tail_start;
};

static struct ends ends_of(const struct cairn_answer *a)
{
    const char *s = a->text;
    struct ends w = {a->len < FORMAT_HEAD ? a->len : FORMAT_HEAD,
                     a->len > FORMAT_TAIL ? a->len - FORMAT_TAIL : 0};
    const char *nl = memchr(s + w.head_end, '\n', a->len - w.head_end);
    w.head_end = nl ? (size_t)(nl - s) + 1 : a->len;
    while (w.tail_start > 0 && s[w.tail_start - 1] != '\n')
        w.tail_start--;
    if (w.tail_start < w.head_end)
        w.tail_start = w.head_end;
    return w;
}

/* Call `check` on each candidate text: the whole answer when it starts
 * with one of `leads`, then each fenced block's content that does. @return 1 as
 * soon as one passes, 0 when some failed (the first failure's message is
 * in `why`), -1 when there was no candidate. */
static int each_candidate(const struct cairn_answer *a, const char *leads,
                          bool (*check)(const char *, size_t, int, char *, size_t), int depth,
                          char *why, size_t whylen)
{
    int rc = -1;
    char msg[128];
    for (size_t i = 0; i <= a->nfences; i++) {
        size_t s = i == 0 ? 0 : a->fences[i - 1].body;
        size_t e = i == 0 ? a->len : a->fences[i - 1].body_end;
        trim(a->text, &s, &e);
        if (s == e || a->text[s] == '\0' || strchr(leads, a->text[s]) == NULL)
            continue;
        if (check(a->text + s, e - s, depth, msg, sizeof(msg)))
            return 1;
        if (rc < 0)
            snprintf(why, whylen, "%s", msg);
        rc = 0;
    }
    return rc;
}

/* ---- JSON and XML ----------------------------------------------------- */

static bool json_ok(const char *s, size_t len, int depth, char *why, size_t whylen)
{
    cJSON *root = cairn_json_parse_strict(s, len, depth, why, whylen);
    bool ok = root != NULL && (cJSON_IsObject(root) || cJSON_IsArray(root));
    if (root != NULL && !ok)
        snprintf(why, whylen, "a bare value, not an object or array");
    cJSON_Delete(root);
    return ok;
}

static bool xml_ok(const char *s, size_t len, int depth, char *why, size_t whylen)
{
    (void)depth;
    if (len > INT_MAX) {
        snprintf(why, whylen, "too long");
        return false;
    }
    XML_Parser p = XML_ParserCreate("UTF-8");
    if (p == NULL) {
        snprintf(why, whylen, "no memory for the XML parser");
        return false;
    }
    bool ok = XML_Parse(p, s, (int)len, 1) == XML_STATUS_OK;
    if (!ok)
        snprintf(why, whylen, "line %lu: %s", (unsigned long)XML_GetCurrentLineNumber(p),
                 XML_ErrorString(XML_GetErrorCode(p)));
    XML_ParserFree(p);
    return ok;
}

static int check_parsed(const struct cairn_answer *a, const char *leads,
                        bool (*check)(const char *, size_t, int, char *, size_t), int depth,
                        const char *name, char *observed, size_t obslen)
{
    char why[128] = "";
    int rc = each_candidate(a, leads, check, depth, why, sizeof(why));
    if (rc < 0)
        snprintf(observed, obslen, "no %s", name);
    else if (rc == 0)
        snprintf(observed, obslen, "not valid %s (%s)", name, why);
    return rc > 0;
}

/* ---- tables and lists ------------------------------------------------- */

static size_t next_line(const char *s, size_t len, size_t i, size_t *end)
{
    const char *nl = memchr(s + i, '\n', len - i);
    *end = nl ? (size_t)(nl - s) : len;
    return nl ? *end + 1 : len;
}

static bool has_pipe(const char *s, size_t from, size_t to)
{
    return memchr(s + from, '|', to - from) != NULL;
}

/* A delimiter row: only '|', '-', ':' and blanks, with a '-' and a '|'. */
static bool is_delimiter_row(const char *s, size_t from, size_t to)
{
    bool dash = false, pipe = false;
    for (size_t i = from; i < to; i++) {
        char c = s[i];
        if (c == '-')
            dash = true;
        else if (c == '|')
            pipe = true;
        else if (c != ':' && c != ' ' && c != '\t' && c != '\r')
            return false;
    }
    return dash && pipe;
}

/* A Markdown table in s[from..to): header, delimiter row, a body row. */
static bool markdown_table(const char *s, size_t from, size_t to)
{
    size_t prev_s = 0, prev_e = 0, e;
    bool have_prev = false;
    for (size_t i = from; i < to;) {
        size_t next = next_line(s, to, i, &e);
        if (have_prev && is_delimiter_row(s, i, e) && has_pipe(s, prev_s, prev_e) &&
            !is_delimiter_row(s, prev_s, prev_e) && next < to) {
            size_t body_e;
            next_line(s, to, next, &body_e);
            if (has_pipe(s, next, body_e) && !is_delimiter_row(s, next, body_e))
                return true;
        }
        prev_s = i;
        prev_e = e;
        have_prev = true;
        i = next;
    }
    return false;
}

static size_t list_items(const struct cairn_answer *a, size_t from, size_t to, size_t cap)
{
    size_t n = 0, e;
    for (size_t i = from; i < to && n < cap;) {
        size_t next = next_line(a->text, to, i, &e), p = i;
        while (p < e && (a->text[p] == ' ' || a->text[p] == '\t'))
            p++;
        n += p < e && cairn_answer_list_marker(a->text + p, e - p) > 0;
        i = next;
    }
    return n;
}

/* ---- the checks -------------------------------------------------------- */

static int check_tabular(const struct cairn_formats *f, const struct cairn_answer *a,
                         struct cairn_match *m, char *observed, size_t obslen)
{
    for (size_t g = 0; g <= a->nfences; g++)
        if (markdown_table(a->text, gap_start(a, g), gap_end(a, g)))
            return 1;
    if (find_outside(&f->tables, a, 0, a->len, m))
        return 1;
    snprintf(observed, obslen, "no table");
    return 0;
}

static int check_enumeration(const struct cairn_answer *a, char *observed, size_t obslen)
{
    size_t n = 0;
    for (size_t g = 0; g <= a->nfences && n < 2; g++)
        n += list_items(a, gap_start(a, g), gap_end(a, g), 2);
    if (n >= 2)
        return 1;
    snprintf(observed, obslen, n == 1 ? "1 list item" : "no list");
    return 0;
}

static int check_markdown(const struct cairn_formats *f, const struct cairn_answer *a,
                          struct cairn_match *m, char *observed, size_t obslen)
{
    if (a->nfences > 0 || find_outside(&f->markdown, a, 0, a->len, m))
        return 1;
    for (size_t g = 0; g <= a->nfences; g++)
        if (markdown_table(a->text, gap_start(a, g), gap_end(a, g)))
            return 1;
    snprintf(observed, obslen, "plain text");
    return 0;
}

/* Lines of prose (with a letter or digit) outside code before `upto`. */
static size_t prose_lines(const struct cairn_answer *a, size_t upto, size_t cap)
{
    size_t n = 0, e;
    for (size_t g = 0; g <= a->nfences && n < cap; g++) {
        size_t s = gap_start(a, g), end = gap_end(a, g) < upto ? gap_end(a, g) : upto;
        for (size_t i = s; i < end && n < cap;) {
            size_t next = next_line(a->text, end, i, &e);
            for (size_t k = i; k < e; k++) {
                if (isalnum((unsigned char)a->text[k]) || (unsigned char)a->text[k] >= 0x80) {
                    n++;
                    break;
                }
            }
            i = next;
        }
    }
    return n;
}

static int check_cot(const struct cairn_formats *f, const struct cairn_answer *a,
                     struct cairn_match *m, char *observed, size_t obslen)
{
    struct ends w = ends_of(a);
    size_t last = find_last_outside(&f->conclusion, a, w.tail_start, a->len, m);
    if (last == SIZE_MAX)
        last = find_last_outside(&f->conclusion, a, 0, w.tail_start, m);
    if (last == SIZE_MAX) {
        snprintf(observed, obslen, "no conclusion");
        return 0;
    }
    size_t need = (size_t)f->min_steps;
    size_t steps = prose_lines(a, last, need);
    if (steps < need) {
        size_t sentences = cairn_answer_sentences(a, f->sentences, last);
        steps = sentences > steps ? sentences : steps;
    }
    if (steps >= need)
        return 1;
    snprintf(observed, obslen, "%zu step%s before the conclusion", steps, steps == 1 ? "" : "s");
    return 0;
}

int cairn_format_check(const struct cairn_formats *f, const char *value,
                       const struct cairn_answer *a, int json_depth, char *observed, size_t obslen)
{
    if (strcmp(value, "JSON") == 0)
        return check_parsed(a, "{[", json_ok, json_depth, "JSON", observed, obslen);
    if (strcmp(value, "XML") == 0)
        return check_parsed(a, "<", xml_ok, 0, "XML", observed, obslen);
    if (strcmp(value, "Enumeration") == 0)
        return check_enumeration(a, observed, obslen);
    if (!cairn_format_known(value))
        return -1;
    struct cairn_match m = {pcre2_match_data_create(f->groups, NULL), NULL, NULL, NULL};
    if (m.md == NULL) {
        snprintf(observed, obslen, "not checked (no memory)");
        return 1;
    }
    int rc = 1;
    if (strcmp(value, "Tabular") == 0) {
        rc = check_tabular(f, a, &m, observed, obslen);
    } else if (strcmp(value, "Markdown") == 0) {
        rc = check_markdown(f, a, &m, observed, obslen);
    } else if (strcmp(value, "Latex") == 0) {
        rc = 0;
        for (size_t i = 0; i < f->latex.n && !rc; i++)
            rc = cairn_pattern_find(f->latex.p[i], a->text, a->len, 0, &m);
        if (!rc)
            snprintf(observed, obslen, "no LaTeX");
    } else if (strcmp(value, "MCQAnswer") == 0) {
        struct ends w = ends_of(a);
        size_t from[3] = {0, w.tail_start, w.head_end}, to[3] = {w.head_end, a->len, w.tail_start};
        rc = 0;
        for (size_t k = 0; k < 3 && !rc; k++)
            rc = find_outside(&f->mcq, a, from[k], to[k], &m);
        if (!rc)
            snprintf(observed, obslen, "no choice stated");
    } else if (strcmp(value, "ChainOfThought") == 0) {
        rc = check_cot(f, a, &m, observed, obslen);
    }
    pcre2_match_data_free(m.md);
    return rc;
}
