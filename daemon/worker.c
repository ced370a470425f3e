/* worker.c -- `multichanneld run`: the loop (Kafka Streams' StreamThread),
 * status and reload; what it runs is in the parts below.
 *
 * One thread, one loop:
 *   1. poll both input topics into per-partition queues (intake.c);
 *   2. merge each co-partitioned pair in message-timestamp order (a
 *      relationship first on a tie), waiting up to merge_wait for an empty
 *      side (intake.c; CONTRACT.md "Order across the two topics");
 *   3. load the batch's customers from Redis in one round trip, apply the
 *      rules (timers due first), encode outcomes and dead letters as outbox
 *      frames (batch.c, apply.c);
 *   4. commit states, due times, next offsets and the frames in one atomic
 *      Redis transaction, fenced by each partition's owner generation (batch.c);
 *   5. produce the frames (idempotent producer), trim them from the outbox
 *      once delivered, and append the customers' states to the changelog
 *      (publish.c).
 * A crash anywhere leaves Redis at the last commit: on restart the partition
 * is claimed again (tasks.c), seeks to the stored offsets and the outbox is
 * reconciled against the tail of the output topics (restore.c; frame ids are
 * deterministic) before anything new.
 *
 * The parts depend one way (each includes only the headers of those after
 * it): worker -> batch -> tasks -> restore -> publish, intake -> pair ->
 * msgq, and batch -> apply -> intake; every part -> runtime (the handles,
 * clocks and counters they share).  The worker owns every part's state and
 * wires them together (worker_wire); a part reaches another only through
 * its header. */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "daemon/avro_codec.h"
#include "daemon/batch.h"
#include "daemon/group_offsets.h"
#include "daemon/end_probe.h"
#include "daemon/intake.h"
#include "daemon/kafka.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/pair.h"
#include "daemon/publish.h"
#include "daemon/restore.h"
#include "daemon/startup.h"
#include "daemon/state_cache.h"
#include "daemon/store.h"
#include "daemon/tasks.h"
#include "daemon/worker.h"

struct worker {
        struct mcd_env env;          /* handles, configuration, counters: shared by every part */
        struct mcd_worker_signals *sig;
        struct pairs pairs;          /* the pairs owned or being claimed */
        struct intake in;            /* input: queues, merge, backpressure */
        struct publisher pub;        /* output: frames, delivery, changelog appends */
        struct restorer rs;          /* reconcile, rebuild, re-processing record */
        struct tasks tm;             /* rebalances, claims, fencing */
        struct applier ap;           /* the rules on a batch, the batch threads */
        struct batcher bt;           /* collect, commit, undo */
        int n_input_partitions;
        struct mcd_retry redis_retry; /* the next try to reach Redis after it failed (redis_check) */
        struct mcd_retry type_retry; /* the hold after a key of another type (redis_check), growing while
                                        they recur; the next hold starts small again after TYPE_CALM_MS */
        int64_t type_found_at;       /* when the last was found (monotonic ms), 0 before */
        bool evictions_unknown_said; /* the notice that Redis's eviction policy cannot be read is out */
        int64_t next_status;
        int64_t status_mono, status_events;
        uint64_t watchdog_usec;      /* systemd's WatchdogSec, 0 when off */
};

/* Points every part at the state it uses (its own, and the parts below it). */
static void worker_wire(struct worker *w, struct mcd_config *cfg) {
        w->env.cfg = cfg;
        w->env.stop = &w->sig->stop;
        w->in = (struct intake){.env = &w->env, .pairs = &w->pairs};
        w->pub = (struct publisher){.env = &w->env, .pairs = &w->pairs};
        w->rs = (struct restorer){.env = &w->env, .pairs = &w->pairs, .in = &w->in, .pub = &w->pub};
        w->tm = (struct tasks){.env = &w->env, .pairs = &w->pairs, .in = &w->in, .pub = &w->pub, .rs = &w->rs};
        tasks_init(&w->tm);
        w->ap = (struct applier){.env = &w->env, .pairs = &w->pairs, .in = &w->in};
        w->bt = (struct batcher){.env = &w->env, .pairs = &w->pairs, .in = &w->in, .pub = &w->pub, .tm = &w->tm,
                                 .ap = &w->ap};
}

