/* cmd_run.c -- `multichanneld run`, `check-config` and `mock-cluster`:
 * configuration loading, signals, the embedded Kafka cluster. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/avro_codec.h"
#include "daemon/cli.h"
#include "daemon/commands.h"
#include "daemon/config.h"
#include "daemon/kafka.h"
#include "daemon/log.h"
#include "daemon/macro.h"
#include "daemon/worker.h"

static struct mcd_worker_signals *signals_target;
static volatile sig_atomic_t brokers_down_request, brokers_up_request;

static void on_broker_signal(int sig) {
        if (sig == SIGUSR1)
                brokers_down_request = 1;
        else
                brokers_up_request = 1;
}

static void on_signal(int sig) {
        if (!signals_target)
                return;
        if (sig == SIGHUP)
                signals_target->reload = 1;
        else
                signals_target->stop = 1;
}

static void install_signals(struct mcd_worker_signals *s) {
        struct sigaction sa = {.sa_handler = on_signal};

        signals_target = s;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
}

int mcd_load_config_for(const char *cmd, const char *path, struct mcd_config *cfg) {
        unsigned n_errors = 0;
        int r;

        if (mcd_config_defaults(cfg) < 0)
                return mcd_cli_error(cmd, "out of memory");
        if (!path) {
                if (access(MCD_CONFIG_DEFAULT_PATH, F_OK) != 0)
                        return 0;       /* first run: the contract's defaults */
                path = MCD_CONFIG_DEFAULT_PATH;
        }
        r = mcd_config_load(path, cfg, stderr, &n_errors);
        if (r < 0) {
                fprintf(stderr, "multichanneld: %s: configuration %s has %u error(s)\n", cmd, path,
                        n_errors ? n_errors : 1);
                mcd_config_clear(cfg);
                return 1;
        }
        mcd_log_set_level(cfg->log_level);
        return 0;
}

/* Reads and validates cfg's schemas.dir, as the daemon does at start (a
 * missing folder holds no schema; noted on stderr unless it is the
 * default).  0 with *n set, or 1 with the error printed (a configuration
 * error). */
static int check_schemas_dir(const char *cmd, const struct mcd_config *cfg, size_t *n) {
        struct mcd_avro_dir *d = NULL;
        char why[768];

        if (mcd_avro_dir_read(cfg->schemas_dir, true, &d, why, sizeof(why)) < 0) {
                fprintf(stderr, "multichanneld: %s: %s\n", cmd, why);
                return 1;
        }
        if (mcd_avro_dir_missing(d) && strcmp(cfg->schemas_dir, MCD_SCHEMADIR) != 0)
                fprintf(stderr, "multichanneld: %s: warning: schemas.dir %s does not exist: only the built-in "
                        "schemas are known\n", cmd, cfg->schemas_dir);
        *n = mcd_avro_dir_count(d);
        mcd_avro_dir_free(d);
        return 0;
}

int mcd_cmd_check_config(int argc, char **argv) {
        static const struct option opts[] = {
                {"config", required_argument, NULL, 'c'},
                {"print", no_argument, NULL, 'p'},
                {0},
        };
        const char *path = MCD_CONFIG_DEFAULT_PATH;
        struct mcd_config cfg;
        size_t n_schemas = 0;
        bool print = false;
        int c, r;

        optind = 1;
        while ((c = mcd_getopt(argc, argv, "+c:", opts)) != -1) {
                if (c == 'c')
                        path = optarg;
                else if (c == 'p')
                        print = true;
                else
                        return mcd_cli_bad_option("check-config", argv);
        }
        if (optind < argc)
                return mcd_cli_error("check-config", "unexpected argument '%s'", argv[optind]);
        r = mcd_load_config_for("check-config", path, &cfg);
        if (r != 0)
                return r;
        if (check_schemas_dir("check-config", &cfg, &n_schemas) != 0) {
                mcd_config_clear(&cfg);
                return 1;
        }
        if (print) {            /* the file's effective values only: a configuration file */
                mcd_config_print(&cfg, stdout);
                mcd_config_clear(&cfg);
                if (fflush(stdout) != 0 || ferror(stdout)) {
                        fprintf(stderr, "multichanneld: check-config: writing standard output failed\n");
                        return 1;
                }
                return 0;
        }
        printf("%s: OK\n", path);
        if (n_schemas)
                printf("schemas.dir %s: %zu schema file(s)\n", cfg.schemas_dir, n_schemas);
        if (cfg.registry_url)   /* not asked here: check-config reads files only */
                printf("schema registry %s: Confluent-framed input read by schema id%s\n", cfg.registry_url,
                       cfg.output_format == MCD_OUTPUT_CONFLUENT ? "; outcomes framed with the id of their schema"
                                                                 : "");
        mcd_config_clear(&cfg);
        return 0;
}

