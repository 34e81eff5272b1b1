#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench/ingest: how many stream-json events per second one makima-worker
# takes from an agent into the store and the journal, and its CPU time per
# 1,000 events. The agent prints 100,000 realistic lines as fast as it can,
# then a result; every event must be in the store with gapless seq. See
# bench/README.md.
#
# Usage: bench/ingest/run.sh makima-api makima-worker ingest-agent
# Exit: 0 figures printed and at least BENCH_MIN_RATE events/s; 1 failure or
#       target missed; 77 a tool is missing.

set -euo pipefail

api_bin=${1:-}
worker_bin=${2:-}
agent_bin=${3:-}
nlines=${BENCH_LINES:-100000}
rounds=${BENCH_ROUNDS:-3}
min_rate=${BENCH_MIN_RATE:-50000}
journal=${BENCH_JOURNAL:-stderr}
keep=${BENCH_KEEP:-0}
journald_bin=/lib/systemd/systemd-journald
bench_name=ingest
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

if [[ -z "$agent_bin" ]]; then
        die "usage: $0 makima-api makima-worker ingest-agent"
fi
bench_executables api_bin worker_bin agent_bin
bench_need_tools git:git bwrap:bubblewrap dbus-daemon:dbus-daemon curl:curl jq:jq sqlite3:sqlite3
if ! [[ "$nlines" =~ ^[0-9]+$ ]] || (( nlines < 2 )); then
        die "BENCH_LINES must be a whole number >= 2, got '$nlines'"
fi
if ! [[ "$rounds" =~ ^[0-9]+$ ]] || (( rounds < 1 )); then
        die "BENCH_ROUNDS must be a whole number >= 1, got '$rounds'"
fi

# Where the worker's journal entries go: by default to its stderr, into a
# file, so that the worker alone is measured; with BENCH_JOURNAL=journald to
# a private systemd-journald, which then shares the CPUs (bench/README.md
# says why the first is the default).
case "$journal" in
journald)
        if [[ "$(id -u)" != 0 || ! -x "$journald_bin" ]] || ! command -v unshare >/dev/null ||
           ! command -v journalctl >/dev/null; then
                say "BENCH_JOURNAL=journald needs root, unshare, journalctl and $journald_bin"
                exit 77
        fi
        if [[ -z "${BENCH_INGEST_IN_NAMESPACE:-}" ]]; then
                # /run and the journal's directories become tmpfs in a mount
                # namespace of our own: the host's journal is not touched.
                BENCH_INGEST_IN_NAMESPACE=1 BENCH_JOURNAL=journald exec unshare --mount --propagation private "$0" "$@"
        fi
        ;;
stderr) ;;
*) die "BENCH_JOURNAL must be stderr or journald, got '$journal'" ;;
esac

# shellcheck disable=SC2034 # bench_cleanup ends them, by their names in bench_pid_vars
api_pid='' worker_pid='' bus_pid='' journald_pid=''
bench_pid_vars="worker_pid api_pid bus_pid journald_pid" bench_logs="makima-worker makima-api journald"
bench_make_tmp 755
if [[ "$journal" == journald ]]; then
        mount -t tmpfs tmpfs /run
        [[ -d /var/log/journal ]] && mount -t tmpfs tmpfs /var/log/journal
        mkdir -p /run/systemd/journal /run/log/journal
        # Every entry is kept: journald's default rate limit (10,000 per 30 s
        # per service) would drop most of them, and with them most of its work.
        printf '[Journal]\nStorage=volatile\nRateLimitBurst=0\nRuntimeMaxUse=1G\n' > "$tmp/journald.conf"
        [[ -e /etc/systemd/journald.conf ]] || die "no /etc/systemd/journald.conf to stand in for"
        mount --bind "$tmp/journald.conf" /etc/systemd/journald.conf
        "$journald_bin" >"$tmp/journald.log" 2>&1 &
        # shellcheck disable=SC2034 # bench_cleanup ends it
        journald_pid=$!
        for _ in $(seq 100); do
                [[ -S /run/systemd/journal/socket ]] && break
                sleep 0.05
        done
        [[ -S /run/systemd/journal/socket ]] || die "systemd-journald did not start"
        journal_what="a private systemd-journald (volatile, no rate limit)"
