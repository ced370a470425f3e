/* store.c -- the daemon's state in Redis (hiredis 0.14, blocking context).
 *
 * The connection is made lazily by the first call that needs it and dropped
 * on any I/O or protocol error, so the next call reconnects (AUTH, SELECT,
 * with Sentinels ROLE, and SCRIPT LOAD of the commit script, in one
 * pipeline; with Sentinels, after asking them where the master is: see
 * find_node).  Every command is sent with binary-safe arguments
 * (redisCommandArgv / redisAppendCommandArgv with lengths); every reply read
 * counts as one round trip.
 *
 * The commit is one EVALSHA of COMMIT_SCRIPT below; its KEYS and ARGV layout
 * is documented there. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* asprintf, vasprintf, nftw */
#endif
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>

#include <hiredis.h>

#include "daemon/parallel.h"
#include "daemon/sentinel.h"
#include "daemon/state_codec.h"
#include "daemon/store.h"
#include "handlers/rules.h"

#define DEFAULT_TIMEOUT_MS 2000

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

struct mcd_store {
        char *host;
        int port;
        int db;
        char *password;
        char *prefix;
        int timeout_ms;
        struct mcd_hostport *sentinels;      /* NULL: host and port are the node */
        size_t n_sentinels;
        char *master_name;                   /* the master's name for the Sentinels */
        void (*note)(void *ctx, int priority, const char *text);
        void *note_ctx;

        struct mcd_hostport node;            /* connected to, or last tried; host "" before */
        char where[MCD_HOST_MAX + 160];      /* mcd_store_where's answer */
        redisContext *ctx;
        char script_sha[41];
        uint64_t round_trips;
        uint64_t connections;        /* connections made (and handshaken) so far */
        bool unflushed;              /* commands appended since the last reply read */
        struct mcd_par *par;         /* borrowed: threads that parse loaded customers */
};

/* ------------------------------------------------------------ helpers -- */

/* A growing argument vector: borrowed or owned (freed with it) strings. */
struct args {
        const char **v;
        size_t *len;
        size_t n, cap;
        char **owned;
        size_t n_owned, cap_owned;
        int err;
};

static int args_grow(struct args *a) {
        const char **v;
        size_t *len, ncap;

        if (a->n < a->cap)
                return 0;
        ncap = a->cap ? a->cap * 2 : 16;
        v = realloc(a->v, ncap * sizeof(*v));
        if (!v)
                return -ENOMEM;
        a->v = v;
        len = realloc(a->len, ncap * sizeof(*len));
        if (!len)
                return -ENOMEM;
        a->len = len;
        a->cap = ncap;
        return 0;
}

/* Adds a borrowed argument (must outlive the args). */
static void args_add(struct args *a, const void *p, size_t len) {
        if (a->err < 0)
                return;
        if (args_grow(a) < 0) {
                a->err = -ENOMEM;
                return;
        }
        a->v[a->n] = p;
        a->len[a->n] = len;
        a->n++;
}

static void args_add_str(struct args *a, const char *s) {
        args_add(a, s, strlen(s));
}

/* Adds a heap buffer of len bytes and takes ownership of it (frees it on
 * failure). */
static void args_take_n(struct args *a, char *s, size_t len) {
        char **owned;

        if (!s && a->err == 0)
                a->err = -ENOMEM;
        if (a->err < 0) {
                free(s);
                return;
        }
        if (a->n_owned == a->cap_owned) {
                size_t ncap = a->cap_owned ? a->cap_owned * 2 : 16;
                owned = realloc(a->owned, ncap * sizeof(*owned));
                if (!owned) {
                        free(s);
                        a->err = -ENOMEM;
                        return;
                }
                a->owned = owned;
                a->cap_owned = ncap;
        }
        a->owned[a->n_owned++] = s;
        args_add(a, s, len);
}

/* Adds a heap string and takes ownership of it (frees it on failure). */
static void args_take(struct args *a, char *s) {
        args_take_n(a, s, s ? strlen(s) : 0);
}

