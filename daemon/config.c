/* config.c -- the configuration file: defaults, loading and validation,
 * and the effective values printed back in the file's format.
 *
 * The format is one `key = value` per line.  `#` starts a comment anywhere
 * on a line (so a value cannot contain `#`), blank lines are ignored, and
 * whitespace around keys and values is trimmed.  Every key has a fixed type
 * (string, integer range, duration, log level, listen address) checked when
 * it is set; kafka.<property> is checked by librdkafka itself on a scratch
 * configuration, so a property librdkafka would refuse at start-up is named
 * with its line at load time instead.  Loading reports every bad line, not
 * only the first, so that one check-config run shows all of them. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <librdkafka/rdkafka.h>

#include "daemon/cli.h"
#include "daemon/config.h"
#include "daemon/log.h"
#include "daemon/macro.h"
#include "daemon/sentinel.h"
#include "handlers/rules.h"

#define KAFKA_PREFIX "kafka."
#define KEYS_DOC "see multichanneld(8)"

enum key_type {
        KEY_STRING,            /* char *, non-empty */
        KEY_TOPIC,             /* char *, a name Kafka takes: [A-Za-z0-9._-], 1..249 bytes, not . or .. */
        KEY_SECRET,            /* char *, empty means NULL; a credential: never printed */
        KEY_INT,               /* int, min..max */
        KEY_DURATION,          /* mcd_time_t, at least min ms, at most max ms unless max is 0 */
        KEY_DURATION_INT,      /* int milliseconds, min..max ms */
        KEY_LOG_LEVEL,         /* int syslog priority */
        KEY_LISTEN,            /* char *, host:port or empty */
        KEY_SENTINELS,         /* char *, host:port,host:port; empty means NULL */
        KEY_URL,               /* char *, http:// or https:// URL; empty means NULL */
        KEY_OUTPUT_FORMAT,     /* enum mcd_output_format, by name (CHOICES) */
        KEY_OUTBOX_COMPRESSION, /* enum mcd_outbox_compression, by name (CHOICES) */
};

/* The values of a key whose value is one of a few names: each name and the
 * enum's value it stands for.  Parsing and printing both read them; a NULL
 * name ends a list. */
struct choice {
        const char *name;
        int value;
};

static const struct choice OUTPUT_FORMATS[] = {
        {"single-object", MCD_OUTPUT_SINGLE_OBJECT}, {"confluent", MCD_OUTPUT_CONFLUENT}, {NULL, 0}};
static const struct choice OUTBOX_COMPRESSIONS[] = {
        {"zstd", MCD_OUTBOX_ZSTD}, {"none", MCD_OUTBOX_NONE}, {NULL, 0}};
static const struct choice *const CHOICES[] = {
        [KEY_OUTPUT_FORMAT] = OUTPUT_FORMATS,
        [KEY_OUTBOX_COMPRESSION] = OUTBOX_COMPRESSIONS,
};
_Static_assert(sizeof(enum mcd_output_format) == sizeof(int) && sizeof(enum mcd_outbox_compression) == sizeof(int),
               "a key of CHOICES is stored as an int");

struct key_def {
        const char *name;
        enum key_type type;
        size_t offset;
        long long min, max;
        const char *def;       /* default as the file would write it, or NULL */
};

#define OFF(field) offsetof(struct mcd_config, field)

