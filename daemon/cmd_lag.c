/* cmd_lag.c -- `multichanneld lag`: how far the daemon has read, per input
 * partition and for both input topics:
 *   REDIS  the next offset Redis holds: where the daemon resumes, the truth;
 *   GROUP  the consumer group's committed offset: the copy lag monitors
 *          read, sent at most about a second after Redis's (group_offsets.h);
 *   END    the partition's end (high watermark);
 *   LAG    END - REDIS (from the partition's beginning when Redis holds none).
 * "-" when nothing is stored or committed, "?" when it could not be read.
 *
 * The group's offsets are read by a consumer of the same group.id that never
 * subscribes: it does not join the group, and the members never notice.
 * They are read before Redis's: the daemon copies an offset to the group
 * only once Redis holds it, so that a row read in this order never shows the
 * group ahead of Redis by the reading's own timing. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cli.h"
#include "daemon/commands.h"
#include "daemon/config.h"
#include "daemon/kafka.h"
#include "daemon/store.h"

#define UNKNOWN INT64_MIN       /* could not be read */
#define TIMEOUT_MS 10000

/* One input topic's partitions; the arrays have n entries. */
struct side {
        const char *topic;
        int n;
        int64_t *redis, *group, *begin, *end;
};

static int side_alloc(struct side *s, const char *topic, int n) {
        s->topic = topic;
        s->n = n;
        s->redis = malloc(((size_t)n + 1) * sizeof(int64_t));
        s->group = malloc(((size_t)n + 1) * sizeof(int64_t));
        s->begin = malloc(((size_t)n + 1) * sizeof(int64_t));
        s->end = malloc(((size_t)n + 1) * sizeof(int64_t));
        if (!s->redis || !s->group || !s->begin || !s->end)
                return -ENOMEM;
        for (int p = 0; p < n; p++)
                s->redis[p] = s->group[p] = s->begin[p] = s->end[p] = UNKNOWN;
        return 0;
}

static void side_free(struct side *s) {
        free(s->redis);
        free(s->group);
        free(s->begin);
        free(s->end);
}

/* The group's committed offsets of both sides (-1: none), in one request.
 * 0, or -EIO when the group coordinator did not answer (logged). */
static int read_group(rd_kafka_t *rk, struct side sides[2]) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(sides[0].n + sides[1].n);
        rd_kafka_resp_err_t err;

        for (int t = 0; t < 2; t++)
                for (int p = 0; p < sides[t].n; p++)
                        rd_kafka_topic_partition_list_add(l, sides[t].topic, p);
        err = rd_kafka_committed(rk, l, TIMEOUT_MS);
        for (int i = 0; !err && i < l->cnt; i++) {
                const rd_kafka_topic_partition_t *tp = &l->elems[i];
                struct side *s = strcmp(tp->topic, sides[0].topic) == 0 ? &sides[0] : &sides[1];
                if (!tp->err && tp->partition >= 0 && tp->partition < s->n)
                        s->group[tp->partition] = tp->offset >= 0 ? tp->offset : -1;
        }
        rd_kafka_topic_partition_list_destroy(l);
        if (err)
                fprintf(stderr, "multichanneld: lag: the consumer group's offsets: %s\n", rd_kafka_err2str(err));
        return err ? -EIO : 0;
}

/* Each partition's beginning and end.  0, or -EIO if one did not answer. */
static int read_ends(rd_kafka_t *rk, struct side *s) {
        int r = 0;

        for (int p = 0; p < s->n; p++) {
                rd_kafka_resp_err_t err =
                        rd_kafka_query_watermark_offsets(rk, s->topic, p, &s->begin[p], &s->end[p], TIMEOUT_MS);
                if (err) {
                        s->begin[p] = s->end[p] = UNKNOWN;
                        fprintf(stderr, "multichanneld: lag: the end of %s [%d]: %s\n", s->topic, p,
                                rd_kafka_err2str(err));
                        r = -EIO;
                }
        }
        return r;
}

/* The offsets Redis holds for each partition number (-1: none).  0, or the
 * first error (logged). */
static int read_redis(const struct mcd_config *cfg, struct side sides[2]) {
        struct mcd_store *store = NULL;
        int n = sides[0].n > sides[1].n ? sides[0].n : sides[1].n;
        int r = mcd_tool_store_new("lag", cfg, &store);

        for (int p = 0; r >= 0 && p < n; p++) {
                struct mcd_offsets o;
                r = mcd_store_get_offsets(store, p, &o, NULL);
                if (r >= 0 && p < sides[0].n)
                        sides[0].redis[p] = o.rel;
                if (r >= 0 && p < sides[1].n)
                        sides[1].redis[p] = o.sub;
        }
        mcd_store_free(store);
        if (r < 0)
                fprintf(stderr, "multichanneld: lag: Redis at %s:%d: %s\n", cfg->redis_host, cfg->redis_port,
                        strerror(-r));
        return r;
}

