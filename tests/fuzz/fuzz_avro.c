/* fuzz_avro.c -- libFuzzer target for everything that decodes bytes read from
 * Kafka or Redis in the Avro path: mcd_avro_decode_event for both envelopes,
 * mcd_avro_decode_outcome, and mcd_frame_unzip and mcd_frame_decode (outbox
 * elements read back from Redis).
 *
 * The first byte of the input selects the decoder (mod 4): 0 RelationshipEvent,
 * 1 SubscriptionEvent, 2 MultichannelOutcome, 3 outbox element; the rest is
 * the message.  The codec is created once, in LLVMFuzzerInitialize.
 *
 * Besides "no crash, no leak, no undefined behaviour", what decodes must be
 * usable by the rest of the daemon (abort() otherwise):
 *   - a failed decode names a dead-letter code and a reason;
 *   - a decoded event is valid (mcd_event_validate), of the topic's envelope,
 *     and re-encodes, and the re-encoding decodes to the same event;
 *   - a decoded event can be written in the replay format (parked events are
 *     stored that way in the state JSON), and that line parses back;
 *   - a decoded outcome re-encodes and decodes to the same outcome, and can be
 *     printed as a JSON line (what `multichanneld tail` does);
 *   - a zipped outbox element unzips (or fails as -EBADMSG) to a frame of
 *     version 1 or 2, which goes through the checks below;
 *   - a decoded frame re-encodes to the same bytes (unless a header name holds
 *     a NUL byte, which the encoder cannot write), zips (or is stored as it
 *     is) and unzips to the same bytes, and an outcome frame's value goes
 *     through the outcome decoder. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/avro_codec.h"
#include "daemon/frame_zip.h"
#include "daemon/jsonl.h"
#include "daemon/outbox.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mcd_avro *codec;
static struct mcd_frame_zip *zip;

static void check_detail(int cond, const char *what, const char *detail) {
        if (!cond) {
                fprintf(stderr, "fuzz_avro: invariant broken: %s%s%s\n", what, detail ? ": " : "",
                        detail ? detail : "");
                abort();
        }
}

static void check(int cond, const char *what) {
        check_detail(cond, what, NULL);
}

/* The codec keeps a libavro-c value per writer schema from one message to
 * the next, and LeakSanitizer cannot see the pointers inside such a value
 * (libavro-c puts a 4-byte reference count before it, so they are not
 * 8-byte aligned; use_unaligned=1 sees them): the codec is freed before the
 * exit's leak check, as the daemon frees its own. */
static void free_codec(void) {
        mcd_avro_free(codec);
        codec = NULL;
        mcd_frame_zip_free(zip);
        zip = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        if (mcd_avro_new(&codec) < 0 || mcd_frame_zip_new(1, &zip) < 0) {
                fprintf(stderr, "fuzz_avro: cannot create the Avro codec or the frame zipper\n");
                abort();
        }
        atexit(free_codec);
        return 0;
}

static void check_error(const struct mcd_avro_error *err) {
        check(err->code != NULL, "a failed decode names a dead-letter code");
        check(strcmp(err->code, MCD_DLQ_BAD_MAGIC) == 0 || strcmp(err->code, MCD_DLQ_UNKNOWN_SCHEMA) == 0 ||
                      strcmp(err->code, MCD_DLQ_WRONG_TOPIC) == 0 || strcmp(err->code, MCD_DLQ_CORRUPT_AVRO) == 0 ||
                      strcmp(err->code, MCD_DLQ_INVALID_EVENT) == 0,
              "the dead-letter code is one of MCD_DLQ_*");
        check(err->message[0] != '\0', "a failed decode gives a reason");
}

static void fuzz_event(enum mcd_avro_kind kind, const uint8_t *data, size_t size) {
        struct mcd_avro_error err = { 0 };
        struct mcd_event ev = { 0 }, again = { 0 }, parsed;
        const char *why = NULL;
        char *line, *line2, reason[512];
        void *buf;
        size_t len;

        if (mcd_avro_decode_event(codec, kind, data, size, &ev, &err) < 0) {
                check_error(&err);
                return;
        }
        check_detail(mcd_event_validate(&ev, &why) == 0, "a decoded event is valid", why);
        check(mcd_event_is_relationship(ev.type) == (kind == MCD_AVRO_RELATIONSHIP_EVENT),
              "a decoded event belongs to its topic's envelope");

        line = mcd_jsonl_format_event(&ev);
        check(line != NULL, "a decoded event can be written as a JSON line");
        reason[0] = '\0';
        check_detail(mcd_jsonl_parse_event(line, strlen(line), &parsed, reason, sizeof(reason)) == 0,
                     "the JSON line of a decoded event parses back", reason);
        mcd_event_clear(&parsed);

        check(mcd_avro_encode_event(codec, &ev, &buf, &len) == 0, "a decoded event re-encodes");
        check_detail(mcd_avro_decode_event(codec, kind, buf, len, &again, &err) == 0, "a re-encoded event decodes",
                     err.message);
        free(buf);
        line2 = mcd_jsonl_format_event(&again);
        check(line2 != NULL && strcmp(line, line2) == 0, "a re-encoded event decodes to the same event");
        free(line2);
        free(line);
        mcd_event_clear(&again);
        mcd_event_clear(&ev);
}

