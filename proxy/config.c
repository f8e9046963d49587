/*
 * config.c — load cairn's JSON configuration through a table of keys
 * (see config.h).
 *
 * Each section is a table of {key, type, offset, range}; the loader walks
 * the file's objects against the tables, so a key is accepted only when a
 * table lists it, and one generic setter per type does the checking. The
 * file itself goes through the same strict JSON parser as request bodies.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "experiment.h"
#include "files.h"
#include "json_strict.h"

#define CONFIG_MAX_DEPTH      16
#define CONFIG_MAX_LISTEN     16
#define CONFIG_MAX_UPSTREAMS  64
#define CONFIG_MAX_TENANTS    10000
#define CONFIG_MAX_KEYS       64 /* per tenant */
#define CONFIG_MAX_ARMS       16 /* per experiment */

enum key_type {
    KEY_INT,     /* int64_t in [min, max] */
    KEY_REAL,    /* double in [min, max] */
    KEY_BOOL,    /* bool */
    KEY_STRING,  /* char *, or NULL for null */
    KEY_TEXT,    /* char *, may be empty (template pieces) */
    KEY_NAME,    /* char *: a name of something else in the file */
    KEY_CHOICE,  /* int64_t: index of the string in `choices` */
    KEY_LIST,    /* struct cairn_strlist: array of strings */
    KEY_MAP,     /* struct cairn_strmap: object of strings and numbers */
    KEY_SECTION, /* an object whose keys are `section`, on the struct at `offset` */
    KEY_LISTEN,  /* struct cairn_listen_list */
    KEY_URL,     /* char *: an http(s) base URL */
    KEY_DIGEST,  /* unsigned char[32] from 64 hex digits */
    KEY_KEYS,    /* struct cairn_key_list */
    KEY_UPSTREAMS,
    KEY_TENANTS,
    KEY_EXPERIMENT, /* struct cairn_experiment_config *, or NULL */
};

struct key {
    const char *name;
    enum key_type type;
    size_t offset;              /* of the field in the table's struct */
    double min, max;            /* KEY_INT, KEY_REAL */
    const struct key *section;  /* KEY_SECTION, KEY_KEYS: its keys, NULL-terminated */
    const char *const *choices; /* KEY_CHOICE: NULL-terminated */
};

/* Each table describes one struct, named by KEY_STRUCT where it is
 * defined; a section on offset 0 groups keys of an anonymous member. */
#define KEY(name, type, field)                                                                     \
    {                                                                                              \
        name, type, offsetof(KEY_STRUCT, field), 0, 0, NULL, NULL                                  \
    }
#define RANGE_KEY(name, type, field, lo, hi)                                                       \
    {                                                                                              \
        name, type, offsetof(KEY_STRUCT, field), lo, hi, NULL, NULL                                \
    }
#define CHOICE_KEY(name, field, list)                                                              \
    {                                                                                              \
        name, KEY_CHOICE, offsetof(KEY_STRUCT, field), 0, 0, NULL, list                            \
    }
#define SECTION(name, field, keys)                                                                 \
    {                                                                                              \
        name, KEY_SECTION, offsetof(KEY_STRUCT, field), 0, 0, keys, NULL                           \
    }
#define GROUP(name, keys)                                                                          \
    {                                                                                              \
        name, KEY_SECTION, 0, 0, 0, keys, NULL                                                     \
    }
#define END_KEYS                                                                                   \
    {                                                                                              \
        NULL, 0, 0, 0, 0, NULL, NULL                                                               \
    }
#define KIB(n)  ((int64_t)(n) << 10)
#define MIB(n)  ((int64_t)(n) << 20)
#define HOUR_MS (3600 * 1000)

static const char *const target_choices[] = {"last_user", "system", NULL};
static const char *const annotate_choices[] = {"off", "rules", "model", "rules+model", NULL};
static const char *const fallback_choices[] = {"rules", "none", NULL};
static const char *const injected_choices[] = {"strip", "escape", NULL};
static const char *const auth_choices[] = {"open", "keys", NULL};
static const char *const counting_choices[] = {"words", "characters", "tokens", NULL};
static const char *const retry_choices[] = {"feedback", "resample", NULL};
static const char *const stream_choices[] = {"observe", "buffer", NULL};
static const char *const unit_choices[] = {"user", "header", "key", "request", NULL};

#define KEY_STRUCT struct cairn_marker_template
static const struct key template_keys[] = {
    KEY("open", KEY_TEXT, open),
    KEY("close", KEY_TEXT, close),
    KEY("separator", KEY_TEXT, separator),
    KEY("prefix", KEY_TEXT, prefix),
    KEY("order", KEY_LIST, order),
    CHOICE_KEY("target", target, target_choices),
    END_KEYS,
};
#undef KEY_STRUCT

#define KEY_STRUCT struct cairn_upstream_config
static const struct key upstream_keys[] = {
    KEY("base_url", KEY_URL, base_url),
    KEY("api_key_env", KEY_STRING, api_key_env),
    KEY("ca_file", KEY_STRING, ca_file),
    RANGE_KEY("connect_timeout_ms", KEY_INT, connect_timeout_ms, 10, HOUR_MS),
    RANGE_KEY("first_byte_timeout_ms", KEY_INT, first_byte_timeout_ms, 10, HOUR_MS),
    RANGE_KEY("idle_timeout_ms", KEY_INT, idle_timeout_ms, 10, HOUR_MS),
    RANGE_KEY("max_response_bytes", KEY_INT, max_response_bytes, KIB(1), MIB(1024)),
    SECTION("template", template, template_keys),
    END_KEYS,
};
#undef KEY_STRUCT

#define KEY_STRUCT struct cairn_policy
static const struct key markers_keys[] = {
    CHOICE_KEY("annotate", markers.annotate, annotate_choices),
    KEY("allow_pinning", KEY_BOOL, markers.allow_pinning),
    CHOICE_KEY("injected", markers.injected, injected_choices),
    KEY("unwrap", KEY_BOOL, markers.unwrap),
    KEY("fixed", KEY_MAP, markers.fixed),
    END_KEYS,
};

static const struct key breaker_keys[] = {
    RANGE_KEY("failures", KEY_INT, annotator.breaker_failures, 0, 1000),
    RANGE_KEY("cooldown_ms", KEY_INT, annotator.breaker_cooldown_ms, 100, HOUR_MS),
    END_KEYS,
};

static const struct key annotator_keys[] = {
    KEY("upstream", KEY_STRING, annotator.upstream), /* checked against "upstreams" */
    KEY("model", KEY_STRING, annotator.model),
    RANGE_KEY("deadline_ms", KEY_INT, annotator.deadline_ms, 10, 60000),
    CHOICE_KEY("fallback", annotator.fallback, fallback_choices),
    KEY("prefer_rules", KEY_LIST, annotator.prefer_rules),
    RANGE_KEY("max_conversation_bytes", KEY_INT, annotator.max_conversation_bytes, 256, MIB(1)),
    GROUP("breaker", breaker_keys),
    END_KEYS,
};

