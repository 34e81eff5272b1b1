#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# makima-worker when the store cannot be written because its disk is full,
# for real: the state directory (and the SQLite store in it) is a small
# tmpfs in a mount namespace of the test's own, filled with a file until
# writes fail, and later freed. The real makima-worker runs tests/fake-agent
# in the real sandbox; makima-api serves what the test reads.
#
#  1. An agent that keeps printing while the store is full is not read any
#     more (it blocks writing its stdout), is stopped after
#     [Worker] StoreRetrySec=, and once the space is freed every one of its
#     60 steps is stored, in order, with gapless seq numbers; the task's
#     status events say it was paused because the store could not be
#     written, and that it runs again. The outage outlasts the lease.
#  2. An agent that exits while the store is full: its task is not given a
#     final status before its output is stored.
#  3. SIGTERM while the store is full: the worker retries for a bounded
#     time, exits 0, and the worker started next records an events_lost
#     event as soon as the store takes writes again.
#  Afterwards PRAGMA integrity_check says ok.
#
# Usage: test-worker-store-full.sh makima-api makima-worker fake-agent
# Needs root (mount namespace, tmpfs) and sqlite3; skips (77) otherwise.
set -euo pipefail

if [[ -z "${MAKIMA_TEST_IN_NAMESPACE:-}" ]]; then
        [[ "$(id -u)" == 0 ]] && command -v unshare >/dev/null && command -v sqlite3 >/dev/null ||
                { echo "test-worker-store-full.sh: needs root, unshare and sqlite3, skipping" >&2; exit 77; }
        MAKIMA_TEST_IN_NAMESPACE=1 exec unshare --mount --propagation private "$0" "$@"
fi

# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

WORKER_BIN=${2:?usage: $0 makima-api makima-worker fake-agent}
FAKE_AGENT=$(realpath "${3:?usage: $0 makima-api makima-worker fake-agent}")
lib_init "$1"
unset MAKIMA_BUS_ADDRESS
command -v bwrap >/dev/null || { say "bwrap is missing, skipping"; exit 77; }
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1}

FULL="$TMP/full"
DB="$FULL/makima.db"
REPO="$TMP/repo"
WORKER=''
RETRY_SEC=3
LEASE_SEC=6

# The processes first (lib_cleanup), then the tmpfs, then $TMP.
cleanup() {
        local rc=$?

        trap - EXIT
        for pid in ${EXTRA_PIDS:-} $API_PID; do
                kill -TERM "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
        done
        API_PID='' EXTRA_PIDS=''
        umount -l "$FULL" 2>/dev/null || true
        # lib_cleanup takes the exit status from $?.
        set +e
        (exit "$rc")
        lib_cleanup
}
trap cleanup EXIT
mkdir "$FULL"
mount -t tmpfs -o size=32m,mode=0755 tmpfs "$FULL"

git init -q -b main "$REPO"
git -C "$REPO" -c user.name=test -c user.email=test@example.invalid commit -q --allow-empty -m "initial commit"

printf '[Store]\nBackend=sqlite\nPath=%s\n' "$DB" >"$TMP/makima.conf"
cat >>"$TMP/makima.conf" <<EOF

[Worker]
MaxConcurrentTasks=3
PollIntervalSec=1
LeaseSec=$LEASE_SEC
StoreRetrySec=$RETRY_SEC

[Agent]
Command=$FAKE_AGENT
EOF
api_start

# worker_start: makima-worker 1 with its state on the tmpfs.
worker_start() {
        local n=0

        N_WORKERS=$((N_WORKERS + 1))
        "$WORKER_BIN" --config "$TMP/makima.conf" --state-dir "$FULL" --instance 1 >>"$TMP/worker$N_WORKERS.log" 2>&1 &
        WORKER=$!
        EXTRA_PIDS="${EXTRA_PIDS:-} $WORKER"
        while ! grep -q "Worker .*: up to" "$TMP/worker$N_WORKERS.log" 2>/dev/null; do
                kill -0 "$WORKER" 2>/dev/null || fail "makima-worker exited during start-up"
                ((++n < 200)) || fail "makima-worker did not start"
                sleep 0.05
        done
}
N_WORKERS=0

# wait_event ID JQ-CONDITION [SECONDS]: until an event of the task matches.
wait_event() {
        local deadline=$((SECONDS + ${3:-20}))

        while ((SECONDS < deadline)); do
                events "$1"
                jq -e "any(.events[]; $2)" <<<"$BODY" >/dev/null && return 0
                sleep 0.1
        done
        fail "task $1 has no event matching '$2': $(jq -c '[.events[] | [.seq, .type]]' <<<"$BODY")"
}

