/* crash.h -- a last word on stderr when the process dies of a fault. */
#ifndef MCD_CRASH_H
#define MCD_CRASH_H

/* Install the fault handler for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT
 * (not under AddressSanitizer, whose own report says more).  Call once,
 * early, on the main thread.  This function can't fail: a handler that
 * cannot be installed leaves the default action. */
void mcd_crash_install(void);

#endif
