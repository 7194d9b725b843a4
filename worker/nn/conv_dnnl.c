/* Convolution on oneDNN (see conv_dnnl.h). */
#include "worker/nn/conv_dnnl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TLSWEEP_HAVE_ONEDNN

nn_dconv *nn_dconv_create(const nn_conv2d_shape *s, const nn_dconv_cfg *cfg,
                          const nn_dconv *like, tl_err *e)
{
    (void)s, (void)cfg, (void)like;
    tl_errf(e, TL_EINVAL, "oneDNN is not built in");
    return NULL;
}
void nn_dconv_free(nn_dconv *c) { (void)c; }
nn_dconv_sizes nn_dconv_get_sizes(const nn_dconv *c)
{
    (void)c;
    nn_dconv_sizes z = {0};
    return z;
}
const char *nn_dconv_impl(const nn_dconv *c, char *buf, size_t n)
{
    (void)c;
    snprintf(buf, n, "none");
    return buf;
}
int nn_dconv_prepare(nn_dconv *c, void *wfwd, void *wbwd, const float *w, void *scratch)
{
    (void)c, (void)wfwd, (void)wbwd, (void)w, (void)scratch;
    return TL_EINVAL;
}
int nn_dconv_forward(nn_dconv *c, float *out, const float *inp, const void *w,
                     const float *bias, void *scratch, void *act)
{
    (void)c, (void)out, (void)inp, (void)w, (void)bias, (void)scratch, (void)act;
    return TL_EINVAL;
}
int nn_dconv_backward_data(nn_dconv *c, float *dinp, const float *dout, const void *w,
                           void *scratch, void *act)
{
    (void)c, (void)dinp, (void)dout, (void)w, (void)scratch, (void)act;
    return TL_EINVAL;
}
int nn_dconv_backward_weights(nn_dconv *c, float *dweight, float *dbias, const float *dout,
                              const float *inp, void *dwtmp, float *dbtmp, void *scratch,
                              void *act)
{
    (void)c, (void)dweight, (void)dbias, (void)dout, (void)inp, (void)dwtmp, (void)dbtmp;
    (void)scratch, (void)act;
    return TL_EINVAL;
}

#else

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>

/* One engine for the process; one stream per thread (nets of different
 * threads, as in the in-process coordinator tests, never share a stream),
 * destroyed when its thread ends. */
static dnnl_engine_t g_engine;
static dnnl_status_t g_engine_status = dnnl_runtime_error;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_stream_key;

static void stream_destroy(void *s)
{
    dnnl_stream_destroy((dnnl_stream_t)s);
}

static void engine_init(void)
{
    if (pthread_key_create(&g_stream_key, stream_destroy) != 0)
        return;
    g_engine_status = dnnl_engine_create(&g_engine, dnnl_cpu, 0);
}

static dnnl_stream_t stream_get(void)
{
    pthread_once(&g_once, engine_init);
    if (g_engine_status != dnnl_success)
        return NULL;
    dnnl_stream_t s = pthread_getspecific(g_stream_key);
    if (!s) {
        if (dnnl_stream_create(&s, g_engine, dnnl_stream_default_flags) != dnnl_success)
            return NULL;
        if (pthread_setspecific(g_stream_key, s) != 0) {
            dnnl_stream_destroy(s);
            return NULL;
        }
    }
    return s;
}

/* A primitive with its descriptor and scratchpad. */
typedef struct {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p;
    dnnl_memory_desc_t scratch_md;
    dnnl_memory_t scratch;
} prim;

struct nn_dconv {
    nn_conv2d_shape s;
    nn_dconv_cfg cfg;
    dnnl_data_type_t cdt;               /* compute type of src/weights/diff_dst */
    dnnl_memory_desc_t src_f32, dst_f32; /* NHWC fp32: what the net holds */
    dnnl_memory_desc_t src_c, dst_c;    /* NHWC in the compute type */
    dnnl_memory_desc_t w_user, bias_md; /* HWIO fp32 */
    dnnl_memory_desc_t w_fwd, w_bwd, dw; /* chosen layouts */
    prim fwd, bwd_d, bwd_w;
    prim r_wfwd, r_wbwd, r_dw;          /* reorders: HWIO -> w_fwd, w_bwd; dw -> HWIO (+=) */
    prim r_src, r_ddst;                 /* bf16: fp32 -> bf16 staging of src, diff_dst */
    int wbwd_separate;                  /* w_bwd differs from w_fwd */
    int wfwd_plain;                     /* w_fwd is the HWIO kernel itself */
    dnnl_memory_t m[12];
    size_t scratch_max;
};

