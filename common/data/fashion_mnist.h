/* Fashion-MNIST idx files (Debian dataset-fashion-mnist) to class folders
 * of RGB JPEGs, the layout data_index_build reads. idx parsing is bounds
 * checked (outside data); plain and gzip files read alike (zlib). */
#ifndef TLSWEEP_FASHION_MNIST_H
#define TLSWEEP_FASHION_MNIST_H

#include <stddef.h>
#include <stdint.h>

#include "common/base/err.h"

#define FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define FMNIST_CLASSES 10

/* Folder-safe class names, by label. */
extern const char *const fmnist_class_names[FMNIST_CLASSES];

typedef struct {
    uint8_t *pixels;  /* (n, rows, cols) grayscale, row-major */
    uint8_t *labels;  /* (n), each < FMNIST_CLASSES */
    size_t n;
    int rows, cols;
} fmnist_set;

/* Reads an idx3 image file (magic 0x00000803) and an idx1 label file
 * (0x00000801): big-endian dims, equal counts, labels < 10, no byte
 * missing or left over. Errors name the file. */
int fmnist_read(fmnist_set *s, const char *images_path, const char *labels_path, tl_err *e);
/* Reads dir/<kind>-images-idx3-ubyte[.gz] and the labels beside it; kind
 * is "train" or "t10k". */
int fmnist_read_dir(fmnist_set *s, const char *dir, const char *kind, tl_err *e);
void fmnist_free(fmnist_set *s);

/* Bilinear resize (half-pixel centres, as PIL and tf.image.resize) of a
 * grayscale (sh, sw) image to (size, size, 3) RGB. */
void fmnist_resize_rgb(const uint8_t *src, int sh, int sw, uint8_t *dst, int size);

typedef struct {
    int size;        /* output side in pixels (default 96) */
    int per_class;   /* at most this many images per class; <= 0: all */
    int quality;     /* JPEG quality (default 90) */
} fmnist_write_cfg;

/* Writes out_dir/<class>/<index>.jpg (index: position in the idx file,
 * zero-padded to 5 digits so names sort in file order), creating folders
 * and overwriting files; the first per_class images of each class.
 * *n_written (may be NULL) gets the number of files written. */
int fmnist_write_jpegs(const fmnist_set *s, const char *out_dir, const fmnist_write_cfg *cfg,
                       size_t *n_written, tl_err *e);

/* The whole conversion: src_dir's train and t10k files to out_dir/train and
 * out_dir/test. written[0], written[1]: files per split. */
int fmnist_convert(const char *src_dir, const char *out_dir, const fmnist_write_cfg *cfg,
                   size_t written[2], tl_err *e);

#endif