static void args_addf(struct args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void args_addf(struct args *a, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        args_take(a, s);
}

static void args_free(struct args *a) {
        for (size_t i = 0; i < a->n_owned; i++)
                free(a->owned[i]);
        free(a->owned);
        free(a->v);
        free(a->len);
        memset(a, 0, sizeof(*a));
}

static char *key_of(const struct mcd_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *key_of(const struct mcd_store *s, const char *fmt, ...) {
        char *tail = NULL, *key = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&tail, fmt, ap);
        va_end(ap);
        if (r < 0)
                return NULL;
        if (asprintf(&key, "%s%s", s->prefix, tail) < 0)
                key = NULL;
        free(tail);
        return key;
}

static void args_add_key(struct args *a, const struct mcd_store *s, const char *kind, int32_t partition) {
        args_take(a, key_of(s, "%s:%" PRId32, kind, partition));
}

/* A bulk reply as an int64; -EBADMSG when it is not one. */
static int parse_int64(const redisReply *r, int64_t *out) {
        char buf[32], *end;
        long long v;

        if (r->type == REDIS_REPLY_INTEGER) {
                *out = r->integer;
                return 0;
        }
        if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len >= sizeof(buf))
                return -EBADMSG;
        memcpy(buf, r->str, r->len);
        buf[r->len] = '\0';
        errno = 0;
        v = strtoll(buf, &end, 10);
        if (errno != 0 || *end != '\0')
                return -EBADMSG;
        *out = v;
        return 0;
}

/* --------------------------------------------------------- connection -- */

static void disconnect(struct mcd_store *s) {
        if (s->ctx) {
                redisFree(s->ctx);
                s->ctx = NULL;
        }
}

/* The errno for a context error; errno_saved is errno right after the
 * failing call (hiredis 0.14 reports a read timeout as REDIS_ERR_IO with
 * EAGAIN, a connect timeout with ETIMEDOUT). */
static int context_error(const redisContext *c, int errno_saved) {
        switch (c->err) {
        case REDIS_ERR_IO:
                if (errno_saved == EAGAIN || errno_saved == EWOULDBLOCK || errno_saved == ETIMEDOUT ||
                    errno_saved == EINPROGRESS)
                        return -ETIMEDOUT;
                if (errno_saved == ECONNREFUSED)
                        return -ECONNREFUSED;
                return -EIO;
        case REDIS_ERR_OOM:
                return -ENOMEM;
        case REDIS_ERR_EOF:
        case REDIS_ERR_PROTOCOL:
        case REDIS_ERR_OTHER:
        default:
                if (strstr(c->errstr, "refused"))
                        return -ECONNREFUSED;
                if (strstr(c->errstr, "timed out"))
                        return -ETIMEDOUT;
                return -EIO;
        }
}

