/* fuzz_replay.c -- libFuzzer target for the replay driver as a whole:
 * mcd_replay over the input as one stream of JSON lines (fmemopen), with a
 * fixed --now of 2026-12-01T00:00:00.000Z, so the rules engine sees arbitrary
 * event sequences and every timer and park deadline up to then fires.
 *
 * Outcomes and bad-line reports go to /dev/null; every customer's final state
 * goes to a memory stream, and each of those lines must read back with
 * mcd_state_from_json (what the daemon writes to Redis it must be able to
 * read).  mcd_replay must return 0 or 1, never an error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/replay.h"
#include "daemon/state_json.h"

#define NOW INT64_C(1796083200000)      /* 2026-12-01T00:00:00.000Z */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

static void check(int cond, const char *what, const char *detail) {
        if (!cond) {
                fprintf(stderr, "fuzz_replay: invariant broken: %s%s%s\n", what, detail ? ": " : "",
                        detail ? detail : "");
                abort();
        }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        devnull = fopen("/dev/null", "w");
        if (!devnull) {
                perror("fuzz_replay: /dev/null");
                abort();
        }
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct mcd_replay_options opt = {
                .has_now = true,
                .now = NOW,
                .rules = MCD_RULES_CONFIG_DEFAULT,
        };
        char *states = NULL, *line, *save = NULL;
        size_t states_len = 0;
        FILE *in;
        int r;

        if (size == 0)
                return 0;
        in = fmemopen((void *)data, size, "r");
        opt.state_out = open_memstream(&states, &states_len);
        check(in && opt.state_out, "fmemopen / open_memstream", NULL);
        r = mcd_replay(in, devnull, devnull, &opt);
        fclose(in);
        fclose(opt.state_out);
        check(r == 0 || r == 1, "replay returns 0 or 1", NULL);

        for (line = strtok_r(states, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                struct mcd_customer c;
                char why[512] = "";

                check(mcd_state_from_json(line, strlen(line), &c, why, sizeof(why)) == 0,
                      "a state replay writes reads back", why);
                mcd_customer_clear(&c);
        }
        free(states);
        return 0;
}
