/*
 * test_validate.c — unit tests for the answer validators (validate.h,
 * answer_text.h, answer_format.h) with the shipped rules/, and for `cairn
 * validate` (validate_cli.h).
 *
 * Table rows give markers ("tag=value; tag=value"), an answer and the
 * violations expected: a space-separated list of tag keys ("" = none),
 * optionally with a substring of the first violation's "observed". Load
 * errors run against a temporary copy of rules/ with one file patched. The
 * last test prints what validating a 4 KB answer costs (not asserted).
 */
#include "unit.h"

#include <stdio.h>
#include <time.h>

#include "answer_text.h"
#include "json_strict.h"
#include "markers.h"
#include "taxonomy.h"
#include "utf8.h"
#include "validate.h"
#include "validate_cli.h"

static struct cairn_taxonomy tx;
static struct cairn_validator *val;

static void *load_validator(const struct cairn_taxonomy *t, const char *dir, char *err,
                            size_t errlen)
{
    return cairn_validator_load(t, dir, err, errlen);
}

static void free_validator(void *v)
{
    cairn_validator_free(v);
}

static const struct unit_module validator = {load_validator, free_validator};

static int setup(void **state)
{
    (void)state;
    val = unit_rules_setup(&tx, &validator);
    return val != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    unit_rules_teardown(&tx, &validator, val);
    return 0;
}

static struct cairn_validate_opts opts(enum cairn_counting how, double tolerance)
{
    struct cairn_validate_opts o = {.counting = how, .tolerance = tolerance, .json_depth = 64};
    for (size_t t = 0; t < tx.ntags; t++)
        if (cairn_validator_has(val, tx.tags[t].key))
            o.tags |= UINT32_C(1) << t;
    return o;
}

/* Markers from "tag=value; tag=value". */
static void markers_of(const char *spec, struct cairn_markers *m)
{
    char buf[512], err[256];
    cairn_markers_init(m, &tx);
    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *save = NULL, *tok = strtok_r(buf, ";", &save); tok != NULL;
         tok = strtok_r(NULL, ";", &save)) {
        while (*tok == ' ')
            tok++;
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq = '\0';
        int tag = cairn_taxonomy_find(&tx, tok);
        assert_true(tag >= 0);
        if (cairn_markers_offer(m, tag, eq + 1, CAIRN_SRC_PINNED, err, sizeof(err)) < 0)
            fail_msg("bad marker %s=%s: %s", tok, eq + 1, err);
    }
}

/* Validate `answer` (copied into a block of its own length, so that ASan
 * sees any read past it). */
static void run(const char *markers, const char *answer, const struct cairn_validate_opts *o,
                struct cairn_violations *out)
{
    struct cairn_markers m;
    markers_of(markers, &m);
    size_t len = strlen(answer);
    char *copy = dup_exact(answer, len);
    cairn_validate(val, &m, copy, len, o, out);
    free(copy);
}

struct row {
    const char *name;
    const char *markers;
    const char *answer;
    const char *expect;   /* tag keys violated, space-separated; "" = none */
    const char *observed; /* substring of the first violation's observed, or NULL */
};

static void check_rows(const struct row *rows, size_t n, const struct cairn_validate_opts *o)
{
    rows_begin();
    for (size_t i = 0; i < n; i++) {
        struct cairn_violations v;
        run(rows[i].markers, rows[i].answer, o, &v);
        char got[256] = "";
        size_t g = 0;
        for (size_t k = 0; k < v.n; k++)
            g += (size_t)snprintf(got + g, sizeof(got) - g, "%s%s", k ? " " : "",
                                  tx.tags[v.items[k].tag].key);
        if (!check(strcmp(got, rows[i].expect) == 0, rows[i].name,
                   "violations \"%s\", expected \"%s\"%s%s%s", got, rows[i].expect,
                   v.n ? " (first observed: " : "", v.n ? v.items[0].observed : "", v.n ? ")" : ""))
            continue;
        if (rows[i].observed != NULL && v.n > 0)
            check(strstr(v.items[0].observed, rows[i].observed) != NULL, rows[i].name,
                  "observed \"%s\" lacks \"%s\"", v.items[0].observed, rows[i].observed);
        for (size_t k = 0; k < v.n; k++)
            check(v.items[k].key != NULL &&
                      strcmp(v.items[k].key, tx.tags[v.items[k].tag].key) == 0,
                  rows[i].name, "violation %zu has key %s", k,
                  v.items[k].key ? v.items[k].key : "NULL");
    }
    rows_end();
}

/* ---- counting ---------------------------------------------------------- */

static void test_count_length(void **state)
{
    (void)state;
    static const struct {
        const char *name, *text;
        size_t words, chars, tokens;
    } rows[] = {
        {"empty", "", 0, 0, 0},
        {"english", "Hello world", 2, 10, 2},
        {"markup is not words", "  - item **bold**  ", 2, 13, 5},
        {"decimal", "3.14 is pi", 3, 8, 5},
        {"chinese mixed", "我用Python写代码", 6, 11, 6},
        {"japanese", "日本語のテキストです。", 10, 11, 11},
        {"korean by spaces", "안녕하세요 여러분", 2, 8, 8},
        {"thai by letters", "สวัสดีครับ", 2, 10, 5},
        {"russian", "Привет, мир!", 2, 11, 7},
        {"long word", "internationalization", 1, 20, 3},
        {"indentation", "a\n\n    b", 2, 2, 3},
        {"emoji is no word", "ok 👍", 1, 3, 2},
    };
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        size_t len = strlen(rows[i].text);
        char *copy = dup_exact(rows[i].text, len);
        size_t w = cairn_count_length(copy, len, CAIRN_COUNT_WORDS);
        size_t c = cairn_count_length(copy, len, CAIRN_COUNT_CHARACTERS);
        size_t t = cairn_count_length(copy, len, CAIRN_COUNT_TOKENS);
        free(copy);
        check(w == rows[i].words, rows[i].name, "words %zu, expected %zu", w, rows[i].words);
        check(c == rows[i].chars, rows[i].name, "characters %zu, expected %zu", c, rows[i].chars);
        check(t == rows[i].tokens, rows[i].name, "tokens %zu, expected %zu", t, rows[i].tokens);
    }
    rows_end();
}

/* Thai: one word per 4 spacing letters, marks not counted. */
static void test_count_thai(void **state)
{
    (void)state;
    const char *t = "สภาเมืองอนุมัติงบประมาณใหม่ในวันอังคาร";
    size_t w = cairn_count_length(t, strlen(t), CAIRN_COUNT_WORDS);
    assert_true(w >= 6 && w <= 10); /* 8 words as a Thai reader splits it */
}

