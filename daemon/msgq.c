/* msgq.c -- a partition's input queue (msgq.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/msgq.h"

struct inmsg *inmsg_copy(const rd_kafka_message_t *m, int64_t arrived) {
        struct inmsg *c = malloc(sizeof(*c) + m->key_len + m->len);

        if (!c)
                return NULL;
        c->offset = m->offset;
        c->timestamp = rd_kafka_message_timestamp(m, NULL);
        c->arrived = arrived;
        c->partition = m->partition;
        c->key_len = m->key ? m->key_len : 0;
        c->len = m->payload ? m->len : 0;
        c->key = m->key ? memcpy(c->data, m->key, c->key_len) : NULL;
        c->payload = m->payload ? memcpy(c->data + c->key_len, m->payload, c->len) : NULL;
        return c;
}

/* Doubles the queue's room (256 at first).  0 or -ENOMEM (q unchanged). */
static int q_grow(struct msgq *q) {
        size_t cap = q->cap ? q->cap * 2 : 256;
        struct inmsg **v = realloc(q->v, cap * sizeof(*v));

        if (!v)
                return -ENOMEM;
        q->v = v;
        q->cap = cap;
        return 0;
}

int q_push(struct msgq *q, struct inmsg *m) {
        if (q->head > 0 && q->tail == q->cap) {
                memmove(q->v, q->v + q->head, q_len(q) * sizeof(*q->v));
                q->tail -= q->head;
                q->head = 0;
        }
        if (q->tail == q->cap && q_grow(q) < 0)
                return -ENOMEM;
        q->v[q->tail++] = m;
        return 0;
}

int q_unshift(struct msgq *q, struct inmsg *m) {
        if (q->head == 0) {
                if (q->tail == q->cap && q_grow(q) < 0)
                        return -ENOMEM;
                memmove(q->v + 1, q->v, q->tail * sizeof(*q->v));
                q->head++;
                q->tail++;
        }
        q->v[--q->head] = m;
        return 0;
}

void q_clear(struct msgq *q) {
        for (size_t i = q->head; i < q->tail; i++)
                free(q->v[i]);
        q->head = q->tail = 0;
}

void q_free(struct msgq *q) {
        q_clear(q);
        free(q->v);
}

size_t count_until(const struct msgq *q, int64_t t) {
        size_t lo = q->head, hi = q->tail;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (q->v[mid]->timestamp <= t)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo - q->head;
}
