/* cmd_tools.c -- the helper subcommands pipelines and people need:
 *   publish   JSON lines of the replay format, encoded to Avro and produced
 *             (with the reader schemas, or a writer schema file given;
 *             single-object encoded, or --format confluent with the ids
 *             the schema registry gives);
 *   tail      the outcome (or dead-letter) topic decoded to JSON lines;
 *   state     one customer's state from Redis, as JSON;
 * and the helpers the tools that read Redis share (commands.h). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <avro.h>
#include <jansson.h>

#include "daemon/avro_codec.h"
#include "daemon/cli.h"
#include "daemon/commands.h"
#include "daemon/config.h"
#include "daemon/jsonl.h"
#include "daemon/kafka.h"
#include "daemon/registry.h"
#include "daemon/state_codec.h"
#include "daemon/state_json.h"
#include "daemon/store.h"

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig) {
        (void)sig;
        interrupted = 1;
}

/* Options common to the Kafka tools: -c FILE, -b BOOTSTRAP. */
struct tool_opts {
        const char *config;
        const char *bootstrap;
};

static int apply_bootstrap(const char *cmd, struct mcd_config *cfg, const char *bootstrap) {
        char why[256];
        if (bootstrap && mcd_config_set(cfg, "kafka.bootstrap.servers", bootstrap, 0, why, sizeof(why)) < 0)
                return mcd_cli_error(cmd, "--bootstrap: %s", why);
        return 0;
}

static void dr_count_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        unsigned *failed = opaque;
        if (m->err) {
                (*failed)++;
                fprintf(stderr, "multichanneld: publish: delivery failed: %s\n", rd_kafka_err2str(m->err));
        }
}

/* --writer-schema FILE: the schema's text (heap) in writers[] at the index of
 * its envelope (RelationshipEvent or SubscriptionEvent, by record name).
 * 0, or 1 with the error printed. */
static int load_writer_schema(const char *path, char *writers[2]) {
        static const char *const names[2] = {"RelationshipEvent", "SubscriptionEvent"};
        json_error_t jerr;
        json_t *root = json_load_file(path, 0, &jerr);
        const char *name = json_string_value(json_object_get(root, "name")), *dot;
        avro_schema_t schema = NULL;
        int k;

        if (!root)
                return mcd_cli_error("publish", "--writer-schema: %s: line %d: %s", path, jerr.line, jerr.text);
        dot = name ? strrchr(name, '.') : NULL;
        name = dot ? dot + 1 : name;
        for (k = 0; k < 2 && !(name && strcmp(name, names[k]) == 0); k++)
                ;
        if (k == 2) {
                json_decref(root);
                return mcd_cli_error("publish", "--writer-schema: %s: not a RelationshipEvent or SubscriptionEvent "
                                     "record schema", path);
        }
        free(writers[k]);
        writers[k] = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        if (!writers[k])
                return mcd_cli_error("publish", "out of memory");
        if (avro_schema_from_json_length(writers[k], strlen(writers[k]), &schema) != 0)
                return mcd_cli_error("publish", "--writer-schema: %s: not an Avro schema: %s", path, avro_strerror());
        avro_schema_decref(schema);
        return 0;
}

/* Encodes an event with its envelope's writer schema from --writer-schema,
 * else with the reader schema; framed in the Confluent wire format with
 * ids[envelope] when ids is not NULL (--format confluent). */
static int encode_with(struct mcd_avro *avro, char *const writers[2], const uint32_t *ids,
                       const struct mcd_event *ev, void **buf, size_t *len) {
        int k = mcd_event_is_relationship(ev->type) ? 0 : 1;
        const char *w = writers[k];

        if (ids)
                return mcd_avro_encode_event_confluent(avro, w, ids[k], ev, buf, len);
        return w ? mcd_avro_encode_event_with(avro, w, ev, buf, len) : mcd_avro_encode_event(avro, ev, buf, len);
}

