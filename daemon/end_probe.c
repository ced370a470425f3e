/* end_probe.c -- the broker's end of input partitions, asked off the main
 * thread (end_probe.h).
 *
 * DESIGN: one slot per topic and partition, under one lock: what the main
 * thread wants (asked after `since`), the question in flight, the latest
 * answer.  The probe's thread takes every wanted slot of a topic, asks for
 * all of them at once (ListOffsets, one request per leader, through
 * rd_kafka_offsets_for_times) and records the answers, each stamped with
 * the monotonic time just before it was asked.  librdkafka's call answers
 * all or nothing: one partition without a leader fails the whole question,
 * so a failed question of several partitions is asked again one partition
 * at a time, and only the partitions that fail alone wait RETRY_MS before
 * the next try.  The handle is the probe's own: a consumer's connection
 * would queue the question behind a fetch (up to fetch.wait.max.ms), a
 * producer's behind acks=all produce requests.  It reads at
 * read_uncommitted, so that the end is the high watermark, as in a fetch
 * answer: a transaction still open counts as more to read. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/end_probe.h"
#include "daemon/kafka.h"
#include "daemon/log.h"
#include "daemon/runtime.h"

#define MAX_PARTITIONS 65536         /* slots per topic at most */
#define ASK_TIMEOUT_MS 1000          /* one question waits this long at most, */
#define RETRY_MS 1000                /* a partition that failed is asked again after this, */
#define FAIL_LOG_MS 30000            /* and its failures logged this often at most per topic */
#define IDLE_MS 1000                 /* the thread looks at the slots at least this often */

struct slot {
        bool wanted;                 /* the main thread wants an answer asked after `since` */
        int64_t since;
        int64_t flight_at;           /* a question in flight, taken then (monotonic ms); 0 none */
        int64_t end;                 /* the latest answer, */
        int64_t asked_at;            /* asked then (monotonic ms); 0 none */
        int64_t retry_at;            /* after a failure, not asked again before this */
};

struct topic {
        const char *name;            /* the configuration's */
        struct slot *slots;          /* by partition; under lock */
        size_t n_slots;
        int32_t *parts;              /* the question being asked: thread only */
        int64_t *ends, *at;
        size_t cap;
        int64_t failed_logged;       /* monotonic ms a failure was last logged, 0 never */
};

struct mcd_end_probe {
        rd_kafka_t *rk;
        pthread_t thread;
        bool started;
        pthread_mutex_t lock;
        pthread_cond_t wake;         /* a slot became wanted, or stop */
        atomic_bool stop;
        struct topic topic[2];
};

/* Slot `partition` of topic t, the slots grown to hold it; NULL when it is
 * out of range or memory runs out.  Under lock. */
static struct slot *slot_of(struct topic *tp, int32_t partition) {
        size_t n;
        struct slot *v;

        if (partition < 0 || partition >= MAX_PARTITIONS)
                return NULL;
        if ((size_t)partition < tp->n_slots)
                return &tp->slots[partition];
        n = (size_t)partition + 1 > tp->n_slots * 2 ? (size_t)partition + 1 : tp->n_slots * 2;
        if (!(v = realloc(tp->slots, n * sizeof(*v))))
                return NULL;
        memset(v + tp->n_slots, 0, (n - tp->n_slots) * sizeof(*v));
        tp->slots = v;
        tp->n_slots = n;
        return &tp->slots[partition];
}

void mcd_end_probe_want(struct mcd_end_probe *e, int t, int32_t partition, int64_t since) {
        struct slot *s;

        if (!e)
                return;
        pthread_mutex_lock(&e->lock);
        s = slot_of(&e->topic[t], partition);
        if (s && s->asked_at <= since && s->flight_at <= since) {
                if (!s->wanted || since > s->since)
                        s->since = since;
                if (!s->wanted)
                        pthread_cond_signal(&e->wake);
                s->wanted = true;
        }
        pthread_mutex_unlock(&e->lock);
}

int mcd_end_probe_answer(struct mcd_end_probe *e, int t, int32_t partition, int64_t *end, int64_t *asked_at) {
        int r = -ENOENT;

        if (!e)
                return r;
        pthread_mutex_lock(&e->lock);
        if (partition >= 0 && (size_t)partition < e->topic[t].n_slots && e->topic[t].slots[partition].asked_at > 0) {
                *end = e->topic[t].slots[partition].end;
                *asked_at = e->topic[t].slots[partition].asked_at;
                r = 0;
        }
        pthread_mutex_unlock(&e->lock);
        return r;
}

/* Takes topic t's wanted slots that may be asked now into its question, and
 * lowers *next to the earliest retry of the others.  The number taken.
 * Under lock. */
static size_t take_wanted(struct topic *tp, int64_t now, int64_t *next) {
        size_t n = 0;

        if (tp->cap < tp->n_slots) {
                int32_t *p = realloc(tp->parts, tp->n_slots * sizeof(*p));
                int64_t *e = p ? realloc(tp->ends, tp->n_slots * sizeof(*e)) : NULL;
                int64_t *a = e ? realloc(tp->at, tp->n_slots * sizeof(*a)) : NULL;
                tp->parts = p ? p : tp->parts;
                tp->ends = e ? e : tp->ends;
                tp->at = a ? a : tp->at;
                if (!a)
                        return 0;       /* tried again at the next look */
                tp->cap = tp->n_slots;
        }
        for (size_t i = 0; i < tp->n_slots; i++) {
                struct slot *s = &tp->slots[i];
                if (!s->wanted)
                        continue;
                if (s->retry_at > now || s->since >= now) {   /* asked at `now`, an answer must be later than since */
                        int64_t at = s->retry_at > now ? s->retry_at : s->since + 1;
                        *next = at < *next ? at : *next;
                        continue;
                }
                s->wanted = false;
                s->flight_at = now;
                tp->parts[n++] = (int32_t)i;
        }
        return n;
}

