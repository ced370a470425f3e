/* latency.c -- produce-to-outcome latency of a running multichanneld, for
 * tests/bench/run.sh.
 *
 *   latency -b BOOTSTRAP -n MAX_EVENTS [-r RATE] [-d SECONDS] [-W WARMUP_S]
 *           [-D DRAIN_S] [-c CUSTOMERS] [-R REL_TOPIC] [-S SUB_TOPIC]
 *           [-O OUTCOME_TOPIC] < events.jsonl
 *
 * Reads the events (JSON lines of the replay format from tests/gen_events,
 * ids "ev-SEED-i" with i < MAX_EVENTS and "cust-n" with n < CUSTOMERS) as it
 * goes and produces them at a fixed RATE per second for SECONDS, each with
 * occurred_at and its Kafka timestamp set to the moment it is sent.  A consumer thread reads the outcome topic from the beginning and
 * notes when each outcome arrives.  Events sent during the first WARMUP_S
 * seconds are not counted; after the last event it waits DRAIN_S seconds.
 *
 * Two figures, both over the events sent after the warm-up:
 *   direct:  event sent -> first outcome whose caused_by is that event.
 *            An event parked by the rules (no accepted relationship yet) has
 *            its outcome only when a later event of the customer releases
 *            it, so this figure mixes rule semantics into the latency.
 *   trigger: event sent -> first outcome of that customer received while
 *            that event was the customer's latest one sent: the outcomes the
 *            event's batch caused, its own or the parked ones it released.
 *            This is the daemon's own latency (at 10,000 events/s over
 *            100,000 customers, a customer sends every ~10 s, far longer than
 *            the latency measured, so the attribution is unambiguous).
 *   produced: as trigger, but to that outcome's Kafka timestamp, i.e. when
 *            the daemon produced it (ms resolution): trigger less the
 *            delivery to this consumer, whose fetches the mock cluster
 *            answers late (it does not wake a waiting fetch on new data).
 * The trigger's p99 is also printed for each fifth of the measured span.
 * Prints key=value lines on stdout; exit 0, 1 on an error, 2 usage. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "daemon/avro_codec.h"
#include "daemon/jsonl.h"

static int64_t now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct slot {                  /* one input event */
        struct mcd_event ev;
        long seq;              /* i of "ev-SEED-i" */
        long cust;             /* n of "cust-n" */
};

static _Atomic int64_t *sent_us;      /* by seq: when produced (0: not yet) */
static int64_t *direct_us, *trigger_us;   /* by seq: first outcome received */
static int64_t *produced_us;               /* by seq: that outcome's Kafka timestamp */
static _Atomic long *cust_last;       /* by customer: seq of the latest event sent, -1 none */
static long max_seq, n_cust;
static atomic_int stop_consumer;
static uint64_t outcomes_seen, outcomes_unmatched;
static struct mcd_avro *avro, *avro_out;  /* one per thread */

static long parse_suffix(const char *s) {   /* number after the last '-' */
        const char *d = s ? strrchr(s, '-') : NULL;
        return d ? strtol(d + 1, NULL, 10) : -1;
}

static void on_outcome(const rd_kafka_message_t *m) {
        struct mcd_outcome o = {0};
        struct mcd_avro_error err;
        int64_t t = now_us();
        long seq, cust, last;

        if (mcd_avro_decode_outcome(avro_out, m->payload, m->len, &o, &err) < 0) {
                outcomes_unmatched++;
                return;
        }
        outcomes_seen++;
        seq = parse_suffix(o.caused_by);
        cust = parse_suffix(o.customer_id);
        if (seq >= 0 && seq <= max_seq && atomic_load(&sent_us[seq]) && !direct_us[seq])
                direct_us[seq] = t;
        else if (seq < 0 || seq > max_seq || !atomic_load(&sent_us[seq]))
                outcomes_unmatched++;
        if (cust >= 0 && cust < n_cust && (last = atomic_load(&cust_last[cust])) >= 0 && !trigger_us[last]) {
                rd_kafka_timestamp_type_t tt;
                int64_t ts = rd_kafka_message_timestamp(m, &tt);
                trigger_us[last] = t;
                produced_us[last] = ts > 0 ? ts * 1000 : t;
        }
        mcd_outcome_clear(&o);
}

