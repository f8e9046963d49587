/*
 * ratelimit.h — a tenant's rate limits: a token bucket for requests per
 * second and a count of requests in flight.
 *
 * One limiter per tenant per worker process; it outlives configuration
 * reloads (a snapshot that keeps the tenant keeps its limiter, so a reload
 * neither refills the bucket nor forgets requests in flight). The limits
 * themselves are passed on each call: they come from the policy of the
 * snapshot the request runs on.
 */
#ifndef CAIRN_RATELIMIT_H
#define CAIRN_RATELIMIT_H

#include <stdint.h>

#include "config.h"

struct cairn_limiter;

struct cairn_limiter *cairn_limiter_new(void);
struct cairn_limiter *cairn_limiter_ref(struct cairn_limiter *l);
void cairn_limiter_unref(struct cairn_limiter *l);

/**
 * Admit one request at time `now_us` (monotonic). @return 0 when admitted
 * (the caller must call cairn_limiter_release when it ends), else the
 * whole number of seconds after which a retry can succeed (Retry-After,
 * at least 1).
 */
unsigned cairn_limiter_admit(struct cairn_limiter *l, const struct cairn_rate_config *lim,
                             uint64_t now_us);
void cairn_limiter_release(struct cairn_limiter *l);

/** Requests admitted and not yet released. */
int64_t cairn_limiter_inflight(const struct cairn_limiter *l);

#endif
