#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench/dispatch: how long a task waits between POST /api/v1/tasks and the
# first instruction of its agent inside the sandbox, on the real makima-api
# and makima-worker (SQLite store, D-Bus wake-ups, bwrap + seccomp), next to
# the floor measured in the same run: git worktree add plus a plain bwrap
# starting the same agent. See bench/README.md.
#
# Usage: bench/dispatch/run.sh makima-api makima-worker dispatch-agent dispatch-client
# Exit: 0 figures printed and p50 within BENCH_MAX_RATIO of the floor's;
#       1 failure or target missed; 77 a tool is missing.

set -euo pipefail

api_bin=${1:-}
worker_bin=${2:-}
agent_bin=${3:-}
client_bin=${4:-}
ntasks=${BENCH_TASKS:-200}
warmup=${BENCH_WARMUP:-5}
repo_files=${BENCH_REPO_FILES:-0}
max_ratio=${BENCH_MAX_RATIO:-2}
keep=${BENCH_KEEP:-0}
bench_name=dispatch
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

if [[ -z "$client_bin" ]]; then
        die "usage: $0 makima-api makima-worker dispatch-agent dispatch-client"
fi
bench_executables api_bin worker_bin agent_bin client_bin
bench_need_tools git:git bwrap:bubblewrap dbus-daemon:dbus-daemon curl:curl sqlite3:sqlite3
for n in "$ntasks" "$warmup" "$repo_files"; do
        [[ "$n" =~ ^[0-9]+$ ]] || die "BENCH_TASKS, BENCH_WARMUP and BENCH_REPO_FILES must be whole numbers, got '$n'"
done
(( ntasks >= 1 )) || die "BENCH_TASKS must be at least 1"

# shellcheck disable=SC2034 # bench_cleanup ends them, by their names in bench_pid_vars
api_pid='' worker_pid='' bus_pid='' client_pid=''
bench_pid_vars="client_pid worker_pid api_pid bus_pid" bench_logs="makima-worker makima-api"
bench_make_tmp 755
# ---- a repository: a README and BENCH_REPO_FILES small source files ----

mkdir -p "$tmp/repo/src"
for (( i = 1; i <= repo_files; i++ )); do
        seq 1 "$((i * 10))" | sed "s/^/line /" > "$tmp/repo/src/file$i.c"
done
bench_make_repo

# ---- a private bus, makima-api and one makima-worker ----

bench_start_bus

# The poll interval is an hour: a task starts promptly only through the
# TaskQueued signal, which is what is measured.
bench_write_conf 3600 yes

bench_start_api

# -v: the worker logs how long each stage of a start took (shown below).
bench_start_worker MAKIMA_JOURNAL=stderr -- -v
grep -q "Listening for .* signals" "$tmp/makima-worker.log" ||
        die "makima-worker is not listening on the bus: it would only poll"

# ---- the floor's sandbox: what any sandboxed start needs, no more ----

# The same namespaces as the worker's sandbox, the system read-only, fresh
# /dev, /proc and /tmp, the worktree read-write and the agent's file.
floor=(bwrap --die-with-parent --new-session --unshare-user --uid 1000 --gid 1000
       --unshare-pid --unshare-ipc --unshare-uts --unshare-cgroup-try --cap-drop ALL)
for d in /usr /bin /sbin /lib /lib32 /lib64 /libx32 /etc; do
        if [[ -L "$d" ]]; then
                floor+=(--symlink "$(readlink "$d")" "$d")
        elif [[ -d "$d" ]]; then
                floor+=(--ro-bind "$d" "$d")
        fi
done
floor+=(--dev /dev --proc /proc --tmpfs /tmp --bind {} {} --ro-bind "$agent_bin" "$agent_bin"
        --remount-ro / --chdir {} -- "$agent_bin" --print-exec-time)
mkdir -p "$tmp/floor"

# ---- measure ----

say "$((warmup + ntasks)) rounds ($warmup of warm-up): floor, then a task, one at a time"
"$client_bin" "$api_sock" "$repo" "$((warmup + ntasks))" "$tmp/floor" -- "${floor[@]}" > "$tmp/rounds" &
client_pid=$!
wait "$client_pid" || die "dispatch-client failed"
client_pid=''

tail -n +"$((warmup + 1))" "$tmp/rounds" > "$tmp/measured"
measured=$(wc -l < "$tmp/measured")
(( measured == ntasks )) || die "only $measured of $ntasks rounds were measured"

