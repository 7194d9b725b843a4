/* Files written whole or not at all (SQLite's write-to-temp and rename):
 * bytes go to "<path>.tmp.<pid>.<n>"; commit fsyncs it, renames it over path and
 * fsyncs the directory, so a reader sees the old file or the new one, never
 * a torn one. Streaming, so a writer can hash or pack as it goes.
 *
 *   tl_atomic_file f;
 *   if ((rc = tl_atomic_open(&f, path, e)))
 *       return rc;
 *   if ((rc = tl_atomic_write(&f, buf, n, e)) == 0)
 *       rc = tl_atomic_commit(&f, e);
 *   tl_atomic_abort(&f);   // no-op after a commit; else removes the .tmp
 *
 * Errors name the file, the step and the temporary:
 * "<path>: write of <path>.tmp failed: No space left on device". */
#ifndef TLSWEEP_FILEIO_H
#define TLSWEEP_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

#include "common/base/err.h"

typedef struct {
    char *path; /* the target; owns the allocation that tmp points into */
    char *tmp;  /* path + ".tmp" */
    int fd;     /* -1 when closed */
    int err;    /* first errno of a failed write; later writes do nothing */
} tl_atomic_file;

/* For a file a cleanup path may abort before it was ever opened. */
#define TL_ATOMIC_FILE_INIT {NULL, NULL, -1, 0}

/* Creates (truncates) path.tmp, mode 0644. On failure nothing is left
 * behind and f needs no abort (one is harmless). */
int tl_atomic_open(tl_atomic_file *f, const char *path, tl_err *e);
/* Appends n bytes, retrying short writes. Returns 0 or TL_EIO; after a
 * failure every later write returns TL_EIO again without writing. */
int tl_atomic_write(tl_atomic_file *f, const void *buf, size_t n, tl_err *e);
/* fsync, close, rename over path, then fsync the directory (best effort:
 * not every filesystem lets a directory be fsynced). Releases f whether or
 * not it succeeds; on failure the .tmp is removed and path is untouched. */
int tl_atomic_commit(tl_atomic_file *f, tl_err *e);
/* Closes and removes the .tmp and releases f. Safe after a commit, a
 * failed open, a previous abort, or on TL_ATOMIC_FILE_INIT. */
void tl_atomic_abort(tl_atomic_file *f);

/* Removes the temporaries a writer killed mid-write left in dir (files
 * named "<name>.tmp.<pid>.<n>", as tl_atomic_open makes them) whose last
 * change is at least min_age_s seconds old; 0 takes every one, for a
 * folder only this process writes. Not recursive. *removed (may be NULL)
 * gets the count. A missing dir is fine (0 removed); an unreadable one or
 * a failed unlink is TL_EIO naming the file. */
int tl_remove_stale_tmp(const char *dir, double min_age_s, size_t *removed, tl_err *e);

/* The whole of path into a malloc'd buffer with a NUL after the last byte
 * (for text); files over max bytes are refused before reading (TL_EFORMAT,
 * naming the limit). A missing file is TL_ENOTFOUND, other failures TL_EIO,
 * each naming the path. */
int tl_read_file(const char *path, size_t max, unsigned char **buf, size_t *len, tl_err *e);

/* mkdir -p: path and every missing parent, with mode (less the umask). An
 * existing folder is fine; an existing file or other non-folder anywhere on
 * the way is TL_EIO "<dir>: exists and is not a folder"; a failed mkdir is
 * TL_EIO "<dir>: cannot create folder: <strerror>"; a path longer than
 * PATH_MAX is TL_EINVAL. */
int tl_mkdir_p(const char *path, mode_t mode, tl_err *e);

#endif
