/* replay.h -- `multichanneld replay`: the rules over JSON lines, in memory.
 *
 * The clock is stream time, the latest occurred_at seen so far; before each
 * event the timers and park deadlines due at or before it fire, earliest
 * first (ties by customer id, then subscription id).  Every customer starts
 * from the empty state, or one customer from a given state (`whatif`: the
 * state Redis holds). */
#ifndef MCD_REPLAY_H
#define MCD_REPLAY_H

#include <stdbool.h>
#include <stdio.h>

#include "handlers/rules.h"

struct mcd_replay_options {
        bool has_now;                /* --now given: fire what is due up to it at the end */
        mcd_time_t now;
        struct mcd_rules_config rules;
        FILE *state_out;             /* if set: every customer's final state, one JSON line each, by id */
        bool state_pretty;           /* state_out indented, as `multichanneld state` prints it */
        struct mcd_customer *seed;   /* if set: the state its customer starts from (whatif); taken over,
                                        left empty (cleared) whatever mcd_replay returns */
        const char *only_customer;   /* if set: a line for another customer is a bad line */
};

/* Reads events from `in`, writes outcomes to `out`, reports bad lines on
 * `err` as "line N: reason".  Returns 0 when every line was applied, 1 when
 * some line was bad, or a negative errno on a system error. */
int mcd_replay(FILE *in, FILE *out, FILE *err, const struct mcd_replay_options *opt);

#endif
