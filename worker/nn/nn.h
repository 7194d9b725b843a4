/* Layer kernels of the tlsweep engine.
 *
 * Layout: float32, NHWC. A 4-D activation (N,H,W,C) is also a matrix of
 * M = N*H*W rows and C columns, which is how batch folds into GEMM.
 * Conv kernels are HWIO: (KH,KW,C/groups,OC), dense kernels are (IN,OUT),
 * the Keras layouts, so Keras weights load without transposes.
 *
 * Every forward/backward pair takes raw pointers and shape structs and
 * never allocates; scratch buffers come from the network's arena.
 * Backward functions ACCUMULATE (+=) into input and parameter gradients,
 * so a tensor consumed twice (residual add, concat) needs no extra pass.
 * Parameter-gradient pointers may be NULL when the parameter is frozen;
 * an input-gradient pointer may be NULL when nothing below needs it.
 */
#ifndef TLSWEEP_NN_H
#define TLSWEEP_NN_H

#include <stddef.h>
#include <stdint.h>

/* ---- padding ---------------------------------------------------------- */

typedef struct {
    int top, bottom, left, right;
} nn_pad;

/* Keras/TensorFlow 'same': total padding max((out-1)*s + k - in, 0), with the
 * extra pixel at the bottom/right. Output size ceil(in / s). */
nn_pad nn_pad_same(int h, int w, int kh, int kw, int sh, int sw);
/* Symmetric padding p on every side (PyTorch padding=p). */
nn_pad nn_pad_sym(int ph, int pw);
/* Output size of one spatial dimension: (in + p0 + p1 - k) / s + 1. */
int nn_out_dim(int in, int k, int s, int p0, int p1);

/* ---- conv2d (groups, including depthwise) ------------------------------ */

typedef struct {
    int n, h, w, c;      /* input */
    int oc, groups;      /* output channels; c % groups == 0, oc % groups == 0 */
    int kh, kw, sh, sw;  /* kernel and stride (dilation 1) */
    nn_pad pad;
    int oh, ow;          /* output, filled by nn_conv2d_init */
} nn_conv2d_shape;

/* Fills oh/ow; returns 0, or -1 when the shape is impossible. */
int nn_conv2d_init(nn_conv2d_shape *s);
/* Floats of im2col scratch that the kernels need for this shape (0 when the
 * conv is a plain GEMM: 1x1, stride 1, no padding, groups 1, and for
 * depthwise, which never uses im2col). */
size_t nn_conv2d_col_size(const nn_conv2d_shape *s);

/* out (N,OH,OW,OC) = conv(inp (N,H,W,C), weight (KH,KW,C/g,OC)) + bias (OC).
 * bias may be NULL. col has nn_conv2d_col_size(s) floats (may be NULL if 0). */
void nn_conv2d_forward(float *out, const float *inp, const float *weight,
                       const float *bias, float *col, const nn_conv2d_shape *s);
/* dinp (N,H,W,C) += ..., dweight += ..., dbias += ...; any may be NULL. */
void nn_conv2d_backward(float *dinp, float *dweight, float *dbias,
                        const float *dout, const float *inp, const float *weight,
                        float *col, const nn_conv2d_shape *s);

/* ---- batch norm over the last axis (M rows, C channels) --------------- */

typedef struct {
    float eps;
    float momentum;      /* weight of the NEW batch in the running update:
                            PyTorch momentum (0.1), or 1 - Keras momentum (0.01) */
} nn_bn_cfg;

/* Training mode: normalise with batch statistics; saves mean and rstd (C)
 * for backward; updates run_mean/run_var (unbiased variance) when not NULL.
 * gamma NULL means scale 1 (Keras scale=False). */
void nn_batchnorm_forward_train(float *out, float *mean, float *rstd,
                                const float *inp, const float *gamma, const float *beta,
                                float *run_mean, float *run_var,
                                nn_bn_cfg cfg, int M, int C);
/* Inference mode: normalise with run_mean/run_var. */
void nn_batchnorm_forward_infer(float *out, const float *inp, const float *gamma,
                                const float *beta, const float *run_mean,
                                const float *run_var, float eps, int M, int C);
/* Backward of training mode. */
void nn_batchnorm_backward_train(float *dinp, float *dgamma, float *dbeta,
                                 const float *dout, const float *inp,
                                 const float *mean, const float *rstd,
                                 const float *gamma, int M, int C);
/* Backward of inference mode (statistics are constants). */
void nn_batchnorm_backward_infer(float *dinp, float *dgamma, float *dbeta,
                                 const float *dout, const float *inp,
                                 const float *gamma, const float *run_mean,
                                 const float *run_var, float eps, int M, int C);
/* Backward of an inference-mode BN whose forward the conv before it computed
 * with folded weights: only dgamma and dbeta (the conv's backward takes the
 * same dout with the folded kernel, which includes the BN's scale), from the
 * BN's OUTPUT: xhat = (out - beta) / gamma. act (1: ReLU, 6: ReLU6, 0: none)
 * is an activation that ran in place on out and whose backward is done
 * here: dout is masked in place first, so where it clipped the output dout
 * is 0 and the lost xhat does not matter. A channel with gamma exactly 0
 * gets no dgamma (xhat is not recoverable there). */
void nn_batchnorm_backward_folded(float *dgamma, float *dbeta, float *dout, const float *out,
                                  const float *gamma, const float *beta, int act, int M, int C);
