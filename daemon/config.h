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

struct mcd_kv {
        char *key;                   /* librdkafka property name, without "kafka." */
        char *value;
        unsigned line;
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

        mcd_time_t park_grace;       /* 10m */
        mcd_time_t merge_wait;       /* 500ms */
        int batch_max;               /* batch.max_events, 1000 */
        int batch_max_bytes;         /* batch.max_bytes, 1 MiB: customer state a batch holds, estimated */
        int batch_threads;           /* batch.threads, 2: threads that decode events, parse and write state */
        int buffer_max;              /* buffer.max_events, 10000: input buffered across all partitions */
        mcd_time_t batch_wait;       /* batch.wait, 50ms: how long a batch collects */

        char *metrics_listen;        /* metrics.listen, 127.0.0.1:9464; "" disables */
        int log_level;               /* log.level: syslog priority, LOG_INFO */
        mcd_time_t status_interval;  /* status.interval, 5s */
};

/* Fills cfg with every default. 0 or -ENOMEM. */
int mcd_config_defaults(struct mcd_config *cfg);

/* Loads a file over the defaults.  Every problem is written to `errors` as
 * "FILE:LINE: what is wrong" (one line each) and counted; returns 0 when the
 * file is valid, -EINVAL when some line is bad (cfg then holds what was
 * valid), -ENOENT / -EACCES when the file cannot be read (also reported), or
 * -ENOMEM.  Unknown keys are errors (a typo must not pass silently); so are
 * librdkafka properties that librdkafka refuses. */
int mcd_config_load(const char *path, struct mcd_config *cfg, FILE *errors, unsigned *n_errors);

/* Sets one key as the file would (used by the loader and by command-line
 * overrides).  0, or -EINVAL with why[] set. */
int mcd_config_set(struct mcd_config *cfg, const char *key, const char *value, unsigned line, char *why,
                   size_t whylen);

/* The value of kafka.<name>, or NULL. */
const char *mcd_config_kafka(const struct mcd_config *cfg, const char *name);

void mcd_config_clear(struct mcd_config *cfg);

#endif
