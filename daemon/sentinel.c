/* sentinel.c -- where a Redis master is, as Redis Sentinel says it is.
 *
 * The client side of Sentinel's protocol as its documentation for clients
 * describes it: ask the Sentinels in turn for the master's address, connect
 * to it, and check with ROLE that it is a master (the store does the last
 * two).  A question is asked at each (re)connection to Redis, which follows
 * every connection error; and one connection to a Sentinel is kept,
 * subscribed to +switch-master, so that a failover is followed when it is
 * announced rather than at the next error (a demoted master may go on
 * answering reads). */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>

#include <hiredis.h>

#include "daemon/sentinel.h"

#define BLANKS " \t"

/* ------------------------------------------------------------ parsing -- */

/* Digits only, 1..65535.  0 or -EINVAL. */
static int parse_port(const char *s, size_t len, int *port) {
        long v = 0;

        if (len == 0 || len > 5)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (s[i] - '0');
        }
        if (v < 1 || v > 65535)
                return -EINVAL;
        *port = (int)v;
        return 0;
}

/* One entry, s[0..len), blanks already trimmed: "host:port" or
 * "[v6]:port".  0 or -EINVAL. */
static int parse_entry(const char *s, size_t len, struct mcd_hostport *out) {
        const char *host = s, *colon = NULL;
        size_t hostlen;

        for (size_t i = len; i > 0 && !colon; i--)
                if (s[i - 1] == ':')
                        colon = &s[i - 1];
        if (!colon || parse_port(colon + 1, len - (size_t)(colon + 1 - s), &out->port) < 0)
                return -EINVAL;
        hostlen = (size_t)(colon - s);
        if (hostlen > 2 && s[0] == '[' && s[hostlen - 1] == ']') {
                host++;
                hostlen -= 2;           /* brackets dropped: hiredis wants the bare address */
        } else if (memchr(s, ':', hostlen) || memchr(s, '[', hostlen) || memchr(s, ']', hostlen)) {
                return -EINVAL;
        }
        if (hostlen == 0 || hostlen >= MCD_HOST_MAX || memchr(host, ' ', hostlen) || memchr(host, '\t', hostlen))
                return -EINVAL;
        memcpy(out->host, host, hostlen);
        out->host[hostlen] = '\0';
        return 0;
}

int mcd_sentinels_parse(const char *list, struct mcd_hostport **out, size_t *n, char *why, size_t whylen) {
        size_t count = 1, i = 0;
        struct mcd_hostport *v;

        *out = NULL;
        *n = 0;
        for (const char *p = list; *p; p++)
                count += *p == ',';
        v = calloc(count, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (const char *p = list; i < count; i++) {
                size_t len = strcspn(p, ","), lead = strspn(p, BLANKS);
                size_t end = len;

                while (end > lead && strchr(BLANKS, p[end - 1]))
                        end--;
                if (lead >= len || parse_entry(p + lead, end - lead, &v[i]) < 0) {
                        if (why && whylen)
                                snprintf(why, whylen, "entry %zu ('%.*s') is not host:port", i + 1,
                                         (int)(end > lead ? end - lead : 0), p + lead);
                        free(v);
                        return -EINVAL;
                }
                p += len + (p[len] == ',');
        }
        *out = v;
        *n = count;
        return 0;
}

/* --------------------------------------------------------- questions -- */

const char *mcd_hostport_str(const struct mcd_hostport *a, char *buf, size_t len) {
        snprintf(buf, len, strchr(a->host, ':') ? "[%s]:%d" : "%s:%d", a->host, a->port);
        return buf;
}

static int why_set(char *why, size_t whylen, int r, const char *fmt, const char *arg) {
        snprintf(why, whylen, fmt, arg);
        return r;
}

/* The master's address in a get-master-addr-by-name reply: [host, port].
 * 0, or -ENOENT (no such master) / -EBADMSG with why[] set. */
static int master_of_reply(const redisReply *reply, const char *name, struct mcd_hostport *master, char *why,
                           size_t whylen) {
        const redisReply *h, *p;

        if (reply->type == REDIS_REPLY_NIL)
                return why_set(why, whylen, -ENOENT, "knows no master named '%s'", name);
        if (reply->type == REDIS_REPLY_ERROR)
                return why_set(why, whylen, -EBADMSG, "answered: %s", reply->str);
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2)
                return why_set(why, whylen, -EBADMSG, "gave no address for '%s'", name);
        h = reply->element[0];
        p = reply->element[1];
        if (h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_STRING || h->len == 0 ||
            h->len >= MCD_HOST_MAX || memchr(h->str, '\0', h->len) || parse_port(p->str, p->len, &master->port) < 0)
                return why_set(why, whylen, -EBADMSG, "gave no valid address for '%s'", name);
        memcpy(master->host, h->str, h->len);
        master->host[h->len] = '\0';
        return 0;
}

/* One Sentinel, one question, one connection.  0 with *master, or a
 * negative errno with why[] set. */