static void *consumer_main(void *arg) {
        rd_kafka_t *rk = arg;
        while (!atomic_load(&stop_consumer)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
                if (!m)
                        continue;
                if (!m->err)
                        on_outcome(m);
                rd_kafka_message_destroy(m);
        }
        return NULL;
}

static int cmp_i64(const void *a, const void *b) {
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

/* The latencies (us) of the events sent in [from_us, to_us] that have an
 * outcome in `first`, sorted, into v (room for max_seq + 1); how many, and
 * in *counted how many events were sent in the span. */
static size_t collect(const int64_t *first, int64_t from_us, int64_t to_us, int64_t *v, size_t *counted) {
        size_t n = 0;

        *counted = 0;
        for (long s = 0; s <= max_seq; s++) {
                int64_t t0 = atomic_load(&sent_us[s]);
                if (!t0 || t0 < from_us || t0 > to_us)
                        continue;
                (*counted)++;
                if (first[s])
                        v[n++] = first[s] - t0;
        }
        qsort(v, n, sizeof(*v), cmp_i64);
        return n;
}

/* The p-th quantile (0..1) of n sorted latencies, in ms; -1 for none. */
static double pct_ms(const int64_t *v, size_t n, double p) {
        return n ? (double)v[(size_t)((double)(n - 1) * p)] / 1000.0 : -1.0;
}

static void report(const char *name, const int64_t *first, int64_t from_us, int64_t to_us) {
        int64_t *v = malloc((size_t)(max_seq + 1) * sizeof(*v));
        size_t counted, n = collect(first, from_us, to_us, v, &counted);
        double sum = 0;

        for (size_t i = 0; i < n; i++)
                sum += (double)v[i];
        printf("%s_events=%zu\n%s_with_outcome=%zu\n", name, counted, name, n);
        printf("%s_p50_ms=%.2f\n%s_p90_ms=%.2f\n%s_p99_ms=%.2f\n%s_p999_ms=%.2f\n%s_max_ms=%.2f\n%s_mean_ms=%.2f\n",
               name, pct_ms(v, n, 0.5), name, pct_ms(v, n, 0.9), name, pct_ms(v, n, 0.99), name, pct_ms(v, n, 0.999),
               name, pct_ms(v, n, 1.0), name, n ? sum / (double)n / 1000.0 : -1.0);
        free(v);
}

#define WINDOWS 5   /* the measured span cut in this many windows for report_windows */

/* The p99 of each of WINDOWS equal windows of [from_us, to_us], as
 * NAME_window_p99_ms=a,b,...: a p99 that grows window after window grows
 * with the run's age (the mock cluster's fetches search a partition's log
 * linearly); one window far over the others holds a stall of its own (Redis's
 * AOF rewrite, run.sh prints when one came). */
static void report_windows(const char *name, const int64_t *first, int64_t from_us, int64_t to_us) {
        int64_t *v = malloc((size_t)(max_seq + 1) * sizeof(*v));
        int64_t span = (to_us - from_us) / WINDOWS;
        size_t counted;

        printf("%s_window_p99_ms=", name);
        for (int w = 0; w < WINDOWS; w++) {
                int64_t a = from_us + w * span, b = w == WINDOWS - 1 ? to_us : a + span - 1;
                size_t n = collect(first, a, b, v, &counted);
                printf("%s%.1f", w ? "," : "", pct_ms(v, n, 0.99));
        }
        printf("\n");
        free(v);
}

static rd_kafka_t *new_client(rd_kafka_type_t type, const char *bootstrap, const char *const *kv) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char err[512];
        rd_kafka_t *rk;
        if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) != RD_KAFKA_CONF_OK)
                goto bad;
        for (; kv[0]; kv += 2)
                if (rd_kafka_conf_set(conf, kv[0], kv[1], err, sizeof(err)) != RD_KAFKA_CONF_OK)
                        goto bad;
        rk = rd_kafka_new(type, conf, err, sizeof(err));
        if (!rk)
                fprintf(stderr, "latency: %s\n", err);
        return rk;