static const struct key_def keys[] = {
        {"topic.relationships", KEY_TOPIC, OFF(topic_relationships), 0, 0, "partnercenter.relationships.v1"},
        {"topic.subscriptions", KEY_TOPIC, OFF(topic_subscriptions), 0, 0, "partnercenter.subscriptions.v1"},
        {"topic.outcomes", KEY_TOPIC, OFF(topic_outcomes), 0, 0, "partnercenter.multichannel.outcomes.v1"},
        {"topic.dlq", KEY_TOPIC, OFF(topic_dlq), 0, 0, "partnercenter.multichannel.dlq.v1"},
        {"topic.changelog", KEY_TOPIC, OFF(topic_changelog), 0, 0, "partnercenter.multichannel.changelog.v1"},
        {"redis.host", KEY_STRING, OFF(redis_host), 0, 0, "127.0.0.1"},
        {"redis.port", KEY_INT, OFF(redis_port), 1, 65535, "6379"},
        {"redis.db", KEY_INT, OFF(redis_db), 0, INT_MAX, "0"},
        {"redis.password", KEY_SECRET, OFF(redis_password), 0, 0, NULL},
        {"redis.key_prefix", KEY_STRING, OFF(redis_key_prefix), 0, 0, "mcd:"},
        {"redis.timeout", KEY_DURATION_INT, OFF(redis_timeout_ms), 1, INT_MAX, "2s"},
        {"redis.sentinels", KEY_SENTINELS, OFF(redis_sentinels), 0, 0, NULL},
        {"redis.master_name", KEY_STRING, OFF(redis_master_name), 0, 0, "mymaster"},
        {"redis.outbox_compression", KEY_OUTBOX_COMPRESSION, OFF(outbox_compression), 0, 0, "zstd"},
        {"park_grace", KEY_DURATION, OFF(park_grace), 0, 0, "10m"},
        {"dedup_window", KEY_DURATION, OFF(dedup_window), 1, MCD_DEDUP_WINDOW_MAX, "30d"},
        {"limits.seen_ids", KEY_INT, OFF(limit_seen_ids), 1, MCD_SEEN_IDS_MAX, "10000"},
        {"limits.subscriptions", KEY_INT, OFF(limit_subscriptions), 1, MCD_LIMIT_MAX, "1000"},
        {"limits.parked", KEY_INT, OFF(limit_parked), 1, MCD_LIMIT_MAX, "100"},
        {"merge_wait", KEY_DURATION, OFF(merge_wait), 0, 3600000, "500ms"},
        {"batch.max_events", KEY_INT, OFF(batch_max), 1, 100000, "1000"},
        {"batch.max_bytes", KEY_INT, OFF(batch_max_bytes), 4096, INT_MAX, "1048576"},
        {"cache.max_bytes", KEY_INT, OFF(cache_max_bytes), 0, INT_MAX, "0"},
        {"batch.threads", KEY_INT, OFF(batch_threads), 1, 64, "2"},
        {"batch.wait", KEY_DURATION, OFF(batch_wait), 0, 3600000, "50ms"},
        {"buffer.max_events", KEY_INT, OFF(buffer_max), 1, 10000000, "10000"},
        {"schemas.dir", KEY_STRING, OFF(schemas_dir), 0, 0, MCD_SCHEMADIR},
        {"schema_registry.url", KEY_URL, OFF(registry_url), 0, 0, NULL},
        {"schema_registry.basic_auth", KEY_SECRET, OFF(registry_basic_auth), 0, 0, NULL},
        {"schema_registry.timeout", KEY_DURATION_INT, OFF(registry_timeout_ms), 100, 600000, "5s"},
        {"output.format", KEY_OUTPUT_FORMAT, OFF(output_format), 0, 0, "single-object"},
        {"metrics.listen", KEY_LISTEN, OFF(metrics_listen), 0, 0, "127.0.0.1:9464"},
        {"log.level", KEY_LOG_LEVEL, OFF(log_level), 0, 0, "info"},
        {"status.interval", KEY_DURATION, OFF(status_interval), 1, 3600000, "5s"},
        {"group_offsets.interval", KEY_DURATION_INT, OFF(group_offsets_interval_ms), 100, 3600000, "1s"},
};

static const struct {
        const char *name, *value;
} kafka_defaults[] = {
        {"bootstrap.servers", "localhost:9092"},
        {"group.id", "multichanneld"},
};

