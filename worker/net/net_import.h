/* Importing a weights file into a native model file (.tlm), checked against
 * the backbone it is for: what `tlsweep import` does, reachable by tests and
 * other commands.
 *
 * The source format is told by content, not by name: "TLSWEEPM" (.tlm),
 * the HDF5 signature (.h5), an 8-byte header length then '{' (safetensors),
 * else a directory, a model.json or nsfwjs's model.min.js (tfjs). The
 * backbone, width multiplier and convention default to what the tensor
 * names (or the tfjs topology) say; options override. Without with_head the
 * classifier and any dense layers after the backbone are dropped and the
 * file holds a feature extractor (num_classes 0).
 *
 * It lives in worker/net, not common/weights: checking the weights needs
 * the backbones (net_build_from_spec, net_load_*), and common/ must not
 * reach up into worker/. */
#ifndef TLSWEEP_NET_IMPORT_H
#define TLSWEEP_NET_IMPORT_H

#include <stddef.h>

#include "common/base/err.h"
#include "common/weights/model_file.h"
#include "worker/net/net_io.h"

typedef enum {
    NET_IMPORT_SRC_UNKNOWN = 0,
    NET_IMPORT_SRC_TLM,
    NET_IMPORT_SRC_H5,
    NET_IMPORT_SRC_SAFETENSORS,
    NET_IMPORT_SRC_TFJS,
} net_import_format;

/* "tlm", "h5", "safetensors", "tfjs" ("?" for unknown): also the importer
 * recorded in the model file. */
const char *net_import_format_name(net_import_format f);

/* The format of path by its content (a directory is tfjs);
 * NET_IMPORT_SRC_UNKNOWN when it cannot be told or read. */
net_import_format net_import_detect(const char *path);

typedef struct {
    const char *backbone; /* NULL: from the tensor names or the topology */
    float alpha;          /* MobileNetV2 width multiplier; 0: from the source */
    int size;             /* input side; 0: from the source, else 224 (299 InceptionV3) */
    int convention;       /* a model_convention, or -1: from the source */
    int preproc;          /* a model_preproc, or -1: the backbone's in its convention */
    int with_head;        /* keep the source's classifier (and dense layers before it) */
} net_import_opts;

#define NET_IMPORT_OPTS_DEFAULT {NULL, 0, 0, -1, -1, 0}

/* How far an import went: the fields of a stage hold from that stage on,
 * also when a later step failed. */
typedef enum {
    NET_IMPORT_NOTHING = 0,
    NET_IMPORT_BUILT,   /* source read, model decided, net built: format .. num_classes */
    NET_IMPORT_LOADED,  /* weights matched to parameters: torch_names, load */
    NET_IMPORT_WRITTEN, /* out written: n_tensors, out_bytes, sha256 */
} net_import_stage;

typedef struct {
    net_import_stage stage;
    net_import_format format;
    char summary[128];          /* the tfjs topology's ("MobileNetV2 224 alpha 1.0"), else "" */
    char backbone[64];
    float alpha;                /* > 0 for MobileNetV2 only */
    int size;                   /* input height = width */
    model_convention convention;
    model_preproc preproc;
    int num_classes;            /* 0: backbone only */
    int torch_names;            /* torch-named safetensors: load has matched and missing only */
    net_load_summary load;
    size_t n_tensors;           /* tensors written */
    long long out_bytes;        /* size of the written file */
    char sha256[65];            /* of the source (the model.json / model.min.js for tfjs) */
} net_import_result;

/* Imports src into the model file out (written atomically) with options o
 * (NULL: NET_IMPORT_OPTS_DEFAULT). r is filled as far as the import got
 * (r->stage). Returns 0, or a negative TL_E* code with e (may be NULL)
 * holding one line that names src (or the option at fault): a format that
 * cannot be told, a backbone that cannot be guessed, a tensor that does not
 * fit, a parameter the source lacks (TL_ENOTFOUND, "no tensor for parameter
 * X (N missing)", after r->load is filled). */
int net_import(const char *src, const char *out, const net_import_opts *o, net_import_result *r,
               tl_err *e);

#endif
