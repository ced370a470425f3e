/* parallel.h -- a loop's iterations split between the calling thread and
 * helper threads (fork-join).
 *
 * For the pure, per-item work of a batch: decoding its events, parsing the
 * state Redis returned and writing it back.  Each iteration must touch only
 * its own element; the loop returns once every iteration has run. */
#ifndef MCD_PARALLEL_H
#define MCD_PARALLEL_H

#include <stddef.h>

struct mcd_par;

/* A pool of threads - 1 helpers (threads counts the caller; 1 runs every
 * loop on the caller).  0 or negative errno. */
int mcd_par_new(unsigned threads, struct mcd_par **out);

/* Stops and joins the helpers.  NULL is a no-op. */
void mcd_par_free(struct mcd_par *p);

/* How many threads a loop runs on (1 for NULL). */
unsigned mcd_par_threads(const struct mcd_par *p);

/* One iteration; `thread` is 0 on the caller and 1 .. threads - 1 on the
 * helpers, for per-thread state such as a codec. */
typedef void mcd_par_fn(void *ctx, size_t i, unsigned thread);

/* Runs fn(ctx, i, thread) for every i in [0, n).  A NULL pool, or a loop
 * too short to be worth a wake-up, runs on the caller alone. */
void mcd_par_for(struct mcd_par *p, size_t n, mcd_par_fn *fn, void *ctx);

#endif
