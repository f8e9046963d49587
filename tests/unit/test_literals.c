/*
 * test_literals.c — the literal prefilter of the rules' pattern lists
 * (literals.h, and its use in pattern.c) changes no match:
 *   - extraction, row by row: what a pattern needs, or nothing;
 *   - the PCRE2 facts it rests on, checked against the installed library
 *     over every code point: which characters an ASCII letter matches
 *     caselessly, and that the scripts taken as caseless are;
 *   - differentially: every list of strings in the shipped rules/,
 *     compiled as the annotator compiles its lists, finds the same
 *     matches (start and end, match after match) compiled as now (split
 *     by script, with the prefilter) and as before (one alternation), on every string of the
 * labelled cases and on variants written in upper case or with the look-alike letters (Kelvin sign,
 *     long s, dotted and dotless i) PCRE2 takes for k, s and i;
 *   - the annotator, loaded both ways, gives the same markers on every
 *     labelled prompt.
 */
#include "unit.h"

#include <cjson/cJSON.h>

#include "annotator.h"
#include "literals.h"
#include "markers.h"
#include "pattern.h"
#include "utf8.h"

static void test_extraction_rows(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *want; /* "" = nothing can be shown */
    } rows[] = {
        {"\\bsummar(?:y|ize|ise)\\b", "\\bsummar"},
        {"\\b(?:translate|convert)\\s+to\\b", "\\btranslate|\\bconvert"},
        {"in\\s+{NUM}\\s*words?\\b", "word"},
        {"words?", "word"},
        {"colou?r", "colo"},
        {"ab+c", "ab"},
        {"(?:ab)+cde", "cde"},
        {"(?:ab)*cd", "cd"},
        {"(?:xy)?", ""},
        {"x|[a-z]+", ""},
        {"{LANG}", ""},
        {"\\d+\\s*[-+*/]\\s*\\d+", ""},
        {"(?-i)[;{]\\s*$", ""},
        {"Answer IN English", "answer in english"},
        {"\\(note\\)", "(note)"},
        {"a\\.b", "a.b"},
        {"(?i:HeLLo) world", " world"},
        {"(?i:HeLLo)", "hello"},
        {"(?=abc)def", "def"},
        {"(?<!foo)bar", "bar"},
        {"(?#comment)fixed", "fixed"},
        {"翻译成\\s*{LANG}", "翻译成"},
        {"{NUM}\\s*字以内", "字以内"},
        {"переведи", "<cyrillic>"},
        {"μετάφρασε", "<greek>"},
        {"café au lait", "~ au lait"},
        {"(?:É|é)", "<non-ascii>"},
        {"ÉCRIS", "~cris"},
        {"(?:перепиши|rewrite)", "<cyrillic>|rewrite"},
        {"straße", "stra~"},
        {"(?x) a b", ""},
        {"\\Qa.b\\E", ""},
        {"(?(1)a|b)", ""},
        {"(*UTF)abc", ""},
        {"a{2,3}bc", "bc"},
        {"x{NUM}yz", "yz"},
        {"\\x{41}bc", "bc"},
        {"\\p{L}+ing\\b", "ing\\b"},
        {"[abc]]xyz", "]xyz"},
        {"(?<name>hello)", "hello"},
        {"a)b", ""},
        /* Bounds, printed \b (a word boundary) and ~ (a non-ASCII
         * character) on the side the pattern puts them. */
        {"\\bw\\b", "\\bw\\b"},
        {"\\bwords?\\b", "\\bword"},
        {"\\bcolou?r\\b", "\\bcolo"},
        {"\\bfo+\\b", "\\bfo"},
        {"\\bab{2}c\\b", "\\bab"},
        {"\\b(?i)foo(?#note)\\b", "\\bfoo\\b"},
        {"\\b(?i:foo)\\b", "\\bfoo\\b"},
        {"\\b\\bfoo\\b\\b", "\\bfoo\\b"},
        {"x(?:\\bfoo\\b)y", "\\bfoo\\b"},
        {"\\b(?:(?:foo|bar)s?)\\b", "\\bfoo|\\bbar"},
        {"\\b(?:foo|x\\s+bar)\\b", "\\bfoo\\b|bar\\b"},
        {"(?:\\bfoo|bar)\\b", "\\bfoo\\b|bar\\b"},
        {"\\bfoo|bar", "\\bfoo|bar"},
        {"\\bfoo|foo\\b", "foo"},
        {"(?:\\bfoo|foo)\\b", "foo\\b"},
        {"\\b\\(note\\)", "\\b(note)"},
        {"(?<!\\w)\\(note\\)(?!\\w)", "(note)"},
        {"(?<!\\w)(?:en|w)\\s+{CODE}", "\\ben|\\bw"},
        {"(?<![\\w#+])cpp(?![\\w#+])", "\\bcpp\\b"},
        {"\\b字以内\\b", "字以内"},
        {"\\bk", "\\bk"},
        /* ... and none where something stands between, or may. */
        {"\\Bword\\B", "word"},
        {"\\b\\w*ing\\b", "ing\\b"},
        {"\\b(?:foo)?bar\\b", "bar\\b"},
        {"\\bfoo(?:bar)?\\b", "\\bfoo"},
        {"\\b(?:foo|bar)+\\b", "foo|bar"},
        {"\\b(?:foo|bar){1}\\b", "foo|bar"},
        {"\\b(?=foo)foo(?=\\b)", "foo"},
        {"(?<=\\b)foo(?!\\B)", "foo"},
        {"\\b(?<=a)foo", "foo"},
        {"(?<!\\p{L})foo(?!\\p{L})", "foo"},
        {"(?<![\\p{L}\\p{N}])foo(?![^\\w])", "foo"},
        {"(?<=\\w)foo(?=\\w)", "foo"},
        {"(?<!\\w)?foo(?!\\w)?", "foo"},
        {"(?!\\w)foo(?<!\\w)", "foo"},
        {"\\b.foo", "foo"},
        {"\\b{NUM}\\s*words\\b", "words\\b"},
        {"^foo$", "foo"},
        {"\\btòa\\b", "\\bt~"},
        {"\\bsąd\\b", "\\bs~"},
        {"sö?zle", "zle"},
        {"sö+zle", "~zle"},
        {"tò?a", "t"},
        {"ſtar", "tar"},
    };
    rows_begin();
    char got[512];
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct cairn_literals *l = cairn_literals_of(rows[i].pattern);
        cairn_literals_print(l, got, sizeof(got));
        check(strcmp(got, rows[i].want) == 0, rows[i].pattern, "literals \"%s\", want \"%s\"", got,
              rows[i].want);
        cairn_literals_free(l);
    }
    rows_end();
}