/* ------------------------------------------------------------- main loop -- */

#define TYPE_CALM_MS 30000   /* no key of another type found for this long: the hold starts small again */

/* A key of the daemon's found of another type (MCD_STORE_WRONG_TYPE): the
 * claim or commit that found it is tried again after a hold, which grows
 * (mcd_backoff_next) while it keeps being found, so that a key left so
 * costs a claim and a few lines of log every few seconds, not a loop.
 * This function can't fail. */
static void hold_for_wrong_type(struct worker *w, int64_t mono) {
        if (mono - w->type_found_at > TYPE_CALM_MS)
                mcd_retry_done(&w->type_retry);
        w->type_found_at = mono;
        w->env.redis_wrong_type = false;
        log_warning("Redis at %s holds a key of the daemon's of another type (logged above); consumption paused, "
                    "retrying in %d ms", mcd_store_where(w->env.store), mcd_retry_failed(&w->type_retry, mono));
}

/* True while a key of another type holds consumption back: found just
 * now, or within the last hold (and a second) while the partitions it
 * stopped are not all back, not once they are (the key made good before
 * the hold ran out).  This function can't fail. */
static bool type_held(const struct worker *w, int64_t mono) {
        if (w->env.redis_wrong_type)
                return true;
        return w->type_found_at && mono <= w->type_retry.at + 1000 && !(w->env.redis_ok && all_ready(&w->pairs));
}

/* Whether Redis keeps what it is given: one that may evict keys would drop
 * customers' states without a trace, so it is waited out as an unreachable
 * one is (an operator's CONFIG SET ends the wait).  One that does not let
 * its configuration be read is taken as it is, and said so once.  1 if it
 * keeps them, 0 if not (logged), or a negative errno. */
static int redis_keeps_keys(struct worker *w, int64_t mono) {
        char policy[64] = "";
        int r = mcd_store_evicts(w->env.store, policy, sizeof(policy));

        if (r == -EOPNOTSUPP) {
                if (!w->evictions_unknown_said)
                        log_notice("Redis at %s does not let CONFIG GET read its maxmemory-policy: make sure it is "
                                   "noeviction, or every customer's state may not survive", mcd_store_where(w->env.store));
                w->evictions_unknown_said = true;
                return 1;
        }
        if (r == 1)
                log_error("Redis at %s may evict the daemon's keys (maxmemory set, maxmemory-policy %s): customers' "
                          "states would be lost without a trace; consumption paused until it is noeviction, retrying "
                          "in %d ms", mcd_store_where(w->env.store), policy, mcd_retry_failed(&w->redis_retry, mono));
        return r < 0 ? r : !r;
}

static bool redis_check(struct worker *w) {
        int64_t mono = mono_ms();
        bool created;
        int r;

        if (mcd_store_follow_master(w->env.store) > 0)
                w->env.redis_ok = false;        /* a failover announced: connect to the new master */
        if (w->env.redis_ok)
                return true;
        if (w->env.redis_wrong_type)
                hold_for_wrong_type(w, mono);
        if (!mcd_retry_due(&w->redis_retry, mono) || !mcd_retry_due(&w->type_retry, mono))
                return false;
        r = mcd_store_ping(w->env.store, &w->env.st.redis_rtt_us);
        if (r >= 0 && (r = redis_keeps_keys(w, mono)) == 0)
                return false;
        if (r >= 0)
                r = mcd_store_init_meta(w->env.store, &created);
        if (r == MCD_STORE_WRONG_TYPE) {        /* the meta key: it answers, and is held back as above */
                hold_for_wrong_type(w, mono);
                return false;
        }
        if (r < 0) {
                log_warning("Redis at %s unreachable (%s); consumption paused, retrying in %d ms",
                            mcd_store_where(w->env.store), strerror(-r), mcd_retry_failed(&w->redis_retry, mono));
                return false;
        }
        log_notice("Redis at %s answers%s", mcd_store_where(w->env.store), created ? " (state initialised)" : "");
        w->env.redis_ok = true;
        mcd_retry_done(&w->redis_retry);
        return true;
}


