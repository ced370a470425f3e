/* malloc_conf.c -- jemalloc's settings for the daemon, when it is linked
 * with jemalloc (configure --with-jemalloc, the default when found).
 *
 * DESIGN: jemalloc reads the global `malloc_conf` of the program at its
 * first allocation (before MALLOC_CONF from the environment, which still
 * wins).  The daemon's allocations are many small blocks made and freed by
 * the main thread batch after batch, a few by the batch threads and
 * librdkafka's: one arena is enough (each thread keeps its own cache of
 * blocks in front of it) and keeps the peak RSS under the 64 MiB target,
 * where jemalloc's default of four arenas per core took it to 70 MiB in
 * the benchmark.  Pages freed are given back after a second
 * (dirty_decay_ms) rather than ten, and at once once clean (muzzy). */
#include "build-config.h"

#ifdef HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>

const char *malloc_conf = "narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0";
#endif
