/* `tlsweep status`'s reader (coordinator/coord_status.c) on a journal of
 * the input's bytes, every record's CRC-32 fixed up as for fuzz_journal,
 * beside the sweep copy of the sweep the seed journals came from
 * (corpus/sweep/tiny.yaml: their records name its trials): read, then told
 * as text and as JSON, as `tlsweep status` and `--json` do. The folder is
 * the process's own (TMPDIR, else /tmp). */
#include "coordinator/coord_status.h"
#include "fuzz_util.h"

static const char sweep_text[] =
    "name: seed\n"
    "data: {train_dir: /data/fm/train, test_dir: /data/fm/test, validation_split: 0.25,\n"
    "       image_size: 32}\n"
    "model:\n"
    "  head: [global_average_pooling, {dense: 8}, {dropout: 0.1}]\n"
    "weights: {mobilenet_v2: /data/tiny.tlm}\n"
    "grid:\n"
    "  backbone: [mobilenet_v2]\n"
    "  mode: [frozen, {fine_tune_at: 100}]\n"
    "  learning_rate: [1.0e-2]\n"
    "  optimizer: [adam]\n"
    "  batch_size: [16]\n"
    "epochs: 2\n"
    "threads: 1\n"
    "seed: 7\n"
    "checkpoint_seconds: 0\n"
    "out: /data/out\n";

static const char *const files[] = {"sweep.yaml", "journal", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *dir;
    if (!dir) {
        dir = fuzz_dir("status", files);
        fuzz_put(dir, "sweep.yaml", (const uint8_t *)sweep_text, sizeof sweep_text - 1);
    }
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    fuzz_fix_journal_crcs(buf, size);
    fuzz_put(dir, "journal", buf, size);
    free(buf);

    coord_status st;
    tl_err e;
    if (coord_status_read(&st, dir, 1796655723603u, &e) == 0) {
        tl_strbuf b = TL_STRBUF_INIT;
        coord_status_text(&st, &b);
        tl_strbuf_free(&b);
        free(coord_status_json(&st));
        coord_status_free(&st);
    }
    return 0;
}
