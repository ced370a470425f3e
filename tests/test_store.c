/* test_store.c -- the Redis store and the state JSON, against a real
 * redis-server that the test starts on a free loopback port (and kills at the
 * end, also when the test dies: redis_server.h).
 *
 * Covers: the state JSON round trip and its robustness against malformed
 * input; loading unknown and stored customers; offsets; the outbox with
 * binary frames; the due zset; fencing (-ESTALE), lost state (-ENODATA),
 * Redis going away and coming back; and the round trips of load and commit. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* asprintf, vasprintf */
#endif
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis.h>
#include <jansson.h>

#include "daemon/config.h"
#include "daemon/outbox.h"
#include "daemon/parallel.h"
#include "daemon/state_codec.h"
#include "daemon/state_json.h"
#include "daemon/store.h"
#include "handlers/rules.h"
#include "handlers/timefmt.h"
#include "tests/redis_server.h"
#include "tests/tap.h"

#define T0 ((mcd_time_t)1767607200000)          /* 2026-01-05T10:00:00.000Z */
#define TERM_END ((mcd_time_t)1806451200000)    /* 2027-03-31T00:00:00.000Z */

static char top[64];    /* the test's temporary folder: the server's below it */

/* ------------------------------------------------------------ server -- */

static redisContext *raw_connect(int port) {
        struct timeval tv = {.tv_sec = 1};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

        if (c && c->err) {
                redisFree(c);
                return NULL;
        }
        return c;
}

/* A raw command through a fresh connection; the reply's integer, or -1. */
static long long raw(int port, const char *cmd) {
        redisContext *c = raw_connect(port);
        redisReply *r;
        long long v = -1;

        if (!c)
                return -1;
        r = redisCommand(c, cmd);
        if (r && r->type == REDIS_REPLY_INTEGER)
                v = r->integer;
        else if (r && r->type == REDIS_REPLY_STATUS)
                v = 0;
        if (r)
                freeReplyObject(r);
        redisFree(c);
        return v;
}

/* A raw command in the store's db 3 (SELECT 3 first) through a fresh
 * connection, with one string argument for cmd's %s, if any; true when
 * Redis answered it without an error. */
static bool raw3(int port, const char *cmd, const char *arg) {
        redisContext *c = raw_connect(port);
        redisReply *r1 = c ? redisCommand(c, "SELECT 3") : NULL;
        redisReply *r2 = c ? redisCommand(c, cmd, arg) : NULL;
        bool answered = r1 && r2 && r2->type != REDIS_REPLY_ERROR;

        if (r1)
                freeReplyObject(r1);
        if (r2)
                freeReplyObject(r2);
        if (c)
                redisFree(c);
        return answered;
}

static int server_start(struct srv *sv) {
        return srv_start_redis(sv, top, true, 0);
}

static void server_stop(struct srv *sv) {
        srv_stop(sv, SIGTERM);          /* a clean shutdown: the AOF kept for the restart */
}

/* ----------------------------------------------------------- fixtures -- */

static struct mcd_subscription sub(const char *id, enum mcd_billing b, enum mcd_channel ch, const char *seller,
                                   bool has_term_end, mcd_time_t term_end, enum mcd_sub_state st,
                                   uint32_t timer_outcomes) {
        return (struct mcd_subscription){
                .subscription_id = (char *)id,
                .offer_name = (char *)"Office 365 E3",
                .billing = b,
                .channel = ch,
                .seller_partner_id = (char *)seller,
                .has_term_end = has_term_end,
                .term_end = term_end,
                .state = st,
                .timer_outcomes = timer_outcomes,
        };
}

/* A customer with every field set: cloud, both partner ids, three kinds of
 * subscription, three parked events and some seen ids. */
static int rich_customer(struct mcd_customer *c, const char *id) {
        struct mcd_subscription s1 = sub("s-1", MCD_BILLING_LICENSE_BASED, MCD_CHANNEL_EA, NULL, true, TERM_END,
                                         MCD_SS_SWITCH_BLOCKED, 2);
        struct mcd_subscription s2 = sub("s-2", MCD_BILLING_USAGE_BASED, MCD_CHANNEL_CSP, "p-other", false, 0,
                                         MCD_SS_SWITCH_ALLOWED, 0);
        struct mcd_subscription s3 = sub("s-3", MCD_BILLING_USAGE_BASED, MCD_CHANNEL_DIRECT, NULL, false, 0,
                                         MCD_SS_CSP_CREATED, 4000000000u);
        char *services[] = {(char *)"compute", (char *)"storage"};
        struct mcd_event e1 = {
                .type = MCD_EV_SWITCH_REQUESTED, .event_id = (char *)"e-sw", .occurred_at = T0 + 1,
                .customer_id = (char *)id, .cloud = MCD_CLOUD_US_GOVERNMENT,
                .subscription_id = (char *)"s-1", .target_partner_id = (char *)"p-1",
        };
        struct mcd_event e2 = {
                .type = MCD_EV_CSP_SUBSCRIPTION_CREATED, .event_id = (char *)"e-csp", .occurred_at = T0 + 2,
                .customer_id = (char *)id, .cloud = MCD_CLOUD_US_GOVERNMENT, .partner_id = (char *)"p-1",
                .subscription_id = (char *)"s-3", .csp_subscription_id = (char *)"csp-9",
        };
        struct mcd_event e3 = {
                .type = MCD_EV_SUBSCRIPTION_CANCELLED, .event_id = (char *)"e-cancel\"\\\n\xc3\xa9",
                .occurred_at = T0 + 3, .customer_id = (char *)id, .cloud = MCD_CLOUD_US_GOVERNMENT,
                .subscription_id = (char *)"s-2", .scope = MCD_SCOPE_SOME_SERVICES, .services = services,
                .n_services = 2,
        };
        int r = mcd_customer_init(c, id);

        if (r < 0)
                return r;
        c->has_cloud = true;
        c->cloud = MCD_CLOUD_US_GOVERNMENT;
        c->state = MCD_CS_ACCEPTED;
        c->partner_id = strdup("p-1");
        c->indirect_reseller_id = strdup("ir-7");
        if (!c->partner_id || !c->indirect_reseller_id)
                return -ENOMEM;
        if ((r = mcd_customer_add_sub(c, &s1)) < 0 || (r = mcd_customer_add_sub(c, &s2)) < 0 ||
            (r = mcd_customer_add_sub(c, &s3)) < 0 ||
            (r = mcd_customer_add_parked(c, &e1, T0 + 600001)) < 0 ||
            (r = mcd_customer_add_parked(c, &e2, T0 + 600002)) < 0 ||
            (r = mcd_customer_add_parked(c, &e3, T0 + 600003)) < 0)
                return r;
        for (const char *const *e = (const char *const[]){"r-2", "r-1", "e-sw", "e-csp", "z", NULL}; *e; e++)
                if ((r = mcd_customer_mark_seen(c, *e, T0 + (e[0][0] == 'z' ? -5 : 7))) < 0)
                        return r;
        c->seen.has_forgot = true;
        c->seen.forgot_at = T0 - 9;
        return 0;
}

/* A customer with one subscription in the given state (due when blocked). */
static int simple_customer(struct mcd_customer *c, const char *id, enum mcd_sub_state st) {
        struct mcd_subscription s = sub("s-1", MCD_BILLING_LICENSE_BASED, MCD_CHANNEL_OPEN, NULL, true, TERM_END,
                                        st, 0);
        int r = mcd_customer_init(c, id);

        if (r < 0)
                return r;
        c->has_cloud = true;
        c->state = MCD_CS_ACCEPTED;
        c->partner_id = strdup("p-1");
        if (!c->partner_id)
                return -ENOMEM;
        if ((r = mcd_customer_add_sub(c, &s)) < 0)
                return r;
        return mcd_customer_mark_seen(c, "e-1", T0);
}

