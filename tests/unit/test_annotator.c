/*
 * test_annotator.c — unit tests for the rule annotator (annotator.h) with
 * the shipped rules/, and for `cairn annotate` (annotate_cli.h).
 *
 * Table rows give a conversation (an OpenAI messages array as JSON) and the
 * markers expected: "tag=value" must be set to exactly that value, "-tag"
 * must have no value; tags a row does not name are not checked. Load errors
 * run against a temporary copy of rules/ with one file patched, and check
 * that the message names the file and the key path.
 */
#include "unit.h"

#include <stdio.h>

#include "annotate_cli.h"
#include "annotator.h"
#include "json_strict.h"
#include "jsonl.h"
#include "markers.h"
#include "taxonomy.h"

static struct cairn_taxonomy tx;
static struct cairn_annotator *ann;

static void *load_annotator(const struct cairn_taxonomy *t, const char *dir, char *err,
                            size_t errlen)
{
    return cairn_annotator_load(t, dir, err, errlen);
}

static void free_annotator(void *a)
{
    cairn_annotator_free(a);
}

static const struct unit_module annotator = {load_annotator, free_annotator};

static int setup(void **state)
{
    (void)state;
    ann = unit_rules_setup(&tx, &annotator);
    return ann != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    unit_rules_teardown(&tx, &annotator, ann);
    return 0;
}

struct row {
    const char *name;
    const char *messages; /* JSON array */
    const char *expect;   /* "tag=value tag=value -tag" */
};

/* One user message. */
#define U(text) "[{\"role\":\"user\",\"content\":\"" text "\"}]"

static void annotate(const char *messages_json, struct cairn_markers *m)
{
    char err[256];
    cJSON *messages =
        cairn_json_parse_strict(messages_json, strlen(messages_json), 64, err, sizeof(err));
    assert_non_null(messages);
    cairn_markers_init(m, &tx);
    cairn_annotator_run(ann, messages, m);
    cJSON_Delete(messages);
}

static void check_rows(const struct row *rows, size_t n)
{
    rows_begin();
    for (size_t i = 0; i < n; i++) {
        struct cairn_markers m;
        annotate(rows[i].messages, &m);
        char expect[512];
        snprintf(expect, sizeof(expect), "%s", rows[i].expect);
        for (char *save = NULL, *tok = strtok_r(expect, " ", &save); tok != NULL;
             tok = strtok_r(NULL, " ", &save)) {
            if (tok[0] == '-') {
                const char *got = cairn_markers_get(&m, tok + 1);
                check(got == NULL, rows[i].name, "%s: expected no value, got %s", tok + 1, got);
                continue;
            }
            char *eq = strchr(tok, '=');
            assert_non_null(eq);
            *eq = '\0';
            const char *got = cairn_markers_get(&m, tok);
            check(got != NULL && strcmp(got, eq + 1) == 0, rows[i].name, "%s: expected %s, got %s",
                  tok, eq + 1, got ? got : "(none)");
        }
    }
    rows_end();
}

