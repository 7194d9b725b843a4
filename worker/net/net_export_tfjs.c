/* TensorFlow.js layers model export (see net_export.h): model.json (a Keras
 * functional topology, the weights manifest, tlsweep's facts under
 * userDefinedMetadata) and one binary shard, group1-shard1of1.bin.
 *
 * Keras layers say padding as 'valid' or 'same' (TensorFlow's asymmetric
 * same); any other padding the engine has (torchvision's symmetric pads,
 * MobileNetV2's explicit ZeroPadding2D) becomes a ZeroPadding2D layer
 * before a 'valid' one. That is exact for convolutions and for average
 * pooling that counts the padding; for max pooling only when the input
 * cannot be negative (after a ReLU): anything else is refused, naming the
 * layer. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/fileio.h"
#include "worker/net/net_export_int.h"

#define TFJS_SHARD "group1-shard1of1.bin"

typedef struct {
    const net_export__model *m;
    json_t *layers;        /* the topology's layer list */
    const char *in_name;   /* InputLayer's name */
    tl_err *e;
} tj_walk;

static json_t *inbound(tj_walk *w, const net_layer *l)
{
    json_t *node = json_array();
    for (int i = 0; i < l->n_in; i++) {
        const char *src = l->in[i] == 0 ? w->in_name : w->m->net->layers[l->in[i]].name;
        json_array_append_new(node, json_pack("[s, i, i, {}]", src, 0, 0));
    }
    return json_pack("[o]", node);
}

/* Appends {class_name, config (name added), name, inbound_nodes}. */
static void add_layer(tj_walk *w, const char *cls, const char *name, json_t *config,
                      json_t *inbound_nodes)
{
    json_object_set_new(config, "name", json_string(name));
    json_object_set_new(config, "trainable", json_true());
    json_object_set_new(config, "dtype", json_string("float32"));
    json_array_append_new(w->layers, json_pack("{s:s, s:o, s:s, s:o}", "class_name", cls, "config",
                                               config, "name", name, "inbound_nodes",
                                               inbound_nodes));
}

static int same_pad(const nn_pad *a, const nn_pad *b)
{
    return a->top == b->top && a->bottom == b->bottom && a->left == b->left &&
           a->right == b->right;
}

/* "valid" or "same" for a window over layer in's map; or, with *zero_pad
 * set, "valid" after a ZeroPadding2D of p. */
static const char *padding_of(tj_walk *w, int in, nn_pad p, int kh, int kw, int sh, int sw,
                              int *zero_pad)
{
    const net_layer *a = &w->m->net->layers[in];
    nn_pad same = nn_pad_same(a->h, a->w, kh, kw, sh, sw);
    nn_pad none = {0, 0, 0, 0};
    *zero_pad = 0;
    if (same_pad(&p, &none))
        return "valid";
    if (same_pad(&p, &same))
        return "same";
    *zero_pad = 1;
    return "valid";
}

/* A ZeroPadding2D named "<layer>_pad" standing in l's input; returns the
 * inbound nodes the padded layer takes. */
static json_t *zero_padding(tj_walk *w, const net_layer *l, nn_pad p)
{
    char name[NET_NAME_MAX + 8];
    snprintf(name, sizeof name, "%s_pad", l->name);
    json_t *c = json_pack("{s:[[i,i],[i,i]], s:s}", "padding", p.top, p.bottom, p.left, p.right,
                          "data_format", "channels_last");
    add_layer(w, "ZeroPadding2D", name, c, inbound(w, l));
    return json_pack("[[[s, i, i, {}]]]", name, 0, 0);
}

