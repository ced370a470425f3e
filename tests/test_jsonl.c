/* test_jsonl.c -- the replay format: parsing every event type (defaults
 * included), the reasons given for bad lines, and outcome formatting in the
 * contract's field order with every field present. */
#include <stdlib.h>
#include <string.h>

#include "daemon/jsonl.h"
#include "handlers/rules.h"
#include "tests/tap.h"

#define COMMON "\"event_id\":\"e-1\",\"occurred_at\":\"2026-01-05T10:00:00.000Z\",\"customer_id\":\"c-1\",\"cloud\":\"COMMERCIAL\""

static int parse(const char *line, struct mcd_event *ev, char *why) {
        return mcd_jsonl_parse_event(line, strlen(line), ev, why, 256);
}

/* Parses, formats and parses again: the two parses must format alike. */
static void roundtrip(const char *line, const char *what) {
        struct mcd_event a, b;
        char why[256] = "";
        char *s1 = NULL, *s2 = NULL;

        if (!ok(parse(line, &a, why) == 0, "%s parses", what)) {
                tap_diag("%s", why);
                return;
        }
        s1 = mcd_jsonl_format_event(&a);
        ok(s1 && parse(s1, &b, why) == 0, "%s formats and parses again", what);
        s2 = mcd_jsonl_format_event(&b);
        is_str(s2, s1, "%s round trip", what);
        free(s1);
        free(s2);
        mcd_event_clear(&a);
        mcd_event_clear(&b);
}

static void bad(const char *line, const char *want, const char *what) {
        struct mcd_event ev;
        char why[256] = "";
        ok(parse(line, &ev, why) < 0 && strstr(why, want), "%s: \"%s\"", what, why);
}

int main(void) {
        struct mcd_event ev;
        struct mcd_outcome o = {0};
        char why[256];
        char *s;

        roundtrip("{" COMMON ",\"type\":\"RelationshipRequested\",\"partner_id\":\"p-1\"}", "RelationshipRequested");
        roundtrip("{" COMMON ",\"type\":\"RelationshipAccepted\",\"partner_id\":\"p-1\"}", "RelationshipAccepted");
        roundtrip("{" COMMON ",\"type\":\"RelationshipRemoved\",\"partner_id\":\"p-1\",\"reason\":\"r\"}", "RelationshipRemoved");
        roundtrip("{" COMMON ",\"type\":\"SubscriptionReported\",\"subscription_id\":\"s\",\"offer_name\":\"o\","
                  "\"billing\":\"USAGE_BASED\",\"channel\":\"CSP\",\"seller_partner_id\":\"p-9\"}", "SubscriptionReported");
        roundtrip("{" COMMON ",\"type\":\"SwitchRequested\",\"subscription_id\":\"s\",\"target_partner_id\":\"p\"}", "SwitchRequested");
        roundtrip("{" COMMON ",\"type\":\"CspSubscriptionCreated\",\"subscription_id\":\"s\",\"csp_subscription_id\":\"x\","
                  "\"partner_id\":\"p\"}", "CspSubscriptionCreated");
        roundtrip("{" COMMON ",\"type\":\"SubscriptionCancelled\",\"subscription_id\":\"s\",\"scope\":\"SOME_SERVICES\","
                  "\"services\":[\"a\",\"b\"]}", "SubscriptionCancelled");
        roundtrip("{" COMMON ",\"type\":\"SubscriptionTermEnded\",\"subscription_id\":\"s\"}", "SubscriptionTermEnded");

        ok(parse("{" COMMON ",\"type\":\"RelationshipRequested\",\"partner_id\":\"p-1\",\"extra\":1}", &ev, why) == 0 &&
           ev.indirect_reseller_id == NULL && !ev.customer_is_csp_partner,
           "defaults filled, unknown fields ignored");
        mcd_event_clear(&ev);
        ok(parse("{" COMMON ",\"type\":\"SubscriptionReported\",\"subscription_id\":\"s\",\"offer_name\":\"o\","
                 "\"billing\":\"LICENSE_BASED\",\"channel\":\"EA\",\"term_end\":\"2026-06-30T23:59:59.000Z\"}", &ev, why) == 0 &&
           ev.has_term_end && ev.term_end == 1782863999000LL, "term_end parsed");
        mcd_event_clear(&ev);

        bad("{", "invalid JSON", "truncated JSON");
        bad("\"x\"", "invalid JSON", "a bare string");
        bad("[]", "not a JSON object", "an array");
        bad("{" COMMON "}", "missing field \"type\"", "no type");
        bad("{" COMMON ",\"type\":7}", "field \"type\" must be a string", "type not a string");
        bad("{" COMMON ",\"type\":\"Nope\"}", "unknown type \"Nope\"", "unknown type");
        bad("{\"occurred_at\":\"2026-01-05T10:00:00.000Z\",\"customer_id\":\"c\",\"cloud\":\"COMMERCIAL\","
            "\"type\":\"RelationshipAccepted\",\"partner_id\":\"p\"}", "missing field \"event_id\"", "no event_id");
        bad("{" COMMON ",\"type\":\"RelationshipRequested\",\"partner_id\":\"p\",\"customer_is_csp_partner\":\"yes\"}",
            "must be true or false", "mistyped boolean");
        bad("{" COMMON ",\"type\":\"SubscriptionReported\",\"subscription_id\":\"s\",\"offer_name\":\"o\","
            "\"billing\":\"MONTHLY\",\"channel\":\"EA\"}", "field \"billing\" must be one of LICENSE_BASED, USAGE_BASED",
            "unknown billing");
        bad("{\"a\":1,\"a\":2}", "invalid JSON", "duplicate keys");

        o.event_id = "e-1#0";
        o.caused_by = "e-1";
        o.customer_id = "c-1";
        o.occurred_at = 0;
        o.message = "m";
        o.type = MCD_OUT_SUBSCRIPTION_MIGRATED;
        o.customer_state = MCD_CS_MIGRATED;
        s = mcd_jsonl_format_outcome(&o);
        is_str(s, "{\"event_id\":\"e-1#0\",\"caused_by\":\"e-1\",\"customer_id\":\"c-1\",\"cloud\":\"COMMERCIAL\","
                  "\"occurred_at\":\"1970-01-01T00:00:00.000Z\",\"partner_id\":null,\"subscription_id\":null,"
                  "\"customer_state\":\"MIGRATED\",\"message\":\"m\",\"type\":\"SubscriptionMigrated\","
                  "\"csp_subscription_id\":null}", "outcome in the contract's field order, nulls present");
        free(s);
        return tap_done();
}
