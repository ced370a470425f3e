/* test_retry.c -- the retry hold the daemon puts on Redis, the schema
 * registry and the failed changelog appends' save (startup.h).
 *
 * Covers: a zeroed hold is due; each failure holds the next try back
 * 100 ms, doubling to 5 s and staying there; the hold ends exactly at its
 * time; a success makes the next failure wait 100 ms again, and does not
 * hold back a try that was already due. */
#include <stdint.h>

#include "daemon/startup.h"
#include "tests/tap.h"

int main(void) {
        static const int delays[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000};
        struct mcd_retry r = {0};
        int64_t mono = 1000;

        ok(mcd_retry_due(&r, 0), "a hold never failed is due");
        for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
                is_int(mcd_retry_failed(&r, mono), delays[i], "failure %zu holds the next try back", i + 1);
                ok(!mcd_retry_due(&r, mono + delays[i] - 1), "not due 1 ms before its hold ends");
                ok(mcd_retry_due(&r, mono + delays[i]), "due when its hold ends");
                mono += delays[i];
        }
        mcd_retry_done(&r);
        ok(mcd_retry_due(&r, mono), "a success leaves the try due");
        is_int(mcd_retry_failed(&r, mono), 100, "after a success, the next failure holds 100 ms again");
        return tap_done();
}
