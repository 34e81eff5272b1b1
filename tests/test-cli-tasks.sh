#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Drives a real makima-api with the real makima CLI on what happens to a task
# once it runs: control requests, the autonomous loop (iterations, cost,
# waiting, resuming at the limit), diffs of a real worktree, `task watch`
# across an API restart, and notifications. No worker runs: the test writes
# the store where one would.
#
# Usage: test-cli-tasks.sh PATH/TO/makima-api PATH/TO/makima [PATH/TO/makima.1]
# (the man page, which test-cli.sh reads, is taken and not needed here).

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MAKIMA=$(realpath "${2:?usage: $0 makima-api makima [makima.1]}")

# ---- controlling a task ----

test_control() {
        local t kinds

        run 0 task create "controlled"
        t=$OUT
        run 1 task pause "$t"
        err_is "makima: task $t: The task is pending: no agent runs it yet, so it cannot be paused. Cancel it, or wait until a worker starts it."
        run 1 task send "$t" "hello?"
        err_has "cannot be sent a message"

        # Running (as a worker would set it): each command stores a request for the worker.
        task_set_status "$t" running
        run 0 task pause "${t:0:8}"
        [[ "$OUT" == "Task ${t:0:8}: pause requested." ]] || fail "pause: $OUT"
        run 0 task resume "$t"
        [[ "$OUT" == "Task ${t:0:8}: resume requested." ]] || fail "resume: $OUT"
        run 0 task interrupt "$t"
        [[ "$OUT" == "Task ${t:0:8}: interrupt requested." ]] || fail "interrupt: $OUT"
        run 0 task send "$t" $'Also fix the tests,\nplease.'
        [[ "$OUT" == "Task ${t:0:8}: message queued." ]] || fail "send: $OUT"
        run 0 --json task send "$t" "second"
        json_is .control_request.kind message
        json_is .control_request.payload.message second
        json_is .control_request.task_id "$t"
        json_is .control_request.done_at null
        req admin GET "/api/v1/control-requests/$(jq -r .control_request.id <<<"$OUT")"
        [[ "$(jq -S .control_request <<<"$OUT")" == "$(jq -S . <<<"$BODY")" ]] || fail "the request read back differs"
        run 0 task cancel "$t"
        [[ "$OUT" == "Task ${t:0:8}: cancel requested." ]] || fail "cancel: $OUT"
        kinds=$(store_sql "SELECT kind FROM control_requests WHERE task_id = '$t' ORDER BY created_at" | tr '\n' ' ')
        [[ "$kinds" == "pause resume interrupt message message cancel " ]] || fail "control requests stored: $kinds"
        [[ "$(store_sql "SELECT payload FROM control_requests WHERE task_id = '$t' AND kind = 'message' ORDER BY created_at LIMIT 1" |
              jq -r .message)" == $'Also fix the tests,\nplease.' ]] || fail "the message is not stored as sent"
        run 0 task show --json "$t"
        json_is .status running         # until the worker acts

        # Finished: nothing to control any more.
        task_set_status "$t" done
        run 1 task pause "$t"
        err_is "makima: task $t: The task is 'done': it cannot be paused any more."
        run 1 task cancel "$t"
        err_is "makima: task $t: The task is 'done': it cannot be cancelled any more."
        run 1 task resume "$nouuid"
        err_is "makima: task $nouuid: not found"
}

# ---- the autonomous loop: iterations, cost, waiting, resuming at the limit ----

test_loop() {
        local t tw

        run 0 task create --autonomous-loop --max-iterations 3 --max-cost 1 "looping"
        t=$OUT
        task_set_status "$t" running
        task_add_event "$t" iteration '{"iteration":1,"max":3,"reason":"no completion gate, restarting","cost_usd":0.0123,"gate":null}'
        task_add_event "$t" iteration '{"iteration":2,"max":3,"cost_usd":0.5,"gate":{"ready":false,"reason":"tests still fail","blockers":["make check"]}}'
        task_add_event "$t" iteration '{"iteration":3,"max":3,"reason":"reached the iteration limit of 3 (resume with a higher --max-iterations)","cost_usd":0.1}'
        task_set_status "$t" iteration_limit_reached
        store_sql "UPDATE tasks SET iteration_count = 3, cost_usd = 0.6123, session_id = 'sess-cli', worktree = '/w/loop',
                   error = 'reached the iteration limit of 3 (resume with a higher --max-iterations)' WHERE id = '$t'"

        run 0 task events "$t"
        out_has '^#2 [0-9-]{10} [0-9:]{8} iteration 1/3: no completion gate, restarting \(\$0\.0123\)$'
        out_has '^#3 .* iteration 2/3: tests still fail \(\$0\.50\)$'
        out_has '^#4 .* iteration 3/3: reached the iteration limit of 3 \(resume with a higher --max-iterations\) \(\$0\.10\)$'
        out_has '^#5 .* status running → iteration_limit_reached$'
        # watch prints them the same way, and a task stopped at its limit did not end well.
        run 1 task watch "$t"
        out_has '^#2 .* iteration 1/3: no completion gate, restarting \(\$0\.0123\)$'
        [[ "$(tail -n 1 <<<"$OUT")" == "Task ${t:0:8} ended: iteration_limit_reached." ]] || fail "watch: $OUT"

        run 0 task show "$t"
        out_has '^ +status: iteration_limit_reached$'
        out_has '^ +error: reached the iteration limit of 3'
        out_has '^ +iterations: 3/3$'
        out_has '^ +cost: \$0\.6123 \(limit \$1\.00\)$'

        # Resuming needs a higher limit; the API says what it takes.
        run 1 task resume "$t"
        err_is "makima: task $t: field 'max_iterations': required to resume a task that reached its iteration limit (more than 3, at most 50)"
        run 1 task resume --max-iterations 3 "$t"
        err_has "field 'max_iterations': expected more than 3"
        run 1 task resume --max-iterations 51 "$t"
        err_has "at most 50"
        run 0 task resume --max-iterations 8 "${t:0:8}"
        [[ "$OUT" == "Task ${t:0:8} queued again with at most 8 iterations." ]] || fail "resume: $OUT"
        run 0 task show --json "$t"
        json_is .status pending
        json_is .max_iterations 8
        json_is .iteration_count 3
        json_is .session_id sess-cli
        json_is .worktree /w/loop
        json_is .error null
        run 0 task events --after 5 "$t"
        [[ "$OUT" =~ ^#6\ .*\ status\ iteration_limit_reached\ →\ pending,\ at\ most\ 8\ iterations$ ]] || fail "resume event: $OUT"
        run 0 task list
        out_has "^${t:0:8} +pending +3/8 "
        # Pending now: nothing to resume.
        run 1 task resume --max-iterations 9 "$t"
        err_is "makima: task $t: The task is 'pending': there is nothing to resume."
        # --json prints the task the API answered.
        task_set_status "$t" running
        task_set_status "$t" iteration_limit_reached
        run 0 --json task resume --max-iterations 10 "$t"
        json_is .max_iterations 10
        json_is .status pending

        # Waiting on a rate limit: the reason shows as such, not as an error.
        run 0 task create "rate limited"
        tw=$OUT
        task_set_status "$tw" running
        task_set_status "$tw" waiting
        store_sql "UPDATE tasks SET error = 'rate limited until 12:34:56 (5h limit)' WHERE id = '$tw'"
        run 0 task show "$tw"
        out_has '^ +status: waiting$'
        out_has '^ +reason: rate limited until 12:34:56 \(5h limit\)$'
        out_lacks '^ +error:'
        run 0 task list --status waiting
        out_has "^${tw:0:8} +waiting "
        # A worker holds it: a resume is a request; a new limit is refused.
        run 0 task resume "$tw"
        [[ "$OUT" == "Task ${tw:0:8}: resume requested." ]] || fail "resume a waiting task: $OUT"
        run 1 task resume --max-iterations 5 "$tw"
        err_has "^makima: task $tw: The task is 'waiting' and its worker holds it"
}

# ---- diffs ----

test_diff() {
        local t repo wt

        repo="$TMP/diff repo"
        git init -q -b main "$repo"
        printf 'one\n' >"$repo/a.txt"
        git -C "$repo" add a.txt
        git -C "$repo" -c user.name=t -c user.email=t@example.com commit -q -m init

        run 0 task create --repo "$repo" --base-branch main "diffed"
        t=$OUT
        run 1 task diff "$t"
        err_is "makima: task $t: The task has no worktree yet."
        # What a worker makes of it: the task's own repository and worktree.
        wt=$(make_task_repo "$repo" main "$t")
        printf 'committed\n' >"$wt/b.txt"
        git -C "$wt" add b.txt
        git -C "$wt" -c user.name=t -c user.email=t@example.com commit -q -m b
        printf 'two\n' >>"$wt/a.txt"
        printf 'new\n' >"$wt/untracked.txt"
        store_sql "UPDATE tasks SET worktree = '$wt', branch = 'makima/${t:0:8}' WHERE id = '$t'"
        run 0 task diff "${t:0:8}"
        [[ "$(grep '^diff --git' <<<"$OUT")" == $'diff --git a/a.txt b/a.txt\ndiff --git a/b.txt b/b.txt\ndiff --git a/untracked.txt b/untracked.txt' ]] ||
                fail "task diff: $OUT"
        out_has '^\+two$'
        out_has '^\+committed$'
        out_has '^\+new$'
        [[ -z "$ERR" ]] || fail "task diff wrote to stderr: $ERR"
        # The same bytes as the API's, and what git itself says about the tracked part.
        [[ "$OUT" == "$(curl -s --unix-socket "$API_SOCK" "http://localhost/api/v1/tasks/$t/diff")" ]] ||
                fail "task diff differs from the API's"
        git -C "$wt" diff main -- a.txt b.txt >"$TMP/git.diff"
        grep -q '^+two$' "$TMP/git.diff" || fail "git itself disagrees"
        run 0 --json task diff "$t"
        json_is .truncated false
        [[ "$(jq -r .diff <<<"$OUT")" == "$(curl -s --unix-socket "$API_SOCK" "http://localhost/api/v1/tasks/$t/diff")" ]] ||
                fail "--json diff differs"
}

# ---- following a task live, across a restart of the API ----

test_watch() {
        local t t2 wpid rc

        run 0 task create "watched"
        t=$OUT
        task_set_status "$t" running
        task_add_event "$t" assistant '{"type":"assistant","message":{"content":[{"type":"text","text":"Reading the code"}]}}'
        "$MAKIMA" task watch "${t:0:8}" >"$TMP/watch.out" 2>"$TMP/watch.err" &
        wpid=$!
        wait_for_file_match "$TMP/watch.out" '^#2 .* assistant Reading the code$'
        task_add_event "$t" assistant '{"type":"assistant","message":{"content":[{"type":"text","text":"Live"}]}}'
        wait_for_file_match "$TMP/watch.out" '^#3 .* Live$' 5

        # The API goes away and comes back: watch picks the stream up where it was.
        api_stop
        task_add_event "$t" assistant '{"type":"assistant","message":{"content":[{"type":"text","text":"While the API was down"}]}}'
        sleep 0.5
        kill -0 "$wpid" 2>/dev/null || fail "watch gave up at once: $(cat "$TMP/watch.err")"
        api_start
        wait_for_file_match "$TMP/watch.out" '^#4 .* While the API was down$' 15
        grep -q "The event stream of task $t was cut (.*); reconnecting." "$TMP/watch.err" ||
                fail "no word of the reconnection: $(cat "$TMP/watch.err")"
        task_set_status "$t" done
        rc=0
        wait "$wpid" || rc=$?
        (( rc == 0 )) || fail "watch of a done task exited with $rc: $(cat "$TMP/watch.err")"
        [[ "$(cut -d' ' -f1 "$TMP/watch.out" | tr '\n' ' ')" == "#1 #2 #3 #4 #5 Task " ]] ||
                fail "every event once, in order, then the status: $(cat "$TMP/watch.out")"
        [[ "$(tail -n 1 "$TMP/watch.out")" == "Task ${t:0:8} ended: done." ]] || fail "last line: $(tail -n 1 "$TMP/watch.out")"

        # --json: one object per line, the status last; a failed task exits 1.
        run 0 task create "fails"
        t2=$OUT
        task_set_status "$t2" running
        "$MAKIMA" --json task watch "$t2" >"$TMP/watch.json" 2>"$TMP/watch.err" &
        wpid=$!
        wait_for_file_match "$TMP/watch.json" '"seq":1'
        task_set_status "$t2" failed
        rc=0
        wait "$wpid" || rc=$?
        (( rc == 1 )) || fail "watch of a failed task exited with $rc"
        [[ "$(jq -sc 'map(.data.to // .status)' "$TMP/watch.json")" == '["running","failed","failed"]' ]] ||
                fail "watch --json: $(cat "$TMP/watch.json")"
        [[ -z "$(cat "$TMP/watch.err")" ]] || fail "watch of a failed task wrote: $(cat "$TMP/watch.err")"

        # A finished task: its events, then at once the end.
        run 0 task watch "$t"
        [[ "$(tail -n 1 <<<"$OUT")" == "Task ${t:0:8} ended: done." && "$(grep -c '^#' <<<"$OUT")" == 5 ]] ||
                fail "watch of a finished task: $OUT"
        run 1 task watch "$nouuid"
        err_is "makima: task $nouuid: not found"
        MAKIMA_API_URL="unix:$TMP/nobody.sock" run 1 task watch "$nouuid"
        err_is "makima: cannot follow task $nouuid on unix:$TMP/nobody.sock: No such file or directory (is makima-api running? set MAKIMA_API_URL)"
}

# ---- notifications ----

test_notifications() {
        local now alice

        run 0 notifications
        [[ "$OUT" == "No notifications." ]] || fail "notifications: $OUT"
        now=$(date +%s%6N)
        store_sql "INSERT INTO notifications (id, owner, task_id, contract_id, level, message, created_at, read_at) VALUES
                   ('aaaaaaaa-1111-4111-8111-111111111111', 'alice', '$nouuid', NULL, 'error', 'The agent is not logged in on worker 1.', $now, NULL),
                   ('bbbbbbbb-2222-4222-8222-222222222222', 'alice', NULL, NULL, 'info', 'All done.', $(( now + 1 )), $(( now + 2 ))),
                   ('cccccccc-3333-4333-8333-333333333333', 'bob', NULL, NULL, 'warning', 'For bob.', $(( now + 3 )), NULL)"
        run 0 notifications
        out_has '^ID +LEVEL +CREATED +READ +TASK +MESSAGE$'
        [[ "$(sed 1d <<<"$OUT" | cut -c1-8 | tr '\n' ' ')" == "cccccccc bbbbbbbb aaaaaaaa " ]] || fail "order: $OUT"
        out_has '^aaaaaaaa +error +(now|[0-9]+s ago) +no +00000000 +The agent is not logged in on worker 1\.$'
        out_has '^bbbbbbbb +info +(now|[0-9]+s ago) +(now|[0-9]+s ago) +- +All done\.$'
        run 0 notifications --unread
        [[ "$(sed 1d <<<"$OUT" | cut -c1-8 | tr '\n' ' ')" == "cccccccc aaaaaaaa " ]] || fail "--unread: $OUT"
        run 0 --json notifications
        same_as_api "/api/v1/notifications?limit=1000"
        run 0 notifications --json --unread
        json_is '[.notifications[].id[0:8]] | join(",")' "cccccccc,aaaaaaaa"

        # An owner sees only its own.
        req admin POST /api/v1/tokens '{"owner":"alice"}'
        alice=$(jqr .token)
        MAKIMA_API_KEY=$alice run 0 --url "$API_URL" notifications
        [[ "$(sed 1d <<<"$OUT" | cut -c1-8 | tr '\n' ' ')" == "bbbbbbbb aaaaaaaa " ]] || fail "alice's: $OUT"
        req "$alice" POST /api/v1/notifications/aaaaaaaa-1111-4111-8111-111111111111/read
        expect_status 204 "alice reads hers"
        MAKIMA_API_KEY=$alice run 0 --url "$API_URL" notifications --unread
        [[ "$OUT" == "No unread notifications." ]] || fail "alice's unread: $OUT"
}

lib_init "$1"
api_start
export MAKIMA_API_URL="unix:$API_SOCK"
unset MAKIMA_API_KEY

test_control
test_loop
test_diff
test_watch
test_notifications

api_stop
say "ok"
