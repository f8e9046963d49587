/*
 * test_config.c — unit tests for include/config.h.
 *
 * One table lists every scalar, string and list field of the file: where
 * it lives (the root, the upstream the default policy names, the default
 * policy), its key, and the value the full test file gives it. From it:
 * "{}" equals cairn_config_defaults; the full file (generated from the
 * table) sets every field; every key refuses values of the wrong type or
 * range and names the file and the dotted key; a tenant inherits every
 * policy member it does not set, in copies of its own. Further tables:
 * accepted files with the values they must produce (named upstreams,
 * tenants, keys), rejected files with what the message must name,
 * cairn_config_parse_listen and cairn_config_set_base_url.
 * cairn_config_load_file runs on a real temporary file and a missing path.
 * Every config is released with cairn_config_free, loaded or not (the tests
 * also run under ASan, which catches a string shared where it is owned).
 *
 * JSON in the tables is written with ' for " to stay readable.
 */
#include "unit.h"

#include <unistd.h>

#include <cjson/cJSON.h>

#include "config.h"

#define NAME "t.json"

#define X8(s)       s s s s s s s s
#define NAME64      X8("abcdefgh")
#define SHA_ABC     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_ABC_UC  "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
#define SHA_ABC_63  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a"
#define SHA_ABC_NOT "ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_B       X8("bbbbbbbb")

/* --- the field table --------------------------------------------------------- */

/* Which struct a field is in: the upstream is the one the default policy
 * names ("main" in the full file, "default" in the built-in defaults). */
enum where { IN_ROOT, IN_UPSTREAM, IN_POLICY };

static const char *const where_prefix[] = {
    [IN_ROOT] = "",
    [IN_UPSTREAM] = "upstreams.main.",
    [IN_POLICY] = "policy.",
};

enum kind { K_INT, K_REAL, K_BOOL, K_CHOICE, K_STR, K_LIST, K_MAP, K_LISTEN };

struct field {
    enum where where;
    const char *key; /* dotted, below the struct's place in the file */
    enum kind kind;
    size_t off;
    const char *const *names; /* K_CHOICE: the file's spelling of each enum value */
    const char *json;         /* the value in the full file; all differ from the defaults */
    const char *want;         /* the loaded value as field_text prints it */
};

static const char *const auth_names[] = {
    [CAIRN_AUTH_OPEN] = "open", [CAIRN_AUTH_KEYS] = "keys", NULL};
static const char *const target_names[] = {
    [CAIRN_TARGET_LAST_USER] = "last_user", [CAIRN_TARGET_SYSTEM] = "system", NULL};
static const char *const annotate_names[] = {
    [CAIRN_ANNOTATE_OFF] = "off", [CAIRN_ANNOTATE_RULES] = "rules", NULL};
static const char *const injected_names[] = {
    [CAIRN_INJECTED_STRIP] = "strip", [CAIRN_INJECTED_ESCAPE] = "escape", NULL};

/* The key in the file is the member's own path in its struct. */
#define FIELD(where, type, kind, member, names, json, want)                                        \
    {                                                                                              \
        where, #member, kind, offsetof(type, member), names, json, want                            \
    }
#define ROOT(kind, member, json, want)                                                             \
    FIELD(IN_ROOT, struct cairn_config, kind, member, NULL, json, want)
#define UP(kind, member, json, want)                                                               \
    FIELD(IN_UPSTREAM, struct cairn_upstream_config, kind, member, NULL, json, want)
#define POL(kind, member, json, want)                                                              \
    FIELD(IN_POLICY, struct cairn_policy, kind, member, NULL, json, want)
#define ROOT_CHOICE(member, names, json, want)                                                     \
    FIELD(IN_ROOT, struct cairn_config, K_CHOICE, member, names, json, want)
#define UP_CHOICE(member, names, json, want)                                                       \
    FIELD(IN_UPSTREAM, struct cairn_upstream_config, K_CHOICE, member, names, json, want)
#define POL_CHOICE(member, names, json, want)                                                      \
    FIELD(IN_POLICY, struct cairn_policy, K_CHOICE, member, names, json, want)

static const struct field fields[] = {
    ROOT(K_LISTEN, listen, "['127.0.0.1:0','[::1]:9090']", "127.0.0.1:0,[::1]:9090"),
    ROOT(K_LISTEN, admin.listen, "['[::1]:9191']", "[::1]:9191"),
    ROOT(K_INT, limits.max_connections, "100", "100"),
    ROOT(K_INT, limits.header_bytes, "8192", "8192"),
    ROOT(K_INT, limits.header_lines, "50", "50"),
    ROOT(K_INT, limits.body_bytes, "1048576", "1048576"),
    ROOT(K_INT, limits.json_depth, "32", "32"),
    ROOT(K_INT, limits.stream_buffer_bytes, "65536", "65536"),
    ROOT(K_INT, timeouts.header_ms, "5000", "5000"),
    ROOT(K_INT, timeouts.body_idle_ms, "6000", "6000"),
    ROOT(K_INT, timeouts.body_ms, "7000", "7000"),
    ROOT(K_INT, timeouts.keepalive_ms, "8000", "8000"),
    ROOT(K_INT, timeouts.send_idle_ms, "9000", "9000"),
    ROOT(K_INT, timeouts.drain_ms, "0", "0"),
    ROOT(K_STR, rules_dir, "'/etc/cairn/rules'", "/etc/cairn/rules"),
    ROOT_CHOICE(auth, auth_names, "'keys'", "keys"),
    ROOT(K_STR, log.access, "'/tmp/cairn-access.log'", "/tmp/cairn-access.log"),
    ROOT(K_STR, log.content, "'/tmp/cairn-content.log'", "/tmp/cairn-content.log"),

    UP(K_STR, base_url, "'https://api.example.com/v1/'", "https://api.example.com/v1"),
    UP(K_STR, api_key_env, "'MY_KEY'", "MY_KEY"),
    UP(K_STR, ca_file, "'/etc/ssl/x.pem'", "/etc/ssl/x.pem"),
    UP(K_INT, connect_timeout_ms, "1000", "1000"),
    UP(K_INT, first_byte_timeout_ms, "2000", "2000"),
    UP(K_INT, idle_timeout_ms, "3000", "3000"),
    UP(K_INT, max_response_bytes, "2097152", "2097152"),
    UP(K_STR, template.open, "'<M>'", "<M>"),
    UP(K_STR, template.close, "'</M>'", "</M>"),
    UP(K_STR, template.separator, "'; '", "; "),
    UP(K_STR, template.prefix, "''", ""),
    UP(K_LIST, template.order, "['lang','topic']", "lang,topic"),
    UP_CHOICE(template.target, target_names, "'system'", "system"),

    POL(K_STR, upstream, "'main'", "main"),
    POL(K_LIST, models, "['gpt-4o','o1*']", "gpt-4o,o1*"),
    POL_CHOICE(markers.annotate, annotate_names, "'off'", "off"),
    POL(K_BOOL, markers.allow_pinning, "false", "false"),
    POL_CHOICE(markers.injected, injected_names, "'escape'", "escape"),
    POL(K_BOOL, markers.unwrap, "false", "false"),
    POL(K_MAP, markers.fixed, "{'lang':'en','level':3}", "lang=en,level=3"),
    POL(K_REAL, rate.requests_per_second, "2.5", "2.5"),
    POL(K_INT, rate.burst, "10", "10"),
    POL(K_INT, rate.concurrent, "4", "4"),
    POL(K_BOOL, log_content, "true", "true"),
};