/* Kicks the watchdog while start-up waits for Kafka (startup.h). */
static void watchdog_alive(void *ctx) {
        (void)ctx;
        watchdog_kick();
}

/* The store's notes (where the master is, a Sentinel not answering, a
 * write refused by a replica), logged as they come. */
static void store_note(void *ctx, int priority, const char *text) {
        (void)ctx;
        mcd_log(priority, "%s", text);
}

static int worker_setup(struct worker *w) {
        rd_kafka_conf_t *conf;
        char err[512];
        rd_kafka_topic_partition_list_t *topics;
        struct mcd_store_options so = {
                .host = w->env.cfg->redis_host, .port = w->env.cfg->redis_port, .db = w->env.cfg->redis_db,
                .password = w->env.cfg->redis_password, .prefix = w->env.cfg->redis_key_prefix,
                .timeout_ms = w->env.cfg->redis_timeout_ms, .sentinels = w->env.cfg->redis_sentinels,
                .master_name = w->env.cfg->redis_master_name, .note = store_note,
                .zip_frames = w->env.cfg->outbox_compression == MCD_OUTBOX_ZSTD,
        };
        const char *out_topics[2] = {w->env.cfg->topic_outcomes, w->env.cfg->topic_dlq};
        struct mcd_startup_wait wait = {
                .stop = &w->sig->stop, .alive = watchdog_alive, .ctx = w,
                .bootstrap = mcd_config_kafka(w->env.cfg, "bootstrap.servers"),
        };
        int md_ms = mcd_startup_timeout_ms(w->watchdog_usec);
        int r, n, n_sub;

        mcd_config_rules(w->env.cfg, &w->ap.rules);
        w->bt.fault_stop_before_commit = fault_env("MCD_FAULT_STOP_BEFORE_COMMIT");
        w->bt.fault_stop_before_publish = fault_env("MCD_FAULT_STOP_BEFORE_PUBLISH");
        w->bt.fault_push_enomem = fault_env("MCD_FAULT_PUSH_ENOMEM");
        w->pub.fault_stop_before_changelog = fault_env("MCD_FAULT_STOP_BEFORE_CHANGELOG");
        w->tm.fault_stop_before_claim = fault_env("MCD_FAULT_STOP_BEFORE_CLAIM");
        if ((r = mcd_avro_new(&w->ap.avro)) < 0 || (r = mcd_store_new(&so, &w->env.store)) < 0)
                return r;
        if ((r = mcd_registry_gate_new(w->env.cfg, &w->ap.registry)) < 0)
                return r;
        mcd_registry_gate_attach(w->ap.registry, w->ap.avro, true);
        if ((r = apply_schemas_load(&w->ap, w->env.cfg->schemas_dir)) < 0)
                return r;
        if ((r = batch_threads_start(&w->ap, w->env.cfg->batch_threads)) < 0) {
                log_error("cannot start %d batch threads: %s", w->env.cfg->batch_threads, strerror(-r));
                return r;
        }
        if ((r = mcd_state_cache_new((size_t)w->env.cfg->cache_max_bytes, &w->pairs.cache)) < 0)
                return r;

        conf = rd_kafka_conf_new();
        rd_kafka_conf_set_opaque(conf, &w->pub);
        rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
        w->env.producer = mcd_kafka_new(w->env.cfg, MCD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!w->env.producer) {
                log_error("cannot create the Kafka producer: %s", err);
                return -EINVAL;
        }
        if ((r = publish_topics_open(&w->pub)) < 0)
                return r;
        if ((r = mcd_end_probe_new(w->env.cfg, &w->env.end_probe)) < 0)
                return r;
        /* Kafka unreachable, a leader not elected yet, a topic not created
         * yet: waited for (startup.h).  Not being co-partitioned is a
         * configuration error, which exits. */
        for (int t = 0; t < 2; t++) {
                if ((r = mcd_startup_partitions(w->env.producer, out_topics[t], md_ms, &wait, &n)) < 0 ||
                    (r = publish_outputs(&w->pub, t, n, md_ms)) < 0)
                        return r;
        }
        if ((r = mcd_startup_partitions(w->env.producer, w->env.cfg->topic_relationships, md_ms, &wait,
                                        &w->n_input_partitions)) < 0 ||
            (r = mcd_startup_partitions(w->env.producer, w->env.cfg->topic_subscriptions, md_ms, &wait, &n_sub)) < 0)
                return r;
        if (w->n_input_partitions != n_sub) {
                log_error("input topics are not co-partitioned: %s has %d partitions, %s has %d",
                          w->env.cfg->topic_relationships, w->n_input_partitions, w->env.cfg->topic_subscriptions,
                          n_sub);
                return -EINVAL;
        }
        r = mcd_group_offsets_new(w->env.cfg->topic_relationships, w->env.cfg->topic_subscriptions,
                                  w->n_input_partitions, w->env.cfg->group_offsets_interval_ms,
                                  &w->env.group_offsets);
        if (r < 0)
                return r;

        conf = rd_kafka_conf_new();
        rd_kafka_conf_set_opaque(conf, &w->tm);
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
        rd_kafka_conf_set_offset_commit_cb(conf, offset_commit_cb);
        if ((r = mcd_group_offsets_watch(w->env.group_offsets, conf)) < 0) {
                rd_kafka_conf_destroy(conf);
                return r;
        }
        w->env.consumer = mcd_kafka_new(w->env.cfg, MCD_KAFKA_GROUP_CONSUMER, conf, err, sizeof(err));
        if (!w->env.consumer) {
                log_error("cannot create the Kafka consumer: %s", err);
                return -EINVAL;
        }
        w->pub.stall_ms = mcd_kafka_session_timeout_ms(w->env.consumer);
        w->env.sub_reader = mcd_kafka_new(w->env.cfg, MCD_KAFKA_READER, NULL, err, sizeof(err));
        if (!w->env.sub_reader) {
                log_error("cannot create the Kafka consumer: %s", err);
                return -EINVAL;
        }
        /* The assign()-only handle learns the topic's partitions now: left
         * to learn them when the first pair's side is assigned, it waits
         * for librdkafka's topic scan (once a second) before it fetches,
         * and every pair's merge with it (0.75 s of a fresh start of 64
         * partitions).  Only a delay if it fails. */
        if (mcd_kafka_partition_count(w->env.sub_reader, w->env.cfg->topic_subscriptions, md_ms) < 0)
                log_info("%s: its metadata not read ahead; its first fetch may wait up to a second",
                         w->env.cfg->topic_subscriptions);
        rd_kafka_poll_set_consumer(w->env.consumer);
        topics = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(topics, w->env.cfg->topic_relationships, RD_KAFKA_PARTITION_UA);
        r = rd_kafka_subscribe(w->env.consumer, topics) ? -EINVAL : 0;
        rd_kafka_topic_partition_list_destroy(topics);
        if (r < 0)
                log_error("cannot subscribe to %s", w->env.cfg->topic_relationships);
        return r;
}

