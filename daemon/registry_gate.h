/* registry_gate.h -- the daemon's use of the schema registry: the client
 * made from the configuration, the outcome schema registered at start
 * (output.format confluent), and consumption paused, with backoff, while
 * the registry cannot be asked.  The worker calls these hooks from its main
 * thread only; the client itself (registry.h) is shared with the decoding
 * threads through the codecs. */
#ifndef MCD_REGISTRY_GATE_H
#define MCD_REGISTRY_GATE_H

#include <stdbool.h>
#include <stdint.h>

struct mcd_avro;
struct mcd_config;
struct mcd_stats;
struct mcd_registry_gate;

/* A gate for cfg (borrowed: it must outlive the gate): without
 * schema_registry.url *out is NULL and every hook below does nothing (the
 * gate is always open).  0 or negative errno. */
int mcd_registry_gate_new(const struct mcd_config *cfg, struct mcd_registry_gate **out);
void mcd_registry_gate_free(struct mcd_registry_gate *g);

/* Gives codec a the registry for Confluent-framed input.  When `encoder`,
 * a is also the codec outcomes are encoded with: it frames them with the id
 * the registry gives the outcome schema (output.format confluent), once
 * registered. */
void mcd_registry_gate_attach(struct mcd_registry_gate *g, struct mcd_avro *a, bool encoder);

/* May the worker collect and decode a batch now?  False while paused (the
 * registry failed and its retry time has not come) and while the outcome
 * schema is not registered yet (each retry time, registering is tried
 * again).  mono is the monotonic clock in ms.  Sets st->registry_down
 * (/healthz). */
bool mcd_registry_gate_open(struct mcd_registry_gate *g, struct mcd_stats *st, int64_t mono);

/* A batch could not be decoded because the registry could not be asked
 * (why: one sentence): consumption pauses, the next try after a backoff. */
void mcd_registry_gate_failed(struct mcd_registry_gate *g, struct mcd_stats *st, int64_t mono, const char *why);

/* A batch was decoded without needing an unreachable registry. */
void mcd_registry_gate_ok(struct mcd_registry_gate *g, struct mcd_stats *st);

#endif
