/* successive_halving and asha (common/sweep/search.h): the rungs of a
 * sweep, the decisions on tables of trials worked by hand, the epoch
 * budget, and a whole search simulated with results in two different
 * orders (successive halving decides the same; asha never promotes more
 * than its bound). The refusals of bad search keys are in test_sweep.c. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sweep/search.h"

static sweep_rungs rungs3(sweep_search_method m, int goal_max)
{
    sweep s;
    memset(&s, 0, sizeof s);
    s.search = m;
    s.min_epochs = 1;
    s.reduction_factor = 3;
    s.epochs = 9;
    s.search_goal_max = goal_max; /* search.metric's goal, the select goal by default */
    sweep_rungs r;
    sweep_rungs_of(&s, &r);
    return r;
}

static void test_rungs_of(void **state)
{
    (void)state;
    static const struct {
        sweep_search_method m;
        int min, eta, epochs;
        int n, want[6];
    } cases[] = {
        {SWEEP_SEARCH_SHA, 1, 3, 9, 3, {1, 3, 9}},
        {SWEEP_SEARCH_ASHA, 1, 3, 10, 4, {1, 3, 9, 10}},
        {SWEEP_SEARCH_ASHA, 2, 2, 20, 5, {2, 4, 8, 16, 20}},
        {SWEEP_SEARCH_SHA, 4, 3, 5, 2, {4, 5}},
        {SWEEP_SEARCH_SHA, 1, 100, 1000, 3, {1, 100, 1000}},
        /* grid and random: one rung, the epochs */
        {SWEEP_SEARCH_GRID, 1, 3, 9, 1, {9}},
        {SWEEP_SEARCH_RANDOM, 1, 3, 9, 1, {9}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        sweep s;
        memset(&s, 0, sizeof s);
        s.search = cases[c].m;
        s.min_epochs = cases[c].min;
        s.reduction_factor = cases[c].eta;
        s.epochs = cases[c].epochs;
        sweep_rungs r;
        sweep_rungs_of(&s, &r);
        assert_int_equal(r.n, cases[c].n);
        for (int k = 0; k < cases[c].n; k++)
            assert_int_equal(r.epochs[k], cases[c].want[k]);
        assert_int_equal(r.epochs[r.n - 1], cases[c].epochs);
        for (int k = 0; k < r.n; k++)
            assert_int_equal(sweep_rung_at(&r, r.epochs[k]), k);
    }
    /* 1e6 epochs with eta 2: 2^0 .. 2^19, then the epochs */
    sweep s;
    memset(&s, 0, sizeof s);
    s.search = SWEEP_SEARCH_ASHA;
    s.min_epochs = 1;
    s.reduction_factor = 2;
    s.epochs = 1000000;
    sweep_rungs r;
    sweep_rungs_of(&s, &r);
    assert_int_equal(r.n, 21);
    assert_int_equal(r.epochs[19], 1 << 19);
    assert_int_equal(r.epochs[r.n - 1], 1000000);
    for (int k = 1; k < r.n; k++)
        assert_true(r.epochs[k] > r.epochs[k - 1]);
    assert_int_equal(sweep_rung_at(&r, 7), -1);
}

/* rows from a compact spec: target, reached, final, value at each rung */
typedef struct {
    int target, reached, final;
    double v[3];
} row_spec;

static void make_rows(sweep_srow *rows, const row_spec *spec, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sweep_srow_init(&rows[i]);
        rows[i].target = spec[i].target;
        rows[i].reached = spec[i].reached;
        rows[i].final = spec[i].final;
        memcpy(rows[i].value, spec[i].v, sizeof spec[i].v);
    }
}

