#!/bin/sh
# fuzz.sh -- the bounded fuzz run of the test suite: builds the libFuzzer
# targets of tests/fuzz/ (Avro decoding and outbox frames, JSON lines, the
# replay driver, the state JSON) with clang into $MCD_BUILDDIR/fuzz, replays
# the saved regression inputs, then fuzzes each target for MCD_FUZZ_SECONDS
# (default 60) from its seed corpus.  The TAP lines (run counts, crashes) are
# tests/fuzz/run.sh's.  Never skipped: clang is a build dependency
# (tests/setup.sh installs it).
. "$MCD_SRCDIR/tests/lib.sh"

TMPDIR=$TMP sh "$MCD_SRCDIR/tests/fuzz/run.sh" "$MCD_BUILDDIR/fuzz"
exit $?