static void test_lengths(void **state)
{
    (void)state;
    static const struct row rows[] = {
        {"en words", U("Explain photosynthesis in under 150 words."),
         "length_tokens=150 length_bucket=concise -length_sentences"},
        {"en sentences", U("Describe Paris in no more than 3 sentences."),
         "length_sentences=3 length_bucket=concise -length_tokens"},
        {"en paragraphs word", U("Write two paragraphs about dogs."), "length_paragraphs=2"},
        {"en tokens", U("Answer in at most 200 tokens."), "length_tokens=200"},
        {"en separator", U("Write an essay in about 1,500 words."),
         "length_tokens=1500 length_bucket=long"},
        {"en medium", U("Write a 500-word essay on climate policy."),
         "length_tokens=500 length_bucket=medium"},
        {"en one sentence", U("Summarize the plot of Hamlet in one sentence."),
         "length_sentences=1 length_bucket=concise"},
        {"fr", U("Explique la photosynthèse en moins de 100 mots."), "length_tokens=100"},
        {"fr number word", U("Résume ce texte en deux phrases."), "length_sentences=2"},
        {"es", U("Describe Madrid en máximo 50 palabras."), "length_tokens=50"},
        {"de", U("Beschreibe Berlin in höchstens 80 Wörtern."), "length_tokens=80"},
        {"de number word", U("Fasse den Artikel in zwei Sätzen zusammen."), "length_sentences=2"},
        {"it", U("Spiega la fotosintesi in meno di 120 parole."), "length_tokens=120"},
        {"pt", U("Explique a fotossíntese em no máximo 60 palavras."), "length_tokens=60"},
        {"nl", U("Leg fotosynthese uit in maximaal 70 woorden."), "length_tokens=70"},
        {"pl", U("Wyjaśnij fotosyntezę w maksymalnie 40 słowach."), "length_tokens=40"},
        {"ru", U("Объясни фотосинтез не более 50 слов."), "length_tokens=50"},
        {"tr", U("Fotosentezi 100 kelimeyi geçmeyecek şekilde açıkla."), "length_tokens=100"},
        {"zh", U("请用100字以内介绍北京。"), "length_tokens=100 length_bucket=concise"},
        {"zh sentences", U("用三句话概括这篇文章。"), "length_sentences=3"},
        {"ja", U("光合成について200字以内で説明してください。"), "length_tokens=200"},
        {"ko", U("광합성을 100자 이내로 설명해 주세요."), "length_tokens=100"},
        {"briefly", U("Briefly, what is DNA?"), "length_bucket=concise -length_tokens"},
        {"in detail", U("Explain how vaccines work in detail."), "length_bucket=long"},
        {"no length", U("What is the capital of Peru?"),
         "-length_tokens -length_sentences -length_paragraphs -length_bucket"},
        {"number not a limit", U("I have 3 cats and 2 dogs, what should I feed them?"),
         "-length_tokens -length_sentences"},
    };
    check_rows(rows, NELEM(rows));
}

static void test_formats(void **state)
{
    (void)state;
    static const struct row rows[] = {
        {"json", U("List the planets and return the result as JSON."), "format=JSON"},
        {"table", U("Compare cats and dogs in a table."), "format=Tabular"},
        {"list", U("Give me a bulleted list of fruits rich in vitamin C."), "format=Enumeration"},
        {"markdown", U("Format the answer in Markdown, please."), "format=Markdown"},
        {"latex", U("Write the quadratic formula in LaTeX."), "format=Latex"},
        {"xml", U("Output the data as XML."), "format=XML"},
        {"mcq",
         U("Which planet is the largest?\\nA) Mars\\nB) Jupiter\\nC) Venus\\nD) Earth"),
         "format=MCQAnswer"},
        {"cot", U("A bat and a ball cost 1.10 in total. Think step by step."),
         "format=ChainOfThought"},
        {"fr table", U("Présente les résultats sous forme de tableau."), "format=Tabular"},
        {"de steps", U("Erkläre Schritt für Schritt, wie man Brot backt."),
         "format=ChainOfThought"},
        {"system prompt",
         "[{\"role\":\"system\",\"content\":\"Always respond in JSON.\"},"
         "{\"role\":\"user\",\"content\":\"Name three rivers in Europe.\"}]",
         "format=JSON"},
        {"code block is not a request", U("```json\\n{\\\"a\\\": 1}\\n```\\nWhat does a mean?"),
         "-format"},
        {"none", U("What is the capital of Peru?"), "-format"},
    };
    check_rows(rows, NELEM(rows));
}

