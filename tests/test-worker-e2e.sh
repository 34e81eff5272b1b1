#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The whole of makima with the REAL Claude Code CLI: `makima up` runs
# makima-api and a makima-worker, `makima task create --repo` queues a task,
# and the worker runs the real claude under bwrap + seccomp against the
# scripted fake Anthropic API (tests/fake-anthropic), which makes it write a
# file with the Write tool and commit it with the Bash tool. Then the agent
# that is not logged in, the one killed mid-run, and pause, resume,
# interrupt, send and cancel on a real running CLI. As root it all runs under
# a private systemd-journald (tests/e2e-lib.sh), and the agents' events are
# read back with journalctl: one entry per stored event, in store order, with
# its one-line MESSAGE and MAKIMA_* fields; elsewhere they are on stderr.
#
# Usage: test-worker-e2e.sh makima-api makima-worker makima
# Skips (77) when the CLI is not installed (tests/install-claude.sh) or bwrap
# is missing. MAKIMA_CLAUDE=path overrides the CLI.
set -euo pipefail

# shellcheck source=tests/e2e-lib.sh
source "$(dirname "$0")/e2e-lib.sh"

e2e_journal_namespace "$@"
e2e_init "$@"
e2e_up 2 1

# journal_entries ID: the task's journal entries as a JSON array, once there
# are as many as the store has events the worker wrote (all but the claim);
# the worker journals a batch just after storing it.
journal_entries() {
        local want got=-1 deadline=$((SECONDS + 30))

        events "$1"
        want=$(jq '[.events[] | select(.type != "claimed")] | length' <<<"$BODY")
        while ((SECONDS < deadline)); do
                journal -o json "MAKIMA_TASK_ID=$1" | jq -sc . >"$TMP/entries.json" || e2e_fail "journalctl failed"
                got=$(jq length "$TMP/entries.json")
                ((got >= want)) && break
                sleep 0.2
        done
        ((got == want)) || e2e_fail "task $1: $got journal entries, the store has $want events besides the claim"
        cat "$TMP/entries.json"
}

# journal_matches_store ID ENTRIES: MAKIMA_SEQ and MAKIMA_EVENT are the
# store's seq and type, in its order; every entry is one of the task's, from
# makima-worker, with a one-line MESSAGE.
journal_matches_store() {
        local stored journaled

        events "$1"
        stored=$(jq -c '[.events[] | select(.type != "claimed") | [.seq, .type]]' <<<"$BODY")
        journaled=$(jq -c '[.[] | [(.MAKIMA_SEQ | tonumber), .MAKIMA_EVENT]]' <<<"$2")
        [[ "$journaled" == "$stored" ]] || e2e_fail "task $1: journal $journaled, store $stored"
        jq -e --arg id "$1" 'all(.[]; .MAKIMA_TASK_ID == $id and .SYSLOG_IDENTIFIER == "makima-worker" and
                .MAKIMA_ITERATION == "1" and (.MESSAGE | type == "string" and length > 0 and (contains("\n") | not)))' \
                <<<"$2" >/dev/null || e2e_fail "task $1: entries lack fields: $(head -c 3000 <<<"$2")"
}

# wait_requests N: until the fake API has logged N main requests.
wait_requests() {
        for _ in $(seq 300); do
                (($(jq -s '[.[] | select(.kind == "main")] | length' "$TMP/requests.jsonl") >= $1)) && return 0
                sleep 0.1
        done
        e2e_fail "the fake API did not get $1 main requests"
}

# The CLI's own process among them (not bwrap's).
claude_pid() {
        local pid

        for pid in $(sandbox_pids "$1"); do
                [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == *claude* ]] && { echo "$pid"; return 0; }
        done
        return 1
}

