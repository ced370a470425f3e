/* store.c -- the daemon's state in Redis (hiredis 0.14, blocking context):
 * the connection, and the commands every other part of the store sends.
 *
 * The connection is made lazily by the first call that needs it and dropped
 * on any I/O or protocol error, so the next call reconnects (AUTH, SELECT
 * and with Sentinels ROLE, in one pipeline; with Sentinels, after asking
 * them where the master is: see find_node).  Every command is sent with
 * binary-safe arguments (redisCommandArgv / redisAppendCommandArgv with
 * lengths, or the store's own formatting); every reply read counts as one
 * round trip.
 *
 * The rest of the store is built on the helpers declared in store_internal.h:
 *   store_commit.c   the batch's load and commit (MULTI / EXEC)
 *   store_fence.c    the commit's WATCH of the keys it checks, and the checks
 *   store_claims.c   meta, partition claims and generations (fencing)
 *   store_offsets.c  a partition's offsets, marks, re-processing record, outbox
 *   store_scan.c     due customers, counts, one customer's stored state */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* asprintf, vasprintf */
#endif
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>

#include <hiredis.h>

#include "daemon/frame_zip.h"
#include "daemon/sentinel.h"
#include "daemon/store.h"
#include "daemon/store_internal.h"

#define DEFAULT_TIMEOUT_MS 2000

