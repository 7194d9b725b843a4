/* Early stopping as Keras 3's EarlyStopping decides it
 * (keras/src/callbacks/early_stopping.py), on a table of monitored values
 * worked by hand through its on_epoch_end; and the early_stopping: key. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/sweep/early_stop.h"

typedef struct {
    int mode_max, patience;
    double min_delta;
    int n;
    double v[8];
    int stop, best;   /* stopped after epoch `stop` (0: ran on), kept epoch `best` */
} es_case;

static const es_case cases[] = {
    /* stops when wait reaches patience: 2 epochs after the best */
    {0, 2, 0, 5, {1.0, 0.9, 0.95, 0.97, 0.96}, 4, 2},
    /* patience 0: the first epoch that does not improve, never the first */
    {0, 0, 0, 3, {1.0, 0.9, 0.95}, 3, 2},
    {0, 0, 0, 2, {1.0, 1.1}, 2, 1},
    {0, 0, 0, 1, {1.0}, 0, 1},
    /* improving every epoch: never */
    {0, 1, 0, 5, {5, 4, 3, 2, 1}, 0, 5},
    /* min_delta: smaller gains are no gains */
    {0, 2, 0.1, 5, {1.0, 0.95, 0.92, 0.85, 0.8}, 3, 1},
    {0, 3, 0.1, 5, {1.0, 0.95, 0.92, 0.85, 0.8}, 0, 4},
    /* a gain of exactly min_delta is none */
    {0, 0, 0.25, 2, {1.0, 0.75}, 2, 1},
    /* max (accuracy): equal is no improvement */
    {1, 2, 0, 5, {0.5, 0.6, 0.6, 0.55, 0.7}, 4, 2},
    {1, 1, 0.05, 3, {0.5, 0.54, 0.56}, 2, 1},
    /* NaN never improves */
    {0, 1, 0, 3, {1.0, NAN, NAN}, 2, 1},
    /* patience longer than the run */
    {0, 10, 0, 4, {1, 2, 3, 4}, 0, 1},
    /* an improvement resets the wait */
    {0, 3, 0, 7, {1.0, 1.1, 1.2, 0.5, 0.6, 0.7, 0.8}, 7, 4},
};

static void test_keras_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const es_case *c = &cases[i];
        sweep_early_stop es = {.enabled = 1, .patience = c->patience, .min_delta = c->min_delta,
                               .mode_max = c->mode_max, .restore_best_weights = 1};
        int best = -1;
        int stop = sweep_early_stop_at(&es, c->v, c->n, &best);
        if (stop != c->stop || best != c->best)
            fail_msg("case %zu: stopped %d kept %d, want %d and %d", i, stop, best, c->stop, c->best);
        /* a resumed trial decides from its first k epochs as the whole run did */
        for (int k = 1; k <= c->n; k++) {
            int want = c->stop && c->stop <= k ? c->stop : 0;
            if (sweep_early_stop_at(&es, c->v, k, NULL) != want)
                fail_msg("case %zu after %d epochs: not %d", i, k, want);
        }
    }
}

#define FILE_HEAD \
    "data: {train_dir: d, validation_split: 0.2}\nweights: {mobilenet_v2: m}\n" \
    "grid: {backbone: mobilenet_v2}\nepochs: 5\nout: o\n"

static void test_key(void **state)
{
    (void)state;
    sweep s, plain;
    tl_err e = {0};
    static const char with[] = FILE_HEAD "early_stopping: {patience: 2, min_delta: 0.01}\n";
    static const char acc[] = FILE_HEAD "early_stopping: {monitor: val_accuracy}\n";
    if (sweep_parse(&s, "t.yaml", with, strlen(with), &e))
        fail_msg("%s", e.msg);
    assert_true(s.early_stop.enabled);
    assert_int_equal(s.early_stop.monitor, SWEEP_VAL_LOSS);   /* Keras's default */
    assert_int_equal(s.early_stop.mode_max, 0);
    assert_int_equal(s.early_stop.patience, 2);
    assert_true(s.early_stop.min_delta == 0.01);
    assert_int_equal(s.early_stop.restore_best_weights, 1);
    assert_int_equal(sweep_parse(&plain, "t.yaml", FILE_HEAD, strlen(FILE_HEAD), &e), 0);
    assert_false(plain.early_stop.enabled);
    /* another trial: early stopping changes its result */
    assert_string_equal(s.trials[0].id, plain.trials[0].id);
    assert_true(s.trials[0].key != plain.trials[0].key);
    sweep_free(&s);
    sweep_free(&plain);
    assert_int_equal(sweep_parse(&s, "t.yaml", acc, strlen(acc), &e), 0);
    assert_int_equal(s.early_stop.mode_max, 1);
    assert_int_equal(s.early_stop.patience, 0);
    sweep_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keras_table),
        cmocka_unit_test(test_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
