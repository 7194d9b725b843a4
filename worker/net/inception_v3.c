/* InceptionV3 (include_top=False; any input side >= 75).
 *
 * Keras (keras.applications.inception_v3): conv2d_bn = Conv2D without bias,
 * BatchNormalization(scale=False, eps 1e-3, momentum 0.99) and a ReLU, all
 * auto-named (conv2d, conv2d_1, ...; batch_normalization...; activation...);
 * average pools 3x3/1 'same' that leave the padding out of the mean.
 * torchvision (inception_v3, aux_logits=False, transform_input=False):
 * BasicConv2d = conv without bias + BN WITH gamma (eps 1e-3, momentum 0.1) +
 * F.relu, average pools with padding 1 that count the padding. Max pools are
 * 3x3/2 'valid' in both. Torch names are torch.fx node names (torchvision's
 * get_graph_node_names): "Mixed_5b.branch1x1.conv", "Mixed_5b.avg_pool2d",
 * "Mixed_7b.cat_1"...
 *
 * Keras's model.layers is NOT creation order: Functional models sort layers
 * by depth (the longest path to the output, deepest first), ties in the
 * order a depth-first walk from the output first reaches them (inputs in
 * call order). fine_tune_at counts in that order, and the Keras auto-names
 * count in creation order, so the builder records the graph in creation
 * order, then emits it in Keras's order (keras_order below) or, for
 * torchvision, as recorded (which is also the order of its forward).
 * Output: mixed10 / Mixed_7c.cat_2, 2048 channels. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

#include "worker/net/backbones.h"

#define IV3_MAX_OPS 320 /* the input and the 310 layers of either convention */

enum { VALID = 0, SAME = 1 };

/* One layer of the graph as recorded. */
typedef struct {
    net_kind kind;            /* NET_INPUT, NET_CONV, NET_BN, NET_RELU, pools, NET_CONCAT */
    char name[NET_NAME_MAX];
    int in[4], n_in;          /* earlier ops */
    int oc, kh, kw, s, same;  /* convs; pools are fixed by their kind */
    int depth, order;         /* Keras's sort keys */
    int layer;                /* net layer once emitted */
} iv3_op;

typedef struct {
    iv3_op *ops;
    int n_ops;
    int keras;
    char module[16];            /* torch module of the ops being recorded ("" for the stem) */
    int cats;                   /* torch.cat calls so far in this module */
    /* Keras auto-name counters, in creation order */
    int conv, bn, act, maxpool, avgpool, concat;
} iv3;

/* ---- recording --------------------------------------------------------------- */

static int record(iv3 *g, net_kind kind, const int *ins, int n_in)
{
    assert(g->n_ops < IV3_MAX_OPS && n_in <= 4);
    int i = g->n_ops++;
    iv3_op *o = &g->ops[i];
    o->kind = kind;
    o->n_in = n_in;
    for (int k = 0; k < n_in; k++)
        o->in[k] = ins[k];
    return i;
}

/* Keras's unique auto-name: "base", then "base_1", "base_2"... */
static void keras_auto(char *buf, const char *base, int *count)
{
    if (*count)
        snprintf(buf, NET_NAME_MAX, "%s_%d", base, *count);
    else
        snprintf(buf, NET_NAME_MAX, "%s", base);
    (*count)++;
}

/* Torch name "<module>.<what>" (or "<what>" in the stem). */
static void torch_name(char *buf, const iv3 *g, const char *what)
{
    if (g->module[0])
        snprintf(buf, NET_NAME_MAX, "%s.%s", g->module, what);
    else
        snprintf(buf, NET_NAME_MAX, "%s", what);
}

static void begin_module(iv3 *g, const char *module)
{
    snprintf(g->module, sizeof g->module, "%s", module);
    g->cats = 0;
}

/* Keras conv2d_bn / torch BasicConv2d `basic`; returns the ReLU op. */
static int conv_bn(iv3 *g, int x, const char *basic, int oc, int kh, int kw, int s, int same)
{
    char what[32];
    int c = record(g, NET_CONV, &x, 1);
    iv3_op *o = &g->ops[c];
    o->oc = oc;
    o->kh = kh;
    o->kw = kw;
    o->s = s;
    o->same = same;
    int b = record(g, NET_BN, &c, 1);
    int r = record(g, NET_RELU, &b, 1);
    if (g->keras) {
        keras_auto(g->ops[c].name, "conv2d", &g->conv);
        keras_auto(g->ops[b].name, "batch_normalization", &g->bn);
        keras_auto(g->ops[r].name, "activation", &g->act);
    } else {
        snprintf(what, sizeof what, "%s.conv", basic);
        torch_name(g->ops[c].name, g, what);
        snprintf(what, sizeof what, "%s.bn", basic);
        torch_name(g->ops[b].name, g, what);
        snprintf(what, sizeof what, "%s.relu", basic);
        torch_name(g->ops[r].name, g, what);
    }
    return r;
}

