/*
 * shm.h — memory shared by the master process and its workers.
 *
 * The master maps one region before it forks any worker, so the region
 * sits at the same address in every process and pointers inside it are
 * valid in all of them. It holds one arena per worker, where that worker
 * keeps its metrics (the master reads them to answer /metrics: stats.h),
 * the zone of rate limiter states that every worker shares
 * (ratelimit.h), and the text of the configuration the master checked
 * last, which is what workers load (never the file, which may have changed
 * since). A worker that crashes and is started again finds its
 * arena as it was: its counters go on from where they were.
 *
 * An arena is a bump allocator over a fixed span that never frees: what
 * lives there (metric families and series) is only ever added. Its pages
 * cost memory only once touched.
 */
#ifndef CAIRN_SHM_H
#define CAIRN_SHM_H

#include <stddef.h>

struct cairn_arena;
struct cairn_shared;

/** A region for `nworkers` workers. @return it, or NULL with err. */
struct cairn_shared *cairn_shared_new(unsigned nworkers, char *err, size_t errlen);
void cairn_shared_free(struct cairn_shared *s);

/** The arena of worker `worker` (0 .. nworkers-1). */
struct cairn_arena *cairn_shared_arena(struct cairn_shared *s, unsigned worker);

/** Zeroed, 16-byte aligned memory from `a`, which never frees it; aborts
 *  when the arena is exhausted (its size bounds what the metrics can hold,
 *  see shm.c). */
void *cairn_arena_alloc(struct cairn_arena *a, size_t n);

/** What the arena's owner stored as its root (NULL at first), and storing
 *  it: the release/acquire pair that publishes what the root points to. */
void *cairn_arena_root(const struct cairn_arena *a);
void cairn_arena_set_root(struct cairn_arena *a, void *root);

/** In the master: make text[0..len) (at most CAIRN_CONFIG_MAX_BYTES) the
 *  configuration workers load. */
void cairn_shared_set_config(struct cairn_shared *s, const char *text, size_t len);

/** In a worker: a copy of that configuration (malloc'd, NUL-terminated),
 *  and its version (+1 each time the master sets it). */
char *cairn_shared_config(struct cairn_shared *s, size_t *len, unsigned long *version);

/** The limiter zone (ratelimit.c lays it out), `*size` bytes, zeroed at first. */
void *cairn_shared_limiters(struct cairn_shared *s, size_t *size);

#endif
