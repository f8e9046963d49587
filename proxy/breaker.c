/*
 * breaker.c — circuit breaker (see breaker.h).
 *
 * One deadline serves both waiting states: in open it is when a probe may
 * go, in half-open when the probe out counts as lost. Both are a cool-down
 * after the event that set them, so a lost probe costs one cool-down of
 * refused calls, the same as a failed one.
 */
#include "breaker.h"

#include <string.h>

/* now + d, without wrapping. */
static uint64_t after(uint64_t now_us, uint64_t d)
{
    return now_us > UINT64_MAX - d ? UINT64_MAX : now_us + d;
}

static void do_open(struct cairn_breaker *b, uint64_t now_us)
{
    b->state = CAIRN_BREAKER_OPEN;
    b->until_us = after(now_us, b->cooldown_us);
    b->failures = 0;
    b->opens++;
}

void cairn_breaker_init(struct cairn_breaker *b, unsigned failures_to_open, uint64_t cooldown_us)
{
    memset(b, 0, sizeof(*b));
    b->state = CAIRN_BREAKER_CLOSED;
    b->failures_to_open = failures_to_open;
    b->cooldown_us = cooldown_us;
}

bool cairn_breaker_allow(struct cairn_breaker *b, uint64_t now_us)
{
    switch (b->state) {
    case CAIRN_BREAKER_CLOSED: return true;
    case CAIRN_BREAKER_OPEN:
    case CAIRN_BREAKER_HALF_OPEN:
        /* open: the cool-down is over; half-open: the probe is lost. */
        if (now_us < b->until_us)
            return false;
        b->state = CAIRN_BREAKER_HALF_OPEN;
        b->until_us = after(now_us, b->cooldown_us);
        return true;
    }
    return false;
}

void cairn_breaker_success(struct cairn_breaker *b, uint64_t now_us)
{
    (void)now_us;
    if (b->state == CAIRN_BREAKER_OPEN)
        return; /* from a call allowed before it opened */
    b->state = CAIRN_BREAKER_CLOSED;
    b->failures = 0;
}

void cairn_breaker_failure(struct cairn_breaker *b, uint64_t now_us)
{
    switch (b->state) {
    case CAIRN_BREAKER_CLOSED:
        if (b->failures_to_open > 0 && ++b->failures >= b->failures_to_open)
            do_open(b, now_us);
        break;
    case CAIRN_BREAKER_HALF_OPEN: do_open(b, now_us); break;
    case CAIRN_BREAKER_OPEN: break; /* from a call allowed before it opened */
    }
}

const char *cairn_breaker_state_name(const struct cairn_breaker *b)
{
    switch (b->state) {
    case CAIRN_BREAKER_CLOSED: return "closed";
    case CAIRN_BREAKER_OPEN: return "open";
    case CAIRN_BREAKER_HALF_OPEN: return "half_open";
    }
    return "?";
}

uint64_t cairn_breaker_opens(const struct cairn_breaker *b)
{
    return b->opens;
}
