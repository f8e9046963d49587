/*
 * annotator.h — the rule annotator: infers markers from a conversation
 * with rules loaded from the rules directory (patterns compiled once, at
 * load time) and a language-identification library.
 */
#ifndef CAIRN_ANNOTATOR_H
#define CAIRN_ANNOTATOR_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "markers.h"
#include "taxonomy.h"

struct cairn_annotator;

/** Load the rules in `rules_dir` for taxonomy `tx` (which must outlive the
 *  annotator). @return NULL with `err` naming the file, key and problem. */
struct cairn_annotator *cairn_annotator_load(const struct cairn_taxonomy *tx, const char *rules_dir,
                                             char *err, size_t errlen);
void cairn_annotator_free(struct cairn_annotator *a);

/** Infer markers from an OpenAI `messages` array (the last user turn
 *  decides, earlier turns give context) and offer each to `out` with
 *  CAIRN_SRC_RULES. A tag without evidence gets no value. */
void cairn_annotator_run(const struct cairn_annotator *a, const cJSON *messages,
                         struct cairn_markers *out);

#endif
