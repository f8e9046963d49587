/*
 * alloc.c — allocation wrappers that abort on exhaustion (see alloc.h).
 */
#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(size_t n)
{
    fprintf(stderr, "cairn: out of memory allocating %zu bytes\n", n);
    abort();
}

void *cairn_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        out_of_memory(n);
    return p;
}

void *cairn_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        out_of_memory(count * size);
    return p;
}

void *cairn_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        out_of_memory(n);
    return q;
}

void *cairn_aligned_alloc(size_t align, size_t n)
{
    void *p = aligned_alloc(align, n ? n : align);
    if (p == NULL)
        out_of_memory(n);
    return p;
}

char *cairn_strndup(const char *s, size_t n)
{
    char *p = cairn_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *cairn_strdup(const char *s)
{
    return cairn_strndup(s, strlen(s));
}

void cairn_buf_put(struct cairn_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2 + 64;
        b->p = cairn_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void cairn_buf_puts(struct cairn_buf *b, const char *s)
{
    cairn_buf_put(b, s, strlen(s));
}
