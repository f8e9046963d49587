/*
 * test_config.c — unit tests for include/config.h.
 *
 * cairn_config_load_buffer ("t.json"): "{}" equals cairn_config_defaults; a
 * full file sets every field (the file is generated from the field tables
 * below); unknown keys, wrong types, out-of-range and non-integral numbers
 * are errors naming the file and the dotted key; listen entries and
 * upstream.base_url are validated. cairn_config_parse_listen and
 * cairn_config_set_base_url directly; cairn_config_load_file on a real
 * temporary file and on a missing path. Every config is released with
 * cairn_config_free, successful or not (the tests also run under ASan).
 */
#include "unit.h"

#include <unistd.h>

#include "config.h"

#define NAME "t.json"

/* Every integer field: its dotted key, where it lives, the value the full
 * test file gives it (all differ from the defaults). */
struct int_field {
    const char *key;
    size_t off;
    int64_t full;
};

#define INT_FIELD(key, field, full) {key, offsetof(struct cairn_config, field), full}

static const struct int_field int_fields[] = {
    INT_FIELD("limits.max_connections", limits.max_connections, 100),
    INT_FIELD("limits.header_bytes", limits.header_bytes, 8192),
    INT_FIELD("limits.header_lines", limits.header_lines, 50),
    INT_FIELD("limits.body_bytes", limits.body_bytes, 1048576),
    INT_FIELD("limits.json_depth", limits.json_depth, 32),
    INT_FIELD("limits.stream_buffer_bytes", limits.stream_buffer_bytes, 65536),
    INT_FIELD("timeouts.header_ms", timeouts.header_ms, 5000),
    INT_FIELD("timeouts.body_idle_ms", timeouts.body_idle_ms, 6000),
    INT_FIELD("timeouts.keepalive_ms", timeouts.keepalive_ms, 7000),
    INT_FIELD("timeouts.send_idle_ms", timeouts.send_idle_ms, 8000),
    INT_FIELD("timeouts.drain_ms", timeouts.drain_ms, 9000),
    INT_FIELD("upstream.connect_timeout_ms", upstream.connect_timeout_ms, 1000),
    INT_FIELD("upstream.first_byte_timeout_ms", upstream.first_byte_timeout_ms, 2000),
    INT_FIELD("upstream.idle_timeout_ms", upstream.idle_timeout_ms, 3000),
    INT_FIELD("upstream.max_response_bytes", upstream.max_response_bytes, 2097152),
};

struct str_field {
    const char *key;
    size_t off;
    const char *json; /* as written in the full file */
    const char *full; /* the value expected after loading */
};

#define STR_FIELD(key, field, json, full) {key, offsetof(struct cairn_config, field), json, full}

static const struct str_field str_fields[] = {
    STR_FIELD("upstream.base_url", upstream.base_url, "\"https://api.example.com/v1/\"",
              "https://api.example.com/v1"),
    STR_FIELD("upstream.api_key_env", upstream.api_key_env, "\"MY_KEY\"", "MY_KEY"),
    STR_FIELD("upstream.ca_file", upstream.ca_file, "\"/etc/ssl/x.pem\"", "/etc/ssl/x.pem"),
    STR_FIELD("log.access", log.access, "\"/tmp/cairn-access.log\"", "/tmp/cairn-access.log"),
};

static int64_t int_at(const struct cairn_config *cfg, size_t off)
{
    return *(const int64_t *)((const char *)cfg + off);
}

