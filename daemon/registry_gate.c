/* registry_gate.c -- the daemon's pause-and-retry around the schema
 * registry (registry_gate.h).
 *
 * DESIGN: the gate is a two-state machine, OPEN or PAUSED, changed only by
 * gate_set, which logs the change.  PAUSED is entered when a batch needed a
 * schema the registry could not give (unreachable, timeout, 5xx) or when
 * the outcome schema could not be registered; the batch's messages went
 * back to their queues, so nothing is dead-lettered or lost, and the worker
 * collects again once the backoff (mcd_backoff_next: 100 ms doubling to 5 s)
 * has passed.  While paused /healthz says why (st->registry_down). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/avro_codec.h"
#include "daemon/config.h"
#include "daemon/log.h"
#include "daemon/registry.h"
#include "daemon/registry_gate.h"
#include "daemon/startup.h"
#include "daemon/stats.h"

enum gate_state {
        GATE_OPEN,
        GATE_PAUSED,
        GATE__COUNT
};

static const char *const gate_state_names[GATE__COUNT] = {
        [GATE_OPEN] = "open",
        [GATE_PAUSED] = "paused",
};

struct mcd_registry_gate {
        const struct mcd_config *cfg;   /* borrowed */
        struct mcd_registry *registry;  /* the client, shared with the codecs */
        struct mcd_avro *encoder;       /* borrowed: the codec outcomes are encoded with, or NULL */
        enum gate_state state;
        bool outcome_pending;           /* output.format confluent, outcome schema not registered yet */
        struct mcd_retry retry;         /* the next try while paused */
        char why[512];                  /* the last failure */
};

/* The one setter of the state: logs the change. */
static void gate_set(struct mcd_registry_gate *g, enum gate_state s, int64_t mono) {
        if (s == GATE_PAUSED) {
                log_warning("schema registry unavailable, consumption paused, retrying in %d ms: %s",
                            mcd_retry_failed(&g->retry, mono), g->why);
        } else {
                mcd_retry_done(&g->retry);
                if (g->state != s)
                        log_notice("schema registry %s answers again; consumption resumed", g->cfg->registry_url);
        }
        if (g->state != s)
                log_debug("schema registry gate: %s -> %s", gate_state_names[g->state], gate_state_names[s]);
        g->state = s;
}

int mcd_registry_gate_new(const struct mcd_config *cfg, struct mcd_registry_gate **out) {
        struct mcd_registry_gate *g;
        int r;

        *out = NULL;
        if (!cfg->registry_url)
                return 0;
        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        g->cfg = cfg;
        r = mcd_registry_new(cfg->registry_url, cfg->registry_basic_auth, cfg->registry_timeout_ms, &g->registry);
        if (r < 0) {
                free(g);
                return r;
        }
        g->outcome_pending = cfg->output_format == MCD_OUTPUT_CONFLUENT;
        log_notice("schema registry at %s for Confluent-framed input%s", cfg->registry_url,
                   g->outcome_pending ? " and outcomes (output.format confluent)" : "");
        *out = g;
        return 0;
}

void mcd_registry_gate_free(struct mcd_registry_gate *g) {
        if (!g)
                return;
        mcd_registry_free(g->registry);
        free(g);
}

void mcd_registry_gate_attach(struct mcd_registry_gate *g, struct mcd_avro *a, bool encoder) {
        if (!g || !a)
                return;
        mcd_avro_use_registry(a, g->registry);
        if (encoder)
                g->encoder = a;
}

/* Registers the outcome reader schema under "<topic.outcomes>-value".  0 or
 * negative errno with g->why set. */
static int register_outcome(struct mcd_registry_gate *g) {
        char subject[512];
        uint32_t id = 0;
        int r;

        if (!g->encoder)
                return 0;
        snprintf(subject, sizeof(subject), "%s-value", g->cfg->topic_outcomes);
        r = mcd_registry_register(g->registry, subject, mcd_avro_reader_schema(g->encoder, MCD_AVRO_OUTCOME), &id,
                                  g->why, sizeof(g->why));
        if (r < 0)
                return r;
        mcd_avro_frame_outcomes_confluent(g->encoder, id);
        g->outcome_pending = false;
        log_notice("outcome schema registered under %s as id %" PRIu32 "; outcomes framed in the Confluent wire "
                   "format", subject, id);
        return 0;
}

bool mcd_registry_gate_open(struct mcd_registry_gate *g, struct mcd_stats *st, int64_t mono) {
        if (!g)
                return true;
        if (g->state == GATE_PAUSED && !mcd_retry_due(&g->retry, mono))
                return false;
        if (g->outcome_pending && register_outcome(g) < 0) {
                gate_set(g, GATE_PAUSED, mono);
                st->registry_down = true;
                return false;
        }
        /* Paused for an input schema: the next batch tries again (and
         * mcd_registry_gate_ok opens the gate when it gets through). */
        return true;
}

void mcd_registry_gate_failed(struct mcd_registry_gate *g, struct mcd_stats *st, int64_t mono, const char *why) {
        if (!g)
                return;
        snprintf(g->why, sizeof(g->why), "%s", why);
        gate_set(g, GATE_PAUSED, mono);
        st->registry_down = true;
}

void mcd_registry_gate_ok(struct mcd_registry_gate *g, struct mcd_stats *st) {
        if (!g || g->state == GATE_OPEN)
                return;
        gate_set(g, GATE_OPEN, 0);
        st->registry_down = false;
}
