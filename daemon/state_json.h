/* state_json.h -- a customer's state as JSON, the form it takes in Redis and
 * in the changelog topic, and what `multichanneld state` prints.
 *
 * {"v":1,"customer_id":..,"cloud":..|null,"state":..,"partner_id":..,
 *  "indirect_reseller_id":..,"subscriptions":[{...,"state":..,"timer_outcomes":n}],
 *  "parked":[{"deadline":"<iso>","event":{<replay-format event>}}],
 *  "timers":[{"subscription_id":..,"due":"<iso>"}]   (derived, informative),
 *  "seen":[event ids, sorted]} */
#ifndef MCD_STATE_JSON_H
#define MCD_STATE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "handlers/model.h"

/* Heap string (compact JSON) or NULL on allocation failure. */
char *mcd_state_to_json(const struct mcd_customer *c);

/* Writes c's JSON to f and a newline: one line, or indented by two spaces
 * as `multichanneld state` prints it.  0, -ENOMEM or -EIO. */
int mcd_state_print(FILE *f, const struct mcd_customer *c, bool pretty);

/* Parses into c (initialised by the callee).  0, or -EINVAL with why set. */
int mcd_state_from_json(const char *json, size_t len, struct mcd_customer *c, char *why, size_t whylen);

#endif
