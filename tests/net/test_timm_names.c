/* timm MobileNetV2 names load into the torchvision-convention builder: the
 * test names a network's tensors the way timm does, by walking timm's module
 * order (conv_stem, bn1, blocks.S.B.{conv_pw, bn1, conv_dw, bn2, conv_pwl,
 * bn3}, conv_head, bn2) in step with our parameter order, writes them in
 * torch layouts, and loads them back by name into a differently seeded net. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/weights/safetensors.h"
#include "testutil.h"
#include "worker/net/backbones.h"
#include "worker/net/net_load.h"
#include "worker/net/timm_names.h"

static void test_examples(void **state)
{
    (void)state;
    char out[128];
    assert_true(timm_mobilenet_v2_name("conv_stem.weight", out, sizeof out));
    assert_string_equal(out, "features.0.0.weight");
    assert_true(timm_mobilenet_v2_name("blocks.1.0.conv_pwl.weight", out, sizeof out));
    assert_string_equal(out, "features.2.conv.2.weight");
    assert_true(timm_mobilenet_v2_name("blocks.0.0.conv_pw.weight", out, sizeof out));
    assert_string_equal(out, "features.1.conv.1.weight");
    assert_true(timm_mobilenet_v2_name("blocks.6.0.bn3.running_var", out, sizeof out));
    assert_string_equal(out, "features.17.conv.3.running_var");
    assert_true(timm_mobilenet_v2_name("bn2.bias", out, sizeof out));
    assert_string_equal(out, "features.18.1.bias");
    assert_false(timm_mobilenet_v2_name("blocks.0.0.conv_pwl.weight", out, sizeof out));
    assert_false(timm_mobilenet_v2_name("blocks.1.2.conv_pw.weight", out, sizeof out));
    assert_false(timm_mobilenet_v2_name("blocks.7.0.conv_pw.weight", out, sizeof out));
    assert_false(timm_mobilenet_v2_name("classifier.weight", out, sizeof out));
    assert_false(timm_mobilenet_v2_name("conv_stemx.weight", out, sizeof out));
}

/* timm module names in model order; each conv is one of our params, each BN four. */
static int timm_modules(char names[][40], int *is_bn)
{
    static const int blocks[7] = {1, 2, 3, 4, 3, 3, 1};
    int k = 0;
    snprintf(names[k], 40, "conv_stem"), is_bn[k++] = 0;
    snprintf(names[k], 40, "bn1"), is_bn[k++] = 1;
    for (int s = 0; s < 7; s++)
        for (int b = 0; b < blocks[s]; b++) {
            static const char *dsep[] = {"conv_dw", "bn1", "conv_pw", "bn2"};
            static const char *ir[] = {"conv_pw", "bn1", "conv_dw", "bn2", "conv_pwl", "bn3"};
            const char **parts = s == 0 ? dsep : ir;
            int np = s == 0 ? 4 : 6;
            for (int i = 0; i < np; i++) {
                snprintf(names[k], 40, "blocks.%d.%d.%s", s, b, parts[i]);
                is_bn[k++] = parts[i][0] == 'b';
            }
        }
    snprintf(names[k], 40, "conv_head"), is_bn[k++] = 0;
    snprintf(names[k], 40, "bn2"), is_bn[k++] = 1;
    return k;
}

static void build(net *n, uint64_t seed)
{
    tl_err e = {0};
    net_init(n, 64, 64, 3, NET_TORCHVISION);
    net_backbone_cfg cfg = {.alpha = 0.5f};
    assert_true(net_mobilenet_v2(n, &cfg, &e) > 0);
    assert_int_equal(net_finalize(n, 1, seed, &e), 0);
    for (int i = 0; i < n->n_params; i++) /* BN statistics differ per seed too */
        tu_fill_uniform(net_param_data(n, &n->params[i]), n->params[i].n, seed * 1000 + (uint64_t)i,
                        0.5f, 1.5f);
}

static void test_load_timm_file(void **state)
{
    (void)state;
    net a, b;
    build(&a, 1);
    build(&b, 2);
    static char names[200][40];
    int is_bn[200];
    int nm = timm_modules(names, is_bn);
    weights_st_entry *ent = calloc((size_t)a.n_params, sizeof *ent);
    float **bufs = calloc((size_t)a.n_params, sizeof *bufs);
    char (*tn)[64] = calloc((size_t)a.n_params, sizeof *tn);
    int pi = 0;
    static const char *bn_attr[] = {"weight", "bias", "running_mean", "running_var"};
    for (int m = 0; m < nm; m++) {
        for (int k = 0; k < (is_bn[m] ? 4 : 1); k++, pi++) {
            assert_true(pi < a.n_params);
            net_param *p = &a.params[pi];
            const float *src = net_param_data(&a, p);
            float *dst = malloc(p->n * sizeof *dst);
            ent[pi].ndim = p->ndim;
            if (p->ndim == 4) {
                /* HWIO (depthwise HW C 1) -> OIHW (depthwise C 1 H W) */
                int H = p->shape[0], W = p->shape[1], I = p->shape[2], O = p->shape[3];
                int dw = strstr(p->name, "depthwise") != NULL;
                int oo = dw ? I : O, ii = dw ? 1 : I;
                for (int o = 0; o < oo; o++)
                    for (int i = 0; i < ii; i++)
                        for (int y = 0; y < H; y++)
                            for (int x = 0; x < W; x++)
                                dst[((size_t)(o * ii + i) * H + y) * W + x] =
                                    dw ? src[((size_t)y * W + x) * I + o]
                                       : src[(((size_t)y * W + x) * I + i) * O + o];
                ent[pi].shape[0] = oo;
                ent[pi].shape[1] = ii;
                ent[pi].shape[2] = H;
                ent[pi].shape[3] = W;
                snprintf(tn[pi], 64, "%.39s.weight", names[m]);
            } else {
                memcpy(dst, src, p->n * sizeof *dst);
                ent[pi].shape[0] = p->shape[0];
                snprintf(tn[pi], 64, "%.39s.%s", names[m], bn_attr[k]);
            }
            bufs[pi] = dst;
            ent[pi].data = dst;
            ent[pi].name = tn[pi];
        }
    }
    assert_int_equal(pi, a.n_params);
    char path[] = "/tmp/tl_timm_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    tl_err e = {0};
    assert_int_equal(weights_st_write(path, ent, (size_t)pi, &e), 0);
    assert_int_equal(net_load_safetensors(&b, path, 1, &e), 0);
    assert_int_equal(memcmp(a.weights, b.weights, a.n_weights * sizeof(float)), 0);
    unlink(path);
    for (int i = 0; i < pi; i++)
        free(bufs[i]);
    free(bufs);
    free(ent);
    free(tn);
    net_free(&a);
    net_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples),
        cmocka_unit_test(test_load_timm_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
