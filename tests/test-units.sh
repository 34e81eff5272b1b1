#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Checks the installed units, tmpfiles.d, sysusers.d and D-Bus policy as a
# package would ship them: `meson install --destdir`, then systemd's own
# tools on the result. `systemd-analyze verify` runs in a chroot of that
# install laid over the host's /, so it sees the real ExecStart= binaries,
# the man pages and every unit ours depend on; any line it prints fails.
#
#   test-units.sh BUILD_DIR

set -eu

build=$(cd "${1:?usage: test-units.sh BUILD_DIR}" && pwd)
MESON=${MESON:-meson}

UNITS=(makima-api.socket makima-api.service makima-worker@.service
       makima-cleanup.service makima-cleanup.timer makima.target)
# Exposure levels ×10, as --threshold= takes them: 25 is "2.5".
API_THRESHOLD=25
CLEANUP_THRESHOLD=25

fail() {
        echo "FAIL: $*" >&2
        exit 1
}

tmp=$(mktemp -d --tmpdir makima-test-units.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 143' TERM INT
dest=$tmp/dest

"$MESON" install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null

unitdir=$(find "$dest" -name makima-api.socket -printf '%h\n' | head -n1)
[ -n "$unitdir" ] || fail "makima-api.socket was not installed"
unitdir=${unitdir#"$dest"}
echo "units installed to $unitdir"
for u in "${UNITS[@]}"; do
        [ -f "$dest$unitdir/$u" ] || fail "$u was not installed to $unitdir"
done

# The executables the units name are the ones meson installed.
for u in makima-api.service makima-worker@.service makima-cleanup.service; do
        exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$dest$unitdir/$u")
        [ -n "$exe" ] || fail "$u has no ExecStart="
        [ -x "$dest$exe" ] || fail "$u runs $exe, which meson did not install"
done

# ---- systemd-analyze verify ----
if [ "$(id -u)" = 0 ] && grep -qw overlay /proc/filesystems; then
        mkdir "$tmp/root"
        verify_out=$tmp/verify.out
        paths=()
        for u in "${UNITS[@]}"; do
                paths+=("$unitdir/$u")
        done
        # A read-only overlay, in a private mount namespace: nothing reaches
        # the host, and it all goes away with the namespace. The install is
        # copied to a tmpfs first (overlayfs refuses a layer inside another),
        # through the host's /lib → usr/lib style links, so that on a
        # merged-/usr system it adds to /usr/lib rather than hiding it.
        mkdir "$tmp/layer"
        rc=0
        unshare --mount --propagation private -- /bin/sh -euc '
                dest=$1 root=$2 layer=$3
                shift 3
                mount -t tmpfs makima-verify "$layer"
                for l in /*; do
                        [ -L "$l" ] && cp -P "$l" "$layer/"
                done
                tar -C "$dest" -cf - . | tar -C "$layer" -xf - --keep-directory-symlink
                mount -t overlay -o "lowerdir=$layer:/" makima-verify "$root"
                mount -t proc proc "$root/proc"
                mount --rbind /dev "$root/dev"
                mount -t tmpfs tmpfs "$root/run"
                mount -t tmpfs tmpfs "$root/tmp"
                exec chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
                        systemd-analyze verify --man=no "$@"
        ' sh "$dest" "$tmp/root" "$tmp/layer" "${paths[@]}" >"$verify_out" 2>&1 || rc=$?
        if [ "$rc" != 0 ] || [ -s "$verify_out" ]; then
                cat "$verify_out" >&2
                fail "systemd-analyze verify (exit status $rc)"
        fi
        echo "systemd-analyze verify: ${#UNITS[@]} units, no warnings"
else
        echo "systemd-analyze verify: needs root and overlayfs, not run" >&2
        verify_skipped=1
fi

# ---- Documentation= ----
# Every man page a unit names is one this install provides (checked here
# rather than by verify --man=yes, which needs man-db and would accept a
# page from anywhere on the host).
for u in "${UNITS[@]}"; do
        for ref in $(sed -n 's/^Documentation=//p' "$dest$unitdir/$u"); do
                [[ "$ref" =~ ^man:([^()]+)\(([0-9])\)$ ]] || fail "$u: Documentation=$ref is not man:PAGE(SECTION)"
                page=${BASH_REMATCH[1]} section=${BASH_REMATCH[2]}
                [ -n "$(find "$dest" -path "*/man/man$section/$page.$section*" | head -n1)" ] ||
                        fail "$u: Documentation=$ref, but meson installs no $page.$section"
        done
done
echo "Documentation=: every man page named is installed"

# ---- systemd-analyze security ----
security() {
        local unit=$1 threshold=$2 out rc=0
        out=$(systemd-analyze security --offline=true --threshold="$threshold" \
                "$dest$unitdir/$unit" 2>&1) || rc=$?
        level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
        [ -n "$level" ] || { echo "$out" >&2; fail "no exposure level for $unit"; }
        echo "exposure level of $unit: $level (threshold $((threshold / 10)).$((threshold % 10)))"
        if [ "$rc" != 0 ]; then
                grep '✗' <<<"$out" >&2 || true
                fail "$unit is more exposed than $((threshold / 10)).$((threshold % 10))"
        fi
}
security makima-api.service "$API_THRESHOLD"
security makima-cleanup.service "$CLEANUP_THRESHOLD"
# The worker gives up some sandboxing so that bwrap can build the agents'
# sandboxes, and holds CAP_SETUID, CAP_SETGID and CAP_KILL and a delegated
# cgroup so that no agent is ever its own user and every agent is limited
# and killed as a whole (see the unit): its level is shown, and kept at or
# under 3.5.
security makima-worker@.service 35

# ---- sysusers.d and tmpfiles.d, applied to an empty root ----
sysusers=$(find "$dest" -path '*/sysusers.d/makima.conf' | head -n1)
tmpfiles=$(find "$dest" -path '*/tmpfiles.d/makima.conf' | head -n1)
[ -n "$sysusers" ] || fail "sysusers.d/makima.conf was not installed"
[ -n "$tmpfiles" ] || fail "tmpfiles.d/makima.conf was not installed"
sroot=$tmp/sysroot
mkdir -p "$sroot/etc"
systemd-sysusers --root="$sroot" "$sysusers"
grep -q '^makima:' "$sroot/etc/group" || fail "sysusers did not create the group makima"
IFS=: read -r _ _ uid gid _ home shell < <(grep '^makima:' "$sroot/etc/passwd") ||
        fail "sysusers did not create the user makima"
mgid=$(awk -F: '$1 == "makima" { print $3 }' "$sroot/etc/group")
[ "$gid" = "$mgid" ] || fail "user makima's group is $gid, not makima ($mgid)"
[ "$home" = /var/lib/makima ] || fail "user makima's home is $home"
[ "$uid" -lt 1000 ] || fail "user makima is not a system user (uid $uid)"
echo "sysusers: makima uid $uid gid $gid home $home shell $shell"
# The agents' user: a system user of its own, no home, in no group but its
# own (never makima's, whose members administer the API); makima in its group.
IFS=: read -r _ _ auid agid _ ahome ashell < <(grep '^makima-agent:' "$sroot/etc/passwd") ||
        fail "sysusers did not create the user makima-agent"
[ "$auid" -lt 1000 ] && [ "$auid" != 0 ] && [ "$auid" != "$uid" ] || fail "makima-agent has uid $auid"
agroup=$(grep '^makima-agent:' "$sroot/etc/group") || fail "sysusers did not create the group makima-agent"
[ "$(cut -d: -f3 <<<"$agroup")" = "$agid" ] || fail "makima-agent's group is $agid, not makima-agent"
[ "$(cut -d: -f4 <<<"$agroup")" = makima ] || fail "the group makima-agent holds '$(cut -d: -f4 <<<"$agroup")', not makima"
! grep '^makima:' "$sroot/etc/group" | cut -d: -f4 | tr ',' '\n' | grep -qx makima-agent ||
        fail "makima-agent is in the group makima"
case "$ashell" in */nologin | */false) ;; *) fail "makima-agent may log in ($ashell)" ;; esac
echo "sysusers: makima-agent uid $auid gid $agid home $ahome, group members: makima"