/* Values each kind of field must refuse. */
static const char *const bad_values[][10] = {
    [K_INT] = {"'1'", "-1", "1.5", "1e15", "1e18", "1e400", "true", "null", "[]"},
    [K_REAL] = {"'1'", "-1", "1e7", "1e400", "true", "null", "{}"},
    [K_BOOL] = {"1", "'true'", "null", "[]"},
    [K_CHOICE] = {"'bogus'", "0", "null", "[]", "''"},
    [K_STR] = {"7", "[]", "{}", "true"},
    [K_LIST] = {"'a'", "[1]", "['']", "[null]", "{}", "null"},
    [K_MAP] = {"[]", "{'a':true}", "{'a':null}", "{'a':{}}", "'x'", "null"},
    [K_LISTEN] = {"'127.0.0.1:80'", "[5]", "['localhost:80']", "['1.2.3.4']", "null", "{}"},
};

/* --- helpers ------------------------------------------------------------------- */

/* A malloc'd copy of `s` with every ' turned into ". */
static char *dq(const char *s)
{
    char *p = strdup(s);
    assert_non_null(p);
    for (char *c = p; *c; c++)
        if (*c == '\'')
            *c = '"';
    return p;
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Load `json` (written with ') from an exactly sized heap block. */
static int load(struct cairn_config *cfg, const char *json, char *err, size_t errlen)
{
    char *text = dq(json);
    size_t len = strlen(text);
    char *copy = dup_exact(text, len);
    memset(cfg, 0, sizeof *cfg);
    err[0] = '\0';
    int r = cairn_config_load_buffer(cfg, NAME, copy, len, err, errlen);
    free(copy);
    free(text);
    return r;
}

static void field_path(const struct field *f, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s%s", where_prefix[f->where], f->key);
}

/* The struct a field of `where` is in, or NULL. */
static const void *field_base(const struct cairn_config *cfg, enum where where)
{
    switch (where) {
    case IN_ROOT: return cfg;
    case IN_UPSTREAM:
        return cfg->policy.upstream ? cairn_config_upstream(cfg, cfg->policy.upstream) : NULL;
    case IN_POLICY: return &cfg->policy;
    }
    return NULL;
}

static void append(char *out, size_t outlen, const char *sep, const char *s)
{
    size_t used = strlen(out);
    snprintf(out + used, outlen - used, "%s%s", used ? sep : "", s);
}

/* The value of field `f` in the struct at `base`, printed for comparison:
 * lists joined by ',', maps as k=v, listen addresses as in the file. */
static void field_text(const void *base, const struct field *f, char *out, size_t outlen)
{
    const void *p = (const char *)base + f->off;
    out[0] = '\0';
    switch (f->kind) {
    case K_INT: snprintf(out, outlen, "%lld", (long long)*(const int64_t *)p); break;
    case K_REAL: snprintf(out, outlen, "%.17g", *(const double *)p); break;
    case K_BOOL: snprintf(out, outlen, "%s", *(const bool *)p ? "true" : "false"); break;
    case K_CHOICE: {
        int64_t v = *(const int64_t *)p, n = 0;
        while (f->names[n] != NULL)
            n++;
        if (v >= 0 && v < n)
            snprintf(out, outlen, "%s", f->names[v]);
        else
            snprintf(out, outlen, "?%lld", (long long)v);
        break;
    }
    case K_STR:
        snprintf(out, outlen, "%s", *(char *const *)p ? *(char *const *)p : "(null)");
        break;
    case K_LIST: {
        const struct cairn_strlist *l = p;
        for (size_t i = 0; i < l->n; i++)
            append(out, outlen, ",", l->items[i]);
        break;
    }
    case K_MAP: {
        const struct cairn_strmap *m = p;
        for (size_t i = 0; i < m->n; i++) {
            char kv[256];
            snprintf(kv, sizeof kv, "%s=%s", m->keys[i], m->values[i]);
            append(out, outlen, ",", kv);
        }
        break;
    }
    case K_LISTEN: {
        const struct cairn_listen_list *l = p;
        for (size_t i = 0; i < l->n; i++) {
            char a[96];
            bool v6 = strchr(l->items[i].host, ':') != NULL;
            snprintf(a, sizeof a, "%s%s%s:%u", v6 ? "[" : "", l->items[i].host, v6 ? "]" : "",
                     l->items[i].port);
            append(out, outlen, ",", a);
        }
        break;
    }
    }
}

static const struct field *find_field(enum where where, const char *key)
{
    for (size_t i = 0; i < NELEM(fields); i++)
        if (fields[i].where == where && strcmp(fields[i].key, key) == 0)
            return &fields[i];
    return NULL;
}

static const struct cairn_tenant_config *find_tenant(const struct cairn_config *cfg,
                                                     const char *name)
{
    for (size_t i = 0; i < cfg->ntenants; i++)
        if (strcmp(cfg->tenants[i].name, name) == 0)
            return &cfg->tenants[i];
    return NULL;
}

static void keys_text(const struct cairn_key_list *keys, char *out, size_t outlen)
{
    out[0] = '\0';
    for (size_t i = 0; i < keys->n; i++) {
        const struct cairn_key_config *k = &keys->items[i];
        char one[128];
        for (size_t b = 0; b < CAIRN_KEY_DIGEST_LEN; b++)
            snprintf(one + 2 * b, 3, "%02x", k->sha256[b]);
        snprintf(one + 2 * CAIRN_KEY_DIGEST_LEN, sizeof one - 2 * CAIRN_KEY_DIGEST_LEN, "/%s%s",
                 k->label ? k->label : "-", k->disabled ? "/disabled" : "");
        append(out, outlen, ",", one);
    }
}

/*
 * Any value of a loaded config by its dotted key, printed as field_text
 * does: the keys of the field table, "upstreams" and "tenants" (their
 * names), "upstreams.NAME.KEY", and "tenants.NAME.KEY" where KEY is
 * "disabled", "keys" or a policy key. @return false for a key the test
 * does not know (a mistake in a table).
 */
static bool config_text(const struct cairn_config *cfg, const char *key, char *out, size_t outlen)
{
    out[0] = '\0';
    if (strcmp(key, "upstreams") == 0) {
        for (size_t i = 0; i < cfg->nupstreams; i++)
            append(out, outlen, ",", cfg->upstreams[i].name);
        return true;
    }
    if (strcmp(key, "tenants") == 0) {
        for (size_t i = 0; i < cfg->ntenants; i++)
            append(out, outlen, ",", cfg->tenants[i].name);
        return true;
    }
    const char *rest = NULL, *dot;
    bool tenant = strncmp(key, "tenants.", 8) == 0;
    if (tenant || strncmp(key, "upstreams.", 10) == 0) {
        rest = key + (tenant ? 8 : 10);
        if ((dot = strchr(rest, '.')) == NULL)
            return false;
        char name[CAIRN_NAME_MAX + 1];
        snprintf(name, sizeof name, "%.*s", (int)(dot - rest), rest);
        const struct field *f = find_field(tenant ? IN_POLICY : IN_UPSTREAM, dot + 1);
        const void *base = NULL;
        if (tenant) {
            const struct cairn_tenant_config *t = find_tenant(cfg, name);
            if (t == NULL) {
                snprintf(out, outlen, "(no tenant %s)", name);
                return true;
            }
            if (strcmp(dot + 1, "disabled") == 0) {
                snprintf(out, outlen, "%s", t->disabled ? "true" : "false");
                return true;
            }
            if (strcmp(dot + 1, "keys") == 0) {
                keys_text(&t->keys, out, outlen);
                return true;
            }
            base = &t->policy;
        } else {
            base = cairn_config_upstream(cfg, name);
            if (base == NULL) {
                snprintf(out, outlen, "(no upstream %s)", name);
                return true;
            }
        }
        if (f == NULL)
            return false;
        field_text(base, f, out, outlen);
        return true;
    }
    const struct field *f = find_field(IN_ROOT, key);
    if (f == NULL && strncmp(key, "policy.", 7) == 0)
        f = find_field(IN_POLICY, key + 7);
    if (f == NULL)
        return false;
    field_text(field_base(cfg, f->where), f, out, outlen);
    return true;
}

/* Set `path` ("a.b.c") in `root` to `json` (written with '), making the
 * objects on the way. */
static void put_path(cJSON *root, const char *path, const char *json)
{
    char *text = dq(json), *p = strdup(path), *name = p, *dot;
    assert_non_null(p);
    while ((dot = strchr(name, '.')) != NULL) {
        *dot = '\0';
        cJSON *next = cJSON_GetObjectItemCaseSensitive(root, name);
        if (next == NULL)
            next = cJSON_AddObjectToObject(root, name);
        assert_non_null(next);
        root = next;
        name = dot + 1;
    }
    cJSON *value = cJSON_Parse(text);
    assert_non_null(value);
    cJSON_DeleteItemFromObjectCaseSensitive(root, name);
    cJSON_AddItemToObject(root, name, value);
    free(p);
    free(text);
}

/* The text {"a":{"b":{"c":JSON}}} for path "a.b.c", JSON kept as written
 * (1e400 would not survive a trip through a cJSON tree). */
static char *nested(const char *path, const char *json)
{
    struct sbuf b = {0};
    size_t depth = 1;
    sb_puts(&b, "{'");
    for (const char *p = path; *p; p++) {
        if (*p == '.') {
            sb_puts(&b, "':{'");
            depth++;
        } else {
            sb_putn(&b, p, 1);
        }
    }
    sb_puts(&b, "':");
    sb_puts(&b, json);
    sb_repeat(&b, "}", depth);
    return b.p;
}

/* `root` as text; the tree is freed. */
static char *print_tree(cJSON *root)
{
    char *s = cJSON_PrintUnformatted(root);
    assert_non_null(s);
    cJSON_Delete(root);
    return s;
}

/* The full test file: every field of the table. */
static cJSON *full_tree(void)
{
    cJSON *root = cJSON_CreateObject();
    for (size_t i = 0; i < NELEM(fields); i++) {
        char path[128];
        field_path(&fields[i], path, sizeof path);
        put_path(root, path, fields[i].json);
    }
    return root;
}

static void check_full(const struct cairn_config *cfg, const char *row)
{
    for (size_t i = 0; i < NELEM(fields); i++) {
        const void *base = field_base(cfg, fields[i].where);
        char path[128], got[1024];
        field_path(&fields[i], path, sizeof path);
        if (!check(base != NULL, row, "%s: no struct to read it from", path))
            continue;
        field_text(base, &fields[i], got, sizeof got);
        check(strcmp(got, fields[i].want) == 0, row, "%s = \"%s\", want \"%s\"", path, got,
              fields[i].want);
    }
    char names[256];
    config_text(cfg, "upstreams", names, sizeof names);
    check(strcmp(names, "main") == 0, row, "upstreams \"%s\", want only \"main\"", names);
}

/* --- defaults and the full file ------------------------------------------------- */

static void test_empty_is_defaults(void **state)
{
    (void)state;
    struct cairn_config cfg, def;
    char err[512];
    rows_begin();
    assert_int_equal(load(&cfg, "{}", err, sizeof err), 0);
    cairn_config_defaults(&def);
    for (size_t i = 0; i < NELEM(fields); i++) {
        const void *a = field_base(&cfg, fields[i].where), *b = field_base(&def, fields[i].where);
        char path[128], got[1024], want[1024];
        field_path(&fields[i], path, sizeof path);
        if (!check(a != NULL && b != NULL, path, "no struct to read it from"))
            continue;
        field_text(a, &fields[i], got, sizeof got);
        field_text(b, &fields[i], want, sizeof want);
        check(strcmp(got, want) == 0, path, "\"%s\", default \"%s\"", got, want);
        check(strcmp(got, fields[i].want) != 0, path, "the full file's value is the default");
    }
    check(cfg.listen.n > 0, "listen", "empty by default");
    check(cfg.nupstreams == 1 && strcmp(cfg.upstreams[0].name, "default") == 0, "upstreams",
          "%zu, want only \"default\"", cfg.nupstreams);
    check(str_eq(cfg.policy.upstream, "default"), "policy.upstream", "\"%s\"",
          cfg.policy.upstream ? cfg.policy.upstream : "(null)");
    check(cfg.ntenants == 0, "tenants", "%zu by default", cfg.ntenants);
    check(str_eq(cfg.path, NAME), "path", "\"%s\"", cfg.path ? cfg.path : "(null)");
    cairn_config_free(&cfg);
    cairn_config_free(&def);
    rows_end();
}

static void test_full_config(void **state)
{
    (void)state;
    struct cairn_config cfg;
    char err[512], *json = print_tree(full_tree());
    rows_begin();
    if (check(load(&cfg, json, err, sizeof err) == 0, "full config", "rejected: %s", err)) {
        check_full(&cfg, "full config");
        check(cairn_config_upstream(&cfg, "default") == NULL, "full config",
              "the default upstream survived a file's \"upstreams\"");
    }
    cairn_config_free(&cfg);
    free(json);
    rows_end();
}

static void test_load_file(void **state)
{
    (void)state;
    struct cairn_config cfg;
    char err[512], path[] = "/tmp/cairn-test-config-XXXXXX", *json = print_tree(full_tree());
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    rows_begin();
    if (check(cairn_config_load_file(&cfg, path, err, sizeof err) == 0, "load_file", "%s", err)) {
        check_full(&cfg, "load_file");
        check(str_eq(cfg.path, path), "load_file", "path \"%s\"", cfg.path ? cfg.path : "");
    }
    cairn_config_free(&cfg);
    unlink(path);
    free(json);

    static const char missing[] = "/nonexistent/cairn-test.json";
    err[0] = '\0';
    check(cairn_config_load_file(&cfg, missing, err, sizeof err) == -1, "missing file", "loaded");
    check(strstr(err, missing) != NULL, "missing file", "err \"%s\" lacks the path", err);
    cairn_config_free(&cfg);
    rows_end();
}

/* The example shipped in conf/ loads (when the tests run from the top). */
static void test_example_file(void **state)
{
    (void)state;
    struct cairn_config cfg;
    char err[512];
    if (access(CAIRN_DEFAULT_CONFIG, R_OK) != 0)
        skip();
    rows_begin();
    check(cairn_config_load_file(&cfg, CAIRN_DEFAULT_CONFIG, err, sizeof err) == 0,
          CAIRN_DEFAULT_CONFIG, "rejected: %s", err);
    cairn_config_free(&cfg);
    rows_end();
}

/* --- every key refuses what it cannot hold ----------------------------------------- */

static void test_bad_values_every_key(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(fields); i++) {
        const char *const *bad = bad_values[fields[i].kind];
        char path[128];
        field_path(&fields[i], path, sizeof path);
        for (size_t v = 0; v < NELEM(bad_values[0]) && bad[v] != NULL; v++) {
            struct cairn_config cfg;
            char *json = nested(path, bad[v]), err[512];
            int r = load(&cfg, json, err, sizeof err);
            if (check(r == -1, json, "accepted"))
                check(strstr(err, NAME) && strstr(err, path), json, "err \"%s\" lacks \"%s\"", err,
                      path);
            cairn_config_free(&cfg);
            free(json);
        }
    }
    rows_end();
}

/* --- accepted files ------------------------------------------------------------- */

struct want {
    const char *key, *text; /* as config_text prints it */
};

static const struct {
    const char *row, *json;
    struct want wants[8];
} good_files[] = {
    {"several named upstreams, each from the defaults",
     "{'upstreams':{'a':{'base_url':'http://a.example/v1'},"
     "'b':{'connect_timeout_ms':50,'template':{'target':'system'}},'c':{}},"
     "'policy':{'upstream':'b'}}",
     {{"upstreams", "a,b,c"},
      {"upstreams.a.base_url", "http://a.example/v1"},
      {"upstreams.a.connect_timeout_ms", "5000"},
      {"upstreams.b.connect_timeout_ms", "50"},
      {"upstreams.b.template.target", "system"},
      {"upstreams.c.template.open", "<MARKER_LIST>"},
      {"policy.upstream", "b"}}},
    {"a file's upstreams replace the default one",
     "{'upstreams':{'main':{}},'policy':{'upstream':'main'}}",
     {{"upstreams", "main"}, {"upstreams.main.base_url", "http://127.0.0.1:8081/v1"}}},
    {"names of 64 characters and every allowed character",
     "{'upstreams':{'" NAME64 "':{},'A-z_0.9':{}},'policy':{'upstream':'A-z_0.9'},"
     "'auth':'keys','tenants':{'" NAME64 "':{},'T-1_x.y':{}}}",
     {{"upstreams", NAME64 ",A-z_0.9"}, {"tenants", NAME64 ",T-1_x.y"}}},
    {"tenants with keys",
     "{'auth':'keys','tenants':{"
     "'a':{'keys':[{'sha256':'" SHA_ABC "','label':'ops'},"
     "{'sha256':'" SHA_B "','label':null,'disabled':true}]},"
     "'b':{'disabled':true,'keys':[]},'c':{}}}",
     {{"auth", "keys"},
      {"tenants", "a,b,c"},
      {"tenants.a.keys", SHA_ABC "/ops," SHA_B "/-/disabled"},
      {"tenants.a.disabled", "false"},
      {"tenants.b.disabled", "true"},
      {"tenants.b.keys", ""},
      {"tenants.c.keys", ""}}},
    {"tenants before auth and policy in the file still inherit",
     "{'tenants':{'a':{}},'policy':{'rate':{'burst':7}},'auth':'keys'}",
     {{"tenants.a.rate.burst", "7"}, {"tenants.a.upstream", "default"}}},
    {"a tenant on another upstream",
     "{'auth':'keys','upstreams':{'default':{},'other':{}},'tenants':{'a':{'upstream':'other'}}}",
     {{"tenants.a.upstream", "other"}, {"policy.upstream", "default"}}},
    {"no tenants in open mode", "{'auth':'open','tenants':{}}", {{"tenants", ""}}},
    {"0.5 requests per second",
     "{'policy':{'rate':{'requests_per_second':0.5}}}",
     {{"policy.rate.requests_per_second", "0.5"}}},
    {"admin.listen empty: no admin listener", "{'admin':{'listen':[]}}", {{"admin.listen", ""}}},
    {"log.content a path",
     "{'log':{'content':'/var/log/c.log'}}",
     {{"log.content", "/var/log/c.log"}}},
    {"log.content null", "{'log':{'content':null}}", {{"log.content", "(null)"}}},
    {"ca_file null",
     "{'upstreams':{'default':{'ca_file':null}}}",
     {{"upstreams.default.ca_file", "(null)"}}},
    {"fixed markers: strings and numbers",
     "{'policy':{'markers':{'fixed':{'lang':'de','n':12,'x':0.5}}}}",
     {{"policy.markers.fixed", "lang=de,n=12,x=0.5"}}},
};

static void test_good_files(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(good_files); i++) {
        struct cairn_config cfg;
        char err[512];
        const char *row = good_files[i].row;
        if (check(load(&cfg, good_files[i].json, err, sizeof err) == 0, row, "rejected: %s", err)) {
            const struct want *w = good_files[i].wants, *end = w + NELEM(good_files[i].wants);
            for (; w < end && w->key != NULL; w++) {
                char got[2048];
                if (check(config_text(&cfg, w->key, got, sizeof got), row,
                          "%s: unknown to the test", w->key))
                    check(strcmp(got, w->text) == 0, row, "%s = \"%s\", want \"%s\"", w->key, got,
                          w->text);
            }
        }
        cairn_config_free(&cfg);
    }
    rows_end();
}

