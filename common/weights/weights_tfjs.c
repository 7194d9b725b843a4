/* TensorFlow.js layers models (see weights_tfjs.h): the model JSON, its
 * manifest, shards and dequantisation, topology hints. The JS module
 * wrappers (nsfwjs's model.min.js and base64 shards) are weights_tfjs_js.c's. */
#include "common/weights/weights_tfjs.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/base/fileio.h"
#include "common/base/strset.h"
#include "common/weights/weights_tfjs_js.h"

/* ---- small helpers ------------------------------------------------------------ */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* Whole file, NUL-terminated (tl_read_file); `what` joins the message.
 * A missing file is TL_ENOTFOUND. */
static int read_whole(const char *path, size_t max, const char *what, char **out, size_t *len,
                      tl_err *e)
{
    unsigned char *b;
    int rc = tl_read_file(path, max, &b, len, e);
    if (rc && e) {
        char m[sizeof e->msg];
        memcpy(m, e->msg, sizeof m);
        tl_errf(e, rc, "%.*s (the %s)", (int)(sizeof m - 40), m, what);
    }
    *out = (char *)b;
    return rc;
}

/* ---- shards ------------------------------------------------------------------- */

typedef struct {
    unsigned char *b;
    size_t n, cap;
} bytes;

/* Leaves d->b allocated even when nothing is added, so that d->b + offset is
 * never arithmetic on a null pointer (an empty shard, zero-byte tensors). */
static int bytes_reserve(bytes *d, size_t more)
{
    if (d->b && d->n + more <= d->cap)
        return 0;
    size_t cap = d->cap ? d->cap : 1 << 20;
    while (cap < d->n + more)
        cap *= 2;
    unsigned char *b = realloc(d->b, cap);
    if (!b)
        return -1;
    d->b = b;
    d->cap = cap;
    return 0;
}

/* Appends one shard: raw bytes, or base64 inside a JS module (*.js). */
static int append_shard(bytes *d, const char *path, tl_err *e)
{
    char *buf;
    size_t len;
    int rc = read_whole(path, WEIGHTS_TFJS_MAX_SHARD, "weight shard", &buf, &len, e);
    if (rc == TL_ENOTFOUND)
        return tl_errf(e, rc, "%s: missing weight shard (%s)", path, strerror(ENOENT));
    if (rc)
        return rc;
    if (!ends_with(path, ".js")) {
        if (bytes_reserve(d, len)) {
            free(buf);
            return tl_errf(e, TL_ENOMEM, "%s: out of memory", path);
        }
        memcpy(d->b + d->n, buf, len);
        d->n += len;
        free(buf);
        return 0;
    }
    size_t at, n64;
    if ((rc = weights_tfjs__js_shard_string(path, buf, len, &at, &n64, e))) {
        free(buf);
        return rc;
    }
    const char *s = buf + at;
    size_t cap = n64 / 4 * 3 + 3;
    if (bytes_reserve(d, cap)) {
        free(buf);
        return tl_errf(e, TL_ENOMEM, "%s: out of memory", path);
    }
    long got = weights_tfjs_base64_decode(s, n64, d->b + d->n, cap);
    if (got < 0) {
        size_t bad = weights_tfjs__base64_valid_prefix(s, n64);
        free(buf);
        return tl_errf(e, TL_EFORMAT, "%s: bad base64 weight data (near character %zu of %zu)",
                       path, bad, n64);
    }
    d->n += (size_t)got;
    free(buf);
    return 0;
}

