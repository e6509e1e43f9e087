/*
 * cli.h: what the `carve` tool's subcommands share.
 *
 * Each subcommand is one entry in the table in main.c: a name, a one-line
 * summary for `carve help`, a help printer and a run function.  Run functions
 * receive argv with argv[0] being the subcommand's name and return the
 * process exit status: CLI_EXIT_OK, CLI_EXIT_FAILURE (the work failed, e.g.
 * the library misbehaved) or CLI_EXIT_USAGE (a bad command line).
 *
 * The helpers below parse the options several subcommands take (--policy,
 * --heap-size) so that every subcommand spells them, and reports their
 * errors, the same way.
 */
#ifndef CARVE_TOOL_CLI_H
#define CARVE_TOOL_CLI_H

#include <carve.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1,
    CLI_EXIT_USAGE = 2,
};

typedef struct cli_command {
    const char *name;
    const char *summary; /* one line, shown by `carve help` */
    void (*help)(FILE *out);
    int (*run)(int argc, char **argv);
} cli_command;

/* The subcommands (one file each). */
void demo_help(FILE *out);
int demo_main(int argc, char **argv);
void replay_help(FILE *out);
int replay_main(int argc, char **argv);
void map_help(FILE *out);
int map_main(int argc, char **argv);
void record_help(FILE *out);
int record_main(int argc, char **argv);

/* Prints "carve CMD: <message>" and a hint to run `carve CMD --help` on
 * stderr; returns CLI_EXIT_USAGE so a caller can `return cli_usage_error(...)`. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Matches an option that takes a value, written "--name VALUE" or
 * "--name=VALUE".  When argv[*i] is that option, stores the value in *value,
 * advances *i past what it consumed and returns true; *value is NULL when the
 * value is missing (the caller reports it).  Otherwise returns false. */
bool cli_option_value(int argc, char **argv, int *i, const char *name, const char **value);

/* Parses a byte count: decimal digits with an optional suffix K, KiB, M, MiB,
 * G or GiB (powers of 1024, any case).  False on anything else or overflow. */
bool cli_parse_size(const char *text, size_t *out);

/* Parses a policy name: "good", "good-fit", "good_fit", "GOOD_FIT" or
 * "CARVE_GOOD_FIT" (any case), and the same for first and best. */
bool cli_parse_policy(const char *text, carve_policy *out);

/* "GOOD_FIT", "FIRST_FIT", "BEST_FIT" (or "?" for anything else). */
const char *cli_policy_name(carve_policy policy);

/* bytes as "512 B", "13.2 MiB" and the like, written into buf; returns buf. */
char *cli_format_bytes(char *buf, size_t len, uint64_t bytes);

/* Whether to use ANSI colour on `stream`: only when it is a terminal, the
 * user did not pass --no-color, and the NO_COLOR convention is not set. */
bool cli_use_color(FILE *stream, bool no_color_option);

#endif /* CARVE_TOOL_CLI_H */
