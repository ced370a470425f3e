/* msgq.h -- a partition's input queue (Kafka Streams' RecordQueue): the
 * messages fetched for one side of a pair, in offset order, not yet taken
 * into a batch. */
#ifndef MCD_MSGQ_H
#define MCD_MSGQ_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

/* A buffered input message: a copy of what the daemon uses of it.  Holding
 * the rd_kafka_message_t instead would pin the whole fetch response it came
 * in, and a few messages held per partition would pin megabytes. */
struct inmsg {
        int64_t offset;
        int64_t timestamp;           /* Kafka timestamp, ms */
        int64_t arrived;             /* monotonic ms when buffered */
        int32_t partition;
        size_t key_len, len;
        const char *key;             /* into data; NULL when the message has none */
        const char *payload;         /* into data; NULL when the message has none */
        char data[];
};

/* v[head..tail) are queued; taking one is head++ */
struct msgq {
        struct inmsg **v;
        size_t head, tail, cap;
};

/* Messages queued (inline: the merge asks it for every message). */
static inline size_t q_len(const struct msgq *q) {
        return q->tail - q->head;
}

/* A heap copy of m (NULL when out of memory), buffered at `arrived`. */
struct inmsg *inmsg_copy(const rd_kafka_message_t *m, int64_t arrived);
/* Appends m (the queue owns it); -ENOMEM. */
int q_push(struct msgq *q, struct inmsg *m);
/* Puts m back at the front (the queue owns it again); -ENOMEM. */
int q_unshift(struct msgq *q, struct inmsg *m);
/* Frees the queued messages; q_free the array too. */
void q_clear(struct msgq *q);
void q_free(struct msgq *q);
/* How many queued messages have a timestamp at or before t (their
 * timestamps are taken as ascending, as a partition's mostly are). */
size_t count_until(const struct msgq *q, int64_t t);

#endif
