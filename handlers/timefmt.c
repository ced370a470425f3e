/* timefmt.c -- ISO-8601 UTC timestamps, without the C library's time zone
 * machinery (no TZ, no locale, no globals): days-from-civil arithmetic. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "timefmt.h"

/* Howard Hinnant's days_from_civil / civil_from_days. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        unsigned yoe = (unsigned)(y - era * 400);
        unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
        z += 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        unsigned doe = (unsigned)(z - era * 146097);
        unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        unsigned mp = (5 * doy + 2) / 153;
        *d = doy - (153 * mp + 2) / 5 + 1;
        *m = mp < 10 ? mp + 3 : mp - 9;
        *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b) {
        int64_t q = a / b;
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

char *mcd_time_format(mcd_time_t t, char buf[static MCD_TIME_BUFSZ]) {
        int64_t days;

        /* Clamp to what the format can spell, so the text always parses. */
        if (t < MCD_TIME_MIN)
                t = MCD_TIME_MIN;
        if (t > MCD_TIME_MAX)
                t = MCD_TIME_MAX;
        days = floor_div(t, 86400000);
        int64_t ms = t - days * 86400000;
        int64_t y;
        unsigned m, d;

        civil_from_days(days, &y, &m, &d);
        if (y < 0)
                y = 0;
        if (y > 9999)
                y = 9999;
        /* The modulos only tell the compiler the ranges it cannot prove. */
        snprintf(buf, MCD_TIME_BUFSZ, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)y % 10000, (int)(m % 13),
                 (int)(d % 32), (int)(ms / 3600000 % 24), (int)(ms / 60000 % 60), (int)(ms / 1000 % 60),
                 (int)(ms % 1000));
        return buf;
}

static int digits(const char **p, int n, int *out) {
        int v = 0;
        for (int i = 0; i < n; i++) {
                char ch = (*p)[i];
                if (ch < '0' || ch > '9')
                        return -EINVAL;
                v = v * 10 + (ch - '0');
        }
        *p += n;
        *out = v;
        return 0;
}

static int expect(const char **p, char ch) {
        if (**p != ch)
                return -EINVAL;
        (*p)++;
        return 0;
}

static bool leap(int y) {
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int mcd_time_parse(const char *s, mcd_time_t *out) {
        static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        const char *p = s;
        int y, mo, d, h, mi, sec, ms = 0;

        if (!s)
                return -EINVAL;
        if (digits(&p, 4, &y) < 0 || expect(&p, '-') < 0 || digits(&p, 2, &mo) < 0 ||
            expect(&p, '-') < 0 || digits(&p, 2, &d) < 0 || expect(&p, 'T') < 0 ||
            digits(&p, 2, &h) < 0 || expect(&p, ':') < 0 || digits(&p, 2, &mi) < 0 ||
            expect(&p, ':') < 0 || digits(&p, 2, &sec) < 0)
                return -EINVAL;
        if (*p == '.') {
                int n = 0;
                p++;
                while (*p >= '0' && *p <= '9') {
                        if (n < 3)
                                ms = ms * 10 + (*p - '0');
                        n++;
                        p++;
                }
                if (n == 0 || n > 9)
                        return -EINVAL;
                for (; n < 3; n++)
                        ms *= 10;
        }
        if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
                return -EINVAL;
        if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59)
                return -EINVAL;
        if (d > mdays[mo - 1] + (mo == 2 && leap(y)))
                return -EINVAL;
        *out = (days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec) * 1000 + ms;
        return 0;
}
