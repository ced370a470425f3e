/* test_metrics.c -- the worker's figures (stats.c) and the Prometheus
 * endpoint (metrics.c).
 *
 * Covers: the reason indexes; the latency histogram's buckets; the text
 * exposition of a snapshot (HELP and TYPE of every family, labels, the
 * cumulative histogram); then the server on a free loopback port, fetched
 * over a plain socket with HTTP/1.0: /healthz 503 with its reason before the
 * daemon is ready and 200 after, /metrics with its content type and a counter
 * that moves after mcd_metrics_update, 404 and 405, a second server on the
 * same port refused with -EADDRINUSE, a bad address with -EINVAL, and the
 * port free again once stopped. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "daemon/metrics.h"
#include "daemon/stats.h"
#include "tests/tap.h"

#define RESPONSE_MAX (256 * 1024)

struct response {
        int status;
        char *head;                  /* status line and headers */
        char *body;
};

static void response_clear(struct response *r) {
        free(r->head);
        free(r->body);
        *r = (struct response){0};
}

/* A TCP port nothing listens on right now. */
static int free_port(void) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        int fd, port = -1;

        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
                port = ntohs(a.sin_port);
        close(fd);
        return port;
}

static int connect_loopback(int port) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        struct timeval tv = {.tv_sec = 5};
        int fd;

        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        return fd;
}

static int write_all(int fd, const char *s, size_t n) {
        while (n > 0) {
                ssize_t w = write(fd, s, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                s += w;
                n -= (size_t)w;
        }
        return 0;
}

/* Reads until the server closes (HTTP/1.0).  NUL-terminated heap buffer. */
static char *read_all(int fd, size_t *len) {
        char *buf = malloc(RESPONSE_MAX + 1);
        size_t n = 0;

        if (!buf)
                return NULL;
        while (n < RESPONSE_MAX) {
                ssize_t r = read(fd, buf + n, RESPONSE_MAX - n);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        free(buf);
                        return NULL;
                }
                if (r == 0)
                        break;
                n += (size_t)r;
        }
        buf[n] = '\0';
        *len = n;
        return buf;
}

/* Splits "HTTP/1.x NNN ...\r\nheaders\r\n\r\nbody". */
static int parse_response(char *raw, struct response *out) {
        char *sep = strstr(raw, "\r\n\r\n");
        int status;

        if (!sep || sscanf(raw, "HTTP/1.%*d %d", &status) != 1)
                return -EBADMSG;
        *sep = '\0';
        out->status = status;
        out->head = strdup(raw);
        out->body = strdup(sep + 4);
        if (!out->head || !out->body) {
                response_clear(out);
                return -ENOMEM;
        }
        return 0;
}

static int http_request(int port, const char *method, const char *path, struct response *out) {
        char req[256];
        size_t len;
        char *raw;
        int fd, r;

        *out = (struct response){0};
        snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n", method, path);
        fd = connect_loopback(port);
        if (fd < 0)
                return fd;
        r = write_all(fd, req, strlen(req));
        if (r < 0) {
                close(fd);
                return r;
        }
        raw = read_all(fd, &len);
        close(fd);
        if (!raw)
                return -EIO;
        r = parse_response(raw, out);
        free(raw);
        return r;
}

static bool has_line(const char *text, const char *line) {
        size_t n = strlen(line);

        for (const char *p = text; (p = strstr(p, line)); p++)
                if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
                        return true;
        return false;
}

#define has_line_ok(text, line) \
        do { \
                if (!ok(has_line(text, line), "line: %s", line)) \
                        tap_diag("not among the %zu bytes rendered", strlen(text)); \
        } while (0)

/* ---------------------------------------------------------------- tests */

static void test_indexes(void) {
        is_int(mcd_stats_rejection_index("RELATIONSHIP_HELD_BY_OTHER_PARTNER"), 0, "first rejection reason");
        is_int(mcd_stats_rejection_index("CLOUD_MISMATCH"), 12, "CLOUD_MISMATCH's index");
        is_int(mcd_stats_rejection_index("CSP_TO_CSP_RESALE_NOT_SUPPORTED"), 13, "CSP_TO_CSP_RESALE_NOT_SUPPORTED's index");
        is_int(mcd_stats_rejection_index("EVENT_TOO_OLD"), 14, "EVENT_TOO_OLD's index");
        is_int(mcd_stats_rejection_index("PARK_LIMIT"), MCD_N_REJECTION_REASONS - 1, "last rejection reason");
        is_int(mcd_stats_rejection_index("cloud_mismatch"), -1, "rejection reasons are case-sensitive");
        is_int(mcd_stats_rejection_index(NULL), -1, "no rejection reason");
        is_int(mcd_stats_dead_letter_index("BAD_MAGIC"), 0, "first dead-letter code");
        is_int(mcd_stats_dead_letter_index("KEY_MISMATCH"), MCD_N_DEAD_LETTER_REASONS - 1, "last dead-letter code");
        is_int(mcd_stats_dead_letter_index("NOPE"), -1, "unknown dead-letter code");
}

