/* `tlsweep import SRC -o OUT.tlm`: any weights file the engine can read
 * (tfjs layers model, Keras .h5, safetensors with Keras or torch names, a
 * .tlm) into a native model file, checked against the backbone it is for.
 *
 * The source format is told by content, not by name: "TLSWEEPM" (.tlm),
 * the HDF5 signature (.h5), an 8-byte header length then '{' (safetensors),
 * else a directory, a model.json or nsfwjs's model.min.js (tfjs). The
 * backbone, width multiplier and convention default to what the tensor
 * names (or the tfjs topology) say; flags override. Without --with-head the
 * classifier and any dense layers after the backbone are dropped and the
 * file holds a feature extractor (num_classes 0). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/weights/model_file.h"
#include "common/weights/safetensors.h"
#include "common/base/sha256.h"
#include "common/weights/tensors.h"
#include "common/weights/weights_h5.h"
#include "common/weights/weights_tfjs.h"
#include "worker/net/backbones.h"
#include "worker/net/net_io.h"
#include "worker/net/net_load.h"

#ifndef TLSWEEP_VERSION
#define TLSWEEP_VERSION "unknown"
#endif

typedef enum { SRC_UNKNOWN, SRC_TLM, SRC_H5, SRC_SAFETENSORS, SRC_TFJS } src_format;

static const char *const format_names[] = {"?", "tlm", "h5", "safetensors", "tfjs"};

static src_format detect(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return SRC_UNKNOWN;
    if (S_ISDIR(st.st_mode))
        return SRC_TFJS;
    unsigned char b[16] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return SRC_UNKNOWN;
    size_t got = fread(b, 1, sizeof b, f);
    fclose(f);
    if (got >= 8 && !memcmp(b, MODEL_MAGIC, 8))
        return SRC_TLM;
    if (got >= 8 && !memcmp(b, "\x89HDF\r\n\x1a\n", 8))
        return SRC_H5;
    if (got >= 9 && b[8] == '{') {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = n << 8 | b[i];
        if (n >= 2 && n + 8 <= (uint64_t)st.st_size)
            return SRC_SAFETENSORS;
    }
    size_t len = strlen(path);
    if ((len >= 5 && !strcmp(path + len - 5, ".json")) || (len >= 3 && !strcmp(path + len - 3, ".js")))
        return SRC_TFJS;
    size_t i = 0;
    while (i < got && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t'))
        i++;
    return i < got && b[i] == '{' ? SRC_TFJS : SRC_UNKNOWN;
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

/* Fills spec's head from the source. With a tfjs topology: the layers after
 * the backbone (GlobalAveragePooling2D, Flatten, Dense, Dropout, with their
 * activations and rates). Without one: GlobalAveragePooling then every 2-D
 * kernel in the tset's order as a ReLU Dense; the caller switches to
 * Flatten when the first Dense reads the whole feature map (VGG16's fc1).
 * The last Dense ("predictions" when there is one) is the classifier; the
 * others are renamed dense, dense_1... as net_head names them. */