static void test_search(void **state)
{
    (void)state;
    struct cairn_literals *l = cairn_literals_of("(?:risk|this)");
    assert_non_null(l);
    cairn_literals_seal(l);
    assert_true(cairn_literals_any_in(l, LIT("a RISK"), 0));
    assert_true(cairn_literals_any_in(l, LIT("ri\xc5\xbf\xe2\x84\xaa"), 0)); /* riſK */
    assert_true(cairn_literals_any_in(l, LIT("TH\xc4\xb0S"), 0));            /* THİS */
    assert_false(cairn_literals_any_in(l, LIT("thus rick"), 0));
    assert_false(cairn_literals_any_in(l, LIT("ris"), 0));
    assert_false(cairn_literals_any_in(l, LIT("ri\xc5\xbf"), 0)); /* riſ */
    cairn_literals_free(l);
    /* A Cyrillic word needs some Cyrillic character (Cyrillic
     * Extended-C included), a Greek one some Greek character, another
     * cased non-ASCII one any non-ASCII character. */
    l = cairn_literals_of("переведи");
    cairn_literals_seal(l);
    assert_true(cairn_literals_any_in(l, LIT("\xd0\x9f\xd0\xb5"), 0)); /* Пе */
    assert_true(cairn_literals_any_in(l, LIT("x\xe1\xb2\x80"), 0));    /* U+1C80 */
    assert_false(cairn_literals_any_in(l, LIT("caf\xc3\xa9"), 0));     /* café */
    assert_false(cairn_literals_any_in(l, LIT("perevedi"), 0));
    cairn_literals_free(l);
    l = cairn_literals_of("μετάφρασε");
    cairn_literals_seal(l);
    assert_true(cairn_literals_any_in(l, LIT("\xce\xbc"), 0));     /* μ */
    assert_true(cairn_literals_any_in(l, LIT("1 \xc2\xb5m"), 0));  /* micro sign */
    assert_true(cairn_literals_any_in(l, LIT("\xe2\x84\xa6"), 0)); /* ohm sign */
    assert_false(cairn_literals_any_in(l, LIT("\xd0\x9f caf\xc3\xa9"), 0));
    cairn_literals_free(l);
    l = cairn_literals_of("(?:É|é)");
    cairn_literals_seal(l);
    assert_true(cairn_literals_any_in(l, LIT("\xe2\x80\x94"), 0)); /* an em dash will do */
    assert_false(cairn_literals_any_in(l, LIT("E e"), 0));
    cairn_literals_free(l);
}

/* A literal with bounds is found only where the text has them: \b as
 * PCRE2 decides it (ASCII neighbours decided, the text's start and end
 * non-word, a non-ASCII neighbour maybe a letter so always taken), a
 * non-ASCII character where the pattern puts one. */
