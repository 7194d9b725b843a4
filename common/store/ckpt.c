/* Checkpoint files: framing, digest, atomic write, checked read. See ckpt.h. */
#include "common/store/ckpt.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/base/fileio.h"
#include "common/base/le.h"
#include "common/base/sha256.h"

/* protobuf-c's pack_to_buffer sink: bytes go to the file and the digest. */
typedef struct {
    ProtobufCBuffer base;
    tl_atomic_file *f;
    sha256_ctx *h;
    int rc;       /* first write error; later appends are dropped */
    tl_err *e;
} file_sink;

static void sink_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    file_sink *s = (file_sink *)b;
    if (s->rc)
        return;
    sha256_update(s->h, data, len);
    s->rc = tl_atomic_write(s->f, data, len, s->e);
}

/* Every tensor whole and as long as its shape says; code is the error to
 * give (TL_EINVAL writing, TL_EFORMAT reading). */
static int check_tensors(const char *path, const Tlsweep__Checkpoint *c, int code, tl_err *e)
{
    for (size_t i = 0; i < c->n_tensors; i++) {
        const Tlsweep__Tensor *t = c->tensors[i];
        const char *name = t->name ? t->name : "";
        if (t->offset != 0)
            return tl_errf(e, code, "%s: tensor '%s' is a slice at offset %llu, a "
                           "checkpoint holds whole tensors", path, name,
                           (unsigned long long)t->offset);
        uint64_t numel = 1;
        for (size_t d = 0; d < t->n_shape; d++) {
            if (t->shape[d] < 0 || (t->shape[d] > 0 && numel > UINT64_MAX / (uint64_t)t->shape[d]))
                return tl_errf(e, code, "%s: tensor '%s': shape[%zu] = %lld is negative "
                               "or overflows", path, name, d, (long long)t->shape[d]);
            numel *= (uint64_t)t->shape[d];
        }
        if (numel != t->n_data)
            return tl_errf(e, code, "%s: tensor '%s' has %zu values, its shape says "
                           "%llu", path, name, t->n_data, (unsigned long long)numel);
    }
    return 0;
}

int ckpt_write(const char *path, const Tlsweep__Checkpoint *c, tl_err *e)
{
    /* a file ckpt_read would refuse is not written */
    int rc = check_tensors(path, c, TL_EINVAL, e);
    if (rc)
        return rc;
    size_t n = tlsweep__checkpoint__get_packed_size(c);
    unsigned char head[CKPT_HEADER_SIZE];
    memcpy(head, CKPT_MAGIC, 8);
    le_put_u32(head + 8, CKPT_FORMAT_VERSION);
    le_put_u32(head + 12, 0);
    le_put_u64(head + 16, n);

    sha256_ctx h;
    sha256_init(&h);
    sha256_update(&h, head, sizeof head);
    tl_atomic_file f = TL_ATOMIC_FILE_INIT;
    rc = tl_atomic_open(&f, path, e);
    if (rc)
        return rc;
    rc = tl_atomic_write(&f, head, sizeof head, e);
    if (rc == 0) {
        file_sink s = {.f = &f, .h = &h, .e = e};
        s.base.append = sink_append;
        size_t packed = tlsweep__checkpoint__pack_to_buffer(c, &s.base);
        rc = s.rc;
        if (rc == 0 && packed != n)
            rc = tl_errf(e, TL_EINVAL, "%s: checkpoint packed to %zu bytes, expected %zu "
                         "(changed while writing?)", path, packed, n);
    }
    if (rc == 0) {
        unsigned char digest[SHA256_DIGEST_SIZE];
        sha256_final(&h, digest);
        rc = tl_atomic_write(&f, digest, sizeof digest, e);
    }
    if (rc == 0)
        rc = tl_atomic_commit(&f, e);
    tl_atomic_abort(&f);
    return rc;
}

