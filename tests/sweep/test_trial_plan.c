/* A trial's plan (common/sweep/sweep_plan.h): every mode with and without
 * the feature cache and augmentation, every resume point of the two-stage
 * recipe, bad inputs; and the grid's cache groups and the dry run's counts
 * read from the same plans. Expected stages are written from the Keras
 * recipes the plan stands for, not copied from its output. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "common/sweep/sweep_plan.h"

#define HEAD SWEEP_STAGE_HEAD_ON_FEATURES
#define WHOLE SWEEP_STAGE_WHOLE_NET
#define NONE SWEEP_FEATURES_NONE
#define SHARED SWEEP_FEATURES_SHARED
#define ONCE SWEEP_FEATURES_ONCE
#define EVERY SWEEP_FEATURES_EVERY_EPOCH
#define LR1 SWEEP_LR_AS_GIVEN
#define LR10 SWEEP_LR_TENTH

#define FROZEN {SWEEP_FROZEN, 0, 0}
#define FT {SWEEP_FINE_TUNE, 0, 0}
#define FT_AT {SWEEP_FINE_TUNE_AT, 100, 0}
#define TWO(e1) {SWEEP_FROZEN_THEN_FINE_TUNE, 100, e1}

typedef struct {
    const char *name;
    sweep_plan_in in;
    int n;
    sweep_stage want[SWEEP_PLAN_MAX_STAGES];
} plan_case;

/* in: mode, epochs, augment, cache_allowed, cache_shared, resuming, resume_epoch
 * stage: kind, first, last, lr divisor, features, resume */
