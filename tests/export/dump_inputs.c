/* The exact input tensors `tlsweep predict` feeds a model, for running an
 * exported copy of it elsewhere on the same pixels:
 *   export_dump_inputs MODEL.tlm RAW.f32 PRE.f32 IMAGE...
 * Each image is decoded and resized to the model's input size by
 * common/data as predict does; RAW gets the RGB 0-255 floats (what a model
 * exported with --with-preprocessing takes), PRE the same after the
 * model's preprocessing. Both are float32 NHWC (images, H, W, 3), little
 * endian, one image after another. */
#include <stdio.h>
#include <stdlib.h>

#include "common/data/data_image.h"
#include "common/weights/model_file.h"

static int dump_one(data_image_ctx *c, const char *path, const data_image_cfg *cfg, float *x,
                    FILE *raw, FILE *pre, tl_err *e)
{
    int w, h;
    int rc = data_image_open(c, path, cfg->max_pixels, &w, &h, e);
    data_box box = {0, 0, w, h};
    if (!rc)
        rc = data_image_decode_box(c, path, w, h, &box, cfg, x, e);
    size_t n = (size_t)cfg->width * cfg->height;
    if (!rc && fwrite(x, sizeof *x, 3 * n, raw) != 3 * n)
        rc = tl_errf(e, TL_EIO, "write of the raw inputs failed");
    if (!rc)
        rc = data_image_load(c, path, cfg, x, e);
    if (!rc && fwrite(x, sizeof *x, 3 * n, pre) != 3 * n)
        rc = tl_errf(e, TL_EIO, "write of the preprocessed inputs failed");
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: export_dump_inputs MODEL.tlm RAW.f32 PRE.f32 IMAGE...\n");
        return 2;
    }
    tl_err e = {0};
    model_spec s;
    tset t;
    model_spec_init(&s);
    tset_init(&t);
    int rc = model_read(argv[1], &s, &t, &e);
    data_image_cfg cfg = {s.width, s.height, (data_preprocess)s.preproc, 0, 0};
    float *x = malloc((size_t)s.width * s.height * 3 * sizeof *x + 1);
    data_image_ctx *c = data_image_ctx_new();
    FILE *raw = fopen(argv[2], "wb"), *pre = fopen(argv[3], "wb");
    if (!rc && (!x || !c || !raw || !pre))
        rc = tl_errf(&e, TL_EIO, "cannot allocate or open the outputs");
    for (int i = 4; i < argc && !rc; i++)
        rc = dump_one(c, argv[i], &cfg, x, raw, pre, &e);
    if (raw && fclose(raw) && !rc)
        rc = tl_errf(&e, TL_EIO, "%s: close failed", argv[2]);
    if (pre && fclose(pre) && !rc)
        rc = tl_errf(&e, TL_EIO, "%s: close failed", argv[3]);
    data_image_ctx_free(c);
    free(x);
    tset_free(&t);
    model_spec_free(&s);
    if (rc) {
        fprintf(stderr, "export_dump_inputs: %s\n", e.msg);
        return 1;
    }
    return 0;
}
