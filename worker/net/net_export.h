/* Exporting a native model file (.tlm) to the runtimes users deploy with:
 * what `tlsweep export` does, reachable by tests and other commands.
 *
 * The model is read as `tlsweep predict` reads it (model_read: a torn or
 * tampered file is refused), built into its net in inference mode and
 * loaded strictly; the writer for the format then walks the net's layer
 * table. Class names and preprocessing travel with the model.
 *
 * ONNX (opset 13): input "input", float32 NHWC (batch, H, W, 3), as the
 * engine takes it; a Transpose makes it NCHW for the graph. Without
 * with_preprocessing the input is preprocessed as the model's
 * preprocessing says; with it the graph scales RGB 0-255 itself. Output
 * "probabilities" (batch, classes) after Softmax or Sigmoid (the training
 * loss), or "features" NHWC for a backbone-only model. BatchNormalization
 * stays a node (not folded), so the file holds the weights as trained.
 * metadata_props: tlsweep.class_names (a JSON array), tlsweep.preprocessing,
 * tlsweep.preprocessing_in_graph, tlsweep.input_layout, tlsweep.backbone,
 * tlsweep.convention, tlsweep.output.
 *
 * safetensors: every parameter, BN moving statistics included, F32. In the
 * torchvision convention under torchvision's state_dict names and layouts
 * (conv OIHW, linear (out, in), BN weight/bias/running_mean/running_var),
 * the classifier named as torchvision names it (classifier.1, fc) when the
 * head is pooling and dropout only, so torchvision's model loads it with
 * strict=True; in the Keras convention under the Keras names and layouts
 * ("block_1_expand/kernel" HWIO) that `tlsweep import` and the engine read.
 * __metadata__: backbone, convention, size, alpha, class_names (JSON),
 * preprocessing, loss, num_classes, head (JSON).
 *
 * tfjs: a layers model (model.json + group1-shard1of1.bin) with the Keras
 * layer and weight names and layouts of the net, input NHWC preprocessed,
 * the classifier's Dense carrying softmax/sigmoid; tlsweep's facts (class
 * names, preprocessing...) under userDefinedMetadata.tlsweep. Padding that
 * is neither 'valid' nor TF's 'same' becomes a ZeroPadding2D layer; a
 * layer TensorFlow.js cannot express exactly is refused, naming it.
 *
 * keras (.h5): the layout of Keras's model.save to HDF5: model_config (the
 * same Keras functional config as tfjs's topology) and, under
 * model_weights, layer_names, each layer's weight_names ("<layer>/kernel:0")
 * and its datasets, Keras layouts, so load_weights(by_name=True) finds them;
 * tlsweep's facts in the root attribute "tlsweep" (JSON).
 *
 * It lives in worker/net (as net_import does): the walk needs the
 * backbones' layer tables. */
#ifndef TLSWEEP_NET_EXPORT_H
#define TLSWEEP_NET_EXPORT_H

#include "common/base/err.h"

typedef enum {
    NET_EXPORT_UNKNOWN = 0,
    NET_EXPORT_ONNX,
    NET_EXPORT_SAFETENSORS,
    NET_EXPORT_TFJS,
    NET_EXPORT_KERAS,
} net_export_format;

/* "onnx", "safetensors", "tfjs", "keras" ("?" for unknown), and back (NET_EXPORT_UNKNOWN for a word it
 * does not know). */
const char *net_export_format_name(net_export_format f);
net_export_format net_export_format_parse(const char *s);
/* The format an output path's name asks for: ".onnx", ".safetensors", ".h5";
 * tfjs for "model.json", a name ending in '/' or an existing folder;
 * NET_EXPORT_UNKNOWN when the name does not say. */
net_export_format net_export_format_of_path(const char *out);

typedef struct {
    net_export_format format;  /* NET_EXPORT_UNKNOWN: from out's name */
    int with_preprocessing;    /* the model takes RGB 0-255 and scales it itself (ONNX only) */
} net_export_opts;

typedef struct {
    net_export_format format;
    int nodes;                 /* graph nodes written (ONNX) */
    int tensors;               /* weight tensors written */
    long long out_bytes;
    char input[96];            /* what the model takes, e.g. "float32 NHWC (N,96,96,3) RGB 0-255" */
    char output[64];           /* what it gives, e.g. "probabilities (N,10) softmax" */
} net_export_result;

/* Exports the model file src to out (written atomically: out is the new
 * file or untouched) as o says (NULL: ONNX told by the name). r (may be
 * NULL) is filled on success. Returns 0, or a negative TL_E* code with e
 * holding one line naming src, out or the layer at fault: a format that
 * cannot be told, a model file that does not read, weights that do not
 * fit its net, an output that cannot be written. */
int net_export(const char *src, const char *out, const net_export_opts *o, net_export_result *r,
               tl_err *e);

#endif
