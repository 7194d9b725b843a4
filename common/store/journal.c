/* The append-only journal: header check, replay with CRC-32, cutting a torn
 * tail, appends that never leave a torn record behind a good one. */
#include "common/store/journal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "common/base/le.h"

struct journal {
    int fd;
    uint64_t end; /* end of the last whole record: where the next append lands */
    int broken;   /* errno of an append whose partial record could not be removed */
    char path[];
};

/* Small records are read in chunks of this much, not one pread each. */
#define READ_CHUNK ((size_t)64 << 10)

/* A window onto the file, [at, at + n), refilled on demand. */
typedef struct {
    int fd;
    const char *path;
    uint64_t size; /* at open: records appended later are not seen */
    unsigned char *buf;
    size_t cap;
    uint64_t at;
    size_t n;
} reader;

/* Points *p at file bytes [off, off + n), which the caller has checked lie
 * below r->size, so n never exceeds what the file holds: a length field
 * claiming gigabytes is refused before it can size an allocation. */
static int rd_get(reader *r, uint64_t off, size_t n, const unsigned char **p, tl_err *e)
{
    if (off < r->at || off + n > r->at + r->n) {
        size_t want = n > READ_CHUNK ? n : READ_CHUNK;
        if ((uint64_t)want > r->size - off)
            want = (size_t)(r->size - off);
        if (want > r->cap) {
            free(r->buf);
            r->n = r->cap = 0;
            if (!(r->buf = malloc(want)))
                return tl_errf(e, TL_ENOMEM, "%s: out of memory for %zu bytes", r->path, want);
            r->cap = want;
        }
        size_t got = 0;
        while (got < want) {
            ssize_t k = pread(r->fd, r->buf + got, want - got, (off_t)(off + got));
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0)
                return tl_errf(e, TL_EIO, "%s: read failed: %s", r->path, strerror(errno));
            if (k == 0)
                break;
            got += (size_t)k;
        }
        r->at = off;
        r->n = got;
        if (got < n)
            return tl_errf(e, TL_EIO, "%s: the file shrank while it was being read", r->path);
    }
    *p = r->buf + (off - r->at);
    return 0;
}

static void header_bytes(unsigned char h[JOURNAL_HEADER_SIZE])
{
    memcpy(h, JOURNAL_MAGIC, 8);
    le_put_u32(h + 8, JOURNAL_FORMAT_VERSION);
    le_put_u32(h + 12, 0);
}

/* Checks the file header. *fresh = 1 when the file is shorter than a header
 * but is the start of one (empty, or a crash while creating it). */
static int read_header(reader *r, int *fresh, tl_err *e)
{
    unsigned char want[JOURNAL_HEADER_SIZE];
    header_bytes(want);
    if (r->size == 0) {
        *fresh = 1;
        return 0;
    }
    size_t n = r->size < JOURNAL_HEADER_SIZE ? (size_t)r->size : JOURNAL_HEADER_SIZE;
    const unsigned char *h;
    int rc = rd_get(r, 0, n, &h, e);
    if (rc)
        return rc;
    *fresh = n < JOURNAL_HEADER_SIZE;
    if (*fresh && memcmp(h, want, n) == 0)
        return 0;
    if (memcmp(h, JOURNAL_MAGIC, n < 8 ? n : 8) || n < 8)
        return tl_errf(e, TL_EFORMAT, "%s: not a tlsweep journal (no TLSWEEPJ magic)", r->path);
    if (*fresh)
        return tl_errf(e, TL_EFORMAT, "%s: not a tlsweep journal (%zu bytes, a damaged header)",
                       r->path, n);
    uint32_t version = le_get_u32(h + 8), reserved = le_get_u32(h + 12);
    if (version != JOURNAL_FORMAT_VERSION)
        return tl_errf(e, TL_EFORMAT,
                       "%s: journal format version %u is not supported (this tlsweep reads %u)",
                       r->path, version, JOURNAL_FORMAT_VERSION);
    if (reserved != 0)
        return tl_errf(e, TL_EFORMAT, "%s: journal header's reserved field is %u, not 0",
                       r->path, reserved);
    return 0;
}

