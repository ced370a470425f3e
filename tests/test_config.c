/* test_config.c -- the configuration file: defaults, a valid file, bad lines
 * named with their line numbers, librdkafka's own checks, and log levels. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/config.h"
#include "daemon/log.h"
#include "handlers/rules.h"
#include "tests/tap.h"

static char tmpdir[] = "/tmp/test_config.XXXXXX";

/* Writes text to a file in tmpdir; returns its path (static buffer). */
static const char *write_file(const char *name, const char *text) {
        static char path[PATH_MAX];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
        f = fopen(path, "w");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
                tap_diag("cannot write %s", path);
                exit(99);
        }
        return path;
}

struct loaded {
        struct mcd_config cfg;
        int r;
        unsigned n_errors;
        char *errors;          /* everything reported, one line each */
        size_t errlen;
};

static void load(struct loaded *l, const char *path) {
        FILE *errors;

        l->errors = NULL;
        l->errlen = 0;
        errors = open_memstream(&l->errors, &l->errlen);
        if (!errors || mcd_config_defaults(&l->cfg) < 0) {
                tap_diag("out of memory");
                exit(99);
        }
        l->n_errors = 12345;
        l->r = mcd_config_load(path, &l->cfg, errors, &l->n_errors);
        fclose(errors);
}

static void loaded_clear(struct loaded *l) {
        mcd_config_clear(&l->cfg);
        free(l->errors);
}

/* The n-th (from 1) line of what was reported, or NULL. */
static const char *error_line(const struct loaded *l, unsigned n) {
        static char line[1024];
        const char *p = l->errors;

        for (; n > 1 && p; n--) {
                p = strchr(p, '\n');
                if (p)
                        p++;
        }
        if (!p || *p == '\0')
                return NULL;
        snprintf(line, sizeof(line), "%.*s", (int)strcspn(p, "\n"), p);
        return line;
}

static unsigned count_lines(const char *s) {
        unsigned n = 0;

        for (; s && *s; s++)
                n += *s == '\n';
        return n;
}

/* The defaults give the rules engine's own defaults. */
static void test_rules_default(const struct mcd_config *cfg) {
        const struct mcd_rules_config want = MCD_RULES_CONFIG_DEFAULT;
        struct mcd_rules_config got;

        mcd_config_rules(cfg, &got);
        is_int(got.park_grace, want.park_grace, "rules: default park_grace");
        is_int(got.dedup_window, want.dedup_window, "rules: default dedup_window");
        is_int(got.max_seen_ids, want.max_seen_ids, "rules: default max_seen_ids");
        is_int(got.max_subscriptions, want.max_subscriptions, "rules: default max_subscriptions");
        is_int(got.max_parked, want.max_parked, "rules: default max_parked");
}

static void test_defaults(void) {
        struct mcd_config cfg;

        ok(mcd_config_defaults(&cfg) == 0, "defaults");
        ok(cfg.path == NULL, "defaults: no path");
        is_str(mcd_config_kafka(&cfg, "bootstrap.servers"), "localhost:9092", "kafka.bootstrap.servers");
        is_str(mcd_config_kafka(&cfg, "group.id"), "multichanneld", "kafka.group.id");
        is_int(cfg.n_kafka, 2, "two kafka defaults");
        ok(mcd_config_kafka(&cfg, "client.id") == NULL, "no other kafka property");
        is_str(cfg.topic_relationships, "partnercenter.relationships.v1", "topic.relationships");
        is_str(cfg.topic_subscriptions, "partnercenter.subscriptions.v1", "topic.subscriptions");
        is_str(cfg.topic_outcomes, "partnercenter.multichannel.outcomes.v1", "topic.outcomes");
        is_str(cfg.topic_dlq, "partnercenter.multichannel.dlq.v1", "topic.dlq");
        is_str(cfg.topic_changelog, "partnercenter.multichannel.changelog.v1", "topic.changelog");
        is_str(cfg.redis_host, "127.0.0.1", "redis.host");
        is_int(cfg.redis_port, 6379, "redis.port");
        is_int(cfg.redis_db, 0, "redis.db");
        ok(cfg.redis_password == NULL, "redis.password unset");
        is_str(cfg.redis_key_prefix, "mcd:", "redis.key_prefix");
        is_int(cfg.redis_timeout_ms, 2000, "redis.timeout 2s");
        ok(cfg.redis_sentinels == NULL, "redis.sentinels unset: no Sentinel");
        is_str(cfg.redis_master_name, "mymaster", "redis.master_name");
        ok(cfg.outbox_compression == MCD_OUTBOX_ZSTD, "redis.outbox_compression zstd");
        is_int(cfg.park_grace, 600000, "park_grace 10m");
        is_int(cfg.merge_wait, 500, "merge_wait 500ms");
        is_int(cfg.batch_max, 1000, "batch.max_events");
        is_int(cfg.batch_wait, 50, "batch.wait 50ms");
        is_int(cfg.batch_threads, 2, "batch.threads 2");
        is_int(cfg.batch_max_bytes, 1048576, "batch.max_bytes 1 MiB");
        is_int(cfg.cache_max_bytes, 0, "cache.max_bytes 0: no state cache");
        is_int(cfg.buffer_max, 10000, "buffer.max_events 10000");
        is_str(cfg.metrics_listen, "127.0.0.1:9464", "metrics.listen");
        is_str(cfg.schemas_dir, MCD_SCHEMADIR, "schemas.dir is the installed schema folder");
        is_int(cfg.log_level, LOG_INFO, "log.level info");
        is_int(cfg.status_interval, 5000, "status.interval 5s");
        is_int(cfg.group_offsets_interval_ms, 1000, "group_offsets.interval 1s");
        is_int(cfg.dedup_window, 30LL * 86400000, "dedup_window 30d");
        is_int(cfg.limit_seen_ids, 10000, "limits.seen_ids 10000");
        is_int(cfg.limit_subscriptions, 1000, "limits.subscriptions 1000");
        is_int(cfg.limit_parked, 100, "limits.parked 100");
        test_rules_default(&cfg);
        mcd_config_clear(&cfg);
        ok(cfg.kafka == NULL && cfg.redis_host == NULL, "clear empties");
}

