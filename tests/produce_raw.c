/* produce_raw.c -- a small producer of arbitrary (usually bad) messages, for
 * the dead-letter tests.
 *
 *   produce_raw -b BOOTSTRAP -t TOPIC [-p PARTITION] [-k KEY] [-m MODE]
 *
 * Without -m (or with -m raw) each input line is "KEY<TAB>HEXVALUE" with an
 * optional third field "<TAB>TIMESTAMP_MS"; the value is the hex-decoded
 * bytes (an empty HEXVALUE produces an empty value).
 *
 * With any other mode each input line is one event in the replay format
 * (JSON).  It is encoded with the project's codec (the single-object
 * encoding, current writer schema), then damaged according to MODE, and
 * produced with key customer_id (or -k KEY) and timestamp occurred_at:
 *
 *   valid      unchanged (a good message; on the other topic: WRONG_TOPIC)
 *   badmagic   first magic byte changed                      (BAD_MAGIC)
 *   flipfp     one fingerprint byte changed                  (UNKNOWN_SCHEMA)
 *   truncate   Avro body cut to half its length              (CORRUPT_AVRO)
 *   trailing   three garbage bytes appended                  (CORRUPT_AVRO)
 *   noterm     term_end removed before encoding; the encoder
 *              does not validate                             (INVALID_EVENT)
 *
 * Messages are produced with the daemon's producer defaults (idempotent,
 * acks=all, murmur2_random), so a key lands on the partition the daemon's
 * own tools would put it on, each flushed before the next.  For every
 * message, in input order, one line is printed on stdout once it is
 * delivered:
 *
 *   TOPIC<TAB>PARTITION<TAB>OFFSET<TAB>KEY<TAB>VALUE_LENGTH<TAB>HEXVALUE
 *
 *   produce_raw -b BOOTSTRAP -t TOPIC -d
 *
 * dumps the topic instead (every partition, from the beginning to the end
 * as it is now), one line a message, for checking that a value came out
 * unchanged:
 *
 *   TOPIC<TAB>PARTITION<TAB>OFFSET<TAB>KEY<TAB>HEXVALUE[<TAB>NAME=VALUE]...
 *
 * one NAME=VALUE per header, in order (keys and header values are printed
 * as they are: the tests use printable ones); with -T, then
 * "@timestamp=MS", the record's timestamp.
 *
 * -H NAME=VALUE (repeatable) adds that header to every message produced
 * (the redrive test writes dead letters of its own with it).
 *
 * Exit status: 0 when every message was delivered (dumped), 1 on a bad
 * input line, any delivery failure or a Kafka error, 2 on a usage error. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "daemon/avro_codec.h"
#include "daemon/jsonl.h"
#include "handlers/model.h"

enum mode { M_RAW, M_VALID, M_BADMAGIC, M_FLIPFP, M_TRUNCATE, M_TRAILING, M_NOTERM };

static const struct {
        const char *name;
        enum mode mode;
} modes[] = {
        {"raw", M_RAW},           {"valid", M_VALID},       {"badmagic", M_BADMAGIC}, {"flipfp", M_FLIPFP},
        {"truncate", M_TRUNCATE}, {"trailing", M_TRAILING}, {"noterm", M_NOTERM},
};

/* One produced message, for its delivery report. */
struct msg {
        char *key;
        unsigned char *val;
        size_t len;
        rd_kafka_resp_err_t err;
        int32_t partition;
        int64_t offset;
        bool reported;
};

static struct msg *msgs;
static size_t n_msgs, cap_msgs;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        struct msg *x = &msgs[(size_t)(uintptr_t)m->_private];

        (void)rk;
        (void)opaque;
        x->err = m->err;
        x->partition = m->partition;
        x->offset = m->offset;
        x->reported = true;
}

static void usage(void) {
        fprintf(stderr, "usage: produce_raw -b BOOTSTRAP -t TOPIC [-p PARTITION] [-k KEY] [-H NAME=VALUE]... "
                        "[-m raw|valid|badmagic|flipfp|truncate|trailing|noterm]\n"
                        "       produce_raw -b BOOTSTRAP -t TOPIC -d [-T]\n");
        exit(2);
}

