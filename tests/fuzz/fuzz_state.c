/* fuzz_state.c -- libFuzzer target for mcd_state_decode, which reads a
 * customer's state back from Redis or the changelog topic (binary, or the
 * JSON of earlier versions).
 *
 * When the input decodes, both forms must round-trip: mcd_state_to_json of
 * the result parses again and writing that gives the same text, and its
 * binary encoding decodes again and encodes to the same bytes (fixed
 * points: every field round-trips).  Anything else is an abort(). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/state_codec.h"
#include "daemon/state_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what, const char *detail) {
        if (!cond) {
                fprintf(stderr, "fuzz_state: invariant broken: %s%s%s\n", what, detail ? ": " : "",
                        detail ? detail : "");
                abort();
        }
}

/* The binary form of c decodes again and encodes to the same bytes. */
static void check_binary(const struct mcd_customer *c) {
        struct mcd_customer again;
        char why[512] = "", *b1 = NULL, *b2 = NULL;
        size_t n1 = 0, n2 = 0;

        check(mcd_state_encode(c, &b1, &n1) == 0, "a decoded state can be encoded", NULL);
        check(mcd_state_decode(b1, n1, &again, why, sizeof(why)) == 0, "an encoded state decodes again", why);
        check(mcd_state_encode(&again, &b2, &n2) == 0 && n1 == n2 && memcmp(b1, b2, n1) == 0,
              "encoding a state is a fixed point", NULL);
        free(b1);
        free(b2);
        mcd_customer_clear(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct mcd_customer c, again;
        char why[512], *json, *json2;

        why[0] = '\0';
        if (mcd_state_decode((const char *)data, size, &c, why, sizeof(why)) < 0) {
                check(why[0] != '\0', "a rejected state gives a reason", NULL);
                return 0;
        }
        check_binary(&c);
        json = mcd_state_to_json(&c);
        check(json != NULL, "a parsed state can be written", NULL);
        check(mcd_state_from_json(json, strlen(json), &again, why, sizeof(why)) == 0,
              "a written state parses again", why);
        json2 = mcd_state_to_json(&again);
        check(json2 != NULL && strcmp(json, json2) == 0, "writing a state is a fixed point", json2);
        free(json2);
        free(json);
        mcd_customer_clear(&again);
        mcd_customer_clear(&c);
        return 0;
}