static int emit_conv(tj_walk *w, const net_layer *l)
{
    const nn_conv2d_shape *s = &l->u.conv.s;
    int depthwise = s->groups > 1 && s->groups == s->c && s->oc == s->c;
    if (s->groups > 1 && !depthwise)
        return tl_errf(w->e, TL_EINVAL,
                       "%s: layer %s: a grouped convolution (%d groups) has no TensorFlow.js "
                       "layer", w->m->out, l->name, s->groups);
    int zp;
    const char *pad = padding_of(w, l->in[0], s->pad, s->kh, s->kw, s->sh, s->sw, &zp);
    json_t *in = zp ? zero_padding(w, l, s->pad) : inbound(w, l);
    json_t *c = json_pack("{s:[i,i], s:[i,i], s:s, s:s, s:[i,i], s:s, s:b}", "kernel_size", s->kh,
                          s->kw, "strides", s->sh, s->sw, "padding", pad, "data_format",
                          "channels_last", "dilation_rate", 1, 1, "activation", "linear",
                          "use_bias", l->u.conv.bias);
    if (depthwise)
        json_object_set_new(c, "depth_multiplier", json_integer(1));
    else
        json_object_set_new(c, "filters", json_integer(s->oc));
    add_layer(w, depthwise ? "DepthwiseConv2D" : "Conv2D", l->name, c, in);
    return 0;
}

/* Zero padding is max pooling's -inf only where the input is >= 0. */
static int nonnegative(tj_walk *w, int in)
{
    net_kind k = w->m->net->layers[in].kind;
    return k == NET_RELU || k == NET_RELU6;
}

static int emit_pool(tj_walk *w, const net_layer *l)
{
    const nn_pool2d_shape *s = &l->u.pool.s;
    int avg = l->kind == NET_AVGPOOL;
    int zp;
    const char *pad = padding_of(w, l->in[0], s->pad, s->kh, s->kw, s->sh, s->sw, &zp);
    /* TF's 'same' average leaves the padding out; an explicit ZeroPadding2D
     * counts it, as torchvision's count_include_pad does */
    if (avg && s->count_include_pad && strcmp(pad, "valid"))
        zp = 1, pad = "valid";
    int exact = !zp || (avg ? s->count_include_pad : nonnegative(w, l->in[0]));
    if (!exact)
        return tl_errf(w->e, TL_EINVAL,
                       "%s: layer %s: %s pooling with this padding has no exact TensorFlow.js "
                       "layer", w->m->out, l->name, avg ? "average" : "max");
    json_t *in = zp ? zero_padding(w, l, s->pad) : inbound(w, l);
    json_t *c = json_pack("{s:[i,i], s:[i,i], s:s, s:s}", "pool_size", s->kh, s->kw, "strides",
                          s->sh, s->sw, "padding", pad, "data_format", "channels_last");
    add_layer(w, avg ? "AveragePooling2D" : "MaxPooling2D", l->name, c, in);
    return 0;
}

/* The classifier carries the output activation, as Keras's does. */
static void emit_dense(tj_walk *w, const net_layer *l, int last)
{
    const model_spec *s = w->m->spec;
    const char *act = !last || s->num_classes < 1 ? "linear"
                      : s->loss == MODEL_LOSS_SIGMOID ? "sigmoid"
                                                      : "softmax";
    json_t *c = json_pack("{s:i, s:s, s:b}", "units", l->u.dense.units, "activation", act,
                          "use_bias", l->u.dense.bias);
    add_layer(w, "Dense", l->name, c, inbound(w, l));
}

static int emit_layer(tj_walk *w, int i)
{
    const net_layer *l = &w->m->net->layers[i];
    json_t *cl = json_pack("{s:s}", "data_format", "channels_last");
    switch (l->kind) {
    case NET_INPUT: break;
    case NET_CONV: json_decref(cl); return emit_conv(w, l);
    case NET_MAXPOOL:
    case NET_AVGPOOL: json_decref(cl); return emit_pool(w, l);
    case NET_BN:
        add_layer(w, "BatchNormalization", l->name,
                  json_pack("{s:i, s:f, s:f, s:b, s:b}", "axis", -1, "momentum", 0.99, "epsilon",
                            (double)l->u.bn.eps, "center", 1, "scale", l->u.bn.scale),
                  inbound(w, l));
        break;
    case NET_RELU:
        add_layer(w, "Activation", l->name, json_pack("{s:s}", "activation", "relu"), inbound(w, l));
        break;
    case NET_RELU6:
        add_layer(w, "ReLU", l->name, json_pack("{s:f}", "max_value", 6.0), inbound(w, l));
        break;
    case NET_ADD: add_layer(w, "Add", l->name, json_object(), inbound(w, l)); break;
    case NET_CONCAT:
        add_layer(w, "Concatenate", l->name, json_pack("{s:i}", "axis", -1), inbound(w, l));
        break;
    case NET_GAP: add_layer(w, "GlobalAveragePooling2D", l->name, json_deep_copy(cl), inbound(w, l)); break;
    case NET_FLATTEN: add_layer(w, "Flatten", l->name, json_deep_copy(cl), inbound(w, l)); break;
    case NET_DENSE: emit_dense(w, l, i == w->m->net->n_layers - 1); break;
    case NET_DROPOUT:
        add_layer(w, "Dropout", l->name, json_pack("{s:f}", "rate", (double)l->u.dropout.rate),
                  inbound(w, l));
        break;
    }
    json_decref(cl);
    return 0;
}

