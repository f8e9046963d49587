/*
 * test_markers.c — unit tests for the marker taxonomy, marker sets and the
 * <MARKER_LIST> block (include/taxonomy.h, markers.h, marker_block.h).
 *
 * rules/taxonomy.json (the shipped file, read from the repository root as
 * `make test` runs) loads with every tag and value of DESIGN.md; broken
 * taxonomy files (written to temp files) are rejected with the file and
 * the key path named; values are canonicalised (enum case, integer and
 * float ranges); sources rank pinned > fixed > model > rules; the block
 * renders exactly as DESIGN.md shows with the default template, and with
 * custom order, separators, delimiters and renamed tags; parsing finds a
 * leading block, drops and counts what the taxonomy does not know, and
 * reports unterminated blocks; the X-Cairn-Markers header form.
 */
#include "unit.h"

#include <unistd.h>

#include <cjson/cJSON.h>

#include "marker_block.h"
#include "markers.h"
#include "taxonomy.h"

#define TAXONOMY "rules/taxonomy.json"

/* The default template of DESIGN.md (config.c's defaults). */
static struct cairn_marker_template default_template(void)
{
    struct cairn_marker_template t;
    memset(&t, 0, sizeof t);
    t.open = "<MARKER_LIST>";
    t.close = "</MARKER_LIST>";
    t.separator = "\n";
    t.prefix = "\n\n";
    t.target = CAIRN_TARGET_LAST_USER;
    return t;
}

static void load_shipped(struct cairn_taxonomy *tx)
{
    char err[512] = "";
    int rc = cairn_taxonomy_load(tx, TAXONOMY, err, sizeof err);
    if (rc != 0)
        fail_msg("%s does not load: %s", TAXONOMY, err);
}


