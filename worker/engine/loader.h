/* Batches of decoded, resized, preprocessed (and for training, augmented)
 * images for the engine: float NHWC plus int labels, in an order and with
 * content that depend only on the configuration, never on thread timing.
 *
 * A small pthread pool decodes ahead of the consumer into a ring of `depth`
 * batches, so memory is bounded by depth * batch_size * H * W * 3 floats.
 *
 * Bad images: the slot at position i of ids holds the first image at
 * positions i, i+1, ... (wrapping round the list) that decodes. Each bad
 * file is reported once per loader (warn callback, one line naming the file
 * and the reason) and counted; a list with no decodable image is an error.
 * The substitute is augmented with its own image id's random stream. */
#ifndef TLSWEEP_LOADER_H
#define TLSWEEP_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "common/data/data.h"
#include "common/data/data_augment.h"
#include "common/data/data_image.h"
#include "common/base/err.h"

typedef struct {
    const data_item *items;        /* the dataset (data_index.items) */
    const size_t *ids;             /* consumption order: indices into items */
    size_t n_ids;
    int batch_size;                /* the last batch holds the remainder */
    /* NULL, or batch b holds sizes[b] positions (0 allowed; sizes sum to
     * n_ids, each at most batch_size): a group member's rows of each
     * global batch */
    const int *sizes;
    size_t n_sizes;
    data_image_cfg image;          /* output size, preprocessing, crop, pixel limit */
    const data_augment_cfg *augment;  /* NULL or inactive: none (validation, features) */
    uint64_t seed, trial, epoch;   /* the augmentation streams */
    int threads;                   /* decoding threads, >= 1 (0: 1) */
    int depth;                     /* batches decoded ahead (0: 2) */
    /* One line per bad file (from a decoding thread, serialised); NULL:
     * only counted. */
    void (*warn)(void *ctx, const char *line);
    void *warn_ctx;
} loader_cfg;

typedef struct {
    float *x;          /* (n, height, width, 3) */
    int *labels;       /* (n) */
    const size_t *ids; /* (n) the item in each slot (a substitute for a bad one) */
    int n;
    size_t index;      /* batch number from 0 */
} loader_batch;

typedef struct loader loader;

/* Starts the pool; the first batches begin decoding at once. cfg->items
 * and cfg->ids must outlive the loader. */
int loader_open(loader **out, const loader_cfg *cfg, tl_err *e);
/* 1: *b holds the next batch (valid until the next call or close);
 * 0: no batches left; < 0: error (no decodable image in the list). */
int loader_next(loader *L, loader_batch *b, tl_err *e);
/* Distinct bad files met so far. */
size_t loader_skipped(loader *L);
size_t loader_batches(const loader *L);
void loader_close(loader *L);

#endif