int ckpt_read(const char *path, Tlsweep__Checkpoint **c, tl_err *e)
{
    *c = NULL;
    unsigned char *b;
    size_t size;
    int rc = tl_read_file(path, SIZE_MAX - 1, &b, &size, e);
    if (rc)
        return rc;
    const size_t frame = CKPT_HEADER_SIZE + SHA256_DIGEST_SIZE;
    uint64_t n = size >= CKPT_HEADER_SIZE ? le_get_u64(b + 16) : 0;
    unsigned char digest[SHA256_DIGEST_SIZE];
    if (size < 8 || memcmp(b, CKPT_MAGIC, 8) != 0)
        rc = tl_errf(e, TL_EFORMAT, "%s: not a tlsweep checkpoint (bad magic)", path);
    else if (size < frame)
        rc = tl_errf(e, TL_EFORMAT, "%s: %zu bytes, too short for a checkpoint (truncated?)",
                     path, size);
    else if (le_get_u32(b + 8) != CKPT_FORMAT_VERSION)
        rc = tl_errf(e, TL_EFORMAT, "%s: checkpoint format version %u, this build reads %u",
                     path, le_get_u32(b + 8), CKPT_FORMAT_VERSION);
    else if (le_get_u32(b + 12) != 0)
        rc = tl_errf(e, TL_EFORMAT, "%s: reserved header word is %u, expected 0", path,
                     le_get_u32(b + 12));
    else if (n != size - frame)
        rc = tl_errf(e, TL_EFORMAT, "%s: header says %llu payload bytes, the file holds %zu "
                     "(truncated or torn)", path, (unsigned long long)n, size - frame);
    if (rc) {
        free(b);
        return rc;
    }
    sha256(b, CKPT_HEADER_SIZE + n, digest);
    if (memcmp(digest, b + CKPT_HEADER_SIZE + n, SHA256_DIGEST_SIZE) != 0) {
        free(b);
        return tl_errf(e, TL_EFORMAT, "%s: SHA-256 digest mismatch (damaged file)", path);
    }
    Tlsweep__Checkpoint *ck = tlsweep__checkpoint__unpack(NULL, n, b + CKPT_HEADER_SIZE);
    free(b);
    if (!ck)
        return tl_errf(e, TL_EFORMAT, "%s: %llu payload bytes are not a Checkpoint", path,
                       (unsigned long long)n);
    if ((rc = check_tensors(path, ck, TL_EFORMAT, e)) < 0) {
        tlsweep__checkpoint__free_unpacked(ck, NULL);
        return rc;
    }
    *c = ck;
    return 0;
}

const Tlsweep__Tensor *ckpt_tensor(const Tlsweep__Checkpoint *c, const char *name)
{
    for (size_t i = 0; i < c->n_tensors; i++)
        if (c->tensors[i]->name && strcmp(c->tensors[i]->name, name) == 0)
            return c->tensors[i];
    return NULL;
}

int ckpt_read_trial(const char *path, uint64_t key, const char *trial_id,
                    Tlsweep__Checkpoint **c, tl_err *e)
{
    int rc = ckpt_read(path, c, e);
    if (rc)
        return rc;
    const Tlsweep__Checkpoint *k = *c;
    const Tlsweep__Tensor *tw = ckpt_tensor(k, "weights"), *tb = ckpt_tensor(k, "best");
    const char *why = k->trial_key != key ? "its key differs: the sweep or the data changed"
                      : !tw || !tb || !ckpt_tensor(k, "optim") ? "a tensor is missing"
                      : tw->n_data != tb->n_data ? "'weights' and 'best' differ in length"
                      : k->epoch < 1 || k->n_history != k->epoch ? "its history is not its epochs"
                                                                 : NULL;
    if (!why)
        return 0;
    tlsweep__checkpoint__free_unpacked(*c, NULL);
    *c = NULL;
    return tl_errf(e, TL_EFORMAT, "%s: not a checkpoint of trial %s (%s)", path, trial_id, why);
}
