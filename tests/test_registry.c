/* test_registry.c -- the Schema Registry client (registry.c) against the
 * stand-in tests/registry_stub, started here on a free loopback port.
 *
 * Covers: registering a schema gives an id, the same id again for the same
 * text and another for another text; a schema fetched by id equals what was
 * registered, and a second fetch is served from the cache (the stub counts
 * no new request, and answers it even while down); an unknown id is -ENOENT
 * and is not cached; an outage (503) is -EAGAIN for an uncached id and for a
 * registration; the registry gone (connection refused) is -EAGAIN; basic
 * authentication: 401 without credentials (-EPROTO), accepted with them;
 * concurrent fetches from several threads.  Then the codec's Confluent wire
 * format: an event written with a v2 writer (an added optional field)
 * registered in the registry decodes to the same event as single-object
 * encoding gives; an unknown id is a dead letter UNKNOWN_SCHEMA; an id while
 * the registry is down is -EAGAIN (REGISTRY_UNAVAILABLE), read once it is
 * back; no registry configured: UNKNOWN_SCHEMA; a relationship schema id on
 * the subscriptions topic: WRONG_TOPIC; an outcome framed with an id decodes
 * back; a 3-byte Confluent message: BAD_MAGIC. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "daemon/avro_codec.h"
#include "daemon/jsonl.h"
#include "daemon/registry.h"
#include "tests/tap.h"

static char dir[] = "/tmp/test_registry.XXXXXX";
static pid_t stub;

static void control(const char *name, const char *content) {
        char path[256];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        if (!content) {
                unlink(path);
                return;
        }
        if ((f = fopen(path, "w"))) {
                fputs(content, f);
                fclose(f);
        }
}

/* Starts the stub; returns its port, or 0. */
static int start_stub(void) {
        char path[256], bin[1024];
        const char *b = getenv("MCD_BUILDDIR");
        int port = 0;
        FILE *f;

        snprintf(bin, sizeof(bin), "%s/tests/registry_stub", b ? b : ".");
        snprintf(path, sizeof(path), "%s/port", dir);
        stub = fork();
        if (stub == 0) {
                execl(bin, bin, "0", dir, (char *)NULL);
                _exit(127);
        }
        for (int i = 0; i < 100 && !port; i++) {
                usleep(50000);
                if ((f = fopen(path, "r"))) {
                        if (fscanf(f, "%d", &port) != 1)
                                port = 0;
                        fclose(f);
                }
        }
        return port;
}

static void stop_stub(void) {
        if (stub > 0) {
                kill(stub, SIGTERM);
                waitpid(stub, NULL, 0);
                stub = 0;
        }
}

/* The stub's request count (GET /_stub/requests, itself counted). */
static unsigned long stub_requests(const char *url) {
        char cmd[1200];
        unsigned long n = 0;
        FILE *p;

        const char *b = getenv("MCD_BUILDDIR");
        int len = (int)strcspn(url + strlen("http://"), "/");

        snprintf(cmd, sizeof(cmd), "%s/tests/http_get %.*s /_stub/requests", b ? b : ".", len,
                 url + strlen("http://"));
        if ((p = popen(cmd, "r"))) {
                if (fscanf(p, "%lu", &n) != 1)
                        n = 0;
                pclose(p);
        }
        return n;
}

struct fetcher {
        struct mcd_registry *r;
        uint32_t id;
        int failures;
        const char *want;
};

static void *fetch_many(void *arg) {
        struct fetcher *f = arg;

        for (int i = 0; i < 50; i++) {
                char *json = NULL, why[256];
                if (mcd_registry_schema(f->r, f->id, &json, why, sizeof(why)) != 0 || strcmp(json, f->want) != 0)
                        f->failures++;
                free(json);
        }
        return NULL;
}

