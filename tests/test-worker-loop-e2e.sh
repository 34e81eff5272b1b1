#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The autonomous loop end to end, with the REAL Claude Code CLI against the
# scripted fake Anthropic API: `makima up`, tasks created with
# --autonomous-loop, and the worker restarting the agent with --resume until
# its <COMPLETION_GATE> says ready, or the circuit breaker trips: (a) no
# gate, not ready, ready → done after 3 iterations on one session; (b) never
# ready, a file changed each time → iteration_limit_reached after 4, then
# `makima task resume --max-iterations 6` goes on to done on the same
# worktree and session; (c) no change → failed for no progress after 3;
# (d) the same blocker 5 times → failed naming it; (e) a 429 → waiting, then
# the same session goes on, and the wait is not an iteration.
#
# Usage: test-worker-loop-e2e.sh makima-api makima-worker makima
# Skips (77) when the CLI is not installed (tests/install-claude.sh) or bwrap
# is missing. MAKIMA_CLAUDE=path overrides the CLI.
set -euo pipefail

# shellcheck source=tests/e2e-lib.sh
source "$(dirname "$0")/e2e-lib.sh"

e2e_init "$@"
# No retries in the CLI: a 429 reaches the worker at once.
e2e_up 1 0

# gate READY REASON [BLOCKER]: a text step that ends with a completion gate.
gate() {
        local b=''

        [[ -n "${3:-}" ]] && b="\\nblockers:\\n- $3"
        printf '{"text": "Iteration over.\\n<COMPLETION_GATE>\\nready: %s\\nreason: %s%s\\n</COMPLETION_GATE>"}' "$1" "$2" "$b"
}

# write NAME CONTENT: a step that changes the worktree with the Write tool.
write() {
        printf '{"text": "Writing %s.", "tool_use": {"name": "Write", "input": {"file_path": "{{cwd}}/%s", "content": "%s\\n"}}}' \
                "$1" "$1" "$2"
}

# scenario STEP…: the fake API answers with these steps, in order.
scenario() {
        local steps

        steps=$(printf '%s,' "$@")
        fake_start "{\"steps\": [${steps%,}]}"
}

# check_sessions ID: every main request of the scenario carried the task's session.
check_sessions() {
        req admin GET "/api/v1/tasks/$1"
        local sid
        sid=$(jqr .session_id)
        [[ -n "$sid" && "$sid" != null ]] || e2e_fail "task $1 has no session: $BODY"
        jq -s -e --arg s "$sid" '[.[] | select(.kind == "main")] | length > 0 and all(.session_id == $s)' \
                "$TMP/requests.jsonl" >/dev/null ||
                e2e_fail "not every iteration ran on session $sid: $(jq -s -c '[.[] | select(.kind == "main") | .session_id]' "$TMP/requests.jsonl")"
}

# iterations ID: the "iteration" events' reasons, as a JSON array.
iterations() {
        events "$1"
        jq -c '[.events[] | select(.type == "iteration") | .data | "\(.iteration)/\(.max): \(.reason)"]' <<<"$BODY"
}

# ---- (a) no gate, not ready, ready: done after 3 iterations on one session ----
say "(a) no gate, not ready, ready"
scenario '{"text": "I looked around; nothing to say yet."}' "$(gate false 'half of it is done' 'the tests fail')" \
        "$(gate true 'all of it is done')"
A=$(task_create "Do the thing." --autonomous-loop --name loop-a)
wait_status "$A" done 180
req admin GET "/api/v1/tasks/$A"
expect_json .iteration_count 3
check_sessions "$A"
IT=$(iterations "$A")
jq -e 'length == 3 and (.[0] | test("^1/10: no completion gate, restarting")) and
        (.[1] | test("^2/10: ready: no .*half of it is done.*restarting")) and (.[2] | test("^3/10: ready: yes"))' \
        <<<"$IT" >/dev/null || e2e_fail "(a) unexpected iterations: $IT"
# The continuation prompt quotes the gate's reason and blockers.
jq -s -e '[.[] | select(.kind == "main")][2].last_user_text | test("half of it is done") and test("the tests fail")' \
        "$TMP/requests.jsonl" >/dev/null || e2e_fail "(a) the third run's prompt does not quote the gate"
# Each iteration's cost is recorded, and they add up to the task's.
events "$A"
jq -e '([.events[] | select(.type == "iteration") | .data.cost_usd] | add) as $sum |
        [.events[] | select(.type == "iteration") | .data.total_cost_usd] | last as $total |
        $sum > 0 and (($sum - $total) | fabs) < 1e-9' <<<"$BODY" >/dev/null ||
        e2e_fail "(a) the iterations' costs do not add up: $(jq -c '[.events[] | select(.type == "iteration") | .data]' <<<"$BODY")"
"$MAKIMA" task events "$A" | grep -q 'iteration 2/10: ready: no' || e2e_fail "(a) makima task events does not show the iterations"

# ---- (b) never ready, max 4: iteration_limit_reached; resume to 6: done ----
say "(b) iteration limit, then resume"
STEPS=()
for i in 1 2 3 4 5; do
        STEPS+=("$(write "step-$i.txt" "step $i")" "$(gate false "step $i of many")")
