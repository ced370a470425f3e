/* commit_bench.c -- what one batch's commit costs Redis, by the way it is
 * sent (issue 12: "a commit that costs Redis about what its writes cost").
 *
 *   commit_bench [-r REPS] [-c COMMITS] [-n CUSTOMERS] [-s STATE_BYTES] [-f FRAMES] [-S STRIDE] [-V VARIANT]
 *
 * Starts a redis-server of its own on a free loopback port (AOF on,
 * appendfsync everysec, as tests/bench/run.sh runs it; automatic AOF
 * rewrites off, so that no variant pays for another's rewrite), claims 4
 * partitions, then commits batches of CUSTOMERS (2,000) customers of
 * STATE_BYTES (300) bytes of state, half of them with a due time that
 * changed, and FRAMES (100) outbox frames of 200 bytes per partition (the
 * previous commit's trimmed), over a pool of 100,000 customers (a batch's
 * customers STRIDE (1) apart in the pool: with a large stride they are
 * scattered over it, as the benchmark's random customers are), in each of:
 *
 *   old     the commit script as it was (copied below): every customer's
 *           keys in KEYS, a Lua table built per customer for MSET, a ZADD
 *           or ZREM call per customer;
 *   packed  a script taking packed arguments: the states as one MSET-ready
 *           range of ARGV (key, state, ...) passed straight to MSET, the
 *           due times as per-partition ZADD / ZREM ranges of the customers
 *           whose due time changed;
 *   daemon  mcd_store_commit of libmcd (the daemon's own commit, with its
 *           own argument building: MULTI / EXEC behind the WATCH its last
 *           commit left, one round trip; store_fence.c), on the same batch;
 *   watch2  WATCH of meta, gen:<p>, off:<p> with EXISTS / MGET / HGET
 *           checks (one round trip), then MULTI, the writes as plain
 *           commands, EXEC (a second round trip);
 *   watch1  as watch2 in one round trip: WATCH, a small script that checks
 *           and on a failed check writes a watched key of its own (so that
 *           EXEC aborts), MULTI, the writes, EXEC, all pipelined.
 *
 * REPS (5) repetitions, each running every variant (or the one -V names)
 * COMMITS (40) times in turn, after one unmeasured repetition.  Per variant and repetition it
 * prints Redis CPU per commit (used_cpu_user + used_cpu_sys deltas of INFO,
 * the main thread's and the process's), the wall time per commit (argument
 * building, sending and replies) and round trips per commit; then each
 * variant's median, and (last repetition) the usec INFO commandstats gives
 * each command per commit.  The variants are checked to leave the same data: every commit
 * must succeed, and a fenced commit (a generation moved on) must write
 * nothing, in each variant. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis.h>

#include "daemon/store.h"
#include "handlers/model.h"
#include "handlers/rules.h"
#include "tests/redis_server.h"

#define NP 4                    /* partitions per commit */
#define POOL 100000             /* customers, committed in turn */
#define FRAME_BYTES 200
#define CHUNK 1000              /* arguments per MSET / RPUSH / ZADD call in a script */
#define ARENA_BYTES (64u << 20)
#define MAX_ARGS 200000
#define PREFIX "b:"

/* ------------------------------------------------------------ scripts -- */

/* The commit script before issue 12 (daemon/store_commit.c at 87c34d9). */
static const char OLD_SCRIPT[] =
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

/* The packed script:
 *   KEYS: meta, then per partition gen:<p>, off:<p>, outbox:<p>, due:<p>
 *   ARGV: np, nc, then per partition: partition, generation, seq,
 *         set_offsets, rel, sub, marks, trim, n_frames, n_zadd, n_zrem,
 *         frames, (score, id) x n_zadd, id x n_zrem; then (key, state) x nc. */
