/* publish.c -- output: frames produced and trimmed, changelog records
 * appended once delivered, marks and reconciliation's lookup (publish.h).
 *
 * DESIGN: a commit turns a batch's frames into pending frames, in commit
 * order.  publish_pending produces those not sent, after checking again that
 * their partitions are still ours (drop_fenced); the delivered head of the
 * list is counted for the next commit to trim from the outbox, and releases
 * the changelog records of the batches it completes: the changelog never
 * says more than the output topics hold.  A changelog append that fails
 * stops its partition committing (changelog_failed). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/clog_owed.h"
#include "daemon/kafka.h"
#include "daemon/log.h"
#include "daemon/outbox.h"
#include "daemon/publish.h"
#include "daemon/startup.h"
#include "daemon/store.h"

/* The commit checks every generation atomically (when its EXEC runs, after
 * it was sent).  Frames produced within this time of sending that commit
 * need no second check: it would ask Redis the same question a moment
 * later.  A stall past it (SIGSTOP, a swapped-out process, a Kafka outage
 * holding the frames back) asks again.
 * The price: a new owner that claims the partition within this time of the
 * commit races the produce, where the check would narrow that to one round
 * trip; only a broker's own fencing closes it. */
#define FENCE_LEASE_MS 100


/* Marks: for each output topic, per partition, an offset at or below which no
 * frame of ours that is still in an outbox can be.  Text form
 * "o=1,5,0;d=0,0" (outcomes; dead letters). */
char *marks_format(const struct publisher *pub) {
        size_t cap = 16 + 24 * (size_t)(pub->n_out_parts[0] + pub->n_out_parts[1]), n = 0;
        char *s = malloc(cap);

        if (!s)
                return NULL;
        for (int t = 0; t < 2; t++) {
                n += (size_t)snprintf(s + n, cap - n, "%s%c=", t ? ";" : "", t ? 'd' : 'o');
                for (int q = 0; q < pub->n_out_parts[t]; q++)
                        n += (size_t)snprintf(s + n, cap - n, "%s%" PRId64, q ? "," : "", pub->known_end[t][q]);
        }
        return s;
}

/* Parses marks into from[t][q]; missing values stay 0 (read from the start). */
void marks_parse(const struct publisher *pub, const char *s, int64_t *from[2]) {
        for (int t = 0; t < 2; t++)
                memset(from[t], 0, (size_t)pub->n_out_parts[t] * sizeof(int64_t));
        while (s && *s) {
                int t = *s == 'd' ? OUT_DLQ : OUT_OUTCOMES;
                const char *p = strchr(s, '=');
                if (!p)
                        return;
                p++;
                for (int q = 0; *p && *p != ';'; q++) {
                        char *end;
                        long long v = strtoll(p, &end, 10);
                        if (end == p)
                                return;
                        if (q < pub->n_out_parts[t])
                                from[t][q] = v;
                        p = *end == ',' ? end + 1 : end;
                }
                s = *p == ';' ? p + 1 : p;
        }
}

/* ------------------------------------------- reconciliation's lookup -- */

static const char *header_str(rd_kafka_headers_t *h, const char *name, char *buf, size_t len) {
        const void *v;
        size_t n;
        if (!h || rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR || n >= len)
                return NULL;
        memcpy(buf, v, n);
        buf[n] = '\0';
        return buf;
}

/* A header holding a decimal integer: true with *v set. */
static bool header_int(rd_kafka_headers_t *h, const char *name, int64_t *v) {
        char buf[24], *end;
        long long x;

        if (!header_str(h, name, buf, sizeof(buf)))
                return false;
        errno = 0;
        x = strtoll(buf, &end, 10);
        *v = x;
        return errno == 0 && end != buf && *end == '\0';
}

/* *latest raised to the clock m's outcome was made by, when partition's
 * pair made it (header mcd.partition; an earlier version's outcome has no
 * headers, and counts): its header mcd.clock (outbox.h), and its create
 * time, librdkafka's clock when producing it (a log append time is the
 * broker's, not counted).  This function can't fail. */
static void raise_latest(const rd_kafka_message_t *m, rd_kafka_headers_t *h, int32_t partition,
                         int64_t *latest) {
        rd_kafka_timestamp_type_t type;
        int64_t ts = rd_kafka_message_timestamp(m, &type), v;

        if (header_int(h, MCD_PARTITION_HEADER, &v) && v != partition)
                return;
        if (type == RD_KAFKA_TIMESTAMP_CREATE_TIME && ts > *latest)
                *latest = ts;
        if (header_int(h, MCD_CLOCK_HEADER, &v) && v > *latest)
                *latest = v;
}

