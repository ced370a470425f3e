/* cmd_redrive.c -- `multichanneld redrive`: dead letters back into the
 * pipeline, once the producer bug is fixed or the missing schema added (as
 * SQS's "DLQ redrive").
 *
 * DESIGN: the dead-letter topic is read from its start to its end offsets as
 * they are when the command starts (letters dead-lettered meanwhile wait for
 * the next run).  A letter is selected by its `error` header (--error) and
 * its record's timestamp (--since inclusive, --until exclusive): the input
 * message's, which the letter keeps (letters of earlier releases: the time
 * they were dead-lettered).  Its key and value are the input message's, as
 * received (CONTRACT.md "Bad input"); its headers source_topic,
 * source_partition and source_offset say where that message is.  The letter
 * does not carry the message's headers (nor, in earlier releases, its
 * timestamp), so the message is read back from its source (a reader that
 * moves forward through nearby offsets and seeks for far ones): its
 * timestamp and headers are sent again with the key and
 * value, to the same topic and partition.  A source record no longer on its
 * topic (retention) is sent with the letter's own timestamp, and counted.
 * Each message sent carries the header multichanneld.redrive.from =
 * "<dlq topic>/<partition>/<offset>" naming its letter; a letter whose own
 * source carries that header is a re-dead-lettered copy of an earlier
 * letter: when that letter is selected in the same run, the copy is skipped,
 * so re-driving unfixable garbage again and again sends the same number each
 * time instead of doubling it.  Re-driving events that were applied is
 * harmless: the rules drop a repeated event_id (rule 1).
 *
 * The producer is the daemon's (idempotent, acks=all); the command waits
 * for every delivery and prints a summary by error code.  --dry-run reads
 * the same and sends nothing. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cli.h"
#include "daemon/commands.h"
#include "daemon/config.h"
#include "daemon/kafka.h"
#include "daemon/stats.h"
#include "daemon/strmap.h"

#define CMD "redrive"
#define REDRIVE_HEADER "multichanneld.redrive.from"
#define TIMEOUT_MS 10000             /* metadata, one source record, the dead-letter topic's silence */
#define SCAN_AHEAD 1000              /* a source offset at most this far ahead is read up to, not sought */
#define MAX_CODES 16                 /* error codes tallied apart; more go under "other" */

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig) {
        (void)sig;
        interrupted = 1;
}

struct filter {
        const char *error;           /* NULL: every code */
        bool has_since, has_until;
        mcd_time_t since, until;     /* dead-lettered in [since, until) */
};

/* Letters of one error code. */
struct code_tally {
        char code[64];
        unsigned long letters, selected, sent;
};

struct redrive {
        const struct mcd_config *cfg;
        const struct filter *f;
        bool dry_run;
        rd_kafka_t *dlq, *src, *producer;   /* producer NULL on a dry run */
        int n_src_parts[2];                  /* partitions of the two input topics */
        struct mcd_strmap covered;           /* letters selected in this run, "<dlq>/<p>/<o>" */
        struct code_tally codes[MAX_CODES + 1];
        size_t n_codes;
        unsigned long copies, no_source, own_timestamp, failed;
        int64_t *src_low[2], *src_high[2];   /* each input partition's offsets, queried once; -2: not yet */
        /* the source reader's position: its one assigned partition */
        char src_topic[256];
        int32_t src_partition;
        int64_t src_next;                    /* -1: to be sought */
};

/* The tally of a code; the last slot ("other") once MAX_CODES are taken. */
static struct code_tally *tally(struct redrive *r, const char *code) {
        for (size_t i = 0; i < r->n_codes; i++)
                if (strcmp(r->codes[i].code, code) == 0)
                        return &r->codes[i];
        if (r->n_codes == MAX_CODES) {
                snprintf(r->codes[MAX_CODES].code, sizeof(r->codes[MAX_CODES].code), "other");
                return &r->codes[MAX_CODES];
        }
        snprintf(r->codes[r->n_codes].code, sizeof(r->codes[0].code), "%.63s", code);
        return &r->codes[r->n_codes++];
}

