/* test_timefmt.c -- ISO-8601 timestamps: format, parse, round trip. */
#include "handlers/timefmt.h"
#include "tests/tap.h"

static void roundtrip(const char *s, mcd_time_t want) {
        char buf[MCD_TIME_BUFSZ];
        mcd_time_t t = 0;
        ok(mcd_time_parse(s, &t) == 0, "parse %s", s);
        is_int(t, want, "%s is %lld ms", s, (long long)want);
        is_str(mcd_time_format(t, buf), s, "format %lld", (long long)want);
}

int main(void) {
        mcd_time_t t;
        char buf[MCD_TIME_BUFSZ];

        roundtrip("1970-01-01T00:00:00.000Z", 0);
        roundtrip("2026-01-05T10:00:00.000Z", 1767607200000LL);
        roundtrip("2024-02-29T23:59:59.999Z", 1709251199999LL);
        roundtrip("1969-12-31T23:59:59.999Z", -1);
        ok(mcd_time_parse("2026-03-01T09:00:00Z", &t) == 0 && t == 1772355600000LL, "no fraction");
        ok(mcd_time_parse("2026-03-01T09:00:00.5Z", &t) == 0 && t == 1772355600500LL, "one fraction digit");
        ok(mcd_time_parse("2026-03-01T09:00:00.123456Z", &t) == 0 && t == 1772355600123LL, "microseconds truncated");
        ok(mcd_time_parse("2026-03-01T09:00:00.000+00:00", &t) == 0, "+00:00 zone");
        ok(mcd_time_parse("2026-03-01T09:00:00.000", &t) < 0, "zone required");
        ok(mcd_time_parse("2026-03-01 09:00:00Z", &t) < 0, "T required");
        ok(mcd_time_parse("2025-02-29T00:00:00Z", &t) < 0, "no 29 Feb in 2025");
        ok(mcd_time_parse("2026-13-01T00:00:00Z", &t) < 0, "month 13");
        ok(mcd_time_parse("2026-01-01T24:00:00Z", &t) < 0, "hour 24");
        ok(mcd_time_parse("", &t) < 0, "empty");
        ok(mcd_time_parse("2026-01-01T00:00:00.Z", &t) < 0, "empty fraction");
        is_str(mcd_time_format(253402300800000LL, buf), "9999-12-31T23:59:59.999Z", "after 9999 clamped to its end");
        is_str(mcd_time_format(253402300800000LL + 59 * 86400000LL, buf), "9999-12-31T23:59:59.999Z",
               "no 29 February 9999 from a clamped year");
        is_str(mcd_time_format(-62167219200001LL, buf), "0000-01-01T00:00:00.000Z", "before year 0 clamped");
        return tap_done();
}