static void test_length_tokens(void **state)
{
    (void)state;
    static const struct row rows[] = {
        {"under", "length_tokens=10", "One two three four five.", "", NULL},
        {"over", "length_tokens=5", "One two three four five six seven eight.", "length_tokens",
         "8 words"},
        {"within tolerance", "length_tokens=10", "a b c d e f g h i j k", "", NULL},
        {"past tolerance", "length_tokens=10", "a b c d e f g h i j k l", "length_tokens",
         "12 words"},
        {"cjk characters are words", "length_tokens=5", "今天天气很好，我们去公园吧。",
         "length_tokens", "12 words"},
        {"code counts", "length_tokens=3", "Here:\n```\nx = 1\ny = 2\n```", "length_tokens", NULL},
        {"markup does not", "length_tokens=3", "## Title\n\n- **a**\n- *b*", "", NULL},
    };
    struct cairn_validate_opts o = opts(CAIRN_COUNT_WORDS, 0.1);
    check_rows(rows, NELEM(rows), &o);

    struct cairn_violations v;
    run("length_tokens=10", "a b c d e f g h i j k l", &o, &v);
    assert_int_equal(v.n, 1);
    assert_string_equal(v.items[0].expected, "at most 10 words");
    assert_true(v.items[0].excess > 0.19 && v.items[0].excess < 0.21);

    o = opts(CAIRN_COUNT_CHARACTERS, 0);
    run("length_tokens=4", "abc de", &o, &v);
    assert_int_equal(v.n, 1);
    assert_string_equal(v.items[0].expected, "at most 4 characters");
    assert_string_equal(v.items[0].observed, "5 characters");

    o = opts(CAIRN_COUNT_TOKENS, 0);
    run("length_tokens=1", "Hello world", &o, &v);
    assert_int_equal(v.n, 1);
    assert_string_equal(v.items[0].expected, "at most 1 token");
    assert_string_equal(v.items[0].observed, "2 tokens");
}

static void test_sentences(void **state)
{
    (void)state;
    static const struct {
        const char *name, *text;
        size_t want;
    } rows[] = {
        {"three", "One. Two! Three?", 3},
        {"no terminator at the end", "One. Two", 2},
        {"abbreviations", "Use a tool, e.g. a hammer. Ask Dr. Smith about it.", 2},
        {"decimal and domain", "Pi is 3.14 and the site is example.com today. Yes.", 2},
        {"initials", "J. R. R. Tolkien wrote it. It is long.", 2},
        {"small letter after a dot", "It costs approx. ten euros, i.e. cheap. Fine.", 2},
        {"ellipsis", "Wait... What? Really.", 3},
        {"quotes after the end", "He said \"stop.\" Then he left.", 2},
        {"cjk", "今天天气很好。我们去公园吧！你呢？", 3},
        {"cjk without spaces after", "東京は大きい。大阪も大きい。", 2},
        {"arabic", "مرحبا بكم. كيف حالك؟ أنا بخير.", 3},
        {"hindi danda", "यह एक वाक्य है। यह दूसरा है।", 2},
        {"list items", "Steps:\n- open the lid\n- pour the water\n- close it", 4},
        {"numbered list is no sentence end", "1. First thing.\n2. Second thing.", 2},
        {"heading is no sentence", "## Summary\n\nIt works. It is fast.", 2},
        {"code is no sentence", "Run this.\n```\nx = 1. y = 2. z = 3.\n```\nDone.", 2},
        {"table rows are none", "Data:\n| a | b |\n|---|---|\n| 1 | 2 |", 1},
        {"wrapped line", "This sentence goes on\nover two lines. Next.", 2},
        {"only punctuation", "...", 0},
        {"blank line ends a fragment", "Title without dot\n\nBody text.", 2},
        {"no end inside brackets", "Use the default (why change it?) unless taken. Then go.", 2},
        {"lines without terminators", "Hello there\nHow are you\nI am fine", 3},
        {"comma continues a line", "First we mix,\nThen we bake.", 1},
        {"setext heading", "Title\n=====\n\nBody one. Body two.", 2},
        {"month abbreviation", "The meeting is on Jan. 5 at noon.", 1},
        {"year at the end", "It opened in 1998. It closed in 2015.", 2},
    };
    /* The shipped sentence rules, read as the validator reads them. */
    char err[256];
    cJSON *root =
        cairn_json_load_file(UNIT_RULES "/validation.json", 1 << 20, 16, err, sizeof(err));
    assert_non_null(root);
    struct cairn_sentence_rules *r = cairn_sentence_rules_load(
        cJSON_GetObjectItemCaseSensitive(root, "sentences"), "sentences", err, sizeof(err));
    cJSON_Delete(root);
    assert_non_null(r);
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        size_t len = strlen(rows[i].text);
        char *copy = dup_exact(rows[i].text, len);
        struct cairn_answer a;
        cairn_answer_scan(&a, copy, len);
        size_t got = cairn_answer_sentences(&a, r, len);
        cairn_answer_free(&a);
        free(copy);
        check(got == rows[i].want, rows[i].name, "%zu sentences, expected %zu", got, rows[i].want);
    }
    rows_end();
    cairn_sentence_rules_free(r);

    static const struct row limits[] = {
        {"within", "length_sentences=2", "One. Two.", "", NULL},
        {"over", "length_sentences=1", "One. Two. Three.", "length_sentences", "3 sentences"},
    };
    struct cairn_validate_opts o = opts(CAIRN_COUNT_WORDS, 0.1);
    check_rows(limits, NELEM(limits), &o);
}

