/* redis_server.h -- redis-server and redis-sentinel processes for the C
 * tests (test_store.c, test_sentinel.c): started on free loopback ports,
 * each in a folder of its own under the test's temporary folder, and killed
 * with the test if it dies (PR_SET_PDEATHSIG). */
#ifndef MCD_TESTS_REDIS_SERVER_H
#define MCD_TESTS_REDIS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct srv {
        char dir[160];          /* its data, log and configuration: TOP/redis-PORT or TOP/sentinel-PORT */
        int port;               /* on 127.0.0.1; 0 until started (then kept for a restart) */
        pid_t pid;              /* 0 when not running */
};

/* A TCP port free on 127.0.0.1 now, or -1. */
int srv_free_port(void);

/* Makes a temporary folder /tmp/NAME.XXXXXX into top (size n): 0 or -errno. */
int srv_mkdtemp(char *top, size_t n, const char *name);

/* Removes the folder top and all below it (the servers stopped first). */
void srv_rmtree(const char *top);

/* Does the server on port answer PING with PONG (within 1 s)? */
bool srv_answers(int port);

/* Starts redis-server for s under the folder top, on s->port (a free port
 * when 0), AOF on or off, a replica of 127.0.0.1:master_port when that is
 * not 0; returns once it answers PING: 0, -ECHILD if it exited, -ETIMEDOUT
 * after 10 s, or -errno.  Started again on the same port, it finds its data. */
int srv_start_redis(struct srv *s, const char *top, bool aof, int master_port);

/* Starts redis-sentinel for s under the folder top, on a free port,
 * watching 127.0.0.1:master_port as "mymaster" (quorum 2, down after 1 s,
 * failover timeout 5 s) with a configuration file of its own that it may
 * rewrite; returns once it answers PING, as srv_start_redis. */
int srv_start_sentinel(struct srv *s, const char *top, int master_port);

/* Sends sig (SIGTERM: a clean shutdown, AOF written; SIGKILL) and reaps the
 * process.  Does nothing when s is not running. */
void srv_stop(struct srv *s, int sig);

#endif
