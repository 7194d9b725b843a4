/* tlsweep.Model files: framing, checksum, atomic write, validating read. */
#include "common/base/le.h"
#include "common/weights/model_file.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/fileio.h"
#include "common/base/sha256.h"
#include "model.pb-c.h"

/* ---- spec ------------------------------------------------------------------- */

void model_spec_init(model_spec *s)
{
    memset(s, 0, sizeof *s);
    s->format_version = MODEL_FORMAT_VERSION;
}

void model_spec_free(model_spec *s)
{
    free(s->backbone);
    free(s->head);
    for (int i = 0; i < s->n_class_names; i++)
        free(s->class_names[i]);
    free(s->class_names);
    free(s->source_path);
    free(s->source_sha256);
    free(s->importer);
    free(s->tlsweep_version);
    free(s->precision);
    model_spec_init(s);
}

int model_spec_set_str(char **field, const char *value, tl_err *e)
{
    char *copy = NULL;
    if (value && !(copy = strdup(value)))
        return tl_errf(e, TL_ENOMEM, "model: out of memory");
    free(*field);
    *field = copy;
    return 0;
}

int model_spec_add_head(model_spec *s, model_head_op op, tl_err *e)
{
    if (s->n_head >= MODEL_MAX_HEAD_OPS)
        return tl_errf(e, TL_EINVAL, "model: more than %d head layers", MODEL_MAX_HEAD_OPS);
    model_head_op *h = realloc(s->head, (size_t)(s->n_head + 1) * sizeof *h);
    if (!h)
        return tl_errf(e, TL_ENOMEM, "model: out of memory");
    s->head = h;
    s->head[s->n_head++] = op;
    return 0;
}

int model_spec_add_class(model_spec *s, const char *name, tl_err *e)
{
    char **v = realloc(s->class_names, (size_t)(s->n_class_names + 1) * sizeof *v);
    if (!v)
        return tl_errf(e, TL_ENOMEM, "model: out of memory");
    s->class_names = v;
    if (!(v[s->n_class_names] = strdup(name ? name : "")))
        return tl_errf(e, TL_ENOMEM, "model: out of memory");
    s->n_class_names++;
    return 0;
}

static const char *const convention_names[] = {"keras", "torchvision"};
static const char *const preproc_names[] = {"tf", "caffe", "torch", "unit"};

const char *model_convention_name(model_convention c)
{
    return (unsigned)c < 2 ? convention_names[c] : "?";
}

int model_convention_parse(const char *s)
{
    for (int i = 0; i < 2; i++)
        if (!strcmp(s, convention_names[i]))
            return i;
    return -1;
}

const char *model_preproc_name(model_preproc p)
{
    return (unsigned)p < 4 ? preproc_names[p] : "?";
}

int model_preproc_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, preproc_names[i]))
            return i;
    return -1;
}

/* ---- little-endian framing --------------------------------------------------- */


/* ---- writing ------------------------------------------------------------------ */

/* Where the bytes of a model go: a file (atomically) or a buffer, through
 * one serialiser. begin() is told the total size once the model is known to
 * be writable and before the first write(); stage is how much the
 * serialiser should gather before each write() (0: pass every piece on). */
typedef struct model_sink model_sink;
struct model_sink {
    int (*begin)(model_sink *s, uint64_t total, tl_err *e);
    int (*write)(model_sink *s, const void *buf, size_t n, tl_err *e);
    size_t stage;
};

/* A ProtobufCBuffer that stages bytes, writes them to the sink and hashes
 * them: the packed payload never exists whole in memory. */
typedef struct {
    ProtobufCBuffer base;
    model_sink *out;
    tl_err *e;
    int rc;                  /* first write failure */
    sha256_ctx sha;
    uint64_t written;
    unsigned char *stage;
    size_t n, cap;
} stream_buf;

static void stream_flush(stream_buf *b)
{
    if (b->n && !b->rc)
        b->rc = b->out->write(b->out, b->stage, b->n, b->e);
    b->n = 0;
}