static void test_paragraphs(void **state)
{
    (void)state;
    static const struct {
        const char *name, *text;
        size_t want;
    } rows[] = {
        {"one", "Just one paragraph\nover two lines.", 1},
        {"two", "First.\n\nSecond.", 2},
        {"blank lines with spaces", "First.\n   \n\t\nSecond.", 2},
        {"fence inside", "Look:\n```\na\n\nb\n```\nDone.", 1},
        {"fence alone belongs to the paragraph", "Intro.\n\n```go\nx\n\n\ny\n```\n\nOutro.", 2},
        {"only code", "```python\nprint(1)\n```", 1},
        {"headings are not paragraphs", "# Title\n\nBody.\n\n## More\n\nBody two.", 2},
        {"list is a paragraph", "Intro:\n\n- a\n- b\n\nOutro.", 3},
        {"rule is not", "One.\n\n---\n\nTwo.", 2},
        {"setext headings are not", "Title\n=====\n\nOne.\n\nSub\n---\n\nTwo.", 2},
        {"empty", "", 0},
    };
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct cairn_answer a;
        cairn_answer_scan(&a, rows[i].text, strlen(rows[i].text));
        size_t got = cairn_answer_paragraphs(&a);
        cairn_answer_free(&a);
        check(got == rows[i].want, rows[i].name, "%zu paragraphs, expected %zu", got, rows[i].want);
    }
    rows_end();

    static const struct row limits[] = {
        {"within", "length_paragraphs=2", "A.\n\nB.", "", NULL},
        {"over", "length_paragraphs=1", "A.\n\nB.\n\nC.", "length_paragraphs", "3 paragraphs"},
    };
    struct cairn_validate_opts o = opts(CAIRN_COUNT_WORDS, 0.1);
    check_rows(limits, NELEM(limits), &o);
}

static void test_fences(void **state)
{
    (void)state;
    const char *text = "a\n```Go {linenos}\nx\n```\n  ~~~~\ny\n~~~\n~~~~\n```c++\nunclosed";
    struct cairn_answer a;
    cairn_answer_scan(&a, text, strlen(text));
    assert_int_equal(a.nfences, 3);
    assert_string_equal(a.fences[0].info, "go");
    assert_true(a.fences[0].closed);
    assert_memory_equal(text + a.fences[0].body, "x\n", 2);
    /* "~~~" is shorter than the opening "~~~~": content, not the close. */
    assert_string_equal(a.fences[1].info, "");
    assert_true(a.fences[1].closed);
    assert_memory_equal(text + a.fences[1].body, "y\n~~~\n", 6);
    assert_string_equal(a.fences[2].info, "c++");
    assert_false(a.fences[2].closed);
    assert_int_equal(a.fences[2].end, strlen(text));
    cairn_answer_free(&a);

    /* More fences than fit inline. */
    struct sbuf b = {0};
    sb_repeat(&b, "```\ncode\n```\ntext\n", 40);
    cairn_answer_scan(&a, b.p, b.len);
    assert_int_equal(a.nfences, 40);
    assert_int_equal(cairn_answer_paragraphs(&a), 1);
    cairn_answer_free(&a);
    free(b.p);
}

static void test_bucket(void **state)
{
    (void)state;
    struct sbuf w350 = {0}, w1200 = {0};
    sb_repeat(&w350, "word ", 350);
    sb_repeat(&w1200, "word ", 1200);
    struct row rows[] = {
        {"concise ok", "length_bucket=concise", "A short answer.", "", NULL},
        {"concise too long", "length_bucket=concise", w350.p, "length_bucket", "350 words"},
        {"medium ok", "length_bucket=medium", w350.p, "", NULL},
        {"medium too short", "length_bucket=medium", "Too short.", "length_bucket", "2 words"},
        {"medium too long", "length_bucket=medium", w1200.p, "length_bucket", NULL},
        {"long ok", "length_bucket=long", w1200.p, "", NULL},
        {"long too short", "length_bucket=long", w350.p, "length_bucket", NULL},
    };
    struct cairn_validate_opts o = opts(CAIRN_COUNT_WORDS, 0.1);
    check_rows(rows, NELEM(rows), &o);

    struct cairn_violations v;
    run("length_bucket=concise", w350.p, &o, &v);
    assert_string_equal(v.items[0].expected, "at most 299 words (concise)");
    run("length_bucket=medium", "Too short.", &o, &v);
    assert_string_equal(v.items[0].expected, "300 to 1000 words (medium)");
    run("length_bucket=long", w350.p, &o, &v);
    assert_string_equal(v.items[0].expected, "at least 1001 words (long)");
    /* The tolerance widens both edges: 280 words pass as medium at 10%. */
    struct sbuf w280 = {0};
    sb_repeat(&w280, "word ", 280);
    run("length_bucket=medium", w280.p, &o, &v);
    assert_int_equal(v.n, 0);
    free(w280.p);
    free(w350.p);
    free(w1200.p);
}

/* ---- formats ----------------------------------------------------------- */

