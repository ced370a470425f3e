/* store_offsets.c -- a partition's progress as Redis holds it: the next
 * input offsets and commit counter, the reconciliation marks, the
 * re-processing record of a rebuilt partition, the changelog records whose
 * append failed, and the outbox's frames. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <hiredis.h>

#include "daemon/clog_owed.h"
#include "daemon/frame_zip.h"
#include "daemon/store.h"
#include "daemon/store_internal.h"

/* -------------------------------------------------------------- reads -- */

/* HMGET of n fields of P <kind>:<partition>: *reply is an array of n. */
static int hmget(struct mcd_store *s, const char *kind, int32_t partition, const char *const *fields, size_t n,
                 redisReply **reply) {
        struct args a = {0};

        args_add_str(&a, "HMGET");
        args_add_key(&a, s, kind, partition);
        for (size_t i = 0; i < n; i++)
                args_add_str(&a, fields[i]);
        return store_array_command(s, &a, n, reply);
}

int mcd_store_get_offsets(struct mcd_store *s, int32_t partition, struct mcd_offsets *o, int64_t *seq) {
        static const char *const fields[] = {"rel", "sub", "seq"};
        redisReply *reply;
        int64_t n = 0;
        int r = hmget(s, "off", partition, fields, 3, &reply);

        o->rel = o->sub = -1;
        if (r < 0)
                return r;
        if (reply->element[0]->type != REDIS_REPLY_NIL)
                r = store_parse_int64(reply->element[0], &o->rel);
        if (r == 0 && reply->element[1]->type != REDIS_REPLY_NIL)
                r = store_parse_int64(reply->element[1], &o->sub);
        if (r == 0 && reply->element[2]->type != REDIS_REPLY_NIL)
                r = store_parse_int64(reply->element[2], &n);
        if (seq)
                *seq = r < 0 ? 0 : n;
        if (r < 0)
                o->rel = o->sub = -1;
        freeReplyObject(reply);
        return r;
}

static const char RAISE_SCRIPT[] =
        "if tonumber(redis.call('HGET', KEYS[1], 'seq') or '0') < tonumber(ARGV[1]) then\n"
        "  redis.call('HSET', KEYS[1], 'seq', ARGV[1])\n"
        "end\n"
        "return 0\n";

int mcd_store_raise_seq(struct mcd_store *s, int32_t partition, int64_t seq) {
        struct args a = {0};
        int64_t ignored;

        args_add_eval(&a, RAISE_SCRIPT, 1);
        args_add_key(&a, s, "off", partition);
        args_addf(&a, "%" PRId64, seq);
        return store_integer_command(s, &a, &ignored);
}

/* Any field but the commit counter, which a restore cut short also leaves. */
int mcd_store_offsets_stored(struct mcd_store *s, int32_t partition, bool *stored) {
        static const char *const fields[] = {"rel", "marks"};
        redisReply *reply;
        int r = hmget(s, "off", partition, fields, 2, &reply);

        if (r < 0)
                return r;
        *stored = reply->element[0]->type != REDIS_REPLY_NIL || reply->element[1]->type != REDIS_REPLY_NIL;
        freeReplyObject(reply);
        return 0;
}

int mcd_store_get_marks(struct mcd_store *s, int32_t partition, char **marks) {
        struct args a = {0};
        redisReply *reply;
        int r;

        *marks = NULL;
        args_add_str(&a, "HGET");
        args_add_key(&a, s, "off", partition);
        args_add_str(&a, "marks");
        r = store_command(s, &a, &reply);
        args_free(&a);
        if (r < 0)
                return r;
        if (reply->type == REDIS_REPLY_STRING) {
                *marks = strndup(reply->str, reply->len);
                if (!*marks)
                        r = -ENOMEM;
        } else if (reply->type != REDIS_REPLY_NIL) {
                r = -EBADMSG;
        }
        freeReplyObject(reply);
        return r;
}

/* Every write of the re-processing record checks first that Redis names
 * the caller's generation of the partition (KEYS[2], ARGV[1]): -1 when it
 * names another, -2 when none (redo_script). */
#define REDO_FENCE                                            \
        "local g = redis.call('GET', KEYS[2])\n"              \
        "if not g then return -2 end\n"                       \
        "if tonumber(g) ~= tonumber(ARGV[1]) then return -1 end\n"

static const char SET_REDO_SCRIPT[] =
        REDO_FENCE
        "redis.call('HSET', KEYS[1], 'marks', ARGV[2], 'rel', ARGV[3], 'sub', ARGV[4], 'due', ARGV[5])\n"
        "return 0\n";

/* Raises due only, and only in the record with these marks: a raise can
 * neither bring back a record cleared since nor touch another lookup's (a
 * raise only keeps a record longer). */
