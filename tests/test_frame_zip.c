/* test_frame_zip.c -- outbox frames zipped (frame_zip.h): the outcomes of
 * the scenarios' events, framed as the daemon frames them, zipped and
 * unzipped back byte for byte; what is stored as it is; every refusal of a
 * bad zipped frame; and through a real redis-server, a store that zips
 * writing them and one that does not reading them back, a corrupt one
 * handed on as it is and named. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>
#include <zstd.h>

#include "daemon/avro_codec.h"
#include "daemon/frame_zip.h"
#include "daemon/jsonl.h"
#include "daemon/outbox.h"
#include "daemon/outbox_dicts.h"
#include "daemon/parallel.h"
#include "daemon/store.h"
#include "handlers/rules.h"
#include "tests/redis_server.h"
#include "tests/tap.h"

#define MAX_FRAMES 4096

/* The frames of a run: each malloc'd. */
struct frames {
        void *v[MAX_FRAMES];
        size_t len[MAX_FRAMES];
        size_t n;
};

static void frames_free(struct frames *f) {
        for (size_t i = 0; i < f->n; i++)
                free(f->v[i]);
        f->n = 0;
}

/* An outcome framed as apply.c frames it: its event id, the customer as
 * key, the Avro single-object value. */
static void add_outcome_frame(struct frames *f, struct mcd_avro *avro, const struct mcd_outcome *o) {
        struct mcd_frame fr = {.kind = MCD_FRAME_OUTCOME};
        void *value = NULL;
        size_t value_len = 0;

        if (f->n == MAX_FRAMES || mcd_avro_encode_outcome(avro, o, &value, &value_len) < 0)
                return;
        fr.id = o->event_id;
        fr.id_len = strlen(o->event_id);
        fr.key = o->customer_id;
        fr.key_len = strlen(o->customer_id);
        fr.value = value;
        fr.value_len = value_len;
        if (mcd_frame_encode(&fr, &f->v[f->n], &f->len[f->n]) == 0)
                f->n++;
        free(value);
}

/* The customer of id among cs (n of them, room for 64), made if new. */
static struct mcd_customer *customer_of(struct mcd_customer *cs, size_t *n, const char *id) {
        for (size_t i = 0; i < *n; i++)
                if (strcmp(cs[i].customer_id, id) == 0)
                        return &cs[i];
        if (*n == 64 || mcd_customer_init(&cs[*n], id) < 0)
                return NULL;
        return &cs[(*n)++];
}

/* The outcomes of one scenario's events, applied in file order, framed. */
static void scenario_frames(const char *path, struct mcd_avro *avro, struct frames *f) {
        struct mcd_customer cs[64];
        size_t n_cs = 0, cap = 0;
        char *line = NULL, why[256];
        ssize_t len;
        FILE *in = fopen(path, "r");

        if (!in)
                return;
        while ((len = getline(&line, &cap, in)) > 0) {
                struct mcd_event ev;
                struct mcd_outcomes out = {0};
                struct mcd_customer *c;
                if (mcd_jsonl_parse_event(line, (size_t)len, &ev, why, sizeof(why)) < 0)
                        continue;
                if ((c = customer_of(cs, &n_cs, ev.customer_id)) &&
                    mcd_apply_event(c, &ev, ev.occurred_at, NULL, &out) == 0)
                        for (size_t i = 0; i < out.n; i++)
                                add_outcome_frame(f, avro, &out.v[i]);
                mcd_outcomes_clear(&out);
                mcd_event_clear(&ev);
        }
        for (size_t i = 0; i < n_cs; i++)
                mcd_customer_clear(&cs[i]);
        free(line);
        fclose(in);
}

/* Every scenario's outcome frames (tests/scenarios, not the expectations). */
static void all_scenario_frames(struct frames *f) {
        const char *src = getenv("MCD_SRCDIR");
        char dir[4096], path[8192];
        struct mcd_avro *avro = NULL;
        struct dirent *e;
        DIR *d;

        snprintf(dir, sizeof(dir), "%s/tests/scenarios", src ? src : ".");
        if (mcd_avro_new(&avro) < 0 || !(d = opendir(dir))) {
                mcd_avro_free(avro);
                return;
        }
        while ((e = readdir(d))) {
                size_t l = strlen(e->d_name);
                if (l < 7 || strcmp(e->d_name + l - 6, ".jsonl") != 0 || strstr(e->d_name, ".expected."))
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
                scenario_frames(path, avro, f);
        }
        closedir(d);
        mcd_avro_free(avro);
}

