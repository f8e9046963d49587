/*
 * test_ratelimit.c — unit tests for include/ratelimit.h.
 *
 * Time is an argument of cairn_limiter_admit, so every scenario runs on
 * simulated time and never looks at the clock. A scenario is a list of
 * steps on one fresh limiter: admit N requests at a given offset (each
 * must return `want`: 0 = admitted, else the Retry-After seconds) or
 * release N, and after each step the number in flight must be as stated.
 * Offsets start from T0, a realistic non-zero monotonic time.
 */
#include "unit.h"

#include "ratelimit.h"

#define T0_US 1000000000ull /* 1000 s after boot */

enum op { ADMIT, RELEASE };

struct step {
    enum op op;
    uint64_t at_ms; /* ADMIT: simulated time, from T0 */
    unsigned n;     /* how many admits or releases */
    unsigned want;  /* ADMIT: what each returns */
    int64_t inflight;
};

#define A(at_ms, n, want, inflight)                                                                \
    {                                                                                              \
        ADMIT, at_ms, n, want, inflight                                                            \
    }
#define R(n, inflight)                                                                             \
    {                                                                                              \
        RELEASE, 0, n, 0, inflight                                                                 \
    }

static const struct {
    const char *name;
    struct cairn_rate_config lim;
    struct step steps[8]; /* up to the first with n = 0 */
} scenarios[] = {
    {"no limits: always admitted",
     {0, 0, 0},
     {A(0, 1000, 0, 1000), A(1, 1000, 0, 2000), R(2000, 0), A(1, 1, 0, 1)}},
    {"2 per second, burst 0: a bucket of 2, one token back after 0.5 s",
     {2, 0, 0},
     {A(0, 2, 0, 2), A(0, 1, 1, 2), A(500, 1, 0, 3), A(500, 1, 1, 3)}},
    {"1 per second, burst 5: 5 at once, then one a second",
     {1, 5, 0},
     {A(0, 5, 0, 5), A(0, 1, 1, 5), A(1000, 1, 0, 6), A(1000, 1, 1, 6), A(3000, 2, 0, 8),
      A(3000, 1, 1, 8)}},
    {"the bucket refills to its size, not beyond",
     {1, 3, 0},
     {A(0, 3, 0, 3), A(60000, 3, 0, 6), A(60000, 1, 1, 6)}},
    {"0.1 per second: Retry-After 10, admitted after 10 s",
     {0.1, 0, 0},
     {A(0, 1, 0, 1), A(0, 1, 10, 1), A(10000, 1, 0, 2), A(10000, 1, 10, 2)}},
    {"0.5 per second: Retry-After 2", {0.5, 0, 0}, {A(0, 1, 0, 1), A(0, 1, 2, 1)}},
    {"0.25 per second, 1 s later: 3 s to the next token",
     {0.25, 0, 0},
     {A(0, 1, 0, 1), A(1000, 1, 3, 1), A(4000, 1, 0, 2)}},
    {"0.25 per second, 0.5 s later: 3.5 s rounds up to 4",
     {0.25, 0, 0},
     {A(0, 1, 0, 1), A(500, 1, 4, 1), A(4000, 1, 0, 2)}},
    {"a part of a second left is Retry-After 1",
     {1, 1, 0},
     {A(0, 1, 0, 1), A(250, 1, 1, 1), A(750, 1, 1, 1), A(1000, 1, 0, 2)}},
    {"concurrent 2: the third waits for a release",
     {0, 0, 2},
     {A(0, 2, 0, 2), A(0, 1, 1, 2), R(1, 1), A(0, 1, 0, 2), A(0, 1, 1, 2), R(2, 0), A(0, 2, 0, 2)}},
    {"refused for rate: not in flight",
     {1, 1, 0},
     {A(0, 1, 0, 1), A(0, 5, 1, 1), R(1, 0), A(0, 3, 1, 0)}},
    {"refused for concurrency: takes no token",
     {1, 2, 1},
     {A(0, 1, 0, 1), A(0, 3, 1, 1), R(1, 0), A(0, 1, 0, 1), R(1, 0), A(0, 1, 1, 0)}},
};

