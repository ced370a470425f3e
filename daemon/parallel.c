/* parallel.c -- fork-join over helper threads that live as long as the pool.
 *
 * The worker owns every buffer and runs on one thread; the exception is a
 * batch's per-item work that touches nothing shared (decoding an event with
 * the thread's own codec, parsing a loaded state, writing one back), which
 * is a third of its CPU time.  The caller publishes a loop, wakes the
 * helpers, and takes chunks of iterations with them from one atomic
 * counter, so that uneven elements (a customer with a long history) balance
 * out.  Once every chunk is taken the caller closes the loop and waits only
 * for the helpers that entered it: one still waking up (on two busy cores,
 * a millisecond and more) finds it closed and takes nothing, so a short
 * loop never waits for a thread that did none of it.  Helpers block every
 * signal: signals are the main thread's. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "daemon/parallel.h"

/* Iterations taken at a time, and the fewest worth waking helpers for. */
#define CHUNK 8
#define MIN_PARALLEL (2 * CHUNK)

struct mcd_par {
        pthread_mutex_t lock;
        pthread_cond_t start;        /* a loop is published, or stop */
        pthread_cond_t done;         /* the last helper left the loop */
        struct helper *helpers;
        unsigned n_helpers;
        bool stop;
        uint64_t generation;         /* loops published so far */
        bool closed;                 /* the current loop's chunks are all taken: no helper enters it */
        unsigned busy;               /* helpers that entered the current loop and are still in it */

        mcd_par_fn *fn;
        void *ctx;
        size_t n;
        atomic_size_t next;          /* first iteration not yet taken */
};

struct helper {
        pthread_t thread;
        struct mcd_par *pool;
        unsigned index;              /* 1 .. n_helpers */
};

static void run_chunks(struct mcd_par *p, unsigned thread) {
        for (;;) {
                size_t from = atomic_fetch_add(&p->next, CHUNK), to;
                if (from >= p->n)
                        return;
                to = from + CHUNK < p->n ? from + CHUNK : p->n;
                for (size_t i = from; i < to; i++)
                        p->fn(p->ctx, i, thread);
        }
}

static void *helper_main(void *arg) {
        const struct helper *h = arg;
        struct mcd_par *p = h->pool;
        uint64_t seen = 0;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                while (!p->stop && p->generation == seen)
                        pthread_cond_wait(&p->start, &p->lock);
                if (p->stop)
                        break;
                seen = p->generation;
                if (p->closed)
                        continue;       /* woke too late: every chunk was taken */
                p->busy++;
                pthread_mutex_unlock(&p->lock);
                run_chunks(p, h->index);
                pthread_mutex_lock(&p->lock);
                if (--p->busy == 0)
                        pthread_cond_signal(&p->done);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

static void stop_helpers(struct mcd_par *p, unsigned started) {
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->start);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < started; i++)
                pthread_join(p->helpers[i].thread, NULL);
}

int mcd_par_new(unsigned threads, struct mcd_par **out) {
        struct mcd_par *p;
        sigset_t all, old;
        unsigned started = 0;
        int r = 0;

        if (threads == 0)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->n_helpers = threads - 1;
        p->helpers = calloc(p->n_helpers + 1, sizeof(*p->helpers));
        if (!p->helpers) {
                free(p);
                return -ENOMEM;
        }
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->start, NULL);
        pthread_cond_init(&p->done, NULL);
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        for (; started < p->n_helpers; started++) {
                struct helper *h = &p->helpers[started];
                *h = (struct helper){.pool = p, .index = started + 1};
                r = -pthread_create(&h->thread, NULL, helper_main, h);
                if (r < 0)
                        break;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0) {
                stop_helpers(p, started);
                p->n_helpers = 0;
                mcd_par_free(p);
                return r;
        }
        *out = p;
        return 0;
}

void mcd_par_free(struct mcd_par *p) {
        if (!p)
                return;
        if (p->n_helpers > 0)
                stop_helpers(p, p->n_helpers);
        pthread_cond_destroy(&p->done);
        pthread_cond_destroy(&p->start);
        pthread_mutex_destroy(&p->lock);
        free(p->helpers);
        free(p);
}

unsigned mcd_par_threads(const struct mcd_par *p) {
        return p ? p->n_helpers + 1 : 1;
}

void mcd_par_for(struct mcd_par *p, size_t n, mcd_par_fn *fn, void *ctx) {
        if (!p || p->n_helpers == 0 || n < MIN_PARALLEL) {
                for (size_t i = 0; i < n; i++)
                        fn(ctx, i, 0);
                return;
        }
        pthread_mutex_lock(&p->lock);
        p->fn = fn;
        p->ctx = ctx;
        p->n = n;
        atomic_store(&p->next, 0);
        p->closed = false;
        p->busy = 0;
        p->generation++;
        pthread_cond_broadcast(&p->start);
        pthread_mutex_unlock(&p->lock);

        run_chunks(p, 0);

        pthread_mutex_lock(&p->lock);
        p->closed = true;
        while (p->busy > 0)
                pthread_cond_wait(&p->done, &p->lock);
        pthread_mutex_unlock(&p->lock);
}