/* Zips frame i with thread t: the zipped bytes (malloc'd) and length, or
 * NULL with *len the result (0: stored as it is). */
static void *zip(struct mcd_frame_zip *z, unsigned t, const void *frame, size_t len, ssize_t *out_len) {
        size_t cap = mcd_frame_zip_bound(len);
        void *out = malloc(cap);

        *out_len = out ? mcd_frame_zip(z, t, frame, len, out, cap) : -ENOMEM;
        if (*out_len <= 0) {
                free(out);
                return NULL;
        }
        return out;
}

static void test_scenarios(struct mcd_frame_zip *z) {
        struct frames f = {.n = 0};
        size_t plain = 0, zipped = 0, same = 0, unzipped = 0;

        all_scenario_frames(&f);
        ok(f.n >= 20, "the scenarios give %zu outcome frames", f.n);
        for (size_t i = 0; i < f.n; i++) {
                ssize_t n;
                void *zf = zip(z, (unsigned)(i % 2), f.v[i], f.len[i], &n), *back = NULL;
                size_t back_len = 0;
                plain += f.len[i];
                if (!zf)
                        continue;
                zipped += (size_t)n;
                unzipped++;
                if (mcd_frame_unzip(z, zf, (size_t)n, &back, &back_len) == 0 && back_len == f.len[i] &&
                    memcmp(back, f.v[i], back_len) == 0 && ((unsigned char *)zf)[0] == MCD_FRAME_ZIPPED)
                        same++;
                free(back);
                free(zf);
        }
        is_int((long long)unzipped, (long long)f.n, "every outcome frame is smaller zipped");
        is_int((long long)same, (long long)f.n, "and unzips to the same bytes, on either thread");
        tap_diag("scenarios: %zu frames, %zu bytes, %zu zipped (%.2fx; their ids are not the benchmark's)", f.n,
                 plain, zipped, zipped ? (double)plain / (double)zipped : 0);
        ok(zipped * 4 < plain * 3, "zipped, they take less than three quarters of the bytes");
        frames_free(&f);
}

static void test_stored_as_is(struct mcd_frame_zip *z) {
        static const char not_frame[] = "\x07hello hello hello hello hello hello hello hello";
        unsigned char random_frame[200], out[512];
        ssize_t n;

        random_frame[0] = 1;
        random_frame[1] = 'O';
        srand(7);
        for (size_t i = 2; i < sizeof(random_frame); i++)
                random_frame[i] = (unsigned char)rand();
        is_int(mcd_frame_zip(z, 0, not_frame, sizeof(not_frame), out, sizeof(out)), 0,
               "not a frame of version 1 or 2: stored as it is");
        is_int(mcd_frame_zip(z, 0, random_frame, sizeof(random_frame), out, sizeof(out)), 0,
               "a frame zipping would not make smaller: stored as it is");
        is_int(mcd_frame_zip(z, 0, "\x01", 1, out, sizeof(out)), 0, "a one-byte element: stored as it is");
        is_int(mcd_frame_zip(z, 2, random_frame, sizeof(random_frame), out, sizeof(out)), -EINVAL,
               "a thread it has no context for: -EINVAL");
        n = mcd_frame_zip(z, 0, random_frame, sizeof(random_frame), out, 1);
        is_int(n, 0, "no room: stored as it is");
}

/* A zipped element made by hand: 3, then src compressed with the outbox
 * dictionary (dict true) or none. */
static size_t hand_zipped(const void *src, size_t len, bool dict, unsigned char *out, size_t cap) {
        ZSTD_CCtx *cc = ZSTD_createCCtx();
        size_t n;

        out[0] = MCD_FRAME_ZIPPED;
        n = dict ? ZSTD_compress_usingDict(cc, out + 1, cap - 1, src, len, mcd_outbox_dicts[0].data,
                                           mcd_outbox_dicts[0].len, 1)
                 : ZSTD_compressCCtx(cc, out + 1, cap - 1, src, len, 1);
        ZSTD_freeCCtx(cc);
        return ZSTD_isError(n) ? 0 : 1 + n;
}

