#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# makima-worker end to end, with a scripted agent: the real makima-api (tasks
# go in with curl) and real makima-workers on a real store, agents in the
# real bubblewrap sandbox, wake-ups over a private D-Bus daemon (or the
# store's notifications on PostgreSQL). The agent is tests/fake-agent: it
# speaks the Claude Code CLI's stream-json and does what "fake:" lines in
# the task's plan say (see fake-agent.c).
#
# Usage: test-worker.sh makima-api makima-worker fake-agent
# Under with-postgresql.sh (MAKIMA_TEST_PG_URL set) it runs on PostgreSQL.
set -euo pipefail

# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

WORKER_BIN=${2:?usage: $0 makima-api makima-worker fake-agent}
FAKE_AGENT=$(realpath "${3:?usage: $0 makima-api makima-worker fake-agent}")
lib_init "$1"

for tool in bwrap git dbus-daemon; do
        command -v "$tool" >/dev/null || { say "$tool is missing, skipping"; exit 77; }
done

STATE="$TMP/state"
REPO="$TMP/repo"
BUS="$TMP/bus"
declare -A WORKER_PID=()
SANDBOX_MISSING="bwrap not found: install bubblewrap or set [Sandbox] Enabled=no"

# Sanitized builds: the worker's own leaks are checked at its exit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1}

# ---- setup: a repository, a private bus, makima-api ----

git init -q -b main "$REPO"
echo "a repository for makima's worker test" > "$REPO/README"
git -C "$REPO" add README
git -C "$REPO" -c user.name=test -c user.email=test@example.invalid commit -q -m "initial commit"

dbus-daemon --config-file=/usr/share/dbus-1/session.conf --address="unix:path=$BUS" --nofork --nopidfile \
        >>"$TMP/dbus.log" 2>&1 &
EXTRA_PIDS="${EXTRA_PIDS:-} $!"
for _ in $(seq 100); do
        [[ -S "$BUS" ]] && break
        sleep 0.05
done
[[ -S "$BUS" ]] || fail "dbus-daemon did not start"
export MAKIMA_BUS_ADDRESS="unix:path=$BUS"

# worker_config [LINES…]: the store (as lib.sh writes it) and the worker's
# sections. The poll interval is an hour and the heartbeat (which also looks
# for control requests) comes every 10 s: a task starts, and a control
# request is acted on, within a second only when a wake-up (D-Bus signal,
# PostgreSQL notification) works.
worker_config() {
        write_config
        cat >>"$TMP/makima.conf" <<EOF

[Worker]
MaxConcurrentTasks=2
PollIntervalSec=3600
LeaseSec=30

[Agent]
Command=$FAKE_AGENT
Environment=FAKE_AGENT_TEST=1

[Sandbox]
Enabled=yes
EOF
        printf '%s\n' "$@" >>"$TMP/makima.conf"
}

worker_config
api_start

# What the workers tell systemd (READY=1, STATUS=…) lands in notify.log.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    while True:
        for line in s.recv(65536).decode().split("\n"):
            if line:
                f.write(line + "\n")
                f.flush()
' "$TMP/notify.sock" "$TMP/notify.log" &
EXTRA_PIDS="${EXTRA_PIDS:-} $!"
for _ in $(seq 100); do
        [[ -S "$TMP/notify.sock" ]] && break
        sleep 0.05
done

# worker_start N [ARGS…]: makima-worker --instance N, up when it says so.
worker_start() {
        local n=$1 log="$TMP/worker$1.log" lines

        shift
        lines=0
        [[ -f "$log" ]] && lines=$(wc -l <"$log")
        NOTIFY_SOCKET="$TMP/notify.sock" \
                "$WORKER_BIN" --config "$TMP/makima.conf" --state-dir "$STATE" --instance "$n" "$@" >>"$log" 2>&1 &
        WORKER_PID[$n]=$!
        EXTRA_PIDS="${EXTRA_PIDS:-} $!"
        for _ in $(seq 200); do
                tail -n +"$((lines + 1))" "$log" | grep -q "Worker .*: up to" && return 0
                kill -0 "${WORKER_PID[$n]}" 2>/dev/null || fail "makima-worker $n exited during start-up"
                sleep 0.05
        done
        fail "makima-worker $n did not start"
}

