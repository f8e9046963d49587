/*
 * config.h — cairn's configuration: one JSON file, loaded by a table.
 *
 * Every key the file may hold is listed in a table in config.c with its
 * type and range; unknown keys, wrong types and out-of-range values are
 * errors that name the file, the key and the reason. Durations are in
 * milliseconds, sizes in bytes.
 *
 * Besides the server's own settings, the file names its backends
 * ("upstreams"), a default policy (which backend, which models, what the
 * marker stage does, rate limits) and, with "auth": "keys", the tenants:
 * each with its API keys (stored as SHA-256 digests) and whatever part of
 * the policy it overrides.
 */
#ifndef CAIRN_CONFIG_H
#define CAIRN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAIRN_DEFAULT_CONFIG "conf/cairn.json"
#define CAIRN_NAME_MAX       64 /* upstream and tenant names (log fields, metric labels) */
#define CAIRN_MAX_WORKERS    64
#define CAIRN_CONFIG_MAX_BYTES (4 << 20) /* of a configuration file */

struct cairn_listen {
    char host[64]; /* numeric IPv4 or IPv6 address, without brackets */
    uint16_t port; /* 0 = any free port (tests) */
};

struct cairn_listen_list {
    struct cairn_listen *items; /* owned */
    size_t n;
};

struct cairn_strlist {
    char **items; /* owned */
    size_t n;
};

struct cairn_strmap {
    char **keys; /* owned; values are strings even when the file said 12 */
    char **values;
    size_t n;
};

/* How the backend expects its marker block (DESIGN.md "wire format"). */
enum cairn_marker_target { CAIRN_TARGET_LAST_USER, CAIRN_TARGET_SYSTEM };

struct cairn_marker_template {
    char *open;                 /* "<MARKER_LIST>" */
    char *close;                /* "</MARKER_LIST>" */
    char *separator;            /* between the open line, each tag line and the close: "\n" */
    char *prefix;               /* between the prompt and the block: "\n\n" */
    struct cairn_strlist order; /* tags rendered first, in this order; the
                                   rest follow alphabetically by wire name */
    int64_t target;             /* enum cairn_marker_target */
};

/* One backend API, named in "upstreams"; policies refer to it by name. */
struct cairn_upstream_config {
    char *name;
    char *base_url;    /* e.g. "https://api.openai.com/v1", no trailing '/' */
    char *api_key_env; /* name of the environment variable holding the key */
    char *ca_file;     /* CA bundle for private CAs, or NULL for the system's */
    int64_t connect_timeout_ms;
    int64_t first_byte_timeout_ms;
    int64_t idle_timeout_ms;
    int64_t max_response_bytes; /* buffered (non-stream) answers */
    struct cairn_marker_template template;
};

/* Who annotates: nobody, the rule annotator, the annotator model (with
 * its fallback when it fails), or both merged tag by tag. */
enum cairn_annotate_mode {
    CAIRN_ANNOTATE_OFF,
    CAIRN_ANNOTATE_RULES,
    CAIRN_ANNOTATE_MODEL,
    CAIRN_ANNOTATE_RULES_MODEL,
};
enum cairn_annotator_fallback { CAIRN_FALLBACK_RULES, CAIRN_FALLBACK_NONE };

/* The annotator model of a policy (DESIGN.md: one extra call to a small
 * model behind an OpenAI-compatible API). */
struct cairn_annotator_config {
    char *upstream;                    /* a name in "upstreams", or NULL */
    char *model;                       /* the "model" of the annotator's requests */
    int64_t deadline_ms;               /* past it the request goes on without it */
    int64_t fallback;                  /* enum cairn_annotator_fallback ("model" mode) */
    struct cairn_strlist prefer_rules; /* tags where the rules' value beats the model's */
    int64_t max_conversation_bytes;    /* of the conversation sent to it (the end kept) */
    int64_t breaker_failures;          /* consecutive failures that stop calls */
    int64_t breaker_cooldown_ms;       /* how long they stop before a probe */
};
enum cairn_injected_policy { CAIRN_INJECTED_STRIP, CAIRN_INJECTED_ESCAPE };

/* A tenant's rate limits, per worker process (ratelimit.h). */
struct cairn_rate_config {
    double requests_per_second; /* sustained rate; 0 = unlimited */
    int64_t burst;              /* bucket size; 0 = max(1, requests_per_second) */
    int64_t concurrent;         /* requests in flight; 0 = unlimited */
};