static void test_search_bounds(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *text;
        size_t start, len; /* len 0: the whole text */
        bool want;
    } rows[] = {
        {"\\bw\\b", "w", 0, 0, true},
        {"\\bw\\b", "W", 0, 0, true},
        {"\\bw\\b", "in under 40 words, why", 0, 0, false},
        {"\\bw\\b", "pisz w Pythonie", 0, 0, true},
        {"\\bw\\b", "(w)", 0, 0, true},
        {"\\bw\\b", "aw", 0, 0, false},
        {"\\bw\\b", "w_", 0, 0, false},
        {"\\bw\\b", "_w", 0, 0, false},
        {"\\bw\\b", "1w", 0, 0, false},
        {"\\bw\\b", "w9", 0, 0, false},
        {"\\bw\\b", "\xc3\xa9w", 0, 0, true},     /* éw: é may be a letter, so taken */
        {"\\bw\\b", "w\xc3\xa9", 0, 0, true},     /* wé */
        {"\\bw\\b", "\xe2\x80\x94w", 0, 0, true}, /* —w */
        /* The caller's start: PCRE2 looks at the character before it. */
        {"\\bw\\b", "aw", 1, 0, false},
        {"\\bw\\b", " w", 1, 0, true},
        {"\\bw\\b", "ww w", 1, 0, true},
        {"\\bw\\b", "ww wx", 1, 0, false},
        /* The caller's end is the text's end, whatever follows it. */
        {"\\bw\\b", "wx", 0, 1, true},
        {"\\bw\\b", "a w", 0, 2, false},
        {"\\bword\\b", "a WORD.", 0, 0, true},
        {"\\bword\\b", "swords words", 0, 0, false},
        {"\\bword\\b", "swords words", 0, 11, true},
        /* The look-alikes of k, s and i are letters, on either side. */
        {"\\bsky\\b", "\xc5\xbfKY", 0, 0, true},       /* ſKY */
        {"\\bsky\\b", "a\xc5\xbfky", 0, 0, false},     /* aſky */
        {"\\bk\\b", "\xe2\x84\xaa", 0, 0, true},       /* K */
        {"\\bk\\b", "\xe2\x84\xaa-1", 0, 0, true},     /* K-1 */
        {"\\bk\\b", "x\xe2\x84\xaa", 0, 0, false},     /* xK */
        {"\\bk\\b", "\xe2\x84\xaax", 0, 0, false},     /* Kx */
        {"\\bi\\b", "\xc4\xb0", 0, 0, true},           /* İ */
        {"\\bi\\b", "\xc4\xb1s", 0, 0, false},         /* ıs */
        {"\\bis\\b", "\xc4\xb0\xc5\xbf!", 0, 0, true}, /* İſ! */
        {"\\bis\\b", "this", 0, 0, false},
        /* A \b next to a non-word character asks for a word character. */
        {"\\b\\(note\\)", "x(note)", 0, 0, true},
        {"\\b\\(note\\)", " (note)", 0, 0, false},
        {"\\b\\(note\\)", "(note)", 0, 0, false},
        {"\\b\\(note\\)", "x(note)", 1, 0, true},
        {"(?<!\\w)(?:en|w)\\s+{CODE}", "en Go", 0, 0, true},
        {"(?<!\\w)(?:en|w)\\s+{CODE}", "twenty new owls", 0, 0, false},
        /* Non-ASCII characters the pattern puts right next to one. */
        {"\\btòa\\b", "tòa", 0, 0, true},
        {"\\btòa\\b", "TÒA", 0, 0, true},
        {"\\btòa\\b", "the sky", 0, 0, false},
        {"\\btòa\\b", "t", 0, 0, false},
        {"\\btòa\\b", "tò", 0, 1, false}, /* cut before ò */
        {"\\btòa\\b", "atòa", 0, 0, false},
        {"straße", "STRAßE", 0, 0, true},
        {"straße", "strasse", 0, 0, false},
        {"Écris", "écris", 0, 0, true},
        {"Écris", "écris", 2, 0, true}, /* é is before the start */
        {"Écris", "cris", 0, 0, false},
        {"Écris", "decris", 0, 0, false},
    };
    rows_begin();
    char printed[256], row[160];
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct cairn_literals *l = cairn_literals_of(rows[i].pattern);
        cairn_literals_seal(l);
        cairn_literals_print(l, printed, sizeof(printed));
        size_t len = rows[i].len ? rows[i].len : strlen(rows[i].text);
        snprintf(row, sizeof(row), "%s in \"%s\" [%zu..%zu)", rows[i].pattern, rows[i].text,
                 rows[i].start, len);
        bool got = cairn_literals_any_in(l, rows[i].text, len, rows[i].start);
        check(got == rows[i].want, row, "[%s]: %d, want %d", printed, got, rows[i].want);
        cairn_literals_free(l);
    }
    rows_end();
}

/* ---- the search against a scan of every byte ------------------------- */

/* What cairn_literals_any_in must answer, the slow way: does a literal
 * (lower case; "<non-ascii>", "<cyrillic>", "<greek>" for the markers)
 * start at some byte of s[start..len)? The rules of literals.h, written
 * out again. @return where it ends, 0 where it does not start there. */
static size_t ref_at(const char *lit, const unsigned char *u, size_t len, size_t i)
{
    if (strcmp(lit, "<non-ascii>") == 0)
        return u[i] >= 0x80 ? i + 1 : 0;
    if (strcmp(lit, "<cyrillic>") == 0)
        return (u[i] >= 0xD0 && u[i] <= 0xD4) ||
                       (u[i] == 0xE1 && i + 2 < len && u[i + 1] == 0xB2 && u[i + 2] <= 0x88)
                   ? i + 1
                   : 0;
    if (strcmp(lit, "<greek>") == 0)
        return (u[i] >= 0xCD && u[i] <= 0xCF) ||
                       (u[i] == 0xC2 && i + 1 < len && u[i + 1] == 0xB5) ||
                       (u[i] == 0xE1 && i + 1 < len && u[i + 1] >= 0xBC && u[i + 1] <= 0xBF) ||
                       (u[i] == 0xE2 && i + 2 < len && u[i + 1] == 0x84 && u[i + 2] == 0xA6)
                   ? i + 1
                   : 0;
    for (const unsigned char *l = (const unsigned char *)lit; *l != '\0'; l++) {
        if (i < len && (u[i] >= 'A' && u[i] <= 'Z' ? u[i] + 32 : u[i]) == *l)
            i++;
        else if (*l == 'k' && i + 3 <= len && !memcmp(u + i, "\xe2\x84\xaa", 3))
            i += 3;
        else if (*l == 's' && i + 2 <= len && !memcmp(u + i, "\xc5\xbf", 2))
            i += 2;
        else if (*l == 'i' && i + 2 <= len && u[i] == 0xC4 &&
                 (u[i + 1] == 0xB0 || u[i + 1] == 0xB1))
            i += 2;
        else
            return 0;
    }
    return i;
}

