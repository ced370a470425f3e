/* samples.h -- sample events and outcomes for the C tests and the fuzz
 * corpus: one of every type, with every field its type carries set (the
 * Avro round trips of test_avro.c, the seeds of fuzz/make_seeds.c). */
#ifndef MCD_TESTS_SAMPLES_H
#define MCD_TESTS_SAMPLES_H

#include <stdint.h>

#include "handlers/model.h"

#define SAMPLE_T0 INT64_C(1767607200000)        /* 2026-01-05T10:00:00.000Z: every sample's occurred_at */

/* A sample event of type t, of customer "c-1" (strings are literals: never
 * cleared, never freed). */
struct mcd_event sample_event(enum mcd_event_type t);

/* A sample outcome of type t, caused by the sample event "ev-1" (strings are
 * literals, as above). */
struct mcd_outcome sample_outcome(enum mcd_outcome_type t);

#endif
