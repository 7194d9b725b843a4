#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "cli/cli.h"

#include "worker/engine/engine.h"
#include "worker/nn/backend.h"

#include <mpi.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Everything here must work without mpirun and without MPI_Init:
 * MPI_Get_library_version is one of the few calls allowed before it. */
int cli_info(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "usage: tlsweep info\n");
        return 2;
    }

    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    cpu_set_t set;
    int usable = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1;
    printf("host:      %s\n", host);
    printf("cores:     %d usable by this process, %ld online\n", usable, online);
    if (pages > 0 && page > 0)
        printf("memory:    %.1f GiB\n", (double)pages * (double)page / (1 << 30));

    __builtin_cpu_init();
    printf("cpu flags: avx2=%s avx512f=%s\n", __builtin_cpu_supports("avx2") ? "yes" : "no",
           __builtin_cpu_supports("avx512f") ? "yes" : "no");

    char buf[512];
    printf("blas:      %s\n", engine_blas_describe(buf, sizeof buf));
    if (engine_blas_warning(buf, sizeof buf)) {
        fflush(stdout); /* keep the warning next to the line it is about */
        fprintf(stderr, "%s\n", buf);
    }
    const char *tenv = getenv("TLSWEEP_THREADS");
    printf("threads:   %d by default%s\n", engine_threads_default(),
           tenv && *tenv ? " (TLSWEEP_THREADS is set)" : " (one per usable core)");
    printf("onednn:    %s\n", nn_onednn_describe(buf, (int)sizeof buf));
    const char *eenv = getenv("TLSWEEP_ENGINE");
    printf("engine:    %s by default%s\n", nn_backend_name(nn_backend_get()),
           eenv && *eenv ? " (TLSWEEP_ENGINE is set)" : " (a sweep's engine: key chooses)");
    /* what a sweep's grid.precision: bf16 needs (sweep_check_host) */
    const char *fake = getenv("TLSWEEP_CPU_NO_BF16");
    if (!nn_cpu_has_bf16())
        printf("bf16:      no: the CPU has no AVX512_BF16%s\n",
               fake && !strcmp(fake, "1") ? " (TLSWEEP_CPU_NO_BF16=1 says so)" : "");
    else if (!nn_have_onednn())
        printf("bf16:      no: the CPU has AVX512_BF16, but this build has no oneDNN\n");
    else
        printf("bf16:      yes (the CPU has AVX512_BF16)\n");

    char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0, major = 0, minor = 0;
    MPI_Get_library_version(mpi, &len);
    MPI_Get_version(&major, &minor);
    /* Some MPI libraries return several lines: the first says enough. */
    mpi[strcspn(mpi, "\n")] = '\0';
    printf("mpi:       %s (MPI %d.%d)\n", mpi, major, minor);
    return 0;
}
