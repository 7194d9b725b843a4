/* Pixels of one dataset image: decode (JPEG through TurboJPEG with DCT
 * scaling, PNG through libpng; chosen by content, never by extension),
 * EXIF orientation, antialiased resize to the network's input size, and the
 * preprocessing of the weights' source. Output is float32 HWC RGB (BGR after
 * DATA_PRE_CAFFE), the engine's NHWC layout one image at a time.
 *
 * Colour rules, chosen to match Pillow's Image.convert("RGB"):
 *   grayscale -> R=G=B; CMYK/YCCK JPEG (Adobe-inverted values, as
 *   libjpeg-turbo delivers them) -> R = C*K/255 and so on; PNG palette and
 *   low bit depths expanded, 16-bit scaled to 8 (rounded), alpha and tRNS
 *   DROPPED (not composited).
 * A JPEG that libjpeg reports any warning for (truncated: "Premature end of
 * JPEG file", corrupt data) is an error, not a grey-filled image. */
#ifndef TLSWEEP_DATA_IMAGE_H
#define TLSWEEP_DATA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/data/data.h"
#include "common/base/err.h"

#define DATA_IMAGE_MAX_PIXELS_DEFAULT 100000000LL  /* 100 megapixels */

typedef struct {
    int width, height;           /* output size */
    data_preprocess preprocess;
    int crop_to_aspect_ratio;    /* Keras: centre-crop to width:height first; 0 squashes */
    int64_t max_pixels;          /* refuse larger images (from the header); 0: default */
} data_image_cfg;

/* A source rectangle in pixel coordinates of the displayed (oriented)
 * image, edges at pixel boundaries: the whole image is {0, 0, w, h}. */
typedef struct {
    double x0, y0, x1, y1;
} data_box;

/* Decoder state and scratch buffers, reused image after image (one per
 * thread: not shareable). */
typedef struct data_image_ctx data_image_ctx;

data_image_ctx *data_image_ctx_new(void);
void data_image_ctx_free(data_image_ctx *c);

/* Reads the header only: size of the displayed image (EXIF orientation
 * applied, so a portrait photo stored sideways reports w < h). Refuses
 * images over max_pixels (<= 0: default). */
int data_image_probe(const char *path, int64_t max_pixels, int *w, int *h, tl_err *e);

/* Reads the file and its header into c; (w, h) as data_image_probe. The
 * pixel limit is checked here, before any pixel buffer exists. */
int data_image_open(data_image_ctx *c, const char *path, int64_t max_pixels, int *w, int *h,
                    tl_err *e);
/* As data_image_open, from memory (copied); name is used in messages. */
int data_image_open_mem(data_image_ctx *c, const uint8_t *buf, size_t n, const char *name,
                        int64_t max_pixels, int *w, int *h, tl_err *e);

/* Decodes the opened image to RGB8 HWC, oriented. A JPEG is decoded at the
 * smallest DCT scale (1/8 .. 1) at which it is still >= need_w x need_h
 * (both 0: full size), so (*w, *h) may be smaller than the header's. The
 * pixels belong to c, valid until the next open. */
int data_image_decode(data_image_ctx *c, int need_w, int need_h, const uint8_t **rgb,
                      int *w, int *h, tl_err *e);

/* Resamples box of src (RGB8 HWC, sw x sh) to dst (float RGB HWC, dw x dh,
 * values in [0, 255]) as Pillow's resize(BILINEAR, box=...) does: a
 * separable triangle filter whose support grows with the downscale factor
 * (antialiasing), plain bilinear when enlarging. c supplies scratch (NULL:
 * allocated for this call). Returns 0 or TL_ENOMEM. */
int data_image_resize(data_image_ctx *c, const uint8_t *src, int sw, int sh, const data_box *box,
                      float *dst, int dw, int dh);

/* Keras crop_to_aspect_ratio: the centred box of a w x h image with the
 * aspect ratio of out_w x out_h (integer arithmetic as keras smart_resize). */
data_box data_image_aspect_box(int w, int h, int out_w, int out_h);

/* In place on n pixels of RGB [0, 255] values. */
void data_image_preprocess(float *x, size_t n, data_preprocess p);

/* After data_image_open of a W x H image: decodes at the smallest DCT scale
 * that still covers cfg's output size over box (in full-size pixels), and
 * resamples box into out (cfg->height * cfg->width * 3 floats, [0, 255],
 * not yet preprocessed). path names the file in errors. */
int data_image_decode_box(data_image_ctx *c, const char *path, int W, int H,
                          const data_box *box, const data_image_cfg *cfg, float *out,
                          tl_err *e);

/* open + decode (DCT-scaled for cfg's size) + resize + preprocess into out
 * (cfg->height * cfg->width * 3 floats). */
int data_image_load(data_image_ctx *c, const char *path, const data_image_cfg *cfg, float *out,
                    tl_err *e);

#endif
