/* search: random and sampled axes: draws within their bounds and spread
 * over the range, reproducible from the seed (the coordinator and every
 * worker parse the file and must get the same trials in the same order),
 * other seeds other trials, and {choice: LIST} the same as LIST. The
 * refusals are in test_sweep.c's table of bad files. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sweep/sweep.h"

#define HEAD                          \
    "name: t\n"                       \
    "data:\n"                         \
    "  train_dir: d\n"                \
    "  validation_split: 0.2\n"       \
    "weights:\n"                      \
    "  mobilenet_v2: m.tlm\n"         \
    "  resnet50: r.tlm\n"             \
    "epochs: 3\n"                     \
    "out: o\n"

#define SPACE                                          \
    "grid:\n"                                          \
    "  backbone: [mobilenet_v2, resnet50]\n"           \
    "  mode: {choice: [frozen, fine_tune]}\n"          \
    "  learning_rate: {log_uniform: [1.0e-5, 1.0e-1]}\n" \
    "  batch_size: {int_uniform: [8, 64]}\n"           \
    "  momentum: {uniform: [0.5, 0.99]}\n"             \
    "  optimizer: [adam, sgd]\n"

static void parse_ok(sweep *s, const char *text)
{
    tl_err e = {0};
    if (sweep_parse(s, "t.yaml", text, strlen(text), &e))
        fail_msg("%s", e.msg);
}

static void load_random(sweep *s, int trials, unsigned seed)
{
    char text[2048];
    snprintf(text, sizeof text, HEAD SPACE "search: {method: random, trials: %d, seed: %u}\n", trials,
             seed);
    parse_ok(s, text);
}

/* The value of a distribution at u: the ends, the log midpoint, rounding. */
static void test_dist_value(void **state)
{
    (void)state;
    static const struct {
        sweep_dist d;
        double u, want;
    } cases[] = {
        {{SWEEP_DIST_LOG_UNIFORM, 1e-5, 1e-1}, 0.0, 1e-5},
        {{SWEEP_DIST_LOG_UNIFORM, 1e-5, 1e-1}, 0.5, 1e-3},
        {{SWEEP_DIST_LOG_UNIFORM, 1e-5, 1e-1}, 0.25, 1e-4},
        {{SWEEP_DIST_LOG_UNIFORM, 1e-5, 1e-1}, 0.9999999999, 1e-1},
        {{SWEEP_DIST_UNIFORM, 0.5, 0.9}, 0.0, 0.5},
        {{SWEEP_DIST_UNIFORM, 0.5, 0.9}, 0.5, 0.7},
        {{SWEEP_DIST_UNIFORM, 0.0, 1.0}, 1.0 / 3, 0.333333},   /* 6 significant digits */
        {{SWEEP_DIST_INT_UNIFORM, 8, 64}, 0.0, 8},
        {{SWEEP_DIST_INT_UNIFORM, 8, 64}, 0.9999999999, 64},   /* both ends included */
        {{SWEEP_DIST_INT_UNIFORM, 8, 64}, 0.5, 36},
        {{SWEEP_DIST_INT_UNIFORM, 1, 2}, 0.49, 1},
        {{SWEEP_DIST_INT_UNIFORM, 1, 2}, 0.5, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double v = sweep_dist_value(&cases[i].d, cases[i].u);
        if (fabs(v - cases[i].want) > 1e-12 * fabs(cases[i].want))
            fail_msg("case %zu: %.17g, want %.17g", i, v, cases[i].want);
    }
    /* u in [0, 1), a pure function of its arguments */
    for (int k = 0; k < 1000; k++) {
        double u = sweep_draw_u(7, (uint64_t)k, 0, 2);
        assert_true(u >= 0 && u < 1);
        assert_true(u == sweep_draw_u(7, (uint64_t)k, 0, 2));
        assert_true(u != sweep_draw_u(7, (uint64_t)k, 1, 2));
    }
}

/* 400 draws: every value within its bounds, each learning-rate decade of
 * [1e-5, 1e-1] holding about a quarter, both batch-size ends reached, ids
 * unique and showing the drawn value whole, keys unique. */
static void test_random_bounds(void **state)
{
    (void)state;
    sweep s;
    load_random(&s, 400, 3);
    assert_int_equal(s.n_trials, 400);
    int decade[4] = {0}, lo_b = 0, hi_b = 0, nbb[2] = {0};
    for (size_t i = 0; i < s.n_trials; i++) {
        const sweep_trial *t = &s.trials[i];
        assert_int_equal(t->index, (int)i);
        assert_true(t->learning_rate >= 1e-5 && t->learning_rate <= 1e-1);
        assert_true(t->batch_size >= 8 && t->batch_size <= 64);
        assert_true(t->momentum >= 0.5 && t->momentum <= 0.99);
        assert_true(t->mode.kind == SWEEP_FROZEN || t->mode.kind == SWEEP_FINE_TUNE);
        int d = (int)floor(log10(t->learning_rate) + 5);
        decade[d > 3 ? 3 : d]++;
        lo_b += t->batch_size == 8;
        hi_b += t->batch_size == 64;
        nbb[strcmp(t->backbone, "mobilenet_v2") != 0]++;
        /* the id carries the value as the trial trains it */
        const char *p = strstr(t->id, "-lr");
        assert_non_null(p);
        assert_true(strtod(p + 3, NULL) == t->learning_rate);
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(s.trials[j].id, t->id);
            assert_true(s.trials[j].key != t->key);
        }
    }
    for (int d = 0; d < 4; d++)
        if (decade[d] < 70 || decade[d] > 130)
            fail_msg("decade 1e%d holds %d of 400 draws", d - 5, decade[d]);
    assert_true(lo_b > 0 && hi_b > 0);
    assert_true(nbb[0] > 150 && nbb[1] > 150);
    sweep_free(&s);
}

