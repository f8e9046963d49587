/*
 * annotator.c — the rule annotator: infers task, domain, format, code_type,
 * lang and the length markers from a chat conversation, with rules that are
 * all data (rules/annotator.json, rules/languages.json, rules/lengths.json,
 * rules/textcat.conf) compiled once at load time (see annotator.h).
 *
 * What a request costs, and why it stays in microseconds whatever its size:
 *   - the last user turn is read as its first ANNOTATE_HEAD and last
 *     ANNOTATE_TAIL bytes (instructions sit at the start or the end of a
 *     prompt: "Summarize in 3 sentences: <text>", "<text> Answer in French");
 *     earlier turns only as their first ANNOTATE_CONTEXT bytes, and only the
 *     ANNOTATE_TURNS messages before it; system messages likewise;
 *   - instruction patterns scan at most ANNOTATE_SCAN_HEAD + ANNOTATE_SCAN_TAIL
 *     bytes of prose, code-type patterns at most ANNOTATE_CODE_SCAN bytes of
 *     code, the language identifier the first "max_bytes" of prose
 *     (languages.json);
 *   - each rule is one JIT-compiled alternation of its patterns: one scan.
 *
 * Decisions (the last user turn decides, earlier turns give context):
 *   - code evidence: code (fenced or not) in the last user turn or in the
 *     turns before it, a "code.context" word or a named programming
 *     language in the last user turn; rules with "requires": "code" fire
 *     only with it, and a winning task rule that requires code makes the
 *     request a code task;
 *   - code_type, first that answers: a {CODE} captured by the winning task
 *     rule (the target of "port this to Rust"), the first fence's info
 *     string, a shebang, the best syntax score of the turn's code (a tie
 *     gives nothing), a language named in the prose ("code_mentions", then
 *     "code_names"), then the same for the turns before; only set for code
 *     tasks or when there is code;
 *   - lang, first that answers: a {LANG} captured by the winning task rule
 *     (the target of a translation), an explicit instruction ("answer in
 *     Spanish") in the last user turn or the system prompt, then the
 *     identified language of the last user turn's prose (of the previous
 *     user turn when the last one is too short to tell);
 *   - format and lengths: the last user turn, then the system prompt;
 *   - task and domain: the last user turn (domain rules with "if_task"
 *     follow the task and take precedence over keyword scores).
 * A tag with no evidence gets no value.
 */
#include "annotator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "code_types.h"
#include "langid.h"
#include "lengths.h"
#include "pattern.h"
#include "prompt_text.h"
#include "rules_files.h"

#define ANNOTATE_HEAD        (4 << 10)
#define ANNOTATE_TAIL        (2 << 10)
#define ANNOTATE_CONTEXT     (4 << 10)
#define ANNOTATE_TURNS       8
#define ANNOTATE_SCAN_HEAD   512
#define ANNOTATE_SCAN_TAIL   512
#define ANNOTATE_CODE_SCAN   1024
#define ANNOTATE_MAX_SCORE   20 /* matches counted per rule in "most" mode */
#define ANNOTATE_SHORT_PROSE 24 /* bytes: below, also look at the previous user turn */

#define MAX_NAMES 64 /* languages in "names" */

/* One rule of a tag: its value, when it fires. */
struct rule {
    char value[CAIRN_MARKER_VALUE_MAX];
    struct cairn_pattern *re;     /* owned; NULL for a rule that only follows the task */
    struct cairn_pattern *unless; /* owned; a match here vetoes the rule */
    int min_matches;
    bool needs_code;
    char (*if_task)[CAIRN_MARKER_VALUE_MAX]; /* owned */
    size_t nif_task;
};

/* The rules of one enum tag (task, domain, format). */
struct ruleset {
    bool most; /* highest match count wins, else the first rule that fires */
    int min_score;
    struct rule *rules; /* owned */
    size_t n;
};