static const char *str_at(const struct cairn_config *cfg, size_t off)
{
    return *(char *const *)((const char *)cfg + off);
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static int load(struct cairn_config *cfg, const char *json, char *err, size_t errlen)
{
    size_t len = strlen(json);
    char *copy = dup_exact(json, len);
    memset(cfg, 0, sizeof *cfg);
    err[0] = '\0';
    int r = cairn_config_load_buffer(cfg, NAME, copy, len, err, errlen);
    free(copy);
    return r;
}

/* The member name of `key` if it belongs to `section` ("limits.x" -> "x"). */
static const char *member_of(const char *key, const char *section)
{
    size_t n = strlen(section);
    return strncmp(key, section, n) == 0 && key[n] == '.' ? key + n + 1 : NULL;
}

static void put_member(struct sbuf *b, const char *name, const char *value)
{
    if (b->p[b->len - 1] != '{')
        sb_puts(b, ",");
    sb_puts(b, "\"");
    sb_puts(b, name);
    sb_puts(b, "\":");
    sb_puts(b, value);
}

/* The full test file: every key of the tables, grouped by section. */
static char *full_config(void)
{
    static const char *const sections[] = {"limits", "timeouts", "upstream", "log"};
    struct sbuf b = {0};
    sb_puts(&b, "{");
    put_member(&b, "listen", "[\"127.0.0.1:0\",\"[::1]:9090\"]");
    for (size_t s = 0; s < NELEM(sections); s++) {
        const char *m;
        char num[32];
        put_member(&b, sections[s], "{");
        for (size_t i = 0; i < NELEM(int_fields); i++) {
            if ((m = member_of(int_fields[i].key, sections[s])) == NULL)
                continue;
            snprintf(num, sizeof num, "%lld", (long long)int_fields[i].full);
            put_member(&b, m, num);
        }
        for (size_t i = 0; i < NELEM(str_fields); i++)
            if ((m = member_of(str_fields[i].key, sections[s])) != NULL)
                put_member(&b, m, str_fields[i].json);
        sb_puts(&b, "}");
    }
    sb_puts(&b, "}");
    return b.p;
}

static void check_full(const struct cairn_config *cfg, const char *row)
{
    for (size_t i = 0; i < NELEM(int_fields); i++)
        check(int_at(cfg, int_fields[i].off) == int_fields[i].full, row, "%s = %lld, want %lld",
              int_fields[i].key, (long long)int_at(cfg, int_fields[i].off),
              (long long)int_fields[i].full);
    for (size_t i = 0; i < NELEM(str_fields); i++)
        check(str_eq(str_at(cfg, str_fields[i].off), str_fields[i].full), row,
              "%s = \"%s\", want \"%s\"", str_fields[i].key,
              str_at(cfg, str_fields[i].off) ? str_at(cfg, str_fields[i].off) : "(null)",
              str_fields[i].full);
    if (check(cfg->nlisten == 2 && cfg->listen, row, "nlisten %zu", cfg->nlisten)) {
        check(strcmp(cfg->listen[0].host, "127.0.0.1") == 0 && cfg->listen[0].port == 0, row,
              "listen[0] %s:%u", cfg->listen[0].host, cfg->listen[0].port);
        check(strcmp(cfg->listen[1].host, "::1") == 0 && cfg->listen[1].port == 9090, row,
              "listen[1] %s:%u", cfg->listen[1].host, cfg->listen[1].port);
    }
}

static void test_empty_is_defaults(void **state)
{
    (void)state;
    struct cairn_config cfg, def;
    char err[256];
    rows_begin();
    assert_int_equal(load(&cfg, "{}", err, sizeof err), 0);
    cairn_config_defaults(&def);
    for (size_t i = 0; i < NELEM(int_fields); i++)
        check(int_at(&cfg, int_fields[i].off) == int_at(&def, int_fields[i].off),
              int_fields[i].key, "%lld, default %lld", (long long)int_at(&cfg, int_fields[i].off),
              (long long)int_at(&def, int_fields[i].off));
    for (size_t i = 0; i < NELEM(str_fields); i++)
        check(str_eq(str_at(&cfg, str_fields[i].off), str_at(&def, str_fields[i].off)),
              str_fields[i].key, "differs from the default");
    check(cfg.nlisten == def.nlisten && cfg.nlisten > 0 &&
              memcmp(cfg.listen, def.listen, cfg.nlisten * sizeof *cfg.listen) == 0,
          "listen", "differs from the default");
    check(str_eq(cfg.path, NAME), "path", "\"%s\"", cfg.path ? cfg.path : "(null)");
    cairn_config_free(&cfg);
    cairn_config_free(&def);
    rows_end();
}

static void test_full_config(void **state)
{
    (void)state;
    struct cairn_config cfg;
    char err[256], *json = full_config();
    rows_begin();
    if (check(load(&cfg, json, err, sizeof err) == 0, "full config", "rejected: %s", err))
        check_full(&cfg, "full config");
    cairn_config_free(&cfg);
    free(json);
    rows_end();
}

static void test_load_file(void **state)
{
    (void)state;
    struct cairn_config cfg;
    char err[512], path[] = "/tmp/cairn-test-config-XXXXXX", *json = full_config();
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
    check(cairn_config_load_file(&cfg, missing, err, sizeof err) == -1, "missing file",
          "loaded");
    check(strstr(err, missing) != NULL, "missing file", "err \"%s\" lacks the path", err);
    cairn_config_free(&cfg);
    rows_end();
}

/* Rejected files: err must name the file and contain `want`. */
static const struct {
    const char *json, *want;
} bad_files[] = {
    {"{", NAME},
    {"[]", NAME},
    {"{} {}", NAME},
    {"{\"limits\":{\"body_bytes\":2048,\"body_bytes\":4096}}", NAME},
    {"{\"bogus\":1}", "bogus"},
    {"{\"limits\":{\"bogus\":1}}", "limits.bogus"},
    {"{\"upstream\":{\"x\":{}}}", "upstream.x"},
    {"{\"Limits\":{}}", "Limits"},
    {"{\"limits\":5}", "limits"},
    {"{\"limits\":{\"body_bytes\":\"10\"}}", "limits.body_bytes"},
    {"{\"limits\":{\"body_bytes\":0}}", "limits.body_bytes"},
    {"{\"timeouts\":{\"header_ms\":-5}}", "timeouts.header_ms"},
    {"{\"limits\":{\"header_lines\":100000}}", "limits.header_lines"},
    {"{\"listen\":[\"localhost:80\"]}", "listen"},
    {"{\"listen\":[\"1.2.3.4\"]}", "listen"},
    {"{\"listen\":[\"1.2.3.4:70000\"]}", "listen"},
    {"{\"listen\":[\"127.0.0.1:80\",5]}", "listen"},
    {"{\"listen\":\"127.0.0.1:80\"}", "listen"},
    {"{\"upstream\":{\"base_url\":\"ftp://example.com\"}}", "upstream.base_url"},
    {"{\"upstream\":{\"base_url\":\"api.openai.com/v1\"}}", "upstream.base_url"},
    {"{\"upstream\":{\"base_url\":5}}", "upstream.base_url"},
    {"{\"upstream\":{\"api_key_env\":7}}", "upstream.api_key_env"},
    {"{\"log\":{\"access\":[]}}", "log.access"},
};

static void test_bad_files(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(bad_files); i++) {
        struct cairn_config cfg;
        char err[512];
        int r = load(&cfg, bad_files[i].json, err, sizeof err);
        if (check(r == -1, bad_files[i].json, "returned %d, want -1", r)) {
            check(strstr(err, NAME) != NULL, bad_files[i].json, "err \"%s\" lacks the file", err);
            check(strstr(err, bad_files[i].want) != NULL, bad_files[i].json,
                  "err \"%s\" lacks \"%s\"", err, bad_files[i].want);
        }
        cairn_config_free(&cfg);
    }
    rows_end();
}

