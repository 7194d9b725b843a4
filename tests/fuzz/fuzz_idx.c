/* Fashion-MNIST idx files, plain or gzip'd (common/data/fashion_mnist.h).
 * The input holds both files: a 2-byte little-endian length n, then n bytes
 * of the image file (idx3) and the rest as the label file (idx1). */
#include "common/data/fashion_mnist.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t n = (size_t)data[0] | (size_t)data[1] << 8;
    data += 2, size -= 2;
    if (n > size)
        n = size;
    char pi[64], pl[64];
    int fi = fuzz_memfd(data, n, pi, sizeof pi);
    int fl = fuzz_memfd(data + n, size - n, pl, sizeof pl);
    fmnist_set s;
    tl_err e;
    if (fmnist_read(&s, pi, pl, &e) == 0) {
        for (size_t i = 0; i < s.n; i++)
            if (s.labels[i] >= FMNIST_CLASSES)
                abort();
        fmnist_free(&s);
    }
    close(fi);
    close(fl);
    return 0;
}
