/* Trial checkpoints on disk: out/checkpoints/<trial_id>.ckpt, one packed
 * Checkpoint (proto/tlsweep.proto) that a resumed trial starts from.
 *
 * Framing, integers little-endian:
 *   "TLSWEEPC" | u32 format version (1) | u32 0 | u64 length n | n bytes of a
 *   packed Tlsweep__Checkpoint | SHA-256 of everything before it
 * ckpt_write() writes it atomically (path.tmp, fsync, rename, fsync of the
 * directory), streaming the packed bytes through the digest without a copy.
 * ckpt_read() treats the file as untrusted and refuses, with one line naming
 * the path: a bad magic, another version, a non-zero reserved word, a length
 * that does not match the file (torn, or bytes after the digest), a digest
 * mismatch, a payload that does not unpack, and a tensor that is a slice
 * (offset != 0) or whose data length is not the product of its shape. */
#ifndef TLSWEEP_CKPT_H
#define TLSWEEP_CKPT_H

#include "common/base/err.h"
#include "tlsweep.pb-c.h"

#define CKPT_MAGIC "TLSWEEPC"
#define CKPT_FORMAT_VERSION 1u
#define CKPT_HEADER_SIZE 24u   /* magic, version, reserved, length */

int ckpt_write(const char *path, const Tlsweep__Checkpoint *c, tl_err *e);
/* *c is freed with tlsweep__checkpoint__free_unpacked(*c, NULL); NULL on
 * error. TL_ENOTFOUND when path does not exist, TL_EIO when it cannot be
 * read, TL_EFORMAT when it is damaged. */
int ckpt_read(const char *path, Tlsweep__Checkpoint **c, tl_err *e);
/* ckpt_read, then checks the checkpoint is one a trial resumes from: its
 * trial_key is key (a checkpoint of another configuration, or of the same
 * grid point before the sweep or the dataset changed, is stale), it holds
 * tensors "weights" and "best" of one length and "optim", and its history
 * has one entry per epoch, epoch >= 1. A stale or inconsistent one is
 * TL_EFORMAT "PATH: not a checkpoint of trial ID (why)". */
int ckpt_read_trial(const char *path, uint64_t key, const char *trial_id,
                    Tlsweep__Checkpoint **c, tl_err *e);
/* The tensor of c named name, NULL when absent. */
const Tlsweep__Tensor *ckpt_tensor(const Tlsweep__Checkpoint *c, const char *name);

#endif