# ---- report ----

# pct FILE COLUMN P: the P-th percentile (nearest rank) of a column of
# nanoseconds, in ms.
pct() {
        cut -d' ' -f"$2" "$1" | sort -g |
                awk -v p="$3" '{ v[NR] = $1 } END { k = int((p * NR + 99) / 100); if (k < 1) k = 1; printf "%.2f", v[k] / 1e6 }'
}
floor_p50=$(pct "$tmp/measured" 2 50) floor_p99=$(pct "$tmp/measured" 2 99) floor_max=$(pct "$tmp/measured" 2 100)
disp_p50=$(pct "$tmp/measured" 3 50) disp_p99=$(pct "$tmp/measured" 3 99) disp_max=$(pct "$tmp/measured" 3 100)
ratio=$(awk -v a="$disp_p50" -v b="$floor_p50" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
ok=$(awk -v r="$ratio" -v m="$max_ratio" 'BEGIN { print (r <= m) ? 1 : 0 }')

# Where a dispatch goes, from the store's own clocks: the task's created_at
# (makima-api inserted it) and its "claimed" event (the worker's claim
# began), both CLOCK_REALTIME in µs. Lines: POST→insert, insert→claim,
# claim→exec, all in ns.
sqlite3 -batch -noheader -separator ' ' "file:$tmp/makima.db?mode=ro" "
        SELECT t.id, t.created_at, min(e.created_at) FROM tasks t
        JOIN task_events e ON e.task_id = t.id AND e.type = 'claimed' GROUP BY t.id" > "$tmp/times"
awk 'NR == FNR { created[$1] = $2 * 1000; claimed[$1] = $3 * 1000; next }
     ($5 in created) { exec = $6 + $3; print created[$5] - $6, claimed[$5] - created[$5], exec - claimed[$5] }' \
        "$tmp/times" "$tmp/measured" > "$tmp/stages"
(( $(wc -l < "$tmp/stages") == ntasks )) || die "the store does not have every measured task with its claim"

# stage REGEX: the median of the numbers the worker logged for a stage, in ms.
stage() {
        grep -oE "$1" "$tmp/makima-worker.log" | grep -oE '[0-9]+\.[0-9]+' | tail -n "$ntasks" | sort -g |
                awk '{ v[NR] = $1 } END { if (NR) printf "%.1f", v[int((NR + 1) / 2)]; else printf "?" }'
}

echo
echo "makima-api + makima-worker ($worker_bin) on SQLite, wake-ups over a private D-Bus; sandbox on"
echo "$ntasks tasks one after the other, each posted when the previous was done, after $warmup round(s) of warm-up;"
echo "each task follows one round of the floor: git worktree add -b + bwrap starting the same agent;"
echo "the repository has a README and $repo_files more files, and gains two worktrees a round"
echo
printf '%-46s %9s %9s %9s\n' '' 'p50 ms' 'p99 ms' 'max ms'
printf '%-46s %9s %9s %9s\n' 'floor     worktree add + bwrap -> agent exec' "$floor_p50" "$floor_p99" "$floor_max"
printf '%-46s %9s %9s %9s\n' 'dispatch  POST /api/v1/tasks -> agent exec' "$disp_p50" "$disp_p99" "$disp_max"
echo
printf 'floor, p50:    git worktree add %s ms, then bwrap → agent exec\n' "$(pct "$tmp/measured" 4 50)"
printf 'dispatch, p50: POST → task stored %s ms; → worker claims it %s ms; claim → agent exec %s ms\n' \
        "$(pct "$tmp/stages" 1 50)" "$(pct "$tmp/stages" 2 50)" "$(pct "$tmp/stages" 3 50)"
printf '  in the worker: claim → worktree ready %s ms; sandbox built in %s ms; claim → bwrap started %s ms\n' \
        "$(stage 'worktree ready [0-9.]+ ms')" "$(stage 'sandbox built in [0-9.]+ ms')" \
        "$(stage 'agent spawned [0-9.]+ ms')"
echo
printf 'ratio dispatch/floor p50 %s  (needs <= %s: %s)\n' "$ratio" "$max_ratio" "$( (( ok )) && echo ok || echo MISSED)"

if (( ! ok )); then
        say "dispatch p50 is $ratio times the floor's; the target is at most $max_ratio"
        exit 1
fi
exit 0