static void stream_append(ProtobufCBuffer *base, size_t len, const uint8_t *data)
{
    stream_buf *b = (stream_buf *)base;
    if (b->rc)
        return;
    sha256_update(&b->sha, data, len);
    b->written += len;
    if (b->n + len > b->cap)
        stream_flush(b);
    if (len >= b->cap) {
        if (!b->rc)
            b->rc = b->out->write(b->out, data, len, b->e);
        return;
    }
    memcpy(b->stage + b->n, data, len);
    b->n += len;
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* The message views spec and tensors: nothing is copied. *m owns only the
 * arrays of pointers, released by free_view. */
typedef struct {
    Tlsweep__Model m;
    Tlsweep__ModelArch arch;
    Tlsweep__ModelProvenance prov;
    Tlsweep__ModelHeadOp *head;
    Tlsweep__ModelHeadOp **head_p;
    Tlsweep__ModelTensor *t;
    Tlsweep__ModelTensor **t_p;
    int64_t *shapes;
} model_view;

static void free_view(model_view *v)
{
    free(v->head);
    free(v->head_p);
    free(v->t);
    free(v->t_p);
    free(v->shapes);
}

static int make_view(model_view *v, const model_spec *s, const tset *ts)
{
    memset(v, 0, sizeof *v);
    tlsweep__model__init(&v->m);
    tlsweep__model_arch__init(&v->arch);
    tlsweep__model_provenance__init(&v->prov);
    size_t nh = (size_t)(s->n_head > 0 ? s->n_head : 0);
    v->head = calloc(nh + 1, sizeof *v->head);
    v->head_p = calloc(nh + 1, sizeof *v->head_p);
    v->t = calloc(ts->n + 1, sizeof *v->t);
    v->t_p = calloc(ts->n + 1, sizeof *v->t_p);
    v->shapes = calloc(ts->n * TSET_MAX_DIMS + 1, sizeof *v->shapes);
    if (!v->head || !v->head_p || !v->t || !v->t_p || !v->shapes)
        return TL_ENOMEM;

    static const Tlsweep__ModelHeadOp__Kind kinds[] = {
        TLSWEEP__MODEL_HEAD_OP__KIND__GLOBAL_AVERAGE_POOLING, TLSWEEP__MODEL_HEAD_OP__KIND__FLATTEN,
        TLSWEEP__MODEL_HEAD_OP__KIND__DENSE, TLSWEEP__MODEL_HEAD_OP__KIND__DROPOUT};
    for (size_t i = 0; i < nh; i++) {
        Tlsweep__ModelHeadOp *h = &v->head[i];
        tlsweep__model_head_op__init(h);
        h->kind = kinds[s->head[i].kind];
        h->units = (uint32_t)s->head[i].units;
        h->activation = (Tlsweep__ModelHeadOp__Activation)s->head[i].act;
        h->rate = s->head[i].rate;
        v->head_p[i] = h;
    }
    Tlsweep__ModelArch *a = &v->arch;
    a->backbone = (char *)str_or_empty(s->backbone);
    a->alpha = s->alpha;
    a->input_height = (uint32_t)s->height;
    a->input_width = (uint32_t)s->width;
    a->convention = s->convention == MODEL_TORCHVISION
                        ? TLSWEEP__MODEL_CONVENTION__MODEL_CONVENTION_TORCHVISION
                        : TLSWEEP__MODEL_CONVENTION__MODEL_CONVENTION_KERAS;
    a->n_head = nh;
    a->head = v->head_p;
    a->num_classes = (uint32_t)s->num_classes;
    a->loss = s->loss == MODEL_LOSS_SIGMOID ? TLSWEEP__MODEL_ARCH__LOSS__SIGMOID
                                            : TLSWEEP__MODEL_ARCH__LOSS__SOFTMAX;
    a->mode = s->mode == MODEL_FINE_TUNE_AT ? TLSWEEP__MODEL_ARCH__MODE__FINE_TUNE_AT
              : s->mode == MODEL_FINE_TUNE  ? TLSWEEP__MODEL_ARCH__MODE__FINE_TUNE
                                            : TLSWEEP__MODEL_ARCH__MODE__FROZEN;
    a->fine_tune_at = (uint32_t)s->fine_tune_at;
    a->bn_update = s->bn_update != 0;

    for (size_t i = 0; i < ts->n; i++) {
        Tlsweep__ModelTensor *t = &v->t[i];
        const tset_entry *src = &ts->v[i];
        tlsweep__model_tensor__init(t);
        t->name = src->name;
        t->n_shape = (size_t)src->ndim;
        t->shape = v->shapes + i * TSET_MAX_DIMS;
        memcpy(t->shape, src->shape, (size_t)src->ndim * sizeof *t->shape);
        t->n_data = src->n;
        t->data = src->data;
        v->t_p[i] = t;
    }

    Tlsweep__ModelProvenance *p = &v->prov;
    p->source_path = (char *)str_or_empty(s->source_path);
    p->source_sha256 = (char *)str_or_empty(s->source_sha256);
    p->importer = (char *)str_or_empty(s->importer);
    p->tlsweep_version = (char *)str_or_empty(s->tlsweep_version);
    p->precision = (char *)str_or_empty(s->precision);

    Tlsweep__Model *m = &v->m;
    m->format_version = MODEL_FORMAT_VERSION;
    m->arch = a;
    m->n_tensors = ts->n;
    m->tensors = v->t_p;
    m->preprocessing = (Tlsweep__ModelPreprocessing)(s->preproc + 1);
    m->n_class_names = (size_t)(s->n_class_names > 0 ? s->n_class_names : 0);
    m->class_names = s->class_names;
    m->provenance = p;
    return 0;
}

/* Catches what model_read would refuse, before anything is written. */
static int check_spec_for_write(const char *path, const model_spec *s, const tset *ts, tl_err *e)
{
    if ((unsigned)s->convention > MODEL_TORCHVISION || (unsigned)s->preproc > MODEL_PREPROC_UNIT ||
        (unsigned)s->loss > MODEL_LOSS_SIGMOID || (unsigned)s->mode > MODEL_FINE_TUNE)
        return tl_errf(e, TL_EINVAL, "%s: model spec has an enum out of range", path);
    if (s->n_head < 0 || s->n_head > MODEL_MAX_HEAD_OPS || s->num_classes < 0 ||
        s->num_classes > MODEL_MAX_CLASSES || s->height < 1 || s->width < 1 ||
        s->height > MODEL_MAX_SIDE || s->width > MODEL_MAX_SIDE || s->fine_tune_at < 0)
        return tl_errf(e, TL_EINVAL, "%s: model spec has a size out of range", path);
    for (int i = 0; i < s->n_head; i++)
        if ((unsigned)s->head[i].kind > MODEL_HEAD_DROPOUT ||
            (unsigned)s->head[i].act > MODEL_ACT_RELU6 ||
            (s->head[i].kind == MODEL_HEAD_DENSE && s->head[i].units < 1))
            return tl_errf(e, TL_EINVAL, "%s: head layer %d is malformed", path, i);
    if (s->n_class_names && s->n_class_names != s->num_classes)
        return tl_errf(e, TL_EINVAL, "%s: %d class names for %d classes", path,
                       s->n_class_names, s->num_classes);
    return tset_check_finite(ts, path, e);
}

/* Checks, frames and streams spec and tensors into out: the one code path
 * behind model_write and model_write_mem. name is used in messages. */
static int model_emit(model_sink *out, const char *name, const model_spec *spec,
                      const tset *tensors, tl_err *e)
{
    int rc = check_spec_for_write(name, spec, tensors, e);
    if (rc)
        return rc;
    model_view v;
    stream_buf b = {.base = {.append = stream_append}, .out = out, .e = e, .cap = out->stage};
    if (make_view(&v, spec, tensors) || (b.cap && !(b.stage = malloc(b.cap)))) {
        rc = tl_errf(e, TL_ENOMEM, "%s: out of memory", name);
        goto out;
    }
    size_t plen = tlsweep__model__get_packed_size(&v.m);
    if ((uint64_t)plen > MODEL_MAX_PAYLOAD) {
        rc = tl_errf(e, TL_EINVAL, "%s: model of %zu bytes is over the %llu-byte limit", name,
                     plen, (unsigned long long)MODEL_MAX_PAYLOAD);
        goto out;
    }
    if ((rc = out->begin(out, MODEL_HEADER_SIZE + (uint64_t)plen + SHA256_DIGEST_SIZE, e)))
        goto out;
    unsigned char hdr[MODEL_HEADER_SIZE];
    memcpy(hdr, MODEL_MAGIC, 8);
    le_put_u32(hdr + 8, MODEL_FORMAT_VERSION);
    le_put_u64(hdr + 12, (uint64_t)plen);
    if ((rc = out->write(out, hdr, sizeof hdr, e)))
        goto out;
    sha256_init(&b.sha);
    tlsweep__model__pack_to_buffer(&v.m, &b.base);
    stream_flush(&b);
    if ((rc = b.rc))
        goto out;
    if (b.written != plen) {
        rc = tl_errf(e, TL_EINVAL, "%s: packed %llu bytes, expected %zu", name,
                     (unsigned long long)b.written, plen);
        goto out;
    }
    unsigned char digest[SHA256_DIGEST_SIZE];
    sha256_final(&b.sha, digest);
    rc = out->write(out, digest, sizeof digest, e);
out:
    free_view(&v);
    free(b.stage);
    return rc;
}

/* The file sink: path.tmp, opened only once the model is known good. */
typedef struct {
    model_sink base;
    const char *path;
    tl_atomic_file f;
} file_sink;

static int file_begin(model_sink *s, uint64_t total, tl_err *e)
{
    (void)total;
    file_sink *fs = (file_sink *)s;
    return tl_atomic_open(&fs->f, fs->path, e);
}

static int file_write(model_sink *s, const void *buf, size_t n, tl_err *e)
{
    return tl_atomic_write(&((file_sink *)s)->f, buf, n, e);
}

int model_write(const char *path, const model_spec *spec, const tset *tensors, tl_err *e)
{
    file_sink s = {{file_begin, file_write, (size_t)1 << 20}, path, TL_ATOMIC_FILE_INIT};
    int rc = model_emit(&s.base, path, spec, tensors, e);
    if (!rc)
        rc = tl_atomic_commit(&s.f, e);
    tl_atomic_abort(&s.f);
    return rc;
}

/* The memory sink: one allocation of exactly the announced size. */
typedef struct {
    model_sink base;
    unsigned char *buf;
    size_t len, cap;
} mem_sink;

#define MEM_NAME "model (in memory)"

static int mem_begin(model_sink *s, uint64_t total, tl_err *e)
{
    mem_sink *ms = (mem_sink *)s;
    if (total > SIZE_MAX || !(ms->buf = malloc((size_t)total)))
        return tl_errf(e, TL_ENOMEM, "%s: out of memory for %llu bytes", MEM_NAME,
                       (unsigned long long)total);
    ms->cap = (size_t)total;
    return 0;
}

static int mem_write(model_sink *s, const void *buf, size_t n, tl_err *e)
{
    mem_sink *ms = (mem_sink *)s;
    if (n > ms->cap - ms->len)
        return tl_errf(e, TL_EINVAL, "%s: more bytes than the %zu announced", MEM_NAME, ms->cap);
    if (n)
        memcpy(ms->buf + ms->len, buf, n);
    ms->len += n;
    return 0;
}

int model_write_mem(const model_spec *spec, const tset *tensors, unsigned char **buf,
                    size_t *len, tl_err *e)
{
    *buf = NULL;
    *len = 0;
    mem_sink s = {{mem_begin, mem_write, 0}, NULL, 0, 0};
    int rc = model_emit(&s.base, MEM_NAME, spec, tensors, e);
    if (!rc && s.len != s.cap)
        rc = tl_errf(e, TL_EINVAL, "%s: %zu bytes written, %zu announced", MEM_NAME, s.len,
                     s.cap);
    if (rc) {
        free(s.buf);
        return rc;
    }
    *buf = s.buf;
    *len = s.len;
    return 0;
}

int model_write_bytes(const char *path, const void *buf, size_t len, tl_err *e)
{
    /* The whole validating read: bytes that model_read would refuse never
     * replace a good file. Costs a decoded copy of the model for a moment. */
    model_spec s;
    tset t;
    model_spec_init(&s);
    tset_init(&t);
    int rc = model_read_mem(path, buf, len, &s, &t, e);
    model_spec_free(&s);
    tset_free(&t);
    if (rc) {
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "%s", e ? e->msg : "");
        return tl_errf(e, rc, "%s; not written", msg);
    }
    tl_atomic_file f;
    if ((rc = tl_atomic_open(&f, path, e)))
        return rc;
    if (!(rc = tl_atomic_write(&f, buf, len, e)))
        rc = tl_atomic_commit(&f, e);
    tl_atomic_abort(&f);
    return rc;
}

