/* replay.c -- `multichanneld replay`: the rules engine driven by JSON lines,
 * with every customer's state in memory.  Deterministic: the same input gives
 * the same output byte for byte (no wall clock, no hash-order iteration). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/jsonl.h"
#include "daemon/replay.h"
#include "daemon/state_json.h"
#include "daemon/strmap.h"

/* Customers, in a map for lookup and an array in first-seen order for the
 * due scan; each entry caches its next due item. */
struct entry {
        struct mcd_customer customer;
        bool has_due;
        mcd_time_t due;
        const char *due_sub;
};

struct replay {
        struct entry **entries;      /* first-seen order */
        size_t n, cap;
        struct mcd_strmap by_id;
        const struct mcd_replay_options *opt;
        struct mcd_outcomes out;
        FILE *outf;
};

/* Adds a customer entry holding c (taken over: c is left empty). */
static int add_entry(struct replay *r, struct mcd_customer *c, struct entry **out) {
        struct entry *e;
        int ret;

        if (r->n == r->cap) {
                size_t cap = r->cap ? r->cap * 2 : 256;
                struct entry **v = realloc(r->entries, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                r->entries = v;
                r->cap = cap;
        }
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->customer = *c;
        memset(c, 0, sizeof(*c));
        ret = mcd_strmap_put(&r->by_id, e->customer.customer_id, e);
        if (ret < 0) {
                mcd_customer_clear(&e->customer);
                free(e);
                return ret;
        }
        r->entries[r->n++] = e;
        *out = e;
        return 0;
}

static int lookup(struct replay *r, const char *customer_id, struct entry **out) {
        struct mcd_customer c;
        int ret;

        *out = mcd_strmap_get(&r->by_id, customer_id);
        if (*out)
                return 0;
        if ((ret = mcd_customer_init(&c, customer_id)) < 0)
                return ret;
        ret = add_entry(r, &c, out);
        mcd_customer_clear(&c);
        return ret;
}

static void refresh_due(struct entry *e) {
        e->has_due = mcd_next_due(&e->customer, &e->due, &e->due_sub);
}

/* Writes and forgets the outcomes gathered so far. */
static int flush_outcomes(struct replay *r) {
        for (size_t i = 0; i < r->out.n; i++) {
                char *line = mcd_jsonl_format_outcome(&r->out.v[i]);
                if (!line)
                        return -ENOMEM;
                fputs(line, r->outf);
                fputc('\n', r->outf);
                free(line);
        }
        mcd_outcomes_clear(&r->out);
        return ferror(r->outf) ? -EIO : 0;
}

/* Is a due before b in the contract's order (due time, customer id,
 * subscription id)? */
static bool due_before(const struct entry *a, const struct entry *b) {
        int c;
        if (a->due != b->due)
                return a->due < b->due;
        c = strcmp(a->customer.customer_id, b->customer.customer_id);
        if (c != 0)
                return c < 0;
        return strcmp(a->due_sub ? a->due_sub : "", b->due_sub ? b->due_sub : "") < 0;
}

/* Fires every timer and park deadline due at or before `now`, earliest
 * first. */
static int fire_due(struct replay *r, mcd_time_t now) {
        for (;;) {
                struct entry *best = NULL;
                int ret;

                for (size_t i = 0; i < r->n; i++) {
                        struct entry *e = r->entries[i];
                        if (e->has_due && e->due <= now && (!best || due_before(e, best)))
                                best = e;
                }
                if (!best)
                        return 0;
                ret = mcd_fire_next_due(&best->customer, now, &r->opt->rules, &r->out);
                if (ret < 0)
                        return ret;
                refresh_due(best);
                if ((ret = flush_outcomes(r)) < 0)
                        return ret;
        }
}

static int apply(struct replay *r, const struct mcd_event *ev, mcd_time_t now) {
        struct entry *e;
        int ret;

        if ((ret = lookup(r, ev->customer_id, &e)) < 0)
                return ret;
        if ((ret = mcd_apply_event(&e->customer, ev, now, &r->opt->rules, &r->out)) < 0)
                return ret;
        refresh_due(e);
        return flush_outcomes(r);
}

static int cmp_entry_id(const void *a, const void *b) {
        const struct entry *const *x = a, *const *y = b;
        return strcmp((*x)->customer.customer_id, (*y)->customer.customer_id);
}

/* Every customer's final state, as Redis would hold it, sorted by id. */
static int write_states(struct replay *r, FILE *f) {
        if (r->n > 0)
                qsort(r->entries, r->n, sizeof(*r->entries), cmp_entry_id);
        for (size_t i = 0; i < r->n; i++) {
                int ret = mcd_state_print(f, &r->entries[i]->customer, r->opt->state_pretty);
                if (ret < 0)
                        return ret;
        }
        return fflush(f) == 0 ? 0 : -EIO;
}

static void replay_free(struct replay *r) {
        for (size_t i = 0; i < r->n; i++) {
                mcd_customer_clear(&r->entries[i]->customer);
                free(r->entries[i]);
        }
        free(r->entries);
        mcd_strmap_clear(&r->by_id);
        mcd_outcomes_clear(&r->out);
}

int mcd_replay(FILE *in, FILE *out, FILE *err, const struct mcd_replay_options *opt) {
        struct replay r = {.opt = opt, .outf = out};
        char *line = NULL, why[512];
        size_t cap = 0, lineno = 0;
        mcd_time_t clock = INT64_MIN;
        bool bad = false, too_long;
        long len;
        int ret = 0;

        mcd_outcomes_init(&r.out);
        if (opt->seed) {
                struct entry *e;
                if ((ret = add_entry(&r, opt->seed, &e)) < 0)
                        goto out;
                refresh_due(e);
        }
        while ((len = mcd_jsonl_getline(&line, &cap, in, &too_long)) > 0) {
                struct mcd_event ev;

                lineno++;
                if (too_long) {
                        fprintf(err, "line %zu: longer than %d bytes; skipped\n", lineno, MCD_JSONL_LINE_MAX);
                        bad = true;
                        continue;
                }
                if (mcd_jsonl_blank(line, (size_t)len))
                        continue;
                if (mcd_jsonl_parse_event(line, (size_t)len, &ev, why, sizeof(why)) < 0) {
                        fprintf(err, "line %zu: %s\n", lineno, why);
                        bad = true;
                        continue;
                }
                if (opt->only_customer && strcmp(ev.customer_id, opt->only_customer) != 0) {
                        fprintf(err, "line %zu: customer_id \"%s\" is not the customer asked about (\"%s\")\n",
                                lineno, ev.customer_id, opt->only_customer);
                        mcd_event_clear(&ev);
                        bad = true;
                        continue;
                }
                if (ev.occurred_at > clock)
                        clock = ev.occurred_at;
                ret = fire_due(&r, clock);
                if (ret >= 0)
                        ret = apply(&r, &ev, clock);
                mcd_event_clear(&ev);
                if (ret < 0)
                        goto out;
        }
        if (len < 0 || ferror(in)) {
                ret = len < 0 ? (int)len : errno > 0 ? -errno : -EIO;
                fprintf(err, "line %zu: cannot read: %s\n", lineno + 1, strerror(-ret));
                goto out;
        }
        if (opt->has_now)
                ret = fire_due(&r, opt->now > clock ? opt->now : clock);
        if (ret >= 0 && opt->state_out)
                ret = write_states(&r, opt->state_out);
out:
        if (opt->seed)
                mcd_customer_clear(opt->seed);
        free(line);
        replay_free(&r);
        if (fflush(out) != 0 && ret >= 0)
                ret = -EIO;
        if (ret < 0)
                return ret;
        return bad ? 1 : 0;
}