/* Whether a whole, checksummed record starts anywhere in (from, size): the
 * test that tells damage in the middle of the journal (good records after
 * the bad one) from a torn tail (nothing whole after it; a crash tears at
 * most the record being appended). A random 32-bit CRC matches by chance
 * once in 4e9 tries, and an empty record would prove nothing, so only
 * records with a payload count. The CRC work is bounded: past the bound
 * the bytes are called damaged, the cautious answer (nothing is cut
 * without --repair). */
#define RESYNC_CRC_BYTES ((uint64_t)256 << 20)

static int whole_record_after(reader *r, uint64_t from, int *found, tl_err *e)
{
    *found = 0;
    uint64_t work = 0;
    /* payloads through a window of their own: both windows move forward */
    reader pr = {.fd = r->fd, .path = r->path, .size = r->size};
    int rc = 0;
    for (uint64_t p = from + 1; r->size - p >= JOURNAL_RECORD_HEADER_SIZE + 1; p++) {
        const unsigned char *h, *q;
        if ((rc = rd_get(r, p, JOURNAL_RECORD_HEADER_SIZE, &h, e)))
            break;
        uint32_t len = le_get_u32(h), crc = le_get_u32(h + 4);
        uint64_t body = p + JOURNAL_RECORD_HEADER_SIZE;
        if (len == 0 || len > JOURNAL_MAX_RECORD || r->size - body < len)
            continue;
        if ((work += len) > RESYNC_CRC_BYTES) {
            *found = 1;
            break;
        }
        if ((rc = rd_get(&pr, body, len, &q, e)))
            break;
        if (crc32(0, q, len) == crc) {
            *found = 1;
            break;
        }
    }
    free(pr.buf);
    return rc;
}

/* Replays the records after the header through cb, stopping at the first
 * bad one; *good gets the end of the last good record, *records their
 * number, *damaged 1 when whole records follow the bad one. Returns 0, an
 * error, or cb's nonzero value. */
static int replay(reader *r, journal_cb cb, void *ctx, uint64_t *good, size_t *records,
                  int *damaged, tl_err *e)
{
    uint64_t off = JOURNAL_HEADER_SIZE;
    *records = 0;
    *damaged = 0;
    for (;;) {
        *good = off;
        if (r->size - off < JOURNAL_RECORD_HEADER_SIZE)
            return 0;
        const unsigned char *h, *p;
        int rc = rd_get(r, off, JOURNAL_RECORD_HEADER_SIZE, &h, e);
        if (rc)
            return rc;
        uint32_t len = le_get_u32(h), crc = le_get_u32(h + 4);
        uint64_t body = off + JOURNAL_RECORD_HEADER_SIZE;
        int bad = len > JOURNAL_MAX_RECORD || r->size - body < len;
        if (!bad) {
            if ((rc = rd_get(r, body, len, &p, e)))
                return rc;
            bad = crc32(0, p, len) != crc;
        }
        if (bad)
            return whole_record_after(r, off, damaged, e);
        if (cb && (rc = cb(ctx, p, len)))
            return rc;
        off = body + len;
        ++*records;
    }
}

/* Header check and replay of an open file, shared by open and scan.
 * *size is the file's size, *good the end of the last good record (0 and
 * *fresh = 1 when there is not even a whole header), *records their number,
 * *damaged 1 when the bad record is in the middle (journal.h). */
/* Damage in the middle, for journal_open and a strict journal_scan alike. */
static int damage_err(tl_err *e, const char *path, uint64_t good, uint64_t size, size_t records)
{
    return tl_errf(e, TL_EFORMAT,
                   "%s: damaged record at byte %llu of %llu (after record %zu), with whole "
                   "records after it; `tlsweep run --repair` keeps the %zu records before it",
                   path, (unsigned long long)good, (unsigned long long)size, records, records);
}