/* An experiment's arms start from the policy that holds it: a tenant that
 * inherits the default's experiment gets arms on its own policy, and one
 * that says null has none. Each arm's own keys apply on top. */
static void test_experiment_arms(void **state)
{
    (void)state;
    struct cairn_config cfg;
    char err[512];
    int rc = load(&cfg,
                  "{'auth':'keys','upstreams':{'default':{},'other':{},'ann':{}},"
                  "'policy':{'validation':{'markers':['format']},'experiment':{'name':'ab',"
                  "'unit':'header','unit_header':'X-User','allow_force':true,'arms':{"
                  "'control':{'markers':{'annotate':'off'}},"
                  "'model':{'weight':3,'model':'small','markers':{'annotate':'model'},"
                  "'annotator':{'upstream':'ann'}}}}},"
                  "'tenants':{'a':{'upstream':'other'},'b':{'experiment':null}}}",
                  err, sizeof err);
    if (rc != 0)
        fail_msg("rejected: %s", err);
    const struct cairn_experiment_config *e = cfg.policy.experiment;
    assert_string_equal(e->name, "ab");
    assert_string_equal(e->salt, "ab"); /* the name, when no salt is given */
    assert_int_equal(e->unit, CAIRN_UNIT_HEADER);
    assert_string_equal(e->unit_header, "X-User");
    assert_true(e->allow_force);
    assert_int_equal(e->narms, 2);
    assert_string_equal(e->arms[0].name, "control");
    assert_true(e->arms[0].weight == 1);
    assert_null(e->arms[0].model);
    assert_int_equal(e->arms[0].policy.markers.annotate, CAIRN_ANNOTATE_OFF);
    assert_int_equal(e->arms[0].policy.validation.markers.n, 1);
    assert_null(e->arms[0].policy.experiment);
    assert_true(e->arms[1].weight == 3);
    assert_string_equal(e->arms[1].model, "small");
    assert_int_equal(e->arms[1].policy.markers.annotate, CAIRN_ANNOTATE_MODEL);
    assert_string_equal(e->arms[1].policy.annotator.upstream, "ann");
    assert_string_equal(e->arms[1].policy.upstream, "default");

    const struct cairn_experiment_config *ta = cfg.tenants[0].policy.experiment;
    assert_non_null(ta);
    assert_int_equal(ta->narms, 2);
    assert_string_equal(ta->arms[0].policy.upstream, "other");
    assert_string_equal(ta->arms[1].policy.upstream, "other");
    assert_int_equal(ta->arms[1].policy.markers.annotate, CAIRN_ANNOTATE_MODEL);
    assert_null(cfg.tenants[1].policy.experiment);
    cairn_config_free(&cfg);
}