static int infer_head(tset *t, const weights_tfjs_info *info, model_spec *spec, tl_err *e)
{
    enum { MAXD = 16 };
    char dn[MAXD][128];
    int nd = 0, sm = -1, rc = 0;
    model_head_op ops[MODEL_MAX_HEAD_OPS];
    int nops = 0;
    if (info && info->backbone_out >= 0) {
        for (int i = info->backbone_out + 1; i < info->n_layers && nops < MODEL_MAX_HEAD_OPS; i++) {
            const weights_tfjs_layer *l = &info->layers[i];
            const char *k = l->class_name ? l->class_name : "";
            /* nsfwjs pools with AveragePooling2D over the whole 7x7 map: at the
             * source's input size that is GlobalAveragePooling2D */
            int pooled = nops > 0 && ops[nops - 1].kind == MODEL_HEAD_GAP;
            if (!strcmp(k, "GlobalAveragePooling2D") || !strcmp(k, "AveragePooling2D"))
                ops[nops++] = (model_head_op){MODEL_HEAD_GAP, 0, 0, 0};
            else if (!strcmp(k, "Flatten") && !pooled) /* after pooling: a no-op */
                ops[nops++] = (model_head_op){MODEL_HEAD_FLATTEN, 0, 0, 0};
            else if (!strcmp(k, "Dropout"))
                ops[nops++] = (model_head_op){MODEL_HEAD_DROPOUT, 0, 0,
                                              config_number(l->config, "rate", 0)};
            else if (!strcmp(k, "Dense") && nd < MAXD) {
                snprintf(dn[nd++], sizeof dn[0], "%s", l->name);
                ops[nops++] = (model_head_op){MODEL_HEAD_DENSE,
                                              (int)config_number(l->config, "units", 0),
                                              dense_activation(info, l->name, &sm), 0};
            }
        }
    } else {
        ops[nops++] = (model_head_op){MODEL_HEAD_GAP, 0, 0, 0};
        for (size_t i = 0; i < t->n && nd < MAXD; i++) {
            const tset_entry *v = &t->v[i];
            size_t nl = strcspn(v->name, ":");
            if (v->ndim != 2 || nl < 7 || strncmp(v->name + nl - 7, "/kernel", 7))
                continue;
            layer_name(v->name, dn[nd], sizeof dn[0]);
            ops[nops++] = (model_head_op){MODEL_HEAD_DENSE, (int)v->shape[1], MODEL_ACT_RELU, 0};
            nd++;
        }
        for (int k = 0; k < nd; k++) /* "predictions" is the classifier, wherever it is */
            if (!strcmp(dn[k], "predictions") && k != nd - 1) {
                char tmp[128];
                memcpy(tmp, dn[k], sizeof tmp);
                memcpy(dn[k], dn[nd - 1], sizeof tmp);
                memcpy(dn[nd - 1], tmp, sizeof tmp);
                int a = nops - (nd - k), b = nops - 1, units = ops[a].units;
                ops[a].units = ops[b].units;
                ops[b].units = units;
            }
    }
    while (nops > 0 && ops[nops - 1].kind != MODEL_HEAD_DENSE)
        nops--; /* a Dropout after the classifier does nothing at inference */
    if (!nd || !nops)
        return tl_errf(e, TL_ENOTFOUND, "--with-head: the source has no dense classifier");
    /* through temporary names: the source may use ours in another order */
    for (int k = 0; !rc && k < nd; k++) {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "@head%d", k);
        rc = rename_layer(t, dn[k], tmp, e);
    }
    for (int k = 0; !rc && k < nd; k++) {
        char from[32], to[32];
        snprintf(from, sizeof from, "@head%d", k);
        if (k == nd - 1)
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
    for (int i = 0; !rc && i < nops - 1; i++)
        rc = model_spec_add_head(spec, ops[i], e);
    spec->num_classes = (int)pred->shape[1];
    if (info)
        dense_activation(info, info->backbone_out >= 0 ? dn[nd - 1] : "predictions", &sm);
    spec->loss = sm == 0 ? MODEL_LOSS_SIGMOID : MODEL_LOSS_SOFTMAX;
    return rc;
}

/* ---- the command ---------------------------------------------------------------- */

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

static void usage(FILE *f)
{
    fprintf(f, "usage: tlsweep import SRC -o OUT.tlm [--backbone B] [--alpha A] [--size S]\n"
               "                     [--convention keras|torchvision] [--with-head]\n"
               "                     [--preprocessing tf|caffe|torch|unit]\n"
               "SRC: a tfjs model (directory, model.json, nsfwjs model.min.js), a Keras .h5,\n"
               "safetensors (Keras or torch names) or a .tlm.\n");
}

