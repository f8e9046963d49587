/*
 * test_experiment.c — unit tests for include/experiment.h.
 *
 * Experiments are loaded from JSON through the real config loader. The
 * assignment is checked against known answers (computed independently
 * from the scheme in experiment.h, so a change of scheme — which would
 * move every running experiment's units — fails here), against the
 * weights over 100 000 simulated units, and for the stability promises:
 * a weight change moves units only into or out of that arm, a new arm
 * only takes units, a removed arm only gives its own away.
 */
#include "unit.h"

#include "config.h"
#include "experiment.h"

#define UNITS 100000

/* The default policy's experiment of a file written with ' for ". */
static struct cairn_config load_experiment(const char *json)
{
    char text[2048], err[512];
    size_t n = strlen(json);
    for (size_t i = 0; i <= n; i++)
        text[i] = json[i] == '\'' ? '"' : json[i];
    struct cairn_config cfg;
    if (cairn_config_load_buffer(&cfg, "t.json", text, n, err, sizeof err) < 0)
        fail_msg("%s", err);
    assert_non_null(cfg.policy.experiment);
    return cfg;
}

static size_t arm_of(const struct cairn_experiment_config *e, unsigned unit)
{
    char name[32];
    int n = snprintf(name, sizeof name, "user-%u", unit);
    struct cairn_assignment a;
    cairn_experiment_assign(e, name, (size_t)n, &a);
    return a.arm;
}

/* Known answers of the documented scheme, computed outside cairn. */
static void test_known_answers(void **state)
{
    (void)state;
    static const struct {
        const char *unit, *arm, *hash;
    } rows[] = {
        {"alice", "model", "e2a1cd812798c3b4"}, {"bob", "model", "4e6aeef74581efda"},
        {"carol", "rules", "4d53ea1e13668eec"}, {"dave", "rules", "6c3a881e180ed3db"},
        {"erin", "rules", "d63fbc89f4cbefa0"},  {"frank", "model", "cb8aa7bab5997a5b"},
    };
    struct cairn_config cfg =
        load_experiment("{'policy':{'experiment':{'name':'e','salt':'2026-11','arms':{'control':{},"
                        "'rules':{},'model':{'weight':2}}}}}");
    const struct cairn_experiment_config *e = cfg.policy.experiment;
    rows_begin();
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct cairn_assignment a;
        cairn_experiment_assign(e, rows[i].unit, strlen(rows[i].unit), &a);
        check(strcmp(e->arms[a.arm].name, rows[i].arm) == 0, rows[i].unit, "arm %s, want %s",
              e->arms[a.arm].name, rows[i].arm);
        check(strcmp(a.unit_hash, rows[i].hash) == 0, rows[i].unit, "unit hash %s, want %s",
              a.unit_hash, rows[i].hash);
    }
    rows_end();
    cairn_config_free(&cfg);
}

/* Over 100 000 units each arm's share is its weight's, within 0.6
 * percentage points (more than six standard deviations at this size). */
static void test_distribution(void **state)
{
    (void)state;
    struct cairn_config cfg = load_experiment(
        "{'policy':{'experiment':{'name':'e','arms':{'a':{'weight':1},'b':{'weight':2},"
        "'c':{'weight':7},'off':{'weight':0}}}}}");
    const struct cairn_experiment_config *e = cfg.policy.experiment;
    size_t count[4] = {0};
    for (unsigned u = 0; u < UNITS; u++)
        count[arm_of(e, u)]++;
    const double want[] = {0.1, 0.2, 0.7, 0};
    rows_begin();
    for (size_t i = 0; i < 4; i++) {
        double share = (double)count[i] / UNITS;
        check(share > want[i] - 0.006 && share < want[i] + 0.006, e->arms[i].name,
              "share %.4f, want %.2f", share, want[i]);
    }
    check(count[3] == 0, "weight 0", "%zu units in an arm of weight 0", count[3]);
    rows_end();
    cairn_config_free(&cfg);
}

