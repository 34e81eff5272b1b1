#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Drives the real makima-api with curl on what a worker shares with clients:
# task control requests, resuming at the iteration limit, the D-Bus signals on
# a private bus, live event streams (SSE), diffs of real git worktrees and
# notifications. No worker runs: the test writes the store where a worker
# would (tests/lib.sh).
#
# Usage: test-api-control.sh PATH/TO/makima-api

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lib_init "${1:-}"
write_config "MaxBodyBytes=4K" "MaxHeaderBytes=8K" "AdminGroup=makima-test-admins"

have_bus=0
if bus_start; then
        have_bus=1
fi
api_start
if (( have_bus )); then
        wait_for_bus_name org.makima1
        busctl --address="$BUS_ADDRESS" --json=short monitor --match "type='signal',interface='org.makima1.Manager'" \
                >"$TMP/signals.json" 2>"$TMP/monitor.log" &
        MONITOR_PID=$!
        EXTRA_PIDS=$MONITOR_PID
        sleep 0.3
fi

# Two owners and a contract of alice's (test-api.sh checks how they are made).
req admin POST /api/v1/tokens '{"owner":"alice"}'
expect_status 201 "token for alice"
alice=$(jqr .token)
req admin POST /api/v1/tokens '{"owner":"bob"}'
expect_status 201 "token for bob"
bob=$(jqr .token)
req "$alice" POST /api/v1/contracts '{"name":"alpha"}'
expect_status 201 "alice creates a contract"
ca=$(jqr .id)

say "task control"
# A pending task has no agent: only cancel works, at once, with its status event.
req "$alice" POST /api/v1/tasks '{"plan":"never started"}'
tp=$(jqr .id)
for verb in pause interrupt; do
        req "$alice" POST "/api/v1/tasks/$tp/$verb"
        expect_error 409 not_running "$verb a pending task"
        expect_message "pending"
done
req "$alice" POST "/api/v1/tasks/$tp/resume"
expect_error 409 invalid_transition "resume a pending task"
expect_message "'pending'"
req "$alice" POST "/api/v1/tasks/$tp/send" '{"message":"are you there?"}'
expect_error 409 not_running "send to a pending task"
req "$alice" POST "/api/v1/tasks/$tp/cancel"
expect_status 200 "cancel a pending task"
expect_json .status cancelled
jqr '.completed_at | type == "string"' >/dev/null
[[ -z "$(store_sql "SELECT id FROM control_requests WHERE task_id = '$tp'")" ]] || fail "a control request for a pending task"
req "$alice" GET "/api/v1/tasks/$tp/events"
expect_json '[.events[] | .type + ":" + .data.from + ">" + .data.to] | join(",")' "status:pending>cancelled"
# A final task cannot be controlled.
for verb in pause resume interrupt cancel; do
        req "$alice" POST "/api/v1/tasks/$tp/$verb"
        expect_error 409 invalid_transition "$verb a cancelled task"
        expect_message "'cancelled'"
done
req "$alice" POST "/api/v1/tasks/$tp/send" '{"message":"too late"}'
expect_error 409 invalid_transition "send to a cancelled task"

# A running task: each request is a row for its worker, answered 202.
req "$alice" POST /api/v1/tasks '{"plan":"controlled"}'
tr=$(jqr .id)
task_set_status "$tr" running
declare -A control_ids=()
for verb in pause resume interrupt cancel; do
        req "$alice" POST "/api/v1/tasks/$tr/$verb"
        expect_status 202 "$verb a running task"
        expect_json .control_request.kind "$verb"
        expect_json .control_request.task_id "$tr"
        expect_json .control_request.done_at null
        cid=$(jqr .control_request.id)
        [[ "$cid" =~ $uuid_re ]] || fail "control request id: $cid"
        expect_header Location "/api/v1/control-requests/$cid\$"
        [[ "$(store_sql "SELECT kind FROM control_requests WHERE id = '$cid' AND task_id = '$tr' AND done_at IS NULL")" == "$verb" ]] ||
                fail "no pending '$verb' row for $cid in control_requests"
        control_ids[$verb]=$cid
