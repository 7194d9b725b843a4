#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "cli/cli.h"

#include "worker/engine/engine.h"

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

    char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0, major = 0, minor = 0;
    MPI_Get_library_version(mpi, &len);
    MPI_Get_version(&major, &minor);
    /* Some MPI libraries return several lines: the first says enough. */
    mpi[strcspn(mpi, "\n")] = '\0';
    printf("mpi:       %s (MPI %d.%d)\n", mpi, major, minor);
    return 0;
}
