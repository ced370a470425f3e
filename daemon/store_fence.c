/* store_fence.c -- the commit's fencing: the keys a commit's checks read,
 * WATCHed by the connection and read right after, and the checks made on
 * what was read.
 *
 * A batch commits only if P meta exists (Redis did not lose the daemon's
 * state), every partition's P gen:<p> is the batch's generation (no other
 * instance claimed it since) and its commit counter (P off:<p> seq) is the
 * batch's, unless that is 0 (Redis did not come back older); and the keys
 * the commit writes with commands that fail on a key of another type
 * (its outbox, owed and lost lists and due zset) are of their type or
 * absent: Redis runs the rest of a transaction past a command that
 * fails, so a key of the wrong type would leave the batch half written
 * (its offsets and customers without its outbox frames).  They are
 * WATCHed with the others: the fence is carried from one commit to the
 * next across reads (due scans, status counts), however long the daemon
 * idles, so a type read once must still hold at the EXEC.  It costs Redis:
 * it checks whether a key is watched already by walking the client's
 * list, and six keys a partition instead of two made the WATCH about
 * seven times dearer (367 us a call against 51 for 64 partitions, 0.3 us
 * of Redis CPU per event on the benchmark).  The commit
 * (store_commit.c) runs its writes in MULTI / EXEC behind a WATCH of these
 * keys; the values read after the WATCH are what the checks compare, and
 * EXEC refuses the writes if any of the keys changed since: the checks
 * hold when the writes are made.  The same WATCH and reads end every
 * commit's pipeline, for the next commit. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <hiredis.h>

#include "daemon/store.h"
#include "daemon/store_internal.h"

/* A partition's keys the commit writes with commands that fail on another
 * type, and that type (P off:<p> is checked by HGET; MSET never fails). */
static const struct {
        const char *kind;
        const char *type;
} TYPED[] = {{"outbox", "list"}, {"clog_owed", "list"}, {"clog_lost", "set"}, {"due", "zset"}};
#define N_TYPED (sizeof(TYPED) / sizeof(TYPED[0]))

size_t fence_n_cmds(const struct mcd_store_batch *b) {
        return b->n_partitions > 0 ? 4 + b->n_partitions * (1 + N_TYPED) : 3;
}

/* UNWATCH (keys watched before, for another batch's partitions, are let
 * go); WATCH P meta, P gen:<p>, P off:<p>, the TYPED keys ...; EXISTS P
 * meta; MGET P gen:<p> ...; HGET P off:<p> seq per partition; TYPE of each
 * TYPED key per partition: fence_n_cmds(b) commands in cmds, which start
 * zeroed. */
void fence_add_watch(const struct mcd_store *s, const struct mcd_store_batch *b, struct args *cmds) {
        struct args *watch = &cmds[1], *exists = &cmds[2], *gens = &cmds[3];

        args_add_str(&cmds[0], "UNWATCH");
        args_add_str(watch, "WATCH");
        args_take(watch, store_key(s, "meta"));
        args_add_str(exists, "EXISTS");
        args_take(exists, store_key(s, "meta"));
        if (b->n_partitions > 0)
                args_add_str(gens, "MGET");
        for (size_t i = 0; i < b->n_partitions; i++) {
                struct args *seq = &cmds[4 + i];
                int32_t p = b->partitions[i].partition;
                args_add_key(watch, s, "gen", p);
                args_add_key(watch, s, "off", p);
                args_add_key(gens, s, "gen", p);
                args_add_str(seq, "HGET");
                args_add_key(seq, s, "off", p);
                args_add_str(seq, "seq");
                for (size_t k = 0; k < N_TYPED; k++) {
                        struct args *type = &cmds[4 + b->n_partitions + i * N_TYPED + k];
                        args_add_key(watch, s, TYPED[k].kind, p);
                        args_add_str(type, "TYPE");
                        args_add_key(type, s, TYPED[k].kind, p);
                }
        }
}

/* A generation or commit counter as read: missing is missing_value, not a
 * number INT64_MIN (which no batch carries). */
static int64_t read_number(const redisReply *r, int64_t missing_value) {
        int64_t v;

        if (r->type == REDIS_REPLY_NIL)
                return missing_value;
        return store_parse_int64(r, &v) == 0 ? v : INT64_MIN;
}

static int fence_grow(struct store_fence *f, size_t n) {
        struct store_watched *v;

        if (n <= f->cap)
                return 0;
        if (!(v = realloc(f->v, n * sizeof(*v))))
                return -ENOMEM;
        f->v = v;
        f->cap = n;
        return 0;
}

/* A reply not of the kind wanted: its error (store_reply_error) or
 * -EBADMSG; the reply is freed and the connection dropped. */
static int reply_fail(struct mcd_store *s, redisReply *reply) {
        int r = reply->type == REDIS_REPLY_ERROR ? store_reply_error(s, reply) : -EBADMSG;

        freeReplyObject(reply);
        store_disconnect(s);
        return r;
}

/* Reads one reply of the fence's commands, of the type wanted; anything
 * else drops the connection. */
