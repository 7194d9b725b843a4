/* Accuracy, top-k with ties, running mean and confusion matrix, against
 * hand-worked cases and a sort-based reference. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "worker/engine/metrics.h"

static void test_hand_cases(void **st)
{
    (void)st;
    /* 4 rows, 3 classes */
    const float s[] = {
        0.1f, 0.7f, 0.2f,  /* label 1: clear top-1 */
        0.5f, 0.5f, 0.0f,  /* label 0: tied with class 1 for first */
        0.3f, 0.2f, 0.1f,  /* label 2: third */
        1.0f, 1.0f, 1.0f,  /* label 2: constant row */
    };
    const int y[] = {1, 0, 2, 2};
    int64_t hits = 0;
    tl_err e = {0};
    assert_int_equal(metrics_topk_correct(s, y, 4, 3, 1, &hits, &e), 0);
    assert_int_equal(hits, 1); /* only row 0: ties go against the model */
    hits = 0;
    assert_int_equal(metrics_topk_correct(s, y, 4, 3, 2, &hits, &e), 0);
    assert_int_equal(hits, 2); /* rows 0, 1 */
    hits = 0;
    assert_int_equal(metrics_topk_correct(s, y, 4, 3, 3, &hits, &e), 0);
    assert_int_equal(hits, 4);
    /* accumulates */
    assert_int_equal(metrics_topk_correct(s, y, 4, 3, 3, &hits, &e), 0);
    assert_int_equal(hits, 8);

    double acc = -1;
    assert_int_equal(metrics_accuracy(s, y, 4, 3, &acc, &e), 0);
    assert_float_equal(acc, 0.25, 1e-15);
    assert_int_equal(metrics_topk_accuracy(s, y, 4, 3, 2, &acc, &e), 0);
    assert_float_equal(acc, 0.5, 1e-15);
    assert_int_equal(metrics_accuracy(s, y, 0, 3, &acc, &e), 0);
    assert_float_equal(acc, 0.0, 0);
}

static void test_nan_and_bad_input(void **st)
{
    (void)st;
    const float s[] = {NAN, 0.0f, 1.0f, 2.0f, NAN, 1.0f};
    int y[] = {0, 1};
    int64_t hits = 0;
    tl_err e = {0};
    /* row 0: NaN label score never counts; row 1: NaN rival does not outrank */
    assert_int_equal(metrics_topk_correct(s, y, 2, 3, 3, &hits, &e), 0);
    assert_int_equal(hits, 0);
    y[1] = 2;
    assert_int_equal(metrics_topk_correct(s, y, 2, 3, 1, &hits, &e), 0);
    assert_int_equal(hits, 0); /* 1.0 < 2.0 */
    y[1] = 0;
    assert_int_equal(metrics_topk_correct(s, y, 2, 3, 1, &hits, &e), 0);
    assert_int_equal(hits, 1); /* 2.0 vs NaN and 1.0 */

    y[1] = 3;
    assert_int_equal(metrics_topk_correct(s, y, 2, 3, 1, &hits, &e), TL_EINVAL);
    assert_non_null(strstr(e.msg, "row 1"));
    y[1] = -1;
    assert_int_equal(metrics_topk_correct(s, y, 2, 3, 1, &hits, &e), TL_EINVAL);
    y[1] = 0;
    assert_int_equal(metrics_topk_correct(s, y, 2, 3, 0, &hits, &e), TL_EINVAL);
}

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Reference: sort the row descending, then the label's pessimistic rank is
 * the last position holding its score. */
static int ref_topk(const float *row, size_t c, int y, size_t k)
{
    float *sorted = malloc(c * sizeof *sorted);
    memcpy(sorted, row, c * sizeof *sorted);
    qsort(sorted, c, sizeof *sorted, cmp_desc);
    size_t last = 0;
    for (size_t j = 0; j < c; j++)
        if (sorted[j] == row[y])
            last = j;
    free(sorted);
    return last < k;
}

