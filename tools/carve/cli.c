/*
 * cli.c: option parsing and error reporting shared by the subcommands.
 */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */

#include "cli.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "carve%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'carve%s%s --help'.\n", cmd ? " " : "", cmd ? cmd : "");
    return CLI_EXIT_USAGE;
}

bool cli_option_value(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *arg = argv[*i];
    size_t len = strlen(name);

    if (strncmp(arg, name, len) != 0)
        return false;
    if (arg[len] == '=') {
        *value = arg + len + 1;
        *i += 1;
        return true;
    }
    if (arg[len] != '\0')
        return false; /* "--policyX" is another option, not ours */
    *value = (*i + 1 < argc) ? argv[*i + 1] : NULL;
    *i += (*value != NULL) ? 2 : 1;
    return true;
}

/* The multiplier a size suffix stands for, or 0 when it is not one. */
static size_t size_suffix_multiplier(const char *suffix)
{
    static const struct {
        const char *text;
        unsigned shift;
    } suffixes[] = {
        {"", 0},     {"b", 0},   {"k", 10}, {"kib", 10}, {"kb", 10}, {"m", 20},
        {"mib", 20}, {"mb", 20}, {"g", 30}, {"gib", 30}, {"gb", 30},
    };
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        if (strcasecmp(suffix, suffixes[i].text) == 0) {
            if (suffixes[i].shift >= sizeof(size_t) * 8u)
                return 0;
            return (size_t)1 << suffixes[i].shift;
        }
    }
    return 0;
}

bool cli_parse_size(const char *text, size_t *out)
{
    size_t value = 0;
    const char *p = text;

    if (text == NULL || !isdigit((unsigned char)*p))
        return false;
    for (; isdigit((unsigned char)*p); p++) {
        size_t digit = (size_t)(*p - '0');
        if (value > (SIZE_MAX - digit) / 10u)
            return false;
        value = value * 10u + digit;
    }
    size_t multiplier = size_suffix_multiplier(p);
    if (multiplier == 0 || value > SIZE_MAX / multiplier)
        return false;
    *out = value * multiplier;
    return true;
}

bool cli_parse_policy(const char *text, carve_policy *out)
{
    static const struct {
        const char *stem;
        carve_policy policy;
    } policies[] = {
        {"good", CARVE_GOOD_FIT},
        {"first", CARVE_FIRST_FIT},
        {"best", CARVE_BEST_FIT},
    };

    if (text == NULL)
        return false;
    if (strncasecmp(text, "carve_", 6) == 0)
        text += 6;
    for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++) {
        size_t len = strlen(policies[i].stem);
        if (strncasecmp(text, policies[i].stem, len) != 0)
            continue;
        const char *rest = text + len;
        if (*rest == '\0' ||
            ((rest[0] == '-' || rest[0] == '_') && strcasecmp(rest + 1, "fit") == 0)) {
            *out = policies[i].policy;
            return true;
        }
    }
    return false;
}

const char *cli_policy_name(carve_policy policy)
{
    switch (policy) {
    case CARVE_GOOD_FIT:
        return "GOOD_FIT";
    case CARVE_FIRST_FIT:
        return "FIRST_FIT";
    case CARVE_BEST_FIT:
        return "BEST_FIT";
    }
    return "?";
}

bool cli_use_color(FILE *stream, bool no_color_option)
{
    const char *no_color = getenv("NO_COLOR");
    if (no_color_option || (no_color != NULL && no_color[0] != '\0'))
        return false;
    return isatty(fileno(stream)) == 1;
}

char *cli_format_bytes(char *buf, size_t len, uint64_t bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024.0 && u + 1u < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, len, "%.*f %s", v < 10.0 ? 2 : v < 100.0 ? 1 : 0, v, units[u]);
    return buf;
}
