/* make_seeds.c -- writes the seed corpora of the fuzz targets (tests/fuzz/)
 * from the shared scenarios, so that every seed is a real message.
 *
 * usage: make_seeds SCENARIO_DIR CORPUS_DIR
 *
 * CORPUS_DIR/fuzz_avro: the first byte selects the decoder as fuzz_avro.c does
 *   (0 RelationshipEvent, 1 SubscriptionEvent, 2 MultichannelOutcome, 3 an
 *   outbox frame), then the message.  One sample event of every type and one
 *   sample outcome of every type, the scenarios' events (two of each type)
 *   encoded with mcd_avro_encode_event, the outcomes the rules engine derives
 *   from them (two of each type), outbox frames (plain and zipped), and a
 *   few broken messages (bad magic, short, unknown fingerprint, wrong topic,
 *   truncated, trailing bytes, an absurd length, a zipped frame cut short).
 * CORPUS_DIR/fuzz_jsonl: every distinct input line of the scenarios, one per file,
 *   plus bad lines (invalid JSON, unknown type, missing and mistyped fields).
 * CORPUS_DIR/fuzz_replay: every scenario file, all scenarios merged, and a stream
 *   with bad lines among good ones.
 * CORPUS_DIR/fuzz_state: mcd_state_to_json of every customer after replaying each
 *   scenario, with and without a late --now (so parked events and armed
 *   timers both appear).
 *
 * File names are "<what>-<FNV-1a of the content>", so identical seeds
 * collapse into one file and a rerun rewrites the same names.  Built and run
 * by hand (tests/fuzz/run.sh builds it as BUILD/make_seeds, with
 * tests/samples.c); the corpus it writes is committed. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* asprintf */
#endif
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/avro_codec.h"
#include "daemon/frame_zip.h"
#include "daemon/jsonl.h"
#include "daemon/outbox.h"
#include "daemon/state_codec.h"
#include "daemon/replay.h"
#include "handlers/rules.h"
#include "tests/samples.h"

#define LATE INT64_C(1796083200000)     /* 2026-12-01T00:00:00.000Z, fuzz_replay's --now */
#define PER_TYPE 2                      /* scenario events / outcomes kept per type */

enum { SEL_REL, SEL_SUB, SEL_OUTCOME, SEL_FRAME };

static const char *corpus;
static struct mcd_avro *codec;
static int n_written;

static void die(const char *what) {
        fprintf(stderr, "make_seeds: %s: %s\n", what, strerror(errno));
        exit(1);
}

static uint64_t fnv1a(const void *p, size_t n) {
        const unsigned char *b = p;
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        for (size_t i = 0; i < n; i++)
                h = (h ^ b[i]) * UINT64_C(0x100000001b3);
        return h;
}

/* Writes CORPUS/<dir>/<what>-<hash>, prefixed by the selector byte when
 * sel >= 0. */
static void write_seed(const char *dir, const char *what, int sel, const void *buf, size_t len) {
        char path[4096];
        uint64_t h = fnv1a(buf, len) ^ (uint64_t)(sel + 1);
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", corpus, dir);
        if (mkdir(path, 0777) < 0 && errno != EEXIST)
                die(path);
        snprintf(path, sizeof(path), "%s/%s/%s-%016llx", corpus, dir, what, (unsigned long long)h);
        f = fopen(path, "wb");
        if (!f)
                die(path);
        if (sel >= 0)
                fputc(sel, f);
        if (len)
                fwrite(buf, 1, len, f);
        if (fclose(f) != 0)
                die(path);
        n_written++;
}

/* ------------------------------------------- samples (tests/samples.c) -- */

static int event_sel(const struct mcd_event *ev) {
        return mcd_event_is_relationship(ev->type) ? SEL_REL : SEL_SUB;
}

static void write_event(const char *what, const struct mcd_event *ev) {
        void *buf;
        size_t len;

        if (mcd_avro_encode_event(codec, ev, &buf, &len) < 0) {
                fprintf(stderr, "make_seeds: cannot encode a %s\n", mcd_event_type_name(ev->type));
                exit(1);
        }
        write_seed("fuzz_avro", what, event_sel(ev), buf, len);
        free(buf);
}

static void write_outcome(const char *what, const struct mcd_outcome *o) {
        void *buf;
        size_t len;

        if (mcd_avro_encode_outcome(codec, o, &buf, &len) < 0) {
                fprintf(stderr, "make_seeds: cannot encode a %s\n", mcd_outcome_type_name(o->type));
                exit(1);
        }
        write_seed("fuzz_avro", what, SEL_OUTCOME, buf, len);
        free(buf);
}