static void test_against_sort_reference(void **st)
{
    (void)st;
    enum { NR = 500, C = 10 };
    float *s = tu_alloc_uniform(NR * C, 21, 0, 1);
    int *y = malloc(NR * sizeof *y);
    for (size_t i = 0; i < NR * C; i++)
        s[i] = floorf(s[i] * 4) / 4; /* 4 levels: lots of ties */
    float *u = tu_alloc_uniform(NR, 22, 0, C);
    for (size_t i = 0; i < NR; i++)
        y[i] = (int)u[i];
    for (size_t k = 1; k <= C; k++) {
        int64_t want = 0, got = 0;
        for (size_t i = 0; i < NR; i++)
            want += ref_topk(s + i * C, C, y[i], k);
        assert_int_equal(metrics_topk_correct(s, y, NR, C, k, &got, NULL), 0);
        assert_int_equal(got, want);
    }
    free(s), free(y), free(u);
}

static void test_argmax(void **st)
{
    (void)st;
    const float a[] = {1, 3, 3, 2};
    assert_int_equal(metrics_argmax(a, 4), 1);
    const float b[] = {NAN, 0, -1};
    assert_int_equal(metrics_argmax(b, 3), 1);
    const float c[] = {NAN, NAN};
    assert_int_equal(metrics_argmax(c, 2), 0);
    const float d[] = {-INFINITY, -5};
    assert_int_equal(metrics_argmax(d, 2), 1);
}

static void test_mean(void **st)
{
    (void)st;
    metrics_mean m;
    metrics_mean_reset(&m);
    assert_float_equal(metrics_mean_value(&m), 0.0, 0);
    metrics_mean_add(&m, 2.0, 32);
    metrics_mean_add(&m, 4.0, 16); /* a short last batch weighs less */
    assert_float_equal(metrics_mean_value(&m), (2.0 * 32 + 4.0 * 16) / 48, 1e-15);
    metrics_mean_reset(&m);
    metrics_mean_add(&m, 1.5, 1);
    assert_float_equal(metrics_mean_value(&m), 1.5, 0);
}

static void test_confusion(void **st)
{
    (void)st;
    metrics_confusion cm;
    tl_err e = {0};
    assert_int_equal(metrics_confusion_init(&cm, 3, &e), 0);
    const float s[] = {
        0.9f, 0.1f, 0.0f, /* pred 0 */
        0.2f, 0.3f, 0.5f, /* pred 2 */
        0.4f, 0.4f, 0.1f, /* tie: pred 0 */
        0.0f, 0.0f, 1.0f, /* pred 2 */
    };
    const int y[] = {0, 1, 1, 2};
    assert_int_equal(metrics_confusion_add(&cm, s, y, 4, &e), 0);
    const int64_t want[9] = {1, 0, 0, /**/ 1, 0, 1, /**/ 0, 0, 1};
    assert_memory_equal(cm.counts, want, sizeof want);
    assert_int_equal(metrics_confusion_total(&cm), 4);
    assert_float_equal(metrics_confusion_accuracy(&cm), 0.5, 1e-15);

    const int p[] = {1, 1};
    const int y2[] = {1, 0};
    assert_int_equal(metrics_confusion_add_pred(&cm, p, y2, 2, &e), 0);
    assert_int_equal(cm.counts[1 * 3 + 1], 1);
    assert_int_equal(cm.counts[0 * 3 + 1], 1);
    assert_int_equal(metrics_confusion_total(&cm), 6);

    /* bad label or prediction: error, nothing added */
    const int bad[] = {0, 5};
    assert_int_equal(metrics_confusion_add(&cm, s, bad, 2, &e), TL_EINVAL);
    assert_non_null(strstr(e.msg, "label 5 of row 1"));
    assert_int_equal(metrics_confusion_add_pred(&cm, bad, y2, 2, &e), TL_EINVAL);
    assert_non_null(strstr(e.msg, "prediction 5"));
    assert_int_equal(metrics_confusion_total(&cm), 6);

    metrics_confusion_reset(&cm);
    assert_int_equal(metrics_confusion_total(&cm), 0);
    assert_float_equal(metrics_confusion_accuracy(&cm), 0.0, 0);
    metrics_confusion_free(&cm);
    assert_int_equal(metrics_confusion_init(&cm, 0, &e), TL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_cases),
        cmocka_unit_test(test_nan_and_bad_input),
        cmocka_unit_test(test_against_sort_reference),
        cmocka_unit_test(test_argmax),
        cmocka_unit_test(test_mean),
        cmocka_unit_test(test_confusion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
