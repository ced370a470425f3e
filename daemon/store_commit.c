/* store_commit.c -- one batch's commit: the Lua script that checks the
 * partitions' generations and commit counters and writes customers, due
 * times, offsets and outbox frames atomically; and the load of the
 * customers a batch needs, alone or pipelined behind the previous commit.
 *
 * The script is loaded by every connection's handshake (store.c) and run
 * with EVALSHA; a NOSCRIPT answer (Redis restarted or flushed its scripts)
 * sends it again with EVAL. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>

#include "daemon/store.h"
#include "daemon/store_internal.h"
#include "daemon/parallel.h"
#include "daemon/state_codec.h"
#include "handlers/rules.h"

/* The commit.  Checks first, writes after, so a failed check writes nothing.
 *
 *   KEYS[1]                          P meta
 *   per partition i (np of them):    P gen:<p>, P off:<p>, P outbox:<p>
 *   per customer j (nc of them):     P c:<id>, P due:<partition of the customer>
 *
 *   ARGV[1] = np, ARGV[2] = nc, then
 *   per partition: partition, generation, seq, set_offsets ("1"/"0"), rel,
 *                  sub, marks ("" to leave them), trim, n_frames,
 *                  frame_1 .. frame_n  (frames binary)
 *   per customer:  customer_id, state, score (due time in ms; "" for none,
 *                  removing any; "-" for none, with none before)
 *
 * Frames are pushed, and customers written with MSET, 1000 arguments at a
 * time (unpack() is bounded by the Lua stack); one MSET per 500 customers
 * costs Redis less than a SET each.
 *
 * Each commit adds one to every partition's commit counter (P off:<p> seq).
 *
 * Replies: +OK; -NODATA when meta is missing; -STALE <partition> when a
 * partition's generation is not the batch's; -ROLLBACK <partition> when its
 * commit counter is not the batch's (seq "0" is not checked). */
static const char COMMIT_SCRIPT[] =
        "local np, nc = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
        "if redis.call('EXISTS', KEYS[1]) == 0 then\n"
        "  return redis.error_reply('NODATA meta is missing')\n"
        "end\n"
        "local a, k = 3, 2\n"
        "for i = 1, np do\n"
        "  if redis.call('GET', KEYS[k]) ~= ARGV[a + 1] then\n"
        "    return redis.error_reply('STALE partition ' .. ARGV[a])\n"
        "  end\n"
        "  if ARGV[a + 2] ~= '0' and (redis.call('HGET', KEYS[k + 1], 'seq') or '0') ~= ARGV[a + 2] then\n"
        "    return redis.error_reply('ROLLBACK partition ' .. ARGV[a])\n"
        "  end\n"
        "  a = a + 9 + tonumber(ARGV[a + 8])\n"
        "  k = k + 3\n"
        "end\n"
        "a, k = 3, 2\n"
        "for i = 1, np do\n"
        "  redis.call('HINCRBY', KEYS[k + 1], 'seq', 1)\n"
        "  if ARGV[a + 3] == '1' then\n"
        "    redis.call('HSET', KEYS[k + 1], 'rel', ARGV[a + 4], 'sub', ARGV[a + 5])\n"
        "  end\n"
        "  if ARGV[a + 6] ~= '' then\n"
        "    redis.call('HSET', KEYS[k + 1], 'marks', ARGV[a + 6])\n"
        "  end\n"
        "  local trim, n = tonumber(ARGV[a + 7]), tonumber(ARGV[a + 8])\n"
        "  if trim > 0 then redis.call('LTRIM', KEYS[k + 2], trim, -1) end\n"
        "  local f = a + 9\n"
        "  while f < a + 9 + n do\n"
        "    local last = math.min(f + 999, a + 8 + n)\n"
        "    redis.call('RPUSH', KEYS[k + 2], unpack(ARGV, f, last))\n"
        "    f = last + 1\n"
        "  end\n"
        "  a = a + 9 + n\n"
        "  k = k + 3\n"
        "end\n"
        "local sets = {}\n"
        "for j = 1, nc do\n"
        "  sets[#sets + 1] = KEYS[k]\n"
        "  sets[#sets + 1] = ARGV[a + 1]\n"
        "  if #sets >= 1000 then\n"
        "    redis.call('MSET', unpack(sets))\n"
        "    sets = {}\n"
        "  end\n"
        "  if ARGV[a + 2] == '' then\n"
        "    redis.call('ZREM', KEYS[k + 1], ARGV[a])\n"
        "  elseif ARGV[a + 2] ~= '-' then\n"
        "    redis.call('ZADD', KEYS[k + 1], ARGV[a + 2], ARGV[a])\n"
        "  end\n"
        "  a = a + 3\n"
        "  k = k + 2\n"
        "end\n"
        "if #sets > 0 then redis.call('MSET', unpack(sets)) end\n"
        "return redis.status_reply('OK')\n";
