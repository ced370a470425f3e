/* publish.h -- output (Kafka Streams' RecordCollector): the frames a commit
 * put in the outbox, produced to the output topics and trimmed once
 * delivered; the changelog records, appended once their batch's frames are
 * delivered; the marks and the lookup of what the output topics already
 * hold (reconciliation). */
#ifndef MCD_PUBLISH_H
#define MCD_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "daemon/clog_owed.h"
#include "daemon/pair.h"
#include "daemon/runtime.h"
#include "daemon/startup.h"
#include "daemon/strmap.h"

enum { OUT_OUTCOMES = 0, OUT_DLQ = 1 };

/* The changelog's key of a partition's offsets record (then the partition). */
#define CHANGELOG_OFFSETS_KEY "__offsets__:"
/* Room for that key, the partition's digits and the NUL. */
#define CHANGELOG_OFFSETS_KEY_SIZE 32
/* Writes partition's offsets record key to buf and returns buf.  This
 * function can't fail. */
char *changelog_offsets_key(char buf[static CHANGELOG_OFFSETS_KEY_SIZE], int32_t partition);
/* A customer's changelog key is its id, but for an id starting with "__",
 * the prefix of the changelog's own keys: that one goes under
 * CHANGELOG_ESCAPE and the id, so that no customer shares a key with an
 * offsets record (a customer named __offsets__:0 is a valid one, and
 * compaction keeps one record a key).  Earlier versions wrote every id as
 * it is; such a key still names its customer (changelog_key_customer). */
#define CHANGELOG_ESCAPE "__c:"
/* Whether customer id's changelog key is escaped.  This function can't fail. */
static inline bool changelog_escaped(const char *id) {
        return id[0] == '_' && id[1] == '_';
}
/* Customer id's changelog key (heap string), or NULL out of memory. */
char *changelog_customer_key(const char *id);
/* The customer a changelog key (not an offsets record's) names: the key
 * without CHANGELOG_ESCAPE.  This function can't fail. */
const char *changelog_key_customer(const char *key);
/* A customer's changelog record is binary (state_codec.h); earlier versions
 * wrote {"partition":N,"state":{...}}, whose N rebuilds read off the front
 * (record_partition). */
#define CHANGELOG_STATE_FRONT "{\"partition\":"

/* A frame owed to Kafka: committed to the outbox, not yet known delivered. */
struct pending {
        void *buf;                   /* encoded frame (outbox form) */
        size_t len;
        int32_t partition;           /* input partition whose outbox holds it */
        uint64_t batch;              /* the batch that committed it */
        int status;                  /* 0 in flight or not sent, 1 delivered, <0 failed */
        bool sent;
};

/* A changelog record waiting for its batch's frames to be delivered: the
 * changelog must never be ahead of what the output topics hold, or a Redis
 * rebuilt from it would skip outputs that were never published. */
struct clog {
        uint64_t batch;
        int32_t partition;           /* the input partition the record belongs to */
        char *key;
        char *value;
        size_t value_len;
        struct clog_ack_part *held;  /* an offsets record waiting for its customers' (clog_release): counted
                                      * in its batch's ack, appended under it; else NULL */
};

/* A changelog record whose append failed, by its key, until Redis has it
 * (clog_lost_save). */
struct clog_lost {
        int32_t partition;
        char *key;
};

struct publisher {
        struct mcd_env *env;
        struct pairs *pairs;
        rd_kafka_topic_t *rkt[2];    /* outcomes, dlq: the producer's handles (publish_topics_open) */
        rd_kafka_topic_t *clog_rkt;  /* the changelog's */
        int n_out_parts[2];          /* outcomes, dlq */
        int64_t *known_end[2];       /* lower bounds for frames produced from now on */
        struct mcd_strmap published; /* ids found on the output topics by reconciliation */
        struct pending **pending;    /* in commit order */
        size_t n_pending, cap_pending;
        struct clog *clog;           /* changelog records waiting for delivery, in batch order */
        size_t n_clog, cap_clog;
        struct clog_acks acks;       /* records appended, by batch, until all are reported on */
        struct clog_lost *lost;      /* appends failed, not yet saved in Redis */
        size_t n_lost, cap_lost;
        struct mcd_retry lost_retry; /* their save, held back after it failed */
        uint64_t fault_stop_before_changelog;
        uint64_t verified_batch;     /* the last batch committed, its generations checked by its commit */
        int64_t verified_at;         /* monotonic ms when that commit was sent */
        int64_t stall_ms;            /* the consumer's session timeout: unsent frames that much older than
                                      * verified_at are not checked in Redis (drop_fenced); 0: always are */
        bool stuck;                  /* a batch found the last one's outputs undelivered: set by it, cleared
                                      * once nothing is pending */
};

/* Output topic t (OUT_OUTCOMES, OUT_DLQ) has n partitions; their ends,
 * asked of the broker (waiting up to timeout_ms), are where frames produced
 * from now on land at the earliest.  0 or -ENOMEM. */
int publish_outputs(struct publisher *pub, int t, int n, int timeout_ms);
/* The producer's delivery report callback; its opaque is the publisher. */
void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
/* Takes the producer's handles of the topics it writes: producing by a
 * topic's name looks it up under the client's lock for every message.
 * 0, or -EINVAL with the error logged. */
