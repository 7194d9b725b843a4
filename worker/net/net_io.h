/* Networks to and from model files and named tensor sets: building a net
 * from a model_spec, saving its parameters as a tset, and loading any
 * importer's tset (tfjs, Keras .h5, Keras-named safetensors, .tlm) into it.
 *
 * Names are the net's parameter names, "<layer>/<kernel|depthwise_kernel|
 * bias|gamma|beta|moving_mean|moving_variance>", in Keras layouts. */
#ifndef TLSWEEP_NET_IO_H
#define TLSWEEP_NET_IO_H

#include "common/base/err.h"
#include "common/weights/model_file.h"
#include "common/weights/tensors.h"
#include "worker/net/backbones.h"
#include "worker/net/net.h"

/* net_init + net_backbone + net_head (when spec->num_classes > 0) +
 * trainability + net_finalize for up to max_batch images. Weights are
 * initialised from a fixed seed (callers load theirs next). On error n is
 * left freed. */
int net_build_from_spec(net *n, const model_spec *spec, int max_batch, tl_err *e);

/* The engine's head ops for a model file's ops in[0..n): the same layers,
 * kind and activation translated (MODEL_ACT_LINEAR is NET_ACT_NONE).
 * TL_EINVAL naming the layer for a kind or activation outside the enums. */
int net_head_ops_from_model(net_head_op *out, const model_head_op *in, int n, tl_err *e);

/* The Keras preprocessing of a backbone in a convention: tf for MobileNetV2
 * and InceptionV3, caffe for ResNet50 and VGG16 (Keras); torch for
 * everything torchvision. */
model_preproc net_default_preproc(const char *backbone, model_convention cv);

/* Appends every parameter of the finalized net n to out, BN moving
 * statistics included, under the parameter names; without include_head
 * only the backbone's (layers up to n->features). */
int net_to_tset(net *n, tset *out, int include_head, tl_err *e);

typedef struct {
    int matched;        /* net parameters set */
    int by_order;       /* of which matched by position (InceptionV3 fallback) */
    int unused;         /* tensors that fit no parameter */
    int dropped;        /* head tensors left out (with_head off) */
    int missing;        /* parameters the tset did not provide (keep their values) */
    char first_unused[NET_PARAM_NAME_MAX + 32];
    char first_missing[NET_PARAM_NAME_MAX];
} net_load_summary;

/* One line: "412 parameters loaded (0 by position), 2 head tensors dropped,
 * 0 unused, 0 missing". */
const char *net_load_summary_str(const net_load_summary *s, char *buf, size_t n);

/* Loads s into the finalized net n. A tensor name maps to a parameter by:
 *   1. itself, minus a trailing ":<digits>" ("Conv1/kernel:0");
 *   2. else its suffixes, dropping leading path components one at a time
 *      while a "<layer>/<param>" remains ("model/Conv1/Conv1/kernel" ->
 *      "Conv1/Conv1/kernel" -> "Conv1/kernel").
 * Head tensors (on the net's head layers, or whose layer is "predictions",
 * "dense"/"dense_<k>", "fc", "fc1", "fc2", "logits", "classifier*") are
 * dropped unless with_head; then the net's head parameters are not missing
 * either.
 * Keras InceptionV3 fallback: every conv and BN of Keras's InceptionV3 is
 * auto-named (conv2d_5, batch_normalization_5) from a per-session counter,
 * so a file saved in another session has other numbers (nsfwjs's starts at
 * conv2d_1 where ours starts at conv2d: every name exists, one layer off),
 * or other names (batch_normalization_v1_5 under TF 1.x). When the net is
 * that backbone (Keras convention, layer "mixed10"), conv/BN tensors are
 * matched by name only if every such match fits its shape and no tensor is
 * left unmatched. Otherwise conv groups ("<layer>/kernel" 4-D) and BN
 * groups ("<layer>/moving_mean" ...) are paired by position: both sides
 * ordered by the number ending the layer name (Keras's creation order; the
 * tset's own order when two source names carry the same number), each
 * tensor's shape checked; different counts is an error.
 * A shape that does not fit is TL_ESHAPE naming the tensor, the parameter
 * and both shapes. With strict, an unused tensor (TL_EFORMAT) or a missing
 * parameter (TL_ENOTFOUND) is an error naming the first one. Every check
 * runs before any weight is written: on error the net is unchanged.
 * summary may be NULL. */
int net_load_tset(net *n, const tset *s, int strict, int with_head, net_load_summary *summary,
                  tl_err *e);

#endif
