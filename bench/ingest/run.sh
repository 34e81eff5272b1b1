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
min_rate=${BENCH_MIN_RATE:-50000}
journal=${BENCH_JOURNAL:-auto}
keep=${BENCH_KEEP:-0}
journald_bin=/lib/systemd/systemd-journald

say() { printf 'bench/ingest: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

if [[ -z "$agent_bin" ]]; then
        die "usage: $0 makima-api makima-worker ingest-agent"
fi
for b in "$api_bin" "$worker_bin" "$agent_bin"; do
        [[ -x "$b" ]] || die "$b is not an executable"
done
api_bin=$(realpath "$api_bin") worker_bin=$(realpath "$worker_bin") agent_bin=$(realpath "$agent_bin")

missing=()
for tool in git:git bwrap:bubblewrap dbus-daemon:dbus-daemon curl:curl jq:jq sqlite3:sqlite3; do
        command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if (( ${#missing[@]} )); then
        say "missing tools; install them with: apt-get install ${missing[*]}"
        exit 77
fi
[[ "$nlines" =~ ^[0-9]+$ ]] && (( nlines >= 2 )) || die "BENCH_LINES must be a whole number >= 2, got '$nlines'"

# The journal: a private systemd-journald (what the worker writes to under
# systemd) needs root for its mount namespace; without, stderr to a file.
if [[ "$journal" == auto ]]; then
        if [[ "$(id -u)" == 0 && -x "$journald_bin" ]] && command -v unshare >/dev/null &&
           command -v journalctl >/dev/null; then
                journal=journald
        else
                journal=stderr
        fi
fi
case "$journal" in
journald)
        [[ "$(id -u)" == 0 && -x "$journald_bin" ]] || die "BENCH_JOURNAL=journald needs root and $journald_bin"
        if [[ -z "${BENCH_INGEST_IN_NAMESPACE:-}" ]]; then
                # /run and the journal's directories become tmpfs in a mount
                # namespace of our own: the host's journal is not touched.
                BENCH_INGEST_IN_NAMESPACE=1 BENCH_JOURNAL=journald exec unshare --mount --propagation private "$0" "$@"
        fi
        ;;
stderr) ;;
*) die "BENCH_JOURNAL must be auto, journald or stderr, got '$journal'" ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/makima-bench-ingest.XXXXXX")
chmod 755 "$tmp"
api_pid='' worker_pid='' bus_pid='' journald_pid=''

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
        local rc=$?
        for pid in $worker_pid $api_pid $bus_pid $journald_pid; do
                kill -TERM "$pid" 2>/dev/null || true
        done
        for pid in $worker_pid $api_pid $bus_pid $journald_pid; do
                wait "$pid" 2>/dev/null || true
        done
        if (( rc == 1 )); then
                for log in makima-worker makima-api journald; do
                        [[ -s "$tmp/$log.log" ]] || continue
                        say "last lines of $log's log:"
                        tail -n 20 "$tmp/$log.log" >&2 || true
                done
        fi
        if [[ "$keep" == 1 ]]; then
                say "kept $tmp"
        else
                rm -rf "$tmp"
        fi
        exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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

repo="$tmp/repo"
git init -q -b main "$repo"
echo "bench/ingest repository" > "$repo/README"
git -C "$repo" add README
git -C "$repo" -c user.name=bench -c user.email=bench@example.invalid commit -q -m "initial commit"

dbus-daemon --config-file=/usr/share/dbus-1/session.conf --address="unix:path=$tmp/bus" --nofork --nopidfile \
        >"$tmp/dbus.log" 2>&1 &
bus_pid=$!
for _ in $(seq 100); do
        [[ -S "$tmp/bus" ]] && break
        sleep 0.05
done
[[ -S "$tmp/bus" ]] || die "dbus-daemon did not start"
export MAKIMA_BUS_ADDRESS="unix:path=$tmp/bus"

cat > "$tmp/makima.conf" <<EOF
[Store]
Backend=sqlite
Path=$tmp/makima.db

[Worker]
MaxConcurrentTasks=1
PollIntervalSec=3600

[Agent]
Command=$agent_bin
Environment=BENCH_INGEST_LINES=$nlines

[Sandbox]
Enabled=yes
EOF

api_sock="$tmp/api.sock"
"$api_bin" --config "$tmp/makima.conf" --listen "unix:$api_sock" >"$tmp/makima-api.log" 2>&1 &
api_pid=$!
api() { curl -sS --fail-with-body --unix-socket "$api_sock" "$@"; }
for _ in $(seq 200); do
        kill -0 "$api_pid" 2>/dev/null || die "makima-api exited during start-up"
        [[ -S "$api_sock" ]] && api -o /dev/null http://localhost/api/v1/health 2>/dev/null && break
        sleep 0.05
done
api -o /dev/null http://localhost/api/v1/health || die "makima-api does not answer GET /api/v1/health"

worker_env=()
[[ "$journal" == stderr ]] && worker_env=(MAKIMA_JOURNAL=stderr)
env "${worker_env[@]}" "$worker_bin" --config "$tmp/makima.conf" --state-dir "$tmp/state" --instance 1 \
        >"$tmp/makima-worker.log" 2>&1 &
worker_pid=$!
for _ in $(seq 200); do
        grep -q "Worker .*: up to" "$tmp/makima-worker.log" && break
        kill -0 "$worker_pid" 2>/dev/null || die "makima-worker exited during start-up"
        sleep 0.05
done
grep -q "Worker .*: up to" "$tmp/makima-worker.log" || die "makima-worker did not start"

# cpu_ticks: the worker's utime + stime so far (fields 14 and 15 of its
# stat; the name in field 2 has no spaces).
cpu_ticks() { awk '{ print $14 + $15, $14, $15 }' "/proc/$worker_pid/stat"; }
hz=$(getconf CLK_TCK)
# runq_ns: how long the worker was ready to run but waited for a CPU (the
# second field of its schedstat): a busy machine, not the worker, if large.
runq_ns() { cut -d' ' -f2 "/proc/$worker_pid/schedstat" 2>/dev/null || echo 0; }

read -r cpu0 user0 sys0 < <(cpu_ticks)
runq0=$(runq_ns)
id=$(api -H 'Content-Type: application/json' \
        -d "$(jq -nc --arg repo "$repo" '{plan: "bench/ingest", repo: $repo, name: "ingest"}')" \
        http://localhost/api/v1/tasks | jq -er .id) || die "could not create the task"
say "task $id: an agent printing $nlines lines and a result"

status=''
for _ in $(seq 3000); do
        status=$(api "http://localhost/api/v1/tasks/$id" | jq -r .status)
        [[ "$status" == pending || "$status" == running ]] || break
        sleep 0.1
done
read -r cpu1 user1 sys1 < <(cpu_ticks)
runq1=$(runq_ns)
[[ "$status" == done ]] || die "task $id ended '$status': $(api "http://localhost/api/v1/tasks/$id" | head -c 500)"

# ---- what the store holds ----

db="$tmp/makima.db"
q() { sqlite3 -batch -noheader -separator ' ' "file:$db?mode=ro" "$1"; }
# The agent's events are those with its uuids (makima adds "claimed" and
# "status" events of its own).
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
expected=$((nlines + 1))
(( n_agent == expected && n_uuids == expected )) ||
        die "the store has $n_agent of the agent's $expected events ($n_uuids different ones)"
(( n_bad == 0 )) || die "the store has $n_bad stderr or invalid_output events"
(( min_seq == 1 && max_seq == n_all )) || die "seq is not gapless: $n_all events, seq $min_seq..$max_seq"
[[ -n "$start_ns" ]] || die "the agent's start time is not in its init line"

n_journal=''
if [[ "$journal" == journald ]]; then
        n_journal=$(journalctl --directory=/run/log/journal --no-pager -o json --output-fields=MAKIMA_SEQ \
                "MAKIMA_TASK_ID=$id" | wc -l)
fi

# ---- report ----

payload_mb=$(q "SELECT printf('%.1f', sum(length(payload)) / 1e6) FROM task_events WHERE task_id = '$id'")
awk -v n="$expected" -v start_us="$((start_ns / 1000))" -v first="$first_at" -v last="$last_at" \
    -v cpu="$((cpu1 - cpu0))" -v user="$((user1 - user0))" -v sys="$((sys1 - sys0))" -v hz="$hz" \
    -v min_rate="$min_rate" -v n_all="$n_all" -v mb="$payload_mb" -v journal="$journal_what" \
    -v n_journal="$n_journal" -v worker="$worker_bin" -v runq="$((runq1 - runq0))" -v lines="$nlines" '
BEGIN {
        wall = (last - start_us) / 1e6
        inner = (last - first) / 1e6
        rate = (wall > 0) ? n / wall : 0
        printf "\nmakima-worker (%s) on SQLite, sandbox on; agent events also to %s\n", worker, journal
        printf "one task, its agent printing %d stream-json lines and a result (%s MB) as fast as it can\n\n",
               lines, mb
        printf "%-34s %d of the agent'\''s %d, seq 1..%d gapless (%d of makima'\''s own)\n",
               "events in the store", n, n, n_all, n_all - n
        if (n_journal != "")
                printf "%-34s %d\n", "journal entries for the task", n_journal
        printf "%-34s %7.3f s %10.0f events/s   (needs >= %d: %s)\n", "agent start -> last event stored",
               wall, rate, min_rate, (rate >= min_rate) ? "ok" : "MISSED"
        printf "%-34s %7.3f s %10.0f events/s\n", "first -> last event stored", inner, (inner > 0) ? n / inner : 0
        printf "%-34s %7.3f s %10.2f ms per 1000 events  (user %.2f s, system %.2f s)\n", "worker CPU time",
               cpu / hz, cpu / hz * 1e6 / n, user / hz, sys / hz
        printf "%-34s %7.3f s   (ready to run, but the CPUs were busy)\n", "worker waiting for a CPU", runq / 1e9
        exit (rate >= min_rate) ? 0 : 1
}' || { say "the worker ingested fewer than $min_rate events/s"; exit 1; }
exit 0
