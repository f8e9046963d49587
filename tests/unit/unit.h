/*
 * unit.h — small helpers shared by the cmocka unit tests.
 *
 * Table-driven tests run every row even when one fails: check() prints the
 * failing row and counts it, and the test asserts the count is zero at the
 * end, so one run lists every broken case instead of stopping at the first.
 * dup_exact() places parser input at the very end of its own heap block so
 * that AddressSanitizer reports any read past the input (the picohttpparser
 * guard-page idea, without mprotect).
 */
#ifndef CAIRN_TEST_UNIT_H
#define CAIRN_TEST_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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

#endif
