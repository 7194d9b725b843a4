/* Writes a model file with a classifier and random weights for the export
 * tests, so every backbone, convention and head kind can be exported and
 * run without pretrained weights:
 *   export_make_model BACKBONE CONVENTION SIZE HEAD LOSS CLASSES ALPHA OUT.tlm IMAGE...
 * HEAD: gap | gap_dropout | gap_dense_relu_dropout | flatten_dense_relu6;
 * LOSS: softmax | sigmoid. Preprocessing is the backbone's in its
 * convention. Biases, gamma and beta are drawn at random (so a weight wired
 * to the wrong input shows), then the BN moving statistics are set from the
 * IMAGEs (up to 32), as a trained net's would be from its data: with
 * He weights and unit statistics the activations of a deep random net
 * blow up and every image gets the same one-hot answer; the classifier is
 * scaled so its logits are neither saturated nor flat. Class names carry
 * a quote, a backslash and non-ASCII letters, which metadata must keep. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/rng.h"
#include "common/data/data_image.h"
#include "common/weights/model_file.h"
#include "worker/engine/engine.h"
#include "worker/net/net_io.h"

#define MAX_IMAGES 32

static int add_head(model_spec *s, const char *head, tl_err *e)
{
    model_head_op gap = {MODEL_HEAD_GAP, 0, MODEL_ACT_LINEAR, 0};
    model_head_op flat = {MODEL_HEAD_FLATTEN, 0, MODEL_ACT_LINEAR, 0};
    model_head_op relu = {MODEL_HEAD_DENSE, 16, MODEL_ACT_RELU, 0};
    model_head_op relu6 = {MODEL_HEAD_DENSE, 12, MODEL_ACT_RELU6, 0};
    model_head_op drop = {MODEL_HEAD_DROPOUT, 0, MODEL_ACT_LINEAR, 0.3f};
    if (!strcmp(head, "gap"))
        return model_spec_add_head(s, gap, e);
    if (!strcmp(head, "gap_dropout"))
        return model_spec_add_head(s, gap, e) || model_spec_add_head(s, drop, e);
    if (!strcmp(head, "gap_dense_relu_dropout"))
        return model_spec_add_head(s, gap, e) || model_spec_add_head(s, relu, e) ||
               model_spec_add_head(s, drop, e);
    if (!strcmp(head, "flatten_dense_relu6"))
        return model_spec_add_head(s, flat, e) || model_spec_add_head(s, relu6, e);
    return tl_errf(e, TL_EINVAL, "unknown head '%s'", head);
}

static int add_classes(model_spec *s, int k, tl_err *e)
{
    static const char *const names[] = {"T-shirt/top", "say \"cheese\"", "back\\slash",
                                        "Stiefelette \xc3\xa4\xc3\xb6"};
    char name[64];
    int rc = 0;
    for (int i = 0; i < k && !rc; i++) {
        if (i < 4)
            snprintf(name, sizeof name, "%s", names[i]);
        else
            snprintf(name, sizeof name, "class_%d", i);
        rc = model_spec_add_class(s, name, e);
    }
    return rc;
}

static int has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n >= k && !strcmp(name + n - k, suffix);
}

/* bias and beta in [-0.2, 0.2), gamma in [0.5, 1.5) */
static void randomize_affine(net *n, rng_state *r)
{
    for (int i = 0; i < n->n_params; i++) {
        net_param *p = &n->params[i];
        float lo = 0, span = 0;
        if (has_suffix(p->name, "/bias") || has_suffix(p->name, "/beta"))
            lo = -0.2f, span = 0.4f;
        else if (has_suffix(p->name, "/gamma"))
            lo = 0.5f, span = 1.0f;
        float *d = net_param_data(n, p);
        for (size_t j = 0; span > 0 && j < p->n; j++)
            d[j] = lo + span * rng_uniform(r);
    }
}

/* The classifier's weights scaled so the logits of the batch x have a
 * standard deviation of 2: probabilities neither one-hot nor uniform. */
static void scale_logits(net *n, const float *x, int batch)
{
    net_forward(n, x, batch, 0);
    const float *y = net_output(n);
    size_t k = (size_t)batch * net_last(n)->c;
    double sum = 0, sq = 0;
    for (size_t i = 0; i < k; i++)
        sum += y[i], sq += (double)y[i] * y[i];
    double var = sq / k - (sum / k) * (sum / k);
    float f = var > 0 ? (float)(2.0 / sqrt(var)) : 1.0f;
    const net_layer *l = net_last(n);
    for (int p = l->param0; p < l->param0 + l->n_params; p++) {
        float *d = net_param_data(n, &n->params[p]);
        for (size_t j = 0; j < n->params[p].n; j++)
            d[j] *= f;
    }
    net_weights_changed(n);
}