# worker_stop N: SIGTERM; it must exit 0 (and clean, under sanitizers).
worker_stop() {
        local rc=0

        kill -TERM "${WORKER_PID[$1]}"
        wait "${WORKER_PID[$1]}" || rc=$?
        unset "WORKER_PID[$1]"
        ((rc == 0)) || fail "makima-worker $1 exited with $rc after SIGTERM"
}

home_of() {
        echo "$STATE/homes/$1"
}

# ---- 0. --help and the man page agree; bad options are refused ----
MAN="$(dirname "$0")/../man/makima-worker.8"
HELP=$("$WORKER_BIN" --help) || fail "--help failed"
for opt in $(grep -Eo -- '--[a-z][a-z-]*' <<<"$HELP" | sort -u); do
        grep -qF -- "${opt//-/\\-}" "$MAN" || fail "$opt is in --help but not in makima-worker(8)"
done
grep -q -- '--instance=N' <<<"$HELP" || fail "--help does not show --instance"
! "$WORKER_BIN" --instance 0 2>/dev/null || fail "--instance 0 was accepted"
! "$WORKER_BIN" --no-such-option 2>/dev/null || fail "an unknown option was accepted"

worker_start 1

# ---- 1. a task runs to the end, in the sandbox, on its own branch ----
say "normal path"
ID=$(create_task $'Write a greeting.\nfake: write hello.txt hello from makima\nfake: commit add hello.txt')
wait_status "$ID" done 30
ID8=${ID:0:8}
get_task "$ID"
expect_json .branch "makima/$ID8"
expect_json .worktree "$STATE/worktrees/$ID"
expect_json '.error' null
jq -e '.session_id | startswith("fake-session-")' <<<"$BODY" >/dev/null || fail "no session id on the task: $BODY"
jq -e '.cost_usd > 0.01 and .cost_usd < 0.02' <<<"$BODY" >/dev/null || fail "cost not stored: $BODY"
jq -e '.completed_at != null' <<<"$BODY" >/dev/null || fail "no completed_at: $BODY"
SESSION=$(jqr .session_id)
[[ "$(cat "$STATE/worktrees/$ID/hello.txt")" == "hello from makima" ]] || fail "hello.txt is not in the worktree"
# The branch is the task's own, in its own git directory; the repository
# itself is as it was.
TGIT=(git --git-dir="$STATE/git/$ID")
[[ "$("${TGIT[@]}" show "makima/$ID8:hello.txt")" == "hello from makima" ]] ||
        fail "hello.txt is not committed on makima/$ID8"
[[ "$("${TGIT[@]}" log -1 --format=%s "makima/$ID8")" == "add hello.txt" ]] || fail "the agent's commit is missing"
[[ "$(jqr .base_commit)" == "$(git -C "$REPO" rev-parse main)" ]] || fail "base_commit is not main's commit"
git -C "$REPO" rev-parse -q --verify refs/heads/main >/dev/null || fail "main is gone"
[[ -z "$(git -C "$REPO" ls-tree --name-only main hello.txt)" ]] || fail "hello.txt leaked onto main"
[[ "$(git -C "$REPO" for-each-ref --format='%(refname)')" == refs/heads/main ]] ||
        fail "the repository got refs: $(git -C "$REPO" for-each-ref)"
! git -C "$REPO" cat-file -e "$("${TGIT[@]}" rev-parse "makima/$ID8")" 2>/dev/null ||
        fail "the agent's commit reached the repository's objects"
# The plan is the first stream-json user line; the home is private.
head -n 1 "$(home_of "$ID")/stdin.log" | jq -e '.type == "user" and (.message.content | test("fake: write hello.txt"))' \
        >/dev/null || fail "the plan was not the first line on the agent's stdin"