/* A frame as the store writes it to an outbox, zipped (frame_zip.h). */
static void write_zipped(const char *what, const void *frame, size_t len) {
        size_t cap = mcd_frame_zip_bound(len);
        struct mcd_frame_zip *z = NULL;
        void *out = malloc(cap);
        ssize_t n;

        if (!out || mcd_frame_zip_new(1, &z) < 0)
                exit(1);
        n = mcd_frame_zip(z, 0, frame, len, out, cap);
        if (n > 0) {
                write_seed("fuzz_avro", what, SEL_FRAME, out, (size_t)n);
                write_seed("fuzz_avro", "bad-zipped-truncated", SEL_FRAME, out, (size_t)n - 4);
        }
        mcd_frame_zip_free(z);
        free(out);
}

/* Outbox frames as the worker writes them: an outcome, and a dead letter
 * carrying the original message and its error headers; both zipped too. */
static void write_frames(void) {
        struct mcd_outcome o = sample_outcome(MCD_OUT_SWITCH_BLOCKED_UNTIL_TERM_END);
        struct mcd_event ev = sample_event(MCD_EV_SUBSCRIPTION_REPORTED);
        struct mcd_frame f = { 0 };
        void *val, *frame;
        size_t vlen, flen;

        if (mcd_avro_encode_outcome(codec, &o, &val, &vlen) < 0)
                exit(1);
        f.kind = MCD_FRAME_OUTCOME;
        f.id = o.event_id;
        f.id_len = strlen(o.event_id);
        f.key = o.customer_id;
        f.key_len = strlen(o.customer_id);
        f.value = val;
        f.value_len = vlen;
        f.headers[0] = (struct mcd_frame_header){ MCD_ID_HEADER, o.event_id, strlen(o.event_id) };
        f.n_headers = 1;
        if (mcd_frame_encode(&f, &frame, &flen) < 0)
                exit(1);
        write_seed("fuzz_avro", "frame-outcome", SEL_FRAME, frame, flen);
        write_seed("fuzz_avro", "bad-frame-truncated", SEL_FRAME, frame, flen - 3);
        write_zipped("frame-outcome-zipped", frame, flen);
        free(frame);
        free(val);

        if (mcd_avro_encode_event(codec, &ev, &val, &vlen) < 0)
                exit(1);
        f = (struct mcd_frame){ 0 };
        f.kind = MCD_FRAME_DEAD_LETTER;
        f.id = "dlq:subscription-events:3:1234";
        f.id_len = strlen(f.id);
        f.key = "c-1";
        f.key_len = 3;
        f.value = val;
        f.value_len = vlen;
        f.headers[0] = (struct mcd_frame_header){ MCD_ID_HEADER, f.id, f.id_len };
        f.headers[1] = (struct mcd_frame_header){ "error", "KEY_MISMATCH", 12 };
        f.headers[2] = (struct mcd_frame_header){ "error.message", "The key differs.", 16 };
        f.headers[3] = (struct mcd_frame_header){ "source.topic", "subscription-events", 19 };
        f.headers[4] = (struct mcd_frame_header){ "source.partition", "3", 1 };
        f.headers[5] = (struct mcd_frame_header){ "source.offset", "1234", 4 };
        f.n_headers = 6;
        if (mcd_frame_encode(&f, &frame, &flen) < 0)
                exit(1);
        write_seed("fuzz_avro", "frame-dead-letter", SEL_FRAME, frame, flen);
        write_zipped("frame-dead-letter-zipped", frame, flen);
        free(frame);

        f.kind = MCD_FRAME_DEAD_LETTER;
        f.value_len = 0;
        f.key_len = 0;
        f.n_headers = 0;
        if (mcd_frame_encode(&f, &frame, &flen) < 0)
                exit(1);
        write_seed("fuzz_avro", "frame-empty", SEL_FRAME, frame, flen);
        free(frame);
        free(val);
}

