/* worker/engine/engine.c: thread settings reach OpenBLAS and the nn kernels, and
 * the OpenBLAS description and warning behave. */
#include "testutil.h"

#include "worker/engine/engine.h"
#include "worker/nn/nn.h"

#include <stdlib.h>
#include <string.h>

static void test_threads_round_trip(void **state)
{
    (void)state;
    for (int n = 1; n <= 2; n++) {
        assert_int_equal(engine_threads_set(n), n);
        assert_int_equal(engine_threads_get(), n);
        assert_int_equal(nn_get_threads(), n);
    }
    /* n <= 0 means the default */
    assert_int_equal(engine_threads_set(0), engine_threads_default());
}

static void test_threads_default(void **state)
{
    (void)state;
    unsetenv("TLSWEEP_THREADS");
    int cores = engine_threads_default();
    assert_true(cores >= 1);
    setenv("TLSWEEP_THREADS", "3", 1);
    assert_int_equal(engine_threads_default(), 3);
    /* nonsense is ignored, not trusted */
    setenv("TLSWEEP_THREADS", "0", 1);
    assert_int_equal(engine_threads_default(), cores);
    setenv("TLSWEEP_THREADS", "2x", 1);
    assert_int_equal(engine_threads_default(), cores);
    unsetenv("TLSWEEP_THREADS");
}

static void test_blas_describe(void **state)
{
    (void)state;
    char buf[256];
    engine_threads_set(1);
    assert_ptr_equal(engine_blas_describe(buf, sizeof buf), buf);
    assert_non_null(strstr(buf, "OpenBLAS"));
    assert_non_null(strstr(buf, ", 1 thread"));
    /* truncation is safe */
    char small[8];
    engine_blas_describe(small, sizeof small);
    assert_true(strlen(small) < sizeof small);
}

static void test_blas_warning_quiet(void **state)
{
    (void)state;
    /* OpenBLAS read OPENBLAS_CORETYPE when it loaded, so only the switches
     * that are read at call time can be tested here. */
    char buf[512];
    setenv("TLSWEEP_BLAS_QUIET", "1", 1);
    assert_int_equal(engine_blas_warning(buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    unsetenv("TLSWEEP_BLAS_QUIET");
    const char *saved = getenv("OPENBLAS_CORETYPE");
    char *copy = saved ? strdup(saved) : NULL;
    unsetenv("OPENBLAS_CORETYPE");
    assert_int_equal(engine_blas_warning(buf, sizeof buf), 0);
    if (copy) {
        setenv("OPENBLAS_CORETYPE", copy, 1);
        free(copy);
    }
    /* whatever the environment, a warning names the way to silence it */
    if (engine_blas_warning(buf, sizeof buf))
        assert_non_null(strstr(buf, "TLSWEEP_BLAS_QUIET=1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_round_trip),
        cmocka_unit_test(test_threads_default),
        cmocka_unit_test(test_blas_describe),
        cmocka_unit_test(test_blas_warning_quiet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
