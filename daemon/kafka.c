/* kafka.c -- librdkafka clients from the configuration, and the embedded
 * mock cluster.
 *
 * Role defaults come first and every kafka.* key of the configuration file is
 * applied over them, so an operator can change anything but what exactly
 * once rests on (config.c KAFKA_PINNED refuses that at load). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "daemon/kafka.h"
#include "daemon/log.h"

struct mcd_embedded {
        rd_kafka_t *host;            /* the client instance that hosts the cluster */
        int brokers;
        int partitions;              /* of each topic */
        rd_kafka_mock_cluster_t *cluster;
        char *bootstraps;
        enum mcd_mock_api delayed;   /* what the delayed broker answers late (mcd_embedded_delay) */
};

/* Fetching, for both input handles.  The daemon buffers what the merge
 * needs itself (buffer.max_events); librdkafka's prefetch only has to keep
 * the pipe full.  Small fetch responses keep the memory flat: 1.5 MiB
 * queued per handle (each message costs about twice its size in
 * librdkafka's queue; 1 MiB starves the fetcher, which 2.0 re-arms only on
 * its own schedule: -15% in the benchmark), responses of at most 1 MiB,
 * 256 KiB per partition.  The README's Memory section has the figures. */
#define FETCH_DEFAULTS \
        {"queued.max.messages.kbytes", "1536"}, {"fetch.max.bytes", "1048576"}, {"max.partition.fetch.bytes", "262144"}

static const char *const consumer_defaults[][2] = {
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"isolation.level", "read_committed"},
        /* A restarted instance must get its partitions back within seconds:
         * the group waits for a dead member's session to time out. */
        {"session.timeout.ms", "6000"},
        {"heartbeat.interval.ms", "1000"},
        {"fetch.wait.max.ms", "20"},
        {"enable.partition.eof", "true"},
        {"socket.nagle.disable", "true"},
        FETCH_DEFAULTS,
        {NULL, NULL},
};

/* An assign()-only consumer: positions kept by the caller, ends reported. */
#define READER_DEFAULTS \
        {"enable.auto.commit", "false"}, {"enable.auto.offset.store", "false"}, \
        {"enable.partition.eof", "true"}, {"auto.offset.reset", "earliest"}, \
        {"fetch.wait.max.ms", "20"}, {"socket.nagle.disable", "true"}

static const char *const reader_defaults[][2] = {
        READER_DEFAULTS,
        FETCH_DEFAULTS,
        {NULL, NULL},
};

/* A command reading a topic to its end as fast as it can (tail): no bound
 * of the daemon's on librdkafka's prefetch, whose own defaults (64 MiB
 * queued, 1 MiB per partition) keep its queue from filling; a full queue
 * stops librdkafka 2.0's fetching for up to a second (intake.c
 * wake_stalled), and tail then fell behind a fast daemon by more than the
 * mock cluster keeps of a partition. */
static const char *const tool_reader_defaults[][2] = {
        READER_DEFAULTS,
        {NULL, NULL},
};

static const char *const producer_defaults[][2] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", "2"},
        {"partitioner", "murmur2_random"},
        {"message.timeout.ms", "30000"},
        /* Kafka's own clients set TCP_NODELAY; with Nagle on, a small
         * request behind one in flight waits for a delayed ACK (40 ms). */
        {"socket.nagle.disable", "true"},
        {NULL, NULL},
};

/* A client that only asks for partitions' ends (ListOffsets): the high
 * watermark, as a fetch answer gives it, whatever the consumers'
 * isolation.level (end_probe.c). */
static const char *const end_probe_defaults[][2] = {
        {"isolation.level", "read_uncommitted"},
        {"socket.nagle.disable", "true"},
        {NULL, NULL},
};

/* `multichanneld publish` loads files: throughput over latency.  Large
 * message sets also spare brokers that look offsets up by scanning their
 * log (librdkafka's mock cluster returns one message set per partition and
 * fetch, found by a linear search). */
static const char *const bulk_producer_defaults[][2] = {
        {"linger.ms", "50"},
        {"batch.num.messages", "10000"},
        {NULL, NULL},
};

/* Consumer-only properties a producer must not be given (librdkafka warns
 * about them) and the reverse. */
static bool is_producer(enum mcd_kafka_role role) {
        return role == MCD_KAFKA_PRODUCER || role == MCD_KAFKA_BULK_PRODUCER;
}

