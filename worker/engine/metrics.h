/* Classification metrics over a batch of scores (N,C) row-major (logits or
 * probabilities, any monotone scale) and int labels (N) in [0, C).
 *
 * Ties are counted against the model: a row is top-k correct when the
 * number of OTHER classes scoring >= the label's score is < k. So a network
 * that outputs a constant scores 0, not 100%. A NaN label score is never
 * correct; NaN scores of other classes do not outrank it. (Keras' argmax
 * accuracy instead credits a tie to the lowest index, tf.math.in_top_k to
 * every tied class.)
 */
#ifndef TLSWEEP_METRICS_H
#define TLSWEEP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/base/err.h"

/* Adds to *correct the rows whose label is in the top k (k >= 1; k >= c
 * counts every row with a non-NaN label score). TL_EINVAL on a label out of
 * range, naming the row. */
int metrics_topk_correct(const float *scores, const int *labels, size_t n, size_t c, size_t k,
                         int64_t *correct, tl_err *e);

/* Fraction of top-1 / top-k correct rows, in [0, 1]; 0 when n == 0. */
int metrics_accuracy(const float *scores, const int *labels, size_t n, size_t c, double *acc,
                     tl_err *e);
int metrics_topk_accuracy(const float *scores, const int *labels, size_t n, size_t c, size_t k,
                          double *acc, tl_err *e);

/* Index of the largest score in one row of c; the lowest index on ties,
 * NaN never wins (all-NaN rows give 0). */
size_t metrics_argmax(const float *row, size_t c);

/* ---- running mean (Keras metrics.Mean): sum(value*weight) / sum(weight) ---- */

typedef struct {
    double sum;
    double weight;
} metrics_mean;

void metrics_mean_reset(metrics_mean *m);
/* value: e.g. a batch's mean loss; weight: its number of samples. */
void metrics_mean_add(metrics_mean *m, double value, double weight);
/* 0 when nothing was added (Keras divide_no_nan). */
double metrics_mean_value(const metrics_mean *m);

/* ---- confusion matrix: counts[label * c + predicted], predicted = argmax ---- */

typedef struct {
    size_t c;
    int64_t *counts; /* c*c, owned */
} metrics_confusion;

int metrics_confusion_init(metrics_confusion *cm, size_t c, tl_err *e);
void metrics_confusion_reset(metrics_confusion *cm);
/* Adds a batch of scores (n,c). Checks every label first, so a bad batch
 * adds nothing. */
int metrics_confusion_add(metrics_confusion *cm, const float *scores, const int *labels, size_t n,
                          tl_err *e);
/* Adds a batch of already-decided predictions. */
int metrics_confusion_add_pred(metrics_confusion *cm, const int *pred, const int *labels, size_t n,
                               tl_err *e);
int64_t metrics_confusion_total(const metrics_confusion *cm);
/* trace / total; 0 when empty. */
double metrics_confusion_accuracy(const metrics_confusion *cm);
void metrics_confusion_free(metrics_confusion *cm);

#endif