/* Max pool 3x3/2 'valid' or average pool 3x3/1 'same'. `tname` is the
 * torch name for module pools (the stem's maxpool1/2); NULL for F.*_pool2d. */
static int pool(iv3 *g, net_kind kind, int x, const char *tname)
{
    int p = record(g, kind, &x, 1);
    char *name = g->ops[p].name;
    if (g->keras)
        keras_auto(name, kind == NET_MAXPOOL ? "max_pooling2d" : "average_pooling2d",
                   kind == NET_MAXPOOL ? &g->maxpool : &g->avgpool);
    else if (tname)
        torch_name(name, g, tname);
    else
        torch_name(name, g, kind == NET_MAXPOOL ? "max_pool2d" : "avg_pool2d");
    return p;
}

/* layers.concatenate(name=kname, or auto-named when NULL) / torch.cat. */
static int cat(iv3 *g, const int *ins, int k, const char *kname)
{
    int c = record(g, NET_CONCAT, ins, k);
    char *name = g->ops[c].name;
    if (g->keras && kname) {
        snprintf(name, NET_NAME_MAX, "%s", kname);
    } else if (g->keras) {
        keras_auto(name, "concatenate", &g->concat);
    } else {
        char what[16];
        keras_auto(what, "cat", &g->cats); /* fx numbers repeated calls the same way */
        torch_name(name, g, what);
    }
    return c;
}

/* ---- the architecture (Szegedy et al. 2015, figures 5-7) ---------------- */

/* mixed0-2 / Mixed_5b-d: 35x35 */
static int block_a(iv3 *g, int x, const char *module, const char *kname, int pool_features)
{
    begin_module(g, module);
    int b1 = conv_bn(g, x, "branch1x1", 64, 1, 1, 1, SAME);
    int b5 = conv_bn(g, x, "branch5x5_1", 48, 1, 1, 1, SAME);
    b5 = conv_bn(g, b5, "branch5x5_2", 64, 5, 5, 1, SAME);
    int b3 = conv_bn(g, x, "branch3x3dbl_1", 64, 1, 1, 1, SAME);
    b3 = conv_bn(g, b3, "branch3x3dbl_2", 96, 3, 3, 1, SAME);
    b3 = conv_bn(g, b3, "branch3x3dbl_3", 96, 3, 3, 1, SAME);
    int bp = pool(g, NET_AVGPOOL, x, NULL);
    bp = conv_bn(g, bp, "branch_pool", pool_features, 1, 1, 1, SAME);
    int ins[4] = {b1, b5, b3, bp};
    return cat(g, ins, 4, kname);
}

/* mixed3 / Mixed_6a: 35x35 -> 17x17 */
static int block_b(iv3 *g, int x)
{
    begin_module(g, "Mixed_6a");
    int b3 = conv_bn(g, x, "branch3x3", 384, 3, 3, 2, VALID);
    int bd = conv_bn(g, x, "branch3x3dbl_1", 64, 1, 1, 1, SAME);
    bd = conv_bn(g, bd, "branch3x3dbl_2", 96, 3, 3, 1, SAME);
    bd = conv_bn(g, bd, "branch3x3dbl_3", 96, 3, 3, 2, VALID);
    int bp = pool(g, NET_MAXPOOL, x, NULL);
    int ins[3] = {b3, bd, bp};
    return cat(g, ins, 3, "mixed3");
}

/* mixed4-7 / Mixed_6b-e: 17x17 with factorised 7x7 convs of c7 channels */
static int block_c(iv3 *g, int x, const char *module, const char *kname, int c7)
{
    begin_module(g, module);
    int b1 = conv_bn(g, x, "branch1x1", 192, 1, 1, 1, SAME);
    int b7 = conv_bn(g, x, "branch7x7_1", c7, 1, 1, 1, SAME);
    b7 = conv_bn(g, b7, "branch7x7_2", c7, 1, 7, 1, SAME);
    b7 = conv_bn(g, b7, "branch7x7_3", 192, 7, 1, 1, SAME);
    int bd = conv_bn(g, x, "branch7x7dbl_1", c7, 1, 1, 1, SAME);
    bd = conv_bn(g, bd, "branch7x7dbl_2", c7, 7, 1, 1, SAME);
    bd = conv_bn(g, bd, "branch7x7dbl_3", c7, 1, 7, 1, SAME);
    bd = conv_bn(g, bd, "branch7x7dbl_4", c7, 7, 1, 1, SAME);
    bd = conv_bn(g, bd, "branch7x7dbl_5", 192, 1, 7, 1, SAME);
    int bp = pool(g, NET_AVGPOOL, x, NULL);
    bp = conv_bn(g, bp, "branch_pool", 192, 1, 1, 1, SAME);
    int ins[4] = {b1, b7, bd, bp};
    return cat(g, ins, 4, kname);
}

