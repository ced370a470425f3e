/* end_probe.h -- the broker's end of input partitions, asked off the main
 * thread.
 *
 * The merge (intake.c) lets one side of a pair go on alone only once the
 * broker itself has said, after that side's head arrived, that the other
 * side has read all its partition holds.  The main thread posts what it
 * wants asked and reads the answers back; a thread of the probe's own does
 * the asking, so that a slow or absent broker never stops the main loop. */
#ifndef MCD_END_PROBE_H
#define MCD_END_PROBE_H

#include <stdint.h>

#include "daemon/config.h"

struct mcd_end_probe;

/* A probe of the two input topics of cfg (t = 0 relationships, 1
 * subscriptions), with a Kafka handle and a thread of its own.  0, or
 * -EINVAL (librdkafka refused the configuration: logged), -ENOMEM. */
int mcd_end_probe_new(const struct mcd_config *cfg, struct mcd_end_probe **out);

/* Stops and joins the thread, waiting for a question in flight (up to its
 * timeout).  NULL is a no-op. */
void mcd_end_probe_free(struct mcd_end_probe *e);

/* Wants the end of partition `partition` of topic t asked after `since`
 * (monotonic ms): nothing to do when an answer asked after it is in, or
 * such a question is in flight.  Can't fail; a partition out of the probe's
 * range (over 65,535) is ignored. */
void mcd_end_probe_want(struct mcd_end_probe *e, int t, int32_t partition, int64_t since);

/* The latest answer for partition `partition` of topic t: its end and when
 * it was asked (monotonic ms).  0, or -ENOENT when none came. */
int mcd_end_probe_answer(struct mcd_end_probe *e, int t, int32_t partition, int64_t *end, int64_t *asked_at);

#endif
