/* Importing a weights file into a .tlm (see net_import.h). */
#include "worker/net/net_import.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/sha256.h"
#include "common/weights/safetensors.h"
#include "common/weights/tensors.h"
#include "common/weights/weights_h5.h"
#include "common/weights/weights_tfjs.h"
#include "worker/net/backbones.h"
#include "worker/net/net_load.h"

#ifndef TLSWEEP_VERSION
#define TLSWEEP_VERSION "unknown"
#endif

static const char *const format_names[] = {"?", "tlm", "h5", "safetensors", "tfjs"};

const char *net_import_format_name(net_import_format f)
{
    return (unsigned)f <= NET_IMPORT_SRC_TFJS ? format_names[f] : "?";
}

net_import_format net_import_detect(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return NET_IMPORT_SRC_UNKNOWN;
    if (S_ISDIR(st.st_mode))
        return NET_IMPORT_SRC_TFJS;
    unsigned char b[16] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return NET_IMPORT_SRC_UNKNOWN;
    size_t got = fread(b, 1, sizeof b, f);
    fclose(f);
    if (got >= 8 && !memcmp(b, MODEL_MAGIC, 8))
        return NET_IMPORT_SRC_TLM;
    if (got >= 8 && !memcmp(b, "\x89HDF\r\n\x1a\n", 8))
        return NET_IMPORT_SRC_H5;
    if (got >= 9 && b[8] == '{') {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = n << 8 | b[i];
        if (n >= 2 && n + 8 <= (uint64_t)st.st_size)
            return NET_IMPORT_SRC_SAFETENSORS;
    }
    size_t len = strlen(path);
    if ((len >= 5 && !strcmp(path + len - 5, ".json")) || (len >= 3 && !strcmp(path + len - 3, ".js")))
        return NET_IMPORT_SRC_TFJS;
    size_t i = 0;
    while (i < got && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t'))
        i++;
    return i < got && b[i] == '{' ? NET_IMPORT_SRC_TFJS : NET_IMPORT_SRC_UNKNOWN;
}

/* ---- what the tensor names say ------------------------------------------------ */

static const tset_entry *find_suffix(const tset *t, const char *suffix)
{
    size_t k = strlen(suffix);
    for (size_t i = 0; i < t->n; i++) {
        const char *nm = t->v[i].name;
        size_t l = strcspn(nm, ":"); /* "x/kernel:0" */
        if (l >= k && !strncmp(nm + l - k, suffix, k) && (l == k || nm[l - k - 1] == '/'))
            return &t->v[i];
    }
    return NULL;
}

static const char *guess_keras_backbone(const tset *t)
{
    if (find_suffix(t, "block_16_project/kernel"))
        return "mobilenet_v2";
    if (find_suffix(t, "conv5_block3_3_conv/kernel"))
        return "resnet50";
    if (find_suffix(t, "block5_conv3/kernel"))
        return "vgg16";
    if (find_suffix(t, "conv2d/kernel") || find_suffix(t, "conv2d_93/kernel") ||
        find_suffix(t, "conv2d_187/kernel"))
        return "inception_v3";
    return NULL;
}

/* MobileNetV2's last bottleneck has make_divisible(320 alpha, 8) channels,
 * different for each of Keras's alphas. */
static float alpha_from_channels(int64_t c)
{
    static const float alphas[] = {0.35f, 0.5f, 0.75f, 1.0f, 1.3f, 1.4f};
    for (int i = 0; i < 6; i++) {
        double v = (int)(320 * alphas[i]);
        int nv = (int)(v + 4) / 8 * 8;
        if (nv < 8)
            nv = 8;
        if (nv < 0.9 * v)
            nv += 8;
        if (nv == c)
            return alphas[i];
    }
    return 0;
}

/* Torch module paths of a safetensors file: backbone and alpha. */
static const char *guess_torch_backbone(const weights_st *st, float *alpha)
{
    if (weights_st_find(st, "features.18.0.weight")) {
        const weights_st_tensor *p = weights_st_find(st, "features.17.conv.2.weight");
        if (p && p->ndim == 4)
            *alpha = alpha_from_channels((int64_t)p->shape[0]);
        return "mobilenet_v2";
    }
    if (weights_st_find(st, "layer4.2.conv3.weight"))
        return "resnet50";
    if (weights_st_find(st, "features.28.weight"))
        return "vgg16";
    if (weights_st_find(st, "Mixed_7c.branch_pool.conv.weight"))
        return "inception_v3";
    return NULL;
}

static int is_torch_named(const weights_st *st)
{
    for (size_t i = 0; i < weights_st_count(st); i++) {
        const char *n = weights_st_get(st, i)->name;
        size_t l = strlen(n);
        if ((l > 7 && !strcmp(n + l - 7, ".weight")) || (l > 13 && !strcmp(n + l - 13, ".running_mean")))
            return 1;
    }
    return 0;
}

/* Keras-named safetensors (written by tlsweep or a converter) into t. */
static int st_to_tset(const weights_st *st, tset *t, tl_err *e)
{
    for (size_t i = 0; i < weights_st_count(st); i++) {
        const weights_st_tensor *w = weights_st_get(st, i);
        if (w->dtype != WEIGHTS_ST_F32 && w->dtype != WEIGHTS_ST_F16 &&
            w->dtype != WEIGHTS_ST_BF16 && w->dtype != WEIGHTS_ST_F64)
            continue; /* counters (num_batches_tracked), not weights */
        float *d = malloc((w->numel ? w->numel : 1) * sizeof *d);
        if (!d)
            return tl_errf(e, TL_ENOMEM, "out of memory for tensor '%s'", w->name);
        int rc = weights_st_to_f32(w, d, w->numel, e);
        if (rc) {
            free(d);
            return rc;
        }
        int64_t shape[WEIGHTS_ST_MAX_DIMS];
        for (int k = 0; k < w->ndim; k++)
            shape[k] = (int64_t)w->shape[k];
        if ((rc = tset_add_owned(t, w->name, w->ndim, shape, d, e)))
            return rc;
    }
    return 0;
}

/* ---- the head, for --with-head ------------------------------------------------- */

/* The layer name of a tensor name ("a/dense_3/kernel:0" -> "dense_3"). */
static void layer_name(const char *name, char *buf, size_t cap)
{
    size_t l = strcspn(name, ":");
    const char *end = name + l;
    while (end > name && end[-1] != '/')
        end--;
    const char *last = end > name ? end - 1 : name; /* the '/' before the param */
    const char *start = last;
    while (start > name && start[-1] != '/')
        start--;
    snprintf(buf, cap, "%.*s", (int)(last - start), start);
}

/* A Dense layer's activation from the tfjs topology, RELU when unknown. */
static model_act dense_activation(const weights_tfjs_info *info, const char *layer, int *softmax)
{
    *softmax = -1;
    for (int i = 0; info && i < info->n_layers; i++) {
        if (strcmp(info->layers[i].name, layer))
            continue;
        const char *c = info->layers[i].config ? info->layers[i].config : "";
        if (strstr(c, "\"activation\":\"softmax\""))
            *softmax = 1;
        if (strstr(c, "\"activation\":\"sigmoid\""))
            *softmax = 0;
        if (strstr(c, "\"activation\":\"linear\""))
            return MODEL_ACT_LINEAR;
        if (strstr(c, "\"activation\":\"relu6\""))
            return MODEL_ACT_RELU6;
        return MODEL_ACT_RELU;
    }
    return MODEL_ACT_RELU;
}

static int rename_layer(tset *t, const char *from, const char *to, tl_err *e)
{
    for (size_t i = 0; i < t->n; i++) {
        char l[128];
        layer_name(t->v[i].name, l, sizeof l);
        if (strcmp(l, from))
            continue;
        const char *param = t->v[i].name + strcspn(t->v[i].name, ":");
        while (param > t->v[i].name && param[-1] != '/')
            param--;
        size_t need = strlen(to) + strlen(param) + 2;
        char *nn = malloc(need);
        if (!nn)
            return tl_errf(e, TL_ENOMEM, "out of memory");
        snprintf(nn, need, "%s/%.*s", to, (int)strcspn(param, ":"), param);
        free(t->v[i].name);
        t->v[i].name = nn;
    }
    return 0;
}

static float config_number(const char *config, const char *key, float dflt)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = config ? strstr(config, pat) : NULL;
    return p ? (float)strtod(p + strlen(pat), NULL) : dflt;
}