static const char PACKED_SCRIPT[] =
        "local np, nc = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
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
        "local a, k = 3, 2\n"
        "for i = 1, np do\n"
        "  if redis.call('GET', KEYS[k]) ~= ARGV[a + 1] then\n"
        "    return redis.error_reply('STALE partition ' .. ARGV[a])\n"
        "  end\n"
        "  if ARGV[a + 2] ~= '0' and (redis.call('HGET', KEYS[k + 1], 'seq') or '0') ~= ARGV[a + 2] then\n"
        "    return redis.error_reply('ROLLBACK partition ' .. ARGV[a])\n"
        "  end\n"
        "  a = a + 11 + tonumber(ARGV[a + 8]) + 2 * tonumber(ARGV[a + 9]) + tonumber(ARGV[a + 10])\n"
        "  k = k + 4\n"
        "end\n"
        "if a + 2 * nc - 1 ~= #ARGV then return redis.error_reply('ERR commit arguments do not add up') end\n"
        "local sets = a\n"
        "a, k = 3, 2\n"
        "for i = 1, np do\n"
        "  redis.call('HINCRBY', KEYS[k + 1], 'seq', 1)\n"
        "  if ARGV[a + 3] == '1' then\n"
        "    redis.call('HSET', KEYS[k + 1], 'rel', ARGV[a + 4], 'sub', ARGV[a + 5])\n"
        "  end\n"
        "  if ARGV[a + 6] ~= '' then\n"
        "    redis.call('HSET', KEYS[k + 1], 'marks', ARGV[a + 6])\n"
        "  end\n"
        "  local trim = tonumber(ARGV[a + 7])\n"
        "  local nf, nz, nr = tonumber(ARGV[a + 8]), tonumber(ARGV[a + 9]), tonumber(ARGV[a + 10])\n"
        "  if trim > 0 then redis.call('LTRIM', KEYS[k + 2], trim, -1) end\n"
        "  local f = a + 11\n"
        "  range('RPUSH', KEYS[k + 2], f, f + nf - 1)\n"
        "  range('ZADD', KEYS[k + 3], f + nf, f + nf + 2 * nz - 1)\n"
        "  range('ZREM', KEYS[k + 3], f + nf + 2 * nz, f + nf + 2 * nz + nr - 1)\n"
        "  a = f + nf + 2 * nz + nr\n"
        "  k = k + 4\n"
        "end\n"
        "range('MSET', nil, sets, sets + 2 * nc - 1)\n"
        "return redis.status_reply('OK')\n";

/* watch1's check: KEYS meta, fence, then gen:<p>, off:<p> per partition;
 * ARGV np, then generation, seq per partition.  A failed check writes the
 * fence key, which the connection WATCHes: its EXEC is refused. */
static const char CHECK_SCRIPT[] =
        "local np = tonumber(ARGV[1])\n"
        "local function fail(why) redis.call('INCR', KEYS[2]) return redis.error_reply(why) end\n"
        "if redis.call('EXISTS', KEYS[1]) == 0 then return fail('NODATA meta is missing') end\n"
        "for i = 1, np do\n"
        "  if redis.call('GET', KEYS[1 + 2 * i]) ~= ARGV[2 * i] then return fail('STALE partition') end\n"
        "  local seq = ARGV[2 * i + 1]\n"
        "  if seq ~= '0' and (redis.call('HGET', KEYS[2 + 2 * i], 'seq') or '0') ~= seq then\n"
        "    return fail('ROLLBACK partition')\n"
        "  end\n"
        "end\n"
        "return redis.status_reply('OK')\n";

/* ------------------------------------------------------------- batch -- */