static int why_set(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int why_set(char *why, size_t whylen, const char *fmt, ...) {
        va_list ap;

        if (why && whylen > 0) {
                va_start(ap, fmt);
                vsnprintf(why, whylen, fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

static const struct key_def *key_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (strcmp(keys[i].name, name) == 0)
                        return &keys[i];
        return NULL;
}

/* ------------------------------------------------------------- values */

#define TOPIC_NAME_MAX 249   /* Kafka's own limit on a topic's name */

/* True when Kafka would create a topic of this name (its Topic.validate):
 * 1..249 of [A-Za-z0-9._-], and neither "." nor "..".  This function
 * can't fail. */
static bool topic_name_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > TOPIC_NAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* ms as the file would write it, in the largest unit that divides it
 * ("30d", "90m", "1500ms"); returns buf. */
static const char *duration_text(mcd_time_t ms, char *buf, size_t len) {
        static const struct {
                const char *unit;
                mcd_time_t factor;
        } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};

        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
                if (ms != 0 && ms % units[i].factor == 0) {
                        snprintf(buf, len, "%" PRId64 "%s", ms / units[i].factor, units[i].unit);
                        return buf;
                }
        snprintf(buf, len, "%" PRId64 "ms", ms);
        return buf;
}

/* host:port, host a name, an IPv4 address or an IPv6 address in brackets. */
static int check_listen(const char *s) {
        const char *colon = strrchr(s, ':');
        size_t hostlen;
        long long port;

        if (!colon || mcd_parse_digits(colon + 1, 1, 65535, &port) < 0)
                return -EINVAL;
        hostlen = (size_t)(colon - s);
        if (hostlen == 0)
                return -EINVAL;
        if (s[0] == '[')
                return hostlen > 2 && s[hostlen - 1] == ']' ? 0 : -EINVAL;
        if (memchr(s, ':', hostlen) || memchr(s, ']', hostlen))
                return -EINVAL;
        return 0;
}

static int replace_string(char **slot, const char *value) {
        char *copy = NULL;

        if (value) {
                copy = strdup(value);
                if (!copy)
                        return -ENOMEM;
        }
        free(*slot);
        *slot = copy;
        return 0;
}

/* redis.sentinels: empty (none, NULL) or a list the store will parse the
 * same way (sentinel.h). */
static int set_sentinels(char **slot, const char *name, const char *value, char *why, size_t whylen) {
        struct mcd_hostport *list;
        char what[160] = "";
        size_t n;
        int r;

        if (*value == '\0')
                return replace_string(slot, NULL);
        r = mcd_sentinels_parse(value, &list, &n, what, sizeof(what));
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return why_set(why, whylen,
                               "%s: expected host:port,host:port,... (port 1..65535, IPv6 host in brackets) or "
                               "nothing for no Sentinels, got '%s': %s",
                               name, value, what);
        free(list);
        return replace_string(slot, value);
}

/* A key of CHOICES: the value named, or why none is ("expected A, B or
 * C", the names in the list's order). */
static int set_choice(int *slot, const struct key_def *k, const char *value, char *why, size_t whylen) {
        const struct choice *choices = CHOICES[k->type];
        char names[160] = "";
        size_t n = 0, used = 0;

        for (const struct choice *c = choices; c->name; c++)
                if (strcmp(value, c->name) == 0) {
                        *slot = c->value;
                        return 0;
                }
        while (choices[n].name)
                n++;
        for (size_t i = 0; i < n && used < sizeof(names); i++)
                used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
                                         i == 0 ? "" : i + 1 == n ? " or " : ", ", choices[i].name);
        return why_set(why, whylen, "%s: expected %s, got '%s'", k->name, names, value);
}

/* The name of the value of a key of CHOICES (NULL if it has none).  This
 * function can't fail. */
static const char *choice_name(const struct key_def *k, int value) {
        for (const struct choice *c = CHOICES[k->type]; c->name; c++)
                if (c->value == value)
                        return c->name;
        return NULL;
}

static int set_fixed(struct mcd_config *cfg, const struct key_def *k, const char *value, char *why,
                     size_t whylen) {
        char *base = (char *)cfg + k->offset;
        long long n;
        mcd_time_t ms;
        int level;

        switch (k->type) {
        case KEY_STRING:
                if (*value == '\0')
                        return why_set(why, whylen, "%s: expected a non-empty value", k->name);
                return replace_string((char **)base, value);

        case KEY_TOPIC:
                if (!topic_name_valid(value))
                        return why_set(why, whylen,
                                       "%s: expected a Kafka topic name (letters, digits, '.', '_', '-'; "
                                       "at most %d bytes; not '.' or '..'), got '%s'",
                                       k->name, TOPIC_NAME_MAX, value);
                return replace_string((char **)base, value);

        case KEY_SECRET:
                return replace_string((char **)base, *value ? value : NULL);

        case KEY_INT:
                if (mcd_parse_digits(value, k->min, k->max, &n) < 0) {
                        if (k->max == INT_MAX)
                                return why_set(why, whylen, "%s: expected an integer %lld or more, got '%s'",
                                               k->name, k->min, value);
                        return why_set(why, whylen, "%s: expected an integer %lld..%lld, got '%s'", k->name,
                                       k->min, k->max, value);
                }
                *(int *)base = (int)n;
                return 0;

        case KEY_DURATION:
                if (mcd_parse_duration(value, &ms) < 0 || ms < k->min || (k->max > 0 && ms > k->max)) {
                        char max[40] = "", text[24];

                        if (k->max > 0)
                                snprintf(max, sizeof(max), " up to %s", duration_text(k->max, text, sizeof(text)));
                        return why_set(why, whylen,
                                       "%s: expected a %sduration%s such as 500ms, 10s, 5m, 1h or 1d, got '%s'",
                                       k->name, k->min > 0 ? "positive " : "", max, value);
                }
                *(mcd_time_t *)base = ms;
                return 0;

        case KEY_DURATION_INT:
                if (mcd_parse_duration(value, &ms) < 0 || ms < k->min || ms > k->max)
                        return why_set(why, whylen,
                                       "%s: expected a duration from %lldms to %lldms such as 500ms or 2s, got '%s'",
                                       k->name, k->min, k->max, value);
                *(int *)base = (int)ms;
                return 0;

        case KEY_LOG_LEVEL:
                level = mcd_log_level_from_name(value);
                if (level < 0)
                        return why_set(why, whylen, "%s: expected err, warning, notice, info or debug, got '%s'",
                                       k->name, value);
                *(int *)base = level;
                return 0;

        case KEY_LISTEN:
                if (*value != '\0' && check_listen(value) < 0)
                        return why_set(why, whylen,
                                       "%s: expected host:port (port 1..65535, IPv6 host in brackets) "
                                       "or nothing to disable, got '%s'",
                                       k->name, value);
                return replace_string((char **)base, value);

        case KEY_SENTINELS:
                return set_sentinels((char **)base, k->name, value, why, whylen);

        case KEY_URL:
                if (*value != '\0' && strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0)
                        return why_set(why, whylen, "%s: expected an http:// or https:// URL or nothing, got '%s'",
                                       k->name, value);
                return replace_string((char **)base, *value ? value : NULL);

        case KEY_OUTPUT_FORMAT:
        case KEY_OUTBOX_COMPRESSION:
                return set_choice((int *)base, k, value, why, whylen);
        }
        return why_set(why, whylen, "%s: unhandled key type", k->name);
}

/* ------------------------------------------------------------- kafka.* */

/* Properties exactly once and order rest on, and the value each must have
 * (NULL: must not be set).  An override is refused with its reason. */
static const struct {
        const char *name, *value, *why;
} KAFKA_PINNED[] = {
        {"enable.idempotence", "true", "without it a retried produce can publish an outcome twice, or out of order"},
        {"acks", "all", "an outcome acknowledged by fewer brokers can be lost with them"},
        {"enable.auto.commit", "false", "the group's offsets are the daemon's copy of Redis's; an automatic "
                                        "commit would put them past Redis's"},
        {"enable.auto.offset.store", "false", "the group's offsets are the daemon's copy of Redis's"},
        {"enable.partition.eof", "true", "the daemon tells where a partition ends by it (re-processing, lag)"},
        {"isolation.level", "read_committed", "events of aborted transactions would be applied"},
        {"transactional.id", NULL, "the daemon's producer is idempotent, not transactional"},
};

/* name's value on conf as librdkafka spells it ("1" and "true" alike). */
static void conf_spelled(rd_kafka_conf_t *conf, const char *name, char *buf, size_t size) {
        if (rd_kafka_conf_get(conf, name, buf, &size) != RD_KAFKA_CONF_OK)
                *buf = '\0';
}

/* Whether name=value keeps what the daemon rests on (KAFKA_PINNED): set on
 * conf (a scratch one), it touches a pinned property if it is one or
 * changes its value there (another name for it: request.required.acks is
 * acks).  If not, why is set.  0 or -EINVAL. */
static int kafka_pinned_check(rd_kafka_conf_t *conf, const char *name, const char *value, char *why,
                              size_t whylen) {
        char before[64], got[64], want[64], alias[96] = "";
        rd_kafka_conf_t *ref = rd_kafka_conf_new(), *fresh = rd_kafka_conf_new();
        int r = 0;

        for (size_t i = 0; ref && fresh && r == 0 && i < ELEMENTSOF(KAFKA_PINNED); i++) {
                const char *pinned = KAFKA_PINNED[i].name;
                conf_spelled(fresh, pinned, before, sizeof(before));
                conf_spelled(conf, pinned, got, sizeof(got));
                if (strcmp(pinned, name) != 0 && strcmp(before, got) == 0)
                        continue;       /* not this one */
                if (!KAFKA_PINNED[i].value) {
                        r = why_set(why, whylen, "kafka.%s: not to be set: %s", name, KAFKA_PINNED[i].why);
                        continue;
                }
                rd_kafka_conf_set(ref, pinned, KAFKA_PINNED[i].value, NULL, 0);
                conf_spelled(ref, pinned, want, sizeof(want));
                if (strcmp(pinned, name) != 0)
                        snprintf(alias, sizeof(alias), " (another name for %s)", pinned);
                if (strcmp(got, want) != 0)
                        r = why_set(why, whylen, "kafka.%s%s: must be %s, not '%s': %s", name, alias,
                                    KAFKA_PINNED[i].value, value, KAFKA_PINNED[i].why);
        }
        if (!ref || !fresh)
                r = -ENOMEM;
        if (ref)
                rd_kafka_conf_destroy(ref);
        if (fresh)
                rd_kafka_conf_destroy(fresh);
        return r;
}

/* Asks librdkafka whether it accepts name=value, on a scratch configuration
 * thrown away afterwards, and checks it against KAFKA_PINNED. */
static int kafka_check(const char *name, const char *value, char *why, size_t whylen) {
        char errstr[512] = "";
        rd_kafka_conf_t *conf;
        int r = 0;

        if (*name == '\0')
                return why_set(why, whylen, "kafka.: expected a librdkafka property name after 'kafka.'");
        conf = rd_kafka_conf_new();
        if (!conf)
                return -ENOMEM;
        if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
                r = why_set(why, whylen, "kafka.%s: librdkafka: %s", name, *errstr ? errstr : "property refused");
        else
                r = kafka_pinned_check(conf, name, value, why, whylen);
        rd_kafka_conf_destroy(conf);
        return r;
}

static struct mcd_kv *kafka_find(const struct mcd_config *cfg, const char *name) {
        for (size_t i = 0; i < cfg->n_kafka; i++)
                if (strcmp(cfg->kafka[i].key, name) == 0)
                        return &cfg->kafka[i];
        return NULL;
}

static int kafka_put(struct mcd_config *cfg, const char *name, const char *value, unsigned line) {
        struct mcd_kv *kv = kafka_find(cfg, name);
        struct mcd_kv *grown;
        char *k, *v;

        if (kv) {
                v = strdup(value);
                if (!v)
                        return -ENOMEM;
                free(kv->value);
                kv->value = v;
                kv->line = line;
                return 0;
        }

        grown = realloc(cfg->kafka, (cfg->n_kafka + 1) * sizeof(*grown));
        if (!grown)
                return -ENOMEM;
        cfg->kafka = grown;
        k = strdup(name);
        v = strdup(value);
        if (!k || !v) {
                free(k);
                free(v);
                return -ENOMEM;
        }
        cfg->kafka[cfg->n_kafka++] = (struct mcd_kv){.key = k, .value = v, .line = line};
        return 0;
}

/* ------------------------------------------------------------- public */

int mcd_config_set(struct mcd_config *cfg, const char *key, const char *value, unsigned line, char *why,
                   size_t whylen) {
        const struct key_def *k;
        int r;

        if (strncmp(key, KAFKA_PREFIX, strlen(KAFKA_PREFIX)) == 0) {
                const char *name = key + strlen(KAFKA_PREFIX);

                r = kafka_check(name, value, why, whylen);
                if (r < 0)
                        goto done;
                r = kafka_put(cfg, name, value, line);
                goto done;
        }

        k = key_find(key);
        if (!k)
                return why_set(why, whylen, "unknown key '%s' (%s for the keys)", key, KEYS_DOC);
        r = set_fixed(cfg, k, value, why, whylen);
done:
        if (r == -ENOMEM)
                why_set(why, whylen, "%s: out of memory", key);
        return r;
}

int mcd_config_defaults(struct mcd_config *cfg) {
        char why[256];
        int r;

        *cfg = (struct mcd_config){0};
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                if (!keys[i].def)
                        continue;
                r = set_fixed(cfg, &keys[i], keys[i].def, why, sizeof(why));
                if (r < 0)
                        goto fail;
        }
        for (size_t i = 0; i < ELEMENTSOF(kafka_defaults); i++) {
                r = kafka_put(cfg, kafka_defaults[i].name, kafka_defaults[i].value, 0);
                if (r < 0)
                        goto fail;
        }
        return 0;
fail:
        mcd_config_clear(cfg);
        return r;
}