static void test_latency(void) {
        struct mcd_stats s = {0};

        mcd_stats_observe_latency(&s, 1000);      /* on the bound: le is inclusive */
        mcd_stats_observe_latency(&s, 1001);
        mcd_stats_observe_latency(&s, 0);
        mcd_stats_observe_latency(&s, -5);        /* a clock step counts as 0 */
        mcd_stats_observe_latency(&s, 1000000);
        mcd_stats_observe_latency(&s, 7000000);   /* +Inf */
        is_int(s.latency_buckets[0], 3, "1ms bucket holds 0, a negative and exactly 1ms");
        is_int(s.latency_buckets[1], 1, "2.5ms bucket holds 1.001ms");
        is_int(s.latency_buckets[MCD_N_LATENCY_BUCKETS - 2], 1, "1s bucket holds exactly 1s");
        is_int(s.latency_buckets[MCD_N_LATENCY_BUCKETS - 1], 1, "+Inf bucket holds 7s");
        ok(s.latency_sum_s > 8.0020009 && s.latency_sum_s < 8.0020011, "sum of durations in seconds (%g)",
           s.latency_sum_s);
}

static struct mcd_stats sample_stats(void) {
        struct mcd_stats s = {0};

        s.events[0][MCD_EV_RELATIONSHIP_REQUESTED] = 12;
        s.events[1][MCD_EV_SWITCH_REQUESTED] = 3;
        s.outcomes[MCD_OUT_SWITCH_BLOCKED_UNTIL_TERM_END] = 2;
        s.rejections[mcd_stats_rejection_index("SWITCH_BLOCKED_UNTIL_TERM_END")] = 4;
        s.dead_letters[mcd_stats_dead_letter_index("CORRUPT_AVRO")] = 1;
        s.batches = 3;
        mcd_stats_observe_latency(&s, 2000);
        mcd_stats_observe_latency(&s, 30000);
        mcd_stats_observe_latency(&s, 2000000);
        s.redis_rtt_us = 250;
        s.redis_round_trips = 9;
        s.group_commits = 7;
        s.group_commit_failures = 1;
        s.lag = 42;
        s.parked = 2;
        s.last_batch_ms = 1764921600045;
        s.pending_timers = 5;
        s.outbox_frames = 7;
        s.timers_fired = 6;
        s.fetch_wakeups = 8;
        s.merge_end_queries = 11;
        s.merge_ends_ahead = 3;
        s.partitions = 4;
        s.redis_up = true;
        s.ready = true;
        return s;
}