# Its home is the task's alone: its group is the agents', nobody else may enter.
[[ "$(stat -c %a "$(home_of "$ID")")" == 2770 ]] || fail "the task's home is not 2770: $(stat -c %a "$(home_of "$ID")")"
tr '\037' '\n' <"$(home_of "$ID")/args.log" | grep -qx -- '--dangerously-skip-permissions' ||
        fail "the agent's arguments lack --dangerously-skip-permissions"
tr '\037' '\n' <"$(home_of "$ID")/args.log" | grep -q "makima task $ID" ||
        fail "the agent's system prompt does not name the task"

events "$ID"
# Every event in order, seq gapless from 1.
jq -e '[.events[].seq] == [range(1; (.events | length) + 1)]' <<<"$BODY" >/dev/null || fail "event seqs are not 1..N"
TYPES=$(jq -r '[.events[].type] | join(" ")' <<<"$BODY")
[[ "$TYPES" == "claimed system assistant user assistant user assistant result status" ]] ||
        fail "unexpected events: $TYPES"
jq -e '.events[0].data.worker | endswith(":1")' <<<"$BODY" >/dev/null || fail "the claim does not name worker 1"
jq -e '[.events[] | select(.type == "system")][0].data | .subtype == "init" and .session_id != null' \
        <<<"$BODY" >/dev/null || fail "system/init is not stored as the CLI wrote it"
jq -e '[.events[] | select(.type == "assistant")][0].data.message.content[0].name == "Write"' \
        <<<"$BODY" >/dev/null || fail "the Write tool use is not stored"
jq -e '[.events[] | select(.type == "result")][0].data | .is_error == false and .total_cost_usd > 0' \
        <<<"$BODY" >/dev/null || fail "the result is not stored"
# The agent ran as the sandbox's user, not as root.
jq -e '[.events[] | select(.type == "result")][0].data.result | test("uid=1000")' <<<"$BODY" >/dev/null ||
        fail "the agent did not run as uid 1000 in the sandbox"
jq -e '.events[-1].data | .to == "done" and .from == "running"' <<<"$BODY" >/dev/null || fail "no final status event"
# systemd hears how the worker is doing.
grep -qx 'READY=1' "$TMP/notify.log" || fail "no READY=1"
grep -qx 'STATUS=idle, waiting for tasks' "$TMP/notify.log" || fail "no idle status"
grep -Eqx "STATUS=running 1 task: $ID8 \((preparing|running)\)" "$TMP/notify.log" ||
        fail "no status naming the task: $(cat "$TMP/notify.log")"
# Every event also went to the log (no journal here), with the short id.
grep -q "$ID8 tool Write" "$TMP/worker1.log" || grep -q "$ID8 .*Write" "$TMP/worker1.log" ||
        fail "the worker's log does not show the agent's events"

# The base branch the worker used is recorded; every run counts.
get_task "$ID"
expect_json .base_branch main
expect_json .iteration_count 1

# An untracked file of the repository (copy_files) is copied into the worktree.
say "copy_files"
printf 'SECRET=from-the-repository\n' >"$REPO/.env"
COPY=$(create_task 'fake: write copied.txt seen' '.copy_files = [".env"]')
wait_status "$COPY" done 30
get_task "$COPY"
[[ "$(cat "$(jqr .worktree)/.env")" == "SECRET=from-the-repository" ]] || fail ".env was not copied into the worktree"
rm -f "$REPO/.env"

# A looping task with a budget: the fake agent's runs cost about $0.0123
# each, and it never says it is done; the second run goes over $0.015.
say "loop cost limit"
COSTLY=$(create_task 'fake: write costly.txt spent' '.autonomous_loop = true | .max_cost_usd = 0.015')
wait_status "$COSTLY" failed 30
get_task "$COSTLY"
expect_json .iteration_count 2
jqr .error | grep -q 'exceeded the limit' || fail "the cost limit is not the reason: $BODY"
events "$COSTLY"
jq -e '[.events[] | select(.type == "iteration") | .data] | length == 2 and .[0].cost_usd > 0.01 and
        (.[0].reason | test("no completion gate, restarting")) and .[1].max == 10' <<<"$BODY" >/dev/null ||
        fail "unexpected iteration events: $(jq -c '[.events[] | select(.type == "iteration") | .data]' <<<"$BODY")"