void mcd_config_rules(const struct mcd_config *cfg, struct mcd_rules_config *rules) {
        *rules = MCD_RULES_CONFIG_DEFAULT;
        rules->park_grace = cfg->park_grace;
        rules->dedup_window = cfg->dedup_window;
        rules->max_seen_ids = (size_t)cfg->limit_seen_ids;
        rules->max_subscriptions = (size_t)cfg->limit_subscriptions;
        rules->max_parked = (size_t)cfg->limit_parked;
}

const char *mcd_config_kafka(const struct mcd_config *cfg, const char *name) {
        const struct mcd_kv *kv = kafka_find(cfg, name);
        return kv ? kv->value : NULL;
}

/* ------------------------------------------------------------ printing */

/* A librdkafka property that holds a credential: those librdkafka marks
 * sensitive (_RK_SENSITIVE in rdkafka_conf.c, up to 2.x), and any other
 * whose name says password, secret, passphrase or private key.  This
 * function can't fail. */
static bool kafka_secret(const char *name) {
        static const char *const sensitive[] = {
                "ssl.key.location", "ssl.key.pem",   "ssl_key",     "ssl.ca.pem",
                "sasl.username",    "sasl.password", "sasl.oauthbearer.config",
        };

        for (size_t i = 0; i < ELEMENTSOF(sensitive); i++)
                if (strcmp(name, sensitive[i]) == 0)
                        return true;
        return strstr(name, "password") || strstr(name, "secret") || strstr(name, "passphrase") ||
               strstr(name, "private.key");
}