/* A word character, as \w with PCRE2_UCP, among ASCII ones. */
static bool ref_word(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

/* May \b hold at u[at], the character on the literal's side being a word
 * character or not? u[at - 1] is looked at even before the start. */
static bool ref_boundary(const unsigned char *u, size_t len, size_t at, bool after, bool lit_word)
{
    bool edge = after ? at == len : at == 0;
    unsigned char other = edge ? ' ' : after ? u[at] : u[at - 1];
    return other >= 0x80 || ref_word(other) != lit_word;
}

/* Does a literal as printed ("~" and "\b" for its bounds, see
 * cairn_literals_print) start in s[start..len) with its bounds, or only
 * anywhere if `bounds` is false? */
static bool ref_any_in_bounds(const char *printed, const char *s, size_t len, size_t start,
                              bool bounds)
{
    char buf[4096], *save = NULL;
    const unsigned char *u = (const unsigned char *)s;
    snprintf(buf, sizeof(buf), "%s", printed);
    for (char *lit = strtok_r(buf, "|", &save); lit; lit = strtok_r(NULL, "|", &save)) {
        bool wide_before = lit[0] == '~', b_before, b_after, wide_after;
        lit += wide_before;
        b_before = strncmp(lit, "\\b", 2) == 0;
        lit += b_before ? 2 : 0;
        size_t n = strlen(lit);
        wide_after = n > 1 && lit[n - 1] == '~';
        n -= wide_after;
        b_after = n > 2 && strncmp(lit + n - 2, "\\b", 2) == 0;
        n -= b_after ? 2 : 0;
        lit[n] = '\0';
        for (size_t i = start; i < len; i++) {
            size_t end = ref_at(lit, u, len, i);
            if (end == 0)
                continue;
            if (bounds && ((wide_before && (i == 0 || u[i - 1] < 0x80)) ||
                           (wide_after && (end == len || u[end] < 0x80)) ||
                           (b_before && !ref_boundary(u, len, i, false, ref_word(lit[0]))) ||
                           (b_after && !ref_boundary(u, len, end, true, ref_word(lit[n - 1])))))
                continue;
            return true;
        }
    }
    return false;
}

static bool ref_any_in(const char *printed, const char *s, size_t len, size_t start)
{
    return ref_any_in_bounds(printed, s, len, start, true);
}

/* Random texts of the characters that matter (ASCII in both cases, the
 * look-alikes of k, s and i, Cyrillic, Greek and its look-alikes, CJK,
 * accented Latin), searched from every start and cut at every end, against
 * the scan of every byte. */
static void test_search_matches_scan(void **state)
{
    (void)state;
    static const char *const patterns[] = {
        "(?:risk|this|is)",
        "(?:word|words?)\\b",
        "(?:k|s|i)",
        "sky|blue|x",
        "переведи|rewrite",
        "μετάφρασε",
        "(?:É|é)|ink",
        "翻译成|字以内|kiss",
        "(?:ab|b|sis|kk)",
        "\\(note\\)|a\\.b",
        "in\\s+{NUM}\\s*wo",
        "(?:[a-z]k|s{2}|i)",
        "\\bw\\b|\\bsky|is\\b",
        "(?<!\\w)(?:k|risk)(?!\\w)",
        "\\b\\(note|o\\)\\b",
        "\\btòa\\b|straße|Écris",
        "\\b(?:i|kiss|_1)\\b",
    };
    static const char *const pieces[] = {
        "a",
        "b",
        "k",
        "K",
        "s",
        "S",
        "i",
        "I",
        "r",
        "w",
        "o",
        "d",
        " ",
        ".",
        "(",
        ")",
        "\xe2\x84\xaa" /* K */,
        "\xc5\xbf" /* ſ */,
        "\xc4\xb0" /* İ */,
        "\xc4\xb1" /* ı */,
        "\xd0\x9f" /* П */,
        "\xe1\xb2\x80" /* U+1C80 */,
        "\xce\xbc" /* μ */,
        "\xc2\xb5" /* µ */,
        "\xe2\x84\xa6" /* Ω */,
        "\xe1\xbc\x80" /* ἀ */,
        "\xe5\xad\x97" /* 字 */,
        "\xe7\xbf\xbb\xe8\xaf\x91\xe6\x88\x90" /* 翻译成 */,
        "\xc3\xa9" /* é */,
        "\xe2\x80\x94" /* — */,
        "\xc3\xb2" /* ò */,
        "\xc3\x9f" /* ß */,
        "_",
        "1",
        "t",
        "e",
        "c",
        "risk",
        "THIS",
        "word",
        "Sky",
        "BLUE",
        "nk",
        "ss",
        "sis",
    };
    srand(7);
    char printed[1024], text[256];
    size_t n = 0, answers = 0;
    rows_begin();
    for (size_t p = 0; p < NELEM(patterns); p++) {
        struct cairn_literals *l = cairn_literals_of(patterns[p]);
        assert_non_null(l);
        cairn_literals_seal(l);
        cairn_literals_print(l, printed, sizeof(printed));
        for (int round = 0; round < 150; round++) {
            size_t len = 0;
            for (int k = rand() % 12; k > 0; k--) {
                const char *piece = pieces[rand() % NELEM(pieces)];
                memcpy(text + len, piece, strlen(piece));
                len += strlen(piece);
            }
            for (size_t start = 0; start <= len; start++) {
                for (size_t end = start; end <= len; end++) {
                    bool want = ref_any_in(printed, text, end, start);
                    bool got = cairn_literals_any_in(l, text, end, start);
                    answers++;
                    if (!check(got == want, patterns[p], "[%s] in \"%.*s\" [%zu..%zu): %d, want %d",
                               printed, (int)len, text, start, end, got, want))
                        break;
                }
            }
            n++;
        }
        cairn_literals_free(l);
    }
    print_message("    %zu texts, %zu answers compared\n", n, answers);
    rows_end();
}

/* Soundness against PCRE2 itself: wherever a pattern (compiled as the
 * rules are) matches in s[start..len), its literals are found there, on
 * random texts of the characters that decide bounds, cut and started at
 * every character. */
static void test_search_sound_against_pcre2(void **state)
{
    (void)state;
    static const char *const patterns[] = {
        "\\bw\\b",
        "\\bwords?\\b",
        "\\b(?:foo|x\\s+bar)\\b",
        "(?:\\bfoo|bar)\\b",
        "\\b\\(note\\)",
        "(?<!\\w)(?:en|w)\\s+\\w",
        "(?<![\\w#+])c\\+\\+(?![\\w#+])",
        "\\b(?:(?:foo|bar)s?)\\b",
        "\\b(?:foo|bar)+\\b",
        "\\bfo+\\b",
        "\\b(?i)k(?#x)\\b",
        "\\b(?:is|sky)\\b",
        "\\btòa\\b|\\bsąd\\b",
        "straße|Écris",
        "\\b_1\\b|\\b1\\b",
        "(?<!\\w)?foo(?!\\w)?|(?<!\\w)bar\\b",
    };
    static const char *const pieces[] = {
        "w",
        "W",
        "foo",
        "bar",
        "s",
        "x",
        " ",
        "(",
        ")",
        "note",
        "en",
        "c++",
        "#",
        "_",
        "1",
        "k",
        "i",
        "sky",
        "is",
        "t",
        "a",
        "d",
        "\xe2\x84\xaa" /* K */,
        "\xc5\xbf" /* ſ */,
        "\xc4\xb0" /* İ */,
        "\xc3\xb2" /* ò */,
        "\xc4\x85" /* ą */,
        "\xc3\x9f" /* ß */,
        "\xc3\xa9" /* é */,
        "\xe5\xad\x97" /* 字 */,
        "stra",
        "cris",
        "\n",
    };
    srand(11);
    char text[256];
    size_t answers = 0, matched = 0;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    rows_begin();
    for (size_t p = 0; p < NELEM(patterns); p++) {
        int code;
        PCRE2_SIZE off;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)patterns[p], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS | PCRE2_MULTILINE,
                                       &code, &off, NULL);
        assert_non_null(re);
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
        struct cairn_literals *l = cairn_literals_of(patterns[p]);
        assert_non_null(l);
        cairn_literals_seal(l);
        for (int round = 0; round < 300; round++) {
            size_t len = 0;
            for (int k = rand() % 10; k > 0; k--) {
                const char *piece = pieces[rand() % NELEM(pieces)];
                memcpy(text + len, piece, strlen(piece));
                len += strlen(piece);
            }
            for (size_t start = 0; start <= len; start++) {
                if (((unsigned char)text[start] & 0xC0) == 0x80 && start < len)
                    continue;
                for (size_t end = start; end <= len; end++) {
                    if (end < len && ((unsigned char)text[end] & 0xC0) == 0x80)
                        continue;
                    bool m = pcre2_match(re, (PCRE2_SPTR)text, end, start, 0, md, NULL) >= 0;
                    answers++;
                    matched += m;
                    if (m && !check(cairn_literals_any_in(l, text, end, start), patterns[p],
                                    "matches \"%.*s\" [%zu..%zu) without its literals", (int)len,
                                    text, start, end))
                        break;
                }
            }
        }
        cairn_literals_free(l);
        pcre2_code_free(re);
    }
    pcre2_match_data_free(md);
    print_message("    %zu spans, %zu matched\n", answers, matched);
    rows_end();
}