static const struct key rate_keys[] = {
    RANGE_KEY("requests_per_second", KEY_REAL, rate.requests_per_second, 0, 1e6),
    RANGE_KEY("burst", KEY_INT, rate.burst, 0, 1000000),
    RANGE_KEY("concurrent", KEY_INT, rate.concurrent, 0, 1000000),
    END_KEYS,
};

static const struct key retry_keys[] = {
    RANGE_KEY("attempts", KEY_INT, validation.attempts, 1, 5),
    RANGE_KEY("deadline_ms", KEY_INT, validation.deadline_ms, 100, HOUR_MS),
    CHOICE_KEY("mode", validation.retry, retry_choices),
    END_KEYS,
};

static const struct key validation_keys[] = {
    KEY("markers", KEY_LIST, validation.markers),
    CHOICE_KEY("counting", validation.counting, counting_choices),
    RANGE_KEY("tolerance", KEY_REAL, validation.tolerance, 0, 10),
    GROUP("retry", retry_keys),
    CHOICE_KEY("stream", validation.stream, stream_choices),
    END_KEYS,
};

static const struct key policy_keys[] = {
    KEY("upstream", KEY_NAME, upstream),
    KEY("models", KEY_LIST, models),
    GROUP("markers", markers_keys),
    GROUP("annotator", annotator_keys),
    GROUP("rate", rate_keys),
    GROUP("validation", validation_keys),
    KEY("log_content", KEY_BOOL, log_content),
    KEY("experiment", KEY_EXPERIMENT, experiment),
    END_KEYS,
};
#undef KEY_STRUCT

/* Shadow judging; "against" and "judge.upstream" are checked once the
 * arms and the upstreams are known (resolve_experiment, check_policy). */
#define KEY_STRUCT struct cairn_shadow_config
static const struct key judge_keys[] = {
    KEY("upstream", KEY_NAME, judge.upstream),
    KEY("model", KEY_STRING, judge.model),
    RANGE_KEY("deadline_ms", KEY_INT, judge.deadline_ms, 100, 600000),
    END_KEYS,
};

static const struct key shadow_keys[] = {
    KEY("against", KEY_NAME, against),
    RANGE_KEY("sample", KEY_REAL, sample, 0, 1),
    RANGE_KEY("max_in_flight", KEY_INT, max_in_flight, 1, 1000),
    RANGE_KEY("daily_cap", KEY_INT, daily_cap, 0, 10000000),
    RANGE_KEY("deadline_ms", KEY_INT, deadline_ms, 100, HOUR_MS),
    GROUP("judge", judge_keys),
    END_KEYS,
};
#undef KEY_STRUCT

/* An experiment's own keys; "arms" is read by set_experiment. */
#define KEY_STRUCT struct cairn_experiment_config
static const struct key experiment_keys[] = {
    KEY("name", KEY_NAME, name),
    KEY("salt", KEY_STRING, salt),
    CHOICE_KEY("unit", unit, unit_choices),
    KEY("unit_header", KEY_STRING, unit_header),
    KEY("allow_force", KEY_BOOL, allow_force),
    SECTION("shadow", shadow, shadow_keys),
    END_KEYS,
};
#undef KEY_STRUCT

/* An arm's own keys; every other member is a policy key (see resolve_arm). */
#define KEY_STRUCT struct cairn_arm_config
static const struct key arm_keys[] = {
    RANGE_KEY("weight", KEY_REAL, weight, 0, 1e6),
    KEY("model", KEY_STRING, model),
    END_KEYS,
};
#undef KEY_STRUCT

#define KEY_STRUCT struct cairn_key_config
static const struct key client_key_keys[] = {
    KEY("sha256", KEY_DIGEST, sha256),
    KEY("label", KEY_STRING, label),
    KEY("disabled", KEY_BOOL, disabled),
    END_KEYS,
};
#undef KEY_STRUCT

/* A tenant's own keys; every other member is a policy key (see load_tenant). */
#define KEY_STRUCT struct cairn_tenant_config
static const struct key tenant_keys[] = {
    {"keys", KEY_KEYS, offsetof(KEY_STRUCT, keys), 0, 0, client_key_keys, NULL},
    KEY("disabled", KEY_BOOL, disabled),
    END_KEYS,
};
#undef KEY_STRUCT

#define KEY_STRUCT struct cairn_config
static const struct key limits_keys[] = {
    RANGE_KEY("max_connections", KEY_INT, limits.max_connections, 1, 1000000),
    RANGE_KEY("header_bytes", KEY_INT, limits.header_bytes, KIB(1), MIB(1)),
    RANGE_KEY("header_lines", KEY_INT, limits.header_lines, 8, 10000),
    RANGE_KEY("body_bytes", KEY_INT, limits.body_bytes, KIB(1), MIB(1024)),
    RANGE_KEY("json_depth", KEY_INT, limits.json_depth, 8, 512),
    RANGE_KEY("stream_buffer_bytes", KEY_INT, limits.stream_buffer_bytes, KIB(4), MIB(64)),
    END_KEYS,
};

static const struct key timeouts_keys[] = {
    RANGE_KEY("header_ms", KEY_INT, timeouts.header_ms, 100, HOUR_MS),
    RANGE_KEY("body_idle_ms", KEY_INT, timeouts.body_idle_ms, 100, HOUR_MS),
    RANGE_KEY("body_ms", KEY_INT, timeouts.body_ms, 100, HOUR_MS),
    RANGE_KEY("keepalive_ms", KEY_INT, timeouts.keepalive_ms, 100, HOUR_MS),
    RANGE_KEY("send_idle_ms", KEY_INT, timeouts.send_idle_ms, 100, HOUR_MS),
    RANGE_KEY("drain_ms", KEY_INT, timeouts.drain_ms, 0, HOUR_MS),
    END_KEYS,
};

static const struct key annotation_cache_keys[] = {
    RANGE_KEY("entries", KEY_INT, annotation_cache.entries, 0, 10000000),
    RANGE_KEY("bytes", KEY_INT, annotation_cache.bytes, 0, MIB(4096)),
    RANGE_KEY("ttl_ms", KEY_INT, annotation_cache.ttl_ms, 0, 7 * 24 * HOUR_MS),
    END_KEYS,
};

static const struct key admin_keys[] = {
    KEY("listen", KEY_LISTEN, admin.listen),
    END_KEYS,
};

static const struct key log_keys[] = {
    KEY("access", KEY_STRING, log.access),
    KEY("content", KEY_STRING, log.content),
    KEY("experiment", KEY_STRING, log.experiment),
    END_KEYS,
};