static void test_format(void **state)
{
    (void)state;
    static const struct row rows[] = {
        /* JSON */
        {"json bare", "format=JSON", " {\"a\": [1, 2, {\"b\": null}]}\n", "", NULL},
        {"json array", "format=JSON", "[1, 2, 3]", "", NULL},
        {"json fenced with prose", "format=JSON",
         "Here it is:\n```json\n{\"name\": \"Ada\"}\n```\nHope it helps.", "", NULL},
        {"json in an unlabelled fence", "format=JSON", "```\n{\"a\": 1}\n```", "", NULL},
        {"json truncated", "format=JSON", "{\"a\": [1, 2", "format", "not valid JSON"},
        {"json truncated fence", "format=JSON", "```json\n{\"a\": 1,\n", "format",
         "not valid JSON"},
        {"json trailing prose", "format=JSON", "{\"a\": 1} I hope this helps!", "format",
         "not valid JSON"},
        {"json duplicate keys", "format=JSON", "{\"a\": 1, \"a\": 2}", "format", "not valid JSON"},
        {"json scalar", "format=JSON", "42", "format", "no JSON"},
        {"json quoted scalar", "format=JSON", "```json\n\"hello\"\n```", "format", "no JSON"},
        {"json prose only", "format=JSON", "The name is Ada.", "format", "no JSON"},
        {"json single quotes", "format=JSON", "{'a': 1}", "format", "not valid JSON"},
        /* XML */
        {"xml bare", "format=XML", "<?xml version=\"1.0\"?>\n<a><b x=\"1\">t</b></a>", "", NULL},
        {"xml fenced", "format=XML", "Sure:\n```xml\n<root><item/></root>\n```", "", NULL},
        {"xml mismatched", "format=XML", "<a><b></a></b>", "format", "mismatched tag"},
        {"xml two roots", "format=XML", "<a/><b/>", "format", "not valid XML"},
        {"xml none", "format=XML", "No markup at all.", "format", "no XML"},
        {"xml truncated", "format=XML", "<root><item>1</item><item>", "format", "not valid XML"},
        /* Tabular */
        {"table", "format=Tabular", "| Name | Age |\n|------|----:|\n| Ada | 36 |", "", NULL},
        {"table without outer pipes", "format=Tabular", "Name | Age\n--- | ---\nAda | 36", "",
         NULL},
        {"table html", "format=Tabular", "<table><tr><td>1</td></tr></table>", "", NULL},
        {"table ascii art", "format=Tabular", "+----+----+\n| a  | b  |\n+----+----+", "", NULL},
        {"table tab separated", "format=Tabular", "a\tb\n1\t2\n3\t4", "", NULL},
        {"html without rows", "format=Tabular", "<table><caption>x</caption></table>", "format",
         NULL},
        {"table header only", "format=Tabular", "| Name | Age |\n|---|---|", "format", "no table"},
        {"table in code", "format=Tabular", "```\n| a | b |\n|---|---|\n| 1 | 2 |\n```", "format",
         "no table"},
        {"table none", "format=Tabular", "Ada is 36 years old.", "format", "no table"},
        /* Enumeration */
        {"bullets", "format=Enumeration", "Fruits:\n- apple\n- pear", "", NULL},
        {"numbers", "format=Enumeration", "1. one\n2) two", "", NULL},
        {"letters", "format=Enumeration", "a. one\nb. two", "", NULL},
        {"bracketed numbers", "format=Enumeration", "(1) one\n(2) two", "", NULL},
        {"cjk numbers", "format=Enumeration", "1、苹果\n2、梨", "", NULL},
        {"nested bullets", "format=Enumeration", "* a\n  * b", "", NULL},
        {"one item", "format=Enumeration", "- only one", "format", "1 list item"},
        {"prose", "format=Enumeration", "Apples and pears.", "format", "no list"},
        {"rule is no list", "format=Enumeration", "---\n***", "format", "no list"},
        /* Markdown */
        {"heading", "format=Markdown", "# Title\ntext", "", NULL},
        {"bold", "format=Markdown", "This is **important**.", "", NULL},
        {"link", "format=Markdown", "See [docs](https://example.com).", "", NULL},
        {"fence", "format=Markdown", "```\ncode\n```", "", NULL},
        {"inline code", "format=Markdown", "Call `f()` first.", "", NULL},
        {"plain", "format=Markdown", "Just a plain sentence, 2 * 3 = 6.", "format", "plain text"},
        {"snake case is no emphasis", "format=Markdown", "Set my_var_name to 1.", "format", NULL},
        /* Latex */
        {"inline math", "format=Latex", "The area is $\\pi r^2$.", "", NULL},
        {"display math", "format=Latex", "$$\\int_0^1 x\\,dx$$", "", NULL},
        {"brackets", "format=Latex", "\\[ a^2 + b^2 = c^2 \\]", "", NULL},
        {"command", "format=Latex", "x = \\frac{1}{2}", "", NULL},
        {"environment", "format=Latex", "\\begin{align} x &= 1 \\end{align}", "", NULL},
        {"prices are not math", "format=Latex", "It costs $5 and $10 later.", "format", "no LaTeX"},
        {"plain math", "format=Latex", "x = 1/2", "format", "no LaTeX"},
        /* MCQAnswer */
        {"letter alone", "format=MCQAnswer", "B", "", NULL},
        {"parenthesised", "format=MCQAnswer", "(C)", "", NULL},
        {"bold letter", "format=MCQAnswer", "**D**", "", NULL},
        {"answer colon", "format=MCQAnswer", "Answer: B", "", NULL},
        {"bold label", "format=MCQAnswer", "**Answer:** (A) Paris", "", NULL},
        {"option alone", "format=MCQAnswer", "Option D.", "", NULL},
        {"it is", "format=MCQAnswer", "I think it's B.", "", NULL},
        {"lower case in brackets", "format=MCQAnswer", "The correct option is (b).", "", NULL},
        {"starts with choice", "format=MCQAnswer", "C) Paris is the capital of France.", "", NULL},
        {"the answer is", "format=MCQAnswer", "After checking, the correct answer is (A).", "",
         NULL},
        {"option is correct", "format=MCQAnswer", "Option B is correct because ...", "", NULL},
        {"french", "format=MCQAnswer", "La bonne réponse est C.", "", NULL},
        {"chinese", "format=MCQAnswer", "答案是B。", "", NULL},
        {"japanese", "format=MCQAnswer", "正解はC です。", "", NULL},
        {"russian", "format=MCQAnswer", "Ответ: Б", "", NULL},
        {"no choice", "format=MCQAnswer", "Paris is the capital of France.", "format", "no choice"},
        {"article is no choice", "format=MCQAnswer", "The answer is a bit complicated.", "format",
         NULL},
        {"options listed only", "format=MCQAnswer", "Options:\nA) 1\nB) 2", "format", NULL},
        /* ChainOfThought */
        {"cot", "format=ChainOfThought",
         "First, 3 apples plus 2 apples is 5. Then we eat 1. Therefore 4 apples remain.", "", NULL},
        {"cot steps as lines", "format=ChainOfThought",
         "Step 1: x = 2\nStep 2: y = x + 1 = 3\nSo the answer is 3.", "", NULL},
        {"cot chinese", "format=ChainOfThought", "首先，2加2等于4。然后乘以3得12。因此答案是12。",
         "", NULL},
        {"cot french", "format=ChainOfThought",
         "On a 3 pommes. On en ajoute 2, ce qui fait 5. Donc il y a 5 pommes.", "", NULL},
        {"cot arrow", "format=ChainOfThought", "3 + 4 = 7\n7 * 2 = 14\n=> 14", "", NULL},
        {"cot conclusion first", "format=ChainOfThought",
         "The answer is 42. It is 6 times 7, the two factors given.", "format", "0 steps"},
        {"cot no conclusion", "format=ChainOfThought", "First do this. Then do that. Done.",
         "format", "no conclusion"},
        {"cot bare answer", "format=ChainOfThought", "Therefore, 4.", "format", "0 steps before"},
        {"cot one step", "format=ChainOfThought", "2 + 2 = 4. Therefore 4.", "format",
         "1 step before"},
    };
    struct cairn_validate_opts o = opts(CAIRN_COUNT_WORDS, 0.1);
    check_rows(rows, NELEM(rows), &o);
}

static void test_json_depth(void **state)
{
    (void)state;
    struct cairn_validate_opts o = opts(CAIRN_COUNT_WORDS, 0.1);
    o.json_depth = 3;
    struct cairn_violations v;
    run("format=JSON", "{\"a\":{\"b\":{\"c\":1}}}", &o, &v);
    assert_int_equal(v.n, 0);
    run("format=JSON", "{\"a\":{\"b\":{\"c\":{\"d\":1}}}}", &o, &v);
    assert_int_equal(v.n, 1);
    assert_non_null(strstr(v.items[0].observed, "nesting deeper than 3"));
}

