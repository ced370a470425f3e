/* commands.h -- the subcommands of the multichanneld executable.  Each takes
 * argc/argv starting at its own name and returns the process exit status. */
#ifndef MCD_COMMANDS_H
#define MCD_COMMANDS_H

int mcd_cmd_run(int argc, char **argv);
int mcd_cmd_check_config(int argc, char **argv);
int mcd_cmd_publish(int argc, char **argv);
int mcd_cmd_tail(int argc, char **argv);
int mcd_cmd_state(int argc, char **argv);
int mcd_cmd_lag(int argc, char **argv);
int mcd_cmd_mock_cluster(int argc, char **argv);

/* Loads the configuration for a subcommand: the file given with -c (which
 * must exist), else the default file when it exists, else the defaults.
 * Reports bad lines on stderr.  0, or the exit status to return. */
struct mcd_config;
int mcd_load_config_for(const char *cmd, const char *path, struct mcd_config *cfg);

#endif