/* A URL with user information (http://user:password@host/): a credential. */
static bool url_has_userinfo(const char *url) {
        const char *host = url ? strstr(url, "://") : NULL;

        return host && memchr(host + 3, '@', strcspn(host + 3, "/?#"));
}

/* k's value in cfg as the file would write it ("" when unset); buf holds
 * numbers and durations.  This function can't fail. */
static const char *key_text(const struct mcd_config *cfg, const struct key_def *k, char *buf, size_t len) {
        const char *base = (const char *)cfg + k->offset;
        const char *v = NULL;

        switch (k->type) {
        case KEY_STRING:
        case KEY_TOPIC:
        case KEY_SECRET:
        case KEY_LISTEN:
        case KEY_SENTINELS:
        case KEY_URL:
                v = *(char *const *)base;
                break;
        case KEY_INT:
                snprintf(buf, len, "%d", *(const int *)base);
                v = buf;
                break;
        case KEY_DURATION:
                v = duration_text(*(const mcd_time_t *)base, buf, len);
                break;
        case KEY_DURATION_INT:
                v = duration_text(*(const int *)base, buf, len);
                break;
        case KEY_LOG_LEVEL:
                v = mcd_log_level_name(*(const int *)base);
                break;
        case KEY_OUTPUT_FORMAT:
        case KEY_OUTBOX_COMPRESSION:
                v = choice_name(k, *(const int *)base);
                break;
        }
        return v ? v : "";
}

