/* infer: a model file written here (a random MobileNetV2 alpha 0.35 at
 * 32x32, classes "a", "b", "c") run over class folders of PNGs written here,
 * one of them not an image. evaluate's counts agree with predict's top-1
 * and with the folders (class "c" left out of the test set is fine; a
 * folder the model does not know is one error line); predict's top classes
 * come sorted with probabilities summing to 1 and the bad image has its
 * error; embed gives one row of the backbone's channels per good image and
 * writes them as CSV and safetensors. */
#include "testutil.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/weights/model_file.h"
#include "common/weights/safetensors.h"
#include "data/imgutil.h"
#include "worker/engine/infer.h"
#include "worker/net/net_io.h"

#define SIDE 32

static char model_path[512];

static void write_model(const char *path)
{
    tl_err e = {0};
    model_spec s;
    model_spec_init(&s);
    assert_int_equal(model_spec_set_str(&s.backbone, "mobilenet_v2", &e), 0);
    s.alpha = 0.35f;
    s.height = s.width = SIDE;
    s.preproc = MODEL_PREPROC_UNIT;
    model_head_op ops[] = {{MODEL_HEAD_GAP, 0, MODEL_ACT_LINEAR, 0},
                           {MODEL_HEAD_DENSE, 8, MODEL_ACT_RELU, 0}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(model_spec_add_head(&s, ops[i], &e), 0);
    s.num_classes = 3;
    const char *names[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(model_spec_add_class(&s, names[i], &e), 0);
    net n;
    assert_int_equal(net_build_from_spec(&n, &s, 1, &e), 0);
    tset t;
    tset_init(&t);
    assert_int_equal(net_to_tset(&n, &t, 1, &e), 0);
    assert_int_equal(model_write(path, &s, &t, &e), 0);
    tset_free(&t);
    net_free(&n);
    model_spec_free(&s);
}

static void write_png(const char *path, uint64_t seed)
{
    uint8_t *pix = iu_pattern(SIDE, SIDE, seed);
    iu_png(path, pix, SIDE, SIDE, PNG_COLOR_TYPE_RGB, 8, NULL, 0, 0);
    free(pix);
}

/* data/a: 2 images, data/b: 2 images and x.png, which is not one. */
static int setup(void **state)
{
    int rc = tu_tmpdir_setup(state);
    snprintf(model_path, sizeof model_path, "%s", tu_tmp("m.tlm"));
    write_model(model_path);
    mkdir(tu_tmp("data"), 0755);
    mkdir(tu_tmp("data/a"), 0755);
    mkdir(tu_tmp("data/b"), 0755);
    write_png(tu_tmp("data/a/1.png"), 1);
    write_png(tu_tmp("data/a/2.png"), 2);
    write_png(tu_tmp("data/b/1.png"), 3);
    write_png(tu_tmp("data/b/2.png"), 4);
    tu_write_file(tu_tmp("data/b/x.png"), "not a png", 9);
    return rc;
}

static void count_bad(void *u, size_t item, const char *reason)
{
    (void)item;
    assert_non_null(strstr(reason, "x.png"));
    (*(int *)u)++;
}

static void index_data(data_index *ix, const char *dir)
{
    tl_err e = {0};
    data_index_cfg dc = {dir, NULL, NULL, 0, 0};
    assert_int_equal(data_index_build(ix, &dc, &e), 0);
    assert_int_equal((int)ix->n_items, 5);
}

static void test_evaluate_agrees_with_predict(void **st)
{
    (void)st;
    tl_err e = {0};
    data_index ix;
    index_data(&ix, tu_tmp("data"));
    infer_model m;
    assert_int_equal(infer_open(&m, model_path, 0, 2, &e), 0);
    assert_int_equal((int)infer_width(&m), 3);

    infer_eval r;
    int nbad = 0;
    assert_int_equal(infer_evaluate(&m, &ix, tu_tmp("data"), &r, count_bad, &nbad, &e), 0);
    assert_int_equal(nbad, 1);
    assert_int_equal(r.classes, 3);
    assert_int_equal(r.seen, 4);
    assert_int_equal((int)r.n_bad, 1);
    assert_non_null(strstr(r.bad[0], "x.png"));
    assert_int_equal(r.class_total[0], 2);
    assert_int_equal(r.class_total[1], 2);
    assert_int_equal(r.class_total[2], 0); /* "c" is not in the test set */
    assert_int_equal(metrics_confusion_total(&r.cm), 4);
    int64_t trace = 0;
    for (int i = 0; i < 3; i++)
        trace += r.cm.counts[i * 3 + i];
    assert_int_equal(trace, r.hits);
    assert_true(r.accuracy == (double)r.hits / 4);
    assert_true(r.loss > 0 && r.loss == r.loss_sum / 4);

    /* the same images through predict: its top-1 hits are evaluate's */
    infer_predictions p;
    nbad = 0;
    assert_int_equal(infer_predict(&m, ix.items, ix.n_items, 5, &p, count_bad, &nbad, &e), 0);
    assert_int_equal(nbad, 1);
    assert_int_equal(p.k, 3); /* top 5 of 3 classes */
    assert_int_equal((int)p.failed, 1);
    int64_t hits = 0;
    for (size_t i = 0; i < ix.n_items; i++) {
        if (strstr(ix.items[i].path, "x.png")) {
            assert_non_null(p.error[i]);
            assert_null(strstr(p.error[i], ix.items[i].path)); /* the reason, not the path */
            continue;
        }
        assert_null(p.error[i]);
        const float *pr = p.prob + i * 3;
        assert_true(pr[0] >= pr[1] && pr[1] >= pr[2]);
        assert_float_equal(pr[0] + pr[1] + pr[2], 1.0f, 1e-5f);
        hits += p.top[i * 3] == ix.items[i].label;
    }
    assert_int_equal(hits, r.hits);
    infer_predictions_free(&p);
    infer_eval_free(&r);
    infer_close(&m);
    data_index_free(&ix);
}

static void test_unknown_folder(void **st)
{
    (void)st;
    tl_err e = {0};
    mkdir(tu_tmp("other"), 0755);
    mkdir(tu_tmp("other/a"), 0755);
    mkdir(tu_tmp("other/zebra"), 0755);
    write_png(tu_tmp("other/a/1.png"), 5);
    write_png(tu_tmp("other/zebra/1.png"), 6);
    data_index ix;
    data_index_cfg dc = {tu_tmp("other"), NULL, NULL, 0, 0};
    assert_int_equal(data_index_build(&ix, &dc, &e), 0);
    infer_model m;
    assert_int_equal(infer_open(&m, model_path, 0, 2, &e), 0);
    infer_eval r;
    assert_int_equal(infer_evaluate(&m, &ix, tu_tmp("other"), &r, NULL, NULL, &e), TL_EINVAL);
    tu_assert_one_line_error(&e, tu_tmp("other"), "'zebra' is not a class of", model_path);
    infer_eval_free(&r);
    infer_close(&m);
    data_index_free(&ix);
}

static void test_embed(void **st)
{
    (void)st;
    tl_err e = {0};
    data_index ix;
    index_data(&ix, tu_tmp("data"));
    infer_model m;
    assert_int_equal(infer_open(&m, model_path, 1, 3, &e), 0);
    infer_embeddings x;
    assert_int_equal(infer_embed(&m, ix.items, ix.n_items, &x, NULL, NULL, &e), 0);
    assert_int_equal((int)x.F, 1280); /* Keras keeps 1280 last channels for alpha <= 1 */
    assert_int_equal((int)x.kept, 4);
    assert_int_equal((int)x.n_bad, 1);

    assert_int_equal(
        infer_embeddings_write(&x, tu_tmp("e.csv"), model_path, "mobilenet_v2", ix.items, &ix, &e),
        0);
    size_t n;
    char *csv = (char *)tu_read_file(tu_tmp("e.csv"), &n);
    csv[n] = 0;
    assert_int_equal(strncmp(csv, "path,label,f0,f1,", 17), 0);
    int lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += csv[i] == '\n';
    assert_int_equal(lines, 5);
    assert_non_null(strstr(csv, "/a/1.png,a,"));
    free(csv);

    assert_int_equal(infer_embeddings_write(&x, tu_tmp("e.safetensors"), model_path,
                                            "mobilenet_v2", ix.items, &ix, &e),
                     0);
    weights_st *w;
    assert_int_equal(weights_st_open(&w, tu_tmp("e.safetensors"), &e), 0);
    const weights_st_tensor *t = weights_st_find(w, "embeddings");
    assert_non_null(t);
    assert_int_equal((int)t->shape[0], 4);
    assert_int_equal((int)t->shape[1], 1280);
    assert_string_equal(weights_st_metadata(w, "backbone"), "mobilenet_v2");
    assert_non_null(strstr(weights_st_metadata(w, "labels"), "\"a\""));
    assert_non_null(strstr(weights_st_metadata(w, "skipped"), "x.png"));
    weights_st_close(w);
    infer_embeddings_free(&x);
    infer_close(&m);
    data_index_free(&ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_evaluate_agrees_with_predict),
        cmocka_unit_test(test_unknown_folder),
        cmocka_unit_test(test_embed),
    };
    return cmocka_run_group_tests(tests, setup, tu_tmpdir_teardown);
}
