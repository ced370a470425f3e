/* frame_zip.h -- outbox frames compressed on their way into Redis, and
 * back: version 3 of outbox.h's wire form.
 *
 * A zipped frame is the byte 3, then one zstd frame (its content size and
 * checksum recorded) holding the frame in version 1 or 2, compressed with
 * the outbox dictionary whose id the zstd frame's header carries.
 *
 * DESIGN: an outcome's frame is about 315 bytes, and two thirds of what a
 * commit sends Redis (README, "Where Redis's time goes"): Redis parses it,
 * appends it to its AOF, ships it to its replicas, and rewrites the AOF
 * the sooner for it, although it is trimmed a batch later.  Most of its
 * bytes are the same in every outcome (the schema's fingerprint, type and
 * enum symbols, the message's templates): alone, zstd takes off a quarter;
 * with a dictionary trained on outcomes (schemas/outbox-frames.1.zdict,
 * made by tests/bench/outbox_dict.sh), four fifths.  Each frame stays one
 * element of its outbox list, so trimming, reconciliation and the marks
 * are as they were; only the store writes and reads the zipped form.  A
 * dictionary, once shipped, is kept for ever: frames left in an outbox by
 * an older daemon name theirs. */
#ifndef MCD_FRAME_ZIP_H
#define MCD_FRAME_ZIP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define MCD_FRAME_ZIPPED 3               /* a zipped frame's first byte */
#define MCD_FRAME_ZIP_MAX (64u << 20)    /* the largest frame unzipped: a zipped one claiming more is refused */

struct mcd_frame_zip;

/* Contexts for `threads` threads zipping at once (mcd_par_for's thread
 * numbers) and one unzipping.  0, -EINVAL (threads 0, or an embedded
 * dictionary without an id: a build error) or -ENOMEM. */
int mcd_frame_zip_new(unsigned threads, struct mcd_frame_zip **out);
/* Accepts NULL. */
void mcd_frame_zip_free(struct mcd_frame_zip *z);

/* Room a zipped frame of a len-byte frame may need. */
size_t mcd_frame_zip_bound(size_t len);

/* Zips frame into out (cap bytes: mcd_frame_zip_bound(len)) on thread's
 * context; threads may zip different frames at once.  Returns the zipped
 * length, or 0 when the frame is to be stored as it is: zipping would not
 * make it smaller, it is not a frame of version 1 or 2, it is larger than
 * MCD_FRAME_ZIP_MAX (unzipping would refuse it), or out is too small.
 * -EINVAL for a thread out of range. */
ssize_t mcd_frame_zip(struct mcd_frame_zip *z, unsigned thread, const void *frame, size_t len, void *out,
                      size_t cap);

/* Whether an outbox element is a zipped frame (else a plain one). */
bool mcd_frame_is_zipped(const void *buf, size_t len);

/* The frame a zipped one holds, in a malloc'd buffer; one thread at a time.
 * 0; -EBADMSG when buf is not a zipped frame, is corrupt, names a
 * dictionary this daemon does not have, claims more than MCD_FRAME_ZIP_MAX
 * bytes or does not hold a frame of version 1 or 2; -ENOMEM. */
int mcd_frame_unzip(struct mcd_frame_zip *z, const void *buf, size_t len, void **frame, size_t *frame_len);

#endif