struct cairn_annotator {
    const struct cairn_taxonomy *tx;
    /* annotator.json */
    struct cairn_pattern *code_context; /* owned */
    struct cairn_pattern *code_lines;   /* owned */
    int min_code_lines, min_syntax_score;
    struct cairn_code_types code_types;
    struct cairn_pattern *mentions; /* owned: {CODE} named as code in prose */
    struct cairn_pattern *bare;     /* owned: {CODE} anywhere in prose */
    struct cairn_names *code_names; /* owned: {CODE} words -> index in code_types */
    struct ruleset task, domain, format;
    /* languages.json */
    char langs[MAX_NAMES][CAIRN_MARKER_VALUE_MAX]; /* {LANG} word value i = langs[i] */
    size_t nlangs;
    struct cairn_names *lang_names;     /* owned */
    struct cairn_pattern *instructions; /* owned: "answer in {LANG}" */
    struct cairn_langid *langid;
    /* lengths.json */
    struct cairn_lengths *lengths;
    uint32_t groups;              /* ovector pairs the largest pattern needs */
    struct cairn_lookup lookup;   /* the three tables, for the callout */
    pcre2_match_context *context; /* owned: placeholder callout on `lookup` */
};

static void note_groups(struct cairn_annotator *a, const struct cairn_pattern *re)
{
    if (cairn_pattern_groups(re) > a->groups)
        a->groups = cairn_pattern_groups(re);
}

/* Optional pattern list `key` of object `obj`: NULL without error when the
 * key is absent. */
static int optional_list(const cJSON *obj, const char *key, const struct cairn_pattern_env *env,
                         const char *path, struct cairn_pattern **re, char *why, size_t whylen)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, key);
    char where[160];
    *re = NULL;
    if (list == NULL)
        return 0;
    snprintf(where, sizeof(where), "%s.%s", path, key);
    *re = cairn_pattern_compile_list(list, env, where, why, whylen);
    return *re ? 0 : -1;
}

/* What every rule object starts with: an object holding only `keys`,
 * whose "value" is a value of tag `tag` (its taxonomy spelling to out). */
static int rule_head(const struct cairn_annotator *a, const cJSON *j, const char *const *keys,
                     const char *tag, char out[CAIRN_MARKER_VALUE_MAX], const char *path, char *why,
                     size_t whylen)
{
    char where[160];
    if (cairn_pattern_check_object(j, keys, path, why, whylen) < 0)
        return -1;
    snprintf(where, sizeof(where), "%s.value", path);
    return cairn_taxonomy_rule_value(a->tx, tag, cJSON_GetObjectItemCaseSensitive(j, "value"), out,
                                     where, why, whylen);
}

static int load_rule(struct cairn_annotator *a, const char *key, struct rule *r, const cJSON *j,
                     const struct cairn_pattern_env *env, const char *path, char *why,
                     size_t whylen)
{
    static const char *const keys[] = {"value",   "patterns",    "unless",  "requires",
                                       "if_task", "min_matches", "comment", NULL};
    char where[160];
    if (rule_head(a, j, keys, key, r->value, path, why, whylen) < 0)
        return -1;
    if (optional_list(j, "patterns", env, path, &r->re, why, whylen) < 0 ||
        optional_list(j, "unless", NULL, path, &r->unless, why, whylen) < 0)
        return -1;
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(j, "requires");
    if (req != NULL && !(cJSON_IsString(req) && strcmp(req->valuestring, "code") == 0)) {
        snprintf(why, whylen, "%s.requires: the only requirement is \"code\"", path);
        return -1;
    }
    r->needs_code = req != NULL;
    const cJSON *min = cJSON_GetObjectItemCaseSensitive(j, "min_matches");
    r->min_matches = 1;
    if (min != NULL) {
        if (!cJSON_IsNumber(min) || min->valuedouble < 1 || min->valuedouble > 20 ||
            min->valuedouble != (int)min->valuedouble) {
            snprintf(why, whylen, "%s.min_matches: must be an integer from 1 to 20", path);
            return -1;
        }
        r->min_matches = (int)min->valuedouble;
    }
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(j, "if_task");
    if (tasks != NULL) {
        if (!cJSON_IsArray(tasks) || cJSON_GetArraySize(tasks) < 1 || strcmp(key, "task") == 0) {
            snprintf(why, whylen,
                     "%s.if_task: must be a non-empty array of task values "
                     "(not in task rules)",
                     path);
            return -1;
        }
        r->if_task = cairn_calloc((size_t)cJSON_GetArraySize(tasks), sizeof(*r->if_task));
        for (const cJSON *t = tasks->child; t != NULL; t = t->next, r->nif_task++) {
            snprintf(where, sizeof(where), "%s.if_task[%zu]", path, r->nif_task);
            if (cairn_taxonomy_rule_value(a->tx, "task", t, r->if_task[r->nif_task], where, why,
                                          whylen) < 0)
                return -1;
        }
    }
    if ((r->re == NULL) == (r->if_task == NULL)) {
        snprintf(why, whylen, "%s: needs either \"patterns\" or \"if_task\"", path);
        return -1;
    }
    note_groups(a, r->re);
    note_groups(a, r->unless);
    return 0;
}