static json_t *manifest(const net *n)
{
    json_t *ws = json_array();
    for (int i = 0; i < n->n_params; i++) {
        const net_param *p = &n->params[i];
        json_t *shape = json_array();
        for (int d = 0; d < p->ndim; d++)
            json_array_append_new(shape, json_integer(p->shape[d]));
        json_array_append_new(ws, json_pack("{s:s, s:o, s:s}", "name", p->name, "shape", shape,
                                            "dtype", "float32"));
    }
    return json_pack("[{s:[s], s:o}]", "paths", TFJS_SHARD, "weights", ws);
}

static json_t *metadata(const net_export__model *m)
{
    const model_spec *s = m->spec;
    json_t *names = json_array();
    for (int i = 0; i < s->n_class_names; i++)
        json_array_append_new(names, json_string(s->class_names[i]));
    return json_pack("{s:{s:s, s:s, s:i, s:f, s:o, s:s, s:s, s:s}}", "tlsweep", "backbone",
                     s->backbone, "convention", model_convention_name(s->convention), "size",
                     s->height, "alpha", (double)s->alpha, "class_names", names, "preprocessing",
                     model_preproc_name(s->preproc), "loss",
                     s->loss == MODEL_LOSS_SIGMOID ? "sigmoid" : "softmax", "input_layout",
                     "NHWC, preprocessed");
}

int net_export__keras_topology(const net_export__model *m, json_t **topo, tl_err *e)
{
    const net *n = m->net;
    const net_layer *in = &n->layers[0];
    tj_walk w = {m, json_array(), in->name, e};
    add_layer(&w, "InputLayer", in->name,
              json_pack("{s:[n,i,i,i], s:b}", "batch_input_shape", in->h, in->w, in->c, "sparse", 0),
              json_array());
    int rc = 0;
    for (int i = 1; i < n->n_layers && !rc; i++)
        rc = emit_layer(&w, i);
    if (rc) {
        json_decref(w.layers);
        return rc;
    }
    *topo = json_pack("{s:s, s:{s:s, s:o, s:[[s,i,i]], s:[[s,i,i]]}, s:s, s:s}", "class_name",
                      "Model", "config", "name", m->spec->backbone, "layers", w.layers,
                      "input_layers", in->name, 0, 0, "output_layers", net_last(n)->name, 0, 0,
                      "keras_version", "2.11.0", "backend", "tensorflow");
    return *topo ? 0 : tl_errf(e, TL_ENOMEM, "%s: out of memory", m->out);
}

/* model.json's text into *out (malloc'd). */
static int model_json(const net_export__model *m, char **out, tl_err *e)
{
    const net *n = m->net;
    json_t *topo = NULL;
    int rc = net_export__keras_topology(m, &topo, e);
    if (rc)
        return rc;
    json_t *root = json_pack("{s:s, s:s, s:o, s:o, s:o}", "format", "layers-model", "generatedBy",
                             "tlsweep " TLSWEEP_VERSION, "modelTopology", topo, "weightsManifest",
                             manifest(n), "userDefinedMetadata", metadata(m));
    *out = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return *out ? 0 : tl_errf(e, TL_ENOMEM, "%s: out of memory building model.json", m->out);
}