static void test_render(void) {
        static const char *const families[][2] = {
                {"multichanneld_events_total", "counter"},
                {"multichanneld_outcomes_total", "counter"},
                {"multichanneld_rejections_total", "counter"},
                {"multichanneld_dead_letters_total", "counter"},
                {"multichanneld_batches_total", "counter"},
                {"multichanneld_last_batch_timestamp_seconds", "gauge"},
                {"multichanneld_batch_duration_seconds", "histogram"},
                {"multichanneld_consumer_lag", "gauge"},
                {"multichanneld_redis_rtt_seconds", "gauge"},
                {"multichanneld_redis_round_trips_total", "counter"},
                {"multichanneld_group_commits_total", "counter"},
                {"multichanneld_group_commit_failures_total", "counter"},
                {"multichanneld_parked_events", "gauge"},
                {"multichanneld_pending_timers", "gauge"},
                {"multichanneld_outbox_frames", "gauge"},
                {"multichanneld_timers_fired_total", "counter"},
                {"multichanneld_redis_errors_total", "counter"},
                {"multichanneld_kafka_errors_total", "counter"},
                {"multichanneld_fetch_wakeups_total", "counter"},
                {"multichanneld_merge_end_queries_total", "counter"},
                {"multichanneld_merge_ends_ahead_total", "counter"},
                {"multichanneld_partitions", "gauge"},
                {"multichanneld_ready", "gauge"},
        };
        struct mcd_stats s = sample_stats();
        char *text = mcd_metrics_render(&s);
        char line[256];
        bool all = true;

        if (!ok(text != NULL, "a snapshot renders"))
                return;
        for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
                snprintf(line, sizeof(line), "# TYPE %s %s", families[i][0], families[i][1]);
                if (!has_line(text, line)) {
                        tap_diag("missing: %s", line);
                        all = false;
                }
                snprintf(line, sizeof(line), "# HELP %s ", families[i][0]);
                if (!strstr(text, line)) {
                        tap_diag("missing: %s...", line);
                        all = false;
                }
        }
        ok(all, "every family has its HELP and TYPE lines");
        has_line_ok(text, "multichanneld_events_total{topic=\"relationships\",type=\"RelationshipRequested\"} 12");
        has_line_ok(text, "multichanneld_events_total{topic=\"subscriptions\",type=\"SwitchRequested\"} 3");
        has_line_ok(text, "multichanneld_events_total{topic=\"subscriptions\",type=\"SubscriptionReported\"} 0");
        ok(!strstr(text, "{topic=\"subscriptions\",type=\"RelationshipRequested\"}"),
           "no series for a type on the other topic while it is 0");
        has_line_ok(text, "multichanneld_outcomes_total{type=\"SwitchBlockedUntilTermEnd\"} 2");
        has_line_ok(text, "multichanneld_outcomes_total{type=\"SubscriptionMigrated\"} 0");
        has_line_ok(text, "multichanneld_rejections_total{reason=\"SWITCH_BLOCKED_UNTIL_TERM_END\"} 4");
        has_line_ok(text, "multichanneld_rejections_total{reason=\"CLOUD_MISMATCH\"} 0");
        has_line_ok(text, "multichanneld_dead_letters_total{reason=\"CORRUPT_AVRO\"} 1");
        has_line_ok(text, "multichanneld_batches_total 3");
        has_line_ok(text, "multichanneld_last_batch_timestamp_seconds 1764921600.045");
        has_line_ok(text, "multichanneld_batch_duration_seconds_bucket{le=\"0.001\"} 0");
        has_line_ok(text, "multichanneld_batch_duration_seconds_bucket{le=\"0.0025\"} 1");
        has_line_ok(text, "multichanneld_batch_duration_seconds_bucket{le=\"0.025\"} 1");
        has_line_ok(text, "multichanneld_batch_duration_seconds_bucket{le=\"0.05\"} 2");
        has_line_ok(text, "multichanneld_batch_duration_seconds_bucket{le=\"1\"} 2");
        has_line_ok(text, "multichanneld_batch_duration_seconds_bucket{le=\"+Inf\"} 3");
        has_line_ok(text, "multichanneld_batch_duration_seconds_sum 2.032");
        has_line_ok(text, "multichanneld_batch_duration_seconds_count 3");
        has_line_ok(text, "multichanneld_consumer_lag 42");
        has_line_ok(text, "multichanneld_redis_rtt_seconds 0.000250");
        has_line_ok(text, "multichanneld_redis_round_trips_total 9");
        has_line_ok(text, "multichanneld_group_commits_total 7");
        has_line_ok(text, "multichanneld_group_commit_failures_total 1");
        has_line_ok(text, "multichanneld_parked_events 2");
        has_line_ok(text, "multichanneld_pending_timers 5");
        has_line_ok(text, "multichanneld_outbox_frames 7");
        has_line_ok(text, "multichanneld_timers_fired_total 6");
        has_line_ok(text, "multichanneld_redis_errors_total 0");
        has_line_ok(text, "multichanneld_kafka_errors_total 0");
        has_line_ok(text, "multichanneld_fetch_wakeups_total 8");
        has_line_ok(text, "multichanneld_merge_end_queries_total 11");
        has_line_ok(text, "multichanneld_merge_ends_ahead_total 3");
        has_line_ok(text, "multichanneld_partitions 4");
        has_line_ok(text, "multichanneld_ready 1");
        ok(text[strlen(text) - 1] == '\n', "the exposition ends with a newline");
        free(text);
}

