/* fuzz_jsonl.c -- libFuzzer target for the replay format's event parser,
 * mcd_jsonl_parse_event: the input is one line.
 *
 * When the line parses, the event is valid (mcd_event_validate), formatting
 * it with mcd_jsonl_format_event succeeds, the formatted line parses again
 * (the round trip must succeed), and formatting that gives the same line (a
 * fixed point).  Anything else is an abort(). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/jsonl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what, const char *detail) {
        if (!cond) {
                fprintf(stderr, "fuzz_jsonl: invariant broken: %s%s%s\n", what, detail ? ": " : "",
                        detail ? detail : "");
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct mcd_event ev, again;
        const char *why = NULL;
        char reason[512], *line, *line2;

        reason[0] = '\0';
        if (mcd_jsonl_parse_event((const char *)data, size, &ev, reason, sizeof(reason)) < 0) {
                check(reason[0] != '\0', "a rejected line gives a reason", NULL);
                return 0;
        }
        check(mcd_event_validate(&ev, &why) == 0, "a parsed event is valid", why);
        line = mcd_jsonl_format_event(&ev);
        check(line != NULL, "a parsed event formats", NULL);
        check(mcd_jsonl_parse_event(line, strlen(line), &again, reason, sizeof(reason)) == 0,
              "the formatted event parses again", reason);
        line2 = mcd_jsonl_format_event(&again);
        check(line2 != NULL && strcmp(line, line2) == 0, "formatting is a fixed point", line2);
        free(line2);
        free(line);
        mcd_event_clear(&again);
        mcd_event_clear(&ev);
        return 0;
}