static const char *EVENT =
        "{\"event_id\": \"e1\", \"occurred_at\": \"2026-03-01T09:00:00.000Z\", \"customer_id\": \"cust-a\", "
        "\"cloud\": \"COMMERCIAL\", \"type\": \"RelationshipRequested\", \"partner_id\": \"partner-f\"}";

/* The reader schema of RelationshipEvent with an optional field first. */
static char *v2_writer(struct mcd_avro *a) {
        json_t *s = json_loads(mcd_avro_reader_schema(a, MCD_AVRO_RELATIONSHIP_EVENT), 0, NULL);
        json_t *f = json_loads("{\"name\":\"source_system\",\"type\":[\"null\",\"string\"],\"default\":null}", 0,
                               NULL);
        char *out;

        json_array_insert_new(json_object_get(s, "fields"), 0, f);
        out = json_dumps(s, 0);
        json_decref(s);
        return out;
}

static void codec_tests(const char *url) {
        struct mcd_registry *r = NULL;
        struct mcd_avro *a = NULL, *plain = NULL;
        struct mcd_avro_error err = {0};
        struct mcd_event ev = {0}, got = {0};
        struct mcd_outcome oc = {.type = MCD_OUT_TRANSITION_REJECTED}, ocgot = {0};
        char why[256], *writer, *want, *text;
        uint32_t id = 0, oid = 0;
        void *buf = NULL, *sbuf = NULL;
        size_t len = 0, slen = 0;
        unsigned char bad[16];

        mcd_registry_new(url, NULL, 2000, &r);
        mcd_avro_new(&a);
        mcd_avro_new(&plain);
        mcd_avro_use_registry(a, r);
        is_int(mcd_jsonl_parse_event(EVENT, strlen(EVENT), &ev, why, sizeof(why)), 0, "an event");
        want = mcd_jsonl_format_event(&ev);
        writer = v2_writer(a);
        is_int(mcd_registry_register(r, "relationships-value", writer, &id, why, sizeof(why)), 0,
               "v2 writer registered");
        is_int(mcd_avro_encode_event_confluent(a, writer, id, &ev, &buf, &len), 0, "encoded, Confluent framing");
        ok(len > 5 && ((unsigned char *)buf)[0] == 0 && ((unsigned char *)buf)[4] == (id & 0xff),
           "0x00 and the id, big-endian");
        is_int(mcd_avro_decode_event(a, MCD_AVRO_RELATIONSHIP_EVENT, buf, len, &got, &err), 0,
               "decoded through the registry");
        text = mcd_jsonl_format_event(&got);
        is_str(text, want, "the same event");
        free(text);
        mcd_event_clear(&got);
        is_int(mcd_avro_encode_event_with(a, mcd_avro_reader_schema(a, MCD_AVRO_RELATIONSHIP_EVENT), &ev, &sbuf,
                                          &slen), 0, "single-object encoded");
        is_int(mcd_avro_decode_event(a, MCD_AVRO_RELATIONSHIP_EVENT, sbuf, slen, &got, &err), 0,
               "both framings through one codec");
        mcd_event_clear(&got);
        err = (struct mcd_avro_error){0};
        is_int(mcd_avro_decode_event(a, MCD_AVRO_SUBSCRIPTION_EVENT, buf, len, &got, &err), -EBADMSG,
               "on the subscriptions topic");
        is_str(err.code, MCD_DLQ_WRONG_TOPIC, "WRONG_TOPIC");
        is_int(mcd_avro_decode_event(plain, MCD_AVRO_RELATIONSHIP_EVENT, buf, len, &got, &err), -EBADMSG,
               "no registry configured");
        is_str(err.code, MCD_DLQ_UNKNOWN_SCHEMA, "UNKNOWN_SCHEMA (%s)", err.message);
        memcpy(bad, buf, 5);
        bad[1] = 0x7f;
        is_int(mcd_avro_decode_event(a, MCD_AVRO_RELATIONSHIP_EVENT, bad, 5, &got, &err), -EBADMSG, "unknown id");
        is_str(err.code, MCD_DLQ_UNKNOWN_SCHEMA, "UNKNOWN_SCHEMA (%s)", err.message);
        is_int(mcd_avro_decode_event(a, MCD_AVRO_RELATIONSHIP_EVENT, bad, 3, &got, &err), -EBADMSG, "3 bytes");
        is_str(err.code, MCD_DLQ_BAD_MAGIC, "BAD_MAGIC");

        /* A second id, asked for while the registry is down. */
        {
                struct mcd_registry *r2 = NULL;
                struct mcd_avro *b = NULL;
                mcd_registry_new(url, NULL, 2000, &r2);
                mcd_avro_new(&b);
                mcd_avro_use_registry(b, r2);
                control("down", "");
                err = (struct mcd_avro_error){0};
                is_int(mcd_avro_decode_event(b, MCD_AVRO_RELATIONSHIP_EVENT, buf, len, &got, &err), -EAGAIN,
                       "registry down: -EAGAIN");
                is_str(err.code, MCD_DLQ_REGISTRY_UNAVAILABLE, "REGISTRY_UNAVAILABLE (%s)", err.message);
                control("down", NULL);
                usleep(1100 * 1000);    /* the client fails fast for a second */
                is_int(mcd_avro_decode_event(b, MCD_AVRO_RELATIONSHIP_EVENT, buf, len, &got, &err), 0,
                       "registry back: read");
                mcd_event_clear(&got);
                mcd_avro_free(b);
                mcd_registry_free(r2);
        }

        is_int(mcd_registry_register(r, "outcomes-value", mcd_avro_reader_schema(a, MCD_AVRO_OUTCOME), &oid, why,
                                     sizeof(why)), 0, "outcome schema registered");
        mcd_avro_frame_outcomes_confluent(a, oid);
        oc.event_id = "e1#1";
        oc.caused_by = "e1";
        oc.rejected_event_type = "SwitchRequested";
        oc.customer_id = "cust-a";
        oc.occurred_at = 1000;
        oc.subscription_id = "sub-a";
        oc.reason = "TERM_NOT_ENDED";
        oc.message = "no";
        free(buf);
        buf = NULL;
        is_int(mcd_avro_encode_outcome(a, &oc, &buf, &len), 0, "outcome encoded");
        ok(len > 5 && ((unsigned char *)buf)[0] == 0, "framed Confluent");
        is_int(mcd_avro_decode_outcome(a, buf, len, &ocgot, &err), 0, "and decoded back (%s)", err.message);
        is_str(ocgot.event_id, "e1#1", "its event_id");
        mcd_outcome_clear(&ocgot);

        free(buf);
        free(sbuf);
        free(want);
        free(writer);
        mcd_event_clear(&ev);
        mcd_avro_free(a);
        mcd_avro_free(plain);
        mcd_registry_free(r);
}

