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
#include "json_strict.h"

#define CONFIG_MAX_FILE_BYTES (1 << 20)
#define CONFIG_MAX_DEPTH      16
#define CONFIG_MAX_LISTEN     16

enum key_type {
    KEY_INT,    /* int64_t in [min, max] */
    KEY_BOOL,   /* bool */
    KEY_STRING, /* char *, or NULL for null */
    KEY_TEXT,   /* char *, may be empty (template pieces) */
    KEY_CHOICE, /* int64_t: index of the string in `choices` */
    KEY_LIST,   /* struct cairn_strlist: array of strings */
    KEY_MAP,    /* struct cairn_strmap: object of strings and numbers */
    KEY_SECTION,
    KEY_LISTEN,
    KEY_URL,
};

struct key {
    const char *name;
    enum key_type type;
    size_t offset;              /* of the field in struct cairn_config */
    int64_t min, max;           /* KEY_INT */
    const struct key *section;  /* KEY_SECTION: its keys, NULL-terminated */
    const char *const *choices; /* KEY_CHOICE: NULL-terminated */
};

#define FIELD(f) offsetof(struct cairn_config, f)
#define INT_KEY(name, field, lo, hi)                                                               \
    {                                                                                              \
        name, KEY_INT, FIELD(field), lo, hi, NULL, NULL                                            \
    }
#define STR_KEY(name, field)                                                                       \
    {                                                                                              \
        name, KEY_STRING, FIELD(field), 0, 0, NULL, NULL                                           \
    }
#define TYPED_KEY(name, type, field)                                                               \
    {                                                                                              \
        name, type, FIELD(field), 0, 0, NULL, NULL                                                 \
    }
#define CHOICE_KEY(name, field, list)                                                              \
    {                                                                                              \
        name, KEY_CHOICE, FIELD(field), 0, 0, NULL, list                                           \
    }
#define SECTION(name, keys)                                                                        \
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

static const struct key limits_keys[] = {
    INT_KEY("max_connections", limits.max_connections, 1, 1000000),
    INT_KEY("header_bytes", limits.header_bytes, KIB(1), MIB(1)),
    INT_KEY("header_lines", limits.header_lines, 8, 10000),
    INT_KEY("body_bytes", limits.body_bytes, KIB(1), MIB(1024)),
    INT_KEY("json_depth", limits.json_depth, 8, 512),
    INT_KEY("stream_buffer_bytes", limits.stream_buffer_bytes, KIB(4), MIB(64)),
    END_KEYS,
};

static const struct key timeouts_keys[] = {
    INT_KEY("header_ms", timeouts.header_ms, 100, HOUR_MS),
    INT_KEY("body_idle_ms", timeouts.body_idle_ms, 100, HOUR_MS),
    INT_KEY("body_ms", timeouts.body_ms, 100, HOUR_MS),
    INT_KEY("keepalive_ms", timeouts.keepalive_ms, 100, HOUR_MS),
    INT_KEY("send_idle_ms", timeouts.send_idle_ms, 100, HOUR_MS),
    INT_KEY("drain_ms", timeouts.drain_ms, 0, HOUR_MS),
    END_KEYS,
};

static const char *const target_choices[] = {"last_user", "system", NULL};
static const char *const annotate_choices[] = {"off", "rules", NULL};
static const char *const injected_choices[] = {"strip", "escape", NULL};

static const struct key template_keys[] = {
    TYPED_KEY("open", KEY_TEXT, upstream.template.open),
    TYPED_KEY("close", KEY_TEXT, upstream.template.close),
    TYPED_KEY("separator", KEY_TEXT, upstream.template.separator),
    TYPED_KEY("prefix", KEY_TEXT, upstream.template.prefix),
    TYPED_KEY("order", KEY_LIST, upstream.template.order),
    CHOICE_KEY("target", upstream.template.target, target_choices),
    END_KEYS,
};

static const struct key markers_keys[] = {
    TYPED_KEY("rules_dir", KEY_TEXT, markers.rules_dir),
    CHOICE_KEY("annotate", markers.annotate, annotate_choices),
    TYPED_KEY("allow_pinning", KEY_BOOL, markers.allow_pinning),
    CHOICE_KEY("injected", markers.injected, injected_choices),
    TYPED_KEY("unwrap", KEY_BOOL, markers.unwrap),
    TYPED_KEY("fixed", KEY_MAP, markers.fixed),
    END_KEYS,
};