/* ---- reading ------------------------------------------------------------------- */

static int dup_str(char **dst, const char *src, const char *name, tl_err *e)
{
    if (!src || !src[0])
        return 0;
    if (!(*dst = strdup(src)))
        return tl_errf(e, TL_ENOMEM, "%s: out of memory", name);
    return 0;
}

/* Architecture and metadata from m into s, every field range-checked. */
static int spec_from_msg(const char *name, const Tlsweep__Model *m, model_spec *s, tl_err *e)
{
    const Tlsweep__ModelArch *a = m->arch;
    if (!a)
        return tl_errf(e, TL_EFORMAT, "%s: no architecture", name);
    if (!a->backbone || !a->backbone[0])
        return tl_errf(e, TL_EFORMAT, "%s: no backbone name", name);
    if (!isfinite(a->alpha) || a->alpha < 0 || a->alpha > 10)
        return tl_errf(e, TL_EFORMAT, "%s: width multiplier %g out of range", name,
                       (double)a->alpha);
    if (a->input_height < 1 || a->input_width < 1 || a->input_height > MODEL_MAX_SIDE ||
        a->input_width > MODEL_MAX_SIDE)
        return tl_errf(e, TL_EFORMAT, "%s: input size %ux%u out of range", name,
                       a->input_height, a->input_width);
    if (a->num_classes > MODEL_MAX_CLASSES)
        return tl_errf(e, TL_EFORMAT, "%s: %u classes is out of range", name, a->num_classes);
    if (a->n_head > MODEL_MAX_HEAD_OPS)
        return tl_errf(e, TL_EFORMAT, "%s: %zu head layers (at most %d)", name, a->n_head,
                       MODEL_MAX_HEAD_OPS);
    if (a->n_head && !a->num_classes)
        return tl_errf(e, TL_EFORMAT, "%s: head layers but no classes", name);
    if (a->fine_tune_at > 1000000)
        return tl_errf(e, TL_EFORMAT, "%s: fine_tune_at %u out of range", name, a->fine_tune_at);
    switch (a->convention) {
    case TLSWEEP__MODEL_CONVENTION__MODEL_CONVENTION_KERAS: s->convention = MODEL_KERAS; break;
    case TLSWEEP__MODEL_CONVENTION__MODEL_CONVENTION_TORCHVISION:
        s->convention = MODEL_TORCHVISION;
        break;
    default: return tl_errf(e, TL_EFORMAT, "%s: unknown convention %d", name, (int)a->convention);
    }
    switch (a->loss) {
    case TLSWEEP__MODEL_ARCH__LOSS__LOSS_UNSPECIFIED:
    case TLSWEEP__MODEL_ARCH__LOSS__SOFTMAX: s->loss = MODEL_LOSS_SOFTMAX; break;
    case TLSWEEP__MODEL_ARCH__LOSS__SIGMOID: s->loss = MODEL_LOSS_SIGMOID; break;
    default: return tl_errf(e, TL_EFORMAT, "%s: unknown loss %d", name, (int)a->loss);
    }
    switch (a->mode) {
    case TLSWEEP__MODEL_ARCH__MODE__MODE_UNSPECIFIED:
    case TLSWEEP__MODEL_ARCH__MODE__FROZEN: s->mode = MODEL_FROZEN; break;
    case TLSWEEP__MODEL_ARCH__MODE__FINE_TUNE_AT: s->mode = MODEL_FINE_TUNE_AT; break;
    case TLSWEEP__MODEL_ARCH__MODE__FINE_TUNE: s->mode = MODEL_FINE_TUNE; break;
    default: return tl_errf(e, TL_EFORMAT, "%s: unknown trainability mode %d", name, (int)a->mode);
    }
    if (m->preprocessing < TLSWEEP__MODEL_PREPROCESSING__MODEL_PREPROCESSING_TF ||
        m->preprocessing > TLSWEEP__MODEL_PREPROCESSING__MODEL_PREPROCESSING_UNIT)
        return tl_errf(e, TL_EFORMAT, "%s: unknown preprocessing %d", name, (int)m->preprocessing);
    s->preproc = (model_preproc)(m->preprocessing - 1);
    if (m->n_class_names && m->n_class_names != a->num_classes)
        return tl_errf(e, TL_EFORMAT, "%s: %zu class names for %u classes", name,
                       m->n_class_names, a->num_classes);

    for (size_t i = 0; i < a->n_head; i++) {
        const Tlsweep__ModelHeadOp *h = a->head[i];
        model_head_op op = {0};
        switch (h->kind) {
        case TLSWEEP__MODEL_HEAD_OP__KIND__GLOBAL_AVERAGE_POOLING: op.kind = MODEL_HEAD_GAP; break;
        case TLSWEEP__MODEL_HEAD_OP__KIND__FLATTEN: op.kind = MODEL_HEAD_FLATTEN; break;
        case TLSWEEP__MODEL_HEAD_OP__KIND__DENSE: op.kind = MODEL_HEAD_DENSE; break;
        case TLSWEEP__MODEL_HEAD_OP__KIND__DROPOUT: op.kind = MODEL_HEAD_DROPOUT; break;
        default: return tl_errf(e, TL_EFORMAT, "%s: head layer %zu: unknown kind %d", name, i,
                                (int)h->kind);
        }
        if (op.kind == MODEL_HEAD_DENSE && (h->units < 1 || h->units > MODEL_MAX_CLASSES))
            return tl_errf(e, TL_EFORMAT, "%s: head layer %zu: %u units out of range", name, i,
                           h->units);
        if ((unsigned)h->activation > TLSWEEP__MODEL_HEAD_OP__ACTIVATION__RELU6)
            return tl_errf(e, TL_EFORMAT, "%s: head layer %zu: unknown activation %d", name, i,
                           (int)h->activation);
        if (!isfinite(h->rate) || h->rate < 0 || h->rate >= 1)
            return tl_errf(e, TL_EFORMAT, "%s: head layer %zu: dropout rate %g out of [0, 1)",
                           name, i, (double)h->rate);
        op.units = (int)h->units;
        op.act = (model_act)h->activation;
        op.rate = h->rate;
        int rc = model_spec_add_head(s, op, e);
        if (rc)
            return rc;
    }
    s->format_version = m->format_version;
    s->alpha = a->alpha;
    s->height = (int)a->input_height;
    s->width = (int)a->input_width;
    s->num_classes = (int)a->num_classes;
    s->fine_tune_at = (int)a->fine_tune_at;
    s->bn_update = a->bn_update != 0;
    int rc = dup_str(&s->backbone, a->backbone, name, e);
    for (size_t i = 0; !rc && i < m->n_class_names; i++)
        rc = model_spec_add_class(s, m->class_names[i], e);
    const Tlsweep__ModelProvenance *p = m->provenance;
    if (!rc && p) {
        if ((rc = dup_str(&s->source_path, p->source_path, name, e)) ||
            (rc = dup_str(&s->source_sha256, p->source_sha256, name, e)) ||
            (rc = dup_str(&s->importer, p->importer, name, e)) ||
            (rc = dup_str(&s->tlsweep_version, p->tlsweep_version, name, e)) ||
            (rc = dup_str(&s->precision, p->precision, name, e)))
            return rc;
    }
    return rc;
}

