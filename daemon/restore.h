/* restore.h -- a partition's state brought back before it is processed
 * (Kafka Streams' ProcessorStateManager and StoreChangelogReader): the
 * outbox reconciled with the output topics, Redis rebuilt from the
 * changelog, and the re-processing record that lets a rebuilt or rolled-back
 * partition apply its events again without publishing twice. */
#ifndef MCD_RESTORE_H
#define MCD_RESTORE_H

#include <stdint.h>

#include "daemon/intake.h"
#include "daemon/pair.h"
#include "daemon/publish.h"
#include "daemon/runtime.h"

struct restorer {
        struct mcd_env *env;
        struct pairs *pairs;
        struct intake *in;           /* where the input partitions end */
        struct publisher *pub;       /* what the output topics hold; frames owed */
        int64_t next_settle;         /* mono ms: redo_settle's next look (once a second) */
};

/* On taking a partition over: the frames its outbox holds are produced,
 * but those already on the output topics (from the stored marks on). */
int pair_reconcile(struct restorer *rs, struct pair *p);
/* A partition without offsets in Redis: what the changelog holds for it is
 * written back, offsets last, and the outputs already published after the
 * recorded marks looked up. */
int rebuild_partition(struct restorer *rs, struct pair *p);
/* Appends again the partition's changelog records whose append failed (see
 * restore.c). */
int pair_clog_repair(struct restorer *rs, struct pair *p);
/* At a start: a re-processing record found in Redis is taken up (its
 * outputs looked up again). */
int redo_check(struct restorer *rs, struct pair *p);
/* Redis's commit counter of the pair set forward to seq, never back (and
 * p->seq with it). */
int raise_seq(struct restorer *rs, struct pair *p, int64_t seq);
/* Redis came back older than this owner's commits (known_seq): the
 * partition re-processes from Redis's offsets under a re-processing record. */
int rollback_redo(struct restorer *rs, struct pair *p, int64_t known_seq);
/* Drops the records of the pairs that re-processed every side, have
 * nothing due by their lookup's time and whose frames are all delivered;
 * then the output ids looked up, once no pair re-processes. */
void redo_settle(struct restorer *rs);

#endif
