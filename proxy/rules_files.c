/*
 * rules_files.c — reading a module's rules files together (see
 * rules_files.h).
 */
#include "rules_files.h"

#include <stdio.h>
#include <string.h>

#include "json_strict.h"

int cairn_rules_files_load(struct cairn_rules_files *f, const char *rules_dir,
                           const char *const *names, size_t n, char *err, size_t errlen)
{
    memset(f, 0, sizeof(*f));
    f->n = n < CAIRN_RULES_MAX_FILES ? n : CAIRN_RULES_MAX_FILES;
    for (size_t i = 0; i < f->n; i++) {
        snprintf(f->path[i], sizeof(f->path[i]), "%s/%s", rules_dir, names[i]);
        f->root[i] = cairn_json_load_file(f->path[i], CAIRN_RULES_MAX_FILE_BYTES,
                                          CAIRN_RULES_MAX_DEPTH, err, errlen);
        if (f->root[i] == NULL)
            return -1;
    }
    return 0;
}

int cairn_rules_files_finish(struct cairn_rules_files *f, int failed, const char *why, char *err,
                             size_t errlen)
{
    if (failed >= 0 && (size_t)failed < f->n)
        snprintf(err, errlen, "%s: %s", f->path[failed], why);
    for (size_t i = 0; i < f->n; i++) {
        cJSON_Delete(f->root[i]);
        f->root[i] = NULL;
    }
    return failed == CAIRN_RULES_LOADED ? 0 : -1;
}