/* ---- lang -------------------------------------------------------------- */

static void test_lang(void **state)
{
    (void)state;
    static const struct row rows[] = {
        {"french ok", "lang=French",
         "Le chat dort sur le canapé pendant que nous préparons le dîner.", "", NULL},
        {"english for french", "lang=French",
         "The cat sleeps on the sofa while we are cooking dinner tonight.", "lang", "English"},
        {"spanish ok", "lang=Spanish",
         "El gato duerme en el sofá mientras nosotros preparamos la cena de esta noche.", "", NULL},
        {"portuguese for spanish", "lang=Spanish",
         "O gato está dormindo no sofá enquanto nós preparamos o jantar desta noite.", "lang",
         "Portuguese"},
        {"russian ok", "lang=Russian",
         "Кошка спит на диване, пока мы готовим ужин сегодня вечером.", "", NULL},
        {"ukrainian for russian", "lang=Russian",
         "Кішка спить на дивані, поки ми готуємо вечерю сьогодні ввечері.", "lang", "Ukrainian"},
        {"chinese ok", "lang=Chinese", "今天天气很好，我们一起去公园散步吧。", "", NULL},
        {"japanese for chinese", "lang=Chinese",
         "今日はとても良い天気なので、公園を散歩しましょう。", "lang", "Japanese"},
        {"korean ok", "lang=Korean", "오늘은 날씨가 좋아서 공원에 산책하러 갑시다.", "", NULL},
        {"arabic ok", "lang=Arabic", "الطقس جميل اليوم، لنذهب إلى الحديقة.", "", NULL},
        {"too short to tell", "lang=French", "OK.", "", NULL},
        {"code is not prose", "lang=French",
         "Voici la fonction demandée, elle calcule la somme des éléments :\n```python\n"
         "def total(items):\n    # add up every item in the list and return it\n"
         "    return sum(items)\n```",
         "", NULL},
        {"urls and inline code are not prose", "lang=German",
         "Die Funktion `get_user_by_id()` ist unter https://example.com/docs/get-user-by-id "
         "beschrieben und gibt den Benutzer zurück.",
         "", NULL},
        {"json answer has no prose", "lang=French", "{\"name\": \"The quick brown fox\"}", "",
         NULL},
        {"markdown markup", "lang=Italian",
         "## Risposta\n\n- **Roma** è la capitale d'Italia e la città più grande del paese.", "",
         NULL},
    };
    struct cairn_validate_opts o = opts(CAIRN_COUNT_WORDS, 0.1);
    check_rows(rows, NELEM(rows), &o);
}

static void test_prose(void **state)
{
    (void)state;
    const char *text = "# Title\n\nSee `code` at https://x.y/z and <b>bold</b> [link](http://a.b)."
                       "\n\n    indented code\n\n| a | b |\n|---|---|\n> quote\n```\nfenced\n```\n";
    struct cairn_answer a;
    cairn_answer_scan(&a, text, strlen(text));
    char out[256];
    size_t n = cairn_answer_prose(&a, out, sizeof(out));
    cairn_answer_free(&a);
    assert_int_equal(n, strlen(out));
    assert_null(strstr(out, "code"));
    assert_null(strstr(out, "http"));
    assert_null(strstr(out, "fenced"));
    assert_null(strstr(out, "<b>"));
    assert_null(strstr(out, "#"));
    assert_non_null(strstr(out, "Title"));
    assert_non_null(strstr(out, "bold"));
    assert_non_null(strstr(out, "link"));
    assert_non_null(strstr(out, "quote"));

    /* A small buffer holds whole characters and is NUL-terminated. */
    const char *cjk = "日本語のテキストです";
    cairn_answer_scan(&a, cjk, strlen(cjk));
    char small[8];
    n = cairn_answer_prose(&a, small, sizeof(small));
    cairn_answer_free(&a);
    assert_true(n <= 7 && n % 3 == 0);
    assert_int_equal(strlen(small), n);
}

/* ---- code_type --------------------------------------------------------- */

static void test_code_type(void **state)
{
    (void)state;
    static const struct row rows[] = {
        {"declared go", "code_type=go", "```go\nfmt.Println(1)\n```", "", NULL},
        {"alias golang", "code_type=go", "```golang\nx := 1\n```", "", NULL},
        {"alias js", "code_type=javascript", "```js\nlet x = 1\n```", "", NULL},
        {"alias py", "code_type=python", "```py\nx = 1\n```", "", NULL},
        {"alias c++", "code_type=cpp", "```c++\nint x;\n```", "", NULL},
        {"alias cs", "code_type=csharp", "```cs\nvar x = 1;\n```", "", NULL},
        {"alias sh", "code_type=shell", "```sh\nls -la\n```", "", NULL},
        {"alias bash", "code_type=shell", "```bash\nls -la\n```", "", NULL},
        {"alias ts", "code_type=typescript", "```ts\nlet x: number = 1\n```", "", NULL},
        {"alias kt", "code_type=kotlin", "```kt\nval x = 1\n```", "", NULL},
        {"alias rb", "code_type=ruby", "```rb\nputs 1\n```", "", NULL},
        {"alias hs", "code_type=haskell", "```hs\nmain = print 1\n```", "", NULL},
        {"upper case info", "code_type=python", "```Python\nx = 1\n```", "", NULL},
        {"wrong language", "code_type=go", "```python\nprint(1)\n```", "code_type", "python code"},
        {"no block", "code_type=go", "Use a loop over the slice.", "code_type", "no code block"},
        {"undeclared detected", "code_type=python",
         "```\nimport os\n\ndef main():\n    print(os.getcwd())\n```", "", NULL},
        {"undeclared other", "code_type=python",
         "```\npackage main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n```",
         "code_type", "go code"},
        {"undeclared unknown", "code_type=python", "```\nhello\n```", "", NULL},
        {"shebang", "code_type=shell", "```\n#!/bin/bash\necho hi\n```", "", NULL},
        {"shell beside python", "code_type=python",
         "Install:\n```bash\npip install x\n```\nThen:\n```python\nimport x\n```", "", NULL},
        {"declared other format", "code_type=go", "```json\n{\"a\": 1}\n```", "code_type",
         "```json block"},
        {"unfenced code of the language", "code_type=go",
         "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tx := 1\n\tfmt.Println(x)\n}", "",
         NULL},
        {"unfenced other language", "code_type=go",
         "def f(x):\n    return x\n\nprint(f(1))\nimport os", "code_type", "python code outside"},
        {"truncated block", "code_type=rust", "```rust\nfn main() {\n    let mut x = 1;", "", NULL},
        {"empty block", "code_type=go", "```go\n```", "code_type", "no code block"},
        {"c for cpp", "code_type=cpp", "```c\nint main(void) { return 0; }\n```", "code_type",
         "c code"},
    };
    struct cairn_validate_opts o = opts(CAIRN_COUNT_WORDS, 0.1);
    check_rows(rows, NELEM(rows), &o);
}

