/* The FMA peak of this machine, measured: the 100% that bench/compare.py
 * puts the engine's GFLOP/s against. */
#ifndef TLSWEEP_BENCH_PEAK_H
#define TLSWEEP_BENCH_PEAK_H

/* Runs the peak kernel on `threads` OpenMP threads (fp32: VFMADD231PS,
 * bf16: VDPBF16PS) and prints one JSON object on stdout. Returns the exit
 * status: 0, or 1 when the CPU cannot run the kernel (the JSON says so). */
int peak_main(int threads, int bf16);

#endif
