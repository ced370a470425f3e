/* test_parallel.c -- daemon/parallel.c: every iteration runs exactly once,
 * on one thread or several, with the index of the thread it runs on, for
 * loops short and long, and a pool serves loop after loop. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/parallel.h"
#include "tests/tap.h"

struct visit {
        atomic_int *count;
        pthread_t caller;
        atomic_int off_caller;       /* iterations run on another thread */
        unsigned threads;
        atomic_int bad_thread;       /* iterations given an index out of range, or 0 off the caller */
        bool hold_caller;            /* the caller's iterations wait until a helper has run one */
};

/* Waits, at most 30 s, until some iteration ran off the caller's thread: a
 * caller held in its chunk leaves the others to the helpers, so that whether
 * they take part does not depend on how the threads are scheduled (valgrind
 * runs one at a time). */
static void wait_for_helper(struct visit *v) {
        const struct timespec ms = {.tv_nsec = 1000000};

        for (int k = 0; k < 30000 && atomic_load(&v->off_caller) == 0; k++)
                nanosleep(&ms, NULL);
}

static void visit_one(void *ctx, size_t i, unsigned thread) {
        struct visit *v = ctx;

        if (thread >= v->threads)
                atomic_fetch_add(&v->bad_thread, 1);
        if ((thread == 0) != (bool)pthread_equal(pthread_self(), v->caller))
                atomic_fetch_add(&v->bad_thread, 1);
        atomic_fetch_add(&v->count[i], 1);
        if (!pthread_equal(pthread_self(), v->caller))
                atomic_fetch_add(&v->off_caller, 1);
        else if (v->hold_caller)
                wait_for_helper(v);
        if (i % 64 == 0) {      /* uneven iterations, so the helpers get some */
                volatile unsigned x = 0;
                for (unsigned k = 0; k < 20000; k++)
                        x += k;
        }
}

/* Runs a loop of n; true when every iteration ran once.  *helped: how many
 * ran off the caller's thread. */
static bool run_once(struct mcd_par *par, size_t n, bool hold_caller, int *helped) {
        struct visit v = {.count = calloc(n + 1, sizeof(atomic_int)), .caller = pthread_self(),
                          .threads = mcd_par_threads(par), .hold_caller = hold_caller};
        bool once = v.count != NULL;

        mcd_par_for(par, n, visit_one, &v);
        for (size_t i = 0; once && i < n; i++)
                once = atomic_load(&v.count[i]) == 1;
        once = once && atomic_load(&v.bad_thread) == 0;
        *helped = atomic_load(&v.off_caller);
        free(v.count);
        return once;
}

int main(void) {
        static const size_t sizes[] = {0, 1, 15, 16, 17, 1000, 100000};
        struct mcd_par *par = NULL;
        int helped = 0, helped_total = 0;
        bool all = true;

        ok(mcd_par_new(0, &par) == -EINVAL, "zero threads is -EINVAL");
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
                ok(run_once(NULL, sizes[k], false, &helped) && helped == 0, "no pool: %zu iterations on the caller",
                   sizes[k]);

        for (unsigned threads = 1; threads <= 4; threads *= 2) {
                if (!ok(mcd_par_new(threads, &par) == 0, "pool of %u thread(s)", threads))
                        continue;
                is_int((int)mcd_par_threads(par), (int)threads, "reports %u thread(s)", threads);
                for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
                        ok(run_once(par, sizes[k], false, &helped), "%u thread(s): %zu iterations, each once", threads,
                           sizes[k]);
                        if (sizes[k] < 16)
                                is_int(helped, 0, "a short loop stays on the caller");
                }
                helped_total = 0;
                all = true;
                for (int round = 0; round < 200; round++) {
                        all = all && run_once(par, 256, false, &helped);
                        helped_total += helped;
                }
                ok(all, "%u thread(s): 200 loops in a row, each iteration once", threads);
                if (threads == 1)
                        is_int(helped_total, 0, "one thread: everything on the caller");
                else {
                        all = run_once(par, 256, true, &helped);
                        ok(all && helped > 0, "%u threads: with the caller held, helpers ran %d of 256 iterations",
                           threads, helped);
                }
                mcd_par_free(par);
        }
        mcd_par_free(NULL);
        ok(1, "freeing NULL is a no-op");
        return tap_done();
}