/* The head as read from the source: ops in order, the Dense layers' names
 * (the last is the classifier) and the classifier's activation (sm: 1
 * softmax, 0 sigmoid, -1 unknown). */
enum { HEAD_MAX_DENSE = 16 };
typedef struct {
    model_head_op ops[MODEL_MAX_HEAD_OPS];
    int nops;
    char dn[HEAD_MAX_DENSE][128];
    int nd;
    int sm;
} head_plan;

/* With a tfjs topology: the layers after the backbone (GlobalAveragePooling2D,
 * Flatten, Dense, Dropout, with their activations and rates). */
static void head_from_topology(head_plan *h, const weights_tfjs_info *info)
{
    for (int i = info->backbone_out + 1; i < info->n_layers && h->nops < MODEL_MAX_HEAD_OPS; i++) {
        const weights_tfjs_layer *l = &info->layers[i];
        const char *k = l->class_name ? l->class_name : "";
        /* nsfwjs pools with AveragePooling2D over the whole 7x7 map: at the
         * source's input size that is GlobalAveragePooling2D */
        int pooled = h->nops > 0 && h->ops[h->nops - 1].kind == MODEL_HEAD_GAP;
        if (!strcmp(k, "GlobalAveragePooling2D") || !strcmp(k, "AveragePooling2D"))
            h->ops[h->nops++] = (model_head_op){MODEL_HEAD_GAP, 0, 0, 0};
        else if (!strcmp(k, "Flatten") && !pooled) /* after pooling: a no-op */
            h->ops[h->nops++] = (model_head_op){MODEL_HEAD_FLATTEN, 0, 0, 0};
        else if (!strcmp(k, "Dropout"))
            h->ops[h->nops++] = (model_head_op){MODEL_HEAD_DROPOUT, 0, 0,
                                                config_number(l->config, "rate", 0)};
        else if (!strcmp(k, "Dense") && h->nd < HEAD_MAX_DENSE) {
            snprintf(h->dn[h->nd++], sizeof h->dn[0], "%s", l->name);
            h->ops[h->nops++] = (model_head_op){MODEL_HEAD_DENSE,
                                                (int)config_number(l->config, "units", 0),
                                                dense_activation(info, l->name, &h->sm), 0};
        }
    }
}