# The second run resumed the session, with a prompt that asks for the gate.
sed -n 2p "$(home_of "$COSTLY")/stdin.log" | jq -e '.message.content | test("COMPLETION_GATE")' >/dev/null ||
        fail "the second run's prompt does not ask for a completion gate: $(cat "$(home_of "$COSTLY")/stdin.log")"

# The loop and the budget can come from the contract: its task loops even
# though the task's own flag is off, and stops at the contract's limit.
say "loop and cost limit from the contract"
req admin POST /api/v1/contracts '{"name": "looping", "autonomous_loop": true, "max_cost_usd": 0.015}'
expect_status 201 "create a looping contract"
LOOPC=$(jqr .id)
INHERIT=$(create_task 'fake: write inherit.txt spent' ".contract_id = \"$LOOPC\" | .autonomous_loop = false")
wait_status "$INHERIT" failed 30
get_task "$INHERIT"
expect_json .autonomous_loop false
expect_json .iteration_count 2
jqr .error | grep -q 'exceeded the limit of \$0.015' || fail "the contract's cost limit is not the reason: $BODY"

# ---- 2. failures, each with its reason in words ----
say "failures"
CRASH=$(create_task $'fake: write partial.txt half done\nfake: crash')
EXIT3=$(create_task 'fake: exit 3')
NOREPO=$(create_task 'never runs' ".repo = \"$TMP/no-such-repo\"")
BADBASE=$(create_task 'never runs' '.base_branch = "no-such-branch"')
AUTH=$(create_task 'fake: 401')

wait_status "$CRASH" failed
expect_json .error "agent was killed by signal 6 (SIGABRT)"
[[ -f "$STATE/worktrees/$CRASH/partial.txt" ]] || fail "the crashed agent's file is gone"
wait_status "$EXIT3" failed
expect_json .error "agent exited with status 3: fatal: the fake agent gives up"
wait_status "$NOREPO" failed
jqr .error | grep -q "no-such-repo" || fail "no reason naming the missing repository: $BODY"
jq -e '.worktree == null' <<<"$BODY" >/dev/null || fail "a worktree for a missing repository: $BODY"
wait_status "$BADBASE" failed
jqr .error | grep -q "no-such-branch" || fail "no reason naming the missing base branch: $BODY"
wait_status "$AUTH" failed
expect_json .error "agent is not logged in on worker 1 (Invalid API key · Fix external API key)"
req admin GET "/api/v1/notifications?limit=100"
expect_status 200 "notifications"
jq -e --arg id "$AUTH" '[.notifications[] | select(.task_id == $id and .level == "error"
        and (.message | test("not logged in on worker 1")))] | length == 1' <<<"$BODY" >/dev/null ||
        fail "no notification for the agent that is not logged in: $BODY"
if [[ -z "${MAKIMA_TEST_PG_URL:-}" ]] && command -v sqlite3 >/dev/null; then
        [[ "$(sqlite3 "$TMP/makima.db" "SELECT count(*) FROM notifications WHERE task_id = '$AUTH'")" == 1 ]] ||
                fail "the notification is not in the store"
fi

# ---- 3. output that is not stream-json, and the CLI's own questions ----
say "odd output"
ODD=$(create_task $'fake: garbage\nfake: ask\nfake: ratelimit')
wait_status "$ODD" done
events "$ODD"
jq -e '[.events[] | select(.type == "invalid_output")][0].data | .line == "this is not JSON {" and .error != null' \
        <<<"$BODY" >/dev/null || fail "no invalid_output event: $(jq -c '[.events[].type]' <<<"$BODY")"
jq -e '[.events[] | select(.type == "stderr")][0].data.line | test("fake agent says")' <<<"$BODY" >/dev/null ||
        fail "no stderr event"
jq -e '[.events[] | select(.type == "control_request")] | length == 1' <<<"$BODY" >/dev/null ||
        fail "the CLI's control_request is not stored"
