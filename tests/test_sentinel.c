/* test_sentinel.c -- the store behind Redis Sentinel, against real servers:
 * one master, one replica and three redis-sentinel processes that the test
 * starts on free loopback ports (killed at the end, also when the test
 * dies: redis_server.h).
 *
 * Covers: redis.sentinels parsing; the master found through the Sentinels,
 * a dead Sentinel skipped; a master name no Sentinel knows
 * (-EHOSTUNREACH); a node the Sentinels name that answers ROLE as a replica
 * (dropped, -EIO); and a failover (SENTINEL FAILOVER): a commit refused by
 * the old master, NOREPLICAS while it is cut off from its replica and
 * READONLY once it is demoted, is -EIO with the connection dropped, and the
 * next call finds the new master through the Sentinels and commits there. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <hiredis.h>

#include "daemon/sentinel.h"
#include "daemon/store.h"
#include "handlers/rules.h"
#include "tests/redis_server.h"
#include "tests/tap.h"

#define N_SENTINELS 3

static char top[64];    /* the test's temporary folder: the servers' below it */

/* ------------------------------------------------------------ servers -- */

/* A command through a fresh connection (hiredis format); the reply or NULL. */
static redisReply *raw(int port, const char *fmt, ...) {
        struct timeval tv = {.tv_sec = 2};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        redisReply *r = NULL;
        va_list ap;

        if (c && !c->err) {
                va_start(ap, fmt);
                r = redisvCommand(c, fmt, ap);
                va_end(ap);
        }
        if (c)
                redisFree(c);
        return r;
}

/* Does a command's reply, as text, start with `want`?  (status, string,
 * error, or an array's first element) */
static bool raw_says(int port, const char *want, const char *cmd) {
        redisReply *r = raw(port, cmd), *e;
        bool yes;

        if (!r)
                return false;
        e = r->type == REDIS_REPLY_ARRAY && r->elements > 0 ? r->element[0] : r;
        yes = e->str && strncmp(e->str, want, strlen(want)) == 0;
        freeReplyObject(r);
        return yes;
}

/* The master's port that a Sentinel names, or -1. */
static int named_port(int sentinel_port, const char *name) {
        redisReply *r = raw(sentinel_port, "SENTINEL get-master-addr-by-name %s", name);
        int port = -1;

        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->str)
                port = atoi(r->element[1]->str);
        if (r)
                freeReplyObject(r);
        return port;
}

/* Polls cond(port, arg) every 50 ms for up to ms. */
static bool wait_for(bool (*cond)(int, const char *), int port, const char *arg, int ms) {
        for (int waited = 0; waited < ms; waited += 50) {
                if (cond(port, arg))
                        return true;
                usleep(50000);
        }
        return cond(port, arg);
}

static bool names_port(int sentinel_port, const char *port) {
        return named_port(sentinel_port, "mymaster") == atoi(port);
}

/* ------------------------------------------------------------- notes -- */

/* The store's notes, kept for the checks. */
static char notes[8192];

static void note(void *ctx, int priority, const char *text) {
        size_t n = strlen(notes);

        (void)ctx;
        snprintf(notes + n, sizeof(notes) - n, "%d %s\n", priority, text);
}

static bool noted(int priority, const char *text) {
        char want[512];

        snprintf(want, sizeof(want), "%d %s", priority, text);
        return strstr(notes, want) != NULL;
}

static struct mcd_store *store_via(const char *sentinels, const char *name) {
        struct mcd_store_options o = {
                .host = "127.0.0.1", .port = 1, .prefix = "t:", .timeout_ms = 1000,
                .sentinels = sentinels, .master_name = name, .note = note,
        };
        struct mcd_store *s = NULL;

        return mcd_store_new(&o, &s) < 0 ? NULL : s;
}

/* Commits customer `id` in partition 0 at generation gen. */
static int commit_one(struct mcd_store *s, const char *id, int64_t gen) {
        struct mcd_customer c;
        struct mcd_store_customer sc = {.customer = &c, .partition = 0, .due_known = true};
        struct mcd_store_partition p = {.partition = 0, .generation = gen};
        struct mcd_store_batch b = {.customers = &sc, .n_customers = 1, .partitions = &p, .n_partitions = 1};
        int r = mcd_customer_init(&c, id);

        if (r == 0)
                r = mcd_store_commit(s, &b);
        mcd_customer_clear(&c);
        return r;
}

/* --------------------------------------------------------------- tests -- */