/* A frame zipped by mcd_frame_zip carries a checksum of its content. */
static void test_checksum(struct mcd_frame_zip *z) {
        char value[300];
        struct mcd_frame fr = {.kind = MCD_FRAME_OUTCOME, .id = "e-1#0", .id_len = 5, .key = "c-1", .key_len = 3,
                               .value = value, .value_len = sizeof(value)};
        void *frame = NULL, *back = NULL;
        size_t len = 0, back_len = 0;
        unsigned char *zf;
        ssize_t n;

        memset(value, 'v', sizeof(value));
        if (!ok(mcd_frame_encode(&fr, &frame, &len) == 0, "a frame of a long value"))
                return;
        zf = zip(z, 0, frame, len, &n);
        ok(zf && n > 8, "zipped");
        if (zf) {
                zf[n - 1] ^= 0x40;      /* in the checksum */
                is_int(mcd_frame_unzip(z, zf, (size_t)n, &back, &back_len), -EBADMSG, "a bit flipped: -EBADMSG");
                ok(back == NULL, "and nothing given");
        }
        free(zf);
        free(frame);
}

static void test_refused(struct mcd_frame_zip *z) {
        static const char frame[] = "\x01O\0\0\0\x03id1\0\0\0\x01k\0\0\0\x05value\0\0";
        /* a zstd frame header claiming 4 GiB: magic, FHD (8-byte size), window, size */
        static const unsigned char huge[] = {MCD_FRAME_ZIPPED, 0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0x00,
                                             0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0};
        unsigned char buf[512];
        void *back = (void *)1;
        size_t back_len = 7, n;

        is_int(mcd_frame_unzip(z, frame, sizeof(frame) - 1, &back, &back_len), -EBADMSG, "a plain frame: -EBADMSG");
        ok(back == NULL && back_len == 0, "and nothing given");
        is_int(mcd_frame_unzip(z, "", 0, &back, &back_len), -EBADMSG, "nothing: -EBADMSG");
        is_int(mcd_frame_unzip(z, "\x03", 1, &back, &back_len), -EBADMSG, "the byte alone: -EBADMSG");
        is_int(mcd_frame_unzip(z, huge, sizeof(huge), &back, &back_len), -EBADMSG,
               "one claiming more than MCD_FRAME_ZIP_MAX: -EBADMSG");
        n = hand_zipped(frame, sizeof(frame) - 1, false, buf, sizeof(buf));
        ok(n > 0 && mcd_frame_unzip(z, buf, n, &back, &back_len) == -EBADMSG,
           "zipped without the dictionary (no id): -EBADMSG");
        n = hand_zipped("hello, not a frame", 18, true, buf, sizeof(buf));
        ok(n > 0 && mcd_frame_unzip(z, buf, n, &back, &back_len) == -EBADMSG,
           "with the dictionary but not a frame inside: -EBADMSG");
        n = hand_zipped(frame, sizeof(frame) - 1, true, buf, sizeof(buf));
        ok(n > 0 && mcd_frame_unzip(z, buf, n, &back, &back_len) == 0 && back_len == sizeof(frame) - 1,
           "zipped by hand with the dictionary: unzipped");
        free(back);
        ok(n > 2 && mcd_frame_unzip(z, buf, n - 2, &back, &back_len) == -EBADMSG, "cut short: -EBADMSG");
        test_checksum(z);
}

/* ---------------------------------------------------- through Redis -- */

static int notes;

static void count_note(void *ctx, int priority, const char *text) {
        (void)ctx;
        (void)priority;
        tap_diag("store note: %s", text);
        notes++;
}

static struct mcd_store *store_open(int port, bool zip_frames) {
        struct mcd_store_options o = {.host = "127.0.0.1", .port = port, .prefix = "z:", .timeout_ms = 2000,
                                      .zip_frames = zip_frames, .note = count_note};
        struct mcd_store *s = NULL;

        return mcd_store_new(&o, &s) == 0 ? s : NULL;
}

/* The outbox elements as Redis holds them: how many start with the zipped
 * byte, and their bytes in all. */
static void raw_outbox(int port, size_t *n, size_t *n_zipped, size_t *bytes) {
        struct timeval tv = {.tv_sec = 2};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        redisReply *r = c && !c->err ? redisCommand(c, "LRANGE z:outbox:0 0 -1") : NULL;

        *n = *n_zipped = *bytes = 0;
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
                (*n)++;
                *bytes += r->element[i]->len;
                *n_zipped += r->element[i]->len > 0 && r->element[i]->str[0] == MCD_FRAME_ZIPPED;
        }
        if (r)
                freeReplyObject(r);
        if (c)
                redisFree(c);
}

