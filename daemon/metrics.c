/* metrics.c -- the Prometheus text endpoint and /healthz (metrics.h).
 *
 * libmicrohttpd serves from its own polling thread, bound to exactly the
 * configured address (MHD_OPTION_SOCK_ADDR).  The worker hands over a copy of
 * its figures after each batch (mcd_metrics_update); the HTTP thread copies
 * that snapshot under the same mutex and renders outside it, so a slow
 * scraper never holds the worker up.
 *
 *   GET /metrics  text/plain; version=0.0.4, the exposition format 0.0.4
 *   GET /healthz  200 "ok" once ready, 503 and the reason otherwise
 *   other paths   404; methods other than GET and HEAD 405 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "daemon/metrics.h"
#include "handlers/model.h"

#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TYPE_TEXT "text/plain; charset=utf-8"
#define HOST_MAX 256

/* libmicrohttpd before 0.9.71 returned int from the access handler. */
#if MHD_VERSION < 0x00097002
typedef int mhd_result_t;
#else
typedef enum MHD_Result mhd_result_t;
#endif

struct mcd_metrics {
        struct MHD_Daemon *httpd;
        pthread_mutex_t lock;
        struct mcd_stats snapshot;   /* under lock */
        bool have_snapshot;          /* under lock: the worker has reported once */
};

static const char *const rejection_reasons[MCD_N_REJECTION_REASONS] = {MCD_REJECTION_REASONS};
static const char *const dead_letter_reasons[MCD_N_DEAD_LETTER_REASONS] = {MCD_DEAD_LETTER_REASONS};
static const int64_t latency_bounds_us[MCD_N_LATENCY_BUCKETS - 1] = {MCD_LATENCY_BUCKETS_US};
static const char *const topic_labels[2] = {"relationships", "subscriptions"};

/* ------------------------------------------------------------ rendering */

