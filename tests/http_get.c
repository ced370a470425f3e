/* http_get.c -- fetches one URL path from a loopback HTTP server, for the
 * shell tests (curl is not among the build dependencies):
 *
 *   http_get HOST:PORT PATH
 *
 * Sends a plain HTTP/1.0 GET, prints the body on stdout and exits with 0 for
 * a 2xx status, 1 for any other status (the status line goes to stderr), 2
 * for a usage error and 3 when the server cannot be reached. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define RESPONSE_MAX (1024 * 1024)

static int connect_to(const char *hostport) {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
        struct timeval tv = {.tv_sec = 10};
        struct addrinfo *res, *ai;
        char host[256];
        const char *colon = strrchr(hostport, ':');
        size_t len;
        int fd = -1;

        if (!colon || (len = (size_t)(colon - hostport)) == 0 || len >= sizeof(host))
                return -EINVAL;
        memcpy(host, hostport, len);
        host[len] = '\0';
        if (host[0] == '[' && host[len - 1] == ']') {
                memmove(host, host + 1, len - 2);
                host[len - 2] = '\0';
        }
        if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
                return -EINVAL;
        for (ai = res; ai; ai = ai->ai_next) {
                fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
                if (fd < 0)
                        continue;
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
                        break;
                close(fd);
                fd = -1;
        }
        freeaddrinfo(res);
        return fd < 0 ? -ECONNREFUSED : fd;
}

int main(int argc, char **argv) {
        static char buf[RESPONSE_MAX + 1];
        char req[1024];
        size_t n = 0;
        char *body;
        int fd, status;

        if (argc != 3 || argv[2][0] != '/') {
                fprintf(stderr, "usage: http_get HOST:PORT /PATH\n");
                return 2;
        }
        fd = connect_to(argv[1]);
        if (fd < 0) {
                fprintf(stderr, "http_get: %s: %s\n", argv[1], strerror(-fd));
                return 3;
        }
        snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", argv[2], argv[1]);
        if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
                fprintf(stderr, "http_get: write: %s\n", strerror(errno));
                close(fd);
                return 3;
        }
        for (;;) {
                ssize_t r = read(fd, buf + n, RESPONSE_MAX - n);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0 || (n += (size_t)r) == RESPONSE_MAX)
                        break;
        }
        close(fd);
        buf[n] = '\0';
        body = strstr(buf, "\r\n\r\n");
        if (!body || sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
                fprintf(stderr, "http_get: not an HTTP response\n");
                return 3;
        }
        fwrite(body + 4, 1, n - (size_t)(body + 4 - buf), stdout);
        if (status < 200 || status > 299) {
                *strchr(buf, '\r') = '\0';
                fprintf(stderr, "%s\n", buf);
                return 1;
        }
        return 0;
}