static int load_ruleset(struct cairn_annotator *a, const char *key, struct ruleset *rs,
                        const cJSON *root, const struct cairn_pattern_env *env, char *why,
                        size_t whylen)
{
    static const char *const keys[] = {"mode", "min_score", "rules", "comment", NULL};
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    char path[96];
    if (!cJSON_IsObject(j)) {
        snprintf(why, whylen, "%s: must be an object {\"mode\", \"rules\"}", key);
        return -1;
    }
    if (cairn_pattern_check_keys(j, keys, key, why, whylen) < 0)
        return -1;
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(j, "mode");
    if (!cJSON_IsString(mode) ||
        (strcmp(mode->valuestring, "first") && strcmp(mode->valuestring, "most"))) {
        snprintf(why, whylen, "%s.mode: must be \"first\" or \"most\"", key);
        return -1;
    }
    rs->most = strcmp(mode->valuestring, "most") == 0;
    const cJSON *min = cJSON_GetObjectItemCaseSensitive(j, "min_score");
    rs->min_score = 1;
    if (min != NULL) {
        if (!rs->most || !cJSON_IsNumber(min) || min->valuedouble < 1 ||
            min->valuedouble > ANNOTATE_MAX_SCORE) {
            snprintf(why, whylen, "%s.min_score: an integer from 1 to %d, with mode \"most\"", key,
                     ANNOTATE_MAX_SCORE);
            return -1;
        }
        rs->min_score = (int)min->valuedouble;
    }
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(j, "rules");
    if (!cJSON_IsArray(rules) || cJSON_GetArraySize(rules) < 1) {
        snprintf(why, whylen, "%s.rules: must be a non-empty array", key);
        return -1;
    }
    rs->rules = cairn_calloc((size_t)cJSON_GetArraySize(rules), sizeof(*rs->rules));
    for (const cJSON *r = rules->child; r != NULL; r = r->next) {
        snprintf(path, sizeof(path), "%s.rules[%zu]", key, rs->n);
        rs->n++; /* counted before loading so that free() sees a half-loaded rule */
        if (load_rule(a, key, &rs->rules[rs->n - 1], r, env, path, why, whylen) < 0)
            return -1;
    }
    return 0;
}

