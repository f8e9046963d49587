/*
 * test_secret.c — unit tests for include/secret.h.
 *
 * cairn_secret_env: the value comes back, the environment no longer has it
 * (neither the entry nor, in the string it was in, its bytes), a second call
 * answers from the store, an unset variable is NULL. cairn_secret_alloc: the
 * bytes are zeroed, writable, and in a mapping /proc/self/smaps marks "dd"
 * (MADV_DONTDUMP). cairn_scrub_realloc keeps the contents as it grows and
 * shrinks a block; cairn_scrub_free and realloc of NULL behave as free and
 * malloc do.
 */
#include "unit.h"

#include "secret.h"

/* True if the mapping holding `p` has the "dd" VmFlag. */
static bool dontdump(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[512];
    bool inside = false, dd = false;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, ':') != NULL &&
            line[strspn(line, "0123456789abcdef")] == '-') {
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            dd = strstr(line, " dd") != NULL;
            break;
        }
    }
    fclose(f);
    return dd;
}

static void test_env(void **state)
{
    (void)state;
    assert_int_equal(setenv("CAIRN_UNIT_SECRET", "sk-unit-5e3f", 1), 0);
    char *in_env = getenv("CAIRN_UNIT_SECRET");
    assert_non_null(in_env);
    const char *v = cairn_secret_env("CAIRN_UNIT_SECRET");
    assert_non_null(v);
    assert_string_equal(v, "sk-unit-5e3f");
    assert_null(getenv("CAIRN_UNIT_SECRET"));
    for (size_t i = 0; i < strlen("sk-unit-5e3f"); i++)
        assert_int_equal(in_env[i], 0); /* the string setenv made is wiped */
    assert_true(dontdump(v));
    assert_ptr_equal(cairn_secret_env("CAIRN_UNIT_SECRET"), v);
    assert_null(cairn_secret_env("CAIRN_UNIT_NOT_SET"));
}

static void test_alloc(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 100, 4096, 10000};
    for (size_t i = 0; i < NELEM(sizes); i++) {
        unsigned char *p = cairn_secret_alloc(sizes[i]);
        for (size_t j = 0; j < sizes[i]; j++)
            assert_int_equal(p[j], 0);
        memset(p, 0xab, sizes[i]);
        assert_true(dontdump(p));
        assert_true(dontdump(p + sizes[i] - 1));
        cairn_secret_free(p);
    }
    cairn_secret_free(NULL);
}

static void test_scrub_realloc(void **state)
{
    (void)state;
    char *p = cairn_scrub_realloc(NULL, 10);
    assert_non_null(p);
    memcpy(p, "0123456789", 10);
    p = cairn_scrub_realloc(p, 100000);
    assert_non_null(p);
    assert_memory_equal(p, "0123456789", 10);
    p = cairn_scrub_realloc(p, 4);
    assert_non_null(p);
    assert_memory_equal(p, "0123", 4);
    cairn_scrub_free(p);
    cairn_scrub_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_alloc),
        cmocka_unit_test(test_scrub_realloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