static void test_sha_decisions(void **state)
{
    (void)state;
    sweep_rungs r = rungs3(SWEEP_SEARCH_SHA, 1);
    sweep_srow rows[9];
    int out[9];
    /* rung 0 not complete: one trial still running toward it */
    row_spec running[] = {{0, 0, 0, {0.5}}, {0, 0, 0, {0.7}}, {0, -1, 0, {0}}};
    make_rows(rows, running, 3);
    assert_int_equal(sweep_sha_promotions(&r, rows, 3, out), 0);
    /* one not started yet: not complete either */
    running[2].target = -1;
    make_rows(rows, running, 3);
    assert_int_equal(sweep_sha_promotions(&r, rows, 3, out), 0);
    /* 9 at rung 0: the best 3 go on, best first; a tie goes to the lower index */
    row_spec nine[] = {{0, 0, 0, {0.1}}, {0, 0, 0, {0.9}}, {0, 0, 0, {0.5}},
                       {0, 0, 0, {0.8}}, {0, 0, 0, {0.2}}, {0, 0, 0, {0.8}},
                       {0, 0, 0, {0.3}}, {0, 0, 0, {0.4}}, {0, 0, 0, {0.6}}};
    make_rows(rows, nine, 9);
    assert_int_equal(sweep_sha_promotions(&r, rows, 9, out), 3);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 3);
    assert_int_equal(out[2], 5);
    /* once promoted, the same table decides nothing more */
    rows[1].target = rows[3].target = rows[5].target = 1;
    assert_int_equal(sweep_sha_promotions(&r, rows, 9, out), 0);
    /* rung 1 complete: max(1, 3 / 3) = 1 goes on to the last rung */
    rows[1].reached = rows[3].reached = rows[5].reached = 1;
    rows[1].value[1] = 0.91;
    rows[3].value[1] = 0.95;
    rows[5].value[1] = 0.93;
    assert_int_equal(sweep_sha_promotions(&r, rows, 9, out), 1);
    assert_int_equal(out[0], 3);
    /* a failed entrant completes its rung; one stopped early at the rung's
     * end is not ranked, so the slot goes to the next best */
    row_spec odd[] = {{0, -1, 1, {0}}, {0, 0, 1, {0.99}}, {0, 0, 0, {0.4}}, {0, 0, 0, {0.6}}};
    make_rows(rows, odd, 4);
    assert_int_equal(sweep_sha_promotions(&r, rows, 4, out), 1); /* 4 entrants / 3 = 1 */
    assert_int_equal(out[0], 3);
    /* val_loss (min): the smallest goes on; NaN is last either way */
    sweep_rungs rmin = rungs3(SWEEP_SEARCH_SHA, 0);
    row_spec loss[] = {{0, 0, 0, {NAN}}, {0, 0, 0, {0.5}}, {0, 0, 0, {0.7}}};
    make_rows(rows, loss, 3);
    assert_int_equal(sweep_sha_promotions(&rmin, rows, 3, out), 1);
    assert_int_equal(out[0], 1);
    make_rows(rows, loss, 3);
    assert_int_equal(sweep_sha_promotions(&r, rows, 3, out), 1);
    assert_int_equal(out[0], 2);
}

static void test_asha_decisions(void **state)
{
    (void)state;
    sweep_rungs r = rungs3(SWEEP_SEARCH_ASHA, 1);
    sweep_srow rows[9];
    /* 2 results at rung 0: floor(2 / 3) = 0 may go on; others not started */
    row_spec two[] = {{0, 0, 0, {0.9}}, {0, 0, 0, {0.5}}, {-1, -1, 0, {0}}, {0, -1, 0, {0}}};
    make_rows(rows, two, 4);
    assert_int_equal(sweep_asha_promotion(&r, rows, 4, 1), -1);
    /* the third result makes one slot: the best, whatever is still running */
    row_spec three[] = {{0, 0, 0, {0.9}}, {0, 0, 0, {0.5}}, {0, 0, 0, {0.6}}, {0, -1, 0, {0}}};
    make_rows(rows, three, 4);
    assert_int_equal(sweep_asha_promotion(&r, rows, 4, 1), 0);
    /* promoted already: the slot is used; nothing more until 6 results */
    rows[0].target = 1;
    assert_int_equal(sweep_asha_promotion(&r, rows, 4, 1), -1);
    /* a newcomer better than the promoted one takes the second slot at 6 */
    row_spec six[] = {{1, 0, 0, {0.9}}, {0, 0, 0, {0.5}}, {0, 0, 0, {0.6}},
                      {0, 0, 0, {0.95}}, {0, 0, 0, {0.1}}, {0, 0, 0, {0.2}}};
    make_rows(rows, six, 6);
    assert_int_equal(sweep_asha_promotion(&r, rows, 6, 1), 3);
    /* the highest rung first: 3 at rung 1 make a slot at rung 1 */
    row_spec up[] = {{1, 1, 0, {0.9, 0.7}}, {1, 1, 0, {0.8, 0.75}}, {1, 1, 0, {0.85, 0.6}},
                     {0, 0, 0, {0.99}},     {0, 0, 0, {0.1}},       {0, 0, 0, {0.2}},
                     {0, 0, 0, {0.3}},      {0, 0, 0, {0.4}},       {0, 0, 0, {0.45}}};
    make_rows(rows, up, 9);
    assert_int_equal(sweep_asha_promotion(&r, rows, 9, 1), 1);
    /* the cap: 6 reached rung 0 and 2 went on (one of them now outranked by
     * a newcomer): none more under the cap, the newcomer without it */
    row_spec capped[] = {{1, 0, 0, {0.9}}, {1, 0, 0, {0.5}}, {0, 0, 0, {0.6}},
                         {0, 0, 0, {0.95}}, {0, 0, 0, {0.1}}, {0, 0, 0, {0.2}}};
    make_rows(rows, capped, 6);
    assert_int_equal(sweep_asha_promotion(&r, rows, 6, 1), -1);
    assert_int_equal(sweep_asha_promotion(&r, rows, 6, 0), 3);
    /* the last rung is where trials end: nothing goes on from it */
    row_spec last[] = {{2, 2, 1, {0.9, 0.9, 0.9}}, {2, 2, 1, {0.9, 0.9, 0.8}},
                       {2, 2, 1, {0.9, 0.9, 0.7}}};
    make_rows(rows, last, 3);
    assert_int_equal(sweep_asha_promotion(&r, rows, 3, 1), -1);
}

