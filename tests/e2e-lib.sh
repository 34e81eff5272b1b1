# SPDX-License-Identifier: LGPL-2.1-or-later
# The set-up the end-to-end tests share: the REAL Claude Code CLI
# (tests/install-claude.sh), the scripted fake Anthropic API
# (tests/fake-anthropic) on a port that stays the same across scenarios,
# `makima up` with one worker that polls (no bus), a git repository to work
# on, and the helpers that wait for a task. Optionally a private
# systemd-journald in a mount namespace of the test's own, so that the
# worker's journal entries can be read back without touching the host's.
# Source it after lib.sh; see e2e_init and e2e_up.

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FAKE="$SRCDIR/tests/fake-anthropic"
CLAUDE=${MAKIMA_CLAUDE:-/opt/makima-test/claude/node_modules/.bin/claude}
JOURNALD=/lib/systemd/systemd-journald
# The private journal's directory (Storage=volatile keeps it there), or empty.
E2E_JOURNAL_DIR=''
FAKE_PID=''
UP_PID=''
JOURNALD_PID=''
MAKIMA=''
STATE=''
REPO=''

# e2e_journal_namespace "$@": as root, re-executes the test in a mount
# namespace of its own where e2e_journal_start can run a private journald.
# Elsewhere it returns, and the worker's events go to stderr.
e2e_journal_namespace() {
        [[ -n "${MAKIMA_TEST_IN_NAMESPACE:-}" ]] && return 0
        if [[ "$(id -u)" == 0 && -x "$JOURNALD" ]] && command -v unshare >/dev/null && command -v journalctl >/dev/null; then
                MAKIMA_TEST_IN_NAMESPACE=1 exec unshare --mount --propagation private "$0" "$@"
        fi
        say "no private journal (needs root, unshare, journalctl and $JOURNALD): agent events go to stderr"
}

# e2e_journal_start: in the namespace, tmpfs on /run and /var/log/journal and
# a systemd-journald of the test's own on them.
e2e_journal_start() {
        [[ -n "${MAKIMA_TEST_IN_NAMESPACE:-}" ]] || return 0
        mount -t tmpfs tmpfs /run
        [[ -d /var/log/journal ]] && mount -t tmpfs tmpfs /var/log/journal
        mkdir -p /run/systemd/journal /run/log/journal /run/systemd/journald.conf.d
        printf '[Journal]\nStorage=volatile\nForwardToSyslog=no\nForwardToWall=no\nForwardToConsole=no\n' \
                >/run/systemd/journald.conf.d/50-makima-test.conf
        "$JOURNALD" >>"$TMP/journald.log" 2>&1 &
        JOURNALD_PID=$!
        e2e_pids
        for _ in $(seq 200); do
                [[ -S /run/systemd/journal/socket ]] && break
                kill -0 "$JOURNALD_PID" 2>/dev/null || fail "systemd-journald exited: $(tail -n 5 "$TMP/journald.log")"
                sleep 0.05
        done
        [[ -S /run/systemd/journal/socket ]] || fail "systemd-journald did not start"
        E2E_JOURNAL_DIR=/run/log/journal
}

# journal ARGS…: journalctl on the private journal only.
journal() {
        journalctl --no-pager --directory "$E2E_JOURNAL_DIR" "$@"
}

# The pids lib_cleanup stops.
e2e_pids() {
        EXTRA_PIDS="$UP_PID $FAKE_PID $JOURNALD_PID"
}

e2e_fail() {
        [[ -s "$TMP/up.err" ]] && { echo "--- makima up:" >&2; tail -n 60 "$TMP/up.err" >&2; }
        [[ -n "$E2E_JOURNAL_DIR" ]] && { echo "--- journal:" >&2; journal -n 40 -o short-monotonic >&2 || true; }
        [[ -s "$TMP/requests.jsonl" ]] && { echo "--- fake API requests:" >&2; tail -n 5 "$TMP/requests.jsonl" >&2; }
        fail "$@"
}

