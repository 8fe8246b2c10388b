#!/usr/bin/env bash
# Builds mailwire's .deb and checks that it installs and runs, as root.
#
#   packaging/test-deb.sh               on a fresh Debian root (the default, see below)
#   packaging/test-deb.sh --here        on this machine itself (faster; its libraries are
#                                       already there, so it cannot show a missing Depends)
#   packaging/test-deb.sh --no-build    either of the above with the .deb built last time
#
# The fresh root is a minimal Debian of this machine's release (debootstrap --variant=minbase,
# about a minute the first time; kept as a tarball in /var/tmp and unpacked anew for each run),
# entered with its own mount namespace and pivot_root (not chroot, so the window's sandbox
# may make its user namespace there). It shares this machine's kernel and network: apt-get
# reaches the Debian mirror, and the capture sees the real loopback. An X server (Xvfb) runs
# here and its socket is mounted in, so the window is started with only what the package's
# Depends brought in.
#
# The checks themselves are packaging/deb-checks.sh: install with apt-get, --version, the man
# pages, the completions, the desktop entry and icon, the helper's owner, mode and
# capabilities, a user in the mailwire group watching loopback traffic through the helper
# (bounded in time), a user outside it told to join, the window, and apt-get remove leaving
# nothing. Its last line is "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

where=fresh
build=yes
for arg in "$@"; do
    case "$arg" in
        --here) where=here ;;
        --no-build) build=no ;;
        *) echo "usage: $0 [--here] [--no-build]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "test-deb.sh needs root (apt-get install, debootstrap)" >&2; exit 2; }

if [ "$build" = yes ]; then
    packaging/build-deb.sh
fi
deb=$(ls -t target/debian/mailwire_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { echo "no target/debian/mailwire_*.deb: run without --no-build" >&2; exit 1; }
echo "test-deb: $deb ($(stat -c %s "$deb") bytes)"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p' | grep -E '^ (Package|Version|Depends|Recommends):'

if [ "$where" = here ]; then
    exec packaging/deb-checks.sh "$deb"
fi

# --- a fresh Debian root ---
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
base=/var/tmp/mailwire-clean-root-$codename.tar
if [ ! -s "$base" ]; then
    command -v debootstrap >/dev/null || apt-get install -y -q --no-install-recommends debootstrap
    staging=$(mktemp -d /var/tmp/mailwire-debootstrap.XXXXXX)
    echo "test-deb: debootstrap --variant=minbase $codename (once; kept in $base)"
    debootstrap --variant=minbase "$codename" "$staging" "$mirror" >/tmp/mailwire-debootstrap.log 2>&1 ||
        { tail -20 /tmp/mailwire-debootstrap.log; exit 1; }
    tar -C "$staging" -cf "$base.part" . && mv "$base.part" "$base"
    rm -rf "$staging"
fi
out=$PWD/target/deb-test
rm -rf "$out"
mkdir -p "$out"
root=$(mktemp -d /var/tmp/mailwire-clean-root.XXXXXX)
xvfb_pid=
cleanup() {
    [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null
    rm -rf --one-file-system "$root"
}
trap cleanup EXIT
tar -C "$root" -xf "$base"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/root/"
cp packaging/deb-checks.sh "$root/root/"
echo "test-deb: fresh root in $root: $(chroot "$root" dpkg-query -W -f '.' | wc -c) packages before"

display=
if command -v Xvfb >/dev/null; then
    for n in $(seq 90 99); do
        [ -e "/tmp/.X11-unix/X$n" ] || { display=$n; break; }
    done
    if [ -n "$display" ]; then
        Xvfb ":$display" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
        xvfb_pid=$!
        for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$display" ] && break; sleep 0.1; done
    fi
fi

# A mount namespace of its own; the new root becomes its root with pivot_root, the old one
# is unmounted, so nothing of this machine's files is reachable in there.
unshare --mount --propagation private --fork bash -euo pipefail -c '
    root=$1 display=$2 deb=$3 out=$4
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --rbind /sys "$root/sys"
    mount -t tmpfs tmpfs "$root/tmp"
    if [ -n "$display" ]; then
        mkdir -p "$root/tmp/.X11-unix"
        mount --bind /tmp/.X11-unix "$root/tmp/.X11-unix"
    fi
    # The screenshot of the window comes back here.
    mount --bind "$out" "$root/mnt"
    cd "$root"
    mkdir -p .old-root
    pivot_root . .old-root
    # From here on every program is the fresh root'\''s.
    cd /
    umount -l /.old-root 2>/dev/null || echo "test-deb: could not unmount the old root" >&2
    rmdir /.old-root 2>/dev/null || true
    export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    apt-get update -q >/dev/null
    MAILWIRE_CHECK_DISPLAY=${display:+:$display} MAILWIRE_CHECK_OUT=/mnt \
        exec bash /root/deb-checks.sh "/root/$deb"
' _ "$root" "$display" "$(basename "$deb")" "$out"
[ -s "$out/window.png" ] && echo "test-deb: the window as drawn in the fresh root: $out/window.png"