/* ---- decoding the manifest ------------------------------------------------------ */

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, ex = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (ex == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (ex == 0) {
        if (!man) {
            bits = sign;
        } else {                       /* subnormal: normalise */
            int sh = 0;
            while (!(man & 0x400)) {
                man <<= 1;
                sh++;
            }
            man &= 0x3ff;
            bits = sign | (uint32_t)(127 - 15 + 1 - sh) << 23 | (man << 13);
        }
    } else {
        bits = sign | (ex + 127 - 15) << 23 | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

typedef enum { Q_NONE, Q_UINT8, Q_UINT16, Q_FLOAT16 } qkind;

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[TSET_MAX_DIMS];
    size_t n, nbytes, off;
    qkind q;
    double scale, min;
} spec;

static int parse_spec(json_t *w, size_t idx, const char *file, spec *s, tl_err *e)
{
    memset(s, 0, sizeof *s);
    json_t *jn = json_object_get(w, "name");
    if (!json_is_object(w) || !json_is_string(jn))
        return tl_errf(e, TL_EFORMAT, "%s: weightsManifest entry %zu has no \"name\" string", file,
                       idx);
    s->name = json_string_value(jn);
    json_t *sh = json_object_get(w, "shape");
    if (!json_is_array(sh))
        return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': \"shape\" is not an array", file, s->name);
    if (json_array_size(sh) > TSET_MAX_DIMS)
        return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': %zu dimensions (at most %d)", file,
                       s->name, json_array_size(sh), TSET_MAX_DIMS);
    s->ndim = (int)json_array_size(sh);
    s->n = 1;
    for (int i = 0; i < s->ndim; i++) {
        json_t *d = json_array_get(sh, (size_t)i);
        if (!json_is_integer(d))
            return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': dimension %d is not an integer", file,
                           s->name, i);
        json_int_t v = json_integer_value(d);
        if (v < 0)
            return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': negative dimension %lld in its shape",
                           file, s->name, (long long)v);
        if (v > 0 && s->n > (SIZE_MAX / 8) / (uint64_t)v)
            return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': shape too large", file, s->name);
        s->shape[i] = v;
        s->n *= (size_t)v;
    }
    json_t *dt = json_object_get(w, "dtype");
    const char *dtype = json_is_string(dt) ? json_string_value(dt) : NULL;
    if (!dtype)
        return tl_errf(e, TL_EFORMAT, "%s: tensor '%s' has no \"dtype\"", file, s->name);
    if (strcmp(dtype, "float32"))
        return tl_errf(e, TL_EFORMAT,
                       "%s: tensor '%s': unknown or unsupported dtype '%s' (expected float32)", file,
                       s->name, dtype);
    json_t *q = json_object_get(w, "quantization");
    if (!q || json_is_null(q)) {
        s->q = Q_NONE;
        s->nbytes = s->n * 4;
        return 0;
    }
    json_t *qd = json_object_get(q, "dtype");
    const char *qdtype = json_is_string(qd) ? json_string_value(qd) : NULL;
    if (!json_is_object(q) || !qdtype)
        return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': \"quantization\" without a dtype", file,
                       s->name);
    json_t *od = json_object_get(q, "original_dtype");
    if (od && !(json_is_string(od) && !strcmp(json_string_value(od), "float32")))
        return tl_errf(e, TL_EFORMAT,
                       "%s: tensor '%s': unsupported quantization original_dtype (expected float32)",
                       file, s->name);
    if (!strcmp(qdtype, "float16")) {
        s->q = Q_FLOAT16;
        s->nbytes = s->n * 2;
        return 0;
    }
    if (!strcmp(qdtype, "uint8"))
        s->q = Q_UINT8;
    else if (!strcmp(qdtype, "uint16"))
        s->q = Q_UINT16;
    else
        return tl_errf(e, TL_EFORMAT,
                       "%s: tensor '%s': unknown quantization dtype '%s' (expected uint8, uint16 or "
                       "float16)",
                       file, s->name, qdtype);
    json_t *sc = json_object_get(q, "scale"), *mn = json_object_get(q, "min");
    if (!json_is_number(sc) || !json_is_number(mn))
        return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': %s quantization needs numbers scale and min",
                       file, s->name, qdtype);
    s->scale = json_number_value(sc);
    s->min = json_number_value(mn);
    if (!isfinite(s->scale) || !isfinite(s->min))
        return tl_errf(e, TL_EFORMAT, "%s: tensor '%s': non-finite quantization scale or min", file,
                       s->name);
    s->nbytes = s->n * (s->q == Q_UINT8 ? 1 : 2);
    return 0;
}