/* One line "key = value"; a credential that is set is a comment instead. */
static void print_line(FILE *out, const char *prefix, const char *key, const char *value, bool secret) {
        if (secret && *value)
                fprintf(out, "# %s%s = (set; not printed)\n", prefix, key);
        else
                fprintf(out, "%s%s =%s%s\n", prefix, key, *value ? " " : "", value);
}

void mcd_config_print(const struct mcd_config *cfg, FILE *out) {
        char buf[32];

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const char *v = key_text(cfg, &keys[i], buf, sizeof(buf));
                bool secret = keys[i].type == KEY_SECRET || (keys[i].type == KEY_URL && url_has_userinfo(v));

                print_line(out, "", keys[i].name, v, secret);
        }
        for (size_t i = 0; i < cfg->n_kafka; i++)
                print_line(out, KAFKA_PREFIX, cfg->kafka[i].key, cfg->kafka[i].value,
                           kafka_secret(cfg->kafka[i].key));
}

void mcd_config_clear(struct mcd_config *cfg) {
        for (size_t i = 0; i < cfg->n_kafka; i++) {
                free(cfg->kafka[i].key);
                free(cfg->kafka[i].value);
        }
        free(cfg->kafka);
        free(cfg->path);
        free(cfg->topic_relationships);
        free(cfg->topic_subscriptions);
        free(cfg->topic_outcomes);
        free(cfg->topic_dlq);
        free(cfg->topic_changelog);
        free(cfg->redis_host);
        free(cfg->redis_password);
        free(cfg->redis_sentinels);
        free(cfg->redis_master_name);
        free(cfg->redis_key_prefix);
        free(cfg->metrics_listen);
        free(cfg->schemas_dir);
        free(cfg->registry_url);
        free(cfg->registry_basic_auth);
        *cfg = (struct mcd_config){0};
}