static int load(int fd, const char *path, journal_cb cb, void *ctx, uint64_t *size,
                uint64_t *good, size_t *records, int *fresh, int *damaged, tl_err *e)
{
    struct stat st;
    *records = 0;
    *damaged = 0;
    if (fstat(fd, &st) != 0)
        return tl_errf(e, TL_EIO, "%s: stat failed: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return tl_errf(e, TL_EIO, "%s: not a regular file", path);
    reader r = {.fd = fd, .path = path, .size = (uint64_t)st.st_size};
    *size = r.size;
    *good = 0;
    int rc = read_header(&r, fresh, e);
    if (!rc && !*fresh)
        rc = replay(&r, cb, ctx, good, records, damaged, e);
    free(r.buf);
    return rc;
}

/* Makes a new file's directory entry durable (best effort, as in fileio.c:
 * not every filesystem lets a directory be fsynced). */
static void sync_parent(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(copy);
}

/* Cuts the file to `to` bytes and makes that durable before anything is
 * appended after it. */
static int cut(journal *j, uint64_t to, tl_err *e)
{
    if (ftruncate(j->fd, (off_t)to) != 0)
        return tl_errf(e, TL_EIO, "%s: truncating to %llu bytes failed: %s", j->path,
                       (unsigned long long)to, strerror(errno));
    if (fdatasync(j->fd) != 0)
        return tl_errf(e, TL_EIO, "%s: fdatasync failed: %s", j->path, strerror(errno));
    return 0;
}

static int start_fresh(journal *j, uint64_t size, tl_err *e)
{
    unsigned char h[JOURNAL_HEADER_SIZE];
    header_bytes(h);
    int rc = size ? cut(j, 0, e) : 0;
    if (rc)
        return rc;
    ssize_t w;
    while ((w = write(j->fd, h, sizeof h)) < 0 && errno == EINTR)
        ;
    if (w != (ssize_t)sizeof h)
        return tl_errf(e, TL_EIO, "%s: writing the journal header failed: %s", j->path,
                       w < 0 ? strerror(errno) : "short write");
    if (fdatasync(j->fd) != 0)
        return tl_errf(e, TL_EIO, "%s: fdatasync failed: %s", j->path, strerror(errno));
    sync_parent(j->path);
    return 0;
}

/* The writer's exclusive lock. A `tlsweep status` asking whether the
 * coordinator is alive holds a shared lock for a moment (journal_lock_held):
 * that is waited out, JOURNAL_LOCK_TRIES times JOURNAL_LOCK_WAIT_US, where a
 * writer's lock is held for good and refused at the end. */
#define JOURNAL_LOCK_TRIES 20
#define JOURNAL_LOCK_WAIT_US 50000

static int lock_writer(int fd)
{
    for (int i = 1;; i++) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK || i == JOURNAL_LOCK_TRIES)
            return -1;
        usleep(JOURNAL_LOCK_WAIT_US);
    }
}

int journal_lock_held(const char *path, tl_err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        tl_errf(e, TL_EIO, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int held = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
        flock(fd, LOCK_UN);
    } else if (errno == EWOULDBLOCK) {
        held = 1;
    } else {
        tl_errf(e, TL_EIO, "%s: cannot test its lock: %s", path, strerror(errno));
        held = -1;
    }
    close(fd);
    return held;
}