/* Broken messages, one of each dead-letter code the codec gives. */
static void write_bad_avro(void) {
        struct mcd_event rel = sample_event(MCD_EV_RELATIONSHIP_REQUESTED);
        struct mcd_event sub = sample_event(MCD_EV_SUBSCRIPTION_CANCELLED);
        static const unsigned char huge[] = { 0xC3, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0x0f };
        unsigned char *buf, *copy;
        size_t len;

        write_seed("fuzz_avro", "bad-short", SEL_REL, "\xC3\x01\x00\x00\x00", 5);
        write_seed("fuzz_avro", "bad-empty", SEL_SUB, "", 0);
        if (mcd_avro_encode_event(codec, &rel, (void **)&buf, &len) < 0)
                exit(1);
        copy = malloc(len + 1);
        if (!copy)
                exit(1);
        memcpy(copy, buf, len);
        copy[0] = 0x00;
        write_seed("fuzz_avro", "bad-magic", SEL_REL, copy, len);
        memcpy(copy, buf, len);
        copy[5] ^= 0x5a;
        write_seed("fuzz_avro", "bad-unknown-schema", SEL_REL, copy, len);
        write_seed("fuzz_avro", "bad-wrong-topic", SEL_SUB, buf, len);
        write_seed("fuzz_avro", "bad-truncated", SEL_REL, buf, len - 2);
        memcpy(copy, buf, len);
        copy[len] = 0;
        write_seed("fuzz_avro", "bad-trailing", SEL_REL, copy, len + 1);
        memcpy(copy, huge, 2);
        memcpy(copy + 2, buf + 2, 8);   /* a real fingerprint, then an absurd string length */
        memcpy(copy + 10, huge + 10, sizeof(huge) - 10);
        write_seed("fuzz_avro", "bad-huge-length", SEL_REL, copy, sizeof(huge));
        free(copy);
        free(buf);
        if (mcd_avro_encode_event(codec, &sub, (void **)&buf, &len) < 0)
                exit(1);
        write_seed("fuzz_avro", "bad-outcome-topic", SEL_OUTCOME, buf, len);
        free(buf);
}

/* --------------------------------------------------------- scenarios -- */

static char **scenario_files;
static size_t n_scenarios;

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_scenarios(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                die(dir);
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                char **v;

                if (n < 7 || strcmp(de->d_name + n - 6, ".jsonl") != 0 || strstr(de->d_name, ".expected."))
                        continue;
                v = realloc(scenario_files, (n_scenarios + 1) * sizeof(*v));
                if (!v)
                        die("realloc");
                scenario_files = v;
                if (asprintf(&v[n_scenarios], "%s/%s", dir, de->d_name) < 0)
                        die("asprintf");
                n_scenarios++;
        }
        closedir(d);
        qsort(scenario_files, n_scenarios, sizeof(*scenario_files), cmp_str);
}

static char *slurp(const char *path, size_t *len) {
        FILE *f = fopen(path, "rb");
        char *buf = NULL;
        size_t cap = 0, n = 0, got;

        if (!f)
                die(path);
        do {
                if (n + 4096 > cap) {
                        cap = (cap + 4096) * 2;
                        buf = realloc(buf, cap + 1);
                        if (!buf)
                                die("realloc");
                }
                got = fread(buf + n, 1, cap - n, f);
                n += got;
        } while (got > 0);
        fclose(f);
        buf[n] = '\0';
        *len = n;
        return buf;
}

/* The customers of one scenario, for driving the rules engine directly. */
struct customers {
        struct mcd_customer v[16];
        size_t n;
};

static struct mcd_customer *customer(struct customers *cs, const char *id) {
        for (size_t i = 0; i < cs->n; i++)
                if (strcmp(cs->v[i].customer_id, id) == 0)
                        return &cs->v[i];
        if (cs->n == sizeof(cs->v) / sizeof(cs->v[0]) || mcd_customer_init(&cs->v[cs->n], id) < 0)
                return NULL;
        return &cs->v[cs->n++];
}

static int events_kept[MCD_EV__COUNT], outcomes_kept[MCD_OUT__COUNT];

static void keep_outcomes(struct mcd_outcomes *out) {
        for (size_t i = 0; i < out->n; i++)
                if (outcomes_kept[out->v[i].type]++ < PER_TYPE)
                        write_outcome("outcome", &out->v[i]);
        mcd_outcomes_clear(out);
}

/* Every line of a scenario: a jsonl seed; the events as Avro seeds and the
 * outcomes the engine derives from them as Avro outcome seeds. */