/* --format confluent: registers the writer schema of each input topic (from
 * --writer-schema, else the reader schema) under "<topic>-value", as
 * Confluent's serializers do, and gives the ids.  0, or 1 with the error
 * printed. */
static int register_writers(const struct mcd_config *cfg, struct mcd_avro *avro, char *const writers[2],
                            uint32_t ids[2]) {
        const char *topics[2] = {cfg->topic_relationships, cfg->topic_subscriptions};
        const enum mcd_avro_kind kinds[2] = {MCD_AVRO_RELATIONSHIP_EVENT, MCD_AVRO_SUBSCRIPTION_EVENT};
        struct mcd_registry *reg = NULL;
        char subject[512], why[512];
        int r, status = 0;

        if (!cfg->registry_url)
                return mcd_cli_error("publish", "--format confluent needs schema_registry.url in the configuration");
        if ((r = mcd_registry_new(cfg->registry_url, cfg->registry_basic_auth, cfg->registry_timeout_ms, &reg)) < 0)
                return mcd_cli_error("publish", "schema registry: %s", strerror(-r));
        for (int k = 0; k < 2 && status == 0; k++) {
                snprintf(subject, sizeof(subject), "%s-value", topics[k]);
                if (mcd_registry_register(reg, subject, writers[k] ? writers[k] : mcd_avro_reader_schema(avro, kinds[k]),
                                          &ids[k], why, sizeof(why)) < 0)
                        status = mcd_cli_error("publish", "registering the writer schema under %s: %s", subject, why);
        }
        mcd_registry_free(reg);
        return status;
}

/* --in-order: before an event of the other topic than the last one's is
 * produced, every event produced so far has reached Kafka (a flush).  Two
 * topics have no order between them on the brokers: without this, under
 * load, a relationship event can reach Kafka and the daemon more than
 * merge_wait before the earlier subscription event beside it (CONTRACT.md
 * "Order across the two topics"), and be applied first.  0, or -1 with the
 * error printed. */
