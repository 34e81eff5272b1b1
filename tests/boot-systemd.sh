#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Boots a real systemd as PID 1 in fresh pid/mount/uts/ipc/net/cgroup
# namespaces, on an overlay whose lower layer is the host's / and whose upper
# layer is a tmpfs, so nothing the guest's tmpfiles/sysusers/journald write
# reaches the host. A poor man's systemd-nspawn (not installed here), for tests.
#
#   boot-systemd.sh start DIR [PAYLOAD...]   boot; DIR/pid is systemd's host pid
#   boot-systemd.sh exec DIR CMD...          run CMD inside (all namespaces, its root)
#   boot-systemd.sh stop DIR                 power off, wait, clean up, remove DIR
#
# Each PAYLOAD directory is copied over the guest's / before boot (use it for
# `meson install --destdir PAYLOAD`). The guest boots basic.target only, so the
# host's own enabled services (databases, web servers) stay out of it.

set -eu

SELF=$(readlink -f "$0")
BOOT_TIMEOUT=${BOOT_TIMEOUT:-60}

die() {
        echo "boot-systemd: $*" >&2
        exit 1
}

# Units that want a real machine: the kernel, consoles, hardware. Most skip
# themselves in a container already (ConditionVirtualization=, read-only
# /proc/sys and /sys); masking them too keeps the boot independent of what a
# given host has installed.
MASK=(
        systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket
        systemd-udev-trigger.service systemd-udev-settle.service
        systemd-sysctl.service systemd-binfmt.service systemd-modules-load.service
        proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount
        systemd-remount-fs.service systemd-fsck-root.service
        sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount
        sys-fs-fuse-connections.mount dev-hugepages.mount
        kmod-static-nodes.service systemd-pstore.service systemd-random-seed.service
        systemd-timesyncd.service systemd-firstboot.service systemd-repart.service
        console-getty.service getty.target systemd-ask-password-console.path
        systemd-ask-password-wall.path
)

# The guest's cgroup is a child of ours in the unified (v2) hierarchy; with a
# cgroup namespace rooted there, the guest's systemd sees an empty tree of its
# own and never touches the host's v1 controllers.
cgroup2_dir() {
        local mnt path
        mnt=$(findmnt -n -t cgroup2 -o TARGET | head -n1)
        [ -n "$mnt" ] || return 1
        path=$(sed -n 's/^0::\(.*\)$/\1/p' /proc/self/cgroup)
        echo "${mnt}${path%/}"
}

# Runs as PID 1 of the new namespaces, in a private mount namespace: builds the
# guest's root and becomes its systemd.
inner() {
        local dir=$1 root
        shift
        mount --make-rprivate /

        mkdir -p "$dir/mnt"
        mount -t tmpfs -o mode=0755 makima-boot "$dir/mnt"
        mkdir "$dir/mnt/upper" "$dir/mnt/work" "$dir/mnt/root"
        root=$dir/mnt/root
        mount -t overlay -o "lowerdir=/,upperdir=$dir/mnt/upper,workdir=$dir/mnt/work" makima-boot "$root"

        # Through the host's /lib → usr/lib style links, so that a payload's
        # lib/systemd/system adds to /usr/lib instead of hiding it.
        local p
        for p in "$@"; do
                tar -C "$p" -cf - . | tar -C "$root" -xf - --keep-directory-symlink
        done

        mount -t proc proc "$root/proc"
        # As in nspawn, the guest may not change the host's kernel settings
        # (its PID 1 raises fs.file-max at boot, for one).
        mount --bind "$root/proc/sys" "$root/proc/sys"
        mount -o remount,bind,ro "$root/proc/sys"
        if [ -e "$root/proc/sysrq-trigger" ]; then
                mount --bind "$root/proc/sysrq-trigger" "$root/proc/sysrq-trigger"
                mount -o remount,bind,ro "$root/proc/sysrq-trigger"
        fi

        mount --rbind /sys "$root/sys"
        umount -R "$root/sys/fs/cgroup" 2>/dev/null || true
        mount -o remount,bind,ro "$root/sys"
        mount -t cgroup2 -o nsdelegate cgroup2 "$root/sys/fs/cgroup" 2>/dev/null ||
                mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"

        # A minimal /dev: no host disks, no host console.
        mount -t tmpfs -o mode=0755,nosuid makima-dev "$root/dev"
        for p in null zero full random urandom tty; do
                touch "$root/dev/$p"
                mount --bind "/dev/$p" "$root/dev/$p"
        done
        mkdir "$root/dev/pts" "$root/dev/shm" "$root/dev/mqueue"
        mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$root/dev/pts"
        ln -s pts/ptmx "$root/dev/ptmx"
        mount -t tmpfs -o mode=1777,nosuid,nodev makima-shm "$root/dev/shm"
        ln -s /proc/self/fd "$root/dev/fd"
        ln -s /proc/self/fd/0 "$root/dev/stdin"
        ln -s /proc/self/fd/1 "$root/dev/stdout"
        ln -s /proc/self/fd/2 "$root/dev/stderr"

        mount -t tmpfs -o mode=0755,nosuid,nodev makima-run "$root/run"
        mount -t tmpfs -o mode=1777,nosuid,nodev makima-tmp "$root/tmp"

        # The kernel lets a user namespace (bwrap, for makima's agents) mount
        # a new /proc only if a /proc without anything mounted over parts of
        # it is already visible (mount_too_revealing()): this one, which
        # nothing in the guest uses otherwise.
        mkdir -p "$root/run/boot-systemd/proc"
        mount -t proc proc "$root/run/boot-systemd/proc"

        mkdir -p "$root/etc/systemd/system"
        for p in "${MASK[@]}"; do
                ln -sf /dev/null "$root/etc/systemd/system/$p"
        done

        mkdir -p "$root/.oldroot"
        cd "$root"
        pivot_root . .oldroot
        umount -l /.oldroot
        rmdir /.oldroot

        exec env -i container=makima-boot PATH=/usr/sbin:/usr/bin:/sbin:/bin \
                /lib/systemd/systemd --system --unit=basic.target
}