static bool applies(const char *name, enum mcd_kafka_role role) {
        static const char *const consumer_only[] = {
                "group.id", "partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms",
                "enable.auto.commit", "auto.offset.reset", "isolation.level", "group.instance.id",
                "max.poll.interval.ms", "fetch.wait.max.ms", "enable.auto.offset.store", "queued.max.messages.kbytes",
                "queued.min.messages", "fetch.max.bytes", "max.partition.fetch.bytes", "fetch.min.bytes", NULL,
        };
        static const char *const producer_only[] = {
                "enable.idempotence", "acks", "linger.ms", "partitioner", "message.timeout.ms",
                "transactional.id", "compression.type", "batch.size", "queue.buffering.max.ms",
                "batch.num.messages", NULL,
        };
        const char *const *list = is_producer(role) ? consumer_only : producer_only;

        for (size_t i = 0; list[i]; i++)
                if (strcmp(list[i], name) == 0)
                        return false;
        if ((role == MCD_KAFKA_READER || role == MCD_KAFKA_TOOL_READER || role == MCD_KAFKA_END_PROBE) &&
            strcmp(name, "group.instance.id") == 0)
                return false;
        return role != MCD_KAFKA_END_PROBE || strcmp(name, "isolation.level") != 0;
}

static int set_all(rd_kafka_conf_t *conf, const char *const defaults[][2], char *err, size_t errlen) {
        for (size_t i = 0; defaults[i][0]; i++)
                if (rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], err, errlen) != RD_KAFKA_CONF_OK)
                        return -EINVAL;
        return 0;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
        mcd_log(level > LOG_DEBUG ? LOG_DEBUG : level, "kafka %s: %s: %s", rd_kafka_name(rk), fac, buf);
}

rd_kafka_t *mcd_kafka_new(const struct mcd_config *cfg, enum mcd_kafka_role role, rd_kafka_conf_t *extra,
                          char *err, size_t errlen) {
        rd_kafka_conf_t *conf = extra ? extra : rd_kafka_conf_new();
        const char *const(*defaults)[2] = is_producer(role)                 ? producer_defaults
                                          : role == MCD_KAFKA_READER      ? reader_defaults
                                          : role == MCD_KAFKA_TOOL_READER ? tool_reader_defaults
                                          : role == MCD_KAFKA_END_PROBE   ? end_probe_defaults
                                                                          : consumer_defaults;
        rd_kafka_t *rk;

        if (set_all(conf, defaults, err, errlen) < 0)
                goto fail;
        if (role == MCD_KAFKA_BULK_PRODUCER && set_all(conf, bulk_producer_defaults, err, errlen) < 0)
                goto fail;
        for (size_t i = 0; i < cfg->n_kafka; i++) {
                if (!applies(cfg->kafka[i].key, role))
                        continue;
                if (rd_kafka_conf_set(conf, cfg->kafka[i].key, cfg->kafka[i].value, err, errlen) !=
                    RD_KAFKA_CONF_OK)
                        goto fail;
        }
        rd_kafka_conf_set_log_cb(conf, log_cb);
        rk = rd_kafka_new(is_producer(role) ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER, conf, err, errlen);
        if (!rk)
                goto fail;
        return rk;
fail:
        rd_kafka_conf_destroy(conf);
        return NULL;
}

/* True when `port` is the port of one of the "host:port" entries of a
 * comma-separated list (the number after an entry's last ':', so that
 * "[::1]:9092" is port 9092). */
static bool port_listed(const char *list, unsigned port) {
        const char *end = NULL;

        for (const char *entry = list; entry && *entry; entry = end ? end + 1 : NULL) {
                const char *colon = NULL;
                end = strchr(entry, ',');
                for (const char *c = entry; *c && c != end; c++)
                        if (*c == ':')
                                colon = c;
                if (colon && strtoul(colon + 1, NULL, 10) == port)
                        return true;
        }
        return false;
}

/* Real brokers set TCP_NODELAY on every connection; librdkafka's mock does
 * not, so the second of two pipelined responses (a producer keeps up to 5
 * requests in flight) waits for the client's delayed ACK: 40 ms per batch of
 * outcomes.  Every TCP socket of this process whose local port is a mock
 * broker's gets TCP_NODELAY: the listeners (Linux gives an accepted socket
 * its listener's setting) and the connections already accepted, which
 * covers a broker taken down and up again (its listener is made anew).
 * Returns how many listeners were changed. */