/* ---- selection, several markers, bad input ------------------------------ */

static void test_selection(void **state)
{
    (void)state;
    struct cairn_validate_opts o = opts(CAIRN_COUNT_WORDS, 0);
    struct cairn_violations v;
    const char *answer = "The cat sleeps on the sofa while we are cooking dinner tonight.";
    run("lang=French; format=JSON; length_tokens=3; task=Translation", answer, &o, &v);
    assert_int_equal(v.n, 3); /* task has no validator */
    /* In taxonomy order: format, lang, length_tokens. */
    assert_string_equal(tx.tags[v.items[0].tag].key, "format");
    assert_string_equal(tx.tags[v.items[1].tag].key, "lang");
    assert_string_equal(tx.tags[v.items[2].tag].key, "length_tokens");

    o.tags &= ~(UINT32_C(1) << cairn_taxonomy_key(&tx, "lang"));
    run("lang=French; format=JSON; length_tokens=3", answer, &o, &v);
    assert_int_equal(v.n, 2);

    o.tags = 0;
    run("lang=French; format=JSON; length_tokens=3", answer, &o, &v);
    assert_int_equal(v.n, 0);

    assert_true(cairn_validator_has(val, "format"));
    assert_true(cairn_validator_has(val, "length_bucket"));
    assert_false(cairn_validator_has(val, "task"));
    assert_false(cairn_validator_has(val, "quality"));
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    struct cairn_validate_opts o = opts(CAIRN_COUNT_WORDS, 0);
    struct cairn_markers m;
    markers_of("format=Markdown; lang=English; length_tokens=2; code_type=go", &m);
    static const char bad[] = "caf\xC3 au \xFF\xFE lait **x**\n```\n\xE2\x82\n```";
    char *copy = dup_exact(bad, sizeof(bad) - 1);
    struct cairn_violations v;
    cairn_validate(val, &m, copy, sizeof(bad) - 1, &o, &v);
    free(copy);
    /* Only length_tokens: the Markdown holds, the prose is too short to
     * tell, and the block's "?" is no code anyone can name. */
    assert_int_equal(v.n, 1);
    assert_int_equal(cairn_utf8_valid(bad, sizeof(bad) - 1), 3);
    assert_int_equal(cairn_utf8_valid("\xED\xA0\x80", 3), 0); /* a surrogate */
    assert_int_equal(cairn_utf8_valid("\xC0\xAF", 2), 0);     /* overlong */
    assert_int_equal(cairn_utf8_valid("ok \xF0\x9F\x91\x8D", 7), 7);
}

/* ---- reporting --------------------------------------------------------- */

static void test_feedback(void **state)
{
    (void)state;
    struct cairn_validate_opts o = opts(CAIRN_COUNT_WORDS, 0);
    struct cairn_violations v;
    char out[1024];
    struct {
        const char *name, *markers, *answer, *want;
    } rows[] = {
        {"length", "length_tokens=3", "one two three four",
         "Your previous answer had 4 words; answer again in at most 3 words."},
        {"sentences", "length_sentences=1", "One. Two.",
         "Your previous answer had 2 sentences; answer again in at most 1 sentence."},
        {"paragraphs", "length_paragraphs=1", "A.\n\nB.",
         "Your previous answer had 2 paragraphs; answer again in at most 1 paragraph."},
        {"bucket", "length_bucket=medium", "Too short.",
         "Your previous answer had 2 words; answer again in 300 to 1000 words."},
        {"json", "format=JSON", "nope",
         "Your previous answer was not valid JSON; answer again with only valid JSON."},
        {"lang", "lang=French", "The cat sleeps on the sofa while we are cooking dinner tonight.",
         "Your previous answer was in English; answer again in French."},
        {"code", "code_type=go", "No code.",
         "Your previous answer had no code block; answer again with go code in a ```go "
         "block."},
        {"two", "length_tokens=1; format=Tabular", "one two",
         "Your previous answer had no table; answer again with the answer as a Markdown "
         "table. Your previous answer had 2 words; answer again in at most 1 word."},
    };
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        run(rows[i].markers, rows[i].answer, &o, &v);
        cairn_violations_feedback(&v, out, sizeof(out));
        check(strcmp(out, rows[i].want) == 0, rows[i].name, "\"%s\"", out);
    }
    rows_end();

    /* Only whole instructions fit: the second is dropped, not cut. */
    run("length_tokens=1; format=Tabular", "one two", &o, &v);
    char small[100];
    cairn_violations_feedback(&v, small, sizeof(small));
    assert_string_equal(small,
                        "Your previous answer had no table; answer again with the answer as a "
                        "Markdown table.");
    char none[4] = "xyz";
    v.n = 0;
    cairn_violations_feedback(&v, none, sizeof(none));
    assert_string_equal(none, "");
}

static void test_compare(void **state)
{
    (void)state;
    struct cairn_violations a = {0}, b = {0};
    assert_int_equal(cairn_violations_compare(&a, &b), 0);
    b.n = 1;
    b.items[0].excess = 0.1;
    assert_true(cairn_violations_compare(&a, &b) < 0);
    assert_true(cairn_violations_compare(&b, &a) > 0);
    a.n = 1;
    a.items[0].excess = 0.5;
    assert_true(cairn_violations_compare(&a, &b) > 0); /* same count, more excess */
    a.items[0].excess = 0.1;
    assert_int_equal(cairn_violations_compare(&a, &b), 0);
    a.n = 2;
    a.items[1].excess = 0;
    assert_true(cairn_violations_compare(&a, &b) > 0); /* more violations lose */

    /* Real attempts: 40% over beats 300% over. */
    struct cairn_validate_opts o = opts(CAIRN_COUNT_WORDS, 0);
    run("length_tokens=5", "a b c d e f g", &o, &a);
    run("length_tokens=5", "a b c d e f g h i j k l m n o p q r s t", &o, &b);
    assert_true(cairn_violations_compare(&a, &b) < 0);
}