done
req "$alice" GET "/api/v1/tasks/$tr"
expect_json .status running             # the worker, not the API, changes it
req "$alice" POST "/api/v1/tasks/$tr/send" '{"message":"Please also update the README."}'
expect_status 202 "send a message"
expect_json .control_request.kind message
expect_json .control_request.payload.message "Please also update the README."
cmsg=$(jqr .control_request.id)
[[ "$(store_sql "SELECT payload FROM control_requests WHERE id = '$cmsg'" | jq -r .message)" == "Please also update the README." ]] ||
        fail "the message is not in the row's payload"
req "$alice" POST "/api/v1/tasks/$tr/send"
expect_error 400 bad_json "send without a body"
expect_bad_field "$alice" POST "/api/v1/tasks/$tr/send" '{}' "send without a message" "field 'message' is required"
for m in '""' '" \n "' '5' 'null'; do
        expect_bad_field "$alice" POST "/api/v1/tasks/$tr/send" "{\"message\":$m}" "send with message $m" "field 'message'"
done
expect_bad_field "$alice" POST "/api/v1/tasks/$tr/send" '{"message":"x","urgent":true}' "send with an unknown field"
req "$alice" GET "/api/v1/tasks/$tr/pause"
expect_error 405 method_not_allowed "GET on pause"
expect_header Allow '^Allow: POST$'
req "$alice" POST "/api/v1/tasks/$nouuid/pause"
expect_error 404 not_found "pause a task that does not exist"

# The worker marks a request delivered and done; the client reads it back.
cp=${control_ids[pause]}
req "$alice" GET "/api/v1/control-requests/$cp"
expect_status 200 "read a control request"
expect_json .kind pause
expect_json .delivered_at null
expect_json .result null
store_sql "UPDATE control_requests SET delivered_at = $(date +%s%6N), done_at = $(date +%s%6N), result = 'ok' WHERE id = '$cp'"
req "$alice" GET "/api/v1/control-requests/$cp"
expect_json .result ok
jqr '.delivered_at | type == "string"' >/dev/null
jqr '.done_at | type == "string"' >/dev/null
req "$bob" GET "/api/v1/control-requests/$cp"
expect_error 404 not_found "another owner's control request"
req admin GET "/api/v1/control-requests/$cp"
expect_status 200 "admin reads a control request"
req "$alice" GET "/api/v1/control-requests/$nouuid"
expect_error 404 not_found "a control request that does not exist"
req "$alice" GET /api/v1/control-requests/nope
expect_error 404 not_found "a control request id that is no id"

# paused, waiting and interrupted tasks are the worker's too.
for st in paused waiting interrupted; do
        task_set_status "$tr" "$st"
        req "$alice" POST "/api/v1/tasks/$tr/resume"
        expect_status 202 "resume a $st task"
        req "$alice" PATCH "/api/v1/tasks/$tr" '{"status":"cancelled"}'
        if [[ "$st" == interrupted ]]; then
                expect_status 200 "PATCH cancels an interrupted task"
        else
                expect_error 409 task_active "PATCH on a $st task"
        fi
done

say "resume with a higher iteration limit"
# A task that stopped at its limit, as a worker leaves it: resumed with a
# higher one, it is pending again on the same session, worktree and branch.
req "$alice" POST /api/v1/tasks '{"plan":"loop","autonomous_loop":true,"max_iterations":4}'
tl=$(jqr .id)
store_sql "UPDATE tasks SET status = 'iteration_limit_reached', iteration_count = 4, session_id = 'sess-loop',
           worktree = '/var/lib/makima/worktrees/loop', branch = 'makima/loop', base_branch = 'main', cost_usd = 0.5,
           error = 'reached the iteration limit of 4', started_at = 1, completed_at = 2, version = version + 1
           WHERE id = '$tl'"
