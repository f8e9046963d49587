/*
 * ratelimit.h — a tenant's rate limits: a token bucket for requests per
 * second and a count of requests in flight.
 *
 * A tenant's limiter outlives configuration reloads (a snapshot that
 * keeps the tenant keeps its limiter, so a reload neither refills the
 * bucket nor forgets requests in flight). Under a master process, every
 * worker draws from the same state, kept in shared memory (shm.h) by the
 * tenant's name. The limits themselves are passed on each call: they come
 * from the policy of the snapshot the request runs on.
 */
#ifndef CAIRN_RATELIMIT_H
#define CAIRN_RATELIMIT_H

#include <stdint.h>

#include "config.h"

struct cairn_limiter;
struct cairn_limiter_zone;

/** Lay out the zone of shared states in `mem` (`size` zeroed bytes of
 *  shared memory): in the master, before it forks. */
struct cairn_limiter_zone *cairn_limiter_zone_init(void *mem, size_t size);

/** In a worker: limiters made from now on share their state through `z`,
 *  and this process counts its requests in flight as worker `worker`. */
void cairn_limiter_zone_attach(struct cairn_limiter_zone *z, unsigned worker);

/** In the master, once worker `worker` (process `pid`) has died: release
 *  the locks it held and forget its requests in flight. */
void cairn_limiter_zone_forget(struct cairn_limiter_zone *z, unsigned worker, int pid);

/** The limiter of tenant `tenant`: shared when a zone is attached. */
struct cairn_limiter *cairn_limiter_new(const char *tenant);
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

/** Requests admitted and not yet released, by every worker. */
int64_t cairn_limiter_inflight(const struct cairn_limiter *l);

#endif
