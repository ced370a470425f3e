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
int mcd_cmd_whatif(int argc, char **argv);
int mcd_cmd_redrive(int argc, char **argv);
int mcd_cmd_mock_cluster(int argc, char **argv);

/* Loads the configuration for a subcommand: the file given with -c (which
 * must exist), else the default file when it exists, else the defaults.
 * Reports bad lines on stderr.  0, or the exit status to return. */
struct mcd_config;
int mcd_load_config_for(const char *cmd, const char *path, struct mcd_config *cfg);

/* The helpers of the tools that read Redis (cmd_tools.c).  The store of
 * cfg's redis.* keys; its warnings go to stderr, named by cmd.  As
 * mcd_store_new. */
struct mcd_store;
struct mcd_customer;
int mcd_tool_store_new(const char *cmd, const struct mcd_config *cfg, struct mcd_store **out);

/* A customer's stored state (binary, or the JSON of earlier versions)
 * decoded into c, initialised by the callee.  0; -ENOENT when none is
 * stored; -EINVAL when it is unreadable (named on stderr); or the store's
 * error.  c needs clearing only on 0. */
int mcd_tool_load_customer(const char *cmd, struct mcd_store *store, const char *id, struct mcd_customer *c);

#endif