enum { M_SRC, M_W, M_BIAS, M_DST, M_A, M_B, M_SRC_C, M_DST_C, M_N };

static int ok(dnnl_status_t st)
{
    return st == dnnl_success;
}

static void prim_free(prim *p)
{
    if (p->scratch)
        dnnl_memory_destroy(p->scratch);
    if (p->p)
        dnnl_primitive_destroy(p->p);
    if (p->pd)
        dnnl_primitive_desc_destroy(p->pd);
    memset(p, 0, sizeof *p);
}

/* Takes ownership of pd: creates the primitive and its scratchpad memory
 * (with no buffer: the caller's comes at execution). */
static int prim_make(nn_dconv *c, prim *p, dnnl_primitive_desc_t pd)
{
    p->pd = pd;
    if (!ok(dnnl_primitive_create(&p->p, pd)))
        return -1;
    p->scratch_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t sz = dnnl_memory_desc_get_size(&p->scratch_md);
    if (sz) {
        if (!ok(dnnl_memory_create(&p->scratch, &p->scratch_md, g_engine, DNNL_MEMORY_NONE)))
            return -1;
        if (sz > c->scratch_max)
            c->scratch_max = sz;
    }
    return 0;
}

static dnnl_primitive_attr_t attr_make(nn_post post, int sum)
{
    dnnl_primitive_attr_t a;
    if (!ok(dnnl_primitive_attr_create(&a)))
        return NULL;
    dnnl_primitive_attr_set_scratchpad_mode(a, dnnl_scratchpad_mode_user);
    if (post != NN_POST_NONE || sum) {
        dnnl_post_ops_t po;
        if (!ok(dnnl_post_ops_create(&po))) {
            dnnl_primitive_attr_destroy(a);
            return NULL;
        }
        if (sum)
            dnnl_post_ops_append_sum(po, 1.0f);
        if (post == NN_POST_RELU)
            dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
        else if (post == NN_POST_RELU6)
            dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, 0.0f, 6.0f);
        dnnl_primitive_attr_set_post_ops(a, po);
        dnnl_post_ops_destroy(po);
    }
    return a;
}

static int reorder_make(nn_dconv *c, prim *p, const dnnl_memory_desc_t *from,
                        const dnnl_memory_desc_t *to, int sum)
{
    dnnl_primitive_attr_t a = attr_make(NN_POST_NONE, sum);
    dnnl_primitive_desc_t pd = NULL;
    int rc = a && ok(dnnl_reorder_primitive_desc_create(&pd, from, g_engine, to, g_engine, a))
                 ? 0 : -1;
    if (a)
        dnnl_primitive_attr_destroy(a);
    return rc == 0 ? prim_make(c, p, pd) : -1;
}

static int fail(nn_dconv *c, tl_err *e, const char *what)
{
    const nn_conv2d_shape *s = &c->s;
    nn_dconv_free(c);
    return tl_errf(e, TL_EINVAL,
                   "oneDNN: no %s for conv %dx%dx%d -> %d, kernel %dx%d, stride %d, groups %d",
                   what, s->h, s->w, s->c, s->oc, s->kh, s->kw, s->sh, s->groups);
}

static int md_nhwc(dnnl_memory_desc_t *md, int n, int c, int h, int w, dnnl_data_type_t dt)
{
    dnnl_dims_t d = {n, c, h, w};
    return ok(dnnl_memory_desc_init_by_tag(md, 4, d, dt, dnnl_nhwc)) ? 0 : -1;
}

/* Weights of groups == 1 as (OC, IC, KH, KW); grouped as (G, OC/G, IC/G, KH, KW).
 * tag any (the primitive chooses) or the Keras HWIO layout. */
