/* outbox.h -- frames of the transactional outbox.
 *
 * A frame is one Kafka message the daemon owes the world: an outcome, a dead
 * letter or nothing else.  Frames are written to Redis in the same atomic
 * commit as the state that produced them (store.h), then produced; only
 * delivered frames are trimmed.  Each frame carries a deterministic id (the
 * outcome's event_id, or "dlq:<topic>:<partition>:<offset>"), sent as the
 * header "mcd.id", so that after a crash the frames already on a topic are
 * recognised and not produced twice.
 *
 * Wire form (all integers big-endian): u8 version, u8 kind, in version 2 an
 * i64 Kafka timestamp (ms), u32 id length, id, u32 key length, key, u32
 * value length, value, u16 header count, then per header: u16 name length,
 * name, u32 value length, value.  A frame with no timestamp of its own is
 * written as version 1 (as every frame was before dead letters kept their
 * input's timestamp), so an older daemon still reads outcomes' frames. */
#ifndef MCD_OUTBOX_H
#define MCD_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

enum mcd_frame_kind {
        MCD_FRAME_OUTCOME = 'O',
        MCD_FRAME_DEAD_LETTER = 'D',
};

#define MCD_FRAME_MAX_HEADERS 8
#define MCD_ID_HEADER "mcd.id"
/* An outcome's: the rules' clock it was made by (ms, decimal), the wall
 * clock or the pair's stream time, whichever fired it, and the input
 * partition whose pair made it: what a rollback's lookup of that
 * partition takes as the latest that the lost commits' timers were due by
 * (restore.c redo_cover), whoever produces the frame, whenever. */
#define MCD_CLOCK_HEADER "mcd.clock"
#define MCD_PARTITION_HEADER "mcd.partition"

struct mcd_frame_header {
        const char *name;
        const void *value;
        size_t len;
};

/* A decoded frame borrows from the buffer it was decoded from. */
struct mcd_frame {
        enum mcd_frame_kind kind;
        int64_t timestamp;           /* Kafka timestamp to produce with, ms; 0: the producer's clock */
        const char *id;
        size_t id_len;
        const void *key;
        size_t key_len;
        const void *value;
        size_t value_len;
        struct mcd_frame_header headers[MCD_FRAME_MAX_HEADERS];
        size_t n_headers;
};

/* Encodes into a malloc'd buffer. 0, -EINVAL (too many headers, name too
 * long) or -ENOMEM. */
int mcd_frame_encode(const struct mcd_frame *f, void **buf, size_t *len);

/* Decodes; f's pointers point into buf; header names are NOT NUL-terminated
 * in buf, so names are copied into names[] (caller storage, 64 bytes each).
 * 0 or -EBADMSG. */
int mcd_frame_decode(const void *buf, size_t len, struct mcd_frame *f, char names[][64]);

#endif