static void header(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void scalar_u64(FILE *f, const char *name, const char *type, const char *help, uint64_t v) {
        header(f, name, type, help);
        fprintf(f, "%s %" PRIu64 "\n", name, v);
}

static void scalar_i64(FILE *f, const char *name, const char *help, int64_t v) {
        header(f, name, "gauge", help);
        fprintf(f, "%s %" PRId64 "\n", name, v);
}

/* Event counts by topic and type: every type on the topic it belongs to,
 * always (so that rate() sees the series from 0), and a type on the other
 * topic only if such an event was ever counted there. */
static void render_events(FILE *f, const struct mcd_stats *s) {
        header(f, "multichanneld_events_total", "counter", "Input events consumed and applied, by topic and type.");
        for (int t = 0; t < 2; t++)
                for (int e = 0; e < MCD_EV__COUNT; e++) {
                        bool own = mcd_event_is_relationship((enum mcd_event_type)e) == (t == 0);
                        if (!own && s->events[t][e] == 0)
                                continue;
                        fprintf(f, "multichanneld_events_total{topic=\"%s\",type=\"%s\"} %" PRIu64 "\n",
                                topic_labels[t], mcd_event_type_name((enum mcd_event_type)e), s->events[t][e]);
                }
}

static void render_outcomes(FILE *f, const struct mcd_stats *s) {
        header(f, "multichanneld_outcomes_total", "counter", "Outcomes published, by type.");
        for (int o = 0; o < MCD_OUT__COUNT; o++)
                fprintf(f, "multichanneld_outcomes_total{type=\"%s\"} %" PRIu64 "\n",
                        mcd_outcome_type_name((enum mcd_outcome_type)o), s->outcomes[o]);
}

static void render_reasons(FILE *f, const char *name, const char *help, const char *const *reasons,
                           const uint64_t *counts, size_t n) {
        header(f, name, "counter", help);
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%s{reason=\"%s\"} %" PRIu64 "\n", name, reasons[i], counts[i]);
}

static void render_latency(FILE *f, const struct mcd_stats *s) {
        const char *name = "multichanneld_batch_duration_seconds";
        uint64_t cumulative = 0;

        header(f, name, "histogram", "Time from a batch's first event to its Redis commit.");
        for (size_t i = 0; i < MCD_N_LATENCY_BUCKETS; i++) {
                cumulative += s->latency_buckets[i];
                if (i < MCD_N_LATENCY_BUCKETS - 1)
                        fprintf(f, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, (double)latency_bounds_us[i] / 1e6,
                                cumulative);
                else
                        fprintf(f, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cumulative);
        }
        fprintf(f, "%s_sum %.9g\n", name, s->latency_sum_s);
        fprintf(f, "%s_count %" PRIu64 "\n", name, cumulative);
}

static void render_all(FILE *f, const struct mcd_stats *s) {
        render_events(f, s);
        render_outcomes(f, s);
        render_reasons(f, "multichanneld_rejections_total",
                       "TransitionRejected and ResaleRejected outcomes, by reason.", rejection_reasons,
                       s->rejections, MCD_N_REJECTION_REASONS);
        render_reasons(f, "multichanneld_dead_letters_total", "Input records sent to the dead-letter topic, by reason.",
                       dead_letter_reasons, s->dead_letters, MCD_N_DEAD_LETTER_REASONS);
        scalar_u64(f, "multichanneld_batches_total", "counter", "Batches committed to Redis.", s->batches);
        header(f, "multichanneld_last_batch_timestamp_seconds", "gauge",
               "When the last batch was committed to Redis, seconds since the epoch (0: none yet).");
        fprintf(f, "multichanneld_last_batch_timestamp_seconds %" PRId64 ".%03" PRId64 "\n", s->last_batch_ms / 1000,
                s->last_batch_ms % 1000);
        render_latency(f, s);
        scalar_i64(f, "multichanneld_consumer_lag", "Messages behind the input partitions' high watermarks.", s->lag);
        header(f, "multichanneld_redis_rtt_seconds", "gauge", "Round-trip time of the last Redis PING.");
        fprintf(f, "multichanneld_redis_rtt_seconds %.6f\n", (double)s->redis_rtt_us / 1e6);
        scalar_u64(f, "multichanneld_redis_round_trips_total", "counter", "Redis round trips.", s->redis_round_trips);
        scalar_u64(f, "multichanneld_redis_batch_round_trips_total", "counter",
                   "Redis round trips made by batches: load, commit, fencing check, due scan.",
                   s->redis_batch_round_trips);
        scalar_u64(f, "multichanneld_state_cache_hits_total", "counter",
                   "Customers a batch found in the in-process state cache.", s->state_cache_hits);
        scalar_u64(f, "multichanneld_state_cache_misses_total", "counter",
                   "Customers a batch loaded from Redis, not found in the state cache (0 with no cache).", s->state_cache_misses);
        scalar_i64(f, "multichanneld_state_cache_bytes", "Bytes the state cache holds (cache.max_bytes bounds them).",
                   s->state_cache_bytes);
        scalar_u64(f, "multichanneld_group_commits_total", "counter",
                   "Commits of the input offsets Redis holds to the consumer group, a copy for lag monitors.",
                   s->group_commits);
        scalar_u64(f, "multichanneld_group_commit_failures_total", "counter",
                   "Of those commits, the ones refused or failed: monitoring only, the daemon resumes from Redis.",
                   s->group_commit_failures);
        scalar_i64(f, "multichanneld_parked_events", "Parked events among the customers of the last batches.",
                   s->parked);
        scalar_i64(f, "multichanneld_pending_timers", "Customers with a due time in Redis, on owned partitions.",
                   s->pending_timers);
        scalar_i64(f, "multichanneld_outbox_frames",
                   "Frames in the owned partitions' outboxes in Redis: committed, not yet trimmed after delivery.",
                   s->outbox_frames);
        scalar_u64(f, "multichanneld_timers_fired_total", "counter", "Timers fired.", s->timers_fired);
        scalar_u64(f, "multichanneld_redis_errors_total", "counter", "Redis errors.", s->redis_errors);
        scalar_u64(f, "multichanneld_kafka_errors_total", "counter", "Kafka errors.", s->kafka_errors);
        scalar_u64(f, "multichanneld_fetch_wakeups_total", "counter",
                   "Input fetchers woken because the merge waited for a partition they had stopped fetching.",
                   s->fetch_wakeups);
        scalar_u64(f, "multichanneld_merge_end_queries_total", "counter",
                   "Partition ends the broker gave the merge before one input went on without the other, empty one.",
                   s->merge_end_queries);
        scalar_u64(f, "multichanneld_merge_ends_ahead_total", "counter",
                   "Partition ends the broker gave ahead of an input its last fetch answer said had caught up.",
                   s->merge_ends_ahead);
        scalar_i64(f, "multichanneld_partitions", "Partition pairs owned.", s->partitions);
        scalar_i64(f, "multichanneld_changelog_stopped_partitions",
                   "Partition pairs that stopped committing because a changelog append failed.", s->changelog_stopped);
        scalar_i64(f, "multichanneld_redis_up", "1 while Redis answers.", s->redis_up ? 1 : 0);
        scalar_i64(f, "multichanneld_ready", "1 once Redis answers and every owned partition is ready.",
                   s->ready ? 1 : 0);
}

char *mcd_metrics_render(const struct mcd_stats *s) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f;
        bool failed;

        f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        render_all(f, s);
        failed = ferror(f) != 0;
        if (fclose(f) != 0)
                failed = true;
        if (failed) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* ---------------------------------------------------------- the server */

static void snapshot_get(struct mcd_metrics *m, struct mcd_stats *out, bool *have) {
        pthread_mutex_lock(&m->lock);
        *out = m->snapshot;
        *have = m->have_snapshot;
        pthread_mutex_unlock(&m->lock);
}

void mcd_metrics_update(struct mcd_metrics *m, const struct mcd_stats *s) {
        if (!m || !s)
                return;
        pthread_mutex_lock(&m->lock);
        m->snapshot = *s;
        m->have_snapshot = true;
        pthread_mutex_unlock(&m->lock);
}

static mhd_result_t respond(struct MHD_Connection *c, unsigned status, const char *type, const char *body,
                            size_t len) {
        struct MHD_Response *resp;
        mhd_result_t r;

        resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return MHD_NO;
        if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES ||
            (status == MHD_HTTP_METHOD_NOT_ALLOWED &&
             MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES)) {
                MHD_destroy_response(resp);
                return MHD_NO;
        }
        r = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return r;
}