/* The index is kept for the next calls: one made for a text must never
 * answer for another text at the same address, nor for its old content. */
static void test_search_same_pointer_new_content(void **state)
{
    (void)state;
    struct cairn_literals *l = cairn_literals_of("(?:risk|this)");
    cairn_literals_seal(l);
    char buf[64];
    snprintf(buf, sizeof(buf), "a risk here");
    assert_true(cairn_literals_any_in(l, buf, strlen(buf), 0));
    assert_true(cairn_literals_any_in(l, buf, strlen(buf), 2));
    assert_false(cairn_literals_any_in(l, buf, strlen(buf), 3)); /* past its start */
    assert_false(cairn_literals_any_in(l, buf, 5, 0));           /* cut before its end */
    memcpy(buf + 2, "rusk", 4);                                  /* same length, same place */
    assert_false(cairn_literals_any_in(l, buf, strlen(buf), 0));
    memcpy(buf + 2, "RI\xc5\xbf\xe2\x84\xaa", 7); /* RIſK, longer */
    buf[9] = '\0';
    assert_true(cairn_literals_any_in(l, buf, strlen(buf), 0));
    /* The same bytes at another address are the same text. */
    char copy[64];
    memcpy(copy, buf, sizeof(copy));
    assert_true(cairn_literals_any_in(l, copy, strlen(copy), 0));
    copy[2] = 'x';
    assert_false(cairn_literals_any_in(l, copy, strlen(copy), 0));
    assert_true(cairn_literals_any_in(l, buf, strlen(buf), 0));
    /* Many texts in turn: more than are kept indexed. */
    for (int round = 0; round < 3; round++)
        for (int k = 0; k < 9; k++) {
            char t[32];
            snprintf(t, sizeof(t), "%*sTHIS %d", k, "", k);
            check(cairn_literals_any_in(l, t, strlen(t), 0), "turns", "text %d", k);
            check(!cairn_literals_any_in(l, t, strlen(t), (size_t)k + 1), "turns", "text %d", k);
        }
    /* Forgotten texts are read again, the same. */
    cairn_literals_forget();
    assert_true(cairn_literals_any_in(l, buf, strlen(buf), 0));
    cairn_literals_forget();
    assert_false(cairn_literals_any_in(l, copy, strlen(copy), 0));
    cairn_literals_free(l);
}

/* A long text is indexed in overlapping windows: a literal, written with
 * the three-byte Kelvin sign, is found wherever it lies across their
 * edges, and only from where it starts. */