static const char RAISE_DUE_SCRIPT[] =
        REDO_FENCE
        "if redis.call('HGET', KEYS[1], 'marks') == ARGV[2] and\n"
        "   tonumber(redis.call('HGET', KEYS[1], 'due') or '0') < tonumber(ARGV[3]) then\n"
        "  redis.call('HSET', KEYS[1], 'due', ARGV[3])\n"
        "end\n"
        "return 0\n";

static const char CLEAR_REDO_SCRIPT[] =
        REDO_FENCE
        "redis.call('DEL', KEYS[1])\n"
        "return 0\n";

/* A redo script's command up to its own arguments: the keys and the
 * generation.  This function can't fail (a failure is kept in a->err). */
static void redo_args(struct args *a, const struct mcd_store *s, const char *script, int32_t partition,
                      int64_t generation) {
        args_add_eval(a, script, 2);
        args_add_key(a, s, "redo", partition);
        args_add_key(a, s, "gen", partition);
        args_addf(a, "%" PRId64, generation);
}

/* Runs a redo script; a is freed.  0, -ESTALE, -ENODATA or a store error. */
static int redo_script(struct mcd_store *s, struct args *a) {
        int64_t v = 0;
        int r = store_integer_command(s, a, &v);

        if (r < 0)
                return r;
        return v == -1 ? -ESTALE : v == -2 ? -ENODATA : 0;
}

int mcd_store_set_redo(struct mcd_store *s, int32_t partition, int64_t generation, const char *marks,
                       struct mcd_offsets until, mcd_time_t due) {
        struct args a = {0};

        redo_args(&a, s, SET_REDO_SCRIPT, partition, generation);
        args_add_str(&a, marks);
        args_addf(&a, "%" PRId64, until.rel);
        args_addf(&a, "%" PRId64, until.sub);
        args_addf(&a, "%" PRId64, due);
        return redo_script(s, &a);
}

int mcd_store_raise_redo_due(struct mcd_store *s, int32_t partition, int64_t generation, const char *marks,
                             mcd_time_t due) {
        struct args a = {0};

        redo_args(&a, s, RAISE_DUE_SCRIPT, partition, generation);
        args_add_str(&a, marks);
        args_addf(&a, "%" PRId64, due);
        return redo_script(s, &a);
}

int mcd_store_get_redo(struct mcd_store *s, int32_t partition, bool *found, char **marks,
                       struct mcd_offsets *until, mcd_time_t *due) {
        static const char *const fields[] = {"marks", "rel", "sub", "due"};
        redisReply *reply;
        int r;

        *found = false;
        *marks = NULL;
        *due = 0;
        r = hmget(s, "redo", partition, fields, 4, &reply);
        if (r < 0)
                return r;
        if (reply->element[0]->type == REDIS_REPLY_NIL)
                goto out;               /* none */
        if (reply->element[0]->type != REDIS_REPLY_STRING)
                r = -EBADMSG;
        if (r == 0)
                r = store_parse_int64(reply->element[1], &until->rel);
        if (r == 0)
                r = store_parse_int64(reply->element[2], &until->sub);
        if (r == 0 && reply->element[3]->type != REDIS_REPLY_NIL)       /* earlier versions wrote none */
                r = store_parse_int64(reply->element[3], due);
        if (r == 0 && !(*marks = strndup(reply->element[0]->str, reply->element[0]->len)))
                r = -ENOMEM;
        *found = r == 0;
out:
        freeReplyObject(reply);
        return r;
}

int mcd_store_clear_redo(struct mcd_store *s, int32_t partition, int64_t generation) {
        struct args a = {0};

        redo_args(&a, s, CLEAR_REDO_SCRIPT, partition, generation);
        return redo_script(s, &a);
}

/* ------------------------------------------- changelog records lost -- */

int mcd_store_clog_lost_add(struct mcd_store *s, int32_t partition, char *const *keys, size_t n) {
        struct args a = {0};
        int64_t v;

        if (n == 0)
                return 0;
        args_add_str(&a, "SADD");
        args_add_key(&a, s, "clog_lost", partition);
        for (size_t i = 0; i < n; i++)
                args_add_str(&a, keys[i]);
        return store_integer_command(s, &a, &v);
}

/* Keys read back, as heap strings. */
struct key_list {
        char **v;
        size_t n, cap;
};