static void test_valid_file(void) {
        struct loaded l;
        const char *path = write_file("valid.conf",
                                      "# multichanneld.conf: every key\n"
                                      "\n"
                                      "kafka.bootstrap.servers = broker1:9092,broker2:9092   # two brokers\n"
                                      "   kafka.group.id=mcd-test\n"
                                      "kafka.client.id = a=b\n"
                                      "\tkafka.enable.auto.commit\t=\tfalse\t\n"
                                      "kafka.acks = all\n"
                                      "topic.relationships = rel\n"
                                      "topic.subscriptions = sub\n"
                                      "topic.outcomes = out\n"
                                      "topic.dlq = dlq\n"
                                      "topic.changelog = log\n"
                                      "redis.host = redis.example\r\n"
                                      "redis.port = 6380\n"
                                      "redis.db = 15\n"
                                      "redis.password = s3cret\n"
                                      "redis.key_prefix = test:\n"
                                      "redis.timeout = 750ms\n"
                                      "   # indented comment\n"
                                      "park_grace = 1h\n"
                                      "merge_wait = 0ms\n"
                                      "batch.max_events = 100000\n"
                                      "batch.wait = 1s\n"
                                      "batch.threads = 4\n"
                                      "metrics.listen = [::1]:9100\n"
                                      "log.level = debug\n"
                                      "status.interval = 1m"); /* no final newline */

        load(&l, path);
        is_int(l.r, 0, "valid file loads");
        is_int(l.n_errors, 0, "valid file: no errors");
        is_str(l.errors, "", "valid file: nothing reported");
        is_str(l.cfg.path, path, "path kept");
        is_str(mcd_config_kafka(&l.cfg, "bootstrap.servers"), "broker1:9092,broker2:9092",
               "comment after a value stripped");
        is_str(mcd_config_kafka(&l.cfg, "group.id"), "mcd-test", "no blanks around '='");
        is_str(mcd_config_kafka(&l.cfg, "client.id"), "a=b", "'=' in a value");
        is_str(mcd_config_kafka(&l.cfg, "enable.auto.commit"), "false", "tabs trimmed");
        is_int(l.cfg.n_kafka, 5, "five kafka properties");
        if (l.cfg.n_kafka == 5) {
                is_str(l.cfg.kafka[2].key, "client.id", "kafka properties in file order");
                is_str(l.cfg.kafka[4].key, "acks", "kafka property as written");
                is_int(l.cfg.kafka[4].line, 7, "kafka property line");
                is_int(l.cfg.kafka[0].line, 3, "overridden default gets its line");
        }
        is_str(l.cfg.topic_relationships, "rel", "topic.relationships");
        is_str(l.cfg.topic_subscriptions, "sub", "topic.subscriptions");
        is_str(l.cfg.topic_outcomes, "out", "topic.outcomes");
        is_str(l.cfg.topic_dlq, "dlq", "topic.dlq");
        is_str(l.cfg.topic_changelog, "log", "topic.changelog");
        is_str(l.cfg.redis_host, "redis.example", "CRLF trimmed");
        is_int(l.cfg.redis_port, 6380, "redis.port");
        is_int(l.cfg.redis_db, 15, "redis.db");
        is_str(l.cfg.redis_password, "s3cret", "redis.password");
        is_str(l.cfg.redis_key_prefix, "test:", "redis.key_prefix");
        is_int(l.cfg.redis_timeout_ms, 750, "redis.timeout");
        is_int(l.cfg.park_grace, 3600000, "park_grace");
        is_int(l.cfg.merge_wait, 0, "merge_wait");
        is_int(l.cfg.batch_max, 100000, "batch.max_events");
        is_int(l.cfg.batch_wait, 1000, "batch.wait");
        is_int(l.cfg.batch_threads, 4, "batch.threads");
        is_str(l.cfg.metrics_listen, "[::1]:9100", "metrics.listen");
        is_int(l.cfg.log_level, LOG_DEBUG, "log.level");
        is_int(l.cfg.status_interval, 60000, "status.interval, last line without newline");
        loaded_clear(&l);

        path = write_file("empty-listen.conf", "metrics.listen =\nredis.password = # none\n");
        load(&l, path);
        is_int(l.r, 0, "empty metrics.listen is valid");
        is_str(l.cfg.metrics_listen, "", "metrics.listen empty: disabled");
        ok(l.cfg.redis_password == NULL, "empty redis.password: none");
        loaded_clear(&l);

        path = write_file("empty.conf", "");
        load(&l, path);
        ok(l.r == 0 && l.n_errors == 0, "empty file is valid");
        is_int(l.cfg.redis_port, 6379, "empty file keeps the defaults");
        loaded_clear(&l);
}

