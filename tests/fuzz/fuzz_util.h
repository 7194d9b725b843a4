/* Helpers shared by the fuzz targets (tests/fuzz/fuzz_*.c). */
#ifndef TLSWEEP_FUZZ_UTIL_H
#define TLSWEEP_FUZZ_UTIL_H

/* memfd_create: the targets are built with _GNU_SOURCE (CMakeLists.txt) */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zlib.h>

#include "common/base/sha256.h"
#include "common/store/journal.h"

/* The bytes as a file for the readers that only take a path: a memfd,
 * opened again through /proc/self/fd/N (path, at least 32 bytes), so
 * nothing touches the disk. Returns the fd, to close after the call. */
static inline int fuzz_memfd(const uint8_t *data, size_t size, char *path, size_t cap)
{
    int fd = memfd_create("tlsweep-fuzz", 0);
    if (fd < 0) {
        perror("memfd_create");
        abort();
    }
    for (size_t off = 0; off < size;) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0) {
            perror("memfd write");
            abort();
        }
        off += (size_t)n;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

/* A malloc'd copy of the input whose trailing SHA-256 (the last 32 bytes)
 * is made right for bytes [from, size - 32): a mutation would almost never
 * get past the checksum into the parser behind it, so the target fixes it
 * up (the mismatch itself is the unit tests' case). Inputs too short for a
 * trailer are copied as they are. Free the copy. */
static inline uint8_t *fuzz_fix_sha256(const uint8_t *data, size_t size, size_t from)
{
    uint8_t *c = malloc(size ? size : 1);
    if (!c)
        abort();
    memcpy(c, data, size);
    if (size >= from + SHA256_DIGEST_SIZE)
        sha256(c + from, size - SHA256_DIGEST_SIZE - from, c + size - SHA256_DIGEST_SIZE);
    return c;
}

/* Every journal record's CRC-32 made right, as far as the lengths lead, so
 * that mutations reach the payloads (a bad CRC is the unit tests' case). */
static inline void fuzz_fix_journal_crcs(uint8_t *b, size_t size)
{
    size_t at = JOURNAL_HEADER_SIZE;
    while (size >= JOURNAL_RECORD_HEADER_SIZE && at <= size - JOURNAL_RECORD_HEADER_SIZE) {
        uint32_t n = (uint32_t)b[at] | (uint32_t)b[at + 1] << 8 | (uint32_t)b[at + 2] << 16 |
                     (uint32_t)b[at + 3] << 24;
        if (n > size - at - JOURNAL_RECORD_HEADER_SIZE)
            return;
        uint32_t crc = (uint32_t)crc32(0L, b + at + JOURNAL_RECORD_HEADER_SIZE, n);
        for (int i = 0; i < 4; i++)
            b[at + 4 + i] = (uint8_t)(crc >> 8 * i);
        at += JOURNAL_RECORD_HEADER_SIZE + n;
    }
}

/* Writes n bytes to dir/name (created or truncated); aborts on failure. */
static inline void fuzz_put(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(path);
        abort();
    }
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k <= 0) {
            perror(path);
            abort();
        }
        p += k, n -= (size_t)k;
    }
    close(fd);
}

/* A folder of this process's own for the readers that take one, made on
 * the first call (TMPDIR, else /tmp) and removed at exit with the files
 * named in `files` (NULL-terminated, static) that the target put in it. */
static char fuzz_dir_path[256];
static const char *const *fuzz_dir_files;

static inline void fuzz_dir_cleanup(void)
{
    char path[600];
    for (const char *const *f = fuzz_dir_files; *f; f++) {
        snprintf(path, sizeof path, "%s/%s", fuzz_dir_path, *f);
        unlink(path);
    }
    rmdir(fuzz_dir_path);
}

static inline const char *fuzz_dir(const char *name, const char *const *files)
{
    if (!fuzz_dir_path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/tlsweep-fuzz-%s-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp", name);
        if (!mkdtemp(fuzz_dir_path)) {
            perror(fuzz_dir_path);
            abort();
        }
        fuzz_dir_files = files;
        atexit(fuzz_dir_cleanup);
    }
    return fuzz_dir_path;
}

#endif