/* Adds to pub->published the ids of every message of the output topics from
 * the given offsets to their current ends (publish.h). */
int collect_published(struct publisher *pub, int64_t *from[2], int32_t partition, int64_t *latest) {
        const char *topics[2] = {pub->env->cfg->topic_outcomes, pub->env->cfg->topic_dlq};
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
        int64_t *end[2] = {calloc((size_t)pub->n_out_parts[0] + 1, 8), calloc((size_t)pub->n_out_parts[1] + 1, 8)};
        int64_t *lo[2] = {calloc((size_t)pub->n_out_parts[0] + 1, 8), calloc((size_t)pub->n_out_parts[1] + 1, 8)};
        char err[512];
        rd_kafka_t *rk = NULL;
        int remaining = 0, r = 0;
        int64_t deadline = mono_ms() + 60000;

        if (!end[0] || !end[1] || !lo[0] || !lo[1]) {
                r = -ENOMEM;
                goto out;
        }
        for (int t = 0; t < 2; t++) {
                if (mcd_kafka_watermarks(pub->env->producer, topics[t], NULL, pub->n_out_parts[t], lo[t], end[t],
                                         10000) < 0) {
                        r = -EIO;
                        goto out;
                }
                for (int q = 0; q < pub->n_out_parts[t]; q++) {
                        int64_t hi = end[t][q];
                        if (from[t][q] < lo[t][q])
                                from[t][q] = lo[t][q];
                        if (from[t][q] < hi) {
                                rd_kafka_topic_partition_list_add(l, topics[t], q)->offset = from[t][q];
                                remaining++;
                        }
                }
        }
        if (remaining == 0)
                goto out;
        rk = mcd_kafka_new(pub->env->cfg, MCD_KAFKA_READER, NULL, err, sizeof(err));
        if (!rk || rd_kafka_assign(rk, l)) {
                log_error("reconciliation: cannot read the output topics: %s", rk ? "assign failed" : err);
                r = -EIO;
                goto out;
        }
        while (remaining > 0 && mono_ms() < deadline && !*pub->env->stop) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
                rd_kafka_headers_t *h = NULL;
                char id[1024];
                int t;

                watchdog_kick();
                if (!m)
                        continue;
                t = strcmp(rd_kafka_topic_name(m->rkt), topics[0]) == 0 ? 0 : 1;
                if (!m->err && rd_kafka_message_headers(m, &h) != 0)
                        h = NULL;
                if (!m->err && t == 0 && latest)
                        raise_latest(m, h, partition, latest);
                if (!m->err && header_str(h, MCD_ID_HEADER, id, sizeof(id)))
                        r = mcd_strmap_put(&pub->published, id, (void *)1);
                if ((!m->err || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) &&
                    m->offset + (m->err ? 0 : 1) >= end[t][m->partition] && end[t][m->partition] >= 0) {
                        end[t][m->partition] = -1;      /* done with this partition */
                        remaining--;
                }
                rd_kafka_message_destroy(m);
                if (r < 0)
                        break;
        }
        if (remaining > 0 && r == 0) {
                log_error("reconciliation: could not read the output topics to their end");
                r = -ETIMEDOUT;
        }
out:
        if (rk) {
                rd_kafka_consumer_close(rk);
                rd_kafka_destroy(rk);
        }
        rd_kafka_topic_partition_list_destroy(l);
        free(end[0]);
        free(end[1]);
        free(lo[0]);
        free(lo[1]);
        return r;
}

/* collect_published from stored marks (from the topics' start where they
 * say nothing). */
int collect_published_after(struct publisher *pub, const char *marks, int32_t partition, int64_t *latest) {
        int64_t *from[2] = {calloc((size_t)pub->n_out_parts[0] + 1, 8), calloc((size_t)pub->n_out_parts[1] + 1, 8)};
        int r = -ENOMEM;

        if (from[0] && from[1]) {
                marks_parse(pub, marks, from);
                r = collect_published(pub, from, partition, latest);
        }
        free(from[0]);
        free(from[1]);
        return r;
}

/* --------------------------------------------------------------- producing -- */