/* Shadow judging: every key as written, the defaults where a key is left
 * out, a tenant's inherited copy of its own, and an experiment without
 * the section has it off. */
static void test_experiment_shadow(void **state)
{
    (void)state;
    struct cairn_config cfg;
    char err[512];
    int rc = load(&cfg,
                  "{'auth':'keys','upstreams':{'default':{},'judges':{}},"
                  "'policy':{'experiment':{'name':'ab','arms':{'a':{},'b':{'weight':0}},"
                  "'shadow':{'against':'b','sample':0.25,'max_in_flight':7,'daily_cap':0,"
                  "'deadline_ms':9000,'judge':{'upstream':'judges','model':'gpt-4o',"
                  "'deadline_ms':1500}}}},"
                  "'tenants':{'t':{},'u':{'experiment':{'name':'x','arms':{'c':{},'d':{}},"
                  "'shadow':{'against':'c','judge':{'upstream':'default','model':'j'}}}},"
                  "'v':{'experiment':{'name':'y','arms':{'c':{}}}}}}",
                  err, sizeof err);
    if (rc != 0)
        fail_msg("rejected: %s", err);
    const struct cairn_shadow_config *sh = &cfg.policy.experiment->shadow;
    assert_true(sh->enabled);
    assert_string_equal(sh->against, "b");
    assert_true(sh->sample == 0.25);
    assert_int_equal(sh->max_in_flight, 7);
    assert_int_equal(sh->daily_cap, 0);
    assert_int_equal(sh->deadline_ms, 9000);
    assert_string_equal(sh->judge.upstream, "judges");
    assert_string_equal(sh->judge.model, "gpt-4o");
    assert_int_equal(sh->judge.deadline_ms, 1500);

    const struct cairn_shadow_config *t = &cfg.tenants[0].policy.experiment->shadow;
    assert_true(t->enabled);
    assert_ptr_not_equal(t->against, sh->against); /* a copy of its own */
    assert_string_equal(t->against, "b");
    assert_string_equal(t->judge.model, "gpt-4o");

    const struct cairn_shadow_config *d = &cfg.tenants[1].policy.experiment->shadow;
    assert_true(d->enabled);
    assert_true(d->sample == 0.05);
    assert_int_equal(d->max_in_flight, 4);
    assert_int_equal(d->daily_cap, 1000);
    assert_int_equal(d->deadline_ms, 60000);
    assert_int_equal(d->judge.deadline_ms, 30000);

    assert_false(cfg.tenants[2].policy.experiment->shadow.enabled);
    cairn_config_free(&cfg);
}

