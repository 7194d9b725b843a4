/* Groups of ranks (coordinator/sched_groups.c): the decisions on tables of
 * workers and trials, each case what a person would decide by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "coordinator/sched_groups.h"

#define I 1 /* idle */
#define B 0 /* busy */

static void test_group_size_fixed(void **state)
{
    (void)state;
    /* ranks_per_trial 2: two, whatever is idle (the caller waits) */
    assert_int_equal(sched_group_size(2, 1, 32, 3, 1, 1), 2);
    /* capped by the workers and by the batch */
    assert_int_equal(sched_group_size(4, 1, 32, 3, 3, 1), 3);
    assert_int_equal(sched_group_size(4, 1, 2, 8, 8, 1), 2);
    /* a frozen trial on the cache is never a group */
    assert_int_equal(sched_group_size(4, 0, 32, 8, 8, 1), 1);
    assert_int_equal(sched_group_size(1, 1, 32, 8, 8, 1), 1);
}

static void test_group_size_auto(void **state)
{
    (void)state;
    /* 3 idle, 2 startable: the first gets 2, the second (then 1 idle) 1 */
    assert_int_equal(sched_group_size(0, 1, 32, 3, 3, 2), 2);
    assert_int_equal(sched_group_size(0, 1, 32, 3, 1, 1), 1);
    /* more trials than idle workers: one each */
    assert_int_equal(sched_group_size(0, 1, 32, 8, 3, 9), 1);
    /* 16 idle, 6 startable: ceil(16 / 6) = 3 */
    assert_int_equal(sched_group_size(0, 1, 32, 16, 16, 6), 3);
    /* the batch caps it: 16 images cannot feed 32 ranks */
    assert_int_equal(sched_group_size(0, 1, 16, 64, 64, 1), 16);
    assert_int_equal(sched_group_size(0, 0, 32, 8, 8, 1), 1);
    assert_int_equal(sched_group_size(0, 1, 32, 1, 1, 1), 1);
}

static void test_pick_members_host_first(void **state)
{
    (void)state;
    /* workers 0..4: hosts 0 0 1 1 1; worker 3 busy; the leader is 2 */
    sched_worker w[5] = {{I, 0, -1}, {I, 0, -1}, {I, 1, -1}, {B, 1, -1}, {I, 1, -1}};
    int out[5];
    assert_int_equal(sched_pick_members(w, 5, 2, 0, 3, out), 3);
    assert_int_equal(out[0], 2); /* the leader first */
    assert_int_equal(out[1], 4); /* its host's idle worker */
    assert_int_equal(out[2], 0); /* then another host's, in order */
    /* fewer idle than asked: all of them */
    assert_int_equal(sched_pick_members(w, 5, 2, 0, 5, out), 4);
}

static void test_pick_members_reserved(void **state)
{
    (void)state;
    /* worker 1 waits for trial 7, worker 2 for trial 3: only 1 joins 7 */
    sched_worker w[4] = {{I, 0, -1}, {I, 1, 7}, {I, 0, 3}, {I, 0, -1}};
    int out[4];
    assert_int_equal(sched_pick_members(w, 4, 0, 7, 2, out), 2);
    assert_int_equal(out[1], 1); /* reserved before the leader's host */
    assert_int_equal(sched_pick_members(w, 4, 0, 7, 4, out), 3);
    assert_int_equal(out[2], 3); /* worker 2 is trial 3's */
}

static void test_joins_most_epochs_per_rank(void **state)
{
    (void)state;
    /* trial 0: 2 ranks, 6 epochs left (3 per rank); trial 1: alone, 4 left */
    sched_trial t[2] = {{1, 1, 32, 2, 6, 0}, {1, 1, 32, 1, 4, 0}};
    sched_worker w[4] = {{B, 0, -1}, {B, 0, -1}, {B, 0, -1}, {I, 0, -1}};
    int reserve[4] = {-1, -1, -1, -1}, yield[2];
    assert_int_equal(sched_plan_joins(w, 4, t, 2, reserve, yield), 1);
    assert_int_equal(reserve[3], 1);
    assert_int_equal(yield[0], 0);
    assert_int_equal(yield[1], 1);
}