/* Moves the tensors of m into ts (stealing the float arrays, which
 * protobuf-c's default allocator got from malloc). */
static int tensors_from_msg(const char *name, Tlsweep__Model *m, tset *ts, tl_err *e)
{
    for (size_t i = 0; i < m->n_tensors; i++) {
        Tlsweep__ModelTensor *t = m->tensors[i];
        const char *tn = t->name ? t->name : "";
        if (!tn[0])
            return tl_errf(e, TL_EFORMAT, "%s: tensor %zu has no name", name, i);
        if (t->n_shape > TSET_MAX_DIMS)
            return tl_errf(e, TL_EFORMAT, "%s: tensor '%s' has %zu dimensions (at most %d)",
                           name, tn, t->n_shape, TSET_MAX_DIMS);
        uint64_t n = 1;
        for (size_t k = 0; k < t->n_shape; k++) {
            if (t->shape[k] < 0 || t->shape[k] > (int64_t)MODEL_MAX_PAYLOAD)
                return tl_errf(e, TL_EFORMAT, "%s: tensor '%s' has dimension %lld", name, tn,
                               (long long)t->shape[k]);
            n *= (uint64_t)t->shape[k];
            if (n > MODEL_MAX_PAYLOAD) /* stays far below overflow: both factors <= 2^32 */
                return tl_errf(e, TL_EFORMAT, "%s: tensor '%s' is impossibly large", name, tn);
        }
        if ((uint64_t)t->n_data != n)
            return tl_errf(e, TL_EFORMAT,
                           "%s: tensor '%s' holds %zu values, its shape needs %llu", name, tn,
                           t->n_data, (unsigned long long)n);
        float *data = t->data;
        t->data = NULL;
        t->n_data = 0;
        int rc = tset_add_owned(ts, tn, (int)t->n_shape, t->shape, data, e);
        if (rc) {
            char msg[sizeof e->msg];
            snprintf(msg, sizeof msg, "%s", e ? e->msg : "");
            return tl_errf(e, rc == TL_EINVAL ? TL_EFORMAT : rc, "%s: %s", name, msg);
        }
    }
    return tset_check_finite(ts, name, e);
}

