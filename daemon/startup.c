/* startup.c -- outages at start-up: backoff and the wait for a topic's
 * partition count (startup.h). */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "daemon/kafka.h"
#include "daemon/log.h"
#include "daemon/startup.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define SLICE_MS 100
#define METADATA_MAX_MS 5000

int mcd_backoff_next(int ms) {
        if (ms <= 0)
                return BACKOFF_FIRST_MS;
        return ms >= BACKOFF_MAX_MS / 2 ? BACKOFF_MAX_MS : ms * 2;
}

int mcd_retry_failed(struct mcd_retry *r, int64_t mono) {
        r->delay_ms = mcd_backoff_next(r->delay_ms);
        r->at = mono + r->delay_ms;
        return r->delay_ms;
}

int mcd_startup_timeout_ms(uint64_t watchdog_usec) {
        uint64_t quarter_ms = watchdog_usec / 4000;

        if (watchdog_usec == 0 || quarter_ms >= METADATA_MAX_MS)
                return METADATA_MAX_MS;
        return quarter_ms > 0 ? (int)quarter_ms : 1;
}

/* Sleeps ms in slices, calling alive after each; false when told to stop. */
static bool wait_ms(const struct mcd_startup_wait *wait, int ms) {
        while (ms > 0 && !*wait->stop) {
                int slice = ms < SLICE_MS ? ms : SLICE_MS;
                struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)slice * 1000000};

                nanosleep(&ts, NULL);   /* a signal ends it early: the loop checks stop */
                ms -= slice;
                if (wait->alive)
                        wait->alive(wait->ctx);
        }
        return !*wait->stop;
}

/* One log line for a failed attempt (kafka.h's errors of
 * mcd_kafka_partition_count). */
static void log_retry(const struct mcd_startup_wait *wait, const char *topic, int r, int delay) {
        if (r == -ENOENT)
                log_warning("topic %s does not exist (yet): waiting for it to be created (or auto-created by "
                            "the brokers), retrying in %d ms", topic, delay);
        else if (r == -EAGAIN)
                log_warning("topic %s: its metadata is not ready (a partition without a leader?), retrying in %d ms",
                            topic, delay);
        else
                log_warning("topic %s: cannot read its partitions (%s); waiting for Kafka at %s, retrying in %d ms",
                            topic, r == -EIO ? "no broker answered" : strerror(-r),
                            wait->bootstrap ? wait->bootstrap : "(bootstrap.servers unset)", delay);
}

int mcd_startup_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, const struct mcd_startup_wait *wait,
                           int *n) {
        int delay = 0, r, tries = 0;

        for (;;) {
                if (wait->alive)
                        wait->alive(wait->ctx);
                r = mcd_kafka_partition_count(rk, topic, timeout_ms);
                if (r >= 0 || r == -ENOMEM)
                        break;
                tries++;
                delay = mcd_backoff_next(delay);
                log_retry(wait, topic, r, delay);
                if (!wait_ms(wait, delay))
                        return -ECANCELED;
        }
        if (r >= 0 && tries > 0)
                log_notice("topic %s: %d partitions, after %d failed attempt(s)", topic, r, tries);
        if (r >= 0)
                *n = r;
        return r < 0 ? r : 0;
}