static const struct key upstream_keys[] = {
    TYPED_KEY("base_url", KEY_URL, upstream.base_url),
    STR_KEY("api_key_env", upstream.api_key_env),
    STR_KEY("ca_file", upstream.ca_file),
    INT_KEY("connect_timeout_ms", upstream.connect_timeout_ms, 10, HOUR_MS),
    INT_KEY("first_byte_timeout_ms", upstream.first_byte_timeout_ms, 10, HOUR_MS),
    INT_KEY("idle_timeout_ms", upstream.idle_timeout_ms, 10, HOUR_MS),
    INT_KEY("max_response_bytes", upstream.max_response_bytes, KIB(1), MIB(1024)),
    SECTION("template", template_keys),
    END_KEYS,
};

static const struct key log_keys[] = {
    STR_KEY("access", log.access),
    END_KEYS,
};

static const struct key root_keys[] = {
    {"listen", KEY_LISTEN, 0, 0, 0, NULL, NULL},
    SECTION("limits", limits_keys),
    SECTION("timeouts", timeouts_keys),
    SECTION("upstream", upstream_keys),
    SECTION("markers", markers_keys),
    SECTION("log", log_keys),
    END_KEYS,
};

void cairn_config_defaults(struct cairn_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen = cairn_calloc(1, sizeof(*cfg->listen));
    cfg->nlisten = 1;
    strcpy(cfg->listen[0].host, "127.0.0.1");
    cfg->listen[0].port = 8080;

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

    cfg->upstream.base_url = cairn_strdup("http://127.0.0.1:8081/v1");
    cfg->upstream.api_key_env = cairn_strdup("OPENAI_API_KEY");
    cfg->upstream.connect_timeout_ms = 5000;
    cfg->upstream.first_byte_timeout_ms = 120000;
    cfg->upstream.idle_timeout_ms = 60000;
    cfg->upstream.max_response_bytes = MIB(16);
    cfg->upstream.template.open = cairn_strdup("<MARKER_LIST>");
    cfg->upstream.template.close = cairn_strdup("</MARKER_LIST>");
    cfg->upstream.template.separator = cairn_strdup("\n");
    cfg->upstream.template.prefix = cairn_strdup("\n\n");
    cfg->upstream.template.target = CAIRN_TARGET_LAST_USER;

    cfg->markers.rules_dir = cairn_strdup("rules");
    cfg->markers.annotate = CAIRN_ANNOTATE_RULES;
    cfg->markers.allow_pinning = true;
    cfg->markers.injected = CAIRN_INJECTED_STRIP;
    cfg->markers.unwrap = true;

    cfg->log.access = cairn_strdup("-");
}

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

void cairn_config_free(struct cairn_config *cfg)
{
    free(cfg->path);
    free(cfg->listen);
    free(cfg->upstream.base_url);
    free(cfg->upstream.api_key_env);
    free(cfg->upstream.ca_file);
    free(cfg->upstream.template.open);
    free(cfg->upstream.template.close);
    free(cfg->upstream.template.separator);
    free(cfg->upstream.template.prefix);
    strlist_free(&cfg->upstream.template.order);
    free(cfg->markers.rules_dir);
    strmap_free(&cfg->markers.fixed);
    free(cfg->log.access);
    memset(cfg, 0, sizeof(*cfg));
}

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

int cairn_config_set_base_url(struct cairn_config *cfg, const char *url, char *err, size_t errlen)
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
    free(cfg->upstream.base_url);
    cfg->upstream.base_url = cairn_strndup(url, len);
    return 0;
}

static int set_listen(struct cairn_config *cfg, const cJSON *v, char *err, size_t errlen)
{
    int n = cJSON_GetArraySize(v);
    if (!cJSON_IsArray(v) || n < 1 || n > CONFIG_MAX_LISTEN) {
        snprintf(err, errlen, "must be an array of 1 to %d \"HOST:PORT\" strings",
                 CONFIG_MAX_LISTEN);
        return -1;
    }
    struct cairn_listen *list = cairn_calloc((size_t)n, sizeof(*list));
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
    free(cfg->listen);
    cfg->listen = list;
    cfg->nlisten = (size_t)n;
    return 0;
}

