/*
 * snapshot.c — build, share and free a loaded configuration (see
 * snapshot.h).
 *
 * Everything that a request would otherwise work out from the config is
 * done here once: templates resolved, spoof detectors compiled, fixed
 * markers validated, keys put in a table, each tenant's policy joined to
 * its upstream. Requests only follow pointers.
 */
#include "snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "keys.h"

static void snapshot_free(struct cairn_snapshot *s)
{
    for (size_t i = 0; i < s->ntenants; i++) {
        cairn_limiter_unref(s->tenants[i].limiter);
        free(s->tenants[i].breaker);
    }
    free(s->tenants);
    cairn_model_prompt_free(s->prompt);
    for (size_t i = 0; s->backends != NULL && i < s->cfg.nupstreams; i++) {
        cairn_endpoint_free(s->backends[i].endpoint);
        cairn_spoof_free(s->backends[i].spoof);
    }
    free(s->backends);
    cairn_keytable_free(s->keys);
    cairn_annotator_free(s->annotator);
    cairn_validator_free(s->validator);
    cairn_taxonomy_free(&s->tx);
    cairn_config_free(&s->cfg);
    free(s);
}

static int load_backend(struct cairn_snapshot *s, struct cairn_backend *b,
                        const struct cairn_upstream_config *cfg, struct cairn_upstream *client,
                        char *err, size_t errlen)
{
    char why[256];
    b->cfg = cfg;
    if (cairn_marker_format_init(&b->format, &s->tx, &cfg->template, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: upstreams.%s.%s", s->cfg.path, cfg->name, why);
        return -1;
    }
    b->spoof = cairn_spoof_new(&s->tx, &cfg->template, err, errlen);
    if (b->spoof == NULL)
        return -1;
    b->endpoint = cairn_endpoint_new(client, cfg, why, sizeof(why));
    if (b->endpoint == NULL) {
        snprintf(err, errlen, "%s: %s", s->cfg.path, why);
        return -1;
    }
    return 0;
}

static struct cairn_limiter *limiter_for(const struct cairn_snapshot *previous, const char *name)
{
    for (size_t i = 0; previous != NULL && i < previous->ntenants; i++)
        if (strcmp(previous->tenants[i].name, name) == 0)
            return cairn_limiter_ref(previous->tenants[i].limiter);
    return cairn_limiter_new();
}

static bool uses_model(const struct cairn_policy *p)
{
    return p->markers.annotate == CAIRN_ANNOTATE_MODEL ||
           p->markers.annotate == CAIRN_ANNOTATE_RULES_MODEL;
}

static int load_tenant(struct cairn_snapshot *s, struct cairn_tenant *t, const char *name,
                       const struct cairn_policy *policy, const struct cairn_snapshot *previous,
                       char *err, size_t errlen)
{
    char where[96], why[256];
    snprintf(where, sizeof(where), "%s%s", policy == &s->cfg.policy ? "policy" : "tenants.",
             policy == &s->cfg.policy ? "" : name);
    t->name = name;
    t->policy = policy;
    t->limiter = limiter_for(previous, name);
    for (size_t i = 0; i < s->cfg.nupstreams; i++)
        if (strcmp(s->cfg.upstreams[i].name, policy->upstream) == 0)
            t->backend = &s->backends[i];
    if (cairn_marking_init(&t->marking, &s->tx, &t->backend->format, t->backend->spoof,
                           s->annotator, policy, where, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", s->cfg.path, why);
        return -1;
    }
    if (uses_model(policy)) {
        const struct cairn_annotator_config *a = &policy->annotator;
        for (size_t i = 0; i < s->cfg.nupstreams; i++)
            if (strcmp(s->cfg.upstreams[i].name, a->upstream) == 0)
                t->annotator = &s->backends[i];
        /* The identity of the answers the cache holds for this tenant: the
         * same conversation asked of another model or prompt is another key. */
        unsigned char prompt_id[CAIRN_MODEL_PROMPT_ID_LEN];
        cairn_model_prompt_id(s->prompt, prompt_id);
        char id[4096];
        int n = snprintf(id, sizeof(id), "%s\n%s\n", t->annotator->cfg->base_url,
                         a->model != NULL ? a->model : "");
        if (n > 0 && (size_t)n + sizeof(prompt_id) < sizeof(id)) {
            memcpy(id + n, prompt_id, sizeof(prompt_id));
            n += (int)sizeof(prompt_id);
        }
        cairn_key_digest(id, (size_t)n, t->annotator_id);
        t->breaker = cairn_calloc(1, sizeof(*t->breaker));
        cairn_breaker_init(t->breaker, (unsigned)a->breaker_failures,
                           (uint64_t)a->breaker_cooldown_ms * 1000u);
    }
    return 0;
}

/* Whether some policy runs the rule annotator (every mode but "off" may:
 * "model" falls back to it), and whether some policy calls the model. */
static bool any_policy(const struct cairn_config *cfg, bool model)
{
    bool any =
        model ? uses_model(&cfg->policy) : cfg->policy.markers.annotate != CAIRN_ANNOTATE_OFF;
    for (size_t i = 0; i < cfg->ntenants; i++) {
        const struct cairn_policy *p = &cfg->tenants[i].policy;
        any |= model ? uses_model(p) : p->markers.annotate != CAIRN_ANNOTATE_OFF;
    }
    return any;
}

/* The validator, when some policy validates; every validated marker must
 * be a tag that has a validator. */
static int load_validator(struct cairn_snapshot *s, char *err, size_t errlen)
{
    for (size_t i = 0; i <= s->cfg.ntenants; i++) { /* the default policy, then each tenant's */
        const struct cairn_tenant_config *t = i > 0 ? &s->cfg.tenants[i - 1] : NULL;
        const struct cairn_strlist *markers =
            t != NULL ? &t->policy.validation.markers : &s->cfg.policy.validation.markers;
        if (markers->n > 0 && s->validator == NULL) {
            s->validator = cairn_validator_load(&s->tx, s->cfg.rules_dir, err, errlen);
            if (s->validator == NULL)
                return -1;
        }
        for (size_t k = 0; k < markers->n; k++) {
            if (!cairn_validator_has(s->validator, markers->items[k])) {
                snprintf(err, errlen, "%s: %s%s.validation.markers[%zu]: no validator for \"%s\"",
                         s->cfg.path, t != NULL ? "tenants." : "", t != NULL ? t->name : "policy",
                         k, markers->items[k]);
                return -1;
            }
        }
    }
    return 0;
}

static void load_keys(struct cairn_snapshot *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->cfg.ntenants; i++)
        n += s->cfg.tenants[i].keys.n;
    s->keys = cairn_keytable_new(n);
    for (size_t i = 0; i < s->cfg.ntenants; i++) {
        const struct cairn_tenant_config *t = &s->cfg.tenants[i];
        for (size_t k = 0; k < t->keys.n; k++)
            cairn_keytable_add(s->keys, t->keys.items[k].sha256, i,
                               t->disabled || t->keys.items[k].disabled);
    }
}

struct cairn_snapshot *cairn_snapshot_new(struct cairn_config *cfg, struct cairn_upstream *client,
                                          const struct cairn_snapshot *previous,
                                          uint64_t generation, char *err, size_t errlen)
{
    struct cairn_snapshot *s = cairn_calloc(1, sizeof(*s));
    s->refs = 1;
    s->generation = generation;
    s->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));

    if (cairn_taxonomy_load_dir(&s->tx, s->cfg.rules_dir, err, errlen) < 0)
        goto fail;
    if (any_policy(&s->cfg, false)) {
        s->annotator = cairn_annotator_load(&s->tx, s->cfg.rules_dir, err, errlen);
        if (s->annotator == NULL)
            goto fail;
    }
    if (any_policy(&s->cfg, true)) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", s->cfg.rules_dir, CAIRN_MODEL_PROMPT_FILE);
        s->prompt = cairn_model_prompt_load(&s->tx, path, err, errlen);
        if (s->prompt == NULL)
            goto fail;
    }
    if (load_validator(s, err, errlen) < 0)
        goto fail;
    s->backends = cairn_calloc(s->cfg.nupstreams, sizeof(*s->backends));
    for (size_t i = 0; i < s->cfg.nupstreams; i++)
        if (load_backend(s, &s->backends[i], &s->cfg.upstreams[i], client, err, errlen) < 0)
            goto fail;

    if (s->cfg.auth == CAIRN_AUTH_OPEN) {
        s->tenants = cairn_calloc(1, sizeof(*s->tenants));
        s->ntenants = 1;
        if (load_tenant(s, &s->tenants[0], "default", &s->cfg.policy, previous, err, errlen) < 0)
            goto fail;
    } else {
        s->tenants = cairn_calloc(s->cfg.ntenants + 1, sizeof(*s->tenants));
        for (size_t i = 0; i < s->cfg.ntenants; i++) {
            const struct cairn_tenant_config *tc = &s->cfg.tenants[i];
            s->ntenants++;
            if (load_tenant(s, &s->tenants[i], tc->name, &tc->policy, previous, err, errlen) < 0)
                goto fail;
        }
        load_keys(s);
    }
    return s;
fail:
    snapshot_free(s);
    return NULL;
}

struct cairn_snapshot *cairn_snapshot_ref(struct cairn_snapshot *s)
{
    s->refs++;
    return s;
}

void cairn_snapshot_unref(struct cairn_snapshot *s)
{
    if (s != NULL && --s->refs == 0)
        snapshot_free(s);
}

const struct cairn_tenant *cairn_snapshot_tenant(const struct cairn_snapshot *s,
                                                 const char *authorization)
{
    if (s->keys == NULL)
        return &s->tenants[0];
    long i = cairn_keytable_find(s->keys, authorization);
    return i >= 0 ? &s->tenants[i] : NULL;
}

bool cairn_tenant_allows_model(const struct cairn_tenant *t, const char *model)
{
    const struct cairn_strlist *models = &t->policy->models;
    if (models->n == 0)
        return true;
    for (size_t i = 0; i < models->n; i++) {
        const char *m = models->items[i];
        size_t n = strlen(m);
        if (n > 0 && m[n - 1] == '*' ? strncmp(model, m, n - 1) == 0 : strcmp(model, m) == 0)
            return true;
    }
    return false;
}