/* mixed8 / Mixed_7a: 17x17 -> 8x8 */
static int block_d(iv3 *g, int x)
{
    begin_module(g, "Mixed_7a");
    int b3 = conv_bn(g, x, "branch3x3_1", 192, 1, 1, 1, SAME);
    b3 = conv_bn(g, b3, "branch3x3_2", 320, 3, 3, 2, VALID);
    int b7 = conv_bn(g, x, "branch7x7x3_1", 192, 1, 1, 1, SAME);
    b7 = conv_bn(g, b7, "branch7x7x3_2", 192, 1, 7, 1, SAME);
    b7 = conv_bn(g, b7, "branch7x7x3_3", 192, 7, 1, 1, SAME);
    b7 = conv_bn(g, b7, "branch7x7x3_4", 192, 3, 3, 2, VALID);
    int bp = pool(g, NET_MAXPOOL, x, NULL);
    int ins[3] = {b3, b7, bp};
    return cat(g, ins, 3, "mixed8");
}

/* mixed9-10 / Mixed_7b-c: 8x8 with split 1x3 / 3x1 branches; i is 0 or 1 */
static int block_e(iv3 *g, int x, int i)
{
    char kname[24], inner[24];
    begin_module(g, i ? "Mixed_7c" : "Mixed_7b");
    snprintf(kname, sizeof kname, "mixed%d", 9 + i);
    snprintf(inner, sizeof inner, "mixed9_%d", i);
    int b1 = conv_bn(g, x, "branch1x1", 320, 1, 1, 1, SAME);
    int b3 = conv_bn(g, x, "branch3x3_1", 384, 1, 1, 1, SAME);
    int pair[2];
    pair[0] = conv_bn(g, b3, "branch3x3_2a", 384, 1, 3, 1, SAME);
    pair[1] = conv_bn(g, b3, "branch3x3_2b", 384, 3, 1, 1, SAME);
    b3 = cat(g, pair, 2, inner);
    int bd = conv_bn(g, x, "branch3x3dbl_1", 448, 1, 1, 1, SAME);
    bd = conv_bn(g, bd, "branch3x3dbl_2", 384, 3, 3, 1, SAME);
    pair[0] = conv_bn(g, bd, "branch3x3dbl_3a", 384, 1, 3, 1, SAME);
    pair[1] = conv_bn(g, bd, "branch3x3dbl_3b", 384, 3, 1, 1, SAME);
    bd = cat(g, pair, 2, NULL);
    int bp = pool(g, NET_AVGPOOL, x, NULL);
    bp = conv_bn(g, bp, "branch_pool", 192, 1, 1, 1, SAME);
    int ins[4] = {b1, b3, bd, bp};
    return cat(g, ins, 4, kname);
}

static void record_inception_v3(iv3 *g)
{
    int x = record(g, NET_INPUT, NULL, 0);
    begin_module(g, "");
    x = conv_bn(g, x, "Conv2d_1a_3x3", 32, 3, 3, 2, VALID);
    x = conv_bn(g, x, "Conv2d_2a_3x3", 32, 3, 3, 1, VALID);
    x = conv_bn(g, x, "Conv2d_2b_3x3", 64, 3, 3, 1, SAME);
    x = pool(g, NET_MAXPOOL, x, "maxpool1");
    x = conv_bn(g, x, "Conv2d_3b_1x1", 80, 1, 1, 1, VALID);
    x = conv_bn(g, x, "Conv2d_4a_3x3", 192, 3, 3, 1, VALID);
    x = pool(g, NET_MAXPOOL, x, "maxpool2");
    x = block_a(g, x, "Mixed_5b", "mixed0", 32);
    x = block_a(g, x, "Mixed_5c", "mixed1", 64);
    x = block_a(g, x, "Mixed_5d", "mixed2", 64);
    x = block_b(g, x);
    x = block_c(g, x, "Mixed_6b", "mixed4", 128);
    x = block_c(g, x, "Mixed_6c", "mixed5", 160);
    x = block_c(g, x, "Mixed_6d", "mixed6", 160);
    x = block_c(g, x, "Mixed_6e", "mixed7", 192);
    x = block_d(g, x);
    x = block_e(g, x, 0);
    block_e(g, x, 1);
}

/* ---- Keras's model.layers order ----------------------------------------------
 * keras functional._map_graph_network: depth = longest path to the output;
 * layers sorted by depth, deepest first, ties by pre-order of a depth-first
 * walk from the output that follows inputs in call order. */