static void test_bad_lines(void) {
        struct loaded l;
        char want[1024];
        const char *path = write_file("bad.conf",
                                      "# several bad lines\n"             /* 1 */
                                      "redis.port 6380\n"                 /* 2 */
                                      " = value\n"                        /* 3 */
                                      "redis.hots = localhost\n"          /* 4 */
                                      "redis.port = abc\n"                /* 5 */
                                      "redis.db = 3\n"                    /* 6: valid */
                                      "redis.db = 4   # again\n"          /* 7 */
                                      "park_grace = 10 minutes\n"         /* 8 */
                                      "log.level = loud\n"                /* 9 */
                                      "batch.max_events = 0\n"            /* 10 */
                                      "redis.key_prefix =\n"              /* 11 */
                                      "metrics.listen = localhost\n"      /* 12 */
                                      "redis.timeout = 0ms\n"             /* 13 */
                                      "redis.port = 70000\n"              /* 14 */
                                      "redis.port = 6390\n"               /* 15: valid */
                                      "merge_wait = -5ms\n"               /* 16 */
                                      "batch.threads = 0\n");             /* 17 */
        static const char *const want_tail[] = {
                "2: expected 'key = value', got 'redis.port 6380'",
                "3: expected a key before '='",
                "4: unknown key 'redis.hots' (see multichanneld(8) for the keys)",
                "5: redis.port: expected an integer 1..65535, got 'abc'",
                "7: redis.db: duplicate key, already set on line 6",
                "8: park_grace: expected a duration such as 500ms, 10s, 5m, 1h or 1d, got '10 minutes'",
                "9: log.level: expected err, warning, notice, info or debug, got 'loud'",
                "10: batch.max_events: expected an integer 1..100000, got '0'",
                "11: redis.key_prefix: expected a non-empty value",
                ("12: metrics.listen: expected host:port (port 1..65535, IPv6 host in brackets) or nothing to "
                 "disable, got 'localhost'"),
                "13: redis.timeout: expected a duration from 1ms to 2147483647ms such as 500ms or 2s, got '0ms'",
                "14: redis.port: expected an integer 1..65535, got '70000'",
                "16: merge_wait: expected a duration up to 1h such as 500ms, 10s, 5m, 1h or 1d, got '-5ms'",
                "17: batch.threads: expected an integer 1..64, got '0'",
        };
        const unsigned n = sizeof(want_tail) / sizeof(want_tail[0]);

        load(&l, path);
        is_int(l.r, -EINVAL, "bad file: -EINVAL");
        is_int(l.n_errors, n, "bad file: %u errors counted", n);
        is_int(count_lines(l.errors), n, "bad file: %u lines reported", n);
        for (unsigned i = 0; i < n; i++) {
                snprintf(want, sizeof(want), "%s:%s", path, want_tail[i]);
                is_str(error_line(&l, i + 1), want, "reported: %s", want_tail[i]);
        }
        is_int(l.cfg.redis_db, 3, "the valid line before a duplicate stays");
        is_int(l.cfg.redis_port, 6390, "a valid line after bad ones is applied");
        is_str(l.cfg.redis_key_prefix, "mcd:", "a bad value keeps the default");
        is_int(l.cfg.log_level, LOG_INFO, "a bad log.level keeps the default");
        loaded_clear(&l);
}