static int ask_one(const struct mcd_hostport *sn, const char *name, int timeout_ms, struct mcd_hostport *master,
                   char *why, size_t whylen) {
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        redisContext *c = redisConnectWithTimeout(sn->host, sn->port, tv);
        redisReply *reply = NULL;
        int r;

        if (!c)
                return why_set(why, whylen, -ENOMEM, "%s", "out of memory");
        if (c->err || redisSetTimeout(c, tv) != REDIS_OK)
                r = why_set(why, whylen, -EIO, "%s", c->errstr[0] ? c->errstr : "cannot connect");
        else if (!(reply = redisCommand(c, "SENTINEL get-master-addr-by-name %s", name)))
                r = why_set(why, whylen, -EIO, "%s", c->errstr[0] ? c->errstr : "no answer");
        else
                r = master_of_reply(reply, name, master, why, whylen);
        if (reply)
                freeReplyObject(reply);
        redisFree(c);
        return r;
}

int mcd_sentinel_master(const struct mcd_hostport *sentinels, size_t n, const char *name, int timeout_ms,
                        struct mcd_hostport *master, size_t *by, mcd_sentinel_note_fn *note, void *ctx) {
        char why[256], addr[MCD_HOST_MAX + 8], line[600];
        int r;

        for (size_t i = 0; i < n; i++) {
                r = ask_one(&sentinels[i], name, timeout_ms, master, why, sizeof(why));
                if (r == -ENOMEM)
                        return r;
                if (r == 0) {
                        *by = i;
                        return 0;
                }
                if (note) {
                        snprintf(line, sizeof(line), "Redis Sentinel %s: %s",
                                 mcd_hostport_str(&sentinels[i], addr, sizeof(addr)), why);
                        note(ctx, LOG_WARNING, line);
                }
        }
        return -EHOSTUNREACH;
}

int mcd_sentinel_role_is_master(const struct redisReply *reply, char *role, size_t rolelen) {
        const redisReply *first;

        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1)
                return -EBADMSG;
        first = reply->element[0];
        if (first->type != REDIS_REPLY_STRING && first->type != REDIS_REPLY_STATUS)
                return -EBADMSG;
        snprintf(role, rolelen, "%.*s", (int)first->len, first->str);
        return strcmp(role, "master") == 0;
}

/* -------------------------------------------------------- +switch-master -- */

struct mcd_sentinel_watch {
        redisContext *c;             /* subscribed; read only when poll() says it is readable */
};

int mcd_sentinel_watch_open(const struct mcd_hostport *sentinel, int timeout_ms, struct mcd_sentinel_watch **out,
                            char *why, size_t whylen) {
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        struct mcd_sentinel_watch *w = calloc(1, sizeof(*w));
        redisReply *reply = NULL;
        int r = 0;

        *out = NULL;
        if (!w || !(w->c = redisConnectWithTimeout(sentinel->host, sentinel->port, tv))) {
                free(w);
                return why_set(why, whylen, -ENOMEM, "%s", "out of memory");
        }
        if (w->c->err || redisSetTimeout(w->c, tv) != REDIS_OK)
                r = why_set(why, whylen, -EIO, "%s", w->c->errstr[0] ? w->c->errstr : "cannot connect");
        else if (!(reply = redisCommand(w->c, "SUBSCRIBE +switch-master")))
                r = why_set(why, whylen, -EIO, "%s", w->c->errstr[0] ? w->c->errstr : "no answer");
        else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
                r = why_set(why, whylen, -EIO, "%s", "refused SUBSCRIBE +switch-master");
        if (reply)
                freeReplyObject(reply);
        if (r < 0) {
                mcd_sentinel_watch_free(w);
                return r;
        }
        *out = w;
        return 0;
}

/* A +switch-master message's payload, "<name> <old ip> <old port> <new ip>
 * <new port>": 1 with *master when it names `name`, else 0. */
static int switch_of_message(const redisReply *m, const char *name, struct mcd_hostport *master) {
        char n[256], host[MCD_HOST_MAX], port[8], text[600];
        const redisReply *payload;

        if (m->type != REDIS_REPLY_ARRAY || m->elements != 3 || m->element[2]->type != REDIS_REPLY_STRING)
                return 0;
        payload = m->element[2];
        if (payload->len >= sizeof(text))
                return 0;
        memcpy(text, payload->str, payload->len);
        text[payload->len] = '\0';
        if (sscanf(text, "%255s %*s %*s %255s %7s", n, host, port) != 3 || strcmp(n, name) != 0 ||
            parse_port(port, strlen(port), &master->port) < 0)
                return 0;
        snprintf(master->host, sizeof(master->host), "%s", host);
        return 1;
}

int mcd_sentinel_watch_poll(struct mcd_sentinel_watch *w, const char *name, struct mcd_hostport *master) {
        struct pollfd p = {.fd = w->c->fd, .events = POLLIN};
        void *reply;
        int moved = 0;

        if (w->c->err)
                return -EIO;
        if (poll(&p, 1, 0) > 0 && redisBufferRead(w->c) != REDIS_OK)
                return -EIO;    /* a readable socket never blocks this one read(); 0 bytes is the end */
        while (redisGetReplyFromReader(w->c, &reply) == REDIS_OK && reply) {
                moved |= switch_of_message(reply, name, master);
                freeReplyObject(reply);
        }
        return w->c->err ? -EIO : moved;
}

void mcd_sentinel_watch_free(struct mcd_sentinel_watch *w) {
        if (!w)
                return;
        if (w->c)
                redisFree(w->c);
        free(w);
}