static void from_scenario(const char *path) {
        const struct mcd_rules_config cfg = MCD_RULES_CONFIG_DEFAULT;
        struct customers cs = { .n = 0 };
        struct mcd_outcomes out;
        size_t len;
        char *text = slurp(path, &len), *line, *save = NULL;
        mcd_time_t clock = INT64_MIN;

        mcd_outcomes_init(&out);
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                struct mcd_event ev;
                struct mcd_customer *c;
                char why[256];

                write_seed("fuzz_jsonl", "line", -1, line, strlen(line));
                if (mcd_jsonl_parse_event(line, strlen(line), &ev, why, sizeof(why)) < 0)
                        continue;       /* a bad line: kept as a jsonl seed only */
                if (events_kept[ev.type]++ < PER_TYPE)
                        write_event("event", &ev);
                if (ev.occurred_at > clock)
                        clock = ev.occurred_at;
                c = customer(&cs, ev.customer_id);
                if (c && mcd_apply_event(c, &ev, clock, &cfg, &out) == 0)
                        keep_outcomes(&out);
                mcd_event_clear(&ev);
        }
        for (size_t i = 0; i < cs.n; i++) {
                while (mcd_fire_next_due(&cs.v[i], LATE, &cfg, &out) > 0)
                        keep_outcomes(&out);
                mcd_customer_clear(&cs.v[i]);
        }
        mcd_outcomes_clear(&out);
        free(text);             /* strtok_r cut it: reread it whole */
        text = slurp(path, &len);
        write_seed("fuzz_replay", "scenario", -1, text, len);
        free(text);
}

/* The states replay leaves, one JSON line per customer, as state seeds. */
static void states_of(const char *in_text, size_t in_len, bool late) {
        struct mcd_replay_options opt = {
                .has_now = late,
                .now = LATE,
                .rules = MCD_RULES_CONFIG_DEFAULT,
        };
        char *states = NULL, *line, *save = NULL;
        size_t slen = 0;
        FILE *in = fmemopen((void *)in_text, in_len, "r"), *null = fopen("/dev/null", "w");

        opt.state_out = open_memstream(&states, &slen);
        if (!in || !null || !opt.state_out)
                die("fmemopen");
        if (mcd_replay(in, null, null, &opt) < 0)
                die("replay");
        fclose(opt.state_out);
        fclose(in);
        fclose(null);
        for (line = strtok_r(states, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                struct mcd_customer c;
                char *bin = NULL;
                size_t bin_len = 0;
                write_seed("fuzz_state", late ? "state-late" : "state", -1, line, strlen(line));
                if (mcd_state_decode(line, strlen(line), &c, NULL, 0) < 0 || mcd_state_encode(&c, &bin, &bin_len) < 0)
                        die("state");
                write_seed("fuzz_state", late ? "binstate-late" : "binstate", -1, bin, bin_len);
                mcd_customer_clear(&c);
                free(bin);
        }
        free(states);
}

static void write_bad_lines(void) {
        static const char *const bad[] = {
                "{\"event_id\":\"x-2\",\"occurred_at\":\"2026-01-05T10:00:00.000Z\",\"customer_id\":\"c-1\","
                "\"cloud\":\"COMMERCIAL\",\"type\":\"RelationshipRequested\",\"partner_id\":",
                "{\"event_id\":\"x-3\",\"occurred_at\":\"2026-01-05T10:00:00.000Z\",\"customer_id\":\"c-1\","
                "\"cloud\":\"COMMERCIAL\",\"type\":\"RelationshipExploded\",\"partner_id\":\"p-1\"}",
                "{\"event_id\":\"x-4\",\"occurred_at\":\"2026-01-05T10:00:00.000Z\",\"customer_id\":\"c-1\","
                "\"cloud\":\"COMMERCIAL\",\"type\":\"RelationshipAccepted\"}",
                "{\"event_id\":\"x-5\",\"occurred_at\":\"2026-01-05T10:00:00.000Z\",\"customer_id\":\"c-1\","
                "\"cloud\":\"COMMERCIAL\",\"type\":\"RelationshipAccepted\",\"partner_id\":42}",
                "{\"event_id\":\"x-6\",\"occurred_at\":\"2026-01-05T10:00:00.000Z\",\"customer_id\":\"c-1\","
                "\"cloud\":\"COMMERCIAL\",\"type\":\"SubscriptionReported\",\"subscription_id\":\"s-1\","
                "\"offer_name\":\"M365\",\"billing\":\"LICENSE_BASED\",\"channel\":\"EA\"}",
                "{\"event_id\":\"x-7\",\"occurred_at\":\"2026-01-05T10:00:00.000Z\",\"customer_id\":\"c-1\","
                "\"cloud\":\"COMMERCIAL\",\"type\":\"SubscriptionReported\",\"subscription_id\":\"s-2\","
                "\"offer_name\":\"Azure\",\"billing\":\"USAGE_BASED\",\"channel\":\"CSP\"}",
                "{\"event_id\":\"x-8\",\"occurred_at\":\"yesterday\",\"customer_id\":\"c-1\","
                "\"cloud\":\"COMMERCIAL\",\"type\":\"RelationshipAccepted\",\"partner_id\":\"p-1\"}",
                "{\"event_id\":\"x-9\",\"occurred_at\":\"2026-02-29T10:00:00.000Z\",\"customer_id\":\"c-1\","
                "\"cloud\":\"MARS\",\"type\":\"RelationshipAccepted\",\"partner_id\":\"p-1\"}",
                "[1,2,3]",
                "{\"event_id\":\"x-11\",\"occurred_at\":\"2026-01-05T10:00:00+00:00\",\"customer_id\":\"c-1\","
                "\"cloud\":\"COMMERCIAL\",\"type\":\"SubscriptionCancelled\",\"subscription_id\":\"s-1\","
                "\"scope\":\"ENTIRE_SUBSCRIPTION\",\"services\":\"all\"}",
                "{\"event_id\":\"x-12\",\"event_id\":\"x-12\"}",
                "{\"event_id\":\"x-13\",\"occurred_at\":\"0000-01-01T00:00:00.123456789Z\",\"customer_id\":\"c-\\u00e9\","
                "\"cloud\":\"US_GOVERNMENT\",\"type\":\"SubscriptionCancelled\",\"subscription_id\":\"s-1\","
                "\"scope\":\"SOME_SERVICES\",\"services\":[\"a\",\"\\ud83d\\ude00\",null]}",
        };
        char *stream = NULL;
        size_t slen = 0;
        FILE *f = open_memstream(&stream, &slen);

        if (!f)
                die("open_memstream");
        fputs("{\"event_id\":\"r-1\",\"occurred_at\":\"2026-01-05T10:00:00.000Z\",\"customer_id\":\"c-1\","
              "\"cloud\":\"COMMERCIAL\",\"type\":\"RelationshipRequested\",\"partner_id\":\"p-1\"}\n",
              f);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                write_seed("fuzz_jsonl", "bad", -1, bad[i], strlen(bad[i]));
                fprintf(f, "%s\n\n", bad[i]);
        }
        fputs("{\"event_id\":\"a-1\",\"occurred_at\":\"2026-01-05T10:00:00.000Z\",\"customer_id\":\"c-1\","
              "\"cloud\":\"COMMERCIAL\",\"type\":\"RelationshipAccepted\",\"partner_id\":\"p-1\"}",
              f);       /* no newline at the end */
        fclose(f);
        write_seed("fuzz_replay", "badlines", -1, stream, slen);
        free(stream);
}