static void changelog_failed(struct publisher *pub, int32_t partition, const char *key, size_t key_len,
                             const char *why);

/* Which of the producer's topics rkt is: OUT_OUTCOMES, OUT_DLQ, TOPIC_CHANGELOG
 * or -1.  A delivery report carries the topic librdkafka keeps for the
 * name, which is the handle publish_topics_open took; names are compared
 * only if it is not (a message produced before the handles were taken). */
#define TOPIC_CHANGELOG 2

static int topic_of(const struct publisher *pub, const rd_kafka_topic_t *rkt) {
        const struct mcd_config *cfg = pub->env->cfg;
        const char *name;

        if (rkt == pub->rkt[OUT_OUTCOMES] || rkt == pub->rkt[OUT_DLQ])
                return rkt == pub->rkt[OUT_OUTCOMES] ? OUT_OUTCOMES : OUT_DLQ;
        if (rkt == pub->clog_rkt)
                return TOPIC_CHANGELOG;
        name = rd_kafka_topic_name(rkt);
        return strcmp(name, cfg->topic_changelog) == 0 ? TOPIC_CHANGELOG
               : strcmp(name, cfg->topic_outcomes) == 0 ? OUT_OUTCOMES
               : strcmp(name, cfg->topic_dlq) == 0     ? OUT_DLQ
                                                        : -1;
}

void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        struct publisher *pub = opaque;
        struct pending *pf = m->_private;
        int t = topic_of(pub, m->rkt);

        if (t == TOPIC_CHANGELOG) {
                struct clog_ack_part *part = m->_private;     /* not a frame: its records' ack */
                if (m->err)
                        changelog_failed(pub, part->partition, m->key, m->key_len, rd_kafka_err2str(m->err));
                part->customers -= !changelog_is_offsets_key(m->key, m->key_len, part->partition);
                part->outstanding--;
                return;
        }
        if (m->err) {
                pub->env->st.kafka_errors++;
                log_warning("delivery to %s failed: %s", rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        } else if (t >= 0 && m->partition < pub->n_out_parts[t] && m->offset + 1 > pub->known_end[t][m->partition]) {
                pub->known_end[t][m->partition] = m->offset + 1;
        }
        if (pf)
                pf->status = m->err ? -EIO : 1;
}

/* Produces one outbox frame; its delivery report sets pf->status. */
static int produce_frame(struct publisher *pub, struct pending *pf) {
        struct mcd_frame f;
        char names[MCD_FRAME_MAX_HEADERS][64], id[1024];
        rd_kafka_topic_t *rkt;
        rd_kafka_headers_t *h;
        rd_kafka_resp_err_t err;

        if (mcd_frame_decode(pf->buf, pf->len, &f, names) < 0 || f.id_len >= sizeof(id)) {
                log_error("outbox frame of partition %" PRId32 " is corrupt; skipped", pf->partition);
                pf->status = 1;
                return 0;
        }
        memcpy(id, f.id, f.id_len);
        id[f.id_len] = '\0';
        if (mcd_strmap_get(&pub->published, id)) {
                pf->status = 1;      /* already on the topic: found by reconciliation */
                return 0;
        }
        h = rd_kafka_headers_new(f.n_headers + 1);
        for (size_t i = 0; i < f.n_headers; i++)
                rd_kafka_header_add(h, f.headers[i].name, -1, f.headers[i].value, (ssize_t)f.headers[i].len);
        rd_kafka_header_add(h, MCD_ID_HEADER, -1, id, (ssize_t)f.id_len);
        rkt = pub->rkt[f.kind == MCD_FRAME_OUTCOME ? OUT_OUTCOMES : OUT_DLQ];
        err = rd_kafka_producev(pub->env->producer, RD_KAFKA_V_RKT(rkt),
                                RD_KAFKA_V_KEY(f.key, f.key_len), RD_KAFKA_V_VALUE((void *)f.value, f.value_len),
                                RD_KAFKA_V_TIMESTAMP(f.timestamp), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(pf), RD_KAFKA_V_END);
        if (err) {
                rd_kafka_headers_destroy(h);
                pub->env->st.kafka_errors++;
                log_warning("cannot produce to Kafka: %s", rd_kafka_err2str(err));
                return -EAGAIN;
        }
        pf->status = 0;
        pf->sent = true;
        return 0;
}