req "$alice" POST "/api/v1/tasks/$tl/resume"
expect_error 400 invalid_field "resume without max_iterations"
expect_message "field 'max_iterations': required to resume a task that reached its iteration limit"
expect_bad_field "$alice" POST "/api/v1/tasks/$tl/resume" '{}' "resume with an empty body" "field 'max_iterations'"
for n in 0 3 4; do
        expect_bad_field "$alice" POST "/api/v1/tasks/$tl/resume" "{\"max_iterations\":$n}" "resume with max_iterations $n" "field 'max_iterations': expected more than 4 .* at most 50"
done
expect_bad_field "$alice" POST "/api/v1/tasks/$tl/resume" '{"max_iterations":51}' "resume over the hard limit" "at most 50"
for body in '{"max_iterations":"9"}' '{"max_iterations":-9}' '{"max_iterations":null}'; do
        expect_bad_field "$alice" POST "/api/v1/tasks/$tl/resume" "$body" "resume with $body" "field 'max_iterations'"
done
expect_bad_field "$alice" POST "/api/v1/tasks/$tl/resume" '{"max_iterations":9,"now":true}' "resume with an unknown field" "'now'"
req "$alice" POST "/api/v1/tasks/$tl/resume" '{"max_iterations":9'
expect_error 400 bad_json "resume with broken JSON"
req "$alice" POST "/api/v1/tasks/$tl/resume" 'max_iterations=9' -H 'Content-Type: application/x-www-form-urlencoded'
expect_error 415 unsupported_media_type "resume with a form"
req "$bob" POST "/api/v1/tasks/$tl/resume" '{"max_iterations":9}'
expect_error 404 not_found "resume another owner's task"
req "$alice" POST "/api/v1/tasks/$tl/resume" '{"max_iterations":9}' -H 'If-Match: "1"'
expect_error 409 stale_version "resume with a stale If-Match"
req "$alice" GET "/api/v1/tasks/$tl"
expect_json .status iteration_limit_reached       # nothing refused above wrote anything
expect_json .max_iterations 4

req "$alice" POST "/api/v1/tasks/$tl/resume" '{"max_iterations":9}'
expect_status 200 "resume with a higher limit"
expect_json .status pending
expect_json .max_iterations 9
expect_json .iteration_count 4
expect_json .session_id sess-loop
expect_json .worktree /var/lib/makima/worktrees/loop
expect_json .branch makima/loop
expect_json .base_branch main
expect_json .cost_usd 0.5
expect_json .error null
expect_json .completed_at null
expect_json '.started_at | type' string
[[ "$(store_sql "SELECT status || ' ' || max_iterations || ' ' || iteration_count || ' ' || session_id || ' ' || worktree
                 FROM tasks WHERE id = '$tl'")" == "pending 9 4 sess-loop /var/lib/makima/worktrees/loop" ]] ||
        fail "the resumed task in the store: $(store_sql "SELECT * FROM tasks WHERE id = '$tl'")"
[[ -z "$(store_sql "SELECT id FROM control_requests WHERE task_id = '$tl'")" ]] || fail "a control request for the resume"
req "$alice" GET "/api/v1/tasks/$tl/events"
expect_json '.events[-1].type' status
expect_json '.events[-1].data | "\(.from)>\(.to) \(.max_iterations)"' "iteration_limit_reached>pending 9"
# Pending now: nothing to resume any more.
req "$alice" POST "/api/v1/tasks/$tl/resume" '{"max_iterations":12}'
expect_error 409 invalid_transition "resume a task that was resumed"
expect_message "'pending'"

# The configured default (10) is the limit of a task without its own.
req "$alice" POST /api/v1/tasks '{"plan":"default limit"}'
tdl=$(jqr .id)
store_sql "UPDATE tasks SET status = 'iteration_limit_reached', iteration_count = 10 WHERE id = '$tdl'"
expect_bad_field "$alice" POST "/api/v1/tasks/$tdl/resume" '{"max_iterations":10}' "resume a default-limit task with the same limit"
req "$alice" POST "/api/v1/tasks/$tdl/resume" '{"max_iterations":50}'
expect_status 200 "resume up to the hard limit"
expect_json .max_iterations 50