int main(int argc, char **argv) {
        char *all = NULL;
        size_t all_len = 0;
        FILE *merged;

        if (argc != 3) {
                fprintf(stderr, "usage: make_seeds SCENARIO_DIR CORPUS_DIR\n");
                return 2;
        }
        corpus = argv[2];
        if (mkdir(corpus, 0777) < 0 && errno != EEXIST)
                die(corpus);
        if (mcd_avro_new(&codec) < 0) {
                fprintf(stderr, "make_seeds: cannot create the Avro codec\n");
                return 1;
        }
        for (int t = 0; t < MCD_EV__COUNT; t++) {
                struct mcd_event ev = sample_event((enum mcd_event_type)t);
                write_event("sample-event", &ev);
        }
        for (int t = 0; t < MCD_OUT__COUNT; t++) {
                struct mcd_outcome o = sample_outcome((enum mcd_outcome_type)t);
                write_outcome("sample-outcome", &o);
        }
        write_frames();
        write_bad_avro();
        write_bad_lines();

        list_scenarios(argv[1]);
        merged = open_memstream(&all, &all_len);
        if (!merged)
                die("open_memstream");
        for (size_t i = 0; i < n_scenarios; i++) {
                size_t len;
                char *text = slurp(scenario_files[i], &len);

                from_scenario(scenario_files[i]);
                states_of(text, len, false);
                states_of(text, len, true);
                fwrite(text, 1, len, merged);
                free(text);
                free(scenario_files[i]);
        }
        free(scenario_files);
        fclose(merged);
        write_seed("fuzz_replay", "all-scenarios", -1, all, all_len);
        free(all);
        mcd_avro_free(codec);
        fprintf(stderr, "make_seeds: %d seeds written under %s\n", n_written, corpus);
        return 0;
}