/* The same unit lands in the same arm in another load of the same file
 * (another process, another instance), and units spread with the salt. */
static void test_stable_and_salted(void **state)
{
    (void)state;
    const char *json = "{'policy':{'experiment':{'name':'e','arms':{'a':{},'b':{}}}}}";
    struct cairn_config one = load_experiment(json), two = load_experiment(json);
    struct cairn_config salted =
        load_experiment("{'policy':{'experiment':{'name':'e','salt':'other',"
                        "'arms':{'a':{},'b':{}}}}}");
    size_t same = 0, moved = 0;
    for (unsigned u = 0; u < UNITS; u++) {
        size_t arm = arm_of(one.policy.experiment, u);
        same += arm == arm_of(two.policy.experiment, u);
        moved += arm != arm_of(salted.policy.experiment, u);
    }
    assert_int_equal(same, UNITS);
    /* Two independent halves: a new salt moves about half of the units. */
    assert_true(moved > UNITS * 0.48 && moved < UNITS * 0.52);
    cairn_config_free(&one);
    cairn_config_free(&two);
    cairn_config_free(&salted);
}

/* Changing arm b's weight from 1 to 3 moves units only into b: every
 * unit that changed arm is in b now, and b grows to 3/5 of the units. */
static void test_weight_change(void **state)
{
    (void)state;
    struct cairn_config before =
        load_experiment("{'policy':{'experiment':{'name':'e','arms':{'a':{},'b':{},'c':{}}}}}");
    struct cairn_config after = load_experiment(
        "{'policy':{'experiment':{'name':'e','arms':{'a':{},'b':{'weight':3},'c':{}}}}}");
    size_t moved = 0, wrong = 0;
    for (unsigned u = 0; u < UNITS; u++) {
        size_t x = arm_of(before.policy.experiment, u), y = arm_of(after.policy.experiment, u);
        if (x != y) {
            moved++;
            wrong += y != 1;
        }
    }
    assert_int_equal(wrong, 0);
    /* b goes from 1/3 to 3/5 of the units: 4/15 of them move. */
    assert_true(moved > UNITS * (4.0 / 15 - 0.006) && moved < UNITS * (4.0 / 15 + 0.006));
    cairn_config_free(&before);
    cairn_config_free(&after);
}

/* A new arm only takes units; removing it gives back exactly those. */
static void test_arm_added_and_removed(void **state)
{
    (void)state;
    struct cairn_config two =
        load_experiment("{'policy':{'experiment':{'name':'e','arms':{'a':{},'b':{}}}}}");
    struct cairn_config three =
        load_experiment("{'policy':{'experiment':{'name':'e','arms':{'a':{},'b':{},'new':{}}}}}");
    size_t taken = 0, wrong = 0;
    for (unsigned u = 0; u < UNITS; u++) {
        size_t x = arm_of(two.policy.experiment, u), y = arm_of(three.policy.experiment, u);
        if (x != y) {
            taken++;
            wrong += y != 2;
        }
    }
    assert_int_equal(wrong, 0);
    assert_true(taken > UNITS * (1.0 / 3 - 0.006) && taken < UNITS * (1.0 / 3 + 0.006));
    cairn_config_free(&two);
    cairn_config_free(&three);
}

static void test_find_arm(void **state)
{
    (void)state;
    struct cairn_config cfg =
        load_experiment("{'policy':{'experiment':{'name':'e','arms':{'a':{},'b':{}}}}}");
    assert_int_equal(cairn_experiment_find_arm(cfg.policy.experiment, "b"), 1);
    assert_int_equal(cairn_experiment_find_arm(cfg.policy.experiment, "B"), -1);
    assert_int_equal(cairn_experiment_find_arm(cfg.policy.experiment, ""), -1);
    cairn_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),         cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_stable_and_salted),     cmocka_unit_test(test_weight_change),
        cmocka_unit_test(test_arm_added_and_removed), cmocka_unit_test(test_find_arm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
