#!/bin/sh
# layout.sh -- the parts of `multichanneld run` (README "Layout") keep their
# shape: each part includes only the headers of the parts below it (the
# arrows run one way, no circle), and none grows past about 900 lines.
. "$MCD_SRCDIR/tests/lib.sh"

# top to bottom: a part may include the headers of those after it only
PARTS="worker batch apply tasks restore publish intake pair msgq runtime"

rank() {  # rank PART: its place in PARTS, or nothing when it is not a part
        i=0
        for p in $PARTS; do
                [ "$p" = "$1" ] && { echo $i; return; }
                i=$((i + 1))
        done
}

for part in $PARTS; do
        mine=$(rank "$part")
        bad=""
        for f in "$MCD_SRCDIR/daemon/$part.c" "$MCD_SRCDIR/daemon/$part.h"; do
                [ -f "$f" ] || continue
                for dep in $(sed -n 's|^#include "daemon/\([a-z_]*\)\.h"|\1|p' "$f"); do
                        [ "$dep" = "$part" ] && continue
                        theirs=$(rank "$dep")
                        [ -n "$theirs" ] && [ "$theirs" -le "$mine" ] && bad="$bad $(basename "$f")->$dep"
                done
        done
        [ -z "$bad" ]
        ok $? "$part includes only the parts below it${bad:+ (not:$bad)}"
        lines=$(wc -l < "$MCD_SRCDIR/daemon/$part.c")
        [ "$lines" -le 900 ]
        ok $? "daemon/$part.c has $lines lines (at most 900)"
done
tap_done