/* Without a topology: GlobalAveragePooling then every 2-D kernel in the
 * tset's order as a ReLU Dense; "predictions", when there is one, is moved
 * last. The caller switches to Flatten when the first Dense reads the whole
 * feature map (VGG16's fc1). */
static void head_from_kernels(head_plan *h, const tset *t)
{
    h->ops[h->nops++] = (model_head_op){MODEL_HEAD_GAP, 0, 0, 0};
    for (size_t i = 0; i < t->n && h->nd < HEAD_MAX_DENSE; i++) {
        const tset_entry *v = &t->v[i];
        size_t nl = strcspn(v->name, ":");
        if (v->ndim != 2 || nl < 7 || strncmp(v->name + nl - 7, "/kernel", 7))
            continue;
        layer_name(v->name, h->dn[h->nd], sizeof h->dn[0]);
        h->ops[h->nops++] = (model_head_op){MODEL_HEAD_DENSE, (int)v->shape[1], MODEL_ACT_RELU, 0};
        h->nd++;
    }
    int nd = h->nd, nops = h->nops;
    for (int k = 0; k < nd; k++) /* "predictions" is the classifier, wherever it is */
        if (!strcmp(h->dn[k], "predictions") && k != nd - 1) {
            char tmp[128];
            memcpy(tmp, h->dn[k], sizeof tmp);
            memcpy(h->dn[k], h->dn[nd - 1], sizeof tmp);
            memcpy(h->dn[nd - 1], tmp, sizeof tmp);
            int a = nops - (nd - k), b = nops - 1, units = h->ops[a].units;
            h->ops[a].units = h->ops[b].units;
            h->ops[b].units = units;
        }
}

