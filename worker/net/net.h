/* A network is a table of layers (a DAG in topological order) over one
 * block of parameters and one activation arena, both sized by
 * net_finalize() before the first step and never resized.
 *
 * Layer and parameter names follow the weights' source: Keras layer names
 * in the Keras convention ("block_1_expand", params "block_1_expand/kernel"),
 * torchvision module paths in the torchvision convention ("features.1.conv.0.0",
 * params "features.1.conv.0.0/kernel"). Parameter suffixes are Keras's:
 * kernel, depthwise_kernel, bias, gamma, beta, moving_mean, moving_variance.
 * Tensors are stored in Keras layouts (conv HWIO, dense (IN,OUT)) whatever
 * the convention; importers transpose.
 */
#ifndef TLSWEEP_NET_H
#define TLSWEEP_NET_H

#include <stddef.h>
#include <stdint.h>

#include "common/base/err.h"
#include "worker/nn/backend.h"
#include "worker/nn/nn.h"

struct nn_dconv;

#define NET_MAX_IN 8
#define NET_NAME_MAX 96
#define NET_PARAM_NAME_MAX (NET_NAME_MAX + 32)

typedef enum {
    NET_INPUT = 0,
    NET_CONV,
    NET_BN,
    NET_RELU,
    NET_RELU6,
    NET_ADD,
    NET_CONCAT,
    NET_MAXPOOL,
    NET_AVGPOOL,
    NET_GAP,
    NET_FLATTEN,
    NET_DENSE,
    NET_DROPOUT,
} net_kind;

typedef enum { NET_KERAS = 0, NET_TORCHVISION = 1 } net_convention;

typedef struct {
    char name[NET_PARAM_NAME_MAX];
    int ndim;
    int shape[4];
    size_t off, n;     /* offset into net.weights / net.grads, element count */
    int layer;         /* owning layer */
    int is_state;      /* BN moving statistics: loaded and saved, never trained */
} net_param;

typedef struct {
    net_kind kind;
    char name[NET_NAME_MAX];
    int n_in;
    int in[NET_MAX_IN];   /* producer layers; layer 0 is the input */
    int h, w, c;          /* output shape of one image */
    int keras_index;      /* position in Keras's model.layers (fine_tune_at) */
    int trainable;        /* parameters receive gradients and updates */
    int bn_update;        /* BN: use batch statistics in training (else inference mode) */
    int ran_train;        /* last forward: BN used batch stats / dropout applied a mask */
    int n_consumers;
    int param0, n_params; /* net.params[param0 .. param0+n_params) */
    float *out, *dout;    /* into the arena, max_batch images; dout NULL if not needed */
    float *aux;           /* per-layer scratch: BN mean|rstd, dropout mask */
    /* memory plan (net_plan.c) */
    int out_root;         /* layer whose buffer holds this output (itself unless shared) */
    int inplace;          /* ReLU/ReLU6 computed in its producer's buffer */
    int folded_into;      /* BN: the conv whose folded weights produce it, else -1 */
    int fold_bn;          /* conv: the BN folded into it, else -1 */
    int fold_train;       /* conv with fold_bn, trainable: folded again every step */
    size_t fold_off;      /* conv with fold_bn: folded kernel, then bias, in net.fold */
    int zero_dout_at;     /* zero this dout just before layer zero_dout_at's backward */
    /* backend (net_dnn.c) */
    int onednn;           /* conv computed by oneDNN (else OpenBLAS and our kernels) */
    int fused;            /* ReLU/ReLU6 computed by its producer's oneDNN conv (post-op) */
    int post_relu;        /* conv: the fused ReLU/ReLU6 layer, else -1 */
    int dinp_write;       /* oneDNN conv that writes its input gradient first (no zeroing) */
    int dc_batch;         /* batch of dc */
    struct nn_dconv *dc, *dc_max; /* primitives for dc_batch and for max_batch */
    size_t wf_off, wb_off;/* its prepared weights in net.dnn (bytes; wb 0 when shared) */
    union {
        struct { nn_conv2d_shape s; int bias; } conv;   /* s.n set per call */
        struct { float eps, momentum; int scale; } bn;
        struct { nn_pool2d_shape s; } pool;
        struct { int units, bias; } dense;
        struct { float rate; } dropout;
    } u;
} net_layer;

