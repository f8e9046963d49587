/*
 * shm.c — the shared region (see shm.h).
 *
 * Layout: the configuration slot, the limiter zone, then one arena per
 * worker. The
 * mapping is MAP_SHARED | MAP_ANONYMOUS, so it is inherited across fork()
 * and gone with the last process; MAP_NORESERVE, so the generous arena
 * size costs address space, not memory, until it is used.
 *
 * Arena size: a metric family holds at most 4096 series (metrics.h), each
 * at most about 700 bytes with its label values and histogram buckets,
 * plus the growth of its arrays; cairn has a few dozen families, so 128 MiB
 * holds the worst case with room to spare.
 */
#include "shm.h"

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "config.h"

#define ARENA_BYTES   ((size_t)128 << 20)
#define LIMITER_BYTES ((size_t)16 << 20)
#define CONFIG_BYTES  (sizeof(struct config_slot) + CAIRN_CONFIG_MAX_BYTES)
#define ARENA_ALIGN   16

struct cairn_arena {
    size_t size; /* of data[] */
    size_t used; /* only the owning worker moves it */
    void *root;  /* published with release, read with acquire */
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

/* The master writes it while workers may read it: a sequence count that
 * is odd while a write is under way, so that a reader that saw it change
 * (or odd) reads again. */
struct config_slot {
    unsigned long seq;
    size_t len;
    char text[];
};

struct cairn_shared {
    size_t bytes; /* of the whole mapping */
    unsigned nworkers;
    struct config_slot *config;
    unsigned char *limiters;
    struct cairn_arena *arenas[]; /* nworkers; the headers live in the mapping */
};

struct cairn_shared *cairn_shared_new(unsigned nworkers, char *err, size_t errlen)
{
    size_t bytes = CONFIG_BYTES + LIMITER_BYTES + (size_t)nworkers * ARENA_BYTES;
    unsigned char *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) {
        snprintf(err, errlen, "cannot map %zu MiB of shared memory: %s", bytes >> 20,
                 strerror(errno));
        return NULL;
    }
    struct cairn_shared *s = calloc(1, sizeof(*s) + nworkers * sizeof(s->arenas[0]));
    if (s == NULL) {
        munmap(map, bytes);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->bytes = bytes;
    s->nworkers = nworkers;
    s->config = (void *)map;
    s->limiters = map + CONFIG_BYTES;
    for (unsigned i = 0; i < nworkers; i++) {
        struct cairn_arena *a = (void *)(s->limiters + LIMITER_BYTES + (size_t)i * ARENA_BYTES);
        a->size = ARENA_BYTES - sizeof(*a);
        s->arenas[i] = a;
    }
    return s;
}

void cairn_shared_free(struct cairn_shared *s)
{
    if (s == NULL)
        return;
    munmap(s->config, s->bytes);
    free(s);
}

struct cairn_arena *cairn_shared_arena(struct cairn_shared *s, unsigned worker)
{
    return s->arenas[worker];
}

void cairn_shared_set_config(struct cairn_shared *s, const char *text, size_t len)
{
    struct config_slot *c = s->config;
    __atomic_store_n(&c->seq, c->seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(c->text, text, len);
    c->len = len;
    __atomic_store_n(&c->seq, c->seq + 1, __ATOMIC_RELEASE);
}

char *cairn_shared_config(struct cairn_shared *s, size_t *len, unsigned long *version)
{
    const struct config_slot *c = s->config;
    char *copy = NULL;
    for (;;) {
        unsigned long seq = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
        if (seq % 2 == 0) {
            size_t n = c->len < CAIRN_CONFIG_MAX_BYTES ? c->len : CAIRN_CONFIG_MAX_BYTES;
            copy = realloc(copy, n + 1);
            if (copy == NULL) {
                fprintf(stderr, "cairn: out of memory\n");
                abort();
            }
            memcpy(copy, c->text, n);
            copy[n] = '\0';
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(&c->seq, __ATOMIC_RELAXED) == seq) {
                *len = n;
                *version = seq / 2;
                return copy;
            }
        }
        sched_yield();
    }
}

void *cairn_shared_limiters(struct cairn_shared *s, size_t *size)
{
    *size = LIMITER_BYTES;
    return s->limiters;
}

void *cairn_arena_alloc(struct cairn_arena *a, size_t n)
{
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < n || need > a->size - a->used) {
        fprintf(stderr, "cairn: shared metrics arena exhausted (%zu bytes)\n", a->size);
        abort();
    }
    void *p = a->data + a->used;
    a->used += need;
    return p; /* the mapping starts zeroed and nothing is ever freed */
}

void *cairn_arena_root(const struct cairn_arena *a)
{
    return __atomic_load_n(&a->root, __ATOMIC_ACQUIRE);
}

void cairn_arena_set_root(struct cairn_arena *a, void *root)
{
    __atomic_store_n(&a->root, root, __ATOMIC_RELEASE);
}
