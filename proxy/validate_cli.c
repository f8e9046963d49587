/*
 * validate_cli.c — `cairn validate`: the validators over JSON Lines (see
 * validate_cli.h). The loop, and what becomes of a bad line, is jsonl.c's
 * as for `cairn annotate`; this file reads one line's markers and answer
 * and reports what the answer breaks.
 */
#include "validate_cli.h"

#include <string.h>

#include "jsonl.h"
#include "markers.h"

/* The "markers" object into `m`. @return 0, or -1 with `err`. */
static int read_markers(const struct cairn_taxonomy *tx, const cJSON *obj, struct cairn_markers *m,
                        char *err, size_t errlen)
{
    char why[256], value[64];
    cairn_markers_init(m, tx);
    if (!cJSON_IsObject(obj)) {
        snprintf(err, errlen, "expected a \"markers\" object");
        return -1;
    }
    for (const cJSON *e = obj->child; e != NULL; e = e->next) {
        int tag = cairn_taxonomy_find(tx, e->string);
        if (tag < 0) {
            snprintf(err, errlen, "markers.%s: not a tag of the taxonomy", e->string);
            return -1;
        }
        if (cJSON_IsString(e)) {
            snprintf(value, sizeof(value), "%s", e->valuestring);
        } else if (cJSON_IsNumber(e)) {
            if (e->valuedouble == (double)(long long)e->valuedouble)
                snprintf(value, sizeof(value), "%lld", (long long)e->valuedouble);
            else
                snprintf(value, sizeof(value), "%.17g", e->valuedouble);
        } else {
            snprintf(err, errlen, "markers.%s: must be a string or a number", e->string);
            return -1;
        }
        if (cairn_markers_offer(m, tag, value, CAIRN_SRC_PINNED, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "markers.%s: %s", e->string, why);
            return -1;
        }
    }
    return 0;
}

/* The violations of one input line (see cairn_jsonl_line_cb). */
static void on_validate_line(void *ctx, const cJSON *in, cJSON *out)
{
    const struct cairn_validate_cli *c = ctx;
    char err[320];
    const cJSON *response =
        cJSON_IsObject(in) ? cJSON_GetObjectItemCaseSensitive(in, "response") : NULL;
    struct cairn_markers m;
    if (!cJSON_IsObject(in)) {
        cJSON_AddStringToObject(out, "error", "expected an object");
    } else if (read_markers(c->tx, cJSON_GetObjectItemCaseSensitive(in, "markers"), &m, err,
                            sizeof(err)) < 0) {
        cJSON_AddStringToObject(out, "error", err);
    } else if (!cJSON_IsString(response)) {
        cJSON_AddStringToObject(out, "error", "expected a \"response\" string");
    } else {
        const char *text = response->valuestring;
        size_t n = strlen(text), end = 0, dropped = 0;
        struct cairn_markers model;
        cairn_markers_init(&model, c->tx);
        if (c->block != NULL && cairn_marker_block_parse(c->block, text, n, &end, &model,
                                                         CAIRN_SRC_MODEL, &dropped) == 1) {
            text += end;
            n -= end;
        }
        struct cairn_violations v;
        cairn_validate(c->v, &m, text, n, &c->opts, &v);
        cJSON *arr = cJSON_AddArrayToObject(out, "violations");
        cairn_violations_to_json(&v, c->tx, arr);
    }
}

int cairn_validate_stream(const struct cairn_validate_cli *c, FILE *in, FILE *out)
{
    return cairn_jsonl_map(in, out, on_validate_line, (void *)c);
}

int cairn_validate_cli_run(const struct cairn_config *cfg, FILE *in, FILE *out, char *err,
                           size_t errlen)
{
    struct cairn_taxonomy tx;
    if (cairn_taxonomy_load_dir(&tx, cfg->rules_dir, err, errlen) < 0)
        return -1;
    struct cairn_validator *v = cairn_validator_load(&tx, cfg->rules_dir, err, errlen);
    if (v == NULL) {
        cairn_taxonomy_free(&tx);
        return -1;
    }
    const struct cairn_upstream_config *up = cairn_config_upstream(cfg, cfg->policy.upstream);
    struct cairn_marker_format block;
    char why[256];
    struct cairn_validate_cli c = {
        .v = v,
        .tx = &tx,
        .opts = {.counting = (enum cairn_counting)cfg->policy.validation.counting,
                 .tolerance = cfg->policy.validation.tolerance,
                 .json_depth = (int)cfg->limits.json_depth},
    };
    if (up != NULL) {
        if (cairn_marker_format_init(&block, &tx, &up->template, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "upstreams.%s.%s", up->name, why);
            cairn_validator_free(v);
            cairn_taxonomy_free(&tx);
            return -1;
        }
        c.block = &block;
    }
    for (size_t t = 0; t < tx.ntags && t < CAIRN_MAX_TAGS; t++)
        if (cairn_validator_has(v, tx.tags[t].key))
            c.opts.tags |= UINT32_C(1) << t;
    int rc = cairn_validate_stream(&c, in, out) == 0 ? 0 : 1;
    cairn_validator_free(v);
    cairn_taxonomy_free(&tx);
    return rc;
}
