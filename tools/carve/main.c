/*
 * main.c: the `carve` command-line tool: global options and subcommand
 * dispatch.
 *
 *   carve [--help | --version]
 *   carve help [COMMAND]
 *   carve COMMAND [OPTIONS]
 *
 * A subcommand is one entry in `commands` below plus one source file; later
 * subcommands are added the same way.  Exit status:
 * 0 success, 1 the command failed, 2 bad command line.
 */
#include "cli.h"

#include <stdbool.h>
#include <string.h>

static const cli_command commands[] = {
    {"demo", "show on a small heap what carve does, policy by policy", demo_help, demo_main},
    {"record", "run a program under carve's malloc and write its allocation trace", record_help,
     record_main},
    {"replay", "replay an allocation trace on carve (and other mallocs): time and space",
     replay_help, replay_main},
    {"map", "draw the heap over a trace as an SVG (or PNG) picture", map_help, map_main},
};
enum { COMMAND_COUNT = sizeof commands / sizeof commands[0] };

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    }
    return NULL;
}

static void print_usage(FILE *out)
{
    fprintf(out, "Usage: carve COMMAND [OPTIONS]\n"
                 "       carve help [COMMAND]\n"
                 "       carve --version\n"
                 "\n"
                 "carve is an allocator for memory its user already owns: you hand it a\n"
                 "buffer (a static array, an mmap'd region, shared memory) and it hands out\n"
                 "and takes back blocks inside it.  This tool shows and inspects such heaps.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "  %-10s %s\n"
            "\n"
            "Options:\n"
            "  -h, --help     show this help\n"
            "  -V, --version  print the version of the carve library and exit\n"
            "\n"
            "Run 'carve help COMMAND' or 'carve COMMAND --help' for a command's options.\n"
            "Start with 'carve demo'.\n",
            "help", "show this help, or a command's help");
}

static bool is_help_option(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

static void print_help_usage(FILE *out)
{
    fprintf(out, "Usage: carve help [COMMAND]\n"
                 "\n"
                 "Without COMMAND, lists the commands and the global options (as carve --help);\n"
                 "with one, shows that command's options (as carve COMMAND --help).\n");
}

/* `carve help [COMMAND]`: argv[0] is "help". */
static int run_help(int argc, char **argv)
{
    if (argc < 2 || (argc == 2 && is_help_option(argv[1]))) {
        print_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (argc > 2) {
        fprintf(stderr, "carve help: expected at most one command name\nTry 'carve --help'.\n");
        return CLI_EXIT_USAGE;
    }
    /* help is listed with the commands but is not in `commands`: it
     * dispatches them. */
    if (strcmp(argv[1], "help") == 0) {
        print_help_usage(stdout);
        return CLI_EXIT_OK;
    }
    const cli_command *cmd = find_command(argv[1]);
    if (cmd == NULL) {
        fprintf(stderr, "carve help: unknown command '%s'\nTry 'carve --help'.\n", argv[1]);
        return CLI_EXIT_USAGE;
    }
    cmd->help(stdout);
    return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *first = argv[1];
    if (is_help_option(first))
        return run_help(1, argv + 1);
    if (strcmp(first, "-V") == 0 || strcmp(first, "--version") == 0) {
        printf("carve %s\n", carve_version());
        return CLI_EXIT_OK;
    }
    if (strcmp(first, "help") == 0)
        return run_help(argc - 1, argv + 1);
    if (first[0] == '-') {
        fprintf(stderr, "carve: unknown option '%s'\nTry 'carve --help'.\n", first);
        return CLI_EXIT_USAGE;
    }
    const cli_command *cmd = find_command(first);
    if (cmd == NULL) {
        fprintf(stderr, "carve: unknown command '%s'\nTry 'carve --help'.\n", first);
        return CLI_EXIT_USAGE;
    }
    return cmd->run(argc - 1, argv + 1);
}