/* The images as predict feeds them: the model's size and preprocessing. */
static int load_images(const model_spec *s, char **paths, int k, float *x, tl_err *e)
{
    data_image_cfg cfg = {s->width, s->height, (data_preprocess)s->preproc, 0, 0};
    data_image_ctx *c = data_image_ctx_new();
    int rc = c ? 0 : TL_ENOMEM;
    size_t per = (size_t)s->width * s->height * 3;
    for (int i = 0; i < k && !rc; i++)
        rc = data_image_load(c, paths[i], &cfg, x + i * per, e);
    data_image_ctx_free(c);
    return rc;
}

/* A channel that hardly varied over the few calibration images divides by
 * nearly zero and amplifies float rounding far beyond any trained net
 * (ONNX Runtime against itself with and without its graph optimisations
 * then differs by 1.6e-4): each variance is kept at >= 10% of its
 * layer's mean. */
static void floor_variances(net *n)
{
    for (int p = 0; p < n->n_params; p++) {
        net_param *q = &n->params[p];
        if (!has_suffix(q->name, "/moving_variance"))
            continue;
        float *v = net_param_data(n, q);
        double mean = 0;
        for (size_t j = 0; j < q->n; j++)
            mean += v[j];
        float lo = (float)(0.1 * mean / (double)q->n);
        for (size_t j = 0; j < q->n; j++)
            v[j] = v[j] < lo ? lo : v[j];
    }
}

/* One training-mode forward with momentum 1 (moving statistics := the
 * batch's), then the logits' scale. */
static int calibrate(net *n, const model_spec *s, char **paths, int k, tl_err *e)
{
    for (int i = 0; i < n->n_layers; i++)
        if (n->layers[i].kind == NET_BN)
            n->layers[i].u.bn.momentum = 1.0f;
    float *x = malloc((size_t)k * s->width * s->height * 3 * sizeof *x);
    if (!x)
        return tl_errf(e, TL_ENOMEM, "out of memory");
    int rc = load_images(s, paths, k, x, e);
    if (!rc) {
        net_forward(n, x, k, 1);
        floor_variances(n);
        net_weights_changed(n);
        scale_logits(n, x, k);
    }
    free(x);
    return rc;
}

static int make(char **argv, int argc, tl_err *e)
{
    model_spec s;
    model_spec_init(&s);
    tset ts;
    tset_init(&ts);
    net n;
    int have_net = 0;
    int rc = model_spec_set_str(&s.backbone, argv[1], e);
    s.convention = (model_convention)model_convention_parse(argv[2]);
    s.height = s.width = atoi(argv[3]);
    s.loss = !strcmp(argv[5], "sigmoid") ? MODEL_LOSS_SIGMOID : MODEL_LOSS_SOFTMAX;
    s.num_classes = atoi(argv[6]);
    s.alpha = (float)atof(argv[7]);
    if (s.alpha <= 0 && !strcmp(argv[1], "mobilenet_v2"))
        s.alpha = 1.0f;
    int k = argc - 9 < MAX_IMAGES ? argc - 9 : MAX_IMAGES;
    s.preproc = net_default_preproc(argv[1], s.convention);
    s.mode = MODEL_FINE_TUNE;
    s.bn_update = 1;
    if ((int)s.convention < 0)
        rc = tl_errf(e, TL_EINVAL, "convention must be keras or torchvision");
    if (!rc)
        rc = add_head(&s, argv[4], e);
    if (!rc)
        rc = add_classes(&s, s.num_classes, e);
    if (!rc && !(rc = net_build_from_spec(&n, &s, k, e)))
        have_net = 1;
    rng_state r;
    rng_init(&r, 11);
    if (have_net) {
        randomize_affine(&n, &r);
        rc = calibrate(&n, &s, argv + 9, k, e);
    }
    s.mode = MODEL_FROZEN;
    s.bn_update = 0;
    if (!rc)
        rc = net_to_tset(&n, &ts, 1, e);
    if (!rc)
        rc = model_write(argv[8], &s, &ts, e);
    if (have_net)
        net_free(&n);
    tset_free(&ts);
    model_spec_free(&s);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 10) {
        fprintf(stderr, "usage: export_make_model BACKBONE CONVENTION SIZE HEAD LOSS CLASSES "
                        "ALPHA OUT.tlm IMAGE...\n");
        return 2;
    }
    engine_threads_set(2);
    tl_err e = {0};
    if (make(argv, argc, &e)) {
        fprintf(stderr, "export_make_model: %s\n", e.msg);
        return 1;
    }
    return 0;
}
