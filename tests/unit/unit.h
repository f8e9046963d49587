/*
 * unit.h — small helpers shared by the cmocka unit tests.
 *
 * Table-driven tests run every row even when one fails: check() prints the
 * failing row and counts it, and the test asserts the count is zero at the
 * end, so one run lists every broken case instead of stopping at the first.
 * dup_exact() places parser input at the very end of its own heap block so
 * that AddressSanitizer reports any read past the input (the picohttpparser
 * guard-page idea, without mprotect). The rules fixtures serve the tests of
 * a module compiled from rules/ (the annotator, the validator): the shipped
 * rules as a group fixture, and load errors run against a copy of rules/
 * with one file patched.
 */
#ifndef CAIRN_TEST_UNIT_H
#define CAIRN_TEST_UNIT_H

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "taxonomy.h"

/* A string literal and its length (may contain NUL bytes). */
#define LIT(s) s, (sizeof(s) - 1)

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int unit_failures;

__attribute__((format(printf, 3, 4))) static inline bool check(bool ok, const char *row,
                                                               const char *fmt, ...)
{
    if (ok)
        return true;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    print_error("    [%s] %s\n", row, msg);
    unit_failures++;
    return false;
}

/* Start a table-driven test / end it, failing if any row failed. */
static inline void rows_begin(void)
{
    unit_failures = 0;
}

static inline void rows_end(void)
{
    if (unit_failures)
        fail_msg("%d check(s) failed, listed above", unit_failures);
}

/* A copy of s[0..n) that fills a malloc'd block of exactly n bytes. */
static inline char *dup_exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    if (n)
        memcpy(p, s, n);
    return p;
}

/* A growable string for building inputs (nested JSON, long lines). */
struct sbuf {
    char *p;
    size_t len, cap;
};

static inline void sb_putn(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static inline void sb_puts(struct sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

static inline void sb_repeat(struct sbuf *b, const char *s, size_t times)
{
    for (size_t i = 0; i < times; i++)
        sb_puts(b, s);
}

/* A whole file as a malloc'd string. */
static inline char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    struct sbuf b = {0};
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sb_putn(&b, buf, n);
    fclose(f);
    return b.p;
}

/* ---- rules fixtures ---------------------------------------------------- */

#define UNIT_RULES "rules"

/* How a test file loads and frees the module it tests from a rules
 * directory (wrappers around its _load and _free). */
struct unit_module {
    void *(*load)(const struct cairn_taxonomy *tx, const char *rules_dir, char *err, size_t errlen);
    void (*free)(void *module);
};

/* Group setup: rules/taxonomy.json into `tx`, then the module from rules/.
 * @return the module, or NULL having printed why. */
static inline void *unit_rules_setup(struct cairn_taxonomy *tx, const struct unit_module *m)
{
    char err[512];
    if (cairn_taxonomy_load(tx, UNIT_RULES "/taxonomy.json", err, sizeof(err)) < 0) {
        print_error("%s\n", err);
        return NULL;
    }
    void *module = m->load(tx, UNIT_RULES, err, sizeof(err));
    if (module == NULL)
        print_error("%s\n", err);
    return module;
}

static inline void unit_rules_teardown(struct cairn_taxonomy *tx, const struct unit_module *m,
                                       void *module)
{
    m->free(module);
    cairn_taxonomy_free(tx);
}

static inline void unit_copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

/* A copy of every file of rules/ in a new directory `dir`. */
static inline void unit_rules_copy(char dir[64])
{
    snprintf(dir, 64, "/tmp/cairn-rules-XXXXXX");
    assert_non_null(mkdtemp(dir));
    DIR *d = opendir(UNIT_RULES);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char from[512], to[512];
        struct stat st;
        snprintf(from, sizeof(from), UNIT_RULES "/%s", e->d_name);
        if (stat(from, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        snprintf(to, sizeof(to), "%s/%s", dir, e->d_name);
        unit_copy_file(from, to);
    }
    closedir(d);
}

static inline void unit_rules_remove(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char path[512];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Replace the first `from` in dir/file with `to`. */
static inline void unit_rules_patch(const char *dir, const char *file, const char *from,
                                    const char *to)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    char *text = slurp(path);
    char *at = strstr(text, from);
    assert_non_null(at);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(text, 1, (size_t)(at - text), f);
    fputs(to, f);
    fputs(at + strlen(from), f);
    fclose(f);
    free(text);
}

/* A row of a load-error table: in a copy of rules/, the first `from` in
 * `file` becomes `to`, and loading must fail with an error holding `want1`
 * and, unless NULL, `want2`. */
struct unit_load_case {
    const char *name;
    const char *file, *from, *to;
    const char *want1, *want2;
};

/* Every row against a fresh copy of rules/ with its one patch, then the
 * unpatched copy, which must load: the rows fail for their patch alone. */
static inline void unit_load_errors(const struct cairn_taxonomy *tx, const struct unit_module *m,
                                    const struct unit_load_case *cases, size_t n)
{
    char dir[64];
    rows_begin();
    for (size_t i = 0; i < n; i++) {
        unit_rules_copy(dir);
        unit_rules_patch(dir, cases[i].file, cases[i].from, cases[i].to);
        char err[512] = "";
        void *module = m->load(tx, dir, err, sizeof(err));
        if (check(module == NULL, cases[i].name, "loaded although %s was broken", cases[i].file)) {
            check(strstr(err, cases[i].want1) != NULL, cases[i].name, "error \"%s\" lacks \"%s\"",
                  err, cases[i].want1);
            check(cases[i].want2 == NULL || strstr(err, cases[i].want2) != NULL, cases[i].name,
                  "error \"%s\" lacks \"%s\"", err, cases[i].want2);
        }
        m->free(module);
        unit_rules_remove(dir);
    }
    rows_end();

    unit_rules_copy(dir);
    char err[512];
    void *module = m->load(tx, dir, err, sizeof(err));
    assert_non_null(module);
    m->free(module);
    unit_rules_remove(dir);
}

#endif
