#include <math.h>
#include <string.h>

#include "common/weights/tensors.h"
#include "testutil.h"

static void test_add_find_free(void **state)
{
    (void)state;
    tset s;
    tset_init(&s);
    tl_err e = {0};
    float a[6] = {1, 2, 3, 4, 5, 6};
    int64_t sh[2] = {2, 3};
    assert_int_equal(tset_add(&s, "Conv1/kernel", 2, sh, a, &e), 0);
    a[0] = 9; /* copied, not aliased */
    const tset_entry *t = tset_find(&s, "Conv1/kernel");
    assert_non_null(t);
    assert_int_equal(t->n, 6);
    assert_true(t->data[0] == 1.0f);
    assert_null(tset_find(&s, "Conv1/bias"));
    /* duplicates and bad shapes name the tensor */
    assert_int_equal(tset_add(&s, "Conv1/kernel", 2, sh, a, &e), TL_EINVAL);
    assert_non_null(strstr(e.msg, "Conv1/kernel"));
    int64_t bad[1] = {-2};
    assert_int_equal(tset_add(&s, "x", 1, bad, a, &e), TL_EINVAL);
    assert_non_null(strstr(e.msg, "'x'"));
    /* scalars */
    assert_int_equal(tset_add(&s, "step", 0, NULL, a, &e), 0);
    assert_int_equal(tset_find(&s, "step")->n, 1);
    char buf[64];
    assert_string_equal(tset_shape_str(sh, 2, buf, sizeof buf), "2x3");
    assert_string_equal(tset_shape_str(sh, 0, buf, sizeof buf), "scalar");
    tset_free(&s);
    assert_int_equal(s.n, 0);
}

static void test_check_finite(void **state)
{
    (void)state;
    tset s;
    tset_init(&s);
    tl_err e = {0};
    float a[3] = {1, 2, 3};
    int64_t sh[1] = {3};
    assert_int_equal(tset_add(&s, "ok", 1, sh, a, &e), 0);
    assert_int_equal(tset_check_finite(&s, "f.h5", &e), 0);
    a[1] = NAN;
    assert_int_equal(tset_add(&s, "bad/gamma", 1, sh, a, &e), 0);
    assert_int_equal(tset_check_finite(&s, "f.h5", &e), TL_EFORMAT);
    tu_assert_one_line_error(&e, "f.h5", "bad/gamma");
    tset_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_find_free),
        cmocka_unit_test(test_check_finite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