struct bench {
        redisContext *rc;
        struct mcd_store *store;     /* the daemon's commit */
        int port;
        size_t nc;                   /* customers per commit */
        size_t state_bytes;
        size_t n_frames;             /* per partition */
        char sha_old[41], sha_packed[41], sha_check[41];
        int64_t gen[NP];             /* the partitions' generations */
        int64_t seq[NP];             /* their commit counters */
        size_t trim[NP];             /* frames to trim from the outbox's head */
        uint64_t round_trips;        /* of the variant running */
        /* the batch */
        size_t first;                /* its first customer in the pool */
        size_t stride;               /* pool indices between its customers (coprime with POOL) */
        unsigned commit_no;
        char *states;                /* nc states of state_bytes */
        char *frames;                /* n_frames frames of FRAME_BYTES */
        /* arguments of one command, pointing into the arena */
        char *arena;
        size_t used;
        const char **argv;
        size_t *lens;
        size_t argc;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        fputs("commit_bench: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        exit(1);
}

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Customer j of the batch: its pool index, partition and due time. */
static size_t cust(const struct bench *b, size_t j) {
        return (b->first + j * b->stride) % POOL;
}

static int part_of(size_t pool_index) {
        return (int)(pool_index % NP);
}

/* Half of the customers (even pool index) have a due time, new each commit. */
static bool has_due(size_t pool_index) {
        return pool_index % 2 == 0;
}

static int64_t due_of(const struct bench *b, size_t pool_index) {
        return 1700000000000 + (int64_t)b->commit_no * 1000 + (int64_t)pool_index;
}

/* ------------------------------------------------------- argument vector -- */

static void av_reset(struct bench *b) {
        b->argc = 0;
        b->used = 0;
}

static void av_add(struct bench *b, const void *p, size_t len) {
        if (b->argc == MAX_ARGS)
                die("more than %d arguments", MAX_ARGS);
        b->argv[b->argc] = p;
        b->lens[b->argc++] = len;
}

static void av_str(struct bench *b, const char *s) {
        av_add(b, s, strlen(s));
}

/* Adds a formatted argument, kept in the arena. */
static void av_fmt(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void av_fmt(struct bench *b, const char *fmt, ...) {
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(b->arena + b->used, ARENA_BYTES - b->used, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= ARENA_BYTES - b->used)
                die("arena full");
        av_add(b, b->arena + b->used, (size_t)n);
        b->used += (size_t)n + 1;
}

/* Sends the command in the vector (appended: read later). */
static void av_append(struct bench *b) {
        if (redisAppendCommandArgv(b->rc, (int)b->argc, b->argv, b->lens) != REDIS_OK)
                die("append: %s", b->rc->errstr);
}

static redisReply *get_reply(struct bench *b) {
        void *r = NULL;

        if (redisGetReply(b->rc, &r) != REDIS_OK || !r)
                die("reply: %s", b->rc->errstr);
        return r;
}

/* Reads one reply, which must not be an error; frees it. */
static void expect_ok(struct bench *b, const char *what) {
        redisReply *r = get_reply(b);

        if (r->type == REDIS_REPLY_ERROR)
                die("%s: %s", what, r->str);
        freeReplyObject(r);
}

/* One command, one reply (freed); an error reply is fatal. */
static void command(struct bench *b, const char *what) {
        av_append(b);
        b->round_trips++;
        expect_ok(b, what);
}

/* --------------------------------------------------------- the variants -- */

static void key_arg(struct bench *b, const char *kind, int p) {
        av_fmt(b, PREFIX "%s:%d", kind, p);
}

static void old_partition_argv(struct bench *b, int p) {
        av_fmt(b, "%d", p);
        av_fmt(b, "%" PRId64, b->gen[p]);
        av_fmt(b, "%" PRId64, b->seq[p]);
        av_str(b, "1");
        av_fmt(b, "%u", b->commit_no);
        av_fmt(b, "%u", b->commit_no);
        av_str(b, "");
        av_fmt(b, "%zu", b->trim[p]);
}

static void frames_argv(struct bench *b) {
        for (size_t i = 0; i < b->n_frames; i++)
                av_add(b, b->frames + i * FRAME_BYTES, FRAME_BYTES);
}

/* EVALSHA of the old script: numkeys and KEYS, then ARGV, as before. */
static void build_old(struct bench *b) {
        size_t nkeys = 1 + 3 * NP + 2 * b->nc, keys_at;

        av_str(b, "EVALSHA");
        av_str(b, b->sha_old);
        av_fmt(b, "%zu", nkeys);
        keys_at = b->argc;
        av_str(b, PREFIX "meta");
        for (int p = 0; p < NP; p++) {
                key_arg(b, "gen", p);
                key_arg(b, "off", p);
                key_arg(b, "outbox", p);
        }
        for (size_t j = 0; j < b->nc; j++) {
                av_fmt(b, PREFIX "c:cust-%zu", cust(b, j));
                key_arg(b, "due", part_of(cust(b, j)));
        }
        if (b->argc - keys_at != nkeys)
                die("old: key count");
        av_fmt(b, "%d", NP);
        av_fmt(b, "%zu", b->nc);
        for (int p = 0; p < NP; p++) {
                old_partition_argv(b, p);
                av_fmt(b, "%zu", b->n_frames);
                frames_argv(b);
        }
        for (size_t j = 0; j < b->nc; j++) {
                size_t c = cust(b, j);
                av_fmt(b, "cust-%zu", c);
                av_add(b, b->states + j * b->state_bytes, b->state_bytes);
                if (has_due(c))
                        av_fmt(b, "%" PRId64, due_of(b, c));
                else
                        av_str(b, "-");
        }
}

/* The customers of partition p whose due time changed: (score, id) pairs. */
static size_t zadd_argv(struct bench *b, int p) {
        size_t n = 0;

        for (size_t j = 0; j < b->nc; j++) {
                size_t c = cust(b, j);
                if (part_of(c) != p || !has_due(c))
                        continue;
                av_fmt(b, "%" PRId64, due_of(b, c));
                av_fmt(b, "cust-%zu", c);
                n++;
        }
        return n;
}

static size_t zadd_count(const struct bench *b, int p) {
        size_t n = 0;

        for (size_t j = 0; j < b->nc; j++)
                n += part_of(cust(b, j)) == p && has_due(cust(b, j));
        return n;
}

static void packed_partition(struct bench *b, int p) {
        old_partition_argv(b, p);
        av_fmt(b, "%zu", b->n_frames);
        av_fmt(b, "%zu", zadd_count(b, p));
        av_str(b, "0");         /* n_zrem: none lost its due time */
        frames_argv(b);
        zadd_argv(b, p);
}

static void build_packed(struct bench *b) {
        av_str(b, "EVALSHA");
        av_str(b, b->sha_packed);
        av_fmt(b, "%d", 1 + 4 * NP);
        av_str(b, PREFIX "meta");
        for (int p = 0; p < NP; p++) {
                key_arg(b, "gen", p);
                key_arg(b, "off", p);
                key_arg(b, "outbox", p);
                key_arg(b, "due", p);
        }
        av_fmt(b, "%d", NP);
        av_fmt(b, "%zu", b->nc);
        for (int p = 0; p < NP; p++)
                packed_partition(b, p);
        for (size_t j = 0; j < b->nc; j++) {
                av_fmt(b, PREFIX "c:cust-%zu", cust(b, j));
                av_add(b, b->states + j * b->state_bytes, b->state_bytes);
        }
}

/* The writes as plain commands, each appended (inside MULTI): returns how
 * many. */
static size_t append_writes(struct bench *b) {
        size_t n = 0;

        for (int p = 0; p < NP; p++) {
                char off[32], outbox[32], due[32];
                snprintf(off, sizeof(off), PREFIX "off:%d", p);
                snprintf(outbox, sizeof(outbox), PREFIX "outbox:%d", p);
                snprintf(due, sizeof(due), PREFIX "due:%d", p);
                av_reset(b);
                av_str(b, "HSET"), av_str(b, off), av_str(b, "rel"), av_fmt(b, "%u", b->commit_no);
                av_str(b, "sub"), av_fmt(b, "%u", b->commit_no), av_append(b), n++;
                av_reset(b);
                av_str(b, "HINCRBY"), av_str(b, off), av_str(b, "seq"), av_str(b, "1"), av_append(b), n++;
                if (b->trim[p] > 0) {
                        av_reset(b);
                        av_str(b, "LTRIM"), av_str(b, outbox), av_fmt(b, "%zu", b->trim[p]), av_str(b, "-1");
                        av_append(b), n++;
                }
                av_reset(b);
                av_str(b, "RPUSH"), av_str(b, outbox), frames_argv(b), av_append(b), n++;
                av_reset(b);
                av_str(b, "ZADD"), av_str(b, due);
                if (zadd_argv(b, p) > 0)
                        av_append(b), n++;
        }
        av_reset(b);
        av_str(b, "MSET");
        for (size_t j = 0; j < b->nc; j++) {
                av_fmt(b, PREFIX "c:cust-%zu", cust(b, j));
                av_add(b, b->states + j * b->state_bytes, b->state_bytes);
        }
        av_append(b);
        return n + 1;
}

static void append_watch(struct bench *b, bool fence) {
        av_reset(b);
        av_str(b, "WATCH");
        av_str(b, PREFIX "meta");
        if (fence)
                av_str(b, PREFIX "fence");
        for (int p = 0; p < NP; p++) {
                key_arg(b, "gen", p);
                key_arg(b, "off", p);
        }
        av_append(b);
}

/* The reply of EXEC: an array of n replies (none an error), or nil when a
 * watched key changed.  1 when it ran, 0 when refused. */
static int exec_reply(struct bench *b, size_t n) {
        redisReply *r = get_reply(b);
        int ran = r->type == REDIS_REPLY_ARRAY;

        if (ran && r->elements != n)
                die("EXEC: %zu replies for %zu commands", r->elements, n);
        for (size_t i = 0; ran && i < n; i++)
                if (r->element[i]->type == REDIS_REPLY_ERROR)
                        die("EXEC: %s", r->element[i]->str);
        if (!ran && r->type != REDIS_REPLY_NIL)
                die("EXEC: reply type %d", r->type);
        freeReplyObject(r);
        return ran;
}

/* MULTI, the writes, EXEC appended; the MULTI and QUEUED replies read.
 * Returns the number of writes. */
static size_t append_transaction(struct bench *b) {
        size_t n;

        av_reset(b);
        av_str(b, "MULTI");
        av_append(b);
        n = append_writes(b);
        av_reset(b);
        av_str(b, "EXEC");
        av_append(b);
        return n;
}

static void read_queued(struct bench *b, size_t n) {
        for (size_t i = 0; i < n + 1; i++)          /* MULTI's OK, then QUEUED each */
                expect_ok(b, "MULTI");
}

/* The checks of watch2: EXISTS meta, MGET gens, HGET seq each. */
static bool watch2_checks(struct bench *b) {
        redisReply *r;
        bool good;

        append_watch(b, false);
        av_reset(b);
        av_str(b, "EXISTS"), av_str(b, PREFIX "meta"), av_append(b);
        av_reset(b);
        av_str(b, "MGET");
        for (int p = 0; p < NP; p++)
                key_arg(b, "gen", p);
        av_append(b);
        for (int p = 0; p < NP; p++) {
                av_reset(b);
                av_str(b, "HGET"), key_arg(b, "off", p), av_str(b, "seq"), av_append(b);
        }
        b->round_trips++;
        expect_ok(b, "WATCH");
        r = get_reply(b);
        good = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        freeReplyObject(r);
        r = get_reply(b);
        for (int p = 0; p < NP; p++)
                good = good && r->element[p]->type == REDIS_REPLY_STRING && strtoll(r->element[p]->str, NULL, 10) == b->gen[p];
        freeReplyObject(r);
        for (int p = 0; p < NP; p++) {
                r = get_reply(b);
                good = good && r->type == REDIS_REPLY_STRING && strtoll(r->str, NULL, 10) == b->seq[p];
                freeReplyObject(r);
        }
        return good;
}

/* watch2: the checks, then (a second round trip) the transaction; a failed
 * check sends UNWATCH instead.  1 committed, 0 refused. */
static int commit_watch2(struct bench *b) {
        size_t n;

        if (!watch2_checks(b)) {
                av_reset(b);
                av_str(b, "UNWATCH");
                command(b, "UNWATCH");
                return 0;
        }
        n = append_transaction(b);
        b->round_trips++;
        read_queued(b, n);
        return exec_reply(b, n);
}

/* watch1: WATCH, the check script, the transaction, in one pipeline. */
static int commit_watch1(struct bench *b) {
        redisReply *r;
        size_t n;
        int ran;
        bool checked;

        append_watch(b, true);
        av_reset(b);
        av_str(b, "EVALSHA"), av_str(b, b->sha_check), av_fmt(b, "%d", 2 + 2 * NP);
        av_str(b, PREFIX "meta"), av_str(b, PREFIX "fence");
        for (int p = 0; p < NP; p++)
                key_arg(b, "gen", p), key_arg(b, "off", p);
        av_fmt(b, "%d", NP);
        for (int p = 0; p < NP; p++)
                av_fmt(b, "%" PRId64, b->gen[p]), av_fmt(b, "%" PRId64, b->seq[p]);
        av_append(b);
        n = append_transaction(b);
        b->round_trips++;
        expect_ok(b, "WATCH");
        r = get_reply(b);
        checked = r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
        read_queued(b, n);
        ran = exec_reply(b, n);
        if (ran != checked)
                die("watch1: the check said %d and EXEC %d", checked, ran);
        return ran;
}

/* One EVALSHA of the vector; 1 committed, 0 fenced (STALE). */
static int eval_vector(struct bench *b) {
        redisReply *r;
        int ok;

        av_append(b);
        b->round_trips++;
        r = get_reply(b);
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "STALE", 5) != 0)
                die("commit: %s", r->str);
        ok = r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
        return ok;
}

