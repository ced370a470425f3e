/* main.c -- the multichanneld executable: subcommand dispatch and the
 * command-line parsing of each subcommand.  Errors name the argument at
 * fault; exit status 2 for a usage error. */
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build-config.h"
#include "daemon/cli.h"
#include "daemon/commands.h"
#include "daemon/config.h"
#include "daemon/crash.h"
#include "daemon/replay.h"
#include "handlers/timefmt.h"

static void usage(FILE *f) {
        fputs("usage: multichanneld COMMAND [OPTIONS]\n"
              "\n"
              "commands:\n"
              "  run [-c FILE] [--embedded-kafka [--partitions N]]\n"
              "                     the daemon: consume, apply, store, publish, until SIGTERM\n"
              "  replay [--now TIME] [--park-grace DURATION] [--dedup-window DURATION]\n"
              "         [--max-seen-ids N] [--max-subscriptions N] [--max-parked N]\n"
              "         [--state-out FILE] [FILE]\n"
              "                     apply the rules to JSON-lines events, print outcomes\n"
              "  check-config [-c FILE] [--print]\n"
              "                     validate a configuration file, naming each bad line\n"
              "  publish [-c FILE] [-b BOOTSTRAP] [--topic relationships|subscriptions] [--writer-schema FILE]\n"
              "          [--format single-object|confluent] [--in-order] [FILE]\n"
              "                     produce JSON-lines events to the input topics as Avro\n"
              "  tail [-c FILE] [-b BOOTSTRAP] [--exit-at-end] [--dlq]\n"
              "                     print the outcome (or dead-letter) topic as JSON lines\n"
              "  state [-c FILE] [--compact] CUSTOMER_ID...\n"
              "                     print a customer's state from Redis\n"
              "  lag [-c FILE] [-b BOOTSTRAP]\n"
              "                     per input partition: the offset Redis holds (the truth), the\n"
              "                     consumer group's committed offset (a copy) and the end\n"
              "  whatif [-c FILE] [--now TIME] [--compact] CUSTOMER_ID [FILE]\n"
              "                     apply JSON-lines events to a customer's state from Redis and\n"
              "                     print the outcomes and the resulting state; writes nothing\n"
              "  redrive [-c FILE] [--error CODE] [--since TIME] [--until TIME] [--dry-run]\n"
              "                     produce the selected dead letters back to their input topic\n"
              "                     and partition; prints a summary by error code\n"
              "  mock-cluster [-c FILE] [--partitions N] [--brokers N] [--sync-group-delay MS]\n"
              "               [--fetch-delay TOPIC:PARTITION:MS | --produce-delay TOPIC:PARTITION:MS]\n"
              "                     run a Kafka-protocol mock cluster, print its bootstrap address\n"
              "  help               this text\n"
              "  version            print the version\n",
              f);
}

/* A count for a --max-* option: digits only, 1..max.  0 or -EINVAL. */
static int parse_count(const char *s, unsigned long long max, size_t *out) {
        long long v;
        int r = mcd_parse_digits(s, 1, max > LLONG_MAX ? LLONG_MAX : (long long)max, &v);

        if (r == 0)
                *out = (size_t)v;
        return r;
}

static int count_error(const char *option, const char *arg, unsigned long long max) {
        return mcd_cli_error("replay", "%s: invalid count '%s' (expected an integer 1..%llu)", option, arg, max);
}

/* One of replay's rules options (the contract's --park-grace, --dedup-window,
 * --max-seen-ids, --max-subscriptions, --max-parked; the same bounds as the
 * configuration keys): sets it in rules.  0, or 2 once the option at fault
 * is named on stderr. */
static int replay_rules_option(int c, const char *arg, struct mcd_rules_config *rules) {
        switch (c) {
        case 'g':
                if (mcd_parse_duration(arg, &rules->park_grace) < 0)
                        return mcd_cli_error("replay", "--park-grace: invalid duration '%s' "
                                             "(expected e.g. 10m, 30s, 500ms)", arg);
                return 0;
        case 'w':
                if (mcd_parse_duration(arg, &rules->dedup_window) < 0 || rules->dedup_window < 1 ||
                    rules->dedup_window > MCD_DEDUP_WINDOW_MAX)
                        return mcd_cli_error("replay", "--dedup-window: invalid duration '%s' "
                                             "(expected a positive duration up to 36500d, e.g. 30d, 12h)", arg);
                return 0;
        case 'i':
                return parse_count(arg, MCD_SEEN_IDS_MAX, &rules->max_seen_ids) < 0
                               ? count_error("--max-seen-ids", arg, MCD_SEEN_IDS_MAX) : 0;
        case 'u':
                return parse_count(arg, MCD_LIMIT_MAX, &rules->max_subscriptions) < 0
                               ? count_error("--max-subscriptions", arg, MCD_LIMIT_MAX) : 0;
        default:
                return parse_count(arg, MCD_LIMIT_MAX, &rules->max_parked) < 0
                               ? count_error("--max-parked", arg, MCD_LIMIT_MAX) : 0;
        }
}