/* How answers are checked against their markers (validate.h), and what
 * happens when one breaks them. */
enum cairn_counting { CAIRN_COUNT_WORDS, CAIRN_COUNT_CHARACTERS, CAIRN_COUNT_TOKENS };
enum cairn_retry_mode { CAIRN_RETRY_FEEDBACK, CAIRN_RETRY_RESAMPLE };
enum cairn_stream_mode { CAIRN_STREAM_OBSERVE, CAIRN_STREAM_BUFFER };

struct cairn_validation_config {
    struct cairn_strlist markers; /* tag keys checked; [] = no validation */
    int64_t counting;             /* enum cairn_counting: what a length limit counts */
    double tolerance;             /* 0.1: up to 10% over a length limit passes */
    int64_t attempts;             /* answers asked for at most; 1 = never retry */
    int64_t deadline_ms;          /* no new attempt starts after this, from the request */
    int64_t retry;                /* enum cairn_retry_mode */
    int64_t stream;               /* enum cairn_stream_mode */
};

struct cairn_experiment_config;

/* What a tenant's requests get: the root "policy" is the default, and a
 * tenant's own keys override it member by member. */
struct cairn_policy {
    char *upstream;              /* a name in "upstreams" */
    struct cairn_strlist models; /* allowed "model" values; "prefix*" matches a
                                    prefix; empty = any model */
    struct {
        int64_t annotate;          /* enum cairn_annotate_mode */
        bool allow_pinning;        /* callers may set markers (body field, header) */
        int64_t injected;          /* enum cairn_injected_policy */
        bool unwrap;               /* remove the model's own block from answers */
        struct cairn_strmap fixed; /* markers the policy fixes: tag -> value */
    } markers;
    struct cairn_annotator_config annotator;
    struct cairn_rate_config rate;
    struct cairn_validation_config validation;
    bool log_content; /* prompts and answers to log.content and log.experiment */
    struct cairn_experiment_config *experiment; /* owned, or NULL; never on an arm */
};

/* What decides a request's arm: the body's "user" (the caller's end
 * user), a header, the API key, or nothing (each request on its own).
 * A request without the chosen unit is assigned on its own. */
enum cairn_unit { CAIRN_UNIT_USER, CAIRN_UNIT_HEADER, CAIRN_UNIT_KEY, CAIRN_UNIT_REQUEST };

/* One arm: the policy of the experiment's owner with the arm's overrides. */
struct cairn_arm_config {
    char *name;
    double weight;              /* relative; 0 = only forced requests (QA) */
    char *model;                /* the "model" its requests are sent with, or NULL */
    struct cairn_policy policy; /* resolved when the whole file is read */
};

/* Shadow judging of an experiment (shadow.h): a sample of the requests
 * the other arms served also runs through arm `against`, in the
 * background, and a judge model compares the two answers. */
struct cairn_shadow_config {
    bool enabled;          /* the experiment has a "shadow" section */
    char *against;         /* an arm of the experiment */
    double sample;         /* fraction of the eligible requests, in [0, 1] */
    int64_t max_in_flight; /* shadows running at once, per worker process */
    int64_t daily_cap;     /* shadows started per UTC day, per worker; 0 = no cap */
    int64_t deadline_ms;   /* for the other arm's answer */
    struct {
        char *upstream;      /* a name in "upstreams" */
        char *model;         /* the "model" of the judge's requests */
        int64_t deadline_ms; /* for each of its two replies */
    } judge;
};

/* An A/B experiment on a policy (experiment.h has the assignment). */
struct cairn_experiment_config {
    char *name;
    char *salt;                    /* mixed into every assignment: a new salt reshuffles */
    int64_t unit;                  /* enum cairn_unit */
    char *unit_header;             /* CAIRN_UNIT_HEADER: its name */
    bool allow_force;              /* X-Cairn-Arm may choose the arm (QA) */
    struct cairn_arm_config *arms; /* owned, in the file's order */
    size_t narms;
    struct cJSON *source; /* owned: the arms as written, until they are resolved */
    struct cairn_shadow_config shadow;
};

#define CAIRN_KEY_DIGEST_LEN 32 /* SHA-256 */