static void test_code(void **state)
{
    (void)state;
    static const struct row rows[] = {
        {"done-when", U("Fix this bug in my Go code, answer in under 100 words"),
         "task=CodeFix domain=Code code_type=go lang=English length_tokens=100 "
         "length_bucket=concise"},
        {"fence info", U("Why does this panic?\\n```rust\\nfn main() { let v: Vec<i32> = "
                         "Vec::new(); println!(\\\"{}\\\", v[0]); }\\n```"),
         "code_type=rust domain=Code"},
        {"shebang", U("What does this script do?\\n```\\n#!/bin/bash\\nfor f in *.txt; do "
                      "echo $f; done\\n```"),
         "code_type=shell task=CodeExplanation"},
        {"unfenced python", U("This doesn't work:\\ndef add(a, b):\\n    return a + b\\n"
                              "print(add(1))"),
         "code_type=python task=CodeFix"},
        {"sql", U("Optimize this query:\\n```\\nSELECT name, COUNT(*) FROM users u JOIN "
                  "orders o ON o.user_id = u.id WHERE o.total > 10 GROUP BY name ORDER BY "
                  "2;\\n```"),
         "code_type=sql"},
        {"c", U("Fix the leak:\\n```\\n#include <stdio.h>\\n#include <stdlib.h>\\nint "
                "main(void) {\\n    char *p = malloc(10);\\n    printf(\\\"%s\\\", p);\\n    "
                "return 0;\\n}\\n```"),
         "code_type=c task=CodeFix"},
        {"cpp", U("Fix this:\\n```\\n#include <iostream>\\nint main() {\\n    std::vector<int> "
                  "v;\\n    std::cout << v[0] << std::endl;\\n}\\n```"),
         "code_type=cpp"},
        {"typescript", U("Fix the type error:\\n```\\ninterface User { name: string; age: "
                         "number }\\nconst u: User = { name: 'a' };\\nconsole.log(u);\\n```"),
         "code_type=typescript"},
        {"generate", U("Write a Python function that reverses a string."),
         "task=CodeGeneration code_type=python domain=Code"},
        {"generate fr", U("Écris une fonction JavaScript qui trie un tableau."),
         "task=CodeGeneration code_type=javascript"},
        {"translate code", U("Convert this Java code to Kotlin:\\n```java\\npublic class A { "
                             "public static void main(String[] args) { "
                             "System.out.println(1); } }\\n```"),
         "task=CodeTranslation code_type=kotlin domain=Code"},
        {"explain code", U("Explain what this code does:\\n```js\\nconst f = (xs) => "
                           "xs.reduce((a, b) => a + b, 0);\\n```"),
         "task=CodeExplanation code_type=javascript"},
        {"no code", U("What is the tallest mountain in Africa?"), "-code_type -task=CodeFix"},
        {"go the verb", U("I want to go home early today, what should I tell my boss?"),
         "-code_type"},
    };
    check_rows(rows, NELEM(rows));
}

static void test_tasks(void **state)
{
    (void)state;
    static const struct row rows[] = {
        {"translate en", U("Translate into German: good morning, how are you?"),
         "task=Translation lang=German"},
        {"translate fr", U("Traduis en anglais : je suis fatigué."),
         "task=Translation lang=English"},
        {"translate zh", U("把这句话翻译成英文：今天天气很好。"), "task=Translation lang=English"},
        {"summarize", U("Summarize the following article about renewable energy."),
         "task=Summarization"},
        {"rewrite", U("Rephrase this sentence to sound more formal: gimme the report."),
         "task=Rewrite"},
        {"classify", U("Classify the sentiment of this review: the food was cold."),
         "task=Classification"},
        {"extract", U("Extract all the dates from this email: we met on May 3 and June 5."),
         "task=InformationExtraction"},
        {"poem", U("Write a poem about the sea."), "task=CreativeWriting"},
        {"explain", U("Why is the sky blue?"), "task=Explanation"},
        {"reasoning", U("If a train travels 60 km in 1.5 hours, how many km does it travel in "
                        "4 hours?"),
         "task=Reasoning"},
        {"qa", U("Who wrote One Hundred Years of Solitude?"), "task=QuestionAnswering"},
        {"medical", U("What is a safe dosage of ibuprofen for an adult with a fever?"),
         "domain=Medical"},
        {"legal", U("Can my landlord keep my deposit if the contract says nothing?"),
         "domain=Legal"},
        {"finance", U("Should I invest in index funds or pay off my mortgage?"),
         "domain=Finance"},
        {"greeting", U("hello!"), "domain=Conversation"},
        {"math", U("Solve the equation 2x + 3 = 11."), "domain=Math"},
    };
    check_rows(rows, NELEM(rows));
}