static void worker_teardown(struct worker *w) {
        batcher_free(&w->bt);
        if (w->env.consumer)
                tasks_leave(&w->tm);
        mcd_state_cache_free(w->pairs.cache);
        w->pairs.cache = NULL;
        /* Pairs the close did not revoke leave sub_reader's assignment
         * while it still exists. */
        for (size_t i = w->pairs.n; i > 0; i--)
                pair_remove(&w->tm, w->pairs.v[i - 1]->partition);
        free(w->pairs.v);
        mcd_group_offsets_free(w->env.group_offsets);  /* after the consumer: its close answers commits, and
                                                         * its broker threads call the interceptors */
        w->env.group_offsets = NULL;
        if (w->env.sub_reader) {
                rd_kafka_assign(w->env.sub_reader, NULL);
                rd_kafka_consumer_close(w->env.sub_reader);
                rd_kafka_destroy(w->env.sub_reader);
        }
        mcd_end_probe_free(w->env.end_probe);
        w->env.end_probe = NULL;
        if (w->env.producer) {
                rd_kafka_flush(w->env.producer, 5000);
                publish_topics_close(&w->pub);
                rd_kafka_destroy(w->env.producer);
        }
        publish_free(&w->pub);
        mcd_store_free(w->env.store);
        batch_threads_stop(w->ap.par, w->ap.decoders);
        mcd_avro_free(w->ap.avro);
        mcd_avro_dir_free(w->ap.schemas);
        mcd_registry_gate_free(w->ap.registry);
}