static void test_search_long_text(void **state)
{
    (void)state;
    /* The longest literal kept: 48 letters, 144 bytes as Kelvin signs. */
    enum { LETTERS = 48 };
    char pattern[LETTERS + 1];
    memset(pattern, 'k', LETTERS);
    pattern[LETTERS] = '\0';
    struct cairn_literals *l = cairn_literals_of(pattern);
    cairn_literals_seal(l);
    char printed[128];
    cairn_literals_print(l, printed, sizeof(printed));
    assert_string_equal(printed, pattern);
    size_t len = 300 << 10, lit = 3 * LETTERS;
    char *text = malloc(len);
    rows_begin();
    for (size_t at = (64 << 10) - 400; at < (64 << 10) + 100; at += 13) {
        memset(text, 'x', len);
        for (size_t k = 0; k < LETTERS; k++)
            memcpy(text + at + 3 * k, "\xe2\x84\xaa", 3);
        char row[32];
        snprintf(row, sizeof(row), "at %zu", at);
        check(cairn_literals_any_in(l, text, len, 0), row, "not found");
        check(cairn_literals_any_in(l, text, len, at), row, "not found from its start");
        check(!cairn_literals_any_in(l, text, len, at + 3), row, "found past its start");
        check(cairn_literals_any_in(l, text, at + lit, 0), row, "not found up to its end");
        check(!cairn_literals_any_in(l, text, at + lit - 1, 0), row, "found cut short");
    }
    rows_end();
    free(text);
    cairn_literals_free(l);
}

/* ---- the PCRE2 facts ---------------------------------------------------- */

/* Every code point from 1 up but the surrogates, each followed by a
 * newline so that a match is one code point. */
static char *all_code_points(size_t *len)
{
    char *s = malloc(0x110000 * 5);
    size_t o = 0;
    for (unsigned cp = 1; cp < 0x110000; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        o += cairn_utf8_encode(cp, s + o);
        s[o++] = '\n';
    }
    *len = o;
    return s;
}

static unsigned decode(const unsigned char *u)
{
    if (u[0] < 0x80)
        return u[0];
    if (u[0] < 0xE0)
        return ((u[0] & 0x1Fu) << 6) | (u[1] & 0x3Fu);
    if (u[0] < 0xF0)
        return ((u[0] & 0x0Fu) << 12) | ((u[1] & 0x3Fu) << 6) | (u[2] & 0x3Fu);
    return ((u[0] & 0x07u) << 18) | ((u[1] & 0x3Fu) << 12) | ((u[2] & 0x3Fu) << 6) | (u[3] & 0x3Fu);
}

/* The code points `pattern` matches (caseless, UTF, UCP as the rules). */
static size_t matches(const char *pattern, uint32_t options, const char *s, size_t len,
                      unsigned *out, size_t cap)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | options, &code, &off, NULL);
    assert_non_null(re);
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    size_t n = 0, at = 0;
    /* The subject is checked once: checking it on every call is
     * quadratic. */
    uint32_t check = 0;
    while (pcre2_match(re, (PCRE2_SPTR)s, len, at, check, md, NULL) >= 0) {
        check = PCRE2_NO_UTF_CHECK;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (n < cap)
            out[n] = decode((const unsigned char *)s + ov[0]);
        n++;
        at = ov[1];
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return n;
}

static void test_pcre2_caseless_facts(void **state)
{
    (void)state;
    size_t len;
    char *s = all_code_points(&len);
    unsigned got[16];
    rows_begin();
    /* An ASCII letter matches its other case and, beyond ASCII, only the
     * characters the search takes for it. */
    for (char c = 'a'; c <= 'z'; c++) {
        char pattern[2] = {c, '\0'}, row[8];
        snprintf(row, sizeof(row), "'%c'", c);
        size_t n = matches(pattern, PCRE2_CASELESS, s, len, got, NELEM(got));
        for (size_t i = 0; i < n && i < NELEM(got); i++) {
            bool ok = got[i] == (unsigned)c || got[i] == (unsigned)c - 32 ||
                      (c == 'k' && got[i] == 0x212A) || (c == 's' && got[i] == 0x17F) ||
                      (c == 'i' && (got[i] == 0x130 || got[i] == 0x131));
            check(ok, row, "also matches U+%04X", got[i]);
        }
    }
    /* The scripts taken as caseless: a caseless class of them matches the
     * same code points as the case-sensitive one. */
    static const char *const cls =
        "[\\x{591}-\\x{5F4}\\x{600}-\\x{6FF}\\x{900}-\\x{97F}\\x{E01}-\\x{E5B}\\x{1100}-\\x{11FF}"
        "\\x{3000}-\\x{303F}\\x{3041}-\\x{30FF}\\x{3131}-\\x{318E}\\x{3400}-\\x{4DBF}"
        "\\x{4E00}-\\x{9FFF}\\x{AC00}-\\x{D7A3}\\x{F900}-\\x{FAFF}\\x{FF61}-\\x{FF9F}]";
    /* What a Cyrillic or Greek letter matches caselessly stays where the
     * search looks for "some Cyrillic / Greek character". */
    static const struct {
        const char *name, *cls;
        unsigned lo[5], hi[5];
    } scripts[] = {
        {"cyrillic", "[\\x{400}-\\x{52F}]", {0x400, 0x1C80}, {0x52F, 0x1C88}},
        {"greek",
         "[\\x{370}-\\x{3FF}\\x{1F00}-\\x{1FFF}]",
         {0x340, 0x1F00, 0xB5, 0x2126},
         {0x3FF, 0x1FFF, 0xB5, 0x2126}},
    };
    unsigned *all = malloc(0x110000 * sizeof(*all));
    for (size_t k = 0; k < NELEM(scripts); k++) {
        size_t n = matches(scripts[k].cls, PCRE2_CASELESS, s, len, all, 0x110000);
        for (size_t i = 0; i < n; i++) {
            bool ok = false;
            for (size_t r = 0; r < 5 && scripts[k].hi[r] != 0; r++)
                ok |= all[i] >= scripts[k].lo[r] && all[i] <= scripts[k].hi[r];
            check(ok, scripts[k].name, "also matches U+%04X", all[i]);
        }
    }
    free(all);
    /* \w with PCRE2_UCP, on ASCII: letters, digits and "_" only, as the
     * search decides \b next to an ASCII character. */
    for (unsigned c = 1; c < 0x80; c++) {
        char one[2] = {(char)c, '\0'}, row[16];
        bool word =
            (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        snprintf(row, sizeof(row), "\\w 0x%02X", c);
        check(matches("\\w", 0, one, 1, got, 0) == (word ? 1u : 0u), row, "word %d", word);
    }
    /* \b looks at the character before the start offset. */
    static const struct {
        const char *text;
        size_t start;
        bool want;
    } looks[] = {{"aw", 1, false}, {" w", 1, true}, {"w", 0, true}, {"\xc3\xa9w", 2, false}};
    for (size_t i = 0; i < NELEM(looks); i++) {
        int code;
        PCRE2_SIZE off;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR) "\\bw", PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, &code, &off, NULL);
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
        pcre2_match_data *md = pcre2_match_data_create(1, NULL);
        bool m = pcre2_match(re, (PCRE2_SPTR)looks[i].text, strlen(looks[i].text), looks[i].start,
                             0, md, NULL) >= 0;
        check(m == looks[i].want, looks[i].text, "\\bw from %zu: %d", looks[i].start, m);
        pcre2_match_data_free(md);
        pcre2_code_free(re);
    }
    size_t exact = matches(cls, 0, s, len, got, 0);
    size_t caseless = matches(cls, PCRE2_CASELESS, s, len, got, 0);
    check(exact == caseless, "caseless scripts", "%zu code points, %zu caselessly", exact,
          caseless);
    free(s);
    rows_end();
}

