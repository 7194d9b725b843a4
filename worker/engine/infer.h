/* A written model (.tlm) run over images after training: the runner that
 * `tlsweep predict`, `evaluate` and `embed` share, and what each of them
 * makes of the rows (top classes, accuracy/loss/confusion, a features file).
 * Nothing here prints: bad images go to a callback, errors to a tl_err.
 *
 * The net runs in inference mode (BN folded everywhere, whatever mode it
 * was trained in). Images go through the loader with the model's input size
 * and preprocessing. A bad image is not replaced by its neighbour, as it is
 * in training: it is left out of the batch and reported with its reason, so
 * every row handed on belongs to the image it names. */
#ifndef TLSWEEP_INFER_H
#define TLSWEEP_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "common/data/data.h"
#include "common/base/err.h"
#include "common/weights/model_file.h"
#include "common/weights/tensors.h"
#include "worker/engine/metrics.h"
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

/* ---- predict: the top classes of each image ------------------------------- */

typedef struct {
    size_t n;         /* images */
    int k;            /* classes kept per image: min(top, classes) */
    int *top;         /* (n, k) class indices, most probable first, lowest index on ties */
    float *prob;      /* (n, k) their probabilities */
    char **error;     /* (n) why an image was not predicted (infer_reason's), else NULL */
    size_t failed;    /* images with an error */
} infer_predictions;

/* The top classes of items[0..n). A bad image gets its error entry and is
 * handed to bad (may be NULL) with the full reason; the others are still
 * predicted. p must be freed with infer_predictions_free, also on error. */
int infer_predict(infer_model *m, const data_item *items, size_t n, int top,
                  infer_predictions *p, infer_bad_fn bad, void *u, tl_err *e);
void infer_predictions_free(infer_predictions *p);

/* ---- evaluate: a model on class folders ----------------------------------- */

typedef struct {
    int classes;              /* the model's */
    int *map;                 /* (folders) folder label -> model class */
    int64_t seen, hits;       /* images run, top-1 correct */
    double loss_sum;          /* mean loss * images, summed over batches */
    double accuracy, loss;    /* hits / seen and loss_sum / seen; 0 when seen is 0 */
    metrics_confusion cm;     /* (classes, classes): rows true class, columns predicted */
    int64_t *class_total;     /* (classes) images of each true class */
    const char **bad;         /* (n_bad) paths of the images skipped, into the index */
    size_t n_bad;
    int *labels;              /* (batch) scratch */
} infer_eval;

/* Runs m over every image of ix, the folders (under dir, named in errors)
 * mapped to the model's classes by name: a test set may leave classes out;
 * a folder the model does not know is TL_EINVAL naming it and both lists
 * (a model without class names needs as many folders as classes). No image
 * that decodes is TL_EINVAL "DIR: none of the N images decodes". Bad images
 * are skipped, listed and handed to bad (may be NULL). r must be freed with
 * infer_eval_free, also on error. */
int infer_evaluate(infer_model *m, const data_index *ix, const char *dir, infer_eval *r,
                   infer_bad_fn bad, void *u, tl_err *e);
/* The model's name for class i, else its number in buf. */
const char *infer_class_name(const model_spec *s, int i, char *buf, size_t n);
void infer_eval_free(infer_eval *r);

/* ---- embed: pooled backbone features -------------------------------------- */

typedef struct {
    size_t F;            /* features per image: the backbone's channels */
    size_t kept;         /* images that decoded */
    float *rows;         /* (kept, F) */
    size_t *item;        /* (kept) index into the items of each row */
    const char **bad;    /* (n_bad) paths of the images left out, into the items */
    size_t n_bad;
} infer_embeddings;

/* The features of items[0..n) for a model opened backbone_only. Bad images
 * are left out, listed and handed to bad (may be NULL); none decoding is
 * TL_EINVAL. x must be freed with infer_embeddings_free, also on error. */
int infer_embed(infer_model *m, const data_item *items, size_t n, infer_embeddings *x,
                infer_bad_fn bad, void *u, tl_err *e);
/* Writes x to path atomically: CSV ("path,label,f0,f1...") when path ends
 * in .csv (any case), else safetensors with tensor "embeddings" (kept, F)
 * and metadata model, backbone, paths (a JSON array), labels when ix (the
 * folders the items came from) is given, skipped when images were. */
int infer_embeddings_write(const infer_embeddings *x, const char *path, const char *model,
                           const char *backbone, const data_item *items, const data_index *ix,
                           tl_err *e);
void infer_embeddings_free(infer_embeddings *x);

#endif