static int md_weights(dnnl_memory_desc_t *md, const nn_conv2d_shape *s, dnnl_data_type_t dt,
                      int any)
{
    int g = s->groups;
    if (g == 1) {
        dnnl_dims_t d = {s->oc, s->c, s->kh, s->kw};
        return ok(dnnl_memory_desc_init_by_tag(md, 4, d, dt, any ? dnnl_format_tag_any : dnnl_hwio))
                   ? 0 : -1;
    }
    dnnl_dims_t d = {g, s->oc / g, s->c / g, s->kh, s->kw};
    return ok(dnnl_memory_desc_init_by_tag(md, 5, d, dt, any ? dnnl_format_tag_any : dnnl_hwigo))
               ? 0 : -1;
}

/* Strides and the padding before and after, per spatial dimension. */
typedef struct {
    dnnl_dims_t strides, pl, pr;
} geom;

static geom geom_of(const nn_conv2d_shape *s)
{
    geom g = {{s->sh, s->sw}, {s->pad.top, s->pad.left}, {s->pad.bottom, s->pad.right}};
    return g;
}

/* The weights' descriptor of a new primitive: the layout `liked` (made for
 * another batch) when given, else any. */
static int weights_for(const nn_dconv *c, const dnnl_memory_desc_t *liked, dnnl_data_type_t dt,
                       dnnl_memory_desc_t *out)
{
    if (liked) {
        *out = *liked;
        return 0;
    }
    return md_weights(out, &c->s, dt, 1);
}

/* The primitive of op descriptor d into p (hint: the forward's, for backward). */
static int make_prim(nn_dconv *c, prim *p, const void *d, nn_post post,
                     const_dnnl_primitive_desc_t hint)
{
    dnnl_primitive_attr_t a = attr_make(post, 0);
    dnnl_primitive_desc_t pd = NULL;
    int rc = a && ok(dnnl_primitive_desc_create(&pd, d, a, g_engine, hint)) ? 0 : -1;
    if (a)
        dnnl_primitive_attr_destroy(a);
    return rc ? -1 : prim_make(c, p, pd);
}

static int make_fwd(nn_dconv *c, const nn_dconv *like)
{
    geom g = geom_of(&c->s);
    dnnl_memory_desc_t w;
    dnnl_convolution_desc_t d;
    int train = c->cfg.bwd_data || c->cfg.bwd_weights;
    if (weights_for(c, like ? &like->w_fwd : NULL, c->cdt, &w) ||
        !ok(dnnl_convolution_forward_desc_init(
            &d, train ? dnnl_forward_training : dnnl_forward_inference, dnnl_convolution_direct,
            &c->src_c, &w, c->cfg.bias ? &c->bias_md : NULL, &c->dst_f32, g.strides, g.pl,
            g.pr)) ||
        make_prim(c, &c->fwd, &d, c->cfg.post, NULL))
        return -1;
    c->w_fwd = *dnnl_primitive_desc_query_md(c->fwd.pd, dnnl_query_weights_md, 0);
    c->wfwd_plain = c->cdt == dnnl_f32 && dnnl_memory_desc_equal(&c->w_fwd, &c->w_user);
    return 0;
}

static int make_bwd_data(nn_dconv *c, const nn_dconv *like)
{
    geom g = geom_of(&c->s);
    dnnl_memory_desc_t w;
    dnnl_convolution_desc_t d;
    if (weights_for(c, like ? &like->w_bwd : NULL, c->cdt, &w) ||
        !ok(dnnl_convolution_backward_data_desc_init(&d, dnnl_convolution_direct, &c->src_f32,
                                                     &w, &c->dst_c, g.strides, g.pl, g.pr)) ||
        make_prim(c, &c->bwd_d, &d, NN_POST_NONE, c->fwd.pd))
        return -1;
    c->w_bwd = *dnnl_primitive_desc_query_md(c->bwd_d.pd, dnnl_query_weights_md, 0);
    c->wbwd_separate = !dnnl_memory_desc_equal(&c->w_bwd, &c->w_fwd);
    return 0;
}

