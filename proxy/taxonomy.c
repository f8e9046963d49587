/*
 * taxonomy.c — load and query the marker taxonomy (see taxonomy.h).
 */
#include "taxonomy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "json_strict.h"

#define RULES_MAX_FILE_BYTES (4 << 20)

/* Tag keys and names: what can stand between '<' and '>' in the block. */
static bool valid_tag_name(const char *s)
{
    if (*s == '\0' || strlen(s) >= 40)
        return false;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

/* Enum values are rendered inside the block: no markup, no line breaks. */
static bool valid_value(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < CAIRN_MARKER_VALUE_MAX && strpbrk(s, "<>&\r\n") == NULL;
}

static int load_tag(struct cairn_taxonomy *tx, const cJSON *t, size_t i, char *why, size_t whylen)
{
    struct cairn_tag *tag = &tx->tags[i];
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(t, "key");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "name");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
    for (const cJSON *m = t->child; m != NULL; m = m->next) {
        if (strcmp(m->string, "key") && strcmp(m->string, "name") && strcmp(m->string, "type") &&
            strcmp(m->string, "values") && strcmp(m->string, "min") && strcmp(m->string, "max")) {
            snprintf(why, whylen, "tags[%zu].%s: unknown key", i, m->string);
            return -1;
        }
    }
    if (!cJSON_IsString(key) || !valid_tag_name(key->valuestring)) {
        snprintf(why, whylen, "tags[%zu].key: must be a name of letters, digits and '_'", i);
        return -1;
    }
    const char *wire = cJSON_IsString(name) ? name->valuestring : key->valuestring;
    if (name != NULL && (!cJSON_IsString(name) || !valid_tag_name(wire))) {
        snprintf(why, whylen, "tags[%zu].name: must be a name of letters, digits and '_'", i);
        return -1;
    }
    for (size_t j = 0; j < i; j++) {
        if (strcasecmp(tx->tags[j].key, key->valuestring) == 0 ||
            strcasecmp(tx->tags[j].name, wire) == 0 || strcasecmp(tx->tags[j].key, wire) == 0 ||
            strcasecmp(tx->tags[j].name, key->valuestring) == 0) {
            snprintf(why, whylen, "tags[%zu]: key or name \"%s\" already used by tags[%zu]", i,
                     key->valuestring, j);
            return -1;
        }
    }
    tag->key = cairn_strdup(key->valuestring);
    tag->name = cairn_strdup(wire);

    const char *ty = cJSON_IsString(type) ? type->valuestring : "";
    if (strcmp(ty, "enum") == 0) {
        tag->type = CAIRN_TAG_ENUM;
        const cJSON *values = cJSON_GetObjectItemCaseSensitive(t, "values");
        int n = cJSON_GetArraySize(values);
        if (!cJSON_IsArray(values) || n < 1) {
            snprintf(why, whylen, "tags[%zu].values: must be a non-empty array of strings", i);
            return -1;
        }
        tag->values = cairn_calloc((size_t)n, sizeof(*tag->values));
        for (const cJSON *v = values->child; v != NULL; v = v->next) {
            size_t k = tag->nvalues;
            if (!cJSON_IsString(v) || !valid_value(v->valuestring)) {
                snprintf(why, whylen,
                         "tags[%zu].values[%zu]: must be a string of 1-63 bytes without <>&", i, k);
                return -1;
            }
            for (size_t j = 0; j < k; j++) {
                if (strcasecmp(tag->values[j], v->valuestring) == 0) {
                    snprintf(why, whylen, "tags[%zu].values[%zu]: \"%s\" is listed twice", i, k,
                             v->valuestring);
                    return -1;
                }
            }
            tag->values[tag->nvalues++] = cairn_strdup(v->valuestring);
        }
        return 0;
    }
    if (strcmp(ty, "int") != 0 && strcmp(ty, "float") != 0) {
        snprintf(why, whylen, "tags[%zu].type: must be \"enum\", \"int\" or \"float\"", i);
        return -1;
    }
    tag->type = strcmp(ty, "int") == 0 ? CAIRN_TAG_INT : CAIRN_TAG_FLOAT;
    const cJSON *min = cJSON_GetObjectItemCaseSensitive(t, "min");
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(t, "max");
    if (!cJSON_IsNumber(min) || !cJSON_IsNumber(max) || min->valuedouble > max->valuedouble) {
        snprintf(why, whylen, "tags[%zu]: \"min\" and \"max\" must be numbers, min <= max", i);
        return -1;
    }
    tag->min = min->valuedouble;
    tag->max = max->valuedouble;
    return 0;
}