jq -e '[.events[] | select(.type == "status") | .data.to] == ["waiting", "running", "done"]' <<<"$BODY" >/dev/null ||
        fail "a rejected rate limit did not make the task wait: $(jq -c '[.events[] | select(.type == "status")]' <<<"$BODY")"
grep -q '"subtype":"error".*makima grants no permissions interactively' "$(home_of "$ODD")/stdin.log" ||
        grep -q 'makima grants no permissions interactively' "$(home_of "$ODD")/stdin.log" ||
        fail "the agent's control_request was not answered"

# ---- 4. pause, resume, interrupt, send on a running task ----
say "controls"
CTL=$(create_task $'fake: child\nfake: wait')
wait_status "$CTL" running
wait_file "$(home_of "$CTL")/stdin.log" 'fake: wait'
for _ in $(seq 50); do
        [[ $(sandbox_pids "$CTL" | wc -l) -ge 3 ]] && break
        sleep 0.1
done
PIDS=$(sandbox_pids "$CTL")
[[ $(wc -w <<<"$PIDS") -ge 3 ]] || fail "expected bwrap, the agent and its child, found: $PIDS"

req admin POST "/api/v1/tasks/$CTL/pause"
expect_status 202 "pause"
PAUSE=$(jqr .control_request.id)
wait_status "$CTL" paused 10
req admin GET "/api/v1/control-requests/$PAUSE"
jq -e 'def t: (sub("\\.[0-9]+Z$"; "Z") | fromdate) + ("0." + (capture("\\.(?<f>[0-9]+)Z$").f // "0") | tonumber);
        (.delivered_at | t) - (.created_at | t) < 0.5' <<<"$BODY" \
        >/dev/null || fail "the pause was not acted on at once (no wake-up?): $BODY"
for pid in $(sandbox_pids "$CTL"); do
        is_paused "$pid" || fail "process $pid of the paused task is in state $(proc_state "$pid"), not frozen"
done
req admin POST "/api/v1/tasks/$CTL/pause"
expect_status 202 "pause again"
PAUSE2=$(jqr .control_request.id)
req admin POST "/api/v1/tasks/$CTL/resume"
expect_status 202 "resume"
wait_status "$CTL" running 10
for pid in $(sandbox_pids "$CTL"); do
        ! is_paused "$pid" || fail "process $pid of the resumed task is still stopped or frozen"
done
req admin GET "/api/v1/control-requests/$PAUSE2"
expect_json .result "the task is paused already"

req admin POST "/api/v1/tasks/$CTL/interrupt"
expect_status 202 "interrupt"
INTERRUPT=$(jqr .control_request.id)
wait_status "$CTL" interrupted 10
grep '"type":"control_request"' "$(home_of "$CTL")/stdin.log" | jq -e '.request.subtype == "interrupt"' >/dev/null ||
        fail "the agent did not get the interrupt"
req admin GET "/api/v1/control-requests/$INTERRUPT"
expect_json .result ok
jq -e '.delivered_at != null and .done_at != null' <<<"$BODY" >/dev/null || fail "interrupt not marked: $BODY"
[[ -n "$(sandbox_pids "$CTL")" ]] || fail "the interrupted agent exited"

req admin POST "/api/v1/tasks/$CTL/send" '{"message": "hello agent, carry on"}'
expect_status 202 "send"
wait_file "$(home_of "$CTL")/stdin.log" 'hello agent, carry on' 10
wait_status "$CTL" done 20
events "$CTL"
jq -e '[.events[] | select(.type == "status") | .data.to] == ["paused", "running", "interrupted", "running", "done"]' \
        <<<"$BODY" >/dev/null || fail "unexpected status events: $(jq -c '[.events[] | select(.type == "status") | .data.to]' <<<"$BODY")"
jq -e '[.events[] | select(.type == "control") | .data.kind] == ["pause", "pause", "resume", "interrupt", "message"]' \
        <<<"$BODY" >/dev/null || fail "unexpected control events: $(jq -c '[.events[] | select(.type == "control") | .data]' <<<"$BODY")"
