/* Exporting a .tlm (see net_export.h): the format, the model read and
 * built, then the format's writer. */
#include "worker/net/net_export.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/weights/tensors.h"
#include "worker/net/net_export_int.h"
#include "worker/net/net_io.h"

static const char *const format_names[] = {"?", "onnx", "safetensors", "tfjs",
                                                  "keras"};

const char *net_export_format_name(net_export_format f)
{
    return (unsigned)f <= NET_EXPORT_KERAS ? format_names[f] : "?";
}

net_export_format net_export_format_parse(const char *s)
{
    for (int f = NET_EXPORT_ONNX; f <= NET_EXPORT_KERAS; f++)
        if (!strcmp(s, format_names[f]))
            return (net_export_format)f;
    return NET_EXPORT_UNKNOWN;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

net_export_format net_export_format_of_path(const char *out)
{
    if (ends_with(out, ".onnx"))
        return NET_EXPORT_ONNX;
    if (ends_with(out, ".safetensors"))
        return NET_EXPORT_SAFETENSORS;
    if (ends_with(out, ".h5"))
        return NET_EXPORT_KERAS;
    struct stat st;
    if (ends_with(out, "model.json") || ends_with(out, "/") ||
        (stat(out, &st) == 0 && S_ISDIR(st.st_mode)))
        return NET_EXPORT_TFJS;
    return NET_EXPORT_UNKNOWN;
}

void net_export__oihw(float *dst, const float *src, int kh, int kw, int ci, int co)
{
    for (int o = 0; o < co; o++)
        for (int i = 0; i < ci; i++)
            for (int y = 0; y < kh; y++)
                for (int x = 0; x < kw; x++)
                    dst[((o * ci + i) * kh + y) * kw + x] = src[((y * kw + x) * ci + i) * co + o];
}

void net_export__describe(const net_export__model *m, net_export_result *r)
{
    const model_spec *s = m->spec;
    if (m->with_preprocessing)
        snprintf(r->input, sizeof r->input, "float32 NHWC (N,%d,%d,3) RGB 0-255", s->height,
                 s->width);
    else
        snprintf(r->input, sizeof r->input, "float32 NHWC (N,%d,%d,3) preprocessed (%s)",
                 s->height, s->width, model_preproc_name(s->preproc));
    const net_layer *last = net_last(m->net);
    if (s->num_classes > 0)
        snprintf(r->output, sizeof r->output, "probabilities (N,%d) %s", s->num_classes,
                 s->loss == MODEL_LOSS_SIGMOID ? "sigmoid" : "softmax");
    else
        snprintf(r->output, sizeof r->output, "features NHWC (N,%d,%d,%d)", last->h, last->w,
                 last->c);
}

/* The net of spec in inference mode for one image, with tensors loaded
 * strictly: every parameter from the file, no tensor left over. */
static int build_loaded(net *n, const char *src, const model_spec *spec, const tset *tensors,
                        tl_err *e)
{
    if (!spec->backbone || !spec->backbone[0])
        return tl_errf(e, TL_EFORMAT, "%s: the model file names no backbone", src);
    model_spec s = *spec; /* shallow: only the fields that decide the net change */
    s.mode = MODEL_FROZEN;
    s.bn_update = 0;
    int rc = net_build_from_spec(n, &s, 1, e);
    if (rc)
        return rc;
    int with_head = spec->num_classes > 0;
    rc = net_load_tset(n, tensors, 1, with_head, NULL, e);
    if (rc) {
        char why[sizeof e->msg];
        snprintf(why, sizeof why, "%s", e ? e->msg : "");
        net_free(n);
        return tl_errf(e, rc, "%s: %s", src, why);
    }
    return 0;
}

static int write_format(net_export_format f, const net_export__model *m, net_export_result *r,
                        tl_err *e)
{
    switch (f) {
    case NET_EXPORT_ONNX:
        return net_export__onnx(m, r, e);
    case NET_EXPORT_SAFETENSORS:
        return net_export__safetensors(m, r, e);
    case NET_EXPORT_TFJS:
        return net_export__tfjs(m, r, e);
    case NET_EXPORT_KERAS:
        return net_export__h5(m, r, e);
    case NET_EXPORT_UNKNOWN:
        break;
    }
    return tl_errf(e, TL_EINVAL, "%s: unknown export format", m->out);
}

int net_export(const char *src, const char *out, const net_export_opts *o, net_export_result *r,
               tl_err *e)
{
    net_export_result scratch;
    if (!r)
        r = &scratch;
    memset(r, 0, sizeof *r);
    net_export_opts def = {NET_EXPORT_UNKNOWN, 0};
    if (!o)
        o = &def;
    net_export_format f = o->format ? o->format : net_export_format_of_path(out);
    if (f == NET_EXPORT_UNKNOWN)
        return tl_errf(e, TL_EINVAL, "%s: cannot tell the format from the name (.onnx, "
                                     ".safetensors, .h5, model.json or a folder/), give "
                                     "--format onnx|safetensors|tfjs|keras", out);
    if (o->with_preprocessing && f != NET_EXPORT_ONNX)
        return tl_errf(e, TL_EINVAL, "%s: --with-preprocessing is for ONNX only (%s files say "
                                     "the preprocessing in their metadata)", out,
                       net_export_format_name(f));
    model_spec spec;
    tset tensors;
    model_spec_init(&spec);
    tset_init(&tensors);
    net n;
    int rc = model_read(src, &spec, &tensors, e);
    if (!rc && !(rc = build_loaded(&n, src, &spec, &tensors, e))) {
        net_export__model m = {src, out, &spec, &n, o->with_preprocessing};
        r->format = f;
        net_export__describe(&m, r);
        rc = write_format(f, &m, r, e);
        net_free(&n);
    }
    tset_free(&tensors);
    model_spec_free(&spec);
    return rc;
}