typedef struct {
    net_layer *layers;
    int n_layers, cap_layers;
    net_param *params;
    int n_params, cap_params;
    int keras_counter;    /* next keras_index */

    float *weights;       /* all parameters, one allocation */
    float *grads;         /* same size; only trainable params are used */
    size_t n_weights;

    float *arena;         /* activations, gradients, scratch: one allocation */
    size_t arena_floats;
    float *col;           /* im2col scratch inside the arena */
    size_t col_floats;
    float *fold;          /* frozen convs with their BN folded in (inference mode) */
    size_t fold_floats;
    int fold_stale;       /* weights changed since the fold was computed */
    size_t peak_floats;   /* what the arena would be without the plan's sharing */
    int max_batch;
    int first_backward;   /* lowest layer whose backward runs (stopbackward) */
    int features;         /* backbone output layer (-1 before a head is added) */
    net_convention convention;
    uint64_t step_seed;   /* dropout masks: a function of (step_seed, layer, i) */
    int first_row;        /* row 0 of the batch is this row of the global batch (groups):
                             dropout indexes its masks from first_row * per-row elements */
    int finalized;
    /* oneDNN (net_dnn.c): prepared weights, scratchpad and staging, one block */
    nn_backend backend;   /* what was asked for at net_finalize */
    nn_precision precision;
    unsigned char *dnn;
    size_t dnn_bytes;
    size_t scratch_off, scratch_bytes, dw_off, dw_bytes, db_off, act_off, act_bytes;
    size_t dtmp_off, dtmp_floats; /* input gradient of convs that add into it */
    int dnn_stale;        /* frozen convs' prepared weights need preparing again */
    int n_onednn;         /* layers on oneDNN */
    int train_fold;       /* fold trainable conv + inference-mode BN (oneDNN nets) */
    size_t wtmp_off;      /* HWIO weight gradient (+ bias) of a folded trainable conv */
} net;

/* ---- building (shapes are computed as layers are added) ------------------ */

void net_init(net *n, int h, int w, int c, net_convention cv);
void net_free(net *n);

/* Keras 'same' padding for a kernel over layer `in`'s output. */
nn_pad net_pad_same(const net *n, int in, int kh, int kw, int sh, int sw);

/* Each returns the new layer's index, or a negative TL_E* code. */
int net_conv(net *n, const char *name, int in, int oc, int kh, int kw, int sh, int sw,
             nn_pad pad, int groups, int bias);
int net_bn(net *n, const char *name, int in, float eps, float momentum, int scale);
int net_relu(net *n, const char *name, int in);
int net_relu6(net *n, const char *name, int in);
int net_add(net *n, const char *name, int a, int b);
int net_concat(net *n, const char *name, const int *ins, int k);
int net_maxpool(net *n, const char *name, int in, int kh, int kw, int sh, int sw, nn_pad pad);
int net_avgpool(net *n, const char *name, int in, int kh, int kw, int sh, int sw, nn_pad pad,
                int count_include_pad);
int net_gap(net *n, const char *name, int in);
int net_flatten(net *n, const char *name, int in);
int net_dense(net *n, const char *name, int in, int units, int bias);
int net_dropout(net *n, const char *name, int in, float rate);
/* A Keras layer with no counterpart here (ZeroPadding2D folded into the next
 * conv, a Reshape...): it only takes a keras_index. */
void net_keras_skip(net *n);

/* Sizes and allocates parameters and the arena for up to max_batch images,
 * touches every page once, and initialises weights (He/Glorot uniform from
 * seed; BN gamma 1, beta 0, moving mean 0, variance 1). */
int net_finalize(net *n, int max_batch, uint64_t seed, tl_err *e);

/* ---- trainability --------------------------------------------------------
 * Must be called before net_finalize (it decides which gradients exist). */

/* Layers [0, from) frozen (BN in inference mode), [from, n_layers) trainable. */
void net_set_trainable_from(net *n, int from);
/* Keras fine_tune_at: layers whose keras_index >= k are trainable. */
void net_set_trainable_from_keras(net *n, int k);
/* BN layers that are trainable update their statistics in training
 * (default off: Keras's advice to call the base with training=False). */
void net_set_bn_update(net *n, int on);

/* ---- running --------------------------------------------------------------- */

/* x is (batch, h, w, c). training: BN batch statistics where bn_update, dropout on. */
void net_forward(net *n, const float *x, int batch, int training);
/* Zeroes activation gradients, sets the last layer's dout from dlast
 * (batch, units) and runs backward down to first_backward, accumulating
 * into n->grads (zero them with net_zero_grads between steps). */
void net_backward(net *n, const float *dlast, int batch);
void net_zero_grads(net *n);

/* Output of the last layer. */
float *net_output(const net *n);
const net_layer *net_last(const net *n);

/* Call after writing weights other than through net_param_data() (which
 * assumes the caller writes): frozen convs fold their BN again. */
void net_weights_changed(net *n);

/* Lookup by name; NULL / -1 when absent. */
net_param *net_find_param(net *n, const char *name);
int net_find_layer(const net *n, const char *name);
float *net_param_data(net *n, const net_param *p);
float *net_param_grad(net *n, const net_param *p);
int net_param_trainable(const net *n, const net_param *p);

/* Bytes of parameters + gradients + arena (+ folded weights). */
size_t net_bytes(const net *n);
/* Which backend computes which layers, on one line, e.g.
 * "onednn: conv 52 (fused relu 33); openblas: dwconv 17, dense 1" (after
 * net_finalize; the choice is made there from nn_backend_get()). */
char *net_backend_summary(const net *n, char *buf, size_t len);

/* Forward multiply-adds per image (conv + dense), for GFLOP/s figures. */
double net_macs_per_image(const net *n);

#endif