static int make_bwd_weights(nn_dconv *c, const nn_dconv *like)
{
    geom g = geom_of(&c->s);
    dnnl_memory_desc_t dw;
    dnnl_convolution_desc_t d;
    if (weights_for(c, like ? &like->dw : NULL, dnnl_f32, &dw) ||
        !ok(dnnl_convolution_backward_weights_desc_init(
            &d, dnnl_convolution_direct, &c->src_c, &dw, c->cfg.bias ? &c->bias_md : NULL,
            &c->dst_c, g.strides, g.pl, g.pr)) ||
        make_prim(c, &c->bwd_w, &d, NN_POST_NONE, c->fwd.pd))
        return -1;
    c->dw = *dnnl_primitive_desc_query_md(c->bwd_w.pd, dnnl_query_diff_weights_md, 0);
    return 0;
}

nn_dconv *nn_dconv_create(const nn_conv2d_shape *s, const nn_dconv_cfg *cfg,
                          const nn_dconv *like, tl_err *e)
{
    if (!stream_get()) {
        tl_errf(e, TL_EINVAL, "oneDNN: cannot create the CPU engine");
        return NULL;
    }
    nn_dconv *c = calloc(1, sizeof *c);
    if (!c) {
        tl_errf(e, TL_ENOMEM, "oneDNN: out of memory");
        return NULL;
    }
    c->s = *s;
    c->cfg = *cfg;
    c->cdt = cfg->prec == NN_BF16 ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t bd = {s->oc};
    if (md_nhwc(&c->src_f32, s->n, s->c, s->h, s->w, dnnl_f32) ||
        md_nhwc(&c->dst_f32, s->n, s->oc, s->oh, s->ow, dnnl_f32) ||
        md_nhwc(&c->src_c, s->n, s->c, s->h, s->w, c->cdt) ||
        md_nhwc(&c->dst_c, s->n, s->oc, s->oh, s->ow, c->cdt) ||
        md_weights(&c->w_user, s, dnnl_f32, 0) ||
        !ok(dnnl_memory_desc_init_by_tag(&c->bias_md, 1, bd, dnnl_f32, dnnl_x))) {
        fail(c, e, "memory layout");
        return NULL;
    }
    if (make_fwd(c, like)) {
        fail(c, e, "forward");
        return NULL;
    }
    if (cfg->bwd_data && make_bwd_data(c, like)) {
        fail(c, e, "backward data");
        return NULL;
    }
    if (cfg->bwd_weights && make_bwd_weights(c, like)) {
        fail(c, e, "backward weights");
        return NULL;
    }
    if ((!c->wfwd_plain && reorder_make(c, &c->r_wfwd, &c->w_user, &c->w_fwd, 0)) ||
        (cfg->bwd_data && c->wbwd_separate &&
         reorder_make(c, &c->r_wbwd, &c->w_user, &c->w_bwd, 0)) ||
        (cfg->bwd_weights && reorder_make(c, &c->r_dw, &c->dw, &c->w_user, 1))) {
        fail(c, e, "weight reorder");
        return NULL;
    }
    if (c->cdt != dnnl_f32 &&
        (reorder_make(c, &c->r_src, &c->src_f32, &c->src_c, 0) ||
         ((cfg->bwd_data || cfg->bwd_weights) &&
          reorder_make(c, &c->r_ddst, &c->dst_f32, &c->dst_c, 0)))) {
        fail(c, e, "bf16 conversion");
        return NULL;
    }
    const dnnl_memory_desc_t *mds[M_N] = {&c->src_f32, &c->w_user, &c->bias_md, &c->dst_f32,
                                          &c->w_fwd,   &c->dw,     &c->src_c,   &c->dst_c};
    for (int i = 0; i < M_N; i++)
        if (!ok(dnnl_memory_create(&c->m[i], mds[i], g_engine, DNNL_MEMORY_NONE))) {
            fail(c, e, "memory object");
            return NULL;
        }
    if (cfg->bwd_data &&
        !ok(dnnl_memory_create(&c->m[M_N], &c->w_bwd, g_engine, DNNL_MEMORY_NONE))) {
        fail(c, e, "memory object");
        return NULL;
    }
    return c;
}