static void test_lang(void **state)
{
    (void)state;
    static const struct row rows[] = {
        {"explicit es->en", U("¿Qué es el ADN? Responde en inglés."), "lang=English"},
        {"explicit fr->en", U("Réponds en anglais : qu'est-ce que l'ADN ?"), "lang=English"},
        {"explicit en->es", U("What is the capital of Australia? Answer in Spanish."),
         "lang=Spanish"},
        {"explicit de->fr", U("Erkläre mir bitte auf Französisch, wie ein Motor funktioniert."),
         "lang=French"},
        {"explicit ja->en", U("光合成とは何ですか？英語で答えてください。"), "lang=English"},
        {"explicit zh->fr", U("请用法语回答：什么是光合作用？"), "lang=French"},
        {"detect fr", U("Quelle est la différence entre un virus et une bactérie ?"),
         "lang=French"},
        {"detect es", U("¿Cuáles son los beneficios de hacer ejercicio todos los días?"),
         "lang=Spanish"},
        {"detect de", U("Was sind die wichtigsten Ursachen des Klimawandels heute?"),
         "lang=German"},
        {"detect it", U("Puoi spiegarmi come funziona il sistema immunitario del corpo umano?"),
         "lang=Italian"},
        {"detect ru", U("Какие основные причины изменения климата в наши дни?"),
         "lang=Russian"},
        {"script uk", U("Які основні причини зміни клімату?"), "lang=Ukrainian"},
        {"script ko", U("기후 변화의 주요 원인은 무엇입니까?"), "lang=Korean"},
        {"script ja", U("気候変動の主な原因は何ですか？"), "lang=Japanese"},
        {"script zh", U("气候变化的主要原因是什么？"), "lang=Chinese"},
        {"script he", U("מהם הגורמים העיקריים לשינויי האקלים?"), "lang=Hebrew"},
        {"script el", U("Ποιες είναι οι κύριες αιτίες της κλιματικής αλλαγής;"), "lang=Greek"},
        {"script ar", U("ما هي الأسباب الرئيسية لتغير المناخ؟"), "lang=Arabic"},
        {"script fa", U("علت‌های اصلی تغییرات آب و هوایی چیست؟"), "lang=Persian"},
        {"script hi", U("जलवायु परिवर्तन के मुख्य कारण क्या हैं?"), "lang=Hindi"},
        {"too short", U("ok"), "-lang"},
        {"code only", U("```python\\nprint(1)\\n```"), "-lang"},
    };
    check_rows(rows, NELEM(rows));
}

