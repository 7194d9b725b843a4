/* Which backend computes the engine's convolutions, and in which precision.
 *
 * Two backends, one engine: OpenBLAS (GEMM + the hand-written AVX-512
 * kernels in worker/nn) is complete and always built; oneDNN (Debian's
 * libdnnl, built in when found) computes convolutions where it is faster.
 * The choice is made per layer when a net is finalized (net_finalize reads
 * the process-wide setting below), so setting it affects nets finalized
 * afterwards only.
 *
 * Setting order: a sweep's `engine:` key, else TLSWEEP_ENGINE, else auto.
 * Precision in a sweep is a grid axis (`grid.precision`, default fp32: part
 * of a trial's identity), set by the worker for every trial;
 * TLSWEEP_PRECISION applies to `tlsweep train` and the benchmark. */
#ifndef TLSWEEP_NN_BACKEND_H
#define TLSWEEP_NN_BACKEND_H

typedef enum {
    NN_BACKEND_AUTO = 0,  /* oneDNN where it is faster, else OpenBLAS */
    NN_BACKEND_OPENBLAS,  /* OpenBLAS and our kernels only */
    NN_BACKEND_ONEDNN,    /* oneDNN for every convolution it can compute */
} nn_backend;

typedef enum {
    NN_FP32 = 0,
    NN_BF16,              /* bf16 compute, fp32 master weights (needs AVX512_BF16 + oneDNN) */
} nn_precision;

/* Names as the sweep file and the environment spell them ("auto",
 * "openblas", "onednn"; "fp32", "bf16"). Parsers return 0 on success,
 * -1 for an unknown name. */
const char *nn_backend_name(nn_backend b);
int nn_backend_parse(const char *s, nn_backend *out);
const char *nn_precision_name(nn_precision p);
int nn_precision_parse(const char *s, nn_precision *out);

/* The process-wide setting (first read: the environment, once). */
nn_backend nn_backend_get(void);
void nn_backend_set(nn_backend b);
nn_precision nn_precision_get(void);
void nn_precision_set(nn_precision p);

/* 1 when this build has oneDNN (compiled with it and the library works). */
int nn_have_onednn(void);
/* 1 when the CPU executes AVX512_BF16 (VDPBF16PS) and the OS saves AVX-512
 * state: what bf16 mode needs. */
int nn_cpu_has_bf16(void);
/* One line naming the oneDNN version and ISA, or saying it is not built in.
 * Returns buf. */
char *nn_onednn_describe(char *buf, int n);

#endif
