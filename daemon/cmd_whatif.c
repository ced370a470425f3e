/* cmd_whatif.c -- `multichanneld whatif`: what would happen to one live
 * customer if these events came now.  Support staff's second question, after
 * `state` has told them where the customer stands.
 *
 * DESIGN: the customer's state is read from Redis (as `state` reads it) and
 * handed to replay (replay.h) as the state that customer starts from; replay
 * then applies the given JSON-lines events with the rules' settings of the
 * configuration file (park_grace, dedup_window, limits.*), exactly as for a
 * whole history, and prints the outcomes and the resulting state.  So the
 * outcomes are those replay gives for the customer's history followed by the
 * new events, less those of the history alone.  The clock is stream time, as
 * in replay: the latest occurred_at of the events given, and --now fires what
 * is due up to it at the end.  Nothing is written anywhere: Redis is only
 * read (one GET), and no Kafka client is made. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "daemon/cli.h"
#include "daemon/commands.h"
#include "daemon/config.h"
#include "daemon/replay.h"
#include "daemon/store.h"

#define CMD "whatif"

/* The customer's state from Redis into *c, or the empty state when Redis
 * holds none (said on stderr).  0, or 1 once the reason is on stderr. */
static int load_customer(const struct mcd_config *cfg, const char *id, struct mcd_customer *c) {
        struct mcd_store *store = NULL;
        int r = mcd_tool_store_new(CMD, cfg, &store);

        if (r >= 0)
                r = mcd_tool_load_customer(CMD, store, id, c);
        if (r == -ENOENT) {
                fprintf(stderr, "multichanneld: %s: Redis holds no state for customer '%s': "
                        "starting from the empty state\n", CMD, id);
                r = mcd_customer_init(c, id);
        }
        if (r < 0 && r != -EINVAL)
                fprintf(stderr, "multichanneld: %s: Redis at %s: %s\n", CMD,
                        store ? mcd_store_where(store) : cfg->redis_host, strerror(-r));
        mcd_store_free(store);
        return r < 0 ? 1 : 0;
}

int mcd_cmd_whatif(int argc, char **argv) {
        static const struct option opts[] = {
                {"config", required_argument, NULL, 'c'},
                {"now", required_argument, NULL, 'n'},
                {"compact", no_argument, NULL, 'C'},
                {0},
        };
        struct mcd_replay_options opt = {.state_out = stdout, .state_pretty = true};
        struct mcd_customer customer;
        struct mcd_config cfg;
        const char *path = NULL;
        FILE *in = NULL;
        int c, r, status;

        optind = 1;
        while ((c = mcd_getopt(argc, argv, "+c:", opts)) != -1) {
                switch (c) {
                case 'c':
                        path = optarg;
                        break;
                case 'n':
                        if (mcd_cli_parse_time(CMD, "--now", optarg, &opt.now) != 0)
                                return 2;
                        opt.has_now = true;
                        break;
                case 'C':
                        opt.state_pretty = false;
                        break;
                default:
                        return mcd_cli_bad_option(CMD, argv);
                }
        }
        if (optind >= argc)
                return mcd_cli_error(CMD, "expected a CUSTOMER_ID argument");
        if (argv[optind][0] == '\0')
                return mcd_cli_error(CMD, "CUSTOMER_ID: must not be empty");
        if (argc - optind > 2)
                return mcd_cli_error(CMD, "unexpected argument '%s' (only one FILE is read)", argv[optind + 2]);
        opt.only_customer = argv[optind];
        if ((status = mcd_load_config_for(CMD, path, &cfg)) != 0)
                return status;
        mcd_config_rules(&cfg, &opt.rules);
        if ((status = mcd_cli_open_input(CMD, optind + 1 < argc ? argv[optind + 1] : NULL, &in)) != 0)
                goto out;
        if ((status = load_customer(&cfg, opt.only_customer, &customer)) != 0)
                goto out;
        opt.seed = &customer;
        r = mcd_replay(in, stdout, stderr, &opt);
        if (r < 0) {
                fprintf(stderr, "multichanneld: %s: %s\n", CMD, strerror(-r));
                r = 1;
        }
        status = r;
out:
        mcd_cli_close_input(in);
        mcd_config_clear(&cfg);
        return status;
}
