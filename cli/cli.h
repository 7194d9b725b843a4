/* Subcommands of the tlsweep program. Each takes the arguments after its
 * own name (argv[0] is the subcommand) and returns the process exit code:
 * 0 success, 1 failure, 2 bad usage. */
#ifndef TLSWEEP_CLI_H
#define TLSWEEP_CLI_H

#include <stdio.h>

int cli_version(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_demo(int argc, char **argv);
int cli_data(int argc, char **argv);
int cli_import(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_train(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_merge(int argc, char **argv);
int cli_report(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_predict(int argc, char **argv);
int cli_evaluate(int argc, char **argv);
int cli_embed(int argc, char **argv);
/* `tlsweep data check DIR` (cli_data_check.c), a row of cli_data's table. */
int cli_data_check(int argc, char **argv);

/* Prints the list of subcommands to f. */
void cli_usage(FILE *f);

#endif