static const plan_case cases[] = {
    {"frozen on the shared cache", {FROZEN, 5, 0, 1, 1, 0, 0}, 1,
     {{HEAD, 1, 5, LR1, SHARED, 0}}},
    {"frozen, no shared cache: extracted here once", {FROZEN, 5, 0, 1, 0, 0, 0}, 1,
     {{HEAD, 1, 5, LR1, ONCE, 0}}},
    {"frozen with augmentation: train features every epoch", {FROZEN, 5, 1, 1, 1, 0, 0}, 1,
     {{HEAD, 1, 5, LR1, EVERY, 0}}},
    {"frozen, feature_cache off: the Keras way", {FROZEN, 5, 0, 0, 0, 0, 0}, 1,
     {{WHOLE, 1, 5, LR1, NONE, 0}}},
    {"frozen, feature_cache off wins over a given cache", {FROZEN, 5, 0, 0, 1, 0, 0}, 1,
     {{WHOLE, 1, 5, LR1, NONE, 0}}},
    {"frozen, feature_cache off, augmentation", {FROZEN, 5, 1, 0, 0, 0, 0}, 1,
     {{WHOLE, 1, 5, LR1, NONE, 0}}},
    {"fine_tune ignores the cache", {FT, 4, 0, 1, 1, 0, 0}, 1, {{WHOLE, 1, 4, LR1, NONE, 0}}},
    {"fine_tune_at ignores the cache", {FT_AT, 4, 1, 1, 1, 0, 0}, 1,
     {{WHOLE, 1, 4, LR1, NONE, 0}}},
    {"two-stage on the shared cache", {TWO(2), 5, 0, 1, 1, 0, 0}, 2,
     {{HEAD, 1, 2, LR1, SHARED, 0}, {WHOLE, 3, 5, LR10, NONE, 0}}},
    {"two-stage, no shared cache", {TWO(2), 5, 0, 1, 0, 0, 0}, 2,
     {{HEAD, 1, 2, LR1, ONCE, 0}, {WHOLE, 3, 5, LR10, NONE, 0}}},
    {"two-stage, feature_cache off: stage 1 still on features", {TWO(1), 2, 0, 0, 0, 0, 0}, 2,
     {{HEAD, 1, 1, LR1, ONCE, 0}, {WHOLE, 2, 2, LR10, NONE, 0}}},
    {"two-stage with augmentation", {TWO(3), 4, 1, 1, 1, 0, 0}, 2,
     {{HEAD, 1, 3, LR1, EVERY, 0}, {WHOLE, 4, 4, LR10, NONE, 0}}},
    /* resume points */
    {"frozen resumed mid-way", {FROZEN, 5, 0, 1, 1, 1, 3}, 1, {{HEAD, 1, 5, LR1, SHARED, 1}}},
    {"frozen resumed after its last epoch", {FROZEN, 5, 0, 1, 1, 1, 5}, 1,
     {{HEAD, 1, 5, LR1, SHARED, 1}}},
    {"fine_tune resumed", {FT, 5, 0, 1, 1, 1, 2}, 1, {{WHOLE, 1, 5, LR1, NONE, 1}}},
    {"two-stage resumed in stage 1", {TWO(2), 5, 0, 1, 1, 1, 1}, 2,
     {{HEAD, 1, 2, LR1, SHARED, 1}, {WHOLE, 3, 5, LR10, NONE, 0}}},
    {"two-stage resumed at the end of stage 1", {TWO(2), 5, 0, 1, 1, 1, 2}, 2,
     {{HEAD, 1, 2, LR1, SHARED, 1}, {WHOLE, 3, 5, LR10, NONE, 0}}},
    {"two-stage resumed in stage 2 skips stage 1", {TWO(2), 5, 0, 1, 1, 1, 3}, 1,
     {{WHOLE, 3, 5, LR10, NONE, 1}}},
    {"two-stage resumed after its last epoch", {TWO(2), 5, 0, 1, 1, 1, 5}, 1,
     {{WHOLE, 3, 5, LR10, NONE, 1}}},
    /* the snapshot loader refuses these; the plan still says where */
    {"a snapshot past the end goes to the last stage", {TWO(2), 5, 0, 1, 1, 1, 9}, 1,
     {{WHOLE, 3, 5, LR10, NONE, 1}}},
    {"a snapshot of epoch 0 goes to the first stage", {TWO(2), 5, 0, 1, 1, 1, 0}, 2,
     {{HEAD, 1, 2, LR1, SHARED, 1}, {WHOLE, 3, 5, LR10, NONE, 0}}},
};

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const plan_case *c = &cases[i];
        sweep_plan p;
        tl_err e = {0};
        int rc = sweep_plan_make(&p, &c->in, &e);
        if (rc)
            fail_msg("%s: %s", c->name, e.msg);
        if (p.n != c->n)
            fail_msg("%s: %d stages, expected %d", c->name, p.n, c->n);
        for (int k = 0; k < p.n; k++) {
            const sweep_stage *g = &p.stage[k], *w = &c->want[k];
            if (g->kind != w->kind || g->first != w->first || g->last != w->last ||
                g->lr_divisor != w->lr_divisor || g->features != w->features ||
                g->resume != w->resume)
                fail_msg("%s: stage %d is {%d, %d, %d, %d, %d, %d}, expected {%d, %d, %d, %d, "
                         "%d, %d}",
                         c->name, k, g->kind, g->first, g->last, g->lr_divisor, g->features,
                         g->resume, w->kind, w->first, w->last, w->lr_divisor, w->features,
                         w->resume);
        }
    }
}