/* Loads text as a file and checks it is refused with exactly one error,
 * `want_tail` (after "PATH:"). */
static void expect_one_error(const char *name, const char *text, const char *want_tail, const char *what) {
        struct loaded l;
        char want[1024];
        const char *path = write_file(name, text);

        load(&l, path);
        snprintf(want, sizeof(want), "%s:%s", path, want_tail);
        ok(l.r == -EINVAL && l.n_errors == 1, "%s: refused with one error (r %d, %u errors)", what, l.r,
           l.n_errors);
        is_str(error_line(&l, 1), want, "%s: reported", what);
        loaded_clear(&l);
}

/* redis.sentinels: a host:port list or nothing; redis.master_name: a
 * name.  A bad list is named on its line. */
static void test_sentinels(void) {
        struct loaded l;
        const char *path = write_file("sentinels.conf", "redis.sentinels = 10.0.0.1:26379, [::1]:26380,s3:26381\n"
                                                        "redis.master_name = orders\n");

        load(&l, path);
        is_int(l.r, 0, "a list of three Sentinels and a master name load");
        is_str(l.cfg.redis_sentinels, "10.0.0.1:26379, [::1]:26380,s3:26381", "redis.sentinels kept as written");
        is_str(l.cfg.redis_master_name, "orders", "redis.master_name");
        loaded_clear(&l);
        path = write_file("sentinels-empty.conf", "redis.sentinels =\n");
        load(&l, path);
        ok(l.r == 0 && l.cfg.redis_sentinels == NULL, "an empty redis.sentinels: none");
        loaded_clear(&l);
        expect_one_error("sentinels-bad.conf", "# Sentinels\nredis.sentinels = 10.0.0.1:26379,10.0.0.2\n",
                         "2: redis.sentinels: expected host:port,host:port,... (port 1..65535, IPv6 host in brackets) "
                         "or nothing for no Sentinels, got '10.0.0.1:26379,10.0.0.2': entry 2 ('10.0.0.2') is not "
                         "host:port",
                         "a Sentinel without a port");
        expect_one_error("sentinels-port.conf", "redis.sentinels = s1:0\n",
                         "1: redis.sentinels: expected host:port,host:port,... (port 1..65535, IPv6 host in brackets) "
                         "or nothing for no Sentinels, got 's1:0': entry 1 ('s1:0') is not host:port",
                         "a Sentinel on port 0");
        expect_one_error("master-empty.conf", "redis.master_name =\n",
                         "1: redis.master_name: expected a non-empty value", "an empty redis.master_name");
}

/* CONTRACT.md "Bounds": dedup_window and limits.*, their ranges, and
 * dedup_window at least park_grace, named on a line of the file. */