const size_t mcd_store_commit_script_len = sizeof(COMMIT_SCRIPT) - 1;
const char *const mcd_store_commit_script = COMMIT_SCRIPT;

/* --------------------------------------------------------------- load -- */

static int load_one(const redisReply *r, const char *id, struct mcd_customer *c) {
        int e;

        if (r->type == REDIS_REPLY_NIL)
                return mcd_customer_init(c, id);
        if (r->type != REDIS_REPLY_STRING)
                return -EBADMSG;
        e = mcd_state_decode(r->str, r->len, c, NULL, 0);
        if (e == -ENOMEM)
                return e;
        if (e < 0)
                return -EBADMSG;
        if (strcmp(c->customer_id, id) != 0) {
                mcd_customer_clear(c);
                return -EBADMSG;
        }
        return 0;
}

static void load_args(const struct mcd_store *s, const char *const *ids, size_t n, struct args *a) {
        args_add_str(a, "MGET");
        for (size_t i = 0; i < n; i++)
                args_take(a, store_key(s, "c:%s", ids[i]));
}

struct load_job {
        const redisReply *reply;
        const char *const *ids;
        struct mcd_customer *out;
        int *results;
};

static void load_job_one(void *ctx, size_t i, unsigned thread) {
        struct load_job *j = ctx;

        (void)thread;
        j->results[i] = load_one(j->reply->element[i], j->ids[i], &j->out[i]);
}

/* The customers of an MGET reply, parsed on the store's threads; the reply
 * is freed.  On failure none is kept. */
static int load_reply(struct mcd_store *s, redisReply *reply, const char *const *ids, size_t n,
                      struct mcd_customer *out) {
        struct load_job j = {.reply = reply, .ids = ids, .out = out};
        int r = 0;

        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n) {
                freeReplyObject(reply);
                return -EBADMSG;
        }
        j.results = calloc(n, sizeof(*j.results));
        if (!j.results) {
                freeReplyObject(reply);
                return -ENOMEM;
        }
        mcd_par_for(s->par, n, load_job_one, &j);
        for (size_t i = 0; i < n && r == 0; i++)
                r = j.results[i];
        for (size_t i = 0; r < 0 && i < n; i++)
                if (j.results[i] == 0)
                        mcd_customer_clear(&out[i]);
        free(j.results);
        freeReplyObject(reply);
        return r;
}

int mcd_store_load(struct mcd_store *s, const char *const *ids, size_t n, struct mcd_customer *out) {
        struct args a = {0};
        redisReply *reply;
        int r;

        if (n == 0)
                return 0;
        load_args(s, ids, n, &a);
        r = store_command(s, &a, &reply);
        args_free(&a);
        if (r < 0)
                return r;
        return load_reply(s, reply, ids, n, out);
}

/* ------------------------------------------------------------- commit -- */

static void add_partition_keys(struct args *keys, const struct mcd_store *s, const struct mcd_store_partition *p) {
        args_add_key(keys, s, "gen", p->partition);
        args_add_key(keys, s, "off", p->partition);
        args_add_key(keys, s, "outbox", p->partition);
}