int journal_open(journal **jp, const char *path, unsigned flags, journal_cb cb, void *ctx,
                 size_t *dropped, tl_err *e)
{
    *jp = NULL;
    if (dropped)
        *dropped = 0;
    size_t plen = strlen(path);
    journal *j = malloc(sizeof *j + plen + 1);
    if (!j)
        return tl_errf(e, TL_ENOMEM, "%s: out of memory", path);
    memcpy(j->path, path, plen + 1);
    j->broken = 0;
    j->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (j->fd < 0) {
        int rc = tl_errf(e, TL_EIO, "%s: cannot open: %s", path, strerror(errno));
        free(j);
        return rc;
    }
    int rc = 0, fresh = 0, damaged = 0;
    uint64_t size = 0, good = 0;
    size_t records = 0;
    if (lock_writer(j->fd) != 0)
        rc = tl_errf(e, TL_EIO, "%s: cannot lock the journal: %s", path,
                     errno == EWOULDBLOCK ? "another writer has it open" : strerror(errno));
    if (!rc)
        rc = load(j->fd, path, cb, ctx, &size, &good, &records, &fresh, &damaged, e);
    if (!rc && damaged && !(flags & JOURNAL_REPAIR))
        rc = damage_err(e, path, good, size, records);
    if (!rc && fresh) {
        rc = start_fresh(j, size, e);
        good = JOURNAL_HEADER_SIZE;
    } else if (!rc && good < size) {
        rc = cut(j, good, e);
    }
    if (rc) {
        close(j->fd);
        free(j);
        return rc;
    }
    j->end = good;
    if (dropped)
        *dropped = fresh ? (size_t)size : (size_t)(size - good);
    *jp = j;
    return 0;
}

int journal_append(journal *j, const void *payload, size_t len, tl_err *e)
{
    if (len > JOURNAL_MAX_RECORD)
        return tl_errf(e, TL_EINVAL, "%s: record of %zu bytes is over the %u-byte limit", j->path,
                       len, JOURNAL_MAX_RECORD);
    if (j->broken)
        return tl_errf(e, TL_EIO, "%s: an earlier append failed and could not be undone: %s",
                       j->path, strerror(j->broken));
    assert(payload || len == 0);
    unsigned char h[JOURNAL_RECORD_HEADER_SIZE];
    le_put_u32(h, (uint32_t)len);
    le_put_u32(h + 4, (uint32_t)crc32(0, payload, (uInt)len));
    struct iovec iov[2] = {{h, sizeof h}, {(void *)payload, len}};
    int k = 0, err = 0;
    while (k < 2) {
        ssize_t w = writev(j->fd, iov + k, 2 - k);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            err = w < 0 ? errno : EIO;
            break;
        }
        size_t left = (size_t)w; /* a short write: go on from where it stopped */
        while (k < 2 && left >= iov[k].iov_len)
            left -= iov[k++].iov_len;
        if (k < 2) {
            iov[k].iov_base = (char *)iov[k].iov_base + left;
            iov[k].iov_len -= left;
        }
    }
    if (err) {
        /* a partial record would hide every later one from replay */
        if (ftruncate(j->fd, (off_t)j->end) != 0)
            j->broken = errno;
        return tl_errf(e, TL_EIO, "%s: append of a %zu-byte record failed: %s", j->path, len,
                       strerror(err));
    }
    j->end += sizeof h + len;
    return 0;
}

int journal_sync(journal *j, tl_err *e)
{
    if (fdatasync(j->fd) != 0)
        return tl_errf(e, TL_EIO, "%s: fdatasync failed: %s", j->path, strerror(errno));
    return 0;
}

int journal_close(journal *j, tl_err *e)
{
    if (!j)
        return 0;
    int rc = journal_sync(j, e);
    if (close(j->fd) != 0 && !rc)
        rc = tl_errf(e, TL_EIO, "%s: close failed: %s", j->path, strerror(errno));
    free(j);
    return rc;
}

int journal_scan(const char *path, unsigned flags, journal_cb cb, void *ctx, size_t *ignored,
                 tl_err *e)
{
    if (ignored)
        *ignored = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tl_errf(e, TL_EIO, "%s: cannot open: %s", path, strerror(errno));
    int fresh = 0, damaged = 0;
    uint64_t size = 0, good = 0;
    size_t records = 0;
    int rc = load(fd, path, cb, ctx, &size, &good, &records, &fresh, &damaged, e);
    close(fd);
    if (!rc && damaged && (flags & JOURNAL_STRICT))
        rc = damage_err(e, path, good, size, records);
    if (!rc && ignored)
        *ignored = (size_t)(size - good);
    return rc;
}