static void test_bounds(void) {
        struct mcd_rules_config rules;
        struct loaded l;
        const char *path = write_file("bounds.conf",
                                      "park_grace = 1h\n"
                                      "dedup_window = 1h\n"
                                      "limits.seen_ids = 10000000\n"
                                      "limits.subscriptions = 1\n"
                                      "limits.parked = 1000000\n");

        load(&l, path);
        is_int(l.r, 0, "bounds file loads: dedup_window may equal park_grace");
        is_str(l.errors, "", "bounds file: nothing reported");
        is_int(l.cfg.dedup_window, 3600000, "dedup_window");
        is_int(l.cfg.limit_seen_ids, 10000000, "limits.seen_ids at its maximum");
        is_int(l.cfg.limit_subscriptions, 1, "limits.subscriptions at its minimum");
        is_int(l.cfg.limit_parked, 1000000, "limits.parked at its maximum");
        mcd_config_rules(&l.cfg, &rules);
        ok(rules.park_grace == 3600000 && rules.dedup_window == 3600000 && rules.max_seen_ids == 10000000 &&
                   rules.max_subscriptions == 1 && rules.max_parked == 1000000,
           "mcd_config_rules carries all five settings");
        loaded_clear(&l);

        expect_one_error("seen0.conf", "limits.seen_ids = 0\n",
                         "1: limits.seen_ids: expected an integer 1..10000000, got '0'", "limits.seen_ids 0");
        expect_one_error("seen-big.conf", "\nlimits.seen_ids = 10000001\n",
                         "2: limits.seen_ids: expected an integer 1..10000000, got '10000001'",
                         "limits.seen_ids past its maximum");
        expect_one_error("subs0.conf", "limits.subscriptions = 0\n",
                         "1: limits.subscriptions: expected an integer 1..1000000, got '0'",
                         "limits.subscriptions 0");
        expect_one_error("parked0.conf", "# none\nlimits.parked = 0\n",
                         "2: limits.parked: expected an integer 1..1000000, got '0'", "limits.parked 0");
        expect_one_error("parked-x.conf", "limits.parked = many\n",
                         "1: limits.parked: expected an integer 1..1000000, got 'many'", "limits.parked many");
        expect_one_error("window0.conf", "park_grace = 0s\ndedup_window = 0s\n",
                         "2: dedup_window: expected a positive duration up to 36500d such as 500ms, 10s, 5m, 1h "
                         "or 1d, got '0s'",
                         "dedup_window 0");
        expect_one_error("window-big.conf", "dedup_window = 36501d\n",
                         "1: dedup_window: expected a positive duration up to 36500d such as 500ms, 10s, 5m, 1h "
                         "or 1d, got '36501d'",
                         "dedup_window past 100 years");
        expect_one_error("batch-wait-big.conf", "batch.wait = 2h\n",
                         "1: batch.wait: expected a duration up to 1h such as 500ms, 10s, 5m, 1h or 1d, got '2h'",
                         "batch.wait past an hour (the loop waits in int milliseconds)");
        expect_one_error("window-short.conf", "dedup_window = 5m\n",
                         "1: dedup_window: 5m is shorter than park_grace (10m); it must be at least park_grace",
                         "dedup_window below the default park_grace");
        expect_one_error("grace-long.conf", "# comment\npark_grace = 31d\n",
                         "2: park_grace: 31d is longer than dedup_window (30d); dedup_window must be at least "
                         "park_grace",
                         "park_grace beyond the default dedup_window");
        expect_one_error("both.conf", "dedup_window = 90m\npark_grace = 5400001ms\n# end\n",
                         "1: dedup_window: 90m is shorter than park_grace (5400001ms); it must be at least "
                         "park_grace",
                         "both set: dedup_window's line named");
}

/* Topic names Kafka would take, and five distinct topics: a dead-letter
 * topic that is also an input would loop each bad message for ever. */
static void test_topics(void) {
        struct loaded l;
        const char *path = write_file("topics-ok.conf", "topic.dlq = Team_A.dlq-v1\n");

        load(&l, path);
        is_int(l.r, 0, "a topic name of letters, digits, '.', '_' and '-' loads");
        is_str(l.cfg.topic_dlq, "Team_A.dlq-v1", "topic.dlq kept");
        loaded_clear(&l);
        expect_one_error("topic-space.conf", "topic.dlq = my dlq\n",
                         "1: topic.dlq: expected a Kafka topic name (letters, digits, '.', '_', '-'; at most 249 "
                         "bytes; not '.' or '..'), got 'my dlq'",
                         "a topic name with a space");
        expect_one_error("topic-dots.conf", "\ntopic.outcomes = ..\n",
                         "2: topic.outcomes: expected a Kafka topic name (letters, digits, '.', '_', '-'; at most "
                         "249 bytes; not '.' or '..'), got '..'",
                         "topic name '..'");
        expect_one_error("topic-loop.conf", "# the input\ntopic.dlq = partnercenter.relationships.v1\n",
                         "2: topic.dlq: 'partnercenter.relationships.v1' is also topic.relationships; the five "
                         "topics must be distinct",
                         "the dead-letter topic is an input topic");
        expect_one_error("topic-twice.conf",
                         "topic.subscriptions = events\ntopic.relationships = events\n",
                         "2: topic.relationships: 'events' is also topic.subscriptions; the five topics must be "
                         "distinct",
                         "one input topic named twice: the later line named");
        expect_one_error("merge-wait-big.conf", "merge_wait = 2h\n",
                         "1: merge_wait: expected a duration up to 1h such as 500ms, 10s, 5m, 1h or 1d, got '2h'",
                         "merge_wait past an hour");
        expect_one_error("status-big.conf", "status.interval = 1d\n",
                         "1: status.interval: expected a positive duration up to 1h such as 500ms, 10s, 5m, 1h or "
                         "1d, got '1d'",
                         "status.interval past an hour");
}