static int decode(const spec *s, const unsigned char *b, float *dst, const char *file, tl_err *e)
{
    for (size_t i = 0; i < s->n; i++) {
        float v;
        switch (s->q) {
        case Q_NONE: {
            const unsigned char *p = b + 4 * i;
            uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                         (uint32_t)p[3] << 24;
            memcpy(&v, &u, 4);
            break;
        }
        case Q_FLOAT16:
            v = half_to_float((uint16_t)(b[2 * i] | b[2 * i + 1] << 8));
            break;
        case Q_UINT8:
            v = (float)((double)b[i] * s->scale + s->min);
            break;
        default:
            v = (float)((double)(b[2 * i] | b[2 * i + 1] << 8) * s->scale + s->min);
            break;
        }
        if (!isfinite(v))
            return tl_errf(e, TL_EFORMAT, "%s: tensor '%s' has a non-finite value (%g) at index %zu",
                           file, s->name, (double)v, i);
        dst[i] = v;
    }
    return 0;
}

/* A shard path from the manifest must stay in the model's folder. */
static int shard_path(char *dst, size_t cap, const char *dir, const char *p, int js,
                      const char *file, tl_err *e)
{
    if (!*p || p[0] == '/' || strstr(p, "..") || strchr(p, '\\'))
        return tl_errf(e, TL_EFORMAT, "%s: shard path '%s' leaves the model's folder", file, p);
    const char *ext = js && !ends_with(p, ".js") ? ".min.js" : "";
    if ((size_t)snprintf(dst, cap, "%s/%s%s", dir, p, ext) >= cap)
        return tl_errf(e, TL_EINVAL, "%s: shard path '%s' too long", file, p);
    return 0;
}

/* names: every tensor name in out and in the groups before this one; this
 * group's are added. */
static int read_group(json_t *g, size_t gi, const char *file, const char *dir, int js, tset *out,
                      tl_strset *names, weights_tfjs_info *info, tl_err *e)
{
    json_t *paths = json_object_get(g, "paths"), *ws = json_object_get(g, "weights");
    if (!json_is_object(g) || !json_is_array(paths) || !json_is_array(ws))
        return tl_errf(e, TL_EFORMAT,
                       "%s: weightsManifest group %zu needs \"paths\" and \"weights\" arrays", file,
                       gi + 1);
    size_t nw = json_array_size(ws), np = json_array_size(paths);
    spec *specs = calloc(nw ? nw : 1, sizeof *specs);
    if (!specs)
        return tl_errf(e, TL_ENOMEM, "%s: out of memory", file);
    bytes data = {0};
    char last[1024] = "";
    int rc = 0;
    size_t need = 0;
    for (size_t i = 0; i < nw && !rc; i++) {
        rc = parse_spec(json_array_get(ws, i), i, file, &specs[i], e);
        if (rc)
            break;
        specs[i].off = need;
        need += specs[i].nbytes;
        int added = tl_strset_add(names, specs[i].name);
        if (added < 0)
            rc = tl_errf(e, TL_ENOMEM, "%s: out of memory", file);
        else if (!added)
            rc = tl_errf(e, TL_EFORMAT, "%s: tensor '%s' appears twice in the manifest", file,
                         specs[i].name);
    }
    if (!rc && !np)
        rc = tl_errf(e, TL_EFORMAT, "%s: weightsManifest group %zu lists no shard paths", file,
                     gi + 1);
    for (size_t i = 0; i < np && !rc; i++) {
        json_t *p = json_array_get(paths, i);
        if (!json_is_string(p)) {
            rc = tl_errf(e, TL_EFORMAT, "%s: group %zu: shard path %zu is not a string", file,
                         gi + 1, i);
            break;
        }
        rc = shard_path(last, sizeof last, dir, json_string_value(p), js, file, e);
        if (!rc)
            rc = append_shard(&data, last, e);
        if (info)
            info->n_shards++;
    }
    if (!rc && need > data.n) {
        size_t k = 0;
        while (k < nw && specs[k].off + specs[k].nbytes <= data.n)
            k++;
        rc = tl_errf(e, TL_EFORMAT,
                     "%s: truncated shard: tensor '%s' needs bytes %zu..%zu but the %zu shard(s) of "
                     "group %zu hold %zu bytes (the manifest needs %zu)",
                     last, specs[k].name, specs[k].off, specs[k].off + specs[k].nbytes, np, gi + 1,
                     data.n, need);
    }
    if (!rc && need < data.n)
        rc = tl_errf(e, TL_EFORMAT,
                     "%s: the %zu shard(s) of group %zu hold %zu bytes but the manifest's tensors "
                     "need %zu (after tensor '%s')",
                     last, np, gi + 1, data.n, need, nw ? specs[nw - 1].name : "(none)");
    if (info)
        info->weight_bytes += data.n;
    for (size_t i = 0; i < nw && !rc; i++) {
        float *v = malloc((specs[i].n ? specs[i].n : 1) * sizeof *v);
        if (!v) {
            rc = tl_errf(e, TL_ENOMEM, "%s: tensor '%s': out of memory", file, specs[i].name);
            break;
        }
        rc = decode(&specs[i], data.b + specs[i].off, v, last, e);
        if (rc) {
            free(v);
            break;
        }
        rc = tset_push_owned(out, specs[i].name, specs[i].ndim, specs[i].shape, v, e);
        if (rc) {
            tl_err inner = e ? *e : (tl_err){0};
            rc = tl_errf(e, rc, "%s: %s", file, inner.msg);
        }
        if (!rc && info)
            info->n_tensors++;
    }
    free(data.b);
    free(specs);
    return rc;
}