/* A header's value as a string in buf ("" when absent or too long). */
static const char *header(const rd_kafka_message_t *m, const char *name, char *buf, size_t len) {
        rd_kafka_headers_t *h = NULL;
        const void *v;
        size_t n;

        buf[0] = '\0';
        if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            rd_kafka_header_get_last(h, name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && v && n < len) {
                memcpy(buf, v, n);
                buf[n] = '\0';
        }
        return buf;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        struct redrive *r = opaque;
        struct code_tally *t = m->_private;

        (void)rk;
        if (m->err) {
                r->failed++;
                fprintf(stderr, "multichanneld: %s: delivery to %s failed: %s\n", CMD, rd_kafka_topic_name(m->rkt),
                        rd_kafka_err2str(m->err));
        } else {
                t->sent++;
        }
}

/* ------------------------------------------------------- source records -- */

/* Points the source reader at topic/partition from offset. */
static int source_seek(struct redrive *r, const char *topic, int32_t partition, int64_t offset) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_resp_err_t err;

        rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
        err = rd_kafka_assign(r->src, l);
        rd_kafka_topic_partition_list_destroy(l);
        if (err)
                return -EIO;
        snprintf(r->src_topic, sizeof(r->src_topic), "%s", topic);
        r->src_partition = partition;
        r->src_next = offset;
        return 0;
}

/* Is offset within the partition's records (queried the first time)?  The
 * letters read were all written before the query, so their source records
 * lie below its end unless they are gone. */
static bool source_holds(struct redrive *r, int t, const char *topic, int32_t partition, int64_t offset) {
        int64_t *low = &r->src_low[t][partition], *high = &r->src_high[t][partition];

        if (*low == -2 && rd_kafka_query_watermark_offsets(r->src, topic, partition, low, high, TIMEOUT_MS) != 0)
                *low = *high = -2;
        return *low == -2 || (offset >= *low && offset < *high);
}

/* The record at offset of input partition `partition` of topic (side t):
 * 1 with *out set (the caller destroys it), 0 when it is no longer on the
 * topic, -ETIMEDOUT, -EINTR or -EIO when it could not be read. */
static int source_record(struct redrive *r, int t, const char *topic, int32_t partition, int64_t offset,
                         rd_kafka_message_t **out) {
        bool sought = false;
        int waited = 0;

        if (partition < 0 || partition >= r->n_src_parts[t] || !source_holds(r, t, topic, partition, offset))
                return 0;
        if (strcmp(r->src_topic, topic) != 0 || r->src_partition != partition || r->src_next < 0 ||
            offset < r->src_next || offset - r->src_next > SCAN_AHEAD) {
                if (source_seek(r, topic, partition, offset) < 0)
                        return -EIO;
                sought = true;
        }
        while (waited < TIMEOUT_MS && !interrupted) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(r->src, 100);
                int found = -1;

                if (!m) {
                        waited += 100;
                        continue;
                }
                if (m->partition != partition || strcmp(rd_kafka_topic_name(m->rkt), topic) != 0) {
                        rd_kafka_message_destroy(m);
                        continue;
                }
                if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        fprintf(stderr, "multichanneld: %s: reading %s [%" PRId32 "]: %s\n", CMD, topic, partition,
                                rd_kafka_message_errstr(m));
                        found = 0;
                } else if (m->err || m->offset > offset || (sought && m->offset < offset)) {
                        found = 0;   /* the end, past it, or reset from it: gone (retention, compaction) */
                } else if (m->offset == offset) {
                        found = 1;
                }
                r->src_next = found == 1 ? offset + 1 : found == 0 ? -1 : m->offset + 1;
                if (found == 1) {
                        *out = m;
                        return 1;
                }
                rd_kafka_message_destroy(m);
                if (found == 0)
                        return 0;
        }
        r->src_next = -1;
        return interrupted ? -EINTR : -ETIMEDOUT;
}