int cli_import(int argc, char **argv)
{
    const char *out = NULL, *backbone = NULL, *conv_flag = NULL, *pre_flag = NULL;
    float alpha = 0;
    int size = 0, with_head = 0;
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'},     {"backbone", required_argument, 0, 'b'},
        {"alpha", required_argument, 0, 'a'},      {"size", required_argument, 0, 's'},
        {"convention", required_argument, 0, 'c'}, {"with-head", no_argument, 0, 'H'},
        {"preprocessing", required_argument, 0, 'p'},
        {"help", no_argument, 0, 'h'},             {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:b:a:s:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'b': backbone = optarg; break;
        case 'a': alpha = (float)atof(optarg); break;
        case 's': size = atoi(optarg); break;
        case 'c': conv_flag = optarg; break;
        case 'H': with_head = 1; break;
        case 'p': pre_flag = optarg; break;
        default: usage(c == 'h' ? stdout : stderr); return c == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1 || !out) {
        usage(stderr);
        return 2;
    }
    if (pre_flag && model_preproc_parse(pre_flag) < 0) {
        fprintf(stderr, "tlsweep import: --preprocessing must be tf, caffe, torch or unit\n");
        return 2;
    }
    if (conv_flag && model_convention_parse(conv_flag) < 0) {
        fprintf(stderr, "tlsweep import: --convention must be keras or torchvision\n");
        return 2;
    }
    const char *src = argv[optind];
    src_format fmt = detect(src);
    if (fmt == SRC_UNKNOWN) {
        fprintf(stderr, "tlsweep import: %s: %s\n", src,
                access(src, R_OK) ? strerror(errno)
                                  : "cannot tell the format (not tfjs, .h5, safetensors or .tlm)");
        return 1;
    }

    tl_err e = {0};
    tset t;
    model_spec spec, from;
    weights_tfjs_info info;
    weights_st *st = NULL;
    net n;
    int have_info = 0, have_net = 0, torch_st = 0, rc = 1;
    tset_init(&t);
    model_spec_init(&spec);
    model_spec_init(&from);
    memset(&info, 0, sizeof info);
    const char *guess = NULL;
    model_convention cv = MODEL_KERAS;
    char hashed[512];
    snprintf(hashed, sizeof hashed, "%s", src);

    switch (fmt) {
    case SRC_TLM:
        if (model_read(src, &from, &t, &e))
            goto fail;
        guess = from.backbone;
        cv = from.convention;
        if (!alpha)
            alpha = from.alpha;
        if (!size)
            size = from.height;
        break;
    case SRC_H5:
        if (weights_h5_read(src, &t, &e))
            goto fail;
        guess = guess_keras_backbone(&t);
        break;
    case SRC_TFJS:
        have_info = 1;
        if (weights_tfjs_read(src, &t, &info, &e))
            goto fail;
        guess = info.backbone[0] ? info.backbone : guess_keras_backbone(&t);
        if (!alpha && info.alpha > 0)
            alpha = info.alpha;
        if (!size && info.input_h > 0)
            size = info.input_h;
        if (info.model_file[0])
            snprintf(hashed, sizeof hashed, "%s", info.model_file);
        break;
    case SRC_SAFETENSORS:
        if (weights_st_open(&st, src, &e))
            goto fail;
        torch_st = is_torch_named(st);
        /* tlsweep's and our parity scripts' files say what they hold */
        if (!conv_flag && weights_st_metadata(st, "convention") &&
            model_convention_parse(weights_st_metadata(st, "convention")) >= 0)
            conv_flag = weights_st_metadata(st, "convention");
        if (!size && weights_st_metadata(st, "size"))
            size = atoi(weights_st_metadata(st, "size"));
        if (torch_st) {
            float a = 0;
            cv = MODEL_TORCHVISION;
            guess = guess_torch_backbone(st, &a);
            if (!alpha)
                alpha = a;
        } else {
            if (st_to_tset(st, &t, &e))
                goto fail;
            guess = guess_keras_backbone(&t);
        }
        if (weights_st_metadata(st, "backbone"))
            guess = weights_st_metadata(st, "backbone");
        break;
    case SRC_UNKNOWN:
        break;
    }
    if (conv_flag)
        cv = (model_convention)model_convention_parse(conv_flag);
    if (!backbone)
        backbone = guess;
    if (!backbone) {
        fprintf(stderr, "tlsweep import: %s: cannot tell the backbone from the tensor names; "
                        "give --backbone\n", src);
        goto out;
    }
    if (!strcmp(backbone, "mobilenet_v2") && !alpha && !torch_st) {
        const tset_entry *p = find_suffix(&t, "block_16_project/kernel");
        alpha = p && p->ndim == 4 ? alpha_from_channels(p->shape[3]) : 0;
    }
    if (!size)
        size = !strcmp(backbone, "inception_v3") ? 299 : 224;

    if (model_spec_set_str(&spec.backbone, backbone, &e))
        goto fail;
    spec.alpha = !strcmp(backbone, "mobilenet_v2") ? (alpha > 0 ? alpha : 1.0f) : 0;
    spec.height = spec.width = size;
    spec.convention = cv;
    /* a .tlm knows its preprocessing, as long as it is still the same model */
    spec.preproc = fmt == SRC_TLM && !strcmp(backbone, from.backbone) && cv == from.convention
                       ? from.preproc
                       : net_default_preproc(backbone, cv);
    /* nsfwjs (the only source wrapped as model.min.js) trained its Keras
     * MobileNetV2/InceptionV3 on x/255, not Keras's x/127.5 - 1 */
    if (fmt == SRC_TFJS && is_nsfwjs(src))
        spec.preproc = MODEL_PREPROC_UNIT;
    if (pre_flag)
        spec.preproc = (model_preproc)model_preproc_parse(pre_flag);
    if (with_head) {
        if (fmt == SRC_TLM && from.num_classes > 0) {
            spec.num_classes = from.num_classes;
            spec.loss = from.loss;
            for (int i = 0; i < from.n_head && !e.code; i++)
                model_spec_add_head(&spec, from.head[i], &e);
            for (int i = 0; i < from.n_class_names && !e.code; i++)
                model_spec_add_class(&spec, from.class_names[i], &e);
            if (e.code)
                goto fail;
        } else if (torch_st) {
            fprintf(stderr, "tlsweep import: --with-head is not supported for torch-named "
                            "safetensors yet; import the backbone alone\n");
            goto out;
        } else if (infer_head(&t, have_info ? &info : NULL, &spec, &e)) {
            goto fail;
        }
    }

    if (net_build_from_spec(&n, &spec, 1, &e))
        goto fail;
    have_net = 1;
    /* VGG16's fc1 reads the flattened feature map, not pooled features */
    if (with_head && spec.n_head > 1 && spec.head[0].kind == MODEL_HEAD_GAP &&
        spec.head[1].kind == MODEL_HEAD_DENSE) {
        const net_layer *f = &n.layers[n.features];
        const tset_entry *d = find_suffix(&t, "dense/kernel");
        if (d && d->shape[0] != f->c && d->shape[0] == (int64_t)f->h * f->w * f->c) {
            spec.head[0].kind = MODEL_HEAD_FLATTEN;
            net_free(&n);
            have_net = 0;
            if (net_build_from_spec(&n, &spec, 1, &e))
                goto fail;
            have_net = 1;
        }
    }

    printf("import %s: %s", src, format_names[fmt]);
    if (have_info && info.summary[0])
        printf(" (%s)", info.summary);
    printf("\nmodel: %s", backbone);
    if (spec.alpha > 0)
        printf(" alpha %.2f", (double)spec.alpha);
    printf(" %dx%d, %s convention, preprocessing %s, %s\n", size, size,
           model_convention_name(cv), model_preproc_name(spec.preproc),
           spec.num_classes ? "with its classifier" : "backbone only");

    if (torch_st) {
        /* net_load_safetensors reports no counts: mark every weight NaN
         * first, and what stays NaN was not in the file */
        for (size_t i = 0; i < n.n_weights; i++)
            n.weights[i] = __builtin_nanf("");
        if (net_load_safetensors(&n, src, 0, &e))
            goto fail;
        int missing = 0, matched = 0;
        const char *first = NULL;
        for (int i = 0; i < n.n_params; i++) {
            const net_param *p = &n.params[i];
            if (n.weights[p->off] != n.weights[p->off]) {
                if (!missing++)
                    first = p->name;
            } else {
                matched++;
            }
        }
        printf("weights: %d parameters loaded (torch names), %d missing\n", matched, missing);
        if (missing) {
            fprintf(stderr, "tlsweep import: %s: no tensor for parameter %s (%d missing)\n", src,
                    first, missing);
            goto out;
        }
        net_weights_changed(&n);
    } else {
        net_load_summary sum;
        char line[256];
        if (net_load_tset(&n, &t, 0, with_head, &sum, &e))
            goto fail;
        printf("weights: %s\n", net_load_summary_str(&sum, line, sizeof line));
        if (sum.unused)
            fprintf(stderr, "warning: %d tensors fit no parameter, first '%s'\n", sum.unused,
                    sum.first_unused);
        if (sum.missing) {
            fprintf(stderr, "tlsweep import: %s: no tensor for parameter %s (%d missing)\n", src,
                    sum.first_missing, sum.missing);
            goto out;
        }
    }

    unsigned char digest[SHA256_DIGEST_SIZE];
    char hex[65];
    if (sha256_file(hashed, digest, &e))
        goto fail;
    if (model_spec_set_str(&spec.source_path, src, &e) ||
        model_spec_set_str(&spec.source_sha256, sha256_hex(digest, hex), &e) ||
        model_spec_set_str(&spec.importer, format_names[fmt], &e) ||
        model_spec_set_str(&spec.tlsweep_version, TLSWEEP_VERSION, &e))
        goto fail;
    tset_free(&t);
    if (net_to_tset(&n, &t, with_head, &e) || model_write(out, &spec, &t, &e))
        goto fail;
    struct stat os;
    printf("wrote %s: %zu tensors, %.1f MiB (source sha256 %s)\n", out, t.n,
           stat(out, &os) == 0 ? os.st_size / 1048576.0 : 0.0, hex);
    rc = 0;
    goto out;

fail:
    fprintf(stderr, "tlsweep import: %s%s%s\n", strstr(e.msg, src) ? "" : src,
            strstr(e.msg, src) ? "" : ": ", e.msg);
    rc = 1;
out:
    if (have_net)
        net_free(&n);
    if (have_info)
        weights_tfjs_info_free(&info);
    weights_st_close(st);
    tset_free(&t);
    model_spec_free(&spec);
    model_spec_free(&from);
    return rc;
}
