/* Reads a Keras .h5 with weights_h5_read and compares it with the
 * reference written beside it by make_keras_h5.py (h5py, Keras's own
 * writer): the same tensors in the same order, the same shapes, the same
 * float32 bits.
 *
 *   h5_crosscheck model.h5 model.ref
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/weights/tensors.h"
#include "common/weights/weights_h5.h"

static int rd(FILE *f, void *p, size_t n)
{
    return fread(p, 1, n, f) == n;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s model.h5 model.ref\n", argv[0]);
        return 2;
    }
    tset s;
    tset_init(&s);
    tl_err e = {0};
    if (weights_h5_read(argv[1], &s, &e)) {
        fprintf(stderr, "h5_crosscheck: %s\n", e.msg);
        return 1;
    }
    FILE *f = fopen(argv[2], "rb");
    char magic[8];
    uint32_t count;
    if (!f || !rd(f, magic, 8) || memcmp(magic, "TLH5REF1", 8) || !rd(f, &count, 4)) {
        fprintf(stderr, "h5_crosscheck: %s: not a reference file\n", argv[2]);
        return 1;
    }
    int bad = 0;
    size_t values = 0;
    if (count != s.n) {
        fprintf(stderr, "h5_crosscheck: %zu tensors read, reference has %u\n", s.n, count);
        bad = 1;
    }
    for (uint32_t i = 0; i < count && !bad; i++) {
        uint32_t len, ndim;
        char name[1024];
        int64_t shape[TSET_MAX_DIMS];
        if (!rd(f, &len, 4) || len >= sizeof name || !rd(f, name, len) || !rd(f, &ndim, 4) ||
            ndim > TSET_MAX_DIMS || !rd(f, shape, 8 * ndim)) {
            fprintf(stderr, "h5_crosscheck: %s: truncated at tensor %u\n", argv[2], i);
            return 1;
        }
        name[len] = 0;
        const tset_entry *t = &s.v[i];
        char a[128], b[128];
        if (strcmp(t->name, name)) {
            fprintf(stderr, "tensor %u: read '%s', reference '%s'\n", i, t->name, name);
            bad = 1;
            break;
        }
        if ((uint32_t)t->ndim != ndim || memcmp(t->shape, shape, 8 * ndim)) {
            fprintf(stderr, "tensor '%s': read shape %s, reference %s\n", name,
                    tset_shape_str(t->shape, t->ndim, a, sizeof a),
                    tset_shape_str(shape, (int)ndim, b, sizeof b));
            bad = 1;
            break;
        }
        float *ref = malloc((t->n ? t->n : 1) * sizeof *ref);
        if (!ref || !rd(f, ref, t->n * sizeof *ref)) {
            fprintf(stderr, "h5_crosscheck: %s: truncated in '%s'\n", argv[2], name);
            return 1;
        }
        for (size_t k = 0; k < t->n; k++)
            if (memcmp(&t->data[k], &ref[k], sizeof(float))) {
                fprintf(stderr, "tensor '%s' [%zu]: read %.9g, reference %.9g\n", name, k,
                        (double)t->data[k], (double)ref[k]);
                bad = 1;
                break;
            }
        values += t->n;
        free(ref);
    }
    fclose(f);
    if (!bad)
        printf("h5_crosscheck: %s: %zu tensors, %zu values bit-identical\n", argv[1], s.n,
               values);
    tset_free(&s);
    return bad;
}