/* ------------------------------------------------------------- loading */

/* The keys this file has set so far, to name the first line on a duplicate. */
struct seen {
        struct mcd_kv *v;      /* key and line; value unused */
        size_t n;
};

static unsigned seen_line(const struct seen *s, const char *key) {
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->v[i].key, key) == 0)
                        return s->v[i].line;
        return 0;
}

static int seen_add(struct seen *s, const char *key, unsigned line) {
        struct mcd_kv *grown = realloc(s->v, (s->n + 1) * sizeof(*grown));
        char *k;

        if (!grown)
                return -ENOMEM;
        s->v = grown;
        k = strdup(key);
        if (!k)
                return -ENOMEM;
        s->v[s->n++] = (struct mcd_kv){.key = k, .line = line};
        return 0;
}

static void seen_clear(struct seen *s) {
        for (size_t i = 0; i < s->n; i++)
                free(s->v[i].key);
        free(s->v);
        *s = (struct seen){0};
}

static char *trim(char *s) {
        char *end;

        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n' || *s == '\f' || *s == '\v')
                s++;
        end = s + strlen(s);
        while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n' ||
                           end[-1] == '\f' || end[-1] == '\v'))
                end--;
        *end = '\0';
        return s;
}

struct loader {
        const char *path;
        FILE *errors;
        unsigned n_errors;
        struct seen seen;
};

static void report(struct loader *l, unsigned line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void report(struct loader *l, unsigned line, const char *fmt, ...) {
        va_list ap;

        l->n_errors++;
        if (!l->errors)
                return;
        if (line > 0)
                fprintf(l->errors, "%s:%u: ", l->path, line);
        else
                fprintf(l->errors, "%s: ", l->path);
        va_start(ap, fmt);
        vfprintf(l->errors, fmt, ap);
        va_end(ap);
        fputc('\n', l->errors);
}

/* One line; 0 whether or not it was valid (bad lines are reported), or
 * -ENOMEM. */
static int load_line(struct loader *l, struct mcd_config *cfg, char *text, unsigned line) {
        char why[1024];
        char *hash, *eq, *key, *value;
        unsigned first;
        int r;

        hash = strchr(text, '#');
        if (hash)
                *hash = '\0';
        text = trim(text);
        if (*text == '\0')
                return 0;

        eq = strchr(text, '=');
        if (!eq) {
                report(l, line, "expected 'key = value', got '%s'", text);
                return 0;
        }
        *eq = '\0';
        key = trim(text);
        value = trim(eq + 1);
        if (*key == '\0') {
                report(l, line, "expected a key before '='");
                return 0;
        }

        first = seen_line(&l->seen, key);
        if (first > 0) {
                report(l, line, "%s: duplicate key, already set on line %u", key, first);
                return 0;
        }

        r = mcd_config_set(cfg, key, value, line, why, sizeof(why));
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                report(l, line, "%s", why);
                return 0;
        }
        return seen_add(&l->seen, key, line);
}