/* A partition's offsets record in the changelog (heap string). */
char *offsets_record(const struct mcd_offsets *o, const char *marks) {
        char *val = NULL;

        if (asprintf(&val, "{\"rel\":%" PRId64 ",\"sub\":%" PRId64 ",\"marks\":\"%s\"}", o->rel, o->sub,
                     marks ? marks : "") < 0)
                return NULL;
        return val;
}

char *changelog_offsets_key(char buf[static CHANGELOG_OFFSETS_KEY_SIZE], int32_t partition) {
        snprintf(buf, CHANGELOG_OFFSETS_KEY_SIZE, CHANGELOG_OFFSETS_KEY "%" PRId32, partition);
        return buf;
}

char *changelog_customer_key(const char *id) {
        size_t n = sizeof(CHANGELOG_ESCAPE) - 1, len = strlen(id);
        char *key;

        if (!changelog_escaped(id))
                return strdup(id);
        if (!(key = malloc(n + len + 1)))
                return NULL;
        memcpy(key, CHANGELOG_ESCAPE, n);
        memcpy(key + n, id, len + 1);
        return key;
}

const char *changelog_key_customer(const char *key) {
        size_t n = sizeof(CHANGELOG_ESCAPE) - 1;

        /* Only an id that starts with "__" is escaped: "__c:foo" is an
         * earlier version's customer "__c:foo". */
        return strncmp(key, CHANGELOG_ESCAPE, n) == 0 && changelog_escaped(key + n) ? key + n : key;
}

/* Read, not formatted: it runs for each changelog record produced and
 * again for its delivery report. */
bool changelog_is_offsets_key(const char *key, size_t len, int32_t partition) {
        const size_t n = sizeof(CHANGELOG_OFFSETS_KEY) - 1;
        int64_t v = 0;

        if (len <= n || len > n + 10 || memcmp(key, CHANGELOG_OFFSETS_KEY, n) != 0 || (key[n] == '0' && len > n + 1))
                return false;
        for (size_t i = n; i < len; i++) {
                if (key[i] < '0' || key[i] > '9')
                        return false;
                v = v * 10 + (key[i] - '0');
        }
        return v == partition;
}

/* Remembers a failed append's key until clog_lost_save puts it in Redis.
 * Out of memory it is lost, and said so: only its partition's stop is
 * left. */
static void clog_lost_add(struct publisher *pub, int32_t partition, const char *key, size_t key_len) {
        char *k = key ? strndup(key, key_len) : NULL;

        if (k && pub->n_lost == pub->cap_lost) {
                size_t cap = pub->cap_lost ? pub->cap_lost * 2 : 16;
                struct clog_lost *v = realloc(pub->lost, cap * sizeof(*v));
                if (v) {
                        pub->lost = v;
                        pub->cap_lost = cap;
                }
        }
        if (!k || pub->n_lost == pub->cap_lost) {
                free(k);
                log_error("partition %" PRId32 ": out of memory remembering a failed changelog append; it will "
                          "not be made good", partition);
                return;
        }
        pub->lost[pub->n_lost++] = (struct clog_lost){.partition = partition, .key = k};
}

int clog_lost_save(struct publisher *pub) {
        size_t done = 0;
        int r = 0;

        if (pub->n_lost == 0)
                return 0;
        for (; done < pub->n_lost; done++) {
                struct clog_lost *l = &pub->lost[done];
                if ((r = mcd_store_clog_lost_add(pub->env->store, l->partition, &l->key, 1)) < 0)
                        break;
                free(l->key);
        }
        memmove(pub->lost, pub->lost + done, (pub->n_lost - done) * sizeof(*pub->lost));
        pub->n_lost -= done;
        return r;
}

static void clog_lost_clear(struct publisher *pub) {
        if (pub->n_lost > 0)
                log_error("%zu failed changelog appends not saved in Redis; they will not be made good",
                          pub->n_lost);
        for (size_t i = 0; i < pub->n_lost; i++)
                free(pub->lost[i].key);
        free(pub->lost);
        pub->lost = NULL;
        pub->n_lost = pub->cap_lost = 0;
}

/* A changelog append of the partition failed: the changelog would fall
 * behind Redis, and a rebuild from it would be stale, so the partition stops
 * committing until it is claimed again (log, STATUS, /healthz); the claim
 * appends the record's key again, as Redis holds it then (restore.c
 * pair_clog_repair). */