# At the hard limit there is nothing higher to give.
for max in 50 0; do
        req "$alice" POST /api/v1/tasks "{\"plan\":\"at the hard limit\",\"max_iterations\":$max}"
        th=$(jqr .id)
        store_sql "UPDATE tasks SET status = 'iteration_limit_reached', iteration_count = 50 WHERE id = '$th'"
        req "$alice" POST "/api/v1/tasks/$th/resume" '{"max_iterations":50}'
        expect_error 409 hard_limit_reached "resume a task at the hard limit (max_iterations $max)"
        expect_message "already at the hard limit of 50"
done

# Every other status: 409 naming it.
for st in done failed cancelled merged; do
        req "$alice" POST /api/v1/tasks "{\"plan\":\"$st task\"}"
        tx=$(jqr .id)
        store_sql "UPDATE tasks SET status = '$st' WHERE id = '$tx'"
        for body in '' '{"max_iterations":20}'; do
                req "$alice" POST "/api/v1/tasks/$tx/resume" "$body"
                expect_error 409 invalid_transition "resume a $st task (${body:-no body})"
                expect_message "'$st'"
        done
done

# A paused task's worker acts on a resume: a request, with or without an
# empty body; a new limit for it is refused, not lost.
req "$alice" POST /api/v1/tasks '{"plan":"paused loop","max_iterations":3}'
tpz=$(jqr .id)
task_set_status "$tpz" running
task_set_status "$tpz" paused
req "$alice" POST "/api/v1/tasks/$tpz/resume"
expect_status 202 "resume a paused task"
expect_json .control_request.kind resume
req "$alice" POST "/api/v1/tasks/$tpz/resume" '{}'
expect_status 202 "resume a paused task with an empty body"
req "$alice" POST "/api/v1/tasks/$tpz/resume" '{"max_iterations":8}'
expect_error 409 task_active "resume a paused task with a new limit"
expect_message "'paused'"
req "$alice" GET "/api/v1/tasks/$tpz"
expect_json .max_iterations 3
expect_json .status paused
[[ "$(store_sql "SELECT COUNT(*) FROM control_requests WHERE task_id = '$tpz' AND kind = 'resume'")" == 2 ]] ||
        fail "resume requests of the paused task"

if (( have_bus )); then
        say "D-Bus"
        [[ "$(busctl --address="$BUS_ADDRESS" get-property org.makima1 /org/makima1 org.makima1.Manager Version)" == "s \"$(curl -s "$API_URL/api/v1/health" | jq -r .version)\"" ]] ||
                fail "the Version property"
        busctl --address="$BUS_ADDRESS" introspect org.makima1 /org/makima1 org.makima1.Manager >"$TMP/introspect" ||
                fail "introspect failed"
        grep -Eq '^\.TaskQueued +signal +s ' "$TMP/introspect" || fail "no TaskQueued(s): $(cat "$TMP/introspect")"
        grep -Eq '^\.ControlQueued +signal +ss ' "$TMP/introspect" || fail "no ControlQueued(ss): $(cat "$TMP/introspect")"
        # Every POST /tasks and every control request sent a signal with its arguments.
        wait_for_file_match "$TMP/signals.json" "\"member\":\"ControlQueued\".*\"$tr\",\"message\""
        signals() {
                jq -rc 'select(.member == "TaskQueued" or .member == "ControlQueued") | [.member] + .payload.data | join(" ")' \
                        "$TMP/signals.json"
        }
        signals | grep -qx "TaskQueued $tr" || fail "no TaskQueued for $tr: $(signals)"
        signals | grep -qx "TaskQueued $tp" || fail "no TaskQueued for $tp"
        # Created, then queued again by the resume.
        [[ "$(signals | grep -cx "TaskQueued $tl")" == 2 ]] || fail "TaskQueued for the resumed $tl: $(signals)"
        [[ "$(signals | grep -c "^ControlQueued $tr ")" == 8 ]] || fail "ControlQueued for $tr: $(signals)"
        for verb in pause resume interrupt cancel message; do
                signals | grep -qx "ControlQueued $tr $verb" || fail "no ControlQueued $verb: $(signals)"
        done
        ! signals | grep -q "^ControlQueued $tp" || fail "a signal for the pending task's cancel"
        kill "$MONITOR_PID"
        wait "$MONITOR_PID" || true
        EXTRA_PIDS=''