/* Refreshes the figures that cost a look outside: consumer lag (cached
 * watermarks, no round trip), Redis round-trip time, and the owned
 * partitions' pending timers and outbox frames (one round trip).  While a
 * key of another type holds consumption back (type_held), the counts keep
 * their last figures: reading them would log the key again each time. */
static void refresh_figures(struct worker *w) {
        int64_t lag = 0, timers = 0, outbox = 0;
        bool wrong_type = type_held(w, mono_ms());

        for (size_t i = 0; i < w->pairs.n; i++) {
                struct pair *p = w->pairs.v[i];
                int64_t next[2] = {p->committed.rel, p->committed.sub};
                if (p->phase != PAIR_READY)
                        continue;
                for (int t = REL; t <= SUB; t++) {
                        int64_t lo, hi;
                        if (rd_kafka_get_watermark_offsets(input_handle(&w->in, t), topic_of(&w->in, t),
                                                           p->partition, &lo, &hi) == 0 && hi > 0)
                                lag += hi - (next[t] >= 0 ? next[t] : lo);
                }
        }
        if (wrong_type) {
                timers = w->env.st.pending_timers;
                outbox = w->env.st.outbox_frames;
        } else if (w->env.redis_ok) {
                int32_t *parts = calloc(w->pairs.n + 1, sizeof(*parts));
                size_t n = 0;
                for (size_t i = 0; parts && i < w->pairs.n; i++)
                        if (w->pairs.v[i]->phase == PAIR_READY)
                                parts[n++] = w->pairs.v[i]->partition;
                if (parts && mcd_store_counts(w->env.store, parts, n, &timers, &outbox) < 0)
                        timers = outbox = 0;
                free(parts);
        }
        w->env.st.lag = lag;
        w->env.st.pending_timers = timers;
        w->env.st.outbox_frames = outbox;
        w->env.st.partitions = (int64_t)w->pairs.n;
        w->env.st.changelog_stopped = 0;
        for (size_t i = 0; i < w->pairs.n; i++)
                w->env.st.changelog_stopped += w->pairs.v[i]->clog_failed;
        if (w->env.redis_ok && mcd_store_ping(w->env.store, &w->env.st.redis_rtt_us) < 0)
                w->env.st.redis_errors++;
        w->env.st.redis_wrong_type = wrong_type;
        w->env.st.redis_up = w->env.redis_ok || w->env.st.redis_wrong_type;    /* it answers */
        w->env.st.redis_round_trips = mcd_store_round_trips(w->env.store);
        mcd_group_offsets_counts(w->env.group_offsets, &w->env.st.group_commits, &w->env.st.group_commit_failures);
        /* Batches allocate and free in bursts; give what is free back to
         * the system, so that RSS follows what the daemon holds. */
        malloc_trim(0);
}

