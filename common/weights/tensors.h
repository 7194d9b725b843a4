/* A set of named float32 tensors in memory: what every weights importer
 * (tfjs, Keras .h5, safetensors, the native .tlm) produces and what
 * net_load_* consumes. Names and layouts are the source's, with layouts
 * already converted to tlsweep's (Keras: conv HWIO, dense (IN,OUT)). */
#ifndef TLSWEEP_TENSORS_H
#define TLSWEEP_TENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common/base/err.h"

#define TSET_MAX_DIMS 8

typedef struct {
    char *name;
    int ndim;
    int64_t shape[TSET_MAX_DIMS];
    size_t n;        /* product of shape (1 for a scalar) */
    float *data;     /* owned */
} tset_entry;

typedef struct {
    tset_entry *v;
    size_t n, cap;
} tset;

void tset_init(tset *s);
void tset_free(tset *s);
/* Copies name and data. A duplicate name, a negative dimension or more than
 * TSET_MAX_DIMS dimensions is TL_EINVAL naming the tensor. */
int tset_add(tset *s, const char *name, int ndim, const int64_t *shape, const float *data,
             tl_err *e);
/* Like tset_add but takes ownership of data (malloc'd) even on error. */
int tset_add_owned(tset *s, const char *name, int ndim, const int64_t *shape, float *data,
                   tl_err *e);
/* Like tset_add_owned without the duplicate check, which scans s: for an
 * importer that has checked its names in linear time (base/strset.h). */
int tset_push_owned(tset *s, const char *name, int ndim, const int64_t *shape, float *data,
                    tl_err *e);
const tset_entry *tset_find(const tset *s, const char *name);
/* First non-finite value, as a one-line error naming the tensor and index. */
int tset_check_finite(const tset *s, const char *source, tl_err *e);
/* "3x3x32x64" */
char *tset_shape_str(const int64_t *shape, int ndim, char *buf, size_t n);

#endif