/* Asks the broker for the ends of the n partitions of tp's question, all
 * at once, then each one that got no answer alone.  Not under lock. */
static void ask(struct mcd_end_probe *e, struct topic *tp, size_t n) {
        int64_t at = mono_ms();
        int r = mcd_kafka_watermarks(e->rk, tp->name, tp->parts, (int)n, NULL, tp->ends, ASK_TIMEOUT_MS);

        for (size_t i = 0; i < n; i++)
                tp->at[i] = at;
        for (size_t i = 0; r < 0 && n > 1 && i < n && !atomic_load(&e->stop); i++)
                if (tp->ends[i] < 0) {
                        tp->at[i] = mono_ms();
                        (void)mcd_kafka_watermarks(e->rk, tp->name, &tp->parts[i], 1, NULL, &tp->ends[i],
                                                   ASK_TIMEOUT_MS);
                }
}

/* Records the answers to tp's question of n partitions; one that failed is
 * wanted again, after RETRY_MS.  Under lock. */
static void record(struct topic *tp, size_t n, int64_t now) {
        size_t failed = 0;
        int32_t first = -1;

        for (size_t i = 0; i < n; i++) {
                struct slot *s = &tp->slots[tp->parts[i]];
                s->flight_at = 0;
                if (tp->ends[i] >= 0) {
                        s->end = tp->ends[i];
                        s->asked_at = tp->at[i];
                        s->retry_at = 0;
                        continue;
                }
                s->wanted = true;
                s->retry_at = now + RETRY_MS;
                first = failed++ ? first : tp->parts[i];
        }
        if (failed && (!tp->failed_logged || now - tp->failed_logged >= FAIL_LOG_MS)) {
                tp->failed_logged = now;
                log_warning("%s: the broker did not give the end of %zu partition(s) (partition %" PRId32
                            " among them); their pairs wait, asked again every %d ms",
                            tp->name, failed, first, RETRY_MS);
        }
}

/* Waits for a wanted slot, stop, or `next` (monotonic ms).  Under lock. */
static void wait_until(struct mcd_end_probe *e, int64_t next) {
        struct timespec ts = {.tv_sec = next / 1000, .tv_nsec = (next % 1000) * 1000000};

        pthread_cond_timedwait(&e->wake, &e->lock, &ts);
}

static void *probe_main(void *arg) {
        struct mcd_end_probe *e = arg;

        pthread_mutex_lock(&e->lock);
        while (!atomic_load(&e->stop)) {
                int64_t now = mono_ms(), next = now + IDLE_MS;
                bool asked = false;
                for (int t = 0; t < 2; t++) {
                        size_t n = take_wanted(&e->topic[t], now, &next);
                        if (n == 0)
                                continue;
                        pthread_mutex_unlock(&e->lock);
                        ask(e, &e->topic[t], n);
                        pthread_mutex_lock(&e->lock);
                        record(&e->topic[t], n, mono_ms());
                        asked = true;
                }
                if (!asked && !atomic_load(&e->stop))
                        wait_until(e, next);
        }
        pthread_mutex_unlock(&e->lock);
        return NULL;
}

/* The condition's clock is the monotonic one, as mono_ms's. */
static int wake_init(pthread_cond_t *c) {
        pthread_condattr_t a;
        int r;

        if ((r = pthread_condattr_init(&a)) != 0)
                return -r;
        r = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        if (r == 0)
                r = pthread_cond_init(c, &a);
        pthread_condattr_destroy(&a);
        return -r;
}

int mcd_end_probe_new(const struct mcd_config *cfg, struct mcd_end_probe **out) {
        struct mcd_end_probe *e = calloc(1, sizeof(*e));
        char err[512];
        int r;

        if (!e)
                return -ENOMEM;
        pthread_mutex_init(&e->lock, NULL);
        e->topic[0].name = cfg->topic_relationships;
        e->topic[1].name = cfg->topic_subscriptions;
        if ((r = wake_init(&e->wake)) < 0) {
                pthread_mutex_destroy(&e->lock);
                free(e);
                return r;
        }
        if (!(e->rk = mcd_kafka_new(cfg, MCD_KAFKA_END_PROBE, NULL, err, sizeof(err)))) {
                log_error("cannot create the Kafka client that asks for partition ends: %s", err);
                mcd_end_probe_free(e);
                return -EINVAL;
        }
        if ((r = pthread_create(&e->thread, NULL, probe_main, e)) != 0) {
                mcd_end_probe_free(e);
                return -r;
        }
        e->started = true;
        *out = e;
        return 0;
}

void mcd_end_probe_free(struct mcd_end_probe *e) {
        if (!e)
                return;
        pthread_mutex_lock(&e->lock);
        atomic_store(&e->stop, true);
        pthread_cond_signal(&e->wake);
        pthread_mutex_unlock(&e->lock);
        if (e->started)
                pthread_join(e->thread, NULL);
        if (e->rk)
                rd_kafka_destroy(e->rk);
        for (int t = 0; t < 2; t++) {
                free(e->topic[t].slots);
                free(e->topic[t].parts);
                free(e->topic[t].ends);
                free(e->topic[t].at);
        }
        pthread_cond_destroy(&e->wake);
        pthread_mutex_destroy(&e->lock);
        free(e);
}