/* ------------------------------------------------------ daemon's commit -- */

struct daemon_batch {
        struct mcd_customer *customers;
        struct mcd_subscription *subs;
        struct mcd_store_customer *sc;
        struct mcd_store_partition sp[NP];
        const void **frame_ptrs;
        size_t *frame_lens;
};

/* Customer j as the daemon would pass it: its id, a blocked switch due at
 * its due time when it has one, its state already encoded. */
static void daemon_customer(struct bench *b, struct daemon_batch *d, size_t j) {
        size_t c = cust(b, j);
        struct mcd_customer *mc = &d->customers[j];

        free(mc->customer_id);
        memset(mc, 0, sizeof(*mc));
        if (asprintf(&mc->customer_id, "cust-%zu", c) < 0)
                die("out of memory");
        if (has_due(c)) {
                d->subs[j] = (struct mcd_subscription){.subscription_id = "s", .state = MCD_SS_SWITCH_BLOCKED,
                                                       .has_term_end = true, .term_end = due_of(b, c)};
                mc->subs = &d->subs[j];
                mc->n_subs = 1;
        }
        d->sc[j] = (struct mcd_store_customer){.customer = mc, .partition = part_of(c),
                                               .state = b->states + j * b->state_bytes,
                                               .state_len = b->state_bytes};
        d->sc[j].due_known = true;      /* the due time changed: one commit earlier */
        d->sc[j].had_due = has_due(c);
        d->sc[j].due_before = due_of(b, c) - 1000;
}

