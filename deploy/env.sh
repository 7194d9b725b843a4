# shellcheck shell=bash
# Sourced by the deploy scripts (bash): the environment that tlsweep's builds,
# tests and runs want. Not meant to be run on its own.

# OpenBLAS chooses its kernels once, when the library loads. OPENBLAS_CORETYPE
# overrides the CPU detection: on an AVX-512 machine, a value such as Haswell
# (set by some images) pins OpenBLAS 0.3.21 to AVX2 kernels, which can halve
# sgemm speed on CPUs with full-width AVX-512. Unset it, unless TLSWEEP_BLAS_QUIET=1 says it is deliberate.
if [ -n "${OPENBLAS_CORETYPE:-}" ] && [ "${TLSWEEP_BLAS_QUIET:-}" != 1 ]; then
    echo "note: unsetting OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE so OpenBLAS picks this CPU's" \
         "own kernels (TLSWEEP_BLAS_QUIET=1 keeps it)" >&2
    unset OPENBLAS_CORETYPE
fi

# Open MPI 4 refuses to start as root (containers, CI) without these.
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# Parallel build jobs: TLSWEEP_JOBS, else every core.
TLSWEEP_JOBS=${TLSWEEP_JOBS:-$(nproc)}

# OpenMP threads that spin while waiting steal the core from the thread they
# wait for whenever anything else runs (another test, a build): passive
# waiting, unless the user chose. The tlsweep program does the same itself.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
