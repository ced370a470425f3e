/* store_commit.c -- one batch's commit: the Lua script that checks the
 * partitions' generations and commit counters and writes customers, due
 * times, offsets and outbox frames atomically, with its arguments packed so
 * that Lua does no work per customer; and the load of the customers a batch
 * needs, alone or pipelined behind the previous commit.
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
 *   per due group g (ng of them):    P due:<p>
 *
 *   ARGV[1] = np, ARGV[2] = ng, ARGV[3] = nc, then
 *   per partition: partition, generation, seq, set_offsets ("1"/"0"), rel,
 *                  sub, marks ("" to leave them), trim, n_frames,
 *                  frame_1 .. frame_n  (frames binary)
 *   per due group: n_add, n_rem, (score, customer_id) x n_add,
 *                  customer_id x n_rem
 *   then nc times: P c:<id>, state   (ready for MSET)
 *
 * DESIGN: no work per customer in Lua.  Redis turns every argument into a
 * Lua string and every argument of redis.call back into a Redis string;
 * Lua code per customer (a table built for MSET, a ZADD or ZREM call each)
 * cost more than that (tests/bench/commit_bench.c: 2,000 customers of 300
 * bytes took Redis about 1.6 times the CPU the script below takes).  So the
 * arguments come in contiguous ranges that go to MSET, RPUSH, ZADD and ZREM
 * as they are, 1000 arguments a call (unpack() is bounded by the Lua
 * stack; 1000 is even, so no call splits a pair).  The due index only gets
 * the customers whose due time changed, one group of ZADD/ZREM arguments
 * per zset.  The customers' keys are arguments, not KEYS, for MSET's sake:
 * fine for one Redis node, which is all the daemon talks to.
 *
 * Each commit adds one to every partition's commit counter (P off:<p> seq).
 *
 * Replies: +OK; -NODATA when meta is missing; -STALE <partition> when a
 * partition's generation is not the batch's; -ROLLBACK <partition> when its
 * commit counter is not the batch's (seq "0" is not checked); an ERR when
 * the counts do not add up to the arguments (a bug: nothing written). */
static const char COMMIT_SCRIPT[] =
        "local np, ng, nc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
        "local function range(cmd, key, f, last)\n"
        "  while f <= last do\n"
        "    local l = math.min(f + 999, last)\n"
        "    if key then redis.call(cmd, key, unpack(ARGV, f, l)) else redis.call(cmd, unpack(ARGV, f, l)) end\n"
        "    f = l + 1\n"
        "  end\n"
        "end\n"
        "if redis.call('EXISTS', KEYS[1]) == 0 then\n"
        "  return redis.error_reply('NODATA meta is missing')\n"
        "end\n"
        "local a, k = 4, 2\n"
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
        "local g = a\n"
        "for i = 1, ng do g = g + 2 + 2 * tonumber(ARGV[g]) + tonumber(ARGV[g + 1]) end\n"
        "if g + 2 * nc - 1 ~= #ARGV or k + ng - 1 ~= #KEYS then\n"
        "  return redis.error_reply('ERR commit arguments do not add up')\n"
        "end\n"
        "a, k = 4, 2\n"
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
        "  range('RPUSH', KEYS[k + 2], a + 9, a + 8 + n)\n"
        "  a = a + 9 + n\n"
        "  k = k + 3\n"
        "end\n"
        "for i = 1, ng do\n"
        "  local na, nr = tonumber(ARGV[a]), tonumber(ARGV[a + 1])\n"
        "  range('ZADD', KEYS[k], a + 2, a + 1 + 2 * na)\n"
        "  range('ZREM', KEYS[k], a + 2 + 2 * na, a + 1 + 2 * na + nr)\n"
        "  a = a + 2 + 2 * na + nr\n"
        "  k = k + 1\n"
        "end\n"
        "range('MSET', nil, a, a + 2 * nc - 1)\n"
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

/* One customer's write to the due index. */
struct due_change {
        int32_t partition;           /* whose zset */
        const char *id;              /* the member: the customer's id */
        mcd_time_t due;              /* the score, when set */
        bool set;                    /* ZADD (else ZREM) */
};

/* The change customer sc makes to the due index: 1 with *ch set, 0 when its
 * due time is the one it was loaded with (the zset has it already). */
