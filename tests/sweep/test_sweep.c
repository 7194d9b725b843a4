/* The sweep file: the demo example, scalars as one-element lists, every
 * class of bad input with its key path and line, and a mutation loop that
 * must never crash (run it under ASan) and always parse or give one line. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cpu.h"
#include "common/sweep/search.h"
#include "common/sweep/sweep.h"
#include "worker/nn/backend.h"

/* The repository root, from this file's path (CMake compiles it by its absolute path). */
static void repo_path(char *out, size_t n, const char *rel)
{
    const char *me = __FILE__;
    const char *tail = strstr(me, "tests/sweep/test_sweep.c");
    assert_non_null(tail);
    snprintf(out, n, "%.*s%s", (int)(tail - me), me, rel);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 16) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static void test_example(void **state)
{
    (void)state;
    char path[1024];
    repo_path(path, sizeof path, "examples/fashion-mnist.yaml");
    sweep s;
    tl_err e = {0};
    int rc = sweep_load(&s, path, &e);
    if (rc)
        fail_msg("%s", e.msg);
    assert_string_equal(s.name, "fashion-demo");
    assert_string_equal(s.train_dir, "data/fashion/train");
    assert_true(s.validation_split == 0.2);
    assert_int_equal(s.image_size, 96);
    assert_int_equal(s.data_seed, 42);
    assert_int_equal(s.n_head, 3);
    assert_int_equal(s.head[0].kind, SWEEP_HEAD_GAP);
    assert_int_equal(s.head[1].kind, SWEEP_HEAD_DENSE);
    assert_int_equal(s.head[1].units, 128);
    assert_int_equal(s.head[1].act, SWEEP_ACT_RELU);
    assert_int_equal(s.head[2].kind, SWEEP_HEAD_DROPOUT);
    assert_true(s.head[2].rate == 0.2f);
    assert_int_equal(s.epochs, 5);
    assert_int_equal(s.metric, SWEEP_VAL_ACCURACY);
    assert_int_equal(s.goal_max, 1);
    assert_string_equal(s.out, "runs/fashion-demo");
    assert_true(s.worker_timeout == SWEEP_WORKER_TIMEOUT_DEFAULT); /* not in the file */
    assert_int_equal(s.ranks_per_trial, SWEEP_RANKS_AUTO);        /* the default */

    /* backbone, mode, learning_rate, optimizer, batch_size: outermost first */
    static const char *const ids[] = {
        "mobilenet_v2-frozen-lr1e-03-adam-b32", "mobilenet_v2-frozen-lr1e-04-adam-b32",
        "mobilenet_v2-frozen-lr1e-05-adam-b32", "mobilenet_v2-ft100-lr1e-03-adam-b32",
        "mobilenet_v2-ft100-lr1e-04-adam-b32",  "mobilenet_v2-ft100-lr1e-05-adam-b32",
    };
    assert_int_equal(s.n_trials, 6);
    for (size_t i = 0; i < 6; i++) {
        const sweep_trial *t = &s.trials[i];
        assert_string_equal(t->id, ids[i]);
        assert_int_equal(t->index, (int)i);
        assert_string_equal(t->backbone, "mobilenet_v2");
        assert_string_equal(t->weights, "models/mobilenet_v2.tlm");
        assert_int_equal(t->batch_size, 32);
        assert_int_equal(t->epochs, 5);
        assert_int_equal(t->optimizer, SWEEP_ADAM);
        for (size_t j = 0; j < i; j++)
            assert_true(s.trials[j].key != t->key);
        for (const char *p = t->id; *p; p++)
            assert_non_null(strchr("abcdefghijklmnopqrstuvwxyz0123456789._-", *p));
    }
    assert_true(s.trials[1].learning_rate == 1e-4);
    assert_int_equal(s.trials[0].mode.kind, SWEEP_FROZEN);
    assert_int_equal(s.trials[3].mode.kind, SWEEP_FINE_TUNE_AT);
    assert_int_equal(s.trials[3].mode.fine_tune_at, 100);
    /* the three frozen trials share one feature cache; fine-tune trials use none */
    assert_int_equal(s.n_cache_groups, 1);
    assert_int_equal(s.cache_groups[0].n_trials, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s.trials[i].cache_group, 0);
        assert_true(s.trials[i].cache_key == s.cache_groups[0].key);
        assert_int_equal(s.trials[i + 3].cache_group, -1);
    }
    uint64_t key0 = s.trials[0].key;
    sweep_free(&s);

    /* keys are content, not position: the same trial in another file has the same key */
    size_t len;
    char *text = slurp(path, &len);
    rc = sweep_parse(&s, "other.yaml", text, len, &e);
    assert_int_equal(rc, 0);
    assert_true(s.trials[0].key == key0);
    sweep_free(&s);
    free(text);
}

#define BASE_HEAD \
    "name: t\n"                       \
    "data:\n"                         \
    "  train_dir: d\n"                \
    "  validation_split: 0.2\n"       \
    "  image_size: 96\n"              \
    "weights:\n"                      \
    "  mobilenet_v2: m.tlm\n"         \
    "  resnet50: r.tlm\n"             \
    "grid:\n"                         \
    "  backbone: [mobilenet_v2]\n"

static int parse_str(sweep *s, const char *text, tl_err *e)
{
    return sweep_parse(s, "t.yaml", text, strlen(text), e);
}

/* search.metric: what ranks a rung, its goal from its name; by default the
 * select metric and goal; the rungs' ranking (sweep_rungs) follows it. */