/* ---- topology hints ------------------------------------------------------------- */

static int add_layer(weights_tfjs_info *info, json_t *layer, int *cap)
{
    json_t *cfg = json_object_get(layer, "config");
    json_t *jn = json_object_get(layer, "name");
    if (!json_is_string(jn))
        jn = json_object_get(cfg, "name");
    json_t *jc = json_object_get(layer, "class_name");
    if (info->n_layers == *cap) {
        int nc = *cap ? 2 * *cap : 128;
        weights_tfjs_layer *v = realloc(info->layers, (size_t)nc * sizeof *v);
        if (!v)
            return -1;
        info->layers = v;
        *cap = nc;
    }
    weights_tfjs_layer *l = &info->layers[info->n_layers];
    l->name = strdup(json_is_string(jn) ? json_string_value(jn) : "");
    l->class_name = strdup(json_is_string(jc) ? json_string_value(jc) : "");
    l->config = json_is_object(cfg) ? json_dumps(cfg, JSON_COMPACT | JSON_PRESERVE_ORDER)
                                    : strdup("{}");
    if (!l->name || !l->class_name || !l->config) {
        free(l->name);
        free(l->class_name);
        free(l->config);
        return -1;
    }
    info->n_layers++;
    return 0;
}

/* Layers in topology order; nested models (a Sequential around a Functional
 * backbone) are listed after their container. */
static int collect_layers(weights_tfjs_info *info, json_t *model_cfg, int *cap, int depth)
{
    if (depth > 8)
        return 0;
    json_t *cfg = json_object_get(model_cfg, "config");
    json_t *layers = json_is_array(cfg) ? cfg : json_object_get(cfg, "layers");
    if (!json_is_array(layers))
        return 0;
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l)
    {
        if (!json_is_object(l))
            continue;
        if (add_layer(info, l, cap))
            return -1;
        if (json_is_object(json_object_get(json_object_get(l, "config"), "layers")) ||
            json_is_array(json_object_get(json_object_get(l, "config"), "layers")))
            if (collect_layers(info, l, cap, depth + 1))
                return -1;
    }
    return 0;
}

static int find_layer(const weights_tfjs_info *info, const char *name)
{
    for (int i = 0; i < info->n_layers; i++)
        if (!strcmp(info->layers[i].name, name))
            return i;
    return -1;
}

/* Integer "filters" of a layer's config, -1 if absent. */
static int layer_filters(const weights_tfjs_info *info, int i)
{
    if (i < 0)
        return -1;
    json_t *c = json_loads(info->layers[i].config, 0, NULL);
    json_t *f = json_object_get(c, "filters");
    int v = json_is_integer(f) ? (int)json_integer_value(f) : -1;
    json_decref(c);
    return v;
}

