/* state_codec.c -- a customer's state in its stored binary form.
 *
 * DESIGN
 * The layout, after the four bytes "MCS" 0x02:
 *
 *   customer_id str, flags byte (1 has_cloud, 2 has_forgot), cloud byte,
 *   state byte, partner_id nstr, indirect_reseller_id nstr;
 *   n_subs, then per subscription: subscription_id str, offer_name nstr,
 *     billing, channel, state bytes, seller_partner_id nstr,
 *     has_term_end byte [term_end long], timer_outcomes long;
 *   n_parked, then per parked event: deadline long, and the event: type
 *     byte, event_id str, occurred_at long, cloud byte, then its optional
 *     fields as nstr / bytes / longs, services as a count and strs;
 *   [forgot_at long when has_forgot], n_seen, then per seen id: its hash as
 *     8 little-endian bytes and its occurred_at as a long, the difference
 *     from the previous one's.
 *
 * long: Avro's zig-zag varint; str: a long length then the bytes; nstr: 0
 * for null, else length + 1 then the bytes.  A parked event's customer_id
 * is the customer's own and is not written.  The reader checks every length
 * against what is left, every enum against its range, and that nothing is
 * left over: the bytes come from Redis or Kafka and are not trusted. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"
#include "daemon/state_codec.h"
#include "daemon/state_json.h"
#include "daemon/strbuf.h"

#define HEADER_LEN 4

bool mcd_state_is_binary(const char *buf, size_t len) {
        return buf && len >= HEADER_LEN && memcmp(buf, MCD_STATE_MAGIC, 3) == 0 &&
               (unsigned char)buf[3] == MCD_STATE_VERSION;
}

/* ----------------------------------------------------------------- write */

static void put_byte(struct mcd_strbuf *b, unsigned v) {
        char c = (char)v;
        mcd_sb_putn(b, &c, 1);
}

static void put_long(struct mcd_strbuf *b, int64_t v) {
        uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
        char buf[10];
        size_t n = 0;

        while (z >= 0x80) {
                buf[n++] = (char)((z & 0x7f) | 0x80);
                z >>= 7;
        }
        buf[n++] = (char)z;
        mcd_sb_putn(b, buf, n);
}

static void put_str(struct mcd_strbuf *b, const char *s) {
        size_t n = strlen(s);
        put_long(b, (int64_t)n);
        mcd_sb_putn(b, s, n);
}

static void put_nstr(struct mcd_strbuf *b, const char *s) {
        size_t n = s ? strlen(s) : 0;
        put_long(b, s ? (int64_t)n + 1 : 0);
        mcd_sb_putn(b, s ? s : "", n);
}

static void put_sub(struct mcd_strbuf *b, const struct mcd_subscription *s) {
        put_str(b, s->subscription_id);
        put_nstr(b, s->offer_name);
        put_byte(b, s->billing);
        put_byte(b, s->channel);
        put_byte(b, s->state);
        put_nstr(b, s->seller_partner_id);
        put_byte(b, s->has_term_end);
        if (s->has_term_end)
                put_long(b, s->term_end);
        put_long(b, s->timer_outcomes);
}

static void put_event(struct mcd_strbuf *b, const struct mcd_event *ev) {
        put_byte(b, ev->type);
        put_str(b, ev->event_id);
        put_long(b, ev->occurred_at);
        put_byte(b, ev->cloud);
        put_nstr(b, ev->partner_id);
        put_nstr(b, ev->indirect_reseller_id);
        put_byte(b, ev->customer_is_csp_partner);
        put_nstr(b, ev->reason);
        put_nstr(b, ev->subscription_id);
        put_nstr(b, ev->offer_name);
        put_byte(b, ev->billing);
        put_byte(b, ev->channel);
        put_nstr(b, ev->seller_partner_id);
        put_byte(b, ev->has_term_end);
        put_long(b, ev->term_end);
        put_nstr(b, ev->target_partner_id);
        put_nstr(b, ev->csp_subscription_id);
        put_byte(b, ev->scope);
        put_long(b, (int64_t)ev->n_services);
        for (size_t i = 0; i < ev->n_services; i++)
                put_str(b, ev->services[i]);
}

