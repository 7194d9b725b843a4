/* The string set behind the importers' duplicate checks (common/base/
 * strset.c): membership against a plain list, through several growths,
 * for names that differ only in their last byte, and the empty string. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "common/base/strset.h"

static void test_add_and_has(void **st)
{
    (void)st;
    tl_strset s;
    tl_strset_init(&s);
    assert_false(tl_strset_has(&s, "a"));
    assert_int_equal(tl_strset_add(&s, ""), 1);
    assert_int_equal(tl_strset_add(&s, ""), 0);
    assert_true(tl_strset_has(&s, ""));
    assert_false(tl_strset_has(&s, "a"));
    /* the set keeps its own copies */
    char buf[32] = "conv/kernel";
    assert_int_equal(tl_strset_add(&s, buf), 1);
    buf[0] = 'X';
    assert_true(tl_strset_has(&s, "conv/kernel"));
    assert_false(tl_strset_has(&s, buf));
    assert_int_equal(s.n, 2);
    tl_strset_free(&s);
    assert_int_equal(s.n, 0);
    assert_false(tl_strset_has(&s, ""));
}

/* 20,000 names added twice each in an interleaved order: the first add of
 * each is 1, the second 0, membership holds for every added name and for
 * no name that was not, after every growth of the table. */
static void test_many(void **st)
{
    (void)st;
    enum { N = 20000 };
    tl_strset s;
    tl_strset_init(&s);
    char name[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "block_%d/weight_%c", i / 7, 'a' + i % 7);
        assert_int_equal(tl_strset_add(&s, name), 1);
        if (i % 3 == 0) {
            snprintf(name, sizeof name, "block_%d/weight_%c", i / 14, 'a' + (i / 2) % 7);
            assert_int_equal(tl_strset_add(&s, name), 0);  /* added before: i/2 < i */
        }
        assert_int_equal(s.n, (size_t)i + 1);
        assert_true(2 * s.n <= s.cap);
    }
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "block_%d/weight_%c", i / 7, 'a' + i % 7);
        assert_true(tl_strset_has(&s, name));
        assert_int_equal(tl_strset_add(&s, name), 0);
        snprintf(name, sizeof name, "block_%d/weight_%c", i / 7, 'h' + i % 7);
        assert_false(tl_strset_has(&s, name));
    }
    assert_int_equal(s.n, N);
    tl_strset_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_and_has),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