static int commit_daemon(struct bench *b, struct daemon_batch *d) {
        struct mcd_store_batch sb = {.customers = d->sc, .n_customers = b->nc, .partitions = d->sp,
                                     .n_partitions = NP};
        uint64_t rt = mcd_store_round_trips(b->store);
        int r;

        for (size_t j = 0; j < b->nc; j++)
                daemon_customer(b, d, j);
        for (int p = 0; p < NP; p++)
                d->sp[p] = (struct mcd_store_partition){
                        .partition = p, .generation = b->gen[p], .seq = b->seq[p], .set_offsets = true,
                        .offsets = {b->commit_no, b->commit_no}, .frames = d->frame_ptrs,
                        .frame_lens = d->frame_lens, .n_frames = b->n_frames, .trim = b->trim[p]};
        r = mcd_store_commit(b->store, &sb);
        b->round_trips += mcd_store_round_trips(b->store) - rt;
        if (r < 0 && r != -ESTALE)
                die("mcd_store_commit: %s", strerror(-r));
        return r == 0;
}

static void daemon_batch_init(struct bench *b, struct daemon_batch *d) {
        d->customers = calloc(b->nc, sizeof(*d->customers));
        d->subs = calloc(b->nc, sizeof(*d->subs));
        d->sc = calloc(b->nc, sizeof(*d->sc));
        d->frame_ptrs = calloc(b->n_frames + 1, sizeof(*d->frame_ptrs));
        d->frame_lens = calloc(b->n_frames + 1, sizeof(*d->frame_lens));
        if (!d->customers || !d->subs || !d->sc || !d->frame_ptrs || !d->frame_lens)
                die("out of memory");
        for (size_t i = 0; i < b->n_frames; i++) {
                d->frame_ptrs[i] = b->frames + i * FRAME_BYTES;
                d->frame_lens[i] = FRAME_BYTES;
        }
}