static void input_shape(weights_tfjs_info *info)
{
    for (int i = 0; i < info->n_layers; i++) {
        json_t *c = json_loads(info->layers[i].config, 0, NULL);
        json_t *s = json_object_get(c, "batch_input_shape");
        if (!s)
            s = json_object_get(c, "batch_shape");
        if (json_is_array(s) && json_array_size(s) == 4) {
            json_t *h = json_array_get(s, 1), *w = json_array_get(s, 2), *ch = json_array_get(s, 3);
            info->input_h = json_is_integer(h) ? (int)json_integer_value(h) : 0;
            info->input_w = json_is_integer(w) ? (int)json_integer_value(w) : 0;
            info->input_c = json_is_integer(ch) ? (int)json_integer_value(ch) : 0;
            json_decref(c);
            return;
        }
        json_decref(c);
    }
}

static void guess_backbone(weights_tfjs_info *info)
{
    info->backbone_out = -1;
    const char *pretty = NULL;
    if (find_layer(info, "Conv1") >= 0 && find_layer(info, "expanded_conv_depthwise") >= 0) {
        /* (Conv1 filters, block_16_project filters) = _make_divisible(32a, 8), (320a, 8) */
        static const struct { float a; int f0, f16; } t[] = {
            {0.35f, 16, 112}, {0.5f, 16, 160}, {0.75f, 24, 240},
            {1.0f, 32, 320},  {1.3f, 40, 416}, {1.4f, 48, 448},
        };
        int f0 = layer_filters(info, find_layer(info, "Conv1"));
        int f16 = layer_filters(info, find_layer(info, "block_16_project"));
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
            if (t[i].f0 == f0 && t[i].f16 == f16)
                info->alpha = t[i].a;
        copy_str(info->backbone, sizeof info->backbone, "mobilenet_v2");
        info->backbone_out = find_layer(info, "out_relu");
        pretty = "MobileNetV2";
    } else if (find_layer(info, "mixed0") >= 0 && find_layer(info, "mixed10") >= 0) {
        copy_str(info->backbone, sizeof info->backbone, "inception_v3");
        info->backbone_out = find_layer(info, "mixed10");
        pretty = "InceptionV3";
    } else if (find_layer(info, "conv5_block3_out") >= 0 ||
               find_layer(info, "res5c_branch2c") >= 0) {
        copy_str(info->backbone, sizeof info->backbone, "resnet50");
        info->backbone_out = find_layer(info, "conv5_block3_out");
        if (info->backbone_out < 0) {   /* Keras 2.2: the ReLU after the last add */
            int i = find_layer(info, "res5c_branch2c");
            for (; i < info->n_layers; i++)
                if (!strcmp(info->layers[i].class_name, "Add"))
                    break;
            if (i + 1 < info->n_layers && !strcmp(info->layers[i + 1].class_name, "Activation"))
                info->backbone_out = i + 1;
        }
        pretty = "ResNet50";
    } else if (find_layer(info, "block1_conv1") >= 0 && find_layer(info, "block5_conv3") >= 0) {
        copy_str(info->backbone, sizeof info->backbone, "vgg16");
        info->backbone_out = find_layer(info, "block5_pool");
        pretty = "VGG16";
    }
    if (!pretty) {
        snprintf(info->summary, sizeof info->summary, "unrecognised model (%d layers)",
                 info->n_layers);
        return;
    }
    int at = snprintf(info->summary, sizeof info->summary, "%s", pretty);
    if (info->input_h > 0 && (size_t)at < sizeof info->summary)
        at += snprintf(info->summary + at, sizeof info->summary - (size_t)at, " %d", info->input_h);
    if (info->alpha > 0 && (size_t)at < sizeof info->summary)
        snprintf(info->summary + at, sizeof info->summary - (size_t)at, " alpha %.2g%s",
                 (double)info->alpha, info->alpha == 1.0f ? ".0" : "");
}

static int read_topology(json_t *root, weights_tfjs_info *info, const char *file, tl_err *e)
{
    json_t *fmt = json_object_get(root, "format");
    if (json_is_string(fmt))
        copy_str(info->format, sizeof info->format, json_string_value(fmt));
    json_t *topo = json_object_get(root, "modelTopology");
    if (!topo || json_is_null(topo)) {
        info->backbone_out = -1;
        snprintf(info->summary, sizeof info->summary, "no modelTopology");
        return 0;
    }
    if (!json_is_object(topo))
        return tl_errf(e, TL_EFORMAT, "%s: \"modelTopology\" is not an object", file);
    json_t *kv = json_object_get(topo, "keras_version");
    if (json_is_string(kv))
        copy_str(info->keras_version, sizeof info->keras_version, json_string_value(kv));
    json_t *mc = json_object_get(topo, "model_config");
    if (!json_is_object(mc))
        mc = topo;
    int cap = 0;
    if (collect_layers(info, mc, &cap, 0))
        return tl_errf(e, TL_ENOMEM, "%s: out of memory listing layers", file);
    input_shape(info);
    guess_backbone(info);
    return 0;
}