grep -qx "STATUS=running 1 task: ${CTL:0:8} (paused)" "$TMP/notify.log" || fail "no status for the paused task"
grep -qx "STATUS=running 1 task: ${CTL:0:8} (interrupted)" "$TMP/notify.log" ||
        fail "no status for the interrupted task"
for _ in $(seq 50); do
        [[ -z "$(sandbox_pids "$CTL")" ]] && break
        sleep 0.1
done
[[ -z "$(sandbox_pids "$CTL")" ]] || fail "processes of the finished task survive: $(sandbox_pids "$CTL")"

# ---- 5. cancel: nothing of the sandbox survives ----
say "cancel"
CANCEL=$(create_task $'fake: child\nfake: wait')
wait_status "$CANCEL" running
wait_file "$(home_of "$CANCEL")/stdin.log" 'fake: wait'
for _ in $(seq 50); do
        [[ $(sandbox_pids "$CANCEL" | wc -l) -ge 3 ]] && break
        sleep 0.1
done
req admin POST "/api/v1/tasks/$CANCEL/cancel"
expect_status 202 "cancel"
CANCEL_REQ=$(jqr .control_request.id)
wait_status "$CANCEL" cancelled 10
jq -e '.completed_at != null' <<<"$BODY" >/dev/null || fail "no completed_at on the cancelled task"
[[ -z "$(sandbox_pids "$CANCEL")" ]] || fail "processes of the cancelled task survive: $(sandbox_pids "$CANCEL")"
req admin GET "/api/v1/control-requests/$CANCEL_REQ"
expect_json .result ok

# ---- 5b. a flood of output: every line stored, in order ----
say "many lines"
START=$SECONDS
MANYLINES=$(create_task 'fake: lines 20000')
wait_status "$MANYLINES" done 60
say "20000 lines stored in about $((SECONDS - START)) s"
req admin GET "/api/v1/tasks/$MANYLINES/events?after=20000&limit=10"
expect_status 200 "the last events"
jq -e '[.events[] | [.seq, .type]] == [[20001, "assistant"], [20002, "assistant"], [20003, "assistant"],
        [20004, "result"], [20005, "status"]]' <<<"$BODY" >/dev/null || fail "events lost or out of order: $BODY"
req admin GET "/api/v1/tasks/$MANYLINES/events?after=2&limit=1"
jq -e '.events[0].data.message.content[0].text == "line 0"' <<<"$BODY" >/dev/null || fail "the first line is not first"

# ---- 5c. a lost lease stops the agent (SQLite: the test takes the lease away) ----
if [[ -z "${MAKIMA_TEST_PG_URL:-}" ]] && command -v sqlite3 >/dev/null; then
        say "lease lost"
        LOST=$(create_task $'fake: child\nfake: wait')
        wait_status "$LOST" running
        wait_file "$(home_of "$LOST")/stdin.log" 'fake: wait'
        sqlite3 "$TMP/makima.db" "UPDATE tasks SET lease_token = 'taken-over' WHERE id = '$LOST'"
        wait_file "$TMP/worker1.log" "Task ${LOST:0:8}: the lease was lost" 15
        for _ in $(seq 50); do
                [[ -z "$(sandbox_pids "$LOST")" ]] && break
                sleep 0.1
        done
        [[ -z "$(sandbox_pids "$LOST")" ]] || fail "the agent of a lost task survives"
        # Nothing was written for it after the loss.
        get_task "$LOST"
        expect_json .status running
        sqlite3 "$TMP/makima.db" "UPDATE tasks SET status = 'failed', lease_token = NULL, lease_expires_at = NULL WHERE id = '$LOST'"
fi

# ---- 6. a message after the turn ended starts the next run of the session ----
say "late message"
LATE=$(create_task 'fake: linger 3')
for _ in $(seq 200); do
        events "$LATE"
        jq -e '[.events[] | select(.type == "result")] | length == 1' <<<"$BODY" >/dev/null && break
        sleep 0.05