static void report_status(struct worker *w, bool *ready_sent) {
        int64_t mono = mono_ms(), rate, events = 0;
        bool was_ready = w->env.st.ready;

        w->env.st.ready = w->env.redis_ok && all_ready(&w->pairs) && w->env.st.changelog_stopped == 0;
        if (!*ready_sent && w->env.st.ready) {
                sd_notify(0, "READY=1");
                *ready_sent = true;
                log_notice("ready: %zu partition(s) owned", w->pairs.n);
        }
        /* /metrics shows a change of readiness now, not at the next batch
         * or status interval (which may be seconds away). */
        if (w->env.st.ready != was_ready && w->env.metrics && mono < w->next_status)
                mcd_metrics_update(w->env.metrics, &w->env.st);
        if (mono < w->next_status)
                return;
        refresh_figures(w);
        for (int t = REL; t <= SUB; t++)
                for (int e = 0; e < MCD_EV__COUNT; e++)
                        events += (int64_t)w->env.st.events[t][e];
        rate = w->status_mono ? (events - w->status_events) * 1000 / (mono - w->status_mono + 1) : 0;
        w->status_events = events;
        w->status_mono = mono;
        w->next_status = mono + w->env.cfg->status_interval;
        {
                uint64_t dead = 0;
                for (int k = 0; k < MCD_N_DEAD_LETTER_REASONS; k++)
                        dead += w->env.st.dead_letters[k];
                sd_notifyf(0,
                           "STATUS=%" PRId64 " events/s, lag %" PRId64 ", %" PRId64 " parked, %" PRIu64
                           " dead letters, %zu partitions%s%s",
                           rate, w->env.st.lag, w->env.st.parked, dead, w->pairs.n,
                           w->env.st.redis_wrong_type ? ", a Redis key of another type (see the log)"
                           : w->env.redis_ok         ? ""
                                                     : ", Redis unreachable",
                           w->env.st.changelog_stopped ? ", changelog append failed: partitions stopped" : "");
        }
        if (w->env.metrics)
                mcd_metrics_update(w->env.metrics, &w->env.st);
}