/* ------------------------------------------------------------ helpers -- */

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
void args_add(struct args *a, const void *p, size_t len) {
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

void args_add_str(struct args *a, const char *s) {
        args_add(a, s, strlen(s));
}

/* Takes ownership of a heap buffer, freed with the vector (now on
 * failure); NULL is a failure (-ENOMEM). */
void args_keep(struct args *a, char *s) {
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
}

/* Adds a heap buffer of len bytes and takes ownership of it (frees it on
 * failure). */
void args_take_n(struct args *a, char *s, size_t len) {
        args_keep(a, s);
        if (a->err == 0)
                args_add(a, s, len);
}

/* Adds a heap string and takes ownership of it (frees it on failure). */
void args_take(struct args *a, char *s) {
        args_take_n(a, s, s ? strlen(s) : 0);
}

/* head (head_len bytes) followed by fmt formatted: a heap string, or NULL
 * when out of memory.  Formatted on the stack first, and into the heap
 * only when it does not fit there (the commit formats a few keys and
 * numbers for each partition, every batch). */
static char *format_after(const char *head, size_t head_len, const char *fmt, va_list ap) {
        char buf[128], *tail = NULL, *s;
        va_list again;
        int n;

        va_copy(again, ap);
        n = vsnprintf(buf, sizeof(buf), fmt, ap);
        if (n >= 0 && (size_t)n >= sizeof(buf))
                n = vasprintf(&tail, fmt, again);
        va_end(again);
        if (n < 0)
                return NULL;
        s = malloc(head_len + (size_t)n + 1);
        if (s) {
                memcpy(s, head, head_len);
                memcpy(s + head_len, tail ? tail : buf, (size_t)n + 1);
        }
        free(tail);
        return s;
}

void args_addf(struct args *a, const char *fmt, ...) {
        va_list ap;
        char *s;

        va_start(ap, fmt);
        s = format_after("", 0, fmt, ap);
        va_end(ap);
        args_take(a, s);
}

void args_free(struct args *a) {
        for (size_t i = 0; i < a->n_owned; i++)
                free(a->owned[i]);
        free(a->owned);
        free(a->v);
        free(a->len);
        memset(a, 0, sizeof(*a));
}

char *store_key(const struct mcd_store *s, const char *fmt, ...) {
        va_list ap;
        char *key;

        va_start(ap, fmt);
        key = format_after(s->prefix, strlen(s->prefix), fmt, ap);
        va_end(ap);
        return key;
}

void args_add_key(struct args *a, const struct mcd_store *s, const char *kind, int32_t partition) {
        args_take(a, store_key(s, "%s:%" PRId32, kind, partition));
}

void args_add_eval(struct args *a, const char *script, int keys) {
        args_add_str(a, "EVAL");
        args_add_str(a, script);
        args_addf(a, "%d", keys);
}

/* A bulk reply as an int64; -EBADMSG when it is not one. */
int store_parse_int64(const redisReply *r, int64_t *out) {
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

void store_disconnect(struct mcd_store *s) {
        s->fence.ok = false;
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

void store_notef(const struct mcd_store *s, int priority, const char *fmt, ...) {
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
int store_reply_error(const struct mcd_store *s, const redisReply *r) {
        const char *again = s->sentinels ? "; asking the Sentinels where the master is" : "";

        if (strncmp(r->str, "NOAUTH", 6) == 0 || strncmp(r->str, "WRONGPASS", 9) == 0 ||
            strstr(r->str, "invalid password") || strstr(r->str, "invalid username-password"))
                return -EACCES;
        if (strncmp(r->str, "OOM", 3) == 0)
                return -ENOSPC;
        if (strncmp(r->str, "WRONGTYPE", 9) == 0) {
                store_notef(s, LOG_ERR, "Redis at %s refused a command on a key of the daemon's that is of another "
                            "type (%s)", s->where, r->str);
                return MCD_STORE_WRONG_TYPE;
        }
        if (strncmp(r->str, "READONLY", 8) == 0)
                store_notef(s, LOG_WARNING, "Redis at %s refused a write as a read-only replica (READONLY)%s", s->where,
                      again);
        else if (strncmp(r->str, "NOREPLICAS", 10) == 0)
                store_notef(s, LOG_WARNING, "Redis at %s refused a write: too few replicas in sync (NOREPLICAS)%s",
                      s->where, again);
        return -EIO;
}

/* Reads one reply of a pipeline.  On an I/O error the connection is
 * dropped; an error reply is returned as a reply. */
int store_read_reply(struct mcd_store *s, redisReply **reply) {
        void *r = NULL;
        int e;

        *reply = NULL;
        if (redisGetReply(s->ctx, &r) != REDIS_OK || !r) {
                e = context_error(s->ctx, errno);
                if (r)
                        freeReplyObject(r);
                store_disconnect(s);
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

/* What one argument takes in the protocol: $<len>\r\n<bytes>\r\n. */
static size_t resp_arg_size(size_t len) {
        return 1 + 20 + 2 + len + 2;
}

/* Writes v's decimal digits at p; returns the end. */
static char *put_decimal(char *p, uint64_t v) {
        char digits[20];
        size_t n = 0;

        do
                digits[n++] = (char)('0' + v % 10);
        while ((v /= 10) > 0);
        while (n > 0)
                *p++ = digits[--n];
        return p;
}

/* Copies n bytes to p; returns the end. */
static char *put(char *p, const void *src, size_t n) {
        return (char *)memcpy(p, src, n) + n;
}

/* One command in the protocol at p, which has room for it (resp_arg_size
 * per argument and 24 bytes); returns the end.  This function can't fail. */
static char *resp_format(char *p, int argc, const char **argv, const size_t *lens) {
        *p++ = '*';
        p = put_decimal(p, (uint64_t)argc);
        p = put(p, "\r\n", 2);
        for (int i = 0; i < argc; i++) {
                *p++ = '$';
                p = put_decimal(p, lens[i]);
                p = put(p, "\r\n", 2);
                p = put(p, argv[i], lens[i]);
                p = put(p, "\r\n", 2);
        }
        return p;
}

/* Sends len bytes behind what hiredis holds (which goes first), blocking
 * within the connection's timeout. */
static int store_write(struct mcd_store *s, const char *buf, size_t len) {
        int e = store_flush(s);

        while (e == 0 && len > 0) {
                ssize_t n = send(s->ctx->fd, buf, len, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        e = n == 0 || errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
                        store_disconnect(s);
                        break;
                }
                buf += n;
                len -= (size_t)n;
        }
        return e;
}

/* A large command (a commit) formatted into the store's own buffer, kept
 * from one command to the next unless it grew past STORE_WBUF_KEEP, and
 * written out at once.
 *
 * DESIGN: hiredis formats a command into a fresh buffer, then copies it into
 * its output buffer, another fresh one, freed once written: for a commit of
 * hundreds of kilobytes that is two copies into pages the kernel must fault
 * in, every batch (a quarter of the daemon's CPU in tests/bench/run.sh's
 * profile).  Here the arguments are copied once, into warm memory. */
static size_t resp_size(int argc, const size_t *lens) {
        size_t need = 24;

        for (int i = 0; i < argc; i++)
                need += resp_arg_size(lens[i]);
        return need;
}

/* Room for need bytes in wbuf; on failure the connection is dropped (what
 * was appended before is not sent). */
static int wbuf_reserve(struct mcd_store *s, size_t need) {
        char *p;

        if (need <= s->wbuf_cap)
                return 0;
        if (!(p = realloc(s->wbuf, need))) {
                store_disconnect(s);
                return -ENOMEM;
        }
        s->wbuf = p;
        s->wbuf_cap = need;
        return 0;
}

/* Writes wbuf up to end, then lets it go if it grew past STORE_WBUF_KEEP. */
static int wbuf_send(struct mcd_store *s, const char *end) {
        int e;

        s->unflushed = true;
        e = store_write(s, s->wbuf, (size_t)(end - s->wbuf));
        if (s->wbuf_cap > STORE_WBUF_KEEP) {
                free(s->wbuf);
                s->wbuf = NULL;
                s->wbuf_cap = 0;
        }
        return e;
}

static int store_send_large(struct mcd_store *s, int argc, const char **argv, const size_t *lens) {
        int e = wbuf_reserve(s, resp_size(argc, lens));

        return e < 0 ? e : wbuf_send(s, resp_format(s->wbuf, argc, argv, lens));
}

int store_send_commands(struct mcd_store *s, const struct args *cmds, size_t n) {
        size_t need = 0;
        char *end;
        int e;

        for (size_t i = 0; i < n; i++)
                need += resp_size((int)cmds[i].n, cmds[i].len);
        if ((e = wbuf_reserve(s, need)) < 0)
                return e;
        end = s->wbuf;
        for (size_t i = 0; i < n; i++)
                end = resp_format(end, (int)cmds[i].n, cmds[i].v, cmds[i].len);
        return wbuf_send(s, end);
}

/* Whether a command leaves the commit's WATCH as it was: one that reads
 * and nothing else (a write to a watched key would make the next EXEC
 * refuse, which is safe, but a command ending the WATCH would not be). */
static bool keeps_fence(const char *cmd, size_t len) {
        static const char *const reads[] = {
                "GET", "MGET", "HGET", "HMGET", "EXISTS", "LRANGE", "LLEN", "ZRANGEBYSCORE", "ZCARD", "PING",
        };

        for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++)
                if (strlen(reads[i]) == len && strncasecmp(cmd, reads[i], len) == 0)
                        return true;
        return false;
}

int store_append_argv(struct mcd_store *s, int argc, const char **argv, const size_t *lens) {
        size_t bytes = 0;
        int e;

        if (argc < 1 || !keeps_fence(argv[0], lens[0]))
                s->fence.ok = false;
        for (int i = 0; i < argc; i++)
                bytes += lens[i];
        if (bytes >= STORE_LARGE_COMMAND)
                return store_send_large(s, argc, argv, lens);
        s->unflushed = true;
        if (redisAppendCommandArgv(s->ctx, argc, argv, lens) != REDIS_OK) {
                e = context_error(s->ctx, errno);
                store_disconnect(s);
                return e;
        }
        return 0;
}

/* Sends what is appended without waiting for a reply. */
int store_flush(struct mcd_store *s) {
        int done = 0, e;

        while (!done)
                if (redisBufferWrite(s->ctx, &done) != REDIS_OK) {
                        e = context_error(s->ctx, errno);
                        store_disconnect(s);
                        return e;
                }
        return 0;
}

static struct timeval timeval_of_ms(int ms) {
        return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

/* The handshake's commands, in the order they are sent. */
enum handshake_step { HS_AUTH, HS_SELECT, HS_ROLE, HS_N };

/* Checks one handshake reply: 0, or a negative errno.  ROLE must say
 * "master" (checked with Sentinels only: a node they name may have been
 * demoted since). */
static int handshake_reply(struct mcd_store *s, enum handshake_step step, const redisReply *reply) {
        char role[32] = "";

        if (reply->type == REDIS_REPLY_ERROR)
                return store_reply_error(s, reply);
        if (step == HS_ROLE && mcd_sentinel_role_is_master(reply, role, sizeof(role)) != 1) {
                store_notef(s, LOG_WARNING, "Redis at %s answers ROLE as %s, not as master; asking the Sentinels again",
                      s->where, role[0] ? role : "something else");
                return -EIO;
        }
        return 0;
}

/* AUTH, SELECT and ROLE (with Sentinels), pipelined, as wanted; every
 * reply is read, the first error wins. */
static int handshake(struct mcd_store *s) {
        char db[16];
        const char *argv[HS_N][2] = {{"AUTH", s->password}, {"SELECT", db}, {"ROLE"}};
        size_t lens[HS_N][2] = {{4, s->password ? strlen(s->password) : 0}, {6, 0}, {4}};
        const int argc[HS_N] = {2, 2, 1};
        const bool wanted[HS_N] = {s->password != NULL, s->db != 0, s->sentinels != NULL};
        enum handshake_step sent[HS_N];
        unsigned n = 0;
        redisReply *reply;
        int r = 0;

        lens[HS_SELECT][1] = (size_t)snprintf(db, sizeof(db), "%d", s->db);
        for (int i = HS_AUTH; i < HS_N; i++) {
                if (!wanted[i])
                        continue;
                if ((r = store_append_argv(s, argc[i], argv[i], lens[i])) < 0)
                        return r;
                sent[n++] = (enum handshake_step)i;
        }
        for (unsigned i = 0; i < n && s->ctx; i++) {
                int e = store_read_reply(s, &reply);
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
        store_notef(s, moved ? LOG_NOTICE : LOG_INFO, "Redis master %s is at %s (Redis Sentinel %s)", s->master_name,
              addr, mcd_hostport_str(&s->sentinels[i], by, sizeof(by)));
        return 0;
}

int store_connect(struct mcd_store *s) {
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
                store_disconnect(s);
        else
                s->connections++;
        return r;
}

/* One command, one round trip.  0 with *reply set (possibly an error reply,
 * which the caller interprets), or a negative errno with the connection
 * dropped. */
int store_command_argv(struct mcd_store *s, int argc, const char **argv, const size_t *lens,
                        redisReply **reply) {
        int r;

        *reply = NULL;
        if ((r = store_connect(s)) < 0)
                return r;
        if ((r = store_append_argv(s, argc, argv, lens)) < 0)
                return r;
        return store_read_reply(s, reply);
}

/* As store_command_argv, but an error reply is an error (the connection is
 * dropped: the next call starts afresh). */
int store_command(struct mcd_store *s, const struct args *a, redisReply **reply) {
        int r;

        if (a->err < 0)
                return a->err;
        r = store_command_argv(s, (int)a->n, a->v, a->len, reply);
        if (r < 0)
                return r;
        if ((*reply)->type == REDIS_REPLY_ERROR) {
                r = store_reply_error(s, *reply);
                freeReplyObject(*reply);
                *reply = NULL;
                store_disconnect(s);
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
        s->zip_frames = o->zip_frames;
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

const char *mcd_store_strerror(int r) {
        if (r == MCD_STORE_ROLLBACK)
                return "Redis is older than this instance's last commits";
        if (r == MCD_STORE_WRONG_TYPE)
                return "a key of the daemon's is of another type in Redis";
        return strerror(-r);
}

const char *mcd_store_where(const struct mcd_store *s) {
        return s->where;
}

void mcd_store_free(struct mcd_store *s) {
        if (!s)
                return;
        store_disconnect(s);
        free(s->wbuf);
        free(s->zbuf);
        mcd_frame_zip_free(s->zip);
        free(s->fence.v);
        mcd_sentinel_watch_free(s->watch);
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

/* Subscribes to the next Sentinel in turn, unless an attempt failed less
 * than watch_backoff_ms ago. */
static void watch_open(struct mcd_store *s) {
        const struct mcd_hostport *sn = &s->sentinels[s->watch_next++ % s->n_sentinels];
        char why[256], addr[MCD_HOST_MAX + 8];
        int64_t now = monotonic_us();

        if (now < s->watch_retry_us)
                return;
        if (mcd_sentinel_watch_open(sn, s->timeout_ms, &s->watch, why, sizeof(why)) == 0) {
                s->watch_backoff_ms = 0;
                store_notef(s, LOG_INFO, "Redis Sentinel %s: following +switch-master", mcd_hostport_str(sn, addr, sizeof(addr)));
                return;
        }
        s->watch_backoff_ms = s->watch_backoff_ms ? s->watch_backoff_ms * 2 : 1000;
        if (s->watch_backoff_ms > 30000)
                s->watch_backoff_ms = 30000;
        s->watch_retry_us = now + (int64_t)s->watch_backoff_ms * 1000;
        store_notef(s, LOG_WARNING, "Redis Sentinel %s: cannot subscribe to +switch-master (%s); trying again in %d ms",
              mcd_hostport_str(sn, addr, sizeof(addr)), why, s->watch_backoff_ms);
}

int mcd_store_follow_master(struct mcd_store *s) {
        struct mcd_hostport master;
        char addr[MCD_HOST_MAX + 8];
        int r;

        if (!s->sentinels)
                return 0;
        if (!s->watch)
                watch_open(s);
        if (!s->watch)
                return 0;
        r = mcd_sentinel_watch_poll(s->watch, s->master_name, &master);
        if (r < 0) {
                store_notef(s, LOG_WARNING, "Redis Sentinel: the +switch-master subscription was lost; subscribing again");
                mcd_sentinel_watch_free(s->watch);
                s->watch = NULL;
                return 0;
        }
        if (r == 0 || (s->ctx && strcmp(master.host, s->node.host) == 0 && master.port == s->node.port))
                return 0;
        store_notef(s, LOG_NOTICE, "Redis Sentinel announced +switch-master: master %s is at %s now; reconnecting",
              s->master_name, mcd_hostport_str(&master, addr, sizeof(addr)));
        store_disconnect(s);
        return 1;
}

void mcd_store_set_parallel(struct mcd_store *s, struct mcd_par *par) {
        s->par = par;
}

int mcd_store_ping(struct mcd_store *s, int64_t *rtt_us) {
        struct args a = {0};
        redisReply *reply;
        int64_t t0;
        int r;

        if ((r = store_connect(s)) < 0)
                return r;
        args_add_str(&a, "PING");
        t0 = monotonic_us();
        r = store_command(s, &a, &reply);
        if (r == 0) {
                if (rtt_us)
                        *rtt_us = monotonic_us() - t0;
                freeReplyObject(reply);
        }
        args_free(&a);
        return r;
}

/* A command on one key of the prefix whose reply is an integer. */
int store_integer_command(struct mcd_store *s, struct args *a, int64_t *out) {
        redisReply *reply;
        int r;

        r = store_command(s, a, &reply);
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

int store_array_command(struct mcd_store *s, struct args *a, size_t n, redisReply **reply) {
        int r = store_command(s, a, reply);

        args_free(a);
        if (r < 0)
                return r;
        if ((*reply)->type != REDIS_REPLY_ARRAY || (*reply)->elements != n) {
                freeReplyObject(*reply);
                *reply = NULL;
                return -EBADMSG;
        }
        return 0;
}

/* Sends n commands in one pipeline and reads their n replies: one round
 * trip.  Error replies are errors; on any failure the connection is dropped
 * (a reply may be left unread) and every reply read is freed. */
int store_pipeline(struct mcd_store *s, struct args *cmds, size_t n, redisReply **replies) {
        size_t got = 0;
        int r = 0;

        for (size_t i = 0; i < n && r == 0; i++)
                r = cmds[i].err;
        if (r == 0)
                r = store_connect(s);
        for (size_t i = 0; i < n && r == 0; i++)
                r = store_append_argv(s, (int)cmds[i].n, cmds[i].v, cmds[i].len);
        for (; got < n && r == 0; got++) {
                r = store_read_reply(s, &replies[got]);
                if (r == 0 && replies[got]->type == REDIS_REPLY_ERROR) {
                        r = store_reply_error(s, replies[got]);
                        got++;
                }
        }
        if (r < 0) {
                while (got-- > 0)
                        freeReplyObject(replies[got]);
                if (s->ctx)
                        store_disconnect(s);
        }
        return r;
}

void store_replies_free(redisReply **replies, size_t n) {
        for (size_t i = 0; i < n; i++)
                freeReplyObject(replies[i]);
}

void store_cmds_free(struct args *cmds, size_t n) {
        for (size_t i = 0; i < n; i++)
                args_free(&cmds[i]);
        free(cmds);
}
