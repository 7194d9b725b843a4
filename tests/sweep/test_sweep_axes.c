/* The axes that change a trial's network and input: grid.head, its parts
 * grid.dense_units and grid.dropout, grid.augment and grid.image_size.
 * What each trial gets, that a value equal to the sweep-wide setting keeps
 * the trial's id and key, the feature-cache groups they make, the random
 * draws, and every bad value with its key path and line. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sweep/sweep.h"

/* Lines 1-8; grid: keys follow from line 9. */
#define HEAD                                        \
    "data: {train_dir: d, validation_split: 0.2, image_size: 96}\n" \
    "weights: {mobilenet_v2: m.tlm, inception_v3: i.tlm}\n"         \
    "model:\n"                                                      \
    "  head: [global_average_pooling, {dense: 128, activation: relu}, {dropout: 0.2}]\n" \
    "epochs: 2\n"                                                   \
    "out: o\n"                                                      \
    "grid:\n"                                                       \
    "  backbone: mobilenet_v2\n"
#define MODEL_HEAD "[global_average_pooling, {dense: 128, activation: relu}, {dropout: 0.2}]"
#define RANDOM "search: {method: random, trials: 6, seed: 5}\n"

static void parse_ok(sweep *s, const char *text)
{
    tl_err e = {0};
    if (sweep_parse(s, "t.yaml", text, strlen(text), &e))
        fail_msg("%s", e.msg);
}

/* Trial i of s with the same values as the one-trial base sweep keeps its id and key. */
static void assert_same_trial(const sweep *s, size_t i, const sweep *base)
{
    assert_string_equal(s->trials[i].id, base->trials[0].id);
    assert_true(s->trials[i].key == base->trials[0].key);
}

static void assert_head(const sweep *s, size_t i, const sweep_head_op *want, int n)
{
    sweep_head_op ops[SWEEP_MAX_HEAD_OPS];
    assert_int_equal(sweep_trial_head(s, &s->trials[i], ops), n);
    for (int k = 0; k < n; k++) {
        assert_int_equal(ops[k].kind, want[k].kind);
        assert_int_equal(ops[k].units, want[k].units);
        assert_int_equal(ops[k].act, want[k].act);
        assert_true(ops[k].rate == want[k].rate);
    }
}

static void test_head_items(void **state)
{
    (void)state;
    sweep base, s;
    parse_ok(&base, HEAD);
    parse_ok(&s, HEAD "  head: [" MODEL_HEAD ", [flatten, {dense: 3}]]\n");
    assert_int_equal(s.n_trials, 2);
    /* the item equal to model.head: the trial of the file without the axis */
    assert_same_trial(&s, 0, &base);
    const sweep_head_op model[] = {{SWEEP_HEAD_GAP, 0, SWEEP_ACT_LINEAR, 0},
                                   {SWEEP_HEAD_DENSE, 128, SWEEP_ACT_RELU, 0},
                                   {SWEEP_HEAD_DROPOUT, 0, SWEEP_ACT_LINEAR, 0.2f}};
    assert_head(&s, 0, model, 3);
    const sweep_head_op flat[] = {{SWEEP_HEAD_FLATTEN, 0, SWEEP_ACT_LINEAR, 0},
                                  {SWEEP_HEAD_DENSE, 3, SWEEP_ACT_LINEAR, 0}};
    assert_head(&s, 1, flat, 2);
    char want[160];
    snprintf(want, sizeof want, "%s-hflat_d3", base.trials[0].id);
    assert_string_equal(s.trials[1].id, want);
    assert_true(s.trials[1].key != base.trials[0].key);
    char text[128];
    sweep_head_op ops[SWEEP_MAX_HEAD_OPS];
    sweep_head_str(ops, sweep_trial_head(&s, &s.trials[0], ops), text, sizeof text);
    assert_string_equal(text, "gap > dense 128 relu > dropout 0.2");
    sweep_free(&s);
    /* {choice: [...]} is the same list; the dropout rate shows in the id */
    parse_ok(&s, HEAD "  head: {choice: [[global_average_pooling, {dense: 64, activation: relu6}, "
                 "{dropout: 0.5}]]}\n");
    snprintf(want, sizeof want, "%s-hgap_d64r6_do5e-01", base.trials[0].id);
    assert_string_equal(s.trials[0].id, want);
    sweep_free(&s);
    sweep_free(&base);
}

/* dense_units x dropout: GAP -> Dense(units, relu) -> Dropout(rate), no
 * Dropout layer for a rate of 0, in the grid's order (dropout inner). */
