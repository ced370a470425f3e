/* store_commit.c -- one batch's commit: customers, due times, offsets and
 * outbox frames (zipped, frame_zip.h) written in one MULTI / EXEC, fenced
 * by the WATCH of store_fence.c; and the load of the customers a batch
 * needs, alone or pipelined in front of the previous batch's commit. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <hiredis.h>

#include "daemon/frame_zip.h"
#include "daemon/macro.h"
#include "daemon/store.h"
#include "daemon/store_internal.h"
#include "daemon/parallel.h"
#include "daemon/state_codec.h"
#include "handlers/rules.h"

/* --------------------------------------------------------------- text -- */

/* Room in one buffer for the arguments formatted per customer (its key,
 * a due time), which borrow from it: one allocation per commit. */
struct text {
        char *buf;
        size_t used, cap;
};

/* The n bytes (and a NUL) just written at t's end become an argument of a;
 * -EOVERFLOW in a when they did not fit. */
static void text_took(struct args *a, struct text *t, int n) {
        if (n < 0 || (size_t)n >= t->cap - t->used) {
                if (a->err == 0)
                        a->err = -EOVERFLOW;     /* text_size is wrong: a bug */
                return;
        }
        args_add(a, t->buf + t->used, (size_t)n);
        t->used += (size_t)n + 1;
}

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
        text_took(a, t, n);
}

/* Adds "<prefix>c:<id>", a customer's key, as text_add would (a commit
 * makes one per customer: by hand, not by vsnprintf). */