static void test_budget(void **state)
{
    (void)state;
    size_t n[SWEEP_MAX_RUNGS];
    sweep_rungs r = rungs3(SWEEP_SEARCH_SHA, 1);
    /* 27 configurations, rungs 1, 3, 9: 27 + 9 * 2 + 3 * 6 = 63 of 243 */
    assert_true(fabs(sweep_rung_budget(&r, 27, n) - 63) < 1e-9);
    assert_int_equal(n[0], 27);
    assert_int_equal(n[1], 9);
    assert_int_equal(n[2], 3);
    /* 2 trials: successive halving keeps one to the end, asha none */
    assert_true(fabs(sweep_rung_budget(&r, 2, n) - (2 + 2 + 6)) < 1e-9);
    assert_int_equal(n[2], 1);
    sweep_rungs a = rungs3(SWEEP_SEARCH_ASHA, 1);
    assert_true(fabs(sweep_rung_budget(&a, 2, n) - 2) < 1e-9);
    assert_int_equal(n[1], 0);
}

/* A whole search over 27 trials whose value at each rung is a fixed
 * function of the trial: results arrive in index order or in reverse. */
static double value_of(int i, int k)
{
    return 0.3 + 0.02 * ((i * 7) % 27) + 0.01 * k;
}

static int simulate(sweep_search_method m, int reverse, sweep_srow *rows, int *epochs)
{
    sweep_rungs r = rungs3(m, 1);
    enum { N = 27 };
    int out[N];
    *epochs = 0;
    for (int i = 0; i < N; i++)
        sweep_srow_init(&rows[i]);
    /* a queue of trials training toward their target rung */
    for (int step = 0; step < 10 * N; step++) {
        int busy = -1;
        for (int j = 0; j < N && busy < 0; j++) {
            int i = reverse ? N - 1 - j : j;
            sweep_srow *w = &rows[i];
            if (w->target >= 0 && w->reached < w->target && !w->final)
                busy = i;
        }
        if (busy < 0 && m == SWEEP_SEARCH_ASHA) {
            /* as the coordinator: under the cap, else a new trial, else without it */
            int p = sweep_asha_promotion(&r, rows, N, 1);
            for (int j = 0; p < 0 && j < N && busy < 0; j++)
                if (rows[j].target < 0)
                    rows[busy = j].target = 0;
            if (p < 0 && busy < 0)
                p = sweep_asha_promotion(&r, rows, N, 0);
            if (p >= 0) {
                rows[p].target++;
                continue;
            }
        } else if (busy < 0) {
            size_t np = sweep_sha_promotions(&r, rows, N, out);
            for (size_t q = 0; q < np; q++)
                rows[out[q]].target++;
            if (np)
                continue;
            for (int j = 0; j < N && busy < 0; j++)
                if (rows[j].target < 0)
                    rows[busy = j].target = 0;
        }
        if (busy < 0)
            return 0;
        sweep_srow *w = &rows[busy];
        int k = w->target;
        *epochs += r.epochs[k] - (k ? r.epochs[k - 1] : 0);
        sweep_srow_reach(w, &r, k, value_of(busy, k), 0);
    }
    return -1;
}

static void test_whole_search(void **state)
{
    (void)state;
    sweep_srow a[27], b[27];
    int ea, eb;
    assert_int_equal(simulate(SWEEP_SEARCH_SHA, 0, a, &ea), 0);
    assert_int_equal(simulate(SWEEP_SEARCH_SHA, 1, b, &eb), 0);
    /* the same decisions whatever order the results came in */
    for (int i = 0; i < 27; i++) {
        assert_int_equal(a[i].reached, b[i].reached);
        assert_int_equal(a[i].target, b[i].target);
    }
    assert_int_equal(ea, 63);
    assert_int_equal(eb, 63);
    /* the best at rung 0 is the one that reached the last rung */
    int best = 0;
    for (int i = 1; i < 27; i++)
        if (value_of(i, 0) > value_of(best, 0))
            best = i;
    assert_int_equal(a[best].reached, 2);
    /* asha: successive halving's budget while new trials remain (all 27
     * start before any trial goes on past the cap), then the trials the
     * cap kept out; its winner reached the end too */
    assert_int_equal(simulate(SWEEP_SEARCH_ASHA, 0, a, &ea), 0);
    assert_true(ea >= 63 && ea <= 89);
    int at_end = 0, at_1 = 0;
    for (int i = 0; i < 27; i++) {
        at_end += a[i].reached == 2;
        at_1 += a[i].reached >= 1;
    }
    assert_true(at_1 >= 9 && at_end >= 3 && at_end < at_1);
    assert_int_equal(a[best].reached, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rungs_of),
        cmocka_unit_test(test_sha_decisions),
        cmocka_unit_test(test_asha_decisions),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_whole_search),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