static void test_search_metric(void **state)
{
    (void)state;
    static const struct {
        const char *search, *select;
        sweep_metric m;
        int goal_max;
    } cases[] = {
        {"{method: asha, metric: val_loss}", "", SWEEP_VAL_LOSS, 0},
        {"{method: successive_halving, metric: accuracy}", "", SWEEP_ACCURACY, 1},
        {"{method: asha}", "", SWEEP_VAL_ACCURACY, 1},
        {"{method: asha}", "select: {metric: val_loss, goal: min}\n", SWEEP_VAL_LOSS, 0},
        {"{method: asha, metric: val_accuracy}", "select: {metric: val_loss, goal: min}\n",
         SWEEP_VAL_ACCURACY, 1},
        {"{method: grid}", "select: {metric: loss, goal: min}\n", SWEEP_LOSS, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[2048];
        snprintf(text, sizeof text, BASE_HEAD "  learning_rate: [1e-3, 1e-4]\nepochs: 9\nout: o\n"
                 "%ssearch: %s\n", cases[i].select, cases[i].search);
        sweep s;
        tl_err e = {0};
        assert_int_equal(parse_str(&s, text, &e), 0);
        assert_int_equal(s.search_metric, cases[i].m);
        assert_int_equal(s.search_goal_max, cases[i].goal_max);
        sweep_rungs r;
        sweep_rungs_of(&s, &r);
        assert_int_equal(r.goal_max, cases[i].goal_max);
        sweep_free(&s);
    }
}

/* A trial's key is its whole identity: a weights path long enough to have
 * filled the old 256-byte key text (cutting off the epochs) still leaves
 * the epochs in it; head settings after a long path too; the dataset once
 * bound; and a cache group's text is kept whole. */
static void test_keys_whole(void **state)
{
    (void)state;
    char dir[300], yaml[2048];
    memset(dir, 'w', 200);
    memcpy(dir, "/data/", 6);
    dir[200] = '\0';
    uint64_t key[2], bound[2];
    const int epochs[2] = {2, 5};
    for (int k = 0; k < 2; k++) {
        snprintf(yaml, sizeof yaml,
                 "data: {train_dir: d, validation_split: 0.2}\nweights: {mobilenet_v2: %s/m.tlm}\n"
                 "grid: {backbone: mobilenet_v2, mode: frozen}\nepochs: %d\nout: o\n", dir,
                 epochs[k]);
        sweep s;
        tl_err e = {0};
        if (parse_str(&s, yaml, &e))
            fail_msg("%s", e.msg);
        assert_true(strlen(s.trials[0].weights) > 200);
        key[k] = s.trials[0].key;
        /* the cache group's text is whole, past any fixed buffer */
        assert_non_null(strstr(s.cache_groups[0].text, "/m.tlm|"));
        assert_int_equal(sweep_bind_data(&s, 0x1234, &e), 0);
        bound[k] = s.trials[0].key;
        assert_true(bound[k] != key[k]);
        /* binding again with the same fingerprint gives the same keys */
        assert_int_equal(sweep_bind_data(&s, 0x1234, &e), 0);
        assert_true(s.trials[0].key == bound[k]);
        /* another dataset (an image added, removed or touched): other keys */
        assert_int_equal(sweep_bind_data(&s, 0x1235, &e), 0);
        assert_true(s.trials[0].key != bound[k]);
        sweep_free(&s);
    }
    assert_true(key[0] != key[1]);
    assert_true(bound[0] != bound[1]);

    /* a weights path of 3000 characters and a head after it: both count */
    char *big = malloc(8192), *path = malloc(3100);
    memset(path, 'p', 3000);
    path[0] = '/';
    path[3000] = '\0';
    uint64_t hk[2];
    for (int k = 0; k < 2; k++) {
        snprintf(big, 8192,
                 "data: {train_dir: d, validation_split: 0.2}\nweights: {mobilenet_v2: %s}\n"
                 "model: {head: [global_average_pooling, {dense: %d}]}\n"
                 "grid: {backbone: mobilenet_v2, mode: frozen}\nepochs: 2\nout: o\n",
                 path, k ? 64 : 32);
        sweep s;
        tl_err e = {0};
        if (parse_str(&s, big, &e))
            fail_msg("%s", e.msg);
        hk[k] = s.trials[0].key;
        assert_int_equal(strlen(s.cache_groups[0].text), strlen("mobilenet_v2|") + 3000 + strlen("|224|tf"));
        sweep_free(&s);
    }
    assert_true(hk[0] != hk[1]);
    free(big);
    free(path);

    /* an id longer than sweep_trial.id holds is refused, never cut (two
     * trials cut to one id would share a key and a checkpoint) */
    const char *longid =
        "data: {train_dir: d, validation_split: 0.2}\nweights: {mobilenet_v2: m}\n"
        "grid:\n"
        "  backbone: mobilenet_v2\n"
        "  mode: {frozen_then_fine_tune: {fine_tune_at: 100, epochs: 2}}\n"
        "  learning_rate: 1.2345678901234567e-04\n"
        "  optimizer: sgd\n"
        "  batch_size: 16\n"
        "  weight_decay: 1.2345678901234567e-05\n"
        "  momentum: 0.12345678901234567\n"
        "  schedule: {step: {every: 100, factor: 0.12345678901234567}}\n"
        "epochs: 3\nout: o\n";
    sweep s;
    tl_err e = {0};
    assert_int_equal(parse_str(&s, longid, &e), TL_EINVAL);
    tu_assert_one_line_error(&e, "t.yaml", "trial id", "at most 127");
    sweep_free(&s);
}

/* label_smoothing 0 leaves a trial's id and key as they were without the
 * axis; a nonzero value is in both. */
static void test_label_smoothing_ids(void **state)
{
    (void)state;
    const char *head = "data: {train_dir: d, validation_split: 0.2}\nweights: {mobilenet_v2: m}\n"
                       "grid:\n  backbone: mobilenet_v2\n";
    char text[512];
    sweep a, b;
    tl_err e = {0};
    snprintf(text, sizeof text, "%sepochs: 2\nout: o\n", head);
    if (parse_str(&a, text, &e))
        fail_msg("%s", e.msg);
    snprintf(text, sizeof text, "%s  label_smoothing: [0, 0.1]\nepochs: 2\nout: o\n", head);
    if (parse_str(&b, text, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(a.n_trials, 1);
    assert_int_equal(b.n_trials, 2);
    assert_true(a.trials[0].label_smoothing == 0 && b.trials[1].label_smoothing == 0.1);
    assert_string_equal(b.trials[0].id, a.trials[0].id);
    assert_true(b.trials[0].key == a.trials[0].key);
    char want[160];
    snprintf(want, sizeof want, "%s-ls1e-01", a.trials[0].id);
    assert_string_equal(b.trials[1].id, want);
    assert_true(b.trials[1].key != a.trials[0].key);
    sweep_free(&a);
    sweep_free(&b);
    /* random search samples it within its range */
    snprintf(text, sizeof text, "%s  label_smoothing: {uniform: [0.05, 0.2]}\nepochs: 2\nout: o\n"
             "search: {method: random, trials: 5, seed: 3}\n", head);
    if (parse_str(&a, text, &e))
        fail_msg("%s", e.msg);
    for (size_t i = 0; i < a.n_trials; i++) {
        double ls = a.trials[i].label_smoothing;
        assert_true(ls >= 0.05 && ls <= 0.2);
        assert_non_null(strstr(a.trials[i].id, "-ls"));
    }
    sweep_free(&a);
}

static void test_scalars_as_lists(void **state)
{
    (void)state;
    sweep s;
    tl_err e = {0};
    const char *text =
        "data: {train_dir: d, validation_split: 0.1}\n"
        "weights: {resnet50: r.tlm}\n"
        "grid:\n"
        "  backbone: resnet50\n"
        "  mode: {fine_tune_at: 10}\n"
        "  learning_rate: 1e-3\n"
        "  optimizer: sgd\n"
        "  batch_size: 16\n"
        "  momentum: 0.9\n"
        "epochs: 3\n"
        "worker_timeout: 2.5\n"
        "ranks_per_trial: 4\n"
        "out: o\n";
    int rc = parse_str(&s, text, &e);
    if (rc)
        fail_msg("%s", e.msg);
    assert_int_equal(s.n_trials, 1);
    assert_string_equal(s.trials[0].id, "resnet50-ft10-lr1e-03-sgd-b16-m9e-01");
    assert_true(s.trials[0].learning_rate == 1e-3);
    assert_true(s.trials[0].momentum == 0.9);
    assert_int_equal(s.image_size, 224);   /* Keras applications' default */
    assert_int_equal(s.threads, 0);
    assert_true(s.worker_timeout == 2.5);
    assert_int_equal(s.ranks_per_trial, 4);
    assert_int_equal(s.data_seed, s.seed);
    assert_string_equal(s.name, "t");      /* from the file name */
    assert_int_equal(s.n_head, 1);
    assert_int_equal(s.head[0].kind, SWEEP_HEAD_GAP);
    sweep_free(&s);

    /* the full grid order with every list, and the two-stage mode */
    text = BASE_HEAD
        "  mode: [frozen, fine_tune, {frozen_then_fine_tune: {fine_tune_at: 50, epochs: 2}}]\n"
        "  learning_rate: [1e-3, 1.5e-4]\n"
        "  optimizer: [adam, rmsprop]\n"
        "  batch_size: [8, 64]\n"
        "  weight_decay: [0, 1e-4]\n"
        "  schedule: [constant, cosine, {step: {every: 2, factor: 0.5}}]\n"
        "epochs: 4\n"
        "out: o\n"
        "select: {metric: val_loss}\n";
    rc = parse_str(&s, text, &e);
    if (rc)
        fail_msg("%s", e.msg);
    assert_int_equal(s.n_trials, 3 * 2 * 2 * 2 * 2 * 3);
    assert_string_equal(s.trials[0].id, "mobilenet_v2-frozen-lr1e-03-adam-b8-wd0e00-const");
    assert_string_equal(s.trials[1].id, "mobilenet_v2-frozen-lr1e-03-adam-b8-wd0e00-cosine");
    assert_string_equal(s.trials[2].id, "mobilenet_v2-frozen-lr1e-03-adam-b8-wd0e00-step2x5e-01");
    assert_string_equal(s.trials[3].id, "mobilenet_v2-frozen-lr1e-03-adam-b8-wd1e-04-const");
    assert_string_equal(s.trials[6].id, "mobilenet_v2-frozen-lr1e-03-adam-b64-wd0e00-const");
    assert_string_equal(s.trials[12].id, "mobilenet_v2-frozen-lr1e-03-rmsprop-b8-wd0e00-const");
    assert_string_equal(s.trials[24].id, "mobilenet_v2-frozen-lr1.5e-04-adam-b8-wd0e00-const");
    assert_string_equal(s.trials[48].id, "mobilenet_v2-ft-lr1e-03-adam-b8-wd0e00-const");
    assert_string_equal(s.trials[96].id, "mobilenet_v2-frozen2-ft50-lr1e-03-adam-b8-wd0e00-const");
    assert_int_equal(s.trials[96].mode.frozen_epochs, 2);
    /* frozen and frozen_then_fine_tune share the backbone's one cache */
    assert_int_equal(s.n_cache_groups, 1);
    assert_int_equal(s.cache_groups[0].n_trials, 96);
    assert_int_equal(s.goal_max, 0);
    for (size_t i = 0; i < s.n_trials; i++)
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(s.trials[i].id, s.trials[j].id);
            assert_true(s.trials[i].key != s.trials[j].key);
        }
    sweep_free(&s);

    /* augmentation on: no feature cache */
    const char *text2 =
        "data: {train_dir: d, validation_split: 0.2, augment: {horizontal_flip: true, zoom_range: 0.1, brightness_range: [0.8, 1.2]}}\n"
        "weights: {mobilenet_v2: m}\ngrid: {backbone: mobilenet_v2, mode: frozen}\nepochs: 2\nout: o\n";
    rc = parse_str(&s, text2, &e);
    if (rc)
        fail_msg("%s", e.msg);
    assert_int_equal(s.augment.horizontal_flip, 1);
    assert_true(s.augment.zoom_range[0] == 0.9f && s.augment.zoom_range[1] == 1.1f);
    assert_true(s.augment.brightness_range[1] == 1.2f);
    assert_int_equal(s.n_cache_groups, 0);
    assert_int_equal(s.trials[0].cache_group, -1);
    sweep_free(&s);
}

/* grid.precision and engine:. An fp32 trial keeps the id and the key it
 * had before sweeps had precisions (keys written by tlsweep 0.1.0 before
 * them, hard-coded: old out/ folders must resume); a bf16 trial is another
 * trial (id, key, feature cache); the engine changes none of them. */
#define PREC_FILE(extra)                                  \
    "data: {train_dir: d, validation_split: 0.2}\n"      \
    "weights: {mobilenet_v2: m.tlm}\n"                   \
    "grid:\n"                                            \
    "  backbone: mobilenet_v2\n"                         \
    "  mode: [frozen, fine_tune]\n"                      \
    "  learning_rate: [1.0e-3, 1.0e-4]\n" extra          \
    "epochs: 2\n"                                        \
    "out: o\n"

static const struct {
    const char *id;
    uint64_t key;
} before_precision[] = {
    {"mobilenet_v2-frozen-lr1e-03-adam-b32", 0x6501c306cc71478dULL},
    {"mobilenet_v2-frozen-lr1e-04-adam-b32", 0x12d51a72b18c9dadULL},
    {"mobilenet_v2-ft-lr1e-03-adam-b32", 0x75895e0698f84aa9ULL},
    {"mobilenet_v2-ft-lr1e-04-adam-b32", 0x440e7bb569e43c91ULL},
};
#define BEFORE_CACHE_KEY 0xb55f5d5d628c1829ULL
#define BEFORE_BOUND_KEY0 0xdb714b6adc9c2106ULL /* trial 0 bound to fingerprint 0x1234 */

static void test_precision_and_engine(void **state)
{
    (void)state;
    sweep s;
    tl_err e = {0};
    /* without the keys, with precision: fp32, with engine: the same trials */
    static const char *const same[] = {
        PREC_FILE(""),
        PREC_FILE("  precision: fp32\n"),
        PREC_FILE("  precision: [fp32]\n") "engine: onednn\n",
        PREC_FILE("") "engine: openblas\n",
    };
    for (size_t f = 0; f < sizeof same / sizeof *same; f++) {
        if (parse_str(&s, same[f], &e))
            fail_msg("%s", e.msg);
        assert_int_equal(s.n_trials, 4);
        for (int i = 0; i < 4; i++) {
            assert_string_equal(s.trials[i].id, before_precision[i].id);
            assert_true(s.trials[i].key == before_precision[i].key);
            assert_int_equal(s.trials[i].precision, SWEEP_FP32);
        }
        assert_int_equal(s.n_cache_groups, 1);
        assert_true(s.cache_groups[0].key == BEFORE_CACHE_KEY);
        assert_int_equal(s.bf16_at.line, 0);
        assert_int_equal(sweep_bind_data(&s, 0x1234, &e), 0);
        assert_true(s.trials[0].key == BEFORE_BOUND_KEY0);
        sweep_free(&s);
    }
    assert_int_equal(parse_str(&s, same[0], &e), 0);
    assert_int_equal(s.engine_set, 0);
    assert_int_equal(s.n_precisions, 0);
    sweep_free(&s);
    assert_int_equal(parse_str(&s, same[2], &e), 0);
    assert_int_equal(s.engine_set, 1);
    assert_int_equal(s.engine, SWEEP_ENGINE_ONEDNN);
    assert_int_equal(s.onednn_at.line, 10);
    assert_int_equal(s.onednn_at.col, 9);
    assert_string_equal(s.onednn_at.path, "engine");
    sweep_free(&s);
    assert_int_equal(parse_str(&s, same[3], &e), 0);
    assert_int_equal(s.engine, SWEEP_ENGINE_OPENBLAS);
    assert_int_equal(s.onednn_at.line, 0);
    sweep_free(&s);

    /* both precisions: the innermost axis, bf16 trials after their fp32 twins */
    if (parse_str(&s, PREC_FILE("  precision: [fp32, bf16]\n"), &e))
        fail_msg("%s", e.msg);
    assert_int_equal(s.n_trials, 8);
    for (int i = 0; i < 4; i++) {
        const sweep_trial *fp = &s.trials[2 * i], *bf = &s.trials[2 * i + 1];
        assert_string_equal(fp->id, before_precision[i].id);
        assert_true(fp->key == before_precision[i].key);
        char want[160];
        snprintf(want, sizeof want, "%s-bf16", before_precision[i].id);
        assert_string_equal(bf->id, want);
        assert_int_equal(fp->precision, SWEEP_FP32);
        assert_int_equal(bf->precision, SWEEP_BF16);
        for (size_t j = 0; j < s.n_trials; j++)
            assert_true(j == (size_t)(2 * i + 1) || s.trials[j].key != bf->key);
    }
    /* bf16 features are not fp32 features: one cache each */
    assert_int_equal(s.n_cache_groups, 2);
    assert_true(s.cache_groups[0].key == BEFORE_CACHE_KEY);
    assert_string_equal(s.cache_groups[0].text, "mobilenet_v2|m.tlm|224|tf");
    assert_string_equal(s.cache_groups[1].text, "mobilenet_v2|m.tlm|224|tf|bf16");
    assert_int_equal(s.trials[0].cache_group, 0);
    assert_int_equal(s.trials[1].cache_group, 1);
    assert_int_equal(s.cache_groups[1].n_trials, 2);
    /* where sweep_check_host points */
    assert_int_equal(s.bf16_at.line, 7);
    assert_int_equal(s.bf16_at.col, 21);
    assert_string_equal(s.bf16_at.path, "grid.precision[1]");
    sweep_free(&s);

    /* one value for the sweep, the precision's own path */
    if (parse_str(&s, PREC_FILE("  precision: bf16\n"), &e))
        fail_msg("%s", e.msg);
    assert_int_equal(s.n_trials, 4);
    assert_string_equal(s.trials[3].id, "mobilenet_v2-ft-lr1e-04-adam-b32-bf16");
    assert_string_equal(s.bf16_at.path, "grid.precision");
    assert_int_equal(s.bf16_at.col, 14);
    sweep_free(&s);
    assert_string_equal(sweep_precision_name(SWEEP_BF16), "bf16");
    assert_string_equal(sweep_engine_name(SWEEP_ENGINE_AUTO), "auto");
    /* the same names and order as the engine's, which converts by cast */
    for (int k = 0; k < 3; k++)
        assert_string_equal(sweep_engine_name((sweep_engine)k), nn_backend_name((nn_backend)k));
    for (int k = 0; k < 2; k++)
        assert_string_equal(sweep_precision_name((sweep_precision)k),
                            nn_precision_name((nn_precision)k));
}

/* bf16 on a host without AVX512_BF16 (TLSWEEP_CPU_NO_BF16=1 plays one):
 * refused by sweep_check_host with one line at the value; fp32 sweeps
 * and this host as it is are fine. */
static void test_bf16_host(void **state)
{
    (void)state;
    sweep s;
    tl_err e = {0};
    setenv("TLSWEEP_CPU_NO_BF16", "1", 1);
    if (parse_str(&s, PREC_FILE("  precision: [fp32, bf16]\n"), &e))
        fail_msg("the file itself is fine: %s", e.msg);
    int rc = sweep_check_host(&s, &e);
    assert_int_equal(rc, TL_EINVAL);
    tu_assert_one_line_error(&e, "grid.precision[1]: bf16 needs ");
    const char *want = nn_have_onednn()
                           ? "t.yaml:7:21: grid.precision[1]: bf16 needs a CPU with AVX512_BF16, "
                             "and this one ("
                           : "t.yaml:7:21: grid.precision[1]: bf16 needs oneDNN, and this "
                             "tlsweep is built without oneDNN";
    if (strncmp(e.msg, want, strlen(want)) != 0)
        fail_msg("got '%s', want '%s...'", e.msg, want);
    if (nn_have_onednn())
        assert_non_null(strstr(e.msg, ") has none: use fp32 here"));
    sweep_free(&s);
    /* nothing asked for bf16: nothing to refuse */
    assert_int_equal(parse_str(&s, PREC_FILE("  precision: fp32\n"), &e), 0);
    assert_int_equal(sweep_check_host(&s, &e), 0);
    sweep_free(&s);

    unsetenv("TLSWEEP_CPU_NO_BF16");
    assert_int_equal(parse_str(&s, PREC_FILE("  precision: bf16\n") "engine: onednn\n", &e), 0);
    rc = sweep_check_host(&s, &e);
    if (nn_have_onednn() && tl_cpu_has_avx512_bf16())
        assert_int_equal(rc, 0);
    else
        tu_assert_one_line_error(&e, "t.yaml:", "bf16 needs");
    sweep_free(&s);
    assert_int_equal(parse_str(&s, PREC_FILE("") "engine: onednn\n", &e), 0);
    rc = sweep_check_host(&s, &e);
    if (nn_have_onednn())
        assert_int_equal(rc, 0);
    else
        tu_assert_one_line_error(&e, "t.yaml:9:9: engine: onednn: this tlsweep is built without oneDNN");
    sweep_free(&s);
}

typedef struct {
    const char *text;
    int line;
    const char *path;      /* key path as printed, "" for none */
    const char *expect;    /* substring of the message */
} bad_case;

#define TAIL "  learning_rate: [1e-3]\nepochs: 5\nout: o\n"
#define RANDOM_TAIL "epochs: 5\nout: o\nsearch: {method: random, trials: 4}\n"

static const bad_case bad_cases[] = {
    /* out of range, with the index in the list */
    {BASE_HEAD "  learning_rate: [1.0e-3, 1.0e-4, -1]\nepochs: 5\nout: o\n", 11,
     "grid.learning_rate[2]", "expected a number > 0, got -1"},
    {BASE_HEAD "  learning_rate: [1.0e-3, 0]\nepochs: 5\nout: o\n", 11, "grid.learning_rate[1]", "> 0"},
    {BASE_HEAD "  batch_size: [32, 0]\n" TAIL, 11, "grid.batch_size[1]", "expected a whole number >= 1, got 0"},
    {BASE_HEAD "  batch_size: 8.5\n" TAIL, 11, "grid.batch_size", "got 8.5"},
    {BASE_HEAD "  learning_rate: 1e-3\nepochs: 0\nout: o\n", 12, "epochs", "expected a whole number >= 1, got 0"},
    {BASE_HEAD "  learning_rate: 1e-3\nepochs: five\nout: o\n", 12, "epochs", "got five"},
    {BASE_HEAD "  learning_rate: 1e-3\nepochs: [5]\nout: o\n", 12, "epochs", "got a list"},
    {"name: t\ndata:\n  train_dir: d\n  validation_split: 1.0\nweights: {mobilenet_v2: m}\n"
     "grid: {backbone: mobilenet_v2}\nepochs: 1\nout: o\n", 4, "data.validation_split", "[0, 1)"},
    {"data:\n  train_dir: d\n  validation_split: 0.2\n  image_size: 16\nweights: {mobilenet_v2: m}\n"
     "grid: {backbone: mobilenet_v2}\nepochs: 1\nout: o\n", 4, "data.image_size", ">= 32, got 16"},
    {"data:\n  train_dir: d\n  validation_split: 0.2\n  image_size: 64\nweights: {inception_v3: i}\n"
     "grid: {backbone: [inception_v3]}\nepochs: 1\nout: o\n", 4, "data.image_size",
     "at least 75 for inception_v3 (grid.backbone[0]), got 64"},
    {BASE_HEAD "  mode: [frozen, {fine_tune_at: -1}]\n" TAIL, 11, "grid.mode[1].fine_tune_at", ">= 0, got -1"},
    /* unknown names, with "did you mean" when close */
    {BASE_HEAD "  learning_rat: [1e-3]\nepochs: 5\nout: o\n", 11, "grid.learning_rat",
     "unknown key (did you mean 'learning_rate'?)"},
    {BASE_HEAD TAIL "colour: blue\n", 14, "colour", "unknown key (expected one of name, data"},
    {"data: {train_dir: d, validation_split: 0.2, augment: {horizontal_flip: true, rotaton_range: 5}}\n"
     "weights: {mobilenet_v2: m}\ngrid: {backbone: mobilenet_v2}\nepochs: 1\nout: o\n", 1,
     "data.augment.rotaton_range", "did you mean 'rotation_range'?"},
    {BASE_HEAD "  backbone: [mobilenet_v2, resnet5]\n" TAIL, 11, "grid.backbone",
     "duplicate key (first given on line 10)"},
    {"data: {train_dir: d, validation_split: 0.2}\nweights: {mobilenet_v2: m}\n"
     "grid:\n  backbone: [mobilenet_v2, resnet5]\nepochs: 1\nout: o\n", 4, "grid.backbone[1]",
     "unknown backbone 'resnet5' (did you mean 'resnet50'?)"},
    {"data: {train_dir: d, validation_split: 0.2}\nweights: {mobilenet_v2: m}\n"
     "grid:\n  backbone: [efficientnet]\nepochs: 1\nout: o\n", 4, "grid.backbone[0]",
     "unknown backbone 'efficientnet' (expected one of mobilenet_v2, resnet50, vgg16, inception_v3)"},
    {BASE_HEAD "  optimizer: [adam, adamw]\n" TAIL, 11, "grid.optimizer[1]", "unknown optimizer 'adamw' (did you mean 'adam'?)"},
    {BASE_HEAD "  optimizer: [adam, lion]\n" TAIL, 11, "grid.optimizer[1]", "expected one of adam, sgd, rmsprop"},
    {BASE_HEAD "  mode: [frozn]\n" TAIL, 11, "grid.mode[0]", "unknown mode 'frozn' (did you mean 'frozen'?)"},
    {BASE_HEAD "  mode: [{finetune_at: 3}]\n" TAIL, 11, "grid.mode[0].finetune_at",
     "did you mean 'fine_tune_at'?"},
    {"data: {train_dir: d, validation_split: 0.2}\nmodel:\n  head:\n    - global_average_pooling\n"
     "    - {dense: 64, activation: gelu}\nweights: {mobilenet_v2: m}\ngrid: {backbone: mobilenet_v2}\n"
     "epochs: 1\nout: o\n", 5, "model.head[1].activation", "unknown activation 'gelu'"},
    {"data: {train_dir: d, validation_split: 0.2}\nmodel: {head: [global_avg_pooling]}\n"
     "weights: {mobilenet_v2: m}\ngrid: {backbone: mobilenet_v2}\nepochs: 1\nout: o\n", 2, "model.head[0]",
     "unknown head layer 'global_avg_pooling'"},
    {"data: {train_dir: d, validation_split: 0.2}\nweights: {mobilenet_v3: m}\n"
     "grid: {backbone: mobilenet_v2}\nepochs: 1\nout: o\n", 2, "weights.mobilenet_v3",
     "did you mean 'mobilenet_v2'?"},
    /* a backbone with no weights */
    {"data: {train_dir: d, validation_split: 0.2}\nweights: {mobilenet_v2: m}\n"
     "grid:\n  backbone: [mobilenet_v2, vgg16]\nepochs: 1\nout: o\n", 4, "grid.backbone[1]", "no weights for vgg16"},
    /* missing required keys: reported at the enclosing mapping */
    {"data:\n  validation_split: 0.2\nweights: {mobilenet_v2: m}\ngrid: {backbone: mobilenet_v2}\nepochs: 1\nout: o\n",
     2, "data.train_dir", "missing"},
    {"data: {train_dir: d, validation_split: 0.2}\nweights: {mobilenet_v2: m}\n"
     "grid:\n  learning_rate: 1e-3\nepochs: 1\nout: o\n", 4, "grid.backbone", "missing"},
    {"data: {train_dir: d, validation_split: 0.2}\nweights: {mobilenet_v2: m}\nepochs: 1\nout: o\n", 1,
     "grid.backbone", "missing"},
    {"data: {train_dir: d, validation_split: 0.2}\nweights: {mobilenet_v2: m}\n"
     "grid: {backbone: mobilenet_v2}\nepochs: 1\n", 1, "out", "missing"},
    {"data: {train_dir: d, validation_split: 0.2}\nweights: {mobilenet_v2: m}\n"
     "grid: {backbone: mobilenet_v2}\nout: o\n", 1, "epochs", "missing"},
    /* duplicate keys */
    {BASE_HEAD TAIL "epochs: 6\n", 14, "epochs", "duplicate key (first given on line 12)"},
    /* select */
    {BASE_HEAD TAIL "select: {metric: val_acuracy}\n", 14, "select.metric", "did you mean 'val_accuracy'?"},
    {BASE_HEAD TAIL "select: {metric: val_loss, goal: max}\n", 14, "select.goal", "expected min for val_loss"},
    {"data: {train_dir: d}\nweights: {mobilenet_v2: m}\ngrid: {backbone: mobilenet_v2}\nepochs: 1\nout: o\n", 1,
     "data.validation_split", "val_accuracy needs validation data"},
    {BASE_HEAD "  learning_rate: [1e-3, 0.001]\nepochs: 5\nout: o\n", 11, "grid.learning_rate[1]",
     "duplicate value (same as grid.learning_rate[0])"},
    {BASE_HEAD "  mode: [{frozen_then_fine_tune: {fine_tune_at: 10, epochs: 5}}]\n" TAIL, 11,
     "grid.mode[0].frozen_then_fine_tune.epochs", "fewer frozen epochs than epochs (5)"},
    {BASE_HEAD TAIL "seed: -3\n", 14, "seed", "expected a whole number >= 0, got -3"},
    {BASE_HEAD TAIL "threads: many\n", 14, "threads", "got many"},
    {BASE_HEAD TAIL "worker_timeout: 0.5\n", 14, "worker_timeout", "expected a number of seconds >= 1, got 0.5"},
    {BASE_HEAD TAIL "worker_timeout: soon\n", 14, "worker_timeout", "got soon"},
    {BASE_HEAD TAIL "worker_timeout: [60]\n", 14, "worker_timeout", "got a list"},
    {BASE_HEAD TAIL "ranks_per_trial: 0\n", 14, "ranks_per_trial",
     "expected a whole number >= 1 or auto, got 0"},
    {BASE_HEAD TAIL "ranks_per_trial: all\n", 14, "ranks_per_trial", "got all"},
    {BASE_HEAD TAIL "ranks_per_trial: 2.5\n", 14, "ranks_per_trial", "got 2.5"},
    {BASE_HEAD TAIL "ranks_per_trial: [2]\n", 14, "ranks_per_trial", "got a list"},
    {BASE_HEAD TAIL "ranks_per_trial: 70000\n", 14, "ranks_per_trial", "got 70000"},
    /* precision and engine */
    {BASE_HEAD "  precision: [fp32, fp16]\n" TAIL, 11, "grid.precision[1]",
     "unknown precision 'fp16' (did you mean 'fp32'?)"},
    {BASE_HEAD "  precision: half\n" TAIL, 11, "grid.precision",
     "unknown precision 'half' (expected one of fp32, bf16)"},
    {BASE_HEAD "  precision: [bf16, fp32, bf16]\n" TAIL, 11, "grid.precision[2]",
     "duplicate value (same as grid.precision[0])"},
    {BASE_HEAD "  precision: []\n" TAIL, 11, "grid.precision", "expected a non-empty list"},
    {BASE_HEAD TAIL "precision: bf16\n", 14, "precision",
     "goes under grid: (grid.precision: fp32, bf16 or [fp32, bf16])"},
    {BASE_HEAD TAIL "engine: mkl\n", 14, "engine",
     "unknown engine 'mkl' (expected one of auto, openblas, onednn)"},
    {BASE_HEAD TAIL "engine: onedn\n", 14, "engine", "unknown engine 'onedn' (did you mean 'onednn'?)"},
    {BASE_HEAD TAIL "engine: [onednn]\n", 14, "engine",
     "expected one of auto, openblas, onednn, got a list"},
    {BASE_HEAD TAIL "select: {metric: [loss]}\n", 14, "select.metric",
     "expected one of val_accuracy, val_loss, accuracy, loss, got a list"},
    {BASE_HEAD TAIL "engin: auto\n", 14, "engin", "unknown key (did you mean 'engine'?)"},
    {BASE_HEAD "  learning_rate: 1e-3\nepochs: 5\nout: [a, b]\n", 13, "out", "expected a folder, got a list"},
    {BASE_HEAD "  learning_rate: 1e-3\nepochs: 5\nout:\n", 13, "out", "expected a folder, got nothing"},
    {BASE_HEAD "  learning_rate: []\n" "epochs: 5\nout: o\n", 11, "grid.learning_rate", "expected a non-empty list"},
    {BASE_HEAD "  learning_rate: [.inf]\n" "epochs: 5\nout: o\n", 11, "grid.learning_rate[0]", "got .inf"},
    {BASE_HEAD "  learning_rate: [nan]\n" "epochs: 5\nout: o\n", 11, "grid.learning_rate[0]", "got nan"},
    {BASE_HEAD TAIL "weights: {}\n", 14, "weights", "duplicate key (first given on line 6)"},
    {"data: {train_dir: d, validation_split: 0.2}\nweights:\n  resnet50: a\n  resnet50: b\n"
     "grid: {backbone: resnet50}\nepochs: 1\nout: o\n", 4, "weights.resnet50", "duplicate key (first given on line 3)"},
    {"data: {train_dir: d, val_dir: v, validation_split: 0.2}\nweights: {resnet50: r}\n"
     "grid: {backbone: resnet50}\nepochs: 1\nout: o\n", 1, "data.validation_split", "not both"},
    {"data: {train_dir: d, validation_split: 0.2}\nmodel: {head: [{dense: 0}]}\nweights: {resnet50: r}\n"
     "grid: {backbone: resnet50}\nepochs: 1\nout: o\n", 2, "model.head[0].dense", "got 0"},
    {"data: {train_dir: d, validation_split: 0.2}\nmodel: {head: [{dropout: 1.5}]}\nweights: {resnet50: r}\n"
     "grid: {backbone: resnet50}\nepochs: 1\nout: o\n", 2, "model.head[0].dropout", "a rate in [0, 1), got 1.5"},
    {"data: {train_dir: d, validation_split: 0.2}\nweights: {resnet50: r}\n"
     "grid: {backbone: resnet50, mode: [{fine_tune_at: 1, frozen_then_fine_tune: {}}]}\nepochs: 1\nout: o\n", 3,
     "grid.mode[0]", "expected frozen, fine_tune, {fine_tune_at: N}"},
    {"data: {train_dir: d, validation_split: 0.2}\nweights: {resnet50: r}\n"
     "grid:\n  backbone: resnet50\n  mode: [frozen, fine_tune]\n  optimizer: [adam, sgd, rmsprop]\n  learning_rate: [1,2,3,4,5,6,7,8,9,10]\n  batch_size: [1,2,3,4,5,6,7,8,9,10]\n"
     "  weight_decay: [1,2,3,4,5,6,7,8,9,10]\n  momentum: [0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9]\n"
     "  schedule: [constant, cosine]\nepochs: 1\nout: o\n", 4, "grid", "expected at most 100000 trials"},
    /* sampled axes and search */
    {BASE_HEAD "  learning_rate: {log_uniform: [1.0e-2, 1.0e-5]}\n" RANDOM_TAIL, 11,
     "grid.learning_rate.log_uniform", "expected [low, high] with low < high, got [0.01, 1.0000000000000001e-05]"},
    {BASE_HEAD "  learning_rate: {uniform: [0.1, 0.1]}\n" RANDOM_TAIL, 11, "grid.learning_rate.uniform",
     "expected [low, high] with low < high, got [0.10000000000000001, 0.10000000000000001]"},
    {BASE_HEAD "  weight_decay: {log_uniform: [0, 1.0e-3]}\n" RANDOM_TAIL, 11,
     "grid.weight_decay.log_uniform[0]", "expected a number > 0 (log_uniform takes logarithms), got 0"},
    {BASE_HEAD "  learning_rate: {log_uniform: [-1, 1]}\n" RANDOM_TAIL, 11,
     "grid.learning_rate.log_uniform[0]", "expected a number > 0, got -1"},
    {BASE_HEAD "  learning_rate: {log_uniform: 1.0e-3}\n" RANDOM_TAIL, 11,
     "grid.learning_rate.log_uniform", "expected [low, high], got 1.0e-3"},
    {BASE_HEAD "  learning_rate: {log_uniform: [1.0e-5, 1.0e-3, 1.0e-1]}\n" RANDOM_TAIL, 11,
     "grid.learning_rate.log_uniform", "expected [low, high], got a list"},
    {BASE_HEAD "  learning_rate: {log_uniform: [small, 1.0e-1]}\n" RANDOM_TAIL, 11,
     "grid.learning_rate.log_uniform[0]", "expected a number > 0, got small"},
    {BASE_HEAD "  batch_size: {int_uniform: [8, 64.5]}\n" RANDOM_TAIL, 11, "grid.batch_size.int_uniform[1]",
     "expected a whole number >= 1, got 64.5"},
    {BASE_HEAD "  batch_size: {uniform: [8, 64]}\n" RANDOM_TAIL, 11, "grid.batch_size.uniform",
     "expected a list or {choice: [...]} or {int_uniform: [low, high]} (this axis does not sample uniform)"},
    {BASE_HEAD "  learning_rate: {int_uniform: [1, 2]}\n" RANDOM_TAIL, 11, "grid.learning_rate.int_uniform",
     "(this axis does not sample int_uniform)"},
    {BASE_HEAD "  optimizer: {log_uniform: [1, 2]}\n" RANDOM_TAIL, 11, "grid.optimizer.log_uniform",
     "expected a list or {choice: [...]} (this axis does not sample log_uniform)"},
    {BASE_HEAD "  optimizer: {choice: []}\n" RANDOM_TAIL, 11, "grid.optimizer.choice",
     "expected a non-empty list"},
    {BASE_HEAD "  optimizer: {choice: [adam, adam]}\n" RANDOM_TAIL, 11, "grid.optimizer.choice[1]",
     "duplicate value (same as grid.optimizer.choice[0])"},
    {BASE_HEAD "  learning_rate: {choice: [1e-3], uniform: [0.1, 0.2]}\n" RANDOM_TAIL, 11,
     "grid.learning_rate", "expected a list or {choice: [...]} or {uniform: [low, high]} or "
     "{log_uniform: [low, high]}, got a mapping"},
    {BASE_HEAD "  learning_rate: {choice: [1e-3], normal: [0.1, 0.2]}\n" RANDOM_TAIL, 11,
     "grid.learning_rate.normal", "unknown key"},
    {BASE_HEAD "  learning_rate: {log_uniform: [1.0e-5, 1.0e-2]}\nepochs: 5\nout: o\n", 11,
     "grid.learning_rate.log_uniform",
     "expected a list with search method grid (a sampled axis needs search: {method: random, trials: N}, "
     "or successive_halving or asha with trials: N)"},
    {"data: {train_dir: d, validation_split: 0.2}\nweights: {mobilenet_v2: m}\n"
     "grid:\n  backbone: {choice: [mobilenet_v2, vgg16]}\nepochs: 1\nout: o\n", 4,
     "grid.backbone.choice[1]", "no weights for vgg16"},
    {"data: {train_dir: d, validation_split: 0.2}\nweights: {mobilenet_v2: m}\n"
     "grid:\n  backbone: {uniform: [1, 2]}\n" RANDOM_TAIL, 4, "grid.backbone",
     "expected a list or {choice: [...]}, got a mapping"},
    {BASE_HEAD TAIL "search: {method: random}\n", 14, "search.trials",
     "missing (required with method: random: how many configurations to draw)"},
    {BASE_HEAD TAIL "search: {method: grid, trials: 5}\n", 14, "search.trials",
     "only with method: random, successive_halving or asha (grid runs every configuration)"},
    {BASE_HEAD TAIL "search: {method: random, trials: 0}\n", 14, "search.trials",
     "expected a whole number in [1, 100000], got 0"},
    {BASE_HEAD TAIL "search: {method: bayes, trials: 5}\n", 14, "search.method",
     "unknown search method 'bayes' (expected one of grid, random, successive_halving, asha)"},
    {BASE_HEAD TAIL "search: {method: random, trials: 5, seed: -1}\n", 14, "search.seed",
     "expected a whole number >= 0, got -1"},
    {BASE_HEAD TAIL "search: {method: random, trials: 5, sed: 1}\n", 14, "search.sed",
     "unknown key (did you mean 'seed'?)"},
    /* successive_halving and asha: the rungs */
    {BASE_HEAD TAIL "search: {method: asha, min_epochs: 5}\n", 14, "search.min_epochs",
     "expected fewer than the trials' 5 epochs (the first rung stops before the last), got 5"},
    {BASE_HEAD TAIL "search: {method: successive_halving, min_epochs: 0}\n", 14, "search.min_epochs",
     "expected a whole number >= 1, got 0"},
    {BASE_HEAD TAIL "search: {method: asha, reduction_factor: 1}\n", 14, "search.reduction_factor",
     "expected a whole number in [2, 100], got 1"},
    {BASE_HEAD TAIL "search: {method: asha, reduction_factor: 2.5}\n", 14, "search.reduction_factor",
     "got 2.5"},
    {BASE_HEAD TAIL "search: {method: asha, max_epochs: 9}\n", 14, "search.max_epochs",
     "expected the same as epochs (5), or one of the two left out"},
    {BASE_HEAD TAIL "search: {method: random, trials: 3, min_epochs: 1}\n", 14, "search.min_epochs",
     "only with method: successive_halving or asha (the rungs)"},
    {BASE_HEAD TAIL "search: {max_epochs: 5}\n", 14, "search.max_epochs",
     "only with method: successive_halving or asha (the rungs)"},
    {BASE_HEAD TAIL "search: {method: asha, reduction_factr: 3}\n", 14, "search.reduction_factr",
     "unknown key (did you mean 'reduction_factor'?)"},
    {BASE_HEAD TAIL "search: {method: random, trials: 3, metric: val_loss}\n", 14, "search.metric",
     "only with method: successive_halving or asha (the rungs)"},
    {BASE_HEAD TAIL "search: {method: asha, metric: val_acc}\n", 14, "search.metric",
     "unknown metric 'val_acc' (expected one of val_accuracy, val_loss, accuracy, loss)"},
    {"data: {train_dir: d}\nweights: {mobilenet_v2: m}\ngrid: {backbone: [mobilenet_v2], "
     "learning_rate: [1e-3]}\nepochs: 3\nselect: {metric: loss, goal: min}\nout: o\n"
     "search: {method: asha, metric: val_loss}\n", 7, "search.metric",
     "val_loss needs validation data: give data.val_dir or data.validation_split > 0"},
    {BASE_HEAD "  learning_rate: {log_uniform: [1.0e-5, 1.0e-2]}\nepochs: 5\nout: o\n"
     "search: {method: asha}\n", 11, "grid.learning_rate.log_uniform",
     "a sampled axis needs search.trials with method asha (how many configurations to draw)"},
    {BASE_HEAD "  learning_rate: [1e-3]\nout: o\nsearch: {method: asha}\n", 1, "epochs",
     "missing (required: a whole number >= 1)"},
    /* label_smoothing: Keras's, in [0, 1); LS(value, tail) is the file */
#define LS(v, tail) BASE_HEAD "  label_smoothing: " v "\n" tail
    {LS("[0.1, 1]", TAIL), 11, "grid.label_smoothing[1]", "expected a number in [0, 1), got 1"},
    {LS("[-0.1]", TAIL), 11, "grid.label_smoothing[0]", "expected a number in [0, 1), got -0.1"},
    {LS("[0.1, 0.1]", TAIL), 11, "grid.label_smoothing[1]", "duplicate value (same as grid.label_smoothing[0])"},
    {LS("{uniform: [0, 1.5]}", RANDOM_TAIL), 11, "grid.label_smoothing.uniform[1]", "got 1.5"},
    {LS("{log_uniform: [0.01, 0.2]}", RANDOM_TAIL), 11, "grid.label_smoothing.log_uniform", "does not sample"},
#undef LS
    /* early_stopping */
    {BASE_HEAD TAIL "early_stopping: {monitor: val_los}\n", 14, "early_stopping.monitor",
     "unknown metric 'val_los' (did you mean 'val_loss'?)"},
    {BASE_HEAD TAIL "early_stopping: {patience: -1}\n", 14, "early_stopping.patience",
     "expected a whole number of epochs >= 0, got -1"},
    {BASE_HEAD TAIL "early_stopping: {min_delta: -0.1}\n", 14, "early_stopping.min_delta",
     "expected a number >= 0, got -0.1"},
    {BASE_HEAD TAIL "early_stopping: {restore_best_weights: false}\n", 14,
     "early_stopping.restore_best_weights",
     "expected true (a trial always keeps its best epoch by select.metric)"},
    {BASE_HEAD TAIL "early_stopping: {patients: 3}\n", 14, "early_stopping.patients",
     "unknown key (did you mean 'patience'?)"},
    {BASE_HEAD TAIL "early_stopping: 3\n", 14, "early_stopping",
     "expected {monitor: val_loss, patience: P, min_delta: D, restore_best_weights: true} "
     "(keys: monitor, patience, min_delta, restore_best_weights), got 3"},
    {"data: {train_dir: d}\nweights: {mobilenet_v2: m}\ngrid: {backbone: mobilenet_v2}\nepochs: 1\n"
     "out: o\nselect: {metric: loss}\nearly_stopping: {patience: 1}\n", 7, "early_stopping.monitor",
     "val_loss needs validation data: give data.val_dir or data.validation_split > 0"},
    /* YAML itself */
    {BASE_HEAD "  learning_rate: [1e-3, 1e-4\nepochs: 5\nout: o\n", 12, "", "YAML syntax error"},
    {"data: {train_dir: d\n", 2, "", "YAML syntax error"},
    {"a: b\n\tc: d\n", 2, "", "YAML syntax error"},
    {"", 1, "", "empty sweep file"},
    {"# only a comment\n\n", 1, "", "empty sweep file"},
    {"- mobilenet_v2\n- resnet50\n", 1, "", "expected a mapping of sweep keys"},
    {"just a string\n", 1, "", "expected a mapping of sweep keys"},
    {BASE_HEAD TAIL "---\nname: second\n", 15, "", "expected one YAML document"},
    {"name: t\ndata: *nowhere\n", 2, "", "YAML syntax error"},
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const bad_case *c = &bad_cases[i];
        sweep s;
        tl_err e = {0};
        int rc = parse_str(&s, c->text, &e);
        if (rc == 0)
            fail_msg("case %zu parsed, expected '%s'", i, c->expect);
        char want[128];
        snprintf(want, sizeof want, "t.yaml:%d:", c->line);
        if (strncmp(e.msg, want, strlen(want)) != 0 || !strstr(e.msg, c->expect) ||
            (*c->path && !strstr(e.msg, c->path)) || strchr(e.msg, '\n'))
            fail_msg("case %zu: got '%s', want '%s ... %s: ... %s'", i, e.msg, want, c->path, c->expect);
        if (*c->path) {
            /* "FILE:LINE:COL: PATH: what" exactly */
            const char *p = strchr(e.msg + strlen(want), ':');
            assert_non_null(p);
            char pre[160];
            snprintf(pre, sizeof pre, ": %s: ", c->path);
            if (strncmp(p, pre, strlen(pre)) != 0)
                fail_msg("case %zu: key path not where expected in '%s'", i, e.msg);
        }
        assert_null(s.trials);   /* nothing left behind */
        sweep_free(&s);
    }
}

/* Deep nesting and long inputs: an error, not a stack overflow. */
static void test_deep(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    char *t = malloc(n + 16);
    assert_non_null(t);
    memcpy(t, "grid: ", 6);
    memset(t + 6, '[', n);
    sweep s;
    tl_err e = {0};
    assert_true(sweep_parse(&s, "deep.yaml", t, n + 6, &e) != 0);
    assert_string_equal(e.msg, "deep.yaml:1:38: nested deeper than 32 levels: not a sweep file");
    sweep_free(&s);
    memcpy(t, "out: ", 5);
    memset(t + 5, 'x', n);
    assert_true(sweep_parse(&s, "long.yaml", t, n + 5, &e) != 0);
    assert_true(strlen(e.msg) < 300);
    sweep_free(&s);
    free(t);
}

static void test_missing_file(void **state)
{
    (void)state;
    sweep s;
    tl_err e = {0};
    assert_int_equal(sweep_load(&s, "/nonexistent/sweep.yaml", &e), TL_EIO);
    assert_non_null(strstr(e.msg, "/nonexistent/sweep.yaml"));
    sweep_free(&s);
}

/* xorshift64*: the mutations are the same every run. */
static uint64_t next(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1DULL;
}

static void test_mutations(void **state)
{
    (void)state;
    char path[1024];
    repo_path(path, sizeof path, "examples/fashion-mnist.yaml");
    size_t lens[2];
    char *bases[2];
    bases[0] = slurp(path, &lens[0]);
    /* every section and every kind of grid value */
    bases[1] = strdup("name: all\n"
                      "data:\n  train_dir: d\n  val_dir: v\n  test_dir: t\n  image_size: 80\n  seed: 7\n"
                      "  augment: {horizontal_flip: true, rotation_range: 10, width_shift_range: 0.1,\n"
                      "            height_shift_range: 0.1, zoom_range: [0.9, 1.1], brightness_range: [0.8, 1.2],\n"
                      "            contrast: 0.2}\n"
                      "model:\n  head:\n    - flatten\n    - {dense: 64, activation: relu6}\n    - {dropout: 0.5}\n"
                      "weights: {resnet50: r.h5, inception_v3: i.tlm}\n"
                      "grid:\n  backbone: [resnet50, inception_v3]\n"
                      "  mode: [fine_tune, {frozen_then_fine_tune: {fine_tune_at: 3, epochs: 1}}]\n"
                      "  learning_rate: 0.01\n  optimizer: [sgd, rmsprop]\n  batch_size: 4\n"
                      "  weight_decay: [1e-4]\n  momentum: [0.9]\n  schedule: [{step: {every: 1, factor: 0.5}}]\n"
                      "epochs: 2\nselect: {metric: loss, goal: min}\nout: o\nseed: 3\nthreads: 2\n");
    assert_non_null(bases[1]);
    lens[1] = strlen(bases[1]);
    sweep s0;
    tl_err e0 = {0};
    if (sweep_parse(&s0, "all.yaml", bases[1], lens[1], &e0))
        fail_msg("%s", e0.msg);
    assert_int_equal(s0.n_trials, 8);
    sweep_free(&s0);
    size_t len = lens[0] > lens[1] ? lens[0] : lens[1];
    static const char alphabet[] = ":-[]{},#&*!|>'\"%@`?\n \t0123456789.eE-+abcxyz\\";
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    char *buf = malloc(2 * len + 64);
    assert_non_null(buf);
    int parsed = 0, failed = 0;
    for (int it = 0; it < 6000; it++) {
        const char *base = bases[it & 1];
        size_t n = lens[it & 1];
        memcpy(buf, base, n);
        int edits = 1 + (int)(next(&rng) % 4);
        for (int k = 0; k < edits && n > 0; k++) {
            size_t at = (size_t)(next(&rng) % n);
            switch (next(&rng) % 5) {
            case 0: buf[at] = (char)(next(&rng) & 0xff); break;                 /* byte */
            case 1: buf[at] ^= (char)(1u << (next(&rng) % 8)); break;           /* bit */
            case 2: n = at; break;                                              /* truncate */
            case 3:                                                             /* insert */
                if (n + 1 < 2 * len + 64) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = alphabet[next(&rng) % (sizeof alphabet - 1)];
                    n++;
                }
                break;
            case 4: {                                                           /* delete */
                size_t d = 1 + (size_t)(next(&rng) % 8);
                if (at + d > n)
                    d = n - at;
                memmove(buf + at, buf + at + d, n - at - d);
                n -= d;
                break;
            }
            }
        }
        sweep s;
        tl_err e = {0};
        int rc = sweep_parse(&s, "fuzz.yaml", buf, n, &e);
        if (rc == 0) {
            parsed++;
            assert_true(s.n_trials >= 1);
            for (size_t i = 0; i < s.n_trials; i++)
                assert_true(s.trials[i].id[0] != '\0');
        } else {
            failed++;
            if (strncmp(e.msg, "fuzz.yaml", 9) != 0 || strchr(e.msg, '\n') || strlen(e.msg) < 12)
                fail_msg("iteration %d: bad message '%s'", it, e.msg);
            assert_null(s.trials);
        }
        sweep_free(&s);
    }
    print_message("mutations: %d parsed, %d refused with one line\n", parsed, failed);
    assert_true(parsed > 0 && failed > 0);
    free(buf);
    free(bases[0]);
    free(bases[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_scalars_as_lists),
        cmocka_unit_test(test_label_smoothing_ids),
        cmocka_unit_test(test_keys_whole),
        cmocka_unit_test(test_search_metric),
        cmocka_unit_test(test_precision_and_engine),
        cmocka_unit_test(test_bf16_host),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_deep),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