struct cairn_key_config {
    unsigned char sha256[CAIRN_KEY_DIGEST_LEN];
    char *label; /* for the operator's own bookkeeping, or NULL */
    bool disabled;
};

struct cairn_key_list {
    struct cairn_key_config *items; /* owned */
    size_t n;
};

struct cairn_tenant_config {
    char *name;
    bool disabled;
    struct cairn_key_list keys;
    struct cairn_policy policy; /* the default policy with the tenant's overrides */
};

/* "open": no keys, every request is tenant "default" with the default
 * policy. "keys": a request must present a key of an enabled tenant. */
enum cairn_auth_mode { CAIRN_AUTH_OPEN, CAIRN_AUTH_KEYS };

struct cairn_config {
    char *path; /* where it was loaded from, for messages */
    char *text; /* the bytes it was loaded from: workers load the master's */
    size_t text_len;

    struct cairn_listen_list listen;
    int64_t workers; /* serving processes; 0 = one per CPU */

    struct {
        struct cairn_listen_list listen; /* metrics and reload; may be empty */
    } admin;

    struct {
        int64_t max_connections;
        int64_t header_bytes;
        int64_t header_lines;
        int64_t body_bytes;
        int64_t json_depth;
        int64_t stream_buffer_bytes; /* client backlog that pauses upstream */
    } limits;

    struct {
        int64_t header_ms;    /* whole head, from its first byte */
        int64_t body_idle_ms; /* silence while a body is being received */
        int64_t body_ms;      /* whole body, from the end of the head */
        int64_t keepalive_ms; /* idle connection between requests */
        int64_t send_idle_ms; /* client not reading what is pending */
        int64_t drain_ms;     /* SIGTERM: time given to requests in flight */
    } timeouts;

    char *rules_dir; /* taxonomy.json and the annotator's rules */

    struct {
        int64_t entries; /* 0 = no cache */
        int64_t bytes;
        int64_t ttl_ms;
    } annotation_cache; /* answers of annotator models, per worker process */

    struct cairn_upstream_config *upstreams; /* owned */
    size_t nupstreams;

    struct cairn_policy policy; /* the default */

    int64_t auth;                        /* enum cairn_auth_mode */
    struct cairn_tenant_config *tenants; /* owned; none in open mode */
    size_t ntenants;

    struct {
        char *access;     /* "-" = stderr, else a file appended to */
        char *content;    /* prompts and answers of tenants that log them, or NULL */
        char *experiment; /* one record per request of an experiment, or NULL */
    } log;
};

/** Fill `cfg` with the built-in defaults (what an empty file means). */
void cairn_config_defaults(struct cairn_config *cfg);

/**
 * Load a configuration from a file / from memory (`name` is used in
 * messages). Keys absent from the file keep their defaults.
 * @return 0, or -1 with `err` like "conf/x.json: limits.body_bytes: must be
 *         between 1024 and 1073741824".
 */
int cairn_config_load_file(struct cairn_config *cfg, const char *path, char *err, size_t errlen);
int cairn_config_load_buffer(struct cairn_config *cfg, const char *name, const char *buf,
                             size_t len, char *err, size_t errlen);

/** Parse "HOST:PORT", "[V6]:PORT" into `out`. @return 0 or -1 with err. */
int cairn_config_parse_listen(const char *s, struct cairn_listen *out, char *err, size_t errlen);

/** Point the default policy's upstream at `url` (http:// or https://):
 *  the --upstream option. @return 0 or -1 with err. */
int cairn_config_set_base_url(struct cairn_config *cfg, const char *url, char *err, size_t errlen);

/** The upstream named `name`, or NULL. */
const struct cairn_upstream_config *cairn_config_upstream(const struct cairn_config *cfg,
                                                          const char *name);

/**
 * Call `fn` on every policy of `cfg`: the default, each tenant's, and each
 * arm of their experiments, with its dotted place in the file ("policy",
 * "tenants.acme", "tenants.acme.experiment.arms.rules").
 * @return the first non-zero value `fn` returns, or 0.
 */
int cairn_config_each_policy(const struct cairn_config *cfg,
                             int (*fn)(const struct cairn_policy *p, const char *where, void *arg),
                             void *arg);

/** Forget the tenants (an offline command that runs the default policy). */
void cairn_config_drop_tenants(struct cairn_config *cfg);

void cairn_config_free(struct cairn_config *cfg);

#endif
