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

static void tenant_free(struct cairn_tenant *t)
{
    for (size_t i = 0; t->arms != NULL && i < t->experiment->narms; i++)
        tenant_free(&t->arms[i]);
    free(t->arms);
    cairn_limiter_unref(t->limiter);
    free(t->breaker);
}

static void snapshot_free(struct cairn_snapshot *s)
{
    for (size_t i = 0; i < s->ntenants; i++)
        tenant_free(&s->tenants[i]);
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
    return cairn_limiter_new(name);
}

static bool uses_model(const struct cairn_policy *p)
{
    return p->markers.annotate == CAIRN_ANNOTATE_MODEL ||
           p->markers.annotate == CAIRN_ANNOTATE_RULES_MODEL;
}

/* `t` with `policy`; it takes over the reference to `limiter`. An
 * experiment's arms are loaded as tenants of their own. */
static int load_tenant(struct cairn_snapshot *s, struct cairn_tenant *t, const char *name,
                       const struct cairn_policy *policy, const char *where,
                       struct cairn_limiter *limiter, char *err, size_t errlen)
{
    char why[256];
    t->name = name;
    t->policy = policy;
    t->limiter = limiter;
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
    const struct cairn_experiment_config *e = policy->experiment;
    if (e == NULL)
        return 0;
    t->experiment = e;
    t->arms = cairn_calloc(e->narms, sizeof(*t->arms));
    for (size_t i = 0; i < e->narms; i++) {
        char at[192];
        snprintf(at, sizeof(at), "%s.experiment.arms.%s", where, e->arms[i].name);
        t->arms[i].arm = e->arms[i].name;
        t->arms[i].model = e->arms[i].model;
        if (load_tenant(s, &t->arms[i], name, &e->arms[i].policy, at, cairn_limiter_ref(limiter),
                        err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* Whether a policy runs the rule annotator (every mode but "off" may:
 * "model" falls back to it) / calls the model. */
static int runs_rules(const struct cairn_policy *p, const char *where, void *arg)
{
    (void)where;
    (void)arg;
    return p->markers.annotate != CAIRN_ANNOTATE_OFF;
}

static int calls_model(const struct cairn_policy *p, const char *where, void *arg)
{
    (void)where;
    (void)arg;
    return uses_model(p);
}

struct validator_load {
    struct cairn_snapshot *s;
    char *err;
    size_t errlen;
};

/* The validator, when some policy validates; every validated marker must
 * be a tag that has a validator. */
static int load_validator(const struct cairn_policy *p, const char *where, void *arg)
{
    struct validator_load *v = arg;
    struct cairn_snapshot *s = v->s;
    const struct cairn_strlist *markers = &p->validation.markers;
    if (markers->n > 0 && s->validator == NULL) {
        s->validator = cairn_validator_load(&s->tx, s->cfg.rules_dir, v->err, v->errlen);
        if (s->validator == NULL)
            return -1;
    }
    for (size_t k = 0; k < markers->n; k++) {
        if (!cairn_validator_has(s->validator, markers->items[k])) {
            snprintf(v->err, v->errlen, "%s: %s.validation.markers[%zu]: no validator for \"%s\"",
                     s->cfg.path, where, k, markers->items[k]);
            return -1;
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
    if (cairn_config_each_policy(&s->cfg, runs_rules, NULL)) {
        s->annotator = cairn_annotator_load(&s->tx, s->cfg.rules_dir, err, errlen);
        if (s->annotator == NULL)
            goto fail;
    }
    if (cairn_config_each_policy(&s->cfg, calls_model, NULL)) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", s->cfg.rules_dir, CAIRN_MODEL_PROMPT_FILE);
        s->prompt = cairn_model_prompt_load(&s->tx, path, err, errlen);
        if (s->prompt == NULL)
            goto fail;
    }
    struct validator_load vl = {s, err, errlen};
    if (cairn_config_each_policy(&s->cfg, load_validator, &vl) < 0)
        goto fail;
    s->backends = cairn_calloc(s->cfg.nupstreams, sizeof(*s->backends));
    for (size_t i = 0; i < s->cfg.nupstreams; i++)
        if (load_backend(s, &s->backends[i], &s->cfg.upstreams[i], client, err, errlen) < 0)
            goto fail;

    if (s->cfg.auth == CAIRN_AUTH_OPEN) {
        s->tenants = cairn_calloc(1, sizeof(*s->tenants));
        s->ntenants = 1;
        if (load_tenant(s, &s->tenants[0], "default", &s->cfg.policy, "policy",
                        limiter_for(previous, "default"), err, errlen) < 0)
            goto fail;
    } else {
        s->tenants = cairn_calloc(s->cfg.ntenants + 1, sizeof(*s->tenants));
        for (size_t i = 0; i < s->cfg.ntenants; i++) {
            const struct cairn_tenant_config *tc = &s->cfg.tenants[i];
            s->ntenants++;
            char where[96];
            snprintf(where, sizeof(where), "tenants.%s", tc->name);
            if (load_tenant(s, &s->tenants[i], tc->name, &tc->policy, where,
                            limiter_for(previous, tc->name), err, errlen) < 0)
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
