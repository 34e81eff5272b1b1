#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# makima under a real systemd: installs the build into a guest booted by
# tests/boot-systemd.sh (systemd as PID 1 in its own namespaces, on an
# overlay of the host), then drives it the way an administrator would:
# socket activation, the CLI over the Unix socket, the journal, the state
# directory, restarts, the D-Bus policy, a worker, the cleanup job.
#
#   test-systemd.sh BUILD_DIR

set -eu

build=$(cd "${1:?usage: test-systemd.sh BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
boot=$here/boot-systemd.sh
MESON=${MESON:-meson}

skip() {
        echo "SKIP: $*" >&2
        exit 77
}

[ "$(id -u)" = 0 ] || skip "needs root"
for c in unshare nsenter pivot_root findmnt; do
        command -v "$c" >/dev/null || skip "$c is not installed"
done
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
grep -qw overlay /proc/filesystems || skip "no overlayfs"
findmnt -n -t cgroup2 >/dev/null || skip "no cgroup2 hierarchy"
unshare --mount --pid --fork --net --uts --ipc --cgroup true 2>/dev/null ||
        skip "cannot create namespaces"

tmp=$(mktemp -d --tmpdir makima-test-systemd.XXXXXX)
guest=$tmp/guest

cleanup() {
        local rc=$?
        if [ "$rc" != 0 ] && [ -f "$guest/pid" ]; then
                echo "---- guest journal (last 150 lines) ----" >&2
                "$boot" exec "$guest" journalctl -b --no-pager -n 150 >&2 || true
                echo "---- failed units ----" >&2
                "$boot" exec "$guest" systemctl --no-pager --failed >&2 || true
        fi
        "$boot" stop "$guest" || true
        rm -rf "$tmp"
        exit "$rc"
}
trap cleanup EXIT
# A timeout's SIGTERM must still tear the guest down.
trap 'exit 143' TERM INT

fail() {
        echo "FAIL: $*" >&2
        exit 1
}

step() {
        echo "== $*"
}

# Runs a command inside the guest.
g() {
        "$boot" exec "$guest" "$@"
}

# Runs a command inside the guest as USER:GROUP with USER's groups.
as() {
        local user=$1 group=$2
        shift 2
        g setpriv --reuid="$user" --regid="$group" --init-groups "$@"
}

# Runs curl in the guest and prints the HTTP status.
http_status() {
        g curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$@"
}

expect_state() {
        local unit=$1 want=$2 got
        got=$(g systemctl is-active "$unit" || true)
        [ "$got" = "$want" ] || fail "$unit is '$got', expected '$want'"
}

# For units stopped or started as a side effect, whose jobs systemctl does
# not wait for.
wait_state() {
        local unit=$1 want=$2 got i
        for ((i = 0; i < 150; i++)); do
                got=$(g systemctl is-active "$unit" || true)
                [ "$got" = "$want" ] && return 0
                sleep 0.2
        done
        fail "$unit is '$got', expected '$want'"
}

# ---- install and boot ----
step "install into a payload and boot"
"$MESON" install -C "$build" --destdir "$tmp/payload" --no-rebuild --quiet >/dev/null
cli=$(find "$tmp/payload" -path '*/bin/makima' -type f | head -n1)
[ -n "$cli" ] || fail "meson did not install the makima CLI"
cli=${cli#"$tmp/payload"}
worker_unit=$(find "$tmp/payload" -name 'makima-worker@.service' | head -n1)
[ -n "$worker_unit" ] || fail "meson did not install makima-worker@.service"

# The agent is tests/fake-agent, a scripted stand-in for the Claude Code CLI
# that speaks its stream-json; the worker only polls hourly, so a task starts
# at once only if the API's D-Bus wake-up reaches the worker.
[ -x "$build/tests/fake-agent" ] || fail "$build/tests/fake-agent is not built"
install -D -m 0755 "$build/tests/fake-agent" "$tmp/payload/usr/local/libexec/makima-fake-agent"
# The configuration lives where the build's sysconfdir says (/etc for a
# --prefix=/usr build, /usr/local/etc by default): find the installed file.
conf=$(find "$tmp/payload" -path '*/makima/makima.conf' -type f | head -n1)
[ -n "$conf" ] || fail "meson did not install makima.conf"
mkdir -p "$conf.d"
cat >"$conf.d/50-test-systemd.conf" <<EOF
[Worker]
PollIntervalSec=3600

[Agent]
Command=/usr/local/libexec/makima-fake-agent
EOF

# A build with -Db_sanitize=address: LeakSanitizer stops the process's
# threads with ptrace() at exit, which the units' @system-service filter
# refuses (the service then fails on every stop). The programs that end by
# themselves (cleanup, the sandbox probe) may ptrace() here. The daemons that
# systemd stops run without LeakSanitizer, under the filters as shipped:
# systemd follows SIGTERM with SIGCONT, and a SIGCONT that arrives after the
# tracer's PTRACE_ATTACH but before the daemon has stopped discards the
# SIGSTOP that attaching queued. The tracer then waits for a stop that never
# comes, the daemon spins in sched_yield() waiting for the tracer, and
# TimeoutStopSec= kills both. Their leaks are for the integration tests to
# find, which stop them with SIGTERM alone.
sanitize=$("$MESON" introspect --buildoptions "$build" |
        python3 -c 'import json, sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "b_sanitize"))')
if [[ "$sanitize" == *address* ]]; then
        dropin() {
                mkdir -p "$tmp/payload/etc/systemd/system/$1.d"
                printf '[Service]\n%s\n' "$2" >"$tmp/payload/etc/systemd/system/$1.d/50-leak-sanitizer.conf"
        }
        dropin makima-api.service Environment=ASAN_OPTIONS=detect_leaks=0
        dropin makima-worker@.service Environment=ASAN_OPTIONS=detect_leaks=0
        dropin makima-cleanup.service SystemCallFilter=ptrace
        dropin makima-sandbox-probe@.service SystemCallFilter=ptrace
        echo "sanitizer build ($sanitize): LeakSanitizer may ptrace() in the cleanup and the sandbox probe, is off in the daemons"
fi

start=$(date +%s%N)
"$boot" start "$guest" "$tmp/payload" >/dev/null
state=$(cat "$guest/state")
echo "booted in $((($(date +%s%N) - start) / 1000000)) ms, system is $state"
[ "$state" = running ] || fail "guest system is '$state', not 'running'"

step "sysusers and tmpfiles ran at boot"
g getent passwd makima >/dev/null || fail "no user makima in the guest"
g getent passwd makima-agent >/dev/null || fail "no user makima-agent in the guest"
g id -nG makima | tr ' ' '\n' | grep -qx makima-agent || fail "makima is not in the group makima-agent: $(g id makima)"
! g id -nG makima-agent | tr ' ' '\n' | grep -qx makima || fail "makima-agent is in the group makima: $(g id makima-agent)"
got=$(g stat -c '%a %U %G' /run/makima)
[ "$got" = "750 root makima" ] || fail "/run/makima is '$got'"

# ---- socket activation ----
step "socket activation"
g systemctl enable --now makima-api.socket
expect_state makima-api.socket active
expect_state makima-api.service inactive
got=$(g stat -c '%a %U %G' /run/makima/api.sock)
[ "$got" = "660 root makima" ] || fail "/run/makima/api.sock is '$got'"

code=$(http_status --unix-socket /run/makima/api.sock http://makima/api/v1/health)
[ "$code" = 200 ] || fail "health over the Unix socket: HTTP $code"
expect_state makima-api.service active
echo "health over /run/makima/api.sock: 200, makima-api.service activated"

code=$(http_status http://127.0.0.1:7080/api/v1/health)
[ "$code" = 200 ] || fail "health over 127.0.0.1:7080: HTTP $code"
echo "health over 127.0.0.1:7080: 200"

# The service user, not root, runs it, and it told systemd it is ready.
pid=$(g systemctl show -P MainPID makima-api.service)
user=$(g stat -c %U "/proc/$pid")
[ "$user" = makima ] || fail "makima-api runs as '$user'"
echo "makima-api: pid $pid, user $user, status '$(g systemctl show -P StatusText makima-api.service)'"

# ---- the CLI, as root, over the socket ----
step "makima CLI through /run/makima/api.sock"
mk() {
        g "$cli" "$@"
}
uuid='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
contract=$(mk contract create --description="prove the units work" "systemd test") ||
        fail "makima contract create"
grep -qE "$uuid" <<<"$contract" || fail "makima contract create printed '$contract', not an id"
echo "contract $contract"
task=$(mk task create --contract="$contract" --name=first "say hello") ||
        fail "makima task create"
grep -qE "$uuid" <<<"$task" || fail "makima task create printed '$task', not an id"
echo "task $task"
mk task list --contract="$contract" >"$tmp/list.out" || fail "makima task list"
cat "$tmp/list.out"
grep -q first "$tmp/list.out" || fail "makima task list does not show the task"

# ---- the journal and the state directory ----
step "journal and state directory"
g journalctl -u makima-api.service --no-pager -o cat _PID="$pid" >"$tmp/api.journal"
[ -s "$tmp/api.journal" ] || fail "no journal lines from makima-api (pid $pid)"
sed 's/^/  journal: /' "$tmp/api.journal" | head -n 5

got=$(g stat -c '%a %U %G' /var/lib/makima)
[ "$got" = "750 makima makima" ] || fail "/var/lib/makima is '$got'"
g find /var/lib/makima -maxdepth 1 -type f >"$tmp/state.files"
[ -s "$tmp/state.files" ] || fail "makima-api wrote nothing under /var/lib/makima"
while read -r f; do
        owner=$(g stat -c '%U:%G %a' "$f")
        echo "  state: $f $owner"
        case "$owner" in
        "makima:makima 600" | "makima:makima 640") ;;
        *) fail "$f is '$owner', expected makima:makima and no access for others" ;;
        esac
done <"$tmp/state.files"

# ---- stop, then the socket brings it back ----
step "restart by socket activation"
g systemctl stop makima-api.service
expect_state makima-api.service inactive
expect_state makima-api.socket active
code=$(http_status --unix-socket /run/makima/api.sock http://makima/api/v1/health)
[ "$code" = 200 ] || fail "health after stop: HTTP $code"
expect_state makima-api.service active
pid2=$(g systemctl show -P MainPID makima-api.service)
[ "$pid2" != "$pid" ] || fail "makima-api.service was not restarted"
mk task list --contract="$contract" | grep -q first || fail "the task is gone after a restart"
echo "re-activated as pid $pid2; the store kept the task"

# ---- D-Bus ----
step "D-Bus name and policy"
g busctl status org.makima1 >"$tmp/busname" 2>&1 ||
        fail "org.makima1 is not on the system bus: $(cat "$tmp/busname")"
unit=$(sed -n 's/^Unit=//p' "$tmp/busname")
[ "$unit" = makima-api.service ] || fail "org.makima1 is owned by '$unit'"
echo "org.makima1 is owned by makima-api.service"

# Anyone may introspect; anything else from nobody is refused by the bus
# (AccessDenied) before it reaches the service, while calls from root and
# from a member of the group makima reach it (and it answers them with an
# error of its own). Only the service may own the name.
call() {
        "$@" dbus-send --system --print-reply --dest=org.makima1 / \
                org.makima1.NoSuchInterface.NoSuchMethod 2>&1 || true
}
request_name() {
        "$@" dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
                org.freedesktop.DBus.RequestName string:org.makima1 uint32:4 2>&1 || true
}
g useradd --system --no-create-home --groups makima makima-admin
as nobody nogroup busctl introspect org.makima1 / >/dev/null ||
        fail "nobody may not introspect org.makima1"
out=$(call as nobody nogroup)
grep -q '^Error org.freedesktop.DBus.Error.AccessDenied' <<<"$out" ||
        fail "nobody's call was not denied: $out"
for who in g "as makima-admin makima-admin"; do
        out=$(call $who)
        grep -q '^Error ' <<<"$out" || fail "NoSuchMethod succeeded: $out"
        ! grep -q AccessDenied <<<"$out" || fail "a call by '$who' was denied: $out"
done
for who in "nobody nogroup" "makima-admin makima-admin"; do
        out=$(request_name as $who)
        grep -q '^Error org.freedesktop.DBus.Error.AccessDenied' <<<"$out" ||
                fail "'$who' may own org.makima1: $out"
done
echo "policy: nobody may introspect only; root and the group makima may call; only the service owns"

# ---- a task, end to end, through the worker ----
step "a task through makima-worker@1"
repo=/srv/makima-test-repo
g sh -euc "git init -q -b main $repo
        echo 'a repository for makima' >$repo/README
        git -C $repo add README
        git -C $repo -c user.name=test -c user.email=test@localhost commit -q -m init
        chown -R makima:makima $repo"
g systemctl start makima-worker@1.service
expect_state makima-worker@1.service active
wpid=$(g systemctl show -P MainPID makima-worker@1.service)
user=$(g stat -c %U "/proc/$wpid")
[ "$user" = makima ] || fail "makima-worker@1 runs as '$user'"

plan=$'Write a greeting.\nfake: write hello.txt hello from systemd\nfake: commit add hello.txt'
task=$(mk task create --repo="file://$repo" --name=hello "$plan") || fail "makima task create --repo"
for ((i = 0; i < 100; i++)); do
        status=$(mk --json task show "$task" | grep -o '"status": *"[^"]*"' | head -n1 | cut -d'"' -f4)
        case "$status" in
        done | failed | cancelled | iteration_limit_reached) break ;;
        esac
        sleep 0.2
done
if [ "$status" != done ]; then
        mk task show "$task" >&2 || true
        mk task events "$task" >&2 || true
        fail "task $task is '$status', not done"
fi
echo "task $task: done"
got=$(g cat "/var/lib/makima/worktrees/$task/hello.txt")
[ "$got" = "hello from systemd" ] || fail "hello.txt in the task's worktree holds '$got'"
# The agent ran as makima-agent: neither root nor the worker's own user.
got=$(g stat -c '%U' "/var/lib/makima/worktrees/$task/hello.txt")
[ "$got" = makima-agent ] || fail "the agent's file belongs to '$got', not makima-agent"
got=$(g git -c safe.directory='*' --git-dir="/var/lib/makima/git/$task" log -1 --format=%s "makima/${task:0:8}")
[ "$got" = "add hello.txt" ] || fail "the agent's commit is not on the task's branch: '$got'"
echo "the agent ran as makima-agent; its commit is on makima/${task:0:8} in the task's own repository"

# A local repository another user owns, named by an administrator: git in
# the worker's sandboxes trusts exactly it, and the worker only reads it.
g sh -euc "useradd --system --no-create-home alice-local
        git init -q -b main /srv/alice-repo
        echo 'alice owns this' >/srv/alice-repo/README
        git -C /srv/alice-repo add README
        git -C /srv/alice-repo -c user.name=alice -c user.email=alice@localhost commit -q -m init
        chown -R alice-local:alice-local /srv/alice-repo"
before=$(g git -c safe.directory='*' -C /srv/alice-repo for-each-ref)
local_task=$(mk task create --repo=/srv/alice-repo --name=local $'fake: write local.txt on alice\'s repository\nfake: commit add local.txt') ||
        fail "makima task create --repo=/srv/alice-repo"
wait_status_of() {
        local id=$1 status
        for ((i = 0; i < 100; i++)); do
                status=$(mk --json task show "$id" | grep -o '"status": *"[^"]*"' | head -n1 | cut -d'"' -f4)
                case "$status" in
                done | failed | cancelled | iteration_limit_reached) break ;;
                esac
                sleep 0.2
        done
        echo "$status"
}
status=$(wait_status_of "$local_task")
[ "$status" = done ] || { mk task show "$local_task" >&2 || true; fail "the task on alice's repository is '$status'"; }
[ "$(g git -c safe.directory='*' -C /srv/alice-repo for-each-ref)" = "$before" ] || fail "alice's repository changed"
echo "a task on a repository of another user's ran ($local_task), and left it as it was"

# Every event is in the journal, under the worker's unit, with the task's id.
g journalctl -u makima-worker@1.service --no-pager -o cat _PID="$wpid" >"$tmp/worker.journal"
[ -s "$tmp/worker.journal" ] || fail "no journal lines from makima-worker@1"
sed 's/^/  journal: /' "$tmp/worker.journal" | head -n 5
n=$(g journalctl --no-pager -o cat -u makima-worker@1.service MAKIMA_TASK_ID="$task" | wc -l)
[ "$n" -gt 0 ] || fail "no journal entries with MAKIMA_TASK_ID=$task"
echo "journalctl -u makima-worker@1 MAKIMA_TASK_ID=$task: $n entries"
# Stopping the worker while its agent runs hands the task back to the queue
# (pending, session kept) for the next worker to resume, and leaves no
# agent behind.
wait_task() {
        local id=$1 want=$2 status
        for ((i = 0; i < 100; i++)); do
                status=$(mk --json task show "$id" | grep -o '"status": *"[^"]*"' | head -n1 | cut -d'"' -f4)
                [ "$status" = "$want" ] && return 0
                sleep 0.2
        done
        mk task show "$id" >&2 || true
        fail "task $id is '$status', not '$want'"
}
busy=$(mk task create --repo="file://$repo" --name=busy $'fake: sh setsid sleep 3017 >/dev/null 2>&1 &\nfake: wait') ||
        fail "makima task create"
wait_task "$busy" running
# Its processes, the one that left its session too, are in the task's cgroup
# below the worker's unit (systemctl status shows them there), all of them
# makima-agent's.
for ((i = 0; i < 100; i++)); do
        g pgrep -f 'sleep 3017' >/dev/null && break
        sleep 0.1
done
cg=$(g sh -c "find /sys/fs/cgroup -type d -name 'task-$busy'")
case "$cg" in
*/makima-worker@1.service/task-"$busy") ;;
*) fail "task $busy's cgroup is '$cg', not below makima-worker@1.service" ;;
esac
procs=$(g cat "$cg/cgroup.procs")
[ -n "$procs" ] || fail "task $busy's cgroup is empty"
for pid in $(g pgrep -f 'sleep 3017'); do
        grep -qx "$pid" <<<"$procs" || fail "the agent's setsid child $pid is not in its cgroup"
