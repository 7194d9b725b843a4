/* tlsweep: one program, subcommands as in git. Under mpirun every rank
 * runs the same command; `run` decides who coordinates. */
#include "cli/cli.h"
#include "worker/engine/engine.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} cli_command;

static const cli_command commands[] = {
    {"version", cli_version, "print the tlsweep and wire protocol versions"},
    {"info", cli_info, "describe this machine: cores, CPU flags, OpenBLAS, MPI"},
    {"demo", cli_demo, "train one backbone on a synthetic task (engine smoke run)"},
    {"data", cli_data, "prepare datasets: fashion-mnist (idx files to class folders of JPEGs)"},
    {"import", cli_import, "weights (tfjs, .h5, safetensors, .tlm) into a native .tlm model file"},
    {"export", cli_export, "a .tlm to ONNX for the runtimes models are deployed with"},
    {"train", cli_train, "one transfer-learning trial: a backbone, a folder dataset, a best .tlm"},
    {"predict", cli_predict, "top classes of images under a trained .tlm, with probabilities"},
    {"evaluate", cli_evaluate, "a trained .tlm on class folders: accuracy, loss, confusion matrix"},
    {"embed", cli_embed, "backbone features (pooled) of images, to safetensors or CSV"},
    {"run", cli_run, "run a sweep file: under mpirun/srun across ranks, or in one process"},
    {"merge", cli_merge, "join the slices of a job array (run --slice I/N) into one leaderboard"},
    {"status", cli_status, "a running or finished sweep's progress from OUT/journal (--json, --watch)"},
    {"report", cli_report, "write OUT/report.html (leaderboard, curves, heat map) from results.json"},
    /* benchmarks are programs of their own: tlsweep-bench, tlsweep-data-bench (bench/) */
};
#define NCOMMANDS (sizeof commands / sizeof *commands)

void cli_usage(FILE *f)
{
    fprintf(f, "usage: tlsweep <command> [args]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-10s %s\n", "help", "show this list");
}

int main(int argc, char **argv)
{
    engine_reexec_tuned(argv);
    if (argc < 2) {
        cli_usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    if (strcmp(name, "help") != 0 && strcmp(name, "--help") != 0 && strcmp(name, "-h") != 0)
        fprintf(stderr, "tlsweep: unknown command '%s'\n\n", name);
    cli_usage(stderr);
    return 2;
}
