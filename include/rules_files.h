/*
 * rules_files.h — the JSON files of the rules directory that one module is
 * compiled from (the annotator: languages.json, lengths.json and
 * annotator.json; the validator: languages.json, annotator.json and
 * validation.json), read together before any is compiled, with the limits
 * every rules file has.
 *
 * A module's loader reports a problem as "<file>: <key path>: <why>", so
 * it keeps each file's path beside its tree until loading is over, and
 * ends by cairn_rules_files_finish, which says which file failed.
 */
#ifndef CAIRN_RULES_FILES_H
#define CAIRN_RULES_FILES_H

#include <stddef.h>

#include <cjson/cJSON.h>

#define CAIRN_RULES_MAX_FILES      4
#define CAIRN_RULES_MAX_FILE_BYTES (4 << 20)
#define CAIRN_RULES_MAX_DEPTH      16
#define CAIRN_RULES_LOADED         (-2) /* see cairn_rules_files_finish */

struct cairn_rules_files {
    char path[CAIRN_RULES_MAX_FILES][1024]; /* "<rules_dir>/<name>" */
    cJSON *root[CAIRN_RULES_MAX_FILES];     /* owned */
    size_t n;
};

/**
 * Read and parse (strictly, json_strict.h) rules_dir/names[i] for each of
 * the `n` names (at most CAIRN_RULES_MAX_FILES), in order.
 * @return 0, or -1 with `err` naming the file that failed; end with
 *         cairn_rules_files_finish either way.
 */
int cairn_rules_files_load(struct cairn_rules_files *f, const char *rules_dir,
                           const char *const *names, size_t n, char *err, size_t errlen);

/**
 * End loading: free the trees and, on failure, complete `err`.
 * @param failed CAIRN_RULES_LOADED when the module loaded; the index of
 *        the file that `why` is about ("<path>: <why>" goes to `err`); or
 *        -1 when `err` already says what failed.
 * @return 0 when the module loaded, else -1.
 */
int cairn_rules_files_finish(struct cairn_rules_files *f, int failed, const char *why, char *err,
                             size_t errlen);

#endif