bad:
        fprintf(stderr, "latency: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
}

static int partition_count(rd_kafka_t *rk, const char *topic) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        int n = -1;
        if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 &&
            md->topics[0].err == 0)
                n = md->topics[0].partition_cnt;
        if (md)
                rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        return n;
}

int main(int argc, char **argv) {
        const char *bootstrap = NULL, *rel = "partnercenter.relationships.v1",
                   *sub = "partnercenter.subscriptions.v1", *outt = "partnercenter.multichannel.outcomes.v1";
        double rate = 10000, secs = 25, warm = 3, drain = 3;
        char *line = NULL, why[512];
        size_t cap = 0;
        ssize_t len;
        int eof = 0;
        rd_kafka_t *prod, *cons;
        rd_kafka_topic_partition_list_t *tp;
        pthread_t thr;
        int64_t t_start, t_end;
        size_t sent = 0, failed_produce = 0;
        int c, np;

        n_cust = 100000;
        while ((c = getopt(argc, argv, "b:n:r:d:W:D:c:R:S:O:")) != -1) {
                switch (c) {
                case 'b': bootstrap = optarg; break;
                case 'n': max_seq = atol(optarg) - 1; break;
                case 'r': rate = atof(optarg); break;
                case 'd': secs = atof(optarg); break;
                case 'W': warm = atof(optarg); break;
                case 'D': drain = atof(optarg); break;
                case 'c': n_cust = atol(optarg); break;
                case 'R': rel = optarg; break;
                case 'S': sub = optarg; break;
                case 'O': outt = optarg; break;
                default: goto usage;
                }
        }
        if (!bootstrap || max_seq < 0 || rate <= 0 || secs <= 0 || n_cust <= 0)
                goto usage;
        if (mcd_avro_new(&avro) < 0 || mcd_avro_new(&avro_out) < 0)
                return 1;
        sent_us = calloc((size_t)max_seq + 1, sizeof(*sent_us));
        direct_us = calloc((size_t)max_seq + 1, sizeof(*direct_us));
        trigger_us = calloc((size_t)max_seq + 1, sizeof(*trigger_us));
        produced_us = calloc((size_t)max_seq + 1, sizeof(*produced_us));
        cust_last = malloc((size_t)n_cust * sizeof(*cust_last));
        if (!sent_us || !direct_us || !trigger_us || !produced_us || !cust_last)
                return 1;
        for (long i = 0; i < n_cust; i++)
                atomic_init(&cust_last[i], -1);

        prod = new_client(RD_KAFKA_PRODUCER, bootstrap,
                          (const char *const[]){"linger.ms", "5", "partitioner", "murmur2_random", "acks", "all",
                                                "socket.nagle.disable", "true",
                                                "enable.idempotence", "true", NULL});
        cons = new_client(RD_KAFKA_CONSUMER, bootstrap,
                          (const char *const[]){"group.id", "mcd-bench-latency", "enable.auto.commit", "false",
                                                "fetch.wait.max.ms", "5", "fetch.error.backoff.ms", "10",
                                                "enable.partition.eof", "false", "socket.nagle.disable", "true", NULL});
        if (!prod || !cons)
                return 1;
        np = partition_count(cons, outt);
        if (np <= 0) {
                fprintf(stderr, "latency: no topic %s\n", outt);
                return 1;
        }
        tp = rd_kafka_topic_partition_list_new(np);
        for (int p = 0; p < np; p++)
                rd_kafka_topic_partition_list_add(tp, outt, p)->offset = RD_KAFKA_OFFSET_END;
        if (rd_kafka_assign(cons, tp) != RD_KAFKA_RESP_ERR_NO_ERROR)
                return 1;
        rd_kafka_topic_partition_list_destroy(tp);
        pthread_create(&thr, NULL, consumer_main, cons);
        /* Let the consumer fetch the end offsets before the first event. */
        {
                struct timespec ts = {1, 0};
                nanosleep(&ts, NULL);
        }

        t_start = now_us();
        t_end = t_start + (int64_t)(secs * 1e6);
        for (;;) {
                int64_t t = now_us();
                size_t due = (size_t)((double)(t - t_start) * rate / 1e6);
                if (t >= t_end || eof)
                        break;
                while (sent < due) {
                        struct slot sl, *s = &sl;
                        void *buf;
                        size_t blen;
                        int64_t ts_us = now_us();
                        rd_kafka_resp_err_t err;

                        if ((len = getline(&line, &cap, stdin)) < 0) {
                                eof = 1;
                                break;
                        }
                        if (line[strspn(line, " \t\r\n")] == '\0')
                                continue;
                        if (mcd_jsonl_parse_event(line, (size_t)len, &s->ev, why, sizeof(why)) < 0) {
                                fprintf(stderr, "latency: input line %zu: %s\n", sent, why);
                                return 1;
                        }
                        sent++;
                        s->seq = parse_suffix(s->ev.event_id);
                        s->cust = parse_suffix(s->ev.customer_id);
                        ts_us = now_us();
                        s->ev.occurred_at = ts_us / 1000;
                        if (mcd_avro_encode_event(avro, &s->ev, &buf, &blen) < 0) {
                                failed_produce++;
                                mcd_event_clear(&s->ev);
                                continue;
                        }
                        /* Record before producing: the outcome may come back first. */
                        if (s->seq >= 0 && s->seq <= max_seq && !atomic_load(&sent_us[s->seq]))
                                atomic_store(&sent_us[s->seq], ts_us);
                        if (s->cust >= 0 && s->cust < n_cust && s->seq >= 0 && s->seq <= max_seq)
                                atomic_store(&cust_last[s->cust], s->seq);
                        err = rd_kafka_producev(
                                prod,
                                RD_KAFKA_V_TOPIC(mcd_event_is_relationship(s->ev.type) ? rel : sub),
                                RD_KAFKA_V_KEY(s->ev.customer_id, strlen(s->ev.customer_id)),
                                RD_KAFKA_V_VALUE(buf, blen), RD_KAFKA_V_TIMESTAMP(ts_us / 1000),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END);
                        if (err) {
                                free(buf);
                                failed_produce++;
                        }
                        mcd_event_clear(&s->ev);
                }
                rd_kafka_poll(prod, 0);
                {
                        struct timespec ts = {0, 500000};   /* 0.5 ms ticks */
                        nanosleep(&ts, NULL);
                }
        }
        {
                int64_t t_last = now_us();
                double achieved = (double)sent / ((double)(t_last - t_start) / 1e6);
                rd_kafka_flush(prod, 10000);
                {
                        struct timespec ts = {(time_t)drain, (long)((drain - (double)(time_t)drain) * 1e9)};
                        nanosleep(&ts, NULL);
                }
                atomic_store(&stop_consumer, 1);
                pthread_join(thr, NULL);
                printf("sent=%zu\nproduce_failed=%zu\nrate_target=%.0f\nrate_achieved=%.0f\n", sent, failed_produce,
                       rate, achieved);
                printf("outcomes_seen=%" PRIu64 "\noutcomes_unmatched=%" PRIu64 "\n", outcomes_seen,
                       outcomes_unmatched);
                report("direct", direct_us, t_start + (int64_t)(warm * 1e6), t_last);
                report("trigger", trigger_us, t_start + (int64_t)(warm * 1e6), t_last);
                report_windows("trigger", trigger_us, t_start + (int64_t)(warm * 1e6), t_last);
                report("produced", produced_us, t_start + (int64_t)(warm * 1e6), t_last);
        }
        rd_kafka_consumer_close(cons);
        rd_kafka_destroy(cons);
        rd_kafka_destroy(prod);
        free(line);
        mcd_avro_free(avro);
        mcd_avro_free(avro_out);
        free(produced_us);
        return 0;
usage:
        fprintf(stderr, "usage: latency -b BOOTSTRAP -n MAX_EVENTS [-r RATE] [-d SECONDS] [-W WARMUP_S] [-D DRAIN_S] "
                        "[-c CUSTOMERS] [-R TOPIC] [-S TOPIC] [-O TOPIC] < events.jsonl\n");
        return 2;
}