start() {
        local dir=$1 cg launcher i pid=
        shift
        [ "$(id -u)" = 0 ] || die "must run as root"
        mkdir -p "$dir"
        dir=$(cd "$dir" && pwd)
        for p in "$@"; do
                [ -d "$p" ] || die "payload $p is not a directory"
        done

        cg=$(cgroup2_dir) || die "no cgroup2 hierarchy mounted"
        cg=$cg/makima-boot-$$-$(date +%s%N)
        mkdir "$cg"
        echo "$cg" >"$dir/cgroup"

        # The launcher moves itself into the new cgroup, then becomes unshare,
        # whose forked child is the guest's PID 1. Its output goes to a file so
        # that no caller waits on a pipe it holds.
        (
                echo "$BASHPID" >"$cg/cgroup.procs"
                exec unshare --pid --fork --kill-child --mount --uts --ipc --net --cgroup \
                        --propagation private "$SELF" __inner "$dir" "$@"
        ) </dev/null >"$dir/boot.log" 2>&1 &
        launcher=$!
        echo "$launcher" >"$dir/unshare.pid"

        for ((i = 0; i < 100; i++)); do
                pid=$(cat "/proc/$launcher/task/$launcher/children" 2>/dev/null | awk '{print $1}')
                if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd ]; then
                        break
                fi
                pid=
                kill -0 "$launcher" 2>/dev/null || break
                sleep 0.1
        done
        if [ -z "$pid" ]; then
                cat "$dir/boot.log" >&2
                stop "$dir"
                die "systemd did not start"
        fi
        echo "$pid" >"$dir/pid"

        # Wait for the manager's bus socket before asking it anything.
        for ((i = 0; i < 100; i++)); do
                [ -S "/proc/$pid/root/run/systemd/private" ] && break
                sleep 0.1
        done

        local state
        state=$(timeout "$BOOT_TIMEOUT" "$SELF" exec "$dir" systemctl is-system-running --wait) || true
        echo "$state" >"$dir/state"
        if [ "$state" != running ]; then
                echo "boot-systemd: system is '$state'" >&2
                "$SELF" exec "$dir" systemctl --no-pager --failed >&2 || true
        fi
        echo "$pid"
}

exec_inside() {
        local dir=$1 pid
        shift
        pid=$(cat "$dir/pid") || die "$dir is not a booted guest"
        exec nsenter -t "$pid" -a -r -w \
                env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
                HOME=/root TERM=dumb SYSTEMD_PAGER= LANG=C.UTF-8 "$@"
}

stop() {
        local dir=$1 pid launcher cg i
        [ -d "$dir" ] || return 0
        pid=$(cat "$dir/pid" 2>/dev/null) || pid=
        launcher=$(cat "$dir/unshare.pid" 2>/dev/null) || launcher=

        # SIGRTMIN+4 asks systemd for poweroff.target; its final reboot(2) in a
        # pid namespace just ends the namespace.
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
                kill -s RTMIN+4 "$pid" 2>/dev/null || true
        fi
        if [ -n "$launcher" ]; then
                for ((i = 0; i < 300; i++)); do
                        kill -0 "$launcher" 2>/dev/null || break
                        sleep 0.1
                done
                if kill -0 "$launcher" 2>/dev/null; then
                        echo "boot-systemd: no clean poweroff after 30s, killing" >&2
                        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
                        kill -KILL "$launcher" 2>/dev/null || true
                        for ((i = 0; i < 100; i++)); do
                                kill -0 "$launcher" 2>/dev/null || break
                                sleep 0.1
                        done
                fi
        fi

        # The mounts lived in the guest's mount namespace and went with it;
        # the cgroups are left, empty once the last process is reaped.
        cg=$(cat "$dir/cgroup" 2>/dev/null) || cg=
        if [ -n "$cg" ] && [ -d "$cg" ]; then
                for ((i = 0; i < 50; i++)); do
                        find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
                        [ -d "$cg" ] || break
                        sleep 0.1
                done
                [ -d "$cg" ] && echo "boot-systemd: could not remove $cg" >&2
        fi
        rm -rf "$dir"
}

case "${1:-}" in
start)
        [ $# -ge 2 ] || die "usage: $0 start DIR [PAYLOAD...]"
        shift
        start "$@"
        ;;
exec)
        [ $# -ge 3 ] || die "usage: $0 exec DIR CMD..."
        shift
        exec_inside "$@"
        ;;
stop)
        [ $# -eq 2 ] || die "usage: $0 stop DIR"
        stop "$2"
        ;;
__inner)
        shift
        inner "$@"
        ;;
*)
        die "usage: $0 start|exec|stop DIR …"
        ;;
esac