/* Every integer key refuses values of the wrong type or out of any sane
 * range, and says which key. */
static void test_bad_numbers_every_key(void **state)
{
    static const char *const bad[] = {"\"1\"", "-1", "1.5", "1e400", "1e18", "true", "null"};
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(int_fields); i++) {
        const char *key = int_fields[i].key, *dot = strchr(key, '.');
        for (size_t v = 0; v < NELEM(bad); v++) {
            struct cairn_config cfg;
            char json[256], err[512];
            snprintf(json, sizeof json, "{\"%.*s\":{\"%s\":%s}}", (int)(dot - key), key, dot + 1,
                     bad[v]);
            int r = load(&cfg, json, err, sizeof err);
            if (check(r == -1, json, "accepted"))
                check(strstr(err, NAME) && strstr(err, key), json, "err \"%s\" lacks the key", err);
            cairn_config_free(&cfg);
        }
    }
    rows_end();
}

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
    };
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct cairn_config cfg;
        char err[256] = "";
        cairn_config_defaults(&cfg);
        const char *before = cfg.upstream.base_url;
        char *keep = before ? strdup(before) : NULL;
        int r = cairn_config_set_base_url(&cfg, rows[i].in, err, sizeof err);
        if (rows[i].want)
            check(r == 0 && str_eq(cfg.upstream.base_url, rows[i].want), rows[i].in,
                  "returned %d, base_url \"%s\" (err \"%s\")", r,
                  cfg.upstream.base_url ? cfg.upstream.base_url : "(null)", err);
        else
            check(r == -1 && err[0] && str_eq(cfg.upstream.base_url, keep), rows[i].in,
                  "returned %d, base_url \"%s\"", r,
                  cfg.upstream.base_url ? cfg.upstream.base_url : "(null)");
        free(keep);
        cairn_config_free(&cfg);
    }
    rows_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_is_defaults),
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bad_numbers_every_key),
        cmocka_unit_test(test_parse_listen),
        cmocka_unit_test(test_set_base_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
