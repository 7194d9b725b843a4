/* Random augmentation of training images, in Keras ImageDataGenerator
 * vocabulary (plus torchvision's RandomResizedCrop). Every random choice is
 * a pure function of (seed, trial, epoch, image id), so a resumed run, or
 * the same epoch decoded on another thread or rank, sees the same pixels.
 *
 * Order, as Keras applies them: random resized crop (chosen on the full
 * oriented image, before resizing, so the JPEG is DCT-scaled for the crop);
 * resize; rotation/shift/zoom as one affine map (bilinear, fill_mode
 * 'nearest'); horizontal flip; brightness; contrast; clip to [0, 255];
 * preprocessing. */
#ifndef TLSWEEP_DATA_AUGMENT_H
#define TLSWEEP_DATA_AUGMENT_H

#include <stdint.h>

#include "common/data/data_image.h"

typedef struct {
    int horizontal_flip;          /* flip with probability 1/2 */
    float rotation_range;         /* degrees: uniform in [-r, r] */
    float width_shift_range;      /* fraction of width: uniform in [-s, s] */
    float height_shift_range;     /* fraction of height */
    float zoom_range[2];          /* Keras: zx, zy uniform in [lo, hi] (< 1 zooms in); {0,0} or {1,1}: off */
    float brightness_range[2];    /* factor uniform in [lo, hi] multiplying the pixels; {0,0}: off */
    float contrast;               /* keras RandomContrast: factor in [1-c, 1+c] about the per-channel mean */
    int random_resized_crop;      /* torchvision RandomResizedCrop (replaces crop_to_aspect_ratio) */
    float crop_scale[2];          /* area fraction, default {0.08, 1} */
    float crop_ratio[2];          /* aspect w/h, default {3/4, 4/3} */
} data_augment_cfg;

/* Everything off; crop ranges at torchvision's defaults. */
void data_augment_cfg_default(data_augment_cfg *a);
/* Nonzero when any switch is on. */
int data_augment_active(const data_augment_cfg *a);

/* The random choices for one image. */
typedef struct {
    data_box crop;          /* in the full oriented image; the whole image when off */
    int flip;
    float theta;            /* radians */
    float tx, ty;           /* shift in output pixels */
    float zx, zy;
    float brightness;       /* 1: off */
    float contrast;         /* 1: off */
} data_augment_params;

/* The per-image stream: rng_mix of seed, trial, epoch, image id. */
uint64_t data_augment_seed(uint64_t seed, uint64_t trial, uint64_t epoch, uint64_t image_id);

/* Draws the choices for an image whose oriented size is w x h. Each switch
 * reads its own counters of the stream, so turning one on does not change
 * what another draws. */
void data_augment_draw(const data_augment_cfg *a, uint64_t stream, int w, int h,
                       data_augment_params *p);

/* Applies the post-resize steps in place to img (h, w, 3), values [0, 255].
 * scratch: w*h*3 floats (used only for the affine map). */
void data_augment_apply(const data_augment_params *p, float *img, int w, int h, float *scratch);

/* The whole training path: open, draw, decode (DCT-scaled for the crop),
 * resize, augment, preprocess into out (cfg->height, cfg->width, 3). a NULL
 * or inactive: exactly data_image_load. scratch as data_augment_apply. */
int data_augment_load(data_image_ctx *c, const char *path, const data_image_cfg *cfg,
                      const data_augment_cfg *a, uint64_t stream, float *out, float *scratch,
                      tl_err *e);

#endif
