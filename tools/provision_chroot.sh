#!/bin/sh
# Provisions CPython 3.14 and 3.15 from Debian sid's packages in a debootstrap chroot
# (reused when its stamp exists). Usage: tools/provision_chroot.sh DIR [ARCH]
# The mirror is the one this machine's apt sources use; it is a frozen snapshot, so
# apt's Valid-Until check is off. Needs root (debootstrap, chroot).
set -eu
DIR=${1:?usage: provision_chroot.sh DIR [ARCH]}
ARCH=${2:-}
STAMP="$DIR/.fastmw-provisioned"
# logrotate: tests/test_sink_disk.py rotates the sink's file with it (as `make test` installs it on the host).
PACKAGES="python3.14-dev python3.14-venv python3.15-dev python3.15-venv gcc libc6-dev make ca-certificates logrotate"
# A chroot made before a package joined the list gets the missing ones installed below.
if [ -f "$STAMP" ] && chroot "$DIR" dpkg -s $PACKAGES >/dev/null 2>&1; then
    echo "chroot $DIR ready (reused)"
    exit 0
fi

mirror() {
    # deb822 (URIs:) or one-line (deb URL suite) sources; the first Debian archive wins.
    for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        url=$(sed -n -e 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/\{0,1\}$/\1/p' \
            -e 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\/debian\)\/\{0,1\}[[:space:]].*/\2/p' "$f" | head -n1)
        [ -n "$url" ] && { echo "$url"; return; }
    done
    echo http://deb.debian.org/debian
}
MIRROR=$(mirror)
command -v debootstrap >/dev/null || apt-get install -y debootstrap
if [ -n "$ARCH" ] && [ "$ARCH" != "$(dpkg --print-architecture)" ]; then
    command -v qemu-aarch64-static >/dev/null || apt-get install -y qemu-user-static binfmt-support
    ARCHOPT="--arch=$ARCH"
else
    ARCHOPT=""
fi
mkdir -p "$DIR"
[ -x "$DIR/usr/bin/apt-get" ] || debootstrap --variant=minbase $ARCHOPT sid "$DIR" "$MIRROR"
cp /etc/resolv.conf "$DIR/etc/resolv.conf"
mountpoint -q "$DIR/proc" || mount -t proc proc "$DIR/proc"
trap 'umount "$DIR/proc" 2>/dev/null || true' EXIT
chroot "$DIR" apt-get -o Acquire::Check-Valid-Until=false update
chroot "$DIR" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES
# pip inside the chroot verifies TLS with the host's CA bundle (the same proxy/CAs as the host).
mkdir -p "$DIR/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$DIR/etc/ssl/certs/ca-certificates.crt"
touch "$STAMP"
echo "chroot $DIR ready: $(chroot "$DIR" python3.14 -V) $(chroot "$DIR" python3.15 -V)"