/* ----------------------------------------------------------- the runs -- */

enum variant { V_OLD, V_PACKED, V_DAEMON, V_WATCH2, V_WATCH1, V__COUNT };
static const char *const variant_names[V__COUNT] = {"old", "packed", "daemon", "watch2", "watch1"};

/* One commit of the current batch in variant v: 1 committed, 0 fenced. */
static int commit_once(struct bench *b, struct daemon_batch *d, enum variant v) {
        av_reset(b);
        switch (v) {
        case V_OLD:
                build_old(b);
                return eval_vector(b);
        case V_PACKED:
                build_packed(b);
                return eval_vector(b);
        case V_DAEMON:
                return commit_daemon(b, d);
        case V_WATCH2:
                return commit_watch2(b);
        case V_WATCH1:
        default:
                return commit_watch1(b);
        }
}

/* The next batch: the next customers of the pool, their states changed. */
static void next_batch(struct bench *b) {
        b->commit_no++;
        b->first = (b->first + b->nc) % POOL;
        for (size_t j = 0; j < b->nc; j++)
                memcpy(b->states + j * b->state_bytes, &b->commit_no, sizeof(b->commit_no));
}

/* A committed batch moves the counters on and trims its frames next time. */
static void committed(struct bench *b) {
        for (int p = 0; p < NP; p++) {
                b->seq[p]++;
                b->trim[p] = b->n_frames;
        }
}

struct cpu {
        double main_s, all_s;        /* main thread's and process's user + sys */
};

static double info_field(const char *info, const char *name) {
        const char *p = strstr(info, name);

        if (!p)
                die("INFO has no %s", name);
        return strtod(p + strlen(name) + 1, NULL);
}

/* Prints INFO commandstats' usec of each command, per commit ("name=us"),
 * those over 1% of the whole; a script's or EXEC's usec includes the
 * commands it ran (which are counted again under their own names). */
static void print_commandstats(const char *info, unsigned commits) {
        double total = 0;

        for (const char *p = strstr(info, "cmdstat_"); p; p = strstr(p + 1, "cmdstat_")) {
                const char *u = strstr(p, "usec=");
                total += u ? strtod(u + 5, NULL) : 0;
        }
        for (const char *p = strstr(info, "cmdstat_"); p; p = strstr(p + 1, "cmdstat_")) {
                const char *colon = strchr(p, ':'), *u = strstr(p, "usec=");
                double us = u ? strtod(u + 5, NULL) : 0;
                if (colon && us > total / 100)
                        printf(" %.*s=%.0f", (int)(colon - p - 8), p + 8, us / commits);
        }
}

/* Redis's CPU so far, and resets commandstats (CONFIG RESETSTAT) after
 * printing them for `commits` commits if that is not 0. */
static struct cpu redis_cpu(struct bench *b, unsigned commits) {
        redisReply *r = redisCommand(b->rc, "INFO everything");
        struct cpu c;

        if (!r || r->type != REDIS_REPLY_STRING)
                die("INFO");
        c.main_s = info_field(r->str, "used_cpu_user_main_thread") + info_field(r->str, "used_cpu_sys_main_thread");
        c.all_s = info_field(r->str, "used_cpu_user") + info_field(r->str, "used_cpu_sys");
        if (commits > 0)
                print_commandstats(r->str, commits);
        freeReplyObject(r);
        r = redisCommand(b->rc, "CONFIG RESETSTAT");
        if (!r)
                die("CONFIG RESETSTAT");
        freeReplyObject(r);
        return c;
}

struct result {
        double main_us, all_us, wall_us, rt;   /* per commit */
};

/* Runs `commits` commits of variant v; with `stats`, prints the commands'
 * usec (commandstats) as a line of their own. */
static struct result run_variant(struct bench *b, struct daemon_batch *d, enum variant v, unsigned commits,
                                 bool stats) {
        struct cpu c0 = redis_cpu(b, 0), c1;
        double t0 = now_s(), wall;

        b->round_trips = 0;
        for (unsigned i = 0; i < commits; i++) {
                next_batch(b);
                if (commit_once(b, d, v) != 1)
                        die("%s: a commit was refused", variant_names[v]);
                committed(b);
        }
        wall = now_s() - t0;
        if (stats)
                printf("%-8s usec per commit by command:", variant_names[v]);
        c1 = redis_cpu(b, stats ? commits : 0);
        if (stats)
                printf("\n");
        return (struct result){.main_us = (c1.main_s - c0.main_s) * 1e6 / commits,
                               .all_us = (c1.all_s - c0.all_s) * 1e6 / commits,
                               .wall_us = wall * 1e6 / commits,
                               .rt = (double)b->round_trips / commits};
}