/* Folds an inference-mode BN into the conv before it: weight is (K, C) with
 * C output channels last (HWIO flattened), bias (C) is overwritten. */
void nn_batchnorm_fold(float *weight, float *bias, const float *gamma,
                       const float *beta, const float *run_mean,
                       const float *run_var, float eps, int K, int C);

/* ---- element-wise ------------------------------------------------------ */

void nn_relu_forward(float *out, const float *inp, size_t n);
/* Uses the forward OUTPUT (so the forward may run in place). */
void nn_relu_backward(float *dinp, const float *dout, const float *out, size_t n);
void nn_relu6_forward(float *out, const float *inp, size_t n);
void nn_relu6_backward(float *dinp, const float *dout, const float *out, size_t n);
/* out = a + b */
void nn_add_forward(float *out, const float *a, const float *b, size_t n);
/* dinp += dout (one operand's share of an add) */
void nn_add_backward(float *dinp, const float *dout, size_t n);

/* Concat along channels: k inputs of (M, cs[i]) into out (M, sum cs). */
void nn_concat_forward(float *out, const float *const *inps, const int *cs, int k, int M);
void nn_concat_backward(float *const *dinps, const float *dout, const int *cs, int k, int M);

/* ---- pooling ----------------------------------------------------------- */

typedef struct {
    int n, h, w, c;
    int kh, kw, sh, sw;
    nn_pad pad;
    int count_include_pad; /* avg pool: PyTorch default 1; Keras/TF 0 */
    int oh, ow;            /* filled by nn_pool2d_init */
} nn_pool2d_shape;

int nn_pool2d_init(nn_pool2d_shape *s);
/* Max pool; padded cells never win. */
void nn_maxpool2d_forward(float *out, const float *inp, const nn_pool2d_shape *s);
/* Recomputes the arg-max from inp and out; ties go to the first in scan order. */
void nn_maxpool2d_backward(float *dinp, const float *dout, const float *inp,
                           const float *out, const nn_pool2d_shape *s);
void nn_avgpool2d_forward(float *out, const float *inp, const nn_pool2d_shape *s);
void nn_avgpool2d_backward(float *dinp, const float *dout, const nn_pool2d_shape *s);

/* Global average pool: inp (N, HW, C) -> out (N, C). */
void nn_gap_forward(float *out, const float *inp, int N, int HW, int C);
void nn_gap_backward(float *dinp, const float *dout, int N, int HW, int C);

/* ---- dense ------------------------------------------------------------- */

/* out (N,OUT) = inp (N,IN) @ weight (IN,OUT) + bias (OUT); bias may be NULL. */
void nn_dense_forward(float *out, const float *inp, const float *weight,
                      const float *bias, int N, int IN, int OUT);
void nn_dense_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                       const float *inp, const float *weight, int N, int IN, int OUT);

/* ---- dropout ----------------------------------------------------------- */

/* Inverted dropout: mask[i] = keep ? 1/(1-rate) : 0, out = inp * mask.
 * The mask is a pure function of (seed, i), so runs are reproducible. */
void nn_dropout_forward(float *out, float *mask, const float *inp, size_t n,
                        float rate, uint64_t seed);
/* The elements first..first+n of a longer tensor: element i draws the mask
 * of index first + i (a group member's rows of a batch draw the masks those
 * rows draw in the whole batch). */
void nn_dropout_forward_at(float *out, float *mask, const float *inp, size_t n,
                           float rate, uint64_t seed, size_t first);
void nn_dropout_backward(float *dinp, const float *dout, const float *mask, size_t n);

/* ---- losses (mean over the batch) ------------------------------------- */

/* probs (N,C) = softmax(logits); returns mean cross-entropy over N rows. */
float nn_softmax_xent_forward(float *probs, const float *logits, const int *labels,
                              int N, int C);
/* dlogits += (probs - onehot(labels)) / N */
void nn_softmax_xent_backward(float *dlogits, const float *probs, const int *labels,
                              int N, int C);
/* The same with Keras's label_smoothing ls in [0, 1): targets
 * onehot(labels)*(1-ls) + ls/C; ls = 0 is the two above. */
float nn_softmax_xent_smooth_forward(float *probs, const float *logits, const int *labels,
                                     int N, int C, float smoothing);
/* dlogits += (probs - targets) / N */
void nn_softmax_xent_smooth_backward(float *dlogits, const float *probs, const int *labels,
                                     int N, int C, float smoothing);
/* The same over denom: N rows of a batch of denom rows (a group member's) */
void nn_softmax_xent_smooth_backward_over(float *dlogits, const float *probs, const int *labels,
                                          int N, int C, float smoothing, int denom);
/* probs = sigmoid(logits); targets in [0,1]; returns mean BCE over N*C. */
float nn_sigmoid_bce_forward(float *probs, const float *logits, const float *targets,
                             int N, int C);
/* dlogits += (probs - targets) / (N*C) */
void nn_sigmoid_bce_backward(float *dlogits, const float *probs, const float *targets,
                             int N, int C);
/* The same over denom*C: N rows of a batch of denom rows */
void nn_sigmoid_bce_backward_over(float *dlogits, const float *probs, const float *targets,
                                  int N, int C, int denom);

/* ---- threads ----------------------------------------------------------- */

/* Threads used by the hand-written kernels (OpenMP); GEMM threads are set
 * separately in OpenBLAS by engine_threads_set(). */
void nn_set_threads(int n);
int nn_get_threads(void);

#endif
