/* cli.h -- small helpers shared by the subcommands' argument parsing. */
#ifndef MCD_CLI_H
#define MCD_CLI_H

#include "handlers/model.h"

/* Prints "multichanneld: CMD: <message>" on stderr; returns 2 (usage error). */
int mcd_cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a duration: a non-negative integer with a unit ms, s, m, h or d
 * ("500ms", "10m").  Returns 0 or -EINVAL. */
int mcd_parse_duration(const char *s, mcd_time_t *ms);

#endif