int mcd_cmd_run(int argc, char **argv) {
        static const struct option opts[] = {
                {"config", required_argument, NULL, 'c'},
                {"embedded-kafka", no_argument, NULL, 'e'},
                {"partitions", required_argument, NULL, 'p'},
                {0},
        };
        struct mcd_worker_signals sig = {0};
        struct mcd_embedded *emb = NULL;
        const char *path = NULL;
        bool embedded = false;
        struct mcd_config cfg;
        long partitions = 4;
        size_t n_schemas = 0;
        int c, r;

        optind = 1;
        while ((c = mcd_getopt(argc, argv, "+c:", opts)) != -1) {
                switch (c) {
                case 'c':
                        path = optarg;
                        break;
                case 'e':
                        embedded = true;
                        break;
                case 'p': {
                        char *end;
                        partitions = strtol(optarg, &end, 10);
                        if (*end || partitions < 1 || partitions > 1024)
                                return mcd_cli_error("run", "--partitions: expected 1..1024, got '%s'", optarg);
                        break;
                }
                default:
                        return mcd_cli_bad_option("run", argv);
                }
        }
        if (optind < argc)
                return mcd_cli_error("run", "unexpected argument '%s'", argv[optind]);
        r = mcd_load_config_for("run", path, &cfg);
        if (r != 0)
                return r;
        if (check_schemas_dir("run", &cfg, &n_schemas) != 0) {
                mcd_config_clear(&cfg);
                return 1;
        }
        install_signals(&sig);
        if (embedded) {
                r = mcd_embedded_start(&cfg, 1, (int)partitions, NULL, &emb);
                if (r < 0) {
                        fprintf(stderr, "multichanneld: run: cannot start the embedded Kafka cluster: %s\n",
                                strerror(-r));
                        mcd_config_clear(&cfg);
                        return 1;
                }
                printf("embedded Kafka cluster: bootstrap.servers=%s (%ld partitions per topic)\n",
                       mcd_embedded_bootstraps(emb), partitions);
                fflush(stdout);
        }
        r = mcd_worker_run(&cfg, &sig);
        mcd_embedded_stop(emb);
        mcd_config_clear(&cfg);
        if (r < 0) {
                fprintf(stderr, "multichanneld: run: %s\n", strerror(-r));
                return 1;
        }
        return 0;
}

/* --fetch-delay's and --produce-delay's TOPIC:PARTITION:MS (a topic name may hold no colon):
 * the string is cut at its last two colons.  0 or -EINVAL. */
static int parse_delay(char *arg, long *partition, long *ms) {
        char *c2 = strrchr(arg, ':'), *c1;
        long long v[2];
        int r = -EINVAL;

        if (!c2 || c2 == arg)
                return -EINVAL;
        *c2 = '\0';                   /* the partition ends there */
        c1 = strrchr(arg, ':');
        if (c1 && c1 != arg && mcd_parse_digits(c1 + 1, 0, INT32_MAX, &v[0]) >= 0 &&
            mcd_parse_digits(c2 + 1, 1, 600000, &v[1]) >= 0) {
                *partition = (long)v[0];
                *ms = (long)v[1];
                *c1 = '\0';           /* arg is the topic from here on */
                r = 0;
        }
        *c2 = ':';
        return r;
}

/* A Kafka-protocol cluster for tests and demonstrations, in its own process
 * so that daemons can be killed and restarted against it. */
