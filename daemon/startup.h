/* startup.h -- outages at start-up: the retry backoff the daemon uses for
 * Redis and Kafka alike, and the wait for a topic's partition count.
 *
 * A daemon started while Kafka is unreachable, a partition leader is being
 * elected, or a topic is not created yet waits for it, as it waits for
 * Redis, instead of exiting: only a configuration error exits (worker.c
 * decides which; two input topics of different partition counts are one). */
#ifndef MCD_STARTUP_H
#define MCD_STARTUP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

/* What a wait needs from its caller. */
struct mcd_startup_wait {
        const volatile sig_atomic_t *stop;   /* set (SIGTERM): the wait gives up */
        void (*alive)(void *ctx);            /* called at least every 100 ms while waiting (the watchdog) */
        void *ctx;
        const char *bootstrap;               /* kafka.bootstrap.servers, for the log lines */
};

/* The next delay of a retry after `ms` (0 for the first): 100 ms, doubling
 * to 5 s. */
int mcd_backoff_next(int ms);

/* A try that is held back after it fails, for mcd_backoff_next's delays
 * while it keeps failing.  Zeroed: due, the next failure waits 100 ms. */
struct mcd_retry {
        int64_t at;                  /* monotonic ms: not tried again before */
        int delay_ms;                /* the last hold, 0 after a success */
};

/* True when a try is due at `mono` (monotonic ms).  This function can't
 * fail. */
static inline bool mcd_retry_due(const struct mcd_retry *r, int64_t mono) {
        return mono >= r->at;
}

/* A try failed at `mono`: the next is due after the next delay, which is
 * returned (for the log line).  This function can't fail. */
int mcd_retry_failed(struct mcd_retry *r, int64_t mono);

/* A try succeeded: the next failure is held back 100 ms again.  This
 * function can't fail. */
static inline void mcd_retry_done(struct mcd_retry *r) {
        r->delay_ms = 0;
}

/* How long one metadata round trip at start-up may block: 5 s, and a
 * quarter of the watchdog's period at most (watchdog_usec 0: none). */
int mcd_startup_timeout_ms(uint64_t watchdog_usec);

/* The partition count of `topic` (metadata, timeout_ms per attempt) in
 * *n.  Failures are retried with mcd_backoff_next's delays, each logged at
 * warning level, until the count comes: 0; -ECANCELED when *wait->stop was
 * set meanwhile; -ENOMEM. */
int mcd_startup_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, const struct mcd_startup_wait *wait,
                           int *n);

#endif