static int set_value(struct cairn_config *cfg, const struct key *k, const cJSON *v, char *err,
                     size_t errlen)
{
    void *field = (char *)cfg + k->offset;
    switch (k->type) {
    case KEY_INT: {
        double d = v->valuedouble;
        if (!cJSON_IsNumber(v) || !(d >= (double)k->min && d <= (double)k->max) || d != floor(d)) {
            snprintf(err, errlen, "must be an integer between %lld and %lld", (long long)k->min,
                     (long long)k->max);
            return -1;
        }
        *(int64_t *)field = (int64_t)d;
        return 0;
    }
    case KEY_STRING:
        if (cJSON_IsNull(v)) {
            free(*(char **)field);
            *(char **)field = NULL;
            return 0;
        }
        if (!cJSON_IsString(v) || v->valuestring[0] == '\0') {
            snprintf(err, errlen, "must be a non-empty string or null");
            return -1;
        }
        free(*(char **)field);
        *(char **)field = cairn_strdup(v->valuestring);
        return 0;
    case KEY_BOOL:
        if (!cJSON_IsBool(v)) {
            snprintf(err, errlen, "must be true or false");
            return -1;
        }
        *(bool *)field = cJSON_IsTrue(v);
        return 0;
    case KEY_TEXT:
        if (!cJSON_IsString(v) || strlen(v->valuestring) > 256) {
            snprintf(err, errlen, "must be a string of at most 256 bytes");
            return -1;
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
        snprintf(err, errlen, "must be one of:");
        for (size_t i = 0; k->choices[i] != NULL; i++)
            snprintf(err + strlen(err), errlen - strlen(err), " \"%s\"", k->choices[i]);
        return -1;
    case KEY_LIST: {
        struct cairn_strlist *l = field;
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > 64) {
            snprintf(err, errlen, "must be an array of at most 64 strings");
            return -1;
        }
        strlist_free(l);
        l->items = cairn_calloc((size_t)cJSON_GetArraySize(v), sizeof(*l->items));
        for (const cJSON *e = v->child; e != NULL; e = e->next) {
            if (!cJSON_IsString(e)) {
                snprintf(err, errlen, "[%zu] must be a string", l->n);
                return -1;
            }
            l->items[l->n++] = cairn_strdup(e->valuestring);
        }
        return 0;
    }
    case KEY_MAP: {
        struct cairn_strmap *m = field;
        if (!cJSON_IsObject(v) || cJSON_GetArraySize(v) > 64) {
            snprintf(err, errlen, "must be an object of at most 64 members");
            return -1;
        }
        strmap_free(m);
        size_t n = (size_t)cJSON_GetArraySize(v);
        m->keys = cairn_calloc(n, sizeof(*m->keys));
        m->values = cairn_calloc(n, sizeof(*m->values));
        for (const cJSON *e = v->child; e != NULL; e = e->next) {
            char num[32];
            if (cJSON_IsNumber(e))
                snprintf(num, sizeof(num), "%.17g", e->valuedouble);
            else if (!cJSON_IsString(e)) {
                snprintf(err, errlen, "%s: must be a string or a number", e->string);
                return -1;
            }
            m->keys[m->n] = cairn_strdup(e->string);
            m->values[m->n++] = cairn_strdup(cJSON_IsNumber(e) ? num : e->valuestring);
        }
        return 0;
    }
    case KEY_URL:
        if (!cJSON_IsString(v)) {
            snprintf(err, errlen, "must be a string");
            return -1;
        }
        return cairn_config_set_base_url(cfg, v->valuestring, err, errlen);
    case KEY_LISTEN: return set_listen(cfg, v, err, errlen);
    case KEY_SECTION: break;
    }
    snprintf(err, errlen, "internal error: bad key type");
    return -1;
}

/* Apply the members of `obj` to `cfg` through `keys`; `prefix` is the dotted
 * path of `obj` for messages ("" at the top). */
static int load_section(struct cairn_config *cfg, const struct key *keys, const cJSON *obj,
                        const char *prefix, char *err, size_t errlen)
{
    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        char path[128];
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", m->string);
        const struct key *k = keys;
        while (k->name != NULL && strcmp(k->name, m->string) != 0)
            k++;
        if (k->name == NULL) {
            snprintf(err, errlen, "%s: unknown key", path);
            return -1;
        }
        if (k->type == KEY_SECTION) {
            if (!cJSON_IsObject(m)) {
                snprintf(err, errlen, "%s: must be an object", path);
                return -1;
            }
            if (load_section(cfg, k->section, m, path, err, errlen) < 0)
                return -1;
            continue;
        }
        char why[192];
        if (set_value(cfg, k, m, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "%s: %s", path, why);
            return -1;
        }
    }
    return 0;
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
    if (load_section(cfg, root_keys, root, "", why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", name, why);
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
    cairn_config_defaults(cfg);
    cfg->path = cairn_strdup(path);
    cJSON *root = cairn_json_load_file(path, CONFIG_MAX_FILE_BYTES, CONFIG_MAX_DEPTH, err, errlen);
    int rc = root != NULL ? load_tree(cfg, path, root, err, errlen) : -1;
    cJSON_Delete(root);
    if (rc < 0)
        cairn_config_free(cfg);
    return rc;
}
