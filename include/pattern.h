/*
 * pattern.h — the rule annotator's compiled patterns: lists of PCRE2
 * patterns from the rules files, compiled (and JIT-compiled) once at load
 * time into one regular expression per list, with placeholders that stand
 * for lists of names kept elsewhere in the data.
 *
 * Placeholders, each at most once per pattern:
 *   {NUM}   a number: digits ("150", "1,000") or a number word ("two",
 *           "deux", "三"); read back with cairn_pattern_number().
 *   {LANG}  the name of a language ("French", "français", "法语");
 *           read back with cairn_pattern_which(..., "l").
 *   {CODE}  the name of a programming language ("Python", "C++");
 *           read back with cairn_pattern_which(..., "c").
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

/* What the placeholders expand to; NULL makes a placeholder an error. */
struct cairn_pattern_env {
    const char *num;  /* "(?<num>...)" with groups n1.. for number words */
    const char *lang; /* "(?:(?<l0>...)|(?<l1>...)...)": group l<i> = language i */
    const char *code; /* the same with c<i> for programming language i */
};

/* A compiled list: one alternation, or a few when the whole would pass
 * PCRE2's size limit for one compiled pattern. */
struct cairn_pattern;

/* A match: the match data (sized with cairn_pattern_groups) and which
 * compiled piece it belongs to. */
struct cairn_match {
    pcre2_match_data *md;
    const pcre2_code *re;
};

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

/** Ovector pairs a match data needs for this list (NULL counts 1). */
uint32_t cairn_pattern_groups(const struct cairn_pattern *p);

/** Find the leftmost match of `p` in s[start..len). @return true with the
 *  match in `m`, false when there is none. */
bool cairn_pattern_find(const struct cairn_pattern *p, const char *s, size_t len, size_t start,
                        struct cairn_match *m);

/** Where the last match starts / ends. */
size_t cairn_pattern_start(const struct cairn_match *m);
size_t cairn_pattern_end(const struct cairn_match *m);

/** How many matches `p` has in s[0..len), counting at most `cap`. */
int cairn_pattern_count(const struct cairn_pattern *p, const char *s, size_t len, int cap,
                        struct cairn_match *m);

/** After a match: the index i of the set group "<prefix><i>" (i < n), or -1. */
int cairn_pattern_which(const struct cairn_match *m, const char *prefix, size_t n);

/** After a match with {NUM}: its value (digits or a number word), or -1. */
long cairn_pattern_number(const struct cairn_match *m, const char *s);

/** Group names and escaped alternatives for placeholder expansions:
 *  append `text` to `buf` as a PCRE2 literal. */
void cairn_pattern_escape(char **buf, size_t *len, size_t *cap, const char *text);
/** Append a raw string to a growing buffer. */
void cairn_pattern_append(char **buf, size_t *len, size_t *cap, const char *text);

/** Check that every member of object `obj` is named in `allowed` (a NULL-
 *  terminated list). @return 0, or -1 with `why` = "<path>.<key>: unknown key". */
int cairn_pattern_check_keys(const cJSON *obj, const char *const *allowed, const char *path,
                             char *why, size_t whylen);

#endif
