/* store_scan.c -- reads across partitions and customers: the customers due
 * for their timers, the due and outbox counts for status and metrics, and
 * customers' stored states as raw bytes (for `multichanneld state` and the
 * changelog's repair). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>

#include "daemon/store.h"
#include "daemon/store_internal.h"

void mcd_store_ids_free(char **ids, size_t n) {
        if (ids)
                for (size_t i = 0; i < n; i++)
                        free(ids[i]);
        free(ids);
}

/* Appends the first `take` ids of one ZRANGEBYSCORE reply, tagged with
 * their partition.  The ids are taken out of the reply, not copied:
 * hiredis ends each string with a NUL, and frees what is left of the reply
 * without them. */
static int take_due_ids(redisReply *reply, size_t take, int32_t partition, char ***ids, int32_t **parts,
                        size_t *n) {
        char **v;
        int32_t *pv;

        if (take == 0)
                return 0;
        v = realloc(*ids, (*n + take) * sizeof(*v));
        if (v)
                *ids = v;
        pv = realloc(*parts, (*n + take) * sizeof(*pv));
        if (pv)
                *parts = pv;
        if (!v || !pv)
                return -ENOMEM;
        for (size_t i = 0; i < take; i++) {
                redisReply *e = reply->element[i];
                if (e->type != REDIS_REPLY_STRING || strlen(e->str) != (size_t)e->len)
                        return -EBADMSG;
                v[*n] = e->str;
                e->str = NULL;
                pv[(*n)++] = partition;
        }
        return 0;
}

/* How many of each reply's ids to take, max in all, shared out evenly: a
 * partition with fewer due than its share leaves the rest to the others
 * (the largest level no partition takes more than, then one more each for
 * the first partitions that have more, until max).  take[i] is set; true
 * when a reply is left with ids untaken.  The replies are arrays. */
static bool share_due(redisReply **replies, size_t n_parts, size_t max, size_t *take) {
        size_t lo = 0, hi = max, left = max;
        bool cut = false;

        while (lo < hi) {               /* the largest level whose takes sum to max or less */
                size_t mid = lo + (hi - lo + 1) / 2, sum = 0;
                for (size_t i = 0; i < n_parts; i++)
                        sum += replies[i]->elements < mid ? replies[i]->elements : mid;
                if (sum <= max)
                        lo = mid;
                else
                        hi = mid - 1;
        }
        for (size_t i = 0; i < n_parts; i++)
                left -= take[i] = replies[i]->elements < lo ? replies[i]->elements : lo;
        for (size_t i = 0; i < n_parts; i++) {
                if (left > 0 && take[i] < replies[i]->elements) {
                        take[i]++;
                        left--;
                }
                cut |= take[i] < replies[i]->elements;
        }
        return cut;
}

/* Takes the ids of the replies to mcd_store_due's commands, as share_due
 * shares them out: 1 when some were left (or a reply is `depth` long: its
 * zset may hold more), 0 when none was, or an error. */
static int take_shared(redisReply **replies, const int32_t *partitions, size_t n_parts, size_t max, size_t depth,
                       char ***ids, int32_t **id_partitions, size_t *n) {
        size_t *take = calloc(n_parts, sizeof(*take));
        bool more;
        int r = 0;

        if (!take)
                return -ENOMEM;
        for (size_t i = 0; r == 0 && i < n_parts; i++)
                if (replies[i]->type != REDIS_REPLY_ARRAY)
                        r = -EBADMSG;
        more = r == 0 && share_due(replies, n_parts, max, take);
        for (size_t i = 0; r == 0 && i < n_parts; i++) {
                more |= replies[i]->elements == depth;
                r = take_due_ids(replies[i], take[i], partitions[i], ids, id_partitions, n);
        }
        free(take);
        return r < 0 ? r : more;
}

