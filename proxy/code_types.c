/*
 * code_types.c — the code types of annotator.json and how code is told to
 * be of one (see code_types.h).
 *
 * Loading is strict where the annotator asks for it and tolerant where the
 * validator reads the same file: a rules directory that only validates
 * must not fail over a key that only the annotator reads.
 */
#include "code_types.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* "mentions": what {CODE} accepts in prose. A name with capitals matches
 * only as written: "Go" the language, not "go" the verb. */
static int load_mentions(const cJSON *j, int type, struct cairn_names *mentions, const char *path,
                         char *why, size_t whylen)
{
    char where[160];
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "mentions");
    snprintf(where, sizeof(where), "%s.mentions", path);
    if (cairn_pattern_check_strings(list, where, why, whylen) < 0)
        return -1;
    for (const cJSON *n = list->child; n != NULL; n = n->next) {
        bool exact = false;
        for (const char *c = n->valuestring; *c != '\0'; c++)
            exact |= *c >= 'A' && *c <= 'Z';
        cairn_names_add(mentions, n->valuestring, type, exact);
    }
    return 0;
}

static int load_type(struct cairn_code_types *ct, const struct cairn_taxonomy *tx,
                     struct cairn_code_type *t, const cJSON *j, struct cairn_names *mentions,
                     const char *path, char *why, size_t whylen)
{
    static const char *const keys[] = {"value",  "names",   "mentions", "shebang",
                                       "syntax", "extends", "comment",  NULL};
    char where[160];
    if (cairn_pattern_check_object(j, mentions != NULL ? keys : NULL, path, why, whylen) < 0)
        return -1;
    snprintf(where, sizeof(where), "%s.value", path);
    if (cairn_taxonomy_rule_value(tx, "code_type", cJSON_GetObjectItemCaseSensitive(j, "value"),
                                  t->value, where, why, whylen) < 0)
        return -1;
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(j, "names");
    snprintf(where, sizeof(where), "%s.names", path);
    if (cairn_pattern_check_strings(names, where, why, whylen) < 0)
        return -1;
    t->names = cairn_calloc((size_t)cJSON_GetArraySize(names), sizeof(*t->names));
    for (const cJSON *n = names->child; n != NULL; n = n->next) {
        char *lower = cairn_strdup(n->valuestring);
        for (char *p = lower; *p != '\0'; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        t->names[t->nnames++] = lower;
    }
    if (mentions != NULL && load_mentions(j, (int)(t - ct->type), mentions, path, why, whylen) < 0)
        return -1;
    struct {
        const char *key;
        struct cairn_pattern **re;
    } lists[] = {{"shebang", &t->shebang}, {"syntax", &t->syntax}};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, lists[i].key);
        if (list == NULL)
            continue;
        snprintf(where, sizeof(where), "%s.%s", path, lists[i].key);
        *lists[i].re = cairn_pattern_compile_list(list, NULL, where, why, whylen);
        if (*lists[i].re == NULL)
            return -1;
        if (cairn_pattern_groups(*lists[i].re) > ct->groups)
            ct->groups = cairn_pattern_groups(*lists[i].re);
    }
    /* "extends": the other type's syntax is this one's too; for the
     * annotator it scores only with syntax of its own. */
    const cJSON *ext = cJSON_GetObjectItemCaseSensitive(j, "extends");
    t->extends = -1;
    for (size_t i = 0; ext != NULL && cJSON_IsString(ext) && i < (size_t)(t - ct->type); i++)
        if (strcmp(ct->type[i].value, ext->valuestring) == 0)
            t->extends = (int)i;
    if (ext != NULL && (t->extends < 0 || (mentions != NULL && t->syntax == NULL))) {
        snprintf(why, whylen, "%s.extends: must name a code type listed before this one%s", path,
                 mentions != NULL ? ", with \"syntax\" of its own" : "");
        return -1;
    }
    return 0;
}

int cairn_code_types_load(struct cairn_code_types *ct, const struct cairn_taxonomy *tx,
                          const cJSON *types, struct cairn_names *mentions, char *why,
                          size_t whylen)
{
    ct->groups = 1;
    if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) < 1 ||
        cJSON_GetArraySize(types) > CAIRN_CODE_TYPES_MAX) {
        snprintf(why, whylen, "code_types: must be an array of 1 to %d entries",
                 CAIRN_CODE_TYPES_MAX);
        return -1;
    }
    char path[64];
    for (const cJSON *t = types->child; t != NULL; t = t->next) {
        snprintf(path, sizeof(path), "code_types[%zu]", ct->n);
        ct->n++; /* counted first, so that free() sees a half-loaded type */
        if (load_type(ct, tx, &ct->type[ct->n - 1], t, mentions, path, why, whylen) < 0)
            return -1;
    }
    return 0;
}

void cairn_code_types_free(struct cairn_code_types *ct)
{
    for (size_t i = 0; i < ct->n; i++) {
        for (size_t k = 0; k < ct->type[i].nnames; k++)
            free(ct->type[i].names[k]);
        free(ct->type[i].names);
        cairn_pattern_free(ct->type[i].shebang);
        cairn_pattern_free(ct->type[i].syntax);
    }
    ct->n = 0;
}

int cairn_code_types_by_name(const struct cairn_code_types *ct, const char *name)
{
    for (size_t i = 0; i < ct->n; i++)
        for (size_t k = 0; k < ct->type[i].nnames; k++)
            if (strcmp(ct->type[i].names[k], name) == 0)
                return (int)i;
    return -1;
}

int cairn_code_types_by_shebang(const struct cairn_code_types *ct, const char *code, size_t len,
                                struct cairn_match *md)
{
    const char *nl = memchr(code, '\n', len);
    size_t first_line = nl ? (size_t)(nl - code) : len;
    for (size_t i = 0; i < ct->n; i++)
        if (ct->type[i].shebang && cairn_pattern_find(ct->type[i].shebang, code, first_line, 0, md))
            return (int)i;
    return -1;
}

int cairn_code_types_by_syntax(const struct cairn_code_types *ct, const char *code, size_t len,
                               int min_score, struct cairn_match *md)
{
    int score[CAIRN_CODE_TYPES_MAX] = {0};
    for (size_t i = 0; i < ct->n && len > 0; i++)
        if (ct->type[i].syntax != NULL)
            score[i] = cairn_pattern_count(ct->type[i].syntax, code, len, CAIRN_CODE_MAX_SCORE, md);
    int best = -1, best_score = 0, runner_up = 0;
    for (size_t i = 0; i < ct->n; i++) {
        int s = score[i];
        if (s > 0 && ct->type[i].extends >= 0)
            s += score[ct->type[i].extends];
        if (s > best_score) {
            runner_up = best_score;
            best_score = s;
            best = (int)i;
        } else if (s > runner_up) {
            runner_up = s;
        }
    }
    return best_score >= min_score && best_score > runner_up ? best : -1;
}