static void add_partition_argv(struct args *argv, const struct mcd_store_partition *p) {
        args_addf(argv, "%" PRId32, p->partition);
        args_addf(argv, "%" PRId64, p->generation);
        args_addf(argv, "%" PRId64, p->seq);
        args_add_str(argv, p->set_offsets ? "1" : "0");
        args_addf(argv, "%" PRId64, p->offsets.rel);
        args_addf(argv, "%" PRId64, p->offsets.sub);
        args_add_str(argv, p->marks ? p->marks : "");
        args_addf(argv, "%zu", p->trim);
        args_addf(argv, "%zu", p->n_frames);
        for (size_t i = 0; i < p->n_frames; i++)
                args_add(argv, p->frames[i], p->frame_lens[i]);
}

static void add_customer(struct args *keys, struct args *argv, const struct mcd_store *s,
                         const struct mcd_store_customer *sc) {
        const struct mcd_customer *c = sc->customer;
        mcd_time_t due;

        args_take(keys, store_key(s, "c:%s", c->customer_id));
        args_add_key(keys, s, "due", sc->partition);
        args_add_str(argv, c->customer_id);
        if (sc->state) {
                args_add(argv, sc->state, sc->state_len);
        } else {
                char *buf = NULL;
                size_t len = 0;
                mcd_state_encode(c, &buf, &len);
                args_take_n(argv, buf, len);
        }
        if (mcd_next_due(c, &due, NULL))
                args_addf(argv, "%" PRId64, due);
        else
                args_add_str(argv, sc->no_due_before ? "-" : "");     /* "-": nothing to remove */
}

/* EVALSHA (or EVAL) sha|script numkeys keys.. argv.. */
static int build_commit(const struct mcd_store *s, const struct mcd_store_batch *b, struct args *keys,
                        struct args *argv) {
        args_take(keys, store_key(s, "meta"));
        args_addf(argv, "%zu", b->n_partitions);
        args_addf(argv, "%zu", b->n_customers);
        for (size_t i = 0; i < b->n_partitions; i++) {
                add_partition_keys(keys, s, &b->partitions[i]);
                add_partition_argv(argv, &b->partitions[i]);
        }
        for (size_t i = 0; i < b->n_customers; i++) {
                if (!b->customers[i].customer || !b->customers[i].customer->customer_id)
                        return -EINVAL;
                add_customer(keys, argv, s, &b->customers[i]);
        }
        if (keys->err < 0)
                return keys->err;
        return argv->err;
}

/* EVALSHA (or EVAL) of the commit script with its keys and arguments. */
static void eval_args(const struct mcd_store *s, bool by_sha, const struct args *keys, const struct args *argv,
                      struct args *a) {
        if (by_sha) {
                args_add_str(a, "EVALSHA");
                args_add_str(a, s->script_sha);
        } else {
                args_add_str(a, "EVAL");
                args_add(a, mcd_store_commit_script, mcd_store_commit_script_len);
        }
        args_addf(a, "%zu", keys->n);
        for (size_t i = 0; i < keys->n; i++)
                args_add(a, keys->v[i], keys->len[i]);
        for (size_t i = 0; i < argv->n; i++)
                args_add(a, argv->v[i], argv->len[i]);
}

static int eval_commit(struct mcd_store *s, bool by_sha, const struct args *keys, const struct args *argv,
                       redisReply **reply) {
        struct args a = {0};
        int r;

        if ((r = store_connect(s)) < 0)
                return r;
        eval_args(s, by_sha, keys, argv, &a);
        r = a.err < 0 ? a.err : store_command_argv(s, (int)a.n, a.v, a.len, reply);
        args_free(&a);
        return r;
}

