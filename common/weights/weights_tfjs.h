/* TensorFlow.js layers models: model.json + binary weight shards, or the
 * nsfwjs packaging where dist/models/<name>/model.min.js and
 * group1-shard<i>of<n>.min.js wrap the JSON (as a JS object literal) and the
 * base64 shards in small browserify modules.
 *
 * The reader treats every file as untrusted. It rejects, with one line naming
 * the file and, where there is one, the tensor: JSON (or a JS wrapper) that
 * does not parse, a missing shard, shards whose total size is not what the
 * manifest's tensors need (truncated or too long), unknown dtypes or
 * quantisation dtypes, duplicate names, shapes with negative or non-integer
 * dimensions, and NaN/Inf in float32 or float16 weights.
 *
 * Dequantisation is tfjs's (io_utils decodeWeights): value = q * scale + min
 * computed in double and rounded to float32, so the weights are bit-identical
 * to what TensorFlow.js uses. Names are the manifest's ("Conv1/kernel") and
 * layouts are Keras's, which are tlsweep's (conv HWIO, depthwise HW C 1,
 * dense (IN,OUT)): nothing is transposed. */
#ifndef TLSWEEP_WEIGHTS_TFJS_H
#define TLSWEEP_WEIGHTS_TFJS_H

#include <stddef.h>

#include "common/base/err.h"
#include "common/weights/tensors.h"

#define WEIGHTS_TFJS_MAX_JSON (256u * 1024u * 1024u)
#define WEIGHTS_TFJS_MAX_SHARD (2048u * 1024u * 1024u)

typedef struct {
    char *name;           /* Keras layer name */
    char *class_name;     /* "Conv2D", "DepthwiseConv2D", "Dense"... */
    char *config;         /* the layer's config object as compact JSON ("{}" if absent) */
} weights_tfjs_layer;

typedef struct {
    char model_file[512];     /* the model.json / model.min.js actually read */
    char format[32];          /* "layers-model", "graph-model" or "" */
    char keras_version[32];   /* modelTopology.keras_version, "" if absent */
    /* Backbone hints from the topology (all zero / empty when unrecognised). */
    char backbone[32];        /* tlsweep's name: "mobilenet_v2", "inception_v3",
                                 "resnet50", "vgg16" or "" */
    float alpha;              /* MobileNetV2 width multiplier, else 0 */
    int input_h, input_w, input_c;  /* InputLayer batch_input_shape, 0 if unknown */
    int backbone_out;         /* index in layers[] of the backbone's last layer
                                 (include_top=False output), -1 if unknown */
    char summary[128];        /* "MobileNetV2 224 alpha 1.0", "InceptionV3 299" */
    weights_tfjs_layer *layers;   /* in topology order */
    int n_layers;
    size_t n_tensors;         /* manifest entries read */
    size_t n_shards;
    size_t weight_bytes;      /* bytes of all shards */
} weights_tfjs_info;

/* path: a model.json, a directory holding model.json (or model.min.js), or
 * a model.min.js. Appends every tensor of the manifest to out (which must be
 * initialised) in manifest order. info may be NULL; when given it is filled
 * (and must be released with weights_tfjs_info_free, also after an error).
 * Returns 0 or a negative TL_E* code with e filled; on error out may hold the
 * tensors read before the failure. */
int weights_tfjs_read(const char *path, tset *out, weights_tfjs_info *info, tl_err *e);
void weights_tfjs_info_free(weights_tfjs_info *info);

/* The two decoders, exposed for tests and fuzzing. */
/* Standard base64 (RFC 4648 alphabet, padding optional). Returns the number
 * of bytes written, or -1 on a character outside the alphabet, misplaced
 * padding, a dangling single character, or when dst (cap bytes) is too small. */
long weights_tfjs_base64_decode(const char *src, size_t len, unsigned char *dst, size_t cap);
/* The JS value found after "exports=" / "export default" in a JS module
 * (an object literal with unquoted keys, !0/!1, .5 numbers, single-quoted
 * strings), rewritten as JSON text (malloc'd, NUL-terminated). *value_at and
 * *value_end (either may be NULL) receive the byte range of the value in
 * src. Returns NULL and fills e (naming `name`) when the wrapper or the
 * literal is malformed. */
char *weights_tfjs_js_to_json(const char *name, const char *src, size_t len, size_t *value_at,
                              size_t *value_end, tl_err *e);

#endif