static void test_kafka_properties(void) {
        struct loaded l;
        char want[1024];
        const char *path = write_file("kafka.conf",
                                      "kafka.client.id = mcd\n"
                                      "kafka.no.such.property = 1\n"
                                      "kafka.enable.auto.commit = maybe\n"
                                      "kafka.compression.codec = zip\n"
                                      "kafka. = x\n"
                                      "kafka.client.id = again\n");

        load(&l, path);
        is_int(l.r, -EINVAL, "bad kafka properties: -EINVAL");
        is_int(l.n_errors, 5, "bad kafka properties: 5 errors");
        snprintf(want, sizeof(want),
                 "%s:2: kafka.no.such.property: librdkafka: No such configuration property: \"no.such.property\"",
                 path);
        is_str(error_line(&l, 1), want, "unknown librdkafka property, in librdkafka's words");
        snprintf(want, sizeof(want),
                 "%s:3: kafka.enable.auto.commit: librdkafka: Expected bool value for \"enable.auto.commit\": "
                 "true or false",
                 path);
        is_str(error_line(&l, 2), want, "bad librdkafka value, in librdkafka's words");
        snprintf(want, sizeof(want),
                 "%s:4: kafka.compression.codec: librdkafka: Invalid value \"zip\" for configuration property "
                 "\"compression.codec\"",
                 path);
        is_str(error_line(&l, 3), want, "bad librdkafka enum value");
        snprintf(want, sizeof(want), "%s:5: kafka.: expected a librdkafka property name after 'kafka.'", path);
        is_str(error_line(&l, 4), want, "empty librdkafka property name");
        snprintf(want, sizeof(want), "%s:6: kafka.client.id: duplicate key, already set on line 1", path);
        is_str(error_line(&l, 5), want, "duplicate kafka property");
        is_str(mcd_config_kafka(&l.cfg, "client.id"), "mcd", "first kafka value kept");
        ok(mcd_config_kafka(&l.cfg, "no.such.property") == NULL, "refused property not kept");
        is_int(l.cfg.n_kafka, 3, "defaults plus client.id");
        loaded_clear(&l);
}

/* Properties exactly once rests on: refused when set otherwise, in any
 * spelling librdkafka takes, and accepted as they must be. */
static void test_kafka_pinned(void) {
        struct loaded l;
        char want[1024];
        const char *path = write_file("kafka-pinned.conf",
                                      "kafka.enable.idempotence = false\n"
                                      "kafka.acks = 1\n"
                                      "kafka.enable.auto.commit = true\n"
                                      "kafka.enable.partition.eof = false\n"
                                      "kafka.isolation.level = read_uncommitted\n"
                                      "kafka.transactional.id = mcd\n"
                                      "kafka.enable.auto.offset.store = true\n"
                                      "kafka.request.required.acks = 1\n");

        load(&l, path);
        is_int(l.n_errors, 8, "pinned kafka properties: 8 errors");
        snprintf(want, sizeof(want), "%s:1: kafka.enable.idempotence: must be true, not 'false': without it a retried "
                 "produce can publish an outcome twice, or out of order", path);
        is_str(error_line(&l, 1), want, "idempotence off refused, with its reason");
        snprintf(want, sizeof(want), "%s:2: kafka.acks: must be all, not '1'", path);
        ok(strncmp(error_line(&l, 2), want, strlen(want)) == 0, "acks=1 refused");
        snprintf(want, sizeof(want), "%s:6: kafka.transactional.id: not to be set", path);
        ok(strncmp(error_line(&l, 6), want, strlen(want)) == 0, "a transactional.id refused");
        snprintf(want, sizeof(want), "%s:8: kafka.request.required.acks (another name for acks): must be all, not '1'",
                 path);
        ok(strncmp(error_line(&l, 8), want, strlen(want)) == 0, "acks refused under its other name");
        loaded_clear(&l);
        path = write_file("kafka-pinned-ok.conf",
                          "kafka.enable.idempotence = 1\n"
                          "kafka.acks = -1\n"
                          "kafka.enable.auto.commit = false\n"
                          "kafka.isolation.level = read_committed\n");
        load(&l, path);
        is_int(l.n_errors, 0, "pinned kafka properties set as they must be, in librdkafka's other spellings: accepted");
        loaded_clear(&l);
}

static void test_missing_file(void) {
        struct loaded l;
        char want[PATH_MAX + 256];
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/nonexistent.conf", tmpdir);
        load(&l, path);
        is_int(l.r, -ENOENT, "missing file: -ENOENT");
        is_int(l.n_errors, 1, "missing file: one error");
        snprintf(want, sizeof(want), "%s: cannot open: %s", path, strerror(ENOENT));
        is_str(error_line(&l, 1), want, "missing file named");
        ok(l.cfg.path == NULL, "missing file: path not set");
        is_int(l.cfg.redis_port, 6379, "missing file: defaults intact");
        loaded_clear(&l);

        load(&l, tmpdir);
        ok(l.r < 0 && l.n_errors == 1, "a directory is reported (%d)", l.r);
        tap_diag("%s", l.errors ? l.errors : "");
        loaded_clear(&l);
}

