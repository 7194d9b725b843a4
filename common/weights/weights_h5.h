/* Keras .h5 weights (HDF5, read through libhdf5), as written by Keras's
 * save_weights in the HDF5 format (the `*_notop.h5` files of
 * keras.applications) and by model.save (full model: the same layout under
 * the group "model_weights", beside a "model_config" attribute).
 *
 * Layout, as Keras's hdf5_format.py writes and reads it:
 *   <root>.attrs["layer_names"]     layer names, in model order
 *   <root>/<layer>.attrs["weight_names"]
 *                                   dataset paths relative to the layer
 *                                   group: "Conv1/kernel:0" (Keras 2 on
 *                                   TF1), stored as Conv1/Conv1/kernel:0 by
 *                                   TF2 Keras, whose names carry the scope
 * A name list too large for one HDF5 object header is split into
 * "<attr>0", "<attr>1", ...; names are fixed-length (numpy bytes) or
 * variable-length strings. A missing or empty weight_names (also the empty
 * float array Keras writes) means a layer without weights.
 *
 * Tensor names are "<layer>/<last component of the weight name, minus
 * :N>" ("Conv1/kernel", "bn_Conv1/moving_mean"), which does not depend on
 * the scope the variables were created under. A layer whose weights sit
 * under more than one scope, or would collide under that rule, is a nested
 * model (a backbone inside a full-model file: weight names "Conv1/kernel:0",
 * "bn_Conv1/gamma:0", ... all under layer "mobilenetv2_1.00_224"); its
 * tensors are named by the weight name minus :N instead ("Conv1/kernel"),
 * the inner layers' names.
 *
 * Layouts are Keras's, which are tlsweep's (conv HWIO, depthwise HW(C)(1),
 * dense (IN,OUT)): no conversion. float32 is copied; float16 and float64
 * are converted to float32 (float64 outside float range is an error).
 */
#ifndef TLSWEEP_WEIGHTS_H5_H
#define TLSWEEP_WEIGHTS_H5_H

#include <stdint.h>

#include "common/base/err.h"
#include "common/weights/tensors.h"

/* All tensors of one file together, as float32, at most. */
#define WEIGHTS_H5_MAX_BYTES ((uint64_t)4 << 30)

/* Appends every weight of the Keras .h5 file at path to out (initialised by
 * the caller), in layer_names order and weight_names order within a layer.
 * libhdf5 is not safe on damaged files, so it runs in a child process
 * (fork) that sends the tensors back through a pipe; this process never
 * calls libhdf5 on the file. Before allocating, every dataset's size is
 * bounded by the file's (uncompressed datasets together fit in it; a
 * compressed one inflates at most 1032 times) and all tensors together by
 * WEIGHTS_H5_MAX_BYTES.
 * Returns 0, or a negative TL_E* code with e holding one line that names
 * the file and the layer/dataset, and out as it was before the call:
 *   TL_EIO       the file cannot be opened; the child process cannot be
 *                started, crashed (a signal: libhdf5 on a damaged file),
 *                sent nothing for 120 s (killed) or sent a bad frame
 *   TL_EFORMAT   not an HDF5 file; HDF5 but no layer_names (not Keras);
 *                a name list that is not strings; a layer group or a
 *                weight_names dataset that does not exist; a non-float
 *                dtype; a non-finite value; more than TSET_MAX_DIMS dims;
 *                a dataset larger than the bounds above, or stored outside
 *                the file (external or virtual)
 *   TL_EINVAL    two tensors with the same name
 *   TL_ENOMEM */
int weights_h5_read(const char *path, tset *out, tl_err *e);

#endif