static void test_to_json(void **state)
{
    (void)state;
    struct cairn_validate_opts o = opts(CAIRN_COUNT_WORDS, 0);
    struct cairn_violations v;
    run("format=XML; length_tokens=1", "<a>one two</b>", &o, &v);
    cJSON *arr = cJSON_CreateArray();
    cairn_violations_to_json(&v, &tx, arr);
    size_t n;
    char *text = cairn_json_print(arr, &n);
    assert_string_equal(text, "[{\"marker\":\"format\",\"expected\":\"XML\",\"observed\":\"not "
                              "valid XML (line 1: mismatched tag)\"},{\"marker\":\"length_"
                              "tokens\",\"expected\":\"at most 1 word\",\"observed\":\"2 "
                              "words\"}]");
    free(text);
    cJSON_Delete(arr);
}

/* ---- load errors ------------------------------------------------------- */

static void test_load_errors(void **state)
{
    (void)state;
    static const struct unit_load_case cases[] = {
        {"unknown key", "validation.json", "\"sentences\": {", "\"bogus\": 1, \"sentences\": {",
         "validation.json: bogus: unknown key", NULL},
        {"bad pattern", "validation.json", "\"markdown\": [\n", "\"markdown\": [\n   \"(\",\n",
         "validation.json: formats.markdown[0]: PCRE2 error", NULL},
        {"bad min_steps", "validation.json", "\"min_steps\": 2", "\"min_steps\": 0",
         "validation.json: formats.min_steps: must be an integer", NULL},
        {"unknown format key", "validation.json", "\"markdown\": [",
         "\"yaml\": [\"x\"], "
         "\"markdown\": [",
         "validation.json: formats.yaml: unknown key", NULL},
        {"bad bucket value", "validation.json", "\"concise\": [", "\"brief\": [",
         "validation.json: length_buckets.brief", "is not a value of marker 'length_bucket'"},
        {"bad bucket range", "validation.json", "[300, 1000]", "[1000, 300]",
         "validation.json: length_buckets.medium: must be [min, max]", NULL},
        {"abbreviation with dot", "validation.json", "\"e.g\"", "\"e.g.\"",
         "validation.json: sentences.abbreviations[0]", NULL},
        {"empty terminators", "validation.json", "\"terminators\": \".",
         "\"terminators\": \"\", "
         "\"x\": \".",
         "validation.json: sentences", NULL},
        {"unknown code type", "annotator.json", "\"value\": \"cobol\"", "\"value\": \"fortran\"",
         "annotator.json: code_types[", "\"fortran\" is not a value of marker 'code_type'"},
        {"bad syntax pattern", "annotator.json", "\"syntax\": [", "\"syntax\": [\"(\", ",
         "annotator.json: code_types[0].syntax[0]: PCRE2 error", NULL},
        {"unknown script", "languages.json", "\"script\": \"greek\"", "\"script\": \"runic\"",
         "languages.json: scripts[", ".script: must be one of"},
        {"invalid JSON", "validation.json", "{", "{,", "validation.json", NULL},
    };
    unit_load_errors(&tx, &validator, cases, NELEM(cases));
}

/* ---- cairn validate ----------------------------------------------------- */