/* Write `text` to a new temp file; its path goes to path[] (>= 64 bytes). */
static void write_temp(char *path, const char *text)
{
    strcpy(path, "/tmp/cairn-test-taxonomy-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* `text` with the first `from` replaced by `to` (malloc'd). */
static char *replace_once(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    if (at == NULL)
        fail_msg("\"%s\" not found", from);
    size_t n = strlen(text) + strlen(to) + 1;
    char *out = malloc(n);
    assert_non_null(out);
    snprintf(out, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return out;
}

/* The shipped taxonomy with lang's wire name changed to "language". */
static void load_renamed(struct cairn_taxonomy *tx)
{
    char *text = slurp(TAXONOMY);
    char *renamed = replace_once(text, "{\"key\": \"lang\", \"name\": \"lang\"",
                                 "{\"key\": \"lang\", \"name\": \"language\"");
    char path[64], err[512] = "";
    write_temp(path, renamed);
    int rc = cairn_taxonomy_load(tx, path, err, sizeof err);
    unlink(path);
    free(text);
    free(renamed);
    if (rc != 0)
        fail_msg("renamed taxonomy does not load: %s", err);
}

static void offer(struct cairn_markers *m, const char *key, const char *value,
                  enum cairn_marker_source src)
{
    char err[256] = "";
    int tag = cairn_taxonomy_key(m->tx, key);
    assert_true(tag >= 0);
    if (cairn_markers_offer(m, tag, value, src, err, sizeof err) != 0)
        fail_msg("offer %s=%s rejected: %s", key, value, err);
}

/* --- the shipped taxonomy ---------------------------------------------------- */

struct tag_expect {
    const char *key;
    enum cairn_tag_type type;
    const char *values; /* enum: every value, space-separated, in file order */
    double min, max;
};

static const struct tag_expect shipped[] = {
    {"task", CAIRN_TAG_ENUM,
     "OpenEnded Explanation Translation Classification CreativeWriting QuestionAnswering "
     "InformationExtraction Summarization Rewrite Reasoning CodeGeneration CodeFix "
     "CodeTranslation CodeExplanation", 0, 0},
    {"domain", CAIRN_TAG_ENUM,
     "Sciences Technology SocialSciences Culture Medical Legal Finance Unspecified "
     "Conversation Code Math", 0, 0},
    {"format", CAIRN_TAG_ENUM, "MCQAnswer ChainOfThought XML JSON Enumeration Tabular Markdown Latex",
     0, 0},
    {"code_type", CAIRN_TAG_ENUM,
     "python javascript cpp cobol java go rust swift csharp php typescript shell c kotlin ruby "
     "haskell sql", 0, 0},
    {"lang", CAIRN_TAG_ENUM,
     "English French Spanish Italian German Portuguese Japanese Korean Arabic Chinese Russian "
     "Polish Turkish Vietnamese Dutch Czech Indonesian Ukrainian Romanian Greek Hindi Hebrew "
     "Persian", 0, 0},
    {"style", CAIRN_TAG_ENUM, "Formal Informal Custom", 0, 0},
    {"source", CAIRN_TAG_ENUM, "Human Translation Synthetic Others", 0, 0},
    {"length_tokens", CAIRN_TAG_INT, NULL, 1, 1000000},
    {"length_sentences", CAIRN_TAG_INT, NULL, 1, 10000},
    {"length_paragraphs", CAIRN_TAG_INT, NULL, 1, 1000},
    {"length_bucket", CAIRN_TAG_ENUM, "concise medium long", 0, 0},
    {"quality", CAIRN_TAG_FLOAT, NULL, 0, 1},
    {"quality_bucket", CAIRN_TAG_INT, NULL, 1, 4},
};

static void test_shipped_taxonomy(void **state)
{
    (void)state;
    struct cairn_taxonomy tx;
    load_shipped(&tx);
    rows_begin();
    check(tx.ntags == NELEM(shipped), "ntags", "%zu tags, want %zu", tx.ntags, NELEM(shipped));
    for (size_t i = 0; i < NELEM(shipped) && i < tx.ntags; i++) {
        const struct tag_expect *e = &shipped[i];
        const struct cairn_tag *t = &tx.tags[i];
        if (!check(strcmp(t->key, e->key) == 0, e->key, "tags[%zu] is \"%s\"", i, t->key))
            continue;
        check(strcmp(t->name, e->key) == 0, e->key, "wire name \"%s\"", t->name);
        check(t->type == e->type, e->key, "type %d, want %d", t->type, e->type);
        check(cairn_taxonomy_key(&tx, e->key) == (int)i, e->key, "cairn_taxonomy_key");
        if (e->type != CAIRN_TAG_ENUM) {
            check(t->min == e->min && t->max == e->max, e->key, "range %g..%g", t->min, t->max);
            continue;
        }
        char *copy = strdup(e->values), *save = NULL;
        size_t n = 0;
        for (char *v = strtok_r(copy, " ", &save); v != NULL; v = strtok_r(NULL, " ", &save), n++)
            check(n < t->nvalues && strcmp(t->values[n], v) == 0, e->key,
                  "values[%zu] is \"%s\", want \"%s\"", n, n < t->nvalues ? t->values[n] : "-",
                  v);
        check(n == t->nvalues, e->key, "%zu values, want %zu", t->nvalues, n);
        free(copy);
    }
    /* find: key or wire name, any case; key: exact key only. */
    check(cairn_taxonomy_find(&tx, "LANG") == cairn_taxonomy_key(&tx, "lang"), "find",
          "LANG not found case-insensitively");
    check(cairn_taxonomy_find(&tx, "Length_Tokens") == cairn_taxonomy_key(&tx, "length_tokens"),
          "find", "Length_Tokens");
    check(cairn_taxonomy_find(&tx, "language") == -1, "find", "language is not a tag here");
    check(cairn_taxonomy_find(&tx, "") == -1, "find", "empty name");
    check(cairn_taxonomy_key(&tx, "LANG") == -1, "key", "cairn_taxonomy_key is exact");
    cairn_taxonomy_free(&tx);
    rows_end();
}

static void test_renamed_taxonomy(void **state)
{
    (void)state;
    struct cairn_taxonomy tx;
    load_renamed(&tx);
    rows_begin();
    int lang = cairn_taxonomy_key(&tx, "lang");
    check(lang >= 0 && strcmp(tx.tags[lang].name, "language") == 0, "rename", "wire name");
    check(cairn_taxonomy_find(&tx, "language") == lang, "find", "by wire name");
    check(cairn_taxonomy_find(&tx, "lang") == lang, "find", "by key");
    check(cairn_taxonomy_key(&tx, "language") == -1, "key", "the key stays \"lang\"");
    cairn_taxonomy_free(&tx);
    rows_end();
}

/* --- broken taxonomy files --------------------------------------------------- */

struct bad_file {
    const char *name;
    const char *json;
    const char *where; /* must appear in the message (after the path) */
    const char *what;  /* and this too (NULL: not checked) */
};

#define ENUM_TAG(extra) "{\"key\": \"task\", \"type\": \"enum\", \"values\": [\"A\", \"B\"]" extra "}"

static const struct bad_file bad_files[] = {
    {"unknown key in a tag", "{\"tags\": [" ENUM_TAG(", \"colour\": \"red\"") "]}",
     "tags[0].colour", "unknown"},
    {"unknown key in the 2nd tag",
     "{\"tags\": [" ENUM_TAG("") ", {\"key\": \"n\", \"type\": \"int\", \"min\": 1, \"max\": 2, "
     "\"step\": 1}]}",
     "tags[1].step", "unknown"},
    {"unknown top-level key", "{\"tags\": [" ENUM_TAG("") "], \"extra\": 1}", "tags", NULL},
    {"duplicate value",
     "{\"tags\": [{\"key\": \"task\", \"type\": \"enum\", \"values\": [\"A\", \"B\", \"A\"]}]}",
     "tags[0].values[2]", "twice"},
    {"duplicate value, other case",
     "{\"tags\": [{\"key\": \"task\", \"type\": \"enum\", \"values\": [\"Alpha\", \"ALPHA\"]}]}",
     "tags[0].values[1]", "twice"},
    {"bad type name", "{\"tags\": [{\"key\": \"task\", \"type\": \"string\", \"values\": [\"A\"]}]}",
     "tags[0].type", NULL},
    {"type not a string", "{\"tags\": [{\"key\": \"task\", \"type\": 3, \"values\": [\"A\"]}]}",
     "tags[0].type", NULL},
    {"type missing", "{\"tags\": [{\"key\": \"task\", \"values\": [\"A\"]}]}", "tags[0].type",
     NULL},
    {"value not a string",
     "{\"tags\": [{\"key\": \"task\", \"type\": \"enum\", \"values\": [\"A\", 7]}]}",
     "tags[0].values[1]", NULL},
    {"value with markup",
     "{\"tags\": [{\"key\": \"task\", \"type\": \"enum\", \"values\": [\"<b>\"]}]}",
     "tags[0].values[0]", NULL},
    {"values empty", "{\"tags\": [{\"key\": \"task\", \"type\": \"enum\", \"values\": []}]}",
     "tags[0].values", NULL},
    {"values not an array", "{\"tags\": [{\"key\": \"task\", \"type\": \"enum\", \"values\": \"A\"}]}",
     "tags[0].values", NULL},
    {"min > max", "{\"tags\": [{\"key\": \"n\", \"type\": \"int\", \"min\": 5, \"max\": 1}]}",
     "tags[0]", "min"},
    {"min missing", "{\"tags\": [{\"key\": \"n\", \"type\": \"float\", \"max\": 1}]}", "tags[0]",
     "min"},
    {"max a string", "{\"tags\": [{\"key\": \"n\", \"type\": \"int\", \"min\": 1, \"max\": \"9\"}]}",
     "tags[0]", "max"},
    {"duplicate key", "{\"tags\": [" ENUM_TAG("") ", " ENUM_TAG("") "]}", "tags[1]", "task"},
    {"duplicate key, other case",
     "{\"tags\": [" ENUM_TAG("") ", {\"key\": \"TASK\", \"type\": \"int\", \"min\": 1, "
     "\"max\": 2}]}",
     "tags[1]", NULL},
    {"wire name of one = key of another",
     "{\"tags\": [{\"key\": \"lang\", \"name\": \"language\", \"type\": \"enum\", \"values\": "
     "[\"English\"]}, {\"key\": \"language\", \"type\": \"enum\", \"values\": [\"x\"]}]}",
     "tags[1]", "language"},
    {"same wire name twice",
     "{\"tags\": [{\"key\": \"a\", \"name\": \"n\", \"type\": \"int\", \"min\": 1, \"max\": 2}, "
     "{\"key\": \"b\", \"name\": \"n\", \"type\": \"int\", \"min\": 1, \"max\": 2}]}",
     "tags[1]", NULL},
    {"key with a space", "{\"tags\": [{\"key\": \"ta sk\", \"type\": \"enum\", \"values\": [\"A\"]}]}",
     "tags[0].key", NULL},
    {"name with markup",
     "{\"tags\": [{\"key\": \"task\", \"name\": \"<t>\", \"type\": \"enum\", \"values\": [\"A\"]}]}",
     "tags[0].name", NULL},
    {"tag not an object", "{\"tags\": [" ENUM_TAG("") ", 3]}", "tags[1]", NULL},
    {"no tags", "{\"tags\": []}", "tags", NULL},
    {"not JSON", "{\"tags\": [", "", NULL},
    {"duplicate JSON member", "{\"tags\": [" ENUM_TAG(", \"type\": \"enum\"") "]}", "", NULL},
};

static void test_taxonomy_errors(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(bad_files); i++) {
        const struct bad_file *b = &bad_files[i];
        struct cairn_taxonomy tx;
        char path[64], err[512] = "";
        write_temp(path, b->json);
        int rc = cairn_taxonomy_load(&tx, path, err, sizeof err);
        unlink(path);
        if (!check(rc == -1, b->name, "accepted"))
            continue;
        check(strstr(err, path) != NULL, b->name, "message does not name the file: %s", err);
        check(strstr(err, b->where) != NULL, b->name, "message does not name \"%s\": %s",
              b->where, err);
        check(b->what == NULL || strstr(err, b->what) != NULL, b->name,
              "message does not say \"%s\": %s", b->what, err);
        check(tx.ntags == 0, b->name, "a failed load left %zu tags", tx.ntags);
        cairn_taxonomy_free(&tx); /* safe after a failed load */
    }
    /* More tags than CAIRN_MAX_TAGS. */
    struct sbuf b = {0};
    sb_puts(&b, "{\"tags\": [");
    for (int i = 0; i <= CAIRN_MAX_TAGS; i++) {
        char one[96];
        snprintf(one, sizeof one, "%s{\"key\": \"t%d\", \"type\": \"int\", \"min\": 1, \"max\": 2}",
                 i ? ", " : "", i);
        sb_puts(&b, one);
    }
    sb_puts(&b, "]}");
    struct cairn_taxonomy tx;
    char path[64], err[512] = "";
    write_temp(path, b.p);
    check(cairn_taxonomy_load(&tx, path, err, sizeof err) == -1, "33 tags", "accepted");
    check(strstr(err, path) != NULL, "33 tags", "message: %s", err);
    unlink(path);
    free(b.p);
    /* A missing file. */
    err[0] = '\0';
    check(cairn_taxonomy_load(&tx, "/nonexistent/taxonomy.json", err, sizeof err) == -1,
          "missing file", "accepted");
    check(strstr(err, "/nonexistent/taxonomy.json") != NULL, "missing file", "message: %s", err);
    rows_end();
}

/* --- canonical values -------------------------------------------------------- */

struct canon_row {
    const char *tag, *in;
    const char *out; /* NULL: rejected */
};

static const struct canon_row canon_rows[] = {
    {"task", "CodeFix", "CodeFix"},
    {"task", "codefix", "CodeFix"},
    {"task", "CODEFIX", "CodeFix"},
    {"task", "questionanswering", "QuestionAnswering"},
    {"task", "Code Fix", NULL},
    {"task", "CodeFixes", NULL},
    {"task", "", NULL},
    {"domain", "culture", "Culture"},
    {"format", "json", "JSON"},
    {"format", "LATEX", "Latex"},
    {"code_type", "Go", "go"},
    {"code_type", "C", "c"},
    {"code_type", "c++", NULL},
    {"lang", "english", "English"},
    {"lang", "en", NULL},
    {"length_bucket", "Concise", "concise"},
    {"length_tokens", "199", "199"},
    {"length_tokens", "1", "1"},
    {"length_tokens", "1000000", "1000000"},
    {"length_tokens", "0", NULL},
    {"length_tokens", "-5", NULL},
    {"length_tokens", "1000001", NULL},
    {"length_tokens", "12.5", NULL},
    {"length_tokens", "12abc", NULL},
    {"length_tokens", "abc", NULL},
    {"length_tokens", "", NULL},
    {"length_tokens", "100.0", "100"},
    {"length_sentences", "3", "3"},
    {"length_sentences", "10001", NULL},
    {"length_paragraphs", "2", "2"},
    {"quality_bucket", "4", "4"},
    {"quality_bucket", "5", NULL},
    {"quality", "0.5", "0.5"},
    {"quality", "0", "0"},
    {"quality", "1", "1"},
    {"quality", "0.25", "0.25"},
    {"quality", "1.5", NULL},
    {"quality", "-0.1", NULL},
    {"quality", "nan", NULL},
    {"quality", "inf", NULL},
    {"quality", "x", NULL},
};

static void test_canonical(void **state)
{
    (void)state;
    struct cairn_taxonomy tx;
    load_shipped(&tx);
    rows_begin();
    for (size_t i = 0; i < NELEM(canon_rows); i++) {
        const struct canon_row *r = &canon_rows[i];
        char row[96], out[CAIRN_MARKER_VALUE_MAX] = "", err[256] = "";
        snprintf(row, sizeof row, "%s=\"%s\"", r->tag, r->in);
        int tag = cairn_taxonomy_key(&tx, r->tag);
        assert_true(tag >= 0);
        int rc = cairn_taxonomy_canonical(&tx, tag, r->in, out, err, sizeof err);
        if (r->out != NULL) {
            if (check(rc == 0, row, "rejected: %s", err))
                check(strcmp(out, r->out) == 0, row, "canonical \"%s\", want \"%s\"", out,
                      r->out);
        } else if (check(rc == -1, row, "accepted as \"%s\"", out)) {
            check(strstr(err, r->tag) != NULL, row, "message does not name the tag: %s", err);
        }
    }
    cairn_taxonomy_free(&tx);
    rows_end();
}

/* --- precedence ---------------------------------------------------------------- */

static void test_precedence(void **state)
{
    (void)state;
    static const enum cairn_marker_source order[] = {CAIRN_SRC_RULES, CAIRN_SRC_MODEL,
                                                     CAIRN_SRC_FIXED, CAIRN_SRC_PINNED};
    struct cairn_taxonomy tx;
    load_shipped(&tx);
    rows_begin();
    for (size_t a = 0; a < NELEM(order); a++) {
        for (size_t b = 0; b < NELEM(order); b++) {
            if (a == b)
                continue;
            char row[64], err[128];
            snprintf(row, sizeof row, "%s then %s", cairn_marker_source_name(order[a]),
                     cairn_marker_source_name(order[b]));
            struct cairn_markers m;
            cairn_markers_init(&m, &tx);
            int tag = cairn_taxonomy_key(&tx, "task");
            check(cairn_markers_offer(&m, tag, "CodeFix", order[a], err, sizeof err) == 0, row,
                  "first offer: %s", err);
            check(cairn_markers_offer(&m, tag, "summarization", order[b], err, sizeof err) == 0,
                  row, "second offer: %s", err);
            const char *want = b > a ? "Summarization" : "CodeFix";
            enum cairn_marker_source src = b > a ? order[b] : order[a];
            const char *got = cairn_markers_get(&m, "task");
            check(got != NULL && strcmp(got, want) == 0, row, "value %s, want %s",
                  got ? got : "(none)", want);
            check(m.source[tag] == src, row, "source %s, want %s",
                  cairn_marker_source_name(m.source[tag]), cairn_marker_source_name(src));
            check(cairn_markers_count(&m) == 1, row, "count %zu", cairn_markers_count(&m));
        }
    }
    /* Invalid values are refused without touching what is there. */
    struct cairn_markers m;
    char err[128] = "";
    cairn_markers_init(&m, &tx);
    offer(&m, "length_tokens", "100", CAIRN_SRC_RULES);
    int lt = cairn_taxonomy_key(&tx, "length_tokens");
    check(cairn_markers_offer(&m, lt, "0", CAIRN_SRC_PINNED, err, sizeof err) == -1, "invalid",
          "0 accepted");
    check(strcmp(cairn_markers_get(&m, "length_tokens"), "100") == 0 &&
              m.source[lt] == CAIRN_SRC_RULES,
          "invalid", "an invalid pinned value changed the marker");
    check(cairn_markers_offer(&m, -1, "x", CAIRN_SRC_PINNED, err, sizeof err) == -1, "tag -1",
          "accepted");
    check(cairn_markers_offer(&m, (int)tx.ntags, "x", CAIRN_SRC_PINNED, err, sizeof err) == -1,
          "tag ntags", "accepted");
    /* By key: a tag the taxonomy lacks is a no-op, an invalid value an error. */
    check(cairn_markers_offer_key(&m, "no_such_tag", "x", CAIRN_SRC_RULES) == 0, "offer_key",
          "missing tag is not a no-op");
    check(cairn_markers_offer_key(&m, "task", "Dance", CAIRN_SRC_RULES) == -1, "offer_key",
          "invalid value accepted");
    check(cairn_markers_offer_key(&m, "task", "codefix", CAIRN_SRC_RULES) == 0 &&
              strcmp(cairn_markers_get(&m, "task"), "CodeFix") == 0,
          "offer_key", "canonical");
    check(cairn_markers_get(&m, "domain") == NULL, "get", "domain has no value");
    check(cairn_markers_get(&m, "no_such_tag") == NULL, "get", "unknown key");
    check(cairn_markers_count(&m) == 2, "count", "%zu", cairn_markers_count(&m));
    check(strcmp(cairn_marker_source_name(CAIRN_SRC_PINNED), "pinned") == 0 &&
              strcmp(cairn_marker_source_name(CAIRN_SRC_FIXED), "fixed") == 0 &&
              strcmp(cairn_marker_source_name(CAIRN_SRC_MODEL), "model") == 0 &&
              strcmp(cairn_marker_source_name(CAIRN_SRC_RULES), "rules") == 0,
          "source names", "pinned/fixed/model/rules");
    cairn_taxonomy_free(&tx);
    rows_end();
}

/* --- rendering ------------------------------------------------------------------ */

#define DESIGN_BLOCK                                                                      \
    "<MARKER_LIST>\n<domain>Culture</domain>\n<length_tokens>199</length_tokens>\n"        \
    "<task>QuestionAnswering</task>\n</MARKER_LIST>"

static void test_render_default(void **state)
{
    (void)state;
    struct cairn_taxonomy tx;
    load_shipped(&tx);
    struct cairn_marker_template t = default_template();
    struct cairn_marker_format f;
    char err[256] = "";
    assert_int_equal(cairn_marker_format_init(&f, &tx, &t, err, sizeof err), 0);
    rows_begin();
    check(f.norder == tx.ntags, "order", "%zu tags in the order, want %zu", f.norder, tx.ntags);
    /* Offered in taxonomy order, reverse order, from mixed sources: the
     * block is always the one DESIGN.md shows. */
    static const char *const keys[] = {"task", "domain", "length_tokens"};
    static const char *const values[] = {"questionanswering", "Culture", "199"};
    for (int variant = 0; variant < 3; variant++) {
        struct cairn_markers m;
        cairn_markers_init(&m, &tx);
        for (size_t i = 0; i < 3; i++) {
            size_t k = variant == 1 ? 2 - i : i;
            offer(&m, keys[k], values[k],
                  variant == 2 ? (enum cairn_marker_source)(CAIRN_SRC_RULES + k) : CAIRN_SRC_RULES);
        }
        char *block = cairn_marker_block_render(&f, &m);
        char row[32];
        snprintf(row, sizeof row, "variant %d", variant);
        check(block != NULL && strcmp(block, DESIGN_BLOCK) == 0, row, "rendered %s",
              block ? block : "(null)");
        free(block);
    }
    /* One marker; every tag at once (alphabetical by wire name). */
    struct cairn_markers m;
    cairn_markers_init(&m, &tx);
    offer(&m, "lang", "French", CAIRN_SRC_PINNED);
    char *block = cairn_marker_block_render(&f, &m);
    check(block != NULL && strcmp(block, "<MARKER_LIST>\n<lang>French</lang>\n</MARKER_LIST>") == 0,
          "one marker", "rendered %s", block ? block : "(null)");
    free(block);
    static const char *const all[][2] = {
        {"code_type", "go"}, {"domain", "Code"}, {"format", "JSON"}, {"lang", "English"},
        {"length_bucket", "concise"}, {"length_paragraphs", "2"}, {"length_sentences", "3"},
        {"length_tokens", "100"}, {"quality", "0.75"}, {"quality_bucket", "1"},
        {"source", "Human"}, {"style", "Formal"}, {"task", "CodeFix"},
    };
    cairn_markers_init(&m, &tx);
    struct sbuf want = {0};
    sb_puts(&want, "<MARKER_LIST>");
    for (size_t i = NELEM(all); i-- > 0;)
        offer(&m, all[i][0], all[i][1], CAIRN_SRC_RULES);
    for (size_t i = 0; i < NELEM(all); i++) {
        char line[128];
        snprintf(line, sizeof line, "\n<%s>%s</%s>", all[i][0], all[i][1], all[i][0]);
        sb_puts(&want, line);
    }
    sb_puts(&want, "\n</MARKER_LIST>");
    block = cairn_marker_block_render(&f, &m);
    check(block != NULL && strcmp(block, want.p) == 0, "all tags", "rendered %s\nwant %s",
          block ? block : "(null)", want.p);
    free(block);
    free(want.p);
    /* Nothing known: nothing rendered. */
    cairn_markers_init(&m, &tx);
    block = cairn_marker_block_render(&f, &m);
    check(block == NULL, "no markers", "rendered %s", block ? block : "");
    free(block);
    cairn_taxonomy_free(&tx);
    rows_end();
}

static void test_render_custom(void **state)
{
    (void)state;
    struct cairn_taxonomy tx, rn;
    load_shipped(&tx);
    load_renamed(&rn);
    char err[256] = "";
    rows_begin();

    /* Custom delimiters, separator and order (keys and wire names mixed). */
    char *order1[] = {"TASK", "lang"};
    struct cairn_marker_template t = default_template();
    t.open = "[[M]]";
    t.close = "[[/M]]";
    t.separator = " | ";
    t.order.items = order1;
    t.order.n = 2;
    struct cairn_marker_format f;
    if (check(cairn_marker_format_init(&f, &tx, &t, err, sizeof err) == 0, "custom", "%s", err)) {
        struct cairn_markers m;
        cairn_markers_init(&m, &tx);
        offer(&m, "domain", "Culture", CAIRN_SRC_RULES);
        offer(&m, "length_tokens", "199", CAIRN_SRC_RULES);
        offer(&m, "task", "QuestionAnswering", CAIRN_SRC_RULES);
        offer(&m, "lang", "German", CAIRN_SRC_RULES);
        char *block = cairn_marker_block_render(&f, &m);
        const char *want = "[[M]] | <task>QuestionAnswering</task> | <lang>German</lang> | "
                           "<domain>Culture</domain> | <length_tokens>199</length_tokens> | [[/M]]";
        check(block != NULL && strcmp(block, want) == 0, "custom", "rendered %s",
              block ? block : "(null)");
        free(block);
        /* Empty separator. */
        t.separator = "";
        cairn_markers_init(&m, &tx);
        offer(&m, "task", "CodeFix", CAIRN_SRC_RULES);
        block = cairn_marker_block_render(&f, &m);
        check(block != NULL && strcmp(block, "[[M]]<task>CodeFix</task>[[/M]]") == 0,
              "empty separator", "rendered %s", block ? block : "(null)");
        free(block);
    }

    /* Renamed tag: rendered by its wire name, sorted by it too. */
    t = default_template();
    if (check(cairn_marker_format_init(&f, &rn, &t, err, sizeof err) == 0, "renamed", "%s",
              err)) {
        struct cairn_markers m;
        cairn_markers_init(&m, &rn);
        offer(&m, "lang", "french", CAIRN_SRC_RULES);
        offer(&m, "length_tokens", "199", CAIRN_SRC_RULES);
        offer(&m, "domain", "Culture", CAIRN_SRC_RULES);
        offer(&m, "task", "QuestionAnswering", CAIRN_SRC_RULES);
        char *block = cairn_marker_block_render(&f, &m);
        const char *want = "<MARKER_LIST>\n<domain>Culture</domain>\n<language>French</language>\n"
                           "<length_tokens>199</length_tokens>\n<task>QuestionAnswering</task>\n"
                           "</MARKER_LIST>";
        check(block != NULL && strcmp(block, want) == 0, "renamed", "rendered %s",
              block ? block : "(null)");
        free(block);
        /* Header and JSON forms use the wire name as well. */
        char hdr[256];
        cairn_markers_format_header(&m, hdr, sizeof hdr);
        check(strcmp(hdr, "task=QuestionAnswering; domain=Culture; language=French; "
                          "length_tokens=199") == 0,
              "renamed header", "%s", hdr);
    }
    /* Order naming the renamed tag by either name. */
    char *order2[] = {"language", "task"};
    char *order3[] = {"lang", "task"};
    for (int k = 0; k < 2; k++) {
        t = default_template();
        t.order.items = k == 0 ? order2 : order3;
        t.order.n = 2;
        if (!check(cairn_marker_format_init(&f, &rn, &t, err, sizeof err) == 0, "renamed order",
                   "%s", err))
            continue;
        struct cairn_markers m;
        cairn_markers_init(&m, &rn);
        offer(&m, "task", "Translation", CAIRN_SRC_RULES);
        offer(&m, "lang", "Polish", CAIRN_SRC_RULES);
        char *block = cairn_marker_block_render(&f, &m);
        check(block != NULL &&
                  strcmp(block, "<MARKER_LIST>\n<language>Polish</language>\n<task>Translation"
                                "</task>\n</MARKER_LIST>") == 0,
              k == 0 ? "order by wire name" : "order by key", "rendered %s",
              block ? block : "(null)");
        free(block);
    }

    /* Bad orders: unknown tag, a tag twice (by key and by wire name). */
    char *bad1[] = {"task", "colour"};
    char *bad2[] = {"lang", "language"};
    char *bad3[] = {"task", "Task"};
    struct {
        const char *name;
        const struct cairn_taxonomy *tx;
        char **items;
        const char *where;
    } bad[] = {
        {"unknown tag", &tx, bad1, "order[1]"},
        {"key and wire name", &rn, bad2, "order[1]"},
        {"twice, other case", &tx, bad3, "order[1]"},
    };
    for (size_t i = 0; i < NELEM(bad); i++) {
        t = default_template();
        t.order.items = bad[i].items;
        t.order.n = 2;
        err[0] = '\0';
        if (check(cairn_marker_format_init(&f, bad[i].tx, &t, err, sizeof err) == -1, bad[i].name,
                  "accepted"))
            check(strstr(err, bad[i].where) != NULL, bad[i].name, "message: %s", err);
    }
    cairn_taxonomy_free(&tx);
    cairn_taxonomy_free(&rn);
    rows_end();
}

/* --- parsing ----------------------------------------------------------------------- */

struct parse_row {
    const char *name;
    const char *text;
    int rc;
    const char *rest;    /* rc 1: text + end */
    const char *markers; /* rc 1: the header form of what was read */
    size_t dropped;
};

static const struct parse_row parse_rows[] = {
    {"design block", DESIGN_BLOCK "\n\nThe answer.", 1, "The answer.",
     "task=QuestionAnswering; domain=Culture; length_tokens=199", 0},
    {"leading white space", " \n\t\r\n<MARKER_LIST>\n<task>CodeFix</task>\n</MARKER_LIST>\nHi",
     1, "Hi", "task=CodeFix", 0},
    {"one line", "<MARKER_LIST><task>CodeFix</task><lang>English</lang></MARKER_LIST>Hi", 1, "Hi",
     "task=CodeFix; lang=English", 0},
    {"trailing white space skipped",
     "<MARKER_LIST>\n<task>CodeFix</task>\n</MARKER_LIST> \t\r\n\n  Hello  world \n", 1,
     "Hello  world \n", "task=CodeFix", 0},
    {"block only", "<MARKER_LIST>\n<task>CodeFix</task>\n</MARKER_LIST>\n\n", 1, "", "task=CodeFix",
     0},
    {"empty block", "<MARKER_LIST></MARKER_LIST>x", 1, "x", "", 0},
    {"case of delimiters", "<marker_list>\n<task>CodeFix</task>\n</Marker_List>\nx", 1, "x",
     "task=CodeFix", 0},
    {"value case and spaces", "<MARKER_LIST>\n<task> codefix </task>\n<code_type>Go</code_type>\n"
                              "</MARKER_LIST>x",
     1, "x", "task=CodeFix; code_type=go", 0},
    {"tag name case", "<MARKER_LIST>\n<TASK>CodeFix</TASK>\n</MARKER_LIST>x", 1, "x",
     "task=CodeFix", 0},
    {"unknown tag dropped", "<MARKER_LIST>\n<colour>red</colour>\n<task>CodeFix</task>\n"
                            "</MARKER_LIST>x",
     1, "x", "task=CodeFix", 1},
    {"unknown value dropped", "<MARKER_LIST>\n<task>Dancing</task>\n<domain>Code</domain>\n"
                              "</MARKER_LIST>x",
     1, "x", "domain=Code", 1},
    {"out-of-range int dropped", "<MARKER_LIST>\n<length_tokens>0</length_tokens>\n"
                                 "<length_sentences>3</length_sentences>\n</MARKER_LIST>x",
     1, "x", "length_sentences=3", 1},
    {"several dropped", "<MARKER_LIST>\n<a>1</a>\n<task></task>\n<lang>Klingon</lang>\n"
                        "<quality>0.5</quality>\n</MARKER_LIST>x",
     1, "x", "quality=0.5", 3},
    {"unclosed item dropped", "<MARKER_LIST>\n<task>CodeFix\n<domain>Code</domain>\n"
                              "</MARKER_LIST>x",
     1, "x", "domain=Code", 1},
    {"renamed wire name unknown here", "<MARKER_LIST>\n<language>French</language>\n"
                                       "</MARKER_LIST>x",
     1, "x", "", 1},
    {"unterminated", "<MARKER_LIST>\n<task>CodeFix</task>\n", -1, NULL, NULL, 0},
    {"unterminated, close cut", "<MARKER_LIST>\n<task>CodeFix</task>\n</MARKER_LIS", -1, NULL,
     NULL, 0},
    {"open only", "<MARKER_LIST>", -1, NULL, NULL, 0},
    {"no block", "Hello world", 0, NULL, NULL, 0},
    {"block not at start", "Sure. <MARKER_LIST>\n<task>CodeFix</task>\n</MARKER_LIST>", 0, NULL,
     NULL, 0},
    {"other tag at start", "<b>bold</b>", 0, NULL, NULL, 0},
    {"open prefix only", "<MARKER_LI", 0, NULL, NULL, 0},
    {"empty", "", 0, NULL, NULL, 0},
    {"white space only", " \n ", 0, NULL, NULL, 0},
};

static void test_parse(void **state)
{
    (void)state;
    struct cairn_taxonomy tx;
    load_shipped(&tx);
    struct cairn_marker_template t = default_template();
    struct cairn_marker_format f;
    char err[256] = "";
    assert_int_equal(cairn_marker_format_init(&f, &tx, &t, err, sizeof err), 0);
    rows_begin();
    for (size_t i = 0; i < NELEM(parse_rows); i++) {
        const struct parse_row *r = &parse_rows[i];
        struct cairn_markers m;
        cairn_markers_init(&m, &tx);
        size_t len = strlen(r->text), end = (size_t)-1, dropped = 0;
        char *text = dup_exact(r->text, len); /* ASan: no read past len */
        int rc = cairn_marker_block_parse(&f, text, len, &end, &m, CAIRN_SRC_MODEL, &dropped);
        if (check(rc == r->rc, r->name, "rc %d, want %d", rc, r->rc) && rc == 1) {
            check(end <= len && strcmp(r->text + end, r->rest) == 0, r->name,
                  "rest \"%s\", want \"%s\"", end <= len ? r->text + end : "(bad end)", r->rest);
            char hdr[512];
            cairn_markers_format_header(&m, hdr, sizeof hdr);
            check(strcmp(hdr, r->markers) == 0, r->name, "markers \"%s\", want \"%s\"", hdr,
                  r->markers);
            check(dropped == r->dropped, r->name, "dropped %zu, want %zu", dropped, r->dropped);
            for (size_t k = 0; k < tx.ntags; k++)
                check(m.source[k] == CAIRN_SRC_NONE || m.source[k] == CAIRN_SRC_MODEL, r->name,
                      "source %d", m.source[k]);
        }
        if (rc != 1)
            check(cairn_markers_count(&m) == 0, r->name, "markers offered without a block");
        free(text);
    }
    /* Parsing respects precedence: a pinned value is not overridden by
     * what the model wrote. */
    struct cairn_markers m;
    cairn_markers_init(&m, &tx);
    offer(&m, "task", "Summarization", CAIRN_SRC_PINNED);
    size_t end, dropped = 0;
    const char *text = "<MARKER_LIST>\n<task>CodeFix</task>\n<domain>Code</domain>\n</MARKER_LIST>";
    check(cairn_marker_block_parse(&f, text, strlen(text), &end, &m, CAIRN_SRC_MODEL, &dropped) ==
              1,
          "precedence", "not parsed");
    check(strcmp(cairn_markers_get(&m, "task"), "Summarization") == 0, "precedence",
          "model overrode a pinned marker");
    check(strcmp(cairn_markers_get(&m, "domain"), "Code") == 0, "precedence", "domain");
    /* Only text[0..len) is looked at. */
    text = "<MARKER_LIST>\n<task>CodeFix</task>\n</MARKER_LIST>";
    cairn_markers_init(&m, &tx);
    check(cairn_marker_block_parse(&f, text, strlen(text) - 1, &end, &m, CAIRN_SRC_MODEL,
                                   &dropped) == -1,
          "len bound", "a close past len was used");
    cairn_taxonomy_free(&tx);
    rows_end();
}

/* Render → parse gives back the same markers, for default and custom
 * templates and the renamed taxonomy. */
static void test_round_trip(void **state)
{
    (void)state;
    struct cairn_taxonomy tx, rn;
    load_shipped(&tx);
    load_renamed(&rn);
    rows_begin();
    struct cairn_marker_template tmpl[3];
    tmpl[0] = default_template();
    tmpl[1] = default_template();
    tmpl[1].open = "<MARKERS>";
    tmpl[1].close = "</MARKERS>";
    tmpl[1].separator = " ";
    tmpl[2] = default_template();
    tmpl[2].separator = "\r\n";
    for (int k = 0; k < 6; k++) {
        const struct cairn_taxonomy *x = k < 3 ? &tx : &rn;
        struct cairn_marker_format f;
        char err[256], row[32];
        snprintf(row, sizeof row, "template %d/%s", k % 3, k < 3 ? "shipped" : "renamed");
        assert_int_equal(cairn_marker_format_init(&f, x, &tmpl[k % 3], err, sizeof err), 0);
        struct cairn_markers m, back;
        cairn_markers_init(&m, x);
        cairn_markers_init(&back, x);
        offer(&m, "task", "CodeTranslation", CAIRN_SRC_PINNED);
        offer(&m, "lang", "Japanese", CAIRN_SRC_FIXED);
        offer(&m, "length_sentences", "12", CAIRN_SRC_RULES);
        offer(&m, "quality", "0.125", CAIRN_SRC_RULES);
        char *block = cairn_marker_block_render(&f, &m);
        assert_non_null(block);
        struct sbuf answer = {0};
        sb_puts(&answer, block);
        sb_puts(&answer, "\n\nAnswer text.");
        size_t end, dropped = 0;
        int rc = cairn_marker_block_parse(&f, answer.p, answer.len, &end, &back, CAIRN_SRC_MODEL,
                                          &dropped);
        if (check(rc == 1, row, "rc %d for %s", rc, block)) {
            check(strcmp(answer.p + end, "Answer text.") == 0, row, "rest %s", answer.p + end);
            check(dropped == 0, row, "dropped %zu", dropped);
            check(cairn_markers_count(&back) == 4, row, "%zu markers read back",
                  cairn_markers_count(&back));
            for (size_t i = 0; i < x->ntags; i++)
                check(strcmp(m.value[i], back.value[i]) == 0, row, "%s: \"%s\" read back as \"%s\"",
                      x->tags[i].key, m.value[i], back.value[i]);
        }
        free(block);
        free(answer.p);
    }
    cairn_taxonomy_free(&tx);
    cairn_taxonomy_free(&rn);
    rows_end();
}

/* --- header and JSON forms ------------------------------------------------------------- */

static void test_header_and_json(void **state)
{
    (void)state;
    struct cairn_taxonomy tx;
    load_shipped(&tx);
    rows_begin();
    struct cairn_markers m;
    cairn_markers_init(&m, &tx);
    char hdr[256] = "junk";
    cairn_markers_format_header(&m, hdr, sizeof hdr);
    check(hdr[0] == '\0', "empty", "\"%s\"", hdr);
    offer(&m, "length_tokens", "199", CAIRN_SRC_RULES);
    offer(&m, "domain", "Culture", CAIRN_SRC_FIXED);
    offer(&m, "task", "QuestionAnswering", CAIRN_SRC_PINNED);
    offer(&m, "quality", "0.5", CAIRN_SRC_MODEL);
    cairn_markers_format_header(&m, hdr, sizeof hdr);
    const char *want = "task=QuestionAnswering; domain=Culture; length_tokens=199; quality=0.5";
    check(strcmp(hdr, want) == 0, "header", "\"%s\"", hdr);
    /* A short buffer: truncated, terminated, no overflow (ASan). */
    for (size_t n = 1; n < strlen(want) + 2; n++) {
        char *small = malloc(n);
        cairn_markers_format_header(&m, small, n);
        check(strlen(small) < n && strncmp(small, want, strlen(small)) == 0, "short buffer",
              "n=%zu: \"%s\"", n, small);
        free(small);
    }
    cJSON *obj = cJSON_CreateObject();
    cairn_markers_to_json(&m, obj);
    char *json = cJSON_PrintUnformatted(obj);
    check(strcmp(json, "{\"task\":\"QuestionAnswering\",\"domain\":\"Culture\","
                       "\"length_tokens\":199,\"quality\":0.5}") == 0,
          "json", "%s", json);
    free(json);
    cJSON_Delete(obj);
    cairn_taxonomy_free(&tx);
    rows_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_taxonomy),
        cmocka_unit_test(test_renamed_taxonomy),
        cmocka_unit_test(test_taxonomy_errors),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_render_default),
        cmocka_unit_test(test_render_custom),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_header_and_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