static void test_conversation(void **state)
{
    (void)state;
    static const struct row rows[] = {
        {"code earlier, fix now",
         "[{\"role\":\"user\",\"content\":\"```js\\nconst x = [1, 2, 3].map(x => x * 2)\\n"
         "console.log(x[3].toFixed(2))\\n```\"},{\"role\":\"assistant\",\"content\":\"This "
         "prints the doubled array.\"},{\"role\":\"user\",\"content\":\"now fix it\"}]",
         "task=CodeFix code_type=javascript domain=Code"},
        {"last turn decides",
         "[{\"role\":\"user\",\"content\":\"Write a poem about autumn leaves.\"},"
         "{\"role\":\"assistant\",\"content\":\"Leaves fall...\"},"
         "{\"role\":\"user\",\"content\":\"Translate it into Spanish.\"}]",
         "task=Translation lang=Spanish"},
        {"short follow-up keeps the language",
         "[{\"role\":\"user\",\"content\":\"Quelle est la capitale de l'Australie et "
         "pourquoi ?\"},{\"role\":\"assistant\",\"content\":\"Canberra.\"},"
         "{\"role\":\"user\",\"content\":\"et le Canada ?\"}]",
         "lang=French"},
        {"content parts",
         "[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":"
         "\"https://example.com/a.png\"}},{\"type\":\"text\",\"text\":\"Describe this image in "
         "two sentences.\"}]}]",
         "length_sentences=2"},
        {"no user turn", "[{\"role\":\"system\",\"content\":\"Answer in French.\"}]", "-lang"},
        {"no evidence", U("hmm"),
         "-task -domain -format -code_type -lang -length_tokens -length_bucket"},
    };
    check_rows(rows, NELEM(rows));

    struct cairn_markers m;
    annotate(U("hmm"), &m);
    assert_int_equal(cairn_markers_count(&m), 0);
    annotate("[]", &m);
    assert_int_equal(cairn_markers_count(&m), 0);
}

/* A big prompt: annotation reads only bounded parts of it. */
static void test_large_prompt(void **state)
{
    (void)state;
    struct sbuf b = {0};
    sb_puts(&b, "[{\"role\":\"user\",\"content\":\"Summarize the following in three "
                "sentences:\\n");
    sb_repeat(&b, "The committee reviewed the budget and the plan for the coming year. ", 6000);
    sb_puts(&b, "\"}]");
    struct cairn_markers m;
    annotate(b.p, &m);
    const char *v = cairn_markers_get(&m, "length_sentences");
    assert_non_null(v);
    assert_string_equal(v, "3");
    assert_string_equal(cairn_markers_get(&m, "task"), "Summarization");
    free(b.p);
}

/* ---- load errors ----------------------------------------------------- */

static void test_load_errors(void **state)
{
    (void)state;
    static const struct unit_load_case cases[] = {
        {"bad pattern", "annotator.json", "\"\\\\b(?:summari[sz]e", "\"(\\\\b(?:summari[sz]e",
         "annotator.json: task.rules[", "].patterns[0]: PCRE2 error at offset"},
        {"unknown task value", "annotator.json", "\"value\": \"Summarization\"",
         "\"value\": \"Summarisation\"", "annotator.json: task.rules[",
         "\"Summarisation\" is not a value of marker 'task'"},
        {"unknown key", "annotator.json", "\"code\": {", "\"bogus\": 1, \"code\": {",
         "annotator.json: bogus: unknown key", NULL},
        {"unknown rule key", "annotator.json", "\"value\": \"CodeFix\"",
         "\"value\": \"CodeFix\", \"priority\": 2", "annotator.json: task.rules[",
         ".priority: unknown key"},
        {"unknown code type", "annotator.json", "\"value\": \"cobol\"", "\"value\": \"fortran\"",
         "annotator.json: code_types[", "\"fortran\" is not a value of marker 'code_type'"},
        {"bad placeholder", "annotator.json", "\"\\\\b(?:summari[sz]e",
         "\"{NUM} \\\\b(?:summari[sz]e", "annotator.json: task.rules[",
         "{NUM} is not available in this list"},
        {"unknown language", "languages.json", "\"Hindi\": [", "\"Klingon\": [",
         "languages.json: names.Klingon:", "is not a value of marker 'lang'"},
        {"unknown script", "languages.json", "\"script\": \"greek\"", "\"script\": \"runic\"",
         "languages.json: scripts[", ".script: must be one of"},
        {"bad length tag", "lengths.json", "\"tag\": \"length_sentences\"",
         "\"tag\": \"length_lines\"", "lengths.json: limits[", ".tag: must be length_tokens"},
        {"bad bucket value", "lengths.json", "\"value\": \"medium\"", "\"value\": \"middling\"",
         "lengths.json: bucket.from_tokens[1].value:", "\"middling\" is not a value"},
        {"bad number word key", "lengths.json", "\"10\": [", "\"ten\": [",
         "lengths.json: number_words.ten:", NULL},
        {"textcat value", "textcat.conf", "nl.lm   Dutch", "nl.lm   Flemish",
         "textcat.conf:", "\"Flemish\" is not a value of marker 'lang'"},
        {"invalid JSON", "lengths.json", "{", "{,", "lengths.json", NULL},
    };
    unit_load_errors(&tx, &annotator, cases, NELEM(cases));
}

