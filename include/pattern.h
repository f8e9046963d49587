/*
 * pattern.h — the rule annotator's compiled patterns: lists of PCRE2
 * patterns from the rules files, compiled once at load time into one
 * regular expression per list (JIT-compiled piece by piece on first use),
 * with placeholders that stand for lists of names kept elsewhere in the
 * data.
 *
 * Placeholders, each at most once per pattern:
 *   {NUM}   a number: digits ("150", "1,000") or a number word ("two",
 *           "deux", "三"); read back with cairn_pattern_number().
 *   {LANG}  the name of a language ("French", "français", "法语");
 *           read back with cairn_pattern_lang().
 *   {CODE}  the name of a programming language ("Python", "C++");
 *           read back with cairn_pattern_code().
 * A placeholder compiles to a generic word followed by a callout that
 * accepts the word only if the name table has it, so the regular
 * expression stays small and the engine backtracks past other words; the
 * table lookup runs only where the rest of the pattern already matched.
 * Every pattern is compiled caseless, UTF-8, Unicode-aware (\b, \w and
 * case folding follow Unicode) and multiline (^ and $ match at line ends);
 * a pattern can turn case sensitivity back on for a part with (?-i:...).
 */
#ifndef CAIRN_PATTERN_H
#define CAIRN_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <pcre2.h>

/* Names a placeholder accepts, each with the value it stands for (a number,
 * or an index into the caller's list of languages or code types). Lookup
 * folds case (ASCII, Latin, Greek, Cyrillic) unless the name was added
 * with exact case, and treats any run of white space as one space. */
struct cairn_names;

struct cairn_names *cairn_names_new(void);
void cairn_names_free(struct cairn_names *t);
void cairn_names_add(struct cairn_names *t, const char *name, int value, bool exact_case);
/** Sort the table; call once, after the last add and before any lookup. */
void cairn_names_seal(struct cairn_names *t);
/** The value of name s[0..len), or -1. */
int cairn_names_find(const struct cairn_names *t, const char *s, size_t len);

/* The tables the placeholders check their words against, at match time. */
struct cairn_lookup {
    const struct cairn_names *num, *lang, *code;
};

/* Which placeholders a list may use. */
struct cairn_pattern_env {
    bool num, lang, code;
};

/* A compiled list: one alternation, or a few when the whole would pass
 * PCRE2's size limit for one compiled pattern. */
struct cairn_pattern;

/* A match: the match data (sized with cairn_pattern_groups) and which
 * compiled piece it belongs to. */
struct cairn_match {
    pcre2_match_data *md;
    pcre2_match_context *mc; /* carries the placeholder callout */
    const struct cairn_lookup *lookup;
    const pcre2_code *re; /* set by a match */
};

/** A match context whose callout checks placeholder words against
 *  `lookup` (which must outlive it). */
pcre2_match_context *cairn_pattern_context(const struct cairn_lookup *lookup);

/**
 * Compile a JSON array of pattern strings into one alternation.
 * `path` names the array in errors ("rules/x.json: task.rules[2].patterns").
 * @return the compiled list, or NULL with `why` set to "<path>[i]: PCRE2
 *         error at offset N: ..." (offset in the pattern as written).
 */
struct cairn_pattern *cairn_pattern_compile_list(const cJSON *array,
                                                 const struct cairn_pattern_env *env,
                                                 const char *path, char *why, size_t whylen);

/** The same for one pattern string (path names the string itself). */
struct cairn_pattern *cairn_pattern_compile_one(const char *pattern,
                                                const struct cairn_pattern_env *env,
                                                const char *path, char *why, size_t whylen);

void cairn_pattern_free(struct cairn_pattern *p);

/** Give back the executable memory that freed lists' JIT code held: PCRE2
 *  keeps it for the next compile otherwise. Whoever has just freed lists
 *  (a checked configuration, a replaced snapshot) and wants the memory
 *  back calls it; lists still in use are not affected. */
void cairn_pattern_release_unused(void);

/** Ovector pairs a match data needs for this list (NULL counts 1). */
uint32_t cairn_pattern_groups(const struct cairn_pattern *p);

/** Whether lists compiled from now on are split by script and their
 *  pieces given the literals they need (literals.h), so that matching
 *  skips a piece whose literals the text lacks. On by default; the
 *  matches are the same either way, which the tests check by compiling
 *  with it off (the way lists were compiled before). */
void cairn_pattern_use_literals(bool on);

/** Find the leftmost match of `p` in s[start..len), which must be valid
 *  UTF-8 and start on a character boundary. @return true with the match in
 *  `m`, false when there is none. */
bool cairn_pattern_find(const struct cairn_pattern *p, const char *s, size_t len, size_t start,
                        struct cairn_match *m);

/** Where the last match starts / ends. */
size_t cairn_pattern_start(const struct cairn_match *m);
size_t cairn_pattern_end(const struct cairn_match *m);

/** How many matches `p` has in s[0..len), counting at most `cap`. */
int cairn_pattern_count(const struct cairn_pattern *p, const char *s, size_t len, int cap,
                        struct cairn_match *m);

/** After a match: the value of the {LANG} / {CODE} word it holds, or -1. */
int cairn_pattern_lang(const struct cairn_match *m, const char *s);
int cairn_pattern_code(const struct cairn_match *m, const char *s);

/** After a match with {NUM}: its value (digits or a number word), or -1. */
long cairn_pattern_number(const struct cairn_match *m, const char *s);

/** Check that every member of object `obj` is named in `allowed` (a NULL-
 *  terminated list). @return 0, or -1 with `why` = "<path>.<key>: unknown key". */
int cairn_pattern_check_keys(const cJSON *obj, const char *const *allowed, const char *path,
                             char *why, size_t whylen);

/** Check that `obj` is an object and, unless `allowed` is NULL, that every
 *  member is named in it. @return 0, or -1 with `why` =
 *  "<path>: must be an object" ("must be an object" at the top level,
 *  path "") or "<path>.<key>: unknown key". */
int cairn_pattern_check_object(const cJSON *obj, const char *const *allowed, const char *path,
                               char *why, size_t whylen);

/** Check that `arr` is a non-empty array of non-empty strings (a list of
 *  names). @return 0, or -1 with `why` naming `path` or the bad item. */
int cairn_pattern_check_strings(const cJSON *arr, const char *path, char *why, size_t whylen);

#endif
