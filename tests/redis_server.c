/* redis_server.c -- redis-server and redis-sentinel processes for the C
 * tests (redis_server.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* nftw's FTW_DEPTH */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis.h>

#include "tests/redis_server.h"

int srv_free_port(void) {
        struct sockaddr_in a = {.sin_family = AF_INET};
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

        if (fd < 0)
                return -1;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
                port = ntohs(a.sin_port);
        close(fd);
        return port;
}

int srv_mkdtemp(char *top, size_t n, const char *name) {
        if ((size_t)snprintf(top, n, "/tmp/%s.XXXXXX", name) >= n)
                return -ENAMETOOLONG;
        return mkdtemp(top) ? 0 : -errno;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f) {
        (void)st, (void)flag, (void)f;
        return remove(path);
}

void srv_rmtree(const char *top) {
        nftw(top, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

bool srv_answers(int port) {
        struct timeval tv = {.tv_sec = 1};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
        bool yes = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;

        if (r)
                freeReplyObject(r);
        if (c)
                redisFree(c);
        return yes;
}

/* Forks argv[0] with argv, dying with the test; then waits up to 10 s for
 * it to answer on s->port.  0, -ECHILD (it exited), -ETIMEDOUT or -errno. */
static int spawn(struct srv *s, char *const argv[]) {
        s->pid = fork();
        if (s->pid < 0) {
                s->pid = 0;
                return -errno;
        }
        if (s->pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                execvp(argv[0], argv);
                _exit(127);
        }
        for (int i = 0; i < 1000; i++) {
                if (srv_answers(s->port))
                        return 0;
                if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
                        s->pid = 0;
                        return -ECHILD;
                }
                usleep(10000);
        }
        return -ETIMEDOUT;
}

/* s's port (a free one if it has none yet) and its folder TOP/KIND-PORT. */
static int place(struct srv *s, const char *top, const char *kind) {
        if (s->port == 0 && (s->port = srv_free_port()) < 0) {
                s->port = 0;
                return -EADDRNOTAVAIL;
        }
        if ((size_t)snprintf(s->dir, sizeof(s->dir), "%s/%s-%d", top, kind, s->port) >= sizeof(s->dir))
                return -ENAMETOOLONG;
        if (mkdir(s->dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int srv_start_redis(struct srv *s, const char *top, bool aof, int master_port) {
        char port[16], log[192], mport[16];
        char *argv[] = {"redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly",
                        aof ? "yes" : "no", "--dir", s->dir, "--logfile", log, "--daemonize", "no",
                        "--replicaof", "127.0.0.1", mport, NULL};
        int r = place(s, top, "redis");

        if (r < 0)
                return r;
        snprintf(port, sizeof(port), "%d", s->port);
        snprintf(log, sizeof(log), "%s/redis.log", s->dir);
        snprintf(mport, sizeof(mport), "%d", master_port);
        if (master_port == 0)
                argv[15] = NULL;
        return spawn(s, argv);
}

int srv_start_sentinel(struct srv *s, const char *top, int master_port) {
        char conf[192];
        char *argv[] = {"redis-sentinel", conf, NULL};
        int r = place(s, top, "sentinel");
        FILE *f;

        if (r < 0)
                return r;
        snprintf(conf, sizeof(conf), "%s/sentinel.conf", s->dir);
        f = fopen(conf, "we");
        if (!f)
                return -errno;
        fprintf(f, "port %d\nbind 127.0.0.1\ndir %s\nlogfile %s/sentinel.log\n"
                   "sentinel monitor mymaster 127.0.0.1 %d 2\n"
                   "sentinel down-after-milliseconds mymaster 1000\n"
                   "sentinel failover-timeout mymaster 5000\n",
                s->port, s->dir, s->dir, master_port);
        if (fclose(f) != 0)
                return -errno;
        return spawn(s, argv);
}

void srv_stop(struct srv *s, int sig) {
        if (s->pid <= 0)
                return;
        kill(s->pid, sig);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
}