/* --- rejected files -------------------------------------------------------------- */

/* err must name the file and contain `want` (and `also`, if given). */
static const struct {
    const char *json, *want, *also;
} bad_files[] = {
    {"{", NAME, NULL},
    {"[]", NAME, NULL},
    {"{} {}", NAME, NULL},
    {"{'limits':{'body_bytes':2048,'body_bytes':4096}}", "limits.body_bytes", NULL},
    {"{'bogus':1}", "bogus", NULL},
    {"{'limits':{'bogus':1}}", "limits.bogus", NULL},
    {"{'upstream':{}}", "upstream", NULL},
    {"{'upstreams':{'default':{'x':1}}}", "upstreams.default.x", NULL},
    {"{'Limits':{}}", "Limits", NULL},
    {"{'limits':5}", "limits", NULL},
    {"{'limits':{'body_bytes':'10'}}", "limits.body_bytes", NULL},
    {"{'limits':{'body_bytes':0}}", "limits.body_bytes", NULL},
    {"{'timeouts':{'header_ms':-5}}", "timeouts.header_ms", NULL},
    {"{'limits':{'header_lines':100000}}", "limits.header_lines", NULL},
    {"{'listen':['localhost:80']}", "listen", NULL},
    {"{'listen':['1.2.3.4']}", "listen", NULL},
    {"{'listen':['1.2.3.4:70000']}", "listen", NULL},
    {"{'listen':['127.0.0.1:80',5]}", "listen", NULL},
    {"{'listen':'127.0.0.1:80'}", "listen", NULL},
    {"{'listen':[]}", "listen", NULL},
    {"{'admin':{'listen':['localhost:9090']}}", "admin.listen", NULL},
    {"{'upstreams':{'default':{'base_url':'ftp://example.com'}}}", "upstreams.default.base_url",
     NULL},
    {"{'upstreams':{'default':{'base_url':'api.openai.com/v1'}}}", "upstreams.default.base_url",
     NULL},
    {"{'upstreams':{'default':{'base_url':'https://u:p@api.example.com/v1'}}}",
     "upstreams.default.base_url", NULL},
    {"{'upstreams':{'default':{'base_url':'https://api.example.com/v1?x=1'}}}",
     "upstreams.default.base_url", NULL},
    {"{'upstreams':{'default':{'base_url':5}}}", "upstreams.default.base_url", NULL},
    {"{'upstreams':{'default':{'api_key_env':7}}}", "upstreams.default.api_key_env", NULL},
    {"{'log':{'access':[]}}", "log.access", NULL},
    {"{'log':{'content':''}}", "log.content", NULL},
    {"{'log':{'content':7}}", "log.content", NULL},

    /* named upstreams */
    {"{'upstreams':{}}", "upstreams", NULL},
    {"{'upstreams':[]}", "upstreams", NULL},
    {"{'upstreams':{'a':5},'policy':{'upstream':'a'}}", "upstreams.a", NULL},
    {"{'upstreams':{'main':{}}}", "policy.upstream", "default"},
    {"{'policy':{'upstream':'nope'}}", "policy.upstream", "nope"},
    {"{'policy':{'upstream':''}}", "policy.upstream", NULL},
    {"{'upstreams':{'':{}}}", "upstreams.:", NULL},
    {"{'upstreams':{'" NAME64 "x':{}}}", "upstreams." NAME64 "x", NULL},
    {"{'upstreams':{'a b':{}}}", "upstreams.a b", NULL},
    {"{'upstreams':{'x/y':{}}}", "upstreams.x/y", NULL},

    /* tenants */
    {"{'tenants':{'a':{}}}", "tenants", "auth"},
    {"{'auth':'open','tenants':{'a':{}}}", "tenants", "auth"},
    {"{'auth':'Keys'}", "auth", NULL},
    {"{'auth':'keys','tenants':[]}", "tenants", NULL},
    {"{'auth':'keys','tenants':{'a':5}}", "tenants.a", NULL},
    {"{'auth':'keys','tenants':{'':{}}}", "tenants.:", NULL},
    {"{'auth':'keys','tenants':{'" NAME64 "x':{}}}", "tenants." NAME64 "x", NULL},
    {"{'auth':'keys','tenants':{'a b':{}}}", "tenants.a b", NULL},
    {"{'auth':'keys','tenants':{'x/y':{}}}", "tenants.x/y", NULL},
    {"{'auth':'keys','tenants':{'a':{'bogus':1}}}", "tenants.a.bogus", NULL},
    {"{'auth':'keys','tenants':{'a':{'name':'a'}}}", "tenants.a.name", NULL},
    {"{'auth':'keys','tenants':{'a':{'disabled':1}}}", "tenants.a.disabled", NULL},
    {"{'auth':'keys','tenants':{'a':{'rate':{'burst':-1}}}}", "tenants.a.rate.burst", NULL},
    {"{'auth':'keys','tenants':{'a':{'markers':{'annotate':'all'}}}}", "tenants.a.markers.annotate",
     NULL},
    {"{'auth':'keys','tenants':{'a':{'upstream':'nope'}}}", "tenants.a.upstream", "nope"},
    {"{'auth':'keys','tenants':{'a':{'upstream':7}}}", "tenants.a.upstream", NULL},
    {"{'auth':'keys','tenants':{'a':{},'b':{'upstream':'nope'}}}", "tenants.b.upstream", NULL},

    /* experiments */
    {"{'policy':{'experiment':5}}", "policy.experiment", NULL},
    {"{'policy':{'experiment':{'arms':{'a':{}}}}}", "policy.experiment.name", NULL},
    {"{'policy':{'experiment':{'name':'e'}}}", "policy.experiment.arms", NULL},
    {"{'policy':{'experiment':{'name':'e','arms':{}}}}", "policy.experiment.arms", NULL},
    {"{'policy':{'experiment':{'name':'e','arms':[]}}}", "policy.experiment.arms", NULL},
    {"{'policy':{'experiment':{'name':'e','bogus':1,'arms':{'a':{}}}}}", "policy.experiment.bogus",
     NULL},
    {"{'policy':{'experiment':{'name':'e','unit':'cookie','arms':{'a':{}}}}}",
     "policy.experiment.unit", NULL},
    {"{'policy':{'experiment':{'name':'e','unit':'header','arms':{'a':{}}}}}",
     "policy.experiment.unit_header", NULL},
    {"{'policy':{'experiment':{'name':'e','arms':{'a b':{}}}}}", "policy.experiment.arms.a b",
     NULL},
    {"{'policy':{'experiment':{'name':'e','arms':{'a':5}}}}", "policy.experiment.arms.a", NULL},
    {"{'policy':{'experiment':{'name':'e','arms':{'a':{'weight':-1}}}}}",
     "policy.experiment.arms.a.weight", NULL},
    {"{'policy':{'experiment':{'name':'e','arms':{'a':{'weight':0},'b':{'weight':0}}}}}",
     "policy.experiment.arms", "weights"},
    {"{'policy':{'experiment':{'name':'e','arms':{'a':{'rate':{'burst':1}}}}}}",
     "policy.experiment.arms.a.rate", "not a key of an arm"},
    {"{'policy':{'experiment':{'name':'e','arms':{'a':{'models':[]}}}}}",
     "policy.experiment.arms.a.models", "not a key of an arm"},
    {"{'policy':{'experiment':{'name':'e','arms':{'a':{'experiment':null}}}}}",
     "policy.experiment.arms.a.experiment", "not a key of an arm"},
    {"{'policy':{'experiment':{'name':'e','arms':{'a':{'upstream':'nope'}}}}}",
     "policy.experiment.arms.a.upstream", "nope"},
    {"{'policy':{'experiment':{'name':'e','arms':{'a':{'markers':{'annotate':'all'}}}}}}",
     "policy.experiment.arms.a.markers.annotate", NULL},
    {"{'auth':'keys','tenants':{'t':{'experiment':{'name':'e','arms':{'m':"
     "{'markers':{'annotate':'model'}}}}}}}",
     "tenants.t.experiment.arms.m.annotator.upstream", NULL},

/* shadow judging */
#define SHADOW(x) "{'policy':{'experiment':{'name':'e','arms':{'a':{},'b':{}},'shadow':" x "}}}"
#define JUDGE     "'judge':{'upstream':'default','model':'j'}"
    {SHADOW("5"), "policy.experiment.shadow", "object"},
    {SHADOW("null"), "policy.experiment.shadow", "object"},
    {SHADOW("{" JUDGE "}"), "policy.experiment.shadow.against", NULL},
    {SHADOW("{'against':'zz'," JUDGE "}"), "policy.experiment.shadow.against", "zz"},
    {SHADOW("{'against':'a b'," JUDGE "}"), "policy.experiment.shadow.against", NULL},
    {SHADOW("{'against':'b','sample':1.5," JUDGE "}"), "policy.experiment.shadow.sample", NULL},
    {SHADOW("{'against':'b','sample':-0.1," JUDGE "}"), "policy.experiment.shadow.sample", NULL},
    {SHADOW("{'against':'b','sample':'all'," JUDGE "}"), "policy.experiment.shadow.sample", NULL},
    {SHADOW("{'against':'b','max_in_flight':0," JUDGE "}"),
     "policy.experiment.shadow.max_in_flight", NULL},
    {SHADOW("{'against':'b','max_in_flight':1001," JUDGE "}"),
     "policy.experiment.shadow.max_in_flight", NULL},
    {SHADOW("{'against':'b','max_in_flight':1.5," JUDGE "}"),
     "policy.experiment.shadow.max_in_flight", NULL},
    {SHADOW("{'against':'b','daily_cap':-1," JUDGE "}"), "policy.experiment.shadow.daily_cap",
     NULL},
    {SHADOW("{'against':'b','daily_cap':10000001," JUDGE "}"), "policy.experiment.shadow.daily_cap",
     NULL},
    {SHADOW("{'against':'b','deadline_ms':10," JUDGE "}"), "policy.experiment.shadow.deadline_ms",
     NULL},
    {SHADOW("{'against':'b','bogus':1," JUDGE "}"), "policy.experiment.shadow.bogus", NULL},
    {SHADOW("{'against':'b'}"), "policy.experiment.shadow.judge.upstream", NULL},
    {SHADOW("{'against':'b','judge':{'upstream':'default'}}"),
     "policy.experiment.shadow.judge.model", NULL},
    {SHADOW("{'against':'b','judge':{'upstream':'nope','model':'j'}}"),
     "policy.experiment.shadow.judge.upstream", "nope"},
    {SHADOW("{'against':'b','judge':{'upstream':'default','model':''}}"),
     "policy.experiment.shadow.judge.model", NULL},
    {SHADOW("{'against':'b','judge':{'upstream':'default','model':'j','deadline_ms':50}}"),
     "policy.experiment.shadow.judge.deadline_ms", NULL},
    {SHADOW("{'against':'b','judge':{'upstream':'default','model':'j','deadline_ms':600001}}"),
     "policy.experiment.shadow.judge.deadline_ms", NULL},
    {SHADOW("{'against':'b','judge':{'upstream':'default','model':'j','bogus':1}}"),
     "policy.experiment.shadow.judge.bogus", NULL},
    {"{'auth':'keys','tenants':{'t':{'experiment':{'name':'e','arms':{'a':{}},'shadow':"
     "{'against':'a','judge':{'upstream':'nope','model':'j'}}}}}}",
     "tenants.t.experiment.shadow.judge.upstream", "nope"},
    {"{'auth':'keys','tenants':{'t':{'experiment':{'name':'e','arms':{'a':{}},'shadow':"
     "{'against':'zz'," JUDGE "}}}}}",
     "tenants.t.experiment.shadow.against", "zz"},
#undef SHADOW
#undef JUDGE

    /* tenants' keys */
    {"{'auth':'keys','tenants':{'a':{'keys':{}}}}", "tenants.a.keys", NULL},
    {"{'auth':'keys','tenants':{'a':{'keys':['" SHA_ABC "']}}}", "tenants.a.keys[0]", NULL},
    {"{'auth':'keys','tenants':{'a':{'keys':[{'sha256':'" SHA_ABC_UC "'}]}}}",
     "tenants.a.keys[0].sha256", NULL},
    {"{'auth':'keys','tenants':{'a':{'keys':[{'sha256':'" SHA_ABC_63 "'}]}}}",
     "tenants.a.keys[0].sha256", NULL},
    {"{'auth':'keys','tenants':{'a':{'keys':[{'sha256':'" SHA_ABC "0'}]}}}",
     "tenants.a.keys[0].sha256", NULL},
    {"{'auth':'keys','tenants':{'a':{'keys':[{'sha256':'" SHA_ABC_NOT "'}]}}}",
     "tenants.a.keys[0].sha256", NULL},
    {"{'auth':'keys','tenants':{'a':{'keys':[{'sha256':7}]}}}", "tenants.a.keys[0].sha256", NULL},
    {"{'auth':'keys','tenants':{'a':{'keys':[{'sha256':null}]}}}", "tenants.a.keys[0].sha256",
     NULL},
    {"{'auth':'keys','tenants':{'a':{'keys':[{'label':'x'}]}}}", "tenants.a.keys[0]", "sha256"},
    {"{'auth':'keys','tenants':{'a':{'keys':[{}]}}}", "tenants.a.keys[0]", "sha256"},
    {"{'auth':'keys','tenants':{'a':{'keys':[{'sha256':'" SHA_ABC "','bogus':1}]}}}",
     "tenants.a.keys[0].bogus", NULL},
    {"{'auth':'keys','tenants':{'a':{'keys':[{'sha256':'" SHA_ABC "','label':''}]}}}",
     "tenants.a.keys[0].label", NULL},
    {"{'auth':'keys','tenants':{'a':{'keys':[{'sha256':'" SHA_ABC "','disabled':'no'}]}}}",
     "tenants.a.keys[0].disabled", NULL},
    {"{'auth':'keys','tenants':{'a':{'keys':[{'sha256':'" SHA_ABC "'},{'sha256':'x'}]}}}",
     "tenants.a.keys[1].sha256", NULL},
    {"{'auth':'keys','tenants':{'a':{'keys':[{'sha256':'" SHA_ABC "'}]},"
     "'b':{'keys':[{'sha256':'" SHA_B "'},{'sha256':'" SHA_ABC "'}]}}}",
     "tenants.b.keys[1]", "tenants.a.keys[0]"},
    {"{'auth':'keys','tenants':{'a':{'keys':[{'sha256':'" SHA_ABC "'},{'sha256':'" SHA_ABC
     "','disabled':true}]}}}",
     "tenants.a.keys[1]", "tenants.a.keys[0]"},

    /* policy */
    {"{'policy':{'rate':{'requests_per_second':-1}}}", "policy.rate.requests_per_second", NULL},
    {"{'policy':{'rate':{'burst':0.5}}}", "policy.rate.burst", NULL},
    {"{'policy':{'markers':{'bogus':true}}}", "policy.markers.bogus", NULL},
    {"{'policy':{'models':['a','']}}", "policy.models", NULL},
};