static bool str_eq(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_sub(const struct mcd_subscription *a, const struct mcd_subscription *b) {
        return str_eq(a->subscription_id, b->subscription_id) && str_eq(a->offer_name, b->offer_name) &&
               a->billing == b->billing && a->channel == b->channel &&
               str_eq(a->seller_partner_id, b->seller_partner_id) && a->has_term_end == b->has_term_end &&
               a->term_end == b->term_end && a->state == b->state && a->timer_outcomes == b->timer_outcomes;
}

static bool same_event(const struct mcd_event *a, const struct mcd_event *b) {
        bool same = a->type == b->type && str_eq(a->event_id, b->event_id) && a->occurred_at == b->occurred_at &&
                    str_eq(a->customer_id, b->customer_id) && a->cloud == b->cloud &&
                    str_eq(a->partner_id, b->partner_id) && str_eq(a->subscription_id, b->subscription_id) &&
                    str_eq(a->target_partner_id, b->target_partner_id) &&
                    str_eq(a->csp_subscription_id, b->csp_subscription_id) && a->scope == b->scope &&
                    a->n_services == b->n_services;

        for (size_t i = 0; same && i < a->n_services; i++)
                same = str_eq(a->services[i], b->services[i]);
        return same;
}

static bool same_customer(const struct mcd_customer *a, const struct mcd_customer *b) {
        bool same = str_eq(a->customer_id, b->customer_id) && a->has_cloud == b->has_cloud &&
                    a->cloud == b->cloud && a->state == b->state && str_eq(a->partner_id, b->partner_id) &&
                    str_eq(a->indirect_reseller_id, b->indirect_reseller_id) && a->n_subs == b->n_subs &&
                    a->n_parked == b->n_parked && mcd_seen_count(&a->seen) == mcd_seen_count(&b->seen) &&
                    a->seen.has_forgot == b->seen.has_forgot && a->seen.forgot_at == b->seen.forgot_at;

        for (size_t i = 0; same && i < a->n_subs; i++)
                same = same_sub(&a->subs[i], &b->subs[i]);
        for (size_t i = 0; same && i < a->n_parked; i++)
                same = a->parked[i].deadline == b->parked[i].deadline &&
                       same_event(&a->parked[i].event, &b->parked[i].event);
        for (size_t i = 0; same && i < mcd_seen_count(&a->seen); i++)
                same = mcd_seen_ids(&a->seen)[i].hash == mcd_seen_ids(&b->seen)[i].hash &&
                       mcd_seen_ids(&a->seen)[i].occurred_at == mcd_seen_ids(&b->seen)[i].occurred_at;
        return same;
}

/* --------------------------------------------------------- state JSON -- */

static void test_json_roundtrip(void) {
        struct mcd_customer a, b, empty, e2;
        char why[256] = "", *j1, *j2 = NULL, *j3;

        ok(rich_customer(&a, "c-rich") == 0, "rich customer built");
        j1 = mcd_state_to_json(&a);
        ok(j1 != NULL, "rich customer to JSON");
        if (!j1)
                return;
        tap_diag("%s", j1);
        is_int(mcd_state_from_json(j1, strlen(j1), &b, why, sizeof(why)), 0, "rich customer from JSON");
        ok(same_customer(&a, &b), "every field round-trips");
        ok(b.n_subs == 3 && b.subs[2].timer_outcomes == 4000000000u, "timer_outcomes above INT32_MAX kept");
        ok(b.n_parked == 3 && b.parked[2].event.n_services == 2 &&
           strcmp(b.parked[2].event.event_id, "e-cancel\"\\\n\xc3\xa9") == 0,
           "parked event with services and escapes kept");
        ok(mcd_seen_count(&b.seen) == 5 && mcd_seen_ids(&b.seen)[0].hash == mcd_id_hash("z") &&
           mcd_seen_ids(&b.seen)[4].hash == mcd_id_hash("e-csp") && b.seen.forgot_at == T0 - 9,
           "seen ids in occurred_at order, the count's mark kept");
        j2 = mcd_state_to_json(&b);
        is_str(j2, j1, "JSON is stable across a round trip");
        {
                /* written directly, it is what jansson itself would write */
                json_t *t = json_loads(j1, 0, NULL);
                char *d = t ? json_dumps(t, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
                is_str(d, j1, "JSON is byte for byte what json_dumps writes");
                free(d);
                json_decref(t);
        }
        {
                static const char awkward[] = "c-\"\\/\b\f\n\r\t\x01\x1f\x7f\xc3\xa9\xe2\x80\xa8";
                struct mcd_customer odd;
                char *jo, *d = NULL;
                json_t *t;
                mcd_customer_init(&odd, awkward);
                jo = mcd_state_to_json(&odd);
                t = jo ? json_loads(jo, 0, NULL) : NULL;
                d = t ? json_dumps(t, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
                is_str(d, jo, "escapes of every kind as json_dumps writes them");
                ok(t && strcmp(json_string_value(json_object_get(t, "customer_id")), awkward) == 0,
                   "and they read back as the same id");
                free(d);
                free(jo);
                json_decref(t);
                mcd_customer_clear(&odd);
        }
        ok(strstr(j1, "\"timers\":[{\"subscription_id\":\"s-1\",\"due\":\"2027-03-31T00:00:00.000Z\"}]") != NULL,
           "derived timers listed");
        ok(strncmp(j1, "{\"v\":2,\"customer_id\":\"c-rich\",\"cloud\":\"US_GOVERNMENT\",\"state\":\"ACCEPTED\"", 72) ==
                   0,
           "field order as documented");

        /* a fresh customer: null cloud, null partner, empty lists */
        mcd_customer_init(&empty, "c-empty");
        j3 = mcd_state_to_json(&empty);
        is_str(j3,
               "{\"v\":2,\"customer_id\":\"c-empty\",\"cloud\":null,\"state\":\"NONE\",\"partner_id\":null,"
               "\"indirect_reseller_id\":null,\"subscriptions\":[],\"parked\":[],\"timers\":[],\"seen\":[],"
               "\"seen_forgot_at\":null}",
               "fresh customer JSON");
        ok(j3 && mcd_state_from_json(j3, strlen(j3), &e2, why, sizeof(why)) == 0 && same_customer(&empty, &e2) &&
                   !e2.has_cloud,
           "fresh customer round-trips");
        mcd_customer_clear(&e2);
        mcd_customer_clear(&empty);
        free(j3);

        /* every prefix of a valid document fails cleanly (ASan watches) */
        {
                size_t len = strlen(j1), failed = 0;
                for (size_t n = 0; n < len; n++) {
                        struct mcd_customer t;
                        if (mcd_state_from_json(j1, n, &t, why, sizeof(why)) == -EINVAL && why[0])
                                failed++;
                        else
                                mcd_customer_clear(&t);
                }
                is_int(failed, len, "every truncation of the JSON is -EINVAL with a reason");
        }
        /* single-byte mutations: no crash, no leak; either parses or -EINVAL */
        {
                size_t len = strlen(j1), bad = 0;
                char *m = strdup(j1);
                unsigned seed = 1;
                for (size_t i = 0; m && i < 4000; i++) {
                        struct mcd_customer t;
                        size_t at = (seed = seed * 1103515245u + 12345u) % len;
                        char was = m[at];
                        int r;
                        m[at] = (char)((seed >> 16) & 0xff);
                        r = mcd_state_from_json(m, len, &t, why, sizeof(why));
                        if (r == 0)
                                mcd_customer_clear(&t);
                        else if (r != -EINVAL)
                                bad++;
                        m[at] = was;
                }
                free(m);
                is_int(bad, 0, "random byte mutations give 0 or -EINVAL");
        }
        free(j1);
        free(j2);
        mcd_customer_clear(&a);
        mcd_customer_clear(&b);
}

static void test_json_malformed(void) {
        static const struct {
                const char *json, *want;
        } cases[] = {
                {"", "invalid JSON"},
                {"[]", "not a JSON object"},
                {"{\"v\":1,\"customer_id\":\"c\",\"state\":\"NONE\"", "invalid JSON"},
                {"{\"customer_id\":\"c\",\"state\":\"NONE\"}", "\"v\""},
                {"{\"v\":3,\"customer_id\":\"c\",\"state\":\"NONE\"}", "\"v\""},
                {"{\"v\":0,\"customer_id\":\"c\",\"state\":\"NONE\"}", "\"v\""},
                {"{\"v\":2,\"customer_id\":\"c\",\"state\":\"NONE\",\"seen\":[\"e-1\"]}", "seen[0]: must be ["},
                {"{\"v\":2,\"customer_id\":\"c\",\"state\":\"NONE\",\"seen\":[[\"-00000000000000f\",null]]}",
                 "seen[0]: must be ["},
                {"{\"v\":2,\"customer_id\":\"c\",\"state\":\"NONE\",\"seen\":[[\"000000000000000f\",\"then\"]]}",
                 "seen[0]: the time"},
                {"{\"v\":1,\"customer_id\":\"c\",\"state\":\"NONE\",\"seen\":[[\"000000000000000f\",null]]}",
                 "seen[0]: must be a string"},
                {"{\"v\":1,\"state\":\"NONE\"}", "missing field \"customer_id\""},
                {"{\"v\":1,\"customer_id\":7,\"state\":\"NONE\"}", "\"customer_id\" must be a string"},
                {"{\"v\":1,\"customer_id\":\"c\",\"state\":\"LOST\"}", "\"state\" has an unknown value"},
                {"{\"v\":1,\"customer_id\":\"c\",\"cloud\":\"MARS\",\"state\":\"NONE\"}", "\"cloud\""},
                {"{\"v\":1,\"customer_id\":\"c\",\"state\":\"NONE\",\"subscriptions\":{}}", "must be an array"},
                {"{\"v\":1,\"customer_id\":\"c\",\"state\":\"NONE\",\"subscriptions\":[1]}",
                 "subscriptions[0]: must be an object"},
                {"{\"v\":1,\"customer_id\":\"c\",\"state\":\"NONE\",\"subscriptions\":[{\"billing\":\"USAGE_BASED\"}]}",
                 "subscriptions[0]: missing field \"subscription_id\""},
                {"{\"v\":1,\"customer_id\":\"c\",\"state\":\"NONE\",\"subscriptions\":[{\"subscription_id\":\"s\","
                 "\"billing\":\"USAGE_BASED\",\"channel\":\"EA\",\"state\":\"REPORTED\",\"term_end\":\"soon\"}]}",
                 "\"term_end\" must be an ISO-8601"},
                {"{\"v\":1,\"customer_id\":\"c\",\"state\":\"NONE\",\"subscriptions\":[{\"subscription_id\":\"s\","
                 "\"billing\":\"USAGE_BASED\",\"channel\":\"EA\",\"state\":\"REPORTED\",\"timer_outcomes\":-1}]}",
                 "\"timer_outcomes\""},
                {"{\"v\":1,\"customer_id\":\"c\",\"state\":\"NONE\",\"subscriptions\":[{\"subscription_id\":\"s\","
                 "\"billing\":\"USAGE_BASED\",\"channel\":\"EA\",\"state\":\"REPORTED\",\"timer_outcomes\":4294967296}]}",
                 "\"timer_outcomes\""},
                {"{\"v\":1,\"customer_id\":\"c\",\"state\":\"NONE\",\"subscriptions\":[{\"subscription_id\":\"s\","
                 "\"billing\":\"USAGE_BASED\",\"channel\":\"EA\",\"state\":\"REPORTED\"},{\"subscription_id\":\"s\","
                 "\"billing\":\"USAGE_BASED\",\"channel\":\"EA\",\"state\":\"REPORTED\"}]}",
                 "duplicate subscription"},
                {"{\"v\":1,\"customer_id\":\"c\",\"state\":\"NONE\",\"parked\":[{\"event\":{}}]}",
                 "parked[0]: missing field \"deadline\""},
                {"{\"v\":1,\"customer_id\":\"c\",\"state\":\"NONE\",\"parked\":[{\"deadline\":"
                 "\"2026-01-05T10:00:00.000Z\",\"event\":\"x\"}]}",
                 "parked[0]: field \"event\" must be an object"},
                {"{\"v\":1,\"customer_id\":\"c\",\"state\":\"NONE\",\"parked\":[{\"deadline\":"
                 "\"2026-01-05T10:00:00.000Z\",\"event\":{\"type\":\"Nope\"}}]}",
                 "parked[0]: event: "},
                {"{\"v\":1,\"customer_id\":\"c\",\"state\":\"NONE\",\"seen\":[\"a\",3]}", "seen[1]: must be a string"},
                {"{\"v\":1,\"v\":1,\"customer_id\":\"c\",\"state\":\"NONE\"}", "invalid JSON"},
        };
        char deep[4096];
        char why[256];

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct mcd_customer c;
                int r;
                why[0] = '\0';
                r = mcd_state_from_json(cases[i].json, strlen(cases[i].json), &c, why, sizeof(why));
                if (!ok(r == -EINVAL && strstr(why, cases[i].want), "malformed state %zu: %s", i, why))
                        tap_diag("input %s, want \"%s\"", cases[i].json, cases[i].want);
        }
        /* deep nesting, a NUL inside, a NULL pointer, a tiny why buffer */
        memset(deep, '[', sizeof(deep) - 1);
        deep[sizeof(deep) - 1] = '\0';
        {
                struct mcd_customer c;
                ok(mcd_state_from_json(deep, strlen(deep), &c, why, sizeof(why)) == -EINVAL, "deep nesting refused");
                ok(mcd_state_from_json("{\"v\":1,\0}", 9, &c, why, sizeof(why)) == -EINVAL, "NUL byte refused");
                ok(mcd_state_from_json(NULL, 0, &c, why, sizeof(why)) == -EINVAL, "NULL refused");
                ok(mcd_state_from_json("[]", 2, &c, why, 1) == -EINVAL && why[0] == '\0', "why of one byte");
                ok(mcd_state_from_json("[]", 2, &c, NULL, 0) == -EINVAL, "why may be NULL");
        }
}

/* -------------------------------------------------------------- store -- */

static struct mcd_store *store_open(int port) {
        struct mcd_store_options o = {
                .host = "127.0.0.1", .port = port, .db = 3, .prefix = "t:", .timeout_ms = 1000,
        };
        struct mcd_store *s = NULL;

        if (mcd_store_new(&o, &s) < 0)
                return NULL;
        return s;
}

/* Commits one customer of the given partition in a batch of partition 0
 * with generation gen. */
static int commit_one(struct mcd_store *s, const struct mcd_customer *c, int32_t partition, int64_t gen) {
        struct mcd_store_customer sc = {.customer = c, .partition = partition};
        struct mcd_store_partition p = {.partition = 0, .generation = gen};
        struct mcd_store_batch b = {.customers = &sc, .n_customers = 1, .partitions = &p, .n_partitions = 1};

        return mcd_store_commit(s, &b);
}

/* ------------------------------------------------------ binary state -- */

static void test_codec_roundtrip(void) {
        struct mcd_customer a, b, e;
        char why[256] = "", *buf = NULL, *buf2 = NULL, *rec = NULL;
        size_t len = 0, len2 = 0, rec_len = 0, st_len = 0, fails = 0;
        const char *st = NULL;

        ok(rich_customer(&a, "c-rich") == 0, "codec: rich customer built");
        is_int(mcd_state_encode(&a, &buf, &len), 0, "codec: encoded");
        ok(mcd_state_is_binary(buf, len) && memcmp(buf, "MCS\x02", 4) == 0, "codec: MCS, version 2");
        is_int(mcd_state_decode(buf, len, &b, why, sizeof(why)), 0, "codec: decoded");
        ok(same_customer(&a, &b), "codec: every field round-trips");
        is_int(mcd_state_encode(&b, &buf2, &len2), 0, "codec: encoded again");
        ok(len == len2 && memcmp(buf, buf2, len) == 0, "codec: byte for byte stable");
        /* every cut is refused with a reason, never read past the end */
        for (size_t n = 4; n < len; n++) {
                char *cut = malloc(n);
                memcpy(cut, buf, n);
                if (mcd_state_decode(cut, n, &e, why, sizeof(why)) == -EINVAL && why[0])
                        fails++;
                free(cut);
        }
        is_int(fails, len - 4, "codec: each of the %zu truncations is -EINVAL with a reason", len - 4);
        buf[4] = (char)0xfe;                             /* an id longer than what is left */
        buf[5] = 0x7f;
        ok(mcd_state_decode(buf, len, &e, why, sizeof(why)) == -EINVAL && strstr(why, "customer_id"),
           "codec: a length past the end is named (%s)", why);
        is_int(mcd_state_record(7, buf2, len2, &rec, &rec_len), 0, "codec: changelog record");
        ok(mcd_state_record_partition(rec, rec_len, &st, &st_len) == 7 && st_len == len2 && memcmp(st, buf2, len2) == 0,
           "codec: the record gives back its partition and state");
        ok(mcd_state_record_partition("{\"partition\":7}", 15, &st, &st_len) == -1, "codec: JSON is not a record");
        mcd_customer_clear(&a);
        mcd_customer_clear(&b);
        free(buf);
        free(buf2);
        free(rec);
}

/* A state written by the previous version (JSON, "v":1, seen ids as
 * strings) is read: its ids are still duplicates, of a time not known yet. */
static const char LEGACY_STATE[] =
        "{\"v\":1,\"customer_id\":\"c-old\",\"cloud\":\"COMMERCIAL\",\"state\":\"ACCEPTED\",\"partner_id\":\"p-1\","
        "\"indirect_reseller_id\":null,\"subscriptions\":[{\"subscription_id\":\"s-1\",\"offer_name\":\"E3\","
        "\"billing\":\"LICENSE_BASED\",\"channel\":\"EA\",\"seller_partner_id\":null,\"term_end\":"
        "\"2027-03-31T00:00:00.000Z\",\"state\":\"SUPPORTED\",\"timer_outcomes\":0}],\"parked\":[],"
        "\"timers\":[],"
        "\"seen\":[\"a-1\",\"r-1\",\"s-1\",\"w-1\"]}";

static void test_codec_legacy(void) {
        struct mcd_customer c;
        char why[256] = "";

        is_int(mcd_state_decode(LEGACY_STATE, strlen(LEGACY_STATE), &c, why, sizeof(why)), 0,
               "legacy: a version 1 JSON state is read (%s)", why);
        ok(c.n_subs == 1 && c.subs[0].state == MCD_SS_SUPPORTED && c.state == MCD_CS_ACCEPTED,
           "legacy: its subscriptions and state carried over");
        ok(mcd_seen_count(&c.seen) == 4 && mcd_customer_has_seen(&c, "w-1") && mcd_customer_has_seen(&c, "a-1"),
           "legacy: its seen ids are still seen");
        ok(mcd_seen_ids(&c.seen)[0].occurred_at == MCD_SEEN_LEGACY, "legacy: of a time not known yet");
        mcd_customer_clear(&c);
}

static char *id_of(char fill, int n) {
        char *s = malloc(MCD_ID_MAX + 1);
        snprintf(s, MCD_ID_MAX + 1, "%0*d", MCD_ID_MAX, n);
        s[0] = fill;
        return s;
}

/* The largest state the default bounds allow: limits.subscriptions
 * subscriptions, limits.parked parked events, limits.seen_ids seen ids,
 * every identifier and the offer name at their 128 bytes.  Its changelog
 * record, with its key, fits Kafka's default message.max.bytes. */
static void test_codec_worst_case(void) {
        const struct mcd_rules_config cfg = MCD_RULES_CONFIG_DEFAULT;
        struct mcd_customer c, back;
        char *buf = NULL, *rec = NULL, *id = id_of('c', 0), why[256] = "";
        size_t len = 0, rec_len = 0;

        mcd_customer_init(&c, id);
        c.has_cloud = true;
        c.state = MCD_CS_ACCEPTED;
        c.partner_id = id_of('p', 1);
        c.indirect_reseller_id = id_of('i', 2);
        for (size_t i = 0; i < cfg.max_subscriptions; i++) {
                char *sid = id_of('s', (int)i), *seller = id_of('x', (int)i), *offer = id_of('o', (int)i);
                struct mcd_subscription s = sub(sid, MCD_BILLING_USAGE_BASED, MCD_CHANNEL_CSP, seller, true,
                                                MCD_TIME_MAX, MCD_SS_SWITCH_BLOCKED, UINT32_MAX);
                s.offer_name = offer;
                mcd_customer_add_sub(&c, &s);
                free(sid);
                free(seller);
                free(offer);
        }
        for (size_t i = 0; i < cfg.max_parked; i++) {
                struct mcd_event ev = {.type = MCD_EV_CSP_SUBSCRIPTION_CREATED, .occurred_at = MCD_TIME_MAX,
                                       .customer_id = id};
                ev.event_id = id_of('e', (int)i);
                ev.partner_id = id_of('p', (int)i);
                ev.subscription_id = id_of('s', (int)i);
                ev.csp_subscription_id = id_of('k', (int)i);
                ev.target_partner_id = id_of('t', (int)i);
                mcd_customer_add_parked(&c, &ev, MCD_TIME_MAX + MCD_DEDUP_WINDOW_MAX);
                ev.customer_id = NULL;
                mcd_event_clear(&ev);
        }
        for (size_t i = 0; i < cfg.max_seen_ids; i++) {       /* each a window apart: the widest deltas */
                char sid[32];
                snprintf(sid, sizeof(sid), "seen-%zu", i);
                mcd_customer_mark_seen(&c, sid, (mcd_time_t)i * cfg.dedup_window);
        }
        c.seen.has_forgot = true;
        c.seen.forgot_at = MCD_TIME_MIN;
        ok(c.n_subs == cfg.max_subscriptions && c.n_parked == cfg.max_parked &&
                   mcd_seen_count(&c.seen) == cfg.max_seen_ids,
           "worst case: %zu subscriptions, %zu parked, %zu seen ids", c.n_subs, c.n_parked, mcd_seen_count(&c.seen));
        is_int(mcd_state_encode(&c, &buf, &len), 0, "worst case: encoded");
        is_int(mcd_state_record(INT32_MAX, buf, len, &rec, &rec_len), 0, "worst case: changelog record");
        tap_diag("worst case: state %zu bytes, record %zu bytes", len, rec_len);
        ok(rec_len + MCD_ID_MAX + 1024 <= 1000000,
           "worst case: record (%zu bytes) + key + 1 KiB of overhead fit message.max.bytes 1,000,000", rec_len);
        is_int(mcd_state_decode(buf, len, &back, why, sizeof(why)), 0, "worst case: decoded (%s)", why);
        ok(same_customer(&c, &back), "worst case: round-trips");
        mcd_customer_clear(&c);
        mcd_customer_clear(&back);
        free(id);
        free(buf);
        free(rec);
}

/* A stored state with a time out of range (a corrupt or foreign value):
 * refused, naming the field, instead of feeding the rules' arithmetic
 * (a horizon of 10^18 would have rejected every later event). */
static void test_codec_times_bounded(void) {
        static const struct {
                const char *what;
                mcd_time_t forgot_at, deadline, term_end;
        } cases[] = {
                {"forgot_at", INT64_MAX / 2, 0, 0},
                {"forgot_at", MCD_TIME_MIN - 1, 0, 0},
                {"deadline", 0, MCD_TIME_MAX + MCD_DEDUP_WINDOW_MAX + 1, 0},
                {"term_end", 0, 0, INT64_MIN / 2},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct mcd_customer c, back;
                struct mcd_event ev = {.type = MCD_EV_SWITCH_REQUESTED, .occurred_at = 0, .customer_id = "c-t",
                                       .event_id = "e-1", .subscription_id = "s-1", .target_partner_id = "p-1"};
                struct mcd_subscription s = sub("s-1", MCD_BILLING_LICENSE_BASED, MCD_CHANNEL_EA, NULL, true,
                                                cases[i].term_end, MCD_SS_SWITCH_BLOCKED, 0);
                char *buf = NULL, why[256] = "";
                size_t len = 0;

                mcd_customer_init(&c, "c-t");
                mcd_customer_add_sub(&c, &s);
                mcd_customer_add_parked(&c, &ev, cases[i].deadline);
                c.seen.has_forgot = true;
                c.seen.forgot_at = cases[i].forgot_at;
                is_int(mcd_state_encode(&c, &buf, &len), 0, "%s %" PRId64 "/%" PRId64 "/%" PRId64 ": encoded",
                       cases[i].what, cases[i].forgot_at, cases[i].deadline, cases[i].term_end);
                is_int(mcd_state_decode(buf, len, &back, why, sizeof(why)), -EINVAL, "%s out of range: refused",
                       cases[i].what);
                ok(strstr(why, cases[i].what) != NULL, "the reason names it: %s", why);
                mcd_customer_clear(&c);
                free(buf);
        }
}

/* Redis holding a version 1 state: loaded, applied to, written back binary. */
static void test_legacy_in_redis(struct mcd_store *s, int port, int64_t gen) {
        const char *ids[] = {"c-old"};
        struct mcd_customer c;
        char *stored = NULL;
        size_t stored_len = 0;

        ok(raw3(port, "SET t:c:c-old %s", LEGACY_STATE), "legacy: a version 1 state stored in Redis");
        is_int(mcd_store_load(s, ids, 1, &c), 0, "legacy: loaded");
        ok(mcd_customer_has_seen(&c, "r-1") && c.n_subs == 1, "legacy: as it was");
        is_int(commit_one(s, &c, 0, gen), 0, "legacy: committed again");
        is_int(mcd_store_get_customer_raw(s, "c-old", &stored, &stored_len), 0, "legacy: read back");
        ok(mcd_state_is_binary(stored, stored_len), "legacy: now stored binary");
        free(stored);
        mcd_customer_clear(&c);
}

/* A customer id of 300 bytes: its key is formatted past the store's
 * buffer on the stack (store.c format_after), and must be the key the
 * commit wrote. */
static void test_long_id(struct mcd_store *s, int64_t gen) {
        char id[301], *json = NULL, *stored = NULL;
        size_t json_len = 0, stored_len = 0;
        struct mcd_customer c;

        memset(id, 'L', sizeof(id) - 1);
        id[sizeof(id) - 1] = '\0';
        rich_customer(&c, id);
        is_int(commit_one(s, &c, 8, gen), 0, "commit of a customer with a 300-byte id");
        is_int(mcd_store_get_customer_raw(s, id, &stored, &stored_len), 0, "its raw state read by its key");
        is_int(mcd_state_encode(&c, &json, &json_len), 0, "encoded");
        ok(stored && stored_len == json_len && memcmp(stored, json, json_len) == 0,
           "the key read is the key written: the state is there");
        free(stored);
        free(json);
        mcd_customer_clear(&c);
}

static void test_load_and_commit(struct mcd_store *s, int64_t gen) {
        const char *ids[] = {"c-rich", "c-unknown", "c-x"};
        struct mcd_customer rich, out[3];
        char *json = NULL, *stored = NULL;
        size_t json_len = 0, stored_len = 0;
        uint64_t rt;

        is_int(mcd_store_load(s, ids, 3, out), 0, "load of unknown ids");
        ok(out[0].customer_id && strcmp(out[0].customer_id, "c-rich") == 0 && out[0].n_subs == 0 &&
                   out[0].state == MCD_CS_NONE && !out[0].has_cloud && out[1].customer_id &&
                   strcmp(out[1].customer_id, "c-unknown") == 0,
           "unknown ids load as fresh customers");
        for (int i = 0; i < 3; i++)
                mcd_customer_clear(&out[i]);
        is_int(mcd_store_load(s, ids, 0, out), 0, "load of nothing");

        rich_customer(&rich, "c-rich");
        rt = mcd_store_round_trips(s);
        is_int(commit_one(s, &rich, 7, gen), 0, "commit of a rich customer");
        is_int(mcd_store_round_trips(s) - rt, 2, "after a load: the fence read, then the commit");
        rt = mcd_store_round_trips(s);
        is_int(commit_one(s, &rich, 7, gen), 0, "committed again");
        is_int(mcd_store_round_trips(s) - rt, 1, "a commit after a commit is one round trip");
        rt = mcd_store_round_trips(s);
        is_int(mcd_store_load(s, ids, 3, out), 0, "load after commit");
        is_int(mcd_store_round_trips(s) - rt, 1, "load of three ids is one round trip");
        ok(same_customer(&rich, &out[0]), "loaded customer equals the committed one");
        ok(out[1].n_subs == 0 && out[2].n_subs == 0, "others still fresh");
        for (int i = 0; i < 3; i++)
                mcd_customer_clear(&out[i]);

        is_int(mcd_store_get_customer_raw(s, "c-rich", &stored, &stored_len), 0, "raw customer state");
        is_int(mcd_state_encode(&rich, &json, &json_len), 0, "rich customer encoded");
        ok(stored && stored_len == json_len && memcmp(stored, json, json_len) == 0, "stored state is state_codec's");
        ok(mcd_state_is_binary(stored, stored_len), "and binary");
        free(stored);
        free(json);
        is_int(mcd_store_get_customer_raw(s, "c-nobody", &stored, &stored_len), 0, "raw state of an unknown customer");
        ok(stored == NULL, "is NULL");
        mcd_customer_clear(&rich);
        test_long_id(s, gen);
}

static void test_corrupt(struct mcd_store *s, int port) {
        const char *ids[] = {"c-ok", "c-bad"};
        struct mcd_customer out[2];

        ok(raw3(port, "SET t:c:c-bad %s", "{\"v\":1,"), "corrupt JSON stored");
        is_int(mcd_store_load(s, ids, 2, out), -EBADMSG, "corrupt stored JSON is -EBADMSG");
        is_int(raw(port, "SELECT 3"), 0, "redis still fine");
        {
                struct mcd_customer one;
                is_int(mcd_store_load(s, ids, 1, &one), 0, "store usable after -EBADMSG");
                mcd_customer_clear(&one);
        }
}

/* A load of many customers, parsed on two threads, equals the committed
 * ones in order; a corrupt one among them fails the load and keeps none. */
static void test_parallel_load(struct mcd_store *s, int port, int64_t gen) {
        enum { N = 100 };
        struct mcd_par *par = NULL;
        struct mcd_customer rich[N], out[N];
        const char *ids[N + 1];
        char names[N + 1][16];
        bool same = true;
        int committed = 0;

        if (!ok(mcd_par_new(2, &par) == 0, "a pool of two threads"))
                return;
        mcd_store_set_parallel(s, par);
        for (int i = 0; i < N; i++) {
                snprintf(names[i], sizeof(names[i]), "c-par-%d", i);
                ids[i] = names[i];
                rich_customer(&rich[i], names[i]);
                if (i % 3 == 0)
                        committed += commit_one(s, &rich[i], 7, gen) == 0;
        }
        is_int(committed, (N + 2) / 3, "every third customer committed");
        is_int(mcd_store_load(s, ids, N, out), 0, "load of %d customers on two threads", N);
        for (int i = 0; i < N; i++) {
                if (i % 3 == 0 ? !same_customer(&rich[i], &out[i])
                               : (!out[i].customer_id || strcmp(out[i].customer_id, ids[i]) != 0 || out[i].n_subs))
                        same = false;
                mcd_customer_clear(&out[i]);
        }
        ok(same, "each in its place: committed ones as committed, others fresh");

        snprintf(names[N], sizeof(names[N]), "c-bad");  /* stored corrupt by test_corrupt */
        ids[N / 2] = names[N];
        memset(out, 0, sizeof(out));
        is_int(mcd_store_load(s, ids, N, out), -EBADMSG, "a corrupt one among them fails the load");
        same = true;
        for (int i = 0; i < N; i++)
                if (out[i].customer_id || out[i].n_subs)
                        same = false;
        ok(same, "and no customer is left loaded");
        is_int(raw(port, "SELECT 3"), 0, "redis still fine");
        for (int i = 0; i < N; i++)
                mcd_customer_clear(&rich[i]);
        mcd_store_set_parallel(s, NULL);
        mcd_par_free(par);
}

static void test_offsets(struct mcd_store *s, int64_t gen) {
        struct mcd_offsets o = {0, 0};
        struct mcd_store_partition p = {
                .partition = 0, .generation = gen, .set_offsets = true, .offsets = {.rel = 42, .sub = 9000000000LL},
        };
        struct mcd_store_batch b = {.partitions = &p, .n_partitions = 1};

        is_int(mcd_store_get_offsets(s, 5, &o, NULL), 0, "offsets of an unused partition");
        ok(o.rel == -1 && o.sub == -1, "are -1, -1");
        is_int(mcd_store_commit(s, &b), 0, "commit with offsets");
        is_int(mcd_store_get_offsets(s, 0, &o, NULL), 0, "offsets read back");
        ok(o.rel == 42 && o.sub == 9000000000LL, "offsets are 42, 9000000000");
        p.set_offsets = false;
        p.offsets = (struct mcd_offsets){1, 1};
        is_int(mcd_store_commit(s, &b), 0, "commit without offsets");
        is_int(mcd_store_get_offsets(s, 0, &o, NULL), 0, "offsets read again");
        ok(o.rel == 42 && o.sub == 9000000000LL, "unchanged when set_offsets is false");
}

/* The re-processing record: written, read back, its due raised only in
 * the record with the same marks and only upwards, never brought back;
 * written, raised and cleared only under the partition's generation. */
static void test_redo(struct mcd_store *s) {
        struct mcd_offsets until = {0, 0};
        mcd_time_t due = 0;
        int64_t gen = 0, stale;
        char *marks = NULL;
        bool found = false;

        is_int(mcd_store_claim(s, 3, 0, 0, &gen), 0, "partition 3 claimed");
        stale = gen;
        is_int(mcd_store_claim(s, 3, 0, 0, &gen), 0, "claimed again: the first claim is stale");
        is_int(mcd_store_set_redo(s, 3, stale, "o=1", (struct mcd_offsets){1, 1}, 1), -ESTALE,
               "a stale owner writes no record");
        is_int(mcd_store_set_redo(s, 3, gen, "o=5", (struct mcd_offsets){7, 8}, 1000), 0, "redo record written");
        is_int(mcd_store_raise_redo_due(s, 3, gen, "o=4", 5000), 0, "raise under other marks");
        is_int(mcd_store_raise_redo_due(s, 3, gen, "o=5", 500), 0, "raise to an earlier time");
        is_int(mcd_store_raise_redo_due(s, 3, stale, "o=5", 7000), -ESTALE, "raise by a stale owner");
        is_int(mcd_store_clear_redo(s, 3, stale), -ESTALE, "clear by a stale owner");
        is_int(mcd_store_get_redo(s, 3, &found, &marks, &until, &due), 0, "redo record read");
        ok(found && strcmp(marks, "o=5") == 0 && until.rel == 7 && until.sub == 8, "marks and ends as written");
        is_int(due, 1000, "due unchanged by any");
        free(marks);
        is_int(mcd_store_raise_redo_due(s, 3, gen, "o=5", 5000), 0, "raise to a later time");
        is_int(mcd_store_get_redo(s, 3, &found, &marks, &until, &due), 0, "read again");
        is_int(due, 5000, "due raised");
        free(marks);
        is_int(mcd_store_clear_redo(s, 3, gen), 0, "record cleared");
        is_int(mcd_store_raise_redo_due(s, 3, gen, "o=5", 9000), 0, "raise after the clear");
        is_int(mcd_store_get_redo(s, 3, &found, &marks, &until, &due), 0, "read after the clear");
        ok(!found && marks == NULL, "the raise brought nothing back");
        is_int(mcd_store_set_redo(s, 4095, 1, "o=1", (struct mcd_offsets){1, 1}, 1), -ENODATA,
               "no record for a partition never claimed");
}

static bool outbox_is(struct mcd_store *s, const void *const *want, const size_t *want_lens, size_t n) {
        void **frames = NULL;
        size_t *lens = NULL, got = 0;
        bool same;

        if (mcd_store_read_outbox(s, 0, &frames, &lens, &got) < 0)
                return false;
        same = got == n;
        for (size_t i = 0; same && i < n; i++)
                same = lens[i] == want_lens[i] && memcmp(frames[i], want[i], lens[i]) == 0;
        mcd_store_frames_free(frames, lens, got);
        return same;
}

/* Partition lists for the calls that take several. */
static const int32_t P0[] = {0}, P1[] = {1};

static void test_outbox(struct mcd_store *s, int64_t gen) {
        static const char f1[] = "\0\1\2frame-one\0", f2[] = "", f3[] = "\xff\0\xfe", f4[] = "four\0four";
        const void *first[] = {f1, f2, f3};
        size_t first_lens[] = {sizeof(f1), 0, sizeof(f3)};
        const void *second[] = {f4};
        size_t second_lens[] = {sizeof(f4)};
        const void *after[] = {f3, f4};
        size_t after_lens[] = {sizeof(f3), sizeof(f4)};
        struct mcd_store_partition p = {
                .partition = 0, .generation = gen, .frames = first, .frame_lens = first_lens, .n_frames = 3,
        };
        struct mcd_store_batch b = {.partitions = &p, .n_partitions = 1};
        int64_t due = -1, len = -1;
        void **many;
        size_t *many_lens, n = 0;

        ok(outbox_is(s, NULL, NULL, 0), "outbox starts empty");
        is_int(mcd_store_commit(s, &b), 0, "commit appends three binary frames");
        ok(outbox_is(s, first, first_lens, 3), "outbox holds them, NUL bytes and empty frame intact");
        p.frames = second;
        p.frame_lens = second_lens;
        p.n_frames = 1;
        p.trim = 2;
        is_int(mcd_store_commit(s, &b), 0, "commit trims two and appends one");
        ok(outbox_is(s, after, after_lens, 2), "outbox is frame 3, frame 4");
        is_int(mcd_store_counts(s, P0, 1, &due, &len), 0, "counts");
        is_int(len, 2, "outbox length 2");

        /* more frames than one RPUSH chunk, then trim them all */
        many = calloc(2500, sizeof(*many));
        many_lens = calloc(2500, sizeof(*many_lens));
        if (!ok(many && many_lens, "frames allocated"))
                return;
        for (size_t i = 0; i < 2500; i++) {
                many[i] = (void *)f1;
                many_lens[i] = sizeof(f1);
        }
        p.frames = (const void *const *)many;
        p.frame_lens = many_lens;
        p.n_frames = 2500;
        p.trim = 0;
        is_int(mcd_store_commit(s, &b), 0, "commit of 2500 frames");
        is_int(mcd_store_counts(s, P0, 1, &due, &len), 0, "counts again");
        is_int(len, 2502, "outbox length 2502");
        p.n_frames = 0;
        p.trim = 5000;
        is_int(mcd_store_commit(s, &b), 0, "trim beyond the end");
        is_int(mcd_store_read_outbox(s, 0, &many, &many_lens, &n) == 0 ? (long long)n : -1, 0, "outbox empty");
        mcd_store_frames_free(many, many_lens, n);
        free((void *)p.frames);
        free((void *)p.frame_lens);
}

/* The owed list (clog_owed.h): each commit pushes one element of
 * NUL-separated keys, a later one trims from the head; read back as keys,
 * in order, duplicates kept. */
static bool owed_is(struct mcd_store *s, const char *want, size_t want_elements) {
        char **keys = NULL, got[256] = "";
        size_t n = 0;
        size_t elements = 0;
        int r = mcd_store_clog_owed_get(s, 0, &keys, &n, &elements);

        for (size_t i = 0; r == 0 && i < n; i++) {
                strncat(got, keys[i], sizeof(got) - strlen(got) - 2);
                strcat(got, " ");
        }
        mcd_store_ids_free(keys, n);
        if (r != 0 || strcmp(got, want) != 0 || elements != want_elements)
                printf("# owed list: r=%d [%s] in %zu, want [%s] in %zu\n", r, got, elements, want, want_elements);
        return r == 0 && strcmp(got, want) == 0 && elements == want_elements;
}

static void test_clog_owed(struct mcd_store *s, int64_t gen) {
        static const char b1[] = "__offsets__:0\0cust-1\0cust-2", b2[] = "__offsets__:0\0cust-2\0";
        struct mcd_store_partition p = {.partition = 0, .generation = gen, .clog_keys = b1, .clog_keys_len = sizeof(b1)};
        struct mcd_store_batch b = {.partitions = &p, .n_partitions = 1};

        ok(owed_is(s, "", 0), "owed list starts empty");
        is_int(mcd_store_commit(s, &b), 0, "commit pushes its keys");
        p.clog_keys = b2;
        p.clog_keys_len = sizeof(b2) - 1;       /* the last key's NUL left off: read all the same */
        is_int(mcd_store_commit(s, &b), 0, "a second commit pushes its own");
        ok(owed_is(s, "__offsets__:0 cust-1 cust-2 __offsets__:0 cust-2 ", 2), "both elements read back as keys, in order");
        p.clog_keys_len = 0;
        p.clog_trim = 1;
        is_int(mcd_store_commit(s, &b), 0, "a commit trims the first, pushes nothing");
        ok(owed_is(s, "__offsets__:0 cust-2 ", 1), "the second is left");
        p.clog_trim = 5;
        is_int(mcd_store_commit(s, &b), 0, "a trim beyond the end");
        ok(owed_is(s, "", 0), "owed list empty again");
        p.clog_trim = 0;

        /* The failed appends' set: a commit removes what a claim appended again. */
        {
                char *lost[] = {"cust-1", "__offsets__:0"}, **got = NULL;
                size_t n = 0;
                is_int(mcd_store_clog_lost_add(s, 0, lost, 2), 0, "two failed appends saved");
                p.clog_forget = lost;
                p.n_clog_forget = 1;
                is_int(mcd_store_commit(s, &b), 0, "a commit forgets one");
                p.n_clog_forget = 0;
                is_int(mcd_store_clog_lost_get(s, 0, &got, &n), 0, "read back");
                ok(n == 1 && strcmp(got[0], "__offsets__:0") == 0, "the other is left");
                mcd_store_ids_free(got, n);
                p.clog_forget = lost + 1;
                p.n_clog_forget = 1;
                is_int(mcd_store_commit(s, &b), 0, "a commit forgets it");
                p.n_clog_forget = 0;
                is_int(mcd_store_clog_lost_get(s, 0, &got, &n), 0, "read back again");
                is_int(n, 0, "none left");
                mcd_store_ids_free(got, n);
        }
}

/* mcd_store_due shares its max out among the partitions: three with 5, 1
 * and 5 customers due, 6 asked for, give 3, 1 and 2, each partition's
 * earliest first, and say more are due; 20 asked for take all 11. */
static void test_due_shared(struct mcd_store *s, int64_t gen) {
        static const int32_t parts3[] = {40, 41, 42};
        static const size_t due_in[] = {5, 1, 5}, want[] = {3, 1, 2};
        const mcd_time_t until[] = {TERM_END, TERM_END, TERM_END};
        struct mcd_customer c;
        char **ids = NULL, id[32];
        int32_t *parts = NULL;
        size_t n = 0, at = 0;
        bool more = false, fine = true;

        for (size_t p = 0; p < 3; p++)
                for (size_t i = 0; i < due_in[p]; i++) {
                        snprintf(id, sizeof(id), "shared-%zu-%zu", p, i);
                        fine &= simple_customer(&c, id, MCD_SS_SWITCH_BLOCKED) == 0 &&
                                commit_one(s, &c, parts3[p], gen) == 0;
                        mcd_customer_clear(&c);
                }
        ok(fine, "due shared: 11 customers due over three partitions committed");
        is_int(mcd_store_due(s, parts3, until, 3, 6, &ids, &parts, &n, &more), 0, "due shared: 6 asked for");
        ok(n == 6 && more, "due shared: 6 taken, more due (%zu, %d)", n, more);
        for (size_t p = 0; p < 3 && n == 6; p++)
                for (size_t i = 0; i < want[p]; i++, at++) {
                        snprintf(id, sizeof(id), "shared-%zu-%zu", p, i);
                        fine &= parts[at] == parts3[p] && strcmp(ids[at], id) == 0;
                }
        ok(n == 6 && fine, "due shared: 3, 1 and 2, each partition's first, in the partitions' order");
        mcd_store_ids_free(ids, n);
        free(parts);
        is_int(mcd_store_due(s, parts3, until, 3, 20, &ids, &parts, &n, &more), 0, "due shared: 20 asked for");
        ok(n == 11 && !more, "due shared: all 11 taken, none more (%zu, %d)", n, more);
        mcd_store_ids_free(ids, n);
        free(parts);
}

static void test_due(struct mcd_store *s, int64_t gen) {
        static const int32_t both[] = {1, 0};
        struct mcd_customer blocked, allowed;
        int32_t *parts = NULL;
        uint64_t rt;
        char **ids = NULL;
        size_t n = 0;
        int64_t due = -1, len = -1;

        simple_customer(&blocked, "c-due", MCD_SS_SWITCH_BLOCKED);
        simple_customer(&allowed, "c-due", MCD_SS_SWITCH_ALLOWED);
        is_int(commit_one(s, &blocked, 0, gen), 0, "commit of a customer with a blocked switch");
        is_int(mcd_store_due(s, P0, (mcd_time_t[]){TERM_END - 1}, 1, 10, &ids, &parts, &n, NULL), 0,
               "due just before term_end");
        is_int(n, 0, "nothing due yet");
        mcd_store_ids_free(ids, n);
        free(parts);
        parts = NULL;
        is_int(mcd_store_due(s, P0, (mcd_time_t[]){TERM_END}, 1, 10, &ids, &parts, &n, NULL), 0, "due at term_end");
        ok(n == 1 && strcmp(ids[0], "c-due") == 0, "the customer is due at its term_end");
        mcd_store_ids_free(ids, n);
        free(parts);
        parts = NULL;
        is_int(mcd_store_due(s, P1, (mcd_time_t[]){TERM_END}, 1, 10, &ids, &parts, &n, NULL), 0, "due on another partition");
        is_int(n, 0, "nothing there");
        mcd_store_ids_free(ids, n);
        free(parts);
        parts = NULL;
        rt = mcd_store_round_trips(s);
        is_int(mcd_store_due(s, both, (mcd_time_t[]){TERM_END, TERM_END}, 2, 10, &ids, &parts, &n, NULL), 0,
               "due over two partitions");
        is_int((long long)(mcd_store_round_trips(s) - rt), 1, "in one round trip");
        ok(n == 1 && strcmp(ids[0], "c-due") == 0 && parts[0] == 0, "it is found in partition 0");
        mcd_store_ids_free(ids, n);
        free(parts);
        parts = NULL;
        is_int(mcd_store_due(s, both, (mcd_time_t[]){TERM_END + 1000, TERM_END - 1}, 2, 10, &ids, &parts, &n, NULL), 0,
               "due over two partitions, each by its own clock");
        is_int(n, 0, "partition 0's clock before term_end: nothing, whatever partition 1's");
        mcd_store_ids_free(ids, n);
        free(parts);
        parts = NULL;
        is_int(mcd_store_counts(s, P0, 1, &due, &len), 0, "counts");
        is_int(due, 1, "one customer due");
        is_int(mcd_store_counts(s, both, 2, &due, &len), 0, "counts over two partitions");
        is_int(due, 1, "still one customer due");
        is_int(commit_one(s, &allowed, 0, gen), 0, "commit of the customer without a blocked switch");
        is_int(mcd_store_due(s, P0, (mcd_time_t[]){TERM_END + 1000}, 1, 10, &ids, &parts, &n, NULL), 0, "due after term_end");
        is_int(n, 0, "the customer is gone from the zset");
        mcd_store_ids_free(ids, n);
        free(parts);
        parts = NULL;
        mcd_customer_clear(&blocked);
        mcd_customer_clear(&allowed);
}

/* A reply's integer through a fresh connection to db 3: ZSCORE KEY MEMBER
 * and the like (a bulk reply parsed), -1 for nil or an error. */
static long long raw3_int(int port, const char *cmd, const char *key, const char *member) {
        redisContext *c = raw_connect(port);
        redisReply *r1 = c ? redisCommand(c, "SELECT 3") : NULL;
        redisReply *r2 = r1 ? redisCommand(c, cmd, key, member) : NULL;
        long long v = -1;

        if (r2 && r2->type == REDIS_REPLY_INTEGER)
                v = r2->integer;
        else if (r2 && r2->type == REDIS_REPLY_STRING)
                v = strtoll(r2->str, NULL, 10);
        if (r1)
                freeReplyObject(r1);
        if (r2)
                freeReplyObject(r2);
        if (c)
                redisFree(c);
        return v;
}

/* Commits sc in a batch of partition 0 (the customers' due times go to
 * their partitions' zsets, which the tests after these expect empty for
 * partitions 0 and 1). */
static int commit_sc(struct mcd_store *s, const struct mcd_store_customer *sc, size_t n, int64_t gen) {
        struct mcd_store_partition p = {.partition = 0, .generation = gen};
        struct mcd_store_batch b = {.customers = sc, .n_customers = n, .partitions = &p, .n_partitions = 1};

        return mcd_store_commit(s, &b);
}

/* The due index is written where a customer's due time changed from the
 * one it was loaded with, and only there: each skipped write is shown by a
 * score the test planted staying put. */
static void test_due_changes(struct mcd_store *s, int port, int64_t gen) {
        struct mcd_customer blocked, allowed, other;
        struct mcd_store_customer sc[3] = {
                {.customer = &blocked, .partition = 6},
                {.customer = &allowed, .partition = 6},
                {.customer = &other, .partition = 5},   /* not one of the batch's partitions */
        };

        simple_customer(&blocked, "c-dc-1", MCD_SS_SWITCH_BLOCKED);
        simple_customer(&allowed, "c-dc-2", MCD_SS_SWITCH_ALLOWED);
        simple_customer(&other, "c-dc-3", MCD_SS_SWITCH_BLOCKED);
        ok(raw3(port, "ZADD t:due:6 1 %s", "c-dc-2"), "due changes: a score planted for a customer with none");
        is_int(commit_sc(s, sc, 3, gen), 0, "due changes: three customers, due unknown");
        is_int(raw3_int(port, "ZSCORE %s %s", "t:due:6", "c-dc-1"), TERM_END, "due changes: added");
        is_int(raw3_int(port, "ZSCORE %s %s", "t:due:6", "c-dc-2"), -1, "due changes: removed");
        is_int(raw3_int(port, "ZSCORE %s %s", "t:due:5", "c-dc-3"), TERM_END, "due changes: its own partition's zset");

        ok(raw3(port, "ZADD t:due:6 7 %s", "c-dc-1") && raw3(port, "ZADD t:due:6 7 %s", "c-dc-2"), "scores planted");
        sc[0] = (struct mcd_store_customer){.customer = &blocked, .partition = 6, .due_known = true, .had_due = true,
                                            .due_before = TERM_END};
        sc[1] = (struct mcd_store_customer){.customer = &allowed, .partition = 6, .due_known = true};
        is_int(commit_sc(s, sc, 2, gen), 0, "due changes: loaded with the due times they have");
        is_int(raw3_int(port, "ZSCORE %s %s", "t:due:6", "c-dc-1"), 7, "due changes: unchanged due time not written");
        is_int(raw3_int(port, "ZSCORE %s %s", "t:due:6", "c-dc-2"), 7, "due changes: none before, none now: no ZREM");

        sc[0].due_before = TERM_END - 1;
        sc[1].had_due = true;
        is_int(commit_sc(s, sc, 2, gen), 0, "due changes: loaded with other due times");
        is_int(raw3_int(port, "ZSCORE %s %s", "t:due:6", "c-dc-1"), TERM_END, "due changes: a changed due time written");
        is_int(raw3_int(port, "ZSCORE %s %s", "t:due:6", "c-dc-2"), -1, "due changes: a lost due time removed");
        mcd_customer_clear(&blocked);
        mcd_customer_clear(&allowed);
        mcd_customer_clear(&other);
}

/* A batch of more customers than one call of the script takes (1000
 * arguments: 500 states, 500 due times): every state and due time lands. */
/* The n customers' states read raw, an unknown one among them, in one
 * call that takes more than one MGET (the changelog's repair). */
static void test_raw_many(struct mcd_store *s, const char **ids, const struct mcd_customer *cs, size_t n) {
        const char **with = calloc(n + 1, sizeof(*with));
        char **bufs = calloc(n + 1, sizeof(*bufs)), *want = NULL;
        size_t *lens = calloc(n + 1, sizeof(*lens)), want_len = 0, same = 0;

        if (!ok(with && bufs && lens, "raw states: memory"))
                goto out;
        memcpy(with, ids, 700 * sizeof(*with));
        with[700] = "c-nobody";
        memcpy(with + 701, ids + 700, (n - 700) * sizeof(*with));
        is_int(mcd_store_get_customers_raw(s, with, n + 1, bufs, lens), 0, "raw states: %zu read", n + 1);
        ok(bufs[700] == NULL && lens[700] == 0, "raw states: the unknown customer has none");
        for (size_t i = 0; i < n; i++) {
                size_t k = i < 700 ? i : i + 1;
                if (mcd_state_encode(&cs[i], &want, &want_len) == 0 && bufs[k] && lens[k] == want_len &&
                    memcmp(bufs[k], want, want_len) == 0)
                        same++;
                free(want);
                want = NULL;
        }
        is_int((long long)same, (long long)n, "raw states: each as committed, in the order asked");
out:
        for (size_t i = 0; bufs && i <= n; i++)
                free(bufs[i]);
        free(with);
        free(bufs);
        free(lens);
}

static void test_big_batch(struct mcd_store *s, int port, int64_t gen) {
        enum { N = 1301 };
        struct mcd_customer *cs = calloc(N, sizeof(*cs)), *out = calloc(N, sizeof(*out));
        struct mcd_store_customer *sc = calloc(N, sizeof(*sc));
        char (*names)[16] = calloc(N, sizeof(*names));
        const char **ids = calloc(N, sizeof(*ids));
        bool same = true;

        if (!ok(cs && out && sc && names && ids, "big batch: memory"))
                goto out;
        for (int i = 0; i < N; i++) {
                snprintf(names[i], sizeof(names[i]), "c-big-%d", i);
                ids[i] = names[i];
                simple_customer(&cs[i], names[i], i % 2 ? MCD_SS_SWITCH_ALLOWED : MCD_SS_SWITCH_BLOCKED);
                sc[i] = (struct mcd_store_customer){.customer = &cs[i], .partition = i % 3 ? 8 : 4};
        }
        is_int(commit_sc(s, sc, N, gen), 0, "big batch: %d customers committed", N);
        is_int(mcd_store_load(s, ids, N, out), 0, "big batch: loaded");
        for (int i = 0; i < N; i++)
                same = same && same_customer(&cs[i], &out[i]);
        ok(same, "big batch: each state as committed");
        is_int(raw3_int(port, "ZCOUNT %s %s +inf", "t:due:4", "-inf"), (N + 5) / 6, "big batch: due times of partition 4");
        is_int(raw3_int(port, "ZSCORE %s %s", "t:due:8", "c-big-1000"), TERM_END, "big batch: one past a chunk's end");
        test_raw_many(s, ids, cs, N);
out:
        for (int i = 0; cs && out && i < N; i++) {
                mcd_customer_clear(&cs[i]);
                mcd_customer_clear(&out[i]);
        }
        free(cs);
        free(out);
        free(sc);
        free(names);
        free(ids);
}

static void test_fencing(struct mcd_store *s, int64_t gen) {
        struct mcd_customer c, out;
        const char *id = "c-fenced";
        static const char frame[] = "x\0y";
        const void *frames[] = {frame};
        size_t lens[] = {sizeof(frame)};
        struct mcd_store_customer sc = {.customer = &c, .partition = 0};
        struct mcd_store_partition p[2] = {
                {.partition = 1, .generation = 0},
                {.partition = 0, .generation = gen, .set_offsets = true, .offsets = {7, 7}, .frames = frames,
                 .frame_lens = lens, .n_frames = 1},
        };
        struct mcd_store_batch b = {.customers = &sc, .n_customers = 1, .partitions = p, .n_partitions = 2};
        struct mcd_offsets o;
        int64_t g2 = 0, g1 = 0, now_gen = 0, due = 0, len = 0;

        simple_customer(&c, id, MCD_SS_SWITCH_BLOCKED);
        is_int(mcd_store_claim(s, 1, 0, 0, &g1), 0, "claim of partition 1");
        p[0].generation = g1;
        is_int(mcd_store_claim(s, 0, 0, 0, &g2), 0, "second claim of partition 0");
        ok(g2 == gen + 1, "generation went up by one");
        is_int(mcd_store_generation(s, 0, &now_gen), 0, "generation read");
        is_int(now_gen, g2, "generation is the new one");
        is_int(mcd_store_commit(s, &b), -ESTALE, "commit with the old generation is -ESTALE");
        is_int(mcd_store_load(s, &id, 1, &out), 0, "load after the fenced commit");
        ok(out.n_subs == 0, "customer not written");
        mcd_customer_clear(&out);
        is_int(mcd_store_get_offsets(s, 0, &o, NULL), 0, "offsets read");
        ok(o.rel == 42, "offsets not written");
        is_int(mcd_store_counts(s, P0, 1, &due, &len), 0, "counts read");
        ok(due == 0 && len == 0, "neither due zset nor outbox written");
        p[1].generation = g2;
        p[0].generation = g1 + 1;
        is_int(mcd_store_commit(s, &b), -ESTALE, "a stale second partition fences the whole batch");
        p[0].generation = g1;
        is_int(mcd_store_commit(s, &b), 0, "commit with the new generations");
        is_int(mcd_store_counts(s, P0, 1, &due, &len), 0, "counts read");
        ok(due == 1 && len == 1, "now written");
        mcd_customer_clear(&c);
}

/* Rollbacks: the commit counter refuses a batch whose owner committed more
 * than Redis holds; a claim never goes back to a generation at or below its
 * floor. */
static void test_rollback(struct mcd_store *s, int port) {
        struct mcd_store_partition p = {.partition = 9};
        struct mcd_store_batch b = {.partitions = &p, .n_partitions = 1};
        struct mcd_offsets o;
        int64_t gen = 0, g0, seq = -1;
        bool stored = true;

        is_int(mcd_store_claim(s, 9, 0, 0, &gen), 0, "rollback: claim of partition 9");
        p.generation = gen;
        is_int(mcd_store_commit(s, &b), 0, "rollback: a commit unchecked (seq 0)");
        is_int(mcd_store_offsets_stored(s, 9, &stored), 0, "rollback: offsets stored?");
        ok(!stored, "rollback: a commit counter alone is no offsets");
        p.seq = 1;
        p.set_offsets = true;
        p.offsets = (struct mcd_offsets){.rel = 5, .sub = 6};
        is_int(mcd_store_commit(s, &b), 0, "rollback: a commit at counter 1");
        is_int(mcd_store_get_offsets(s, 9, &o, &seq), 0, "rollback: offsets and counter read");
        ok(o.rel == 5 && o.sub == 6 && seq == 2, "rollback: counter 2 after two commits (%" PRId64 ")", seq);
        ok(raw3(port, "HSET t:off:9 seq %s", "1"), "rollback: Redis set back one commit");
        p.seq = 2;
        p.offsets.rel = 7;
        is_int(mcd_store_commit(s, &b), MCD_STORE_ROLLBACK, "rollback: the owner's next commit is refused");
        is_int(mcd_store_get_offsets(s, 9, &o, &seq), 0, "rollback: read again");
        ok(o.rel == 5 && seq == 1, "rollback: nothing written");
        g0 = gen;
        is_int(mcd_store_claim(s, 9, g0 + 10, 0, &gen), 0, "rollback: a claim with a floor above Redis's");
        is_int(gen, g0 + 11, "rollback: the floor + 1, not Redis's next");
        is_int(mcd_store_claim(s, 9, 3, 0, &gen), 0, "rollback: a claim with a floor below");
        is_int(gen, g0 + 12, "rollback: Redis's next");
        /* A claim again under the generation held before (after a stall). */
        is_int(mcd_store_claim(s, 9, 0, g0 + 12, &gen), 0, "reclaim: Redis names ours");
        is_int(gen, g0 + 13, "reclaim: the next generation");
        ok(raw3(port, "SET t:gen:9 %s", "5"), "reclaim: Redis set back below ours");
        is_int(mcd_store_claim(s, 9, g0 + 13, g0 + 13, &gen), 0, "reclaim: Redis older than ours");
        is_int(gen, g0 + 14, "reclaim: above ours, the floor");
        is_int(mcd_store_claim(s, 9, 0, g0 + 12, &gen), -ESTALE, "reclaim: Redis names a later one: taken");
        is_int(gen, g0 + 14, "reclaim: the taker's generation");
        is_int(mcd_store_generation(s, 9, &gen), 0, "reclaim: generation read");
        is_int(gen, g0 + 14, "reclaim: nothing written");
}

static void test_meta_missing(struct mcd_store *s, int port, int64_t gen) {
        struct mcd_customer c;
        bool exists = true, created = false;

        simple_customer(&c, "c-lost", MCD_SS_SWITCH_BLOCKED);
        is_int(raw(port, "FLUSHALL"), 0, "FLUSHALL");
        is_int(mcd_store_meta_exists(s, &exists), 0, "meta_exists after FLUSHALL");
        ok(!exists, "meta is gone");
        is_int(commit_one(s, &c, 0, gen), -ENODATA, "commit without meta is -ENODATA");
        {
                redisContext *rc = raw_connect(port);
                redisReply *r1 = rc ? redisCommand(rc, "SELECT 3") : NULL;
                redisReply *r2 = rc ? redisCommand(rc, "DBSIZE") : NULL;
                ok(r2 && r2->type == REDIS_REPLY_INTEGER && r2->integer == 0, "nothing written");
                if (r1)
                        freeReplyObject(r1);
                if (r2)
                        freeReplyObject(r2);
                if (rc)
                        redisFree(rc);
        }
        is_int(mcd_store_init_meta(s, &created), 0, "init_meta again");
        ok(created, "meta created again");
        is_int(commit_one(s, &c, 0, gen), -ESTALE, "commit with meta but no generation is -ESTALE");
        mcd_customer_clear(&c);
}

static void test_down(struct mcd_store *s, struct srv *sv) {
        const char *id = "c-rich";
        struct mcd_customer out;
        int64_t rtt = -1, gen = 0;
        int r1, r2;

        server_stop(sv);
        r1 = mcd_store_load(s, &id, 1, &out);
        ok(r1 == -EIO || r1 == -ECONNREFUSED, "load with Redis down fails: %d", r1);
        r2 = mcd_store_ping(s, &rtt);
        is_int(r2, -ECONNREFUSED, "reconnect to a down Redis is -ECONNREFUSED");
        is_int(mcd_store_claim(s, 0, 0, 0, &gen), -ECONNREFUSED, "claim too");
        if (!ok(server_start(sv) == 0, "redis restarted on the same port"))
                return;
        is_int(mcd_store_ping(s, &rtt), 0, "ping after restart");
        ok(rtt >= 0, "rtt measured");
        is_int(mcd_store_load(s, &id, 1, &out), 0, "load after restart");
        ok(out.n_subs == 3, "data survived the restart (AOF)");
        mcd_customer_clear(&out);
        is_int(mcd_store_claim(s, 0, 0, 0, &gen), 0, "claim after restart");
}

/* The load of the next batch and the commit of this one: one round trip,
 * the load's reply read (and handed to while_running) before the commit's;
 * a commit whose checks fail before it is sent sends no load either. */
struct load_seen {
        int calls;
        int load_r;
};

static void note_load(void *ctx, int load_r) {
        struct load_seen *seen = ctx;

        seen->calls++;
        seen->load_r = load_r;
}

/* The commit's fence (store_fence.c), carried from one commit to the next
 * on partition 5: a commit right after another is one round trip; a
 * watched key written by another client, to the same value, makes EXEC
 * refuse the writes once, and the commit is made on the next try, once;
 * another instance's claim between two commits makes EXEC refuse them and
 * the commit -ESTALE, with nothing written and the load sent with it
 * standing. */
static void test_fence(struct mcd_store *s, int port) {
        const char *ids[] = {"c-fence-other"};
        struct mcd_customer c, out[1];
        struct mcd_store_customer sc = {.customer = &c, .partition = 5};
        struct mcd_store_partition p = {.partition = 5};
        struct load_seen seen = {0, 1};
        struct mcd_store_batch b = {.customers = &sc, .n_customers = 1, .partitions = &p, .n_partitions = 1,
                                    .while_running = note_load, .while_running_ctx = &seen};
        char gen_s[32];
        uint64_t rt;
        int load_r = 1;

        is_int(mcd_store_claim(s, 5, 0, 0, &p.generation), 0, "fence: claim of partition 5");
        snprintf(gen_s, sizeof(gen_s), "%" PRId64, p.generation);
        simple_customer(&c, "c-fence", MCD_SS_SWITCH_ALLOWED);
        rt = mcd_store_round_trips(s);
        is_int(mcd_store_commit(s, &b), 0, "fence: a commit after another command");
        is_int(mcd_store_round_trips(s) - rt, 2, "fence: the fence read first, then the commit");
        rt = mcd_store_round_trips(s);
        is_int(mcd_store_commit(s, &b), 0, "fence: the next commit");
        is_int(mcd_store_round_trips(s) - rt, 1, "fence: carried, one round trip");
        is_int(raw3_int(port, "HGET %s %s", "t:off:5", "seq"), 2, "fence: two commits counted");

        ok(raw3(port, "SET t:gen:5 %s", gen_s), "fence: the generation written again, unchanged");
        rt = mcd_store_round_trips(s);
        is_int(mcd_store_commit(s, &b), 0, "fence: committed all the same");
        is_int(mcd_store_round_trips(s) - rt, 2, "fence: refused once, made on the next try");
        is_int(raw3_int(port, "HGET %s %s", "t:off:5", "seq"), 3, "fence: counted once");

        ok(raw3(port, "INCR %s", "t:gen:5"), "fence: another instance claims partition 5");
        mcd_customer_clear(&c);
        simple_customer(&c, "c-fence", MCD_SS_SWITCH_BLOCKED);
        seen.calls = 0;
        is_int(mcd_store_load_and_commit(s, &b, ids, 1, out, &load_r), -ESTALE, "fence: the commit is -ESTALE");
        is_int(load_r, 0, "fence: the load sent with it stands");
        is_int(seen.calls, 1, "fence: while_running called once");
        mcd_customer_clear(&out[0]);
        is_int(raw3_int(port, "HGET %s %s", "t:off:5", "seq"), 3, "fence: nothing written");
        is_int(mcd_store_load(s, (const char *[]){"c-fence"}, 1, out), 0, "fence: the customer loads");
        ok(out[0].n_subs == 1 && out[0].subs[0].state == MCD_SS_SWITCH_ALLOWED, "fence: as before the claim");
        mcd_customer_clear(&out[0]);
        mcd_customer_clear(&c);
}

/* A key the commit writes of another type (a string where the outbox
 * list is): Redis would run the rest of the transaction past the failing
 * command, the batch half written; the fence finds it first, and nothing
 * is written, also when the fence was read a commit ago.  b's one
 * partition is p, 6, its offsets key deleted. */
static void refused_wrong_types(struct mcd_store *s, int port, const struct mcd_store_batch *b,
                                struct mcd_store_partition *p) {
        static const char *const keys[] = {"t:outbox:6", "t:clog_owed:6", "t:clog_lost:6", "t:due:6"};
        static const char frame[] = "f";
        const void *frames[] = {frame};
        size_t lens[] = {sizeof(frame)};
        struct mcd_customer out;
        int64_t due = 0, len = 0;
        long long seq;

        p->frames = frames;
        p->frame_lens = lens;
        p->n_frames = 1;
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
                ok(raw3(port, "SET %s x", keys[k]), "refused: %s made a string", keys[k]);
                is_int(mcd_store_commit(s, b), MCD_STORE_WRONG_TYPE, "refused: the commit is MCD_STORE_WRONG_TYPE");
                is_int(raw3_int(port, "EXISTS %s%s", "t:off:6", ""), 0, "refused: no offsets written");
                is_int(mcd_store_load(s, (const char *[]){"c-refused"}, 1, &out), 0, "refused: the customer loads");
                ok(out.n_subs == 1 && out.subs[0].state == MCD_SS_SWITCH_ALLOWED, "refused: the customer as before");
                mcd_customer_clear(&out);
                ok(raw3(port, "DEL %s", keys[k]), "refused: %s deleted", keys[k]);
        }
        is_int(mcd_store_commit(s, b), 0, "refused: then the commit is made");
        is_int(raw3_int(port, "LLEN %s%s", "t:outbox:6", ""), 1, "refused: its frame in the outbox");

        /* The fence carried from that commit, across a read: the type it
         * read no longer holds at the next. */
        is_int(mcd_store_counts(s, (const int32_t[]){6}, 1, &due, &len), 0, "refused: a read between commits");
        ok(raw3(port, "DEL %s", "t:outbox:6") && raw3(port, "SET %s x", "t:outbox:6"),
           "refused: t:outbox:6 made a string after the commit");
        seq = raw3_int(port, "HGET %s %s", "t:off:6", "seq");
        is_int(mcd_store_commit(s, b), MCD_STORE_WRONG_TYPE, "refused: the next commit is MCD_STORE_WRONG_TYPE");
        is_int(raw3_int(port, "HGET %s %s", "t:off:6", "seq"), seq, "refused: its counter unchanged");
        ok(raw3(port, "DEL %s", "t:outbox:6"), "refused: t:outbox:6 deleted");
        p->n_frames = 0;
}

/* What Redis refuses: a transaction refused whole (EXECABORT: out of
 * memory while queueing) writes nothing and says why; a partition's offsets
 * key of the wrong type is an error before anything is sent, also for a
 * commit that checks no counter (seq 0); a commit of no partition checks
 * meta alone. */
static void test_refused(struct mcd_store *s, int port) {
        struct mcd_customer c, out;
        struct mcd_store_customer sc = {.customer = &c, .partition = 6};
        struct mcd_store_partition p = {.partition = 6};
        struct mcd_store_batch b = {.customers = &sc, .n_customers = 1, .partitions = &p, .n_partitions = 1};

        is_int(mcd_store_claim(s, 6, 0, 0, &p.generation), 0, "refused: claim of partition 6");
        simple_customer(&c, "c-refused", MCD_SS_SWITCH_ALLOWED);
        is_int(mcd_store_commit(s, &b), 0, "refused: a commit");
        is_int(raw(port, "CONFIG SET maxmemory 1"), 0, "refused: Redis out of memory");
        is_int(mcd_store_commit(s, &b), -ENOSPC, "refused: the commit is -ENOSPC");
        is_int(raw(port, "CONFIG SET maxmemory 0"), 0, "refused: memory again");
        is_int(raw3_int(port, "HGET %s %s", "t:off:6", "seq"), 1, "refused: nothing written");

        ok(raw3(port, "DEL %s", "t:off:6") && raw3(port, "SET t:off:6 %s", "not a hash"),
           "refused: the offsets key made a string");
        mcd_customer_clear(&c);
        simple_customer(&c, "c-refused", MCD_SS_SWITCH_BLOCKED);
        is_int(mcd_store_commit(s, &b), MCD_STORE_WRONG_TYPE, "refused: the commit is MCD_STORE_WRONG_TYPE");
        ok(raw3(port, "DEL %s", "t:off:6"), "refused: the offsets key deleted");
        is_int(mcd_store_load(s, (const char *[]){"c-refused"}, 1, &out), 0, "refused: the customer loads");
        ok(out.n_subs == 1 && out.subs[0].state == MCD_SS_SWITCH_ALLOWED, "refused: as before");
        mcd_customer_clear(&out);
        refused_wrong_types(s, port, &b, &p);

        b.n_partitions = 0;
        mcd_customer_clear(&c);
        simple_customer(&c, "c-no-partition", MCD_SS_SWITCH_BLOCKED);
        is_int(mcd_store_commit(s, &b), 0, "refused: a commit of no partition is made");
        is_int(raw3_int(port, "EXISTS %s%s", "t:c:c-no-partition", ""), 1, "refused: its customer written");
        mcd_customer_clear(&c);
}

/* Whether Redis may evict the daemon's keys: only a maxmemory with an
 * allkeys-* policy may (the daemon sets no expiry). */
static void test_evicts(struct mcd_store *s, int port) {
        char policy[64] = "";

        is_int(mcd_store_evicts(s, policy, sizeof(policy)), 0, "evicts: not with Redis's defaults");
        is_str(policy, "noeviction", "evicts: its policy read");
        is_int(raw(port, "CONFIG SET maxmemory-policy allkeys-lru"), 0, "evicts: allkeys-lru");
        is_int(mcd_store_evicts(s, policy, sizeof(policy)), 0, "evicts: not without a maxmemory");
        is_int(raw(port, "CONFIG SET maxmemory 1gb"), 0, "evicts: a maxmemory");
        is_int(mcd_store_evicts(s, policy, sizeof(policy)), 1, "evicts: allkeys-lru with a maxmemory may");
        is_str(policy, "allkeys-lru", "evicts: named");
        is_int(raw(port, "CONFIG SET maxmemory-policy volatile-lru"), 0, "evicts: volatile-lru");
        is_int(mcd_store_evicts(s, policy, sizeof(policy)), 0, "evicts: volatile-lru never picks a key without expiry");
        is_int(raw(port, "ACL SETUSER default -config"), 0, "evicts: CONFIG refused to the daemon's user");
        is_int(mcd_store_evicts(s, policy, sizeof(policy)), -EOPNOTSUPP, "evicts: unknown when CONFIG is refused");
        is_int(mcd_store_ping(s, NULL), 0, "evicts: the connection kept");
        is_int(raw(port, "ACL SETUSER default +@all"), 0, "evicts: CONFIG allowed again");
        is_int(raw(port, "CONFIG SET maxmemory-policy noeviction"), 0, "evicts: noeviction again");
        is_int(raw(port, "CONFIG SET maxmemory 0"), 0, "evicts: no maxmemory again");
}

static void test_load_then_commit(struct mcd_store *s, int port, int64_t gen) {
        const char *ids[] = {"c-lac-other", "c-lac-none"};
        struct mcd_customer c, other, out[2];
        struct mcd_store_customer sc = {.customer = &c, .partition = 0};
        struct mcd_store_partition p = {.partition = 0, .generation = gen};
        struct load_seen seen = {0, 1};
        struct mcd_store_batch b = {.customers = &sc, .n_customers = 1, .partitions = &p, .n_partitions = 1,
                                    .while_running = note_load, .while_running_ctx = &seen};
        int load_r = 1;
        uint64_t rt;

        simple_customer(&other, "c-lac-other", MCD_SS_SWITCH_BLOCKED);
        sc.customer = &other;
        is_int(mcd_store_commit(s, &b), 0, "the other customer is committed first");
        sc.customer = &c;
        simple_customer(&c, "c-lac", MCD_SS_SWITCH_ALLOWED);
        seen.calls = 0;
        rt = mcd_store_round_trips(s);
        is_int(mcd_store_load_and_commit(s, &b, ids, 2, out, &load_r), 0, "load and commit");
        is_int(load_r, 0, "the load succeeded");
        is_int((long long)(mcd_store_round_trips(s) - rt), 1, "in one round trip");
        is_int(seen.calls, 1, "while_running called once");
        is_int(seen.load_r, 0, "with the load's result");
        ok(same_customer(&other, &out[0]) && out[1].n_subs == 0, "the load read what was stored");
        mcd_customer_clear(&out[0]);
        mcd_customer_clear(&out[1]);
        is_int(mcd_store_load(s, (const char *[]){"c-lac"}, 1, out), 0, "the committed customer loads");
        ok(same_customer(&c, &out[0]), "as committed");
        mcd_customer_clear(&out[0]);

        mcd_customer_clear(&c);
        simple_customer(&c, "c-lac", MCD_SS_SWITCH_BLOCKED);
        is_int(raw(port, "SCRIPT FLUSH"), 0, "SCRIPT FLUSH");
        is_int(mcd_store_load_and_commit(s, &b, ids, 2, out, &load_r), 0, "load and commit after SCRIPT FLUSH");
        is_int(load_r, 0, "the load succeeded");
        ok(same_customer(&other, &out[0]), "and read what was stored");
        mcd_customer_clear(&out[0]);
        mcd_customer_clear(&out[1]);
        is_int(mcd_store_load(s, (const char *[]){"c-lac"}, 1, out), 0, "the committed customer loads");
        ok(same_customer(&c, &out[0]), "as committed (no script involved)");
        mcd_customer_clear(&out[0]);

        p.generation = gen - 1;
        seen.calls = 0;
        is_int(mcd_store_load_and_commit(s, &b, ids, 2, out, &load_r), -ESTALE, "a stale commit is -ESTALE");
        is_int(load_r, -ECANCELED, "found before it was sent: no load sent");
        is_int(seen.calls, 0, "while_running not called");
        p.generation = gen;
        is_int(mcd_store_load_and_commit(s, &b, ids, 0, out, &load_r), 0, "commit with nothing to load");
        is_int(load_r, 0, "is a plain commit");
        mcd_customer_clear(&c);
        mcd_customer_clear(&other);
}

/* A server that accepts but never answers (SIGSTOP): -ETIMEDOUT. */
static void test_timeout(struct mcd_store *s, struct srv *sv) {
        struct timespec t0, t1;
        int64_t rtt, ms;

        kill(sv->pid, SIGSTOP);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        is_int(mcd_store_ping(s, &rtt), -ETIMEDOUT, "a hung Redis is -ETIMEDOUT");
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        ok(ms >= 900 && ms < 5000, "after the 1 s timeout (%lld ms)", (long long)ms);
        kill(sv->pid, SIGCONT);
        is_int(mcd_store_ping(s, &rtt), 0, "ping once it answers again");
}

/* requirepass: AUTH on connect, and -EACCES without the password. */
static void test_auth(int port) {
        struct mcd_store_options o = {.host = "127.0.0.1", .port = port, .db = 3, .prefix = "t:", .timeout_ms = 1000};
        struct mcd_store *s = NULL;
        redisContext *c;
        redisReply *r;
        int64_t rtt;
        bool exists = false;

        is_int(raw(port, "CONFIG SET requirepass s3cret"), 0, "requirepass set");
        ok(mcd_store_new(&o, &s) == 0, "store without password");
        is_int(mcd_store_ping(s, &rtt), -EACCES, "without the password: -EACCES");
        mcd_store_free(s);
        o.password = "s3cret";
        ok(mcd_store_new(&o, &s) == 0, "store with password");
        is_int(mcd_store_ping(s, &rtt), 0, "with the password: ping");
        is_int(mcd_store_meta_exists(s, &exists), 0, "meta_exists");
        ok(exists, "sees db 3 (SELECT)");
        mcd_store_free(s);
        c = raw_connect(port);
        r = c ? redisCommand(c, "AUTH s3cret") : NULL;
        if (r)
                freeReplyObject(r);
        r = c ? redisCommand(c, "CONFIG SET requirepass %s", "") : NULL;
        ok(r && r->type == REDIS_REPLY_STATUS, "requirepass cleared");
        if (r)
                freeReplyObject(r);
        if (c)
                redisFree(c);
}

static void test_store(struct srv *sv) {
        struct mcd_store *s = store_open(sv->port);
        bool created = false, exists = false;
        int64_t gen = 0, rtt = -1;

        if (!ok(s != NULL, "store created"))
                return;
        is_int(mcd_store_ping(s, &rtt), 0, "ping");
        is_int(mcd_store_meta_exists(s, &exists), 0, "meta_exists");
        ok(!exists, "no meta at first");
        is_int(mcd_store_init_meta(s, &created), 0, "init_meta");
        ok(created, "meta created");
        is_int(mcd_store_init_meta(s, &created), 0, "init_meta again");
        ok(!created, "meta existed");
        is_int(mcd_store_generation(s, 0, &gen), 0, "generation before any claim");
        is_int(gen, 0, "is 0");
        is_int(mcd_store_claim(s, 0, 0, 0, &gen), 0, "claim partition 0");
        is_int(gen, 1, "generation 1");
        test_load_and_commit(s, gen);
        test_legacy_in_redis(s, sv->port, gen);
        test_corrupt(s, sv->port);
        test_parallel_load(s, sv->port, gen);
        test_offsets(s, gen);
        test_redo(s);
        test_outbox(s, gen);
        test_clog_owed(s, gen);
        test_due(s, gen);
        test_due_shared(s, gen);
        test_due_changes(s, sv->port, gen);
        test_big_batch(s, sv->port, gen);
        test_fencing(s, gen);
        gen++;
        test_fence(s, sv->port);
        test_refused(s, sv->port);
        test_evicts(s, sv->port);
        test_load_then_commit(s, sv->port, gen);
        test_timeout(s, sv);
        test_auth(sv->port);
        test_down(s, sv);
        test_rollback(s, sv->port);
        test_meta_missing(s, sv->port, gen);
        mcd_store_free(s);
}

static void test_store_unreachable(int port) {
        struct mcd_store *s = store_open(port);
        int64_t rtt;

        ok(s != NULL, "store created while Redis is down (lazy connect)");
        if (s)
                is_int(mcd_store_ping(s, &rtt), -ECONNREFUSED, "ping of nothing is -ECONNREFUSED");
        mcd_store_free(s);
}

/* Outbox frames: one without a timestamp is written as version 1, as
 * before; a dead letter's input timestamp makes it version 2, read back. */
static void test_frames(void) {
        struct mcd_frame f = {.kind = MCD_FRAME_DEAD_LETTER, .id = "dlq:t:0:7", .id_len = 9, .key = "c-1",
                              .key_len = 3, .value = "\xc3\x01", .value_len = 2, .n_headers = 1},
                         back;
        char names[MCD_FRAME_MAX_HEADERS][64];
        void *buf = NULL;
        size_t len = 0;

        f.headers[0] = (struct mcd_frame_header){"error", "BAD_MAGIC", 9};
        is_int(mcd_frame_encode(&f, &buf, &len), 0, "frame: encoded without a timestamp");
        ok(len > 0 && ((unsigned char *)buf)[0] == 1, "frame: without a timestamp, version 1");
        free(buf);
        f.timestamp = 1772395200000;
        is_int(mcd_frame_encode(&f, &buf, &len), 0, "frame: encoded with its input's timestamp");
        ok(((unsigned char *)buf)[0] == 2, "frame: with a timestamp, version 2");
        is_int(mcd_frame_decode(buf, len, &back, names), 0, "frame: version 2 decoded");
        ok(back.timestamp == f.timestamp && back.kind == f.kind && back.key_len == 3 && back.n_headers == 1 &&
                   !strcmp(back.headers[0].name, "error") && back.value_len == 2,
           "frame: its timestamp, kind, key, value and headers read back");
        is_int(mcd_frame_decode(buf, 6, &back, names), -EBADMSG, "frame: a cut timestamp is refused");
        free(buf);
}

int main(void) {
        struct srv sv = {0};

        signal(SIGPIPE, SIG_IGN);       /* as the daemon does: a dead peer is an error, not a signal */

        test_json_roundtrip();
        test_json_malformed();
        test_codec_roundtrip();
        test_codec_legacy();
        test_codec_worst_case();
        test_codec_times_bounded();
        test_frames();

        sv.port = srv_free_port();
        if (!ok(srv_mkdtemp(top, sizeof(top), "test_store") == 0 && sv.port > 0, "temporary directory and port %d",
                sv.port))
                return tap_done();
        test_store_unreachable(sv.port);
        if (ok(server_start(&sv) == 0, "redis-server started on port %d", sv.port))
                test_store(&sv);
        server_stop(&sv);
        srv_rmtree(top);
        return tap_done();
}
