/* timefmt.h -- ISO-8601 UTC timestamps with milliseconds, as the contract's
 * JSON lines spell them: "2027-03-31T00:00:00.000Z".  Pure functions. */
#ifndef MCD_TIMEFMT_H
#define MCD_TIMEFMT_H

#include "model.h"

#define MCD_TIME_BUFSZ 32

/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf (MCD_TIME_BUFSZ bytes) and
 * returns buf.  Times outside 0000-01-01 .. 9999-12-31 are clamped to it. */
char *mcd_time_format(mcd_time_t t, char buf[static MCD_TIME_BUFSZ]);

/* Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" (also "+00:00" as the zone, and 1-9
 * fraction digits, truncated to milliseconds).  Returns 0 or -EINVAL. */
int mcd_time_parse(const char *s, mcd_time_t *out);

#endif
