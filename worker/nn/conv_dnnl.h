/* Convolution on oneDNN: one object per (layer shape, batch) holding the
 * forward, backward-data and backward-weights primitives, with the same
 * NHWC activations and HWIO weights as nn_conv2d_*.
 *
 * Nothing here allocates memory that a step touches: the caller gives every
 * buffer (the net's plan puts them in its arena) after asking for sizes:
 *  - prepared weights: the kernel reordered once into the layout the
 *    forward (and, when it differs, the backward-data) primitive wants;
 *  - scratchpad: oneDNN's per-call temporary memory (user scratchpad mode);
 *  - the weight gradient in the primitive's layout before it is added
 *    into the HWIO gradient.
 * Backward semantics differ from nn_conv2d_backward in one way: the input
 * gradient is WRITTEN (oneDNN has no accumulating backward); weight and
 * bias gradients are accumulated like everywhere else.
 *
 * Without oneDNN in the build every create call fails with TL_EUNSUPPORTED
 * (TL_EINVAL) and the caller stays on OpenBLAS. */
#ifndef TLSWEEP_NN_CONV_DNNL_H
#define TLSWEEP_NN_CONV_DNNL_H

#include <stddef.h>

#include "common/base/err.h"
#include "worker/nn/backend.h"
#include "worker/nn/nn.h"

typedef struct nn_dconv nn_dconv;

typedef enum { NN_POST_NONE = 0, NN_POST_RELU, NN_POST_RELU6 } nn_post;

typedef struct {
    int bias;            /* the conv has a bias */
    nn_post post;        /* activation fused into the forward's output */
    int bwd_data;        /* backward data is needed */
    int bwd_weights;     /* weight (and bias) gradients are needed */
    nn_precision prec;   /* NN_BF16: bf16 compute, fp32 in and out */
} nn_dconv_cfg;

/* The layout decisions of a created conv, so a conv for another batch size
 * can be made to use the same prepared weights (see `like`). */
typedef struct {
    size_t wfwd_bytes;   /* prepared forward weights (0: uses HWIO as it is) */
    size_t wbwd_bytes;   /* prepared backward-data weights when they differ (else 0) */
    size_t dw_bytes;     /* weight gradient in the primitive's layout */
    size_t scratch_bytes;/* the largest scratchpad of the three primitives */
    size_t act_bytes;    /* bf16 copies of input and output gradient (bf16 only) */
} nn_dconv_sizes;

/* Shape s with s->n the batch. like: a conv of the same layer for another
 * batch whose prepared-weight layouts this one must reuse (NULL: choose).
 * Returns NULL and fills e when oneDNN cannot compute this conv. */
nn_dconv *nn_dconv_create(const nn_conv2d_shape *s, const nn_dconv_cfg *cfg,
                          const nn_dconv *like, tl_err *e);
void nn_dconv_free(nn_dconv *c);
nn_dconv_sizes nn_dconv_get_sizes(const nn_dconv *c);
/* "brg:avx512_core / jit:avx512_core / jit:avx512_core" */
const char *nn_dconv_impl(const nn_dconv *c, char *buf, size_t n);

/* Reorders the HWIO kernel into the prepared buffers (wfwd_bytes and
 * wbwd_bytes large; either may be NULL when its size is 0). */
int nn_dconv_prepare(nn_dconv *c, void *wfwd, void *wbwd, const float *w_hwio,
                     void *scratch);

/* out (N,OH,OW,OC) = post(conv(inp) + bias). w: wfwd, or the HWIO kernel
 * when wfwd_bytes is 0. act: act_bytes of bf16 staging (bf16 only). */
int nn_dconv_forward(nn_dconv *c, float *out, const float *inp, const void *w,
                     const float *bias, void *scratch, void *act);
/* dinp = conv_backward_data(dout) (written, not accumulated). w: wbwd when
 * wbwd_bytes > 0, else as for the forward. */
int nn_dconv_backward_data(nn_dconv *c, float *dinp, const float *dout, const void *w,
                           void *scratch, void *act);
/* dweight (HWIO) += ..., dbias += ... (dbias may be NULL). dwtmp: dw_bytes;
 * dbtmp: OC floats. */
int nn_dconv_backward_weights(nn_dconv *c, float *dweight, float *dbias, const float *dout,
                              const float *inp, void *dwtmp, float *dbtmp, void *scratch,
                              void *act);

#endif