/* Fills spec's head from the source (topology when info has one, else the
 * kernels). The last Dense is the classifier, renamed "predictions"; the
 * others are renamed dense, dense_1... as net_head names them. */
static int head_from_source(tset *t, const weights_tfjs_info *info, model_spec *spec, tl_err *e)
{
    head_plan h = {.sm = -1};
    int rc = 0;
    if (info && info->backbone_out >= 0)
        head_from_topology(&h, info);
    else
        head_from_kernels(&h, t);
    while (h.nops > 0 && h.ops[h.nops - 1].kind != MODEL_HEAD_DENSE)
        h.nops--; /* a Dropout after the classifier does nothing at inference */
    if (!h.nd || !h.nops)
        return tl_errf(e, TL_ENOTFOUND, "--with-head: the source has no dense classifier");
    /* through temporary names: the source may use ours in another order */
    for (int k = 0; !rc && k < h.nd; k++) {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "@head%d", k);
        rc = rename_layer(t, h.dn[k], tmp, e);
    }
    for (int k = 0; !rc && k < h.nd; k++) {
        char from[32], to[32];
        snprintf(from, sizeof from, "@head%d", k);
        if (k == h.nd - 1)
            snprintf(to, sizeof to, "predictions");
        else if (k)
            snprintf(to, sizeof to, "dense_%d", k);
        else
            snprintf(to, sizeof to, "dense");
        rc = rename_layer(t, from, to, e);
    }
    const tset_entry *pred = find_suffix(t, "predictions/kernel");
    if (rc || !pred || pred->ndim != 2)
        return rc ? rc : tl_errf(e, TL_ENOTFOUND, "--with-head: the classifier has no 2-D kernel");
    for (int i = 0; !rc && i < h.nops - 1; i++)
        rc = model_spec_add_head(spec, h.ops[i], e);
    spec->num_classes = (int)pred->shape[1];
    if (info)
        dense_activation(info, info->backbone_out >= 0 ? h.dn[h.nd - 1] : "predictions", &h.sm);
    spec->loss = h.sm == 0 ? MODEL_LOSS_SIGMOID : MODEL_LOSS_SOFTMAX;
    return rc;
}

/* ---- the import, step by step ----------------------------------------------------- */

/* nsfwjs's models: a model.min.js, or a directory holding one. */
static int is_nsfwjs(const char *src)
{
    size_t n = strlen(src);
    if (n >= 12 && !strcmp(src + n - 12, "model.min.js"))
        return 1;
    char buf[4096];
    struct stat st;
    snprintf(buf, sizeof buf, "%s/model.min.js", src);
    return stat(buf, &st) == 0;
}

/* One import's state: what the source held and what is made of it. */
typedef struct {
    const char *src;
    const net_import_opts *o;
    net_import_format fmt;
    tset t;                 /* the source's tensors (Keras names), then the net's */
    model_spec spec;        /* the model written */
    model_spec from;        /* a .tlm source's own */
    weights_tfjs_info info;
    int have_info;
    weights_st *st;
    int torch_st;           /* torch-named safetensors: loaded straight from st */
    net n;
    int have_net;
    const char *guess;      /* the backbone the source names */
    const char *backbone;
    model_convention cv;
    int conv;               /* a model_convention from the options or the file, or -1 */
    float alpha;
    int size;
    char hashed[512];       /* the file whose sha256 is recorded */
} import_job;

/* Reads the source into j->t (or opens it, for torch names) and notes what
 * it says about backbone, alpha, size and convention. */