static const struct key root_keys[] = {
    KEY("listen", KEY_LISTEN, listen),
    RANGE_KEY("workers", KEY_INT, workers, 0, CAIRN_MAX_WORKERS),
    GROUP("admin", admin_keys),
    GROUP("limits", limits_keys),
    GROUP("timeouts", timeouts_keys),
    KEY("rules_dir", KEY_TEXT, rules_dir),
    GROUP("annotation_cache", annotation_cache_keys),
    KEY("upstreams", KEY_UPSTREAMS, upstreams),
    SECTION("policy", policy, policy_keys),
    CHOICE_KEY("auth", auth, auth_choices),
    KEY("tenants", KEY_TENANTS, tenants),
    GROUP("log", log_keys),
    END_KEYS,
};
#undef KEY_STRUCT

/* --- defaults ------------------------------------------------------------- */

static void listen_one(struct cairn_listen_list *l, const char *host, uint16_t port)
{
    l->items = cairn_calloc(1, sizeof(*l->items));
    l->n = 1;
    snprintf(l->items[0].host, sizeof(l->items[0].host), "%s", host);
    l->items[0].port = port;
}

static void upstream_defaults(struct cairn_upstream_config *u, const char *name)
{
    memset(u, 0, sizeof(*u));
    u->name = cairn_strdup(name);
    u->base_url = cairn_strdup("http://127.0.0.1:8081/v1");
    u->api_key_env = cairn_strdup("OPENAI_API_KEY");
    u->connect_timeout_ms = 5000;
    u->first_byte_timeout_ms = 120000;
    u->idle_timeout_ms = 60000;
    u->max_response_bytes = MIB(16);
    u->template.open = cairn_strdup("<MARKER_LIST>");
    u->template.close = cairn_strdup("</MARKER_LIST>");
    u->template.separator = cairn_strdup("\n");
    u->template.prefix = cairn_strdup("\n\n");
    u->template.target = CAIRN_TARGET_LAST_USER;
}

void cairn_config_defaults(struct cairn_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    listen_one(&cfg->listen, "127.0.0.1", 8080);
    listen_one(&cfg->admin.listen, "127.0.0.1", 9090);

    cfg->limits.max_connections = 4096;
    cfg->limits.header_bytes = KIB(16);
    cfg->limits.header_lines = 100;
    cfg->limits.body_bytes = MIB(4);
    cfg->limits.json_depth = 64;
    cfg->limits.stream_buffer_bytes = KIB(256);

    cfg->timeouts.header_ms = 10000;
    cfg->timeouts.body_idle_ms = 10000;
    cfg->timeouts.body_ms = 60000;
    cfg->timeouts.keepalive_ms = 75000;
    cfg->timeouts.send_idle_ms = 60000;
    cfg->timeouts.drain_ms = 30000;

    cfg->rules_dir = cairn_strdup("rules");

    cfg->upstreams = cairn_calloc(1, sizeof(*cfg->upstreams));
    cfg->nupstreams = 1;
    upstream_defaults(&cfg->upstreams[0], "default");

    cfg->policy.upstream = cairn_strdup("default");
    cfg->policy.markers.annotate = CAIRN_ANNOTATE_RULES;
    cfg->policy.markers.allow_pinning = true;
    cfg->policy.markers.injected = CAIRN_INJECTED_STRIP;
    cfg->policy.markers.unwrap = true;

    static const char *const validated[] = {
        "length_tokens", "length_sentences", "length_paragraphs", "length_bucket", "format",
        "lang",          "code_type"};
    struct cairn_strlist *v = &cfg->policy.validation.markers;
    v->items = cairn_calloc(sizeof(validated) / sizeof(validated[0]), sizeof(*v->items));
    for (; v->n < sizeof(validated) / sizeof(validated[0]); v->n++)
        v->items[v->n] = cairn_strdup(validated[v->n]);
    cfg->policy.annotator.model = cairn_strdup("annotator");
    cfg->policy.annotator.deadline_ms = 300;
    cfg->policy.annotator.fallback = CAIRN_FALLBACK_RULES;
    static const char *const rules_first[] = {"length_tokens", "length_sentences",
                                              "length_paragraphs"};
    struct cairn_strlist *pr = &cfg->policy.annotator.prefer_rules;
    pr->items = cairn_calloc(3, sizeof(*pr->items));
    for (; pr->n < 3; pr->n++)
        pr->items[pr->n] = cairn_strdup(rules_first[pr->n]);
    cfg->policy.annotator.max_conversation_bytes = 8192;
    cfg->policy.annotator.breaker_failures = 5;
    cfg->policy.annotator.breaker_cooldown_ms = 10000;
    cfg->annotation_cache.entries = 10000;
    cfg->annotation_cache.bytes = MIB(16);
    cfg->annotation_cache.ttl_ms = 600000;

    cfg->policy.validation.counting = CAIRN_COUNT_WORDS;
    cfg->policy.validation.tolerance = 0.1;
    cfg->policy.validation.attempts = 1;
    cfg->policy.validation.deadline_ms = 60000;
    cfg->policy.validation.retry = CAIRN_RETRY_FEEDBACK;
    cfg->policy.validation.stream = CAIRN_STREAM_OBSERVE;

    cfg->auth = CAIRN_AUTH_OPEN;
    cfg->log.access = cairn_strdup("-");
}

/* --- walking a struct through its table ------------------------------------ */

static void strlist_free(struct cairn_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static void strmap_free(struct cairn_strmap *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof(*m));
}

static void upstreams_free(struct cairn_config *cfg);
static void tenants_free(struct cairn_config *cfg);
static void experiment_free(struct cairn_experiment_config *e);
static struct cairn_experiment_config *experiment_copy(const struct cairn_experiment_config *e);

/* Release everything the table's fields own in the struct at `base`. */
static void fields_free(void *base, const struct key *keys)
{
    for (const struct key *k = keys; k->name != NULL; k++) {
        void *field = (char *)base + k->offset;
        switch (k->type) {
        case KEY_STRING:
        case KEY_TEXT:
        case KEY_NAME:
        case KEY_URL:
            free(*(char **)field);
            *(char **)field = NULL;
            break;
        case KEY_LIST: strlist_free(field); break;
        case KEY_MAP: strmap_free(field); break;
        case KEY_SECTION: fields_free(field, k->section); break;
        case KEY_LISTEN: {
            struct cairn_listen_list *l = field;
            free(l->items);
            memset(l, 0, sizeof(*l));
            break;
        }
        case KEY_KEYS: {
            struct cairn_key_list *l = field;
            for (size_t i = 0; i < l->n; i++)
                fields_free(&l->items[i], k->section);
            free(l->items);
            memset(l, 0, sizeof(*l));
            break;
        }
        case KEY_UPSTREAMS: upstreams_free(base); break;
        case KEY_TENANTS: tenants_free(base); break;
        case KEY_EXPERIMENT:
            experiment_free(*(struct cairn_experiment_config **)field);
            *(struct cairn_experiment_config **)field = NULL;
            break;
        case KEY_INT:
        case KEY_REAL:
        case KEY_BOOL:
        case KEY_CHOICE:
        case KEY_DIGEST: break;
        }
    }
}