static void test_set(void) {
        struct mcd_config cfg;
        char why[256] = "";

        if (mcd_config_defaults(&cfg) < 0)
                exit(99);
        is_int(mcd_config_set(&cfg, "redis.port", "1234", 0, why, sizeof(why)), 0, "set redis.port");
        is_int(cfg.redis_port, 1234, "set: applied");
        is_int(mcd_config_set(&cfg, "redis.db", "-1", 0, why, sizeof(why)), -EINVAL, "redis.db -1 refused");
        is_str(why, "redis.db: expected an integer 0 or more, got '-1'", "redis.db why");
        is_int(mcd_config_set(&cfg, "schemas.dir", "/srv/schemas", 0, why, sizeof(why)), 0, "schemas.dir set");
        is_str(cfg.schemas_dir, "/srv/schemas", "schemas.dir holds the folder");
        is_int(mcd_config_set(&cfg, "schemas.dir", "", 0, why, sizeof(why)), -EINVAL, "an empty schemas.dir refused");
        is_int(mcd_config_set(&cfg, "status.interval", "0s", 0, why, sizeof(why)), -EINVAL,
               "status.interval 0 refused");
        is_int(mcd_config_set(&cfg, "group_offsets.interval", "10m", 0, why, sizeof(why)), 0,
               "group_offsets.interval 10m");
        is_int(cfg.group_offsets_interval_ms, 600000, "group_offsets.interval in milliseconds");
        is_int(mcd_config_set(&cfg, "group_offsets.interval", "2h", 0, why, sizeof(why)), -EINVAL,
               "group_offsets.interval over 1h refused");
        is_int(mcd_config_set(&cfg, "nope", "1", 0, why, sizeof(why)), -EINVAL, "unknown key refused");
        is_str(why, "unknown key 'nope' (see multichanneld(8) for the keys)", "unknown key why");
        is_int(mcd_config_set(&cfg, "kafka.group.id", "other", 0, NULL, 0), 0, "set kafka.group.id, no why");
        is_str(mcd_config_kafka(&cfg, "group.id"), "other", "kafka.group.id replaced");
        is_int(cfg.n_kafka, 2, "replaced in place");
        is_int(mcd_config_set(&cfg, "metrics.listen", "0.0.0.0:9464", 0, why, sizeof(why)), 0, "listen IPv4");
        is_int(mcd_config_set(&cfg, "metrics.listen", "::1:9464", 0, why, sizeof(why)), -EINVAL,
               "listen IPv6 without brackets refused");
        is_int(mcd_config_set(&cfg, "metrics.listen", ":9464", 0, why, sizeof(why)), -EINVAL,
               "listen without host refused");
        is_int(mcd_config_set(&cfg, "redis.port", "", 0, why, sizeof(why)), -EINVAL, "empty integer refused");
        is_int(mcd_config_set(&cfg, "redis.port", "+80", 0, why, sizeof(why)), -EINVAL, "signed integer refused");
        is_int(cfg.redis_port, 1234, "refused values change nothing");
        mcd_config_clear(&cfg);
}

/* schema_registry.* and output.format: defaults, a good set, a URL that is
 * not http(s), a format not known, confluent without a registry. */
static void test_registry_keys(void) {
        struct loaded l;
        const char *path;

        path = write_file("registry-none.conf", "");
        load(&l, path);
        ok(l.r == 0 && !l.cfg.registry_url && !l.cfg.registry_basic_auth && l.cfg.registry_timeout_ms == 5000 &&
           l.cfg.output_format == MCD_OUTPUT_SINGLE_OBJECT, "registry defaults: none, 5s, single-object");
        loaded_clear(&l);
        path = write_file("registry.conf", "schema_registry.url = https://sr.example:8081\n"
                                           "schema_registry.basic_auth = alice:secret\n"
                                           "schema_registry.timeout = 800ms\n"
                                           "output.format = confluent\n");
        load(&l, path);
        is_int(l.r, 0, "a registry configuration loads");
        is_str(l.cfg.registry_url, "https://sr.example:8081", "schema_registry.url");
        is_str(l.cfg.registry_basic_auth, "alice:secret", "schema_registry.basic_auth");
        is_int(l.cfg.registry_timeout_ms, 800, "schema_registry.timeout");
        is_int(l.cfg.output_format, MCD_OUTPUT_CONFLUENT, "output.format confluent");
        loaded_clear(&l);
        expect_one_error("registry-url.conf", "schema_registry.url = sr.example:8081\n",
                         "1: schema_registry.url: expected an http:// or https:// URL or nothing, got "
                         "'sr.example:8081'",
                         "a URL without a scheme");
        expect_one_error("registry-format.conf", "output.format = avro\n",
                         "1: output.format: expected single-object or confluent, got 'avro'",
                         "an unknown output.format");
        expect_one_error("registry-alone.conf", "merge_wait = 1s\noutput.format = confluent\n",
                         "2: output.format: confluent needs schema_registry.url, where the outcome schema is "
                         "registered",
                         "confluent without a registry");
}