static void test_queries(void **state)
{
    (void)state;
    sweep_plan p;
    sweep_plan_in two = {TWO(2), 5, 0, 1, 1, 0, 0};
    assert_int_equal(sweep_plan_make(&p, &two, NULL), 0);
    assert_true(sweep_plan_uses_shared_cache(&p));
    assert_true(sweep_plan_has_whole_net(&p));
    assert_int_equal(sweep_plan_own_epochs(&p), 3);

    sweep_plan_in frozen = {FROZEN, 5, 0, 1, 1, 0, 0};
    assert_int_equal(sweep_plan_make(&p, &frozen, NULL), 0);
    assert_true(sweep_plan_uses_shared_cache(&p));
    assert_false(sweep_plan_has_whole_net(&p));
    assert_int_equal(sweep_plan_own_epochs(&p), 0);

    frozen.augment = 1; /* features of its own, every epoch */
    assert_int_equal(sweep_plan_make(&p, &frozen, NULL), 0);
    assert_false(sweep_plan_uses_shared_cache(&p));
    assert_false(sweep_plan_has_whole_net(&p));
    assert_int_equal(sweep_plan_own_epochs(&p), 5);

    sweep_plan_in ft = {FT, 4, 0, 1, 1, 0, 0};
    assert_int_equal(sweep_plan_make(&p, &ft, NULL), 0);
    assert_false(sweep_plan_uses_shared_cache(&p));
    assert_int_equal(sweep_plan_own_epochs(&p), 4);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    static const struct {
        sweep_plan_in in;
        const char *frag;
    } bad[] = {
        {{FROZEN, 0, 0, 1, 1, 0, 0}, "epochs >= 1"},
        {{FT, -3, 0, 1, 1, 0, 0}, "epochs >= 1"},
        {{TWO(5), 5, 0, 1, 1, 0, 0}, "5 frozen epochs leave none of 5"},
        {{TWO(7), 5, 0, 1, 1, 0, 0}, "7 frozen epochs leave none of 5"},
        {{TWO(0), 5, 0, 1, 1, 0, 0}, "0 frozen epochs"},
        {{{(sweep_mode_kind)99, 0, 0}, 5, 0, 1, 1, 0, 0}, "unknown mode 99"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sweep_plan p;
        tl_err e = {0};
        assert_int_equal(sweep_plan_make(&p, &bad[i].in, &e), TL_EINVAL);
        tu_assert_one_line_error(&e, bad[i].frag);
        assert_int_equal(p.n, 0);
    }
}

/* The grid's cache groups are the trials whose plan reads the shared cache,
 * with the cache on, off, and under augmentation. */
static void test_grid_groups(void **state)
{
    (void)state;
    /* v: 0 the cache on, 1 feature_cache: false, 2 augmentation */
    for (int v = 0; v < 3; v++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "data: {train_dir: d, validation_split: 0.1%s}\n"
                 "weights: {mobilenet_v2: m.tlm}\n"
                 "grid:\n"
                 "  backbone: mobilenet_v2\n"
                 "  mode: [frozen, fine_tune, {fine_tune_at: 10},\n"
                 "         {frozen_then_fine_tune: {fine_tune_at: 10, epochs: 1}}]\n"
                 "  learning_rate: [1e-3, 1e-4]\n"
                 "  optimizer: adam\n"
                 "  batch_size: 16\n"
                 "epochs: 3\n"
                 "out: o\n%s",
                 v == 2 ? ", augment: {horizontal_flip: true}" : "",
                 v == 1 ? "feature_cache: false\n" : "");
        sweep s;
        tl_err e = {0};
        if (sweep_parse(&s, "t.yaml", text, strlen(text), &e))
            fail_msg("%s", e.msg);
        assert_int_equal(s.n_trials, 8);
        int cached = 0;
        for (size_t i = 0; i < s.n_trials; i++) {
            const sweep_trial *t = &s.trials[i];
            sweep_plan p;
            assert_int_equal(sweep_trial_plan(&s, t, &p, NULL), 0);
            int frozen_first = t->mode.kind == SWEEP_FROZEN ||
                               t->mode.kind == SWEEP_FROZEN_THEN_FINE_TUNE;
            /* the cache serves frozen stages, only when on and without augmentation */
            assert_int_equal(sweep_plan_uses_shared_cache(&p), v == 0 && frozen_first);
            assert_int_equal(sweep_trial_uses_cache(t), sweep_plan_uses_shared_cache(&p));
            cached += sweep_trial_uses_cache(t);
        }
        assert_int_equal(cached, v == 0 ? 4 : 0);
        assert_int_equal(s.n_cache_groups, v == 0 ? 1 : 0);
        sweep_free(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_queries),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_grid_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