/* Make the fields of `dst`, a bytewise copy of another struct, its own:
 * what the table's fields point to is duplicated. Only for tables of
 * strings, lists, maps and plain values (the policy). */
static void fields_own(void *dst, const struct key *keys)
{
    for (const struct key *k = keys; k->name != NULL; k++) {
        void *field = (char *)dst + k->offset;
        switch (k->type) {
        case KEY_STRING:
        case KEY_TEXT:
        case KEY_NAME:
        case KEY_URL:
            if (*(char **)field != NULL)
                *(char **)field = cairn_strdup(*(char **)field);
            break;
        case KEY_LIST: {
            struct cairn_strlist *l = field;
            char **items = l->items;
            l->items = cairn_calloc(l->n ? l->n : 1, sizeof(*l->items));
            for (size_t i = 0; i < l->n; i++)
                l->items[i] = cairn_strdup(items[i]);
            break;
        }
        case KEY_MAP: {
            struct cairn_strmap *m = field;
            char **keys_old = m->keys, **values_old = m->values;
            m->keys = cairn_calloc(m->n ? m->n : 1, sizeof(*m->keys));
            m->values = cairn_calloc(m->n ? m->n : 1, sizeof(*m->values));
            for (size_t i = 0; i < m->n; i++) {
                m->keys[i] = cairn_strdup(keys_old[i]);
                m->values[i] = cairn_strdup(values_old[i]);
            }
            break;
        }
        case KEY_SECTION: fields_own(field, k->section); break;
        case KEY_EXPERIMENT: {
            struct cairn_experiment_config **e = field;
            if (*e != NULL)
                *e = experiment_copy(*e);
            break;
        }
        case KEY_INT:
        case KEY_REAL:
        case KEY_BOOL:
        case KEY_CHOICE:
        case KEY_DIGEST: break;
        case KEY_LISTEN:
        case KEY_KEYS:
        case KEY_UPSTREAMS:
        case KEY_TENANTS: abort(); /* not in a copied table */
        }
    }
}

static void upstreams_free(struct cairn_config *cfg)
{
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        free(cfg->upstreams[i].name);
        fields_free(&cfg->upstreams[i], upstream_keys);
    }
    free(cfg->upstreams);
    cfg->upstreams = NULL;
    cfg->nupstreams = 0;
}

static void tenants_free(struct cairn_config *cfg)
{
    for (size_t i = 0; i < cfg->ntenants; i++) {
        struct cairn_tenant_config *t = &cfg->tenants[i];
        free(t->name);
        fields_free(t, tenant_keys);
        fields_free(&t->policy, policy_keys);
    }
    free(cfg->tenants);
    cfg->tenants = NULL;
    cfg->ntenants = 0;
}

static void experiment_free(struct cairn_experiment_config *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->narms; i++) {
        fields_free(&e->arms[i], arm_keys);
        free(e->arms[i].name);
        fields_free(&e->arms[i].policy, policy_keys);
    }
    free(e->arms);
    fields_free(e, experiment_keys);
    cJSON_Delete(e->source);
    free(e);
}

/* A tenant's copy of the default policy's experiment: copied before any
 * arm is resolved, since arms resolve against the policy that holds them. */
static struct cairn_experiment_config *experiment_copy(const struct cairn_experiment_config *e)
{
    struct cairn_experiment_config *c = cairn_malloc(sizeof(*c));
    *c = *e;
    fields_own(c, experiment_keys);
    c->arms = NULL;
    c->narms = 0;
    c->source = cJSON_Duplicate(e->source, true);
    return c;
}

void cairn_config_drop_tenants(struct cairn_config *cfg)
{
    tenants_free(cfg);
}

void cairn_config_free(struct cairn_config *cfg)
{
    free(cfg->path);
    free(cfg->text);
    fields_free(cfg, root_keys);
    memset(cfg, 0, sizeof(*cfg));
}

const struct cairn_upstream_config *cairn_config_upstream(const struct cairn_config *cfg,
                                                          const char *name)
{
    for (size_t i = 0; i < cfg->nupstreams; i++)
        if (strcmp(cfg->upstreams[i].name, name) == 0)
            return &cfg->upstreams[i];
    return NULL;
}

/* --- setters ---------------------------------------------------------------- */

int cairn_config_parse_listen(const char *s, struct cairn_listen *out, char *err, size_t errlen)
{
    const char *host = s, *colon;
    size_t hostlen;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            snprintf(err, errlen, "\"%s\" is not [IPV6]:PORT", s);
            return -1;
        }
        host = s + 1;
        hostlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            snprintf(err, errlen, "\"%s\" has no :PORT", s);
            return -1;
        }
        hostlen = (size_t)(colon - s);
    }
    if (hostlen == 0 || hostlen >= sizeof(out->host)) {
        snprintf(err, errlen, "\"%s\" has no valid host", s);
        return -1;
    }
    memcpy(out->host, host, hostlen);
    out->host[hostlen] = '\0';

    unsigned char addr[16];
    int family = *s == '[' ? AF_INET6 : AF_INET;
    if (inet_pton(family, out->host, addr) != 1) {
        snprintf(err, errlen, "\"%s\" is not a numeric IPv4 address or [IPv6] address", out->host);
        return -1;
    }
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno != 0 || port < 0 ||
        port > 65535) {
        snprintf(err, errlen, "\"%s\" has an invalid port", s);
        return -1;
    }
    out->port = (uint16_t)port;
    return 0;
}

static int set_url(char **field, const char *url, char *err, size_t errlen)
{
    size_t len = strlen(url);
    size_t scheme = strncmp(url, "http://", 7) == 0 ? 7 : strncmp(url, "https://", 8) == 0 ? 8 : 0;
    size_t authority = strcspn(url + scheme, "/");
    if (scheme == 0 || url[scheme] == '\0' || url[scheme] == '/' || len > 2048 ||
        strpbrk(url, " \t\r\n?#") != NULL) {
        snprintf(err, errlen, "must be an http:// or https:// URL with a host and no query");
        return -1;
    }
    if (memchr(url + scheme, '@', authority) != NULL) {
        /* Credentials in the URL would end up in logs: keys go in api_key_env. */
        snprintf(err, errlen, "must not hold user:password@ (use api_key_env)");
        return -1;
    }
    while (len > 0 && url[len - 1] == '/')
        len--;
    free(*field);
    *field = cairn_strndup(url, len);
    return 0;
}

