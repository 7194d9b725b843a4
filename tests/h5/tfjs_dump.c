/* Writes the tensors weights_tfjs_read gives for a tfjs model (nsfwjs's
 * model.min.js) as a make_keras_h5.py reference file, in manifest order, so
 * that make_keras_h5.py --from-ref can write them as a Keras .h5 and
 * h5_crosscheck can compare the .h5 importer with the tfjs one.
 *
 *   tfjs_dump model.min.js out.ref
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/weights/tensors.h"
#include "common/weights/weights_tfjs.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s model.json|model.min.js out.ref\n", argv[0]);
        return 2;
    }
    tset s;
    tset_init(&s);
    tl_err e = {0};
    if (weights_tfjs_read(argv[1], &s, NULL, &e)) {
        fprintf(stderr, "tfjs_dump: %s\n", e.msg);
        tset_free(&s);
        return 1;
    }
    FILE *f = fopen(argv[2], "wb");
    uint32_t count = (uint32_t)s.n;
    int ok = f && fwrite("TLH5REF1", 1, 8, f) == 8 && fwrite(&count, 4, 1, f) == 1;
    for (size_t i = 0; i < s.n && ok; i++) {
        const tset_entry *t = &s.v[i];
        uint32_t len = (uint32_t)strlen(t->name), ndim = (uint32_t)t->ndim;
        ok = fwrite(&len, 4, 1, f) == 1 && fwrite(t->name, 1, len, f) == len &&
             fwrite(&ndim, 4, 1, f) == 1 && fwrite(t->shape, 8, ndim, f) == ndim &&
             fwrite(t->data, sizeof(float), t->n, f) == t->n;
    }
    if (!f || fclose(f) || !ok) {
        fprintf(stderr, "tfjs_dump: %s: cannot write\n", argv[2]);
        tset_free(&s);
        return 1;
    }
    printf("tfjs_dump: %s: %zu tensors\n", argv[1], s.n);
    tset_free(&s);
    return 0;
}
