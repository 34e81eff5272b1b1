#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The quick start, end to end: `makima up` in the background, the CLI against
# the address it prints, its private D-Bus (org.makima1 owned on it while up
# runs, gone after), SIGTERM and Ctrl-C take every child down and exit 0,
# the state survives a second start, and a child that dies, a daemon that
# cannot start or cannot be found make it stop with status 1.
#
# As root it also runs a task on a machine (a private /etc) without the
# makima-agent user: makima up makes it, and the agent runs as it.
#
# Usage: test-up.sh PATH/TO/makima-api PATH/TO/makima [PATH/TO/fake-agent]

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MAKIMA=$(realpath "${2:?usage: $0 makima-api makima [fake-agent]}")
FAKE_AGENT=${3:+$(realpath "$3")}
UP_PID=''
STATE=''

# up_start ARGS…: `makima up` in the background, output in $TMP/up.out and up.err.
up_start() {
        : >"$TMP/up.out"
        : >"$TMP/up.err"
        "$MAKIMA" up "$@" >"$TMP/up.out" 2>"$TMP/up.err" &
        UP_PID=$!
        EXTRA_PIDS=$UP_PID
}

# up_wait_ready: until it prints the export lines; sets URL and BUS (empty without a bus).
up_wait_ready() {
        for _ in $(seq 300); do
                if grep -q '^Press Ctrl-C' "$TMP/up.out"; then
                        # As a user would: paste the lines into a shell.
                        URL=$(unset MAKIMA_API_URL; eval "$(grep '^ *export MAKIMA_API_URL=' "$TMP/up.out")";
                              echo "$MAKIMA_API_URL")
                        BUS=$(unset MAKIMA_BUS_ADDRESS; eval "$(grep '^ *export MAKIMA_BUS_ADDRESS=' "$TMP/up.out")";
                              echo "${MAKIMA_BUS_ADDRESS:-}")
                        return 0
                fi
                kill -0 "$UP_PID" 2>/dev/null || up_fail "makima up exited before it was ready"
                sleep 0.1
        done
        up_fail "makima up did not get ready"
}

up_fail() {
        echo "--- makima up stdout:" >&2
        cat "$TMP/up.out" >&2
        echo "--- makima up stderr:" >&2
        cat "$TMP/up.err" >&2
        fail "$@"
}

# up_start_private_etc ETC ARGS…: up_start in a mount namespace of its own
# with ETC as its /etc.
up_start_private_etc() {
        local etc=$1

        shift
        : >"$TMP/up.out"
        : >"$TMP/up.err"
        unshare -m --propagation private sh -c 'mount --bind "$1" /etc && shift && exec "$@"' \
                sh "$etc" "$MAKIMA" up "$@" >"$TMP/up.out" 2>"$TMP/up.err" &
        UP_PID=$!
        EXTRA_PIDS=$UP_PID
}

# up_children: the pids of its children.
up_children() {
        ps -o pid= --ppid "$UP_PID" | tr -d ' '
}

# up_stop SIGNAL: sends it, and expects exit 0 with every child gone.
up_stop() {
        local sig=$1 children rc=0 pid

        children=$(up_children)
        [[ -n "$children" ]] || up_fail "makima up has no children"
        kill "-$sig" "$UP_PID"
        wait "$UP_PID" || rc=$?
        UP_PID=''
        EXTRA_PIDS=''
        (( rc == 0 )) || up_fail "makima up exited with $rc after SIG$sig"
        for pid in $children; do
                # A zombie would still answer kill -0; a reaped child is gone for good.
                ! kill -0 "$pid" 2>/dev/null || up_fail "child $pid is still there after SIG$sig"
        done
        grep -q "Received SIG$sig; stopping" "$TMP/up.err" || up_fail "no word of SIG$sig"
}

lib_init "$1"
unset MAKIMA_API_KEY MAKIMA_API_URL MAKIMA_API_BIN MAKIMA_WORKER_BIN
# A space and a quote in the path: the printed export line must survive a shell.
STATE="$TMP/state dir/it's/.makima"
worker_bin="$(dirname "$MAKIMA")/../worker/makima-worker"

# ---- first start: a new directory, daemons found next to makima in the build tree ----

up_start --state-dir "$STATE" --workers 1
up_wait_ready
[[ "$URL" == "unix:$(realpath "$STATE")/api.sock" ]] || up_fail "printed URL '$URL'"
[[ -S "$(realpath "$STATE")/api.sock" && -f "$STATE/makima.db" && -f "$STATE/makima.conf" ]] ||
        up_fail "the state directory lacks the socket, the store or the config: $(ls -la "$STATE")"