static void text_add_key(struct args *a, struct text *t, const char *prefix, const char *id) {
        size_t lp = strlen(prefix), li = strlen(id);
        char *p = t->buf + t->used;

        if (a->err < 0)
                return;
        if (lp + 2 + li < t->cap - t->used) {
                memcpy(p, prefix, lp);
                memcpy(p + lp, "c:", 2);
                memcpy(p + lp + 2, id, li);
                p[lp + 2 + li] = '\0';
        }
        text_took(a, t, (int)(lp + 2 + li));
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

/* MGET of the n customers' keys, formatted in one buffer that a keeps. */
static void load_args(const struct mcd_store *s, const char *const *ids, size_t n, struct args *a) {
        struct text t = {.cap = 1};

        for (size_t i = 0; i < n; i++)
                t.cap += strlen(s->prefix) + 3 + strlen(ids[i]);
        t.buf = malloc(t.cap);
        args_keep(a, t.buf);
        args_add_str(a, "MGET");
        for (size_t i = 0; i < n; i++)
                text_add_key(a, &t, s->prefix, ids[i]);
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
        j.results = zalloc_array(n, sizeof(*j.results));
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

/* ------------------------------------------------------ frames zipped -- */

struct mcd_frame_zip *store_zip(struct mcd_store *s) {
        unsigned threads = mcd_par_threads(s->par);

        if (s->zip && s->zip_threads >= threads)
                return s->zip;
        mcd_frame_zip_free(s->zip);
        s->zip = NULL;
        if (mcd_frame_zip_new(threads, &s->zip) < 0)
                return NULL;
        s->zip_threads = threads;
        return s->zip;
}

/* A commit's frames as they are written, every partition's in turn: zipped
 * into s->zbuf, or as they are (zipping off, or not making one smaller). */
struct frames_out {
        const void **v;
        size_t *len;
        size_t n;
        size_t *room;                /* zipping: where each frame's room in s->zbuf starts, and its end */
        ssize_t *zipped;             /* zipping: mcd_frame_zip's result */
        struct mcd_frame_zip *zip;
        char *buf;
};

static void frames_out_free(struct frames_out *fo) {
        free(fo->v);
        free(fo->len);
        free(fo->room);
        free(fo->zipped);
}

/* The batch's frames, as they are, in fo; -ENOMEM. */
static int frames_list(const struct mcd_store_batch *b, struct frames_out *fo) {
        size_t n = 0;

        for (size_t i = 0; i < b->n_partitions; i++)
                n += b->partitions[i].n_frames;
        fo->v = zalloc_array(n + 1, sizeof(*fo->v));
        fo->len = zalloc_array(n + 1, sizeof(*fo->len));
        if (!fo->v || !fo->len)
                return -ENOMEM;
        for (size_t i = 0; i < b->n_partitions; i++)
                for (size_t j = 0; j < b->partitions[i].n_frames; j++, fo->n++) {
                        fo->v[fo->n] = b->partitions[i].frames[j];
                        fo->len[fo->n] = b->partitions[i].frame_lens[j];
                }
        return 0;
}

static void zip_one(void *ctx, size_t k, unsigned thread) {
        struct frames_out *fo = ctx;

        fo->zipped[k] = mcd_frame_zip(fo->zip, thread, fo->v[k], fo->len[k], fo->buf + fo->room[k],
                                      fo->room[k + 1] - fo->room[k]);
}

/* s->zbuf with room for n bytes; -ENOMEM. */
static int zbuf_reserve(struct mcd_store *s, size_t n) {
        if (n <= s->zbuf_cap)
                return 0;
        free(s->zbuf);
        s->zbuf_cap = 0;
        if (!(s->zbuf = malloc(n)))
                return -ENOMEM;
        s->zbuf_cap = n;
        return 0;
}

/* Zips fo's frames into s->zbuf on the store's threads; each smaller once
 * zipped is then written zipped.  Zipping only spares Redis: when memory
 * for it is short the frames go as they are.  This function can't fail. */
static void frames_zip(struct mcd_store *s, struct frames_out *fo) {
        if (fo->n == 0)
                return;
        fo->room = zalloc_array(fo->n + 1, sizeof(*fo->room));
        fo->zipped = zalloc_array(fo->n + 1, sizeof(*fo->zipped));
        if (!fo->room || !fo->zipped || !(fo->zip = store_zip(s)))
                return;
        for (size_t k = 0; k < fo->n; k++)
                fo->room[k + 1] = fo->room[k] + mcd_frame_zip_bound(fo->len[k]);
        if (zbuf_reserve(s, fo->room[fo->n]) < 0)
                return;
        fo->buf = s->zbuf;
        mcd_par_for(s->par, fo->n, zip_one, fo);
        for (size_t k = 0; k < fo->n; k++) {
                if (fo->zipped[k] > 0) {
                        fo->v[k] = fo->buf + fo->room[k];
                        fo->len[k] = (size_t)fo->zipped[k];
                }
        }
}

/* ------------------------------------------------------------- commit -- */

/* The commit, one pipeline:
 *
 *   [MGET P c:<id> ...]                          the next batch's load
 *   MULTI
 *     per partition  HINCRBY P off:<p> seq 1
 *                    HSET P off:<p> [rel R sub S] [marks M]   when either
 *                    LTRIM P outbox:<p> <trim> -1             when trim > 0
 *                    RPUSH P outbox:<p> <frame> ...           when frames
 *                    LTRIM P clog_owed:<p> <trim> -1          when clog_trim > 0
 *                    RPUSH P clog_owed:<p> <keys>             when it has changelog records
 *                    SREM P clog_lost:<p> <key> ...           a claim's first, for what it appended again
 *     per due zset   ZADD P due:<p> <score> <id> ...; ZREM P due:<p> <id> ...
 *                    MSET P c:<id> <state> ...
 *   EXEC
 *   WATCH ... and the fence's reads, for the next commit  (store_fence.c)
 *
 * DESIGN: fenced by WATCH, not by a script.  The commit was a Lua script
 * that checked, then wrote; Redis turns each of its thousands of arguments
 * into a Lua string and back, which cost it as much as the writes
 * themselves (tests/bench/commit_bench: about 11 ms of Redis CPU for a
 * commit of 2,000 customers against 5-6.5 ms as plain commands in MULTI).
 * Here the checks are made on what was read right after the WATCH, and EXEC
 * refuses the writes if a watched key changed since: the same guarantee.
 * The connection carries its WATCH from one commit to the next (nothing
 * else is sent between them, or s->fence.ok is cleared), so a commit is one
 * round trip; without a fence that covers the batch, or when it fails a
 * check (values read a batch ago are not believed), the WATCH and reads
 * take a round trip of their own first.  A refused EXEC (another
 * instance's claim, a flush, any touch of a watched key) is tried again on
 * the values the pipeline read after it, COMMIT_TRIES times in all.
 *
 * Each commit adds one to every partition's commit counter. */

#define COMMIT_TRIES 4

/* The pipeline's commands, the load (if any) first, then the transaction,
 * then the fence. */
struct commit {
        struct args *v;
        size_t n, cap;
        size_t multi;                /* MULTI's index: a try again starts there */
        size_t fence;                /* the fence's first command */
        struct args text;            /* owns the text the commands borrow */
        int err;                     /* the first -ENOMEM */
};

/* A new, empty command at the end; NULL (c->err set) when out of memory. */
static struct args *cmd_add(struct commit *c) {
        if (c->err < 0)
                return NULL;
        if (c->n == c->cap) {
                size_t ncap = c->cap ? c->cap * 2 : 64;
                struct args *v = realloc(c->v, ncap * sizeof(*v));
                if (!v) {
                        c->err = -ENOMEM;
                        return NULL;
                }
                c->v = v;
                c->cap = ncap;
        }
        c->v[c->n] = (struct args){0};
        return &c->v[c->n++];
}

static void commit_free(struct commit *c) {
        for (size_t i = 0; i < c->n; i++)
                args_free(&c->v[i]);
        free(c->v);
        args_free(&c->text);
}

/* The first error of the commands built. */
static int commit_err(const struct commit *c) {
        for (size_t i = 0; i < c->n && c->err == 0; i++)
                if (c->v[i].err < 0)
                        return c->v[i].err;
        return c->err < 0 ? c->err : c->text.err;
}

/* A command of a fixed word and a key. */
static struct args *cmd_key(struct commit *c, const struct mcd_store *s, const char *cmd, const char *kind,
                            int32_t partition) {
        struct args *a = cmd_add(c);

        if (a) {
                args_add_str(a, cmd);
                args_add_key(a, s, kind, partition);
        }
        return a;
}

/* A partition's writes: its commit counter, offsets, marks, outbox (its
 * frames as fo has them from *k on; *k moves past them), the changelog
 * records it owes (clog_owed.h). */
static void add_partition(struct commit *c, const struct mcd_store *s, const struct mcd_store_partition *p,
                          const struct frames_out *fo, size_t *k) {
        bool marks = p->marks && p->marks[0];
        struct args *a = cmd_key(c, s, "HINCRBY", "off", p->partition);

        if (a) {
                args_add_str(a, "seq");
                args_add_str(a, "1");
        }
        if ((p->set_offsets || marks) && (a = cmd_key(c, s, "HSET", "off", p->partition))) {
                if (p->set_offsets) {
                        args_add_str(a, "rel");
                        args_addf(a, "%" PRId64, p->offsets.rel);
                        args_add_str(a, "sub");
                        args_addf(a, "%" PRId64, p->offsets.sub);
                }
                if (marks) {
                        args_add_str(a, "marks");
                        args_add_str(a, p->marks);
                }
        }
        if (p->trim > 0 && (a = cmd_key(c, s, "LTRIM", "outbox", p->partition))) {
                args_addf(a, "%zu", p->trim);
                args_add_str(a, "-1");
        }
        if (p->n_frames > 0 && (a = cmd_key(c, s, "RPUSH", "outbox", p->partition)))
                for (size_t i = 0; i < p->n_frames; i++)
                        args_add(a, fo->v[*k + i], fo->len[*k + i]);
        *k += p->n_frames;
        if (p->clog_trim > 0 && (a = cmd_key(c, s, "LTRIM", "clog_owed", p->partition))) {
                args_addf(a, "%zu", p->clog_trim);
                args_add_str(a, "-1");
        }
        if (p->clog_keys_len > 0 && (a = cmd_key(c, s, "RPUSH", "clog_owed", p->partition)))
                args_add(a, p->clog_keys, p->clog_keys_len);
        if (p->n_clog_forget > 0 && (a = cmd_key(c, s, "SREM", "clog_lost", p->partition)))
                for (size_t i = 0; i < p->n_clog_forget; i++)
                        args_add_str(a, p->clog_forget[i]);
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

/* What the customers' keys and n_due due times take in a text. */
static size_t text_size(const struct mcd_store *s, const struct mcd_store_batch *b, size_t n_due) {
        size_t n = 1 + n_due * 24;

        for (size_t i = 0; i < b->n_customers; i++)
                n += strlen(s->prefix) + 3 + strlen(b->customers[i].customer->customer_id);
        return n;
}

/* One zset's changes, ch[0] onwards: a ZADD of its ZADDs, a ZREM of its
 * ZREMs (sorted so).  Returns how many changes it took. */
static size_t add_due_group(struct commit *c, const struct mcd_store *s, struct text *t,
                            const struct due_change *ch, size_t n) {
        struct args *a = NULL;
        size_t end = 0;

        for (; end < n && ch[end].partition == ch[0].partition; end++) {
                if (end == 0 || ch[end].set != ch[end - 1].set)
                        a = cmd_key(c, s, ch[end].set ? "ZADD" : "ZREM", "due", ch[0].partition);
                if (!a)
                        continue;
                if (ch[end].set)
                        text_add(a, t, "%" PRId64, ch[end].due);
                args_add_str(a, ch[end].id);
        }
        return end;
}

/* A customer's key and state, ready for MSET. */
static void add_state(const struct mcd_store *s, struct args *argv, struct text *t,
                      const struct mcd_store_customer *sc) {
        text_add_key(argv, t, s->prefix, sc->customer->customer_id);
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

/* The transaction's writes, between MULTI and EXEC. */
static void add_writes(struct commit *c, const struct mcd_store *s, const struct mcd_store_batch *b,
                       const struct frames_out *fo, const struct due_change *ch, size_t n_ch) {
        struct text t = {.cap = text_size(s, b, n_ch)};
        struct args *a;
        size_t k = 0;

        t.buf = malloc(t.cap);
        args_keep(&c->text, t.buf);
        if (c->text.err < 0)
                return;
        for (size_t i = 0; i < b->n_partitions; i++)
                add_partition(c, s, &b->partitions[i], fo, &k);
        for (size_t i = 0; i < n_ch && c->err == 0;)
                i += add_due_group(c, s, &t, &ch[i], n_ch - i);
        if (b->n_customers > 0 && (a = cmd_add(c))) {
                args_add_str(a, "MSET");
                for (size_t i = 0; i < b->n_customers; i++)
                        add_state(s, a, &t, &b->customers[i]);
        }
}

/* The pipeline described above, the load's MGET first when n > 0; its
 * frames (zipped, if the store zips them) are fo's, which must outlive c. */
static int build_commit(struct mcd_store *s, const struct mcd_store_batch *b, const char *const *ids, size_t n,
                        struct commit *c, struct frames_out *fo) {
        struct due_change *ch;
        struct args *a;
        int r;

        if ((r = check_customers(b)) < 0 || (r = frames_list(b, fo)) < 0)
                return r;
        if (s->zip_frames)
                frames_zip(s, fo);
        if (!(ch = zalloc_array(b->n_customers + 1, sizeof(*ch))))
                return -ENOMEM;
        if (n > 0 && (a = cmd_add(c)))
                load_args(s, ids, n, a);
        c->multi = c->n;
        if ((a = cmd_add(c)))
                args_add_str(a, "MULTI");
        add_writes(c, s, b, fo, ch, due_changes(b, ch));
        if ((a = cmd_add(c)))
                args_add_str(a, "EXEC");
        free(ch);
        c->fence = c->n;
        for (size_t i = 0; i < fence_n_cmds(b); i++)
                cmd_add(c);
        if (c->err == 0)
                fence_add_watch(s, b, &c->v[c->fence]);
        return commit_err(c);
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

/* An error reply as store_reply_error maps it, EXECABORT's reason being
 * the error ("EXECABORT Transaction discarded because of: OOM ..."). */
static int exec_error(const struct mcd_store *s, const redisReply *e) {
        static const char abort[] = "EXECABORT Transaction discarded because of: ";
        redisReply reason = *e;

        if (e->len > sizeof(abort) - 1 && strncmp(e->str, abort, sizeof(abort) - 1) == 0) {
                reason.str += sizeof(abort) - 1;
                reason.len -= sizeof(abort) - 1;
        }
        return store_reply_error(s, &reason);
}

/* EXEC's reply: 1 when the writes were made, 0 when EXEC refused them (a
 * watched key changed), an error when Redis refused or failed a command
 * (queued is the first error queueing answered, or NULL).  A command that
 * failed inside EXEC leaves the others written: the fence finds a key of
 * the wrong type first and WATCHes it (store_fence.c), so nothing known
 * gets here; were anything to, the batch is logged half written and the
 * commit is unsure (-EIO), as when the connection drops before EXEC's
 * reply. */
static int exec_result(struct mcd_store *s, const redisReply *exec, const redisReply *queued, size_t n_tx) {
        if (exec->type == REDIS_REPLY_NIL && !queued)
                return 0;
        if (exec->type == REDIS_REPLY_ARRAY && exec->elements == n_tx && !queued) {
                for (size_t i = 0; i < n_tx; i++)
                        if (exec->element[i]->type == REDIS_REPLY_ERROR) {
                                store_notef(s, LOG_ERR, "Redis at %s failed command %zu of the commit's transaction "
                                            "(%s): the others were made, the batch is half written", s->where,
                                            i + 1, exec->element[i]->str);
                                return -EIO;
                        }
                return 1;
        }
        if (queued || exec->type == REDIS_REPLY_ERROR)
                return exec_error(s, queued ? queued : exec);
        return -EBADMSG;
}

static bool is_status(const redisReply *r, const char *want) {
        return r->type == REDIS_REPLY_STATUS && strcmp(r->str, want) == 0;
}

/* Reads MULTI's, the n_tx QUEUED and EXEC's replies: 1 written, 0 refused
 * by the WATCH, or an error (the connection dropped).  A MULTI not answered
 * OK, or a reply out of step, is an error. */
static int read_transaction(struct mcd_store *s, size_t n_tx) {
        redisReply *replies[2] = {NULL, NULL}, *reply = NULL, *queued = NULL;
        int r = store_read_reply(s, &replies[0]);

        if (r == 0 && !is_status(replies[0], "OK"))
                r = replies[0]->type == REDIS_REPLY_ERROR ? store_reply_error(s, replies[0]) : -EBADMSG;
        for (size_t i = 0; r == 0 && i < n_tx; i++) {
                if ((r = store_read_reply(s, &reply)) < 0)
                        break;
                if (reply->type == REDIS_REPLY_ERROR && !queued) {
                        queued = reply;
                        continue;
                }
                if (reply->type != REDIS_REPLY_ERROR && !is_status(reply, "QUEUED"))
                        r = -EBADMSG;
                freeReplyObject(reply);
        }
        if (r == 0)
                r = store_read_reply(s, &replies[1]);
        if (r == 0)
                r = exec_result(s, replies[1], queued, n_tx);
        for (int i = 0; i < 2; i++)
                if (replies[i])
                        freeReplyObject(replies[i]);
        if (queued)
                freeReplyObject(queued);
        if (r < 0)
                store_disconnect(s);
        return r;
}

/* A fence that covers b and passes its checks, read again in a round trip
 * of its own unless the one held does: 0, or the check's or an I/O
 * error. */
static int fence_ready(struct mcd_store *s, const struct mcd_store_batch *b, const struct commit *c) {
        int r = fence_check(s, b);

        if (r == 0)
                return 0;
        if ((r = store_send_commands(s, &c->v[c->fence], c->n - c->fence)) < 0)
                return r;
        if ((r = fence_read(s, b)) < 0)
                return r;
        r = fence_check(s, b);
        return r == 1 ? -EBADMSG : r;   /* the fence just read covers b */
}

/* Sends the commit and reads its replies: the first time with the load,
 * whose reply is read and handed to while_running; again, from MULTI.  1
 * written, 0 refused by the WATCH, or an error.  Once written, a fence
 * that could not be read is left for the next commit to read again. */
static int commit_try(struct mcd_store *s, const struct mcd_store_batch *b, const struct commit *c, bool first,
                      const char *const *ids, size_t n, struct mcd_customer *out, int *load_r) {
        size_t from = first ? 0 : c->multi;
        int r, written;

        if ((r = store_send_commands(s, &c->v[from], c->n - from)) < 0)
                return r;
        if (first) {
                *load_r = n > 0 ? read_load(s, ids, n, out) : 0;
                if (b->while_running)
                        b->while_running(b->while_running_ctx, *load_r);
                if (!s->ctx)
                        return *load_r < 0 ? *load_r : -ECONNRESET;
        }
        if ((written = read_transaction(s, c->fence - c->multi - 2)) < 0)
                return written;
        r = fence_read(s, b);
        return r < 0 && written == 0 ? r : written;
}

/* The next batch's load and this batch's commit in one pipeline, the load
 * first.  The load names no customer the commit writes, so it reads the
 * same before the commit as after it.  Redis writes a client's replies once
 * it has run the commands it has read whole; a commit of more than one
 * socket read (any commit worth overlapping) is still arriving when the
 * load has run, so the load's reply comes back while the transaction has
 * yet to run, and while_running applies the next batch meanwhile.  A small
 * commit may be answered with the load: the overlap is lost, nothing
 * else. */
int mcd_store_load_and_commit(struct mcd_store *s, const struct mcd_store_batch *b, const char *const *ids,
                              size_t n, struct mcd_customer *out, int *load_r) {
        struct commit c = {0};
        struct frames_out fo = {0};
        int r;

        *load_r = -ECANCELED;
        if ((r = build_commit(s, b, ids, n, &c, &fo)) == 0 && (r = store_connect(s)) == 0)
                r = fence_ready(s, b, &c);
        for (int tries = 0; r == 0 && tries < COMMIT_TRIES; tries++) {
                if ((r = commit_try(s, b, &c, tries == 0, ids, n, out, load_r)) != 0)
                        break;
                /* refused: checked again on what was read right after */
                if ((r = fence_check(s, b)) == 1)
                        r = -EBADMSG;   /* the fence just read covers b */
        }
        commit_free(&c);
        frames_out_free(&fo);
        if (s->zbuf_cap > STORE_WBUF_KEEP) {
                free(s->zbuf);
                s->zbuf = NULL;
                s->zbuf_cap = 0;
        }
        if (r == 0)
                return -EBUSY;          /* refused every time, each check passed */
        return r == 1 ? 0 : r;
}

int mcd_store_commit(struct mcd_store *s, const struct mcd_store_batch *b) {
        int load_r;

        return mcd_store_load_and_commit(s, b, NULL, 0, NULL, &load_r);
}