status_of() {
        req admin GET "/api/v1/tasks/$1"
        expect_status 200 "get task $1"
        jqr .status
}

# agent_pid ID: the fake agent's pid (inside the task's sandbox), or nothing.
agent_pid() {
        local pid

        for pid in $(grep -l -s -a "MAKIMA_TASK_ID=$1" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3); do
                [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == fake-agent ]] && { echo "$pid"; return 0; }
        done
        return 0
}

# fill: the store's file system is full. The WAL is checkpointed into the
# database and truncated first, so that no write finds room in it.
fill() {
        local k

        for k in $(seq 50); do
                [[ "$(sqlite3 -cmd '.timeout 5000' "$DB" 'PRAGMA wal_checkpoint(TRUNCATE)')" == 0\|0\|0 ]] && break
                sleep 0.1
        done
        dd if=/dev/zero of="$FULL/fill" bs=4096 status=none 2>/dev/null || true
        [[ "$(df --output=avail -B1 "$FULL" | tail -n 1 | tr -d ' ')" == 0 ]] || fail "the tmpfs is not full"
}

unfill() {
        rm -f "$FULL/fill"
}

# check_gapless ID: the task's events are numbered 1..N.
check_gapless() {
        events "$1"
        jq -e '[.events[].seq] == [range(1; (.events | length) + 1)]' <<<"$BODY" >/dev/null ||
                fail "task $1: event seqs are not 1..N: $(jq -c '[.events[].seq]' <<<"$BODY")"
}

worker_start

# ---- 1 and 2: a store that fills up under two running agents ----
say "the store fills up while agents print"
STEPS=$(create_task $'fake: sleep 2\nfake: steps 60 4096 20')
# An agent that exits on its own in the middle of its turn (a CLI that has
# printed its result waits for its stdin to close, which the worker does
# only once it has read the result).
EXITS=$(create_task $'fake: sleep 3\nfake: steps 5 200 0\nfake: exit 0')
for id in "$STEPS" "$EXITS"; do
        wait_event "$id" '.type == "system"' 20
done
fill
FULL_AT=$SECONDS

# The first batch that cannot be written: the agent's output is not read
# any more, so the agent blocks in write(1, …) on its full stdout pipe.
wait_for_file_match "$TMP/worker1.log" "Task ${STEPS:0:8}: (the store does not take|failed to write)" 15
PID=$(agent_pid "$STEPS")
[[ -n "$PID" ]] || fail "the agent of $STEPS is not running"
blocked=0
for _ in $(seq 100); do
        if [[ "$(cut -d' ' -f1,2 "/proc/$PID/syscall" 2>/dev/null)" == "1 0x1" ]]; then
                blocked=1
                break
        fi
        is_paused "$PID" && break
        sleep 0.05
done
((blocked)) || fail "the agent was not held up writing its stdout while the store was full (state $(proc_state "$PID"), syscall $(cat "/proc/$PID/syscall" 2>/dev/null))"
say "the agent is blocked writing its stdout"

# After StoreRetrySec= the agent is stopped.
for _ in $(seq 200); do
        is_paused "$PID" && break
        sleep 0.05
done
is_paused "$PID" || fail "the agent was not stopped while the store stayed full (state $(proc_state "$PID"), not frozen)"
((SECONDS - FULL_AT >= RETRY_SEC - 1)) || fail "the agent was stopped before StoreRetrySec= had passed"
say "the agent is stopped"

# The other agent printed its last lines and exited meanwhile: its task is
# not finished while its output waits for the store.
for _ in $(seq 200); do
        [[ -z "$(agent_pid "$EXITS")" ]] && break
        sleep 0.05
done
[[ -z "$(agent_pid "$EXITS")" ]] || fail "the agent of $EXITS did not exit"
# Keep the store full for longer than a lease.
while ((SECONDS - FULL_AT < LEASE_SEC + 2)); do
        [[ "$(status_of "$EXITS")" == running ]] || fail "task $EXITS got status $(status_of "$EXITS") before its output was stored"
        [[ "$(status_of "$STEPS")" == running ]] || fail "task $STEPS got status $(status_of "$STEPS") while the store was full"
        sleep 0.5
done

say "space freed"
unfill
wait_status "$EXITS" failed 30
wait_status "$STEPS" done 60

check_gapless "$STEPS"
jq -e '[.events[] | select(.type == "assistant") | .data.message.content[0].text | select(startswith("step "))]
        == [range(1; 61) | "step \(.)"]' <<<"$BODY" >/dev/null ||
        fail "task $STEPS: steps missing or out of order: $(jq -c '[.events[] | select(.type == "assistant") | .data.message.content[0].text]' <<<"$BODY")"
