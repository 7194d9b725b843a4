/* The axes that change a trial's network and input, run end to end on the
 * coordinator harness (coordtest.h: the tiny MobileNetV2, one real worker
 * thread): two image sizes make two feature caches, each extracted once
 * at its size, and a trial of grid.head trains that head, which best.tlm
 * then holds. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/weights/model_file.h"
#include "coordinator/coordtest.h"

static json_t *load_results(const char *out)
{
    char *p = out_path(out, "results.json");
    json_error_t je;
    json_t *root = json_load_file(p, 0, &je);
    if (!root)
        fail_msg("%s: %s", p, je.text);
    free(p);
    return root;
}

/* Every trial done; returns the trials array (borrowed from root). */
static json_t *all_done(json_t *root, size_t n)
{
    json_t *trials = json_object_get(root, "trials");
    assert_int_equal(json_array_size(trials), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(trials, i), "status")),
                            "done");
    return trials;
}

/* Files in out/cache ending in .features. */
static int count_caches(const char *out)
{
    char *dir = out_path(out, "cache");
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        n += len > 9 && !strcmp(de->d_name + len - 9, ".features");
    }
    closedir(d);
    free(dir);
    return n;
}

static void test_two_image_sizes_two_caches(void **state)
{
    (void)state;
    watchdog("image sizes", RUN_WATCHDOG_S);
    /* the mode list's line, then one more grid line: data.image_size is SIDE */
    char *y = write_sweep_modes("sizes", "out_sizes", weights, "[frozen]\n  image_size: [32, 40]");
    run_ctx r = {.n_peers = 1};
    assert_int_equal(run(y, &r), 0);
    assert_int_equal(r.peers[0].rc, 0);

    json_t *root = load_results("out_sizes");
    json_t *trials = all_done(root, 4);
    int at40 = 0;
    for (size_t i = 0; i < 4; i++) {
        json_t *t = json_array_get(trials, i);
        int size = (int)json_integer_value(json_object_get(t, "image_size"));
        const char *id = json_string_value(json_object_get(t, "id"));
        assert_true(size == 32 || size == 40);
        /* only the size data.image_size does not give is in the id */
        assert_int_equal(strstr(id, "-sz40") != NULL, size == 40);
        at40 += size == 40;
    }
    assert_int_equal(at40, 2);
    json_t *fc = json_object_get(root, "feature_caches");
    assert_int_equal(json_array_size(fc), 2);
    for (size_t g = 0; g < 2; g++) {
        json_t *c = json_array_get(fc, g);
        assert_int_equal(json_integer_value(json_object_get(c, "extractions")), 1);
        assert_int_equal(json_integer_value(json_object_get(c, "trials")), 2);
        const char *text = json_string_value(json_object_get(c, "text"));
        assert_non_null(strstr(text, g == 0 ? "|32|" : "|40|"));
    }
    assert_int_equal(count_caches("out_sizes"), 2);
    json_decref(root);
    free(y);
    alarm(0);
}

static void test_head_axis_in_best_model(void **state)
{
    (void)state;
    watchdog("heads", RUN_WATCHDOG_S);
    char *y = write_sweep_modes("heads", "out_heads", weights,
                                "[frozen]\n  head: [[global_average_pooling, {dense: 8, activation: "
                                "relu}, {dropout: 0.25}], [flatten, {dense: 4}]]");
    run_ctx r = {.n_peers = 1};
    assert_int_equal(run(y, &r), 0);
    assert_int_equal(r.peers[0].rc, 0);

    json_t *root = load_results("out_heads");
    json_t *trials = all_done(root, 4);
    /* pooled and unpooled features are two caches, and their labels say so */
    json_t *fc = json_object_get(root, "feature_caches");
    assert_int_equal(json_array_size(fc), 2);
    const char *label = json_string_value(json_object_get(json_array_get(fc, 1), "label"));
    size_t nl = strlen(label);
    assert_true(nl > 9 && !strcmp(label + nl - 9, "|unpooled"));
    const char *best = json_string_value(json_object_get(json_object_get(root, "best"), "trial"));
    const char *best_head = NULL;
    for (size_t i = 0; i < 4; i++) {
        json_t *t = json_array_get(trials, i);
        if (!strcmp(json_string_value(json_object_get(t, "id")), best))
            best_head = json_string_value(json_object_get(t, "head"));
    }
    assert_non_null(best_head);

    char *bp = out_path("out_heads", "best.tlm");
    model_spec spec;
    model_spec_init(&spec);
    tset ts;
    tset_init(&ts);
    tl_err e = {0};
    if (model_read(bp, &spec, &ts, &e))
        fail_msg("%s", e.msg);
    static const model_head_op gap[] = {{MODEL_HEAD_GAP, 0, MODEL_ACT_LINEAR, 0},
                                        {MODEL_HEAD_DENSE, 8, MODEL_ACT_RELU, 0},
                                        {MODEL_HEAD_DROPOUT, 0, MODEL_ACT_LINEAR, 0.25f}};
    static const model_head_op flat[] = {{MODEL_HEAD_FLATTEN, 0, MODEL_ACT_LINEAR, 0},
                                         {MODEL_HEAD_DENSE, 4, MODEL_ACT_LINEAR, 0}};
    int is_gap = !strcmp(best_head, "gap > dense 8 relu > dropout 0.25");
    if (!is_gap)
        assert_string_equal(best_head, "flatten > dense 4");
    assert_non_null(strstr(best, is_gap ? "-hgap_d8r_do2.5e-01" : "-hflat_d4"));
    const model_head_op *want = is_gap ? gap : flat;
    assert_int_equal(spec.n_head, is_gap ? 3 : 2);
    for (int i = 0; i < spec.n_head; i++) {
        assert_int_equal(spec.head[i].kind, want[i].kind);
        assert_int_equal(spec.head[i].units, want[i].units);
        assert_int_equal(spec.head[i].act, want[i].act);
        assert_true(spec.head[i].rate == want[i].rate);
    }
    /* the classifier after the head: the dataset's classes */
    assert_int_equal(spec.num_classes, 3);
    printf("best %s: head %s\n", best, best_head);
    model_spec_free(&spec);
    tset_free(&ts);
    free(bp);
    json_decref(root);
    free(y);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_image_sizes_two_caches),
        cmocka_unit_test(test_head_axis_in_best_model),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
