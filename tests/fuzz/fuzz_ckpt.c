/* Trial checkpoints (common/store/ckpt.h): out/checkpoints/ is outside
 * bytes on a rerun (a damaged disk, an edit, another version). The
 * trailing SHA-256 of everything before it is fixed up (fuzz_util.h). A
 * checkpoint that reads is then checked as a resume reads it,
 * ckpt_read_trial with its own key, so that the checks of its tensors and
 * history are reached. */
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
        uint64_t key = c->trial_key;
        tlsweep__checkpoint__free_unpacked(c, NULL);
        c = NULL;
        if (ckpt_read_trial(path, key, "fuzz", &c, &e) == 0) {
            /* what load_resume (worker.c) then takes for granted */
            const Tlsweep__Tensor *tw = ckpt_tensor(c, "weights"), *tb = ckpt_tensor(c, "best");
            if (!tw || !tb || !ckpt_tensor(c, "optim") || tw->n_data != tb->n_data ||
                c->n_history != c->epoch)
                abort();
            tlsweep__checkpoint__free_unpacked(c, NULL);
        } else if (c) {
            abort();
        }
    }
    close(fd);
    return 0;
}