int cairn_config_set_base_url(struct cairn_config *cfg, const char *url, char *err, size_t errlen)
{
    struct cairn_upstream_config *u =
        (struct cairn_upstream_config *)cairn_config_upstream(cfg, cfg->policy.upstream);
    if (u == NULL) {
        snprintf(err, errlen, "the default policy's upstream \"%s\" is not defined",
                 cfg->policy.upstream);
        return -1;
    }
    return set_url(&u->base_url, url, err, errlen);
}

/* Upstream and tenant names end up in logs and metric labels. */
static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= CAIRN_NAME_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

static int set_listen(struct cairn_listen_list *out, const cJSON *v, char *err, size_t errlen)
{
    int n = cJSON_GetArraySize(v);
    if (!cJSON_IsArray(v) || n > CONFIG_MAX_LISTEN) {
        snprintf(err, errlen, "must be an array of at most %d \"HOST:PORT\" strings",
                 CONFIG_MAX_LISTEN);
        return -1;
    }
    struct cairn_listen *list = cairn_calloc(n > 0 ? (size_t)n : 1, sizeof(*list));
    int i = 0;
    for (const cJSON *e = v->child; e != NULL; e = e->next, i++) {
        if (!cJSON_IsString(e)) {
            snprintf(err, errlen, "[%d] must be a string", i);
            free(list);
            return -1;
        }
        char why[160];
        if (cairn_config_parse_listen(e->valuestring, &list[i], why, sizeof(why)) < 0) {
            snprintf(err, errlen, "[%d]: %s", i, why);
            free(list);
            return -1;
        }
    }
    free(out->items);
    out->items = list;
    out->n = (size_t)n;
    return 0;
}

