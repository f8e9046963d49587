/*
 * test_stats.c — unit tests for include/stats.h across worker restarts.
 *
 * A worker keeps its stats in its shared arena, and one started after a
 * crash takes over its predecessor's. The counters that follow counts kept
 * elsewhere (the annotation cache's lookups) must go on from where they
 * were, not jump by 2^64 because the new process's cache starts at 0; and
 * the master must not count a dead worker's gauges.
 */
#include "unit.h"

#include "annotation_cache.h"
#include "shm.h"
#include "stats.h"

/* The value of the sample line that starts with `series` in the
 * exposition `text`, or -1. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; (p = strstr(p, series)) != NULL; p += n)
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

static double render_one(struct cairn_stats *st, const char *series)
{
    struct cairn_master_stats ms = {.generation = 1, .workers = 1};
    size_t len;
    char *text = cairn_stats_render(&st, 1, &ms, &len);
    double v = sample(text, series);
    free(text);
    return v;
}

/* Two hits in the first process, one in the next: 3, whatever the caches
 * of the two processes counted. */
static void test_restart_keeps_followed_counts(void **state)
{
    (void)state;
    char err[128];
    struct cairn_shared *shared = cairn_shared_new(1, err, sizeof err);
    assert_non_null(shared);
    struct cairn_arena *arena = cairn_shared_arena(shared, 0);
    unsigned char key[CAIRN_ANNOTATION_KEY_LEN] = {1};
    const char *value;
    size_t len;

    struct cairn_stats *st = cairn_stats_new(arena);
    struct cairn_annotation_cache *cache = cairn_annotation_cache_new(8, 4096, 0);
    cairn_annotation_cache_put(cache, key, "x", 1, 1);
    assert_true(cairn_annotation_cache_get(cache, key, 2, &value, &len));
    assert_true(cairn_annotation_cache_get(cache, key, 3, &value, &len));
    cairn_stats_refresh(st, 5, 1, cache);
    cairn_annotation_cache_free(cache);
    assert_true(render_one(st, "cairn_annotation_cache_lookups_total{result=\"hit\"}") == 2);

    /* The successor: the same stats, a new cache. */
    struct cairn_stats *again = cairn_stats_new(arena);
    assert_ptr_equal(again, st);
    cache = cairn_annotation_cache_new(8, 4096, 0);
    cairn_annotation_cache_put(cache, key, "x", 1, 1);
    assert_true(cairn_annotation_cache_get(cache, key, 2, &value, &len));
    cairn_stats_refresh(again, 1, 0, cache);
    cairn_annotation_cache_free(cache);
    assert_true(render_one(again, "cairn_annotation_cache_lookups_total{result=\"hit\"}") == 3);
    assert_true(render_one(again, "cairn_connections") == 1);

    /* Dead, not yet replaced: its gauges no longer count. */
    cairn_stats_forget_gauges(again);
    assert_true(render_one(again, "cairn_connections") == 0);
    assert_true(render_one(again, "cairn_annotation_cache_entries") == 0);
    cairn_shared_free(shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_keeps_followed_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