static int read_source(import_job *j, tl_err *e)
{
    const char *src = j->src;
    int rc;
    switch (j->fmt) {
    case NET_IMPORT_SRC_TLM:
        if ((rc = model_read(src, &j->from, &j->t, e)))
            return rc;
        j->guess = j->from.backbone;
        j->cv = j->from.convention;
        if (!j->alpha)
            j->alpha = j->from.alpha;
        if (!j->size)
            j->size = j->from.height;
        return 0;
    case NET_IMPORT_SRC_H5:
        if ((rc = weights_h5_read(src, &j->t, e)))
            return rc;
        j->guess = guess_keras_backbone(&j->t);
        return 0;
    case NET_IMPORT_SRC_TFJS:
        j->have_info = 1;
        if ((rc = weights_tfjs_read(src, &j->t, &j->info, e)))
            return rc;
        j->guess = j->info.backbone[0] ? j->info.backbone : guess_keras_backbone(&j->t);
        if (!j->alpha && j->info.alpha > 0)
            j->alpha = j->info.alpha;
        if (!j->size && j->info.input_h > 0)
            j->size = j->info.input_h;
        if (j->info.model_file[0])
            snprintf(j->hashed, sizeof j->hashed, "%s", j->info.model_file);
        return 0;
    case NET_IMPORT_SRC_SAFETENSORS: {
        if ((rc = weights_st_open(&j->st, src, e)))
            return rc;
        j->torch_st = is_torch_named(j->st);
        /* tlsweep's and our parity scripts' files say what they hold */
        const char *mc = weights_st_metadata(j->st, "convention");
        if (j->conv < 0 && mc && model_convention_parse(mc) >= 0)
            j->conv = model_convention_parse(mc);
        if (!j->size && weights_st_metadata(j->st, "size"))
            j->size = atoi(weights_st_metadata(j->st, "size"));
        if (j->torch_st) {
            float a = 0;
            j->cv = MODEL_TORCHVISION;
            j->guess = guess_torch_backbone(j->st, &a);
            if (!j->alpha)
                j->alpha = a;
        } else {
            if ((rc = st_to_tset(j->st, &j->t, e)))
                return rc;
            j->guess = guess_keras_backbone(&j->t);
        }
        if (weights_st_metadata(j->st, "backbone"))
            j->guess = weights_st_metadata(j->st, "backbone");
        return 0;
    }
    case NET_IMPORT_SRC_UNKNOWN:
        break;
    }
    return 0;
}

/* The model to build: backbone, alpha, size, convention, preprocessing and,
 * with_head, the head. A non-zero return with raw set is an error whose
 * message must not be prefixed with the source's name. */