static int key_list_add(void *ctx, const char *key, size_t len) {
        struct key_list *kl = ctx;

        if (kl->n == kl->cap) {
                size_t cap = kl->cap ? kl->cap * 2 : 16;
                char **v = realloc(kl->v, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                kl->v = v;
                kl->cap = cap;
        }
        if (!(kl->v[kl->n] = strndup(key, len)))
                return -ENOMEM;
        kl->n++;
        return 0;
}

/* The keys of `cmd` (SMEMBERS or LRANGE) on P <kind>:<partition>: each
 * element one key, or with `packed` several (clog_owed.h).  For the caller
 * to free with mcd_store_ids_free. */
static int read_keys(struct mcd_store *s, const char *cmd, const char *kind, int32_t partition, bool packed,
                     char ***keys, size_t *n, size_t *elements) {
        struct key_list kl = {0};
        struct args a = {0};
        size_t reply_elements;
        redisReply *reply;
        int r;

        args_add_str(&a, cmd);
        args_add_key(&a, s, kind, partition);
        if (strcmp(cmd, "LRANGE") == 0) {
                args_add_str(&a, "0");
                args_add_str(&a, "-1");
        }
        r = store_command(s, &a, &reply);
        args_free(&a);
        if (r < 0)
                return r;
        if (reply->type != REDIS_REPLY_ARRAY)
                r = -EBADMSG;
        for (size_t i = 0; r == 0 && i < reply->elements; i++) {
                const redisReply *e = reply->element[i];
                if (e->type != REDIS_REPLY_STRING)
                        r = -EBADMSG;
                else
                        r = packed ? clog_keys_each(e->str, e->len, key_list_add, &kl)
                                   : key_list_add(&kl, e->str, e->len);
        }
        reply_elements = reply->elements;
        freeReplyObject(reply);
        if (r < 0) {
                mcd_store_ids_free(kl.v, kl.n);
                return r;
        }
        *keys = kl.v;
        *n = kl.n;
        if (elements)
                *elements = reply_elements;
        return 0;
}

int mcd_store_clog_lost_get(struct mcd_store *s, int32_t partition, char ***keys, size_t *n) {
        *keys = NULL;
        *n = 0;
        return read_keys(s, "SMEMBERS", "clog_lost", partition, false, keys, n, NULL);
}

int mcd_store_clog_owed_get(struct mcd_store *s, int32_t partition, char ***keys, size_t *n, size_t *elements) {
        *keys = NULL;
        *n = *elements = 0;
        return read_keys(s, "LRANGE", "clog_owed", partition, true, keys, n, elements);
}

void mcd_store_frames_free(void **frames, size_t *lens, size_t n) {
        if (frames)
                for (size_t i = 0; i < n; i++)
                        free(frames[i]);
        free(frames);
        free(lens);
}

/* An outbox element as a frame, in a malloc'd buffer: unzipped if it is
 * zipped (frame_zip.h), else as it is.  One that cannot be unzipped is also
 * handed on as it is, and named in a note: it is then the corrupt frame it
 * is (publish.c skips it with an error).  0 or -ENOMEM. */
static int copy_frame(struct mcd_store *s, int32_t partition, const redisReply *e, void **frame, size_t *len) {
        struct mcd_frame_zip *zip;
        int r;

        if (mcd_frame_is_zipped(e->str, e->len)) {
                if (!(zip = store_zip(s)))
                        return -ENOMEM;
                if ((r = mcd_frame_unzip(zip, e->str, e->len, frame, len)) != -EBADMSG)
                        return r;
                store_notef(s, LOG_ERR,
                            "outbox:%" PRId32 ": a zipped frame could not be unzipped (corrupt, or zipped with a "
                            "dictionary this version does not have, by a newer one)", partition);
        }
        if (!(*frame = malloc(e->len ? e->len : 1)))
                return -ENOMEM;
        memcpy(*frame, e->str, e->len);
        *len = e->len;
        return 0;
}

static int copy_frames(struct mcd_store *s, int32_t partition, const redisReply *reply, void ***frames,
                       size_t **lens, size_t *n) {
        size_t m = reply->elements;
        void **f = calloc(m ? m : 1, sizeof(*f));
        size_t *l = calloc(m ? m : 1, sizeof(*l));
        int r;

        if (!f || !l) {
                free(f);
                free(l);
                return -ENOMEM;
        }
        for (size_t i = 0; i < m; i++) {
                const redisReply *e = reply->element[i];
                r = e->type == REDIS_REPLY_STRING ? copy_frame(s, partition, e, &f[i], &l[i]) : -EBADMSG;
                if (r < 0) {
                        mcd_store_frames_free(f, l, i);
                        return r;
                }
        }
        *frames = f;
        *lens = l;
        *n = m;
        return 0;
}

int mcd_store_read_outbox(struct mcd_store *s, int32_t partition, void ***frames, size_t **lens, size_t *n) {
        struct args a = {0};
        redisReply *reply;
        int r;

        *frames = NULL;
        *lens = NULL;
        *n = 0;
        args_add_str(&a, "LRANGE");
        args_add_key(&a, s, "outbox", partition);
        args_add_str(&a, "0");
        args_add_str(&a, "-1");
        r = store_command(s, &a, &reply);
        args_free(&a);
        if (r < 0)
                return r;
        r = reply->type == REDIS_REPLY_ARRAY ? copy_frames(s, partition, reply, frames, lens, n) : -EBADMSG;
        freeReplyObject(reply);
        return r;
}