static int due_change_of(const struct mcd_store_customer *sc, struct due_change *ch) {
        const struct mcd_customer *c = sc->customer;
        bool has = mcd_next_due(c, &ch->due, NULL);

        if (sc->due_known && has == sc->had_due && (!has || ch->due == sc->due_before))
                return 0;
        ch->partition = sc->partition;
        ch->id = c->customer_id;
        ch->set = has;
        return 1;
}

/* By zset, its ZADDs before its ZREMs. */
static int due_change_cmp(const void *x, const void *y) {
        const struct due_change *a = x, *b = y;

        if (a->partition != b->partition)
                return a->partition < b->partition ? -1 : 1;
        return (int)b->set - (int)a->set;
}

/* Room in one buffer for the arguments formatted per customer (its key,
 * a due time), which borrow from it: one allocation per commit. */
struct text {
        char *buf;
        size_t used, cap;
};

/* Formats into t and adds the result to a as a borrowed argument. */
static void text_add(struct args *a, struct text *t, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void text_add(struct args *a, struct text *t, const char *fmt, ...) {
        va_list ap;
        int n;

        if (a->err < 0)
                return;
        va_start(ap, fmt);
        n = vsnprintf(t->buf + t->used, t->cap - t->used, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= t->cap - t->used) {
                if (a->err == 0)
                        a->err = -EOVERFLOW;     /* text_size is wrong: a bug */
                return;
        }
        args_add(a, t->buf + t->used, (size_t)n);
        t->used += (size_t)n + 1;
}

/* What the customers' keys and n_due due times take in a text. */
static size_t text_size(const struct mcd_store *s, const struct mcd_store_batch *b, size_t n_due) {
        size_t n = 1 + n_due * 24;

        for (size_t i = 0; i < b->n_customers; i++)
                n += strlen(s->prefix) + 3 + strlen(b->customers[i].customer->customer_id);
        return n;
}

/* One zset's group: the key, then n_add, n_rem and their arguments. */
static size_t add_due_group(const struct mcd_store *s, struct args *keys, struct args *argv, struct text *t,
                            const struct due_change *ch, size_t n) {
        size_t end = 0, n_add = 0;

        while (end < n && ch[end].partition == ch[0].partition)
                n_add += ch[end++].set;
        args_add_key(keys, s, "due", ch[0].partition);
        args_addf(argv, "%zu", n_add);
        args_addf(argv, "%zu", end - n_add);
        for (size_t i = 0; i < end; i++) {
                if (ch[i].set)
                        text_add(argv, t, "%" PRId64, ch[i].due);
                args_add_str(argv, ch[i].id);
        }
        return end;
}

static size_t count_groups(const struct due_change *ch, size_t n) {
        size_t groups = 0;

        for (size_t i = 0; i < n; i++)
                groups += i == 0 || ch[i].partition != ch[i - 1].partition;
        return groups;
}

/* A customer's key and state, ready for MSET. */
static void add_state(const struct mcd_store *s, struct args *argv, struct text *t,
                      const struct mcd_store_customer *sc) {
        text_add(argv, t, "%sc:%s", s->prefix, sc->customer->customer_id);
        if (sc->state) {
                args_add(argv, sc->state, sc->state_len);
        } else {
                char *buf = NULL;
                size_t len = 0;
                mcd_state_encode(sc->customer, &buf, &len);
                args_take_n(argv, buf, len);
        }
}

static int check_customers(const struct mcd_store_batch *b) {
        for (size_t i = 0; i < b->n_customers; i++)
                if (!b->customers[i].customer || !b->customers[i].customer->customer_id)
                        return -EINVAL;
        return 0;
}

/* The due index's changes, sorted by zset, in ch (room for every customer);
 * returns how many. */
static size_t due_changes(const struct mcd_store_batch *b, struct due_change *ch) {
        size_t n = 0;

        for (size_t i = 0; i < b->n_customers; i++)
                n += due_change_of(&b->customers[i], &ch[n]);
        if (n > 1)
                qsort(ch, n, sizeof(*ch), due_change_cmp);
        return n;
}

/* The script's keys and arguments, as described above it. */
static int build_commit(const struct mcd_store *s, const struct mcd_store_batch *b, struct args *keys,
                        struct args *argv) {
        struct due_change *ch;
        struct text t = {0};
        size_t n_ch;
        int r;

        if ((r = check_customers(b)) < 0)
                return r;
        ch = calloc(b->n_customers + 1, sizeof(*ch));
        if (!ch)
                return -ENOMEM;
        n_ch = due_changes(b, ch);
        t.cap = text_size(s, b, n_ch);
        t.buf = malloc(t.cap);
        args_keep(argv, t.buf);
        args_take(keys, store_key(s, "meta"));
        args_addf(argv, "%zu", b->n_partitions);
        args_addf(argv, "%zu", count_groups(ch, n_ch));
        args_addf(argv, "%zu", b->n_customers);
        for (size_t i = 0; i < b->n_partitions; i++) {
                add_partition_keys(keys, s, &b->partitions[i]);
                add_partition_argv(argv, &b->partitions[i]);
        }
        for (size_t i = 0; i < n_ch && argv->err == 0;)
                i += add_due_group(s, keys, argv, &t, &ch[i], n_ch - i);
        for (size_t i = 0; i < b->n_customers && argv->err == 0; i++)
                add_state(s, argv, &t, &b->customers[i]);
        free(ch);
        return keys->err < 0 ? keys->err : argv->err;
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

/* Reads the load's reply (the first of the pipeline) into out: 0, the
 * load's error (an error reply leaves the connection usable for the
 * commit's reply), or a connection error (the connection is gone). */
static int read_load(struct mcd_store *s, const char *const *ids, size_t n, struct mcd_customer *out) {
        redisReply *reply = NULL;
        int r = store_read_reply(s, &reply);

        if (r < 0)
                return r;
        if (reply->type == REDIS_REPLY_ERROR) {
                r = store_reply_error(s, reply);
                freeReplyObject(reply);
                return r;
        }
        return load_reply(s, reply, ids, n, out);
}

/* Reads the commit's reply; a NOSCRIPT (Redis restarted or flushed its
 * scripts) sends the script itself. */
static int read_commit(struct mcd_store *s, const struct args *keys, const struct args *argv) {
        redisReply *reply = NULL;
        int r = s->ctx ? store_read_reply(s, &reply) : -ECONNRESET;

        if (r == 0 && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
                freeReplyObject(reply);
                reply = NULL;
                r = eval_commit(s, false, keys, argv, &reply);
        }
        if (r == 0)
                r = commit_result(s, reply);
        if (reply)
                freeReplyObject(reply);
        return r;
}

/* The next batch's load and this batch's commit in one pipeline, the load
 * first.  The load names no customer the commit writes, so it reads the
 * same before the commit as after it.  Redis writes a client's replies once
 * it has run the commands it has read whole; a commit of more than one
 * socket read (any commit worth overlapping) is still arriving when the
 * load has run, so the load's reply comes back while the script has yet to
 * run, and while_running applies the next batch meanwhile.  A small commit
 * may be answered with the load: the overlap is lost, nothing else. */
int mcd_store_load_and_commit(struct mcd_store *s, const struct mcd_store_batch *b, const char *const *ids,
                              size_t n, struct mcd_customer *out, int *load_r) {
        struct args keys = {0}, argv = {0}, cmds[2] = {{0}};
        int r;

        *load_r = -ECANCELED;
        r = build_commit(s, b, &keys, &argv);
        if (r == 0) {
                if (n > 0)
                        load_args(s, ids, n, &cmds[0]);
                eval_args(s, true, &keys, &argv, &cmds[1]);
                r = cmds[0].err < 0 ? cmds[0].err : cmds[1].err;
        }
        if (r == 0)
                r = store_connect(s);
        for (int i = n > 0 ? 0 : 1; i < 2 && r == 0; i++)
                r = store_append_argv(s, (int)cmds[i].n, cmds[i].v, cmds[i].len);
        if (r == 0 && (r = store_flush(s)) == 0) {
                *load_r = n > 0 ? read_load(s, ids, n, out) : 0;
                if (b->while_running)
                        b->while_running(b->while_running_ctx, *load_r);
                r = read_commit(s, &keys, &argv);
        }
        args_free(&cmds[0]);
        args_free(&cmds[1]);
        args_free(&keys);
        args_free(&argv);
        return r;
}

int mcd_store_commit(struct mcd_store *s, const struct mcd_store_batch *b) {
        int load_r;

        return mcd_store_load_and_commit(s, b, NULL, 0, NULL, &load_r);
}