static int decide_model(import_job *j, int *raw, tl_err *e)
{
    const char *src = j->src;
    if (j->conv >= 0)
        j->cv = (model_convention)j->conv;
    j->backbone = j->o->backbone ? j->o->backbone : j->guess;
    if (!j->backbone)
        return tl_errf(e, TL_ENOTFOUND, "%s: cannot tell the backbone from the tensor names; "
                                        "give --backbone", src);
    const char *bb = j->backbone;
    if (!strcmp(bb, "mobilenet_v2") && !j->alpha && !j->torch_st) {
        const tset_entry *p = find_suffix(&j->t, "block_16_project/kernel");
        j->alpha = p && p->ndim == 4 ? alpha_from_channels(p->shape[3]) : 0;
    }
    if (!j->size)
        j->size = !strcmp(bb, "inception_v3") ? 299 : 224;

    model_spec *s = &j->spec;
    int rc = model_spec_set_str(&s->backbone, bb, e);
    if (rc)
        return rc;
    s->alpha = !strcmp(bb, "mobilenet_v2") ? (j->alpha > 0 ? j->alpha : 1.0f) : 0;
    s->height = s->width = j->size;
    s->convention = j->cv;
    /* a .tlm knows its preprocessing, as long as it is still the same model */
    s->preproc = j->fmt == NET_IMPORT_SRC_TLM && !strcmp(bb, j->from.backbone) &&
                         j->cv == j->from.convention
                     ? j->from.preproc
                     : net_default_preproc(bb, j->cv);
    /* nsfwjs (the only source wrapped as model.min.js) trained its Keras
     * MobileNetV2/InceptionV3 on x/255, not Keras's x/127.5 - 1 */
    if (j->fmt == NET_IMPORT_SRC_TFJS && is_nsfwjs(src))
        s->preproc = MODEL_PREPROC_UNIT;
    if (j->o->preproc >= 0)
        s->preproc = (model_preproc)j->o->preproc;
    if (!j->o->with_head)
        return 0;
    if (j->fmt == NET_IMPORT_SRC_TLM && j->from.num_classes > 0) {
        s->num_classes = j->from.num_classes;
        s->loss = j->from.loss;
        for (int i = 0; i < j->from.n_head && !rc; i++)
            rc = model_spec_add_head(s, j->from.head[i], e);
        for (int i = 0; i < j->from.n_class_names && !rc; i++)
            rc = model_spec_add_class(s, j->from.class_names[i], e);
        return rc;
    }
    if (j->torch_st) {
        *raw = 1;
        return tl_errf(e, TL_EINVAL, "--with-head is not supported for torch-named "
                                     "safetensors yet; import the backbone alone");
    }
    return head_from_source(&j->t, j->have_info ? &j->info : NULL, s, e);
}

/* The net for the model; VGG16's fc1 reads the flattened feature map, not
 * pooled features, which only the built net's feature shape tells. */
static int build_net(import_job *j, tl_err *e)
{
    model_spec *s = &j->spec;
    int rc = net_build_from_spec(&j->n, s, 1, e);
    if (rc)
        return rc;
    j->have_net = 1;
    if (j->o->with_head && s->n_head > 1 && s->head[0].kind == MODEL_HEAD_GAP &&
        s->head[1].kind == MODEL_HEAD_DENSE) {
        const net_layer *f = &j->n.layers[j->n.features];
        const tset_entry *d = find_suffix(&j->t, "dense/kernel");
        if (d && d->shape[0] != f->c && d->shape[0] == (int64_t)f->h * f->w * f->c) {
            s->head[0].kind = MODEL_HEAD_FLATTEN;
            net_free(&j->n);
            j->have_net = 0;
            if ((rc = net_build_from_spec(&j->n, s, 1, e)))
                return rc;
            j->have_net = 1;
        }
    }
    return 0;
}

/* Torch names through net_load_safetensors, which reports no counts: every
 * weight is NaN first, and what stays NaN was not in the file. */
static int load_torch(import_job *j, net_import_result *r, tl_err *e)
{
    net *n = &j->n;
    for (size_t i = 0; i < n->n_weights; i++)
        n->weights[i] = __builtin_nanf("");
    int rc = net_load_safetensors(n, j->src, 0, e);
    if (rc)
        return rc;
    net_load_summary *sum = &r->load;
    for (int i = 0; i < n->n_params; i++) {
        const net_param *p = &n->params[i];
        if (n->weights[p->off] != n->weights[p->off]) {
            if (!sum->missing++)
                snprintf(sum->first_missing, sizeof sum->first_missing, "%s", p->name);
        } else {
            sum->matched++;
        }
    }
    r->stage = NET_IMPORT_LOADED;
    if (sum->missing)
        return tl_errf(e, TL_ENOTFOUND, "%s: no tensor for parameter %s (%d missing)", j->src,
                       sum->first_missing, sum->missing);
    net_weights_changed(n);
    return 0;
}

static int load_weights(import_job *j, net_import_result *r, tl_err *e)
{
    if (j->torch_st)
        return load_torch(j, r, e);
    int rc = net_load_tset(&j->n, &j->t, 0, j->o->with_head, &r->load, e);
    if (rc)
        return rc;
    r->stage = NET_IMPORT_LOADED;
    if (r->load.missing)
        return tl_errf(e, TL_ENOTFOUND, "%s: no tensor for parameter %s (%d missing)", j->src,
                       r->load.first_missing, r->load.missing);
    return 0;
}

