/* stats.c -- the worker's figures (stats.h): reason indexes and the batch
 * latency histogram.  Pure functions over plain counters; the worker thread
 * owns the struct, metrics.c serves a copy. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "daemon/stats.h"

static const char *const rejection_reasons[MCD_N_REJECTION_REASONS] = {MCD_REJECTION_REASONS};
static const char *const dead_letter_reasons[MCD_N_DEAD_LETTER_REASONS] = {MCD_DEAD_LETTER_REASONS};
static const int64_t latency_bounds_us[MCD_N_LATENCY_BUCKETS - 1] = {MCD_LATENCY_BUCKETS_US};

/* The lists must match their counts: one more name would not compile (excess
 * initializer), one fewer would leave a NULL at the end. */
_Static_assert(sizeof((const char *[]){MCD_REJECTION_REASONS}) / sizeof(const char *) == MCD_N_REJECTION_REASONS,
               "MCD_N_REJECTION_REASONS does not match MCD_REJECTION_REASONS");
_Static_assert(sizeof((const char *[]){MCD_DEAD_LETTER_REASONS}) / sizeof(const char *) ==
                       MCD_N_DEAD_LETTER_REASONS,
               "MCD_N_DEAD_LETTER_REASONS does not match MCD_DEAD_LETTER_REASONS");
_Static_assert(sizeof((const int64_t[]){MCD_LATENCY_BUCKETS_US}) / sizeof(int64_t) == MCD_N_LATENCY_BUCKETS - 1,
               "MCD_N_LATENCY_BUCKETS must be the bounds plus +Inf");

static int index_of(const char *const *names, size_t n, const char *s) {
        if (!s)
                return -1;
        for (size_t i = 0; i < n; i++)
                if (strcmp(names[i], s) == 0)
                        return (int)i;
        return -1;
}

int mcd_stats_rejection_index(const char *reason) {
        return index_of(rejection_reasons, MCD_N_REJECTION_REASONS, reason);
}

int mcd_stats_dead_letter_index(const char *code) {
        return index_of(dead_letter_reasons, MCD_N_DEAD_LETTER_REASONS, code);
}

/* One batch's duration: counted in the first bucket whose upper bound holds
 * it (Prometheus' le, "less than or equal"), the last bucket being +Inf.  A
 * negative duration (a clock step) counts as 0. */
void mcd_stats_observe_latency(struct mcd_stats *s, int64_t us) {
        size_t i;

        if (us < 0)
                us = 0;
        for (i = 0; i < MCD_N_LATENCY_BUCKETS - 1; i++)
                if (us <= latency_bounds_us[i])
                        break;
        s->latency_buckets[i]++;
        s->latency_sum_s += (double)us / 1e6;
}

static void add_n(uint64_t *st, const uint64_t *a, const uint64_t *b, size_t n, int sign) {
        for (size_t i = 0; i < n; i++) {
                uint64_t d = a[i] - (b ? b[i] : 0);
                st[i] = sign < 0 ? st[i] - d : st[i] + d;
        }
}

void mcd_stats_add_counts(struct mcd_stats *st, const struct mcd_stats *a, const struct mcd_stats *b, int sign) {
        for (size_t t = 0; t < 2; t++)
                add_n(st->events[t], a->events[t], b ? b->events[t] : NULL, MCD_EV__COUNT, sign);
        add_n(st->outcomes, a->outcomes, b ? b->outcomes : NULL, MCD_OUT__COUNT, sign);
        add_n(st->rejections, a->rejections, b ? b->rejections : NULL, MCD_N_REJECTION_REASONS, sign);
        add_n(st->dead_letters, a->dead_letters, b ? b->dead_letters : NULL, MCD_N_DEAD_LETTER_REASONS, sign);
        add_n(&st->timers_fired, &a->timers_fired, b ? &b->timers_fired : NULL, 1, sign);
}

void mcd_stats_take_back(struct mcd_stats *st, const struct mcd_stats *before) {
        struct mcd_stats now = *st;

        mcd_stats_add_counts(st, &now, before, -1);
}