static void test_bad_files(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(bad_files); i++) {
        struct cairn_config cfg;
        char err[512];
        const char *row = bad_files[i].json;
        int r = load(&cfg, row, err, sizeof err);
        if (check(r == -1, row, "returned %d, want -1", r)) {
            check(strncmp(err, NAME ": ", strlen(NAME ": ")) == 0, row,
                  "err \"%s\" does not start with the file", err);
            check(strstr(err, bad_files[i].want) != NULL, row, "err \"%s\" lacks \"%s\"", err,
                  bad_files[i].want);
            if (bad_files[i].also)
                check(strstr(err, bad_files[i].also) != NULL, row, "err \"%s\" lacks \"%s\"", err,
                      bad_files[i].also);
        }
        cairn_config_free(&cfg);
    }
    rows_end();
}

/* --- tenants inherit the default policy ------------------------------------------- */

/* Whether two policies share any memory that each should own. */
static bool shares_memory(const void *a, const void *b, const struct field *f)
{
    const void *pa = (const char *)a + f->off, *pb = (const char *)b + f->off;
    switch (f->kind) {
    case K_STR: return *(char *const *)pa != NULL && *(char *const *)pa == *(char *const *)pb;
    case K_LIST: {
        const struct cairn_strlist *la = pa, *lb = pb;
        if (la->items != NULL && la->items == lb->items)
            return true;
        for (size_t i = 0; i < la->n && i < lb->n; i++)
            if (la->items[i] == lb->items[i])
                return true;
        return false;
    }
    case K_MAP: {
        const struct cairn_strmap *ma = pa, *mb = pb;
        if ((ma->keys != NULL && ma->keys == mb->keys) ||
            (ma->values != NULL && ma->values == mb->values))
            return true;
        for (size_t i = 0; i < ma->n && i < mb->n; i++)
            if (ma->keys[i] == mb->keys[i] || ma->values[i] == mb->values[i])
                return true;
        return false;
    }
    default: return false;
    }
}

