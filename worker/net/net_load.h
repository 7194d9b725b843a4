/* Loading PyTorch (torchvision / timm) weights into a network built in the
 * torchvision convention, whose layer names are the torch module paths. */
#ifndef TLSWEEP_NET_LOAD_H
#define TLSWEEP_NET_LOAD_H

#include "common/base/err.h"
#include "worker/net/net.h"

/* Loads a safetensors file of torch-named tensors in torch layouts into the
 * finalized net n:
 *   <m>.weight       -> <m>/kernel            conv OIHW -> HWIO, linear [out,in] -> [in,out]
 *                    -> <m>/depthwise_kernel  O1HW -> HW(C)(1)
 *                    -> <m>/gamma             batch norm
 *   <m>.bias         -> <m>/bias, or <m>/beta for batch norm
 *   <m>.running_mean -> <m>/moving_mean,  <m>.running_var -> <m>/moving_variance
 *   <m>.num_batches_tracked is ignored.
 * Which target applies is decided by the parameter the net has. F32, F16,
 * BF16 and F64 tensors are accepted. A tensor whose shape does not fit is
 * TL_ESHAPE naming the tensor and both shapes. With strict, a parameter the
 * file lacks (TL_ENOTFOUND) or a tensor that fits no parameter (TL_EFORMAT)
 * is an error naming the first one; without strict both are skipped, and
 * the parameters keep their values. Returns 0 or a negative TL_E* code with
 * e filled; on error the net's weights may be partly overwritten. */
int net_load_safetensors(net *n, const char *path, int strict, tl_err *e);
/* The torch attribute a parameter comes from: "weight" (kernel, gamma),
 * "bias" (bias, beta), "running_mean", "running_var". */
const char *net_load_torch_suffix(const net_param *p);

#endif
