/* safetensors export (see net_export.h): every parameter of the net under
 * the names and layouts of its convention, written by weights_st_write_meta
 * (atomic), what the model needs beyond weights in __metadata__. */
#define _GNU_SOURCE /* asprintf */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/weights/safetensors.h"
#include "worker/net/net_export_int.h"
#include "worker/net/net_load.h"

#define META_MAX 20

/* torchvision's name for our classifier when the head is pooling (and
 * dropout) then the classifier, as torchvision's own models are; NULL when
 * the head has layers torchvision's model does not (VGG16's classifier is
 * three Linear layers on a 7x7 map: no head of ours is that). */
static const char *torchvision_classifier(const model_spec *s)
{
    for (int i = 0; i < s->n_head; i++)
        if (s->head[i].kind != MODEL_HEAD_GAP && s->head[i].kind != MODEL_HEAD_DROPOUT)
            return NULL;
    if (!strcmp(s->backbone, "mobilenet_v2"))
        return "classifier.1";
    if (!strcmp(s->backbone, "resnet50") || !strcmp(s->backbone, "inception_v3"))
        return "fc";
    return NULL;
}

typedef struct {
    weights_st_entry *v;
    char **names;
    float **copies;       /* transposed tensors */
    size_t n, cap;
} st_entries;

static void entries_free(st_entries *t)
{
    for (size_t i = 0; i < t->cap && t->names && t->copies; i++) {
        free(t->names[i]);
        free(t->copies[i]);
    }
    free(t->v);
    free(t->names);
    free(t->copies);
}

/* Parameter p as torchvision holds it: "<module>.<weight|bias|running_*>",
 * conv kernels OIHW, linear (out, in). */
static int torch_entry(const net_export__model *m, const net_param *p, weights_st_entry *en,
                       char **name, float **copy)
{
    const net_layer *l = &m->net->layers[p->layer];
    const char *cls = torchvision_classifier(m->spec);
    const char *module = cls && !strcmp(l->name, "predictions") ? cls : l->name;
    size_t len = strlen(module) + 32;
    if (!(*name = malloc(len)))
        return TL_ENOMEM;
    snprintf(*name, len, "%s.%s", module, net_load_torch_suffix(p));
    const float *src = net_param_data(m->net, p);
    en->data = src;
    en->ndim = p->ndim;
    for (int i = 0; i < p->ndim; i++)
        en->shape[i] = (size_t)p->shape[i];
    if (p->ndim != 4 && !(p->ndim == 2 && l->kind == NET_DENSE))
        return 0;
    if (!(*copy = malloc(p->n * sizeof **copy)))
        return TL_ENOMEM;
    en->data = *copy;
    if (p->ndim == 2) { /* (in, out) -> (out, in) */
        int in = p->shape[0], out = p->shape[1];
        for (int o = 0; o < out; o++)
            for (int i = 0; i < in; i++)
                (*copy)[(size_t)o * in + i] = src[(size_t)i * out + o];
        en->shape[0] = (size_t)out, en->shape[1] = (size_t)in;
        return 0;
    }
    int kh = p->shape[0], kw = p->shape[1], ci = p->shape[2], co = p->shape[3];
    net_export__oihw(*copy, src, kh, kw, ci, co);
    int depthwise = co == 1 && l->u.conv.s.groups > 1;
    size_t shape[4] = {(size_t)(depthwise ? ci : co), (size_t)(depthwise ? 1 : ci), (size_t)kh,
                       (size_t)kw};
    memcpy(en->shape, shape, sizeof shape);
    return 0;
}

static int keras_entry(const net_export__model *m, const net_param *p, weights_st_entry *en,
                       char **name)
{
    if (!(*name = strdup(p->name)))
        return TL_ENOMEM;
    en->data = net_param_data(m->net, p);
    en->ndim = p->ndim;
    for (int i = 0; i < p->ndim; i++)
        en->shape[i] = (size_t)p->shape[i];
    return 0;
}

