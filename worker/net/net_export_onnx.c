/* ONNX export (see net_export.h for what the file holds): the net's layer
 * table walked into an onnx.GraphProto, one node per layer (Dropout none),
 * weights transposed from Keras layouts (conv HWIO -> OIHW; dense [in, out]
 * is Gemm's B as it is), packed straight into the atomic file.
 *
 * Every message, string and transposed tensor lives in one pool freed at
 * the end; weights whose layout ONNX shares point into the net. */
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/fileio.h"
#include "onnx.pb-c.h"
#include "worker/net/net_export_int.h"

#define ONNX_IR_VERSION 8   /* onnx 1.12 */
#define ONNX_OPSET 13

/* ---- pool: every allocation of one export, freed together ---------------- */

typedef struct pool_block {
    struct pool_block *next;
    max_align_t data[];
} pool_block;

/* Messages in the order they were made. */
typedef struct {
    void **v;
    size_t n, cap;
} ox_list;

typedef struct {
    pool_block *blocks;
    ox_list nodes, inits, meta; /* Onnx__NodeProto, __TensorProto, __StringStringEntryProto */
    int failed;            /* out of memory: later calls do nothing */
    int clip_consts;       /* relu6/min and relu6/max are initializers */
} ox_graph;

static void *ox_alloc(ox_graph *g, size_t n)
{
    if (g->failed)
        return NULL;
    pool_block *b = calloc(1, sizeof *b + n);
    if (!b) {
        g->failed = 1;
        return NULL;
    }
    b->next = g->blocks;
    g->blocks = b;
    return b->data;
}

