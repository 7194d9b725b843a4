/* The frozen feature cache: out/cache/<key as 16 hex>.features holds what a
 * frozen backbone makes of every image of the index, so that trials over
 * the same backbone, weights, size and preprocessing train their heads
 * without running the backbone again.
 *
 * A safetensors file (common/weights/safetensors.h) with tensors
 *   "features"  F32 (n_items, dim)  row i is item i of the index
 *   "ok"        F32 (n_items)       1, or 0 when the image did not decode
 * and metadata "format" = "tlsweep-features-1", "key" (16 hex digits),
 * "text" (what the key hashes: backbone|weights|size|preprocessing),
 * "index" (the index fingerprint, 16 hex digits), "items", "dim", and the
 * payload's checksums: "sum_rows" (rows per block, about FCACHE_SUM_BYTES
 * of features), "sum_features" (the SHA-256 of each block of 'features'
 * rows, 64 hex digits each, concatenated in row order) and "sum_ok" (the
 * SHA-256 of 'ok'). Written atomically; read back only when every digest
 * matches. */
#ifndef TLSWEEP_FCACHE_H
#define TLSWEEP_FCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "common/base/err.h"

/* -2: with checksums; a -1 file is refused as another format (recomputed) */
#define FCACHE_FORMAT "tlsweep-features-2"
#define FCACHE_SUM_BYTES ((size_t)16 << 20)

typedef struct {
    float *x;        /* (n_items, dim), owned */
    uint8_t *ok;     /* (n_items), owned: 0 = the image did not decode */
    size_t n_items, dim;
} fcache;

/* n_items and dim > 0; ok values other than 0 are written as 1. */
int fcache_write(const char *path, uint64_t key, const char *text, uint64_t index_fingerprint,
                 const float *x, const uint8_t *ok, size_t n_items, size_t dim, tl_err *e);
/* Reads path and checks it belongs to key and index_fingerprint.
 * TL_ENOTFOUND, with one line naming the path (and which of key or index
 * differs, both values given), when the file is missing, another key's or
 * stale: the caller extracts again. TL_EFORMAT when it is damaged: not
 * safetensors, not this format, tensors missing or of the wrong dtype,
 * shapes that disagree with each other or with "items"/"dim", checksums
 * missing or not matching the payload (the line names the rows), an "ok"
 * value other than 0 or 1. TL_EIO, TL_ENOMEM as they come. On error c is zeroed. */
int fcache_read(const char *path, uint64_t key, uint64_t index_fingerprint, fcache *c,
                tl_err *e);
/* Frees x and ok and zeroes c; a zeroed c is fine. */
void fcache_free(fcache *c);
/* "<dir>/<key as %016llx>.features" into buf (truncated to n like snprintf). */
void fcache_path(char *buf, size_t n, const char *dir, uint64_t key);

#endif
