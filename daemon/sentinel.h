/* sentinel.h -- where a Redis master is, as Redis Sentinel says it is
 * (hiredis 0.14, blocking connections, one per question).
 *
 * Used by the store (store.c) when redis.sentinels is set, and by the
 * configuration (config.c) to check that key.  Sentinels are asked without
 * a password: Sentinel's own requirepass is not supported. */
#ifndef MCD_SENTINEL_H
#define MCD_SENTINEL_H

#include <stddef.h>

#define MCD_HOST_MAX 256

struct redisReply;

struct mcd_hostport {
        char host[MCD_HOST_MAX];     /* a name or an address; an IPv6 address without brackets */
        int port;                    /* 1..65535 */
};

/* Called with something worth logging: a syslog priority and one line. */
typedef void mcd_sentinel_note_fn(void *ctx, int priority, const char *text);

/* Parses redis.sentinels: "host:port,host:port", blanks around an entry
 * allowed, an IPv6 host in brackets.  0 with *out (free() it) holding *n >= 1
 * entries; -EINVAL with why[] naming the bad entry; -ENOMEM. */
int mcd_sentinels_parse(const char *list, struct mcd_hostport **out, size_t *n, char *why, size_t whylen);

/* a as "host:port" ("[v6]:port"), written to buf; returns buf. */
const char *mcd_hostport_str(const struct mcd_hostport *a, char *buf, size_t len);

/* Asks each Sentinel in turn (timeout_ms to connect, and again to answer)
 * for the address of master `name` (SENTINEL get-master-addr-by-name).  0
 * with *master set and *by the index of the Sentinel that answered;
 * -EHOSTUNREACH when none named it (each one's failure noted at warning
 * level, if note is set); -ENOMEM. */
int mcd_sentinel_master(const struct mcd_hostport *sentinels, size_t n, const char *name, int timeout_ms,
                        struct mcd_hostport *master, size_t *by, mcd_sentinel_note_fn *note, void *ctx);

/* ---- +switch-master: a subscription to one Sentinel's announcements */

struct mcd_sentinel_watch;

/* Subscribes to +switch-master on one Sentinel (blocking, timeout_ms to
 * connect and again for the answer).  0 with *out, -EIO with why[] set, or
 * -ENOMEM. */
int mcd_sentinel_watch_open(const struct mcd_hostport *sentinel, int timeout_ms, struct mcd_sentinel_watch **out,
                            char *why, size_t whylen);

/* Reads what the Sentinel announced since the last call, without blocking.
 * 1 when it announced that master `name` moved (*master is the new
 * address, the last one if several came), 0 when nothing for it came, -EIO
 * when the subscription is lost (free it; open another later). */
int mcd_sentinel_watch_poll(struct mcd_sentinel_watch *w, const char *name, struct mcd_hostport *master);

/* Closes the subscription.  Accepts NULL. */
void mcd_sentinel_watch_free(struct mcd_sentinel_watch *w);

/* Does a ROLE reply say "master"?  1 yes, 0 no, with role[] what it says
 * ("slave", "sentinel"); -EBADMSG when it is no ROLE reply (an error reply
 * among them). */
int mcd_sentinel_role_is_master(const struct redisReply *reply, char *role, size_t rolelen);

#endif