int mcd_cmd_mock_cluster(int argc, char **argv) {
        static const struct option opts[] = {
                {"config", required_argument, NULL, 'c'},
                {"partitions", required_argument, NULL, 'p'},
                {"brokers", required_argument, NULL, 'b'},
                {"sync-group-delay", required_argument, NULL, 'd'},
                {"fetch-delay", required_argument, NULL, 'f'},
                {"produce-delay", required_argument, NULL, 'P'},
                {0},
        };
        static const int handled[] = {SIGUSR1, SIGUSR2, SIGHUP, SIGTERM, SIGINT};
        struct mcd_worker_signals sig = {0};
        sigset_t mask, unblocked;
        struct mcd_embedded *emb = NULL;
        const char *path = NULL, *debug;
        char *delay_topic = NULL;
        const char *delay_opt = NULL;
        enum mcd_mock_api delay_api = MCD_MOCK_FETCH;
        long partitions = 4, brokers = 1, sync_delay = 0, delay_partition = 0, delay_ms = 0;
        struct mcd_config cfg;
        int c, r;

        optind = 1;
        while ((c = mcd_getopt(argc, argv, "+c:", opts)) != -1) {
                char *end = NULL;
                switch (c) {
                case 'c':
                        path = optarg;
                        break;
                case 'p':
                        partitions = strtol(optarg, &end, 10);
                        if (*end || partitions < 1 || partitions > 1024)
                                return mcd_cli_error("mock-cluster", "--partitions: expected 1..1024, got '%s'", optarg);
                        break;
                case 'b':
                        brokers = strtol(optarg, &end, 10);
                        if (*end || brokers < 1 || brokers > 9)
                                return mcd_cli_error("mock-cluster", "--brokers: expected 1..9, got '%s'", optarg);
                        break;
                case 'd':
                        sync_delay = strtol(optarg, &end, 10);
                        if (*end || sync_delay < 1 || sync_delay > 600000)
                                return mcd_cli_error("mock-cluster",
                                                     "--sync-group-delay: expected 1..600000 (ms), got '%s'", optarg);
                        break;
                case 'f':
                case 'P':
                        if (delay_topic)
                                return mcd_cli_error("mock-cluster", "--%s: one of --fetch-delay and --produce-delay",
                                                     c == 'f' ? "fetch-delay" : "produce-delay");
                        delay_opt = c == 'f' ? "fetch-delay" : "produce-delay";
                        delay_api = c == 'f' ? MCD_MOCK_FETCH : MCD_MOCK_PRODUCE;
                        delay_topic = optarg;
                        if (parse_delay(optarg, &delay_partition, &delay_ms) < 0)
                                return mcd_cli_error("mock-cluster",
                                                     "--%s: expected TOPIC:PARTITION:MS (1..600000), got '%s'",
                                                     delay_opt, optarg);
                        break;
                default:
                        return mcd_cli_bad_option("mock-cluster", argv);
                }
        }
        if (delay_topic && delay_partition >= partitions)
                return mcd_cli_error("mock-cluster", "--%s: partition %ld of %ld", delay_opt, delay_partition,
                                     partitions);
        r = mcd_load_config_for("mock-cluster", path, &cfg);
        if (r != 0)
                return r;
        install_signals(&sig);
        /* MCD_MOCK_DEBUG=mock,cgrp (tests/lib.sh passes the environment
         * on): the cluster's group coordinator, state by state, in the
         * tests' mock.log, to follow a rebalance a test waits on. */
        if ((debug = getenv("MCD_MOCK_DEBUG")) && !*debug)
                debug = NULL;
        if (debug)
                mcd_log_set_level(LOG_DEBUG);
        /* The delayed partition gets a broker of its own, one more. */
        r = mcd_embedded_start(&cfg, (int)brokers + (delay_topic != NULL), (int)partitions,
                               debug, &emb);
        if (r < 0) {
                fprintf(stderr, "multichanneld: mock-cluster: %s\n", strerror(-r));
                mcd_config_clear(&cfg);
                return 1;
        }
        if (sync_delay > 0 && mcd_embedded_delay_sync_group(emb, (int)sync_delay) < 0)
                log_warning("mock-cluster: cannot delay SyncGroup responses");
        if (delay_topic && (r = mcd_embedded_delay(emb, &cfg, delay_topic, (int32_t)delay_partition, delay_api,
                                                   (int)delay_ms)) < 0) {
                fprintf(stderr, "multichanneld: mock-cluster: --%s %s: %s\n", delay_opt, delay_topic,
                        r == -ENOENT ? "not one of the configuration's topics" : strerror(-r));
                mcd_embedded_stop(emb);
                mcd_config_clear(&cfg);
                return 1;
        }
        printf("%s\n", mcd_embedded_bootstraps(emb));
        fflush(stdout);
        /* SIGUSR1 takes the brokers down, SIGUSR2 brings them back: an
         * outage to rehearse (tests/daemon_outages.sh).  With --fetch-delay
         * (--produce-delay), SIGHUP holds back the delayed partition's next
         * Fetch (Produce) answer again (tests/daemon_lag_caught_up.sh).  The signals are blocked but
         * in sigsuspend, so that none arrives between a look at the
         * requests and the wait, to be seen only at the next signal. */
        signal(SIGUSR1, on_broker_signal);
        signal(SIGUSR2, on_broker_signal);
        sigemptyset(&mask);
        for (size_t i = 0; i < ELEMENTSOF(handled); i++)
                sigaddset(&mask, handled[i]);
        sigprocmask(SIG_BLOCK, &mask, &unblocked);
        while (!sig.stop) {
                sigsuspend(&unblocked);
                if (sig.reload) {
                        sig.reload = 0;
                        if (delay_topic && mcd_embedded_hold(emb, (int)delay_ms) < 0)
                                log_warning("mock-cluster: cannot hold back the next answer");
                }
                if (brokers_down_request) {
                        brokers_down_request = 0;
                        mcd_embedded_set_up(emb, false);
                }
                if (brokers_up_request) {
                        brokers_up_request = 0;
                        mcd_embedded_set_up(emb, true);
                }
        }
        mcd_embedded_stop(emb);
        mcd_config_clear(&cfg);
        return 0;
}