static int load_code(struct cairn_annotator *a, const cJSON *root, char *why, size_t whylen)
{
    static const char *const keys[] = {"context",          "lines",   "min_lines",
                                       "min_syntax_score", "comment", NULL};
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "code");
    if (cairn_pattern_check_object(code, keys, "code", why, whylen) < 0)
        return -1;
    struct {
        const char *key;
        int *field;
    } nums[] = {{"min_lines", &a->min_code_lines}, {"min_syntax_score", &a->min_syntax_score}};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(code, nums[i].key);
        if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 20 ||
            v->valuedouble != (int)v->valuedouble) {
            snprintf(why, whylen, "code.%s: must be an integer from 1 to 20", nums[i].key);
            return -1;
        }
        *nums[i].field = (int)v->valuedouble;
    }
    if (optional_list(code, "context", NULL, "code", &a->code_context, why, whylen) < 0 ||
        optional_list(code, "lines", NULL, "code", &a->code_lines, why, whylen) < 0)
        return -1;
    note_groups(a, a->code_lines);

    if (cairn_code_types_load(&a->code_types, a->tx,
                              cJSON_GetObjectItemCaseSensitive(root, "code_types"), a->code_names,
                              why, whylen) < 0)
        return -1;
    if (a->code_types.groups > a->groups)
        a->groups = a->code_types.groups;
    cairn_names_seal(a->code_names);
    return 0;
}

static int load_languages(struct cairn_annotator *a, const cJSON *root, char *why, size_t whylen)
{
    static const char *const keys[] = {"names",    "instructions", "scripts",
                                       "identify", "comment",      NULL};
    if (cairn_pattern_check_object(root, keys, "", why, whylen) < 0)
        return -1;
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(root, "names");
    if (!cJSON_IsObject(names) || cJSON_GetArraySize(names) < 1 ||
        cJSON_GetArraySize(names) > MAX_NAMES) {
        snprintf(why, whylen,
                 "names: must be an object {\"<lang value>\": [names...]} of 1 to "
                 "%d languages",
                 MAX_NAMES);
        return -1;
    }
    char path[160];
    for (const cJSON *n = names->child; n != NULL; n = n->next) {
        snprintf(path, sizeof(path), "names.%s", n->string);
        cJSON key = {.type = cJSON_String, .valuestring = n->string};
        if (cairn_taxonomy_rule_value(a->tx, "lang", &key, a->langs[a->nlangs], path, why, whylen) <
                0 ||
            cairn_pattern_check_strings(n, path, why, whylen) < 0)
            return -1;
        for (const cJSON *v = n->child; v != NULL; v = v->next)
            cairn_names_add(a->lang_names, v->valuestring, (int)a->nlangs, false);
        a->nlangs++;
    }
    cairn_names_seal(a->lang_names);
    struct cairn_pattern_env env = {.lang = true};
    a->instructions = cairn_pattern_compile_list(
        cJSON_GetObjectItemCaseSensitive(root, "instructions"), &env, "instructions", why, whylen);
    note_groups(a, a->instructions);
    return a->instructions ? 0 : -1;
}

