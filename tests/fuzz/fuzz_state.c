/* fuzz_state.c -- libFuzzer target for mcd_state_from_json, which reads a
 * customer's state back from Redis or the changelog topic.
 *
 * When the input parses, mcd_state_to_json of the result must succeed, its
 * output must parse again, and writing that gives the same text (a fixed
 * point: every field round-trips).  Anything else is an abort(). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/state_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what, const char *detail) {
        if (!cond) {
                fprintf(stderr, "fuzz_state: invariant broken: %s%s%s\n", what, detail ? ": " : "",
                        detail ? detail : "");
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct mcd_customer c, again;
        char why[512], *json, *json2;

        why[0] = '\0';
        if (mcd_state_from_json((const char *)data, size, &c, why, sizeof(why)) < 0) {
                check(why[0] != '\0', "a rejected state gives a reason", NULL);
                return 0;
        }
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