/* Tenant "t" sets what the row says, tenant "u" nothing; the default
 * policy is the full table's (every member differs from the built-in
 * default, so what is inherited visibly comes from the file). */
static const struct {
    const char *row, *tenant;
    struct want wants[4]; /* keys below "policy." that differ from the default policy */
} inherits[] = {
    {"sets nothing", "{}", {{NULL, NULL}}},
    {"one member of markers and one of rate",
     "{'markers':{'annotate':'rules'},'rate':{'burst':3}}",
     {{"markers.annotate", "rules"}, {"rate.burst", "3"}}},
    {"markers.fixed is replaced as a whole",
     "{'markers':{'fixed':{'x':'1'}}}",
     {{"markers.fixed", "x=1"}}},
    {"an empty models list", "{'models':[]}", {{"models", ""}}},
    {"another upstream", "{'upstream':'other'}", {{"upstream", "other"}}},
    {"the rate, the pinning and the log",
     "{'rate':{'requests_per_second':0.5},'markers':{'allow_pinning':true},'log_content':false}",
     {{"rate.requests_per_second", "0.5"},
      {"markers.allow_pinning", "true"},
      {"log_content", "false"}}},
    {"disabled, with keys: not policy members",
     "{'disabled':true,'keys':[{'sha256':'" SHA_ABC "'}]}",
     {{NULL, NULL}}},
};

static const char *inherited_want(const struct want *wants, size_t n, const char *key)
{
    for (size_t i = 0; i < n && wants[i].key != NULL; i++)
        if (strcmp(wants[i].key, key) == 0)
            return wants[i].text;
    return NULL;
}