static void test_head_parts(void **state)
{
    (void)state;
    sweep base, s;
    parse_ok(&base, HEAD);
    parse_ok(&s, HEAD "  dense_units: [64, 128]\n  dropout: [0, 0.2]\n");
    assert_int_equal(s.n_trials, 4);
    const int units[] = {64, 64, 128, 128};
    const double rates[] = {0, 0.2, 0, 0.2};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(s.trials[i].dense_units, units[i]);
        assert_true(s.trials[i].dropout == rates[i]);
        const sweep_head_op want[] = {{SWEEP_HEAD_GAP, 0, SWEEP_ACT_LINEAR, 0},
                                      {SWEEP_HEAD_DENSE, units[i], SWEEP_ACT_RELU, 0},
                                      {SWEEP_HEAD_DROPOUT, 0, SWEEP_ACT_LINEAR, (float)rates[i]}};
        assert_head(&s, i, want, rates[i] > 0 ? 3 : 2);
    }
    /* 128 and 0.2 is model.head: that trial keeps its identity */
    assert_same_trial(&s, 3, &base);
    char want[160];
    snprintf(want, sizeof want, "%s-du64-do2e-01", base.trials[0].id);
    assert_string_equal(s.trials[1].id, want);
    snprintf(want, sizeof want, "%s-du128-do0e00", base.trials[0].id);
    assert_string_equal(s.trials[2].id, want);
    sweep_free(&s);
    /* dropout alone: GAP -> Dropout(rate) */
    parse_ok(&s, HEAD "  dropout: [0.5]\n");
    const sweep_head_op gd[] = {{SWEEP_HEAD_GAP, 0, SWEEP_ACT_LINEAR, 0},
                                {SWEEP_HEAD_DROPOUT, 0, SWEEP_ACT_LINEAR, 0.5f}};
    assert_head(&s, 0, gd, 2);
    sweep_free(&s);
    sweep_free(&base);
}

static void test_augment(void **state)
{
    (void)state;
    sweep base, s;
    parse_ok(&base, HEAD);
    parse_ok(&s, HEAD "  augment: [none, light, strong, {horizontal_flip: true, contrast: 0.1}]\n");
    assert_int_equal(s.n_trials, 4);
    /* none is data.augment here (the file gives none): the same trial */
    assert_same_trial(&s, 0, &base);
    assert_false(data_augment_active(&s.trials[0].augment));
    const data_augment_cfg *l = &s.trials[1].augment, *st = &s.trials[2].augment,
                           *m = &s.trials[3].augment;
    assert_true(l->horizontal_flip && l->rotation_range == 10 && l->width_shift_range == 0.1f &&
                l->height_shift_range == 0.1f && l->zoom_range[0] == 0.9f &&
                l->zoom_range[1] == 1.1f && l->contrast == 0 && l->brightness_range[1] == 0);
    assert_true(st->horizontal_flip && st->rotation_range == 30 && st->width_shift_range == 0.2f &&
                st->zoom_range[0] == 0.8f && st->brightness_range[0] == 0.8f &&
                st->brightness_range[1] == 1.2f && st->contrast == 0.2f);
    assert_true(m->horizontal_flip && m->contrast == 0.1f && m->rotation_range == 0);
    char want[160], text[160];
    snprintf(want, sizeof want, "%s-auglight", base.trials[0].id);
    assert_string_equal(s.trials[1].id, want);
    assert_non_null(strstr(s.trials[3].id, "-aug"));
    sweep_augment_str(&s, &s.trials[2], text, sizeof text);
    assert_string_equal(text, "strong");
    sweep_augment_str(&s, &s.trials[3], text, sizeof text);
    assert_string_equal(text, "flip contrast 0.1");
    /* augmented trials run the backbone every epoch: no shared cache */
    assert_true(s.trials[0].cache_group >= 0);
    for (size_t i = 1; i < 4; i++)
        assert_int_equal(s.trials[i].cache_group, -1);
    sweep_free(&s);
    sweep_free(&base);
}

