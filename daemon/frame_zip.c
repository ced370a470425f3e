/* frame_zip.c -- outbox frames zipped with zstd and the outbox dictionaries
 * (frame_zip.h). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "daemon/frame_zip.h"
#include "daemon/macro.h"
#include "daemon/outbox_dicts.h"

#define ZIP_LEVEL 1     /* zstd's fastest positive level: 4.8x on the benchmark's outcomes, 0.7 us a frame */

struct mcd_frame_zip {
        ZSTD_CDict *cdict;           /* the newest dictionary, for zipping */
        ZSTD_CCtx **cctx;            /* one per thread */
        unsigned threads;
        ZSTD_DDict *ddict[MCD_N_OUTBOX_DICTS];   /* every dictionary, in mcd_outbox_dicts' order */
        ZSTD_DCtx *dctx;
};

void mcd_frame_zip_free(struct mcd_frame_zip *z) {
        if (!z)
                return;
        ZSTD_freeCDict(z->cdict);
        for (unsigned t = 0; z->cctx && t < z->threads; t++)
                ZSTD_freeCCtx(z->cctx[t]);
        free(z->cctx);
        for (size_t i = 0; i < MCD_N_OUTBOX_DICTS; i++)
                ZSTD_freeDDict(z->ddict[i]);
        ZSTD_freeDCtx(z->dctx);
        free(z);
}

/* The dictionaries loaded and the contexts made: each zipping context
 * refers to the newest dictionary and records a checksum.  -EINVAL if a
 * dictionary has no id (a frame zipped without one would then pass for
 * one zipped with it), -ENOMEM if any could not be made. */
static int zip_load(struct mcd_frame_zip *z) {
        const struct mcd_outbox_dict *newest = &mcd_outbox_dicts[MCD_N_OUTBOX_DICTS - 1];

        for (size_t i = 0; i < MCD_N_OUTBOX_DICTS; i++)
                if (ZSTD_getDictID_fromDict(mcd_outbox_dicts[i].data, mcd_outbox_dicts[i].len) == 0)
                        return -EINVAL;
        if (!(z->cdict = ZSTD_createCDict(newest->data, newest->len, ZIP_LEVEL)))
                return -ENOMEM;
        for (unsigned t = 0; t < z->threads; t++) {
                if (!(z->cctx[t] = ZSTD_createCCtx()))
                        return -ENOMEM;
                if (ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx[t], ZSTD_c_checksumFlag, 1)) ||
                    ZSTD_isError(ZSTD_CCtx_refCDict(z->cctx[t], z->cdict)))
                        return -ENOMEM;
        }
        for (size_t i = 0; i < MCD_N_OUTBOX_DICTS; i++)
                if (!(z->ddict[i] = ZSTD_createDDict(mcd_outbox_dicts[i].data, mcd_outbox_dicts[i].len)))
                        return -ENOMEM;
        z->dctx = ZSTD_createDCtx();
        return z->dctx ? 0 : -ENOMEM;
}

int mcd_frame_zip_new(unsigned threads, struct mcd_frame_zip **out) {
        struct mcd_frame_zip *z;
        int r;

        *out = NULL;
        if (threads == 0)
                return -EINVAL;
        if (!(z = calloc(1, sizeof(*z))) || !(z->cctx = calloc(threads, sizeof(*z->cctx)))) {
                free(z);
                return -ENOMEM;
        }
        z->threads = threads;
        if ((r = zip_load(z)) < 0) {
                mcd_frame_zip_free(z);
                return r;
        }
        *out = z;
        return 0;
}

size_t mcd_frame_zip_bound(size_t len) {
        return 1 + ZSTD_compressBound(len);
}

/* A plain frame: version 1 or 2 (outbox.h). */
static bool is_plain_frame(const void *buf, size_t len) {
        const uint8_t *p = buf;

        return len >= 2 && (p[0] == 1 || p[0] == 2);
}

ssize_t mcd_frame_zip(struct mcd_frame_zip *z, unsigned thread, const void *frame, size_t len, void *out,
                      size_t cap) {
        size_t n;

        if (thread >= z->threads)
                return -EINVAL;
        if (!is_plain_frame(frame, len) || len > MCD_FRAME_ZIP_MAX || cap < 2)
                return 0;
        n = ZSTD_compress2(z->cctx[thread], (uint8_t *)out + 1, cap - 1, frame, len);
        if (ZSTD_isError(n) || 1 + n >= len)
                return 0;
        *(uint8_t *)out = MCD_FRAME_ZIPPED;
        return (ssize_t)(1 + n);
}

bool mcd_frame_is_zipped(const void *buf, size_t len) {
        return len >= 1 && *(const uint8_t *)buf == MCD_FRAME_ZIPPED;
}

/* The loaded dictionary of the given id, or NULL. */
static ZSTD_DDict *ddict_of(const struct mcd_frame_zip *z, unsigned id) {
        for (size_t i = 0; i < MCD_N_OUTBOX_DICTS; i++)
                if (ZSTD_getDictID_fromDDict(z->ddict[i]) == id)
                        return z->ddict[i];
        return NULL;
}

int mcd_frame_unzip(struct mcd_frame_zip *z, const void *buf, size_t len, void **frame, size_t *frame_len) {
        const uint8_t *src = (const uint8_t *)buf + 1;
        unsigned long long size;
        ZSTD_DDict *dict;
        size_t n;
        void *dst;

        *frame = NULL;
        *frame_len = 0;
        if (!mcd_frame_is_zipped(buf, len))
                return -EBADMSG;
        size = ZSTD_getFrameContentSize(src, len - 1);
        if (size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR || size > MCD_FRAME_ZIP_MAX ||
            size < 2)
                return -EBADMSG;
        if (!(dict = ddict_of(z, ZSTD_getDictID_fromFrame(src, len - 1))))
                return -EBADMSG;
        if (!(dst = malloc((size_t)size)))
                return -ENOMEM;
        n = ZSTD_decompress_usingDDict(z->dctx, dst, (size_t)size, src, len - 1, dict);
        if (ZSTD_isError(n) || n != size || !is_plain_frame(dst, n)) {
                free(dst);
                return -EBADMSG;
        }
        *frame = dst;
        *frame_len = n;
        return 0;
}
