#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench/loop: the autonomous loop's restart. One task with --autonomous-loop
# whose trivial agent (loop-agent) changes the worktree and says "not ready"
# BENCH_ITERATIONS - 1 times, then "ready"; for every restart, the time from
# one agent's exit to the next agent's exec in its sandbox (both read by the
# agent itself: CLOCK_REALTIME), as p50, p90, p99 and max. See
# bench/README.md.
#
# Usage: bench/loop/run.sh makima-api makima-worker loop-agent
# Exit: 0 figures printed and p50 below BENCH_MAX_P50_MS (50); 1 failure or
#       target missed; 77 a tool is missing.

set -euo pipefail

api_bin=${1:-}
worker_bin=${2:-}
agent_bin=${3:-}
iterations=${BENCH_ITERATIONS:-50}
max_p50_ms=${BENCH_MAX_P50_MS:-50}
sandbox=${BENCH_SANDBOX:-yes}
keep=${BENCH_KEEP:-0}
bench_name=loop
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

[[ -n "$agent_bin" ]] || die "usage: $0 makima-api makima-worker loop-agent"
bench_executables api_bin worker_bin agent_bin
bench_need_tools git:git bwrap:bubblewrap curl:curl jq:jq sqlite3:sqlite3
if ! [[ "$iterations" =~ ^[0-9]+$ ]] || (( iterations < 2 || iterations > 50 )); then
        die "BENCH_ITERATIONS must be a whole number from 2 to 50 (the hard limit), got '$iterations'"
fi

# shellcheck disable=SC2034 # bench_cleanup ends them, by their names in bench_pid_vars
api_pid='' worker_pid=''
bench_pid_vars="worker_pid api_pid" bench_logs="makima-worker makima-api"
bench_make_tmp 755
bench_make_repo

bench_write_conf 1 "$sandbox" "BENCH_LOOP_ITERATIONS=$iterations"

bench_start_api
bench_start_worker MAKIMA_JOURNAL=stderr MAKIMA_LOG_LEVEL=debug

id=$(api -H 'Content-Type: application/json' \
        -d "$(jq -nc --arg repo "$repo" --argjson n "$iterations" \
                '{plan: "bench/loop", repo: $repo, name: "loop", autonomous_loop: true, max_iterations: $n}')" \
        http://localhost/api/v1/tasks | jq -er .id) || die "could not create a task"
say "task $id: $iterations iterations of a trivial agent (sandbox: $sandbox)"

status=''
for _ in $(seq 1200); do
        sleep 0.25
        answer=$(api "http://localhost/api/v1/tasks/$id")
        [[ "$answer" =~ \"status\":\ *\"([a-z_]+)\" ]] && status=${BASH_REMATCH[1]}
        [[ "$status" == pending || "$status" == running ]] || break
done
[[ "$status" == "done" ]] || die "task $id ended '$status': $(api "http://localhost/api/v1/tasks/$id" | head -c 500)"
count=$(api "http://localhost/api/v1/tasks/$id" | jq -r .iteration_count)
(( count == iterations )) || die "task $id: iteration_count $count, expected $iterations"

db="$tmp/makima.db"
q() { sqlite3 -batch -noheader -separator ' ' "file:$db?mode=ro" "$1"; }
# One line per run, in order: its exec time, its exit time, whether it resumed.
q "SELECT json_extract(payload, '\$.bench_exec_realtime_ns'), json_extract(payload, '\$.bench_resumed')
   FROM task_events WHERE task_id = '$id' AND type = 'system' ORDER BY seq" > "$tmp/execs"
q "SELECT json_extract(payload, '\$.realtime_ns') FROM task_events
   WHERE task_id = '$id' AND type = 'bench_exit' ORDER BY seq" > "$tmp/exits"
(( $(wc -l < "$tmp/execs") == iterations && $(wc -l < "$tmp/exits") == iterations )) ||
        die "task $id: $(wc -l < "$tmp/execs") execs and $(wc -l < "$tmp/exits") exits stored, expected $iterations"
(( $(awk 'NR > 1 && $2 != 1' "$tmp/execs" | wc -l) == 0 )) || die "task $id: a restart did not --resume the session"

# Restart k: exec of run k+1 minus exit of run k, in ms.
paste -d' ' <(tail -n +2 "$tmp/execs" | cut -d' ' -f1) <(head -n -1 "$tmp/exits") |
        awk '{ printf "%.3f\n", ($1 - $2) / 1e6 }' | sort -n > "$tmp/gaps"
read -r n p50 p90 p99 max < <(awk '{ v[NR] = $1 } END {
        i50 = int(0.50 * NR + 0.999999); i90 = int(0.90 * NR + 0.999999); i99 = int(0.99 * NR + 0.999999)
        printf "%d %s %s %s %s\n", NR, v[i50], v[i90], v[i99], v[NR]
}' "$tmp/gaps")
fp=$(grep -o 'worktree fingerprint in [0-9.]* ms' "$tmp/makima-worker.log" | awk '{ print $4 }' | sort -n |
        awk '{ v[NR] = $1 } END { if (NR) print v[int(0.5 * NR + 0.999999)]; else print "?" }')

printf 'bench/loop: %d restarts, agent exit -> next agent exec (ms): p50 %s  p90 %s  p99 %s  max %s\n' \
        "$n" "$p50" "$p90" "$p99" "$max"
printf 'bench/loop: of which the worktree fingerprint (p50): %s ms\n' "$fp"
awk -v p="$p50" -v m="$max_p50_ms" 'BEGIN { exit !(p < m) }' ||
        die "p50 $p50 ms is not below the target of $max_p50_ms ms"
