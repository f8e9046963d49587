/*
 * markers.h — a set of markers for one request: at most one value per tag
 * of the taxonomy, each with the source it came from. Sources rank as in
 * DESIGN.md: pinned by the caller > fixed by policy > annotator model >
 * rule annotator; a value from a lower-ranked source never replaces one
 * from a higher-ranked source.
 */
#ifndef CAIRN_MARKERS_H
#define CAIRN_MARKERS_H

#include <stdbool.h>
#include <stddef.h>

#include "taxonomy.h"

enum cairn_marker_source {
    CAIRN_SRC_NONE = 0,
    CAIRN_SRC_RULES,
    CAIRN_SRC_MODEL,
    CAIRN_SRC_FIXED,
    CAIRN_SRC_PINNED, /* highest */
};

struct cairn_markers {
    const struct cairn_taxonomy *tx;
    unsigned char source[CAIRN_MAX_TAGS];               /* CAIRN_SRC_NONE = no value */
    char value[CAIRN_MAX_TAGS][CAIRN_MARKER_VALUE_MAX]; /* canonical spelling */
};

void cairn_markers_init(struct cairn_markers *m, const struct cairn_taxonomy *tx);

/** Offer `value` for tag index `tag` from `source`: taken when it is valid
 *  and the tag has no value from a higher-ranked source. @return 0 if
 *  taken or outranked, -1 if invalid (err says why). */
int cairn_markers_offer(struct cairn_markers *m, int tag, const char *value,
                        enum cairn_marker_source source, char *err, size_t errlen);

/** Same, by tag key (a no-op returning 0 when the taxonomy lacks the tag,
 *  so rules keep working when a deployment drops a tag). */
int cairn_markers_offer_key(struct cairn_markers *m, const char *key, const char *value,
                            enum cairn_marker_source source);

/** The value of tag `key`, or NULL. */
const char *cairn_markers_get(const struct cairn_markers *m, const char *key);

size_t cairn_markers_count(const struct cairn_markers *m);

const char *cairn_marker_source_name(enum cairn_marker_source source);

#endif