static void test_parse(void) {
        struct mcd_hostport *v = NULL;
        char why[160];
        size_t n = 0;

        is_int(mcd_sentinels_parse(" 127.0.0.1:26379 ,[::1]:26380,s.example:1", &v, &n, why, sizeof(why)), 0,
               "a list of three parses");
        if (ok(n == 3 && v, "three entries"))
                ok(strcmp(v[0].host, "127.0.0.1") == 0 && v[0].port == 26379 && strcmp(v[1].host, "::1") == 0 &&
                           v[1].port == 26380 && strcmp(v[2].host, "s.example") == 0 && v[2].port == 1,
                   "hosts and ports, the IPv6 brackets dropped");
        free(v);
        static const char *const bad[] = {"", "a", "a:", ":1", "a:0", "a:65536", "a:1,", "a:1,,b:2", "::1:5",
                                          "[::1]5", "a b:1", "a:1x"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                v = NULL;
                is_int(mcd_sentinels_parse(bad[i], &v, &n, why, sizeof(why)), -EINVAL, "'%s' is refused: %s", bad[i],
                       why);
                ok(v == NULL, "... with nothing to free");
        }
}

/* The master found, a dead Sentinel listed first skipped and noted. */
static void test_found(const struct srv *master, const struct srv *sn) {
        char list[256];
        int dead = srv_free_port();
        int64_t rtt;
        struct mcd_store *s;

        snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", dead, sn[0].port,
                 sn[1].port, sn[2].port);
        s = store_via(list, NULL);
        if (!ok(s != NULL, "store with four Sentinels, the first dead"))
                return;
        is_str(mcd_store_where(s), "master mymaster (through the Sentinels)", "where: before any connection");
        is_int(mcd_store_ping(s, &rtt), 0, "ping reaches the master through the Sentinels");
        {
                char want[128];
                snprintf(want, sizeof(want), "127.0.0.1:%d (master mymaster)", master->port);
                is_str(mcd_store_where(s), want, "where: the master's address");
                snprintf(want, sizeof(want), "Redis master mymaster is at 127.0.0.1:%d (Redis Sentinel 127.0.0.1:%d)",
                         master->port, sn[0].port);
                ok(noted(LOG_NOTICE, want), "noted at notice level: %s", want);
                snprintf(want, sizeof(want), "Redis Sentinel 127.0.0.1:%d: ", dead);
                ok(noted(LOG_WARNING, want), "the dead Sentinel noted at warning level");
        }
        mcd_store_free(s);
}

/* No Sentinel knows the name: -EHOSTUNREACH, each one's answer noted. */
static void test_unknown_name(const struct srv *sn) {
        char list[128];
        int64_t rtt;
        struct mcd_store *s;

        snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d", sn[0].port, sn[1].port);
        s = store_via(list, "nosuch");
        if (!ok(s != NULL, "store for a master no Sentinel knows"))
                return;
        notes[0] = '\0';
        is_int(mcd_store_ping(s, &rtt), -EHOSTUNREACH, "ping: -EHOSTUNREACH");
        ok(noted(LOG_WARNING, "") && strstr(notes, "knows no master named 'nosuch'"), "each Sentinel's answer noted");
        mcd_store_free(s);
}

/* A Sentinel naming a replica (a stale view): ROLE says so, the connection
 * is dropped, -EIO. */
static void test_replica_named(const struct srv *replica, const struct srv *sn) {
        char list[64];
        redisReply *r = raw(sn[0].port, "SENTINEL MONITOR other 127.0.0.1 %d 2", replica->port);
        int64_t rtt;
        struct mcd_store *s;

        ok(r && r->type == REDIS_REPLY_STATUS, "a Sentinel told that the replica is master 'other'");
        if (r)
                freeReplyObject(r);
        snprintf(list, sizeof(list), "127.0.0.1:%d", sn[0].port);
        s = store_via(list, "other");
        notes[0] = '\0';
        is_int(s ? mcd_store_ping(s, &rtt) : -1, -EIO, "ping of a replica named as master: -EIO");
        ok(strstr(notes, "answers ROLE as slave, not as master"), "noted: the node answers ROLE as a replica");
        mcd_store_free(s);
        r = raw(sn[0].port, "SENTINEL REMOVE other");
        if (r)
                freeReplyObject(r);
}

static bool no_replicas(int port, const char *unused) {
        redisReply *r = raw(port, "INFO replication");
        bool yes = r && r->str && strstr(r->str, "connected_slaves:0");

        (void)unused;
        if (r)
                freeReplyObject(r);
        return yes;
}

static bool role_is(int port, const char *role) {
        return raw_says(port, role, "ROLE");
}

/* Asks for a failover until a Sentinel takes it (it must know the replica
 * first), then until they all name the replica's port. */
static bool failover(const struct srv *sn, int to_port) {
        char port[16];
        bool started = false;

        snprintf(port, sizeof(port), "%d", to_port);
        for (int i = 0; i < 100 && !started; i++) {
                started = raw_says(sn[0].port, "OK", "SENTINEL FAILOVER mymaster");
                if (!started)
                        usleep(100000);
        }
        for (int i = 0; started && i < N_SENTINELS; i++)
                started = wait_for(names_port, sn[i].port, port, 20000);
        return started;
}