struct cairn_annotator *cairn_annotator_load(const struct cairn_taxonomy *tx, const char *rules_dir,
                                             char *err, size_t errlen)
{
    static const char *const keys[] = {"code",       "code_types", "code_mentions",
                                       "code_names", "task",       "domain",
                                       "format",     "comment",    NULL};
    struct cairn_annotator *a = cairn_calloc(1, sizeof(*a));
    a->tx = tx;
    a->lang_names = cairn_names_new();
    a->code_names = cairn_names_new();
    static const char *const base[3] = {"languages.json", "lengths.json", "annotator.json"};
    struct cairn_rules_files f;
    char why[768];
    int failed = -1; /* the file an error is about */
    if (cairn_rules_files_load(&f, rules_dir, base, 3, err, errlen) < 0)
        goto out;
    failed = 0;
    if (load_languages(a, f.root[0], why, sizeof(why)) < 0)
        goto out;
    a->langid = cairn_langid_load(tx, f.root[0], rules_dir, f.path[0], err, errlen);
    if (a->langid == NULL) {
        failed = -1; /* err is already complete */
        goto out;
    }
    a->lengths = cairn_lengths_load(tx, f.root[1], f.path[1], err, errlen);
    if (a->lengths == NULL) {
        failed = -1;
        goto out;
    }
    if (cairn_lengths_groups(a->lengths) > a->groups)
        a->groups = cairn_lengths_groups(a->lengths);
    failed = 2;
    if (cairn_pattern_check_object(f.root[2], keys, "", why, sizeof(why)) < 0 ||
        load_code(a, f.root[2], why, sizeof(why)) < 0)
        goto out;
    struct cairn_pattern_env mention_env = {.code = true};
    a->mentions =
        cairn_pattern_compile_list(cJSON_GetObjectItemCaseSensitive(f.root[2], "code_mentions"),
                                   &mention_env, "code_mentions", why, sizeof(why));
    if (a->mentions == NULL)
        goto out;
    note_groups(a, a->mentions);
    a->bare = cairn_pattern_compile_list(cJSON_GetObjectItemCaseSensitive(f.root[2], "code_names"),
                                         &mention_env, "code_names", why, sizeof(why));
    if (a->bare == NULL)
        goto out;
    note_groups(a, a->bare);
    struct cairn_pattern_env env = {.lang = true, .code = true};
    if (load_ruleset(a, "task", &a->task, f.root[2], &env, why, sizeof(why)) < 0 ||
        load_ruleset(a, "domain", &a->domain, f.root[2], NULL, why, sizeof(why)) < 0 ||
        load_ruleset(a, "format", &a->format, f.root[2], NULL, why, sizeof(why)) < 0)
        goto out;
    a->lookup =
        (struct cairn_lookup){cairn_lengths_numbers(a->lengths), a->lang_names, a->code_names};
    a->context = cairn_pattern_context(&a->lookup);
    failed = CAIRN_RULES_LOADED;
out:
    if (cairn_rules_files_finish(&f, failed, why, err, errlen) < 0) {
        cairn_annotator_free(a);
        return NULL;
    }
    return a;
}

static void free_ruleset(struct ruleset *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        cairn_pattern_free(rs->rules[i].re);
        cairn_pattern_free(rs->rules[i].unless);
        free(rs->rules[i].if_task);
    }
    free(rs->rules);
}

void cairn_annotator_free(struct cairn_annotator *a)
{
    if (a == NULL)
        return;
    cairn_pattern_free(a->code_context);
    cairn_pattern_free(a->code_lines);
    cairn_pattern_free(a->mentions);
    cairn_pattern_free(a->bare);
    cairn_pattern_free(a->instructions);
    cairn_code_types_free(&a->code_types);
    free_ruleset(&a->task);
    free_ruleset(&a->domain);
    free_ruleset(&a->format);
    cairn_langid_free(a->langid);
    cairn_lengths_free(a->lengths);
    cairn_names_free(a->lang_names);
    cairn_names_free(a->code_names);
    if (a->context != NULL)
        pcre2_match_context_free(a->context);
    free(a);
}

/* ---- per request ---------------------------------------------------- */

/* A text the rules read: the prose of a turn, bounded to its two ends. */
struct scan {
    const char *p;
    size_t len;
    char *owned; /* when head and tail had to be joined */
};

static void scan_of(struct scan *s, const struct prompt_text *pt)
{
    memset(s, 0, sizeof(*s));
    s->p = "";
    if (pt == NULL)
        return;
    if (pt->prose_len <= ANNOTATE_SCAN_HEAD + ANNOTATE_SCAN_TAIL) {
        s->p = pt->prose;
        s->len = pt->prose_len;
        return;
    }
    size_t h = ANNOTATE_SCAN_HEAD, t = pt->prose_len - ANNOTATE_SCAN_TAIL;
    while (h > 0 && ((unsigned char)pt->prose[h] & 0xC0) == 0x80)
        h--;
    while (t < pt->prose_len && ((unsigned char)pt->prose[t] & 0xC0) == 0x80)
        t++;
    s->owned = cairn_malloc(h + 1 + (pt->prose_len - t) + 1);
    memcpy(s->owned, pt->prose, h);
    s->owned[h] = '\n';
    memcpy(s->owned + h + 1, pt->prose + t, pt->prose_len - t);
    s->len = h + 1 + (pt->prose_len - t);
    s->owned[s->len] = '\0';
    s->p = s->owned;
}