# ---- 1. the real agent writes a file and commits it, in its worktree ----
say "hello"
fake_start '{"steps": [
  {"text": "I will create hello.txt.",
   "tool_use": {"name": "Write", "input": {"file_path": "{{cwd}}/hello.txt", "content": "hello from makima\n"}}},
  {"tool_use": {"name": "Bash", "input": {"command": "git add hello.txt && git -c user.name=agent -c user.email=agent@example.invalid commit -q -m \"add hello.txt\" && git log --format=%s -1", "description": "Commit hello.txt"}}},
  {"text": "Done: hello.txt is committed.", "usage": {"input_tokens": 1200, "output_tokens": 40}}
]}'
ID=$(task_create "Create hello.txt and commit it." --name hello)
wait_status "$ID" done 120
ID8=${ID:0:8}
req admin GET "/api/v1/tasks/$ID"
expect_json .branch "makima/$ID8"
WORKTREE=$(jqr .worktree)
jq -e '.cost_usd > 0 and (.session_id | length) > 0' <<<"$BODY" >/dev/null || e2e_fail "no cost or session: $BODY"
[[ "$(cat "$WORKTREE/hello.txt")" == "hello from makima" ]] || e2e_fail "hello.txt is not in the worktree"
# The task's branch is in its own repository; the repository has no new ref.
TGIT=(git -c safe.directory='*' --git-dir="$STATE/git/$ID")
[[ "$("${TGIT[@]}" show "makima/$ID8:hello.txt")" == "hello from makima" ]] || e2e_fail "hello.txt is not on the branch"
[[ "$("${TGIT[@]}" log -1 --format=%s "makima/$ID8")" == "add hello.txt" ]] || e2e_fail "the agent's commit is missing"
[[ "$(git -C "$REPO" for-each-ref --format='%(refname)')" == refs/heads/main ]] || e2e_fail "the repository got a ref"
# The real CLI ran as the agents' user (as root: makima-agent), never as root.
if [[ $(id -u) == 0 ]]; then
        [[ "$(stat -c %U "$WORKTREE/hello.txt")" == makima-agent ]] ||
                e2e_fail "the agent wrote hello.txt as $(stat -c %U "$WORKTREE/hello.txt"), not makima-agent"
fi

events "$ID"
jq -e '[.events[].seq] == [range(1; (.events | length) + 1)]' <<<"$BODY" >/dev/null || e2e_fail "seqs are not 1..N"
# In order: init, text, Write, its result, Bash, its result, text, the result with its cost.
ORDER=$(jq -c '[.events[] | select(.type != "claimed" and .type != "status") |
        if .type == "system" then "init:" + .data.subtype
        elif .type == "assistant" then (.data.message.content[0] | if .type == "tool_use" then "tool:" + .name else .type end)
        elif .type == "user" then "result:" + (if .data.message.content[0].is_error == true then "error" else "ok" end)
        elif .type == "result" then "end:" + .data.subtype
        else .type end]' <<<"$BODY")
[[ "$ORDER" == '["init:init","text","tool:Write","result:ok","tool:Bash","result:ok","text","end:success"]' ]] ||
        e2e_fail "unexpected events: $ORDER"
jq -e '[.events[] | select(.type == "result")][0].data | .is_error == false and .total_cost_usd > 0' <<<"$BODY" \
        >/dev/null || e2e_fail "the result has no cost"
jq -e '[.events[] | select(.type == "user")][1].data.message.content[0].content | test("add hello.txt")' <<<"$BODY" \
        >/dev/null || e2e_fail "the Bash tool did not run git in the sandbox"
# The diff against the base shows the new file.
req admin GET "/api/v1/tasks/$ID/diff"
expect_status 200 "diff"
grep -q '+++ b/hello.txt' <<<"$BODY" || jq -e '.diff | test("\\+\\+\\+ b/hello.txt")' <<<"$BODY" >/dev/null ||
        e2e_fail "the diff does not show hello.txt"
if "$MAKIMA" task diff --help >/dev/null 2>&1; then
        "$MAKIMA" task diff "$ID" | grep -q '+hello from makima' || e2e_fail "makima task diff does not show the file"
fi
# The CLI ran in its worktree, with its own home.
events "$ID"
jq -e --arg wt "$WORKTREE" '[.events[] | select(.type == "system")][0].data.cwd == $wt' <<<"$BODY" >/dev/null ||
        e2e_fail "the agent's cwd is not its worktree"
