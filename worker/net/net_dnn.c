/* The oneDNN side of a net (see net_dnn.h). */
#include "worker/net/net_dnn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "worker/nn/conv_dnnl.h"

#define ALIGN_BYTES 64

static size_t up(size_t x)
{
    return (x + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES;
}

static size_t layer_floats(const net_layer *l, int batch)
{
    return (size_t)batch * (size_t)l->h * (size_t)l->w * (size_t)l->c;
}

/* The ReLU/ReLU6 that runs in place on conv c's output (or on the output of
 * the BN folded into c), or -1. */
static int fusable_relu(const net *n, int c)
{
    const net_layer *L = n->layers;
    int producer = L[c].fold_bn >= 0 ? L[c].fold_bn : c;
    for (int r = producer + 1; r < n->n_layers; r++)
        if ((L[r].kind == NET_RELU || L[r].kind == NET_RELU6) && L[r].inplace &&
            L[r].in[0] == producer)
            return r;
    return -1;
}

static int wants_onednn(const net *n, const net_layer *l)
{
    if (!nn_have_onednn() || n->backend == NN_BACKEND_OPENBLAS)
        return 0;
    /* auto: oneDNN for every conv, depthwise too (MobileNetV2 224 training,
     * 2 threads: 37-40 img/s with oneDNN's depthwise, 35-37 with ours). */
    (void)l;
    return 1;
}

/* The primitives' configuration of conv i; l->post_relu says which ReLU
 * the forward computes (net_dnn_plan sets it). */
static nn_dconv_cfg layer_cfg(const net *n, const net_layer *l, int i)
{
    nn_dconv_cfg cfg = {0};
    cfg.bias = l->fold_bn >= 0 || l->u.conv.bias;
    if (l->post_relu >= 0)
        cfg.post = n->layers[l->post_relu].kind == NET_RELU ? NN_POST_RELU : NN_POST_RELU6;
    if (i >= n->first_backward) {
        cfg.bwd_data = n->layers[l->in[0]].dout != NULL;
        cfg.bwd_weights = l->trainable;
    }
    cfg.prec = n->precision;
    return cfg;
}

static void *block_alloc(size_t bytes)
{
    void *p = NULL;
    size_t huge = (size_t)2 << 20;
    size_t align = bytes >= 4 * huge ? huge : ALIGN_BYTES;
    if (posix_memalign(&p, align, bytes ? bytes : 1) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (align == huge)
        madvise(p, bytes, MADV_HUGEPAGE); /* first touch several times cheaper here */
#endif
    memset(p, 0, bytes);
    return p;
}

int net_dnn_plan(net *n, int max_batch, tl_err *e)
{
    n->backend = nn_backend_get();
    n->precision = nn_precision_get();
    if (n->precision == NN_BF16 && (!nn_have_onednn() || !nn_cpu_has_bf16()))
        return tl_errf(e, TL_EINVAL,
                       "network: precision bf16 needs %s",
                       !nn_have_onednn() ? "a build with oneDNN (libdnnl-dev)"
                                         : "a CPU with AVX512_BF16");
    if (n->precision == NN_BF16 && n->backend == NN_BACKEND_OPENBLAS)
        return tl_errf(e, TL_EINVAL, "network: precision bf16 runs on oneDNN, not openblas");
    size_t off = 0, scratch = 0, dw = 0, act = 0, dtmp = 0, db = 0, wtmp = 0;
    for (int i = 1; i < n->n_layers; i++) {
        net_layer *l = &n->layers[i];
        if (l->kind == NET_CONV && l->fold_train && l->trainable) {
            size_t need = up(n->params[l->param0].n * sizeof(float)) + up((size_t)l->c * 4);
            wtmp = need > wtmp ? need : wtmp;
        }
        if (l->kind != NET_CONV || !wants_onednn(n, l))
            continue;
        nn_conv2d_shape s = l->u.conv.s;
        s.n = max_batch;
        l->post_relu = fusable_relu(n, i);
        nn_dconv_cfg cfg = layer_cfg(n, l, i);
        tl_err ce = {0};
        l->dc_max = nn_dconv_create(&s, &cfg, NULL, &ce);
        if (!l->dc_max) {
            l->post_relu = -1;
            if (n->precision == NN_BF16)
                return tl_errf(e, TL_EINVAL, "network: layer %s: %s", l->name, ce.msg);
            continue; /* stays on OpenBLAS */
        }
        l->onednn = 1;
        l->dc = l->dc_max;
        l->dc_batch = max_batch;
        n->n_onednn++;
        if (l->post_relu >= 0)
            n->layers[l->post_relu].fused = 1;
        if (cfg.bwd_data) {
            const net_layer *r = &n->layers[n->layers[l->in[0]].out_root];
            l->dinp_write = r->zero_dout_at == i;
            if (!l->dinp_write && layer_floats(&n->layers[l->in[0]], max_batch) > dtmp)
                dtmp = layer_floats(&n->layers[l->in[0]], max_batch);
        }
        nn_dconv_sizes z = nn_dconv_get_sizes(l->dc_max);
        l->wf_off = off;
        off += up(z.wfwd_bytes);
        l->wb_off = z.wbwd_bytes ? off : 0;
        off += up(z.wbwd_bytes);
        scratch = z.scratch_bytes > scratch ? z.scratch_bytes : scratch;
        dw = z.dw_bytes > dw ? z.dw_bytes : dw;
        act = z.act_bytes > act ? z.act_bytes : act;
        if (cfg.bwd_weights && (size_t)l->c > db)
            db = (size_t)l->c;
    }
    if (!n->n_onednn && !wtmp)
        return 0;
    n->scratch_off = off;
    n->scratch_bytes = up(scratch);
    n->dw_off = n->scratch_off + n->scratch_bytes;
    n->dw_bytes = up(dw);
    n->db_off = n->dw_off + n->dw_bytes;
    n->act_off = n->db_off + up(db * sizeof(float));
    n->act_bytes = up(act);
    n->dtmp_off = n->act_off + n->act_bytes;
    n->dtmp_floats = dtmp;
    n->wtmp_off = n->dtmp_off + up(dtmp * sizeof(float));
    n->dnn_bytes = n->wtmp_off + wtmp;
    n->dnn = block_alloc(n->dnn_bytes);
    if (!n->dnn)
        return tl_errf(e, TL_ENOMEM, "network: cannot allocate %.1f MiB for oneDNN's buffers",
                       (double)n->dnn_bytes / 1048576.0);
    n->dnn_stale = 1;
    return 0;
}

void net_dnn_free(net *n)
{
    for (int i = 0; i < n->n_layers; i++) {
        net_layer *l = &n->layers[i];
        if (l->dc && l->dc != l->dc_max)
            nn_dconv_free(l->dc);
        nn_dconv_free(l->dc_max);
        l->dc = l->dc_max = NULL;
    }
    free(n->dnn);
    n->dnn = NULL;
}

/* The HWIO kernel (and bias) a conv computes with: its own, or the folded one. */
static const float *conv_weights(net *n, const net_layer *l)
{
    if (l->fold_bn >= 0)
        return n->fold + l->fold_off;
    return n->weights + n->params[l->param0].off;
}

void net_dnn_prepare(net *n)
{
    if (!n->n_onednn)
        return;
    for (int i = 1; i < n->n_layers; i++) {
        net_layer *l = &n->layers[i];
        if (!l->onednn || (!l->trainable && !n->dnn_stale))
            continue;
        nn_dconv_prepare(l->dc_max, n->dnn + l->wf_off, n->dnn + l->wb_off, conv_weights(n, l),
                         n->dnn + n->scratch_off);
    }
    n->dnn_stale = 0;
}

/* The layer's primitives for this batch: those for max_batch, or a set made
 * for this batch with the same weight layouts, if its buffers fit. */
static nn_dconv *conv_for(net *n, net_layer *l, int batch)
{
    if (batch == l->dc_batch)
        return l->dc;
    if (l->dc != l->dc_max)
        nn_dconv_free(l->dc);
    l->dc = l->dc_max;
    l->dc_batch = n->max_batch;
    if (batch == n->max_batch)
        return l->dc;
    nn_conv2d_shape s = l->u.conv.s;
    s.n = batch;
    nn_dconv_cfg cfg = layer_cfg(n, l, (int)(l - n->layers));
    tl_err e = {0};
    nn_dconv *c = nn_dconv_create(&s, &cfg, l->dc_max, &e);
    if (!c)
        return NULL;
    nn_dconv_sizes z = nn_dconv_get_sizes(c);
    if (z.scratch_bytes > n->scratch_bytes || z.dw_bytes > n->dw_bytes ||
        z.act_bytes > n->act_bytes) {
        nn_dconv_free(c);
        return NULL;
    }
    l->dc = c;
    l->dc_batch = batch;
    return c;
}

static const void *fwd_weights(net *n, const net_layer *l)
{
    nn_dconv_sizes z = nn_dconv_get_sizes(l->dc_max);
    return z.wfwd_bytes ? (const void *)(n->dnn + l->wf_off) : (const void *)conv_weights(n, l);
}

static void ran(const net_layer *l, int rc, const char *what)
{
    if (rc == 0)
        return;
    fprintf(stderr, "tlsweep: oneDNN failed to run the %s of layer %s\n", what, l->name);
    exit(70);
}

int net_dnn_forward(net *n, net_layer *l, const float *inp, const float *bias, int batch)
{
    nn_dconv *c = conv_for(n, l, batch);
    if (!c)
        return -1;
    ran(l, nn_dconv_forward(c, l->out, inp, fwd_weights(n, l), bias, n->dnn + n->scratch_off,
                            n->dnn + n->act_off), "forward");
    return 0;
}

int net_dnn_backward(net *n, net_layer *l, float *dinp, float *dw, float *db, const float *inp,
                     int batch)
{
    nn_dconv *c = conv_for(n, l, batch);
    if (!c)
        return -1;
    void *scratch = n->dnn + n->scratch_off, *act = n->dnn + n->act_off;
    if (dinp) {
        nn_dconv_sizes z = nn_dconv_get_sizes(l->dc_max);
        const void *wb = z.wbwd_bytes ? (const void *)(n->dnn + l->wb_off) : fwd_weights(n, l);
        if (l->dinp_write) {
            ran(l, nn_dconv_backward_data(c, dinp, l->dout, wb, scratch, act), "backward data");
        } else {
            float *tmp = (float *)(void *)(n->dnn + n->dtmp_off);
            ran(l, nn_dconv_backward_data(c, tmp, l->dout, wb, scratch, act), "backward data");
            nn_add_backward(dinp, tmp, layer_floats(&n->layers[l->in[0]], batch));
        }
    }
    if (dw)
        ran(l, nn_dconv_backward_weights(c, dw, db, l->dout, inp, n->dnn + n->dw_off,
                                         (float *)(void *)(n->dnn + n->db_off), scratch, act),
            "backward weights");
    return 0;
}
