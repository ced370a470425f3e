/* store_internal.h -- what the store's files share, and nothing outside the
 * store includes: the store's own state, argument vectors, and the commands
 * over its one connection (store.c).  A function here that fails with an
 * I/O or protocol error has dropped the connection; the next call
 * reconnects. */
#ifndef MCD_STORE_INTERNAL_H
#define MCD_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis.h>

#include "daemon/sentinel.h"
#include "daemon/store.h"

struct mcd_par;
struct mcd_frame_zip;

/* One watched partition's keys as read right after the WATCH. */
struct store_watched {
        int32_t partition;
        int64_t gen;                 /* P gen:<p>; INT64_MIN when missing or not a number */
        int64_t seq;                 /* P off:<p> seq, 0 when missing; INT64_MIN when not a number */
        bool wrong_type;             /* a key the commit writes is of another type (store_fence.c) */
};

/* What the connection WATCHes for the next commit (store_fence.c). */
struct store_fence {
        bool ok;                     /* the keys are watched and were read after the WATCH;
                                        cleared by any other command but a read (store_append_argv) */
        bool meta;                   /* P meta existed */
        struct store_watched *v;     /* the partitions watched, in the last batch's order */
        size_t n, cap;
};

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
        struct store_fence fence;            /* the commit's WATCH, carried between commits */
        uint64_t round_trips;
        uint64_t connections;        /* connections made (and handshaken) so far */
        bool unflushed;              /* commands appended since the last reply read */
        struct mcd_par *par;         /* borrowed: threads that parse loaded customers */
        struct mcd_sentinel_watch *watch;    /* subscribed to +switch-master, or NULL */
        size_t watch_next;           /* the Sentinel the next subscription tries */
        int64_t watch_retry_us;      /* monotonic: no subscription attempt before */
        int watch_backoff_ms;        /* after a failed attempt: 1 s doubling to 30 s */
        char *wbuf;                  /* a large command's protocol (store_append_argv) */
        size_t wbuf_cap;             /* its size: kept up to STORE_WBUF_KEEP */
        bool zip_frames;             /* outbox frames are written zipped */
        struct mcd_frame_zip *zip;   /* made at the first use, again when the threads change */
        unsigned zip_threads;        /* the threads it was made for */
        char *zbuf;                  /* a commit's zipped frames, kept up to STORE_WBUF_KEEP */
        size_t zbuf_cap;
};

/* Commands of at least this many argument bytes are formatted by the store
 * and written at once; wbuf is kept between them up to STORE_WBUF_KEEP. */
#define STORE_LARGE_COMMAND (64 * 1024)
#define STORE_WBUF_KEEP (16 * 1024 * 1024)

/* ---- argument vectors */

/* A growing argument vector: borrowed or owned (freed with it) strings.
 * The first failure is kept in err and makes the later additions no-ops. */
struct args {
        const char **v;                 /* the arguments */
        size_t *len;                    /* their lengths */
        size_t n, cap;
        char **owned;                   /* the ones freed with the vector */
        size_t n_owned, cap_owned;
        int err;                        /* 0 or the first -ENOMEM */
};

/* Adds a borrowed argument (must outlive the args). */
void args_add(struct args *a, const void *p, size_t len);
void args_add_str(struct args *a, const char *s);
/* Takes ownership of a heap buffer (freed with the vector, now on failure)
 * that borrowed arguments may point into; NULL is -ENOMEM. */
void args_keep(struct args *a, char *s);
/* Adds a heap buffer of len bytes and takes ownership of it (frees it on
 * failure). */