static bool str_differs(const char *a, const char *b) {
        return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

/* Do two configurations differ in a key that only a restart applies? */
static bool restart_keys_differ(const struct mcd_config *a, const struct mcd_config *b) {
        bool d = str_differs(a->topic_relationships, b->topic_relationships) ||
                 str_differs(a->topic_subscriptions, b->topic_subscriptions) ||
                 str_differs(a->topic_outcomes, b->topic_outcomes) || str_differs(a->topic_dlq, b->topic_dlq) ||
                 str_differs(a->topic_changelog, b->topic_changelog) || str_differs(a->redis_host, b->redis_host) ||
                 a->redis_port != b->redis_port || a->redis_db != b->redis_db ||
                 str_differs(a->redis_password, b->redis_password) ||
                 str_differs(a->redis_key_prefix, b->redis_key_prefix) ||
                 str_differs(a->redis_sentinels, b->redis_sentinels) ||
                 str_differs(a->redis_master_name, b->redis_master_name) ||
                 a->redis_timeout_ms != b->redis_timeout_ms || a->outbox_compression != b->outbox_compression ||
                 str_differs(a->metrics_listen, b->metrics_listen) ||
                 str_differs(a->registry_url, b->registry_url) ||
                 str_differs(a->registry_basic_auth, b->registry_basic_auth) ||
                 a->registry_timeout_ms != b->registry_timeout_ms || a->output_format != b->output_format ||
                 a->n_kafka != b->n_kafka;

        for (size_t i = 0; !d && i < a->n_kafka; i++)
                d = str_differs(a->kafka[i].key, b->kafka[i].key) || str_differs(a->kafka[i].value, b->kafka[i].value);
        return d;
}

/* cache.max_bytes changed by a reload: the cache bounded anew, made (its
 * READY pairs open: it starts empty, and states enter only as committed)
 * or dropped. */
static void reload_cache(struct worker *w, int max_bytes) {
        int r = 0;

        if (max_bytes == 0) {
                mcd_state_cache_free(w->pairs.cache);
                w->pairs.cache = NULL;
        } else if (w->pairs.cache) {
                mcd_state_cache_set_max(w->pairs.cache, (size_t)max_bytes);
        } else if ((r = mcd_state_cache_new((size_t)max_bytes, &w->pairs.cache)) == 0) {
                for (size_t i = 0; i < w->pairs.n; i++)
                        if (w->pairs.v[i]->phase == PAIR_READY)
                                mcd_state_cache_open(w->pairs.cache, w->pairs.v[i]->partition);
        }
        if (r < 0) {
                log_error("reload: cannot make the state cache: %s; running without", strerror(-r));
                return;
        }
        log_notice("reload: cache.max_bytes %d -> %d", w->env.cfg->cache_max_bytes, max_bytes);
        w->env.cfg->cache_max_bytes = max_bytes;
        w->env.st.state_cache_bytes = (int64_t)mcd_state_cache_bytes(w->pairs.cache);
}

/* SIGHUP: re-reads the configuration file and schemas.dir.  A bad file is
 * refused (each bad line logged) and the running configuration kept; a bad
 * schema folder is logged (the file named) and the writer schemas in use
 * kept.  The keys that shape the rules, batching, the state cache and
 * logging apply at once; the others (Kafka, topics, Redis, metrics address,
 * the schema registry and the output framing) at the next start, which is
 * logged. */
static void reload(struct worker *w) {
        static const char *const restart_keys[] = {"topic", "redis", "kafka", "metrics", "schema_registry"};
        struct mcd_config fresh;
        char *errors = NULL;
        size_t errlen = 0;
        unsigned n_errors = 0;
        FILE *ef;
        int r;

        sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%" PRId64, mono_us());
        if (!w->env.cfg->path) {
                log_notice("reload: running on the defaults, no configuration file to re-read");
                apply_schemas_load(&w->ap, w->env.cfg->schemas_dir);
                sd_notify(0, "READY=1");
                return;
        }
        ef = open_memstream(&errors, &errlen);
        r = mcd_config_defaults(&fresh);
        if (r >= 0 && ef)
                r = mcd_config_load(w->env.cfg->path, &fresh, ef, &n_errors);
        if (ef)
                fclose(ef);
        if (r < 0 || !ef) {
                char *line = errors, *nl;
                for (; line && *line; line = nl ? nl + 1 : line + strlen(line)) {
                        nl = strchr(line, '\n');
                        if (nl)
                                *nl = '\0';
                        log_error("reload: %s", line);
                        if (!nl)
                                break;
                }
                log_error("reload refused: %s has %u error(s); the running configuration is kept", w->env.cfg->path,
                          n_errors);
        } else {
                bool differs = restart_keys_differ(&fresh, w->env.cfg);
                w->env.cfg->log_level = fresh.log_level;
                w->env.cfg->park_grace = fresh.park_grace;
                w->env.cfg->dedup_window = fresh.dedup_window;
                w->env.cfg->limit_seen_ids = fresh.limit_seen_ids;
                w->env.cfg->limit_subscriptions = fresh.limit_subscriptions;
                w->env.cfg->limit_parked = fresh.limit_parked;
                w->env.cfg->merge_wait = fresh.merge_wait;
                w->env.cfg->batch_max = fresh.batch_max;
                w->env.cfg->batch_max_bytes = fresh.batch_max_bytes;
                if (fresh.cache_max_bytes != w->env.cfg->cache_max_bytes)
                        reload_cache(w, fresh.cache_max_bytes);
                if (fresh.batch_threads != w->env.cfg->batch_threads) {
                        struct mcd_par *par = w->ap.par;
                        struct mcd_avro **decoders = w->ap.decoders;
                        r = batch_threads_start(&w->ap, fresh.batch_threads);
                        if (r < 0) {
                                log_error("reload: cannot start %d batch threads: %s; keeping %d",
                                          fresh.batch_threads, strerror(-r), w->env.cfg->batch_threads);
                        } else {
                                batch_threads_stop(par, decoders);
                                log_notice("reload: batch.threads %d -> %d", w->env.cfg->batch_threads,
                                           fresh.batch_threads);
                                w->env.cfg->batch_threads = fresh.batch_threads;
                        }
                }
                w->env.cfg->buffer_max = fresh.buffer_max;
                w->env.cfg->batch_wait = fresh.batch_wait;
                w->env.cfg->status_interval = fresh.status_interval;
                w->env.cfg->group_offsets_interval_ms = fresh.group_offsets_interval_ms;
                mcd_group_offsets_set_interval(w->env.group_offsets, fresh.group_offsets_interval_ms);
                if (apply_schemas_load(&w->ap, fresh.schemas_dir) == 0) {
                        char *old = w->env.cfg->schemas_dir;
                        w->env.cfg->schemas_dir = fresh.schemas_dir;
                        fresh.schemas_dir = old;
                }
                mcd_config_rules(w->env.cfg, &w->ap.rules);
                mcd_log_set_level(fresh.log_level);
                if (differs)
                        log_warning("reload: changes to %s.*, %s.*, %s.*, %s.*, %s.* or output.format keys take "
                                    "effect at the next start", restart_keys[0], restart_keys[1], restart_keys[2],
                                    restart_keys[3], restart_keys[4]);
                log_notice("reloaded %s", w->env.cfg->path);
        }
        mcd_config_clear(&fresh);
        free(errors);
        if (w->env.metrics)     /* a figure the reload changed (the state cache's bytes) shown at once */
                mcd_metrics_update(w->env.metrics, &w->env.st);
        sd_notify(0, "READY=1");
}

int mcd_worker_run(struct mcd_config *cfg, struct mcd_worker_signals *sig) {
        struct worker w = {.sig = sig};
        bool ready_sent = false;
        int r;

        worker_wire(&w, cfg);
        if (sd_watchdog_enabled(0, &w.watchdog_usec) <= 0)
                w.watchdog_usec = 0;
        watchdog_init(w.watchdog_usec);
        r = worker_setup(&w);
        if (r == -ECANCELED && sig->stop) {
                /* SIGTERM while start-up waited for Kafka: a clean stop */
                sd_notify(0, "STOPPING=1");
                log_notice("stopping: stopped while waiting for Kafka at start-up");
                r = 0;
                goto out;
        }
        if (r < 0)
                goto out;
        if (cfg->metrics_listen && *cfg->metrics_listen) {
                r = mcd_metrics_start(cfg->metrics_listen, &w.env.metrics);
                if (r < 0) {
                        log_error("metrics: cannot listen on %s: %s", cfg->metrics_listen, strerror(-r));
                        goto out;
                }
                log_notice("metrics on http://%s/metrics", cfg->metrics_listen);
        }
        log_notice("consuming %s and %s as group %s", cfg->topic_relationships, cfg->topic_subscriptions,
                   mcd_config_kafka(cfg, "group.id"));
        while (!sig->stop) {
                watchdog_kick();      /* the loop is alive */
                if (sig->reload) {
                        sig->reload = 0;
                        reload(&w);
                }
                report_status(&w, &ready_sent);
                if (!redis_check(&w) || !mcd_registry_gate_open(w.ap.registry, &w.env.st, mono_ms())) {
                        rd_kafka_message_t *m = rd_kafka_consumer_poll(w.env.consumer, 100);
                        if (m)
                                take_message(&w.in, m, REL);
                        continue;
                }
                resolve_unsure(&w.bt);
                rollback_watch(&w.tm);
                /* Delivery reports are served; after a batch found the last
                 * one's outputs undelivered (Kafka unreachable), nothing new
                 * is processed until the outbox is out. */
                if (publish_busy(&w.pub) && publish_pending(&w.pub, publish_stuck(&w.pub) ? 1000 : 0) < 0 &&
                    publish_stuck(&w.pub))
                        continue;
                redo_settle(&w.rs);
                tasks_claim(&w.tm);
                poll_inputs(&w.in, w.bt.ahead ? 0 : (int)cfg->batch_wait, batch_customers(&w.bt));
                r = process_batch(&w.bt);
                mcd_group_offsets_flush(w.env.group_offsets, w.env.consumer, mono_ms(), false);
                apply_backpressure(&w.in);
                if (r < 0 && r != -ENOMEM)
                        continue;
                if (r == -ENOMEM) {
                        log_error("out of memory processing a batch");
                        continue;
                }
        }
        /* The batch in flight is done (one thread); what it committed but
         * has not published yet goes out before the group is left. */
        sd_notify(0, "STOPPING=1");
        batcher_free(&w.bt);            /* collected, not committed: read again by the next owner */
        if (publish_busy(&w.pub) && publish_pending(&w.pub, 10000) < 0)
                log_warning("stopping with %zu frames unpublished; the next owner publishes them",
                            publish_owed_frames(&w.pub));
        r = 0;
        log_notice("stopping: leaving the consumer group");
out:
        if (w.env.metrics)
                mcd_metrics_stop(w.env.metrics);
        worker_teardown(&w);
        return r;
}