static int write_file(const char *path, const void *a, size_t na, const net *n, tl_err *e)
{
    tl_atomic_file f = TL_ATOMIC_FILE_INIT;
    int rc = tl_atomic_open(&f, path, e);
    if (!rc && a)
        rc = tl_atomic_write(&f, a, na, e);
    for (int i = 0; !rc && n && i < n->n_params; i++)
        rc = tl_atomic_write(&f, net_param_data((net *)n, &n->params[i]),
                             n->params[i].n * sizeof(float), e);
    if (!rc)
        rc = tl_atomic_commit(&f, e);
    tl_atomic_abort(&f);
    return rc;
}

/* "<dir>/<name>" into path (PATH_MAX); 0 when it does not fit. */
static int join(char *path, const char *dir, const char *name)
{
    size_t n = strlen(dir);
    int k = snprintf(path, PATH_MAX, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name);
    return k > 0 && k < PATH_MAX;
}

/* The shard, then model.json (which a reader opens first) into dir. */
static int write_pair(const char *dir, const char *json, const net *n, tl_err *e)
{
    char shard[PATH_MAX], model[PATH_MAX];
    if (!join(shard, dir, TFJS_SHARD) || !join(model, dir, "model.json"))
        return tl_errf(e, TL_EINVAL, "%s: path too long", dir);
    int rc = write_file(shard, NULL, 0, n, e);
    return rc ? rc : write_file(model, json, strlen(json), NULL, e);
}

static void remove_pair(const char *dir)
{
    char path[PATH_MAX];
    if (join(path, dir, TFJS_SHARD))
        unlink(path);
    if (join(path, dir, "model.json"))
        unlink(path);
    rmdir(dir);
}

/* A folder: written whole as <out>.tmp.<pid> and renamed; an existing
 * empty folder is replaced, a non-empty one refused. */
static int write_folder(const char *out, const char *json, const net *n, tl_err *e)
{
    char dir[PATH_MAX], tmp[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", out) >= (int)sizeof dir)
        return tl_errf(e, TL_EINVAL, "%s: path too long", out);
    for (size_t k = strlen(dir); k > 1 && dir[k - 1] == '/'; k--)
        dir[k - 1] = 0;
    struct stat st;
    if (stat(dir, &st) == 0 && (!S_ISDIR(st.st_mode) || rmdir(dir) != 0))
        return tl_errf(e, TL_EIO, "%s: exists and is not an empty folder (not overwritten)", out);
    int k = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dir, (long)getpid());
    if (k < 0 || k >= (int)sizeof tmp)
        return tl_errf(e, TL_EINVAL, "%s: path too long", out);
    if (mkdir(tmp, 0755) != 0)
        return tl_errf(e, TL_EIO, "%s: cannot create %s: %s", out, tmp, strerror(errno));
    int rc = write_pair(tmp, json, n, e);
    if (!rc && rename(tmp, dir) != 0)
        rc = tl_errf(e, TL_EIO, "%s: rename of %s failed: %s", out, tmp, strerror(errno));
    if (rc)
        remove_pair(tmp);
    return rc;
}

int net_export__tfjs(const net_export__model *m, net_export_result *r, tl_err *e)
{
    char *json = NULL;
    int rc = model_json(m, &json, e);
    if (rc)
        return rc;
    size_t len = strlen(m->out);
    if (len >= 10 && !strcmp(m->out + len - 10, "model.json")) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%.*s", (int)(len - 10 < PATH_MAX - 1 ? len - 10 : PATH_MAX - 1),
                 m->out);
        rc = write_pair(dir[0] ? dir : ".", json, m->net, e);
    } else {
        rc = write_folder(m->out, json, m->net, e);
    }
    if (!rc) {
        r->tensors = m->net->n_params;
        r->out_bytes = (long long)strlen(json);
        for (int i = 0; i < m->net->n_params; i++)
            r->out_bytes += (long long)(m->net->params[i].n * sizeof(float));
    }
    free(json);
    return rc;
}