static void test_outbox_compression(void) {
        struct loaded l;

        load(&l, write_file("zip-none.conf", "redis.outbox_compression = none\n"));
        ok(l.r == 0 && l.cfg.outbox_compression == MCD_OUTBOX_NONE, "redis.outbox_compression none");
        loaded_clear(&l);
        load(&l, write_file("zip-zstd.conf", "redis.outbox_compression = zstd\n"));
        ok(l.r == 0 && l.cfg.outbox_compression == MCD_OUTBOX_ZSTD, "redis.outbox_compression zstd");
        loaded_clear(&l);
        expect_one_error("zip-bad.conf", "redis.outbox_compression = lz4\n",
                         "1: redis.outbox_compression: expected zstd or none, got 'lz4'",
                         "an unknown redis.outbox_compression");
}

static void test_log_levels(void) {
        static const struct {
                const char *name;
                int level;
        } t[] = {
                {"err", LOG_ERR},     {"warning", LOG_WARNING}, {"notice", LOG_NOTICE}, {"info", LOG_INFO},
                {"debug", LOG_DEBUG}, {"3", LOG_ERR},           {"7", LOG_DEBUG},       {"error", LOG_ERR},
                {"warn", LOG_WARNING}, {"INFO", LOG_INFO},      {"", -EINVAL},          {"loud", -EINVAL},
                {"2", -EINVAL},       {"8", -EINVAL},           {"77", -EINVAL},        {"info ", -EINVAL},
        };

        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
                is_int(mcd_log_level_from_name(t[i].name), t[i].level, "log level '%s'", t[i].name);
        is_int(mcd_log_level_from_name(NULL), -EINVAL, "log level NULL");
        mcd_log_set_level(LOG_WARNING);
        is_int(mcd_log_get_level(), LOG_WARNING, "set/get level");
}

/* The plain stderr line, with and without fields, and the threshold. */
static void test_log_stderr(void) {
        char path[PATH_MAX], buf[2048] = "", want[1024];
        struct mcd_log_fields f = MCD_LOG_NO_FIELDS;
        int saved, fd;
        ssize_t n;

        unsetenv("JOURNAL_STREAM");
        snprintf(path, sizeof(path), "%s/stderr.log", tmpdir);
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        saved = dup(STDERR_FILENO);
        if (fd < 0 || saved < 0 || dup2(fd, STDERR_FILENO) < 0)
                exit(99);

        mcd_log_set_level(LOG_INFO);
        log_info("hello %d", 42);
        log_debug("not shown");
        f.customer_id = "c-1";
        f.topic = "rel";
        f.partition = 3;
        f.offset = 0;
        f.error_code = "E_TEST";
        mcd_log_full(LOG_ERR, &f, "failed");
        fflush(stderr);

        dup2(saved, STDERR_FILENO);
        close(saved);
        n = pread(fd, buf, sizeof(buf) - 1, 0);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        snprintf(want, sizeof(want),
                 "multichanneld[%ld]: info: hello 42\n"
                 "multichanneld[%ld]: error: failed (customer_id=c-1 topic=rel partition=3 offset=0 "
                 "error_code=E_TEST)\n",
                 (long)getpid(), (long)getpid());
        is_str(buf, want, "stderr lines: level, message, present fields only, threshold");
}

int main(void) {
        char cmd[PATH_MAX + 16];

        if (!mkdtemp(tmpdir))
                return 99;
        test_defaults();
        test_valid_file();
        test_bad_lines();
        test_bounds();
        test_sentinels();
        test_topics();
        test_kafka_properties();
        test_kafka_pinned();
        test_missing_file();
        test_set();
        test_log_levels();
        test_registry_keys();
        test_outbox_compression();
        test_log_stderr();
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
                tap_diag("could not remove %s", tmpdir);
        return tap_done();
}