/* ---- differential: every list of the shipped rules -------------------- */

struct corpus {
    char **t;
    size_t n, cap;
};

static void corpus_add(struct corpus *c, const char *s, size_t len)
{
    if (len > 600)
        len = 600;
    while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
        len--; /* keep whole characters */
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->t = realloc(c->t, c->cap * sizeof(*c->t));
    }
    c->t[c->n] = malloc(len + 1);
    memcpy(c->t[c->n], s, len);
    c->t[c->n++][len] = '\0';
}

/* s with k, s, i written as the look-alikes PCRE2 takes for them, and
 * everything ASCII in upper case. */
static void add_variants(struct corpus *c, const char *s)
{
    size_t n = strlen(s);
    char *v = malloc(n * 3 + 1), *u = malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        u[i] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
        if (ch == 'k')
            o += cairn_utf8_encode(0x212A, v + o);
        else if (ch == 's')
            o += cairn_utf8_encode(0x17F, v + o);
        else if (ch == 'i')
            o += cairn_utf8_encode(i % 2 ? 0x130 : 0x131, v + o);
        else
            v[o++] = ch;
    }
    v[o] = '\0';
    u[n] = '\0';
    corpus_add(c, v, o);
    corpus_add(c, u, n);
    free(v);
    free(u);
}

/* Every string of the cases, cut to 600 bytes. */
static void strings_of(const cJSON *j, struct corpus *c)
{
    for (; j != NULL; j = j->next) {
        if (cJSON_IsString(j) && j->valuestring[0] != '\0') {
            corpus_add(c, j->valuestring, strlen(j->valuestring));
            add_variants(c, c->t[c->n - 1]);
        }
        strings_of(j->child, c);
    }
}

static void corpus_file(struct corpus *c, const char *path)
{
    char *all = slurp(path);
    assert_non_null(all);
    char *save = NULL;
    for (char *line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        strings_of(j, c);
        cJSON_Delete(j);
    }
    free(all);
}

static struct cairn_names *names_of(const char *const *v, size_t n)
{
    struct cairn_names *t = cairn_names_new();
    for (size_t i = 0; i < n; i++)
        cairn_names_add(t, v[i], (int)i + 1, false);
    cairn_names_seal(t);
    return t;
}

static size_t lists, finds, skipped_lists;
static const struct corpus *texts;
static struct cairn_match match;

/* Every match of the list on every text, compiled as before (one
 * alternation, no prefilter) and as now. */
static void compare_list(const cJSON *arr, const char *path)
{
    struct cairn_pattern_env env = {true, true, true};
    char why[512];
    struct cairn_pattern *p[2];
    for (int on = 0; on < 2; on++) {
        cairn_pattern_use_literals(on == 1);
        p[on] = cairn_pattern_compile_list(arr, &env, path, why, sizeof(why));
    }
    if (p[0] == NULL || p[1] == NULL) {
        cairn_pattern_free(p[0]);
        cairn_pattern_free(p[1]);
        skipped_lists++; /* not a pattern list */
        return;
    }
    lists++;
    pcre2_match_data *md[2] = {pcre2_match_data_create(cairn_pattern_groups(p[0]), NULL),
                               pcre2_match_data_create(cairn_pattern_groups(p[1]), NULL)};
    for (size_t t = 0; t < texts->n; t++) {
        const char *s = texts->t[t];
        size_t len = strlen(s), at = 0;
        for (int k = 0; k < 4 && at <= len; k++) {
            bool found[2];
            size_t a[2] = {0, 0}, b[2] = {0, 0};
            for (int on = 0; on < 2; on++) {
                match.md = md[on];
                found[on] = cairn_pattern_find(p[on], s, len, at, &match);
                if (found[on]) {
                    a[on] = cairn_pattern_start(&match);
                    b[on] = cairn_pattern_end(&match);
                }
            }
            finds++;
            if (!check(found[0] == found[1] && a[0] == a[1] && b[0] == b[1], path,
                       "from %zu: without %d %zu-%zu, with %d %zu-%zu: \"%.80s\"", at, found[0],
                       a[0], b[0], found[1], a[1], b[1], s) ||
                !found[0])
                break;
            at = b[0] > a[0] ? b[0] : b[0] + 1;
            while (at < len && ((unsigned char)s[at] & 0xC0) == 0x80)
                at++;
        }
    }
    pcre2_match_data_free(md[0]);
    pcre2_match_data_free(md[1]);
    cairn_pattern_free(p[0]);
    cairn_pattern_free(p[1]);
}