void nn_dconv_free(nn_dconv *c)
{
    if (!c)
        return;
    prim *ps[] = {&c->fwd, &c->bwd_d, &c->bwd_w, &c->r_wfwd, &c->r_wbwd, &c->r_dw,
                  &c->r_src, &c->r_ddst};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        prim_free(ps[i]);
    for (int i = 0; i < 12; i++)
        if (c->m[i])
            dnnl_memory_destroy(c->m[i]);
    free(c);
}

nn_dconv_sizes nn_dconv_get_sizes(const nn_dconv *c)
{
    nn_dconv_sizes z = {0};
    if (!c->wfwd_plain)
        z.wfwd_bytes = dnnl_memory_desc_get_size(&c->w_fwd);
    if (c->cfg.bwd_data && c->wbwd_separate)
        z.wbwd_bytes = dnnl_memory_desc_get_size(&c->w_bwd);
    if (c->cfg.bwd_weights)
        z.dw_bytes = dnnl_memory_desc_get_size(&c->dw);
    z.scratch_bytes = c->scratch_max;
    if (c->cdt != dnnl_f32) {
        size_t a = dnnl_memory_desc_get_size(&c->src_c), b = dnnl_memory_desc_get_size(&c->dst_c);
        z.act_bytes = (a + 63) / 64 * 64 + b;
    }
    return z;
}

const char *nn_dconv_impl(const nn_dconv *c, char *buf, size_t n)
{
    const char *names[3] = {"-", "-", "-"};
    const prim *ps[3] = {&c->fwd, &c->bwd_d, &c->bwd_w};
    for (int i = 0; i < 3; i++)
        if (ps[i]->pd)
            dnnl_primitive_desc_query(ps[i]->pd, dnnl_query_impl_info_str, 0, &names[i]);
    snprintf(buf, n, "%s / %s / %s", names[0], names[1], names[2]);
    return buf;
}

/* Runs p with up to 5 (arg, memory, buffer) triples and its scratchpad. */
typedef struct {
    int arg;
    dnnl_memory_t m;
    const void *buf;
} bind;

static int run(prim *p, void *scratch, const bind *b, int nb)
{
    dnnl_exec_arg_t args[8];
    int k = 0;
    for (int i = 0; i < nb; i++) {
        if (!ok(dnnl_memory_set_data_handle(b[i].m, (void *)b[i].buf)))
            return TL_EINVAL;
        args[k].arg = b[i].arg;
        args[k].memory = b[i].m;
        k++;
    }
    if (p->scratch) {
        if (!ok(dnnl_memory_set_data_handle(p->scratch, scratch)))
            return TL_EINVAL;
        args[k].arg = DNNL_ARG_SCRATCHPAD;
        args[k].memory = p->scratch;
        k++;
    }
    dnnl_stream_t st = stream_get();
    if (!st || !ok(dnnl_primitive_execute(p->p, st, k, args)) || !ok(dnnl_stream_wait(st)))
        return TL_EINVAL;
    return 0;
}

static int reorder(prim *p, dnnl_memory_t from, const void *fbuf, dnnl_memory_t to,
                   void *tbuf, void *scratch)
{
    bind b[2] = {{DNNL_ARG_FROM, from, fbuf}, {DNNL_ARG_TO, to, tbuf}};
    return run(p, scratch, b, 2);
}

int nn_dconv_prepare(nn_dconv *c, void *wfwd, void *wbwd, const float *w, void *scratch)
{
    int rc = 0;
    if (!c->wfwd_plain)
        rc = reorder(&c->r_wfwd, c->m[M_W], w, c->m[M_A], wfwd, scratch);
    if (!rc && c->cfg.bwd_data && c->wbwd_separate)
        rc = reorder(&c->r_wbwd, c->m[M_W], w, c->m[M_N], wbwd, scratch);
    return rc;
}

/* bf16 staging: the first part of act holds src, the second diff_dst. */
static void *act_src(const nn_dconv *c, void *act)
{
    (void)c;
    return act;
}

static void *act_ddst(const nn_dconv *c, void *act)
{
    size_t a = dnnl_memory_desc_get_size(&c->src_c);
    return (char *)act + (a + 63) / 64 * 64;
}