static void test_tenant_inherits(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(inherits); i++) {
        const char *row = inherits[i].row;
        cJSON *root = cJSON_CreateObject();
        for (size_t f = 0; f < NELEM(fields); f++) {
            if (fields[f].where != IN_POLICY)
                continue;
            char path[128];
            field_path(&fields[f], path, sizeof path);
            put_path(root, path, fields[f].json);
        }
        put_path(root, "auth", "'keys'");
        put_path(root, "upstreams.main", "{}");
        put_path(root, "upstreams.other", "{}");
        put_path(root, "tenants.t", inherits[i].tenant);
        put_path(root, "tenants.u", "{}");
        char *json = print_tree(root), err[512];
        struct cairn_config cfg;
        if (!check(load(&cfg, json, err, sizeof err) == 0, row, "rejected: %s", err)) {
            cairn_config_free(&cfg);
            free(json);
            continue;
        }
        const struct cairn_tenant_config *t = find_tenant(&cfg, "t"), *u = find_tenant(&cfg, "u");
        assert_non_null(t);
        assert_non_null(u);
        for (size_t f = 0; f < NELEM(fields); f++) {
            if (fields[f].where != IN_POLICY)
                continue;
            const char *key = fields[f].key;
            const char *want = inherited_want(inherits[i].wants, NELEM(inherits[i].wants), key);
            char def[1024], got[1024];
            field_text(&cfg.policy, &fields[f], def, sizeof def);
            check(strcmp(def, fields[f].want) == 0, row, "policy.%s = \"%s\", want \"%s\"", key,
                  def, fields[f].want);
            field_text(&t->policy, &fields[f], got, sizeof got);
            check(strcmp(got, want ? want : def) == 0, row, "tenants.t.%s = \"%s\", want \"%s\"",
                  key, got, want ? want : def);
            field_text(&u->policy, &fields[f], got, sizeof got);
            check(strcmp(got, def) == 0, row, "tenants.u.%s = \"%s\", want \"%s\"", key, got, def);
            check(!shares_memory(&t->policy, &cfg.policy, &fields[f]) &&
                      !shares_memory(&u->policy, &cfg.policy, &fields[f]) &&
                      !shares_memory(&t->policy, &u->policy, &fields[f]),
                  row, "%s: a tenant shares the memory of another policy", key);
        }
        cairn_config_free(&cfg);
        free(json);
    }
    rows_end();
}

/* --- setters --------------------------------------------------------------------- */

static void test_parse_listen(void **state)
{
    static const struct {
        const char *in, *host; /* host NULL: rejected */
        uint16_t port;
    } rows[] = {
        {"127.0.0.1:8080", "127.0.0.1", 8080},
        {"[::1]:0", "::1", 0},
        {"0.0.0.0:65535", "0.0.0.0", 65535},
        {"[::]:80", "::", 80},
        {"[2001:db8::1]:443", "2001:db8::1", 443},
        {"localhost:80", NULL, 0},
        {"1.2.3.4", NULL, 0},
        {"1.2.3.4:70000", NULL, 0},
        {"1.2.3.4:65536", NULL, 0},
        {"1.2.3.4:", NULL, 0},
        {"1.2.3.4:-1", NULL, 0},
        {"1.2.3.4:+80", NULL, 0},
        {"1.2.3.4:80x", NULL, 0},
        {"1.2.3.4: 80", NULL, 0},
        {"256.1.1.1:80", NULL, 0},
        {":80", NULL, 0},
        {"[::1]", NULL, 0},
        {"[::1]80", NULL, 0},
        {"[localhost]:80", NULL, 0},
        {"::1:80", NULL, 0},
        {"", NULL, 0},
    };
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct cairn_listen out;
        char err[256] = "";
        memset(&out, 0, sizeof out);
        int r = cairn_config_parse_listen(rows[i].in, &out, err, sizeof err);
        if (!rows[i].host) {
            check(r == -1 && err[0] != '\0', rows[i].in, "returned %d (err \"%s\")", r, err);
            continue;
        }
        if (check(r == 0, rows[i].in, "rejected: %s", err))
            check(strcmp(out.host, rows[i].host) == 0 && out.port == rows[i].port, rows[i].in,
                  "got %s port %u", out.host, out.port);
    }
    rows_end();
}

/* --upstream changes the upstream that the default policy names, and only
 * that one; a rejected URL changes nothing. */
static void test_set_base_url(void **state)
{
    static const struct {
        const char *in, *want; /* want NULL: rejected */
    } rows[] = {
        {"http://127.0.0.1:8081/v1", "http://127.0.0.1:8081/v1"},
        {"https://api.openai.com/v1/", "https://api.openai.com/v1"},
        {"http://a/", "http://a"},
        {"http://a", "http://a"},
        {"ftp://a/", NULL},
        {"api.openai.com/v1", NULL},
        {"", NULL},
        {"http://", NULL},
        {"https://", NULL},
        {"https:///", NULL},
        {"https://user:pw@a/v1", NULL},
        {"https://a/v1?x=1", NULL},
    };
    static const char *const files[] = {
        "{}",
        "{'upstreams':{'a':{'base_url':'http://a.example'},'b':{'base_url':'http://b.example'}},"
        "'policy':{'upstream':'b'}}",
    };
    (void)state;
    rows_begin();
    for (size_t f = 0; f < NELEM(files); f++) {
        for (size_t i = 0; i < NELEM(rows); i++) {
            struct cairn_config cfg;
            char err[256] = "", row[512];
            snprintf(row, sizeof row, "%s on %s", rows[i].in, files[f]);
            if (!check(load(&cfg, files[f], err, sizeof err) == 0, row, "rejected: %s", err)) {
                cairn_config_free(&cfg);
                continue;
            }
            const struct cairn_upstream_config *u =
                cairn_config_upstream(&cfg, cfg.policy.upstream);
            const struct cairn_upstream_config *a = cairn_config_upstream(&cfg, "a");
            char *keep = strdup(u->base_url);
            int r = cairn_config_set_base_url(&cfg, rows[i].in, err, sizeof err);
            if (rows[i].want)
                check(r == 0 && str_eq(u->base_url, rows[i].want), row,
                      "returned %d, base_url \"%s\" (err \"%s\")", r,
                      u->base_url ? u->base_url : "(null)", err);
            else
                check(r == -1 && err[0] && str_eq(u->base_url, keep), row,
                      "returned %d, base_url \"%s\"", r, u->base_url ? u->base_url : "(null)");
            if (a != NULL)
                check(str_eq(a->base_url, "http://a.example"), row, "upstream a changed to \"%s\"",
                      a->base_url);
            free(keep);
            cairn_config_free(&cfg);
        }
    }
    rows_end();
}

static void test_config_upstream(void **state)
{
    static const struct {
        const char *name;
        bool found;
    } rows[] = {
        {"a", true}, {"b", true}, {"default", false}, {"A", false}, {"", false}, {"ab", false},
    };
    (void)state;
    struct cairn_config cfg;
    char err[256];
    rows_begin();
    assert_int_equal(
        load(&cfg, "{'upstreams':{'a':{},'b':{}},'policy':{'upstream':'a'}}", err, sizeof err), 0);
    for (size_t i = 0; i < NELEM(rows); i++) {
        const struct cairn_upstream_config *u = cairn_config_upstream(&cfg, rows[i].name);
        if (rows[i].found)
            check(u != NULL && str_eq(u->name, rows[i].name), rows[i].name, "not found");
        else
            check(u == NULL, rows[i].name, "found \"%s\"", u ? u->name : "");
    }
    cairn_config_free(&cfg);
    rows_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_is_defaults),
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_example_file),
        cmocka_unit_test(test_bad_values_every_key),
        cmocka_unit_test(test_good_files),
        cmocka_unit_test(test_experiment_arms),
        cmocka_unit_test(test_experiment_shadow),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_tenant_inherits),
        cmocka_unit_test(test_parse_listen),
        cmocka_unit_test(test_set_base_url),
        cmocka_unit_test(test_config_upstream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