done
scenario "${STEPS[@]}" "$(gate true 'finished after step 5')"
B=$(task_create "Do many steps." --autonomous-loop --max-iterations 4 --name loop-b)
wait_status "$B" iteration_limit_reached 240
req admin GET "/api/v1/tasks/$B"
expect_json .iteration_count 4
jqr .error | grep -q 'iteration limit of 4' || e2e_fail "(b) no reason: $BODY"
jqr .error | grep -q 'resume' || e2e_fail "(b) the reason does not say it can be resumed: $BODY"
B_WORKTREE=$(jqr .worktree)
B_SESSION=$(jqr .session_id)
[[ -f "$B_WORKTREE/step-4.txt" ]] || e2e_fail "(b) the fourth iteration's file is missing"
"$MAKIMA" task resume "$B" --max-iterations 6 >/dev/null || e2e_fail "(b) makima task resume failed"
wait_status "$B" done 180
req admin GET "/api/v1/tasks/$B"
expect_json .iteration_count 6
expect_json .worktree "$B_WORKTREE"
expect_json .session_id "$B_SESSION"
[[ -f "$B_WORKTREE/step-5.txt" ]] || e2e_fail "(b) the resumed iteration did not work in the same worktree"
jq -s -e '[.[] | select(.kind == "main")][8].last_user_text | test("it was resumed")' "$TMP/requests.jsonl" \
        >/dev/null || e2e_fail "(b) the resumed run was not told it goes on"
check_sessions "$B"
IT=$(iterations "$B")
jq -e 'length == 6 and (.[3] | test("^4/4: reached the iteration limit of 4")) and (.[5] | test("^6/6: ready: yes"))' \
        <<<"$IT" >/dev/null || e2e_fail "(b) unexpected iterations: $IT"

# ---- (c) no change for 3 iterations: failed, no progress ----
say "(c) no progress"
scenario "$(gate false 'thinking about it')" "$(gate false 'still thinking')" "$(gate false 'thinking harder')" \
        "$(gate true 'should not get here')"
C=$(task_create "Think." --autonomous-loop --name loop-c)
wait_status "$C" failed 180
req admin GET "/api/v1/tasks/$C"
expect_json .iteration_count 3
jqr .error | grep -q 'no progress in 3 consecutive iterations' || e2e_fail "(c) unexpected reason: $BODY"
check_sessions "$C"

# ---- (d) the same blocker 5 times: failed, the blocker in the reason ----
say "(d) the same blocker"
STEPS=()
for i in 1 2 3 4 5 6; do
        STEPS+=("$(write "try-$i.txt" "attempt $i")" "$(gate false "attempt $i" 'cannot reach the database')")
done
scenario "${STEPS[@]}"
D=$(task_create "Migrate the database." --autonomous-loop --name loop-d)
wait_status "$D" failed 240
req admin GET "/api/v1/tasks/$D"
expect_json .iteration_count 5
jqr .error | grep -q 'the same blocker 5 times in a row: cannot reach the database' || e2e_fail "(d) unexpected reason: $BODY"
check_sessions "$D"

# ---- (e) a 429: waiting, then the same session goes on; not an iteration ----
say "(e) rate limited"
# Two iterations without progress, then the 429: were the wait counted, the
# breaker would stop the task for no progress instead of running a third.
scenario "$(gate false 'looking')" "$(gate false 'still looking')" \
        '{"error": 429, "retry_after": 3, "message": "Number of request tokens has exceeded your per-minute rate limit"}' \
        "$(gate true 'found it')"
E=$(task_create "Find it." --autonomous-loop --name loop-e)
wait_status "$E" waiting 180
req admin GET "/api/v1/tasks/$E"
jqr .error | grep -q '^rate limited until [0-9][0-9]:[0-9][0-9]:[0-9][0-9] (' || e2e_fail "(e) no reason while waiting: $BODY"
WAIT_START=$SECONDS
wait_status "$E" done 120
((SECONDS - WAIT_START >= 2)) || e2e_fail "(e) the task did not wait"
req admin GET "/api/v1/tasks/$E"
expect_json .iteration_count 3
check_sessions "$E"
events "$E"
jq -e '[.events[] | select(.type == "status") | .data.to] | index("waiting") != null and .[-1] == "done"' <<<"$BODY" \
        >/dev/null || e2e_fail "(e) unexpected statuses: $(jq -c '[.events[] | select(.type == "status") | .data]' <<<"$BODY")"
jq -e '[.events[] | select(.type == "status" and .data.to == "waiting")][0].data.reason | test("rate limited until")' \
        <<<"$BODY" >/dev/null || e2e_fail "(e) the waiting status event has no reason"
jq -s -e '[.[] | select(.kind == "main")] | length == 4' "$TMP/requests.jsonl" >/dev/null ||
        e2e_fail "(e) expected 4 main requests (3 iterations, one of them refused with a 429, and its continuation)"

e2e_down
say "PASS"
