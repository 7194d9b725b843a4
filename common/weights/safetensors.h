/* safetensors files:
 *   u64 little-endian N | N bytes of JSON header | raw little-endian data
 * The header maps tensor names to {"dtype", "shape", "data_offsets": [b, e]}
 * with offsets relative to the data start, plus an optional "__metadata__"
 * object of string values.
 *
 * The reader treats the file as untrusted. It rejects, with one line naming
 * the file and the tensor: a header length over 100 MB or past the end of
 * the file, JSON that does not parse, duplicate names, unknown dtypes,
 * malformed shapes, offsets past the data, a byte size that does not match
 * shape x dtype, and tensors that overlap or leave holes (the data must be
 * tiled exactly, as the reference implementation requires). Non-finite
 * values are reported by weights_st_check_finite() on request.
 */
#ifndef TLSWEEP_SAFETENSORS_H
#define TLSWEEP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common/base/err.h"

#define WEIGHTS_ST_MAX_DIMS 8
#define WEIGHTS_ST_MAX_HEADER (100u * 1000u * 1000u)

typedef enum {
    WEIGHTS_ST_BOOL,
    WEIGHTS_ST_U8,
    WEIGHTS_ST_I8,
    WEIGHTS_ST_F8_E5M2,
    WEIGHTS_ST_F8_E4M3,
    WEIGHTS_ST_I16,
    WEIGHTS_ST_U16,
    WEIGHTS_ST_F16,
    WEIGHTS_ST_BF16,
    WEIGHTS_ST_I32,
    WEIGHTS_ST_U32,
    WEIGHTS_ST_F32,
    WEIGHTS_ST_F64,
    WEIGHTS_ST_I64,
    WEIGHTS_ST_U64,
    WEIGHTS_ST_NDTYPES
} weights_st_dtype;

const char *weights_st_dtype_name(weights_st_dtype d);

typedef struct {
    const char *name;
    weights_st_dtype dtype;
    int ndim;                            /* 0 for a scalar */
    size_t shape[WEIGHTS_ST_MAX_DIMS];
    size_t numel;                        /* product of shape, 1 for a scalar */
    const void *data;                    /* nbytes, little-endian; 64-byte aligned at
                                            offset 0, else as aligned as its offset */
    size_t nbytes;
    size_t offset;                       /* data_offsets[0] */
    const char *file;                    /* the path, for messages */
} weights_st_tensor;

typedef struct weights_st weights_st;

/* Reads and validates the whole file. */
int weights_st_open(weights_st **out, const char *path, tl_err *e);
/* Same from a buffer (copied); name is used in messages. For tests and
 * fuzzing. */
int weights_st_open_mem(weights_st **out, const char *name, const void *buf, size_t len, tl_err *e);
void weights_st_close(weights_st *st);

size_t weights_st_count(const weights_st *st);
/* Tensors sorted by name (strcmp), i < count. */
const weights_st_tensor *weights_st_get(const weights_st *st, size_t i);
/* NULL when absent. */
const weights_st_tensor *weights_st_find(const weights_st *st, const char *name);
/* A "__metadata__" value, NULL when absent. */
const char *weights_st_metadata(const weights_st *st, const char *key);

/* Converts an F32/F16/BF16/F64 tensor to float. n must equal t->numel
 * (TL_ESHAPE otherwise); other dtypes are TL_EINVAL. */
int weights_st_to_f32(const weights_st_tensor *t, float *dst, size_t n, tl_err *e);

/* TL_EFORMAT naming the first tensor and element that is NaN or infinite,
 * over every floating-point tensor. */
int weights_st_check_finite(const weights_st *st, tl_err *e);

/* ---- writer: F32 tensors -------------------------------------------------- */

typedef struct {
    const char *name;
    const float *data;                   /* numel floats */
    int ndim;
    size_t shape[WEIGHTS_ST_MAX_DIMS];
} weights_st_entry;

/* Writes path atomically (path.tmp, fsync, rename, fsync of the directory).
 * Tensors go out sorted by name, header and data alike; the header is
 * space-padded to a multiple of 8 so the data starts aligned. Names must be
 * unique, UTF-8, and not "__metadata__". */
int weights_st_write(const char *path, const weights_st_entry *entries, size_t n, tl_err *e);
/* With "__metadata__": meta holds nmeta key/value pairs as
 * {key0, value0, key1, value1, ...}. */
int weights_st_write_meta(const char *path, const weights_st_entry *entries, size_t n,
                          const char *const *meta, size_t nmeta, tl_err *e);

#endif