static int build_entries(const net_export__model *m, st_entries *t)
{
    size_t n = (size_t)m->net->n_params;
    t->v = calloc(n, sizeof *t->v);
    t->names = calloc(n, sizeof *t->names);
    t->copies = calloc(n, sizeof *t->copies);
    if (!t->v || !t->names || !t->copies)
        return TL_ENOMEM;
    t->cap = n;
    int torch = m->spec->convention == MODEL_TORCHVISION;
    for (size_t i = 0; i < n; i++) {
        const net_param *p = &m->net->params[i];
        int rc = torch ? torch_entry(m, p, &t->v[i], &t->names[i], &t->copies[i])
                       : keras_entry(m, p, &t->v[i], &t->names[i]);
        if (rc)
            return rc;
        t->v[i].name = t->names[i];
        t->n = i + 1;
    }
    return 0;
}

/* ---- __metadata__ ---------------------------------------------------------------- */

static const char *const head_kinds[] = {"global_average_pooling", "flatten", "dense", "dropout"};
static const char *const head_acts[] = {"linear", "relu", "relu6"};

static json_t *head_json(const model_spec *s)
{
    json_t *a = json_array();
    for (int i = 0; a && i < s->n_head; i++) {
        const model_head_op *h = &s->head[i];
        json_t *o = json_pack("{s:s}", "kind", head_kinds[h->kind]);
        if (o && h->kind == MODEL_HEAD_DENSE) {
            json_object_set_new(o, "units", json_integer(h->units));
            json_object_set_new(o, "activation", json_string(head_acts[h->act]));
        }
        if (o && h->kind == MODEL_HEAD_DROPOUT)
            json_object_set_new(o, "rate", json_real(h->rate));
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *names_json(const model_spec *s)
{
    json_t *a = json_array();
    for (int i = 0; a && i < s->n_class_names; i++)
        json_array_append_new(a, json_string(s->class_names[i]));
    return a;
}

/* kv: {key, value, ...} owned strings (freed by the caller); returns pairs. */
static size_t build_meta(const net_export__model *m, char **kv)
{
    const model_spec *s = m->spec;
    json_t *head = head_json(s), *names = names_json(s);
    size_t k = 0;
#define PUT(key, ...)                                                  \
    do {                                                               \
        kv[2 * k] = strdup(key);                                       \
        if (asprintf(&kv[2 * k + 1], __VA_ARGS__) < 0)                 \
            kv[2 * k + 1] = NULL;                                      \
        k++;                                                           \
    } while (0)
    char *hj = head ? json_dumps(head, JSON_COMPACT) : NULL;
    char *nj = names ? json_dumps(names, JSON_COMPACT) : NULL;
    PUT("format", "tlsweep");
    PUT("backbone", "%s", s->backbone);
    PUT("convention", "%s", model_convention_name(s->convention));
    PUT("size", "%d", s->height);
    if (s->alpha > 0)
        PUT("alpha", "%g", (double)s->alpha);
    PUT("preprocessing", "%s", model_preproc_name(s->preproc));
    PUT("loss", "%s", s->loss == MODEL_LOSS_SIGMOID ? "sigmoid" : "softmax");
    PUT("num_classes", "%d", s->num_classes);
    PUT("head", "%s", hj ? hj : "");
    PUT("class_names", "%s", nj ? nj : "");
    PUT("layout", "%s", s->convention == MODEL_TORCHVISION
                            ? "torchvision state_dict: conv OIHW, linear (out, in)"
                            : "Keras: conv HWIO, depthwise HWC1, dense (in, out)");
#undef PUT
    free(hj);
    free(nj);
    json_decref(head);
    json_decref(names);
    return k;
}

int net_export__safetensors(const net_export__model *m, net_export_result *r, tl_err *e)
{
    st_entries t = {0};
    char *kv[2 * META_MAX] = {0};
    int rc = build_entries(m, &t);
    size_t pairs = rc ? 0 : build_meta(m, kv);
    for (size_t i = 0; i < 2 * pairs; i++)
        if (!kv[i])
            rc = TL_ENOMEM;
    if (rc)
        rc = tl_errf(e, TL_ENOMEM, "%s: out of memory", m->out);
    else
        rc = weights_st_write_meta(m->out, t.v, t.n, (const char *const *)kv, pairs, e);
    if (!rc) {
        FILE *f = fopen(m->out, "rb");
        if (f && !fseek(f, 0, SEEK_END))
            r->out_bytes = ftell(f);
        if (f)
            fclose(f);
        r->tensors = (int)t.n;
    }
    for (size_t i = 0; i < 2 * META_MAX; i++)
        free(kv[i]);
    entries_free(&t);
    return rc;
}