int cairn_taxonomy_load(struct cairn_taxonomy *tx, const char *path, char *err, size_t errlen)
{
    memset(tx, 0, sizeof(*tx));
    char why[256];
    cJSON *root = cairn_json_load_file(path, RULES_MAX_FILE_BYTES, 16, err, errlen);
    if (root == NULL)
        return -1;
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(root, "tags");
    int rc = -1;
    if (!cJSON_IsObject(root) || cJSON_GetArraySize(root) != 1 || !cJSON_IsArray(tags) ||
        cJSON_GetArraySize(tags) < 1 || cJSON_GetArraySize(tags) > CAIRN_MAX_TAGS) {
        snprintf(err, errlen, "%s: must be {\"tags\": [...]} with 1 to %d tags", path,
                 CAIRN_MAX_TAGS);
        goto out;
    }
    for (const cJSON *t = tags->child; t != NULL; t = t->next) {
        if (!cJSON_IsObject(t)) {
            snprintf(err, errlen, "%s: tags[%zu]: must be an object", path, tx->ntags);
            goto out;
        }
        tx->ntags++;
        if (load_tag(tx, t, tx->ntags - 1, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "%s: %s", path, why);
            goto out;
        }
    }
    rc = 0;
out:
    cJSON_Delete(root);
    if (rc < 0)
        cairn_taxonomy_free(tx);
    return rc;
}

int cairn_taxonomy_load_dir(struct cairn_taxonomy *tx, const char *rules_dir, char *err,
                            size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/taxonomy.json", rules_dir);
    return cairn_taxonomy_load(tx, path, err, errlen);
}

void cairn_taxonomy_free(struct cairn_taxonomy *tx)
{
    for (size_t i = 0; i < tx->ntags; i++) {
        struct cairn_tag *tag = &tx->tags[i];
        free(tag->key);
        free(tag->name);
        for (size_t j = 0; j < tag->nvalues; j++)
            free(tag->values[j]);
        free(tag->values);
    }
    memset(tx, 0, sizeof(*tx));
}

int cairn_taxonomy_find(const struct cairn_taxonomy *tx, const char *name)
{
    for (size_t i = 0; i < tx->ntags; i++)
        if (strcasecmp(tx->tags[i].key, name) == 0 || strcasecmp(tx->tags[i].name, name) == 0)
            return (int)i;
    return -1;
}

int cairn_taxonomy_key(const struct cairn_taxonomy *tx, const char *key)
{
    for (size_t i = 0; i < tx->ntags; i++)
        if (strcmp(tx->tags[i].key, key) == 0)
            return (int)i;
    return -1;
}

int cairn_taxonomy_canonical(const struct cairn_taxonomy *tx, int tagi, const char *value,
                             char out[CAIRN_MARKER_VALUE_MAX], char *err, size_t errlen)
{
    const struct cairn_tag *tag = &tx->tags[tagi];
    if (tag->type == CAIRN_TAG_ENUM) {
        for (size_t j = 0; j < tag->nvalues; j++) {
            if (strcasecmp(tag->values[j], value) == 0) {
                snprintf(out, CAIRN_MARKER_VALUE_MAX, "%s", tag->values[j]);
                return 0;
            }
        }
        snprintf(err, errlen, "\"%.40s\" is not a value of marker '%s'", value, tag->name);
        return -1;
    }
    char *end;
    errno = 0;
    double d = strtod(value, &end);
    bool integral = tag->type == CAIRN_TAG_INT;
    if (end == value || *end != '\0' || errno != 0 || !isfinite(d) || d < tag->min ||
        d > tag->max || (integral && d != floor(d))) {
        snprintf(err, errlen, "marker '%s' must be %s between %g and %g", tag->name,
                 integral ? "an integer" : "a number", tag->min, tag->max);
        return -1;
    }
    if (integral)
        snprintf(out, CAIRN_MARKER_VALUE_MAX, "%.0f", d);
    else
        snprintf(out, CAIRN_MARKER_VALUE_MAX, "%g", d);
    return 0;
}

int cairn_taxonomy_rule_value(const struct cairn_taxonomy *tx, const char *key, const cJSON *v,
                              char out[CAIRN_MARKER_VALUE_MAX], const char *path, char *why,
                              size_t whylen)
{
    char msg[160];
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0' ||
        strlen(v->valuestring) >= CAIRN_MARKER_VALUE_MAX) {
        snprintf(why, whylen, "%s: must be a value of '%s'", path, key);
        return -1;
    }
    int tag = cairn_taxonomy_key(tx, key);
    if (tag < 0) {
        snprintf(out, CAIRN_MARKER_VALUE_MAX, "%s", v->valuestring);
        return 0;
    }
    if (cairn_taxonomy_canonical(tx, tag, v->valuestring, out, msg, sizeof(msg)) < 0) {
        snprintf(why, whylen, "%s: %s", path, msg);
        return -1;
    }
    return 0;
}