int model_read_mem(const char *name, const void *buf, size_t len, model_spec *spec,
                   tset *tensors, tl_err *e)
{
    const unsigned char *p = buf;
    if (len < 8 || memcmp(p, MODEL_MAGIC, 8))
        return tl_errf(e, TL_EFORMAT, "%s: not a tlsweep model (no TLSWEEPM magic)", name);
    if (len < MODEL_HEADER_SIZE)
        return tl_errf(e, TL_EFORMAT, "%s: torn model file: %zu bytes, shorter than the header",
                       name, len);
    uint32_t version = le_get_u32(p + 8);
    if (version != MODEL_FORMAT_VERSION)
        return tl_errf(e, TL_EFORMAT,
                       "%s: model format version %u is not supported (this tlsweep reads %u)",
                       name, version, MODEL_FORMAT_VERSION);
    uint64_t plen = le_get_u64(p + 12);
    if (plen > MODEL_MAX_PAYLOAD)
        return tl_errf(e, TL_EFORMAT, "%s: payload length %llu is over the %llu-byte limit",
                       name, (unsigned long long)plen, (unsigned long long)MODEL_MAX_PAYLOAD);
    uint64_t want = MODEL_HEADER_SIZE + plen + SHA256_DIGEST_SIZE;
    if ((uint64_t)len != want)
        return tl_errf(e, TL_EFORMAT,
                       "%s: torn model file: %zu bytes, the header says %llu", name, len,
                       (unsigned long long)want);
    const unsigned char *payload = p + MODEL_HEADER_SIZE;
    unsigned char digest[SHA256_DIGEST_SIZE];
    sha256(payload, (size_t)plen, digest);
    if (memcmp(digest, payload + plen, SHA256_DIGEST_SIZE))
        return tl_errf(e, TL_EFORMAT, "%s: checksum mismatch: the model file is damaged", name);
    Tlsweep__Model *m = tlsweep__model__unpack(NULL, (size_t)plen, payload);
    if (!m)
        return tl_errf(e, TL_EFORMAT, "%s: payload does not parse as a tlsweep.Model", name);
    int rc = 0;
    if (m->format_version != version)
        rc = tl_errf(e, TL_EFORMAT, "%s: payload says format version %u, the header %u", name,
                     m->format_version, version);
    if (!rc)
        rc = spec_from_msg(name, m, spec, e);
    if (!rc)
        rc = tensors_from_msg(name, m, tensors, e);
    tlsweep__model__free_unpacked(m, NULL);
    if (rc) {
        model_spec_free(spec);
        tset_free(tensors);
    }
    return rc;
}