static mhd_result_t respond_text(struct MHD_Connection *c, unsigned status, const char *text) {
        return respond(c, status, CONTENT_TYPE_TEXT, text, strlen(text));
}

static mhd_result_t serve_metrics(struct mcd_metrics *m, struct MHD_Connection *c) {
        struct mcd_stats s;
        mhd_result_t r;
        bool have;
        char *text;

        snapshot_get(m, &s, &have);
        text = mcd_metrics_render(&s);
        if (!text)
                return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
        r = respond(c, MHD_HTTP_OK, CONTENT_TYPE_METRICS, text, strlen(text));
        free(text);
        return r;
}

/* Why the daemon is not ready, or NULL when it is. */
static const char *not_ready_reason(const struct mcd_stats *s, bool have) {
        if (!have)
                return "starting\n";
        if (s->registry_down)
                return "schema registry unreachable: consumption paused (see the log)\n";
        if (s->ready)
                return NULL;
        if (s->redis_wrong_type)
                return "a Redis key of the daemon's is of another type: consumption held back (see the log)\n";
        if (!s->redis_up)
                return "Redis unreachable\n";
        if (s->changelog_stopped > 0)
                return "a changelog append failed: partitions stopped committing (see the log)\n";
        if (s->partitions == 0)
                return "no partitions assigned yet\n";
        return "partitions not ready yet\n";
}