else
        journal_what="stderr, into a file (MAKIMA_JOURNAL=stderr)"
fi

bench_make_repo
bench_start_bus

bench_write_conf 3600 yes "BENCH_INGEST_LINES=$nlines"

bench_start_api

worker_env=()
[[ "$journal" == stderr ]] && worker_env=(MAKIMA_JOURNAL=stderr)
bench_start_worker "${worker_env[@]}"

# cpu_ticks: the worker's utime + stime so far (fields 14 and 15 of its
# stat; the name in field 2 has no spaces).
cpu_ticks() { awk '{ print $14 + $15, $14, $15 }' "/proc/$worker_pid/stat"; }
hz=$(getconf CLK_TCK)
# runq_ns: how long the worker was ready to run but waited for a CPU (the
# second field of its schedstat): a busy machine, not the worker, if large.
runq_ns() { cut -d' ' -f2 "/proc/$worker_pid/schedstat" 2>/dev/null || echo 0; }

db="$tmp/makima.db"
q() { sqlite3 -batch -noheader -separator ' ' "file:$db?mode=ro" "$1"; }
expected=$((nlines + 1))

# round N: one task, start to end; checks what the store and the journal
# got and appends "RATE WALL_S INNER_S CPU_S USER_S SYS_S RUNQ_S" to rounds.
round() {
        local id status answer cpu0 user0 sys0 cpu1 user1 sys1 runq0 runq1 start_ns n_journal
        local n_all min_seq max_seq n_agent n_uuids n_bad first_at last_at

        read -r cpu0 user0 sys0 < <(cpu_ticks)
        runq0=$(runq_ns)
        id=$(api -H 'Content-Type: application/json' \
                -d "$(jq -nc --arg repo "$repo" --arg name "ingest-$1" '{plan: "bench/ingest", repo: $repo, name: $name}')" \
                http://localhost/api/v1/tasks | jq -er .id) || die "could not create a task"

        # Until the task is over. Seldom, and without jq: the CPUs are the worker's.
        status=''
        for _ in $(seq 600); do
                sleep 0.5
                answer=$(api "http://localhost/api/v1/tasks/$id")
                [[ "$answer" =~ \"status\":\ *\"([a-z_]+)\" ]] && status=${BASH_REMATCH[1]}
                [[ "$status" == pending || "$status" == running ]] || break
        done
        read -r cpu1 user1 sys1 < <(cpu_ticks)
        runq1=$(runq_ns)
        [[ "$status" == "done" ]] || die "task $id ended '$status': $(api "http://localhost/api/v1/tasks/$id" | head -c 500)"

        # The agent's events are those with its uuids (makima adds "claimed"
        # and "status" events of its own).
        read -r n_all min_seq max_seq n_agent n_uuids n_bad first_at last_at < <(q "
                WITH e AS (SELECT seq, type, created_at,
                                  json_extract(payload, '\$.uuid') LIKE '6e6a6b00-0000-4000-8000-%' AS ours,
                                  json_extract(payload, '\$.uuid') AS uuid
                           FROM task_events WHERE task_id = '$id')
                SELECT count(*), min(seq), max(seq), sum(ours), count(DISTINCT uuid) FILTER (WHERE ours),
                       sum(type IN ('stderr', 'invalid_output')),
                       min(created_at) FILTER (WHERE ours), max(created_at) FILTER (WHERE ours)
                FROM e")
        start_ns=$(q "SELECT json_extract(payload, '\$.bench_exec_realtime_ns') FROM task_events
                      WHERE task_id = '$id' AND payload LIKE '%bench_exec_realtime_ns%' LIMIT 1")
        (( n_agent == expected && n_uuids == expected )) ||
                die "task $id: the store has $n_agent of the agent's $expected events ($n_uuids different ones)"
        (( n_bad == 0 )) || die "task $id: the store has $n_bad stderr or invalid_output events"
        (( min_seq == 1 && max_seq == n_all )) ||
                die "task $id: seq is not gapless: $n_all events, seq $min_seq..$max_seq"
        [[ -n "$start_ns" ]] || die "task $id: the agent's start time is not in its init line"
        own=$((n_all - n_agent))

        # Every event also went to the journal (or its stand-in on stderr).
        if [[ "$journal" == journald ]]; then
                n_journal=$(journalctl --directory=/run/log/journal --no-pager -o json --output-fields=MAKIMA_SEQ \
                        "MAKIMA_TASK_ID=$id" | wc -l)
        else
                n_journal=$(grep -c "^makima-worker: ${id:0:8} " "$tmp/makima-worker.log" || true)
        fi
        (( n_journal >= expected )) ||
                die "task $id: only $n_journal of the agent's $expected events reached the journal"

        awk -v n="$expected" -v start_us="$((start_ns / 1000))" -v first="$first_at" -v last="$last_at" \
            -v cpu="$((cpu1 - cpu0))" -v user="$((user1 - user0))" -v sys="$((sys1 - sys0))" -v hz="$hz" \
            -v runq="$((runq1 - runq0))" 'BEGIN {
                wall = (last - start_us) / 1e6
                printf "%.0f %.3f %.3f %.3f %.3f %.3f %.3f\n", (wall > 0) ? n / wall : 0, wall,
                       (last - first) / 1e6, cpu / hz, user / hz, sys / hz, runq / 1e9
        }' >> "$tmp/rounds"
        payload_mb=$(q "SELECT printf('%.1f', sum(length(payload)) / 1e6) FROM task_events WHERE task_id = '$id'")
}

say "$rounds round(s), each a task whose agent prints $nlines lines and a result"
own=0 payload_mb=0
for (( k = 1; k <= rounds; k++ )); do
        round "$k"
done

# ---- report ----

# The best round: other work on the machine only ever slows the worker
# down, so the fastest round is the closest to what it does undisturbed
# (as bench/api reports its best round).
read -r rate wall inner cpu user sys runq < <(sort -g -r -k1,1 "$tmp/rounds" | head -n 1)
ok=$(awk -v r="$rate" -v m="$min_rate" 'BEGIN { print (r >= m) ? 1 : 0 }')

echo
echo "makima-worker ($worker_bin) on SQLite, sandbox on; agent events also to $journal_what"
echo "each round one task, its agent printing $nlines stream-json lines and a result ($payload_mb MB) as fast as it can;"
echo "every round: all $expected events in the store with gapless seq (and $own of makima's own), and in the journal"
echo "best of $rounds round(s):"
echo
printf '%-36s %7.3f s %9.0f events/s  (needs >= %s: %s)\n' "agent start to last event stored" "$wall" "$rate" \
        "$min_rate" "$( (( ok )) && echo ok || echo MISSED)"
printf '%-36s %7.3f s %9.0f events/s\n' "first to last event stored" "$inner" \
        "$(awk -v n="$expected" -v t="$inner" 'BEGIN { printf "%.0f", (t > 0) ? n / t : 0 }')"
printf '%-36s %7.3f s %9.2f ms per 1000 events (user %.2f s, system %.2f s)\n' "worker CPU time" "$cpu" \
        "$(awk -v n="$expected" -v c="$cpu" 'BEGIN { printf "%.2f", c * 1e6 / n }')" "$user" "$sys"
printf '%-36s %7.3f s (ready to run, but the CPUs were busy)\n' "worker waiting for a CPU" "$runq"
echo
printf 'events/s per round: %s\n' "$(awk '{ printf "%s%s", (NR > 1) ? " " : "", $1 }' "$tmp/rounds")"

if (( ! ok )); then
        say "the worker ingested at most $rate events/s; the target is $min_rate"
        exit 1
fi
exit 0