/* The dedup window must be at least the park grace (as the configuration's
 * dedup_window and park_grace); window and grace are the options as given,
 * or NULL.  0, or 2 once the option at fault is named on stderr. */
static int replay_rules_check(const struct mcd_rules_config *rules, const char *window, const char *grace) {
        if (rules->dedup_window >= rules->park_grace)
                return 0;
        if (window)
                return mcd_cli_error("replay", "--dedup-window: '%s' is shorter than the park grace (%s); "
                                     "it must be at least as long", window, grace ? grace : "10m");
        return mcd_cli_error("replay", "--park-grace: '%s' is longer than the dedup window (30d); "
                             "give a --dedup-window at least as long", grace);
}

static int cmd_replay(int argc, char **argv) {
        static const struct option opts[] = {
                {"now", required_argument, NULL, 'n'},
                {"park-grace", required_argument, NULL, 'g'},
                {"dedup-window", required_argument, NULL, 'w'},
                {"max-seen-ids", required_argument, NULL, 'i'},
                {"max-subscriptions", required_argument, NULL, 'u'},
                {"max-parked", required_argument, NULL, 'p'},
                {"state-out", required_argument, NULL, 's'},
                {"help", no_argument, NULL, 'h'},
                {0},
        };
        struct mcd_replay_options opt = {.rules = MCD_RULES_CONFIG_DEFAULT};
        const char *window = NULL, *grace = NULL, *state_path = NULL;
        FILE *in = stdin;
        int c, r;

        optind = 1;
        while ((c = mcd_getopt(argc, argv, "+h", opts)) != -1) {
                switch (c) {
                case 'n':
                        if (mcd_cli_parse_time("replay", "--now", optarg, &opt.now) != 0)
                                return 2;
                        opt.has_now = true;
                        break;
                case 'g':
                case 'w':
                case 'i':
                case 'u':
                case 'p':
                        if (replay_rules_option(c, optarg, &opt.rules) != 0)
                                return 2;
                        if (c == 'g')
                                grace = optarg;
                        else if (c == 'w')
                                window = optarg;
                        break;
                case 's':
                        state_path = optarg;    /* created once every argument is checked */
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        return mcd_cli_bad_option("replay", argv);
                }
        }
        if (replay_rules_check(&opt.rules, window, grace) != 0)
                return 2;
        if (argc - optind > 1)
                return mcd_cli_error("replay", "unexpected argument '%s' (only one FILE is read)", argv[optind + 1]);
        if (mcd_cli_open_input("replay", optind < argc ? argv[optind] : NULL, &in) != 0)
                return 2;
        if (state_path && !(opt.state_out = fopen(state_path, "we"))) {
                r = mcd_cli_error("replay", "--state-out: cannot create '%s': %s", state_path, strerror(errno));
                mcd_cli_close_input(in);
                return r;
        }
        r = mcd_replay(in, stdout, stderr, &opt);
        mcd_cli_close_input(in);
        if (opt.state_out)
                fclose(opt.state_out);
        if (r < 0) {
                fprintf(stderr, "multichanneld: replay: %s\n", strerror(-r));
                return 1;
        }
        return r;
}

static int cmd_version(int argc, char **argv) {
        puts(PACKAGE_STRING);
        return 0;
}

static int cmd_help(int argc, char **argv) {
        usage(stdout);
        return 0;
}

static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
} commands[] = {
        {"run", mcd_cmd_run},
        {"replay", cmd_replay},
        {"check-config", mcd_cmd_check_config},
        {"publish", mcd_cmd_publish},
        {"tail", mcd_cmd_tail},
        {"state", mcd_cmd_state},
        {"lag", mcd_cmd_lag},
        {"whatif", mcd_cmd_whatif},
        {"redrive", mcd_cmd_redrive},
        {"mock-cluster", mcd_cmd_mock_cluster},
        {"version", cmd_version},
        {"--version", cmd_version},
        {"help", cmd_help},
        {"--help", cmd_help},
        {"-h", cmd_help},
};

int main(int argc, char **argv) {
        mcd_crash_install();
        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (strcmp(argv[1], commands[i].name) == 0)
                        return commands[i].run(argc - 1, argv + 1);
        fprintf(stderr, "multichanneld: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
}
