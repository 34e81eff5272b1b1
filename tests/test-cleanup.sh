#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# makima-cleanup against a real store and tasks' real repositories: what no
# task needs any more goes (worktree, the task's own git directory with its
# branch, home), everything else stays, the user's repository is never
# touched, and a second pass changes nothing.
# Usage: test-cleanup.sh PATH/TO/makima-api PATH/TO/makima-cleanup
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CLEANUP_BIN=$2
lib_init "$1"
command -v sqlite3 >/dev/null || { say "sqlite3 is missing, skipping"; exit 77; }
[[ -z "${MAKIMA_TEST_PG_URL:-}" ]] || { say "SQLite only"; exit 77; }

STATE=$TMP/state
WT=$TMP/worktrees
WORKTREES=$WT
mkdir -p "$STATE/homes" "$WT"
write_config
printf '\n[Worker]\nWorktreeDir=%s\n' "$WT" >> "$TMP/makima.conf"

git init -q -b main "$TMP/repo"
git -C "$TMP/repo" -c user.name=t -c user.email=t@t commit -q --allow-empty -m init

api_start
new_contract() { req admin POST /api/v1/contracts "{\"name\":\"$1\"}"; expect_status 201; jqr .id; }
new_task() {
        local body="{\"plan\":\"$1\"${2:+,\"contract_id\":\"$2\"}}"
        req admin POST /api/v1/tasks "$body"; expect_status 201; jqr .id
}
open_c=$(new_contract open)
closed_c=$(new_contract closed)
t_open_done=$(new_task "done, contract open" "$open_c")
t_closed_done=$(new_task "done, contract completed" "$closed_c")
t_cancelled=$(new_task "cancelled")
t_running=$(new_task "running")
t_failed=$(new_task "failed, no contract")
t_deleted=$(new_task "deleted")

db() { sqlite3 -cmd '.timeout 5000' "$TMP/makima.db" "$@"; }
repo_state=$(git -C "$TMP/repo" for-each-ref; git -C "$TMP/repo" count-objects -v)
for t in $t_open_done $t_closed_done $t_cancelled $t_running $t_failed $t_deleted; do
        make_task_repo "$TMP/repo" main "$t" >/dev/null
        mkdir -p "$STATE/homes/$t/.claude"
        db "UPDATE tasks SET worktree='$WT/$t', branch='makima/${t:0:8}' WHERE id='$t'"
done
# What an agent leaves may be its own and closed to others: a directory
# without write or search rights, with a file in it.
mkdir -p "$WT/$t_cancelled/locked" && echo x >"$WT/$t_cancelled/locked/f" && chmod 0 "$WT/$t_cancelled/locked"
if id makima-agent >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
        chown -R makima-agent: "$WT/$t_cancelled/locked"
fi
# A task repository whose worktree is gone already (an interrupted pass).
t_orphan=$(new_task "cancelled, worktree gone")
make_task_repo "$TMP/repo" main "$t_orphan" >/dev/null
rm -rf "${WT:?}/$t_orphan"
db "UPDATE tasks SET status='cancelled' WHERE id='$t_orphan'"
db "UPDATE tasks SET status='done' WHERE id IN ('$t_open_done','$t_closed_done')"
db "UPDATE tasks SET status='cancelled' WHERE id='$t_cancelled'"
db "UPDATE tasks SET status='running' WHERE id='$t_running'"
db "UPDATE tasks SET status='failed' WHERE id='$t_failed'"
db "UPDATE contracts SET status='completed' WHERE id='$closed_c'"
req admin DELETE "/api/v1/tasks/$t_deleted"; expect_status 204
mkdir "$WT/not-a-task"
api_stop

"$CLEANUP_BIN" --config "$TMP/makima.conf" --state-dir "$STATE" > "$TMP/cleanup.log" 2>&1 ||
        { cat "$TMP/cleanup.log" >&2; fail "makima-cleanup failed"; }
grep -q "Removed 3 worktrees and 1 agent homes; 0 failures" "$TMP/cleanup.log" ||
        { cat "$TMP/cleanup.log" >&2; fail "unexpected summary"; }

gone() { [[ ! -e "$1" ]] || fail "$1 should be gone"; }
kept() { [[ -e "$1" ]] || fail "$1 should be kept"; }
branch_gone() { [[ ! -e "$STATE/git/$1" ]] || fail "the repository (and branch) of $1 kept"; }
branch_kept() { git --git-dir="$STATE/git/$1" rev-parse -q --verify "refs/heads/makima/${1:0:8}" >/dev/null || fail "branch of $1 gone"; }

for t in $t_closed_done $t_cancelled $t_deleted $t_orphan; do gone "$WT/$t"; branch_gone "$t"; done
for t in $t_open_done $t_running $t_failed; do kept "$WT/$t"; branch_kept "$t"; done
kept "$WT/not-a-task"
gone "$STATE/homes/$t_deleted"
for t in $t_open_done $t_closed_done $t_cancelled $t_running $t_failed; do kept "$STATE/homes/$t"; done
# The user's repository is as it was: cleanup runs no git on it, nor any.
[[ "$(git -C "$TMP/repo" for-each-ref; git -C "$TMP/repo" count-objects -v)" == "$repo_state" ]] ||
        fail "the user's repository changed"
# The records stay (they are history); the worktree they named is cleared.
[[ "$(db "SELECT worktree IS NULL FROM tasks WHERE id='$t_cancelled'")" == 1 ]] || fail "worktree not cleared on the task"
[[ "$(db "SELECT worktree FROM tasks WHERE id='$t_open_done'")" == "$WT/$t_open_done" ]] || fail "kept task lost its worktree"

# Idempotent: a second pass finds nothing to do.
"$CLEANUP_BIN" --config "$TMP/makima.conf" --state-dir "$STATE" > "$TMP/cleanup.log" 2>&1 || fail "second pass failed"
grep -q "Removed 0 worktrees and 0 agent homes; 0 failures" "$TMP/cleanup.log" || fail "second pass was not a no-op"

# A task whose repository vanished is removed all the same: plain files.
db "UPDATE tasks SET status='cancelled' WHERE id='$t_failed'"
rm -rf "$TMP/repo"
"$CLEANUP_BIN" --config "$TMP/makima.conf" --state-dir "$STATE" > "$TMP/cleanup.log" 2>&1 || fail "pass without a repo failed"
gone "$WT/$t_failed"
branch_gone "$t_failed"

# A broken store is an error, not a silent success.
echo garbage > "$TMP/bad.db"
printf '[Store]\nPath=%s/bad.db\n' "$TMP" > "$TMP/bad.conf"
if "$CLEANUP_BIN" --config "$TMP/bad.conf" --state-dir "$STATE" > "$TMP/cleanup.log" 2>&1; then
        fail "makima-cleanup succeeded on a broken store"
fi
say "ok"