int nn_dconv_forward(nn_dconv *c, float *out, const float *inp, const void *w,
                     const float *bias, void *scratch, void *act)
{
    const void *src = inp;
    dnnl_memory_t msrc = c->m[M_SRC];
    if (c->cdt != dnnl_f32) {
        int rc = reorder(&c->r_src, c->m[M_SRC], inp, c->m[M_SRC_C], act_src(c, act), scratch);
        if (rc)
            return rc;
        src = act_src(c, act);
        msrc = c->m[M_SRC_C];
    }
    bind b[4] = {{DNNL_ARG_SRC, msrc, src},
                 {DNNL_ARG_WEIGHTS, c->wfwd_plain ? c->m[M_W] : c->m[M_A], w},
                 {DNNL_ARG_DST, c->m[M_DST], out},
                 {DNNL_ARG_BIAS, c->m[M_BIAS], bias}};
    return run(&c->fwd, scratch, b, c->cfg.bias ? 4 : 3);
}

/* diff_dst in the compute type: dout itself, or its bf16 copy (made once per
 * backward: backward data runs first and converts it when it runs). */
static int ddst_c(nn_dconv *c, const float *dout, void *act, int convert, dnnl_memory_t *m,
                  const void **buf, void *scratch)
{
    if (c->cdt == dnnl_f32) {
        *m = c->m[M_DST];
        *buf = dout;
        return 0;
    }
    *m = c->m[M_DST_C];
    *buf = act_ddst(c, act);
    return convert ? reorder(&c->r_ddst, c->m[M_DST], dout, c->m[M_DST_C], act_ddst(c, act),
                             scratch)
                   : 0;
}

int nn_dconv_backward_data(nn_dconv *c, float *dinp, const float *dout, const void *w,
                           void *scratch, void *act)
{
    if (!c->bwd_d.p)
        return TL_EINVAL;
    dnnl_memory_t md;
    const void *dd;
    int rc = ddst_c(c, dout, act, 1, &md, &dd, scratch);
    if (rc)
        return rc;
    dnnl_memory_t mw = c->wbwd_separate ? c->m[M_N] : c->wfwd_plain ? c->m[M_W] : c->m[M_A];
    bind b[3] = {{DNNL_ARG_DIFF_DST, md, dd}, {DNNL_ARG_WEIGHTS, mw, w},
                 {DNNL_ARG_DIFF_SRC, c->m[M_SRC], dinp}};
    return run(&c->bwd_d, scratch, b, 3);
}

int nn_dconv_backward_weights(nn_dconv *c, float *dweight, float *dbias, const float *dout,
                              const float *inp, void *dwtmp, float *dbtmp, void *scratch,
                              void *act)
{
    if (!c->bwd_w.p)
        return TL_EINVAL;
    dnnl_memory_t md;
    const void *dd;
    /* bf16: diff_dst was converted by backward data when it ran */
    int rc = ddst_c(c, dout, act, !c->cfg.bwd_data, &md, &dd, scratch);
    if (rc)
        return rc;
    const void *src = inp;
    dnnl_memory_t msrc = c->m[M_SRC];
    if (c->cdt != dnnl_f32) {
        rc = reorder(&c->r_src, c->m[M_SRC], inp, c->m[M_SRC_C], act_src(c, act), scratch);
        if (rc)
            return rc;
        src = act_src(c, act);
        msrc = c->m[M_SRC_C];
    }
    bind b[4] = {{DNNL_ARG_SRC, msrc, src},
                 {DNNL_ARG_DIFF_DST, md, dd},
                 {DNNL_ARG_DIFF_WEIGHTS, c->m[M_B], dwtmp},
                 {DNNL_ARG_DIFF_BIAS, c->m[M_BIAS], dbtmp}};
    rc = run(&c->bwd_w, scratch, b, c->cfg.bias ? 4 : 3);
    if (rc)
        return rc;
    rc = reorder(&c->r_dw, c->m[M_B], dwtmp, c->m[M_W], dweight, scratch);
    if (rc == 0 && c->cfg.bias && dbias)
        for (int i = 0; i < c->s.oc; i++)
            dbias[i] += dbtmp[i];
    return rc;
}

#endif
