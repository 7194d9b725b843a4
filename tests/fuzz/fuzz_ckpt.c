/* Trial checkpoints (common/store/ckpt.h): out/checkpoints/ is outside
 * bytes on a rerun (a damaged disk, an edit, another version). The
 * trailing SHA-256 of everything before it is fixed up (fuzz_util.h). */
#include "common/store/ckpt.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    uint8_t *buf = fuzz_fix_sha256(data, size, 0);
    int fd = fuzz_memfd(buf, size, path, sizeof path);
    free(buf);
    Tlsweep__Checkpoint *c = NULL;
    tl_err e;
    if (ckpt_read(path, &c, &e) == 0) {
        for (size_t i = 0; i < c->n_tensors; i++)
            if (ckpt_tensor(c, c->tensors[i]->name) == NULL)
                abort();
        tlsweep__checkpoint__free_unpacked(c, NULL);
    }
    close(fd);
    return 0;
}