[[ "$(stat -c %a "$STATE")" == 700 ]] || up_fail "the state directory is not private"

ps -o args= --ppid "$UP_PID" | grep -q "makima-api --listen unix:$(realpath "$STATE")/api.sock" ||
        up_fail "no makima-api child: $(ps -o args= --ppid "$UP_PID")"
if [[ -x "$worker_bin" ]]; then
        grep -q '1 worker\.' "$TMP/up.out" || up_fail "the worker is not announced"
        for _ in $(seq 50); do
                ps -o args= --ppid "$UP_PID" | grep -q 'makima-worker --instance 1' && break
                sleep 0.1
        done
        ps -o args= --ppid "$UP_PID" | grep -q 'makima-worker --instance 1' || up_fail "no worker child"
else
        grep -q 'makima-worker not found.*running without workers' "$TMP/up.err" ||
                up_fail "a missing worker is not reported"
        grep -q '0 workers\.' "$TMP/up.out" || up_fail "0 workers not announced"
fi
grep -q '^api *| makima-api: ' "$TMP/up.err" || up_fail "the API's output is not prefixed"

# The private bus: org.makima1 is makima-api's on it, and every child knows where it is.
if command -v dbus-daemon >/dev/null && command -v busctl >/dev/null; then
        have_bus=1
        [[ "$BUS" == "unix:path=$(realpath "$STATE" | sed -e 's/ /%20/g' -e "s/'/%27/g")/bus" ]] ||
                up_fail "printed bus address '$BUS'"
        [[ -S "$(realpath "$STATE")/bus" ]] || up_fail "no bus socket in the state directory"
        ps -o args= --ppid "$UP_PID" | grep -q "^$(command -v dbus-daemon) --config-file=$(realpath "$STATE")/bus.conf" ||
                up_fail "no dbus-daemon child: $(ps -o args= --ppid "$UP_PID")"
        for _ in $(seq 100); do
                busctl --address="$BUS" --no-legend list 2>/dev/null | grep -q '^org\.makima1 ' && break
                sleep 0.05
        done
        busctl --address="$BUS" --no-legend list | grep -Eq '^org\.makima1 +[0-9]+ +makima-api ' ||
                up_fail "org.makima1 is not makima-api's on the bus: $(busctl --address="$BUS" list 2>&1)"
        [[ "$(busctl --address="$BUS" get-property org.makima1 /org/makima1 org.makima1.Manager Version)" == 's "'* ]] ||
                up_fail "no Version on org.makima1"
        for pid in $(up_children); do
                tr '\0' '\n' <"/proc/$pid/environ" | grep -qx "MAKIMA_BUS_ADDRESS=$BUS" ||
                        up_fail "child $pid ($(ps -o comm= -p "$pid")) does not have MAKIMA_BUS_ADDRESS"
        done
        # A task created through the CLI is announced on the bus.
        busctl --address="$BUS" --json=short monitor --match "type='signal',member='TaskQueued'" >"$TMP/signals" 2>/dev/null &
        monitor_pid=$!
        sleep 0.3
else
        have_bus=0
        grep -q 'dbus-daemon not found: running without a bus; workers wake up by polling' "$TMP/up.err" ||
                up_fail "a missing dbus-daemon is not reported"
        [[ -z "$BUS" ]] || up_fail "a bus address without a bus"
fi

# The CLI works against the printed address.
export MAKIMA_API_URL=$URL
repo="$TMP/repo"
git init -q "$repo"
git -C "$repo" -c user.name=t -c user.email=t@example.com commit -q --allow-empty -m init
contract=$("$MAKIMA" contract create --type simple "quick start") || up_fail "contract create failed"
task=$("$MAKIMA" task create --repo "$repo" --contract "$contract" --name hello "Say hello") ||
        up_fail "task create failed"
[[ "$task" =~ ^[0-9a-f-]{36}$ ]] || up_fail "task create printed '$task'"
"$MAKIMA" task list >"$TMP/list" || up_fail "task list failed"
grep -Eq "^${task:0:8} +[a-z_]+ .* hello$" "$TMP/list" || up_fail "task list: $(cat "$TMP/list")"
"$MAKIMA" contract list | grep -q "quick start" || up_fail "contract list lacks the contract"
if (( have_bus )); then
        for _ in $(seq 100); do
                grep -q "\"$task\"" "$TMP/signals" && break
                sleep 0.05
        done
        kill "$monitor_pid"
        wait "$monitor_pid" || true
        jq -e --arg t "$task" 'select(.member == "TaskQueued") | .payload.data == [$t]' "$TMP/signals" >/dev/null ||
                up_fail "no TaskQueued($task) on the bus: $(cat "$TMP/signals")"
fi

# One `makima up` per directory.
rc=0
"$MAKIMA" up --state-dir "$STATE" --workers 0 >"$TMP/second.out" 2>"$TMP/second.err" || rc=$?
(( rc == 1 )) || up_fail "a second makima up on the same directory exited with $rc"
grep -q "Another 'makima up' is running on" "$TMP/second.err" || up_fail "second: $(cat "$TMP/second.err")"

up_stop TERM
[[ ! -e "$(realpath "$STATE")/api.sock" ]] || fail "the socket is left behind"
if (( have_bus )); then
        [[ ! -e "$(realpath "$STATE")/bus" ]] || fail "the bus socket is left behind"
        ! busctl --address="$BUS" list >/dev/null 2>&1 || fail "the bus still answers after makima up stopped"
fi
"$MAKIMA" task list 2>"$TMP/err" && fail "the API still answers after makima up stopped"
grep -q 'cannot connect' "$TMP/err" || fail "after stop: $(cat "$TMP/err")"

# ---- second start on the same directory: the state is still there; Ctrl-C stops it ----

MAKIMA_API_BIN=$1 up_start --state-dir "$STATE" --workers 0 --config "$STATE/makima.conf"
up_wait_ready
grep -q '0 workers\.' "$TMP/up.out" || up_fail "--workers 0 still started workers"
"$MAKIMA" --json task show "$task" >"$TMP/task.json" || up_fail "the task is gone after a restart"
[[ "$(jq -r .name "$TMP/task.json")" == hello && "$(jq -r .contract_id "$TMP/task.json")" == "$contract" ]] ||
        up_fail "the task changed across the restart: $(cat "$TMP/task.json")"
[[ "$(jq -r .repo "$TMP/task.json")" == "$(realpath "$repo")" ]] || up_fail "repo: $(cat "$TMP/task.json")"
"$MAKIMA" contract show "$contract" | grep -q 'name: quick start' || up_fail "the contract is gone"
up_stop INT

# A closed terminal (SIGHUP) stops it the same way.
up_start --state-dir "$STATE" --workers 0
up_wait_ready
up_stop HUP

# ---- without dbus-daemon: no bus, a warning, and the caller's bus address is not passed on ----

if (( have_bus )); then
        mkdir -p "$TMP/nobus-path"
        PATH="$TMP/nobus-path" MAKIMA_BUS_ADDRESS="unix:path=$TMP/elsewhere" up_start --state-dir "$STATE" --workers 0
        up_wait_ready
        grep -q 'dbus-daemon not found: running without a bus; workers wake up by polling the store' "$TMP/up.err" ||
                up_fail "a missing dbus-daemon is not reported"
        [[ -z "$BUS" ]] || up_fail "a bus address printed without a bus"
        ! grep -q MAKIMA_BUS_ADDRESS "$TMP/up.out" || up_fail "MAKIMA_BUS_ADDRESS printed without a bus"
        api_pid=$(ps -o pid=,args= --ppid "$UP_PID" | awk '/makima-api/ { print $1 }')
        ! tr '\0' '\n' <"/proc/$api_pid/environ" | grep -q '^MAKIMA_BUS_ADDRESS=' || up_fail "the caller's bus was passed on"
        "$MAKIMA" task list >/dev/null || up_fail "the API does not answer without a bus"
        up_stop TERM

        # The bus is a child like the others: if it dies, everything stops.
        up_start --state-dir "$STATE" --workers 0
        up_wait_ready
        bus_pid=$(ps -o pid=,args= --ppid "$UP_PID" | awk '/dbus-daemon/ { print $1 }')
        [[ -n "$bus_pid" ]] || up_fail "no dbus-daemon child"
        kill -KILL "$bus_pid"
        rc=0
        wait "$UP_PID" || rc=$?
        (( rc == 1 )) || up_fail "makima up exited with $rc after its bus was killed"
        grep -q "bus (pid $bus_pid) was killed by SIGKILL unexpectedly; stopping the rest" "$TMP/up.err" ||
                up_fail "no word of the bus's death"
        UP_PID=''
        EXTRA_PIDS=''
fi

# ---- a child that dies takes the rest down, exit 1 ----

up_start --state-dir "$STATE" --workers 1
up_wait_ready
api_pid=$(ps -o pid=,args= --ppid "$UP_PID" | awk '/makima-api/ { print $1 }')
[[ -n "$api_pid" ]] || up_fail "no makima-api child"
children=$(up_children)
kill -KILL "$api_pid"
rc=0
wait "$UP_PID" || rc=$?
(( rc == 1 )) || up_fail "makima up exited with $rc after its API was killed"
grep -q "api (pid $api_pid) was killed by SIGKILL unexpectedly; stopping the rest" "$TMP/up.err" ||
        up_fail "no word of the API's death"
for pid in $children; do
        ! kill -0 "$pid" 2>/dev/null || up_fail "child $pid survived"
done
UP_PID=''
EXTRA_PIDS=''

# ---- an API that cannot start: exit 1, its own words passed through ----

printf '[Store]\nBackend=floppy\n' >"$TMP/bad.conf"
rc=0
"$MAKIMA" up --state-dir "$STATE" --workers 1 --config "$TMP/bad.conf" >"$TMP/up.out" 2>"$TMP/up.err" || rc=$?
(( rc == 1 )) || up_fail "makima up with a bad config exited with $rc"
grep -q '^api *| makima-api: .*floppy' "$TMP/up.err" || up_fail "the API's complaint is not shown"
grep -q 'api (pid [0-9]*) exited with status 1 unexpectedly before the API answered' "$TMP/up.err" ||
        up_fail "no word of the failed start"

# ---- no API to run: a clear error ----

rc=0
MAKIMA_API_BIN="$TMP/nowhere/makima-api" "$MAKIMA" up --state-dir "$STATE" >"$TMP/up.out" 2>"$TMP/up.err" || rc=$?
(( rc == 1 )) || fail "makima up without an API exited with $rc"
grep -q "MAKIMA_API_BIN=$TMP/nowhere/makima-api: No such file or directory" "$TMP/up.err" ||
        fail "missing API: $(cat "$TMP/up.err")"

rc=0
"$MAKIMA" up --state-dir "$STATE" --workers 2 extra >/dev/null 2>"$TMP/up.err" || rc=$?
(( rc == 2 )) || fail "makima up with an operand exited with $rc"
rc=0
"$MAKIMA" up --json >/dev/null 2>"$TMP/up.err" || rc=$?
(( rc == 2 )) || fail "makima up --json exited with $rc"
grep -q "unknown option '--json'" "$TMP/up.err" || fail "up --json: $(cat "$TMP/up.err")"

# ---- as root: the agents' user is made if it is missing, and agents run as it ----

# The quick start as root on a machine without makima-agent: a private /etc
# (a copy, without the user) in a mount namespace of its own, so that the
# machine's own is not touched.
if [[ $(id -u) == 0 && -n "$FAKE_AGENT" ]] && command -v unshare >/dev/null && [[ -x "$worker_bin" ]]; then
        etc="$TMP/etc"
        as="$TMP/agent-state"
        cp -a /etc "$etc"
        for f in passwd group shadow gshadow; do
                [[ ! -f "$etc/$f" ]] || sed -i '/^makima-agent:/d' "$etc/$f"
        done
        mkdir -p "$as"
        printf '[Agent]\nCommand=%s\n' "$FAKE_AGENT" >"$as/makima.conf"
        up_start_private_etc "$etc" --state-dir "$as" --workers 1
        up_wait_ready
        grep -q 'Created the system user makima-agent: agents run as it, never as root.' "$TMP/up.err" ||
                up_fail "makima up did not say it made makima-agent"
        agent_uid=$(awk -F: '$1 == "makima-agent" { print $3 }' "$etc/passwd")
        [[ -n "$agent_uid" && "$agent_uid" != 0 ]] || up_fail "no makima-agent in the private /etc/passwd"
        grep -q '^makima-agent:' "$etc/group" || up_fail "no group makima-agent in the private /etc/group"
        t=$(MAKIMA_API_URL=$URL "$MAKIMA" task create --repo "$repo" $'Who am I?\nfake: sh id -u >uid.out') ||
                up_fail "task create failed"
        for _ in $(seq 300); do
                status=$(MAKIMA_API_URL=$URL "$MAKIMA" --json task show "$t" | jq -r .status)
                [[ "$status" == @(done|failed) ]] && break
                sleep 0.1
        done
        [[ "$status" == done ]] || up_fail "the task is $status: $(MAKIMA_API_URL=$URL "$MAKIMA" task show "$t")"
        [[ "$(stat -c %u "$as/worktrees/$t/uid.out")" == "$agent_uid" ]] ||
                up_fail "the agent ran as uid $(stat -c %u "$as/worktrees/$t/uid.out"), not makima-agent ($agent_uid)"
        up_stop TERM
        # A second start finds the user there and says nothing of it.
        up_start_private_etc "$etc" --state-dir "$as" --workers 1
        up_wait_ready
        ! grep -q 'Created the system user' "$TMP/up.err" || up_fail "makima up made makima-agent twice"
        up_stop TERM
        say "as root: makima up made makima-agent (uid $agent_uid), and the agent ran as it"
fi

say "ok"
