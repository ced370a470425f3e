/* cli.h -- small helpers shared by the subcommands' argument parsing. */
#ifndef MCD_CLI_H
#define MCD_CLI_H

#include <stdio.h>

#include "handlers/model.h"

/* Prints "multichanneld: CMD: <message>" on stderr; returns 2 (usage error). */
int mcd_cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct option;
/* getopt_long (opterr off), remembering where in argv the option it
 * returns began, for mcd_cli_bad_option. */
int mcd_getopt(int argc, char *const argv[], const char *shortopts, const struct option *longopts);
/* The option mcd_getopt just refused ('?') as a usage error of cmd, named
 * as typed: '--frob', '-c' (its argument missing), or '-x' (in '-vx').
 * Returns 2. */
int mcd_cli_bad_option(const char *cmd, char *const argv[]);

/* Parses an integer of digits only (no sign, blanks or base prefix) in
 * min..max.  0 or -EINVAL. */
int mcd_parse_digits(const char *s, long long min, long long max, long long *out);

/* Parses a duration: a non-negative integer with a unit ms, s, m, h or d
 * ("500ms", "10m").  Returns 0 or -EINVAL. */
int mcd_parse_duration(const char *s, mcd_time_t *ms);

/* Parses the TIME argument of an option (ISO-8601 UTC, timefmt.h) into
 * *out.  0, or 2 once "CMD: OPTION: invalid time ..." is on stderr. */
int mcd_cli_parse_time(const char *cmd, const char *option, const char *arg, mcd_time_t *out);

/* Opens the FILE argument for reading: NULL or "-" is stdin.  0, or 2 once
 * "CMD: FILE: cannot open ..." is on stderr.  Close with mcd_cli_close_input. */
int mcd_cli_open_input(const char *cmd, const char *path, FILE **in);
void mcd_cli_close_input(FILE *in);

#endif