static void print_hex(const void *buf, size_t len) {
        const unsigned char *b = buf;
        for (size_t i = 0; i < len; i++)
                printf("%02x", b[i]);
}

/* -d: prints every message of the topic, up to each partition's end. */
static int dump(const char *bootstrap, const char *topic, bool with_ts) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_partition_list_t *l;
        rd_kafka_topic_t *rkt;
        rd_kafka_t *rk;
        char errstr[512];
        int n_parts = 0, eof = 0, status = 0;

        if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "group.id", "produce_raw-dump", errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr))) {
                fprintf(stderr, "produce_raw: %s\n", errstr);
                rd_kafka_conf_destroy(conf);
                return 1;
        }
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "produce_raw: %s\n", errstr);
                return 1;
        }
        rkt = rd_kafka_topic_new(rk, topic, NULL);
        if (rkt && rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 &&
            !md->topics[0].err)
                n_parts = md->topics[0].partition_cnt;
        if (md)
                rd_kafka_metadata_destroy(md);
        if (rkt)
                rd_kafka_topic_destroy(rkt);
        if (n_parts <= 0) {
                fprintf(stderr, "produce_raw: no metadata for topic %s\n", topic);
                rd_kafka_destroy(rk);
                return 1;
        }
        l = rd_kafka_topic_partition_list_new(n_parts);
        for (int i = 0; i < n_parts; i++)
                rd_kafka_topic_partition_list_add(l, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_assign(rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        while (eof < n_parts) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 10000);
                rd_kafka_headers_t *h = NULL;
                const char *name;
                const void *v;
                size_t vn;

                if (!m) {
                        fprintf(stderr, "produce_raw: %s: nothing for 10 s before the end\n", topic);
                        status = 1;
                        break;
                }
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        eof++;
                } else if (m->err) {
                        fprintf(stderr, "produce_raw: %s: %s\n", topic, rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                        status = 1;
                        break;
                } else {
                        printf("%s\t%" PRId32 "\t%" PRId64 "\t%.*s\t", topic, m->partition, m->offset,
                               (int)m->key_len, m->key ? (const char *)m->key : "");
                        print_hex(m->payload, m->len);
                        if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR)
                                for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &v, &vn); i++)
                                        printf("\t%s=%.*s", name, (int)vn, v ? (const char *)v : "");
                        if (with_ts)
                                printf("\t@timestamp=%" PRId64, rd_kafka_message_timestamp(m, NULL));
                        putchar('\n');
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return status;
}

static int hexval(int c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decodes hex (n characters) into a new buffer; -EINVAL on odd length or a
 * non-hex character. */
static int unhex(const char *s, size_t n, unsigned char **out, size_t *len) {
        unsigned char *b;

        if (n % 2)
                return -EINVAL;
        b = malloc(n / 2 + 1);
        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < n; i += 2) {
                int hi = hexval((unsigned char)s[i]), lo = hexval((unsigned char)s[i + 1]);
                if (hi < 0 || lo < 0) {
                        free(b);
                        return -EINVAL;
                }
                b[i / 2] = (unsigned char)(hi << 4 | lo);
        }
        *out = b;
        *len = n / 2;
        return 0;
}

