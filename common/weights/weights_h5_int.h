/* Inside weights_h5_read: the libhdf5 walk (weights_h5.c), which runs in a
 * child process, and the parent's side (weights_h5_child.c), which forks,
 * reads the child's frames with bounds checks and never calls libhdf5 on
 * the file. Exposed for tests, which swap in a child that crashes, hangs
 * or lies. */
#ifndef TLSWEEP_WEIGHTS_H5_INT_H
#define TLSWEEP_WEIGHTS_H5_INT_H

#include <stdint.h>

#include "common/weights/weights_h5.h"

/* Deflate inflates at most ~1032 times: a compressed dataset claiming more
 * than this many times the file's size is damage. */
#define WEIGHTS_H5_MAX_RATIO 1032u
/* How long the parent waits for the child's next bytes. */
#define WEIGHTS_H5_TIMEOUT_MS 120000

/* One tensor of the walk: n float32 values of shape (ndim dims); layer and
 * wname (the dataset) name it in messages. Returns 0, or a negative code
 * that stops the walk. */
typedef int (*weights_h5__sink)(void *u, const char *layer, const char *wname,
                                const char *tname, int ndim, const int64_t *shape,
                                const float *data, size_t n);

/* Walks the Keras .h5 at path (file_size bytes) with libhdf5, tensors to
 * sink in order; every dataset is bounded against file_size before it is
 * allocated. Errors as weights_h5_read's. Silences libhdf5's automatic
 * error printing (process-wide: call it in the child only). */
int weights_h5__walk(const char *path, uint64_t file_size, weights_h5__sink sink, void *u,
                     tl_err *e);

/* What the child process runs: writes frames about path to fd and returns
 * its exit status. weights_h5__child_main walks the file; tests pass
 * others. */
typedef int (*weights_h5__child_fn)(int fd, const char *path, uint64_t file_size);
int weights_h5__child_main(int fd, const char *path, uint64_t file_size);

/* weights_h5_read with the child's function and the silence allowed
 * between its bytes as parameters. */
int weights_h5__read_isolated(const char *path, tset *out, weights_h5__child_fn child,
                              int timeout_ms, tl_err *e);

/* Frames, child to parent, integers little-endian:
 *   'T' u8 ndim, u16 tname, layer, wname lengths, i64 shape[ndim], the
 *       three names (no NULs), then prod(shape) float32 values
 *   'E' i32 code (negative TL_E*), u16 length, the message
 *   'D' u32 number of 'T' frames sent
 * then the end of the stream and exit status 0. */
enum { WEIGHTS_H5__TENSOR = 'T', WEIGHTS_H5__ERROR = 'E', WEIGHTS_H5__DONE = 'D' };
/* Writers for those frames (0, or -1 when fd is broken). */
int weights_h5__put_tensor(int fd, const char *layer, const char *wname, const char *tname,
                           int ndim, const int64_t *shape, const float *data, size_t n);
int weights_h5__put_error(int fd, int code, const char *msg);
int weights_h5__put_done(int fd, uint32_t count);

#endif