static void test_failover(struct srv *master, struct srv *replica, const struct srv *sn) {
        char list[128], want[160];
        int64_t gen = 0, rtt;
        struct mcd_store *a, *b;
        redisReply *r;

        snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", sn[0].port, sn[1].port, sn[2].port);
        a = store_via(list, NULL);
        b = store_via(list, NULL);
        if (!ok(a && b, "two stores through the Sentinels"))
                goto out;
        is_int(mcd_store_init_meta(a, NULL), 0, "meta initialised on the master");
        is_int(mcd_store_claim(a, 0, 0, 0, &gen), 0, "partition 0 claimed");
        is_int(commit_one(a, "c-before", gen), 0, "a commit on the master");
        is_int(mcd_store_ping(b, &rtt), 0, "the second store connected to the master too");
        r = raw(master->port, "WAIT 1 30000");       /* under valgrind on a busy machine 5 s fell short */
        ok(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1, "the replica has it (WAIT)");
        if (r)
                freeReplyObject(r);
        /* A master cut off from its replica takes no write. */
        ok(raw_says(master->port, "OK", "CONFIG SET min-replicas-to-write 1"), "min-replicas-to-write 1");
        if (!ok(failover(sn, replica->port), "SENTINEL FAILOVER: all three Sentinels name the replica's port %d",
                replica->port))
                goto out;
        ok(wait_for(no_replicas, master->port, NULL, 5000), "the old master has lost its replica");
        notes[0] = '\0';
        is_int(commit_one(a, "c-refused", gen), -EIO, "a commit to the old master, cut off: -EIO");
        snprintf(want, sizeof(want), "Redis at 127.0.0.1:%d (master mymaster) refused a write: too few replicas in "
                                     "sync (NOREPLICAS); asking the Sentinels where the master is", master->port);
        ok(noted(LOG_WARNING, want), "noted: %s", want);

        /* Demoted, as the Sentinels do some seconds later (their CLIENT
         * KILL left out: b's connection stays open). */
        r = raw(master->port, "REPLICAOF 127.0.0.1 %d", replica->port);
        if (r)
                freeReplyObject(r);
        ok(wait_for(role_is, master->port, "slave", 5000), "the old master is a replica now");
        notes[0] = '\0';
        is_int(commit_one(b, "c-refused", gen), -EIO, "a commit to the demoted master (READONLY): -EIO");
        ok(strstr(notes, "refused a write as a read-only replica (READONLY); asking the Sentinels"),
           "noted: the write refused as READONLY");

        notes[0] = '\0';
        is_int(commit_one(a, "c-after-a", gen), 0, "the next commit goes to the new master");
        is_int(commit_one(b, "c-after-b", gen), 0, "for both stores");
        snprintf(want, sizeof(want), "127.0.0.1:%d (master mymaster)", replica->port);
        is_str(mcd_store_where(b), want, "where: the new master");
        snprintf(want, sizeof(want), "Redis master mymaster is at 127.0.0.1:%d", replica->port);
        ok(noted(LOG_NOTICE, want), "noted at notice level: the master moved");
        r = raw(replica->port, "EXISTS t:c:c-before t:c:c-after-a t:c:c-after-b t:c:c-refused");
        ok(r && r->type == REDIS_REPLY_INTEGER && r->integer == 3,
           "the new master holds the commits before and after, not the refused one");
        if (r)
                freeReplyObject(r);
out:
        mcd_store_free(a);
        mcd_store_free(b);
}

int main(void) {
        struct srv master = {0}, replica = {0}, sn[N_SENTINELS] = {0};
        int r = 0;

        signal(SIGPIPE, SIG_IGN);
        test_parse();
        if (!ok(srv_mkdtemp(top, sizeof(top), "test_sentinel") == 0, "temporary directory"))
                return tap_done();
        r = srv_start_redis(&master, top, false, 0);
        if (r == 0)
                r = srv_start_redis(&replica, top, false, master.port);
        if (!ok(r == 0, "master on port %d, replica on port %d", master.port, replica.port))
                goto out;
        for (int i = 0; i < N_SENTINELS && r == 0; i++)
                r = srv_start_sentinel(&sn[i], top, master.port);
        if (!ok(r == 0, "three Sentinels on ports %d, %d, %d", sn[0].port, sn[1].port, sn[2].port))
                goto out;
        test_found(&master, sn);
        test_unknown_name(sn);
        test_replica_named(&replica, sn);
        test_failover(&master, &replica, sn);
out:
        for (int i = 0; i < N_SENTINELS; i++)
                srv_stop(&sn[i], SIGKILL);
        srv_stop(&replica, SIGKILL);
        srv_stop(&master, SIGKILL);
        srv_rmtree(top);
        return tap_done();
}