static void fuzz_outcome(const uint8_t *data, size_t size) {
        struct mcd_avro_error err = { 0 };
        struct mcd_outcome o = { 0 }, again = { 0 };
        char *line, *line2;
        void *buf;
        size_t len;

        if (mcd_avro_decode_outcome(codec, data, size, &o, &err) < 0) {
                check_error(&err);
                return;
        }
        line = mcd_jsonl_format_outcome(&o);
        check(line != NULL, "a decoded outcome can be written as a JSON line");
        check(mcd_avro_encode_outcome(codec, &o, &buf, &len) == 0, "a decoded outcome re-encodes");
        check_detail(mcd_avro_decode_outcome(codec, buf, len, &again, &err) == 0, "a re-encoded outcome decodes",
                     err.message);
        free(buf);
        line2 = mcd_jsonl_format_outcome(&again);
        check(line2 != NULL && strcmp(line, line2) == 0, "a re-encoded outcome decodes to the same outcome");
        free(line2);
        free(line);
        mcd_outcome_clear(&again);
        mcd_outcome_clear(&o);
}

/* A frame that decodes zips (or is stored as it is) and unzips to itself. */
static void zip_round_trip(const uint8_t *data, size_t size) {
        size_t cap = mcd_frame_zip_bound(size), len = 0;
        void *zipped = malloc(cap), *back = NULL;
        ssize_t n;

        if (!zipped)
                return;
        n = mcd_frame_zip(zip, 0, data, size, zipped, cap);
        check(n >= 0 && (size_t)n < size, "a frame zips smaller, or is stored as it is");
        if (n > 0) {
                check(mcd_frame_unzip(zip, zipped, (size_t)n, &back, &len) == 0, "a zipped frame unzips");
                check(len == size && memcmp(back, data, size) == 0, "and gives the frame's bytes back");
                free(back);
        }
        free(zipped);
}

static void fuzz_frame(const uint8_t *data, size_t size);

/* An outbox element as the store reads it (store_offsets.c): a zipped
 * frame unzipped first, then decoded. */
static void fuzz_element(const uint8_t *data, size_t size) {
        void *frame = NULL;
        size_t len = 0;
        int r;

        if (!mcd_frame_is_zipped(data, size)) {
                fuzz_frame(data, size);
                return;
        }
        r = mcd_frame_unzip(zip, data, size, &frame, &len);
        check(r == 0 || r == -EBADMSG || r == -ENOMEM, "unzipping fails only as -EBADMSG (or -ENOMEM)");
        if (r < 0)
                return;
        check(len >= 2 && (((uint8_t *)frame)[0] == 1 || ((uint8_t *)frame)[0] == 2),
              "an unzipped element is a frame of version 1 or 2");
        fuzz_frame(frame, len);
        free(frame);
}

static void fuzz_frame(const uint8_t *data, size_t size) {
        char names[MCD_FRAME_MAX_HEADERS][64];
        struct mcd_frame f;
        const uint8_t *end = data + size;
        void *buf;
        size_t len;

        if (mcd_frame_decode(data, size, &f, names) < 0)
                return;
        check(f.kind == MCD_FRAME_OUTCOME || f.kind == MCD_FRAME_DEAD_LETTER, "a frame's kind is known");
        check(f.n_headers <= MCD_FRAME_MAX_HEADERS, "a frame has at most MCD_FRAME_MAX_HEADERS headers");
        check((const uint8_t *)f.id >= data && (const uint8_t *)f.id + f.id_len <= end, "the id is in the buffer");
        check((const uint8_t *)f.key >= data && (const uint8_t *)f.key + f.key_len <= end, "the key is in the buffer");
        check((const uint8_t *)f.value >= data && (const uint8_t *)f.value + f.value_len <= end,
              "the value is in the buffer");
        for (size_t i = 0; i < f.n_headers; i++) {
                const uint8_t *v = f.headers[i].value;
                check(strlen(f.headers[i].name) < 64, "a header name fits its 64 bytes");
                check(v >= data && v + f.headers[i].len <= end, "a header value is in the buffer");
        }
        check(mcd_frame_encode(&f, &buf, &len) == 0, "a decoded frame re-encodes");
        check(len <= size, "a re-encoded frame is no longer than the original");
        check(len < size || memcmp(buf, data, size) == 0, "a re-encoded frame has the same bytes");
        free(buf);
        zip_round_trip(data, size);

        if (f.kind == MCD_FRAME_OUTCOME) {
                /* Copied, so that reading past the value is caught. */
                uint8_t *value = malloc(f.value_len ? f.value_len : 1);
                if (!value)
                        return;
                if (f.value_len)
                        memcpy(value, f.value, f.value_len);
                fuzz_outcome(value, f.value_len);
                free(value);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        unsigned sel;

        if (size < 1)
                return 0;
        sel = data[0] % 4;
        data++;
        size--;
        switch (sel) {
        case 0:
                fuzz_event(MCD_AVRO_RELATIONSHIP_EVENT, data, size);
                break;
        case 1:
                fuzz_event(MCD_AVRO_SUBSCRIPTION_EVENT, data, size);
                break;
        case 2:
                fuzz_outcome(data, size);
                break;
        default:
                fuzz_element(data, size);
                break;
        }
        return 0;
}
