/*
 * commands.h - the subcommands of the `kiln` binary, one file each under
 * src/cli/ (cmd_<name>.c).  Each takes the arguments after its name
 * (argv[0] is the subcommand name) and returns the process exit status:
 * 0 success, 1 a failed check, 2 bad usage or bad input.
 */
#ifndef KILN_CLI_COMMANDS_H
#define KILN_CLI_COMMANDS_H

enum { KILN_EXIT_OK = 0, KILN_EXIT_CHECK_FAILED = 1, KILN_EXIT_BAD_INPUT = 2 };

int kiln_cmd_run(int argc, char **argv);
int kiln_cmd_conformance(int argc, char **argv);
int kiln_cmd_optimize(int argc, char **argv);
int kiln_cmd_bench(int argc, char **argv);
int kiln_cmd_monitor(int argc, char **argv);
int kiln_cmd_serve(int argc, char **argv);
int kiln_cmd_top(int argc, char **argv);

#endif
