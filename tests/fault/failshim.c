/* An LD_PRELOAD shim that fails one call, for the fault-injection test
 * (tests/fault/fault_test.sh): the Nth of the counted calls fails as a
 * full or broken disk would make it fail.
 *
 * Counted, in the order the process makes them: write, writev and pwrite
 * on regular files (not fds 0-2: the log), fsync, fdatasync, rename. What
 * goes through stdio's own buffers (printf to a redirected stdout) never
 * reaches these symbols, so the log stays whole.
 *
 * Environment (nothing set: every call goes through untouched):
 *   FAILSHIM_N=N       fail the Nth counted call (1-based); 0 counts only
 *   FAILSHIM_COUNT=F   at exit, write the number of counted calls to F
 *   FAILSHIM_LOG=F     append "N op" for the call that was failed
 * Only the process whose OMPI_COMM_WORLD_RANK is 0 or unset is touched:
 * the coordinator, under mpirun too.
 *
 * errno: ENOSPC for writes and renames, EIO for the syncs. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static atomic_long counted;
static long fail_at = -1; /* -1: inactive */

__attribute__((constructor)) static void shim_init(void)
{
    const char *n = getenv("FAILSHIM_N"), *rank = getenv("OMPI_COMM_WORLD_RANK");
    if (!n || (rank && strcmp(rank, "0")))
        return;
    fail_at = strtol(n, NULL, 10);
}

__attribute__((destructor)) static void shim_fini(void)
{
    const char *f = getenv("FAILSHIM_COUNT");
    if (fail_at < 0 || !f)
        return;
    FILE *fp = fopen(f, "w");
    if (fp) {
        fprintf(fp, "%ld\n", atomic_load(&counted));
        fclose(fp);
    }
}

/* Whether this call is the one to fail: counts it when it qualifies. */
static int hit(const char *op)
{
    if (fail_at < 0)
        return 0;
    long k = atomic_fetch_add(&counted, 1) + 1;
    if (k != fail_at)
        return 0;
    const char *f = getenv("FAILSHIM_LOG");
    FILE *fp = f ? fopen(f, "a") : NULL;
    if (fp) {
        fprintf(fp, "%ld %s\n", k, op);
        fclose(fp);
    }
    return 1;
}

static int regular(int fd)
{
    struct stat sb;
    return fd > 2 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
}

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

ssize_t write(int fd, const void *buf, size_t n)
{
    if (regular(fd) && hit("write")) {
        errno = ENOSPC;
        return -1;
    }
    return NEXT(write)(fd, buf, n);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
    if (regular(fd) && hit("writev")) {
        errno = ENOSPC;
        return -1;
    }
    return NEXT(writev)(fd, iov, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (regular(fd) && hit("pwrite")) {
        errno = ENOSPC;
        return -1;
    }
    return NEXT(pwrite)(fd, buf, n, off);
}

int fsync(int fd)
{
    if (hit("fsync")) {
        errno = EIO;
        return -1;
    }
    return NEXT(fsync)(fd);
}

int fdatasync(int fd)
{
    if (hit("fdatasync")) {
        errno = EIO;
        return -1;
    }
    return NEXT(fdatasync)(fd);
}

int rename(const char *from, const char *to)
{
    if (hit("rename")) {
        errno = ENOSPC;
        return -1;
    }
    return NEXT(rename)(from, to);
}