void args_take_n(struct args *a, char *s, size_t len);
/* Adds a heap string and takes ownership of it (frees it on failure). */
void args_take(struct args *a, char *s);
void args_addf(struct args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds the key P <kind>:<partition>. */
void args_add_key(struct args *a, const struct mcd_store *s, const char *kind, int32_t partition);
/* Starts a script's command: EVAL, the script (static) and how many keys
 * the caller adds next, before the script's arguments. */
void args_add_eval(struct args *a, const char *script, int keys);
void args_free(struct args *a);

/* The key P <fmt...> as a heap string, NULL when out of memory. */
char *store_key(const struct mcd_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A bulk reply as an int64; -EBADMSG when it is not one. */
int store_parse_int64(const redisReply *r, int64_t *out);

/* Passes a line to the owner's note callback (options.note), if it set one. */
void store_notef(const struct mcd_store *s, int priority, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- outbox frames zipped (store_commit.c) */

/* The store's zipping contexts for (at least) the threads of s->par, made,
 * or made again for more threads: NULL when they could not be. */
struct mcd_frame_zip *store_zip(struct mcd_store *s);

/* ---- the connection */

/* Connects (and handshakes) unless connected.  0 or a negative errno. */
int store_connect(struct mcd_store *s);
void store_disconnect(struct mcd_store *s);
/* The errno for an error reply that is not the caller's to interpret (the
 * callers drop the connection); READONLY and NOREPLICAS are -EIO. */
int store_reply_error(const struct mcd_store *s, const redisReply *r);
/* Appends one command to the pipeline; a large one (STORE_LARGE_COMMAND)
 * is sent at once, after what was appended before it.  Any command but the
 * commit's own goes through here: unless it only reads, the commit's WATCH
 * no longer counts (s->fence.ok is cleared). */
int store_append_argv(struct mcd_store *s, int argc, const char **argv, const size_t *lens);
/* Sends n commands at once, formatted into the store's own buffer, after
 * what was appended before them; s->fence is left as it is (the commit's
 * pipeline). */
int store_send_commands(struct mcd_store *s, const struct args *cmds, size_t n);
/* Sends what is appended without waiting for a reply. */
int store_flush(struct mcd_store *s);
/* Reads one reply of a pipeline; an error reply is returned as a reply. */
int store_read_reply(struct mcd_store *s, redisReply **reply);
/* One command, one round trip.  0 with *reply set (possibly an error reply,
 * which the caller interprets), or a negative errno. */
int store_command_argv(struct mcd_store *s, int argc, const char **argv, const size_t *lens, redisReply **reply);
/* As store_command_argv, but an error reply is an error. */
int store_command(struct mcd_store *s, const struct args *a, redisReply **reply);
/* A command whose reply is an integer; a is freed. */
int store_integer_command(struct mcd_store *s, struct args *a, int64_t *out);
/* A command whose reply is an array of n: 0 with *reply set, else an error
 * (-EBADMSG for another reply, which is freed); a is freed. */
int store_array_command(struct mcd_store *s, struct args *a, size_t n, redisReply **reply);
/* Sends n commands in one pipeline and reads their n replies: one round
 * trip.  Error replies are errors; on failure every reply read is freed. */
int store_pipeline(struct mcd_store *s, struct args *cmds, size_t n, redisReply **replies);
void store_replies_free(redisReply **replies, size_t n);
/* Frees n argument vectors and the array holding them. */
void store_cmds_free(struct args *cmds, size_t n);

/* ---- the commit's fence (store_fence.c) */

/* How many commands fence_add_watch adds for b. */
size_t fence_n_cmds(const struct mcd_store_batch *b);
/* The WATCH of b's fencing keys and their reads, into fence_n_cmds(b)
 * zeroed argument vectors. */
void fence_add_watch(const struct mcd_store *s, const struct mcd_store_batch *b, struct args *cmds);
/* Reads those commands' replies into s->fence. */
int fence_read(struct mcd_store *s, const struct mcd_store_batch *b);
/* The commit's checks against s->fence: 0, -ENODATA, -ESTALE or
 * MCD_STORE_ROLLBACK; 1 when the fence does not cover b. */
int fence_check(const struct mcd_store *s, const struct mcd_store_batch *b);

#endif
