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

/* Figures the worker keeps, for STATUS=, /metrics and the benchmark. */
struct mcd_worker_stats {
        uint64_t events[2];          /* consumed: relationships, subscriptions */
        uint64_t events_by_type[8];  /* applied, by enum mcd_event_type */
        uint64_t outcomes_by_type[9];/* by enum mcd_outcome_type */
        uint64_t rejections;         /* TransitionRejected + ResaleRejected */
        uint64_t dead_letters;
        uint64_t batches;
        uint64_t timers_fired;
        uint64_t redis_errors;
        uint64_t kafka_errors;
        int64_t lag;                 /* messages behind the high watermarks */
        int64_t last_batch_us;
        int64_t redis_rtt_us;
        int64_t parked;              /* parked events in the last batch's customers */
};

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