static mhd_result_t serve_healthz(struct mcd_metrics *m, struct MHD_Connection *c) {
        const char *why;
        struct mcd_stats s;
        bool have;

        snapshot_get(m, &s, &have);
        why = not_ready_reason(&s, have);
        if (why)
                return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, why);
        return respond_text(c, MHD_HTTP_OK, "ok\n");
}

/* Answers on the first call: neither endpoint reads a request body, and
 * libmicrohttpd discards one when a response is queued before it. */
static mhd_result_t on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size,
                               void **req_cls) {
        struct mcd_metrics *m = cls;

        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
                return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
        if (strcmp(url, "/metrics") == 0)
                return serve_metrics(m, c);
        if (strcmp(url, "/healthz") == 0)
                return serve_healthz(m, c);
        return respond_text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics or /healthz\n");
}

/* "host:port" or "[v6]:port" into host[] and port[].  0 or -EINVAL. */
static int split_listen(const char *listen, char *host, size_t hostlen, const char **port) {
        const char *colon = strrchr(listen, ':');
        const char *start = listen, *end = colon;

        if (!colon || colon == listen || colon[1] == '\0')
                return -EINVAL;
        if (listen[0] == '[') {
                if (colon[-1] != ']')
                        return -EINVAL;
                start = listen + 1;
                end = colon - 1;
        }
        if (end <= start || (size_t)(end - start) >= hostlen)
                return -EINVAL;
        memcpy(host, start, (size_t)(end - start));
        host[end - start] = '\0';
        *port = colon + 1;
        return 0;
}

/* Why libmicrohttpd could not bind, as well as errno still tells it. */
static int start_error(int saved_errno) {
        switch (saved_errno) {
        case EADDRINUSE:
        case EADDRNOTAVAIL:
        case EACCES:
        case EAFNOSUPPORT:
        case ENOMEM:
        case EMFILE:
        case ENFILE:
                return -saved_errno;
        default:
                return -EIO;
        }
}

static struct MHD_Daemon *start_on(struct mcd_metrics *m, const struct addrinfo *ai, int *error) {
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
        struct MHD_Daemon *d;

        if (ai->ai_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        else if (ai->ai_family != AF_INET) {
                *error = -EAFNOSUPPORT;
                return NULL;
        }
        errno = 0;
        d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m,
                             MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                             MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                             MHD_OPTION_END);
        if (!d)
                *error = start_error(errno);
        return d;
}

int mcd_metrics_start(const char *listen, struct mcd_metrics **out) {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        char host[HOST_MAX];
        struct mcd_metrics *m;
        const char *port;
        int r;

        *out = NULL;
        if (!listen || split_listen(listen, host, sizeof(host), &port) < 0)
                return -EINVAL;
        r = getaddrinfo(host, port, &hints, &res);
        if (r == EAI_MEMORY)
                return -ENOMEM;
        if (r != 0)
                return -EINVAL;
        m = calloc(1, sizeof(*m));
        if (!m) {
                freeaddrinfo(res);
                return -ENOMEM;
        }
        r = pthread_mutex_init(&m->lock, NULL);
        if (r != 0) {
                freeaddrinfo(res);
                free(m);
                return -r;
        }
        r = -EINVAL;
        for (const struct addrinfo *ai = res; ai && !m->httpd; ai = ai->ai_next)
                m->httpd = start_on(m, ai, &r);
        freeaddrinfo(res);
        if (!m->httpd) {
                pthread_mutex_destroy(&m->lock);
                free(m);
                return r;
        }
        *out = m;
        return 0;
}

void mcd_metrics_stop(struct mcd_metrics *m) {
        if (!m)
                return;
        MHD_stop_daemon(m->httpd);
        pthread_mutex_destroy(&m->lock);
        free(m);
}
