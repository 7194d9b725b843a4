/* What this CPU executes, for choices made before any kernel runs: the
 * sweep's check that a bf16 trial can run here (common/sweep) and the
 * engine's own (worker/nn/backend.h's nn_cpu_has_bf16 asks this). */
#ifndef TLSWEEP_CPU_H
#define TLSWEEP_CPU_H

/* 1 when the CPU executes AVX512_BF16 (VDPBF16PS) and the OS saves the
 * AVX-512 state, else 0. TLSWEEP_CPU_NO_BF16=1 in the environment makes it
 * 0, so that tests see a CPU without it. */
int tl_cpu_has_avx512_bf16(void);

#endif