[[ -n "$(ls "$STATE/homes/$ID/.claude/projects/" 2>/dev/null)" ]] || e2e_fail "the session is not in the task's home"
# Each of its events is a journal entry that tells the story in one line,
# or (without a journal) the same line on the worker's stderr.
if [[ -n "$E2E_JOURNAL_DIR" ]]; then
        ENTRIES=$(journal_entries "$ID")
        journal_matches_store "$ID" "$ENTRIES"
        jq -e '[.[].MAKIMA_EVENT] | index("system") and index("assistant") and index("user") and index("result") and
                index("status")' <<<"$ENTRIES" >/dev/null || e2e_fail "event types missing from the journal: $ENTRIES"
        jq -e 'all(.[]; .PRIORITY == "6") and (any(.[]; has("MAKIMA_CONTRACT_ID")) | not)' <<<"$ENTRIES" >/dev/null ||
                e2e_fail "a task that went well has entries that are not info, or a contract: $ENTRIES"
        events "$ID"
        RESULT_LINE=$(jq -r '[.events[] | select(.type == "result")][0].data |
                "result success $\(.total_cost_usd) \(.num_turns) turns"' <<<"$BODY")
        RESULT_LINE=$(LC_ALL=C awk '{ printf "%s %s $%.4f %s %s", $1, $2, substr($3, 2), $4, $5 }' <<<"$RESULT_LINE")
        [[ "$RESULT_LINE" =~ ^result\ success\ \$0\.[0-9]{4}\ 3\ turns$ ]] || e2e_fail "unexpected result: $RESULT_LINE"
        SESSION=$(jq -r '[.events[] | select(.type == "system")][0].data.session_id' <<<"$BODY")
        # `journalctl MAKIMA_TASK_ID=…` as a person reads it.
        journal -o cat "MAKIMA_TASK_ID=$ID" >"$TMP/story.txt" || e2e_fail "journalctl failed"
        STORY=$(jq -R -s -c 'split("\n") | map(select(length > 0))' "$TMP/story.txt")
        jq -e --arg session "$SESSION" --arg result "$RESULT_LINE" '
                . as $s | [$s[] | select(startswith("status ") | not)] as $agent |
                ($agent | length) == 8 and
                ($agent[0] | startswith("init session " + $session + " model ")) and
                $agent[1] == "I will create hello.txt." and
                $agent[2] == "tool Write hello.txt" and
                $agent[3] == "tool_result ok" and
                ($agent[4] | startswith("tool Bash ")) and
                $agent[5] == "tool_result ok" and
                $agent[6] == "Done: hello.txt is committed." and
                $agent[7] == $result and
                $s[-1] == "status done"' <<<"$STORY" >/dev/null || e2e_fail "the journal tells: $STORY"
        # The journal was written, not the fallback on stderr.
        ! grep -q "${ID8} tool Write" "$TMP/up.err" || e2e_fail "agent events went to stderr although a journal runs"
else
        grep -q "${ID8} tool Write hello.txt\$" "$TMP/up.err" || e2e_fail "without a journal, the events are not on stderr"
        grep -q "${ID8} tool_result ok\$" "$TMP/up.err" || e2e_fail "without a journal, the tool results are not on stderr"
fi

# ---- 2. not logged in ----
say "not logged in"
fake_start '{"steps": [{"error": 401, "times": "always"}]}'
# (in a contract, which its journal entries name)
CONTRACT=$("$MAKIMA" contract create e2e-not-logged-in) || e2e_fail "makima contract create failed"
AUTH=$(task_create "This agent has a bad key." --contract "$CONTRACT")
wait_status "$AUTH" failed 120
expect_json .error "agent is not logged in on worker 1 (Invalid API key · Fix external API key)"
expect_json .contract_id "$CONTRACT"
if [[ -n "$E2E_JOURNAL_DIR" ]]; then
        ENTRIES=$(journal_entries "$AUTH")
        journal_matches_store "$AUTH" "$ENTRIES"
        jq -e --arg c "$CONTRACT" 'all(.[]; .MAKIMA_CONTRACT_ID == $c)' <<<"$ENTRIES" >/dev/null ||
                e2e_fail "entries do not name the contract: $ENTRIES"
        # Errors are LOG_ERR: the failed result and the failure.
        jq -e '[.[] | select(.MAKIMA_EVENT == "result")] | length > 0 and
                all(.PRIORITY == "3" and (.MESSAGE | startswith("result error")))' <<<"$ENTRIES" >/dev/null ||
                e2e_fail "the failed result is not an error: $ENTRIES"
        jq -e '.[-1] | .MAKIMA_EVENT == "status" and .PRIORITY == "3" and
                .MESSAGE == "status failed: agent is not logged in on worker 1 (Invalid API key · Fix external API key)"' \
                <<<"$ENTRIES" >/dev/null || e2e_fail "the failure is not an error: $ENTRIES"
fi
req admin GET "/api/v1/notifications?limit=100"
jq -e --arg id "$AUTH" '[.notifications[] | select(.task_id == $id and .level == "error")] | length == 1' \
        <<<"$BODY" >/dev/null || e2e_fail "no notification: $BODY"

# ---- 3. killed mid-run ----
say "killed mid-run"
fake_start '{"steps": [{"text": "This answer never arrives.", "delay": 60}]}'
KILLED=$(task_create "Work slowly.")
wait_requests 1
PID=$(claude_pid "$KILLED") || e2e_fail "the CLI's process is not found"
kill -KILL "$PID"
wait_status "$KILLED" failed 30
expect_json .error "agent was killed by signal 9 (SIGKILL)"

# ---- 4. pause, resume, interrupt and send on the running CLI ----
say "controls"
fake_start '{"steps": [
  {"text": "This answer is interrupted before it arrives.", "delay": 8},
  {"text": "Carrying on after the interrupt."}
]}'
CTL=$(task_create "Work slowly, then carry on.")
wait_requests 1
req admin POST "/api/v1/tasks/$CTL/pause"
expect_status 202 pause
wait_status "$CTL" paused 10
for pid in $(sandbox_pids "$CTL"); do
        is_paused "$pid" || e2e_fail "process $pid is neither stopped nor frozen"
