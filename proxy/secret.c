/*
 * secret.c — secrets in memory left out of core dumps (see secret.h).
 *
 * Each secret allocation is its own anonymous mapping: a header page-aligned
 * at its start records the mapping's size, the pages are marked
 * MADV_DONTDUMP (the kernel's core writer and gdb's gcore both skip them)
 * and, where RLIMIT_MEMLOCK allows, mlock'd so they are never written to
 * swap either. There are a handful of them (one per environment variable
 * read, one per upstream endpoint), so a page each costs nothing.
 *
 * The mappings are private: a forked worker gets its own copy, which keeps
 * the DONTDUMP mark (it belongs to the mapping) but not the lock.
 *
 * What a core taken at the wrong moment can still hold: a request being
 * handled (its head until the key is checked; curl's request buffer
 * between being built and sent), vector registers (saved in the core's
 * register notes, or by a signal frame onto the stack) that last held key
 * bytes, and for an https upstream OpenSSL's record buffer, where the
 * request is encrypted in place. test_secrets.py checks cores taken
 * between requests.
 */
#include "secret.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* At the start of every mapping; the caller's bytes follow it. */
struct secret_header {
    size_t mapped; /* bytes mapped, header included */
    size_t pad;    /* keeps the caller's bytes 16-byte aligned */
};

void *cairn_secret_alloc(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t mapped = (sizeof(struct secret_header) + n + page - 1) / page * page;
    void *p = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "cairn: out of memory mapping %zu bytes for a secret\n", mapped);
        abort();
    }
    if (madvise(p, mapped, MADV_DONTDUMP) != 0) {
        /* Holding the key where a core would show it is what this is for. */
        fprintf(stderr, "cairn: madvise(MADV_DONTDUMP) failed for a secret\n");
        abort();
    }
    (void)mlock(p, mapped); /* best effort: the limit may be 0 */
    struct secret_header *h = p;
    h->mapped = mapped;
    return h + 1;
}

void cairn_secret_free(void *p)
{
    if (p == NULL)
        return;
    struct secret_header *h = (struct secret_header *)p - 1;
    size_t mapped = h->mapped;
    explicit_bzero(h, mapped);
    munlock(h, mapped);
    munmap(h, mapped);
}

/* --- the environment ------------------------------------------------------ */

/* One variable moved out of the environment; the whole node is one secret
 * allocation, name and value included. */
struct env_secret {
    struct env_secret *next;
    const char *name;
    const char *value;
};

static struct env_secret *env_secrets;

/* The entry "name=value" of environ for `name`, or NULL. Byte by byte on
 * purpose, here and in cairn_secret_env: glibc's getenv, strlen and memcpy
 * load 32 bytes at a time into vector registers, and a register holding the
 * key is later saved onto the stack (by lazy symbol binding in a library,
 * or a signal frame), where a core finds it. */
static volatile char *env_entry(const char *name)
{
    extern char **environ;
    for (char **ep = environ; ep != NULL && *ep != NULL; ep++) {
        volatile char *e = *ep;
        size_t i = 0;
        while (name[i] != '\0' && e[i] == name[i])
            i++;
        if (name[i] == '\0' && e[i] == '=')
            return e + i + 1;
    }
    return NULL;
}

const char *cairn_secret_env(const char *name)
{
    for (const struct env_secret *s = env_secrets; s != NULL; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s->value;
    volatile char *value = env_entry(name);
    if (value == NULL)
        return NULL;
    size_t nlen = strlen(name), vlen = 0;
    while (value[vlen] != '\0')
        vlen++;
    struct env_secret *s = cairn_secret_alloc(sizeof(*s) + nlen + 1 + vlen + 1);
    char *copy = (char *)(s + 1);
    memcpy(copy, name, nlen + 1);
    volatile char *v = copy + nlen + 1;
    for (size_t i = 0; i < vlen; i++) {
        v[i] = value[i];
        value[i] = '\0'; /* where the kernel or setenv put it: wiped */
    }
    s->name = copy;
    s->value = copy + nlen + 1;
    s->next = env_secrets;
    env_secrets = s;
    unsetenv(name);
    return s->value;
}

/* noinline: the area must lie below the caller's frame, not in it. */
__attribute__((noinline)) void cairn_secret_wipe_stack(void)
{
    char area[64 * 1024];
    explicit_bzero(area, sizeof(area));
}

/* --- wiping allocators for libraries -------------------------------------- */

void cairn_scrub_free(void *p)
{
    if (p == NULL)
        return;
    explicit_bzero(p, malloc_usable_size(p));
    free(p);
}

/* realloc would free a moved block without wiping it: move it ourselves. */
void *cairn_scrub_realloc(void *p, size_t n)
{
    if (p == NULL)
        return malloc(n);
    size_t have = malloc_usable_size(p);
    if (n <= have && n > 0)
        return p;
    void *q = malloc(n ? n : 1);
    if (q == NULL)
        return NULL;
    memcpy(q, p, have < n ? have : n);
    cairn_scrub_free(p);
    return q;
}
