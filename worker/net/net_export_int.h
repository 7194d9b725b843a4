/* Inside net_export: the model as every format's writer receives it (read,
 * built in inference mode, loaded), and one writer per format, each in its
 * own file (net_export_<format>.c). */
#ifndef TLSWEEP_NET_EXPORT_INT_H
#define TLSWEEP_NET_EXPORT_INT_H

#include <jansson.h>

#include "common/weights/model_file.h"
#include "worker/net/net.h"
#include "worker/net/net_export.h"

typedef struct {
    const char *src;           /* the .tlm, for messages */
    const char *out;
    const model_spec *spec;
    net *net;                  /* finalized for one image, weights loaded */
    int with_preprocessing;
} net_export__model;

/* Writes m as ONNX to m->out atomically; fills r's counts. */
int net_export__onnx(const net_export__model *m, net_export_result *r, tl_err *e);

/* Writes m as safetensors (torchvision names and layouts in the
 * torchvision convention, Keras's in the Keras convention). */
int net_export__safetensors(const net_export__model *m, net_export_result *r, tl_err *e);

/* Writes m as a TensorFlow.js layers model: a folder (written whole, then
 * renamed) or, for a path ending in model.json, model.json and its shard
 * beside it (the shard first). */
int net_export__tfjs(const net_export__model *m, net_export_result *r, tl_err *e);

/* The net as a Keras functional model config ({"class_name": "Model",
 * "config": {layers, input_layers, output_layers}}), as tfjs's
 * modelTopology and Keras's model_config hold it (net_export_tfjs.c).
 * TL_EINVAL naming the layer that Keras layers cannot express exactly. */
int net_export__keras_topology(const net_export__model *m, json_t **topo, tl_err *e);

/* Writes m as a Keras .h5 (model.save's layout: model_config, and the
 * weights under model_weights) atomically. */
int net_export__h5(const net_export__model *m, net_export_result *r, tl_err *e);

/* dst (CO, CI, KH, KW) from src (KH, KW, CI, CO): a conv kernel from the
 * engine's layout to ONNX's and torch's (a depthwise HW C 1 kernel comes
 * out C 1 H W with ci = C, co = 1). */
void net_export__oihw(float *dst, const float *src, int kh, int kw, int ci, int co);

/* The input and output as the result states them (both formats share the
 * wording): "float32 NHWC (N,H,W,3) RGB 0-255" or "... preprocessed (tf)". */
void net_export__describe(const net_export__model *m, net_export_result *r);

#endif
