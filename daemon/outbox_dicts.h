/* outbox_dicts.h -- the zstd dictionaries of outbox frames, oldest first,
 * embedded at build time (schemas/embed_dicts.sh) from the
 * schemas/outbox-frames.<N>.zdict files.  Frames are zipped with the newest
 * and unzipped with the one whose id they carry (frame_zip.h); a dictionary
 * once shipped stays in the list. */
#ifndef MCD_OUTBOX_DICTS_H
#define MCD_OUTBOX_DICTS_H

#include <stddef.h>

#define MCD_N_OUTBOX_DICTS 2

struct mcd_outbox_dict {
        const unsigned char *data;   /* a dictionary as zstd --train writes it, its id in its header */
        size_t len;
};

extern const struct mcd_outbox_dict mcd_outbox_dicts[MCD_N_OUTBOX_DICTS];

#endif