int mcd_store_due(struct mcd_store *s, const int32_t *partitions, const mcd_time_t *until, size_t n_parts, size_t max,
                  char ***ids, int32_t **id_partitions, size_t *n, bool *more) {
        size_t depth = max < MCD_STORE_DUE_DEPTH ? max : MCD_STORE_DUE_DEPTH;
        struct args *cmds;
        redisReply **replies;
        int r;

        *ids = NULL;
        *id_partitions = NULL;
        *n = 0;
        if (more)
                *more = false;
        if (max == 0 || n_parts == 0)
                return 0;
        cmds = calloc(n_parts, sizeof(*cmds));
        replies = calloc(n_parts, sizeof(*replies));
        if (!cmds || !replies) {
                free(cmds);
                free(replies);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n_parts; i++) {
                args_add_str(&cmds[i], "ZRANGEBYSCORE");
                args_add_key(&cmds[i], s, "due", partitions[i]);
                args_add_str(&cmds[i], "-inf");
                args_addf(&cmds[i], "%" PRId64, until[i]);
                args_add_str(&cmds[i], "LIMIT");
                args_add_str(&cmds[i], "0");
                args_addf(&cmds[i], "%zu", depth);
        }
        r = store_pipeline(s, cmds, n_parts, replies);
        if (r == 0) {
                r = take_shared(replies, partitions, n_parts, max, depth, ids, id_partitions, n);
                store_replies_free(replies, n_parts);
        }
        if (r >= 0 && more)
                *more = r > 0;
        if (r < 0) {
                mcd_store_ids_free(*ids, *n);
                free(*id_partitions);
                *ids = NULL;
                *id_partitions = NULL;
                *n = 0;
        }
        store_cmds_free(cmds, n_parts);
        free(replies);
        return r < 0 ? r : 0;
}

/* ZCARD and LLEN of every partition, pipelined: one round trip. */
int mcd_store_counts(struct mcd_store *s, const int32_t *partitions, size_t n_parts, int64_t *due,
                     int64_t *outbox) {
        struct args *cmds;
        redisReply **replies;
        int r;

        *due = *outbox = 0;
        if (n_parts == 0)
                return 0;
        cmds = calloc(2 * n_parts, sizeof(*cmds));
        replies = calloc(2 * n_parts, sizeof(*replies));
        if (!cmds || !replies) {
                free(cmds);
                free(replies);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n_parts; i++) {
                args_add_str(&cmds[2 * i], "ZCARD");
                args_add_key(&cmds[2 * i], s, "due", partitions[i]);
                args_add_str(&cmds[2 * i + 1], "LLEN");
                args_add_key(&cmds[2 * i + 1], s, "outbox", partitions[i]);
        }
        r = store_pipeline(s, cmds, 2 * n_parts, replies);
        if (r == 0) {
                for (size_t i = 0; i < 2 * n_parts && r == 0; i++) {
                        if (replies[i]->type != REDIS_REPLY_INTEGER)
                                r = -EBADMSG;
                        else
                                *(i % 2 ? outbox : due) += replies[i]->integer;
                }
                store_replies_free(replies, 2 * n_parts);
        }
        store_cmds_free(cmds, 2 * n_parts);
        free(replies);
        return r;
}

/* A heap copy of a string reply, NUL-terminated, in *buf and *len; NULL
 * for nil.  0, -ENOMEM or -EBADMSG (another type). */
static int raw_copy(const redisReply *reply, char **buf, size_t *len) {
        *buf = NULL;
        *len = 0;
        if (reply->type == REDIS_REPLY_NIL)
                return 0;
        if (reply->type != REDIS_REPLY_STRING)
                return -EBADMSG;
        if (!(*buf = malloc(reply->len + 1)))
                return -ENOMEM;
        memcpy(*buf, reply->str, reply->len);
        (*buf)[reply->len] = '\0';
        *len = reply->len;
        return 0;
}

/* Keys per MGET of mcd_store_get_customers_raw: a bound on one reply. */
#define RAW_MGET_MAX 512

/* One MGET of n <= RAW_MGET_MAX customers, copied into bufs and lens. */
static int get_raw_chunk(struct mcd_store *s, const char *const *ids, size_t n, char **bufs, size_t *lens) {
        struct args a = {0};
        redisReply *reply;
        int r;

        args_add_str(&a, "MGET");
        for (size_t i = 0; i < n; i++)
                args_take(&a, store_key(s, "c:%s", ids[i]));
        if ((r = store_array_command(s, &a, n, &reply)) < 0)
                return r;
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = raw_copy(reply->element[i], &bufs[i], &lens[i]);
        freeReplyObject(reply);
        return r;
}

int mcd_store_get_customers_raw(struct mcd_store *s, const char *const *ids, size_t n, char **bufs,
                                size_t *lens) {
        int r = 0;

        memset(bufs, 0, n * sizeof(*bufs));
        for (size_t at = 0; r >= 0 && at < n; at += RAW_MGET_MAX)
                r = get_raw_chunk(s, ids + at, n - at < RAW_MGET_MAX ? n - at : RAW_MGET_MAX, bufs + at, lens + at);
        if (r < 0)
                for (size_t i = 0; i < n; i++) {
                        free(bufs[i]);
                        bufs[i] = NULL;
                }
        return r;
}

int mcd_store_get_customer_raw(struct mcd_store *s, const char *customer_id, char **buf, size_t *len) {
        *len = 0;
        return mcd_store_get_customers_raw(s, &customer_id, 1, buf, len);
}
