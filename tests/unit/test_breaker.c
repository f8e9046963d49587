/*
 * test_breaker.c — unit tests for include/breaker.h.
 *
 * Time is an argument of every call, so each scenario runs on simulated
 * time from T0, a realistic non-zero monotonic time. A scenario is a list
 * of steps on one fresh breaker: allow (with the answer it must give),
 * success or failure, each `n` times at a time offset; after each step the
 * state and the number of times it has opened must be as stated.
 */
#include "unit.h"

#include "breaker.h"

#define T0_US 1000000000ull /* 1000 s after boot */

enum op { END, ALLOW, OK, FAIL };

struct step {
    enum op op;
    uint64_t at_ms; /* from T0 */
    unsigned n;     /* how many times */
    bool allow;     /* ALLOW: what each returns */
    const char *state;
    uint64_t opens;
};

#define A(at, n, allow, state, opens)                                                              \
    {                                                                                              \
        ALLOW, at, n, allow, state, opens                                                          \
    }
#define S(at, state, opens)                                                                        \
    {                                                                                              \
        OK, at, 1, false, state, opens                                                             \
    }
#define F(at, n, state, opens)                                                                     \
    {                                                                                              \
        FAIL, at, n, false, state, opens                                                           \
    }

static const struct {
    const char *name;
    struct {
        unsigned failures_to_open;
        uint64_t cooldown_ms;
    } set;
    struct step steps[12]; /* up to the first END */
} scenarios[] = {
    {"closed allows every call", {3, 1000}, {A(0, 100, true, "closed", 0)}},
    {"opens at the threshold of consecutive failures",
     {3, 1000},
     {F(0, 2, "closed", 0), A(0, 1, true, "closed", 0), F(1, 1, "open", 1),
      A(1, 5, false, "open", 1)}},
    {"a success resets the count: failures must be consecutive",
     {3, 1000},
     {F(0, 2, "closed", 0), S(1, "closed", 0), F(2, 2, "closed", 0), A(2, 1, true, "closed", 0),
      F(3, 1, "open", 1)}},
    {"threshold 1: one failure opens", {1, 1000}, {F(0, 1, "open", 1), A(0, 1, false, "open", 1)}},
    {"threshold 0: never opens", {0, 1000}, {F(0, 1000, "closed", 0), A(0, 1, true, "closed", 0)}},
    {"open refuses until exactly the cool-down, then one probe",
     {2, 1000},
     {F(0, 2, "open", 1), A(999, 3, false, "open", 1), A(1000, 1, true, "half_open", 1),
      A(1000, 3, false, "half_open", 1), A(1500, 3, false, "half_open", 1)}},
    {"an open breaker past its cool-down reads open until asked",
     {1, 1000},
     {F(0, 1, "open", 1), S(5000, "open", 1), A(5000, 1, true, "half_open", 1)}},
    {"the probe succeeds: closed, count reset",
     {2, 1000},
     {F(0, 2, "open", 1), A(1000, 1, true, "half_open", 1), S(1100, "closed", 1),
      A(1100, 10, true, "closed", 1), F(1200, 1, "closed", 1), F(1300, 1, "open", 2)}},
    {"the probe fails: open for a cool-down from the failure",
     {2, 1000},
     {F(0, 2, "open", 1), A(1000, 1, true, "half_open", 1), F(1200, 1, "open", 2),
      A(2199, 1, false, "open", 2), A(2200, 1, true, "half_open", 2),
      A(2200, 1, false, "half_open", 2), S(2300, "closed", 2)}},
    {"a lost probe: another after a cool-down in half-open",
     {2, 1000},
     {F(0, 2, "open", 1), A(1000, 1, true, "half_open", 1), A(1999, 1, false, "half_open", 1),
      A(2000, 1, true, "half_open", 1), A(2000, 1, false, "half_open", 1),
      A(2999, 1, false, "half_open", 1), A(3000, 1, true, "half_open", 1), S(3100, "closed", 1)}},
    {"late reports while open are ignored and do not extend the cool-down",
     {3, 1000},
     {F(0, 3, "open", 1), S(10, "open", 1), F(500, 5, "open", 1), S(600, "open", 1),
      A(999, 1, false, "open", 1), A(1000, 1, true, "half_open", 1)}},
    {"the first report in half-open is taken as the probe's",
     {1, 1000},
     {F(0, 1, "open", 1), A(1000, 1, true, "half_open", 1), F(1001, 1, "open", 2),
      S(1002, "open", 2), A(2001, 1, true, "half_open", 2), S(2002, "closed", 2),
      S(2003, "closed", 2)}},
    {"a cool-down of 0: a probe at once",
     {1, 0},
     {F(0, 1, "open", 1), A(0, 1, true, "half_open", 1), F(0, 1, "open", 2),
      A(0, 1, true, "half_open", 2)}},
};

static void test_scenarios(void **state)
{
    (void)state;
    rows_begin();
    for (size_t i = 0; i < NELEM(scenarios); i++) {
        const char *row = scenarios[i].name;
        struct cairn_breaker b;
        cairn_breaker_init(&b, scenarios[i].set.failures_to_open,
                           scenarios[i].set.cooldown_ms * 1000);
        check(strcmp(cairn_breaker_state_name(&b), "closed") == 0 && cairn_breaker_opens(&b) == 0,
              row, "a new breaker is %s, opened %llu times", cairn_breaker_state_name(&b),
              (unsigned long long)cairn_breaker_opens(&b));
        for (size_t s = 0; s < NELEM(scenarios[i].steps) && scenarios[i].steps[s].op != END; s++) {
            const struct step *st = &scenarios[i].steps[s];
            uint64_t now = T0_US + st->at_ms * 1000;
            for (unsigned k = 0; k < st->n; k++) {
                if (st->op == OK) {
                    cairn_breaker_success(&b, now);
                } else if (st->op == FAIL) {
                    cairn_breaker_failure(&b, now);
                } else {
                    bool got = cairn_breaker_allow(&b, now);
                    if (!check(got == st->allow, row, "step %zu, allow %u of %u at +%llu ms: %s", s,
                               k + 1, st->n, (unsigned long long)st->at_ms,
                               got ? "allowed" : "refused"))
                        break;
                }
            }
            check(strcmp(cairn_breaker_state_name(&b), st->state) == 0, row,
                  "after step %zu: %s, want %s", s, cairn_breaker_state_name(&b), st->state);
            check(cairn_breaker_opens(&b) == st->opens, row,
                  "after step %zu: opened %llu, want %llu", s,
                  (unsigned long long)cairn_breaker_opens(&b), (unsigned long long)st->opens);
        }
    }
    rows_end();
}

/* A re-init (new settings from a reload) starts closed and counts again. */
static void test_init_resets(void **state)
{
    (void)state;
    rows_begin();
    struct cairn_breaker b;
    cairn_breaker_init(&b, 1, 1000);
    cairn_breaker_failure(&b, T0_US);
    check(!cairn_breaker_allow(&b, T0_US), "open", "allowed");
    cairn_breaker_init(&b, 1, 1000);
    check(cairn_breaker_allow(&b, T0_US), "re-init", "refused");
    check(cairn_breaker_opens(&b) == 0, "re-init", "opened %llu",
          (unsigned long long)cairn_breaker_opens(&b));
    /* A time near the end of the clock does not wrap the deadline. */
    cairn_breaker_failure(&b, UINT64_MAX - 10);
    check(!cairn_breaker_allow(&b, UINT64_MAX - 1), "deadline saturates", "allowed");
    rows_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scenarios),
        cmocka_unit_test(test_init_resets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