static bool rpush_raw(int port, const void *buf, size_t len) {
        struct timeval tv = {.tv_sec = 2};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        redisReply *r = c && !c->err ? redisCommand(c, "RPUSH z:outbox:0 %b", buf, len) : NULL;
        bool done = r && r->type == REDIS_REPLY_INTEGER;

        if (r)
                freeReplyObject(r);
        if (c)
                redisFree(c);
        return done;
}

static bool outbox_equals(struct mcd_store *s, const struct frames *want, size_t n) {
        void **got = NULL;
        size_t *lens = NULL, m = 0;
        bool same;

        if (mcd_store_read_outbox(s, 0, &got, &lens, &m) < 0)
                return false;
        same = m == n;
        for (size_t i = 0; same && i < n; i++)
                same = lens[i] == want->len[i] && memcmp(got[i], want->v[i], lens[i]) == 0;
        mcd_store_frames_free(got, lens, m);
        return same;
}

static void test_store(int port) {
        struct mcd_store *zs = store_open(port, true), *ps = store_open(port, false);
        struct mcd_par *par = NULL;
        struct frames f = {.n = 0};
        struct mcd_store_partition p = {.partition = 0};
        struct mcd_store_batch b = {.partitions = &p, .n_partitions = 1};
        size_t n, n_zipped, bytes, plain = 0;
        bool created;
        unsigned char corrupt[64];

        if (!ok(zs && ps && mcd_par_new(2, &par) == 0, "two stores (zipping, not) and two threads"))
                return;
        mcd_store_set_parallel(zs, par);
        ok(mcd_store_init_meta(zs, &created) == 0 && mcd_store_claim(zs, 0, 0, 0, &p.generation) == 0,
           "partition 0 claimed");
        all_scenario_frames(&f);
        for (size_t i = 0; i < f.n; i++)
                plain += f.len[i];
        p.frames = (const void *const *)f.v;
        p.frame_lens = f.len;
        p.n_frames = f.n;
        is_int(mcd_store_commit(zs, &b), 0, "a commit of the scenarios' %zu frames, zipped on two threads", f.n);
        raw_outbox(port, &n, &n_zipped, &bytes);
        ok(n == f.n && n_zipped == f.n, "Redis holds %zu elements, %zu of them zipped", n, n_zipped);
        ok(bytes < plain, "in %zu bytes against %zu", bytes, plain);
        ok(outbox_equals(zs, &f, f.n), "read back by the zipping store: the frames as they were");
        ok(outbox_equals(ps, &f, f.n), "and by one that does not zip");
        memcpy(corrupt, "\x03 this is not zstd at all, but it says it is", 44);
        ok(rpush_raw(port, corrupt, 44), "a corrupt zipped element appended by hand");
        notes = 0;
        f.v[f.n] = corrupt;
        f.len[f.n] = 44;
        ok(outbox_equals(ps, &f, f.n + 1), "read back as it is, after the others");
        ok(notes == 1, "and named in a note");
        f.v[f.n] = NULL;
        p.frames = NULL;
        p.n_frames = 0;
        p.trim = f.n + 1;
        is_int(mcd_store_commit(ps, &b), 0, "a commit trims them all");
        raw_outbox(port, &n, &n_zipped, &bytes);
        is_int((long long)n, 0, "the outbox is empty");
        frames_free(&f);
        mcd_store_free(zs);
        mcd_store_free(ps);
        mcd_par_free(par);
}

int main(void) {
        struct mcd_frame_zip *z = NULL;
        struct srv sv = {0};
        char top[64];

        signal(SIGPIPE, SIG_IGN);
        is_int(mcd_frame_zip_new(0, &z), -EINVAL, "no thread: -EINVAL");
        ok(z == NULL, "and nothing made");
        mcd_frame_zip_free(NULL);
        if (!ok(mcd_frame_zip_new(2, &z) == 0, "contexts for two threads"))
                return tap_done();
        test_scenarios(z);
        test_stored_as_is(z);
        test_refused(z);
        mcd_frame_zip_free(z);
        if (ok(srv_mkdtemp(top, sizeof(top), "test_frame_zip") == 0 && srv_start_redis(&sv, top, false, 0) == 0,
               "redis-server started"))
                test_store(sv.port);
        srv_stop(&sv, SIGTERM);
        srv_rmtree(top);
        return tap_done();
}