static void ox_free(ox_graph *g)
{
    for (pool_block *b = g->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(g->nodes.v);
    free(g->inits.v);
    free(g->meta.v);
}

static char *ox_str(ox_graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *ox_str(ox_graph *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? ox_alloc(g, (size_t)n + 1) : NULL;
    if (s) {
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return s;
}

static void ox_push(ox_graph *g, ox_list *l, void *p)
{
    if (g->failed || !p)
        return;
    if (l->n == l->cap) {
        size_t c = l->cap ? 2 * l->cap : 64;
        void **nv = realloc(l->v, c * sizeof *nv);
        if (!nv) {
            g->failed = 1;
            return;
        }
        l->v = nv;
        l->cap = c;
    }
    l->v[l->n++] = p;
}

/* ---- graph pieces ------------------------------------------------------------ */

static Onnx__NodeProto *ox_node(ox_graph *g, const char *op, const char *name,
                                const char *const *in, int n_in, const char *out)
{
    Onnx__NodeProto *nd = ox_alloc(g, sizeof *nd);
    char **ins = ox_alloc(g, (size_t)n_in * sizeof *ins + 1);
    char **outs = ox_alloc(g, sizeof *outs);
    if (!nd || !ins || !outs)
        return NULL;
    onnx__node_proto__init(nd);
    for (int i = 0; i < n_in; i++)
        ins[i] = (char *)in[i];
    outs[0] = (char *)out;
    nd->n_input = (size_t)n_in;
    nd->input = ins;
    nd->n_output = 1;
    nd->output = outs;
    nd->name = (char *)name;
    nd->op_type = (char *)op;
    ox_push(g, &g->nodes, nd);
    return nd;
}

static Onnx__AttributeProto *ox_attr(ox_graph *g, Onnx__NodeProto *nd, const char *name,
                                     Onnx__AttributeProto__AttributeType type)
{
    if (!nd)
        return NULL;
    Onnx__AttributeProto *a = ox_alloc(g, sizeof *a);
    Onnx__AttributeProto **v = ox_alloc(g, (nd->n_attribute + 1) * sizeof *v);
    if (!a || !v)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = type;
    if (nd->n_attribute)
        memcpy(v, nd->attribute, nd->n_attribute * sizeof *v);
    v[nd->n_attribute++] = a;
    nd->attribute = v;
    return a;
}

static void ox_attr_int(ox_graph *g, Onnx__NodeProto *nd, const char *name, int64_t i)
{
    Onnx__AttributeProto *a = ox_attr(g, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = i;
    }
}

static void ox_attr_float(ox_graph *g, Onnx__NodeProto *nd, const char *name, float f)
{
    Onnx__AttributeProto *a = ox_attr(g, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = f;
    }
}

static void ox_attr_ints(ox_graph *g, Onnx__NodeProto *nd, const char *name, const int64_t *v,
                         int n)
{
    Onnx__AttributeProto *a = ox_attr(g, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *c = ox_alloc(g, (size_t)n * sizeof *c);
    if (a && c) {
        memcpy(c, v, (size_t)n * sizeof *c);
        a->n_ints = (size_t)n;
        a->ints = c;
    }
}

/* An initializer of raw little-endian bytes (x86-64 is little-endian, as
 * ONNX's raw_data is); data is borrowed until the pack. */
static void ox_init(ox_graph *g, const char *name, int32_t type, const int64_t *dims, int nd,
                    const void *data, size_t bytes)
{
    Onnx__TensorProto *t = ox_alloc(g, sizeof *t);
    int64_t *d = ox_alloc(g, (size_t)nd * sizeof *d + 1);
    if (!t || !d)
        return;
    onnx__tensor_proto__init(t);
    if (nd > 0)
        memcpy(d, dims, (size_t)nd * sizeof *d);
    t->n_dims = (size_t)nd;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = type;
    t->name = (char *)name;
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = (uint8_t *)data;
    ox_push(g, &g->inits, t);
}

static void ox_init_f32(ox_graph *g, const char *name, const int64_t *dims, int nd,
                        const float *data)
{
    size_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)dims[i];
    ox_init(g, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, dims, nd, data, n * sizeof(float));
}

/* A small constant copied into the pool. */
static void ox_const_f32(ox_graph *g, const char *name, const int64_t *dims, int nd,
                         const float *v, size_t n)
{
    float *c = ox_alloc(g, n * sizeof *c);
    if (c) {
        memcpy(c, v, n * sizeof *c);
        ox_init_f32(g, name, dims, nd, c);
    }
}

static void ox_meta(ox_graph *g, const char *key, const char *value)
{
    Onnx__StringStringEntryProto *m = ox_alloc(g, sizeof *m);
    if (!m)
        return;
    onnx__string_string_entry_proto__init(m);
    m->key = (char *)key;
    m->value = (char *)value;
    ox_push(g, &g->meta, m);
}

/* A float32 graph input or output; dims < 0 is the batch ("N"). */
static Onnx__ValueInfoProto *ox_value_info(ox_graph *g, const char *name, const int64_t *dims,
                                           int nd)
{
    Onnx__ValueInfoProto *v = ox_alloc(g, sizeof *v);
    Onnx__TypeProto *tp = ox_alloc(g, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = ox_alloc(g, sizeof *tt);
    Onnx__TensorShapeProto *sh = ox_alloc(g, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dv = ox_alloc(g, (size_t)nd * sizeof *dv);
    if (!v || !tp || !tt || !sh || !dv)
        return NULL;
    for (int i = 0; i < nd; i++) {
        Onnx__TensorShapeProto__Dimension *d = ox_alloc(g, sizeof *d);
        if (!d)
            return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[i] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = "N";
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        dv[i] = d;
    }
    onnx__tensor_shape_proto__init(sh);
    sh->n_dim = (size_t)nd;
    sh->dim = dv;
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    onnx__type_proto__init(tp);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    onnx__value_info_proto__init(v);
    v->name = (char *)name;
    v->type = tp;
    return v;
}

/* ---- the walk ------------------------------------------------------------------ */

/* What a layer's output is called in the graph, and whether it is a 4-D
 * NCHW map or already (N, features). */
typedef struct {
    const char *name;
    int flat;
} ox_value;

typedef struct {
    ox_graph g;
    const net_export__model *m;
    net *n;
    ox_value *val;         /* per layer */
    int tensors;           /* weight tensors */
} ox_walk;

static const float *param(ox_walk *w, const net_layer *l, int k)
{
    return net_param_data(w->n, &w->n->params[l->param0 + k]);
}

static const char *param_name(ox_walk *w, const net_layer *l, int k)
{
    return w->n->params[l->param0 + k].name;
}

/* A weight as it is in the net (its layout is ONNX's). */
static void weight_as_is(ox_walk *w, const net_layer *l, int k)
{
    const net_param *p = &w->n->params[l->param0 + k];
    int64_t dims[4];
    for (int i = 0; i < p->ndim; i++)
        dims[i] = p->shape[i];
    ox_init_f32(&w->g, p->name, dims, p->ndim, param(w, l, k));
    w->tensors++;
}

/* Conv kernel HWIO (depthwise HW C 1) -> OIHW (depthwise C 1 H W, which is
 * the same order as 1 C H W). */
static void conv_kernel(ox_walk *w, const net_layer *l)
{
    const nn_conv2d_shape *s = &l->u.conv.s;
    const net_param *p = &w->n->params[l->param0];
    int kh = p->shape[0], kw = p->shape[1], ci = p->shape[2], co = p->shape[3];
    const float *src = param(w, l, 0);
    float *dst = ox_alloc(&w->g, (size_t)kh * kw * ci * co * sizeof *dst);
    if (!dst)
        return;
    net_export__oihw(dst, src, kh, kw, ci, co);
    int depthwise = s->groups > 1 && co == 1;
    int64_t dims[4] = {depthwise ? ci : co, depthwise ? 1 : ci, kh, kw};
    ox_init_f32(&w->g, p->name, dims, 4, dst);
    w->tensors++;
}

static void pads_attr(ox_walk *w, Onnx__NodeProto *nd, nn_pad p)
{
    int64_t pads[4] = {p.top, p.left, p.bottom, p.right};
    ox_attr_ints(&w->g, nd, "pads", pads, 4);
}

static const char *input_of(ox_walk *w, const net_layer *l, int i)
{
    return w->val[l->in[i]].name;
}

static void emit_conv(ox_walk *w, const net_layer *l)
{
    const nn_conv2d_shape *s = &l->u.conv.s;
    conv_kernel(w, l);
    const char *in[3] = {input_of(w, l, 0), param_name(w, l, 0), NULL};
    if (l->u.conv.bias) {
        weight_as_is(w, l, 1);
        in[2] = param_name(w, l, 1);
    }
    Onnx__NodeProto *nd = ox_node(&w->g, "Conv", l->name, in, l->u.conv.bias ? 3 : 2, l->name);
    int64_t k[2] = {s->kh, s->kw}, st[2] = {s->sh, s->sw};
    ox_attr_ints(&w->g, nd, "kernel_shape", k, 2);
    ox_attr_ints(&w->g, nd, "strides", st, 2);
    pads_attr(w, nd, s->pad);
    ox_attr_int(&w->g, nd, "group", s->groups);
}

/* BN params: [gamma,] beta, moving_mean, moving_variance; Keras's
 * scale=False (InceptionV3) has no gamma, so a tensor of ones stands in. */
static void emit_bn(ox_walk *w, const net_layer *l)
{
    int k = l->u.bn.scale ? 0 : -1;
    const char *in[5] = {input_of(w, l, 0)};
    int64_t dims[1] = {l->c};
    if (k == 0) {
        weight_as_is(w, l, 0);
        in[1] = param_name(w, l, 0);
    } else {
        float *ones = ox_alloc(&w->g, (size_t)l->c * sizeof *ones);
        in[1] = ox_str(&w->g, "%s/gamma", l->name);
        if (ones) {
            for (int i = 0; i < l->c; i++)
                ones[i] = 1.0f;
            ox_init_f32(&w->g, in[1], dims, 1, ones);
        }
    }
    for (int j = 1; j <= 3; j++) {
        weight_as_is(w, l, k + j);
        in[1 + j] = param_name(w, l, k + j);
    }
    Onnx__NodeProto *nd = ox_node(&w->g, "BatchNormalization", l->name, in, 5, l->name);
    ox_attr_float(&w->g, nd, "epsilon", l->u.bn.eps);
}

/* ReLU6 as Clip(0, 6): opset 13 takes the bounds as inputs. */
static void emit_relu6(ox_walk *w, const net_layer *l)
{
    if (!w->g.clip_consts) {
        static const float lo = 0.0f, hi = 6.0f;
        ox_const_f32(&w->g, "relu6/min", NULL, 0, &lo, 1);
        ox_const_f32(&w->g, "relu6/max", NULL, 0, &hi, 1);
        w->g.clip_consts = 1;
    }
    const char *in[3] = {input_of(w, l, 0), "relu6/min", "relu6/max"};
    ox_node(&w->g, "Clip", l->name, in, 3, l->name);
}

static void emit_pool(ox_walk *w, const net_layer *l)
{
    const nn_pool2d_shape *s = &l->u.pool.s;
    const char *in[1] = {input_of(w, l, 0)};
    int avg = l->kind == NET_AVGPOOL;
    Onnx__NodeProto *nd = ox_node(&w->g, avg ? "AveragePool" : "MaxPool", l->name, in, 1, l->name);
    int64_t k[2] = {s->kh, s->kw}, st[2] = {s->sh, s->sw};
    ox_attr_ints(&w->g, nd, "kernel_shape", k, 2);
    ox_attr_ints(&w->g, nd, "strides", st, 2);
    pads_attr(w, nd, s->pad);
    /* Keras/TF average over the cells inside the image; torchvision counts the padding */
    if (avg)
        ox_attr_int(&w->g, nd, "count_include_pad", s->count_include_pad);
}

/* (N, C, 1, 1) -> (N, C); a map with H, W > 1 goes back to NHWC first, so
 * the features are in Keras's Flatten order (h, w, c). */
static const char *flatten_value(ox_walk *w, const net_layer *l, const char *name)
{
    const net_layer *a = &w->n->layers[l->in[0]];
    const char *x = input_of(w, l, 0);
    if (w->val[l->in[0]].flat)
        return x;
    if (a->h * a->w > 1) {
        const char *t = ox_str(&w->g, "%s/nhwc", name);
        Onnx__NodeProto *nd = ox_node(&w->g, "Transpose", t, &x, 1, t);
        static const int64_t perm[4] = {0, 2, 3, 1};
        ox_attr_ints(&w->g, nd, "perm", perm, 4);
        x = t;
    }
    Onnx__NodeProto *nd = ox_node(&w->g, "Flatten", name, &x, 1, name);
    ox_attr_int(&w->g, nd, "axis", 1);
    return name;
}

static void emit_dense(ox_walk *w, const net_layer *l)
{
    const char *x = flatten_value(w, l, ox_str(&w->g, "%s/flatten", l->name));
    weight_as_is(w, l, 0);
    const char *in[3] = {x, param_name(w, l, 0), NULL};
    if (l->u.dense.bias) {
        weight_as_is(w, l, 1);
        in[2] = param_name(w, l, 1);
    }
    ox_node(&w->g, "Gemm", l->name, in, l->u.dense.bias ? 3 : 2, l->name);
}

static void emit_simple(ox_walk *w, const net_layer *l, const char *op)
{
    const char *in[NET_MAX_IN];
    for (int i = 0; i < l->n_in; i++)
        in[i] = input_of(w, l, i);
    Onnx__NodeProto *nd = ox_node(&w->g, op, l->name, in, l->n_in, l->name);
    if (l->kind == NET_CONCAT)
        ox_attr_int(&w->g, nd, "axis", 1); /* channels, NCHW */
}

/* One layer: its node(s), and what its output is called. */
static void emit_layer(ox_walk *w, int i)
{
    const net_layer *l = &w->n->layers[i];
    ox_value *v = &w->val[i];
    v->name = l->name;
    v->flat = 0;
    switch (l->kind) {
    case NET_INPUT: break; /* set by emit_input */
    case NET_CONV: emit_conv(w, l); break;
    case NET_BN: emit_bn(w, l); break;
    case NET_RELU:
        emit_simple(w, l, "Relu");
        v->flat = w->val[l->in[0]].flat; /* after a Dense: still (N, units) */
        break;
    case NET_RELU6:
        emit_relu6(w, l);
        v->flat = w->val[l->in[0]].flat;
        break;
    case NET_ADD: emit_simple(w, l, "Add"); break;
    case NET_CONCAT: emit_simple(w, l, "Concat"); break;
    case NET_MAXPOOL:
    case NET_AVGPOOL: emit_pool(w, l); break;
    case NET_GAP: emit_simple(w, l, "GlobalAveragePool"); break;
    case NET_FLATTEN:
        v->name = flatten_value(w, l, l->name);
        v->flat = 1;
        break;
    case NET_DENSE:
        emit_dense(w, l);
        v->flat = 1;
        break;
    case NET_DROPOUT: /* identity at inference: the value of its input */
        *v = w->val[l->in[0]];
        break;
    }
}

/* The preprocessing as nodes on NHWC RGB 0-255, as common/data applies it
 * (same constants, same order of operations). Returns the value name. */
static const char *emit_preprocessing(ox_walk *w, const char *x)
{
    static const int64_t c3[1] = {3};
    static const float unit = 1.0f / 255.0f, tf = 1.0f / 127.5f, one = 1.0f;
    static const float caffe_mean[3] = {103.939f, 116.779f, 123.68f};
    static const float torch_mean[3] = {0.485f, 0.456f, 0.406f};
    static const float torch_std[3] = {0.229f, 0.224f, 0.225f};
    static const int64_t bgr[3] = {2, 1, 0};
    ox_graph *g = &w->g;
    const char *in[2];
    switch (w->m->spec->preproc) {
    case MODEL_PREPROC_TF:
        ox_const_f32(g, "preprocessing/scale", NULL, 0, &tf, 1);
        ox_const_f32(g, "preprocessing/offset", NULL, 0, &one, 1);
        in[0] = x, in[1] = "preprocessing/scale";
        ox_node(g, "Mul", "preprocessing/mul", in, 2, "preprocessing/mul");
        in[0] = "preprocessing/mul", in[1] = "preprocessing/offset";
        ox_node(g, "Sub", "preprocessing/sub", in, 2, "preprocessing/sub");
        return "preprocessing/sub";
    case MODEL_PREPROC_CAFFE:
        ox_init(g, "preprocessing/bgr_index", ONNX__TENSOR_PROTO__DATA_TYPE__INT64, c3, 1, bgr,
                sizeof bgr);
        ox_const_f32(g, "preprocessing/mean", c3, 1, caffe_mean, 3);
        in[0] = x, in[1] = "preprocessing/bgr_index";
        Onnx__NodeProto *nd = ox_node(g, "Gather", "preprocessing/bgr", in, 2, "preprocessing/bgr");
        ox_attr_int(g, nd, "axis", 3);
        in[0] = "preprocessing/bgr", in[1] = "preprocessing/mean";
        ox_node(g, "Sub", "preprocessing/sub", in, 2, "preprocessing/sub");
        return "preprocessing/sub";
    case MODEL_PREPROC_TORCH:
        ox_const_f32(g, "preprocessing/scale", NULL, 0, &unit, 1);
        ox_const_f32(g, "preprocessing/mean", c3, 1, torch_mean, 3);
        ox_const_f32(g, "preprocessing/std", c3, 1, torch_std, 3);
        in[0] = x, in[1] = "preprocessing/scale";
        ox_node(g, "Mul", "preprocessing/mul", in, 2, "preprocessing/mul");
        in[0] = "preprocessing/mul", in[1] = "preprocessing/mean";
        ox_node(g, "Sub", "preprocessing/sub", in, 2, "preprocessing/sub");
        in[0] = "preprocessing/sub", in[1] = "preprocessing/std";
        ox_node(g, "Div", "preprocessing/div", in, 2, "preprocessing/div");
        return "preprocessing/div";
    case MODEL_PREPROC_UNIT:
        ox_const_f32(g, "preprocessing/scale", NULL, 0, &unit, 1);
        in[0] = x, in[1] = "preprocessing/scale";
        ox_node(g, "Mul", "preprocessing/mul", in, 2, "preprocessing/mul");
        return "preprocessing/mul";
    }
    return x;
}

/* Graph input (N, H, W, 3) NHWC, [preprocessing,] Transpose to NCHW. */
static Onnx__ValueInfoProto *emit_input(ox_walk *w)
{
    const net_layer *l = &w->n->layers[0];
    int64_t dims[4] = {-1, l->h, l->w, l->c};
    const char *x = "input";
    if (w->m->with_preprocessing)
        x = emit_preprocessing(w, x);
    Onnx__NodeProto *nd = ox_node(&w->g, "Transpose", "input/nchw", &x, 1, "input/nchw");
    static const int64_t perm[4] = {0, 3, 1, 2};
    ox_attr_ints(&w->g, nd, "perm", perm, 4);
    w->val[0].name = "input/nchw";
    w->val[0].flat = 0;
    return ox_value_info(&w->g, "input", dims, 4);
}

/* Softmax/Sigmoid on the logits, or the backbone's map back to NHWC. */
static Onnx__ValueInfoProto *emit_output(ox_walk *w)
{
    const net_layer *last = net_last(w->n);
    const char *x = w->val[w->n->n_layers - 1].name;
    const model_spec *s = w->m->spec;
    if (s->num_classes > 0) {
        int sig = s->loss == MODEL_LOSS_SIGMOID;
        Onnx__NodeProto *nd = ox_node(&w->g, sig ? "Sigmoid" : "Softmax", "probabilities", &x, 1,
                                      "probabilities");
        if (!sig)
            ox_attr_int(&w->g, nd, "axis", 1);
        int64_t dims[2] = {-1, s->num_classes};
        return ox_value_info(&w->g, "probabilities", dims, 2);
    }
    Onnx__NodeProto *nd = ox_node(&w->g, "Transpose", "features", &x, 1, "features");
    static const int64_t perm[4] = {0, 2, 3, 1};
    ox_attr_ints(&w->g, nd, "perm", perm, 4);
    int64_t dims[4] = {-1, last->h, last->w, last->c};
    return ox_value_info(&w->g, "features", dims, 4);
}

static const char *class_names_json(ox_walk *w)
{
    const model_spec *s = w->m->spec;
    json_t *a = json_array();
    for (int i = 0; a && i < s->n_class_names; i++)
        json_array_append_new(a, json_string(s->class_names[i]));
    char *txt = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    const char *out = txt ? ox_str(&w->g, "%s", txt) : NULL;
    free(txt);
    if (!out)
        w->g.failed = 1;
    return out;
}

static void emit_metadata(ox_walk *w, const net_export_result *r)
{
    const model_spec *s = w->m->spec;
    ox_graph *g = &w->g;
    ox_meta(g, "tlsweep.class_names", class_names_json(w));
    ox_meta(g, "tlsweep.preprocessing", model_preproc_name(s->preproc));
    ox_meta(g, "tlsweep.preprocessing_in_graph", w->m->with_preprocessing ? "true" : "false");
    ox_meta(g, "tlsweep.input_layout", "NHWC");
    ox_meta(g, "tlsweep.input", ox_str(g, "%s", r->input));
    ox_meta(g, "tlsweep.output", ox_str(g, "%s", r->output));
    ox_meta(g, "tlsweep.backbone", s->backbone);
    ox_meta(g, "tlsweep.convention", model_convention_name(s->convention));
    if (s->alpha > 0)
        ox_meta(g, "tlsweep.alpha", ox_str(g, "%g", (double)s->alpha));
}

/* protobuf-c packs into this: the bytes go straight to the temporary file. */
typedef struct {
    ProtobufCBuffer base;
    tl_atomic_file *f;
    tl_err *e;
    int rc;
    size_t bytes;
} file_sink;

static void file_sink_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    file_sink *s = (file_sink *)b;
    if (!s->rc)
        s->rc = tl_atomic_write(s->f, data, len, s->e);
    s->bytes += len;
}

static int write_model(const Onnx__ModelProto *mp, const char *out, long long *bytes, tl_err *e)
{
    tl_atomic_file f = TL_ATOMIC_FILE_INIT;
    int rc = tl_atomic_open(&f, out, e);
    if (rc)
        return rc;
    file_sink s = {{file_sink_append}, &f, e, 0, 0};
    protobuf_c_message_pack_to_buffer(&mp->base, &s.base);
    rc = s.rc ? s.rc : tl_atomic_commit(&f, e);
    tl_atomic_abort(&f);
    *bytes = (long long)s.bytes;
    return rc;
}

/* The model message around the graph's nodes and initializers. */
static int pack_and_write(ox_walk *w, Onnx__ValueInfoProto *in, Onnx__ValueInfoProto *out,
                          net_export_result *r, tl_err *e)
{
    ox_graph *g = &w->g;
    Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
    Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};
    Onnx__ValueInfoProto *ins[1] = {in}, *outs[1] = {out};
    /* protobuf-c reads repeated messages through generic message pointers */
    graph.name = w->m->spec->backbone;
    graph.n_node = g->nodes.n;
    graph.node = (Onnx__NodeProto **)g->nodes.v;
    graph.n_initializer = g->inits.n;
    graph.initializer = (Onnx__TensorProto **)g->inits.v;
    graph.n_input = 1;
    graph.input = ins;
    graph.n_output = 1;
    graph.output = outs;
    opset.domain = "";
    opset.has_version = 1;
    opset.version = ONNX_OPSET;
    mp.has_ir_version = 1;
    mp.ir_version = ONNX_IR_VERSION;
    mp.n_opset_import = 1;
    mp.opset_import = opsets;
    mp.producer_name = "tlsweep";
    mp.producer_version = TLSWEEP_VERSION;
    mp.graph = &graph;
    mp.n_metadata_props = g->meta.n;
    mp.metadata_props = (Onnx__StringStringEntryProto **)g->meta.v;
    r->nodes = (int)g->nodes.n;
    r->tensors = w->tensors;
    return write_model(&mp, w->m->out, &r->out_bytes, e);
}

int net_export__onnx(const net_export__model *m, net_export_result *r, tl_err *e)
{
    ox_walk w = {.m = m, .n = m->net};
    w.val = calloc((size_t)m->net->n_layers, sizeof *w.val);
    int rc = 0;
    if (!w.val) {
        rc = tl_errf(e, TL_ENOMEM, "%s: out of memory", m->out);
        goto done;
    }
    Onnx__ValueInfoProto *in = emit_input(&w);
    for (int i = 1; i < m->net->n_layers; i++)
        emit_layer(&w, i);
    Onnx__ValueInfoProto *out = emit_output(&w);
    emit_metadata(&w, r);
    if (w.g.failed || !in || !out)
        rc = tl_errf(e, TL_ENOMEM, "%s: out of memory building the ONNX graph", m->out);
    else
        rc = pack_and_write(&w, in, out, r, e);
done:
    free(w.val);
    ox_free(&w.g);
    return rc;
}