static int mock_sockets_nodelay(const char *bootstraps) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int n = 0;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                struct sockaddr_storage ss;
                socklen_t sl = sizeof(ss), il = sizeof(int);
                int fd, type = 0, listening = 0, one = 1;
                unsigned port;

                if (de->d_name[0] < '0' || de->d_name[0] > '9')
                        continue;
                fd = atoi(de->d_name);
                if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &il) < 0 || type != SOCK_STREAM ||
                    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
                        continue;
                if (ss.ss_family == AF_INET)
                        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
                else if (ss.ss_family == AF_INET6)
                        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
                else
                        continue;
                if (!port_listed(bootstraps, port) || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
                        continue;
                il = sizeof(int);
                if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &il) == 0 && listening)
                        n++;
        }
        closedir(d);
        return n;
}

int mcd_embedded_start(struct mcd_config *cfg, int brokers, int partitions, const char *debug,
                       struct mcd_embedded **out) {
        const char *topics[] = {cfg->topic_relationships, cfg->topic_subscriptions, cfg->topic_outcomes,
                                cfg->topic_dlq, cfg->topic_changelog};
        struct mcd_embedded *e = calloc(1, sizeof(*e));
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char err[512], why[256];
        int r = -ENOMEM;

        if (!e || !conf)
                goto fail;
        rd_kafka_conf_set_log_cb(conf, log_cb);
        if (debug && rd_kafka_conf_set(conf, "debug", debug, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
                log_error("embedded Kafka: debug '%s': %s", debug, err);
                r = -EINVAL;
                goto fail;
        }
        e->host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        conf = NULL;
        if (!e->host) {
                log_error("embedded Kafka: cannot create the host client: %s", err);
                r = -EINVAL;
                goto fail;
        }
        e->brokers = brokers;
        e->partitions = partitions;
        e->cluster = rd_kafka_mock_cluster_new(e->host, brokers);
        if (!e->cluster) {
                log_error("embedded Kafka: cannot start the mock cluster");
                r = -EIO;
                goto fail;
        }
        for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
                if (rd_kafka_mock_topic_create(e->cluster, topics[i], partitions, 1) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                        log_error("embedded Kafka: cannot create topic %s", topics[i]);
                        r = -EIO;
                        goto fail;
                }
        e->bootstraps = strdup(rd_kafka_mock_cluster_bootstraps(e->cluster));
        if (!e->bootstraps)
                goto fail;
        if (mock_sockets_nodelay(e->bootstraps) < brokers)
                log_warning("embedded Kafka: cannot set TCP_NODELAY on the brokers' sockets; "
                            "pipelined responses may wait for delayed ACKs");
        r = mcd_config_set(cfg, "kafka.bootstrap.servers", e->bootstraps, 0, why, sizeof(why));
        if (r < 0)
                goto fail;
        *out = e;
        return 0;
fail:
        if (conf)
                rd_kafka_conf_destroy(conf);
        mcd_embedded_stop(e);
        return r;
}

const char *mcd_embedded_bootstraps(const struct mcd_embedded *e) {
        return e->bootstraps;
}

void mcd_embedded_set_up(struct mcd_embedded *e, bool up) {
        for (int32_t id = 1; id <= e->brokers; id++) {
                if (up)
                        rd_kafka_mock_broker_set_up(e->cluster, id);
                else
                        rd_kafka_mock_broker_set_down(e->cluster, id);
        }
        mock_sockets_nodelay(e->bootstraps);
        log_notice("embedded Kafka: %d broker(s) %s", e->brokers, up ? "up" : "down");
}

#define KAFKA_API_SYNC_GROUP 14     /* the protocol's ApiKey; librdkafka's constant is internal */

int mcd_embedded_delay_sync_group(struct mcd_embedded *e, int ms) {
        for (int32_t id = 1; id <= e->brokers; id++)
                if (rd_kafka_mock_broker_push_request_error_rtts(e->cluster, id, KAFKA_API_SYNC_GROUP, 1,
                                                                 RD_KAFKA_RESP_ERR_NO_ERROR, ms) != 0)
                        return -EINVAL;
        return 0;
}

/* The partition's own broker is the cluster's last; every other partition of
 * the five topics is led by one of the others, round robin, and so is the
 * consumer group (its coordinator). */
int mcd_embedded_delay(struct mcd_embedded *e, const struct mcd_config *cfg, const char *topic, int32_t partition,
                       enum mcd_mock_api api, int ms) {
        const char *topics[] = {cfg->topic_relationships, cfg->topic_subscriptions, cfg->topic_outcomes,
                                cfg->topic_dlq, cfg->topic_changelog};
        int32_t slow = e->brokers;
        bool found = false;

        if (e->brokers < 2 || partition < 0 || partition >= e->partitions)
                return -EINVAL;
        for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
                for (int32_t q = 0; q < e->partitions; q++) {
                        bool it = strcmp(topics[i], topic) == 0 && q == partition;
                        found = found || it;
                        if (rd_kafka_mock_partition_set_leader(e->cluster, topics[i], q, it ? slow : 1 + q % (slow - 1)))
                                return -EIO;
                }
        if (!found)
                return -ENOENT;
        if (rd_kafka_mock_coordinator_set(e->cluster, "group", mcd_config_kafka(cfg, "group.id"), 1))
                return -EIO;
        e->delayed = api;
        return mcd_embedded_hold(e, ms);
}

int mcd_embedded_hold(struct mcd_embedded *e, int ms) {
        if (e->brokers < 2 ||
            rd_kafka_mock_broker_push_request_error_rtts(e->cluster, e->brokers, (int16_t)e->delayed, 1,
                                                         RD_KAFKA_RESP_ERR_NO_ERROR, ms))
                return -EIO;
        log_notice("embedded Kafka: broker %d answers its next %s %d ms late", e->brokers,
                   e->delayed == MCD_MOCK_FETCH ? "Fetch" : "Produce", ms);
        return 0;
}

void mcd_embedded_stop(struct mcd_embedded *e) {
        if (!e)
                return;
        if (e->cluster)
                rd_kafka_mock_cluster_destroy(e->cluster);
        if (e->host)
                rd_kafka_destroy(e->host);
        free(e->bootstraps);
        free(e);
}

int mcd_kafka_flush(rd_kafka_t *rk, int timeout_ms) {
        rd_kafka_resp_err_t err = rd_kafka_flush(rk, timeout_ms);
        return err == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -ETIMEDOUT;
}

int mcd_kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err;
        int n = -EIO;

        if (!rkt)
                return -ENOMEM;
        err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].err == 0)
                n = md->topics[0].partition_cnt;
        else if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 &&
                 md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                n = -ENOENT;
        else if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
                n = -EAGAIN;    /* a leader election, a topic being created: ask again */
        if (md)
                rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        return n;
}