done
# bwrap's own first process, outside the sandbox's pid namespace, is the
# worker's child and runs as the worker's user (the worker has no
# CAP_SYS_ADMIN to give the agent a namespace of its own, see
# sandbox-identity.h); every process inside the sandbox is makima-agent's.
agent_uid=$(g id -u makima-agent)
worker_uid=$(g id -u makima)
wpid=$(g systemctl show -P MainPID makima-worker@1.service)
n_inside=0
for pid in $procs; do
        uid=$(g awk '/^Uid:/ { print $2 $3 $4 $5 }' "/proc/$pid/status" 2>/dev/null) || continue
        ppid=$(g awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
        if [ "$ppid" = "$wpid" ]; then
                [ "$uid" = "$worker_uid$worker_uid$worker_uid$worker_uid" ] ||
                        fail "bwrap ($pid) of task $busy runs as uids $uid, not the worker's ($worker_uid)"
                continue
        fi
        [ "$uid" = "$agent_uid$agent_uid$agent_uid$agent_uid" ] ||
                fail "process $pid of task $busy runs as uids $uid, not makima-agent ($agent_uid)"
        n_inside=$((n_inside + 1))
done
[ "$n_inside" -ge 2 ] || fail "only $n_inside processes of task $busy's sandbox found"
g systemctl status --no-pager -l makima-worker@1.service | grep -q "task-$busy" ||
        fail "systemctl status makima-worker@1 does not show task $busy's cgroup"
echo "task $busy's agent: $n_inside processes in $cg, all makima-agent's"
g systemctl stop makima-worker@1.service
expect_state makima-worker@1.service inactive
wait_task "$busy" pending
g journalctl -u makima-worker@1.service --no-pager -o cat | grep -E 'handing back|Stopping' | sed 's/^/  journal: /'
! g sh -c 'grep -qx makima-fake-age /proc/[0-9]*/comm' || fail "an agent outlived makima-worker@1"
! g pgrep -f 'sleep 3017' >/dev/null || fail "the agent's setsid child outlived makima-worker@1"
echo "stopping makima-worker@1 handed task $busy back as pending"

# The worker's own sandboxing must leave room for the agents' sandbox: run
# makima-sandbox-run (the sandbox the worker puts each agent in, seccomp
# filter included) under the worker unit's settings, with only ExecStart=
# and Type= swapped, on a real linked worktree, with Node.js (the agent's
# runtime, which JIT-compiles) inside when it is installed.
step "the agent sandbox under the worker's sandboxing"
sandbox_run=$(find "$tmp/payload" -name makima-sandbox-run -type f | head -n1)
[ -n "$sandbox_run" ] || fail "meson did not install makima-sandbox-run"
sandbox_run=${sandbox_run#"$tmp/payload"}
g sh -c 'cat >/usr/local/sbin/makima-sandbox-probe && chmod 755 /usr/local/sbin/makima-sandbox-probe' <<PROBE
#!/bin/sh
set -eu
# The layout the worker uses: the repository elsewhere (here the unit's
# private /tmp), the task's worktree, own git directory and home under the
# state directory, the agents' group's.
repo=/tmp/sandbox-probe-repo
wt=\$STATE_DIRECTORY/worktrees/sandbox-probe
gd=\$STATE_DIRECTORY/git/sandbox-probe
home=\$STATE_DIRECTORY/homes/sandbox-probe
git init -q -b main "\$repo"
git -C "\$repo" -c user.name=probe -c user.email=probe@localhost commit -q --allow-empty -m probe
mkdir -p "\$home" "\$wt" "\$gd"
chgrp makima-agent "\$home" "\$wt" "\$gd"
chmod 2770 "\$home" "\$wt" "\$gd"
git init -q --bare --template= -b makima/probe "\$gd"
printf '[core]\\n\\tbare = false\\n' >"\$gd/config"
echo "\$repo/.git/objects" >"\$gd/objects/info/alternates"
git --git-dir="\$gd" update-ref refs/heads/makima/probe "\$(git -C "\$repo" rev-parse main)"
echo "gitdir: \$gd" >"\$wt/.git"
chmod -R g+rwX "\$gd" "\$wt"
run() {
        $sandbox_run --task-id probe --worktree "\$wt" --home "\$home" --git-dir "\$gd" -- "\$@"
}
run /bin/sh -c 'echo "sandbox: \$(id -un) (uid \$(id -u)) in \$PWD"; touch written-in-sandbox'
test -f "\$wt/written-in-sandbox"
echo "sandbox: its file belongs to \$(stat -c %U "\$wt/written-in-sandbox") on the host"
test "\$(stat -c %U "\$wt/written-in-sandbox")" = makima-agent
if command -v node >/dev/null; then
        run node -e 'console.log("node: JIT works, " + [1, 2, 3].map(x => x * 2))'
fi
rm -rf "\$home" "\$wt" "\$gd" 2>/dev/null || true
PROBE
sed -e '/^ExecStart=/c ExecStart=/usr/local/sbin/makima-sandbox-probe' \
    -e 's/^Type=notify/Type=oneshot/' -e '/^WatchdogSec=/d' -e '/^Restart/d' \
    "$worker_unit" | g sh -c 'cat >/etc/systemd/system/makima-sandbox-probe@.service'
g systemctl daemon-reload
g systemctl start makima-sandbox-probe@1.service ||
        fail "the agent sandbox cannot run under makima-worker@.service's sandboxing"
g journalctl -u makima-sandbox-probe@1.service --no-pager -o cat |
        grep -E '^(sandbox|node):' || fail "the sandbox probe printed nothing"
g journalctl -u makima-sandbox-probe@1.service --no-pager -o cat | grep -q 'belongs to makima-agent on the host' ||
        fail "the sandbox under the worker's settings does not run as makima-agent"

# ---- cleanup ----
# The finished task is deleted; the cleanup job, in its own sandbox, must
# then remove its worktree (a worktree of the clone under the state
# directory) and its home.
step "cleanup"
g test -d "/var/lib/makima/worktrees/$task" || fail "the task's worktree is already gone"
mk task delete "$task" || fail "makima task delete"
g systemctl start makima-cleanup.service
result=$(g systemctl show -P Result makima-cleanup.service)
[ "$result" = success ] || fail "makima-cleanup.service: $result"
! g test -e "/var/lib/makima/worktrees/$task" || fail "makima-cleanup left the deleted task's worktree"
! g test -e "/var/lib/makima/git/$task" || fail "makima-cleanup left the deleted task's repository"
g journalctl -u makima-cleanup.service --no-pager -o cat | grep -v '^makima-cleanup.service:' |
        sed 's/^/  journal: /' | tail -n 5
echo "makima-cleanup.service: $result, the deleted task's worktree is gone"

# Workers join the fleet by being enabled: WantedBy= and PartOf= tie them
# to makima.target, which also brings the sockets and the cleanup timer.
step "makima.target"
g systemctl enable makima-worker@2.service
g systemctl start makima.target
expect_state makima.target active
expect_state makima-api.socket active
expect_state makima-cleanup.timer active
expect_state makima-worker@2.service active
g systemctl stop makima.target
wait_state makima-worker@2.service inactive
echo "makima.target starts and stops the enabled worker makima-worker@2"

# systemd stops a service with SIGTERM and, right after it, SIGCONT.
# makima-api must then exit at once, whatever its clients do: here two event
# streams wait on it (suspended connections), and SIGCONT keeps coming for
# the whole stop, so that it also lands at the worst moment (the sanitizer
# drop-ins above say what it did to LeakSanitizer there). That moment lasts
# microseconds, so makima-api runs on one CPU and the sender on another, at
# real-time priority where it may, sending a hundred signals per call; and
# the stop is done three times.
stop_under_sigcont() {
        local pid code sender cpu start ms state n i
        local streams=()

        # Each round starts makima-api again: not a start rate to limit.
        g systemctl reset-failed makima-api.service
        code=$(http_status --unix-socket /run/makima/api.sock http://makima/api/v1/health)
        [ "$code" = 200 ] || fail "health before the stop: HTTP $code"
        pid=$(g systemctl show -P MainPID makima-api.service)
        for i in 1 2; do
                g curl -sS -N --max-time 60 -D - --unix-socket /run/makima/api.sock \
                        "http://makima/api/v1/tasks/$busy/events?follow=1" >"$tmp/stream.$i" 2>&1 &
                streams+=($!)
        done
        for i in 1 2; do
                for ((n = 0; n < 100; n++)); do
                        grep -q '^HTTP/1.1 200' "$tmp/stream.$i" && break
                        sleep 0.1
                done
                grep -q '^HTTP/1.1 200' "$tmp/stream.$i" || fail "event stream $i did not start: $(cat "$tmp/stream.$i")"
        done
        [ -z "$cpu_sender" ] || g taskset -a -p -c "$cpu_api" "$pid" >/dev/null
        g rm -f /run/sigcont-sender
        g $sender_prefix bash -c "touch /run/sigcont-sender; pids=\$(printf '$pid %.0s' {1..100})
                while kill -CONT \$pids 2>/dev/null && ((SECONDS < 30)); do :; done" &
        sender=$!
        for ((n = 0; n < 100; n++)); do
                g test -e /run/sigcont-sender && break
                sleep 0.1
        done
        g test -e /run/sigcont-sender || fail "the SIGCONT sender did not start"

        cpu=$(g systemctl show -P CPUUsageNSec makima-api.service)
        start=$(date +%s%N)
        g systemctl stop --no-block makima-api.service
        while :; do
                state=$(g systemctl is-active makima-api.service || true)
                ms=$((($(date +%s%N) - start) / 1000000))
                [ "$state" = active ] || [ "$state" = deactivating ] || break
                [ "$ms" -lt 10000 ] || break
                sleep 0.1
        done
        cpu=$((($(g systemctl show -P CPUUsageNSec makima-api.service) - cpu) / 1000000))
        if [ "$state" != inactive ]; then
                g systemctl kill --signal=SIGKILL makima-api.service || true
                fail "makima-api is '$state' $ms ms after SIGTERM, having used $cpu ms of CPU since"
        fi
        [ "$cpu" -lt 2000 ] || fail "makima-api used $cpu ms of CPU to stop"
        for i in "${streams[@]}" "$sender"; do
                wait "$i" || true
        done
        echo "makima-api stopped in $ms ms, using $cpu ms of CPU, with two event streams open and SIGCONT arriving throughout"
}
step "stop with open event streams while SIGCONT keeps arriving"
read -r cpu_api cpu_sender < <(g python3 -c 'import os; print(*sorted(os.sched_getaffinity(0))[:2])')
sender_prefix=
if [ -n "$cpu_sender" ]; then
        sender_prefix="taskset -c $cpu_sender"
fi
if g chrt -f 1 true 2>/dev/null; then
        sender_prefix+=" chrt -f 1"
else
        sender_prefix+=" nice -n -20"
fi
for _ in 1 2 3; do
        stop_under_sigcont
done

echo "all systemd checks passed"