static int set_digest(unsigned char *out, const cJSON *v, char *err, size_t errlen)
{
    const char *hex = cJSON_IsString(v) ? v->valuestring : "";
    if (strlen(hex) != 2 * CAIRN_KEY_DIGEST_LEN ||
        strspn(hex, "0123456789abcdef") != 2 * CAIRN_KEY_DIGEST_LEN) {
        snprintf(err, errlen, "must be 64 lowercase hex digits (what `cairn key` prints)");
        return -1;
    }
    for (size_t i = 0; i < CAIRN_KEY_DIGEST_LEN; i++) {
        unsigned hi = (unsigned)(hex[2 * i] <= '9' ? hex[2 * i] - '0' : hex[2 * i] - 'a' + 10);
        unsigned lo =
            (unsigned)(hex[2 * i + 1] <= '9' ? hex[2 * i + 1] - '0' : hex[2 * i + 1] - 'a' + 10);
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static int load_section(void *base, const struct key *keys, const cJSON *obj, const char *prefix,
                        char *err, size_t errlen);

static int set_keys(struct cairn_key_list *out, const struct key *keys, const cJSON *v,
                    const char *path, char *err, size_t errlen)
{
    int n = cJSON_GetArraySize(v);
    if (!cJSON_IsArray(v) || n > CONFIG_MAX_KEYS) {
        snprintf(err, errlen, "%s: must be an array of at most %d {\"sha256\": …} objects", path,
                 CONFIG_MAX_KEYS);
        return -1;
    }
    out->items = cairn_calloc(n > 0 ? (size_t)n : 1, sizeof(*out->items));
    for (const cJSON *e = v->child; e != NULL; e = e->next) {
        struct cairn_key_config *key = &out->items[out->n++];
        char at[160];
        static const unsigned char none[CAIRN_KEY_DIGEST_LEN];
        snprintf(at, sizeof(at), "%s[%zu]", path, out->n - 1);
        if (!cJSON_IsObject(e)) {
            snprintf(err, errlen, "%s: must be an object", at);
            return -1;
        }
        if (load_section(key, keys, e, at, err, errlen) < 0)
            return -1;
        if (memcmp(key->sha256, none, sizeof(none)) == 0) {
            snprintf(err, errlen, "%s: sha256 is required", at);
            return -1;
        }
    }
    return 0;
}

static int set_upstreams(struct cairn_config *cfg, const cJSON *v, const char *path, char *err,
                         size_t errlen)
{
    int n = cJSON_GetArraySize(v);
    if (!cJSON_IsObject(v) || n < 1 || n > CONFIG_MAX_UPSTREAMS) {
        snprintf(err, errlen, "%s: must be an object of 1 to %d named upstreams", path,
                 CONFIG_MAX_UPSTREAMS);
        return -1;
    }
    upstreams_free(cfg);
    cfg->upstreams = cairn_calloc((size_t)n, sizeof(*cfg->upstreams));
    for (const cJSON *e = v->child; e != NULL; e = e->next) {
        char at[160];
        snprintf(at, sizeof(at), "%s.%s", path, e->string);
        struct cairn_upstream_config *u = &cfg->upstreams[cfg->nupstreams++];
        upstream_defaults(u, e->string);
        if (!valid_name(e->string)) {
            snprintf(err, errlen, "%s: names are 1 to %d of A-Z a-z 0-9 _ . -", at, CAIRN_NAME_MAX);
            return -1;
        }
        if (!cJSON_IsObject(e)) {
            snprintf(err, errlen, "%s: must be an object", at);
            return -1;
        }
        if (load_section(u, upstream_keys, e, at, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static int set_value(void *base, const struct key *k, const cJSON *v, const char *path, char *err,
                     size_t errlen);
static const struct key *find_key(const struct key *keys, const char *name);
static void member_path(char *out, size_t outlen, const char *prefix, const char *name);

/* An experiment replaces the one the policy had. Its arms are kept as
 * written until the whole file is read (see resolve_experiment). */
static int set_experiment(struct cairn_experiment_config **field, const cJSON *v, const char *path,
                          char *err, size_t errlen)
{
    experiment_free(*field);
    struct cairn_experiment_config *e = *field = cairn_calloc(1, sizeof(*e));
    e->unit = CAIRN_UNIT_USER;
    e->shadow = (struct cairn_shadow_config){
        .sample = 0.05, .max_in_flight = 4, .daily_cap = 1000, .deadline_ms = 60000};
    e->shadow.judge.deadline_ms = 30000;
    const cJSON *arms = NULL;
    for (const cJSON *m = v->child; m != NULL; m = m->next) {
        char at[160];
        member_path(at, sizeof(at), path, m->string);
        const struct key *k = find_key(experiment_keys, m->string);
        if (strcmp(m->string, "arms") == 0) {
            arms = m;
        } else if (k == NULL) {
            snprintf(err, errlen, "%s: unknown key", at);
            return -1;
        } else if (set_value(e, k, m, at, err, errlen) < 0) {
            return -1;
        }
    }
    int narms = cJSON_GetArraySize(arms);
    if (e->name == NULL) {
        snprintf(err, errlen, "%s.name: an experiment needs a name", path);
        return -1;
    }
    if (!cJSON_IsObject(arms) || narms < 1 || narms > CONFIG_MAX_ARMS) {
        snprintf(err, errlen, "%s.arms: must be an object of 1 to %d named arms", path,
                 CONFIG_MAX_ARMS);
        return -1;
    }
    for (const cJSON *a = arms->child; a != NULL; a = a->next) {
        if (!valid_name(a->string) || !cJSON_IsObject(a)) {
            snprintf(err, errlen,
                     "%s.arms.%s: an arm is an object named by 1 to %d of A-Z a-z 0-9 _ . -", path,
                     a->string, CAIRN_NAME_MAX);
            return -1;
        }
    }
    if (e->unit == CAIRN_UNIT_HEADER && e->unit_header == NULL) {
        snprintf(err, errlen, "%s.unit_header: unit \"header\" needs the header's name", path);
        return -1;
    }
    e->shadow.enabled = cJSON_GetObjectItemCaseSensitive(v, "shadow") != NULL;
    const char *missing = e->shadow.against == NULL          ? "against"
                          : e->shadow.judge.upstream == NULL ? "judge.upstream"
                          : e->shadow.judge.model == NULL    ? "judge.model"
                                                             : NULL;
    if (e->shadow.enabled && missing != NULL) {
        snprintf(err, errlen, "%s.shadow.%s: is required", path, missing);
        return -1;
    }
    if (e->salt == NULL)
        e->salt = cairn_strdup(e->name);
    e->source = cJSON_Duplicate(arms, true);
    return 0;
}

/* Set one field from a JSON value; `path` names it for messages. */
static int set_value(void *base, const struct key *k, const cJSON *v, const char *path, char *err,
                     size_t errlen)
{
    void *field = (char *)base + k->offset;
    char why[192];
    int rc = -1;
    switch (k->type) {
    case KEY_INT:
    case KEY_REAL: {
        double d = v->valuedouble;
        bool integral = k->type == KEY_INT;
        if (!cJSON_IsNumber(v) || !(d >= k->min && d <= k->max) || (integral && d != floor(d))) {
            snprintf(why, sizeof(why), "must be %s between %.15g and %.15g",
                     integral ? "an integer" : "a number", k->min, k->max);
            break;
        }
        if (integral)
            *(int64_t *)field = (int64_t)d;
        else
            *(double *)field = d;
        return 0;
    }
    case KEY_STRING:
        if (cJSON_IsNull(v)) {
            free(*(char **)field);
            *(char **)field = NULL;
            return 0;
        }
        if (!cJSON_IsString(v) || v->valuestring[0] == '\0') {
            snprintf(why, sizeof(why), "must be a non-empty string or null");
            break;
        }
        free(*(char **)field);
        *(char **)field = cairn_strdup(v->valuestring);
        return 0;
    case KEY_NAME:
        if (!cJSON_IsString(v) || !valid_name(v->valuestring)) {
            snprintf(why, sizeof(why), "must be a name of 1 to %d of A-Z a-z 0-9 _ . -",
                     CAIRN_NAME_MAX);
            break;
        }
        free(*(char **)field);
        *(char **)field = cairn_strdup(v->valuestring);
        return 0;
    case KEY_BOOL:
        if (!cJSON_IsBool(v)) {
            snprintf(why, sizeof(why), "must be true or false");
            break;
        }
        *(bool *)field = cJSON_IsTrue(v);
        return 0;
    case KEY_TEXT:
        if (!cJSON_IsString(v) || strlen(v->valuestring) > 256) {
            snprintf(why, sizeof(why), "must be a string of at most 256 bytes");
            break;
        }
        free(*(char **)field);
        *(char **)field = cairn_strdup(v->valuestring);
        return 0;
    case KEY_CHOICE:
        for (int64_t i = 0; cJSON_IsString(v) && k->choices[i] != NULL; i++) {
            if (strcmp(v->valuestring, k->choices[i]) == 0) {
                *(int64_t *)field = i;
                return 0;
            }
        }
        snprintf(why, sizeof(why), "must be one of:");
        for (size_t i = 0; k->choices[i] != NULL; i++)
            snprintf(why + strlen(why), sizeof(why) - strlen(why), " \"%s\"", k->choices[i]);
        break;
    case KEY_LIST: {
        struct cairn_strlist *l = field;
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > 256) {
            snprintf(why, sizeof(why), "must be an array of at most 256 strings");
            break;
        }
        strlist_free(l);
        l->items = cairn_calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(*l->items));
        rc = 0;
        for (const cJSON *e = v->child; e != NULL && rc == 0; e = e->next) {
            if (!cJSON_IsString(e) || e->valuestring[0] == '\0') {
                snprintf(why, sizeof(why), "[%zu] must be a non-empty string", l->n);
                rc = -1;
            } else {
                l->items[l->n++] = cairn_strdup(e->valuestring);
            }
        }
        if (rc == 0)
            return 0;
        break;
    }
    case KEY_MAP: {
        struct cairn_strmap *m = field;
        if (!cJSON_IsObject(v) || cJSON_GetArraySize(v) > 64) {
            snprintf(why, sizeof(why), "must be an object of at most 64 members");
            break;
        }
        strmap_free(m);
        size_t n = (size_t)cJSON_GetArraySize(v) + 1;
        m->keys = cairn_calloc(n, sizeof(*m->keys));
        m->values = cairn_calloc(n, sizeof(*m->values));
        rc = 0;
        for (const cJSON *e = v->child; e != NULL && rc == 0; e = e->next) {
            char num[32];
            if (cJSON_IsNumber(e)) {
                snprintf(num, sizeof(num), "%.17g", e->valuedouble);
            } else if (!cJSON_IsString(e)) {
                snprintf(why, sizeof(why), "%s: must be a string or a number", e->string);
                rc = -1;
                break;
            }
            m->keys[m->n] = cairn_strdup(e->string);
            m->values[m->n++] = cairn_strdup(cJSON_IsNumber(e) ? num : e->valuestring);
        }
        if (rc == 0)
            return 0;
        break;
    }
    case KEY_URL:
        if (!cJSON_IsString(v)) {
            snprintf(why, sizeof(why), "must be a string");
            break;
        }
        rc = set_url(field, v->valuestring, why, sizeof(why));
        if (rc == 0)
            return 0;
        break;
    case KEY_LISTEN:
        if (set_listen(field, v, why, sizeof(why)) == 0)
            return 0;
        break;
    case KEY_DIGEST:
        if (set_digest(field, v, why, sizeof(why)) == 0)
            return 0;
        break;
    case KEY_SECTION:
        if (!cJSON_IsObject(v)) {
            snprintf(why, sizeof(why), "must be an object");
            break;
        }
        return load_section(field, k->section, v, path, err, errlen);
    case KEY_KEYS: return set_keys(field, k->section, v, path, err, errlen);
    case KEY_UPSTREAMS: return set_upstreams(base, v, path, err, errlen);
    case KEY_TENANTS: return 0; /* after everything else: see load_tenants */
    case KEY_EXPERIMENT:
        if (cJSON_IsNull(v)) {
            experiment_free(*(struct cairn_experiment_config **)field);
            *(struct cairn_experiment_config **)field = NULL;
            return 0;
        }
        if (!cJSON_IsObject(v)) {
            snprintf(why, sizeof(why), "must be an object or null");
            break;
        }
        return set_experiment(field, v, path, err, errlen);
    }
    snprintf(err, errlen, "%s: %s", path, why);
    return -1;
}

static const struct key *find_key(const struct key *keys, const char *name)
{
    for (const struct key *k = keys; k->name != NULL; k++)
        if (strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

static void member_path(char *out, size_t outlen, const char *prefix, const char *name)
{
    snprintf(out, outlen, "%s%s%s", prefix, *prefix ? "." : "", name);
}

/* Apply the members of `obj` to the struct at `base` through `keys`;
 * `prefix` is the dotted path of `obj` for messages ("" at the top). */
static int load_section(void *base, const struct key *keys, const cJSON *obj, const char *prefix,
                        char *err, size_t errlen)
{
    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        char path[160];
        member_path(path, sizeof(path), prefix, m->string);
        const struct key *k = find_key(keys, m->string);
        if (k == NULL) {
            snprintf(err, errlen, "%s: unknown key", path);
            return -1;
        }
        if (set_value(base, k, m, path, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* A tenant: its keys, and overrides of any policy key, applied to a copy
 * of the default policy so that what it does not say is inherited. */
static int load_tenant(struct cairn_config *cfg, struct cairn_tenant_config *t, const cJSON *obj,
                       const char *prefix, char *err, size_t errlen)
{
    t->policy = cfg->policy;
    fields_own(&t->policy, policy_keys);
    if (!cJSON_IsObject(obj)) {
        snprintf(err, errlen, "%s: must be an object", prefix);
        return -1;
    }
    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        char path[160];
        member_path(path, sizeof(path), prefix, m->string);
        const struct key *k = find_key(tenant_keys, m->string);
        void *base = t;
        if (k == NULL) {
            k = find_key(policy_keys, m->string);
            base = &t->policy;
        }
        if (k == NULL) {
            snprintf(err, errlen, "%s: unknown key", path);
            return -1;
        }
        if (set_value(base, k, m, path, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static int load_tenants(struct cairn_config *cfg, const cJSON *v, char *err, size_t errlen)
{
    int n = cJSON_GetArraySize(v);
    if (!cJSON_IsObject(v) || n > CONFIG_MAX_TENANTS) {
        snprintf(err, errlen, "tenants: must be an object of at most %d named tenants",
                 CONFIG_MAX_TENANTS);
        return -1;
    }
    cfg->tenants = cairn_calloc(n > 0 ? (size_t)n : 1, sizeof(*cfg->tenants));
    for (const cJSON *e = v->child; e != NULL; e = e->next) {
        char at[160];
        member_path(at, sizeof(at), "tenants", e->string);
        struct cairn_tenant_config *t = &cfg->tenants[cfg->ntenants++];
        t->name = cairn_strdup(e->string);
        if (!valid_name(e->string)) {
            snprintf(err, errlen, "%s: names are 1 to %d of A-Z a-z 0-9 _ . -", at, CAIRN_NAME_MAX);
            return -1;
        }
        if (load_tenant(cfg, t, e, at, err, errlen) < 0)
            return -1;
    }
    return 0;
}

struct key_ref {
    const unsigned char *digest;
    size_t tenant, key; /* where it was given, for the message */
};

static int compare_key_refs(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    int c = memcmp(x->digest, y->digest, CAIRN_KEY_DIGEST_LEN);
    if (c != 0)
        return c;
    return x->tenant != y->tenant ? (x->tenant < y->tenant ? -1 : 1)
                                  : (x->key < y->key ? -1 : x->key > y->key);
}

/* A digest in two places would make its tenant depend on the order of the
 * file. Sorted, so that a file with many tenants and keys is checked in
 * n log n (a reload runs on the event loop). */
static int check_unique_keys(const struct cairn_config *cfg, char *err, size_t errlen)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->ntenants; i++)
        n += cfg->tenants[i].keys.n;
    struct key_ref *refs = cairn_calloc(n + 1, sizeof(*refs));
    n = 0;
    for (size_t i = 0; i < cfg->ntenants; i++)
        for (size_t k = 0; k < cfg->tenants[i].keys.n; k++)
            refs[n++] = (struct key_ref){cfg->tenants[i].keys.items[k].sha256, i, k};
    qsort(refs, n, sizeof(*refs), compare_key_refs);
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++) {
        if (memcmp(refs[i - 1].digest, refs[i].digest, CAIRN_KEY_DIGEST_LEN) == 0) {
            snprintf(err, errlen, "tenants.%s.keys[%zu]: the same key as tenants.%s.keys[%zu]",
                     cfg->tenants[refs[i].tenant].name, refs[i].key,
                     cfg->tenants[refs[i - 1].tenant].name, refs[i - 1].key);
            rc = -1;
        }
    }
    free(refs);
    return rc;
}

/* An arm: a copy of the policy that holds the experiment, with the arm's
 * own keys applied. What belongs to the tenant as a whole (its rate
 * limits, its models) is not an arm's to change. */
static int resolve_arm(struct cairn_arm_config *arm, const struct cairn_policy *owner,
                       const cJSON *obj, const char *prefix, char *err, size_t errlen)
{
    arm->name = cairn_strdup(obj->string);
    arm->weight = 1;
    arm->policy = *owner;
    arm->policy.experiment = NULL;
    fields_own(&arm->policy, policy_keys);
    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        char path[160];
        member_path(path, sizeof(path), prefix, m->string);
        const struct key *k = find_key(arm_keys, m->string);
        void *base = arm;
        if (k == NULL && strcmp(m->string, "experiment") != 0 && strcmp(m->string, "rate") != 0 &&
            strcmp(m->string, "models") != 0) {
            k = find_key(policy_keys, m->string);
            base = &arm->policy;
        }
        if (k == NULL) {
            snprintf(err, errlen, "%s: not a key of an arm", path);
            return -1;
        }
        if (set_value(base, k, m, path, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static int resolve_experiment(struct cairn_policy *p, const char *where, char *err, size_t errlen)
{
    struct cairn_experiment_config *e = p->experiment;
    if (e == NULL)
        return 0;
    e->arms = cairn_calloc((size_t)cJSON_GetArraySize(e->source), sizeof(*e->arms));
    double total = 0;
    for (const cJSON *a = e->source->child; a != NULL; a = a->next) {
        char at[160];
        snprintf(at, sizeof(at), "%s.experiment.arms.%s", where, a->string);
        struct cairn_arm_config *arm = &e->arms[e->narms++];
        if (resolve_arm(arm, p, a, at, err, errlen) < 0)
            return -1;
        total += arm->weight;
    }
    cJSON_Delete(e->source);
    e->source = NULL;
    if (total <= 0) {
        snprintf(err, errlen, "%s.experiment.arms: the weights must not all be 0", where);
        return -1;
    }
    if (e->shadow.enabled && cairn_experiment_find_arm(e, e->shadow.against) < 0) {
        snprintf(err, errlen, "%s.experiment.shadow.against: no arm named \"%s\"", where,
                 e->shadow.against);
        return -1;
    }
    return 0;
}

/* Arms resolve once every policy is complete: a tenant's arms start from
 * the tenant's policy, inherited experiment or not. */
static int resolve_experiments(struct cairn_config *cfg, char *err, size_t errlen)
{
    if (resolve_experiment(&cfg->policy, "policy", err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < cfg->ntenants; i++) {
        char where[96];
        snprintf(where, sizeof(where), "tenants.%s", cfg->tenants[i].name);
        if (resolve_experiment(&cfg->tenants[i].policy, where, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static int each_policy_of(const struct cairn_policy *p, const char *where,
                          int (*fn)(const struct cairn_policy *, const char *, void *), void *arg)
{
    int rc = fn(p, where, arg);
    for (size_t i = 0; rc == 0 && p->experiment != NULL && i < p->experiment->narms; i++) {
        char at[192];
        snprintf(at, sizeof(at), "%s.experiment.arms.%s", where, p->experiment->arms[i].name);
        rc = fn(&p->experiment->arms[i].policy, at, arg);
    }
    return rc;
}

int cairn_config_each_policy(const struct cairn_config *cfg,
                             int (*fn)(const struct cairn_policy *p, const char *where, void *arg),
                             void *arg)
{
    int rc = each_policy_of(&cfg->policy, "policy", fn, arg);
    for (size_t i = 0; rc == 0 && i < cfg->ntenants; i++) {
        char where[96];
        snprintf(where, sizeof(where), "tenants.%s", cfg->tenants[i].name);
        rc = each_policy_of(&cfg->tenants[i].policy, where, fn, arg);
    }
    return rc;
}

/* What single keys cannot check: references between parts of the file. */
struct reference_check {
    const struct cairn_config *cfg;
    char *err;
    size_t errlen;
};

/* A policy's upstream exists; one that calls the annotator model names
 * the annotator's. */
static int check_policy(const struct cairn_policy *p, const char *where, void *arg)
{
    const struct reference_check *c = arg;
    if (cairn_config_upstream(c->cfg, p->upstream) == NULL) {
        snprintf(c->err, c->errlen, "%s.upstream: no upstream named \"%s\"", where, p->upstream);
        return -1;
    }
    bool model = p->markers.annotate == CAIRN_ANNOTATE_MODEL ||
                 p->markers.annotate == CAIRN_ANNOTATE_RULES_MODEL;
    if (model && (p->annotator.upstream == NULL ||
                  cairn_config_upstream(c->cfg, p->annotator.upstream) == NULL)) {
        snprintf(c->err, c->errlen,
                 "%s.annotator.upstream: annotate \"%s\" needs an upstream in "
                 "\"upstreams\" (got %s%s%s)",
                 where, p->markers.annotate == CAIRN_ANNOTATE_MODEL ? "model" : "rules+model",
                 p->annotator.upstream ? "\"" : "",
                 p->annotator.upstream ? p->annotator.upstream : "none",
                 p->annotator.upstream ? "\"" : "");
        return -1;
    }
    const struct cairn_shadow_config *sh = p->experiment != NULL ? &p->experiment->shadow : NULL;
    if (sh != NULL && sh->enabled && cairn_config_upstream(c->cfg, sh->judge.upstream) == NULL) {
        snprintf(c->err, c->errlen, "%s.experiment.shadow.judge.upstream: no upstream named \"%s\"",
                 where, sh->judge.upstream);
        return -1;
    }
    return 0;
}

static int check_references(const struct cairn_config *cfg, char *err, size_t errlen)
{
    if (cfg->auth == CAIRN_AUTH_OPEN && cfg->ntenants > 0) {
        snprintf(err, errlen, "tenants: need \"auth\": \"keys\" (open mode has no tenants)");
        return -1;
    }
    struct reference_check c = {cfg, err, errlen};
    if (cairn_config_each_policy(cfg, check_policy, &c) < 0)
        return -1;
    return check_unique_keys(cfg, err, errlen);
}

/* Apply a parsed configuration tree to the defaults. */
static int load_tree(struct cairn_config *cfg, const char *name, const cJSON *root, char *err,
                     size_t errlen)
{
    char why[256];
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "%s: the configuration must be a JSON object", name);
        return -1;
    }
    const cJSON *tenants = cJSON_GetObjectItemCaseSensitive(root, "tenants");
    if (load_section(cfg, root_keys, root, "", why, sizeof(why)) < 0 ||
        (tenants != NULL && load_tenants(cfg, tenants, why, sizeof(why)) < 0) ||
        resolve_experiments(cfg, why, sizeof(why)) < 0 ||
        check_references(cfg, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", name, why);
        return -1;
    }
    if (cfg->listen.n == 0) {
        snprintf(err, errlen, "%s: listen: needs at least one address", name);
        return -1;
    }
    return 0;
}

int cairn_config_load_buffer(struct cairn_config *cfg, const char *name, const char *buf,
                             size_t len, char *err, size_t errlen)
{
    char why[256];
    cairn_config_defaults(cfg);
    cfg->path = cairn_strdup(name);
    cfg->text = cairn_strndup(buf, len);
    cfg->text_len = len;
    cJSON *root = cairn_json_parse_strict(buf, len, CONFIG_MAX_DEPTH, why, sizeof(why));
    int rc = -1;
    if (root == NULL)
        snprintf(err, errlen, "%s: %s", name, why);
    else
        rc = load_tree(cfg, name, root, err, errlen);
    cJSON_Delete(root);
    if (rc < 0)
        cairn_config_free(cfg);
    return rc;
}

int cairn_config_load_file(struct cairn_config *cfg, const char *path, char *err, size_t errlen)
{
    size_t len;
    char *text = cairn_read_file(path, CAIRN_CONFIG_MAX_BYTES, &len, err, errlen);
    if (text == NULL) {
        memset(cfg, 0, sizeof(*cfg));
        return -1;
    }
    int rc = cairn_config_load_buffer(cfg, path, text, len, err, errlen);
    free(text);
    return rc;
}
