/* notify_listen.c -- a stand-in for systemd's notification socket, for the
 * tests: binds a unix datagram socket at PATH and prints each datagram it
 * receives as one line on stdout (the datagram's newline-separated
 * assignments joined by single spaces), flushing after each, until killed.
 *
 *   notify_listen [-t] PATH
 *
 * With -t each line starts with the CLOCK_MONOTONIC time of receipt in
 * microseconds, the clock sd_notify's MONOTONIC_USEC= is read from. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DATAGRAM_MAX 8192

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int bind_path(const char *path) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        return fd;
}

/* One line: newlines become spaces, a trailing newline is dropped, other
 * control characters are shown as '?' so that a line stays a line. */
static void print_datagram(const char *buf, size_t n, bool stamp) {
        while (n > 0 && buf[n - 1] == '\n')
                n--;
        if (stamp)
                printf("%llu ", (unsigned long long)now_usec());
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)buf[i];
                putchar(c == '\n' ? ' ' : c < 0x20 ? '?' : c);
        }
        putchar('\n');
        fflush(stdout);
}

int main(int argc, char **argv) {
        static char buf[DATAGRAM_MAX];
        bool stamp = false;
        int fd;

        if (argc == 3 && strcmp(argv[1], "-t") == 0) {
                stamp = true;
                argv++;
                argc--;
        }
        if (argc != 2) {
                fprintf(stderr, "usage: notify_listen [-t] PATH\n");
                return 2;
        }
        fd = bind_path(argv[1]);
        if (fd < 0) {
                fprintf(stderr, "notify_listen: %s: %s\n", argv[1], strerror(-fd));
                return 1;
        }
        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf), MSG_TRUNC);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, "notify_listen: recv: %s\n", strerror(errno));
                        return 1;
                }
                if ((size_t)n > sizeof(buf)) {
                        fprintf(stderr, "notify_listen: datagram of %zd bytes truncated\n", n);
                        n = (ssize_t)sizeof(buf);
                }
                print_datagram(buf, (size_t)n, stamp);
        }
}