/* Builds the value of one JSON line in the given mode. */
static int build_event(struct mcd_avro *avro, enum mode mode, const char *line, size_t n, char **key,
                       unsigned char **val, size_t *len, int64_t *ts, size_t lineno) {
        struct mcd_event ev = {0};
        char why[256];
        void *buf = NULL;
        size_t blen = 0;
        unsigned char *b;

        if (mcd_jsonl_parse_event(line, n, &ev, why, sizeof(why)) < 0) {
                fprintf(stderr, "produce_raw: line %zu: %s\n", lineno, why);
                return -EINVAL;
        }
        if (mode == M_NOTERM) {
                if (ev.type != MCD_EV_SUBSCRIPTION_REPORTED) {
                        fprintf(stderr, "produce_raw: line %zu: -m noterm needs a SubscriptionReported\n", lineno);
                        mcd_event_clear(&ev);
                        return -EINVAL;
                }
                ev.has_term_end = false;
                ev.term_end = 0;
        }
        if (mcd_avro_encode_event(avro, &ev, &buf, &blen) < 0 || blen < 11) {
                fprintf(stderr, "produce_raw: line %zu: cannot encode the event\n", lineno);
                free(buf);
                mcd_event_clear(&ev);
                return -EINVAL;
        }
        /* Room for the trailing garbage. */
        b = realloc(buf, blen + 3);
        if (!b) {
                free(buf);
                mcd_event_clear(&ev);
                return -ENOMEM;
        }
        switch (mode) {
        case M_BADMAGIC: b[0] = 0xC2; break;
        case M_FLIPFP: b[2 + 3] ^= 0x5A; break;
        case M_TRUNCATE: blen = 10 + (blen - 10) / 2; break;
        case M_TRAILING:
                b[blen++] = 0x02;
                b[blen++] = 0x7F;
                b[blen++] = 0xFF;
                break;
        default: break;
        }
        if (!*key)
                *key = strdup(ev.customer_id);
        *ts = ev.occurred_at;
        *val = b;
        *len = blen;
        mcd_event_clear(&ev);
        return *key ? 0 : -ENOMEM;
}

/* Splits a raw line "KEY<TAB>HEX[<TAB>TIMESTAMP_MS]". */
static int build_raw(char *line, char **key, unsigned char **val, size_t *len, int64_t *ts, size_t lineno) {
        char *tab1 = strchr(line, '\t'), *hex, *tab2, *end;

        if (!tab1) {
                fprintf(stderr, "produce_raw: line %zu: expected KEY<TAB>HEXVALUE\n", lineno);
                return -EINVAL;
        }
        *tab1 = '\0';
        hex = tab1 + 1;
        tab2 = strchr(hex, '\t');
        if (tab2) {
                *tab2 = '\0';
                errno = 0;
                *ts = strtoll(tab2 + 1, &end, 10);
                if (errno || end == tab2 + 1 || *end || *ts < 0) {
                        fprintf(stderr, "produce_raw: line %zu: bad TIMESTAMP_MS '%s'\n", lineno, tab2 + 1);
                        return -EINVAL;
                }
        }
        if (unhex(hex, strlen(hex), val, len) < 0) {
                fprintf(stderr, "produce_raw: line %zu: bad HEXVALUE\n", lineno);
                return -EINVAL;
        }
        if (!*key)
                *key = strdup(line);
        return *key ? 0 : -ENOMEM;
}

