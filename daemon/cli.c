/* cli.c -- helpers shared by the subcommands' argument and configuration
 * parsing. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <getopt.h>

#include "daemon/cli.h"
#include "handlers/timefmt.h"

static int option_at;        /* where in argv the option mcd_getopt last returned began */

int mcd_cli_error(const char *cmd, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "multichanneld: %s: ", cmd);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return 2;
}

int mcd_getopt(int argc, char *const argv[], const char *shortopts, const struct option *longopts) {
        opterr = 0;
        option_at = optind;     /* in a group (-vx), getopt moves on only after its last letter */
        return getopt_long(argc, argv, shortopts, longopts, NULL);
}

int mcd_cli_bad_option(const char *cmd, char *const argv[]) {
        const char *arg = argv[option_at];

        if (arg[0] == '-' && arg[1] != '-' && strlen(arg) > 2 && optopt > ' ' && optopt < 127)
                return mcd_cli_error(cmd, "unknown or incomplete option '-%c' (in '%s')", optopt, arg);
        return mcd_cli_error(cmd, "unknown or incomplete option '%s'", arg);
}

int mcd_parse_digits(const char *s, long long min, long long max, long long *out) {
        long long v = 0;

        if (*s == '\0')
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9' || v > (LLONG_MAX - 9) / 10)
                        return -EINVAL;
                v = v * 10 + (*p - '0');
        }
        if (v < min || v > max)
                return -EINVAL;
        *out = v;
        return 0;
}

int mcd_parse_duration(const char *s, mcd_time_t *ms) {
        static const struct {
                const char *unit;
                mcd_time_t factor;
        } units[] = {
                {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
        };
        mcd_time_t v = 0;
        const char *p = s;

        if (!s || *p < '0' || *p > '9')
                return -EINVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
                if (v > (INT64_MAX - 9) / 10 / 86400000)
                        return -EINVAL;
                v = v * 10 + (*p - '0');
        }
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
                if (strcmp(p, units[i].unit) == 0) {
                        *ms = v * units[i].factor;
                        return 0;
                }
        return -EINVAL;
}

int mcd_cli_parse_time(const char *cmd, const char *option, const char *arg, mcd_time_t *out) {
        if (mcd_time_parse(arg, out) < 0)
                return mcd_cli_error(cmd, "%s: invalid time '%s' (expected ISO-8601 UTC, e.g. 2026-12-01T00:00:00.000Z)",
                                     option, arg);
        return 0;
}

int mcd_cli_open_input(const char *cmd, const char *path, FILE **in) {
        *in = stdin;
        if (!path || strcmp(path, "-") == 0)
                return 0;
        *in = fopen(path, "re");
        if (!*in)
                return mcd_cli_error(cmd, "FILE: cannot open '%s': %s", path, strerror(errno));
        return 0;
}

void mcd_cli_close_input(FILE *in) {
        if (in && in != stdin)
                fclose(in);
}