/* One watermark (RD_KAFKA_OFFSET_BEGINNING or _END: ListOffsets takes them
 * as its timestamps) of the n partitions into out[], -1 for a partition not
 * answered. */
static int list_offsets(rd_kafka_t *rk, const char *topic, const int32_t *parts, int n, int64_t which,
                        int64_t *out, int timeout_ms) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
        rd_kafka_resp_err_t err;
        int r = 0;

        for (int i = 0; i < n; i++)
                out[i] = -1;
        if (!l)
                return -ENOMEM;
        for (int i = 0; i < n; i++)
                rd_kafka_topic_partition_list_add(l, topic, parts ? parts[i] : i)->offset = which;
        err = rd_kafka_offsets_for_times(rk, l, timeout_ms);
        if (err)
                r = err == RD_KAFKA_RESP_ERR__TIMED_OUT ? -ETIMEDOUT : -EIO;
        for (int i = 0; !err && i < n; i++) {   /* in the order asked: the list keeps it */
                if (l->elems[i].err || l->elems[i].offset < 0)
                        r = -EIO;
                else
                        out[i] = l->elems[i].offset;
        }
        rd_kafka_topic_partition_list_destroy(l);
        return r;
}

int mcd_kafka_watermarks(rd_kafka_t *rk, const char *topic, const int32_t *parts, int n, int64_t *lo, int64_t *hi,
                         int timeout_ms) {
        int r = 0, r2 = 0;

        if (n <= 0)
                return 0;
        if (lo)
                r = list_offsets(rk, topic, parts, n, RD_KAFKA_OFFSET_BEGINNING, lo, timeout_ms);
        if (hi && r != -ENOMEM && r != -ETIMEDOUT)
                r2 = list_offsets(rk, topic, parts, n, RD_KAFKA_OFFSET_END, hi, timeout_ms);
        else if (hi)    /* not asked again after a timeout */
                for (int i = 0; i < n; i++)
                        hi[i] = -1;
        return r < 0 ? r : r2;
}

int mcd_kafka_wake_fetcher(rd_kafka_t *rk, const char *topic, int32_t partition) {
        int64_t end;
        int r = list_offsets(rk, topic, &partition, 1, RD_KAFKA_OFFSET_END, &end, 0);

        return r == 0 || r == -ETIMEDOUT ? 0 : r == -ENOMEM ? r : -EIO;
}

int64_t mcd_kafka_session_timeout_ms(rd_kafka_t *rk) {
        char buf[32];
        size_t size = sizeof(buf);

        if (rd_kafka_conf_get(rd_kafka_conf(rk), "session.timeout.ms", buf, &size) != RD_KAFKA_CONF_OK)
                return 0;
        return strtoll(buf, NULL, 10);
}
