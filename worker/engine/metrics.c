#include "worker/engine/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int check_labels(const char *what, const int *labels, size_t n, size_t c, tl_err *e)
{
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || (size_t)labels[i] >= c)
            return tl_errf(e, TL_EINVAL, "%s: label %d of row %zu is outside [0, %zu)", what,
                           labels[i], i, c);
    return 0;
}

int metrics_topk_correct(const float *scores, const int *labels, size_t n, size_t c, size_t k,
                         int64_t *correct, tl_err *e)
{
    if (k == 0)
        return tl_errf(e, TL_EINVAL, "metrics_topk_correct: k must be >= 1");
    int rc = check_labels("metrics_topk_correct", labels, n, c, e);
    if (rc)
        return rc;
    int64_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        const float *row = scores + i * c;
        size_t y = (size_t)labels[i];
        float s = row[y];
        if (isnan(s))
            continue;
        size_t ahead = 0; /* other classes at or above the label */
        for (size_t j = 0; j < c; j++)
            ahead += (j != y) & (row[j] >= s);
        hits += ahead < k;
    }
    *correct += hits;
    return 0;
}

int metrics_topk_accuracy(const float *scores, const int *labels, size_t n, size_t c, size_t k,
                          double *acc, tl_err *e)
{
    int64_t hits = 0;
    int rc = metrics_topk_correct(scores, labels, n, c, k, &hits, e);
    if (rc)
        return rc;
    *acc = n ? (double)hits / (double)n : 0.0;
    return 0;
}

int metrics_accuracy(const float *scores, const int *labels, size_t n, size_t c, double *acc,
                     tl_err *e)
{
    return metrics_topk_accuracy(scores, labels, n, c, 1, acc, e);
}

size_t metrics_argmax(const float *row, size_t c)
{
    size_t best = 0;
    for (size_t j = 1; j < c; j++)
        if (row[j] > row[best] || (isnan(row[best]) && !isnan(row[j])))
            best = j;
    return best;
}

void metrics_mean_reset(metrics_mean *m) { m->sum = 0, m->weight = 0; }

void metrics_mean_add(metrics_mean *m, double value, double weight)
{
    m->sum += value * weight;
    m->weight += weight;
}

double metrics_mean_value(const metrics_mean *m)
{
    return m->weight != 0 ? m->sum / m->weight : 0.0;
}

int metrics_confusion_init(metrics_confusion *cm, size_t c, tl_err *e)
{
    memset(cm, 0, sizeof *cm);
    if (c == 0 || c > 100000)
        return tl_errf(e, TL_EINVAL, "metrics_confusion_init: %zu classes (want 1..100000)", c);
    cm->counts = calloc(c * c, sizeof *cm->counts);
    if (!cm->counts)
        return tl_errf(e, TL_ENOMEM, "metrics_confusion_init: cannot allocate %zux%zu counts", c, c);
    cm->c = c;
    return 0;
}

void metrics_confusion_reset(metrics_confusion *cm)
{
    if (cm->counts)
        memset(cm->counts, 0, cm->c * cm->c * sizeof *cm->counts);
}

int metrics_confusion_add(metrics_confusion *cm, const float *scores, const int *labels, size_t n,
                          tl_err *e)
{
    int rc = check_labels("metrics_confusion_add", labels, n, cm->c, e);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        cm->counts[(size_t)labels[i] * cm->c + metrics_argmax(scores + i * cm->c, cm->c)]++;
    return 0;
}

int metrics_confusion_add_pred(metrics_confusion *cm, const int *pred, const int *labels, size_t n,
                               tl_err *e)
{
    int rc = check_labels("metrics_confusion_add_pred", labels, n, cm->c, e);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (pred[i] < 0 || (size_t)pred[i] >= cm->c)
            return tl_errf(e, TL_EINVAL,
                           "metrics_confusion_add_pred: prediction %d of row %zu is outside [0, %zu)",
                           pred[i], i, cm->c);
    for (size_t i = 0; i < n; i++)
        cm->counts[(size_t)labels[i] * cm->c + (size_t)pred[i]]++;
    return 0;
}

int64_t metrics_confusion_total(const metrics_confusion *cm)
{
    int64_t t = 0;
    for (size_t i = 0; i < cm->c * cm->c; i++)
        t += cm->counts[i];
    return t;
}

double metrics_confusion_accuracy(const metrics_confusion *cm)
{
    int64_t diag = 0, total = metrics_confusion_total(cm);
    for (size_t i = 0; i < cm->c; i++)
        diag += cm->counts[i * cm->c + i];
    return total ? (double)diag / (double)total : 0.0;
}

void metrics_confusion_free(metrics_confusion *cm)
{
    if (!cm)
        return;
    free(cm->counts);
    memset(cm, 0, sizeof *cm);
}