/* What the rules of one request know besides the text. */
struct facts {
    bool code;        /* code evidence */
    const char *task; /* the task decided, or NULL */
};

struct verdict {
    const struct rule *rule;
    int lang; /* {LANG} captured by the rule's match, or -1 */
    int code; /* {CODE} captured, or -1 */
};

static bool in_list(const char *v, char (*list)[CAIRN_MARKER_VALUE_MAX], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v, list[i]) == 0)
            return true;
    return false;
}

/* Matches of rule `r` in `s` (up to cap), noting the first captures. */
static int rule_matches(const struct rule *r, const struct scan *s, int cap, struct cairn_match *md,
                        struct verdict *v)
{
    int n = 0;
    size_t at = 0;
    while (n < cap && cairn_pattern_find(r->re, s->p, s->len, at, md)) {
        if (v->lang < 0)
            v->lang = cairn_pattern_lang(md, s->p);
        if (v->code < 0)
            v->code = cairn_pattern_code(md, s->p);
        n++;
        at = cairn_pattern_end(md) > cairn_pattern_start(md) ? cairn_pattern_end(md)
                                                             : cairn_pattern_end(md) + 1;
    }
    return n;
}

/* Decide one tag from texts[0..n) in order: the first text where a rule
 * fires decides. */
static struct verdict decide(const struct ruleset *rs, const struct scan *texts, size_t n,
                             const struct facts *f, struct cairn_match *md)
{
    struct verdict best = {NULL, -1, -1};
    /* Rules that follow the task come before any keyword. */
    for (size_t i = 0; i < rs->n && f->task != NULL; i++)
        if (rs->rules[i].if_task && in_list(f->task, rs->rules[i].if_task, rs->rules[i].nif_task))
            return (struct verdict){&rs->rules[i], -1, -1};
    for (size_t t = 0; t < n; t++) {
        if (texts[t].len == 0)
            continue;
        int best_score = 0;
        for (size_t i = 0; i < rs->n; i++) {
            const struct rule *r = &rs->rules[i];
            if (r->re == NULL || (r->needs_code && !f->code))
                continue;
            struct verdict v = {r, -1, -1};
            int cap = rs->most ? ANNOTATE_MAX_SCORE : r->min_matches;
            int score = rule_matches(r, &texts[t], cap, md, &v);
            if (score < r->min_matches || score < rs->min_score || score <= best_score)
                continue;
            if (r->unless != NULL && cairn_pattern_find(r->unless, texts[t].p, texts[t].len, 0, md))
                continue;
            best = v;
            best_score = score;
            if (!rs->most)
                return best;
        }
        if (best.rule != NULL)
            return best;
    }
    return best;
}

/* The best syntax score over the first ANNOTATE_CODE_SCAN bytes of code. */
static int syntax_type(const struct cairn_annotator *a, const char *code, size_t len,
                       struct cairn_match *md)
{
    len = len < ANNOTATE_CODE_SCAN ? len : ANNOTATE_CODE_SCAN;
    return cairn_code_types_by_syntax(&a->code_types, code, len, a->min_syntax_score, md);
}

/* A shebang on the first line decides, else the syntax. */
static int type_of_code(const struct cairn_annotator *a, const char *code, size_t len,
                        struct cairn_match *md)
{
    int t = cairn_code_types_by_shebang(&a->code_types, code, len, md);
    return t >= 0 ? t : syntax_type(a, code, len, md);
}

static bool is_role(const cJSON *msg, const char *role)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(msg, "role");
    return cJSON_IsString(r) && strcmp(r->valuestring, role) == 0;
}