static int keep_order(rd_kafka_t *rk, const char **last_topic, const char *topic, size_t lineno) {
        rd_kafka_resp_err_t err;

        if (*last_topic && *last_topic != topic && (err = rd_kafka_flush(rk, 30000)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                fprintf(stderr, "line %zu: --in-order: the events before it did not reach Kafka: %s\n", lineno,
                        rd_kafka_err2str(err));
                return -1;
        }
        *last_topic = topic;
        return 0;
}

static int publish_stream(FILE *in, rd_kafka_t *rk, struct mcd_avro *avro, char *const writers[2],
                          const uint32_t *ids, const struct mcd_config *cfg, const char *only, bool in_order,
                          unsigned long *n_ok) {
        const char *last_topic = NULL;
        char *line = NULL, why[512];
        size_t cap = 0, lineno = 0;
        bool too_long;
        long len = 0;
        int status = 0;

        while (!interrupted && (len = mcd_jsonl_getline(&line, &cap, in, &too_long)) > 0) {
                struct mcd_event ev;
                const char *topic, *kind;
                void *buf;
                size_t blen;
                rd_kafka_resp_err_t err;

                lineno++;
                if (too_long) {
                        fprintf(stderr, "line %zu: longer than %d bytes; not published\n", lineno, MCD_JSONL_LINE_MAX);
                        status = 1;
                        continue;
                }
                if (mcd_jsonl_blank(line, (size_t)len))
                        continue;
                if (mcd_jsonl_parse_event(line, (size_t)len, &ev, why, sizeof(why)) < 0) {
                        fprintf(stderr, "line %zu: %s\n", lineno, why);
                        status = 1;
                        continue;
                }
                kind = mcd_event_is_relationship(ev.type) ? "relationships" : "subscriptions";
                topic = mcd_event_is_relationship(ev.type) ? cfg->topic_relationships : cfg->topic_subscriptions;
                if (only && strcmp(only, kind) != 0) {
                        fprintf(stderr, "line %zu: a %s event does not belong on the %s topic\n", lineno,
                                mcd_event_type_name(ev.type), only);
                        status = 1;
                } else if (encode_with(avro, writers, ids, &ev, &buf, &blen) < 0) {
                        fprintf(stderr, "line %zu: cannot encode the event as Avro\n", lineno);
                        status = 1;
                } else if (in_order && keep_order(rk, &last_topic, topic, lineno) < 0) {
                        free(buf);
                        status = 1;
                } else {
                        do {
                                err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                                        RD_KAFKA_V_KEY(ev.customer_id, strlen(ev.customer_id)),
                                                        RD_KAFKA_V_VALUE(buf, blen), RD_KAFKA_V_TIMESTAMP(ev.occurred_at),
                                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END);
                                if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                                        rd_kafka_poll(rk, 100);
                        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
                        if (err) {
                                fprintf(stderr, "line %zu: cannot produce: %s\n", lineno, rd_kafka_err2str(err));
                                free(buf);
                                status = 1;
                        } else {
                                (*n_ok)++;
                        }
                }
                rd_kafka_poll(rk, 0);
                mcd_event_clear(&ev);
        }
        if (len < 0 || ferror(in)) {
                fprintf(stderr, "line %zu: cannot read: %s; the rest is not published\n", lineno + 1,
                        strerror(len < 0 ? (int)-len : errno));
                status = 1;
        } else if (interrupted) {
                fprintf(stderr, "interrupted after line %zu; the rest is not published\n", lineno);
                status = 1;
        }
        free(line);
        return status;
}

int mcd_cmd_publish(int argc, char **argv) {
        static const struct option opts[] = {
                {"config", required_argument, NULL, 'c'},
                {"bootstrap", required_argument, NULL, 'b'},
                {"topic", required_argument, NULL, 't'},
                {"writer-schema", required_argument, NULL, 'w'},
                {"format", required_argument, NULL, 'f'},
                {"in-order", no_argument, NULL, 'o'},
                {0},
        };
        struct tool_opts o = {0};
        const char *only = NULL;
        bool confluent = false, in_order = false;
        uint32_t ids[2] = {0, 0};
        char *writers[2] = {NULL, NULL};
        struct mcd_config cfg;
        struct mcd_avro *avro = NULL;
        rd_kafka_conf_t *conf;
        rd_kafka_t *rk;
        unsigned failed = 0;
        unsigned long n_ok = 0;
        char err[512];
        FILE *in = stdin;
        int c, status;

        optind = 1;
        while ((c = mcd_getopt(argc, argv, "+c:b:t:w:f:", opts)) != -1) {
                switch (c) {
                case 'c': o.config = optarg; break;
                case 'b': o.bootstrap = optarg; break;
                case 'o': in_order = true; break;
                case 'f':
                        if (strcmp(optarg, "confluent") != 0 && strcmp(optarg, "single-object") != 0) {
                                status = mcd_cli_error("publish",
                                                       "--format: expected single-object or confluent, got '%s'",
                                                       optarg);
                                goto out_writers;
                        }
                        confluent = strcmp(optarg, "confluent") == 0;
                        break;
                case 't':
                        if (strcmp(optarg, "relationships") != 0 && strcmp(optarg, "subscriptions") != 0) {
                                status = mcd_cli_error("publish",
                                                       "--topic: expected relationships or subscriptions, got '%s'",
                                                       optarg);
                                goto out_writers;
                        }
                        only = optarg;
                        break;
                case 'w':
                        if ((status = load_writer_schema(optarg, writers)) != 0)
                                goto out_writers;
                        break;
                default:
                        status = mcd_cli_bad_option("publish", argv);
                        goto out_writers;
                }
        }
        if (argc - optind > 1) {
                status = mcd_cli_error("publish", "unexpected argument '%s'", argv[optind + 1]);
                goto out_writers;
        }
        if ((status = mcd_load_config_for("publish", o.config, &cfg)) != 0)
                goto out_writers;
        if ((status = apply_bootstrap("publish", &cfg, o.bootstrap)) != 0)
                goto out_cfg;
        if (optind < argc && strcmp(argv[optind], "-") != 0 && !(in = fopen(argv[optind], "re"))) {
                status = mcd_cli_error("publish", "FILE: cannot open '%s': %s", argv[optind], strerror(errno));
                goto out_cfg;
        }
        signal(SIGINT, on_interrupt);
        signal(SIGTERM, on_interrupt);
        conf = rd_kafka_conf_new();
        rd_kafka_conf_set_opaque(conf, &failed);
        rd_kafka_conf_set_dr_msg_cb(conf, dr_count_cb);
        rk = mcd_kafka_new(&cfg, MCD_KAFKA_BULK_PRODUCER, conf, err, sizeof(err));
        if (!rk) {
                status = mcd_cli_error("publish", "Kafka: %s", err);
                goto out_in;
        }
        if (mcd_avro_new(&avro) < 0) {
                status = mcd_cli_error("publish", "cannot load the Avro schemas");
                goto out_rk;
        }
        if (confluent && (status = register_writers(&cfg, avro, writers, ids)) != 0) {
                mcd_avro_free(avro);
                goto out_rk;
        }
        status = publish_stream(in, rk, avro, writers, confluent ? ids : NULL, &cfg, only, in_order,
                                &n_ok);
        if (rd_kafka_flush(rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                fprintf(stderr, "multichanneld: publish: not every event was delivered within 30 s\n");
                status = 1;
        }
        if (failed)
                status = 1;
        fprintf(stderr, "multichanneld: publish: %lu event(s) produced, %u delivery failure(s)\n", n_ok, failed);
        mcd_avro_free(avro);
out_rk:
        rd_kafka_destroy(rk);
out_in:
        if (in != stdin)
                fclose(in);
out_cfg:
        mcd_config_clear(&cfg);
out_writers:
        free(writers[0]);
        free(writers[1]);
        return status;
}

/* ------------------------------------------------------------------ tail -- */

/* Sets o's field name to the n bytes at v as a string; bytes that are not
 * UTF-8 (a dead letter's key and headers can be anything) go as name null
 * and name_hex their hex, so that nothing of the letter is dropped. */
static void set_bytes(json_t *o, const char *name, const void *v, size_t n) {
        json_t *str = json_stringn(v ? v : "", n);
        char field[64], *hex;

        json_object_set_new(o, name, str ? str : json_null());
        if (str || !(hex = malloc(2 * n + 1)))
                return;
        for (size_t i = 0; i < n; i++)
                snprintf(hex + 2 * i, 3, "%02x", ((const unsigned char *)v)[i]);
        hex[2 * n] = '\0';
        snprintf(field, sizeof(field), "%s_hex", name);
        json_object_set_new(o, field, json_string(hex));
        free(hex);
}

static void print_dead_letter(const rd_kafka_message_t *m) {
        static const char *const names[] = {"error", "error_message", "source_topic", "source_partition",
                                            "source_offset"};
        rd_kafka_headers_t *h = NULL;
        json_t *o = json_object();
        char *s;

        set_bytes(o, "key", m->key, m->key_len);
        json_object_set_new(o, "value_bytes", json_integer((json_int_t)m->len));
        rd_kafka_message_headers(m, &h);
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                const void *v;
                size_t n;
                if (h && rd_kafka_header_get_last(h, names[i], &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR)
                        set_bytes(o, names[i], v, n);
                else
                        json_object_set_new(o, names[i], json_null());
        }
        s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s)
                puts(s);
        free(s);
        json_decref(o);
}

static void print_outcome(struct mcd_avro *avro, const rd_kafka_message_t *m) {
        struct mcd_outcome oc;
        struct mcd_avro_error e;
        char *s;

        if (mcd_avro_decode_outcome(avro, m->payload, m->len, &oc, &e) < 0) {
                fprintf(stderr, "multichanneld: tail: partition %" PRId32 " offset %" PRId64 ": %s: %s\n",
                        m->partition, m->offset, e.code, e.message);
                return;
        }
        s = mcd_jsonl_format_outcome(&oc);
        if (s)
                puts(s);
        free(s);
        mcd_outcome_clear(&oc);
}

int mcd_cmd_tail(int argc, char **argv) {
        static const struct option opts[] = {
                {"config", required_argument, NULL, 'c'},
                {"bootstrap", required_argument, NULL, 'b'},
                {"exit-at-end", no_argument, NULL, 'e'},
                {"dlq", no_argument, NULL, 'd'},
                {0},
        };
        struct tool_opts o = {0};
        bool at_end = false, dlq = false;
        struct mcd_config cfg;
        struct mcd_avro *avro = NULL;
        struct mcd_registry *reg = NULL;
        rd_kafka_topic_partition_list_t *l;
        rd_kafka_t *rk;
        char err[512];
        const char *topic;
        int c, status, n_parts, eof = 0;

        optind = 1;
        while ((c = mcd_getopt(argc, argv, "+c:b:", opts)) != -1) {
                switch (c) {
                case 'c': o.config = optarg; break;
                case 'b': o.bootstrap = optarg; break;
                case 'e': at_end = true; break;
                case 'd': dlq = true; break;
                default:
                        return mcd_cli_bad_option("tail", argv);
                }
        }
        if (optind < argc)
                return mcd_cli_error("tail", "unexpected argument '%s'", argv[optind]);
        if ((status = mcd_load_config_for("tail", o.config, &cfg)) != 0)
                return status;
        if ((status = apply_bootstrap("tail", &cfg, o.bootstrap)) != 0)
                goto out_cfg;
        signal(SIGINT, on_interrupt);
        signal(SIGTERM, on_interrupt);
        topic = dlq ? cfg.topic_dlq : cfg.topic_outcomes;
        rk = mcd_kafka_new(&cfg, MCD_KAFKA_TOOL_READER, NULL, err, sizeof(err));
        if (!rk) {
                status = mcd_cli_error("tail", "Kafka: %s", err);
                goto out_cfg;
        }
        n_parts = mcd_kafka_partition_count(rk, topic, 10000);
        if (n_parts < 0) {
                status = mcd_cli_error("tail", "topic %s: %s", topic, strerror(-n_parts));
                goto out_rk;
        }
        if (mcd_avro_new(&avro) < 0) {
                status = mcd_cli_error("tail", "cannot load the Avro schemas");
                goto out_rk;
        }
        /* Outcomes in the Confluent wire format name their schema by id. */
        if (cfg.registry_url) {
                int r = mcd_registry_new(cfg.registry_url, cfg.registry_basic_auth, cfg.registry_timeout_ms, &reg);
                if (r < 0) {
                        status = mcd_cli_error("tail", "schema registry: %s", strerror(-r));
                        mcd_avro_free(avro);
                        goto out_rk;
                }
                mcd_avro_use_registry(avro, reg);
        }
        l = rd_kafka_topic_partition_list_new(n_parts);
        for (int i = 0; i < n_parts; i++)
                rd_kafka_topic_partition_list_add(l, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_assign(rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        while (!interrupted && !(at_end && eof >= n_parts)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
                if (!m)
                        continue;
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                        eof++;
                else if (m->err)
                        fprintf(stderr, "multichanneld: tail: %s\n", rd_kafka_message_errstr(m));
                else if (dlq)
                        print_dead_letter(m);
                else
                        print_outcome(avro, m);
                fflush(stdout);
                rd_kafka_message_destroy(m);
        }
        mcd_avro_free(avro);
        mcd_registry_free(reg);
        rd_kafka_consumer_close(rk);
out_rk:
        rd_kafka_destroy(rk);
out_cfg:
        mcd_config_clear(&cfg);
        return status;
}

/* ----------------------------------------------------------------- state -- */

/* The store's warnings (a Sentinel not answering, a node that is not the
 * master) on stderr, named by the command (ctx); its lower notes are of no
 * use to a tool. */
static void tool_store_note(void *ctx, int priority, const char *text) {
        if (priority <= LOG_WARNING)
                fprintf(stderr, "multichanneld: %s: %s\n", (const char *)ctx, text);
}

int mcd_tool_store_new(const char *cmd, const struct mcd_config *cfg, struct mcd_store **out) {
        struct mcd_store_options so = {
                .host = cfg->redis_host, .port = cfg->redis_port, .db = cfg->redis_db,
                .password = cfg->redis_password, .prefix = cfg->redis_key_prefix,
                .timeout_ms = cfg->redis_timeout_ms, .sentinels = cfg->redis_sentinels,
                .master_name = cfg->redis_master_name, .note = tool_store_note, .note_ctx = (void *)cmd,
        };

        return mcd_store_new(&so, out);
}

int mcd_tool_load_customer(const char *cmd, struct mcd_store *store, const char *id, struct mcd_customer *c) {
        char *raw = NULL, why[256] = "";
        size_t len = 0;
        int r = mcd_store_get_customer_raw(store, id, &raw, &len);

        if (r < 0)
                return r;
        if (!raw)
                return -ENOENT;
        r = mcd_state_decode(raw, len, c, why, sizeof(why));
        free(raw);
        if (r == -EINVAL)
                fprintf(stderr, "multichanneld: %s: the stored state of '%s' is unreadable: %s\n", cmd, id, why);
        return r;
}

/* The stored state, decoded (binary or the JSON of earlier versions), as
 * JSON (state_json.h). */
static int print_state(struct mcd_store *store, const char *id, bool compact) {
        struct mcd_customer c;
        int r = mcd_tool_load_customer("state", store, id, &c);

        if (r == -ENOENT)
                fprintf(stderr, "multichanneld: state: no state for customer '%s'\n", id);
        if (r < 0)
                return r;
        r = mcd_state_print(stdout, &c, !compact);
        mcd_customer_clear(&c);
        return r;
}

int mcd_cmd_state(int argc, char **argv) {
        static const struct option opts[] = {
                {"config", required_argument, NULL, 'c'},
                {"compact", no_argument, NULL, 'C'},
                {0},
        };
        const char *path = NULL;
        struct mcd_store *store = NULL;
        struct mcd_config cfg;
        bool compact = false;
        int c, r, status;

        optind = 1;
        while ((c = mcd_getopt(argc, argv, "+c:", opts)) != -1) {
                if (c == 'c')
                        path = optarg;
                else if (c == 'C')
                        compact = true;
                else
                        return mcd_cli_bad_option("state", argv);
        }
        if (optind >= argc)
                return mcd_cli_error("state", "expected a CUSTOMER_ID argument");
        if ((status = mcd_load_config_for("state", path, &cfg)) != 0)
                return status;
        r = mcd_tool_store_new("state", &cfg, &store);
        for (int i = optind; r >= 0 && i < argc; i++) {
                r = print_state(store, argv[i], compact);
                if (r == -ENOENT || r == -EINVAL) {     /* none, or unreadable (said): the others still printed */
                        status = 1;
                        r = 0;
                }
        }
        if (r < 0) {
                fprintf(stderr, "multichanneld: state: Redis at %s: %s\n",
                        store ? mcd_store_where(store) : cfg.redis_host, strerror(-r));
                status = 1;
        }
        mcd_store_free(store);
        mcd_config_clear(&cfg);
        return status;
}
