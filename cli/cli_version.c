#include "cli/cli.h"

#include "tlsweep.pb-c.h"

int cli_version(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "usage: tlsweep version\n");
        return 2;
    }
    printf("tlsweep %s (protocol %d)\n", TLSWEEP_VERSION,
           TLSWEEP__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
    return 0;
}
