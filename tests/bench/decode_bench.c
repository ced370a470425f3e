/* decode_bench.c -- the cost of decoding one input event from Avro: time
 * and heap allocations per event of mcd_avro_decode_event (issue 12); and
 * of encoding one outcome (mcd_avro_encode_outcome).
 *
 *   tests/gen_events -n 20000 | tests/bench/decode_bench [-m ROUNDS]
 *
 * Reads events as JSON lines of the replay format (the generator's mix),
 * encodes each with the reader schema of its envelope, then decodes the
 * whole set ROUNDS times (default 20), clearing each event after its
 * decode, and prints key=value lines: events, rounds, ns_per_event,
 * allocs_per_event (malloc, calloc and realloc calls made during the
 * decode rounds, per event decoded) and dead_letters (0 expected); then
 * encodes as many outcomes (tests/samples.c's, every type in turn) and
 * prints ns_per_outcome and allocs_per_outcome (the copy the caller owns
 * is one; the batch path borrows the bytes and makes none).
 *
 * DESIGN: allocations are counted by replacing malloc, calloc, realloc and
 * free in this program: they forward to glibc's __libc_* functions, and
 * shared libraries (libavro-c, jansson) resolve to them too.  Under a
 * sanitizer, which owns the allocator, nothing is replaced and
 * allocs_per_event is printed as n/a.  Built by `make check`, never run as
 * a test: the figures belong in a report, not in a pass/fail. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/avro_codec.h"
#include "daemon/jsonl.h"
#include "tests/samples.h"

#if defined(__SANITIZE_ADDRESS__)
#define COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define COUNT_ALLOCS 0
#endif
#endif
#ifndef COUNT_ALLOCS
#define COUNT_ALLOCS 1
#endif

#define MAX_LINE (1 << 20)              /* longest JSON line read */
#define MAX_EVENTS 10000000             /* most events kept in memory */

static unsigned long long n_allocs;     /* malloc/calloc/realloc calls so far */

#if COUNT_ALLOCS
void *__libc_malloc(size_t size);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void __libc_free(void *p);

void *malloc(size_t size) {
        n_allocs++;
        return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
        n_allocs++;
        return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size) {
        n_allocs++;
        return __libc_realloc(p, size);
}

void free(void *p) {
        __libc_free(p);
}
#endif

/* One encoded input message. */
struct msg {
        void *buf;                      /* Avro, single-object encoded */
        size_t len;
        enum mcd_avro_kind kind;        /* its topic's envelope */
};

struct msgs {
        struct msg *v;
        size_t n, cap;
};

/* Appends one encoded event to m.  0 or -ENOMEM. */
static int push(struct msgs *m, void *buf, size_t len, enum mcd_avro_kind kind) {
        if (m->n == m->cap) {
                size_t cap = m->cap ? m->cap * 2 : 1024;
                struct msg *v = realloc(m->v, cap * sizeof(*v));

                if (!v)
                        return -ENOMEM;
                m->v = v;
                m->cap = cap;
        }
        m->v[m->n++] = (struct msg){ .buf = buf, .len = len, .kind = kind };
        return 0;
}

/* Reads JSON lines from f and encodes each event into m.  0, or a negative
 * errno after a message on stderr. */
static int load(struct mcd_avro *a, FILE *f, struct msgs *m) {
        static char line[MAX_LINE];
        char why[256];

        while (m->n < MAX_EVENTS && fgets(line, sizeof(line), f)) {
                struct mcd_event ev = { 0 };
                size_t len = strcspn(line, "\n");
                void *buf = NULL;
                size_t blen = 0;
                int r;

                if (len == 0)
                        continue;
                if (mcd_jsonl_parse_event(line, len, &ev, why, sizeof(why)) < 0) {
                        fprintf(stderr, "decode_bench: line %zu: %s\n", m->n + 1, why);
                        return -EINVAL;
                }
                r = mcd_avro_encode_event(a, &ev, &buf, &blen);
                if (r == 0 && (r = push(m, buf, blen,
                                        mcd_event_is_relationship(ev.type) ? MCD_AVRO_RELATIONSHIP_EVENT
                                                                           : MCD_AVRO_SUBSCRIPTION_EVENT)) < 0)
                        free(buf);
                mcd_event_clear(&ev);
                if (r < 0) {
                        fprintf(stderr, "decode_bench: cannot encode event %zu: %s\n", m->n + 1, strerror(-r));
                        return r;
                }
        }
        return 0;
}