static void changelog_failed(struct publisher *pub, int32_t partition, const char *key, size_t key_len,
                             const char *why) {
        struct pair *p = pair_find(pub->pairs, partition);

        pub->env->st.kafka_errors++;
        clog_lost_add(pub, partition, key, key_len);
        if (!p || p->clog_failed)
                return;
        p->clog_failed = true;
        log_error("partition %" PRId32 ": cannot append to the changelog %s: %s; the partition stops committing "
                  "until it is claimed again (a restart or a rebalance)",
                  partition, pub->env->cfg->topic_changelog, why);
}

void changelog_produce(struct publisher *pub, struct clog_ack_part *part, bool counted, const char *key,
                       const char *value, size_t len) {
        bool customer = !changelog_is_offsets_key(key, strlen(key), part->partition);
        rd_kafka_resp_err_t err;

        err = rd_kafka_producev(pub->env->producer, RD_KAFKA_V_RKT(pub->clog_rkt), RD_KAFKA_V_KEY(key, strlen(key)),
                                RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_OPAQUE(part), RD_KAFKA_V_END);
        if (err) {
                part->outstanding -= counted;
                changelog_failed(pub, part->partition, key, strlen(key), rd_kafka_err2str(err));
                return;
        }
        part->outstanding += !counted;
        part->customers += customer;
}

void changelog_append(struct publisher *pub, int32_t partition, uint64_t batch, const char *key, const char *value,
                      size_t len) {
        struct clog_ack_part *part = clog_ack_part(&pub->acks, batch, partition, pub->pairs->n + 1);

        if (!part)
                changelog_failed(pub, partition, key, strlen(key), "out of memory");
        else
                changelog_produce(pub, part, false, key, value, len);
}

