/* Writes a small backbone-only model file for the CLI tests: MobileNetV2
 * alpha 0.35 at 32x32, random weights, x/255 preprocessing.
 *   tiny_model OUT.tlm
 * Random He weights with BN at mean 0, variance 1 saturate ReLU6 by the
 * last block (every feature 6, whatever the image), so the BN moving
 * statistics are set from one batch of noise images, as a pretrained net's
 * would be from its data: the features then tell images apart. */
#include <stdio.h>
#include <stdlib.h>

#include "common/weights/model_file.h"
#include "common/base/rng.h"
#include "worker/engine/engine.h"
#include "worker/net/backbones.h"
#include "worker/net/net_io.h"

#define SIDE 32
#define CALIBRATION_IMAGES 16

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: tiny_model OUT.tlm\n");
        return 2;
    }
    engine_threads_set(2);
    tl_err e = {0};
    net n;
    net_init(&n, SIDE, SIDE, 3, NET_KERAS);
    net_backbone_cfg bc = {.alpha = 0.35f};
    if (net_mobilenet_v2(&n, &bc, &e) < 0)
        goto fail;
    net_set_bn_update(&n, 1);
    for (int i = 0; i < n.n_layers; i++)
        if (n.layers[i].kind == NET_BN)
            n.layers[i].u.bn.momentum = 1.0f; /* the moving statistics become the batch's */
    if (net_finalize(&n, CALIBRATION_IMAGES, 7, &e))
        goto fail;
    size_t nx = (size_t)CALIBRATION_IMAGES * SIDE * SIDE * 3;
    float *x = malloc(nx * sizeof *x);
    if (!x)
        return 1;
    rng_state r;
    rng_init(&r, 7);
    for (size_t i = 0; i < nx; i++)
        x[i] = rng_uniform(&r);
    net_forward(&n, x, CALIBRATION_IMAGES, 1);
    free(x);

    model_spec s;
    model_spec_init(&s);
    tset ts;
    tset_init(&ts);
    int rc = model_spec_set_str(&s.backbone, "mobilenet_v2", &e);
    s.alpha = 0.35f;
    s.height = s.width = SIDE;
    s.preproc = MODEL_PREPROC_UNIT;
    if (!rc)
        rc = net_to_tset(&n, &ts, 0, &e);
    if (!rc)
        rc = model_write(argv[1], &s, &ts, &e);
    tset_free(&ts);
    model_spec_free(&s);
    net_free(&n);
    if (rc)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "tiny_model: %s\n", e.msg);
    return 1;
}