static const char *fmt_offset(int64_t v, char *buf, size_t len) {
        if (v == UNKNOWN)
                return "?";
        if (v < 0)
                return "-";
        snprintf(buf, len, "%" PRId64, v);
        return buf;
}

/* END - REDIS, from the partition's beginning when Redis holds none. */
static int64_t row_lag(const struct side *s, int p) {
        int64_t from = s->redis[p] >= 0 ? s->redis[p] : s->begin[p];

        if (s->redis[p] == UNKNOWN || from == UNKNOWN || s->end[p] == UNKNOWN)
                return UNKNOWN;
        return s->end[p] - from;
}

/* The table, a partition's two topics together. */
static void print_rows(const struct side sides[2]) {
        int width = (int)strlen("TOPIC"), n = sides[0].n > sides[1].n ? sides[0].n : sides[1].n;
        char b[4][24];

        for (int t = 0; t < 2; t++)
                if ((int)strlen(sides[t].topic) > width)
                        width = (int)strlen(sides[t].topic);
        printf("%-9s  %-*s  %12s  %12s  %12s  %12s\n", "PARTITION", width, "TOPIC", "REDIS", "GROUP", "END", "LAG");
        for (int p = 0; p < n; p++)
                for (int t = 0; t < 2; t++) {
                        const struct side *s = &sides[t];
                        if (p >= s->n)
                                continue;
                        printf("%-9d  %-*s  %12s  %12s  %12s  %12s\n", p, width, s->topic,
                               fmt_offset(s->redis[p], b[0], sizeof(b[0])),
                               fmt_offset(s->group[p], b[1], sizeof(b[1])),
                               fmt_offset(s->end[p], b[2], sizeof(b[2])),
                               fmt_offset(row_lag(s, p), b[3], sizeof(b[3])));
                }
}

/* Reads the three figures of every row and prints the table: 0, or 1 when
 * one source could not be read (its cells "?", the reason on stderr). */
static int report(const struct mcd_config *cfg, rd_kafka_t *rk) {
        const char *topics[2] = {cfg->topic_relationships, cfg->topic_subscriptions};
        struct side sides[2] = {{0}};
        int status = 0;

        for (int t = 0; t < 2; t++) {
                int n = mcd_kafka_partition_count(rk, topics[t], TIMEOUT_MS);
                if (n < 0) {
                        fprintf(stderr, "multichanneld: lag: topic %s: %s\n", topics[t], strerror(-n));
                        status = 1;
                        goto out;
                }
                if (side_alloc(&sides[t], topics[t], n) < 0) {
                        fprintf(stderr, "multichanneld: lag: out of memory\n");
                        status = 1;
                        goto out;
                }
        }
        if (read_group(rk, sides) < 0)
                status = 1;
        if (read_redis(cfg, sides) < 0)
                status = 1;
        for (int t = 0; t < 2; t++)
                if (read_ends(rk, &sides[t]) < 0)
                        status = 1;
        print_rows(sides);
out:
        side_free(&sides[0]);
        side_free(&sides[1]);
        return status;
}

int mcd_cmd_lag(int argc, char **argv) {
        static const struct option opts[] = {
                {"config", required_argument, NULL, 'c'},
                {"bootstrap", required_argument, NULL, 'b'},
                {0},
        };
        const char *path = NULL, *bootstrap = NULL;
        struct mcd_config cfg;
        rd_kafka_t *rk;
        char err[512];
        int c, status;

        optind = 1;
        while ((c = mcd_getopt(argc, argv, "+c:b:", opts)) != -1) {
                if (c == 'c')
                        path = optarg;
                else if (c == 'b')
                        bootstrap = optarg;
                else
                        return mcd_cli_bad_option("lag", argv);
        }
        if (optind < argc)
                return mcd_cli_error("lag", "unexpected argument '%s'", argv[optind]);
        if ((status = mcd_load_config_for("lag", path, &cfg)) != 0)
                return status;
        if (bootstrap && mcd_config_set(&cfg, "kafka.bootstrap.servers", bootstrap, 0, err, sizeof(err)) < 0) {
                status = mcd_cli_error("lag", "--bootstrap: %s", err);
                goto out_cfg;
        }
        /* A reader: the configuration's group.id, no subscription. */
        rk = mcd_kafka_new(&cfg, MCD_KAFKA_READER, NULL, err, sizeof(err));
        if (!rk) {
                fprintf(stderr, "multichanneld: lag: Kafka: %s\n", err);
                status = 1;
                goto out_cfg;
        }
        status = report(&cfg, rk);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
out_cfg:
        mcd_config_clear(&cfg);
        return status;
}