static void each_list(const cJSON *j, const char *path)
{
    char where[256];
    for (; j != NULL; j = j->next) {
        snprintf(where, sizeof(where), "%s.%s", path, j->string ? j->string : "[]");
        if (cJSON_IsArray(j) && j->child != NULL && cJSON_IsString(j->child)) {
            compare_list(j, where);
            continue;
        }
        each_list(j->child, where);
    }
}

static void test_rule_lists_match_alike(void **state)
{
    (void)state;
    struct corpus c = {0};
    corpus_file(&c, "tests/annotator/prompts.jsonl");
    corpus_file(&c, "tests/validate/cases.jsonl");
    static const char *const extra[] = {
        "Translate this into French, please.",
        "Réécris ce code en Rust",
        "Переведи этот текст на английский",
        "把这段代码翻译成Python",
        "in under 100 words",
        "in under two hundred words",
        "Answer in \xc4\xb0ngilizce",
        "FIX THE BUG: it does not compile",
        /* Short literals inside words, and the same as words (bounds). */
        "In under 40 words, explain why the sky is blue.",
        "Napisz to w Pythonie, w 50 słowach",
        "Tom wants a tòa án answer; sąd_1 or sąd",
        "tóm tắt: résumé du texte",
        "",
        "x",
    };
    for (size_t i = 0; i < NELEM(extra); i++) {
        corpus_add(&c, extra[i], strlen(extra[i]));
        add_variants(&c, extra[i]);
    }
    texts = &c;
    static const char *const nums[] = {"two", "three", "hundred", "deux", "zwei", "三", "dos"};
    static const char *const langs[] = {"English", "French", "anglais", "英语", "Python"};
    static const char *const codes[] = {"python", "go", "rust", "c++", "javascript", "java"};
    struct cairn_names *tn = names_of(nums, NELEM(nums)), *tl = names_of(langs, NELEM(langs)),
                       *tc = names_of(codes, NELEM(codes));
    struct cairn_lookup lookup = {tn, tl, tc};
    match.mc = cairn_pattern_context(&lookup);
    match.lookup = &lookup;
    rows_begin();
    static const char *const files[] = {"rules/annotator.json", "rules/lengths.json",
                                        "rules/languages.json", "rules/validation.json"};
    for (size_t f = 0; f < NELEM(files); f++) {
        char *all = slurp(files[f]);
        assert_non_null(all);
        cJSON *root = cJSON_Parse(all);
        each_list(root->child, files[f]);
        cJSON_Delete(root);
        free(all);
    }
    print_message("    %zu lists x %zu texts: %zu finds compared (%zu string lists not "
                  "patterns)\n",
                  lists, c.n, finds, skipped_lists);
    assert_true(lists > 50);
    rows_end();
    pcre2_match_context_free(match.mc);
    cairn_names_free(tn);
    cairn_names_free(tl);
    cairn_names_free(tc);
    for (size_t i = 0; i < c.n; i++)
        free(c.t[i]);
    free(c.t);
}

/* ---- the annotator end to end ------------------------------------------ */

static void markers_of(const struct cairn_annotator *a, const struct cairn_taxonomy *tx,
                       const cJSON *messages, char *out, size_t outlen)
{
    struct cairn_markers m;
    cairn_markers_init(&m, tx);
    cairn_annotator_run(a, messages, &m);
    size_t o = 0;
    out[0] = '\0';
    for (size_t t = 0; t < tx->ntags && o < outlen; t++) {
        const char *v = cairn_markers_get(&m, tx->tags[t].key);
        if (v != NULL)
            o += (size_t)snprintf(out + o, outlen - o, "%s=%s ", tx->tags[t].key, v);
    }
}

static void test_annotator_alike(void **state)
{
    (void)state;
    struct cairn_taxonomy tx;
    char err[1024];
    assert_int_equal(cairn_taxonomy_load_dir(&tx, "rules", err, sizeof(err)), 0);
    cairn_pattern_use_literals(false); /* the annotator as it was */
    struct cairn_annotator *before = cairn_annotator_load(&tx, "rules", err, sizeof(err));
    cairn_pattern_use_literals(true);
    struct cairn_annotator *a = cairn_annotator_load(&tx, "rules", err, sizeof(err));
    assert_non_null(a);
    assert_non_null(before);
    char *all = slurp("tests/annotator/prompts.jsonl");
    char *save = NULL, with[1024], without[1024];
    size_t n = 0;
    rows_begin();
    for (char *line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        markers_of(before, &tx, msgs, without, sizeof(without));
        markers_of(a, &tx, msgs, with, sizeof(with));
        check(strcmp(with, without) == 0, cJSON_IsString(id) ? id->valuestring : "?",
              "with: %s; without: %s", with, without);
        n++;
        cJSON_Delete(j);
    }
    assert_true(n > 400);
    rows_end();
    free(all);
    cairn_annotator_free(a);
    cairn_annotator_free(before);
    cairn_taxonomy_free(&tx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extraction_rows),
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_search_bounds),
        cmocka_unit_test(test_search_matches_scan),
        cmocka_unit_test(test_search_sound_against_pcre2),
        cmocka_unit_test(test_search_same_pointer_new_content),
        cmocka_unit_test(test_search_long_text),
        cmocka_unit_test(test_pcre2_caseless_facts),
        cmocka_unit_test(test_rule_lists_match_alike),
        cmocka_unit_test(test_annotator_alike),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