jq -e '.events[-1].type == "status" and .events[-1].data.to == "done" and .events[-2].type == "result"' <<<"$BODY" \
        >/dev/null || fail "task $STEPS: the final status is not written after its output: $(jq -c '.events[-3:]' <<<"$BODY")"
# Paused, with the reason, and running again; never anything lost.
jq -e '[.events[] | select(.type == "status") | .data] | (.[0].to == "paused" and
        (.[0].error | test("store"; "i")) and (.[0].error | test("space|full"; "i")) and
        .[1].from == "paused" and .[1].to == "running" and .[2].to == "done" and length == 3)' <<<"$BODY" >/dev/null ||
        fail "task $STEPS: unexpected status events: $(jq -c '[.events[] | select(.type == "status") | .data]' <<<"$BODY")"
jq -e 'any(.events[]; .type == "events_lost") | not' <<<"$BODY" >/dev/null || fail "task $STEPS lost events"

check_gapless "$EXITS"
jq -e '[.events[] | select(.type == "assistant") | .data.message.content[0].text]
        == [range(1; 6) | "step \(.)"] + ["Something is about to go wrong."] and
        ([.events[] | select(.type == "stderr")] | length == 1) and
        ([.events[] | select(.type == "status")] | length == 1) and
        .events[-1].data.to == "failed" and .events[-1].data.error == "agent ended without a result"' <<<"$BODY" \
        >/dev/null || fail "task $EXITS: events missing or the status before them: $(jq -c '[.events[] | [.seq, .type, .data.to]]' <<<"$BODY")"
[[ "$(sqlite3 "$DB" 'PRAGMA integrity_check')" == ok ]] || fail "integrity_check failed after the first outage"

# ---- 3: SIGTERM while the store is full ----
say "SIGTERM while the store is full"
STOPPED=$(create_task $'fake: sleep 2\nfake: steps 5 200 0\nfake: wait')
wait_event "$STOPPED" '.type == "system"' 20
events "$STOPPED"
BEFORE=$(jq '.events | length' <<<"$BODY")
fill
wait_for_file_match "$TMP/worker1.log" "Task ${STOPPED:0:8}: (the store does not take|failed to write)" 15
T0=$SECONDS
rc=0
kill -TERM "$WORKER"
wait "$WORKER" || rc=$?
((rc == 0)) || fail "makima-worker exited with $rc after SIGTERM"
((SECONDS - T0 <= RETRY_SEC + 10)) || fail "makima-worker took $((SECONDS - T0)) s to stop"
[[ -z "$(agent_pid "$STOPPED")" ]] || fail "the agent survived its worker"
# The five steps are still in the log it wrote, for the operator.
for i in 1 2 3 4 5; do
        grep -q "${STOPPED:0:8} .*step $i" "$TMP/worker1.log" || fail "step $i is not in the worker's log"
done

worker_start
sleep 2
events "$STOPPED"
[[ "$(jq '.events | length' <<<"$BODY")" == "$BEFORE" ]] || fail "events were written to a full store?"
say "space freed again"
unfill
wait_event "$STOPPED" '.type == "events_lost"' 15
check_gapless "$STOPPED"
jq -e '[.events[] | select(.type == "events_lost")] | length == 1 and (.[0].data | .count == 6 and
        (.reason | test("space"; "i")))' <<<"$BODY" >/dev/null ||
        fail "unexpected events_lost: $(jq -c '[.events[] | select(.type == "events_lost")]' <<<"$BODY")"
# It belongs to the run before the rescue: its events come first.
jq -e '([.events[] | select(.type == "events_lost")][0].seq) == '"$((BEFORE + 1))"' and
        ([.events[] | select(.type == "claimed")] | length <= 2)' <<<"$BODY" >/dev/null ||
        fail "events_lost is not the first event after the outage: $(jq -c '[.events[] | [.seq, .type]]' <<<"$BODY")"
req admin POST "/api/v1/tasks/$STOPPED/cancel"
[[ "$STATUS" == 202 || "$STATUS" == 200 ]] || fail "cancel: HTTP $STATUS"
for _ in $(seq 300); do
        s=$(status_of "$STOPPED")
        [[ "$s" == cancelled ]] && break
        sleep 0.1
done
[[ "$(status_of "$STOPPED")" == cancelled ]] || fail "task $STOPPED was not cancelled"
check_gapless "$STOPPED"

kill -TERM "$WORKER"
wait "$WORKER" || fail "makima-worker did not exit cleanly"
api_stop
[[ "$(sqlite3 "$DB" 'PRAGMA integrity_check')" == ok ]] || fail "integrity_check failed"
say "PASS"
