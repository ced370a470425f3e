/* outbox.c -- encoding and decoding of outbox frames (see outbox.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/outbox.h"

struct wbuf {
        uint8_t *p;
        size_t n;
};

static void put(struct wbuf *w, const void *src, size_t len) {
        if (len)
                memcpy(w->p + w->n, src, len);
        w->n += len;
}

static void put_u(struct wbuf *w, uint64_t v, int bytes) {
        for (int i = bytes - 1; i >= 0; i--)
                w->p[w->n++] = (uint8_t)(v >> (8 * i));
}

int mcd_frame_encode(const struct mcd_frame *f, void **buf, size_t *len) {
        size_t size = 2 + (f->timestamp ? 8 : 0) + 4 + f->id_len + 4 + f->key_len + 4 + f->value_len + 2;
        struct wbuf w;

        if (f->n_headers > MCD_FRAME_MAX_HEADERS)
                return -EINVAL;
        for (size_t i = 0; i < f->n_headers; i++) {
                if (strlen(f->headers[i].name) >= 64)
                        return -EINVAL;
                size += 2 + strlen(f->headers[i].name) + 4 + f->headers[i].len;
        }
        w.p = malloc(size);
        if (!w.p)
                return -ENOMEM;
        w.n = 0;
        put_u(&w, f->timestamp ? 2 : 1, 1);
        put_u(&w, (uint8_t)f->kind, 1);
        if (f->timestamp)
                put_u(&w, (uint64_t)f->timestamp, 8);
        put_u(&w, f->id_len, 4);
        put(&w, f->id, f->id_len);
        put_u(&w, f->key_len, 4);
        put(&w, f->key, f->key_len);
        put_u(&w, f->value_len, 4);
        put(&w, f->value, f->value_len);
        put_u(&w, f->n_headers, 2);
        for (size_t i = 0; i < f->n_headers; i++) {
                size_t nl = strlen(f->headers[i].name);
                put_u(&w, nl, 2);
                put(&w, f->headers[i].name, nl);
                put_u(&w, f->headers[i].len, 4);
                put(&w, f->headers[i].value, f->headers[i].len);
        }
        *buf = w.p;
        *len = w.n;
        return 0;
}

struct rbuf {
        const uint8_t *p;
        size_t n, off;
};

static int get_u(struct rbuf *r, int bytes, uint64_t *v) {
        if (r->n - r->off < (size_t)bytes)
                return -EBADMSG;
        *v = 0;
        for (int i = 0; i < bytes; i++)
                *v = (*v << 8) | r->p[r->off++];
        return 0;
}

static int get_bytes(struct rbuf *r, int len_bytes, const void **out, size_t *len) {
        uint64_t l;
        if (get_u(r, len_bytes, &l) < 0 || r->n - r->off < l)
                return -EBADMSG;
        *out = r->p + r->off;
        *len = (size_t)l;
        r->off += (size_t)l;
        return 0;
}

int mcd_frame_decode(const void *buf, size_t len, struct mcd_frame *f, char names[][64]) {
        struct rbuf r = {buf, len, 0};
        uint64_t version, kind, ts = 0, nh;
        const void *id;

        memset(f, 0, sizeof(*f));
        if (get_u(&r, 1, &version) < 0 || (version != 1 && version != 2) || get_u(&r, 1, &kind) < 0 ||
            (kind != MCD_FRAME_OUTCOME && kind != MCD_FRAME_DEAD_LETTER) ||
            (version == 2 && get_u(&r, 8, &ts) < 0) ||
            get_bytes(&r, 4, &id, &f->id_len) < 0 || get_bytes(&r, 4, &f->key, &f->key_len) < 0 ||
            get_bytes(&r, 4, &f->value, &f->value_len) < 0 || get_u(&r, 2, &nh) < 0 ||
            nh > MCD_FRAME_MAX_HEADERS)
                return -EBADMSG;
        f->kind = (enum mcd_frame_kind)kind;
        f->timestamp = (int64_t)ts;
        f->id = id;
        for (size_t i = 0; i < nh; i++) {
                const void *name;
                size_t nl;
                if (get_bytes(&r, 2, &name, &nl) < 0 || nl >= 64 ||
                    get_bytes(&r, 4, &f->headers[i].value, &f->headers[i].len) < 0)
                        return -EBADMSG;
                memcpy(names[i], name, nl);
                names[i][nl] = '\0';
                f->headers[i].name = names[i];
        }
        f->n_headers = (size_t)nh;
        return r.off == len ? 0 : -EBADMSG;
}
