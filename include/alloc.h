/*
 * alloc.h — allocation wrappers. Running out of memory in a proxy leaves no
 * sane way to continue a request, so these abort with a message instead of
 * returning NULL to code that would then have to invent a recovery.
 */
#ifndef CAIRN_ALLOC_H
#define CAIRN_ALLOC_H

#include <stddef.h>

void *cairn_malloc(size_t n);
void *cairn_calloc(size_t count, size_t size);
void *cairn_realloc(void *p, size_t n);
/** n bytes aligned to `align` (a power of two that divides n); free() frees. */
void *cairn_aligned_alloc(size_t align, size_t n);
char *cairn_strdup(const char *s);
char *cairn_strndup(const char *s, size_t n);

/* A growable, NUL-terminated text; {0} is an empty one. The caller frees p. */
struct cairn_buf {
    char *p;
    size_t len, cap;
};

/** Append s[0..n). */
void cairn_buf_put(struct cairn_buf *b, const char *s, size_t n);
/** Append the string s. */
void cairn_buf_puts(struct cairn_buf *b, const char *s);

#endif
