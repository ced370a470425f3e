/* runtime.c -- clocks, the watchdog keep-alive and fault injection points,
 * shared by the parts of the run loop (runtime.h). */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "daemon/log.h"
#include "daemon/runtime.h"
#include "daemon/store.h"

static uint64_t watchdog_usec;       /* systemd's WatchdogSec, 0 when off */
static int64_t next_watchdog;        /* monotonic us of the next keep-alive */

int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool redis_unreachable(int r) {
        return r == -ECONNREFUSED || r == -EIO || r == -ETIMEDOUT || r == -ECONNRESET || r == -EPIPE ||
               r == -ENOTCONN || r == -EHOSTUNREACH;
}

bool redis_failed(struct mcd_env *env, int r) {
        if (r == MCD_STORE_WRONG_TYPE)
                env->redis_wrong_type = true;
        else if (!redis_unreachable(r))
                return false;
        env->redis_ok = false;
        return true;
}

void watchdog_init(uint64_t usec) {
        watchdog_usec = usec;
        next_watchdog = 0;
}

void watchdog_kick(void) {
        if (watchdog_usec && mono_us() >= next_watchdog) {
                sd_notify(0, "WATCHDOG=1");
                next_watchdog = mono_us() + (int64_t)watchdog_usec / 2;
        }
}

uint64_t fault_env(const char *name) {
        const char *v = getenv(name);
        return v ? strtoull(v, NULL, 10) : 0;
}

void fault_point(uint64_t *at, uint64_t batch, const char *what) {
        if (*at == 0 || batch != *at)
                return;
        *at = 0;        /* once: a batch dropped (fenced) may come by that number again */
        log_warning("fault injection: stopping before the %s of batch %" PRIu64, what, batch);
        raise(SIGSTOP);
        log_warning("fault injection: continued");
}
