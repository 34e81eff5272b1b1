#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Drives the REAL Claude Code CLI offline against tests/fake-anthropic: the
# agent really writes, runs and edits files in a temporary git repository,
# resumes its session, and meets authentication failures, rate limits,
# overload, an interrupt and a permission request of its own. These are the
# facts makima's worker relies on (tests/fake-anthropic/README.md).
#
# Skips (77) only when the CLI is not installed: tests/install-claude.sh.
# MAKIMA_CLAUDE=path overrides the binary; MAKIMA_CAPTURE_DIR=dir keeps every
# captured stdout and request log there.
set -euo pipefail

SRCDIR="$(cd "$(dirname "$0")/.." && pwd)"
FAKE="$SRCDIR/tests/fake-anthropic"
CLAUDE="${MAKIMA_CLAUDE:-/opt/makima-test/claude/node_modules/.bin/claude}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$CLAUDE" ]; then
        echo "SKIP: $CLAUDE not installed (run tests/install-claude.sh)"
        exit 77
fi

WORK="$(mktemp -d /tmp/makima-test-fake-api.XXXXXX)"
FAKE_PID=""
cleanup() {
        exec 7>&- 2>/dev/null || true
        if [ -n "$FAKE_PID" ]; then
                kill "$FAKE_PID" 2>/dev/null || true
                wait "$FAKE_PID" 2>/dev/null || true
        fi
        if [ -n "${MAKIMA_CAPTURE_DIR:-}" ]; then
                mkdir -p "$MAKIMA_CAPTURE_DIR"
                cp "$WORK"/*.jsonl "$WORK"/*.stderr "$MAKIMA_CAPTURE_DIR"/ 2>/dev/null || true
        fi
        rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
        echo "FAIL: $*" >&2
        exit 1
}

# Every check names the run it checks; assert-jsonl prints the file on failure.
check() {
        local file="$1"
        shift
        "$PYTHON" "$FAKE/assert-jsonl.py" "$WORK/$file" "$@" || fail "check on $file"
}

REPO="$WORK/repo"
mkdir -p "$REPO" "$WORK/home"
git -C "$REPO" init -q
git -C "$REPO" -c user.email=t@example.invalid -c user.name=t commit -q --allow-empty -m init

# start_fake NAME SCENARIO: a fresh fake API with its own request log NAME.requests.jsonl.
start_fake() {
        local name="$1" scenario="$FAKE/scenarios/$2"
        stop_fake
        rm -f "$WORK/port"
        "$PYTHON" "$FAKE/fake-anthropic.py" --scenario "$scenario" --port-file "$WORK/port" \
                --log "$WORK/$name.requests.jsonl" &
        FAKE_PID=$!
        for _ in $(seq 100); do
                [ -s "$WORK/port" ] && break
                kill -0 "$FAKE_PID" 2>/dev/null || fail "fake API for $name did not start"
                sleep 0.1
        done
        [ -s "$WORK/port" ] || fail "fake API for $name wrote no port"
        PORT="$(cat "$WORK/port")"
}

stop_fake() {
        if [ -n "$FAKE_PID" ]; then
                kill "$FAKE_PID" 2>/dev/null || true
                wait "$FAKE_PID" 2>/dev/null || true
                FAKE_PID=""
        fi
}

# The CLI sees only what we give it: no credentials or settings of the host.
# As root, --dangerously-skip-permissions needs IS_SANDBOX=1.
claude_env() {
        local sandbox=()
        [ "$(id -u)" = 0 ] && sandbox=(IS_SANDBOX=1)
        env -i PATH=/usr/local/bin:/usr/bin:/bin SHELL=/bin/bash LANG=C.UTF-8 HOME="$WORK/home" \
                ANTHROPIC_BASE_URL="http://127.0.0.1:$PORT" ANTHROPIC_API_KEY=test \
                CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 \
                "${sandbox[@]}" "$@"
}

CLAUDE_ARGS=(-p --output-format=stream-json --input-format=stream-json --verbose)

user_line() {
        "$PYTHON" -c 'import json,sys; print(json.dumps({"type":"user","message":{"role":"user","content":sys.argv[1]}}))' "$1"
}

# run NAME "prompt" [extra args...]: one prompt on stdin, stdin closed, the
# CLI's exit status in RC, its stdout in NAME.jsonl.
run() {
        local name="$1" prompt="$2"
        shift 2
        RC=0
        user_line "$prompt" | (cd "$REPO" && claude_env "${EXTRA_ENV[@]}" timeout 120 "$CLAUDE" "${CLAUDE_ARGS[@]}" "$@") \
                >"$WORK/$name.jsonl" 2>"$WORK/$name.stderr" || RC=$?
        echo "run $name: exit $RC, $(wc -l <"$WORK/$name.jsonl") lines"
}

# wait_for FILE EXPR: polls until an assert-jsonl expression holds (30 s).
wait_for() {
        local file="$1" expr="$2"
        for _ in $(seq 300); do
                if [ -s "$WORK/$file" ] && "$PYTHON" "$FAKE/assert-jsonl.py" "$WORK/$file" "$expr" 2>/dev/null; then
                        return 0
                fi
                sleep 0.1
        done
        check "$file" "$expr"
}

EXTRA_ENV=()

echo "== $("$CLAUDE" --version)"

# ---- 1. a task: text, Write, Bash, Read, Edit, thinking, final text ----
start_fake hello hello.json
run hello "Create hello.txt with a greeting, show it, then edit it." --dangerously-skip-permissions
[ "$RC" = 0 ] || fail "hello exited $RC: $(cat "$WORK/hello.stderr")"
[ "$(cat "$REPO/hello.txt")" = "hello from makima, edited" ] || fail "hello.txt holds '$(cat "$REPO/hello.txt" 2>/dev/null)'"
check hello.jsonl \
        'L[0]["type"] == "system" and L[0]["subtype"] == "init"' \
        'one("system", "init")["session_id"]' \
        'one("system", "init")["cwd"] == "'"$REPO"'"' \
        'one("system", "init")["permissionMode"] == "bypassPermissions"' \
        'any(b["text"] == "I will create hello.txt." for b in blocks("text"))' \
        '[b["name"] for b in blocks("tool_use")] == ["Write", "Bash", "Read", "Edit"]' \
        'blocks("tool_use")[0]["input"]["file_path"] == "'"$REPO"'/hello.txt"' \
        'blocks("thinking")[0]["thinking"] == "The file exists and holds the greeting."' \
        'len(blocks("tool_result")) == 4 and not any(b.get("is_error") for b in blocks("tool_result"))' \
        '"hello from makima" in blocks("tool_result")[1]["content"]' \
        'len(of("assistant")) == 7 and len(of("user")) == 4' \
        'one("result")["subtype"] == "success" and one("result")["is_error"] is False' \
        'one("result")["result"].startswith("Done: hello.txt holds the greeting.")' \
        'one("result")["num_turns"] == 5 and one("result")["total_cost_usd"] > 0' \
        'one("result")["api_error_status"] is None and one("result")["terminal_reason"] == "completed"' \
        'one("result")["session_id"] == one("system", "init")["session_id"]' \
        'L[-1]["type"] == "result"'
SESSION="$("$PYTHON" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["session_id"])' "$WORK/hello.jsonl")"
# The fake saw five main turns, each tool's result coming back, no side request
# (non-essential traffic is off) and the working directory in the system prompt.
check hello.requests.jsonl \
        'len(main) == 5 and [m["step"] for m in main] == [0, 1, 2, 3, 4]' \
        'not any(x.get("exhausted") for x in L)' \
        'all(m["cwd"] == "'"$REPO"'" and m["session_id"] == "'"$SESSION"'" for m in main)' \
        'main[0]["last_user_text"] == "Create hello.txt with a greeting, show it, then edit it."' \
        'main[1]["tool_results"][0]["content"].startswith("File created successfully")' \
        'main[2]["tool_results"][0]["content"] == "hello.txt\nhello from makima"' \
        '"hello from makima" in main[3]["tool_results"][0]["content"]' \
        'not any(m["tool_results"][0]["is_error"] for m in main[1:])' \
        'all(m["api_key"] == "test" and m["stream"] for m in main)' \
        'not any(x["kind"] == "side" for x in L)'

# ---- 2. --resume continues the same session with its history ----
start_fake resume resume.json
run resume "What did you do?" --dangerously-skip-permissions --resume "$SESSION"
[ "$RC" = 0 ] || fail "resume exited $RC: $(cat "$WORK/resume.stderr")"
check resume.jsonl \
        'one("system", "init")["session_id"] == "'"$SESSION"'"' \
        'one("result")["result"] == "Resumed: hello.txt is still there." and one("result")["num_turns"] == 1'
check resume.requests.jsonl \
        'len(main) == 1 and main[0]["session_id"] == "'"$SESSION"'"' \
        'main[0]["user_texts"][0] == "Create hello.txt with a greeting, show it, then edit it."' \
        'main[0]["user_texts"][-1] == "What did you do?"' \
        'main[0]["nmessages"] >= 10'

# ---- 3. authentication failure: retried, then reported ----
start_fake auth auth-401.json
EXTRA_ENV=(CLAUDE_CODE_MAX_RETRIES=1)
run auth "hi" --dangerously-skip-permissions
EXTRA_ENV=()
[ "$RC" = 1 ] || fail "auth exited $RC, expected 1"
check auth.jsonl \
        'one("system", "api_retry")["error_status"] == 401' \
        'one("system", "api_retry")["error"] == "authentication_failed"' \
        'one("assistant")["error"] == "authentication_failed"' \
        'one("assistant")["message"]["model"] == "<synthetic>"' \
        'one("result")["is_error"] is True and one("result")["subtype"] == "success"' \
        'one("result")["api_error_status"] == 401' \
        'one("result")["result"].startswith("Invalid API key")' \
        'one("result")["total_cost_usd"] == 0'
check auth.requests.jsonl 'len(main) == 2 and all(m["status"] == 401 for m in main)'

# ---- 4. rate limit: the CLI honours retry-after and carries on ----
start_fake ratelimit rate-limit-429.json
run ratelimit "hi" --dangerously-skip-permissions
[ "$RC" = 0 ] || fail "ratelimit exited $RC"
check ratelimit.jsonl \
        'len(of("system", "api_retry")) == 2' \
        'all(x["error_status"] == 429 and x["error"] == "rate_limit" for x in of("system", "api_retry"))' \
        'of("system", "api_retry")[0]["retry_delay_ms"] >= 1000' \
        'of("rate_limit_event") == []' \
        'one("result")["is_error"] is False and one("result")["result"] == "Answered after the rate limit."'
check ratelimit.requests.jsonl '[m["status"] for m in main] == [429, 429, 200]'

start_fake ratelimit-always rate-limit-429-always.json
EXTRA_ENV=(CLAUDE_CODE_MAX_RETRIES=1)
run ratelimit-always "hi" --dangerously-skip-permissions
EXTRA_ENV=()
[ "$RC" = 1 ] || fail "ratelimit-always exited $RC, expected 1"
check ratelimit-always.jsonl \
        'one("assistant")["error"] == "rate_limit"' \
        'one("result")["is_error"] is True and one("result")["api_error_status"] == 429' \
        'one("result")["result"].startswith("API Error: Request rejected (429)")'

# ---- 5. overloaded ----
start_fake overloaded overloaded-529.json
EXTRA_ENV=(CLAUDE_CODE_MAX_RETRIES=1)
run overloaded "hi" --dangerously-skip-permissions
EXTRA_ENV=()
[ "$RC" = 1 ] || fail "overloaded exited $RC, expected 1"
check overloaded.jsonl \
        'one("system", "api_retry")["error"] == "overloaded"' \
        'one("assistant")["error"] == "server_error"' \
        'one("result")["is_error"] is True and one("result")["api_error_status"] == 529' \
        'one("result")["result"].startswith("API Error: 529")'

# ---- 6. interrupt, then another message on the same stdin ----
# The stdin lines below are the ones stream_json_user_message() and
# stream_json_interrupt_request() write (test-stream-json checks the bytes).
start_fake interrupt interrupt.json
mkfifo "$WORK/stdin"
(cd "$REPO" && claude_env timeout 120 "$CLAUDE" "${CLAUDE_ARGS[@]}" --dangerously-skip-permissions) \
        <"$WORK/stdin" >"$WORK/interrupt.jsonl" 2>"$WORK/interrupt.stderr" &
CLAUDE_PID=$!
exec 7>"$WORK/stdin"
echo '{"type":"user","message":{"role":"user","content":"Answer slowly."}}' >&7
wait_for interrupt.requests.jsonl 'len(main) == 1'
echo '{"type":"control_request","request_id":"interrupt-1","request":{"subtype":"interrupt"}}' >&7
wait_for interrupt.jsonl 'len(of("result")) == 1'
echo '{"type":"user","message":{"role":"user","content":"Now answer quickly."}}' >&7
wait_for interrupt.jsonl 'len(of("result")) == 2'
exec 7>&-
RC=0
wait "$CLAUDE_PID" || RC=$?
[ "$RC" = 0 ] || fail "interrupt exited $RC"
check interrupt.jsonl \
        'one("control_response")["response"] == {"subtype": "success", "request_id": "interrupt-1"}' \
        'of("result")[0]["subtype"] == "error_during_execution" and of("result")[0]["is_error"] is True' \
        'of("result")[0]["terminal_reason"] == "aborted_streaming"' \
        'any(b["text"] == "[Request interrupted by user]" for b in blocks("text"))' \
        'of("result")[1]["subtype"] == "success" and of("result")[1]["result"] == "Second answer after the interrupt."'
check interrupt.requests.jsonl \
        'main[1]["last_user_text"].endswith("Now answer quickly.")'

# ---- 7. the CLI's own control_request (permission), answered with an error ----
# Without --dangerously-skip-permissions and with --permission-prompt-tool
# stdio, the CLI asks on stdout and waits for our control_response.
start_fake permission permission.json
rm -f "$WORK/stdin"
mkfifo "$WORK/stdin"
(cd "$REPO" && env -i PATH=/usr/bin:/bin HOME="$WORK/home" LANG=C.UTF-8 SHELL=/bin/bash \
        ANTHROPIC_BASE_URL="http://127.0.0.1:$PORT" ANTHROPIC_API_KEY=test \
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 \
        timeout 120 "$CLAUDE" "${CLAUDE_ARGS[@]}" --permission-prompt-tool stdio) \
        <"$WORK/stdin" >"$WORK/permission.jsonl" 2>"$WORK/permission.stderr" &
CLAUDE_PID=$!
exec 7>"$WORK/stdin"
echo '{"type":"user","message":{"role":"user","content":"Write denied.txt."}}' >&7
wait_for permission.jsonl 'len(of("control_request")) == 1'
REQUEST_ID="$("$PYTHON" -c 'import json,sys; print([x for x in map(json.loads, open(sys.argv[1])) if x["type"] == "control_request"][0]["request_id"])' "$WORK/permission.jsonl")"
echo '{"type":"control_response","response":{"subtype":"error","request_id":"'"$REQUEST_ID"'","error":"makima grants no permissions interactively"}}' >&7
wait_for permission.jsonl 'len(of("result")) == 1'
exec 7>&-
RC=0
wait "$CLAUDE_PID" || RC=$?
[ "$RC" = 0 ] || fail "permission exited $RC"
[ ! -e "$REPO/denied.txt" ] || fail "denied.txt exists although permission was refused"
check permission.jsonl \
        'one("control_request")["request"]["subtype"] == "can_use_tool"' \
        'one("control_request")["request"]["tool_name"] == "Bash"' \
        'blocks("tool_result")[0]["is_error"] is True' \
        '"makima grants no permissions interactively" in blocks("tool_result")[0]["content"]' \
        'len(one("result")["permission_denials"]) == 1'
check permission.requests.jsonl \
        'main[1]["tool_results"][0]["is_error"] is True'

# ---- 8. a stdin line that is not JSON ends the CLI with status 1 ----
start_fake badinput resume.json
RC=0
echo '{not json' | (cd "$REPO" && claude_env timeout 60 "$CLAUDE" "${CLAUDE_ARGS[@]}" --dangerously-skip-permissions) \
        >"$WORK/badinput.jsonl" 2>"$WORK/badinput.stderr" || RC=$?
[ "$RC" = 1 ] || fail "bad input exited $RC, expected 1"
grep -q "Error parsing streaming input line" "$WORK/badinput.stderr" || fail "no parse error on stderr"

stop_fake
echo "PASS: the real claude CLI ran every scenario against the fake API"