static int commit_result(struct mcd_store *s, const redisReply *reply) {
        if (reply->type != REDIS_REPLY_ERROR)
                return 0;
        if (strncmp(reply->str, "STALE", 5) == 0)
                return -ESTALE;
        if (strncmp(reply->str, "NODATA", 6) == 0)
                return -ENODATA;
        if (strncmp(reply->str, "ROLLBACK", 8) == 0)
                return MCD_STORE_ROLLBACK;
        store_disconnect(s);
        return store_reply_error(s, reply);
}

int mcd_store_commit(struct mcd_store *s, const struct mcd_store_batch *b) {
        struct args keys = {0}, argv = {0};
        redisReply *reply = NULL;
        int r;

        r = build_commit(s, b, &keys, &argv);
        if (r == 0)
                r = eval_commit(s, true, &keys, &argv, &reply);
        if (r == 0 && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
                freeReplyObject(reply);
                reply = NULL;
                r = eval_commit(s, false, &keys, &argv, &reply);
        }
        if (r == 0)
                r = commit_result(s, reply);
        if (reply)
                freeReplyObject(reply);
        args_free(&keys);
        args_free(&argv);
        return r;
}

/* The commit and the next batch's load in one pipeline: Redis runs them in
 * order, so the load sees what the commit wrote.  When the script had to be
 * loaded again (NOSCRIPT: Redis restarted or flushed its scripts), the load
 * ran before the commit and is done again after it. */
int mcd_store_commit_and_load(struct mcd_store *s, const struct mcd_store_batch *b, const char *const *ids,
                              size_t n, struct mcd_customer *out, int *load_r) {
        struct args keys = {0}, argv = {0}, cmds[2] = {{0}};
        redisReply *replies[2] = {NULL, NULL};
        int r;

        *load_r = -ECANCELED;
        if (n == 0) {
                r = mcd_store_commit(s, b);
                if (r == 0)
                        *load_r = 0;
                return r;
        }
        r = build_commit(s, b, &keys, &argv);
        if (r == 0) {
                eval_args(s, true, &keys, &argv, &cmds[0]);
                load_args(s, ids, n, &cmds[1]);
                r = cmds[0].err < 0 ? cmds[0].err : cmds[1].err;
        }
        if (r == 0)
                r = store_connect(s);
        for (int i = 0; i < 2 && r == 0; i++)
                r = store_append_argv(s, (int)cmds[i].n, cmds[i].v, cmds[i].len);
        if (r == 0 && b->while_running && (r = store_flush(s)) == 0)
                b->while_running(b->while_running_ctx);
        if (r == 0)
                r = store_read_reply(s, &replies[0]);
        if (r == 0 && replies[0]->type == REDIS_REPLY_ERROR && strncmp(replies[0]->str, "NOSCRIPT", 8) == 0) {
                /* the load's reply is read and thrown away: it predates the commit */
                r = store_read_reply(s, &replies[1]);
                if (r == 0) {
                        freeReplyObject(replies[0]);
                        freeReplyObject(replies[1]);
                        replies[0] = replies[1] = NULL;
                        r = eval_commit(s, false, &keys, &argv, &replies[0]);
                }
                if (r == 0 && (r = commit_result(s, replies[0])) == 0)
                        *load_r = mcd_store_load(s, ids, n, out);
        } else if (r == 0 && (r = commit_result(s, replies[0])) == 0) {
                /* committed: whatever happens to the load now is the load's */
                *load_r = s->ctx ? store_read_reply(s, &replies[1]) : -ECONNRESET;
                if (*load_r == 0 && replies[1]->type == REDIS_REPLY_ERROR) {
                        *load_r = store_reply_error(s, replies[1]);
                        store_disconnect(s);
                } else if (*load_r == 0) {
                        *load_r = load_reply(s, replies[1], ids, n, out);
                        replies[1] = NULL;
                }
        } else if (s->ctx) {
                store_disconnect(s);  /* the load's reply is left unread */
        }
        for (int i = 0; i < 2; i++)
                if (replies[i])
                        freeReplyObject(replies[i]);
        args_free(&cmds[0]);
        args_free(&cmds[1]);
        args_free(&keys);
        args_free(&argv);
        return r;
}