/* The net's parameters and the model, with where they came from. */
static int write_model(import_job *j, const char *out, net_import_result *r, tl_err *e)
{
    unsigned char digest[SHA256_DIGEST_SIZE];
    model_spec *s = &j->spec;
    int rc = sha256_file(j->hashed, digest, e);
    if (rc)
        return rc;
    sha256_hex(digest, r->sha256);
    if ((rc = model_spec_set_str(&s->source_path, j->src, e)) ||
        (rc = model_spec_set_str(&s->source_sha256, r->sha256, e)) ||
        (rc = model_spec_set_str(&s->importer, format_names[j->fmt], e)) ||
        (rc = model_spec_set_str(&s->tlsweep_version, TLSWEEP_VERSION, e)))
        return rc;
    tset_free(&j->t);
    tset_init(&j->t);
    if ((rc = net_to_tset(&j->n, &j->t, j->o->with_head, e)) ||
        (rc = model_write(out, s, &j->t, e)))
        return rc;
    struct stat os;
    r->n_tensors = j->t.n;
    r->out_bytes = stat(out, &os) == 0 ? (long long)os.st_size : 0;
    r->stage = NET_IMPORT_WRITTEN;
    return 0;
}

/* What was decided, for the caller to show. */
static void note_model(const import_job *j, net_import_result *r)
{
    if (j->have_info)
        snprintf(r->summary, sizeof r->summary, "%s", j->info.summary);
    snprintf(r->backbone, sizeof r->backbone, "%s", j->backbone);
    r->alpha = j->spec.alpha;
    r->size = j->size;
    r->convention = j->cv;
    r->preproc = j->spec.preproc;
    r->num_classes = j->spec.num_classes;
    r->torch_names = j->torch_st;
    r->stage = NET_IMPORT_BUILT;
}

int net_import(const char *src, const char *out, const net_import_opts *o, net_import_result *r,
               tl_err *e)
{
    static const net_import_opts defaults = NET_IMPORT_OPTS_DEFAULT;
    tl_err own = {0};
    if (!e)
        e = &own;
    if (!o)
        o = &defaults;
    memset(r, 0, sizeof *r);
    r->format = net_import_detect(src);
    if (r->format == NET_IMPORT_SRC_UNKNOWN)
        return tl_errf(e, TL_EFORMAT, "%s: %s", src,
                       access(src, R_OK) ? strerror(errno)
                                         : "cannot tell the format (not tfjs, .h5, "
                                           "safetensors or .tlm)");
    import_job j;
    memset(&j, 0, sizeof j);
    j.src = src;
    j.o = o;
    j.fmt = r->format;
    j.cv = MODEL_KERAS;
    j.conv = o->convention;
    j.alpha = o->alpha;
    j.size = o->size;
    snprintf(j.hashed, sizeof j.hashed, "%s", src);
    tset_init(&j.t);
    model_spec_init(&j.spec);
    model_spec_init(&j.from);

    int raw = 0, rc = read_source(&j, e);
    if (!rc)
        rc = decide_model(&j, &raw, e);
    if (!rc && !(rc = build_net(&j, e))) {
        note_model(&j, r);
        rc = load_weights(&j, r, e);
    }
    if (!rc)
        rc = write_model(&j, out, r, e);
    /* every message names the source, as the first line of a report should */
    if (rc && !raw && !strstr(e->msg, src)) {
        char m[sizeof e->msg];
        memcpy(m, e->msg, sizeof m);
        tl_errf(e, rc, "%s: %s", src, m);
    }
    if (j.have_net)
        net_free(&j.n);
    if (j.have_info)
        weights_tfjs_info_free(&j.info);
    weights_st_close(j.st);
    tset_free(&j.t);
    model_spec_free(&j.spec);
    model_spec_free(&j.from);
    return rc;
}
