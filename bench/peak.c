/* The peak kernel: CHAINS independent accumulators, each a dependency chain
 * of fused multiply-adds. With more chains than latency x FMA ports (4-6
 * cycles x 2 on current x86), every port starts one instruction a cycle, so
 * the FLOP rate is the most this core can do with that instruction: the
 * denominator of "% of peak" in bench/compare.py, measured in the same run
 * as the figures it divides (clock, turbo and neighbours alike).
 *
 * fp32: VFMADD231PS zmm (32 FLOP each). bf16: VDPBF16PS zmm (32 bf16
 * products summed pairwise into 16 fp32 lanes: 64 FLOP each). The kernels
 * are compiled for their ISA by a target attribute and chosen at run time,
 * whatever -march the build used; a CPU without AVX-512 (or AVX512_BF16)
 * gets "supported": false. */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <time.h>

#include "bench/peak.h"
#include "worker/nn/backend.h"

#define CHAINS 16 /* 16 accumulators + 2 operands of the 32 zmm registers */
#define REPS 5
#define REP_SECONDS 0.2

typedef double (*peak_kernel)(long iters);

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The accumulators grow by a small step per instruction (no overflow, no
 * denormals in any run length here); their sum is returned and printed, so
 * the compiler has to compute every one of them. */
__attribute__((target("avx512f"))) static inline void acc_init(__m512 *acc)
{
    for (int k = 0; k < CHAINS; k++)
        acc[k] = _mm512_set1_ps((float)k);
}

__attribute__((target("avx512f"))) static inline double acc_sum(const __m512 *acc)
{
    __m512 s = acc[0];
    for (int k = 1; k < CHAINS; k++)
        s = _mm512_add_ps(s, acc[k]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f"))) static double kernel_fma(long iters)
{
    const __m512 x = _mm512_set1_ps(1e-3f), y = _mm512_set1_ps(1e-4f);
    __m512 acc[CHAINS];
    acc_init(acc);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 16
        for (int k = 0; k < CHAINS; k++)
            acc[k] = _mm512_fmadd_ps(x, y, acc[k]);
    }
    return acc_sum(acc);
}

__attribute__((target("avx512f,avx512bf16"))) static double kernel_dpbf16(long iters)
{
    const __m512 small = _mm512_set1_ps(1e-3f);
    const __m512bh a = _mm512_cvtne2ps_pbh(small, small);
    __m512 acc[CHAINS];
    acc_init(acc);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 16
        for (int k = 0; k < CHAINS; k++)
            acc[k] = _mm512_dpbf16_ps(acc[k], a, a);
    }
    return acc_sum(acc);
}

/* One timed run of `iters` loop trips on every thread; returns the wall
 * seconds, adds the checksum, and stores how many threads really ran. */
static double timed_run(peak_kernel k, long iters, int threads, int *ran, double *check)
{
    double sum = 0;
    int n = 0;
    double t0 = now();
#pragma omp parallel num_threads(threads) reduction(+ : sum)
    {
        sum += k(iters);
#pragma omp single nowait
        n = omp_get_num_threads();
    }
    double dt = now() - t0;
    *ran = n;
    *check += sum;
    return dt;
}

int peak_main(int threads, int bf16)
{
    int ok = bf16 ? nn_cpu_has_bf16() : __builtin_cpu_supports("avx512f");
    peak_kernel k = bf16 ? kernel_dpbf16 : kernel_fma;
    const char *insn = bf16 ? "vdpbf16ps zmm" : "vfmadd231ps zmm";
    double flop_per_trip = CHAINS * (bf16 ? 64.0 : 32.0);
    const char *prec = bf16 ? "bf16" : "fp32";
    if (!ok) {
        printf("{\"impl\": \"peak\", \"precision\": \"%s\", \"supported\": false, "
               "\"instruction\": \"%s\", \"gflops\": null}\n", prec, insn);
        return 1;
    }

    /* Calibrate: double the trip count until a run takes 20 ms (this also
     * starts the thread pool), then scale it to REP_SECONDS. */
    double check = 0, dt;
    int ran = 0;
    long iters = 1 << 14;
    while ((dt = timed_run(k, iters, threads, &ran, &check)) < 0.02)
        iters *= 2;
    iters = (long)(iters * REP_SECONDS / dt) + 1;

    double best = 0, reps[REPS];
    for (int r = 0; r < REPS; r++) {
        dt = timed_run(k, iters, threads, &ran, &check);
        reps[r] = ran * (double)iters * flop_per_trip / dt / 1e9;
        if (reps[r] > best)
            best = reps[r];
    }
    printf("{\"impl\": \"peak\", \"precision\": \"%s\", \"supported\": true, "
           "\"instruction\": \"%s\", \"chains\": %d, \"threads\": %d, "
           "\"trips_per_thread\": %ld, \"gflops\": %.1f, \"gflops_per_thread\": %.1f, "
           "\"gflops_reps\": [",
           prec, insn, CHAINS, ran, iters, best, best / ran);
    for (int r = 0; r < REPS; r++)
        printf("%s%.1f", r ? ", " : "", reps[r]);
    printf("], \"checksum\": %.6g}\n", check);
    return 0;
}
