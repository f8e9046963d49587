/*
 * config.h — cairn's configuration: one JSON file, loaded by a table.
 *
 * Every key the file may hold is listed in a table in config.c with its
 * type and range; unknown keys, wrong types and out-of-range values are
 * errors that name the file, the key and the reason. Durations are in
 * milliseconds, sizes in bytes.
 */
#ifndef CAIRN_CONFIG_H
#define CAIRN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAIRN_DEFAULT_CONFIG "conf/cairn.json"

struct cairn_listen {
    char host[64]; /* numeric IPv4 or IPv6 address, without brackets */
    uint16_t port; /* 0 = any free port (tests) */
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

enum cairn_annotate_mode { CAIRN_ANNOTATE_OFF, CAIRN_ANNOTATE_RULES };
enum cairn_injected_policy { CAIRN_INJECTED_STRIP, CAIRN_INJECTED_ESCAPE };

struct cairn_upstream_config {
    char *base_url;    /* e.g. "https://api.openai.com/v1", no trailing '/' */
    char *api_key_env; /* name of the environment variable holding the key */
    char *ca_file;     /* CA bundle for private CAs, or NULL for the system's */
    int64_t connect_timeout_ms;
    int64_t first_byte_timeout_ms;
    int64_t idle_timeout_ms;
    int64_t max_response_bytes; /* buffered (non-stream) answers */
    struct cairn_marker_template template;
};

struct cairn_config {
    char *path; /* where it was loaded from, for messages */

    struct cairn_listen *listen;
    size_t nlisten;

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

    struct cairn_upstream_config upstream;

    struct {
        char *rules_dir;           /* taxonomy.json and the annotator's rules */
        int64_t annotate;          /* enum cairn_annotate_mode */
        bool allow_pinning;        /* callers may set markers (body field, header) */
        int64_t injected;          /* enum cairn_injected_policy */
        bool unwrap;               /* remove the model's own block from answers */
        struct cairn_strmap fixed; /* markers the policy fixes: tag -> value */
    } markers;

    struct {
        char *access; /* "-" = stderr, else a file appended to */
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

/** Validate and set upstream.base_url (http:// or https://). */
int cairn_config_set_base_url(struct cairn_config *cfg, const char *url, char *err, size_t errlen);

void cairn_config_free(struct cairn_config *cfg);

#endif