/* Everything read from the conversation for one request. */
struct conversation {
    struct prompt_text last;     /* the last user turn */
    struct prompt_text previous; /* the user turn before it, if any */
    struct prompt_text system;   /* the first system message */
    bool has_previous, has_system;
    bool context_code;                  /* code in the turns before the last */
    char context_info[PROMPT_INFO_MAX]; /* latest fence info in them */
    int context_type;                   /* code type shown by their code */
};

static bool read_conversation(const struct cairn_annotator *a, const cJSON *messages,
                              struct conversation *c, struct cairn_match *md)
{
    memset(c, 0, sizeof(*c));
    c->context_type = -1;
    int n = cJSON_GetArraySize(messages), last = -1;
    if (!cJSON_IsArray(messages))
        return false;
    for (int i = n - 1; i >= 0 && last < 0; i--)
        if (is_role(cJSON_GetArrayItem(messages, i), "user"))
            last = i;
    if (last < 0)
        return false;
    const cJSON *lm = cJSON_GetArrayItem(messages, last);
    if (!cairn_prompt_text_read(&c->last, cJSON_GetObjectItemCaseSensitive(lm, "content"),
                                ANNOTATE_HEAD, ANNOTATE_TAIL, a->code_lines, a->min_code_lines, md))
        return false;
    int first = last - ANNOTATE_TURNS > 0 ? last - ANNOTATE_TURNS : 0;
    for (int i = last - 1; i >= first; i--) {
        const cJSON *m = cJSON_GetArrayItem(messages, i);
        if (is_role(m, "system"))
            continue;
        struct prompt_text pt;
        if (!cairn_prompt_text_read(&pt, cJSON_GetObjectItemCaseSensitive(m, "content"),
                                    ANNOTATE_CONTEXT, 0, a->code_lines, a->min_code_lines, md))
            continue;
        if (pt.code_len > 0 && !c->context_code) {
            c->context_code = true;
            memcpy(c->context_info, pt.info, sizeof(pt.info));
            c->context_type = type_of_code(a, pt.code, pt.code_len, md);
        }
        if (!c->has_previous && is_role(m, "user")) {
            c->previous = pt;
            c->has_previous = true;
        } else {
            cairn_prompt_text_free(&pt);
        }
    }
    for (int i = 0; i < n && !c->has_system; i++) {
        const cJSON *m = cJSON_GetArrayItem(messages, i);
        if (is_role(m, "system") || is_role(m, "developer"))
            c->has_system =
                cairn_prompt_text_read(&c->system, cJSON_GetObjectItemCaseSensitive(m, "content"),
                                       ANNOTATE_SCAN_HEAD, ANNOTATE_SCAN_TAIL, NULL, 1, md);
    }
    return true;
}

static void free_conversation(struct conversation *c)
{
    cairn_prompt_text_free(&c->last);
    if (c->has_previous)
        cairn_prompt_text_free(&c->previous);
    if (c->has_system)
        cairn_prompt_text_free(&c->system);
}

static void offer_code_type(const struct cairn_annotator *a, const struct conversation *c,
                            const struct scan *user, const struct verdict *task, int mention,
                            struct cairn_markers *out, struct cairn_match *md)
{
    bool code_task = task->rule != NULL && task->rule->needs_code;
    bool code_here = c->last.code_len > 0;
    if (!code_task && !code_here && !c->context_code)
        return;
    /* Most explicit first: a translation's target, the fence's own label,
     * a shebang, what the syntax of the code in this turn shows, a name
     * in the prose (as code, then anywhere), then the turns before. */
    int type = task->code;
    if (type < 0 && c->last.info[0] != '\0')
        type = cairn_code_types_by_name(&a->code_types, c->last.info);
    if (type < 0 && code_here)
        type = cairn_code_types_by_shebang(&a->code_types, c->last.code, c->last.code_len, md);
    if (type < 0 && code_here)
        type = syntax_type(a, c->last.code, c->last.code_len, md);
    if (type < 0)
        type = mention;
    if (type < 0 && user->len > 0 && cairn_pattern_find(a->bare, user->p, user->len, 0, md))
        type = cairn_pattern_code(md, user->p);
    if (type < 0 && c->context_info[0] != '\0')
        type = cairn_code_types_by_name(&a->code_types, c->context_info);
    if (type < 0)
        type = c->context_type;
    if (type >= 0)
        cairn_markers_offer_key(out, "code_type", a->code_types.type[type].value, CAIRN_SRC_RULES);
}

