/* main.c -- the multichanneld executable: subcommand dispatch and the
 * command-line parsing of each subcommand.  Errors name the argument at
 * fault; exit status 2 for a usage error. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build-config.h"
#include "daemon/cli.h"
#include "daemon/commands.h"
#include "daemon/replay.h"
#include "handlers/timefmt.h"

static void usage(FILE *f) {
        fputs("usage: multichanneld COMMAND [OPTIONS]\n"
              "\n"
              "commands:\n"
              "  run [-c FILE] [--embedded-kafka [--partitions N]]\n"
              "                     the daemon: consume, apply, store, publish, until SIGTERM\n"
              "  replay [--now TIME] [--park-grace DURATION] [--state-out FILE] [FILE]\n"
              "                     apply the rules to JSON-lines events, print outcomes\n"
              "  check-config [-c FILE]\n"
              "                     validate a configuration file, naming each bad line\n"
              "  publish [-c FILE] [-b BOOTSTRAP] [--topic relationships|subscriptions] [FILE]\n"
              "                     produce JSON-lines events to the input topics as Avro\n"
              "  tail [-c FILE] [-b BOOTSTRAP] [--exit-at-end] [--dlq]\n"
              "                     print the outcome (or dead-letter) topic as JSON lines\n"
              "  state [-c FILE] [--compact] CUSTOMER_ID...\n"
              "                     print a customer's state from Redis\n"
              "  mock-cluster [-c FILE] [--partitions N] [--brokers N] [--sync-group-delay MS]\n"
              "                     run a Kafka-protocol mock cluster, print its bootstrap address\n"
              "  help               this text\n"
              "  version            print the version\n",
              f);
}

static int cmd_replay(int argc, char **argv) {
        static const struct option opts[] = {
                {"now", required_argument, NULL, 'n'},
                {"park-grace", required_argument, NULL, 'g'},
                {"state-out", required_argument, NULL, 's'},
                {"help", no_argument, NULL, 'h'},
                {0},
        };
        struct mcd_replay_options opt = {.rules = {.park_grace = MCD_PARK_GRACE_DEFAULT}};
        FILE *in = stdin;
        int c, r;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
                switch (c) {
                case 'n':
                        if (mcd_time_parse(optarg, &opt.now) < 0)
                                return mcd_cli_error("replay", "--now: invalid time '%s' (expected ISO-8601 UTC, "
                                                     "e.g. 2026-12-01T00:00:00.000Z)", optarg);
                        opt.has_now = true;
                        break;
                case 'g':
                        if (mcd_parse_duration(optarg, &opt.rules.park_grace) < 0)
                                return mcd_cli_error("replay", "--park-grace: invalid duration '%s' "
                                                     "(expected e.g. 10m, 30s, 500ms)", optarg);
                        break;
                case 's':
                        if (opt.state_out)
                                fclose(opt.state_out);
                        opt.state_out = fopen(optarg, "we");
                        if (!opt.state_out)
                                return mcd_cli_error("replay", "--state-out: cannot create '%s': %s", optarg,
                                                     strerror(errno));
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        return mcd_cli_error("replay", "unknown or incomplete option '%s'", argv[optind - 1]);
                }
        }
        if (argc - optind > 1)
                return mcd_cli_error("replay", "unexpected argument '%s' (only one FILE is read)", argv[optind + 1]);
        if (optind < argc && strcmp(argv[optind], "-") != 0) {
                in = fopen(argv[optind], "re");
                if (!in)
                        return mcd_cli_error("replay", "FILE: cannot open '%s': %s", argv[optind], strerror(errno));
        }
        r = mcd_replay(in, stdout, stderr, &opt);
        if (in != stdin)
                fclose(in);
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
        {"mock-cluster", mcd_cmd_mock_cluster},
        {"version", cmd_version},
        {"--version", cmd_version},
        {"help", cmd_help},
        {"--help", cmd_help},
        {"-h", cmd_help},
};

int main(int argc, char **argv) {
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
