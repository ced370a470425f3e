/* aof_frames.c -- the outbox frames a run appended, read back from Redis's
 * AOF, one file each: the samples tests/bench/outbox_dict.sh trains the
 * outbox dictionary on (frame_zip.h).
 *
 *   aof_frames [-e EVERY] [-m MAX] AOF DIR
 *
 * Reads the AOF (RESP arrays of bulk strings, as Redis appends commands)
 * and writes every EVERY-th (1) element of each RPUSH to a key holding
 * "outbox:" to DIR/<n>, at most MAX (100000) of them.  Prints how many. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_ARGS 1000000
#define MAX_ARG_BYTES (512u << 20)

static void die(const char *what) {
        fprintf(stderr, "aof_frames: %s\n", what);
        exit(1);
}

/* "<c><number>\r\n": the number, or -1 when the line is not one. */
static long long header(FILE *in, int c) {
        char line[64];

        if (!fgets(line, sizeof(line), in))
                return -2;              /* the end */
        if (line[0] != c || !strchr(line, '\n'))
                return -1;
        return strtoll(line + 1, NULL, 10);
}

/* One bulk string of the current command, malloc'd in *arg and ended by a
 * NUL (in place of its CR). */
static size_t bulk(FILE *in, char **arg) {
        long long len = header(in, '$');

        if (len < 0 || (unsigned long long)len > MAX_ARG_BYTES)
                die("not an AOF: a bulk string expected");
        *arg = malloc((size_t)len + 2);
        if (!*arg || fread(*arg, 1, (size_t)len + 2, in) != (size_t)len + 2)
                die("the AOF ends in a bulk string");
        if ((*arg)[len] != '\r' || (*arg)[len + 1] != '\n')
                die("not an AOF: a bulk string without its CRLF");
        (*arg)[len] = '\0';
        return (size_t)len;
}

static void write_sample(const char *dir, unsigned long n, const char *buf, size_t len) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%lu", dir, n);
        if (!(f = fopen(path, "wb")) || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
                die("cannot write a sample");
}

int main(int argc, char **argv) {
        unsigned long every = 1, max = 100000, seen = 0, written = 0;
        long long argc_cmd;
        FILE *in;
        int o;

        while ((o = getopt(argc, argv, "e:m:")) != -1) {
                if (o == 'e')
                        every = strtoul(optarg, NULL, 10);
                else if (o == 'm')
                        max = strtoul(optarg, NULL, 10);
                else
                        die("usage: aof_frames [-e EVERY] [-m MAX] AOF DIR");
        }
        if (argc - optind != 2 || every == 0 || !(in = fopen(argv[optind], "rb")))
                die("usage: aof_frames [-e EVERY] [-m MAX] AOF DIR");
        while (written < max && (argc_cmd = header(in, '*')) != -2) {
                char *cmd = NULL, *key = NULL;
                bool outbox;
                if (argc_cmd < 1 || argc_cmd > MAX_ARGS)
                        die("not an AOF: a command expected");
                bulk(in, &cmd);
                if (argc_cmd > 1)
                        bulk(in, &key);
                outbox = key && strcasecmp(cmd, "RPUSH") == 0 && strstr(key, "outbox:");
                for (long long i = 2; i < argc_cmd; i++) {
                        char *arg = NULL;
                        size_t len = bulk(in, &arg);
                        if (outbox && seen++ % every == 0 && written < max)
                                write_sample(argv[optind + 1], written++, arg, len);
                        free(arg);
                }
                free(cmd);
                free(key);
        }
        printf("%lu\n", written);
        fclose(in);
        return 0;
}