done
req admin POST "/api/v1/tasks/$CTL/resume"
expect_status 202 resume
wait_status "$CTL" running 10
req admin POST "/api/v1/tasks/$CTL/interrupt"
expect_status 202 interrupt
wait_status "$CTL" interrupted 20
events "$CTL"
jq -e '[.events[] | select(.type == "control_response")] | length == 1' <<<"$BODY" >/dev/null ||
        e2e_fail "the CLI did not answer the interrupt"
req admin POST "/api/v1/tasks/$CTL/send" '{"message": "please carry on"}'
expect_status 202 send
wait_status "$CTL" done 60
jq -s -e '[.[] | select(.kind == "main")][-1].last_user_text | test("please carry on")' "$TMP/requests.jsonl" \
        >/dev/null || e2e_fail "the message did not reach the model"
events "$CTL"
jq -e '[.events[] | select(.type == "result")][-1].data | .is_error == false and (.result | test("Carrying on"))' \
        <<<"$BODY" >/dev/null || e2e_fail "the last turn did not end well"

# ---- 5. cancel ----
say "cancel"
fake_start '{"steps": [{"text": "This answer never arrives.", "delay": 60}]}'
CANCEL=$(task_create "Work slowly.")
wait_requests 1
req admin POST "/api/v1/tasks/$CANCEL/cancel"
expect_status 202 cancel
wait_status "$CANCEL" cancelled 20
[[ -z "$(sandbox_pids "$CANCEL")" ]] || e2e_fail "processes of the cancelled task survive"

# ---- 6. a repository that does not exist ----
say "no repository"
# (makima task create checks a local path itself; the API takes any.)
req admin POST /api/v1/tasks "{\"plan\": \"never runs\", \"repo\": \"$TMP/no-such-repo\"}"
expect_status 201 "create a task on a missing repository"
NOREPO=$(jqr .id)
wait_status "$NOREPO" failed 30
jqr .error | grep -q no-such-repo || e2e_fail "no reason: $BODY"

e2e_down
say "PASS"
