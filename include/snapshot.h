/*
 * snapshot.h — one loaded configuration, ready for requests: the config
 * itself, the rules, one backend per upstream, one tenant per configured
 * tenant (or the single "default" tenant of open mode), and the key table.
 *
 * Built whole or not at all: a reload that fails anywhere leaves the
 * current snapshot serving. A request takes a reference when it starts and
 * drops it when it ends, so it finishes on the configuration it started
 * with; the last reference frees the snapshot. References are plain
 * counts: a snapshot belongs to one worker's event loop.
 */
#ifndef CAIRN_SNAPSHOT_H
#define CAIRN_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "annotator.h"
#include "breaker.h"
#include "config.h"
#include "keys.h"
#include "marker_block.h"
#include "marking.h"
#include "model_annotator.h"
#include "ratelimit.h"
#include "spoof.h"
#include "taxonomy.h"
#include "upstream.h"
#include "validate.h"

/* One upstream as the pipeline uses it. */
struct cairn_backend {
    const struct cairn_upstream_config *cfg;
    struct cairn_endpoint *endpoint;   /* owned */
    struct cairn_marker_format format; /* its template, resolved */
    struct cairn_spoof *spoof;         /* owned */
};

/* A tenant, or one arm of its experiment: an arm is the tenant under the
 * arm's policy, sharing its name and rate limiter. */
struct cairn_tenant {
    const char *name;
    const struct cairn_policy *policy;
    const struct cairn_backend *backend;
    struct cairn_marking marking;
    struct cairn_limiter *limiter; /* a reference: shared with the snapshots
                                      before and after this one */
    /* The annotator model, when the policy calls it: */
    const struct cairn_backend *annotator; /* its upstream, or NULL */
    unsigned char annotator_id[32];        /* SHA-256 of its URL, model and prompt */
    struct cairn_breaker *breaker;         /* owned: stops calls to a failing one */
    /* Experiments (experiment.h): */
    const struct cairn_experiment_config *experiment; /* the tenant's, or NULL */
    struct cairn_tenant *arms;                        /* owned: one per arm of it */
    const char *arm;                                  /* an arm: its name; else NULL */
    const char *model; /* an arm: the "model" its requests are sent with, or NULL */
};

struct cairn_snapshot {
    unsigned refs;
    uint64_t generation; /* 1 for the first load, +1 per successful reload */
    struct cairn_config cfg;
    struct cairn_taxonomy tx;
    struct cairn_annotator *annotator; /* owned; NULL when no policy uses rules */
    struct cairn_validator *validator; /* owned; NULL when no policy validates */
    struct cairn_model_prompt *prompt; /* owned; NULL when no policy calls the model */
    struct cairn_backend *backends;    /* one per cfg.upstreams, same order */
    struct cairn_tenant *tenants;      /* open mode: one, "default" */
    size_t ntenants;
    struct cairn_keytable *keys; /* owned; NULL in open mode */
};

/**
 * Build a snapshot from `cfg`, which it takes over (on failure too).
 * `client` may be NULL to only check the configuration. Tenants that
 * `previous` (may be NULL) also has keep their rate limiter state.
 * @return the snapshot with one reference, or NULL with err.
 */
struct cairn_snapshot *cairn_snapshot_new(struct cairn_config *cfg, struct cairn_upstream *client,
                                          const struct cairn_snapshot *previous,
                                          uint64_t generation, char *err, size_t errlen);

struct cairn_snapshot *cairn_snapshot_ref(struct cairn_snapshot *s);
void cairn_snapshot_unref(struct cairn_snapshot *s);

/** The tenant a request belongs to, from its Authorization header value
 *  (NULL when absent); NULL means 401. Open mode ignores the header. */
const struct cairn_tenant *cairn_snapshot_tenant(const struct cairn_snapshot *s,
                                                 const char *authorization);

/** Whether the tenant's policy lets it use `model` (exact, or "prefix*"). */
bool cairn_tenant_allows_model(const struct cairn_tenant *t, const char *model);

#endif