done
get_task "$LATE"
expect_json .status running
LATE_SESSION=$(jqr .session_id)
req admin POST "/api/v1/tasks/$LATE/send" '{"message": "one more thing"}'
expect_status 202 "send after the turn"
wait_status "$LATE" done 20
expect_json .session_id "$LATE_SESSION"
grep -q 'one more thing' "$(home_of "$LATE")/stdin.log" || fail "the late message did not reach the agent"
[[ $(wc -l <"$(home_of "$LATE")/args.log") == 2 ]] || fail "expected two runs of the agent"
tail -n 1 "$(home_of "$LATE")/args.log" | tr '\037' '\n' | grep -A1 -x -- --resume | grep -qx "$LATE_SESSION" ||
        fail "the second run does not resume the session"
jq -e '.cost_usd > 0.02' <<<"$BODY" >/dev/null || fail "the cost of both runs is not added up: $BODY"

# ---- 7. a stopped worker hands its task back; the next one resumes it ----
say "restart"
RESTART=$(create_task $'fake: wait')
wait_status "$RESTART" running
wait_file "$(home_of "$RESTART")/stdin.log" 'fake: wait'
get_task "$RESTART"
RESTART_SESSION=$(jqr .session_id)
worker_stop 1
get_task "$RESTART"
expect_json .status pending
expect_json .session_id "$RESTART_SESSION"
expect_json .worktree "$STATE/worktrees/$RESTART"
[[ -z "$(sandbox_pids "$RESTART")" ]] || fail "the agent survived its worker"
worker_start 1
wait_status "$RESTART" running
wait_file "$(home_of "$RESTART")/stdin.log" 'makima restarted you'
tail -n 1 "$(home_of "$RESTART")/args.log" | tr '\037' '\n' | grep -A1 -x -- --resume | grep -qx "$RESTART_SESSION" ||
        fail "the restarted agent does not resume its session"
req admin POST "/api/v1/tasks/$RESTART/send" '{"message": "finish now"}'
expect_status 202 "send to the resumed agent"
wait_status "$RESTART" done 20
expect_json .session_id "$RESTART_SESSION"
events "$RESTART"
jq -e '[.events[] | select(.type == "claimed")] | length == 2' <<<"$BODY" >/dev/null || fail "expected two claims"
jq -e '[.events[].seq] == [range(1; (.events | length) + 1)]' <<<"$BODY" >/dev/null || fail "event seqs are not 1..N"

# ---- 7a. an interrupted task whose worker stopped: a message still reaches
# an agent (the next worker claims it because a control request waits) ----
say "message to an interrupted task after its worker stopped"
IDLE=$(create_task $'fake: wait')
wait_status "$IDLE" running
wait_file "$(home_of "$IDLE")/stdin.log" 'fake: wait'
get_task "$IDLE"
IDLE_SESSION=$(jqr .session_id)
req admin POST "/api/v1/tasks/$IDLE/interrupt"
expect_status 202 "interrupt"
wait_status "$IDLE" interrupted 10
worker_stop 1
get_task "$IDLE"
expect_json .status interrupted
req admin POST "/api/v1/tasks/$IDLE/send" '{"message": "welcome back, finish up"}'
expect_status 202 "send to an interrupted task nobody holds"
worker_start 1
wait_status "$IDLE" done 30
expect_json .session_id "$IDLE_SESSION"
grep -q 'welcome back, finish up' "$(home_of "$IDLE")/stdin.log" || fail "the message never reached an agent"