static void test_server(void) {
        struct mcd_metrics *m = NULL, *other = NULL;
        struct mcd_stats s = {0};
        struct response resp;
        char listen[64];
        int port, r;

        port = free_port();
        if (!ok(port > 0, "a free loopback port (%d)", port))
                return;
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
        r = mcd_metrics_start(listen, &m);
        if (!ok(r == 0 && m, "server starts on %s", listen)) {
                tap_diag("mcd_metrics_start: %s", strerror(-r));
                return;
        }

        is_int(mcd_metrics_start(listen, &other), -EADDRINUSE, "a second server on the same port: -EADDRINUSE");
        ok(other == NULL, "and no server handle");
        is_int(mcd_metrics_start("127.0.0.1", &other), -EINVAL, "an address without a port: -EINVAL");
        is_int(mcd_metrics_start("[::1:9464", &other), -EINVAL, "an unclosed IPv6 bracket: -EINVAL");

        r = http_request(port, "GET", "/healthz", &resp);
        is_int(r, 0, "GET /healthz answers");
        is_int(resp.status, 503, "/healthz is 503 before the worker reported");
        is_str(resp.body, "starting\n", "and says it is starting");
        response_clear(&resp);

        s.redis_up = false;
        mcd_metrics_update(m, &s);
        http_request(port, "GET", "/healthz", &resp);
        is_int(resp.status, 503, "/healthz is 503 while Redis is unreachable");
        is_str(resp.body, "Redis unreachable\n", "and names Redis");
        response_clear(&resp);
        s.redis_up = true;
        s.redis_wrong_type = true;
        mcd_metrics_update(m, &s);
        http_request(port, "GET", "/healthz", &resp);
        ok(resp.status == 503 && resp.body && strstr(resp.body, "of another type"),
           "/healthz is 503 while a key of another type holds consumption back, and says so");
        response_clear(&resp);
        s.redis_wrong_type = false;

        s.redis_up = true;
        mcd_metrics_update(m, &s);
        http_request(port, "GET", "/healthz", &resp);
        is_int(resp.status, 503, "/healthz is 503 with no partition assigned");
        is_str(resp.body, "no partitions assigned yet\n", "and says so");
        response_clear(&resp);

        r = http_request(port, "GET", "/metrics", &resp);
        is_int(r, 0, "GET /metrics answers");
        is_int(resp.status, 200, "/metrics is 200");
        ok(resp.head && strstr(resp.head, "text/plain; version=0.0.4"), "/metrics has the exposition content type");
        ok(resp.body && has_line(resp.body, "multichanneld_batches_total 0"), "batches_total is 0");
        ok(resp.body && has_line(resp.body, "multichanneld_ready 0"), "ready is 0");
        response_clear(&resp);

        s.ready = true;
        s.partitions = 2;
        s.batches = 7;
        s.events[1][MCD_EV_SUBSCRIPTION_REPORTED] = 11;
        mcd_metrics_update(m, &s);
        http_request(port, "GET", "/metrics", &resp);
        ok(resp.body && has_line(resp.body, "multichanneld_batches_total 7"), "batches_total moved to 7 after update");
        ok(resp.body && has_line(resp.body,
                                 "multichanneld_events_total{topic=\"subscriptions\",type=\"SubscriptionReported\"} 11"),
           "events_total moved after update");
        ok(resp.body && has_line(resp.body, "multichanneld_ready 1"), "ready is 1");
        response_clear(&resp);

        http_request(port, "GET", "/healthz", &resp);
        is_int(resp.status, 200, "/healthz is 200 once ready");
        is_str(resp.body, "ok\n", "and says ok");
        response_clear(&resp);

        http_request(port, "HEAD", "/healthz", &resp);
        is_int(resp.status, 200, "HEAD /healthz is 200");
        is_str(resp.body, "", "with no body");
        response_clear(&resp);

        http_request(port, "GET", "/nope", &resp);
        is_int(resp.status, 404, "an unknown path is 404");
        response_clear(&resp);

        http_request(port, "GET", "/metrics/", &resp);
        is_int(resp.status, 404, "/metrics/ is 404 too");
        response_clear(&resp);

        http_request(port, "POST", "/metrics", &resp);
        is_int(resp.status, 405, "POST is 405");
        ok(resp.head && strstr(resp.head, "Allow: GET, HEAD"), "with an Allow header");
        response_clear(&resp);

        mcd_metrics_stop(m);
        m = NULL;
        r = connect_loopback(port);
        ok(r < 0, "nothing listens once stopped");
        if (r >= 0)
                close(r);
        r = mcd_metrics_start(listen, &m);
        is_int(r, 0, "the port can be bound again after stop");
        mcd_metrics_stop(m);
        mcd_metrics_update(NULL, &s);           /* metrics disabled: a no-op */
        mcd_metrics_stop(NULL);
        ok(1, "update and stop accept NULL (metrics.listen empty)");
}

static void test_ipv6(void) {
        struct mcd_metrics *m = NULL;
        char listen[64];
        int port = free_port(), r;

        snprintf(listen, sizeof(listen), "[::1]:%d", port);
        r = mcd_metrics_start(listen, &m);
        if (r == -EADDRNOTAVAIL || r == -EAFNOSUPPORT || r == -EINVAL) {
                ok(1, "%s: no IPv6 loopback here (%s)", listen, strerror(-r));
                return;
        }
        is_int(r, 0, "server starts on %s", listen);
        mcd_metrics_stop(m);
}

int main(void) {
        test_indexes();
        test_latency();
        test_render();
        test_server();
        test_ipv6();
        return tap_done();
}
