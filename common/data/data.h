/* The image dataset as the coordinator indexes it and workers read it:
 * items by id (path, label, byte size), class names, and splits. Workers
 * receive ids, never pixels. */
#ifndef TLSWEEP_DATA_H
#define TLSWEEP_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "common/base/err.h"

typedef struct {
    char *path;      /* as opened (absolute, or relative to the working dir) */
    int label;       /* index into classes */
    int64_t bytes;   /* file size at indexing time */
    int64_t mtime_ns; /* modification time at indexing time, ns since the epoch */
} data_item;

typedef enum { DATA_TRAIN = 0, DATA_VAL = 1, DATA_TEST = 2 } data_split;

typedef struct {
    char **classes;  /* sorted names: label ids as Keras flow_from_directory */
    int n_classes;
    data_item *items;
    size_t n_items;
    uint8_t *split;  /* per item: data_split */
} data_index;

typedef struct {
    const char *train_dir;     /* one sub-folder per class (required) */
    const char *val_dir;       /* optional: same classes as train_dir */
    const char *test_dir;      /* optional: same classes as train_dir */
    double validation_split;   /* used when val_dir is NULL: stratified, in [0, 1) */
    uint64_t seed;             /* decides the split */
} data_index_cfg;

/* Indexes the folders (common/data/data_index.c). Errors before any work starts:
 * no usable image, one class, an empty class, val/test classes that differ
 * from train's; each a one-line message naming the folder. */
int data_index_build(data_index *ix, const data_index_cfg *cfg, tl_err *e);
void data_index_free(data_index *ix);
size_t data_index_count(const data_index *ix, data_split s);
/* A hash of classes, paths, labels, sizes, modification times and splits:
 * two processes that indexed the same folders the same way agree on it, and
 * an image added, removed, rewritten or touched changes it (trial keys and
 * feature caches hash it). */
uint64_t data_index_fingerprint(const data_index *ix);
/* Zero-byte files of split s: indexed (decoding skips them with a warning)
 * but worth a line in the log before the sweep starts. */
size_t data_index_count_empty(const data_index *ix, data_split s);

/* Preprocessing conventions of the weights' source (Keras names). */
typedef enum {
    DATA_PRE_TF = 0,     /* x/127.5 - 1 (MobileNetV2, InceptionV3) */
    DATA_PRE_CAFFE,      /* RGB->BGR, minus [103.939, 116.779, 123.68] (ResNet50, VGG16) */
    DATA_PRE_TORCH,      /* x/255, minus [0.485,0.456,0.406], over [0.229,0.224,0.225] */
    DATA_PRE_UNIT,       /* x/255 (nsfwjs's MobileNetV2 and InceptionV3 were trained so) */
} data_preprocess;

#endif