static int read_typed(struct mcd_store *s, int type, size_t elements, redisReply **reply) {
        int r = store_read_reply(s, reply);

        if (r < 0)
                return r;
        if ((*reply)->type == type && (type != REDIS_REPLY_ARRAY || (*reply)->elements == elements))
                return 0;
        r = reply_fail(s, *reply);
        *reply = NULL;
        return r;
}

/* Reads the TYPE replies of partition i's TYPED keys: 0, or
 * MCD_STORE_WRONG_TYPE (logged, naming the key) when one is of another
 * type. */
static int read_types(struct mcd_store *s, const struct mcd_store_batch *b, size_t i) {
        redisReply *reply = NULL;
        int r, wrong = 0;

        for (size_t k = 0; k < N_TYPED; k++) {
                if ((r = read_typed(s, REDIS_REPLY_STATUS, 0, &reply)) < 0)
                        return r;
                if (!wrong && strcmp(reply->str, "none") != 0 && strcmp(reply->str, TYPED[k].type) != 0) {
                        char *key = store_key(s, "%s:%" PRId32, TYPED[k].kind, b->partitions[i].partition);
                        store_notef(s, LOG_ERR, "Redis key %s is a %s, not a %s: no batch with partition %" PRId32
                                    " commits until it is deleted or made one", key ? key : TYPED[k].kind,
                                    reply->str, TYPED[k].type, b->partitions[i].partition);
                        free(key);
                        wrong = MCD_STORE_WRONG_TYPE;
                }
                freeReplyObject(reply);
        }
        return wrong;
}

/* Reads the replies of fence_add_watch's commands into s->fence, which
 * holds from here (until another command is sent: store_append_argv). */
int fence_read(struct mcd_store *s, const struct mcd_store_batch *b) {
        struct store_fence *f = &s->fence;
        redisReply *reply = NULL;
        int r;

        f->ok = false;
        for (int i = 0; i < 2; i++) {           /* UNWATCH, WATCH */
                if ((r = read_typed(s, REDIS_REPLY_STATUS, 0, &reply)) < 0)
                        return r;
                freeReplyObject(reply);
        }
        if ((r = read_typed(s, REDIS_REPLY_INTEGER, 0, &reply)) < 0)
                return r;
        f->meta = reply->integer > 0;
        freeReplyObject(reply);
        if (fence_grow(f, b->n_partitions + 1) < 0) {
                store_disconnect(s);
                return -ENOMEM;
        }
        if (b->n_partitions > 0 && (r = read_typed(s, REDIS_REPLY_ARRAY, b->n_partitions, &reply)) < 0)
                return r;
        for (size_t i = 0; i < b->n_partitions; i++) {
                f->v[i].partition = b->partitions[i].partition;
                f->v[i].gen = read_number(reply->element[i], INT64_MIN);
                f->v[i].wrong_type = false;
        }
        if (b->n_partitions > 0)
                freeReplyObject(reply);
        for (size_t i = 0; i < b->n_partitions; i++) {
                if ((r = store_read_reply(s, &reply)) < 0)
                        return r;
                if (reply->type == REDIS_REPLY_ERROR)        /* P off:<p> is not a hash */
                        return reply_fail(s, reply);
                f->v[i].seq = read_number(reply, 0);
                freeReplyObject(reply);
        }
        for (size_t i = 0; i < b->n_partitions; i++)
                if ((r = read_types(s, b, i)) == MCD_STORE_WRONG_TYPE)
                        f->v[i].wrong_type = true;
                else if (r < 0)
                        return r;
        f->n = b->n_partitions;
        f->ok = true;
        return 0;
}

static const struct store_watched *watched(const struct store_fence *f, int32_t partition, size_t hint) {
        if (hint < f->n && f->v[hint].partition == partition)
                return &f->v[hint];
        for (size_t i = 0; i < f->n; i++)
                if (f->v[i].partition == partition)
                        return &f->v[i];
        return NULL;
}

/* The checks, in order: meta, then each partition's generation, its
 * commit counter and its keys' types.  0 when b may commit; -ENODATA,
 * -ESTALE, MCD_STORE_ROLLBACK or MCD_STORE_WRONG_TYPE when it may not; 1
 * when the fence does not cover b (nothing watched, or one of b's
 * partitions is not).  This function can't fail. */
int fence_check(const struct mcd_store *s, const struct mcd_store_batch *b) {
        const struct store_fence *f = &s->fence;

        if (!f->ok)
                return 1;
        for (size_t i = 0; i < b->n_partitions; i++)
                if (!watched(f, b->partitions[i].partition, i))
                        return 1;
        if (!f->meta)
                return -ENODATA;
        for (size_t i = 0; i < b->n_partitions; i++) {
                const struct mcd_store_partition *p = &b->partitions[i];
                const struct store_watched *w = watched(f, p->partition, i);
                if (w->gen != p->generation)
                        return -ESTALE;
                if (p->seq != 0 && w->seq != p->seq)
                        return MCD_STORE_ROLLBACK;
                if (w->wrong_type)
                        return MCD_STORE_WRONG_TYPE;
        }
        return 0;
}