# e2e_init MAKIMA-API MAKIMA-WORKER MAKIMA: checks what is needed (skips,
# 77, without the CLI or bwrap), makes $TMP, starts the private journal when
# in its namespace, and makes a repository with one commit in $REPO.
e2e_init() {
        local tool

        export MAKIMA_WORKER_BIN
        MAKIMA_WORKER_BIN=$(realpath "${2:?usage: $0 makima-api makima-worker makima}")
        MAKIMA=$(realpath "${3:?usage: $0 makima-api makima-worker makima}")
        lib_init "$1"
        export MAKIMA_API_BIN
        MAKIMA_API_BIN=$(realpath "$1")
        unset MAKIMA_API_URL MAKIMA_API_KEY MAKIMA_BUS_ADDRESS MAKIMA_JOURNAL

        if [[ ! -x "$CLAUDE" ]]; then
                say "$CLAUDE is not installed (tests/install-claude.sh), skipping"
                exit 77
        fi
        for tool in bwrap git python3; do
                command -v "$tool" >/dev/null || { say "$tool is missing, skipping"; exit 77; }
        done

        e2e_journal_start
        STATE="$TMP/state"
        REPO="$TMP/repo"
        git init -q -b main "$REPO"
        echo "a repository for the end-to-end test" >"$REPO/README"
        git -C "$REPO" add README
        git -C "$REPO" -c user.name=test -c user.email=test@example.invalid commit -q -m "initial commit"
}

# fake_start SCENARIO-JSON: the fake API on $PORT (the same port each time,
# so the agent's environment in the configuration stays right).
fake_start() {
        fake_stop
        printf '%s\n' "$1" >"$TMP/scenario.json"
        : >"$TMP/requests.jsonl"
        rm -f "$TMP/port"
        python3 "$FAKE/fake-anthropic.py" --scenario "$TMP/scenario.json" --port "${PORT:-0}" \
                --port-file "$TMP/port" --log "$TMP/requests.jsonl" 2>>"$TMP/fake.log" &
        FAKE_PID=$!
        e2e_pids
        for _ in $(seq 100); do
                [[ -s "$TMP/port" ]] && break
                kill -0 "$FAKE_PID" 2>/dev/null || e2e_fail "the fake API did not start"
                sleep 0.1
        done
        PORT=$(cat "$TMP/port")
}

fake_stop() {
        if [[ -n "$FAKE_PID" ]]; then
                kill "$FAKE_PID" 2>/dev/null || true
                wait "$FAKE_PID" 2>/dev/null || true
                FAKE_PID=''
        fi
}

# e2e_up MAX-CONCURRENT-TASKS CLI-MAX-RETRIES: starts the fake API (with no
# steps yet) for its port, writes the configuration and runs `makima up`
# with one worker until it prints MAKIMA_API_URL. Workers poll every second:
# the tests do not depend on a bus.
e2e_up() {
        fake_start '{"steps": []}'
        cat >"$TMP/makima.conf" <<EOF
[Worker]
MaxConcurrentTasks=$1
PollIntervalSec=1
LeaseSec=6

[Agent]
Command=$CLAUDE
Environment=ANTHROPIC_BASE_URL=http://127.0.0.1:$PORT ANTHROPIC_API_KEY=test-key
Environment=CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 CLAUDE_CODE_MAX_RETRIES=$2

[Sandbox]
Enabled=yes
EOF

        "$MAKIMA" up --state-dir "$STATE" --config "$TMP/makima.conf" --workers 1 >"$TMP/up.out" 2>"$TMP/up.err" &
        UP_PID=$!
        e2e_pids
        for _ in $(seq 300); do
                grep -q '^ *export MAKIMA_API_URL=' "$TMP/up.out" && break
                kill -0 "$UP_PID" 2>/dev/null || e2e_fail "makima up exited"
                sleep 0.1
        done
        eval "$(grep '^ *export MAKIMA_API_URL=' "$TMP/up.out")"
        [[ -n "${MAKIMA_API_URL:-}" ]] || e2e_fail "makima up did not get ready"
        API_SOCK=${MAKIMA_API_URL#unix:}
}

# e2e_down: SIGTERM to `makima up`, which must exit 0.
e2e_down() {
        local rc=0

        kill -TERM "$UP_PID"
        wait "$UP_PID" || rc=$?
        UP_PID=''
        e2e_pids
        ((rc == 0)) || e2e_fail "makima up exited with $rc"
}

# task_create PLAN [ARGS…]: prints the id.
task_create() {
        local plan=$1

        shift
        "$MAKIMA" task create --repo "$REPO" "$@" "$plan" || e2e_fail "makima task create failed"
}

# wait_status ID STATUS [SECONDS]
wait_status() {
        local deadline=$((SECONDS + ${3:-60})) got=''

        while ((SECONDS < deadline)); do
                req admin GET "/api/v1/tasks/$1"
                got=$(jq -r .status <<<"$BODY")
                [[ "$got" == "$2" ]] && return 0
                sleep 0.2
        done
        e2e_fail "task $1: expected $2, still $got: $BODY"
}