fi

say "event streams"
req "$alice" POST /api/v1/tasks '{"plan":"streamed"}'
ts=$(jqr .id)
task_set_status "$ts" running
task_add_event "$ts" assistant '{"text":"first"}'
task_add_event "$ts" tool_use '{"name":"Bash","input":{"command":"make"}}'
follow -H "Authorization: Bearer $alice" "$API_URL/api/v1/tasks/$ts/events?follow=1" "$TMP/sse1"
sse1=$FOLLOW_PID
follow --unix-socket "$API_SOCK" -H 'Last-Event-ID: 2' "http://localhost/api/v1/tasks/$ts/events?follow=1&after=1" "$TMP/sse2"
sse2=$FOLLOW_PID
wait_for_file_match "$TMP/sse1" '^id: 3$'
grep -qi '^content-type: text/event-stream' "$TMP/sse1.headers" || fail "not text/event-stream: $(cat "$TMP/sse1.headers")"
grep -qi '^cache-control: no-cache' "$TMP/sse1.headers" || fail "the stream may be cached"
# Stored events first, each as id, event and one line of data: the event as GET …/events serves it.
req "$alice" GET "/api/v1/tasks/$ts/events"
for seq in 1 2 3; do
        grep -A2 -x "id: $seq" "$TMP/sse1" >"$TMP/frame"
        [[ "$(sed -n 2p "$TMP/frame")" == "event: $(jq -r ".events[$seq - 1].type" <<<"$BODY")" ]] || fail "frame $seq: $(cat "$TMP/frame")"
        [[ "$(sed -n 3p "$TMP/frame" | sed 's/^data: //' | jq -c .)" == "$(jq -c ".events[$seq - 1]" <<<"$BODY")" ]] ||
                fail "data of frame $seq: $(cat "$TMP/frame")"
done
# Last-Event-ID wins over after=.
wait_for_file_match "$TMP/sse2" '^id: 3$'
! grep -q '^id: [12]$' "$TMP/sse2" || fail "Last-Event-ID was not honoured: $(cat "$TMP/sse2")"
# Appended meanwhile: it arrives live on both.
task_add_event "$ts" assistant '{"text":"live"}'
wait_for_file_match "$TMP/sse1" '^data: \{"seq":4,"type":"assistant",.*"data":\{"text":"live"\}\}$' 5
wait_for_file_match "$TMP/sse2" '^id: 4$' 5
kill -0 "$sse1" 2>/dev/null || fail "the stream ended while the task runs"
# A final status ends both streams with "end" after every event; curl ends by itself.
task_set_status "$ts" done
for pid in "$sse1" "$sse2"; do
        rc=0
        wait "$pid" || rc=$?
        (( rc == 0 )) || fail "curl on the stream exited with $rc"
done
for f in "$TMP/sse1" "$TMP/sse2"; do
        [[ "$(grep -E '^(id|event):' "$f" | tail -n 3 | tr '\n' ' ')" == "id: 5 event: status event: end " ]] ||
                fail "the stream does not end with the status event and end: $(cat "$f")"
        [[ "$(tail -n 2 "$f" | head -n 1)" == 'data: {"status":"done"}' ]] || fail "end data: $(tail -n 3 "$f")"
done
# On a finished task the stream gives what there is, then end.
out=$(curl -sS -N --max-time 10 -H "Authorization: Bearer $alice" "$API_URL/api/v1/tasks/$ts/events?follow=1&after=4")
[[ "$(grep -E '^(id|event):' <<<"$out" | tr '\n' ' ')" == "id: 5 event: status event: end " ]] || fail "finished stream: $out"
req "$alice" GET "/api/v1/tasks/$ts/events?follow=1" "" -H 'Last-Event-ID: x'
expect_error 400 invalid_header "a bad Last-Event-ID"
req "$alice" GET "/api/v1/tasks/$ts/events?follow=perhaps"
expect_error 400 invalid_parameter "a bad follow"
req "$alice" GET "/api/v1/tasks/$ts/events?follow=0"
expect_status 200 "follow=0 is the JSON list"
expect_json '.events | length' 5

