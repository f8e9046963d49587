/*
 * breaker.h — a circuit breaker: stop calling a dependency (the annotator
 * model) that keeps failing, and try it again, once, after a cool-down.
 *
 *   closed     every call is allowed; consecutive failures are counted and
 *              the breaker opens when they reach the threshold.
 *   open       no call is allowed until the cool-down has passed; the
 *              first cairn_breaker_allow after that lets one probe out and
 *              moves to half-open.
 *   half_open  the probe is out and every other call is refused. Its
 *              success closes the breaker, its failure opens it for
 *              another cool-down. A probe that never reports (lost, or a
 *              caller's bug) does not wedge the breaker: once a cool-down
 *              has passed since it went out, the next allow sends another.
 *
 * The state moves only inside these calls: an open breaker whose cool-down
 * has passed still reads "open" until someone asks to call. Time is passed
 * in (monotonic microseconds); the breaker never reads a clock. One breaker
 * per dependency per worker process, used from its event loop only.
 *
 * Outcomes are not tied to the call they report on, so a report from a
 * call allowed before the breaker opened can arrive while it is open; it
 * says nothing about the dependency since then and is ignored. In
 * half-open, the first report is taken as the probe's.
 */
#ifndef CAIRN_BREAKER_H
#define CAIRN_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

enum cairn_breaker_state {
    CAIRN_BREAKER_CLOSED,
    CAIRN_BREAKER_OPEN,
    CAIRN_BREAKER_HALF_OPEN,
};

/* Embedded by its owner; read and changed only through the functions. */
struct cairn_breaker {
    enum cairn_breaker_state state;
    unsigned failures_to_open; /* 0 = never opens */
    uint64_t cooldown_us;
    unsigned failures; /* consecutive, while closed */
    uint64_t until_us; /* open: when a probe may go; half_open: when it counts as lost */
    uint64_t opens;    /* times it went from closed or half_open to open */
};

/**
 * A closed breaker.
 * @param failures_to_open  consecutive failures, in closed, that open it;
 *                          0 makes a breaker that never opens
 * @param cooldown_us       how long it stays open before a probe, and how
 *                          long a probe may stay out before another is sent
 */
void cairn_breaker_init(struct cairn_breaker *b, unsigned failures_to_open, uint64_t cooldown_us);

/**
 * May a call go out at `now_us`? true when closed; when open, false until
 * the cool-down has passed (now >= opened + cooldown), then true once, for
 * the probe; when half-open, false while the probe is out, true once more
 * (a new probe) when a cool-down has passed since it went out.
 * A call allowed must report its outcome with _success or _failure.
 */
bool cairn_breaker_allow(struct cairn_breaker *b, uint64_t now_us);

/** An allowed call succeeded: closed, or half-open (the probe), closes the
 *  breaker and clears the failure count; ignored while open. */
void cairn_breaker_success(struct cairn_breaker *b, uint64_t now_us);

/** An allowed call failed: in closed, one more consecutive failure, which
 *  opens the breaker at the threshold; in half-open (the probe), opens it
 *  for another cool-down from now; ignored while open. */
void cairn_breaker_failure(struct cairn_breaker *b, uint64_t now_us);

/** "closed", "open" or "half_open" (for logs and metrics labels). */
const char *cairn_breaker_state_name(const struct cairn_breaker *b);

/** How many times the breaker has opened since cairn_breaker_init. */
uint64_t cairn_breaker_opens(const struct cairn_breaker *b);

#endif
