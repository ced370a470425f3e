/* config.h -- the configuration file: one `key = value` per line, `#` starts
 * a comment.  Keys are CONTRACT.md's "Operating interface" table plus the
 * project's own (README).  Loading validates everything up front, librdkafka
 * properties included, and names each bad line. */
#ifndef MCD_CONFIG_H
#define MCD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "handlers/model.h"

#define MCD_CONFIG_DEFAULT_PATH MCD_SYSCONFDIR "/multichanneld/multichanneld.conf"

/* The largest values of the rules' bounds (CONTRACT.md "Bounds"), shared by
 * the configuration keys and replay's options.  The changelog record size is
 * worked out for the defaults; larger limits are the operator's choice (and
 * may need larger Kafka records), but these maxima keep the limits inside an
 * int, every count times a per-entry size far inside size_t, and
 * latest - dedup_window clear of 64-bit overflow for any plausible
 * occurred_at. */
#define MCD_SEEN_IDS_MAX 10000000                            /* limits.seen_ids */
#define MCD_LIMIT_MAX 1000000                                /* limits.subscriptions, limits.parked */
#define MCD_DEDUP_WINDOW_MAX ((mcd_time_t)36500 * 86400000)  /* dedup_window: 36500d, about 100 years */

struct mcd_rules_config;

struct mcd_kv {
        char *key;                   /* librdkafka property name, without "kafka." */
        char *value;
        unsigned line;
};

/* output.format: how outcomes are framed (avro_codec.h). */
enum mcd_output_format {
        MCD_OUTPUT_SINGLE_OBJECT,    /* 0xC3 0x01, 8-byte fingerprint */
        MCD_OUTPUT_CONFLUENT,        /* 0x00, 4-byte schema id from schema_registry.url */
};

/* redis.outbox_compression: how outbox frames are written to Redis. */
enum mcd_outbox_compression {
        MCD_OUTBOX_NONE,             /* as they are */
        MCD_OUTBOX_ZSTD,             /* zipped (frame_zip.h) */
};

struct mcd_config {
        char *path;                  /* file it was loaded from, or NULL for defaults */

        /* kafka.<property>: every one passed to librdkafka as is, in file
         * order.  bootstrap.servers and group.id have the contract's defaults
         * (localhost:9092, multichanneld) unless the file sets them. */
        struct mcd_kv *kafka;
        size_t n_kafka;

        char *topic_relationships;   /* partnercenter.relationships.v1 */
        char *topic_subscriptions;   /* partnercenter.subscriptions.v1 */
        char *topic_outcomes;        /* partnercenter.multichannel.outcomes.v1 */
        char *topic_dlq;             /* partnercenter.multichannel.dlq.v1 */
        char *topic_changelog;       /* partnercenter.multichannel.changelog.v1 */

        char *redis_host;            /* 127.0.0.1 */
        int redis_port;              /* 6379 */
        int redis_db;                /* 0 */
        char *redis_password;        /* NULL */
        char *redis_key_prefix;      /* mcd: */
        int redis_timeout_ms;        /* redis.timeout, 2s */
        char *redis_sentinels;       /* redis.sentinels "host:port,...", NULL: none (redis.host, redis.port) */
        char *redis_master_name;     /* redis.master_name, mymaster: the master's name for the Sentinels */

        mcd_time_t park_grace;       /* 10m */
        mcd_time_t dedup_window;     /* 30d, at least park_grace */
        int limit_seen_ids;          /* limits.seen_ids, 10000 */
        int limit_subscriptions;     /* limits.subscriptions, 1000 */
        int limit_parked;            /* limits.parked, 100 */
        mcd_time_t merge_wait;       /* 500ms */
        int batch_max;               /* batch.max_events, 1000 */
        int cache_max_bytes;         /* cache.max_bytes, 0 (none): customers' states kept in process */
        int batch_max_bytes;         /* batch.max_bytes, 1 MiB: customer state a batch holds, estimated */
        int batch_threads;           /* batch.threads, 2: threads that decode events, parse and write state */
        int buffer_max;              /* buffer.max_events, 10000: input buffered across all partitions */
        mcd_time_t batch_wait;       /* batch.wait, 50ms: how long a batch collects */

        char *schemas_dir;           /* schemas.dir, $(datadir)/multichanneld/schemas: writer schemas
                                      * read at start and on SIGHUP (avro_codec.h, mcd_avro_dir_read) */
        char *registry_url;          /* schema_registry.url, NULL: Confluent-framed input is a dead letter */
        char *registry_basic_auth;   /* schema_registry.basic_auth "user:password", NULL */
        int registry_timeout_ms;     /* schema_registry.timeout, 5s: each registry request */
        enum mcd_output_format output_format; /* output.format, single-object */
        enum mcd_outbox_compression outbox_compression; /* redis.outbox_compression, zstd: how outbox
                                      * frames are written (frame_zip.h); read either way */
        char *metrics_listen;        /* metrics.listen, 127.0.0.1:9464; "" disables */
        int log_level;               /* log.level: syslog priority, LOG_INFO */
        mcd_time_t status_interval;  /* status.interval, 5s */
        int group_offsets_interval_ms; /* group_offsets.interval, 1s: Redis's offsets copied to the group
                                        * at most this often (group_offsets.h) */
};

/* Fills cfg with every default. 0 or -ENOMEM. */
int mcd_config_defaults(struct mcd_config *cfg);

/* Loads a file over the defaults.  Every problem is written to `errors` as
 * "FILE:LINE: what is wrong" (one line each) and counted; returns 0 when the
 * file is valid, -EINVAL when some line is bad or keys disagree (dedup_window
 * shorter than park_grace, named on dedup_window's line, else park_grace's;
 * cfg then holds what was valid), -ENOENT / -EACCES when the file cannot be
 * read (also reported), or
 * -ENOMEM.  Unknown keys are errors (a typo must not pass silently); so are
 * librdkafka properties that librdkafka refuses. */
int mcd_config_load(const char *path, struct mcd_config *cfg, FILE *errors, unsigned *n_errors);

/* Sets one key as the file would (used by the loader and by command-line
 * overrides).  0, or -EINVAL with why[] set. */
int mcd_config_set(struct mcd_config *cfg, const char *key, const char *value, unsigned line, char *why,
                   size_t whylen);

/* Fills the rules' settings from cfg: park_grace, dedup_window and the three
 * limits.*.  This function can't fail. */
void mcd_config_rules(const struct mcd_config *cfg, struct mcd_rules_config *rules);

/* The value of kafka.<name>, or NULL. */
const char *mcd_config_kafka(const struct mcd_config *cfg, const char *name);

/* Writes every key's value in cfg, defaults included, one "key = value" a
 * line in the file's format and the keys' order, then each kafka.<property>
 * in file order: a file that loads to cfg again.  A credential that is set
 * (redis.password, schema_registry.basic_auth, a URL with user:password@, a
 * librdkafka property librdkafka marks sensitive or whose name says password,
 * secret, passphrase or private key) is written as a comment without its
 * value.  This function can't fail (but for out's errors). */
void mcd_config_print(const struct mcd_config *cfg, FILE *out);

void mcd_config_clear(struct mcd_config *cfg);

#endif