static double now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Decodes every message of m `rounds` times; returns the dead letters seen. */
static size_t decode_all(struct mcd_avro *a, const struct msgs *m, unsigned rounds) {
        size_t dead = 0;

        for (unsigned k = 0; k < rounds; k++)
                for (size_t i = 0; i < m->n; i++) {
                        struct mcd_event ev = { 0 };
                        struct mcd_avro_error err;

                        if (mcd_avro_decode_event(a, m->v[i].kind, m->v[i].buf, m->v[i].len, &ev, &err) < 0)
                                dead++;
                        mcd_event_clear(&ev);
                }
        return dead;
}

/* Encodes n outcomes, every type in turn, each freed; how many failed. */
static size_t encode_outcomes(struct mcd_avro *a, size_t n) {
        struct mcd_outcome o[MCD_OUT__COUNT];
        size_t failed = 0;

        for (int t = 0; t < MCD_OUT__COUNT; t++) {
                o[t] = sample_outcome((enum mcd_outcome_type)t);
                o[t].message = "The partner can now manage the subscription; it was bought elsewhere and "
                               "remains billed there.";
        }
        for (size_t i = 0; i < n; i++) {
                void *buf = NULL;
                size_t len;

                failed += mcd_avro_encode_outcome(a, &o[i % MCD_OUT__COUNT], &buf, &len) < 0;
                free(buf);
        }
        return failed;
}

/* Prints the outcome figures of n outcomes; 0, or -EIO when one failed. */
static int bench_outcomes(struct mcd_avro *a, size_t n) {
        unsigned long long allocs;
        double t0, t1;
        size_t failed;

        encode_outcomes(a, MCD_OUT__COUNT);     /* warm up: the plan */
        allocs = n_allocs;
        t0 = now_ns();
        failed = encode_outcomes(a, n);
        t1 = now_ns();
        allocs = n_allocs - allocs;
        printf("outcomes=%zu\nns_per_outcome=%.0f\n", n, (t1 - t0) / (double)n);
        if (COUNT_ALLOCS)
                printf("allocs_per_outcome=%.2f\n", (double)allocs / (double)n);
        else
                printf("allocs_per_outcome=n/a\n");
        return failed ? -EIO : 0;
}

int main(int argc, char **argv) {
        struct mcd_avro *a = NULL;
        struct msgs m = { 0 };
        unsigned rounds = 20;
        unsigned long long allocs;
        double t0, t1, total;
        size_t dead;
        int c, rc = 1;

        while ((c = getopt(argc, argv, "m:")) != -1) {
                if (c != 'm' || (rounds = (unsigned)strtoul(optarg, NULL, 10)) == 0) {
                        fprintf(stderr, "usage: gen_events ... | decode_bench [-m ROUNDS]\n");
                        return 2;
                }
        }
        if (mcd_avro_new(&a) < 0) {
                fprintf(stderr, "decode_bench: cannot create the codec\n");
                return 1;
        }
        if (load(a, stdin, &m) < 0 || m.n == 0) {
                if (m.n == 0)
                        fprintf(stderr, "decode_bench: no events on stdin\n");
                goto out;
        }
        decode_all(a, &m, 1);           /* warm up: caches, the allocator */
        allocs = n_allocs;
        t0 = now_ns();
        dead = decode_all(a, &m, rounds);
        t1 = now_ns();
        allocs = n_allocs - allocs;
        total = (double)m.n * rounds;
        printf("events=%zu\nrounds=%u\nns_per_event=%.0f\n", m.n, rounds, (t1 - t0) / total);
        if (COUNT_ALLOCS)
                printf("allocs_per_event=%.2f\n", (double)allocs / total);
        else
                printf("allocs_per_event=n/a\n");
        printf("dead_letters=%zu\n", dead);
        rc = dead == 0 && bench_outcomes(a, (size_t)total) == 0 ? 0 : 1;
out:
        for (size_t i = 0; i < m.n; i++)
                free(m.v[i].buf);
        free(m.v);
        mcd_avro_free(a);
        return rc;
}
