/*
 * ratelimit.c — token bucket and in-flight count (see ratelimit.h).
 *
 * The bucket is refilled lazily from the time of the last admission, so an
 * idle tenant costs nothing. A request refused for concurrency does not
 * take a token, and one refused for rate does not count as in flight.
 *
 * Under a master, a tenant's state lives in the shared zone, found by the
 * tenant's name, so every worker draws from one bucket. Each state has a
 * spin lock held for a few arithmetic operations (no system call, no
 * allocation); it holds the pid of its holder, so that the master can
 * release a lock whose worker died holding it. In-flight requests are
 * counted per worker (atomically: a release takes no lock), so that those
 * of a dead worker can be forgotten.
 * Time is CLOCK_MONOTONIC, the same in every process.
 */
#include "ratelimit.h"

#include <math.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"

struct bucket {
    char name[CAIRN_NAME_MAX + 1]; /* "" = a free slot of the zone */
    int lock;                      /* 0, or the pid of the holder */
    double tokens;                 /* may be fractional */
    uint64_t last_us;              /* when `tokens` was last brought up to date */
    bool started;                  /* the bucket has been filled once */
    int64_t inflight[CAIRN_MAX_WORKERS];
};

struct cairn_limiter_zone {
    int lock; /* over finding and claiming slots */
    size_t nslots;
    struct bucket slots[];
};

/* A process's handle on a bucket: its own, or one in the zone. */
struct cairn_limiter {
    unsigned refs;
    struct bucket *b;
    bool shared;
};

static struct cairn_limiter_zone *zone; /* this process's, or NULL */
static unsigned self;                   /* this worker's index in inflight[] */

static void lock(int *l)
{
    int pid = (int)getpid(), free_ = 0;
    while (
        !__atomic_compare_exchange_n(l, &free_, pid, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        free_ = 0;
        sched_yield();
    }
}

static void unlock(int *l)
{
    __atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

struct cairn_limiter_zone *cairn_limiter_zone_init(void *mem, size_t size)
{
    struct cairn_limiter_zone *z = mem;
    z->nslots = (size - sizeof(*z)) / sizeof(z->slots[0]);
    return z;
}

void cairn_limiter_zone_attach(struct cairn_limiter_zone *z, unsigned worker)
{
    zone = z;
    self = worker;
}

void cairn_limiter_zone_forget(struct cairn_limiter_zone *z, unsigned worker, int pid)
{
    if (z->lock == pid)
        unlock(&z->lock);
    for (size_t i = 0; i < z->nslots && z->slots[i].name[0] != '\0'; i++) {
        struct bucket *b = &z->slots[i];
        if (b->lock == pid)
            unlock(&b->lock);
        __atomic_store_n(&b->inflight[worker], 0, __ATOMIC_RELAXED);
    }
}

/* The zone's bucket of `name`, claimed if new; NULL when the zone is full.
 * Slots are claimed in order and never given back, so a scan stops at the
 * first free one (a reload runs this once per tenant). */
static struct bucket *zone_bucket(const char *name)
{
    struct bucket *found = NULL;
    lock(&zone->lock);
    for (size_t i = 0; i < zone->nslots && found == NULL; i++) {
        struct bucket *b = &zone->slots[i];
        if (b->name[0] == '\0')
            snprintf(b->name, sizeof(b->name), "%s", name);
        if (strcmp(b->name, name) == 0)
            found = b;
    }
    unlock(&zone->lock);
    return found;
}

struct cairn_limiter *cairn_limiter_new(const char *tenant)
{
    struct cairn_limiter *l = cairn_calloc(1, sizeof(*l));
    l->refs = 1;
    l->b = zone != NULL ? zone_bucket(tenant) : NULL;
    l->shared = l->b != NULL;
    if (zone != NULL && l->b == NULL)
        cairn_log_msg("warn",
                      "tenant %s: the shared rate-limit zone is full (%zu tenant names since the "
                      "start); its limits apply per worker until a restart",
                      tenant, zone->nslots);
    if (l->b == NULL)
        l->b = cairn_calloc(1, sizeof(*l->b));
    return l;
}

struct cairn_limiter *cairn_limiter_ref(struct cairn_limiter *l)
{
    l->refs++;
    return l;
}

void cairn_limiter_unref(struct cairn_limiter *l)
{
    if (l != NULL && --l->refs == 0) {
        if (!l->shared)
            free(l->b);
        free(l);
    }
}

static int64_t inflight(const struct bucket *b)
{
    int64_t n = 0;
    for (size_t i = 0; i < CAIRN_MAX_WORKERS; i++)
        n += __atomic_load_n(&b->inflight[i], __ATOMIC_RELAXED);
    return n;
}

/* Under the bucket's lock. */
static unsigned admit(struct bucket *b, const struct cairn_rate_config *lim, uint64_t now_us)
{
    if (lim->concurrent > 0 && inflight(b) >= lim->concurrent)
        return 1; /* a slot frees when a request ends: soon, but not knowable */
    if (lim->requests_per_second > 0) {
        double rate = lim->requests_per_second;
        double size = lim->burst > 0 ? (double)lim->burst : fmax(1.0, rate);
        if (!b->started)
            b->tokens = size;
        else if (now_us > b->last_us) /* another worker may have read the clock later */
            b->tokens = fmin(size, b->tokens + (double)(now_us - b->last_us) / 1e6 * rate);
        b->last_us = now_us > b->last_us ? now_us : b->last_us;
        b->started = true;
        if (b->tokens < 1.0) {
            double wait = ceil((1.0 - b->tokens) / rate);
            return wait < 1.0 ? 1u : wait > 86400.0 ? 86400u : (unsigned)wait;
        }
        b->tokens -= 1.0;
    }
    __atomic_add_fetch(&b->inflight[self], 1, __ATOMIC_RELAXED);
    return 0;
}

unsigned cairn_limiter_admit(struct cairn_limiter *l, const struct cairn_rate_config *lim,
                             uint64_t now_us)
{
    if (lim->concurrent <= 0 && lim->requests_per_second <= 0) {
        __atomic_add_fetch(&l->b->inflight[self], 1, __ATOMIC_RELAXED);
        return 0; /* unlimited: no lock to take */
    }
    lock(&l->b->lock);
    unsigned wait = admit(l->b, lim, now_us);
    unlock(&l->b->lock);
    return wait;
}

void cairn_limiter_release(struct cairn_limiter *l)
{
    __atomic_sub_fetch(&l->b->inflight[self], 1, __ATOMIC_RELAXED);
}

int64_t cairn_limiter_inflight(const struct cairn_limiter *l)
{
    return inflight(l->b);
}
