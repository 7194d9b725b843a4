/* TensorFlow.js layers models (common/weights/weights_tfjs.h): a model.json
 * and its weight shard, as downloaded. The input is the JSON, a NUL byte,
 * then the bytes of the shard, written to <dir>/model.json and
 * <dir>/group1-shard1of1.bin (what the seeds' manifests name) in a folder
 * of this process's own. */
#include "common/weights/weights_tfjs.h"
#include "fuzz_util.h"

#include <fcntl.h>
#include <string.h>

static void put(const char *dir, const char *name, const uint8_t *p, size_t n)
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

static char dir[256];

static void cleanup(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/model.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/group1-shard1of1.bin", dir);
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/tlsweep-fuzz-tfjs-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            perror(dir);
            abort();
        }
        atexit(cleanup);
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t json = nul ? (size_t)(nul - data) : size;
    put(dir, "model.json", data, json);
    put(dir, "group1-shard1of1.bin", nul ? nul + 1 : data, nul ? size - json - 1 : 0);

    tset t;
    weights_tfjs_info info;
    tl_err e;
    tset_init(&t);
    weights_tfjs_read(dir, &t, &info, &e);
    weights_tfjs_info_free(&info);
    tset_free(&t);
    return 0;
}