void weights_tfjs_info_free(weights_tfjs_info *info)
{
    if (!info)
        return;
    for (int i = 0; i < info->n_layers; i++) {
        free(info->layers[i].name);
        free(info->layers[i].class_name);
        free(info->layers[i].config);
    }
    free(info->layers);
    info->layers = NULL;
    info->n_layers = 0;
}

/* ---- entry point ---------------------------------------------------------------- */

static int resolve(const char *path, char *file, size_t cap, tl_err *e)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return tl_errf(e, errno == ENOENT ? TL_ENOTFOUND : TL_EIO, "%s: %s", path,
                       strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        copy_str(file, cap, path);
        return 0;
    }
    static const char *const names[] = {"model.json", "model.min.js"};
    for (int i = 0; i < 2; i++) {
        if ((size_t)snprintf(file, cap, "%s/%s", path, names[i]) >= cap)
            return tl_errf(e, TL_EINVAL, "%s: path too long", path);
        if (stat(file, &st) == 0)
            return 0;
    }
    return tl_errf(e, TL_ENOTFOUND, "%s: folder has no model.json or model.min.js", path);
}

int weights_tfjs_read(const char *path, tset *out, weights_tfjs_info *info, tl_err *e)
{
    weights_tfjs_info local;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    info->backbone_out = -1;
    char file[sizeof info->model_file];
    int rc = resolve(path, file, sizeof file, e);
    if (rc)
        goto done;
    copy_str(info->model_file, sizeof info->model_file, file);
    int js = ends_with(file, ".js");

    char *buf;
    size_t len;
    rc = read_whole(file, WEIGHTS_TFJS_MAX_JSON, "model file", &buf, &len, e);
    if (rc)
        goto done;
    if (js) {
        char *text = weights_tfjs_js_to_json(file, buf, len, NULL, NULL, e);
        free(buf);
        if (!text) {
            rc = e ? e->code : TL_EFORMAT;
            goto done;
        }
        buf = text;
        len = strlen(text);
    }
    json_error_t je;
    json_t *root = json_loadb(buf, len, 0, &je);
    free(buf);
    if (!root) {
        rc = tl_errf(e, TL_EFORMAT, "%s: malformed JSON%s: %s at line %d column %d", file,
                     js ? " (from the JS wrapper)" : "", je.text, je.line, je.column);
        goto done;
    }
    if (!json_is_object(root)) {
        rc = tl_errf(e, TL_EFORMAT, "%s: the model is not a JSON object", file);
        goto free_root;
    }
    rc = read_topology(root, info, file, e);
    if (rc)
        goto free_root;
    json_t *man = json_object_get(root, "weightsManifest");
    if (!json_is_array(man)) {
        rc = tl_errf(e, TL_EFORMAT, "%s: no \"weightsManifest\" array", file);
        goto free_root;
    }
    /* shards are relative to the model file's folder */
    char dir[sizeof file];
    copy_str(dir, sizeof dir, file);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        copy_str(dir, sizeof dir, ".");
    /* Duplicate names in linear time: 40,000 tensors took 13 s with a scan
     * per name. */
    tl_strset names;
    tl_strset_init(&names);
    for (size_t i = 0; i < out->n && !rc; i++)
        if (tl_strset_add(&names, out->v[i].name) < 0)
            rc = tl_errf(e, TL_ENOMEM, "%s: out of memory", file);
    size_t gi;
    json_t *g;
    json_array_foreach(man, gi, g)
    {
        if (rc)
            break;
        rc = read_group(g, gi, file, dir, js, out, &names, info, e);
    }
    tl_strset_free(&names);
free_root:
    json_decref(root);
done:
    if (info == &local)
        weights_tfjs_info_free(&local);
    return rc;
}
