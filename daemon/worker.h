/* worker.h -- `multichanneld run`: the long-running worker.
 *
 * Kafka in (relationships + subscriptions, co-partitioned), the rules engine,
 * Redis state and outbox as the commit point, Kafka out (outcomes, dead
 * letters, changelog).  See README "Exactly once" for the design. */
#ifndef MCD_WORKER_H
#define MCD_WORKER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/config.h"
#include "daemon/stats.h"

/* Signals the worker watches; set from signal handlers. */
struct mcd_worker_signals {
        volatile sig_atomic_t stop;
        volatile sig_atomic_t reload;
};

/* Runs until signals->stop.  cfg may be replaced on reload (the worker
 * re-reads cfg->path).  Returns 0 on a clean stop, negative errno on a fatal
 * start-up error. */
int mcd_worker_run(struct mcd_config *cfg, struct mcd_worker_signals *signals);

#endif