/* One feature cache per size, and per pooling when heads differ in it. */
static void test_image_size_caches(void **state)
{
    (void)state;
    sweep base, s;
    parse_ok(&base, HEAD);
    parse_ok(&s, HEAD "  image_size: [96, 128]\n  learning_rate: [1e-3, 1e-4]\n");
    assert_int_equal(s.n_trials, 4);
    assert_same_trial(&s, 0, &base);
    assert_int_equal(s.trials[1].image_size, 128);
    char want[160];
    snprintf(want, sizeof want, "%s-sz128", base.trials[0].id);
    assert_string_equal(s.trials[1].id, want);
    assert_int_equal(s.n_cache_groups, 2);
    assert_int_equal(s.trials[0].cache_group, s.trials[2].cache_group);
    assert_int_equal(s.trials[1].cache_group, s.trials[3].cache_group);
    assert_true(s.trials[0].cache_group != s.trials[1].cache_group);
    assert_non_null(strstr(s.cache_groups[s.trials[0].cache_group].text, "|96|"));
    assert_non_null(strstr(s.cache_groups[s.trials[1].cache_group].text, "|128|"));
    /* the size-96 group is the one the file without the axis has */
    assert_true(s.cache_groups[s.trials[0].cache_group].key == base.cache_groups[0].key);
    sweep_free(&s);
    parse_ok(&s, HEAD "  head: [" MODEL_HEAD ", [flatten, {dense: 3}]]\n");
    assert_int_equal(s.n_cache_groups, 2);
    assert_non_null(strstr(s.cache_groups[s.trials[1].cache_group].text, "|unpooled"));
    assert_true(s.cache_groups[s.trials[0].cache_group].key == base.cache_groups[0].key);
    sweep_free(&s);
    sweep_free(&base);
}

/* search: random draws dense_units and dropout within their ranges and
 * picks heads, presets and sizes from their lists. */
static void test_random(void **state)
{
    (void)state;
    sweep s;
    parse_ok(&s, HEAD "  dense_units: {int_uniform: [16, 64]}\n  dropout: {uniform: [0.1, 0.5]}\n"
                 "  augment: [none, strong]\n  image_size: {choice: [96, 128]}\n" RANDOM);
    assert_int_equal(s.n_trials, 6);
    int sizes[2] = {0, 0};
    for (size_t i = 0; i < s.n_trials; i++) {
        const sweep_trial *t = &s.trials[i];
        assert_true(t->dense_units >= 16 && t->dense_units <= 64);
        assert_true(t->dropout >= 0.1 && t->dropout <= 0.5);
        assert_true(t->image_size == 96 || t->image_size == 128);
        sizes[t->image_size == 128]++;
        assert_non_null(strstr(t->id, "-du"));
    }
    assert_true(sizes[0] > 0 && sizes[1] > 0);
    /* the same seed draws the same trials */
    sweep again;
    parse_ok(&again, HEAD "  dense_units: {int_uniform: [16, 64]}\n  dropout: {uniform: [0.1, 0.5]}\n"
                     "  augment: [none, strong]\n  image_size: {choice: [96, 128]}\n" RANDOM);
    for (size_t i = 0; i < s.n_trials; i++)
        assert_true(s.trials[i].key == again.trials[i].key);
    sweep_free(&again);
    sweep_free(&s);
}

typedef struct {
    const char *grid;      /* grid: lines after backbone (line 9 on), or from it (8 on) */
    int line;
    const char *path;
    const char *expect;
} bad_case;

