# lib.sh -- TAP helpers for the shell tests (sourced).
tap_n=0
tap_failed=0
ok() {  # ok STATUS DESCRIPTION
        tap_n=$((tap_n + 1))
        if [ "$1" -eq 0 ]; then
                echo "ok $tap_n - $2"
        else
                echo "not ok $tap_n - $2"
                tap_failed=$((tap_failed + 1))
        fi
}
diag() { sed 's/^/# /'; }
tap_done() {
        echo "1..$tap_n"
        [ "$tap_failed" -eq 0 ]
}
: "${MCD_BIN:?MCD_BIN must name the multichanneld binary}"
: "${MCD_BUILDDIR:?}"
: "${MCD_SRCDIR:?}"
MCD="${MCD_WRAPPER:+$MCD_WRAPPER }$MCD_BIN"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mcd-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