/* Passes a line to the owner's note callback, if it set one. */
static void notef(const struct mcd_store *s, int priority, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void notef(const struct mcd_store *s, int priority, const char *fmt, ...) {
        char line[768];
        va_list ap;

        if (!s->note)
                return;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        s->note(s->note_ctx, priority, line);
}

/* The errno for an error reply that is not the caller's to interpret; the
 * callers drop the connection.  A write refused because the node is a
 * replica now (READONLY: a demoted master) or is cut off from its replicas
 * (NOREPLICAS: its min-replicas-to-write) is a connection problem, -EIO:
 * the next connection goes to the master the Sentinels name then. */
static int reply_error(const struct mcd_store *s, const redisReply *r) {
        const char *again = s->sentinels ? "; asking the Sentinels where the master is" : "";

        if (strncmp(r->str, "NOAUTH", 6) == 0 || strncmp(r->str, "WRONGPASS", 9) == 0 ||
            strstr(r->str, "invalid password") || strstr(r->str, "invalid username-password"))
                return -EACCES;
        if (strncmp(r->str, "OOM", 3) == 0)
                return -ENOSPC;
        if (strncmp(r->str, "READONLY", 8) == 0)
                notef(s, LOG_WARNING, "Redis at %s refused a write as a read-only replica (READONLY)%s", s->where,
                      again);
        else if (strncmp(r->str, "NOREPLICAS", 10) == 0)
                notef(s, LOG_WARNING, "Redis at %s refused a write: too few replicas in sync (NOREPLICAS)%s",
                      s->where, again);
        return -EIO;
}

/* Reads one reply of a pipeline.  On an I/O error the connection is
 * dropped; an error reply is returned as a reply. */
static int read_reply(struct mcd_store *s, redisReply **reply) {
        void *r = NULL;
        int e;

        *reply = NULL;
        if (redisGetReply(s->ctx, &r) != REDIS_OK || !r) {
                e = context_error(s->ctx, errno);
                if (r)
                        freeReplyObject(r);
                disconnect(s);
                return e;
        }
        /* One round trip per pipeline: the first reply after writes. */
        if (s->unflushed) {
                s->round_trips++;
                s->unflushed = false;
        }
        *reply = r;
        return 0;
}

static int append_argv(struct mcd_store *s, int argc, const char **argv, const size_t *lens) {
        int e;

        s->unflushed = true;
        if (redisAppendCommandArgv(s->ctx, argc, argv, lens) != REDIS_OK) {
                e = context_error(s->ctx, errno);
                disconnect(s);
                return e;
        }
        return 0;
}

/* Sends what is appended without waiting for a reply. */
static int flush_pipeline(struct mcd_store *s) {
        int done = 0, e;

        while (!done)
                if (redisBufferWrite(s->ctx, &done) != REDIS_OK) {
                        e = context_error(s->ctx, errno);
                        disconnect(s);
                        return e;
                }
        return 0;
}

static struct timeval timeval_of_ms(int ms) {
        return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

/* The handshake's commands, in the order they are sent. */
enum handshake_step { HS_AUTH, HS_SELECT, HS_ROLE, HS_LOAD };

/* Checks one handshake reply: 0, or a negative errno.  ROLE must say
 * "master" (checked with Sentinels only: a node they name may have been
 * demoted since); SCRIPT LOAD gives the commit script's SHA1. */
static int handshake_reply(struct mcd_store *s, enum handshake_step step, const redisReply *reply) {
        char role[32] = "";

        if (reply->type == REDIS_REPLY_ERROR)
                return reply_error(s, reply);
        if (step == HS_ROLE && mcd_sentinel_role_is_master(reply, role, sizeof(role)) != 1) {
                notef(s, LOG_WARNING, "Redis at %s answers ROLE as %s, not as master; asking the Sentinels again",
                      s->where, role[0] ? role : "something else");
                return -EIO;
        }
        if (step == HS_LOAD) {
                if (reply->type != REDIS_REPLY_STRING || reply->len != 40)
                        return -EIO;
                memcpy(s->script_sha, reply->str, 41);
        }
        return 0;
}

/* AUTH, SELECT, ROLE (with Sentinels) and SCRIPT LOAD, pipelined; every
 * reply is read, the first error wins. */
static int handshake(struct mcd_store *s) {
        char db[16];
        const char *argv[4][3] = {
                {"AUTH", s->password}, {"SELECT", db}, {"ROLE"}, {"SCRIPT", "LOAD", COMMIT_SCRIPT},
        };
        size_t lens[4][3] = {
                {4, s->password ? strlen(s->password) : 0}, {6, 0}, {4}, {6, 4, sizeof(COMMIT_SCRIPT) - 1},
        };
        const int argc[4] = {2, 2, 1, 3};
        const bool wanted[4] = {s->password != NULL, s->db != 0, s->sentinels != NULL, true};
        enum handshake_step sent[4];
        unsigned n = 0;
        redisReply *reply;
        int r = 0;

        lens[HS_SELECT][1] = (size_t)snprintf(db, sizeof(db), "%d", s->db);
        for (int i = HS_AUTH; i <= HS_LOAD; i++) {
                if (!wanted[i])
                        continue;
                if ((r = append_argv(s, argc[i], argv[i], lens[i])) < 0)
                        return r;
                sent[n++] = (enum handshake_step)i;
        }
        for (unsigned i = 0; i < n && s->ctx; i++) {
                int e = read_reply(s, &reply);
                if (e < 0)
                        return r < 0 ? r : e;
                if (r == 0)
                        r = handshake_reply(s, sent[i], reply);
                freeReplyObject(reply);
        }
        return r;
}

/* The node to connect to: redis.host and redis.port, or the master the
 * Sentinels name (noted at notice level when it is not the node of the
 * last connection, else at info level).  0 with s->node and s->where set,
 * or a negative errno. */
static int find_node(struct mcd_store *s) {
        struct mcd_hostport master;
        char addr[MCD_HOST_MAX + 8], by[MCD_HOST_MAX + 8];
        size_t i = 0;
        bool moved;
        int r;

        if (!s->sentinels) {
                snprintf(s->node.host, sizeof(s->node.host), "%s", s->host);
                s->node.port = s->port;
                mcd_hostport_str(&s->node, s->where, sizeof(s->where));
                return 0;
        }
        r = mcd_sentinel_master(s->sentinels, s->n_sentinels, s->master_name, s->timeout_ms, &master, &i, s->note,
                                s->note_ctx);
        if (r < 0) {
                snprintf(s->where, sizeof(s->where), "master %s (no Sentinel named it)", s->master_name);
                return r;
        }
        moved = strcmp(master.host, s->node.host) != 0 || master.port != s->node.port;
        s->node = master;
        mcd_hostport_str(&master, addr, sizeof(addr));
        snprintf(s->where, sizeof(s->where), "%s (master %s)", addr, s->master_name);
        notef(s, moved ? LOG_NOTICE : LOG_INFO, "Redis master %s is at %s (Redis Sentinel %s)", s->master_name,
              addr, mcd_hostport_str(&s->sentinels[i], by, sizeof(by)));
        return 0;
}

static int ensure_connected(struct mcd_store *s) {
        struct timeval tv = timeval_of_ms(s->timeout_ms);
        redisContext *c;
        int r;

        if (s->ctx)
                return 0;
        if ((r = find_node(s)) < 0)
                return r;
        errno = 0;
        c = redisConnectWithTimeout(s->node.host, s->node.port, tv);
        if (!c)
                return -ENOMEM;
        if (c->err) {
                r = context_error(c, errno);
                redisFree(c);
                return r;
        }
        if (redisSetTimeout(c, tv) != REDIS_OK) {
                r = context_error(c, errno);
                redisFree(c);
                return r;
        }
        s->ctx = c;
        r = handshake(s);
        if (r < 0)
                disconnect(s);
        else
                s->connections++;
        return r;
}

/* One command, one round trip.  0 with *reply set (possibly an error reply,
 * which the caller interprets), or a negative errno with the connection
 * dropped. */
static int command_argv(struct mcd_store *s, int argc, const char **argv, const size_t *lens,
                        redisReply **reply) {
        int r;

        *reply = NULL;
        if ((r = ensure_connected(s)) < 0)
                return r;
        if ((r = append_argv(s, argc, argv, lens)) < 0)
                return r;
        return read_reply(s, reply);
}

/* As command_argv, but an error reply is an error (the connection is
 * dropped: the next call starts afresh). */
static int command(struct mcd_store *s, const struct args *a, redisReply **reply) {
        int r;

        if (a->err < 0)
                return a->err;
        r = command_argv(s, (int)a->n, a->v, a->len, reply);
        if (r < 0)
                return r;
        if ((*reply)->type == REDIS_REPLY_ERROR) {
                r = reply_error(s, *reply);
                freeReplyObject(*reply);
                *reply = NULL;
                disconnect(s);
        }
        return r;
}

/* -------------------------------------------------------------- setup -- */

static int dup_opt(char **dst, const char *src) {
        *dst = NULL;
        if (!src)
                return 0;
        *dst = strdup(src);
        return *dst ? 0 : -ENOMEM;
}

int mcd_store_new(const struct mcd_store_options *o, struct mcd_store **out) {
        struct mcd_store *s;
        int r;

        *out = NULL;
        if (!o || !o->host || o->port <= 0 || o->port > 65535 || o->db < 0)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->port = o->port;
        s->db = o->db;
        s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
        s->note = o->note;
        s->note_ctx = o->note_ctx;
        if (dup_opt(&s->host, o->host) < 0 || dup_opt(&s->password, o->password) < 0 ||
            dup_opt(&s->prefix, o->prefix ? o->prefix : "mcd:") < 0 ||
            dup_opt(&s->master_name, o->master_name ? o->master_name : "mymaster") < 0) {
                mcd_store_free(s);
                return -ENOMEM;
        }
        r = o->sentinels && *o->sentinels ? mcd_sentinels_parse(o->sentinels, &s->sentinels, &s->n_sentinels, NULL, 0)
                                          : 0;
        if (r < 0) {
                mcd_store_free(s);
                return r;
        }
        if (s->sentinels)
                snprintf(s->where, sizeof(s->where), "master %s (through the Sentinels)", s->master_name);
        else
                find_node(s);   /* the node is known now: no Sentinel to ask */
        *out = s;
        return 0;
}

const char *mcd_store_where(const struct mcd_store *s) {
        return s->where;
}

void mcd_store_free(struct mcd_store *s) {
        if (!s)
                return;
        disconnect(s);
        free(s->sentinels);
        free(s->master_name);
        free(s->host);
        free(s->password);
        free(s->prefix);
        free(s);
}

uint64_t mcd_store_connections(const struct mcd_store *s) {
        return s->connections;
}

uint64_t mcd_store_round_trips(const struct mcd_store *s) {
        return s->round_trips;
}

/* ------------------------------------------------------------- simple -- */

static int64_t monotonic_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void mcd_store_set_parallel(struct mcd_store *s, struct mcd_par *par) {
        s->par = par;
}

int mcd_store_ping(struct mcd_store *s, int64_t *rtt_us) {
        struct args a = {0};
        redisReply *reply;
        int64_t t0;
        int r;

        if ((r = ensure_connected(s)) < 0)
                return r;
        args_add_str(&a, "PING");
        t0 = monotonic_us();
        r = command(s, &a, &reply);
        if (r == 0) {
                if (rtt_us)
                        *rtt_us = monotonic_us() - t0;
                freeReplyObject(reply);
        }
        args_free(&a);
        return r;
}

/* A command on one key of the prefix whose reply is an integer. */
static int integer_command(struct mcd_store *s, struct args *a, int64_t *out) {
        redisReply *reply;
        int r;

        r = command(s, a, &reply);
        args_free(a);
        if (r < 0)
                return r;
        if (reply->type == REDIS_REPLY_INTEGER)
                *out = reply->integer;
        else
                r = -EBADMSG;
        freeReplyObject(reply);
        return r;
}

int mcd_store_init_meta(struct mcd_store *s, bool *created) {
        struct args a = {0};
        int64_t v = 0;
        int r;

        args_add_str(&a, "HSETNX");
        args_take(&a, key_of(s, "meta"));
        args_add_str(&a, "v");
        args_add_str(&a, "1");
        r = integer_command(s, &a, &v);
        if (r == 0 && created)
                *created = v == 1;
        return r;
}

int mcd_store_meta_exists(struct mcd_store *s, bool *exists) {
        struct args a = {0};
        int64_t v = 0;
        int r;

        args_add_str(&a, "EXISTS");
        args_take(&a, key_of(s, "meta"));
        r = integer_command(s, &a, &v);
        if (r == 0)
                *exists = v > 0;
        return r;
}

/* INCR, then up to floor + 1 if that is not past it: one round trip. */
static const char CLAIM_SCRIPT[] =
        "local g = redis.call('INCR', KEYS[1])\n"
        "if g <= tonumber(ARGV[1]) then\n"
        "  g = tonumber(ARGV[1]) + 1\n"
        "  redis.call('SET', KEYS[1], g)\n"
        "end\n"
        "return g\n";

int mcd_store_claim(struct mcd_store *s, int32_t partition, int64_t floor, int64_t *generation) {
        struct args a = {0};

        args_add_str(&a, "EVAL");
        args_add_str(&a, CLAIM_SCRIPT);
        args_add_str(&a, "1");
        args_add_key(&a, s, "gen", partition);
        args_addf(&a, "%" PRId64, floor);
        return integer_command(s, &a, generation);
}

int mcd_store_generation(struct mcd_store *s, int32_t partition, int64_t *generation) {
        struct args a = {0};
        redisReply *reply;
        int r;

        args_add_str(&a, "GET");
        args_add_key(&a, s, "gen", partition);
        r = command(s, &a, &reply);
        args_free(&a);
        if (r < 0)
                return r;
        if (reply->type == REDIS_REPLY_NIL)
                *generation = 0;
        else
                r = parse_int64(reply, generation);
        freeReplyObject(reply);
        return r;
}

int mcd_store_generations(struct mcd_store *s, const int32_t *partitions, size_t n, int64_t *generations) {
        struct args a = {0};
        redisReply *reply;
        int r;

        if (n == 0)
                return 0;
        args_add_str(&a, "MGET");
        for (size_t i = 0; i < n; i++)
                args_add_key(&a, s, "gen", partitions[i]);
        r = command(s, &a, &reply);
        args_free(&a);
        if (r < 0)
                return r;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n)
                r = -EBADMSG;
        for (size_t i = 0; r == 0 && i < n; i++) {
                if (reply->element[i]->type == REDIS_REPLY_NIL)
                        generations[i] = 0;
                else
                        r = parse_int64(reply->element[i], &generations[i]);
        }
        freeReplyObject(reply);
        return r;
}

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
                args_take(a, key_of(s, "c:%s", ids[i]));
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
        r = command(s, &a, &reply);
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

        args_take(keys, key_of(s, "c:%s", c->customer_id));
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
        args_take(keys, key_of(s, "meta"));
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
                args_add(a, COMMIT_SCRIPT, sizeof(COMMIT_SCRIPT) - 1);
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

        if ((r = ensure_connected(s)) < 0)
                return r;
        eval_args(s, by_sha, keys, argv, &a);
        r = a.err < 0 ? a.err : command_argv(s, (int)a.n, a.v, a.len, reply);
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
        disconnect(s);
        return reply_error(s, reply);
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
                r = ensure_connected(s);
        for (int i = 0; i < 2 && r == 0; i++)
                r = append_argv(s, (int)cmds[i].n, cmds[i].v, cmds[i].len);
        if (r == 0 && b->while_running && (r = flush_pipeline(s)) == 0)
                b->while_running(b->while_running_ctx);
        if (r == 0)
                r = read_reply(s, &replies[0]);
        if (r == 0 && replies[0]->type == REDIS_REPLY_ERROR && strncmp(replies[0]->str, "NOSCRIPT", 8) == 0) {
                /* the load's reply is read and thrown away: it predates the commit */
                r = read_reply(s, &replies[1]);
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
                *load_r = s->ctx ? read_reply(s, &replies[1]) : -ECONNRESET;
                if (*load_r == 0 && replies[1]->type == REDIS_REPLY_ERROR) {
                        *load_r = reply_error(s, replies[1]);
                        disconnect(s);
                } else if (*load_r == 0) {
                        *load_r = load_reply(s, replies[1], ids, n, out);
                        replies[1] = NULL;
                }
        } else if (s->ctx) {
                disconnect(s);  /* the load's reply is left unread */
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

/* -------------------------------------------------------------- reads -- */

/* HMGET of n fields of P <kind>:<partition>: *reply is an array of n. */
static int hmget(struct mcd_store *s, const char *kind, int32_t partition, const char *const *fields, size_t n,
                 redisReply **reply) {
        struct args a = {0};
        int r;

        args_add_str(&a, "HMGET");
        args_add_key(&a, s, kind, partition);
        for (size_t i = 0; i < n; i++)
                args_add_str(&a, fields[i]);
        r = command(s, &a, reply);
        args_free(&a);
        if (r < 0)
                return r;
        if ((*reply)->type != REDIS_REPLY_ARRAY || (*reply)->elements != n) {
                freeReplyObject(*reply);
                *reply = NULL;
                return -EBADMSG;
        }
        return 0;
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
                r = parse_int64(reply->element[0], &o->rel);
        if (r == 0 && reply->element[1]->type != REDIS_REPLY_NIL)
                r = parse_int64(reply->element[1], &o->sub);
        if (r == 0 && reply->element[2]->type != REDIS_REPLY_NIL)
                r = parse_int64(reply->element[2], &n);
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

        args_add_str(&a, "EVAL");
        args_add_str(&a, RAISE_SCRIPT);
        args_add_str(&a, "1");
        args_add_key(&a, s, "off", partition);
        args_addf(&a, "%" PRId64, seq);
        return integer_command(s, &a, &ignored);
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
        r = command(s, &a, &reply);
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

int mcd_store_set_redo(struct mcd_store *s, int32_t partition, const char *marks, struct mcd_offsets until) {
        struct args a = {0};
        int64_t v;

        args_add_str(&a, "HSET");
        args_add_key(&a, s, "redo", partition);
        args_add_str(&a, "marks");
        args_add_str(&a, marks);
        args_add_str(&a, "rel");
        args_addf(&a, "%" PRId64, until.rel);
        args_add_str(&a, "sub");
        args_addf(&a, "%" PRId64, until.sub);
        return integer_command(s, &a, &v);
}

int mcd_store_get_redo(struct mcd_store *s, int32_t partition, bool *found, char **marks,
                       struct mcd_offsets *until) {
        static const char *const fields[] = {"marks", "rel", "sub"};
        redisReply *reply;
        int r;

        *found = false;
        *marks = NULL;
        r = hmget(s, "redo", partition, fields, 3, &reply);
        if (r < 0)
                return r;
        if (reply->element[0]->type == REDIS_REPLY_NIL)
                goto out;               /* none */
        if (reply->element[0]->type != REDIS_REPLY_STRING)
                r = -EBADMSG;
        if (r == 0)
                r = parse_int64(reply->element[1], &until->rel);
        if (r == 0)
                r = parse_int64(reply->element[2], &until->sub);
        if (r == 0 && !(*marks = strndup(reply->element[0]->str, reply->element[0]->len)))
                r = -ENOMEM;
        *found = r == 0;
out:
        freeReplyObject(reply);
        return r;
}

int mcd_store_clear_redo(struct mcd_store *s, int32_t partition) {
        struct args a = {0};
        int64_t v;

        args_add_str(&a, "DEL");
        args_add_key(&a, s, "redo", partition);
        return integer_command(s, &a, &v);
}

void mcd_store_frames_free(void **frames, size_t *lens, size_t n) {
        if (frames)
                for (size_t i = 0; i < n; i++)
                        free(frames[i]);
        free(frames);
        free(lens);
}

static int copy_frames(const redisReply *reply, void ***frames, size_t **lens, size_t *n) {
        size_t m = reply->elements;
        void **f = calloc(m ? m : 1, sizeof(*f));
        size_t *l = calloc(m ? m : 1, sizeof(*l));

        if (!f || !l) {
                free(f);
                free(l);
                return -ENOMEM;
        }
        for (size_t i = 0; i < m; i++) {
                const redisReply *e = reply->element[i];
                if (e->type != REDIS_REPLY_STRING || !(f[i] = malloc(e->len ? e->len : 1))) {
                        mcd_store_frames_free(f, l, i);
                        return e->type != REDIS_REPLY_STRING ? -EBADMSG : -ENOMEM;
                }
                memcpy(f[i], e->str, e->len);
                l[i] = e->len;
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
        r = command(s, &a, &reply);
        args_free(&a);
        if (r < 0)
                return r;
        r = reply->type == REDIS_REPLY_ARRAY ? copy_frames(reply, frames, lens, n) : -EBADMSG;
        freeReplyObject(reply);
        return r;
}

void mcd_store_ids_free(char **ids, size_t n) {
        if (ids)
                for (size_t i = 0; i < n; i++)
                        free(ids[i]);
        free(ids);
}

/* Sends n commands in one pipeline and reads their n replies: one round
 * trip.  Error replies are errors; on any failure the connection is dropped
 * (a reply may be left unread) and every reply read is freed. */
static int pipeline(struct mcd_store *s, struct args *cmds, size_t n, redisReply **replies) {
        size_t got = 0;
        int r = 0;

        for (size_t i = 0; i < n && r == 0; i++)
                r = cmds[i].err;
        if (r == 0)
                r = ensure_connected(s);
        for (size_t i = 0; i < n && r == 0; i++)
                r = append_argv(s, (int)cmds[i].n, cmds[i].v, cmds[i].len);
        for (; got < n && r == 0; got++) {
                r = read_reply(s, &replies[got]);
                if (r == 0 && replies[got]->type == REDIS_REPLY_ERROR) {
                        r = reply_error(s, replies[got]);
                        got++;
                }
        }
        if (r < 0) {
                while (got-- > 0)
                        freeReplyObject(replies[got]);
                if (s->ctx)
                        disconnect(s);
        }
        return r;
}

static void replies_free(redisReply **replies, size_t n) {
        for (size_t i = 0; i < n; i++)
                freeReplyObject(replies[i]);
}

static void cmds_free(struct args *cmds, size_t n) {
        for (size_t i = 0; i < n; i++)
                args_free(&cmds[i]);
        free(cmds);
}

/* Appends the ids of one ZRANGEBYSCORE reply, tagged with their partition. */
static int take_due_ids(const redisReply *reply, int32_t partition, char ***ids, int32_t **parts, size_t *n) {
        char **v;
        int32_t *pv;

        if (reply->type != REDIS_REPLY_ARRAY)
                return -EBADMSG;
        if (reply->elements == 0)
                return 0;
        v = realloc(*ids, (*n + reply->elements) * sizeof(*v));
        if (v)
                *ids = v;
        pv = realloc(*parts, (*n + reply->elements) * sizeof(*pv));
        if (pv)
                *parts = pv;
        if (!v || !pv)
                return -ENOMEM;
        for (size_t i = 0; i < reply->elements; i++) {
                const redisReply *e = reply->element[i];
                if (e->type != REDIS_REPLY_STRING)
                        return -EBADMSG;
                if (!(v[*n] = strndup(e->str, e->len)))
                        return -ENOMEM;
                pv[(*n)++] = partition;
        }
        return 0;
}

int mcd_store_due(struct mcd_store *s, const int32_t *partitions, size_t n_parts, mcd_time_t now, size_t max,
                  char ***ids, int32_t **id_partitions, size_t *n) {
        struct args *cmds;
        redisReply **replies;
        int r;

        *ids = NULL;
        *id_partitions = NULL;
        *n = 0;
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
                args_addf(&cmds[i], "%" PRId64, now);
                args_add_str(&cmds[i], "LIMIT");
                args_add_str(&cmds[i], "0");
                args_addf(&cmds[i], "%zu", max);
        }
        r = pipeline(s, cmds, n_parts, replies);
        if (r == 0) {
                for (size_t i = 0; r == 0 && i < n_parts; i++)
                        r = take_due_ids(replies[i], partitions[i], ids, id_partitions, n);
                replies_free(replies, n_parts);
        }
        if (r < 0) {
                mcd_store_ids_free(*ids, *n);
                free(*id_partitions);
                *ids = NULL;
                *id_partitions = NULL;
                *n = 0;
        }
        cmds_free(cmds, n_parts);
        free(replies);
        return r;
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
        r = pipeline(s, cmds, 2 * n_parts, replies);
        if (r == 0) {
                for (size_t i = 0; i < 2 * n_parts && r == 0; i++) {
                        if (replies[i]->type != REDIS_REPLY_INTEGER)
                                r = -EBADMSG;
                        else
                                *(i % 2 ? outbox : due) += replies[i]->integer;
                }
                replies_free(replies, 2 * n_parts);
        }
        cmds_free(cmds, 2 * n_parts);
        free(replies);
        return r;
}

int mcd_store_get_customer_raw(struct mcd_store *s, const char *customer_id, char **buf, size_t *len) {
        struct args a = {0};
        redisReply *reply;
        int r;

        *buf = NULL;
        *len = 0;
        args_add_str(&a, "GET");
        args_take(&a, key_of(s, "c:%s", customer_id));
        r = command(s, &a, &reply);
        args_free(&a);
        if (r < 0)
                return r;
        if (reply->type == REDIS_REPLY_STRING) {
                *buf = malloc(reply->len + 1);
                if (*buf) {
                        memcpy(*buf, reply->str, reply->len);
                        (*buf)[reply->len] = '\0';
                        *len = reply->len;
                } else {
                        r = -ENOMEM;
                }
        } else if (reply->type != REDIS_REPLY_NIL)
                r = -EBADMSG;
        freeReplyObject(reply);
        return r;
}
