/* SHA-256 (FIPS 180-4): checksums of model files and provenance of
 * imported weights. Streaming (init/update/final) and one-shot. */
#ifndef TLSWEEP_SHA256_H
#define TLSWEEP_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "common/base/err.h"

#define SHA256_DIGEST_SIZE 32

typedef struct {
    uint32_t h[8];
    uint64_t bytes;          /* message length so far */
    unsigned char buf[64];   /* partial block */
    size_t nbuf;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, unsigned char out[SHA256_DIGEST_SIZE]);
void sha256(const void *data, size_t len, unsigned char out[SHA256_DIGEST_SIZE]);
/* Uses the CPU's SHA instructions when it has them (the default) or not;
 * returns whether they are used. Process-wide; tests compare the two. */
int sha256_set_accel(int on);
/* 64 lowercase hex digits and a NUL into hex; returns hex. */
char *sha256_hex(const unsigned char digest[SHA256_DIGEST_SIZE], char hex[65]);
/* Digest of a whole file, read in blocks. TL_EIO naming the file. */
int sha256_file(const char *path, unsigned char out[SHA256_DIGEST_SIZE], tl_err *e);

#endif