static void test_stream(void **state)
{
    (void)state;
    const char *input =
        "{\"id\":1,\"markers\":{\"length_tokens\":3,\"format\":\"json\"},\"response\":"
        "\"{\\\"a\\\": 1}\"}\n"
        "\n"
        "{\"id\":\"b\",\"markers\":{\"lang\":\"French\"},\"response\":\"<MARKER_LIST>\\n"
        "<lang>English</lang>\\n</MARKER_LIST>\\nLe chat dort sur le canapé pendant que nous "
        "préparons le dîner.\"}\n"
        "not json\n"
        "{\"id\":3,\"markers\":{\"mood\":\"happy\"},\"response\":\"x\"}\n"
        "{\"id\":4,\"markers\":{\"format\":\"YAML\"},\"response\":\"x\"}\n"
        "{\"id\":5,\"markers\":{\"length_tokens\":true},\"response\":\"x\"}\n"
        "{\"id\":6,\"markers\":{},\"response\":7}\n"
        "{\"id\":7,\"response\":\"x\"}\n"
        "[1]\n"
        "{\"markers\":{\"length_tokens\":\"2\",\"task\":\"Rewrite\"},\"response\":\"one two "
        "three\"}\r\n";
    FILE *in = fmemopen((void *)input, strlen(input), "r");
    assert_non_null(in);
    char *out_buf = NULL;
    size_t out_len = 0;
    FILE *out = open_memstream(&out_buf, &out_len);
    assert_non_null(out);
    struct cairn_config defaults;
    char why[256] = "";
    cairn_config_defaults(&defaults);
    int rc = cairn_validate_cli_run(&defaults, in, out, why, sizeof(why));
    cairn_config_free(&defaults);
    fclose(in);
    fclose(out);
    assert_int_equal(rc, 0);
    const char *want = "{\"id\":1,\"violations\":[]}\n"
                       "{\"id\":\"b\",\"violations\":[]}\n"
                       "{\"error\":\"invalid JSON at byte 0\"}\n"
                       "{\"id\":3,\"error\":\"markers.mood: not a tag of the taxonomy\"}\n"
                       "{\"id\":4,\"error\":\"markers.format: ";
    assert_memory_equal(out_buf, want, strlen(want));
    const char *rest = strstr(out_buf, "{\"id\":5,");
    assert_non_null(rest);
    const char *want_rest =
        "{\"id\":5,\"error\":\"markers.length_tokens: must be a string or a number\"}\n"
        "{\"id\":6,\"error\":\"expected a \\\"response\\\" string\"}\n"
        "{\"id\":7,\"error\":\"expected a \\\"markers\\\" object\"}\n"
        "{\"error\":\"expected an object\"}\n"
        "{\"violations\":[{\"marker\":\"length_tokens\",\"expected\":\"at most 2 words\","
        "\"observed\":\"3 words\"}]}\n";
    assert_string_equal(rest, want_rest);
    free(out_buf);

    /* A broken rules directory is an error, not an empty run. */
    struct cairn_config cfg;
    cairn_config_defaults(&cfg);
    free(cfg.rules_dir);
    cfg.rules_dir = strdup("/nonexistent");
    char err[256] = "";
    assert_int_equal(cairn_validate_cli_run(&cfg, stdin, stdout, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent"));
    cairn_config_free(&cfg);
}

/* ---- hostile answers ---------------------------------------------------- */

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* Answers of 256 KB built from one repeated piece, each checked by every
 * validator and every format: each must finish (a pattern or scan that
 * goes quadratic on one of them would take minutes here) and stay inside
 * its buffers under ASan. */
static void test_hostile(void **state)
{
    (void)state;
    /* A piece repeated, then a tail that gives every opening its close
     * only at the very end (the worst case for a lazy pattern). */
    static const struct {
        const char *piece, *tail;
    } pieces[] = {
        {". ", ""},         {"e.g. ", ""},
        {"(", ")"},         {"<", ">"},
        {"|", ""},          {"| a | b |\n", ""},
        {"*", ""},          {"_a", "_"},
        {"$a", ""},         {"`", ""},
        {"\n", ""},         {"word ", ""},
        {"[x](", ")"},      {"\\[x ", "\\]"},
        {"\\(x ", "\\)"},   {"$$x ", "$$"},
        {"therefore ", ""}, {"因此", ""},
        {"```\n", ""},      {"- x\n", ""},
        {"a\tb\n", ""},     {"<table>", "<tr>"},
        {"answer ", "B"},   {"\xC3", ""},
        {"\xE2\x80", ""},   {"\xF0\x9F\x91", ""},
        {"**a ", "**"},     {"therefore\n```\n```\n", ""},
        {"`a ", "`"},
    };
    static const char *const formats[] = {"JSON",     "XML",   "Tabular",   "Enumeration",
                                          "Markdown", "Latex", "MCQAnswer", "ChainOfThought"};
    struct cairn_validate_opts o = opts(CAIRN_COUNT_TOKENS, 0.1);
    double worst = 0;
    const char *worst_piece = "";
    for (size_t i = 0; i < NELEM(pieces); i++) {
        struct sbuf b = {0};
        while (b.len < (256u << 10))
            sb_puts(&b, pieces[i].piece);
        sb_puts(&b, pieces[i].tail);
        char *copy = dup_exact(b.p, b.len);
        for (size_t f = 0; f < NELEM(formats); f++) {
            char spec[256];
            snprintf(spec, sizeof(spec),
                     "format=%s; lang=English; length_tokens=10; length_sentences=3; "
                     "length_paragraphs=2; length_bucket=long; code_type=go",
                     formats[f]);
            struct cairn_markers m;
            markers_of(spec, &m);
            struct cairn_violations v;
            double t0 = now_us();
            cairn_validate(val, &m, copy, b.len, &o, &v);
            double t = now_us() - t0;
            if (t > worst) {
                worst = t;
                worst_piece = pieces[i].piece;
            }
            assert_true(v.n <= 7);
        }
        free(copy);
        free(b.p);
    }
    char shown[32];
    size_t k = 0;
    for (const char *c = worst_piece; *c != '\0' && k + 3 < sizeof(shown); c++) {
        if (*c == '\n' || *c == '\t') {
            shown[k++] = '\\';
            shown[k++] = *c == '\n' ? 'n' : 't';
        } else {
            shown[k++] = *c;
        }
    }
    shown[k] = '\0';
    print_message("    hostile 256 KB answers: slowest %.0f us (piece \"%s\")\n", worst, shown);
}

/* ---- cost -------------------------------------------------------------- */

/* Every validator on a 4 KB Markdown answer with prose and code. Printed,
 * not asserted: a loaded CI machine must not fail the suite. */
static void test_cost(void **state)
{
    (void)state;
    struct sbuf b = {0};
    sb_puts(&b, "## Answer\n\n");
    while (b.len < 3000)
        sb_puts(&b, "The function reads the file line by line, e.g. with a buffered reader, "
                    "and counts the words in each line. It returns 3.5 on average.\n\n");
    sb_puts(&b, "```python\nimport sys\n\ndef count(path):\n    with open(path) as f:\n"
                "        return sum(len(l.split()) for l in f)\n\nprint(count(sys.argv[1]))\n"
                "```\n\n");
    while (b.len < 4096)
        sb_puts(&b, "- Therefore the total is the sum of the counts.\n");
    struct cairn_markers m;
    markers_of("length_tokens=150; length_sentences=10; length_paragraphs=3; "
               "length_bucket=concise; format=ChainOfThought; lang=English; code_type=python",
               &m);
    struct cairn_validate_opts o = opts(CAIRN_COUNT_WORDS, 0.1);
    struct cairn_violations v;
    cairn_validate(val, &m, b.p, b.len, &o, &v); /* warm up (JIT stacks, caches) */
    const int n = 2000;
    double t0 = now_us();
    for (int i = 0; i < n; i++)
        cairn_validate(val, &m, b.p, b.len, &o, &v);
    double per = (now_us() - t0) / n;
    print_message("    validate, %zu-byte answer, all 7 validators: %.1f us per answer "
                  "(%zu violations)\n",
                  b.len, per, v.n);
    /* The costly cases: an unlabelled block (its syntax scored), and a
     * choice looked for in vain over the whole answer. */
    char *label = strstr(b.p, "```python");
    memset(label + 3, ' ', 6);
    t0 = now_us();
    for (int i = 0; i < n; i++)
        cairn_validate(val, &m, b.p, b.len, &o, &v);
    print_message("    validate, same answer, its code block unlabelled: %.1f us\n",
                  (now_us() - t0) / n);
    markers_of("format=MCQAnswer", &m);
    t0 = now_us();
    for (int i = 0; i < n; i++)
        cairn_validate(val, &m, b.p, b.len, &o, &v);
    print_message("    validate, same answer, format=MCQAnswer alone and missed: %.1f us\n",
                  (now_us() - t0) / n);
    free(b.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_length),  cmocka_unit_test(test_count_thai),
        cmocka_unit_test(test_length_tokens), cmocka_unit_test(test_sentences),
        cmocka_unit_test(test_paragraphs),    cmocka_unit_test(test_fences),
        cmocka_unit_test(test_bucket),        cmocka_unit_test(test_format),
        cmocka_unit_test(test_json_depth),    cmocka_unit_test(test_lang),
        cmocka_unit_test(test_prose),         cmocka_unit_test(test_code_type),
        cmocka_unit_test(test_selection),     cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_feedback),      cmocka_unit_test(test_compare),
        cmocka_unit_test(test_to_json),       cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_stream),        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_cost),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