static void test_scenarios(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(scenarios); i++) {
        const char *row = scenarios[i].name;
        struct cairn_limiter *l = cairn_limiter_new("t");
        check(cairn_limiter_inflight(l) == 0, row, "a new limiter has %lld in flight",
              (long long)cairn_limiter_inflight(l));
        for (size_t s = 0; s < NELEM(scenarios[i].steps) && scenarios[i].steps[s].n > 0; s++) {
            const struct step *st = &scenarios[i].steps[s];
            for (unsigned k = 0; k < st->n; k++) {
                if (st->op == RELEASE) {
                    cairn_limiter_release(l);
                    continue;
                }
                unsigned got = cairn_limiter_admit(l, &scenarios[i].lim, T0_US + st->at_ms * 1000);
                if (!check(got == st->want, row,
                           "step %zu, admit %u of %u at +%llu ms: %u, want %u", s, k + 1, st->n,
                           (unsigned long long)st->at_ms, got, st->want))
                    break;
            }
            int64_t inflight = cairn_limiter_inflight(l);
            check(inflight == st->inflight, row, "after step %zu: %lld in flight, want %lld", s,
                  (long long)inflight, (long long)st->inflight);
        }
        cairn_limiter_unref(l);
    }
    rows_end();
}

/* A reload keeps a tenant's limiter: every holder sees one bucket and one
 * count, and the last unref frees it (ASan reports a leak or a double free). */
static void test_refs_share_state(void **state)
{
    static const struct cairn_rate_config lim = {1, 2, 2};
    (void)state;
    rows_begin();
    struct cairn_limiter *a = cairn_limiter_new("t");
    struct cairn_limiter *b = cairn_limiter_ref(a);
    check(a == b, "ref", "returned another limiter");
    check(cairn_limiter_admit(a, &lim, T0_US) == 0, "admit through a", "refused");
    check(cairn_limiter_inflight(b) == 1, "in flight through b", "%lld",
          (long long)cairn_limiter_inflight(b));
    cairn_limiter_unref(a);
    check(cairn_limiter_admit(b, &lim, T0_US) == 0, "admit through b", "refused");
    check(cairn_limiter_inflight(b) == 2, "in flight after unref of a", "%lld",
          (long long)cairn_limiter_inflight(b));
    check(cairn_limiter_admit(b, &lim, T0_US) == 1, "bucket shared", "a third admit passed");
    cairn_limiter_release(b);
    cairn_limiter_release(b);
    check(cairn_limiter_inflight(b) == 0, "released", "%lld", (long long)cairn_limiter_inflight(b));
    cairn_limiter_unref(b);
    cairn_limiter_unref(NULL);
    rows_end();
}

/* The limits come with each call (from the current snapshot's policy):
 * lifting them admits at once, and tightening applies to what is left. */
static void test_limits_change_between_calls(void **state)
{
    static const struct cairn_rate_config tight = {1, 1, 1}, open = {0, 0, 0}, fewer = {1, 1, 0};
    (void)state;
    rows_begin();
    struct cairn_limiter *l = cairn_limiter_new("t");
    check(cairn_limiter_admit(l, &tight, T0_US) == 0, "tight: first", "refused");
    check(cairn_limiter_admit(l, &tight, T0_US) == 1, "tight: second", "admitted");
    check(cairn_limiter_admit(l, &open, T0_US) == 0, "lifted", "refused");
    check(cairn_limiter_inflight(l) == 2, "lifted", "%lld in flight, want 2",
          (long long)cairn_limiter_inflight(l));
    check(cairn_limiter_admit(l, &fewer, T0_US) == 1, "rate back, bucket still empty", "admitted");
    cairn_limiter_release(l);
    cairn_limiter_release(l);
    cairn_limiter_unref(l);
    rows_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scenarios),
        cmocka_unit_test(test_refs_share_state),
        cmocka_unit_test(test_limits_change_between_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