int pending_push(struct publisher *pub, void *buf, size_t len, int32_t partition, uint64_t batch) {
        struct pending *pf;

        if (pub->n_pending == pub->cap_pending) {
                size_t cap = pub->cap_pending ? pub->cap_pending * 2 : 256;
                struct pending **v = realloc(pub->pending, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                pub->pending = v;
                pub->cap_pending = cap;
        }
        pf = calloc(1, sizeof(*pf));
        if (!pf)
                return -ENOMEM;
        pf->buf = buf;
        pf->len = len;
        pf->partition = partition;
        pf->batch = batch;
        pub->pending[pub->n_pending++] = pf;
        return 0;
}

static void pending_clear(struct publisher *pub) {
        for (size_t i = 0; i < pub->n_pending; i++) {
                free(pub->pending[i]->buf);
                free(pub->pending[i]);
        }
        pub->n_pending = 0;
}

enum { UNSENT = 1, COMMITTED = 2 };  /* drop_fenced's marks of a pair */

/* Marks, per pair (by its index in pub->pairs), the unsent frames that the
 * commit which made them did not check just now (fresh): UNSENT, and
 * COMMITTED when one of them is of our commits (batch 0 marks a frame
 * a claim found in the outbox).  One pass over the frames. */
static void mark_unsent(const struct publisher *pub, bool fresh, uint8_t *marks) {
        for (size_t j = 0; j < pub->n_pending; j++) {
                const struct pending *pf = pub->pending[j];
                size_t i = 0;

                if (pf->sent || (fresh && pf->batch == pub->verified_batch))
                        continue;
                while (i < pub->pairs->n && pub->pairs->v[i]->partition != pf->partition)
                        i++;
                if (i < pub->pairs->n)
                        marks[i] |= UNSENT | (pf->batch != 0 ? COMMITTED : 0);
        }
}

bool publish_stalled(const struct publisher *pub, int64_t *since) {
        *since = mono_ms() - pub->verified_at;
        return pub->stall_ms > 0 && *since >= pub->stall_ms;
}

/* Fencing, checked again before publishing: frames of a partition that
 * another instance has claimed since they were committed are dropped (the new
 * owner reconciles that outbox itself).  After a stall past the session
 * timeout since the last commit (SIGSTOP, a swapped-out process), for
 * frames of our commits (not those a claim found in the outbox), Redis's
 * answer proves nothing: another instance may have claimed the partitions
 * meanwhile in a Redis that has since come back older, its generations ours
 * again.  Those pairs start again instead (their claim is fenced if the
 * consumer group's copy, or Redis, names a later generation: tasks.c
 * claim; else reconciliation publishes what the topics lack).  Returns
 * -EAGAIN when
 * Redis cannot tell. */
static int drop_fenced(struct publisher *pub) {
        int32_t *parts = calloc(pub->pairs->n + 1, sizeof(*parts));
        int64_t *gens = calloc(pub->pairs->n + 1, sizeof(*gens));
        uint8_t *marks = calloc(pub->pairs->n + 1, 1);
        size_t n = 0, kept = 0;
        int64_t since;
        bool stalled = publish_stalled(pub, &since), fresh = since < FENCE_LEASE_MS;
        int r = 0;

        if (!parts || !gens || !marks) {
                r = -ENOMEM;
                goto out;
        }
        /* The owned partitions with unsent frames, checked in one round trip,
         * unless the commit of those frames checked them just now. */
        mark_unsent(pub, fresh, marks);
        for (size_t i = 0; i < pub->pairs->n; i++) {
                struct pair *p = pub->pairs->v[i];
                if (!(marks[i] & UNSENT) || p->phase != PAIR_READY)
                        continue;
                if (stalled && (marks[i] & COMMITTED)) {
                        log_warning("partition %" PRId32 ": %" PRId64 " ms since its last commit, past the session "
                                    "timeout; claimed again (fenced if another instance claimed it) before its "
                                    "frames are published", p->partition, since);
                        pairs_restart(pub->pairs, p);
                } else {
                        parts[n++] = p->partition;
                }
        }
        r = mcd_store_generations(pub->env->store, parts, n, gens);
        if (r < 0) {
                r = redis_failed(pub->env, r) ? -EAGAIN : r;
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                struct pair *p = pair_find(pub->pairs, parts[i]);
                if (!p || gens[i] == p->generation)
                        continue;
                if (gens[i] > p->generation) {
                        log_warning("partition %" PRId32 " was claimed by another instance; "
                                    "its unpublished frames are left to the new owner",
                                    p->partition);
                        pairs_fence(pub->pairs, p);
                } else {
                        /* The generation is gone: Redis lost its data.  The
                         * partition is claimed again and rebuilt from the
                         * changelog; what these frames said is re-derived. */
                        log_warning("partition %" PRId32 ": Redis lost its state; rebuilding it", p->partition);
                        pairs_restart(pub->pairs, p);
                }
        }
        for (size_t i = 0; i < pub->n_pending; i++) {
                struct pending *pf = pub->pending[i];
                struct pair *p = pair_find(pub->pairs, pf->partition);

                if (!pf->sent && (!p || p->phase == PAIR_FENCED || p->phase == PAIR_INIT)) {
                        free(pf->buf);
                        free(pf);
                        continue;
                }
                pub->pending[kept++] = pf;
        }
        pub->n_pending = kept;
out:
        free(parts);
        free(gens);
        free(marks);
        return r;
}

/* A frame whose delivery failed is never produced again: it may be on the
 * topic all the same (a timeout while in flight: librdkafka's idempotence
 * covers its own retries, not a second produce), and its partition may
 * have another owner by now.  Its pair, if still ours, starts again
 * instead: the claim is fenced if another instance took it, and
 * reconciliation produces from the outbox (which still holds the frame:
 * only delivered frames are trimmed) what the output topics lack.  The
 * frame becomes unsent, dropped with its pair's other unsent frames
 * (pair_restart, drop_fenced).  This function can't fail. */
static void restart_failed(struct publisher *pub) {
        uint8_t *failed;
        bool any = false;

        for (size_t i = 0; i < pub->n_pending && !any; i++)
                any = pub->pending[i]->sent && pub->pending[i]->status < 0;
        if (!any || !(failed = calloc(pub->pairs->n + 1, 1)))
                return;         /* out of memory: the failed frames wait, never produced again */
        for (size_t i = 0; i < pub->n_pending; i++) {
                struct pending *pf = pub->pending[i];

                if (!pf->sent || pf->status >= 0)
                        continue;
                pf->sent = false;
                pf->status = 0;
                for (size_t k = 0; k < pub->pairs->n; k++)
                        if (pub->pairs->v[k]->partition == pf->partition)
                                failed[k] = 1;
        }
        for (size_t k = 0; k < pub->pairs->n; k++) {
                struct pair *p = pub->pairs->v[k];

                if (!failed[k] || p->phase == PAIR_INIT || p->phase == PAIR_FENCED)
                        continue;
                log_warning("partition %" PRId32 ": an outbox frame's delivery failed; claimed again, its outbox "
                            "reconciled with the output topics (a failed frame is not produced twice)",
                            p->partition);
                pairs_restart(pub->pairs, p);
        }
        free(failed);
}

bool publish_in_flight(const struct publisher *pub, int32_t partition) {
        for (size_t i = 0; i < pub->n_pending; i++)
                if (pub->pending[i]->partition == partition && pub->pending[i]->sent && pub->pending[i]->status == 0)
                        return true;
        return false;
}

/* Saves the failed appends in Redis (clog_lost_save), unless the last try
 * failed less than its hold ago (100 ms, doubling to 5 s while it fails:
 * a key of another type or a Redis down costs a line per try, not one per
 * call); `anyway` tries regardless (publish_save_lost).  This
 * function can't fail. */
static void clog_lost_flush(struct publisher *pub, bool anyway) {
        int64_t mono = mono_ms();
        int r;

        if (pub->n_lost == 0 || (!anyway && !mcd_retry_due(&pub->lost_retry, mono)))
                return;
        if ((r = clog_lost_save(pub)) >= 0) {
                mcd_retry_done(&pub->lost_retry);
                return;
        }
        log_warning("cannot save %zu failed changelog appends in Redis yet (%s); trying again in %d ms",
                    pub->n_lost, mcd_store_strerror(r), mcd_retry_failed(&pub->lost_retry, mono));
}

void publish_save_lost(struct publisher *pub) {
        clog_lost_flush(pub, true);
}

/* After the changelog's delivery reports were served: the batches all
 * reported on let their owed elements be trimmed, the failed appends are
 * saved in Redis (or kept for a later call).  This function can't fail. */
static void clog_reported(struct publisher *pub) {
        clog_acks_done(&pub->acks, pub->pairs);
        clog_lost_flush(pub, false);
}

/* Produces every pending frame not yet delivered; with timeout_ms > 0 waits
 * for all of them, else only serves the delivery reports that are in.  The
 * delivered head of the queue is counted for trimming (by the next commit)
 * and releases the changelog records of the batches it completes.  Returns 0
 * when nothing is pending any more, else -EAGAIN. */
int publish_pending(struct publisher *pub, int timeout_ms) {
        int64_t deadline = mono_ms() + timeout_ms;
        size_t k = 0;
        bool all;

        if (pub->n_pending == 0 && pub->n_clog == 0) {  /* only acks: their reports served, no wait */
                rd_kafka_poll(pub->env->producer, 0);
                clog_reported(pub);
                return 0;
        }
        restart_failed(pub);
        if (drop_fenced(pub) < 0)
                return -EAGAIN;
        for (size_t i = 0; i < pub->n_pending; i++) {
                struct pending *pf = pub->pending[i];
                if (!pf->sent && pf->status != 1 && produce_frame(pub, pf) < 0)
                        break;
        }
        do {
                if (timeout_ms > 0 && pub->n_pending > 0)     /* no frame to wait for: no flush either */
                        rd_kafka_flush(pub->env->producer, 100);
                else
                        rd_kafka_poll(pub->env->producer, 0);
                all = true;
                for (size_t i = 0; i < pub->n_pending && all; i++)
                        all = pub->pending[i]->status == 1;
        } while (!all && timeout_ms > 0 && mono_ms() < deadline && !*pub->env->stop);
        while (k < pub->n_pending && pub->pending[k]->status == 1) {
                struct pair *p = pair_find(pub->pairs, pub->pending[k]->partition);
                if (p)
                        p->untrimmed++;
                free(pub->pending[k]->buf);
                free(pub->pending[k]);
                k++;
        }
        if (k > 0) {
                memmove(pub->pending, pub->pending + k, (pub->n_pending - k) * sizeof(*pub->pending));
                pub->n_pending -= k;
        }
        clog_release(pub, pub->n_pending ? pub->pending[0]->batch : UINT64_MAX);
        clog_reported(pub);
        if (pub->n_pending == 0)
                pub->stuck = false;
        return pub->n_pending == 0 ? 0 : -EAGAIN;
}

int publish_drain(struct publisher *pub, int timeout_ms) {
        /* Twice: a batch's offsets records wait for its customers' reports
         * (clog_release), which the first flush serves. */
        for (int round = 0; round < 2; round++)
                if (publish_pending(pub, timeout_ms) < 0 || mcd_kafka_flush(pub->env->producer, timeout_ms) < 0)
                        return -EAGAIN;
        publish_pending(pub, 0);        /* the records' reports: their acks done */
        return publish_busy(pub) ? -EAGAIN : 0;
}

uint64_t publish_drop_unsent(struct publisher *pub, int32_t partition) {
        uint64_t first_dropped = UINT64_MAX;
        size_t kept = 0;

        for (size_t i = 0; i < pub->n_pending; i++) {
                struct pending *pf = pub->pending[i];
                if (!pf->sent && pf->partition == partition) {
                        if (pf->batch < first_dropped)
                                first_dropped = pf->batch;
                        free(pf->buf);
                        free(pf);
                        continue;
                }
                pub->pending[kept++] = pf;
        }
        pub->n_pending = kept;
        return first_dropped;
}

bool publish_owed(const struct publisher *pub, int32_t partition) {
        for (size_t j = 0; j < pub->n_pending; j++)
                if (pub->pending[j]->partition == partition && pub->pending[j]->status != 1)
                        return true;
        return false;
}

bool publish_busy(const struct publisher *pub) {
        return pub->n_pending > 0 || pub->n_clog > 0 || clog_acks_any(&pub->acks);
}

static rd_kafka_topic_t *topic_open(rd_kafka_t *producer, const char *name) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(producer, name, NULL);

        if (!rkt)
                log_error("cannot take the producer's handle of topic %s: %s", name,
                          rd_kafka_err2str(rd_kafka_last_error()));
        return rkt;
}

