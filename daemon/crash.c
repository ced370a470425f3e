/* crash.c -- a last word when the process dies of a fault.
 *
 * A daemon that dies of SIGSEGV under systemd leaves an exit status and, if
 * systemd-coredump runs, a core; in a test or a container it leaves nothing
 * but a log that stops.  As redis's sigsegvHandler (debug.c) does, the
 * handler writes one log line naming the signal, its code and the faulting
 * address, then the backtrace, to stderr (the journal, under systemd), and
 * raises the signal again with its default action so that the exit status,
 * systemd and a core dump see what they would have seen.
 *
 * DESIGN: only what is async-signal-safe runs in the handler: write(2) and
 * backtrace_symbols_fd().  backtrace() loads libgcc on its first call, which
 * allocates, so mcd_crash_install() takes one backtrace up front.  The
 * handler runs on an alternate stack of the main thread, so that a stack
 * overflow there is reported too; other threads report on their own stack. */
#include <execinfo.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/crash.h"

#if defined(__SANITIZE_ADDRESS__)
#define MCD_UNDER_ASAN 1
#else
#define MCD_UNDER_ASAN 0
#endif

#define FRAMES_MAX 64
#define ALT_STACK_SIZE (64 * 1024)

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

/* Appends s to buf at *at, within cap.  Async-signal-safe. */
static void put_str(char *buf, size_t cap, size_t *at, const char *s) {
        while (*s && *at + 1 < cap)
                buf[(*at)++] = *s++;
}

/* Appends v in base (10 or 16) to buf at *at.  Async-signal-safe. */
static void put_num(char *buf, size_t cap, size_t *at, uintmax_t v, unsigned base) {
        char digits[32];
        size_t n = 0;

        do {
                digits[n++] = "0123456789abcdef"[v % base];
                v /= base;
        } while (v && n < sizeof(digits));
        if (base == 16)
                put_str(buf, cap, at, "0x");
        while (n > 0 && *at + 1 < cap)
                buf[(*at)++] = digits[--n];
}

static const char *signal_name(int sig) {
        switch (sig) {
        case SIGSEGV: return "SIGSEGV";
        case SIGBUS: return "SIGBUS";
        case SIGILL: return "SIGILL";
        case SIGFPE: return "SIGFPE";
        case SIGABRT: return "SIGABRT";
        default: return "signal";
        }
}

static void write_all(const char *buf, size_t len) {
        while (len > 0) {
                ssize_t n = write(STDERR_FILENO, buf, len);
                if (n <= 0)
                        return;
                buf += n;
                len -= (size_t)n;
        }
}

static void on_fault(int sig, siginfo_t *info, void *uctx) {
        char line[256];
        size_t at = 0;
        void *frames[FRAMES_MAX];
        int n;

        (void)uctx;
        put_str(line, sizeof(line), &at, "multichanneld[");
        put_num(line, sizeof(line), &at, (uintmax_t)getpid(), 10);
        put_str(line, sizeof(line), &at, "]: crit: crashed by ");
        put_str(line, sizeof(line), &at, signal_name(sig));
        if (info->si_code <= 0) {       /* kill(2), tgkill(2), sigqueue(3): no fault address */
                put_str(line, sizeof(line), &at, " (sent by pid ");
                put_num(line, sizeof(line), &at, (uintmax_t)info->si_pid, 10);
        } else {
                put_str(line, sizeof(line), &at, " (code ");
                put_num(line, sizeof(line), &at, (uintmax_t)info->si_code, 10);
                put_str(line, sizeof(line), &at, ", address ");
                put_num(line, sizeof(line), &at, (uintmax_t)(uintptr_t)info->si_addr, 16);
        }
        put_str(line, sizeof(line), &at, "); backtrace follows\n");
        write_all(line, at);
        n = backtrace(frames, FRAMES_MAX);
        backtrace_symbols_fd(frames, n, STDERR_FILENO);
        raise(sig);             /* the default action again (SA_RESETHAND): the process ends */
}

void mcd_crash_install(void) {
        static char alt_stack[ALT_STACK_SIZE];
        stack_t ss = {.ss_sp = alt_stack, .ss_size = sizeof(alt_stack)};
        struct sigaction sa = {.sa_sigaction = on_fault, .sa_flags = SA_SIGINFO | SA_RESETHAND | SA_ONSTACK};
        void *warm[1];

        if (MCD_UNDER_ASAN)
                return;
        backtrace(warm, 1);     /* loads libgcc now, not in the handler */
        if (sigaltstack(&ss, NULL) < 0)
                sa.sa_flags &= ~SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
                sigaction(fatal_signals[i], &sa, NULL);
}