/* --------------------------------------------------------------- letters -- */

static bool selected(const struct filter *f, const char *code, int64_t ts) {
        if (f->error && strcmp(f->error, code) != 0)
                return false;
        if (f->has_since && ts < f->since)
                return false;
        return !(f->has_until && ts >= f->until);
}

/* The headers to send: the source record's (if found), but an earlier
 * redrive's, then ours naming the letter. */
static rd_kafka_headers_t *send_headers(const rd_kafka_message_t *src, const char *from) {
        rd_kafka_headers_t *h = NULL, *out;
        const char *name;
        const void *v;
        size_t n;

        if (src)
                rd_kafka_message_headers(src, &h);
        out = rd_kafka_headers_new(h ? rd_kafka_header_cnt(h) + 1 : 1);
        for (size_t i = 0; h && rd_kafka_header_get_all(h, i, &name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
                if (strcmp(name, REDRIVE_HEADER) != 0)
                        rd_kafka_header_add(out, name, -1, v, (ssize_t)n);
        rd_kafka_header_add(out, REDRIVE_HEADER, -1, from, -1);
        return out;
}

/* Produces the letter m back to topic (side t of the input topics). */
static int send_letter(struct redrive *r, const rd_kafka_message_t *m, int t, const char *topic, int32_t partition,
                       const rd_kafka_message_t *src, const char *from, struct code_tally *ct) {
        rd_kafka_timestamp_type_t tstype;
        int64_t ts = src ? rd_kafka_message_timestamp(src, &tstype) : rd_kafka_message_timestamp(m, &tstype);
        rd_kafka_headers_t *h = send_headers(src, from);
        rd_kafka_resp_err_t err;

        if (partition < 0 || partition >= r->n_src_parts[t])
                partition = RD_KAFKA_PARTITION_UA;
        do {
                err = rd_kafka_producev(r->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                        RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE(m->payload, m->len),
                                        RD_KAFKA_V_TIMESTAMP(ts > 0 ? ts : 0), RD_KAFKA_V_HEADERS(h),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(ct),
                                        RD_KAFKA_V_END);
                if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        rd_kafka_poll(r->producer, 100);
        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        if (err) {
                rd_kafka_headers_destroy(h);
                fprintf(stderr, "multichanneld: %s: %s: cannot produce: %s\n", CMD, from, rd_kafka_err2str(err));
                r->failed++;
                return -EIO;
        }
        rd_kafka_poll(r->producer, 0);
        return 0;
}

/* Does the source record hold the letter's key and value (else the topic
 * was recreated, its offsets reused)? */
static bool same_message(const rd_kafka_message_t *letter, const rd_kafka_message_t *src) {
        return letter->key_len == src->key_len && letter->len == src->len &&
               (letter->key_len == 0 || memcmp(letter->key, src->key, letter->key_len) == 0) &&
               (letter->len == 0 || memcmp(letter->payload, src->payload, letter->len) == 0);
}

/* One dead letter: tallied, and if selected and not a copy of a letter
 * selected before, sent (or counted, on a dry run).  0, or a negative errno
 * that stops the run (its source could not be read). */
static int letter(struct redrive *r, const rd_kafka_message_t *m) {
        const char *topics[2] = {r->cfg->topic_relationships, r->cfg->topic_subscriptions};
        char code[64], topic[256], part[24], off[24], from[512], earlier[512];
        long long partition, offset;
        rd_kafka_timestamp_type_t tstype;
        rd_kafka_message_t *src = NULL;
        struct code_tally *ct;
        int t, ret;

        header(m, "error", code, sizeof(code));
        ct = tally(r, code[0] ? code : "(none)");
        ct->letters++;
        if (!selected(r->f, code, rd_kafka_message_timestamp(m, &tstype)))
                return 0;
        ct->selected++;
        snprintf(from, sizeof(from), "%s/%" PRId32 "/%" PRId64, r->cfg->topic_dlq, m->partition, m->offset);
        header(m, "source_topic", topic, sizeof(topic));
        header(m, "source_partition", part, sizeof(part));
        header(m, "source_offset", off, sizeof(off));
        t = strcmp(topic, topics[0]) == 0 ? 0 : strcmp(topic, topics[1]) == 0 ? 1 : -1;
        if (t < 0) {
                fprintf(stderr, "multichanneld: %s: %s: source_topic '%s' is not an input topic; skipped\n", CMD,
                        from, topic);
                r->no_source++;
                return 0;
        }
        if (mcd_parse_digits(part, 0, INT32_MAX, &partition) < 0 || mcd_parse_digits(off, 0, INT64_MAX, &offset) < 0) {
                fprintf(stderr, "multichanneld: %s: %s: source_partition '%s' or source_offset '%s' is not one; "
                        "skipped\n", CMD, from, part, off);
                r->no_source++;
                return 0;
        }
        ret = source_record(r, t, topic, (int32_t)partition, offset, &src);
        if (ret < 0) {
                fprintf(stderr, "multichanneld: %s: %s: cannot read its source record %s [%s] at %s: %s\n", CMD,
                        from, topic, part, off, strerror(-ret));
                return ret;
        }
        if (src && !same_message(m, src)) {
                fprintf(stderr, "multichanneld: %s: %s: the record at %s [%s] offset %s is another message; "
                        "the letter goes with its own timestamp\n", CMD, from, topic, part, off);
                rd_kafka_message_destroy(src);
                src = NULL;
        }
        if ((ret = mcd_strmap_put(&r->covered, from, r)) < 0)
                goto out;
        if (src && mcd_strmap_get(&r->covered, header(src, REDRIVE_HEADER, earlier, sizeof(earlier)))) {
                r->copies++;
                goto out;
        }
        if (!src)
                r->own_timestamp++;
        if (r->dry_run)
                ct->sent++;
        else
                send_letter(r, m, t, topic, (int32_t)partition, src, from, ct);
out:
        if (src)
                rd_kafka_message_destroy(src);
        return ret;
}

/* Reads the dead-letter topic from its start to its end offsets as they are
 * now, each letter through letter().  0 or a negative errno (said). */
static int read_letters(struct redrive *r) {
        const char *topic = r->cfg->topic_dlq;
        int n = mcd_kafka_partition_count(r->dlq, topic, TIMEOUT_MS), remaining = 0, waited = 0, ret = 0;
        rd_kafka_topic_partition_list_t *l;
        int64_t *end;

        if (n < 0) {
                fprintf(stderr, "multichanneld: %s: topic %s: %s\n", CMD, topic, strerror(-n));
                return n;
        }
        end = calloc((size_t)n + 1, sizeof(*end));
        l = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
        for (int p = 0; end && p < n && ret == 0; p++) {
                int64_t low;
                if (rd_kafka_query_watermark_offsets(r->dlq, topic, p, &low, &end[p], TIMEOUT_MS) != 0) {
                        fprintf(stderr, "multichanneld: %s: the end of %s [%d] did not come\n", CMD, topic, p);
                        ret = -EIO;
                } else if (end[p] > low) {
                        rd_kafka_topic_partition_list_add(l, topic, p)->offset = low;
                        remaining++;
                }
        }
        if (!end)
                ret = -ENOMEM;
        if (ret == 0 && remaining > 0 && rd_kafka_assign(r->dlq, l) != 0)
                ret = -EIO;
        rd_kafka_topic_partition_list_destroy(l);
        while (ret == 0 && remaining > 0 && !interrupted && waited < TIMEOUT_MS) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(r->dlq, 100);
                bool done;

                waited = m ? 0 : waited + 100;
                if (!m)
                        continue;
                if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                        fprintf(stderr, "multichanneld: %s: %s\n", CMD, rd_kafka_message_errstr(m));
                else if (m->partition >= 0 && m->partition < n && end[m->partition] >= 0) {
                        done = m->offset >= end[m->partition] - (m->err ? 0 : 1);
                        if (!m->err && m->offset < end[m->partition])
                                ret = letter(r, m);
                        if (done) {
                                end[m->partition] = -1;   /* read: later records wait for the next run */
                                remaining--;
                        }
                }
                rd_kafka_message_destroy(m);
        }
        if (ret == 0 && remaining > 0) {
                fprintf(stderr, "multichanneld: %s: %s\n", CMD,
                        interrupted ? "interrupted" : "the dead-letter topic stopped answering before its end");
                ret = interrupted ? -EINTR : -ETIMEDOUT;
        }
        free(end);
        return ret;
}

/* --------------------------------------------------------------- summary -- */

static void print_summary(const struct redrive *r) {
        unsigned long letters = 0, sel = 0, sent = 0;
        const char *verb = r->dry_run ? "WOULD SEND" : "SENT";

        printf("%-20s %10s %10s %10s\n", "ERROR", "LETTERS", "SELECTED", verb);
        for (size_t i = 0; i <= MAX_CODES; i++) {
                const struct code_tally *t = &r->codes[i];
                if (i >= r->n_codes && (i < MAX_CODES || t->letters == 0))
                        continue;
                printf("%-20s %10lu %10lu %10lu\n", t->code, t->letters, t->selected, t->sent);
                letters += t->letters;
                sel += t->selected;
                sent += t->sent;
        }
        printf("%-20s %10lu %10lu %10lu\n", "total", letters, sel, sent);
        if (r->copies)
                printf("skipped %lu re-dead-lettered cop%s of letters selected in this run\n", r->copies,
                       r->copies == 1 ? "y" : "ies");
        if (r->no_source)
                printf("skipped %lu letter(s) naming no input record (source_topic, source_partition, source_offset)\n",
                       r->no_source);
        if (r->own_timestamp)
                printf("%lu letter(s) %s with the dead letter's own timestamp: the source record is gone\n",
                       r->own_timestamp, r->dry_run ? "would go" : "went");
        if (r->dry_run)
                printf("dry run: would send %lu of %lu selected; nothing sent\n", sent, sel);
        else
                printf("sent %lu of %lu selected, %lu failed\n", sent, sel, r->failed);
}

/* ------------------------------------------------------------------- run -- */

/* The clients, the reading and the waiting for deliveries.  The exit
 * status. */
static int redrive(struct redrive *r) {
        const char *topics[2] = {r->cfg->topic_relationships, r->cfg->topic_subscriptions};
        char err[512];
        rd_kafka_conf_t *conf;
        int ret = -EIO;

        r->dlq = mcd_kafka_new(r->cfg, MCD_KAFKA_READER, NULL, err, sizeof(err));
        r->src = r->dlq ? mcd_kafka_new(r->cfg, MCD_KAFKA_READER, NULL, err, sizeof(err)) : NULL;
        if (r->src && !r->dry_run) {
                conf = rd_kafka_conf_new();
                rd_kafka_conf_set_opaque(conf, r);
                rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
                r->producer = mcd_kafka_new(r->cfg, MCD_KAFKA_PRODUCER, conf, err, sizeof(err));
        }
        if (!r->src || (!r->dry_run && !r->producer)) {
                fprintf(stderr, "multichanneld: %s: Kafka: %s\n", CMD, err);
                goto out;
        }
        for (int t = 0; t < 2; t++) {
                r->n_src_parts[t] = mcd_kafka_partition_count(r->src, topics[t], TIMEOUT_MS);
                if (r->n_src_parts[t] < 0) {
                        fprintf(stderr, "multichanneld: %s: topic %s: %s\n", CMD, topics[t],
                                strerror(-r->n_src_parts[t]));
                        goto out;
                }
                r->src_low[t] = malloc(((size_t)r->n_src_parts[t] + 1) * sizeof(int64_t));
                r->src_high[t] = malloc(((size_t)r->n_src_parts[t] + 1) * sizeof(int64_t));
                if (!r->src_low[t] || !r->src_high[t]) {
                        fprintf(stderr, "multichanneld: %s: out of memory\n", CMD);
                        goto out;
                }
                for (int p = 0; p < r->n_src_parts[t]; p++)
                        r->src_low[t][p] = r->src_high[t][p] = -2;
        }
        ret = read_letters(r);
        if (r->producer && mcd_kafka_flush(r->producer, 60000) < 0) {
                fprintf(stderr, "multichanneld: %s: not every message was delivered within 60 s\n", CMD);
                ret = -ETIMEDOUT;
        }
        print_summary(r);
out:
        if (r->producer)
                rd_kafka_destroy(r->producer);
        if (r->src) {
                rd_kafka_consumer_close(r->src);
                rd_kafka_destroy(r->src);
        }
        if (r->dlq) {
                rd_kafka_consumer_close(r->dlq);
                rd_kafka_destroy(r->dlq);
        }
        for (int t = 0; t < 2; t++) {
                free(r->src_low[t]);
                free(r->src_high[t]);
        }
        mcd_strmap_clear(&r->covered);
        return ret < 0 || r->failed ? 1 : 0;
}

int mcd_cmd_redrive(int argc, char **argv) {
        static const struct option opts[] = {
                {"config", required_argument, NULL, 'c'},
                {"error", required_argument, NULL, 'e'},
                {"since", required_argument, NULL, 's'},
                {"until", required_argument, NULL, 'u'},
                {"dry-run", no_argument, NULL, 'n'},
                {0},
        };
        static const char *const codes[] = {MCD_DEAD_LETTER_REASONS};
        struct filter f = {0};
        struct redrive r = {.f = &f, .src_next = -1};
        struct mcd_config cfg;
        const char *path = NULL, *until = NULL, *since = NULL;
        int c, status;

        optind = 1;
        while ((c = mcd_getopt(argc, argv, "+c:", opts)) != -1) {
                switch (c) {
                case 'c': path = optarg; break;
                case 'n': r.dry_run = true; break;
                case 'e':
                        if (mcd_stats_dead_letter_index(optarg) < 0) {
                                fprintf(stderr, "multichanneld: %s: --error: unknown code '%s' (expected one of", CMD,
                                        optarg);
                                for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
                                        fprintf(stderr, " %s", codes[i]);
                                fputs(")\n", stderr);
                                return 2;
                        }
                        f.error = optarg;
                        break;
                case 's':
                        if (mcd_cli_parse_time(CMD, "--since", optarg, &f.since) != 0)
                                return 2;
                        f.has_since = true;
                        since = optarg;
                        break;
                case 'u':
                        if (mcd_cli_parse_time(CMD, "--until", optarg, &f.until) != 0)
                                return 2;
                        f.has_until = true;
                        until = optarg;
                        break;
                default:
                        return mcd_cli_bad_option(CMD, argv);
                }
        }
        if (optind < argc)
                return mcd_cli_error(CMD, "unexpected argument '%s'", argv[optind]);
        if (f.has_since && f.has_until && f.until <= f.since)
                return mcd_cli_error(CMD, "--until: '%s' is not after --since '%s'", until, since);
        if ((status = mcd_load_config_for(CMD, path, &cfg)) != 0)
                return status;
        signal(SIGINT, on_interrupt);
        signal(SIGTERM, on_interrupt);
        r.cfg = &cfg;
        status = redrive(&r);
        mcd_config_clear(&cfg);
        return status;
}
