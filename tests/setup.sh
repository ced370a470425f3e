#!/bin/sh
# setup.sh -- all set-up on a fresh Debian 12 machine: installs the build and
# test dependencies with apt-get (as root, or through sudo), then configures
# and builds multichanneld out of tree in ./build (or $1).
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
builddir=${1:-build}
shift 2>/dev/null || true

PACKAGES="build-essential clang libclang-rt-14-dev librdkafka-dev libavro-dev libhiredis-dev libsystemd-dev libjansson-dev
libmicrohttpd-dev libcurl4-openssl-dev libxxhash-dev libzstd-dev libjemalloc-dev redis-server redis-sentinel kcat autoconf automake libtool pkg-config valgrind systemd"

missing=""
for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
        echo "setup: installing$missing" >&2
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO=sudo
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get update -q
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing </dev/null
fi

[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] || autoreconf -fi
mkdir -p "$builddir"
cd "$builddir"
[ -f Makefile ] || "$top/configure" "$@"
make -j"$(nproc)"