# ---- 7b. a worker killed outright: its sandbox dies with it, and once the
# lease has run out (here the test makes it so) the task is rescued ----
if [[ -z "${MAKIMA_TEST_PG_URL:-}" ]] && command -v sqlite3 >/dev/null; then
        say "rescue"
        RESCUE=$(create_task $'fake: child\nfake: wait')
        wait_status "$RESCUE" running
        wait_file "$(home_of "$RESCUE")/stdin.log" 'fake: wait'
        get_task "$RESCUE"
        RESCUE_SESSION=$(jqr .session_id)
        kill -KILL "${WORKER_PID[1]}"
        wait "${WORKER_PID[1]}" 2>/dev/null || true
        for _ in $(seq 50); do
                [[ -z "$(sandbox_pids "$RESCUE")" ]] && break
                sleep 0.1
        done
        [[ -z "$(sandbox_pids "$RESCUE")" ]] || fail "the sandbox survived its killed worker"
        sqlite3 "$TMP/makima.db" "UPDATE tasks SET lease_expires_at = 1 WHERE id = '$RESCUE'"
        worker_start 1
        wait_file "$(home_of "$RESCUE")/stdin.log" 'makima restarted you'
        events "$RESCUE"
        jq -e '[.events[] | select(.type == "claimed") | .data.rescued] == [false, true]' <<<"$BODY" >/dev/null ||
                fail "the task was not rescued: $(jq -c '[.events[] | select(.type == "claimed")]' <<<"$BODY")"
        req admin POST "/api/v1/tasks/$RESCUE/send" '{"message": "finish now"}'
        expect_status 202 "send to the rescued agent"
        wait_status "$RESCUE" done 20
        expect_json .session_id "$RESCUE_SESSION"
fi

# ---- 8. two workers, several tasks: each runs exactly once ----
say "two workers"
worker_start 2
MANY=()
for i in $(seq 8); do
        MANY+=("$(create_task "fake: write file$i.txt task $i")")
done
for id in "${MANY[@]}"; do
        wait_status "$id" done 60
        events "$id"
        jq -e '[.events[] | select(.type == "claimed")] | length == 1' <<<"$BODY" >/dev/null ||
                fail "task $id was claimed more than once"
        jq -e '[.events[] | select(.type == "result")] | length == 1' <<<"$BODY" >/dev/null ||
                fail "task $id ran more than once"
done
worker_stop 2
worker_stop 1
grep -q 'Worker .*:2: up to' "$TMP/worker2.log" || fail "worker 2 did not say who it is"

# ---- 9. bwrap missing ----
say "bwrap missing"
worker_start 1 --bwrap="$TMP/no-such-bwrap"
NOBWRAP=$(create_task 'fake: write never.txt x')
wait_status "$NOBWRAP" failed
expect_json .error "$SANDBOX_MISSING"
worker_stop 1

# ---- 9b. the agent program is missing: the task says which and where ----
say "agent program missing"
worker_config '[Agent]' "Command=$TMP/no-such-agent"
worker_start 1
NOAGENT=$(create_task 'fake: write never.txt x')
wait_status "$NOAGENT" failed
jq -e --arg p "$TMP/no-such-agent" '.error | startswith("the agent program '"'"'" + $p + "'"'"' was not found on worker 1")' \
        <<<"$BODY" >/dev/null || fail "unclear reason for a missing agent: $(jq -r .error <<<"$BODY")"
worker_stop 1
worker_config

# ---- 10. Enabled=no: runs unsandboxed, with a warning ----
say "sandbox disabled"
worker_config '[Sandbox]' 'Enabled=no'
worker_start 1
OPEN=$(create_task 'fake: write open.txt unsandboxed')
wait_status "$OPEN" done
grep -q 'Enabled=no' "$TMP/worker1.log" || fail "no warning about the disabled sandbox"
events "$OPEN"
jq -e --arg uid "$(id -u)" '[.events[] | select(.type == "result")][0].data.result | test("uid=" + $uid)' \
        <<<"$BODY" >/dev/null || fail "the unsandboxed agent did not run as the worker's user"
worker_stop 1

# ---- 11. without any wake-up, the poll timer finds tasks ----
say "polling"
worker_config '[Worker]' 'PollIntervalSec=1'
MAKIMA_BUS_ADDRESS="unix:path=$TMP/no-such-bus" worker_start 1
grep -q 'polling every 1 s' "$TMP/worker1.log" || fail "no warning about the missing bus"
POLLED=$(create_task 'fake: write polled.txt found by polling')
wait_status "$POLLED" done 15
worker_stop 1

say "PASS"
