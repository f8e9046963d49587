/*
 * taxonomy.h — the marker taxonomy, loaded from rules/taxonomy.json.
 *
 * Every tag has a stable `key` that cairn's code and rules refer to
 * ("length_tokens") and a wire `name` the backend was trained on (which a
 * deployment may rename: "length_sent", "language"). Value lists and ranges
 * live only in the data file; nothing of them is compiled in.
 */
#ifndef CAIRN_TAXONOMY_H
#define CAIRN_TAXONOMY_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#define CAIRN_MAX_TAGS         32
#define CAIRN_MARKER_VALUE_MAX 64 /* longest value, NUL included */

enum cairn_tag_type { CAIRN_TAG_ENUM, CAIRN_TAG_INT, CAIRN_TAG_FLOAT };

struct cairn_tag {
    char *key;  /* owned: stable identity, e.g. "lang" */
    char *name; /* owned: wire name rendered in the block, e.g. "language" */
    enum cairn_tag_type type;
    char **values; /* owned: CAIRN_TAG_ENUM's allowed values */
    size_t nvalues;
    double min, max; /* CAIRN_TAG_INT / CAIRN_TAG_FLOAT range */
};

struct cairn_taxonomy {
    struct cairn_tag tags[CAIRN_MAX_TAGS];
    size_t ntags;
};

/** Load and check a taxonomy file. @return 0, or -1 with `err` naming the
 *  file, the key path and the problem. */
int cairn_taxonomy_load(struct cairn_taxonomy *tx, const char *path, char *err, size_t errlen);
/** The same for `rules_dir`/taxonomy.json. */
int cairn_taxonomy_load_dir(struct cairn_taxonomy *tx, const char *rules_dir, char *err,
                            size_t errlen);
void cairn_taxonomy_free(struct cairn_taxonomy *tx);

/** The tag whose key or wire name is `name` (case-insensitive), or -1. */
int cairn_taxonomy_find(const struct cairn_taxonomy *tx, const char *name);

/** The tag whose key is exactly `key`, or -1 (for code that needs a given
 *  tag: "length_tokens", "lang", ...). */
int cairn_taxonomy_key(const struct cairn_taxonomy *tx, const char *key);

/**
 * Check `value` for tag `tag` and write its canonical spelling to out[]
 * (the taxonomy's own case for enum values, "%d" for integers, "%g" for
 * floats). @return 0, or -1 with `err` saying what is allowed.
 */
int cairn_taxonomy_canonical(const struct cairn_taxonomy *tx, int tag, const char *value,
                             char out[CAIRN_MARKER_VALUE_MAX], char *err, size_t errlen);

/**
 * A value named by a rules file (`v`, at key path `path`) for tag `key`:
 * its canonical spelling goes to out[]. A value the taxonomy lacks is an
 * error naming the path; when the deployment dropped the tag altogether
 * any value is accepted (rules for it then set nothing).
 */
int cairn_taxonomy_rule_value(const struct cairn_taxonomy *tx, const char *key, const cJSON *v,
                              char out[CAIRN_MARKER_VALUE_MAX], const char *path, char *why,
                              size_t whylen);

#endif