int model_read(const char *path, model_spec *spec, tset *tensors, tl_err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tl_errf(e, TL_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return tl_errf(e, TL_EIO, "%s: not a regular file", path);
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size > MODEL_HEADER_SIZE + MODEL_MAX_PAYLOAD + SHA256_DIGEST_SIZE) {
        close(fd);
        return tl_errf(e, TL_EFORMAT, "%s: %llu bytes is over the model size limit", path,
                       (unsigned long long)size);
    }
    /* The header alone first: a wrong magic or version needs no big read,
     * and the length is checked against the file size before allocating. */
    unsigned char hdr[MODEL_HEADER_SIZE];
    size_t nh = size < MODEL_HEADER_SIZE ? (size_t)size : MODEL_HEADER_SIZE;
    ssize_t got = pread(fd, hdr, nh, 0);
    if (got != (ssize_t)nh) {
        close(fd);
        return tl_errf(e, TL_EIO, "%s: read failed", path);
    }
    if (nh < MODEL_HEADER_SIZE || memcmp(hdr, MODEL_MAGIC, 8) ||
        le_get_u32(hdr + 8) != MODEL_FORMAT_VERSION || le_get_u64(hdr + 12) > MODEL_MAX_PAYLOAD) {
        close(fd);
        return model_read_mem(path, hdr, nh, spec, tensors, e); /* names what is wrong */
    }
    uint64_t want = le_get_u64(hdr + 12) + MODEL_HEADER_SIZE + SHA256_DIGEST_SIZE;
    if (want != size) {
        close(fd);
        return tl_errf(e, TL_EFORMAT, "%s: torn model file: %llu bytes, the header says %llu",
                       path, (unsigned long long)size, (unsigned long long)want);
    }
    unsigned char *buf = malloc((size_t)size);
    if (!buf) {
        close(fd);
        return tl_errf(e, TL_ENOMEM, "%s: out of memory for %llu bytes", path,
                       (unsigned long long)size);
    }
    size_t at = 0;
    while (at < size) {
        ssize_t r = pread(fd, buf + at, (size_t)size - at, (off_t)at);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        at += (size_t)r;
    }
    close(fd);
    int rc = at == size ? model_read_mem(path, buf, (size_t)size, spec, tensors, e)
                        : tl_errf(e, TL_EIO, "%s: short read (%zu of %llu bytes)", path, at,
                                  (unsigned long long)size);
    free(buf);
    return rc;
}