/* ------------------------------------------------------------ set-up -- */

static void load_script(struct bench *b, const char *script, char sha[41]) {
        redisReply *r = redisCommand(b->rc, "SCRIPT LOAD %s", script);

        if (!r || r->type != REDIS_REPLY_STRING || r->len != 40)
                die("SCRIPT LOAD: %s", r && r->type == REDIS_REPLY_ERROR ? r->str : "no SHA");
        memcpy(sha, r->str, 41);
        freeReplyObject(r);
}

static void simple(struct bench *b, const char *fmt, ...) {
        va_list ap;
        redisReply *r;

        va_start(ap, fmt);
        r = redisvCommand(b->rc, fmt, ap);
        va_end(ap);
        if (!r || r->type == REDIS_REPLY_ERROR)
                die("%s: %s", fmt, r ? r->str : b->rc->errstr);
        freeReplyObject(r);
}

static void setup_redis(struct bench *b) {
        struct timeval tv = {.tv_sec = 10};
        struct mcd_store_options o = {.host = "127.0.0.1", .port = b->port, .prefix = PREFIX, .timeout_ms = 10000};

        b->rc = redisConnectWithTimeout("127.0.0.1", b->port, tv);
        if (!b->rc || b->rc->err)
                die("cannot connect to redis-server on port %d", b->port);
        redisSetTimeout(b->rc, tv);
        simple(b, "CONFIG SET auto-aof-rewrite-percentage 0");
        load_script(b, OLD_SCRIPT, b->sha_old);
        load_script(b, PACKED_SCRIPT, b->sha_packed);
        load_script(b, CHECK_SCRIPT, b->sha_check);
        simple(b, "HSET " PREFIX "meta created 1");
        for (int p = 0; p < NP; p++) {
                b->gen[p] = 1;
                simple(b, "SET " PREFIX "gen:%d 1", p);
        }
        if (mcd_store_new(&o, &b->store) < 0)
                die("mcd_store_new");
}

static void setup_data(struct bench *b) {
        b->states = malloc(b->nc * b->state_bytes);
        b->frames = malloc(b->n_frames * FRAME_BYTES + 1);
        b->arena = malloc(ARENA_BYTES);
        b->argv = calloc(MAX_ARGS, sizeof(*b->argv));
        b->lens = calloc(MAX_ARGS, sizeof(*b->lens));
        if (!b->states || !b->frames || !b->arena || !b->argv || !b->lens)
                die("out of memory");
        for (size_t i = 0; i < b->nc * b->state_bytes; i++)
                b->states[i] = (char)(rand() & 0xff);
        for (size_t i = 0; i < b->n_frames * FRAME_BYTES; i++)
                b->frames[i] = (char)(rand() & 0xff);
}

/* ------------------------------------------------------------ fencing -- */

static int64_t get_int(struct bench *b, const char *fmt, ...) {
        va_list ap;
        redisReply *r;
        int64_t v;

        va_start(ap, fmt);
        r = redisvCommand(b->rc, fmt, ap);
        va_end(ap);
        if (!r)
                die("%s", fmt);
        v = r->type == REDIS_REPLY_INTEGER ? r->integer : r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
        freeReplyObject(r);
        return v;
}

/* Each variant, fenced (partition 2's generation moved on), must be
 * refused and write nothing: the counters, outbox, dues and a customer
 * stay as they were. */
static void check_fencing(struct bench *b, struct daemon_batch *d) {
        simple(b, "INCR " PREFIX "gen:2");
        for (int v = 0; v < V__COUNT; v++) {
                int64_t seq0 = get_int(b, "HGET " PREFIX "off:0 seq"), len0 = get_int(b, "LLEN " PREFIX "outbox:0");
                int64_t due0 = get_int(b, "ZCARD " PREFIX "due:0"), dbsize = get_int(b, "DBSIZE");
                next_batch(b);
                if (commit_once(b, d, (enum variant)v) != 0)
                        die("%s: a fenced commit went through", variant_names[v]);
                if (v == V_WATCH1)      /* the fence key its check wrote */
                        simple(b, "DEL " PREFIX "fence");
                if (get_int(b, "HGET " PREFIX "off:0 seq") != seq0 || get_int(b, "LLEN " PREFIX "outbox:0") != len0 ||
                    get_int(b, "ZCARD " PREFIX "due:0") != due0 || get_int(b, "DBSIZE") != dbsize)
                        die("%s: a fenced commit wrote something", variant_names[v]);
        }
        simple(b, "DECR " PREFIX "gen:2");
        printf("fencing: every variant refused a fenced commit and wrote nothing\n");
}

/* --------------------------------------------------------------- main -- */

static int cmp_double(const void *x, const void *y) {
        double a = *(const double *)x, c = *(const double *)y;
        return (a > c) - (a < c);
}

