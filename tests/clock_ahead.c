/* clock_ahead.c -- a wall clock running ahead, for a test.
 *
 * Preloaded (LD_PRELOAD=.../clock_ahead.so MCD_CLOCK_AHEAD_MS=N), it moves
 * the wall clock of the process N ms ahead: clock_gettime's realtime
 * clocks, gettimeofday, time and timespec_get.  The monotonic clocks are
 * left alone.  It stands for another instance whose clock runs fast
 * (tests/daemon_rollback_skew.sh): the daemon's timers fire by it, and
 * librdkafka stamps the messages it produces with it.
 *
 * DESIGN: the kernel is asked directly, with no dlsym: dlsym allocates,
 * and an allocator that reads the clock as it starts (jemalloc) would call
 * back in before the real function is known (libfaketime fails so).  A
 * C11 condition variable waits until an absolute time of the true wall
 * clock, which librdkafka computes from the moved one: cnd_timedwait takes
 * the offset back off (glibc's cnd_timedwait is pthread_cond_timedwait on
 * a realtime condition).  pthread_cond_timedwait is not wrapped: the daemon
 * waits on monotonic conditions only. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

static long long ahead_ms;      /* set once, before main (clock_ahead_init) */

__attribute__((constructor)) static void clock_ahead_init(void) {
        const char *s = getenv("MCD_CLOCK_AHEAD_MS");

        ahead_ms = s ? strtoll(s, NULL, 10) : 0;
}

/* ts moved by sign * ahead_ms.  This function can't fail. */
static void shift(struct timespec *ts, int sign) {
        long long ns = (long long)ts->tv_nsec + sign * (ahead_ms % 1000) * 1000000;

        ts->tv_sec += sign * (ahead_ms / 1000) + (ns < 0 ? -1 : ns >= 1000000000 ? 1 : 0);
        ts->tv_nsec = (long)(ns < 0 ? ns + 1000000000 : ns >= 1000000000 ? ns - 1000000000 : ns);
}

int clock_gettime(clockid_t clk, struct timespec *ts) {
        int r = (int)syscall(SYS_clock_gettime, clk, ts);

        if (r == 0 && (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE))
                shift(ts, 1);
        return r;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
        struct timespec ts;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return -1;
        if (tz)         /* as glibc: no time zone */
                memset(tz, 0, sizeof(struct timezone));
        *tv = (struct timeval){.tv_sec = ts.tv_sec, .tv_usec = ts.tv_nsec / 1000};  /* nonnull in glibc's prototype */
        return 0;
}

time_t time(time_t *t) {
        struct timespec ts = {0};

        clock_gettime(CLOCK_REALTIME, &ts);
        if (t)
                *t = ts.tv_sec;
        return ts.tv_sec;
}

int timespec_get(struct timespec *ts, int base) {
        return base == TIME_UTC && clock_gettime(CLOCK_REALTIME, ts) == 0 ? base : 0;
}

int cnd_timedwait(cnd_t *restrict cnd, mtx_t *restrict mtx, const struct timespec *restrict until) {
        struct timespec real = *until;
        int r;

        shift(&real, -1);
        r = pthread_cond_timedwait((pthread_cond_t *)cnd, (pthread_mutex_t *)mtx, &real);
        return r == 0 ? thrd_success : r == ETIMEDOUT ? thrd_timedout : thrd_error;
}
