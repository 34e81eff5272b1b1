#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# makima-worker's journal entries, read back with journalctl: one per agent
# event, with MAKIMA_TASK_ID, MAKIMA_EVENT, MAKIMA_SEQ (the store's seq),
# MAKIMA_ITERATION, PRIORITY and SYSLOG_IDENTIFIER. The test runs in a mount
# namespace of its own with a private systemd-journald (a tmpfs on /run and
# /var/log/journal), so the host's journal is not touched.
#
# Usage: test-worker-journal.sh makima-api makima-worker fake-agent
# Needs root and systemd-journald; skips (77) otherwise.
set -euo pipefail

JOURNALD=/lib/systemd/systemd-journald
if [[ -z "${MAKIMA_TEST_IN_NAMESPACE:-}" ]]; then
        [[ "$(id -u)" == 0 && -x "$JOURNALD" ]] && command -v unshare >/dev/null && command -v journalctl >/dev/null ||
                { echo "test-worker-journal.sh: needs root, unshare and $JOURNALD, skipping" >&2; exit 77; }
        MAKIMA_TEST_IN_NAMESPACE=1 exec unshare --mount --propagation private "$0" "$@"
fi

# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

WORKER_BIN=${2:?usage: $0 makima-api makima-worker fake-agent}
FAKE_AGENT=$(realpath "${3:?usage: $0 makima-api makima-worker fake-agent}")
lib_init "$1"
unset MAKIMA_BUS_ADDRESS MAKIMA_JOURNAL

mount -t tmpfs tmpfs /run
[[ -d /var/log/journal ]] && mount -t tmpfs tmpfs /var/log/journal
mkdir -p /run/systemd/journal /run/log/journal
"$JOURNALD" >>"$TMP/journald.log" 2>&1 &
EXTRA_PIDS="$!"
for _ in $(seq 100); do
        [[ -S /run/systemd/journal/socket ]] && break
        sleep 0.05
done
[[ -S /run/systemd/journal/socket ]] || fail "systemd-journald did not start"

REPO="$TMP/repo"
git init -q -b main "$REPO"
git -C "$REPO" -c user.name=test -c user.email=test@example.invalid commit -q --allow-empty -m "initial commit"
cat >>"$TMP/makima.conf" <<EOF

[Worker]
PollIntervalSec=1

[Agent]
Command=$FAKE_AGENT
EOF
api_start
"$WORKER_BIN" --config "$TMP/makima.conf" --state-dir "$TMP/state" --instance 3 >>"$TMP/worker.log" 2>&1 &
WORKER=$!
EXTRA_PIDS="$EXTRA_PIDS $WORKER"

body=$(jq -nc --arg repo "$REPO" '{plan: "fake: write hello.txt hi\nfake: garbage", repo: $repo}')
req admin POST /api/v1/tasks "$body"
expect_status 201 "create task"
ID=$(jqr .id)
for _ in $(seq 300); do
        req admin GET "/api/v1/tasks/$ID"
        [[ "$(jqr .status)" == done ]] && break
        sleep 0.1
done
expect_json .status done

req admin GET "/api/v1/tasks/$ID/events?limit=1000"
expect_status 200 "events"
# The worker journals what it stores (the claim is the store's own event).
STORED=$(jq -c '[.events[] | select(.type != "claimed") | [.seq, .type]]' <<<"$BODY")

kill -TERM "$WORKER"
wait "$WORKER" || fail "makima-worker did not exit cleanly"
journalctl --sync 2>/dev/null || true

journalctl --no-pager -o json "MAKIMA_TASK_ID=$ID" >"$TMP/entries.json" || fail "journalctl failed"
JOURNALED=$(jq -sc '[.[] | [(.MAKIMA_SEQ | tonumber), .MAKIMA_EVENT]]' "$TMP/entries.json")
[[ "$JOURNALED" == "$STORED" ]] || fail "journal $JOURNALED, store $STORED"
jq -se 'all(.[]; .SYSLOG_IDENTIFIER == "makima-worker" and .MAKIMA_ITERATION == "1" and (.MESSAGE | length) > 0)' \
        "$TMP/entries.json" >/dev/null || fail "entries lack fields: $(head -c 2000 "$TMP/entries.json")"
jq -se '[.[] | select(.MAKIMA_EVENT == "assistant") | .MESSAGE] | any(test("Write hello.txt"))' "$TMP/entries.json" \
        >/dev/null || fail "no summary of the Write tool use"
jq -se '[.[] | select(.MAKIMA_EVENT == "invalid_output")][0].PRIORITY == "3"' "$TMP/entries.json" >/dev/null ||
        fail "invalid output is not an error"
jq -se '[.[] | select(.MAKIMA_EVENT == "stderr")][0].PRIORITY == "4"' "$TMP/entries.json" >/dev/null ||
        fail "stderr is not a warning"
jq -se '[.[] | select(.MAKIMA_EVENT == "result")][0].PRIORITY == "6"' "$TMP/entries.json" >/dev/null ||
        fail "a good result is not info"
jq -se 'any(.[]; has("MAKIMA_CONTRACT_ID")) | not' "$TMP/entries.json" >/dev/null ||
        fail "MAKIMA_CONTRACT_ID on a task without a contract"
# The agent's events are in the journal, not on stderr.
! grep -q "${ID:0:8} tool Write" "$TMP/worker.log" || fail "events went to stderr although a journal runs"
say "PASS"