static double median(double *v, unsigned n) {
        qsort(v, n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void print_result(const char *label, const struct result *r) {
        printf("%-8s %9.0f %9.0f %9.0f %5.1f\n", label, r->main_us, r->all_us, r->wall_us, r->rt);
}

static void print_medians(struct result res[][V__COUNT], unsigned reps) {
        double *col = calloc(reps, sizeof(*col));

        if (!col)
                die("out of memory");
        printf("median over %u repetitions:\n", reps);
        for (int v = 0; v < V__COUNT; v++) {
                if (res[0][v].wall_us == 0)
                        continue;       /* not run (-V) */
                static const size_t fields[] = {
                        offsetof(struct result, main_us), offsetof(struct result, all_us),
                        offsetof(struct result, wall_us),
                        offsetof(struct result, rt)};
                struct result m;
                for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
                        for (unsigned i = 0; i < reps; i++)
                                memcpy(&col[i], (const char *)&res[i][v] + fields[f], sizeof(double));
                        double med = median(col, reps);
                        memcpy((char *)&m + fields[f], &med, sizeof(double));
                }
                print_result(variant_names[v], &m);
        }
        free(col);
}

static void daemon_batch_free(struct bench *b, struct daemon_batch *d) {
        for (size_t j = 0; d->customers && j < b->nc; j++)
                free(d->customers[j].customer_id);
        free(d->customers);
        free(d->subs);
        free(d->sc);
        free(d->frame_ptrs);
        free(d->frame_lens);
}

static void bench_free(struct bench *b) {
        mcd_store_free(b->store);
        if (b->rc)
                redisFree(b->rc);
        free(b->states);
        free(b->frames);
        free(b->arena);
        free(b->argv);
        free(b->lens);
}

static void usage(void) __attribute__((noreturn));

static void usage(void) {
        fputs("usage: commit_bench [-r REPS] [-c COMMITS] [-n CUSTOMERS] [-s STATE_BYTES] [-f FRAMES] [-S STRIDE] [-V VARIANT]\n",
              stderr);
        exit(2);
}

/* The variant named, or usage. */
static int variant_of(const char *name) {
        for (int v = 0; v < V__COUNT; v++)
                if (strcmp(name, variant_names[v]) == 0)
                        return v;
        usage();
}

static void parse_args(int argc, char **argv, struct bench *b, unsigned *reps, unsigned *commits, int *only) {
        int o;

        while ((o = getopt(argc, argv, "r:c:n:s:f:S:V:")) != -1) {
                long v = optarg && o != 'V' ? strtol(optarg, NULL, 10) : 1;
                if (v <= 0 || v > 100000)
                        usage();
                switch (o) {
                case 'V': *only = variant_of(optarg); break;
                case 'r': *reps = (unsigned)v; break;
                case 'c': *commits = (unsigned)v; break;
                case 'n': b->nc = (size_t)v; break;
                case 's': b->state_bytes = (size_t)v; break;
                case 'f': b->n_frames = (size_t)v; break;
                case 'S': b->stride = (size_t)v; break;
                default: usage();
                }
        }
        if (b->nc > 20000 || b->n_frames > 20000 || b->stride % 2 == 0 || b->stride % 5 == 0)
                usage();        /* a stride sharing a factor with POOL would repeat customers */
}

int main(int argc, char **argv) {
        struct bench b = {.nc = 2000, .state_bytes = 300, .n_frames = 100, .stride = 1};
        struct daemon_batch d = {0};
        struct srv srv = {0};
        char top[64];
        unsigned reps = 5, commits = 40;
        int only = -1;
        struct result (*res)[V__COUNT];

        parse_args(argc, argv, &b, &reps, &commits, &only);
        res = calloc(reps + 1, sizeof(*res));
        if (!res || srv_mkdtemp(top, sizeof(top), "commit_bench") < 0 || srv_start_redis(&srv, top, true, 0) < 0)
                die("cannot start redis-server");
        b.port = srv.port;
        setup_data(&b);
        setup_redis(&b);
        daemon_batch_init(&b, &d);
        printf("%zu customers of %zu bytes (half with a new due time), %d partitions of %zu frames of %d bytes; "
               "%u commits per row; AOF everysec\n",
               b.nc, b.state_bytes, NP, b.n_frames, FRAME_BYTES, commits);
        printf("%-8s %9s %9s %9s %5s   (per commit: Redis CPU main thread, all threads, us; wall us; round trips)\n",
               "variant", "cpu_main", "cpu_all", "wall_us", "rt");
        for (unsigned i = 0; i <= reps; i++)
                for (int v = 0; v < V__COUNT; v++) {
                        if (only >= 0 && v != only)
                                continue;
                        res[i][v] = run_variant(&b, &d, (enum variant)v, commits, i == reps);
                        if (i > 0)
                                print_result(variant_names[v], &res[i][v]);
                }
        print_medians(res + 1, reps);
        check_fencing(&b, &d);
        daemon_batch_free(&b, &d);
        bench_free(&b);
        free(res);
        srv_stop(&srv, SIGTERM);
        srv_rmtree(top);
        return 0;
}
