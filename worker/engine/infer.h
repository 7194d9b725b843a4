/* A written model (.tlm) run over images after training: the part that
 * `tlsweep predict`, `evaluate` and `embed` share.
 *
 * The net runs in inference mode (BN folded everywhere, whatever mode it
 * was trained in). Images go through the loader with the model's input size
 * and preprocessing. A bad image is not replaced by its neighbour, as it is
 * in training: it is left out of the batch and reported with its reason, so
 * every row handed on belongs to the image it names. */
#ifndef TLSWEEP_INFER_H
#define TLSWEEP_INFER_H

#include <stddef.h>

#include "common/data/data.h"
#include "common/base/err.h"
#include "common/weights/model_file.h"
#include "common/weights/tensors.h"
#include "worker/net/net.h"

typedef struct {
    const char *path;
    model_spec spec;
    tset tensors;
    net net;
    int have_net;
    int backbone_only;   /* rows are pooled backbone features, not logits */
    int batch;
    float *pooled;       /* (batch, channels) when backbone_only */
    float *probs;        /* (batch, classes), else */
    float *targets;      /* (batch, classes) */
    int *zeros;          /* (batch) */
} infer_model;

/* Reads path and builds its net for batches of up to batch images: the
 * whole net (the model needs a classifier), or with backbone_only the
 * backbone alone. On error m is left closed. */
int infer_open(infer_model *m, const char *path, int backbone_only, int batch, tl_err *e);
void infer_close(infer_model *m);

/* Floats in one row: classes (logits), or the backbone's channels. */
size_t infer_width(const infer_model *m);

/* n rows (n, width) for the good images among a batch; items[i] is the
 * index (into the run's item list) of row i. Non-zero stops the run. */
typedef int (*infer_rows_fn)(void *u, const float *rows, const size_t *items, int n);
/* Once per image that does not decode, in list order; reason names the
 * file ("x.jpg: not a JPEG or PNG ..."). */
typedef void (*infer_bad_fn)(void *u, size_t item, const char *reason);

/* Runs the net over items[0..n) in order, batch by batch. An image list in
 * which nothing decodes is not an error here: every item is reported bad.
 * Returns 0, a rows callback's non-zero value, or a negative TL_E* code. */
int infer_run(infer_model *m, const data_item *items, size_t n, infer_rows_fn rows,
                  infer_bad_fn bad, void *u, tl_err *e);

/* Probabilities of n rows of logits into m->probs (n, classes) with the
 * engine's loss kernels: softmax, or per-class sigmoid for a model trained
 * with the sigmoid loss. Returns the mean loss against labels (one-hot
 * targets for sigmoid); labels NULL when only the probabilities matter. */
float infer_probabilities(infer_model *m, const float *logits, const int *labels, int n);

/* "path: reason" without the leading "path: " when it is there. */
const char *infer_reason(const char *msg, const char *path);

/* --batch's value: 1 .. 4096, else -1. */
int infer_parse_batch(const char *s);

#endif