static int load_stream(struct loader *l, struct mcd_config *cfg, FILE *f) {
        char *buf = NULL;
        size_t size = 0;
        unsigned line = 0;
        ssize_t n;
        int r = 0;

        errno = 0;
        while ((n = getline(&buf, &size, f)) >= 0) {
                line++;
                if ((size_t)n != strlen(buf)) {
                        report(l, line, "line contains a NUL byte");
                        continue;
                }
                r = load_line(l, cfg, buf, line);
                if (r < 0)
                        break;
                errno = 0;
        }
        if (r == 0 && ferror(f)) {
                r = errno > 0 ? -errno : -EIO;
                report(l, 0, "read error: %s", strerror(-r));
        }
        free(buf);
        return r;
}

/* The five topics are five: a dead-letter or outcome topic that is also an
 * input would feed the daemon its own messages (each bad one dead-lettered
 * again, for ever), and one input topic named twice would read every event
 * on both sides.  A clash is reported on the later key's line in the file
 * (the earlier's when only it is set there).  This function can't fail. */
static void check_topics_distinct(struct loader *l, const struct mcd_config *cfg) {
        const struct {
                const char *key, *name;
        } t[] = {
                {"topic.relationships", cfg->topic_relationships}, {"topic.subscriptions", cfg->topic_subscriptions},
                {"topic.outcomes", cfg->topic_outcomes},           {"topic.dlq", cfg->topic_dlq},
                {"topic.changelog", cfg->topic_changelog},
        };

        for (size_t j = 1; j < ELEMENTSOF(t); j++)
                for (size_t i = 0; i < j; i++) {
                        unsigned li = seen_line(&l->seen, t[i].key), lj = seen_line(&l->seen, t[j].key);
                        if (strcmp(t[i].name, t[j].name) != 0)
                                continue;
                        report(l, lj > li ? lj : li, "%s: '%s' is also %s; the five topics must be distinct",
                               lj > li ? t[j].key : t[i].key, t[j].name, lj > li ? t[i].key : t[j].key);
                        break;
                }
}

/* The checks across keys, once the whole file is read.  dedup_window must be
 * at least park_grace, so that the id of a parked event is remembered for as
 * long as the event can stay parked.  A violation is reported on
 * dedup_window's line when the file sets it, else on park_grace's. */
static void check_across(struct loader *l, const struct mcd_config *cfg) {
        char window[24], grace[24];
        unsigned line = seen_line(&l->seen, "dedup_window");

        check_topics_distinct(l, cfg);
        if (cfg->output_format == MCD_OUTPUT_CONFLUENT && !cfg->registry_url)
                report(l, seen_line(&l->seen, "output.format"),
                       "output.format: confluent needs schema_registry.url, where the outcome schema is registered");
        if (cfg->dedup_window >= cfg->park_grace)
                return;
        duration_text(cfg->dedup_window, window, sizeof(window));
        duration_text(cfg->park_grace, grace, sizeof(grace));
        if (line > 0)
                report(l, line, "dedup_window: %s is shorter than park_grace (%s); it must be at least park_grace",
                       window, grace);
        else
                report(l, seen_line(&l->seen, "park_grace"),
                       "park_grace: %s is longer than dedup_window (%s); dedup_window must be at least park_grace",
                       grace, window);
}

int mcd_config_load(const char *path, struct mcd_config *cfg, FILE *errors, unsigned *n_errors) {
        struct loader l = {.path = path, .errors = errors};
        FILE *f;
        int r;

        f = fopen(path, "re");
        if (!f) {
                r = -errno;
                report(&l, 0, "cannot open: %s", strerror(-r));
                goto done;
        }
        r = replace_string(&cfg->path, path);
        if (r == 0)
                r = load_stream(&l, cfg, f);
        if (r == 0)
                check_across(&l, cfg);
        fclose(f);
        seen_clear(&l.seen);
        if (r == -ENOMEM)
                report(&l, 0, "out of memory");
        else if (r == 0 && l.n_errors > 0)
                r = -EINVAL;
done:
        if (n_errors)
                *n_errors = l.n_errors;
        return r;
}
