#include "common/base/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int io_fail(tl_atomic_file *f, const char *what, int err, tl_err *e)
{
    return tl_errf(e, TL_EIO, "%s: %s of %s failed: %s", f->path, what, f->tmp, strerror(err));
}

int tl_atomic_open(tl_atomic_file *f, const char *path, tl_err *e)
{
    size_t plen = strlen(path);
    f->fd = -1;
    f->err = 0;
    f->tmp = NULL;
    /* "path\0path.tmp.PID.N\0" in one allocation: a name of this writer's
     * own, so processes writing the same file at once (job-array slices
     * sharing a feature cache) never truncate each other's temporary; the
     * last rename wins, and each wrote a whole file */
    static _Atomic unsigned long serial;
    size_t cap = 2 * plen + 64;
    if (!(f->path = malloc(cap)))
        return tl_errf(e, TL_ENOMEM, "%s: out of memory", path);
    memcpy(f->path, path, plen + 1);
    f->tmp = f->path + plen + 1;
    snprintf(f->tmp, cap - plen - 1, "%s.tmp.%ld.%lu", path, (long)getpid(), ++serial);
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        int rc = io_fail(f, "open", errno, e);
        free(f->path);
        f->path = f->tmp = NULL;
        return rc;
    }
    return 0;
}

int tl_atomic_write(tl_atomic_file *f, const void *buf, size_t n, tl_err *e)
{
    const unsigned char *p = buf;
    while (n > 0 && !f->err) {
        ssize_t w = write(f->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            f->err = errno;
        else
            p += w, n -= (size_t)w;
    }
    return f->err ? io_fail(f, "write", f->err, e) : 0;
}

int tl_atomic_commit(tl_atomic_file *f, tl_err *e)
{
    int rc = 0;
    if (f->err) {
        rc = io_fail(f, "write", f->err, e);
    } else if (fsync(f->fd) != 0) {
        rc = io_fail(f, "fsync", errno, e);
    } else {
        int cr = close(f->fd);
        f->fd = -1;
        if (cr != 0)
            rc = io_fail(f, "close", errno, e);
        else if (rename(f->tmp, f->path) != 0)
            rc = io_fail(f, "rename", errno, e);
    }
    if (rc) {
        tl_atomic_abort(f);
        return rc;
    }
    /* make the rename itself durable; dirname may modify its argument, and
     * the .tmp name is no longer needed */
    memcpy(f->tmp, f->path, strlen(f->path) + 1);
    int dfd = open(dirname(f->tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(f->path);
    f->path = f->tmp = NULL;
    return 0;
}

void tl_atomic_abort(tl_atomic_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    if (f->tmp)
        unlink(f->tmp);
    free(f->path);
    f->path = f->tmp = NULL;
}

/* Whether name ends in ".tmp.<digits>.<digits>" (tl_atomic_open's). */
static int is_atomic_tmp(const char *name)
{
    static const char digits[] = "0123456789";
    for (const char *t = strstr(name, ".tmp."); t; t = strstr(t + 1, ".tmp.")) {
        const char *q = t + 5;
        size_t pid = strspn(q, digits);
        if (t == name || !pid || q[pid] != '.')
            continue;
        q += pid + 1;
        size_t n = strspn(q, digits);
        if (n && q[n] == '\0')
            return 1;
    }
    return 0;
}

int tl_remove_stale_tmp(const char *dir, double min_age_s, size_t *removed, tl_err *e)
{
    if (removed)
        *removed = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return tl_errf(e, TL_EIO, "%s: cannot list: %s", dir, strerror(errno));
    }
    int rc = 0;
    time_t now = time(NULL);
    for (struct dirent *de; !rc && (de = readdir(d));) {
        if (!is_atomic_tmp(de->d_name))
            continue;
        struct stat sb;
        if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode))
            continue; /* gone meanwhile, or not ours */
        if (min_age_s > 0 && difftime(now, sb.st_mtime) < min_age_s)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) != 0 && errno != ENOENT)
            rc = tl_errf(e, TL_EIO, "%s/%s: cannot remove a stale temporary: %s", dir, de->d_name,
                         strerror(errno));
        else if (removed)
            ++*removed;
    }
    closedir(d);
    return rc;
}

int tl_read_file(const char *path, size_t max, unsigned char **buf, size_t *len, tl_err *e)
{
    *buf = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return tl_errf(e, errno == ENOENT ? TL_ENOTFOUND : TL_EIO, "%s: cannot open: %s", path,
                       strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return tl_errf(e, TL_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > max) {
        fclose(fp);
        return tl_errf(e, TL_EFORMAT, "%s: larger than %zu bytes", path, max);
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *b = malloc(size + 1);
    if (!b) {
        fclose(fp);
        return tl_errf(e, TL_ENOMEM, "%s: cannot allocate %zu bytes", path, size);
    }
    size_t got = size ? fread(b, 1, size, fp) : 0;
    int err = ferror(fp);
    fclose(fp);
    if (got != size) {
        free(b);
        return tl_errf(e, TL_EIO, "%s: read %zu of %zu bytes%s", path, got, size,
                       err ? "" : " (file shrank while reading)");
    }
    b[size] = 0;
    *buf = b;
    *len = size;
    return 0;
}

int tl_mkdir_p(const char *path, mode_t mode, tl_err *e)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
        return tl_errf(e, TL_EINVAL, "%.64s...: path too long", path);
    if (!p[0])
        return tl_errf(e, TL_EINVAL, "mkdir: empty path");
    /* each prefix ending before a '/' (a leading '/' is the root), then the
     * whole path; "a//b" and a trailing '/' just repeat a prefix */
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char keep = *c;
        *c = '\0';
        struct stat sb;
        if (mkdir(p, mode) != 0 && errno != EEXIST)
            return tl_errf(e, TL_EIO, "%s: cannot create folder: %s", p, strerror(errno));
        if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return tl_errf(e, TL_EIO, "%s: exists and is not a folder", p);
        *c = keep;
        if (keep == '\0')
            return 0;
    }
}
