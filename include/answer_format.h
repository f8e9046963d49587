/*
 * answer_format.h — whether an answer has the format its `format` marker
 * asked for: JSON, XML, Tabular, Enumeration, Markdown, Latex, MCQAnswer
 * or ChainOfThought (the definitions are in answer_format.c and
 * tests/validate/README.md). The phrase lists (Markdown constructs, LaTeX
 * commands, how a choice is stated, what announces a conclusion) are data,
 * the "formats" object of rules/validation.json, compiled once at load.
 */
#ifndef CAIRN_ANSWER_FORMAT_H
#define CAIRN_ANSWER_FORMAT_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "answer_text.h"

struct cairn_formats;

/** Compile the "formats" object `obj` (`path` names it in errors); the
 *  chain-of-thought check counts steps with `sentences`, which must
 *  outlive the result. @return NULL with `why` naming the key and the
 *  problem. */
struct cairn_formats *cairn_formats_load(const cJSON *obj, const char *path,
                                         const struct cairn_sentence_rules *sentences, char *why,
                                         size_t whylen);
void cairn_formats_free(struct cairn_formats *f);

/** Whether there is a check for format value `value` (taxonomy spelling). */
bool cairn_format_known(const char *value);

/**
 * Check answer `a` against format `value`; JSON nests at most `json_depth`.
 * @return 1 the answer has the format, 0 it has not (`observed` says what
 *         was seen instead: "no JSON", "not valid JSON (invalid JSON at
 *         byte 40)", "no table"), -1 no check for this value.
 */
int cairn_format_check(const struct cairn_formats *f, const char *value,
                       const struct cairn_answer *a, int json_depth, char *observed, size_t obslen);

/** What the model is told when format `value` was missed, completing
 *  "Your previous answer ...": "was not valid JSON; answer again with only
 *  valid JSON." (a generic sentence for a value without a check). */
const char *cairn_format_feedback(const char *value);

#endif