int main(void) {
        const char *s1 = "{\"type\":\"record\",\"name\":\"A\",\"fields\":[]}";
        const char *s2 = "{\"type\":\"record\",\"name\":\"B\",\"fields\":[]}";
        struct mcd_registry *r = NULL, *r2 = NULL;
        uint32_t id1 = 0, id1b = 0, id2 = 0, idx = 0;
        char url[64], why[256], *json = NULL;
        int port;

        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                return 1;
        }
        port = start_stub();
        if (!ok(port > 0, "the stub started")) {
                stop_stub();
                return tap_done();
        }
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
        is_int(mcd_registry_new(url, NULL, 2000, &r), 0, "client created");

        is_int(mcd_registry_register(r, "out-value", s1, &id1, why, sizeof(why)), 0, "schema registered");
        is_int(mcd_registry_register(r, "out-value", s1, &id1b, why, sizeof(why)), 0, "registered again");
        is_int(id1b, id1, "the same text has the same id");
        is_int(mcd_registry_register(r, "other-value", s2, &id2, why, sizeof(why)), 0, "another schema");
        ok(id2 != id1, "another text has another id");

        /* A fresh client: nothing cached. */
        is_int(mcd_registry_new(url, NULL, 2000, &r2), 0, "second client");
        is_int(mcd_registry_schema(r2, id2, &json, why, sizeof(why)), 0, "schema fetched by id");
        is_str(json, s2, "the fetched schema is the registered text");
        free(json);
        json = NULL;
        is_int(mcd_registry_cached(r2), 1, "one schema cached");
        control("down", "");
        is_int(mcd_registry_schema(r2, id2, &json, why, sizeof(why)), 0, "a cached schema needs no request");
        is_str(json, s2, "cached text");
        free(json);
        json = NULL;
        is_int(mcd_registry_schema(r2, id1, &json, why, sizeof(why)), -EAGAIN, "503: -EAGAIN");
        ok(strstr(why, "503") != NULL, "the reason names the status: %s", why);
        is_int(mcd_registry_register(r2, "x-value", s1, &idx, why, sizeof(why)), -EAGAIN, "503 on register: -EAGAIN");
        control("down", NULL);
        {
                unsigned long before = stub_requests(url), after;
                is_int(mcd_registry_schema(r2, id1, &json, why, sizeof(why)), -EAGAIN,
                       "just after a failure: -EAGAIN at once");
                after = stub_requests(url);
                is_int(after, before + 1, "without a request (only the count's own)");
                usleep(1100 * 1000);
        }
        is_int(mcd_registry_schema(r2, 99999, &json, why, sizeof(why)), -ENOENT, "unknown id: -ENOENT");
        is_int(mcd_registry_cached(r2), 1, "an unknown id is not cached");
        is_int(mcd_registry_schema(r2, id1, &json, why, sizeof(why)), 0, "after the outage, fetched");
        is_str(json, s1, "the first schema");
        free(json);
        json = NULL;

        {
                struct fetcher f[4];
                pthread_t t[4];
                struct mcd_registry *r3 = NULL;
                int fails = 0;
                mcd_registry_new(url, NULL, 2000, &r3);
                for (int i = 0; i < 4; i++) {
                        f[i] = (struct fetcher){.r = r3, .id = i % 2 ? id1 : id2, .want = i % 2 ? s1 : s2};
                        pthread_create(&t[i], NULL, fetch_many, &f[i]);
                }
                for (int i = 0; i < 4; i++) {
                        pthread_join(t[i], NULL);
                        fails += f[i].failures;
                }
                is_int(fails, 0, "four threads fetching at once");
                is_int(mcd_registry_cached(r3), 2, "each id cached once");
                mcd_registry_free(r3);
        }

        control("basic_auth", "alice:secret\n");
        {
                struct mcd_registry *ra = NULL;
                is_int(mcd_registry_schema(r, 99998, &json, why, sizeof(why)), -EPROTO, "401 without credentials");
                ok(strstr(why, "401") != NULL, "the reason names 401: %s", why);
                mcd_registry_new(url, "alice:secret", 2000, &ra);
                is_int(mcd_registry_register(ra, "auth-value", s2, &idx, why, sizeof(why)), 0,
                       "accepted with credentials");
                is_int(idx, id2, "same id");
                mcd_registry_free(ra);
        }
        control("basic_auth", NULL);
        codec_tests(url);

        stop_stub();
        is_int(mcd_registry_schema(r2, 12345, &json, why, sizeof(why)), -EAGAIN, "registry gone: -EAGAIN");
        ok(strstr(why, "did not answer") != NULL, "the reason says so: %s", why);

        mcd_registry_free(r);
        mcd_registry_free(r2);
        mcd_registry_free(NULL);
        is_int(mcd_registry_new("", NULL, 0, &r), -EINVAL, "an empty URL is refused");
        {
                char cmd[128];
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);    /* the stub's port and schema files */
                if (system(cmd) != 0)
                        tap_diag("could not remove %s", dir);
        }
        return tap_done();
}