int publish_topics_open(struct publisher *pub) {
        const struct mcd_config *cfg = pub->env->cfg;

        if (!(pub->rkt[OUT_OUTCOMES] = topic_open(pub->env->producer, cfg->topic_outcomes)) ||
            !(pub->rkt[OUT_DLQ] = topic_open(pub->env->producer, cfg->topic_dlq)) ||
            !(pub->clog_rkt = topic_open(pub->env->producer, cfg->topic_changelog))) {
                publish_topics_close(pub);
                return -EINVAL;
        }
        return 0;
}

void publish_topics_close(struct publisher *pub) {
        for (int t = 0; t < 2; t++)
                if (pub->rkt[t])
                        rd_kafka_topic_destroy(pub->rkt[t]);
        if (pub->clog_rkt)
                rd_kafka_topic_destroy(pub->clog_rkt);
        pub->rkt[0] = pub->rkt[1] = pub->clog_rkt = NULL;
}

void publish_free(struct publisher *pub) {
        pending_clear(pub);
        free(pub->pending);
        pub->pending = NULL;
        clog_queue_clear(pub);
        clog_lost_flush(pub, false);    /* unless one just failed: the store is freed after the publisher */
        clog_lost_clear(pub);
        clog_acks_free(&pub->acks);
        free(pub->known_end[0]);
        free(pub->known_end[1]);
        pub->known_end[0] = pub->known_end[1] = NULL;
        mcd_strmap_clear(&pub->published);
}

int publish_outputs(struct publisher *pub, int t, int n, int timeout_ms) {
        const char *topic = t == OUT_OUTCOMES ? pub->env->cfg->topic_outcomes : pub->env->cfg->topic_dlq;

        pub->n_out_parts[t] = n;
        pub->known_end[t] = calloc((size_t)n + 1, sizeof(int64_t));
        if (!pub->known_end[t])
                return -ENOMEM;
        watchdog_kick();
        (void)mcd_kafka_watermarks(pub->env->producer, topic, NULL, n, NULL, pub->known_end[t], timeout_ms);
        for (int q = 0; q < n; q++)     /* unanswered: 0, marks made from it look from the start */
                if (pub->known_end[t][q] < 0)
                        pub->known_end[t][q] = 0;
        return 0;
}

size_t publish_owed_frames(const struct publisher *pub) {
        return pub->n_pending;
}

void publish_set_stuck(struct publisher *pub) {
        pub->stuck = true;
}

bool publish_stuck(const struct publisher *pub) {
        return pub->stuck;
}

void publish_commit_sent(struct publisher *pub, int64_t mono) {
        pub->verified_at = mono;
}

void publish_committed(struct publisher *pub, uint64_t batch) {
        pub->verified_batch = batch;
}