int main(int argc, char **argv) {
        const char *bootstrap = NULL, *topic = NULL, *key_opt = NULL;
        int32_t partition = RD_KAFKA_PARTITION_UA;
        enum mode mode = M_RAW;
        struct mcd_avro *avro = NULL;
        rd_kafka_conf_t *conf;
        rd_kafka_t *rk;
        char errstr[512], *line = NULL, *end;
        size_t cap = 0, lineno = 0;
        ssize_t n;
        int c, status = 0;
        bool dump_mode = false, with_ts = false;
        const char *hdrs[8];
        size_t n_hdrs = 0;

        while ((c = getopt(argc, argv, "b:t:p:k:m:dTH:")) != -1) {
                switch (c) {
                case 'H':
                        if (n_hdrs == sizeof(hdrs) / sizeof(hdrs[0]) || !strchr(optarg, '='))
                                usage();
                        hdrs[n_hdrs++] = optarg;
                        break;
                case 'd': dump_mode = true; break;
                case 'T': with_ts = true; break;
                case 'b': bootstrap = optarg; break;
                case 't': topic = optarg; break;
                case 'k': key_opt = optarg; break;
                case 'p':
                        errno = 0;
                        partition = (int32_t)strtol(optarg, &end, 10);
                        if (errno || *end || end == optarg || partition < 0)
                                usage();
                        break;
                case 'm': {
                        size_t i;
                        for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
                                if (strcmp(optarg, modes[i].name) == 0)
                                        break;
                        if (i == sizeof(modes) / sizeof(modes[0]))
                                usage();
                        mode = modes[i].mode;
                        break;
                }
                default: usage();
                }
        }
        if (!bootstrap || !topic || optind != argc)
                usage();
        if (dump_mode)
                return dump(bootstrap, topic, with_ts);
        if (mode != M_RAW && mcd_avro_new(&avro) < 0) {
                fprintf(stderr, "produce_raw: cannot load the Avro schemas\n");
                return 1;
        }

        conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "acks", "all", errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "partitioner", "murmur2_random", errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "message.timeout.ms", "30000", errstr, sizeof(errstr))) {
                fprintf(stderr, "produce_raw: %s\n", errstr);
                rd_kafka_conf_destroy(conf);
                mcd_avro_free(avro);
                return 1;
        }
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "produce_raw: %s\n", errstr);
                mcd_avro_free(avro);
                return 1;
        }

        while ((n = getline(&line, &cap, stdin)) != -1) {
                char *key = key_opt ? strdup(key_opt) : NULL;
                unsigned char *val = NULL;
                size_t len = 0;
                int64_t ts = 0;
                rd_kafka_resp_err_t err;
                int r;

                lineno++;
                while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                        line[--n] = '\0';
                if (n == 0) {
                        free(key);
                        continue;
                }
                if (key_opt && !key) {
                        status = 1;
                        break;
                }
                r = mode == M_RAW ? build_raw(line, &key, &val, &len, &ts, lineno)
                                  : build_event(avro, mode, line, (size_t)n, &key, &val, &len, &ts, lineno);
                if (r < 0) {
                        free(key);
                        free(val);
                        status = 1;
                        continue;
                }
                if (n_msgs == cap_msgs) {
                        struct msg *nm = realloc(msgs, (cap_msgs ? 2 * cap_msgs : 16) * sizeof(*msgs));
                        if (!nm) {
                                free(key);
                                free(val);
                                status = 1;
                                break;
                        }
                        msgs = nm;
                        cap_msgs = cap_msgs ? 2 * cap_msgs : 16;
                }
                msgs[n_msgs] = (struct msg){.key = key, .val = val, .len = len, .err = RD_KAFKA_RESP_ERR_NO_ERROR};
                do {
                        rd_kafka_headers_t *h = rd_kafka_headers_new(n_hdrs + 1);
                        for (size_t i = 0; i < n_hdrs; i++) {
                                const char *eq = strchr(hdrs[i], '=');
                                rd_kafka_header_add(h, hdrs[i], eq - hdrs[i], eq + 1, -1);
                        }
                        /* An empty value is produced as a zero-length value. */
                        err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                                RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(val, len),
                                                RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                                RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)n_msgs),
                                                RD_KAFKA_V_END);
                        if (err)
                                rd_kafka_headers_destroy(h);
                        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                                rd_kafka_poll(rk, 100);
                } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
                n_msgs++;
                if (err) {
                        fprintf(stderr, "produce_raw: line %zu: cannot produce: %s\n", lineno, rd_kafka_err2str(err));
                        msgs[n_msgs - 1].err = err;
                        msgs[n_msgs - 1].reported = true;
                        status = 1;
                        continue;
                }
                /* Synchronous: one message in flight at a time, so input order
                 * is offset order on a partition whatever the retries do. */
                if (rd_kafka_flush(rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                        fprintf(stderr, "produce_raw: line %zu: not delivered within 30 s\n", lineno);
                        status = 1;
                }
        }
        free(line);
        if (rd_kafka_flush(rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                fprintf(stderr, "produce_raw: not every message was delivered within 30 s\n");
                status = 1;
        }
        for (size_t i = 0; i < n_msgs; i++) {
                struct msg *x = &msgs[i];
                if (!x->reported || x->err) {
                        fprintf(stderr, "produce_raw: message %zu (key %s): %s\n", i + 1, x->key,
                                x->reported ? rd_kafka_err2str(x->err) : "no delivery report");
                        status = 1;
                } else {
                        printf("%s\t%" PRId32 "\t%" PRId64 "\t%s\t%zu\t", topic, x->partition, x->offset, x->key,
                               x->len);
                        print_hex(x->val, x->len);
                        putchar('\n');
                }
                free(x->key);
                free(x->val);
        }
        free(msgs);
        rd_kafka_destroy(rk);
        mcd_avro_free(avro);
        return status;
}
