/* cli.c -- helpers shared by the subcommands' argument and configuration
 * parsing. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "daemon/cli.h"
#include "handlers/timefmt.h"

int mcd_cli_error(const char *cmd, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "multichanneld: %s: ", cmd);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return 2;
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