if [ "$(id -u)" = 0 ]; then
        out=$(systemd-tmpfiles --root="$sroot" --create "$tmpfiles" 2>&1) ||
                { echo "$out" >&2; fail "systemd-tmpfiles --create"; }
        [ -z "$out" ] || { echo "$out" >&2; fail "systemd-tmpfiles printed warnings"; }
        check_dir() {
                local got
                got=$(stat -c '%a %u %g' "$sroot$1") || fail "tmpfiles did not create $1"
                [ "$got" = "$2" ] || fail "$1 is '$got', expected '$2'"
        }
        check_dir /run/makima "750 0 $mgid"
        check_dir /var/lib/makima "750 $uid $mgid"
        echo "tmpfiles: /run/makima and /var/lib/makima created as expected"
fi

# ---- D-Bus policy: a bus daemon accepts it ----
policy=$(find "$dest" -path '*/dbus-1/system.d/org.makima1.conf' | head -n1)
[ -n "$policy" ] || fail "org.makima1.conf was not installed to a dbus-1/system.d"
case "${policy#"$dest"}" in
/usr/share/dbus-1/system.d/* | /etc/dbus-1/system.d/*) ;;
*) fail "${policy#"$dest"}: the system bus does not read that directory; install dbus-1.pc (libdbus-1-dev) or set -Ddbuspolicydir=" ;;
esac
cat >"$tmp/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$tmp/bus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default"><allow user="*"/></policy>
  <include>$policy</include>
</busconfig>
EOF
# dbus-daemon exits at once, with the reason, on a policy it cannot parse.
dbus-daemon --config-file="$tmp/bus.conf" --nofork --nopidfile --print-address=1 \
        >"$tmp/bus.out" 2>&1 &
bus=$!
for ((i = 0; i < 50; i++)); do
        [ -s "$tmp/bus.out" ] && break
        sleep 0.1
done
if ! kill -0 "$bus" 2>/dev/null || ! grep -q "^unix:path=$tmp/bus.sock" "$tmp/bus.out"; then
        cat "$tmp/bus.out" >&2
        kill "$bus" 2>/dev/null || true
        fail "dbus-daemon rejected org.makima1.conf"
fi
kill "$bus"
wait "$bus" 2>/dev/null || true
echo "dbus-daemon accepts ${policy#"$dest"}"

[ -z "${verify_skipped:-}" ] || exit 77
echo "all unit checks passed"