say "diffs"
repo="$TMP/diff-repo"
git init -q -b trunk "$repo"
printf 'one\n' >"$repo/a.txt"
git -C "$repo" add a.txt
git -C "$repo" -c user.name=t -c user.email=t@example.com commit -q -m init
req admin POST /api/v1/repos "$(jq -nc --arg r "$repo" '{path:$r, owner:"alice"}')"
expect_status 201 "grant the diff repository to alice"
req "$alice" POST /api/v1/tasks "$(jq -nc --arg r "$repo" '{plan:"diffed", repo:$r}')"
td=$(jqr .id)
req "$alice" GET "/api/v1/tasks/$td/diff"
expect_error 409 no_worktree "diff without a worktree"
# What a worker makes of it: the task's own repository and worktree.
wt=$(make_task_repo "$repo" trunk "$td")
printf 'committed\n' >"$wt/b.txt"
git -C "$wt" add b.txt
git -C "$wt" -c user.name=t -c user.email=t@example.com commit -q -m b
printf 'two\n' >>"$wt/a.txt"
printf 'new\n' >"$wt/untracked.txt"
printf '\xff\xfe not UTF-8\n' >"$wt/binaryish.txt"
store_sql "UPDATE tasks SET worktree = '$wt', branch = 'makima/${td:0:8}' WHERE id = '$td'"
req "$alice" GET "/api/v1/tasks/$td/diff"
expect_error 409 diff_failed "diff without a base (none recorded, no base branch)"
store_sql "UPDATE tasks SET base_branch = 'trunk' WHERE id = '$td'"
req "$alice" GET "/api/v1/tasks/$td/diff"
expect_status 200 "diff of a worktree (base: its base branch)"
expect_header Content-Type '^Content-Type: text/x-diff'
expect_header Makima-Diff-Truncated '^Makima-Diff-Truncated: 0$'
for f in a.txt b.txt untracked.txt; do
        grep -qx "diff --git a/$f b/$f" <<<"$BODY" || fail "the diff lacks $f: $BODY"
done
grep -qx '+two' <<<"$BODY" || fail "the uncommitted change is missing"
grep -qx '+committed' <<<"$BODY" || fail "the committed change is missing"
grep -qx '+new' <<<"$BODY" || fail "the untracked file's content is missing"
[[ -z "$(git -C "$wt" diff --cached --name-only)" ]] || fail "the diff touched the worktree's index"
git -C "$wt" status --porcelain | grep -q '^?? untracked.txt$' || fail "untracked.txt is no longer untracked"
text_diff=$BODY
req "$alice" GET "/api/v1/tasks/$td/diff?format=json"
expect_status 200 "diff as JSON"
expect_json .truncated false
[[ "$(jq -r .diff <<<"$BODY" | grep -c '^diff --git')" == 4 ]] || fail "JSON diff: $BODY"
jq -r .diff <<<"$BODY" | grep -q $'\xef\xbf\xbd not UTF-8' || fail "bytes that are not UTF-8 are not replaced"
req "$alice" GET "/api/v1/tasks/$td/diff?format=text"
[[ "$BODY" == "$text_diff" ]] || fail "format=text differs"
req "$alice" GET "/api/v1/tasks/$td/diff?format=xml"
expect_error 400 invalid_parameter "diff format xml"
req "$alice" PATCH "/api/v1/tasks/$td" '{"base_branch":"no-such-branch"}'
req "$alice" GET "/api/v1/tasks/$td/diff"
expect_error 409 diff_failed "diff against a missing base"
expect_message "no-such-branch"
req "$alice" PATCH "/api/v1/tasks/$td" '{"base_branch":"trunk"}'
req "$alice" GET "/api/v1/tasks/$td/diff"
expect_status 200 "diff against base_branch"
[[ "$BODY" == "$text_diff" ]] || fail "the diff against trunk differs"
# The commit the worker recorded wins over the branch, which the agent may move.
git -C "$wt" branch -f trunk HEAD
req "$alice" GET "/api/v1/tasks/$td/diff"
[[ "$BODY" != "$text_diff" ]] || fail "moving the task's trunk did not change the diff against the branch"
store_sql "UPDATE tasks SET base_commit = '$(git -C "$repo" rev-parse trunk)' WHERE id = '$td'"
req "$alice" GET "/api/v1/tasks/$td/diff"
[[ "$BODY" == "$text_diff" ]] || fail "the diff against the base commit differs"
# Several at once: each waits for its own git, none blocks the others.
diff_pids=()
for i in 1 2 3; do
        curl -sS -o "$TMP/diff.$i" -H "Authorization: Bearer $alice" "$API_URL/api/v1/tasks/$td/diff" &
        diff_pids+=($!)
