/*
 * langid.h — the language a piece of prose is written in, for the rule
 * annotator's `lang` marker: writing-system rules first (Hangul is Korean,
 * Kana is Japanese, ...), then libexttextcat's n-gram fingerprints (read
 * and compared by ngram.c, with the library's answers) for the
 * scripts many languages share (Latin, Cyrillic). Both are data: the
 * "scripts" and "identify" sections of rules/languages.json and a textcat
 * configuration file naming one fingerprint per taxonomy language.
 */
#ifndef CAIRN_LANGID_H
#define CAIRN_LANGID_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "taxonomy.h"

struct cairn_langid;

/**
 * Build an identifier from the root object of languages.json (`file` and
 * `rules_dir` are for errors and for the textcat configuration's path).
 * @return NULL with `err` naming the file, the key path and the problem.
 */
struct cairn_langid *cairn_langid_load(const struct cairn_taxonomy *tx, const cJSON *root,
                                       const char *rules_dir, const char *file, char *err,
                                       size_t errlen);
void cairn_langid_free(struct cairn_langid *l);

/** The taxonomy `lang` value for prose text[0..len) (code already taken
 *  out), or NULL when the text is too short or the answer is not clear. */
const char *cairn_langid_identify(const struct cairn_langid *l, const char *text, size_t len);

#endif
