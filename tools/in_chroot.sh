#!/bin/sh
# Runs a command in the sid chroot with this checkout bind-mounted at the same path (so
# tools/ and dist/ resolve alike inside and out), /proc, /dev/pts and a /dev/shm mounted,
# and the host's pip settings that point at host-only paths dropped. Several runs may
# share the chroot: the last one to leave unmounts.
# Usage: tools/in_chroot.sh CHROOT_DIR COMMAND...
set -eu
DIR=$(realpath "${1:?usage: in_chroot.sh CHROOT_DIR COMMAND...}")
shift
ROOT=$(realpath "$(dirname "$0")/..")
[ -f "$DIR/.fastmw-provisioned" ] || { echo "no provisioned chroot at $DIR (make chroot-pythons)"; exit 1; }
USERS="$DIR/.fastmw-users"
MOUNTS="$DIR$ROOT $DIR/dev/shm $DIR/dev/pts $DIR/proc"
mkdir -p "$USERS"
touch "$USERS/$$"
cleanup() {
    rm -f "$USERS/$$"
    for user in "$USERS"/*; do  # another live run still needs the mounts
        [ -e "$user" ] || continue
        if kill -0 "${user##*/}" 2>/dev/null; then return 0; fi
        rm -f "$user"
    done
    for m in $MOUNTS; do
        if mountpoint -q "$m"; then umount "$m" 2>/dev/null || umount -l "$m" || true; fi
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mount_once() {  # mount_once TARGET ARGS...
    target=$1; shift
    mkdir -p "$target"
    mountpoint -q "$target" || mount "$@" "$target"
}
mount_once "$DIR/proc" -t proc proc
mount_once "$DIR/dev/pts" -t devpts devpts
mount_once "$DIR/dev/shm" -t tmpfs -o size=256m tmpfs
mount_once "$DIR$ROOT" --bind "$ROOT"
cp /etc/resolv.conf "$DIR/etc/resolv.conf"
cd /
chroot "$DIR" env -u PIP_FIND_LINKS -u PYENV_ROOT -u VIRTUAL_ENV \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PATH=/usr/local/bin:/usr/bin:/bin HOME=/root TMPDIR=/tmp \
    sh -c 'cd "$0" && exec "$@"' "$ROOT" "$@"