done
req anon GET /api/v1/health
expect_status 200 "health while diffs run"
for pid in "${diff_pids[@]}"; do
        wait "$pid" || fail "a parallel diff failed"
done
for i in 1 2 3; do
        [[ "$(cat "$TMP/diff.$i")" == "$text_diff" ]] || fail "parallel diff $i: $(head -c 300 "$TMP/diff.$i")"
done
rm -rf "$wt"
req "$alice" GET "/api/v1/tasks/$td/diff"
expect_error 409 no_worktree "diff of a removed worktree"

say "notifications"
now=$(date +%s%6N)
store_sql "INSERT INTO notifications (id, owner, task_id, contract_id, level, message, created_at, read_at) VALUES
           ('11111111-1111-4111-8111-111111111111', 'alice', '$td', NULL, 'error', 'The agent is not logged in on worker 1.', $now, NULL),
           ('22222222-2222-4222-8222-222222222222', 'alice', NULL, '$ca', 'info', 'Contract done.', $(( now + 1 )), $(( now + 2 ))),
           ('33333333-3333-4333-8333-333333333333', 'bob', NULL, NULL, 'warning', 'For bob.', $(( now + 3 )), NULL)"
req "$alice" GET /api/v1/notifications
expect_status 200 "alice's notifications"
expect_json '[.notifications[].id[0:1]] | join(",")' "2,1"
expect_json '.notifications[1].message' "The agent is not logged in on worker 1."
expect_json '.notifications[1].level' error
expect_json '.notifications[1].task_id' "$td"
expect_json '.notifications[1].read_at' null
jqr '.notifications[0].read_at | type == "string"' >/dev/null
req "$alice" GET "/api/v1/notifications?unread=1"
expect_json '[.notifications[].id[0:1]] | join(",")' "1"
req "$alice" GET "/api/v1/notifications?limit=1"
expect_json '.notifications | length' 1
req "$bob" GET /api/v1/notifications
expect_json '[.notifications[].owner] | join(",")' bob
req admin GET /api/v1/notifications
expect_json '.notifications | length' 3
req "$alice" GET "/api/v1/notifications?unread=maybe"
expect_error 400 invalid_parameter "unread=maybe"
req "$alice" POST /api/v1/notifications/33333333-3333-4333-8333-333333333333/read
expect_error 404 not_found "read another owner's notification"
req "$alice" POST /api/v1/notifications/11111111-1111-4111-8111-111111111111/read
expect_status 204 "mark read"
req "$alice" POST /api/v1/notifications/11111111-1111-4111-8111-111111111111/read
expect_status 204 "mark read twice"
req "$alice" GET "/api/v1/notifications?unread=true"
expect_json '.notifications | length' 0
req admin POST "/api/v1/notifications/$nouuid/read"
expect_error 404 not_found "read a notification that does not exist"
req admin POST /api/v1/notifications/33333333-3333-4333-8333-333333333333/read
expect_status 204 "admin marks bob's read"
req "$bob" GET "/api/v1/notifications?unread=1"
expect_json '.notifications | length' 0

say "ok"