int publish_topics_open(struct publisher *pub);
/* Releases those handles; before the producer is destroyed (accepts none
 * taken).  This function can't fail. */
void publish_topics_close(struct publisher *pub);
/* Frees what the publisher holds (not the producer). */
void publish_free(struct publisher *pub);

/* Marks: for each output topic, per partition, an offset at or below which
 * no frame of ours still in an outbox can be ("o=1,5,0;d=0,0"); a heap
 * string, NULL when out of memory.  marks_parse reads them into from[t][q],
 * 0 where they say nothing. */
char *marks_format(const struct publisher *pub);
void marks_parse(const struct publisher *pub, const char *s, int64_t *from[2]);
/* Adds to pub->published the ids of the output topics' messages from the
 * given offsets (from stored marks) to their current ends.  *latest, unless
 * NULL, is raised to the latest clock among the outcomes read that input
 * partition `partition`'s pair made: the rules' clock that made each (its
 * header mcd.clock) and its create time, the clock of the instance that
 * produced it.  An outcome of an earlier version, without headers, counts
 * whichever partition made it (the outcome topic is keyed by customer).
 * Dead letters carry their input's timestamp, and a topic stamped with the
 * log's append time the broker's: neither timestamp counts (the header
 * does). */
int collect_published(struct publisher *pub, int64_t *from[2], int32_t partition, int64_t *latest);
int collect_published_after(struct publisher *pub, const char *marks, int32_t partition, int64_t *latest);

/* Appends a record of `partition` committed by `batch` (0: none) to the
 * changelog (a copy of value), under the batch's ack (clog_owed.h).  A
 * failed append stops the partition and is saved in Redis to be made good
 * by its next claim (mcd_store_clog_lost_add). */
void changelog_append(struct publisher *pub, int32_t partition, uint64_t batch, const char *key, const char *value,
                      size_t len);
/* The same under a given ack part, which counts the record already when
 * `counted` (an offsets record held back: clog_release). */
void changelog_produce(struct publisher *pub, struct clog_ack_part *part, bool counted, const char *key,
                       const char *value, size_t len);
/* Is this changelog key (len bytes) the partition's offsets record's? */
bool changelog_is_offsets_key(const char *key, size_t len, int32_t partition);
/* Whether the time since our last commit was sent (*since, ms) is past the
 * session timeout: another instance may have claimed our partitions
 * meanwhile. */
bool publish_stalled(const struct publisher *pub, int64_t *since);
/* Saves the failed appends in Redis: 0, or a Redis error (kept for the next
 * call). */
int clog_lost_save(struct publisher *pub);
/* Saves the failed appends in Redis now, whatever the hold after a failed
 * save (a hand-over: before the next owner's claim reads them); a failure
 * is logged and they are kept.  This function can't fail. */
void publish_save_lost(struct publisher *pub);

/* A frame committed by `batch` (0: found in an outbox), owed to Kafka; the
 * publisher takes buf over. */
int pending_push(struct publisher *pub, void *buf, size_t len, int32_t partition, uint64_t batch);
/* Drops the partition's frames not yet handed to the producer; returns the
 * first batch they came from, UINT64_MAX when none. */
uint64_t publish_drop_unsent(struct publisher *pub, int32_t partition);
/* Is a frame of the partition handed to the producer and not yet reported
 * on? */
bool publish_in_flight(const struct publisher *pub, int32_t partition);
/* Is a frame of the partition not known delivered? */
bool publish_owed(const struct publisher *pub, int32_t partition);
/* Anything pending: frames or changelog records? */
bool publish_busy(const struct publisher *pub);
/* Frames not known delivered. */
size_t publish_owed_frames(const struct publisher *pub);
/* A batch found the last one's frames undelivered: nothing new is processed
 * until they are out (publish_stuck, cleared once nothing is pending). */
void publish_set_stuck(struct publisher *pub);
bool publish_stuck(const struct publisher *pub);
/* The commit of a batch was sent at `mono` (monotonic ms), and was applied:
 * its frames' fencing was checked by the commit (FENCE_LEASE_MS). */
void publish_commit_sent(struct publisher *pub, int64_t mono);
void publish_committed(struct publisher *pub, uint64_t batch);
/* Produces every pending frame not yet delivered; with timeout_ms > 0 waits
 * for all of them, else only serves the delivery reports that are in.
 * Returns 0 when nothing is pending any more, else -EAGAIN. */
int publish_pending(struct publisher *pub, int timeout_ms);
/* publish_pending, then the changelog records it released waited for too
 * and their reports served: 0 once nothing at all is outstanding (frames,
 * records or acks), so that every ready pair's untrimmed and clog_untrimmed
 * count all it delivered; else -EAGAIN. */
int publish_drain(struct publisher *pub, int timeout_ms);

/* A partition's offsets record in the changelog (heap string). */
char *offsets_record(const struct mcd_offsets *o, const char *marks);
/* Queues a changelog record of `batch` (the publisher takes key and value
 * over, and frees them on failure too).  0 or -ENOMEM. */
int clog_push(struct publisher *pub, uint64_t batch, int32_t partition, char *key, char *value, size_t len);
/* Forgets a partition's records of batch `from` on. */
void clog_drop(struct publisher *pub, int32_t partition, uint64_t from);

#endif
