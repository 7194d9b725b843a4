/* The native model file (.tlm): architecture, weights, preprocessing,
 * class names and provenance (proto/model.proto, message tlsweep.Model).
 *
 * Framing, integers little-endian:
 *   "TLSWEEPM" | u32 format version | u64 payload length | payload | SHA-256(payload)
 * model_write() writes it atomically (path.tmp, fsync, rename, fsync of the
 * directory), streaming the tensors through the checksum with no copy of
 * the weights. model_read() treats the file as untrusted and refuses, with
 * one line naming the file (and the tensor): a bad magic, an unsupported
 * version, a length that does not match the file (torn), a checksum
 * mismatch (tampered), a payload that does not unpack, an architecture
 * field out of range, a tensor whose data length is not the product of its
 * shape, duplicate names, and NaN/Inf.
 */
#ifndef TLSWEEP_MODEL_FILE_H
#define TLSWEEP_MODEL_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "common/base/err.h"
#include "common/weights/tensors.h"

#define MODEL_MAGIC "TLSWEEPM"
#define MODEL_FORMAT_VERSION 1u
#define MODEL_HEADER_SIZE 20u                 /* magic, version, length */
#define MODEL_MAX_PAYLOAD (4ull << 30)        /* 4 GiB */
#define MODEL_MAX_HEAD_OPS 64
#define MODEL_MAX_CLASSES (1 << 20)
#define MODEL_MAX_SIDE 16384

typedef enum { MODEL_KERAS = 0, MODEL_TORCHVISION = 1 } model_convention;
/* Same order as data_preprocess (common/data/data.h): a cast converts. */
typedef enum {
    MODEL_PREPROC_TF = 0,
    MODEL_PREPROC_CAFFE,
    MODEL_PREPROC_TORCH,
    MODEL_PREPROC_UNIT,   /* x/255 */
} model_preproc;
typedef enum { MODEL_LOSS_SOFTMAX = 0, MODEL_LOSS_SIGMOID } model_loss;
typedef enum { MODEL_FROZEN = 0, MODEL_FINE_TUNE_AT, MODEL_FINE_TUNE } model_mode;
typedef enum { MODEL_HEAD_GAP = 0, MODEL_HEAD_FLATTEN, MODEL_HEAD_DENSE, MODEL_HEAD_DROPOUT } model_head_kind;
typedef enum { MODEL_ACT_LINEAR = 0, MODEL_ACT_RELU, MODEL_ACT_RELU6 } model_act;

typedef struct {
    model_head_kind kind;
    int units;            /* DENSE */
    model_act act;        /* DENSE */
    float rate;           /* DROPOUT */
} model_head_op;

/* Mirrors tlsweep.Model minus the tensors (which travel as a tset). Every
 * pointer is owned (malloc'd) and released by model_spec_free; NULL strings
 * are written as empty. */
typedef struct {
    uint32_t format_version;  /* set by model_read; model_write writes the current one */
    /* architecture */
    char *backbone;
    float alpha;              /* MobileNetV2 width multiplier, 0 elsewhere */
    int height, width;
    model_convention convention;
    model_head_op *head;      /* ops before the classifier Dense(num_classes) */
    int n_head;
    int num_classes;          /* 0: backbone only */
    model_loss loss;
    model_mode mode;
    int fine_tune_at;         /* MODEL_FINE_TUNE_AT */
    int bn_update;
    /* data */
    model_preproc preproc;
    char **class_names;       /* n_class_names: 0 or num_classes */
    int n_class_names;
    /* provenance */
    char *source_path;
    char *source_sha256;      /* hex */
    char *importer;
    char *tlsweep_version;
    char *precision;          /* "fp32"/"bf16" that trained it; NULL: not trained here, or an old file */
} model_spec;

void model_spec_init(model_spec *s);
void model_spec_free(model_spec *s);
/* Replaces *field with a copy of value (NULL clears it). */
int model_spec_set_str(char **field, const char *value, tl_err *e);
/* Appends a head op / a class name (copied). */
int model_spec_add_head(model_spec *s, model_head_op op, tl_err *e);
int model_spec_add_class(model_spec *s, const char *name, tl_err *e);

/* Names for messages and flags ("keras", "tf", "softmax", "frozen"), and the
 * reverse; parse returns -1 for an unknown word. */
const char *model_convention_name(model_convention c);
int model_convention_parse(const char *s);
const char *model_preproc_name(model_preproc p);
int model_preproc_parse(const char *s);

/* Writes spec and tensors to path atomically. The tensors must be finite
 * and named uniquely. */
int model_write(const char *path, const model_spec *spec, const tset *tensors, tl_err *e);
/* The bytes model_write would write, exactly, in one malloc'd buffer (*buf,
 * *len; the caller frees *buf). Same checks, one code path. On error *buf is
 * NULL and *len 0. */
int model_write_mem(const model_spec *spec, const tset *tensors, unsigned char **buf,
                    size_t *len, tl_err *e);
/* Writes the bytes of a whole model file (from model_write_mem, or received
 * whole) to path atomically, after model_read_mem has accepted them: bytes
 * it refuses are TL_EFORMAT with its message naming path and "not written",
 * and an existing path is left untouched. Briefly holds a decoded copy. */
int model_write_bytes(const char *path, const void *buf, size_t len, tl_err *e);
/* Reads path into spec and tensors, both initialised by the caller (and
 * empty). On error both are left empty (still to be freed by the caller). */
int model_read(const char *path, model_spec *spec, tset *tensors, tl_err *e);
/* The same from a buffer holding a whole file; name is used in messages.
 * For tests and fuzzing. */
int model_read_mem(const char *name, const void *buf, size_t len, model_spec *spec,
                   tset *tensors, tl_err *e);

#endif