/* ---- cairn annotate ---------------------------------------------------- */

static char *run_stream(const char *input, size_t len, int *rc)
{
    FILE *in = fmemopen((void *)input, len, "r");
    assert_non_null(in);
    char *out_buf = NULL;
    size_t out_len = 0;
    FILE *out = open_memstream(&out_buf, &out_len);
    assert_non_null(out);
    *rc = cairn_annotate_stream(ann, &tx, in, out);
    fclose(in);
    fclose(out);
    return out_buf;
}

static void test_stream(void **state)
{
    (void)state;
    const char *input =
        "{\"id\":1,\"messages\":[{\"role\":\"user\",\"content\":\"Fix this bug in my Go code, "
        "answer in under 100 words\"}]}\n"
        "\n"
        "not json\n"
        "{\"id\":\"x\",\"messages\":3}\n"
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hmm\"}],\"model\":\"m\"}\n"
        "{\"id\":[1,{\"a\":null}],\"messages\":[{\"role\":\"user\",\"content\":\"Write a poem "
        "about the sea.\"}]}\r\n"
        "[1,2]\n"
        "{\"id\":2,\"messages\":[{\"role\":\"user\",\"content\":\"Translate into French: "
        "hello\"}]}";
    int rc;
    char *out = run_stream(input, strlen(input), &rc);
    assert_int_equal(rc, 0);
    const char *want =
        "{\"id\":1,\"markers\":{\"task\":\"CodeFix\",\"domain\":\"Code\",\"code_type\":\"go\","
        "\"lang\":\"English\",\"length_tokens\":100,\"length_bucket\":\"concise\"}}\n"
        "{\"error\":\"invalid JSON at byte 0\"}\n"
        "{\"id\":\"x\",\"error\":\"expected an object with a \\\"messages\\\" array\"}\n"
        "{\"markers\":{}}\n"
        "{\"id\":[1,{\"a\":null}],\"markers\":{\"task\":\"CreativeWriting\",\"domain\":"
        "\"Culture\",\"lang\":\"English\"}}\n"
        "{\"error\":\"expected an object with a \\\"messages\\\" array\"}\n"
        "{\"id\":2,\"markers\":{\"task\":\"Translation\",\"lang\":\"French\"}}\n";
    assert_string_equal(out, want);
    free(out);
}

static void test_stream_long_line(void **state)
{
    (void)state;
    struct sbuf b = {0};
    sb_puts(&b, "{\"id\":1,\"messages\":[{\"role\":\"user\",\"content\":\"");
    sb_repeat(&b, "a", CAIRN_JSONL_MAX_LINE);
    sb_puts(&b, "\"}]}\n{\"id\":2,\"messages\":[]}\n");
    int rc;
    char *out = run_stream(b.p, b.len, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "{\"error\":\"line longer than 4194304 bytes\"}\n"
                             "{\"id\":2,\"markers\":{}}\n");
    free(out);
    free(b.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lengths),      cmocka_unit_test(test_formats),
        cmocka_unit_test(test_code),         cmocka_unit_test(test_tasks),
        cmocka_unit_test(test_lang),         cmocka_unit_test(test_conversation),
        cmocka_unit_test(test_large_prompt), cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_stream),       cmocka_unit_test(test_stream_long_line),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