/* The same seed gives the same trials in the same order (ids and keys),
 * however often the file is parsed; another seed other trials; and the
 * first trials do not change when more are asked for. */
static void test_random_reproducible(void **state)
{
    (void)state;
    sweep a, b, c, d;
    load_random(&a, 20, 11);
    load_random(&b, 20, 11);
    load_random(&c, 20, 12);
    load_random(&d, 40, 11);
    int same_c = 0;
    for (size_t i = 0; i < 20; i++) {
        assert_string_equal(a.trials[i].id, b.trials[i].id);
        assert_true(a.trials[i].key == b.trials[i].key);
        assert_true(a.trials[i].learning_rate == b.trials[i].learning_rate);
        assert_string_equal(a.trials[i].id, d.trials[i].id);
        assert_true(a.trials[i].key == d.trials[i].key);
        same_c += strcmp(a.trials[i].id, c.trials[i].id) == 0;
    }
    assert_int_equal(same_c, 0);
    /* without search.seed, the sweep's seed */
    sweep e;
    parse_ok(&e, HEAD SPACE "seed: 11\nsearch: {method: random, trials: 20}\n");
    for (size_t i = 0; i < 20; i++)
        assert_string_equal(e.trials[i].id, a.trials[i].id);
    sweep_free(&a);
    sweep_free(&b);
    sweep_free(&c);
    sweep_free(&d);
    sweep_free(&e);
}

/* {choice: LIST} is LIST: in a grid the same trials, ids and keys; a
 * random search over lists only draws distinct configurations and refuses
 * more trials than the space has. */
static void test_choice_is_list(void **state)
{
    (void)state;
    sweep a, b;
    parse_ok(&a, HEAD "grid:\n  backbone: mobilenet_v2\n  learning_rate: [1e-3, 1e-4]\n"
                      "  optimizer: [adam, sgd]\n");
    parse_ok(&b, HEAD "grid:\n  backbone: {choice: [mobilenet_v2]}\n"
                      "  learning_rate: {choice: [1e-3, 1e-4]}\n  optimizer: {choice: [adam, sgd]}\n"
                      "search: {method: grid}\n");
    assert_int_equal(a.n_trials, 4);
    assert_int_equal(b.n_trials, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(a.trials[i].id, b.trials[i].id);
        assert_true(a.trials[i].key == b.trials[i].key);
    }
    sweep_free(&a);
    sweep_free(&b);

    sweep r;
    parse_ok(&r, HEAD "grid:\n  backbone: mobilenet_v2\n  learning_rate: [1e-3, 1e-4]\n"
                      "  optimizer: [adam, sgd]\nsearch: {method: random, trials: 4, seed: 5}\n");
    assert_int_equal(r.n_trials, 4);
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(r.trials[i].id, r.trials[j].id);
    sweep_free(&r);

    static const char five[] = HEAD "grid:\n  backbone: mobilenet_v2\n  learning_rate: [1e-3, 1e-4]\n"
                                    "  optimizer: [adam, sgd]\nsearch: {method: random, trials: 5}\n";
    tl_err e = {0};
    assert_int_equal(sweep_parse(&r, "t.yaml", five, strlen(five), &e), TL_EINVAL);
    assert_string_equal(e.msg, "t.yaml:14:34: search.trials: expected at most 4 (grid: has 4 "
                               "configurations), got 5");
    sweep_free(&r);
    static const char ints[] = HEAD "grid:\n  backbone: mobilenet_v2\n  batch_size: {int_uniform: [8, 10]}\n"
                                    "  optimizer: [adam, sgd]\nsearch: {method: random, trials: 7}\n";
    assert_int_equal(sweep_parse(&r, "t.yaml", ints, strlen(ints), &e), TL_EINVAL);
    assert_string_equal(e.msg, "t.yaml:14:34: search.trials: expected at most 6 (grid: has 6 "
                               "configurations), got 7");
    sweep_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dist_value),
        cmocka_unit_test(test_random_bounds),
        cmocka_unit_test(test_random_reproducible),
        cmocka_unit_test(test_choice_is_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
