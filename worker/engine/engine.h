/* The engine's process-wide settings: threads for OpenBLAS (GEMM) and for
 * the hand-written OpenMP kernels, and what OpenBLAS chose for this CPU. */
#ifndef TLSWEEP_ENGINE_H
#define TLSWEEP_ENGINE_H

#include <stddef.h>

/* Sets OpenBLAS threads and nn kernel threads to n; n <= 0 means
 * engine_threads_default(). Returns the count applied. */
int engine_threads_set(int n);
/* Threads OpenBLAS currently uses. */
int engine_threads_get(void);
/* TLSWEEP_THREADS when set to a positive integer, else the number of cores
 * this process may run on (sched_getaffinity: respects taskset, Slurm and
 * mpirun bindings). Always >= 1. */
int engine_threads_default(void);

/* One line such as "OpenBLAS 0.3.21 Cooperlake kernels, 2 threads".
 * Returns buf. */
char *engine_blas_describe(char *buf, size_t n);

/* Returns 1 and fills buf with a one-line warning when the CPU has AVX-512
 * but OPENBLAS_CORETYPE forced OpenBLAS onto a core without it (GEMM up to
 * 2x slower, depending on the CPU); returns 0 and leaves buf empty otherwise, or when
 * TLSWEEP_BLAS_QUIET=1 says the setting is deliberate. */
int engine_blas_warning(char *buf, size_t n);

/* OpenMP threads that wait by spinning steal the core from the thread they
 * wait for whenever the machine is shared (a login node, mpirun
 * --oversubscribe, other jobs): measured 5x slower MobileNetV2 inference on
 * 2 busy cores. libgomp reads OMP_WAIT_POLICY once, when it loads, so when
 * the user has not set it this sets it to passive and re-executes the
 * program (same pid, arguments and environment otherwise; before MPI_Init).
 * TLSWEEP_NO_REEXEC=1 turns this off. Returns only when no re-exec happened. */
void engine_reexec_tuned(char **argv);

#endif