static const char *find_lang(const struct cairn_annotator *a, const struct conversation *c,
                             const struct scan *texts, size_t ntexts, const struct verdict *task,
                             struct cairn_match *md)
{
    if (task->lang >= 0)
        return a->langs[task->lang];
    for (size_t t = 0; t < ntexts; t++) {
        size_t at = 0;
        while (texts[t].len > 0 &&
               cairn_pattern_find(a->instructions, texts[t].p, texts[t].len, at, md)) {
            int l = cairn_pattern_lang(md, texts[t].p);
            if (l >= 0)
                return a->langs[l];
            at = cairn_pattern_end(md);
        }
    }
    const char *lang = cairn_langid_identify(a->langid, c->last.prose, c->last.prose_len);
    if (lang == NULL && c->has_previous && c->last.prose_len < ANNOTATE_SHORT_PROSE)
        lang = cairn_langid_identify(a->langid, c->previous.prose, c->previous.prose_len);
    return lang;
}

void cairn_annotator_run(const struct cairn_annotator *a, const cJSON *messages,
                         struct cairn_markers *out)
{
    struct cairn_match match = {pcre2_match_data_create(a->groups, NULL), a->context, &a->lookup,
                                NULL};
    struct cairn_match *md = &match;
    struct conversation c;
    if (!read_conversation(a, messages, &c, md)) {
        free_conversation(&c);
        pcre2_match_data_free(match.md);
        return;
    }
    struct scan user, sys;
    scan_of(&user, &c.last);
    scan_of(&sys, c.has_system ? &c.system : NULL);
    struct scan both[2] = {user, sys};

    /* A programming language named in the prose is code evidence too. */
    int mention = -1;
    if (user.len > 0 && cairn_pattern_find(a->mentions, user.p, user.len, 0, md))
        mention = cairn_pattern_code(md, user.p);
    struct facts f = {
        .code = c.last.code_len > 0 || c.context_code || mention >= 0 ||
                (a->code_context != NULL && user.len > 0 &&
                 cairn_pattern_find(a->code_context, user.p, user.len, 0, md)),
    };
    struct verdict task = decide(&a->task, &user, 1, &f, md);
    if (task.rule != NULL) {
        f.task = task.rule->value;
        cairn_markers_offer_key(out, "task", task.rule->value, CAIRN_SRC_RULES);
    }
    struct verdict domain = decide(&a->domain, &user, 1, &f, md);
    if (domain.rule != NULL)
        cairn_markers_offer_key(out, "domain", domain.rule->value, CAIRN_SRC_RULES);
    struct verdict format = decide(&a->format, both, 2, &f, md);
    if (format.rule != NULL)
        cairn_markers_offer_key(out, "format", format.rule->value, CAIRN_SRC_RULES);
    offer_code_type(a, &c, &user, &task, mention, out, md);

    const char *texts[2] = {user.p, sys.p};
    size_t lens[2] = {user.len, sys.len};
    cairn_lengths_run(a->lengths, texts, lens, 2, md, out);

    const char *lang = find_lang(a, &c, both, 2, &task, md);
    if (lang != NULL)
        cairn_markers_offer_key(out, "lang", lang, CAIRN_SRC_RULES);

    free(user.owned);
    free(sys.owned);
    free_conversation(&c);
    pcre2_match_data_free(match.md);
}
