#!/bin/sh
# systemd_unit.sh -- the files multichanneld ships for systemd, checked with
# systemd's own tools: `systemd-analyze verify` on the unit (its ExecStart
# pointed at the built binary, its man page reachable), the exposure score of
# `systemd-analyze security --offline=true` (printed, and held at 1.5 or
# lower), the sysusers.d and tmpfiles.d snippets applied to a scratch root,
# the man page rendered without warnings, and the default configuration file
# valid as shipped and with every key uncommented.
#
# systemd-analyze comes with the `systemd` package, which tests/setup.sh
# installs: a missing one is a failure, not a skip.
. "$MCD_SRCDIR/tests/lib.sh"

MAX_EXPOSURE=1.5
unit_in="$MCD_SRCDIR/systemd/multichanneld.service.in"
unit="$TMP/multichanneld.service"

command -v systemd-analyze > /dev/null 2>&1
ok $? "systemd-analyze is installed (package systemd, see tests/setup.sh)"

# The unit as `make install` writes it, but starting the binary just built.
sed "s|@bindir@/multichanneld|$MCD_BIN|g" "$unit_in" > "$unit"
! grep -q '@[a-z]*@' "$unit"
ok $? "every @variable@ of the unit is substituted"
grep -q "^ExecStart=$MCD_BIN run\$" "$unit"
ok $? "ExecStart runs the daemon"

# Documentation=man:multichanneld(8) must resolve: verify runs man(1).
mkdir -p "$TMP/man/man8"
cp "$MCD_SRCDIR/daemon/multichanneld.8" "$TMP/man/man8/"
if command -v man > /dev/null 2>&1; then
        man_opt=--man=yes
else
        man_opt=--man=no
        echo "# man(1) is not installed: Documentation= not checked"
fi
(cd "$TMP" && MANPATH="$TMP/man" systemd-analyze verify $man_opt "$unit") > "$TMP/verify.out" 2>&1
st=$?
diag < "$TMP/verify.out"
[ "$st" -eq 0 ] && [ ! -s "$TMP/verify.out" ]
ok $? "systemd-analyze verify is clean"

systemd-analyze security --offline=true --no-pager "$unit" > "$TMP/security.out" 2>&1
grep -E '^✗|Overall' "$TMP/security.out" | diag
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$TMP/security.out")
echo "# systemd-analyze security --offline=true: exposure ${score:-unknown} (at most $MAX_EXPOSURE)"
[ -n "$score" ] && awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'
ok $? "exposure level ${score:-unknown} is $MAX_EXPOSURE or lower"

# The dedicated user, in a scratch root.
root="$TMP/root"
mkdir -p "$root/etc"
systemd-sysusers --root="$root" "$MCD_SRCDIR/systemd/multichanneld.sysusers" > "$TMP/sysusers.out" 2>&1
st=$?
diag < "$TMP/sysusers.out"
[ "$st" -eq 0 ] && grep -q '^multichanneld:x:[0-9]*:[0-9]*:.*:/:/usr/sbin/nologin$' "$root/etc/passwd" &&
        grep -q '^multichanneld:x:' "$root/etc/group"
ok $? "sysusers.d creates the multichanneld system user and group"

# The configuration directory, in the same root: owned by root, group
# multichanneld, 0750; the file 0640.  Changing ownership needs root.
mkdir -p "$root/etc/multichanneld"
cp "$MCD_SRCDIR/systemd/multichanneld.conf" "$root/etc/multichanneld/"
chmod 0644 "$root/etc/multichanneld/multichanneld.conf"
chmod 0755 "$root/etc/multichanneld"
if [ "$(id -u)" -eq 0 ]; then
        systemd-tmpfiles --root="$root" --create "$MCD_SRCDIR/systemd/multichanneld.tmpfiles" > "$TMP/tmpfiles.out" 2>&1
        st=$?
        diag < "$TMP/tmpfiles.out"
        gid=$(sed -n 's/^multichanneld:x:\([0-9]*\):.*/\1/p' "$root/etc/group")
        [ "$st" -eq 0 ] &&
                [ "$(stat -c '%a %u %g' "$root/etc/multichanneld")" = "750 0 $gid" ] &&
                [ "$(stat -c '%a %u %g' "$root/etc/multichanneld/multichanneld.conf")" = "640 0 $gid" ]
        ok $? "tmpfiles.d gives /etc/multichanneld 0750 and its file 0640, group multichanneld"
else
        echo "ok $((tap_n = tap_n + 1)) - tmpfiles.d # SKIP needs root to change ownership"
fi

# The default configuration file: valid as shipped (everything commented),
# and with every commented key set to the default it shows.
"$MCD_BIN" check-config -c "$MCD_SRCDIR/systemd/multichanneld.conf" > "$TMP/check.out" 2>&1
st=$?
diag < "$TMP/check.out"
ok $st "the shipped multichanneld.conf passes check-config"
sed -n 's/^#\([a-z][a-z_.]* = .*\)/\1/p' "$MCD_SRCDIR/systemd/multichanneld.conf" |
        grep -v -e '^kafka\.sasl\.' -e '^kafka\.security\.' > "$TMP/uncommented.conf"
n_keys=$(wc -l < "$TMP/uncommented.conf")
"$MCD_BIN" check-config -c "$TMP/uncommented.conf" > "$TMP/check.out" 2>&1
st=$?
diag < "$TMP/check.out"
ok $st "with its $n_keys example keys uncommented it passes check-config"
missing=""
for k in topic.relationships topic.subscriptions topic.outcomes topic.dlq topic.changelog redis.host \
         redis.port redis.db redis.password redis.key_prefix redis.timeout redis.sentinels redis.master_name park_grace merge_wait \
         batch.max_events batch.max_bytes cache.max_bytes batch.threads batch.wait buffer.max_events schemas.dir metrics.listen log.level status.interval group_offsets.interval \
         kafka.bootstrap.servers \
         kafka.group.id; do
        grep -q "^#$k =" "$MCD_SRCDIR/systemd/multichanneld.conf" || missing="$missing $k"
        grep -q "^\\.BR* $k\\( \\|\$\\)" "$MCD_SRCDIR/daemon/multichanneld.8" || missing="$missing $k(8)"
done
echo "# missing:${missing:- none}"
[ -z "$missing" ]
ok $? "every configuration key is in multichanneld.conf and in multichanneld(8)"

# The man page renders without a warning.
if command -v groff > /dev/null 2>&1; then
        groff -man -Tutf8 -ww -z "$MCD_SRCDIR/daemon/multichanneld.8" > "$TMP/groff.out" 2>&1
        st=$?
        for w in 60 80 120; do
                groff -man -Tutf8 -ww -z -rLL=${w}n "$MCD_SRCDIR/daemon/multichanneld.8" >> "$TMP/groff.out" 2>&1
        done
        diag < "$TMP/groff.out"
        [ "$st" -eq 0 ] && [ ! -s "$TMP/groff.out" ]
        ok $? "multichanneld(8) renders without warnings (groff -man -ww)"
else
        echo "ok $((tap_n = tap_n + 1)) - multichanneld(8) # SKIP groff is not installed"
fi
tap_done