static void test_joins_spread_and_capped(void **state)
{
    (void)state;
    /* two idle workers, trial 0 alone with 4 left, trial 1 alone with 3
     * left: the first joins 0 (4 per rank), then 3 > 4/2: the second 1 */
    sched_trial t[2] = {{1, 1, 32, 1, 4, 0}, {1, 1, 32, 1, 3, 0}};
    sched_worker w[4] = {{B, 0, -1}, {B, 0, -1}, {I, 0, -1}, {I, 0, -1}};
    int reserve[4] = {-1, -1, -1, -1}, yield[2];
    assert_int_equal(sched_plan_joins(w, 4, t, 2, reserve, yield), 2);
    assert_int_equal(reserve[2], 0);
    assert_int_equal(reserve[3], 1);
    assert_true(yield[0] && yield[1]);
    /* trial 0 at its cap (batch 1), trial 1 on its last epoch: no one joins */
    sched_trial u[2] = {{1, 1, 1, 1, 4, 0}, {1, 1, 32, 1, 0, 0}};
    reserve[2] = reserve[3] = -1;
    assert_int_equal(sched_plan_joins(w, 4, u, 2, reserve, yield), 0);
    assert_true(reserve[2] < 0 && reserve[3] < 0 && !yield[0] && !yield[1]);
    /* a frozen trial on the cache is not joined */
    sched_trial f[1] = {{1, 0, 32, 1, 9, 0}};
    assert_int_equal(sched_plan_joins(w, 4, f, 1, reserve, yield), 0);
}

static void test_joins_yield_once(void **state)
{
    (void)state;
    /* trial 0 already yields for worker 2; worker 3 joins it without a
     * second YIELD, and counts worker 2 in its group (8 / 3 > 2 / 1) */
    sched_trial t[2] = {{1, 1, 32, 1, 8, 1}, {1, 1, 32, 1, 2, 0}};
    sched_worker w[4] = {{B, 0, -1}, {B, 0, -1}, {I, 0, 0}, {I, 0, -1}};
    int reserve[4] = {-1, -1, -1, -1}, yield[2];
    assert_int_equal(sched_plan_joins(w, 4, t, 2, reserve, yield), 1);
    assert_int_equal(reserve[3], 0);
    assert_int_equal(reserve[2], -1); /* left as it was */
    assert_false(yield[0]);
    assert_false(yield[1]);
    /* a worker reserved for a trial outside the table (waiting for its
     * next group) is not taken */
    sched_worker x[3] = {{B, 0, -1}, {I, 0, 2}, {B, 0, -1}};
    sched_trial one[1] = {{1, 1, 32, 1, 5, 0}};
    int r3[3] = {-1, -1, -1};
    assert_int_equal(sched_plan_joins(x, 3, one, 1, r3, yield), 0);
}

static void test_shrink_largest(void **state)
{
    (void)state;
    sched_trial t[3] = {{1, 1, 32, 2, 5, 0}, {1, 1, 32, 3, 1, 0}, {1, 1, 32, 1, 9, 0}};
    assert_int_equal(sched_pick_shrink(t, 3), 1);
    /* one yield at a time */
    t[0].yielding = 1;
    assert_int_equal(sched_pick_shrink(t, 3), -1);
    /* groups of one are not shrunk */
    sched_trial s[2] = {{1, 1, 32, 1, 5, 0}, {1, 1, 32, 1, 1, 0}};
    assert_int_equal(sched_pick_shrink(s, 2), -1);
    /* ties: the lower index */
    sched_trial e[2] = {{1, 1, 32, 2, 5, 0}, {1, 1, 32, 2, 1, 0}};
    assert_int_equal(sched_pick_shrink(e, 2), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_size_fixed),
        cmocka_unit_test(test_group_size_auto),
        cmocka_unit_test(test_pick_members_host_first),
        cmocka_unit_test(test_pick_members_reserved),
        cmocka_unit_test(test_joins_most_epochs_per_rank),
        cmocka_unit_test(test_joins_spread_and_capped),
        cmocka_unit_test(test_joins_yield_once),
        cmocka_unit_test(test_shrink_largest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
