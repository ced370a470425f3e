/* runtime.h -- what every part of the run loop shares: the handles and
 * settings it is given (struct mcd_env), its clocks, systemd's watchdog
 * keep-alive and the fault injection points of the tests.
 *
 * The parts (intake, publish, restore, tasks, batch; see README "Layout")
 * each keep their own state; this header holds only what none of them owns:
 * the configuration, the Kafka and Redis handles the worker creates, the
 * counters all of them add to, and whether Redis answers. */
#ifndef MCD_RUNTIME_H
#define MCD_RUNTIME_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "daemon/config.h"
#include "daemon/stats.h"

struct mcd_store;
struct mcd_end_probe;
struct mcd_group_offsets;
struct mcd_metrics;

/* Set up by the worker, read by every part. */
struct mcd_env {
        struct mcd_config *cfg;
        volatile sig_atomic_t *stop; /* set by SIGTERM: long waits give up */
        rd_kafka_t *consumer;        /* group member, relationships topic */
        rd_kafka_t *sub_reader;      /* assign()-only, subscriptions topic */
        rd_kafka_t *producer;
        struct mcd_end_probe *end_probe; /* asks the broker for input partitions' ends (intake.c) */
        struct mcd_store *store;
        struct mcd_group_offsets *group_offsets; /* Redis's offsets copied to the group, for lag monitors */
        struct mcd_metrics *metrics; /* NULL when off */
        struct mcd_stats st;         /* the counters every part adds to */
        bool redis_ok;               /* Redis answers; cleared by whoever finds it does not */
        bool redis_wrong_type;       /* set with redis_ok cleared: a key of the daemon's is of another type
                                        (MCD_STORE_WRONG_TYPE); the worker holds consumption back a while */
};

/* Wall clock, ms since the epoch. */
int64_t now_ms(void);
/* Monotonic clock, ms and us. */
int64_t mono_ms(void);
int64_t mono_us(void);

/* Does a store error mean Redis did not answer (rather than refused)? */
bool redis_unreachable(int r);

/* After the store error r: Redis marked not ok (consumption paused until
 * the worker finds it answers) when it did not answer, or when it holds a
 * key of the daemon's of another type (then for a backoff: worker.c
 * redis_check).  Whether it was marked.  This function can't fail. */
bool redis_failed(struct mcd_env *env, int r);

/* systemd's watchdog: enabled with its period (0: off), then kicked from the
 * main loop and from the long loops that make progress without it (a rebuild
 * reading the whole changelog).  A kick sends at most one keep-alive per
 * half period. */
void watchdog_init(uint64_t usec);
void watchdog_kick(void);

/* Fault injection for the tests of fencing and of Redis losses
 * (tests/daemon_zombie.sh, tests/daemon_redis_loss.sh): with
 * MCD_FAULT_STOP_BEFORE_COMMIT=N (or ..._PUBLISH=N, ..._CHANGELOG=N) in the
 * environment, the process stops itself (SIGSTOP) just before the Nth batch's
 * commit (or publish, or the changelog append that follows the delivery of
 * its outputs), as a stalled zombie would.  MCD_FAULT_PUSH_ENOMEM=N fails
 * the queueing of the Nth batch's outcomes for lack of memory, after the
 * commit (tests/daemon_push_enomem.sh).  Unset in production: no effect.
 * MCD_FAULT_STOP_BEFORE_CLAIM=N stops before the Nth round of claims
 * (tests/daemon_zombie.sh, case claim).  fault_env reads the variable (0
 * when unset); fault_point stops when batch == *at != 0, once (*at is
 * cleared). */
uint64_t fault_env(const char *name);
void fault_point(uint64_t *at, uint64_t batch, const char *what);

#endif