static const bad_case bad_cases[] = {
    /* head: whole heads, each a list */
    {"  head: [global_average_pooling]\n", 9, "grid.head[0]",
     "expected a head: a list such as [global_average_pooling, {dense: 128, activation: relu}], "
     "got global_average_pooling"},
    {"  head: [[global_avg_pooling]]\n", 9, "grid.head[0][0]",
     "unknown head layer 'global_avg_pooling' (expected one of global_average_pooling, flatten)"},
    {"  head: [[global_average_pooling, {dense: 0}]]\n", 9, "grid.head[0][1].dense",
     "expected units: a whole number in [1, 1048576], got 0"},
    {"  head: [[global_average_pooling, {dropout: 1}]]\n", 9, "grid.head[0][1].dropout",
     "expected a rate in [0, 1), got 1"},
    {"  head: [[global_average_pooling, {dense: 8, activation: tanh}]]\n", 9,
     "grid.head[0][1].activation", "unknown activation 'tanh'"},
    {"  head: [[flatten], [flatten]]\n", 9, "grid.head[1]", "duplicate value (same as grid.head[0])"},
    {"  head: {uniform: [1, 2]}\n", 9, "grid.head.uniform", "this axis does not sample uniform"},
    /* head and its parts in one file */
    {"  head: [[flatten]]\n  dense_units: [64]\n", 10, "grid.dense_units",
     "give grid.head or its parts (grid.dense_units, grid.dropout), not both"},
    {"  head: [[flatten]]\n  dropout: [0.2]\n", 10, "grid.dropout",
     "give grid.head or its parts (grid.dense_units, grid.dropout), not both"},
    /* dense_units */
    {"  dense_units: [64, 0]\n", 9, "grid.dense_units[1]",
     "expected units: a whole number in [1, 1048576], got 0"},
    {"  dense_units: [12.5]\n", 9, "grid.dense_units[0]", "got 12.5"},
    {"  dense_units: [64, 64]\n", 9, "grid.dense_units[1]", "duplicate value (same as grid.dense_units[0])"},
    {"  dense_units: {int_uniform: [64, 16]}\n" RANDOM, 9, "grid.dense_units.int_uniform",
     "expected [low, high] with low < high, got [64, 16]"},
    {"  dense_units: {uniform: [16, 64]}\n" RANDOM, 9, "grid.dense_units.uniform",
     "this axis does not sample uniform"},
    {"  dense_units: {int_uniform: [16, 64]}\n", 9, "grid.dense_units.int_uniform",
     "expected a list with search method grid"},
    /* dropout */
    {"  dropout: [0.2, 1]\n", 9, "grid.dropout[1]", "expected a number in [0, 1), got 1"},
    {"  dropout: [-0.1]\n", 9, "grid.dropout[0]", "expected a number in [0, 1), got -0.1"},
    {"  dropout: {uniform: [0.5, 0.1]}\n" RANDOM, 9, "grid.dropout.uniform",
     "expected [low, high] with low < high"},
    {"  dropout: {log_uniform: [0.1, 0.5]}\n" RANDOM, 9, "grid.dropout.log_uniform",
     "this axis does not sample log_uniform"},
    /* augment */
    {"  augment: [none, lite]\n", 9, "grid.augment[1]",
     "unknown augment preset 'lite' (expected one of none, light, strong)"},
    {"  augment: [[light]]\n", 9, "grid.augment[0]",
     "expected none, light, strong or a mapping as data.augment takes, got a list"},
    {"  augment: [{rotation_range: 200}]\n", 9, "grid.augment[0].rotation_range",
     "expected degrees in [0, 180], got 200"},
    {"  augment: [{flip: true}]\n", 9, "grid.augment[0].flip", "unknown key"},
    {"  augment: [light, {horizontal_flip: true, rotation_range: 10, width_shift_range: 0.1, "
     "height_shift_range: 0.1, zoom_range: 0.1}]\n", 9, "grid.augment[1]",
     "duplicate value (same as grid.augment[0])"},
    /* image_size, per value against every backbone */
    {"  image_size: [96, 16]\n", 9, "grid.image_size[1]",
     "expected a whole number of pixels >= 32, got 16"},
    {"  image_size: [96, 96]\n", 9, "grid.image_size[1]", "duplicate value (same as grid.image_size[0])"},
    {"  backbone: [mobilenet_v2, inception_v3]\n  image_size: [96, 64]\n", 9, "grid.image_size[1]",
     "expected at least 75 for inception_v3, got 64"},
    {"  image_size: {int_uniform: [64, 128]}\n" RANDOM, 9, "grid.image_size.int_uniform",
     "this axis does not sample int_uniform"},
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const bad_case *c = &bad_cases[i];
        char text[1024];
        /* a case that gives its own backbone replaces the base's last line */
        const char *base = HEAD;
        size_t n = strlen(base);
        if (!strncmp(c->grid, "  backbone:", 11))
            n -= strlen("  backbone: mobilenet_v2\n");
        snprintf(text, sizeof text, "%.*s%s", (int)n, base, c->grid);
        sweep s;
        tl_err e = {0};
        if (sweep_parse(&s, "t.yaml", text, strlen(text), &e) == 0)
            fail_msg("case %zu parsed, expected '%s'", i, c->expect);
        char want[256];
        snprintf(want, sizeof want, "t.yaml:%d:", c->line);
        char path[128];
        snprintf(path, sizeof path, ": %s: ", c->path);
        if (strncmp(e.msg, want, strlen(want)) || !strstr(e.msg, path) ||
            !strstr(e.msg, c->expect) || strchr(e.msg, '\n'))
            fail_msg("case %zu: got '%s', want '%s ...%s... %s'", i, e.msg, want, path, c->expect);
        assert_null(s.trials);
        sweep_free(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_items),
        cmocka_unit_test(test_head_parts),
        cmocka_unit_test(test_augment),
        cmocka_unit_test(test_image_size_caches),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