static void keras_walk(iv3 *g, int i, int *count)
{
    iv3_op *o = &g->ops[i];
    if (o->order >= 0)
        return;
    o->order = (*count)++;
    for (int k = 0; k < o->n_in; k++)
        keras_walk(g, o->in[k], count);
}

typedef struct {
    int depth, order, op;
} iv3_key;

static int key_cmp(const void *pa, const void *pb)
{
    const iv3_key *a = pa, *b = pb;
    if (a->depth != b->depth)
        return a->depth > b->depth ? -1 : 1;
    return (a->order > b->order) - (a->order < b->order);
}

/* Fills emit[] with op indices in Keras's order. */
static void keras_order(iv3 *g, int *emit)
{
    iv3_key keys[IV3_MAX_OPS];
    int last = g->n_ops - 1, count = 0;
    for (int i = 0; i <= last; i++) {
        g->ops[i].depth = 0;
        g->ops[i].order = -1;
    }
    /* creation order is topological, so one reverse pass settles depths */
    for (int i = last; i >= 0; i--)
        for (int k = 0; k < g->ops[i].n_in; k++) {
            iv3_op *src = &g->ops[g->ops[i].in[k]];
            if (src->depth < g->ops[i].depth + 1)
                src->depth = g->ops[i].depth + 1;
        }
    keras_walk(g, last, &count);
    for (int i = 0; i <= last; i++)
        keys[i] = (iv3_key){g->ops[i].depth, g->ops[i].order, i};
    qsort(keys, (size_t)g->n_ops, sizeof *keys, key_cmp);
    for (int i = 0; i <= last; i++)
        emit[i] = keys[i].op;
}

/* ---- emitting -------------------------------------------------------------- */

static int emit_op(net *n, iv3 *g, iv3_op *o)
{
    int keras = g->keras;
    int in = o->n_in ? g->ops[o->in[0]].layer : 0;
    switch (o->kind) {
    case NET_CONV: {
        nn_pad pad = nn_pad_sym(0, 0);
        if (o->same)  /* stride 1 and odd kernels: Keras 'same' is symmetric too */
            pad = keras ? net_pad_same(n, in, o->kh, o->kw, o->s, o->s)
                        : nn_pad_sym(o->kh / 2, o->kw / 2);
        return net_conv(n, o->name, in, o->oc, o->kh, o->kw, o->s, o->s, pad, 1, 0);
    }
    case NET_BN:
        return net_bn(n, o->name, in, 1e-3f, keras ? 0.01f : 0.1f, !keras);
    case NET_RELU:
        return net_relu(n, o->name, in);
    case NET_MAXPOOL:
        return net_maxpool(n, o->name, in, 3, 3, 2, 2, nn_pad_sym(0, 0));
    case NET_AVGPOOL:
        if (keras)
            return net_avgpool(n, o->name, in, 3, 3, 1, 1, net_pad_same(n, in, 3, 3, 1, 1), 0);
        return net_avgpool(n, o->name, in, 3, 3, 1, 1, nn_pad_sym(1, 1), 1);
    case NET_CONCAT: {
        int ins[4];
        for (int k = 0; k < o->n_in; k++)
            ins[k] = g->ops[o->in[k]].layer;
        return net_concat(n, o->name, ins, o->n_in);
    }
    default:
        return TL_EINVAL;
    }
}

int net_inception_v3(net *n, const net_backbone_cfg *cfg, tl_err *e)
{
    (void)cfg; /* no width multiplier */
    if (n->layers[0].h < 75 || n->layers[0].w < 75 || n->layers[0].c != 3)
        return tl_errf(e, TL_ESHAPE,
                       "inception_v3: input must be at least 75x75x3, got %dx%dx%d",
                       n->layers[0].h, n->layers[0].w, n->layers[0].c);
    iv3 g = {0};
    g.keras = n->convention == NET_KERAS;
    g.ops = calloc(IV3_MAX_OPS, sizeof *g.ops);
    if (!g.ops)
        return tl_errf(e, TL_ENOMEM, "inception_v3: out of memory");
    record_inception_v3(&g);

    int emit[IV3_MAX_OPS];
    if (g.keras) {
        keras_order(&g, emit);
    } else {
        for (int i = 0; i < g.n_ops; i++)
            emit[i] = i;
    }
    int x = 0;
    for (int i = 0; i < g.n_ops; i++) {
        iv3_op *o = &g.ops[emit[i]];
        if (o->kind == NET_INPUT) {
            o->layer = 0;
            continue;
        }
        x = emit_op(n, &g, o);
        if (x < 0) {
            x = tl_errf(e, x, "inception_v3: cannot add layer %s (%s)", o->name,
                        tl_strerror(x));
            break;
        }
        o->layer = x;
    }
    free(g.ops);
    return x;
}
