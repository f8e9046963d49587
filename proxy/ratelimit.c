/*
 * ratelimit.c — token bucket and in-flight count (see ratelimit.h).
 *
 * The bucket is refilled lazily from the time of the last admission, so an
 * idle tenant costs nothing. A request refused for concurrency does not
 * take a token, and one refused for rate does not count as in flight.
 */
#include "ratelimit.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "alloc.h"

struct cairn_limiter {
    unsigned refs;
    double tokens;    /* may be fractional */
    uint64_t last_us; /* when `tokens` was last brought up to date */
    bool started;     /* the bucket has been filled once */
    int64_t inflight;
};

struct cairn_limiter *cairn_limiter_new(void)
{
    struct cairn_limiter *l = cairn_calloc(1, sizeof(*l));
    l->refs = 1;
    return l;
}

struct cairn_limiter *cairn_limiter_ref(struct cairn_limiter *l)
{
    l->refs++;
    return l;
}

void cairn_limiter_unref(struct cairn_limiter *l)
{
    if (l != NULL && --l->refs == 0)
        free(l);
}

unsigned cairn_limiter_admit(struct cairn_limiter *l, const struct cairn_rate_config *lim,
                             uint64_t now_us)
{
    if (lim->concurrent > 0 && l->inflight >= lim->concurrent)
        return 1; /* a slot frees when a request ends: soon, but not knowable */
    if (lim->requests_per_second > 0) {
        double rate = lim->requests_per_second;
        double size = lim->burst > 0 ? (double)lim->burst : fmax(1.0, rate);
        if (!l->started)
            l->tokens = size;
        else
            l->tokens = fmin(size, l->tokens + (double)(now_us - l->last_us) / 1e6 * rate);
        l->last_us = now_us;
        l->started = true;
        if (l->tokens < 1.0) {
            double wait = ceil((1.0 - l->tokens) / rate);
            return wait < 1.0 ? 1u : wait > 86400.0 ? 86400u : (unsigned)wait;
        }
        l->tokens -= 1.0;
    }
    l->inflight++;
    return 0;
}

void cairn_limiter_release(struct cairn_limiter *l)
{
    l->inflight--;
}

int64_t cairn_limiter_inflight(const struct cairn_limiter *l)
{
    return l->inflight;
}