static void put_seen(struct mcd_strbuf *b, const struct mcd_seen *s) {
        const struct mcd_seen_id *ids = mcd_seen_ids(s);
        uint64_t prev = 0;

        if (s->has_forgot)
                put_long(b, s->forgot_at);
        put_long(b, (int64_t)mcd_seen_count(s));
        for (size_t i = 0; i < mcd_seen_count(s); i++) {
                char h[8];
                for (int k = 0; k < 8; k++)
                        h[k] = (char)(ids[i].hash >> (8 * k));
                mcd_sb_putn(b, h, 8);
                put_long(b, (int64_t)((uint64_t)ids[i].occurred_at - prev));
                prev = (uint64_t)ids[i].occurred_at;
        }
}

int mcd_state_encode(const struct mcd_customer *c, char **buf, size_t *len) {
        struct mcd_strbuf b = {0};

        mcd_sb_putn(&b, MCD_STATE_MAGIC, 3);
        put_byte(&b, MCD_STATE_VERSION);
        put_str(&b, c->customer_id);
        put_byte(&b, (c->has_cloud ? 1u : 0u) | (c->seen.has_forgot ? 2u : 0u));
        put_byte(&b, c->cloud);
        put_byte(&b, c->state);
        put_nstr(&b, c->partner_id);
        put_nstr(&b, c->indirect_reseller_id);
        put_long(&b, (int64_t)c->n_subs);
        for (size_t i = 0; i < c->n_subs; i++)
                put_sub(&b, &c->subs[i]);
        put_long(&b, (int64_t)c->n_parked);
        for (size_t i = 0; i < c->n_parked; i++) {
                put_long(&b, c->parked[i].deadline);
                put_event(&b, &c->parked[i].event);
        }
        put_seen(&b, &c->seen);
        *len = b.len;
        *buf = mcd_sb_take(&b);
        return *buf ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------------ read */

struct reader {
        const unsigned char *p, *end;
        const char *what;            /* the field being read, for why */
        int err;                     /* first error: -EINVAL or -ENOMEM */
};

static void bad(struct reader *r, const char *what) {
        if (!r->err) {
                r->err = -EINVAL;
                r->what = what;
        }
}

static unsigned get_byte(struct reader *r, const char *what, unsigned limit) {
        unsigned v;

        if (r->err || r->p >= r->end) {
                bad(r, what);
                return 0;
        }
        v = *r->p++;
        if (v >= limit) {
                bad(r, what);
                return 0;
        }
        return v;
}

static int64_t get_long(struct reader *r, const char *what) {
        uint64_t z = 0;

        for (unsigned shift = 0; !r->err; shift += 7) {
                if (r->p >= r->end || shift > 63) {
                        bad(r, what);
                        break;
                }
                z |= (uint64_t)(*r->p & 0x7f) << shift;
                if (!(*r->p++ & 0x80))
                        return (int64_t)((z >> 1) ^ (~(z & 1) + 1));
        }
        return 0;
}

/* A time within [lo, hi]: the rules do arithmetic on it (a horizon, a
 * window), which a corrupt value far out of range would overflow. */
static int64_t get_time_in(struct reader *r, const char *what, int64_t lo, int64_t hi) {
        int64_t t = get_long(r, what);

        if (!r->err && (t < lo || t > hi))
                bad(r, what);
        return r->err ? 0 : t;
}

/* A time as an event carries it: years 0000 to 9999 (model.h). */
static int64_t get_time(struct reader *r, const char *what) {
        return get_time_in(r, what, MCD_TIME_MIN, MCD_TIME_MAX);
}

/* A count of items that each take at least min_size bytes of what is left. */
static size_t get_count(struct reader *r, const char *what, size_t min_size) {
        int64_t n = get_long(r, what);

        if (n < 0 || (uint64_t)n > (size_t)(r->end - r->p) / min_size) {
                bad(r, what);
                return 0;
        }
        return (size_t)n;
}

/* True when s[0..n) is well-formed UTF-8 (RFC 3629: no overlong form, no
 * surrogate, nothing past U+10FFFF), as jansson requires of every string it
 * writes: a state read here is printed as JSON (state, whatif). */
static bool utf8_valid(const unsigned char *s, size_t n) {
        for (size_t i = 0; i < n;) {
                unsigned c = s[i], len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                                                     : (c & 0xf8) == 0xf0 ? 4 : 0;
                uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
                if (len == 0 || i + len > n)
                        return false;
                for (unsigned k = 1; k < len; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (s[i + k] & 0x3f);
                }
                if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
                    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += len;
        }
        return true;
}

/* A string of n bytes of UTF-8 with no NUL among them; NULL after an
 * error. */
static char *get_bytes(struct reader *r, int64_t n, const char *what) {
        char *s;

        if (r->err)
                return NULL;
        if (n < 0 || n > r->end - r->p || memchr(r->p, '\0', (size_t)n) || !utf8_valid(r->p, (size_t)n)) {
                bad(r, what);
                return NULL;
        }
        s = strndup((const char *)r->p, (size_t)n);
        if (!s) {
                r->err = -ENOMEM;
                return NULL;
        }
        r->p += n;
        return s;
}

static char *get_str(struct reader *r, const char *what) {
        return get_bytes(r, get_long(r, what), what);
}

static char *get_nstr(struct reader *r, const char *what) {
        int64_t n = get_long(r, what);

        if (n < 0)
                bad(r, what);
        return n <= 0 || r->err ? NULL : get_bytes(r, n - 1, what);
}

static void get_sub(struct reader *r, struct mcd_subscription *s) {
        int64_t t;

        s->subscription_id = get_str(r, "subscription_id");
        s->offer_name = get_nstr(r, "offer_name");
        s->billing = get_byte(r, "billing", MCD_BILLING__COUNT);
        s->channel = get_byte(r, "channel", MCD_CHANNEL__COUNT);
        s->state = get_byte(r, "subscription state", MCD_SS__COUNT);
        s->seller_partner_id = get_nstr(r, "seller_partner_id");
        s->has_term_end = get_byte(r, "has_term_end", 2);
        s->term_end = s->has_term_end ? get_time(r, "term_end") : 0;
        t = get_long(r, "timer_outcomes");
        if (t < 0 || t > UINT32_MAX)
                bad(r, "timer_outcomes");
        s->timer_outcomes = (uint32_t)t;
}

static void get_event(struct reader *r, struct mcd_event *ev) {
        ev->type = get_byte(r, "event type", MCD_EV__COUNT);
        ev->event_id = get_str(r, "event_id");
        ev->occurred_at = get_long(r, "occurred_at");
        ev->cloud = get_byte(r, "cloud", MCD_CLOUD__COUNT);
        ev->partner_id = get_nstr(r, "partner_id");
        ev->indirect_reseller_id = get_nstr(r, "indirect_reseller_id");
        ev->customer_is_csp_partner = get_byte(r, "customer_is_csp_partner", 2);
        ev->reason = get_nstr(r, "reason");
        ev->subscription_id = get_nstr(r, "subscription_id");
        ev->offer_name = get_nstr(r, "offer_name");
        ev->billing = get_byte(r, "billing", MCD_BILLING__COUNT);
        ev->channel = get_byte(r, "channel", MCD_CHANNEL__COUNT);
        ev->seller_partner_id = get_nstr(r, "seller_partner_id");
        ev->has_term_end = get_byte(r, "has_term_end", 2);
        ev->term_end = get_long(r, "term_end");
        ev->target_partner_id = get_nstr(r, "target_partner_id");
        ev->csp_subscription_id = get_nstr(r, "csp_subscription_id");
        ev->scope = get_byte(r, "scope", MCD_SCOPE__COUNT);
        ev->n_services = get_count(r, "services", 1);
        if (ev->n_services && !r->err && !(ev->services = calloc(ev->n_services, sizeof(char *))))
                r->err = -ENOMEM;
        for (size_t i = 0; i < ev->n_services && !r->err; i++)
                ev->services[i] = get_str(r, "services");
}

static void read_subs(struct reader *r, struct mcd_customer *c) {
        size_t n = get_count(r, "subscriptions", 6);

        for (size_t i = 0; i < n && !r->err; i++) {
                struct mcd_subscription s = {0};
                get_sub(r, &s);
                if (!r->err && mcd_customer_find_sub(c, s.subscription_id))
                        bad(r, "subscriptions (a duplicate)");
                if (!r->err && mcd_customer_add_sub(c, &s) < 0)
                        r->err = -ENOMEM;
                free(s.subscription_id);
                free(s.offer_name);
                free(s.seller_partner_id);
        }
}

static void read_parked(struct reader *r, struct mcd_customer *c) {
        size_t n = get_count(r, "parked", 20);

        for (size_t i = 0; i < n && !r->err; i++) {
                struct mcd_event ev = {0};
                const char *why;
                int64_t deadline = get_time_in(r, "deadline", MCD_TIME_MIN, MCD_TIME_MAX + MCD_DEDUP_WINDOW_MAX);
                get_event(r, &ev);
                ev.customer_id = r->err ? NULL : strdup(c->customer_id);
                if (!r->err && !ev.customer_id)
                        r->err = -ENOMEM;
                if (!r->err && mcd_event_validate(&ev, &why) < 0)
                        bad(r, "parked event");         /* the fields its type requires */
                if (!r->err && mcd_customer_add_parked(c, &ev, deadline) < 0)
                        r->err = -ENOMEM;
                mcd_event_clear(&ev);
        }
}

static void read_seen(struct reader *r, struct mcd_customer *c, bool has_forgot) {
        uint64_t t = 0;
        size_t n;

        c->seen.has_forgot = has_forgot;
        if (has_forgot)
                c->seen.forgot_at = get_time(r, "forgot_at");
        n = get_count(r, "seen", 9);
        for (size_t i = 0; i < n && !r->err; i++) {
                uint64_t h = 0;
                if (r->end - r->p < 8) {
                        bad(r, "seen");
                        break;
                }
                for (int k = 0; k < 8; k++)
                        h |= (uint64_t)r->p[k] << (8 * k);
                r->p += 8;
                t += (uint64_t)get_long(r, "seen");
                if (h == 0)
                        bad(r, "seen (a zero hash)");
                else if ((int64_t)t != MCD_SEEN_LEGACY && !mcd_time_in_range((int64_t)t))
                        bad(r, "seen (a time out of range)");
                else if (!r->err && mcd_seen_add(&c->seen, h, (int64_t)t) < 0)
                        r->err = -ENOMEM;
        }
}

static void read_customer(struct reader *r, struct mcd_customer *c) {
        char *id = get_str(r, "customer_id");
        unsigned flags;

        if (!r->err && mcd_customer_init(c, id) < 0)
                r->err = -ENOMEM;
        free(id);
        flags = get_byte(r, "flags", 4);
        c->has_cloud = flags & 1;
        c->cloud = get_byte(r, "cloud", MCD_CLOUD__COUNT);
        c->state = get_byte(r, "state", MCD_CS__COUNT);
        c->partner_id = get_nstr(r, "partner_id");
        c->indirect_reseller_id = get_nstr(r, "indirect_reseller_id");
        read_subs(r, c);
        read_parked(r, c);
        read_seen(r, c, flags & 2);
        if (!r->err && r->p != r->end)
                bad(r, "the end (bytes left over)");
}

static int decode_binary(const char *buf, size_t len, struct mcd_customer *c, char *why, size_t whylen) {
        struct reader r = {.p = (const unsigned char *)buf + HEADER_LEN, .end = (const unsigned char *)buf + len};

        read_customer(&r, c);
        if (r.err == -EINVAL && why && whylen)
                snprintf(why, whylen, "binary state: %s is malformed", r.what);
        else if (r.err == -ENOMEM && why && whylen)
                snprintf(why, whylen, "out of memory");
        if (r.err < 0)
                mcd_customer_clear(c);
        return r.err;
}

int mcd_state_decode(const char *buf, size_t len, struct mcd_customer *c, char *why, size_t whylen) {
        memset(c, 0, sizeof(*c));
        if (mcd_state_is_binary(buf, len))
                return decode_binary(buf, len, c, why, whylen);
        return mcd_state_from_json(buf, len, c, why, whylen);
}

/* ------------------------------------------------------- changelog record */

int mcd_state_record(int32_t partition, const char *state, size_t len, char **out, size_t *out_len) {
        uint32_t p = (uint32_t)partition;
        char *buf = malloc(MCD_RECORD_HEADER_LEN + len);

        if (!buf)
                return -ENOMEM;
        memcpy(buf, MCD_RECORD_MAGIC, 3);
        buf[3] = MCD_STATE_VERSION;
        for (int k = 0; k < 4; k++)
                buf[4 + k] = (char)(p >> (24 - 8 * k));
        memcpy(buf + MCD_RECORD_HEADER_LEN, state, len);
        *out = buf;
        *out_len = MCD_RECORD_HEADER_LEN + len;
        return 0;
}

int32_t mcd_state_record_partition(const char *buf, size_t len, const char **state, size_t *state_len) {
        const unsigned char *u = (const unsigned char *)buf;
        uint32_t p = 0;

        if (!buf || len < MCD_RECORD_HEADER_LEN || memcmp(buf, MCD_RECORD_MAGIC, 3) != 0 ||
            u[3] != MCD_STATE_VERSION)
                return -1;
        for (int k = 0; k < 4; k++)
                p = p << 8 | u[4 + k];
        if (p > INT32_MAX)
                return -1;
        *state = buf + MCD_RECORD_HEADER_LEN;
        *state_len = len - MCD_RECORD_HEADER_LEN;
        return (int32_t)p;
}
