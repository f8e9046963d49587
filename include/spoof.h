/*
 * spoof.h — keep marker-looking text typed by users from reaching the
 * backend as markers.
 *
 * Any text in any message that reads as a marker tag or a marker block
 * delimiter — ASCII or full-width/look-alike brackets, any case, spaces
 * inside the brackets, split across the text parts of one message — is
 * stripped or escaped (policy) before cairn appends its own block. JSON
 * escapes (\u003c) are already decoded by then, so they are caught too.
 */
#ifndef CAIRN_SPOOF_H
#define CAIRN_SPOOF_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "taxonomy.h"

struct cairn_spoof;

/** Compile the detector for the taxonomy's tag keys and names and the
 *  template's block delimiters. @return NULL with err on failure. */
struct cairn_spoof *cairn_spoof_new(const struct cairn_taxonomy *tx,
                                    const struct cairn_marker_template *t, char *err,
                                    size_t errlen);
void cairn_spoof_free(struct cairn_spoof *s);

/** Neutralise marker-looking text in every message of `messages`
 *  (string contents and "text" parts). @return how many were found. */
size_t cairn_spoof_clean(const struct cairn_spoof *s, cJSON *messages,
                         enum cairn_injected_policy policy);

/** The same for one string: @return a malloc'd cleaned copy, or NULL
 *  when `text` holds nothing marker-like. */
char *cairn_spoof_clean_text(const struct cairn_spoof *s, const char *text,
                             enum cairn_injected_policy policy, size_t *found);

#endif
