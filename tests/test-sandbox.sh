#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The agent sandbox, proven from inside: sandbox-probe runs under
# makima-sandbox-run (the worker's own bwrap command line, seccomp filter and
# user) with task 1's paths: its worktree and own git directory, which
# borrows the objects of a real repository another task borrows too. It must
# find every refused call refused, nothing outside its worktree, home and git
# directory writable, nothing of the host's state readable, and itself not
# root on the host (as root: the user makima-agent). Then: a commit from the
# sandbox lands on the task's own branch, and nothing the agent does reaches
# the repository or the other task; no process outlives a cancelled task; a
# missing bwrap is a clear error; Enabled=no runs unsandboxed with a warning.
# As root, all of it again as an unprivileged worker user.
#
# usage: test-sandbox.sh MAKIMA-SANDBOX-RUN SANDBOX-PROBE SCRATCH-DIR
set -eu

RUN=$(realpath "$1")
PROBE=$(realpath "$2")
SCRATCH=$(realpath "$3")

if ! command -v bwrap >/dev/null; then
        echo "bwrap is not installed; skipping"
        exit 77
fi
if ! bwrap --unshare-user --ro-bind / / true 2>/dev/null; then
        echo "bwrap cannot create a user namespace here; skipping"
        exit 77
fi

failures=0
fail() {
        echo "FAIL: $*"
        failures=$((failures + 1))
}
pass() {
        echo "ok: $*"
}

# The scratch directory is not under /tmp: /tmp in the sandbox is a private
# tmpfs, where writes succeed without reaching the host.
mkdir -p "$SCRATCH"
T=$(mktemp -d "$SCRATCH/sandbox-test.XXXXXX")
cleanup() {
        rm -rf "$T"
}
trap cleanup EXIT
chmod 0755 "$T"

me=$(id -un)
# The prefix that runs a command as the worker user $AS. setpriv and env
# exec, so the pid of a command started in the background is the pid of
# what it runs, as for the worker's own child.
worker_prefix() {
        W=()
        [ "$AS" = "$me" ] || W=(setpriv --reuid="$(id -u "$AS")" --regid="$(id -g "$AS")" --clear-groups
                                --reset-env -- env PATH=/usr/sbin:/usr/bin:/sbin:/bin)
}
as_worker() {
        "${W[@]}" "$@"
}

# Every ref and object file of the repository, to tell whether anything changed.
repo_state() {
        git -c safe.directory='*' -C "$REPO" for-each-ref
        find "$REPO/.git/objects" -type f | sort | xargs sha256sum
}

# A task's own repository, as the worker makes it (src/sandbox/git-util.c):
# git directory $STATE/git/ID borrowing $REPO's objects, branch BRANCH at
# main, worktree $STATE/worktrees/ID.
task_repo() {
        local id=$1 branch=$2 gd="$STATE/git/$1" wt="$STATE/worktrees/$1"

        mkdir -p "$gd" "$wt"
        git init -q --bare --template= -b "$branch" "$gd"
        printf '[core]\n\trepositoryformatversion = 0\n\tbare = false\n' >"$gd/config"
        echo "$REPO/.git/objects" >"$gd/objects/info/alternates"
        git --git-dir="$gd" update-ref "refs/heads/$branch" "$(git -C "$REPO" rev-parse main)"
        git --git-dir="$gd" update-ref refs/heads/main "$(git -C "$REPO" rev-parse main)"
        printf 'gitdir: %s\n' "$gd" >"$wt/.git"
        git --git-dir="$gd" --work-tree="$wt" read-tree -u --reset HEAD
}

# Sets up $T/$AS: a state directory (store file, the worker user's ~/.ssh, two
# tasks' worktrees, git directories and homes), a repository, the probe.
setup() {
        D=$T/$AS
        STATE=$D/state
        REPO=$D/repo
        WT1=$STATE/worktrees/task-1
        WT2=$STATE/worktrees/task-2
        G1=$STATE/git/task-1
        G2=$STATE/git/task-2
        H1=$STATE/homes/task-1
        H2=$STATE/homes/task-2
        mkdir -p "$STATE/.ssh" "$D/workerhome/.ssh" "$H1/.claude" "$H2/.claude" "$D/bin" "$D/extra"
        echo "SQLite format 3 -- the store" >"$STATE/makima.db"
        echo "-----BEGIN OPENSSH PRIVATE KEY-----" >"$STATE/.ssh/id_ed25519"
        echo "-----BEGIN OPENSSH PRIVATE KEY-----" >"$D/workerhome/.ssh/id_ed25519"
        echo '{"task": 1}' >"$H1/.claude/settings.json"
        echo '{"task": 2, "token": "secret"}' >"$H2/.claude/settings.json"
        echo "read-only extra" >"$D/extra/file"
        cp "$PROBE" "$D/bin/sandbox-probe"

        git init -q -b main "$REPO"
        echo hello >"$REPO/README"
        git -C "$REPO" add README
        git -C "$REPO" -c user.name=t -c user.email=t@example.invalid commit -q -m init
        task_repo task-1 makima/task-1
        task_repo task-2 makima/task-2
        echo "task 2's work" >"$WT2/secret-work"
        git --git-dir="$G2" --work-tree="$WT2" add secret-work
        git --git-dir="$G2" --work-tree="$WT2" -c user.name=t -c user.email=t@example.invalid commit -q -m "task 2's work"
        REPO_STATE=$(repo_state)

        printf '[Sandbox]\nReadOnlyPaths=%s\n' "$D/extra" >"$D/makima.conf"
        [ "$AS" = "$me" ] || chown -R "$AS:" "$D"
        # Where agents are a user of their own, the tasks' directories are as
        # the worker keeps them: the agents' group's, set-group-ID.
        AGENT_UID=$(id -u "$AS")
        if [ "$(id -u "$AS")" = 0 ] && id makima-agent >/dev/null 2>&1; then
                AGENT_UID=$(id -u makima-agent)
                chgrp -R makima-agent "$STATE/worktrees" "$STATE/git" "$STATE/homes"
                chmod -R g+rwX "$STATE/worktrees" "$STATE/git" "$STATE/homes"
                find "$STATE/worktrees" "$STATE/git" "$STATE/homes" -type d -exec chmod g+s,o-rwx {} +
        fi
}

sandbox_cmd() {
        C=("${W[@]}" env HOME="$D/workerhome" "$RUN" --config "$D/makima.conf" --state-dir "$STATE"
           --task-id 0f3c9a7e-1111-4222-8333-944455556666 --worktree "$WT1" --home "$H1" --git-dir "$G1")
}
sandbox() {
        sandbox_cmd
        "${C[@]}" "$@"
}

test_probe() {
        local marker=sandbox-probe-$$-$AS out status
        local -a scratch_checks=()

        # Where $D is under /tmp (a build directory there), bwrap creates its
        # parents in the sandbox's private /tmp, where the agent may write:
        # then only the check on the host below can tell.
        case "$D" in
        /tmp/* | /var/tmp/* | /run/*) ;;
        *) scratch_checks=(--not-writable "$D" --not-writable "$STATE" --not-writable "$STATE/worktrees"
                           --not-writable "$STATE/homes" --not-writable "$D/workerhome"
                           --not-writable "$REPO" --not-writable "$REPO/README") ;;
        esac

        touch "$D/stamp"
        set +e
        out=$(sandbox -- "$D/bin/sandbox-probe" --identity --create "$WT1/made-by-the-agent" --syscalls \
                --writable "$WT1" --writable "$H1" --writable "$G1" --writable "$G1/refs/heads" \
                --writable "$G1/objects" --writable /tmp --create "/tmp/$marker" \
                --not-writable / --not-writable /usr --not-writable /etc --not-writable /var \
                --not-writable /etc/ssl/private "${scratch_checks[@]}" \
                --not-writable "$D/extra" --not-writable "$D/extra/file" \
                --not-writable "$D/bin/sandbox-probe" \
                --not-writable "$G1/config" --not-writable "$G1/config.worktree" --not-writable "$G1/objects/info" \
                --not-writable "$G1/objects/info/alternates" --not-writable "$WT1/.git" \
                --not-writable "$REPO/.git/objects" --not-writable /proc/sys/kernel/hostname \
                --not-writable /proc/sys/kernel/ns_last_pid \
                --not-readable /root --not-readable /home --not-readable /etc/shadow \
                --not-readable /etc/ssl/private --not-readable /run/makima --not-readable /proc/keys \
                --not-readable "$STATE/makima.db" --not-readable "$STATE/.ssh" \
                --not-readable "$D/workerhome/.ssh" --not-readable "$HOME/.ssh" \
                --not-readable "$WT2" --not-readable "$G2" --not-readable "$H2" \
                --not-readable "$STATE/homes/task-2/.claude" --not-readable "$REPO/.git/refs" \
                --not-readable "$REPO/.git/config" --not-readable "$REPO/README" 2>&1)
        status=$?
        set -e
        echo "$out" | sed 's/^/    probe: /'
        if [ $status -eq 0 ] && ! echo "$out" | grep -q '^FAIL'; then
                pass "[$AS] the probe found the sandbox closed"
        else
                fail "[$AS] the probe reported $status failures"
        fi
        # The probe must have run all its checks, not stopped early.
        [ "$(echo "$out" | grep -c '^ok ')" -ge 64 ] || fail "[$AS] the probe ran only $(echo "$out" | grep -c '^ok ') checks"

        [ ! -e "/tmp/$marker" ] && pass "[$AS] /tmp in the sandbox is private" ||
                { rm -f "/tmp/$marker"; fail "[$AS] the sandbox's /tmp/$marker reached the host"; }
        # The agent is a user of its own where it can be (root: makima-agent),
        # never root on the host.
        owner=$(stat -c %u "$WT1/made-by-the-agent" 2>/dev/null || echo none)
        [ "$owner" = "$AGENT_UID" ] && [ "$owner" != 0 ] &&
                pass "[$AS] the agent is uid $owner on the host ($(id -nu "$owner"))" ||
                fail "[$AS] the agent's file belongs to $owner on the host, expected $AGENT_UID"
        rm -f "$WT1/made-by-the-agent"
        # Whatever the probe tried, on the host nothing changed outside task 1's
        # worktree, home and git directory.
        out=$(find "$D" -newer "$D/stamp" ! -path "$WT1" ! -path "$WT1/*" ! -path "$H1" ! -path "$H1/*" \
                ! -path "$G1" ! -path "$G1/*" ! -path "$D/stamp")
        [ -z "$out" ] && pass "[$AS] nothing changed on the host outside the worktree and home" ||
                fail "[$AS] changed on the host: $out"
}

# The filter also refuses every listed call to a caller that has the
# privilege (root, outside any namespace): so EPERM comes from the filter,
# not the kernel's own checks. And without the filter, the probe fails: the
# checks can tell.
test_filter_alone() {
        local n out

        set +e
        out=$("$RUN" --seccomp-only -- "$PROBE" --syscalls 2>&1)
        n=$?
        set -e
        [ $n -eq 0 ] && pass "the seccomp filter alone refuses every call, even to root" ||
                { echo "$out"; fail "the seccomp filter alone let $n calls through"; }

        set +e
        out=$("$PROBE" --syscalls 2>&1)
        n=$?
        set -e
        total=$(echo "$out" | grep -c -E '^(ok|FAIL) ')
        [ "$n" -eq "$total" ] && [ "$total" -ge 30 ] &&
                pass "unfiltered, root gets another answer than the filter's for all $total calls" ||
                { echo "$out"; fail "unfiltered, only $n of $total calls were answered otherwise"; }

        set +e
        out=$(sandbox --no-seccomp -- "$D/bin/sandbox-probe" --syscalls 2>&1)
        set -e
        for c in ptrace process_vm_readv unshare clone-newuser setns keyctl ioctl-TIOCSTI clone3; do
                echo "$out" | grep -q "^FAIL $c:" || fail "[$AS] without the filter, $c was still refused"
        done
        pass "[$AS] without the filter the probe notices"
}

test_git() {
        local out

        out=$(sandbox -- git -c user.name=agent -c user.email=agent@example.invalid \
                commit -q --allow-empty -m "from the sandbox" 2>&1) || fail "[$AS] commit in the sandbox: $out"
        out=$(git -c safe.directory='*' --git-dir="$G1" log -1 --format=%s makima/task-1) || true
        [ "$out" = "from the sandbox" ] && pass "[$AS] a commit from the sandbox lands on the task's own branch" ||
                fail "[$AS] makima/task-1 is at '$out'"
        out=$(sandbox -- git branch --show-current 2>&1) || true
        [ "$out" = makima/task-1 ] || fail "[$AS] git in the sandbox sees branch '$out'"

        # What the agent may do to its own repository stays there: moving
        # main, deleting objects (the repository's are not its own), another
        # task's branch is out of reach.
        sandbox -- git update-ref refs/heads/main HEAD 2>/dev/null || fail "[$AS] could not move its own main"
        for f in $(cd "$REPO/.git/objects" && find . -type f | head -n 3); do
                sandbox -- rm -f "$REPO/.git/objects/$f" 2>/dev/null || true
        done
        sandbox -- git show makima/task-2:secret-work >/dev/null 2>&1 && fail "[$AS] read task 2's branch"
        sandbox -- git cat-file -p "$(git -c safe.directory='*' --git-dir="$G2" rev-parse makima/task-2)" >/dev/null 2>&1 &&
                fail "[$AS] read task 2's commit"
        [ "$(repo_state)" = "$REPO_STATE" ] &&
                pass "[$AS] nothing the agent does reaches the repository's refs or objects, nor task 2" ||
                fail "[$AS] the repository changed: $(repo_state)"

        sandbox -- git config core.hooksPath "$WT1" 2>/dev/null && fail "[$AS] changed its repository's config"
        sandbox -- sh -c "echo '$REPO/.git/objects' >'$G1/objects/info/alternates'" 2>/dev/null &&
                fail "[$AS] changed what its repository borrows"
        sandbox -- sh -c "echo 'gitdir: $WT1/evil' >'$WT1/.git'" 2>/dev/null && fail "[$AS] redirected the worktree's .git"
        sandbox -- sh -c "mv '$WT1/.git' '$WT1/moved'" 2>/dev/null && fail "[$AS] moved the worktree's .git away"
        sandbox -- sh -c "mv '$G1/config' '$G1/config.old'" 2>/dev/null && fail "[$AS] moved its config away"
        pass "[$AS] the task's config, borrowed objects and .git cannot be changed from inside"
}

# A program outside the system directories: an npm-style package whose
# script asks env for an interpreter that lives beside it.
test_npm_program() {
        local P=$D/prefix pkg out

        pkg=$P/lib/node_modules/@acme/agent
        mkdir -p "$pkg/lib" "$P/bin"
        printf '#!/bin/sh\nexec /bin/sh "$@"\n' >"$P/bin/fakenode"
        printf '#!/usr/bin/env fakenode\ncat "$(dirname "$(realpath "$0")")/lib/data"\n' >"$pkg/cli.sh"
        echo "package data" >"$pkg/lib/data"
        chmod +x "$P/bin/fakenode" "$pkg/cli.sh"
        ln -s ../lib/node_modules/@acme/agent/cli.sh "$P/bin/acme-agent"
        echo "not for the agent" >"$P/lib/other"
        [ "$AS" = "$me" ] || chown -R "$AS:" "$P"

        out=$(sandbox -- "$P/bin/acme-agent" 2>&1) || true
        [ "$out" = "package data" ] && pass "[$AS] an npm package's program and its interpreter run" ||
                fail "[$AS] npm-style program: $out"
        sandbox -- cat "$P/lib/other" >/dev/null 2>&1 && fail "[$AS] more than the package was bound"
        return 0
}

# Cancelling a task kills bwrap (or the worker dies): nothing started in the
# sandbox may survive, whether it forked, double-forked or left the session.
test_cancel() {
        local how=$1 mark pid i n

        # A unique sleep length marks every process the sandbox starts.
        mark=$((86000 + RANDOM % 10000)).$$$RANDOM
        script="sleep $mark & (sleep $mark &); setsid sh -c 'sleep $mark & sleep $mark' &
                sh -c '(setsid sleep $mark &) &'; sleep $mark"
        sandbox_cmd
        if [ "$how" = worker-dies ]; then
                # The "worker" is a shell that starts the sandbox and waits.
                (exec "${W[@]}" sh -c '"$@" & wait' sh "${C[@]:${#W[@]}}" -- sh -c "$script") &
        else
                (exec "${C[@]}" -- sh -c "$script") &
        fi
        pid=$!

        n=0
        for i in $(seq 100); do
                n=$(pgrep -c -x -f "sleep $mark" || true)
                [ "$n" -ge 6 ] && break
                sleep 0.1
        done
        [ "$n" -ge 6 ] || fail "[$AS] only $n of the 6 sandboxed processes started"

        if [ "$how" = worker-dies ]; then
                kill -KILL "$pid"
        else
                kill -TERM "$pid"
        fi
        # Not one process whose command line names the mark: no sleep, no
        # shell, no bwrap.
        for i in $(seq 50); do
                n=$(pgrep -c -f "$mark" || true)
                [ "$n" -eq 0 ] && break
                sleep 0.1
        done
        wait "$pid" 2>/dev/null || true
        if [ "$n" -eq 0 ]; then
                pass "[$AS] no process outlives the task ($how)"
        else
                pgrep -a -f "$mark" || true
                pkill -KILL -f "$mark" || true
                fail "[$AS] $n processes outlived the task ($how)"
        fi
}

test_bwrap_missing() {
        local out

        out=$(sandbox --bwrap /nonexistent/bwrap -- /bin/true 2>&1) && fail "ran without bwrap"
        echo "$out" | grep -qF "bwrap not found: install bubblewrap or set [Sandbox] Enabled=no" ||
                fail "--bwrap /nonexistent/bwrap said: $out"
        out=$(as_worker env PATH=/nonexistent "$RUN" --config "$D/makima.conf" --state-dir "$STATE" \
                --task-id x --worktree "$WT1" --home "$H1" -- /bin/true 2>&1) && fail "ran with no bwrap in \$PATH"
        echo "$out" | grep -qF "bwrap not found: install bubblewrap or set [Sandbox] Enabled=no" &&
                pass "[$AS] a missing bwrap is a clear error" || fail "no bwrap in \$PATH said: $out"
}

test_disabled() {
        local out

        printf '[Sandbox]\nEnabled=no\n' >"$D/disabled.conf"
        # JOURNAL_STREAM: log as to the journal, with the priority in front.
        out=$(as_worker env JOURNAL_STREAM=8:8 "$RUN" --config "$D/disabled.conf" --state-dir "$STATE" \
                --task-id task-1 --worktree "$WT1" --home "$H1" -- \
                sh -c 'pwd; echo "HOME=$HOME"; cat "$1"' sh "$STATE/makima.db" 2>&1) || true
        echo "$out" | grep -q '^<4>.*Enabled=no: task task-1 runs unsandboxed' ||
                fail "[$AS] Enabled=no logged no warning: $out"
        echo "$out" | grep -qx "$WT1" && echo "$out" | grep -qx "HOME=$H1" &&
                echo "$out" | grep -q "the store" &&
                pass "[$AS] Enabled=no runs the command unsandboxed, in the worktree, with a warning" ||
                fail "[$AS] Enabled=no: $out"
}

test_config() {
        local out

        printf '[Sandbox]\nNetwork=no\n' >"$D/nonet.conf"
        out=$(as_worker "$RUN" --config "$D/nonet.conf" --state-dir "$STATE" --task-id x \
                --worktree "$WT1" --home "$H1" -- sh -c 'grep -c ":" /proc/net/dev' 2>&1) || true
        [ "$out" = 1 ] && pass "[$AS] Network=no leaves only lo" || fail "[$AS] Network=no: $out interfaces"
        out=$(sandbox -- sh -c 'grep -c ":" /proc/net/dev' 2>&1) || true
        [ "$out" -gt 1 ] 2>/dev/null || fail "[$AS] Network=yes: only $out interfaces"

        out=$(sandbox -- cat "$D/extra/file" 2>&1) || true
        [ "$out" = "read-only extra" ] && pass "[$AS] ReadOnlyPaths= is readable" || fail "[$AS] ReadOnlyPaths=: $out"

        for bad in "$STATE" "$STATE/worktrees/task-2" "$STATE/homes" "$D" /; do
                printf '[Sandbox]\nReadOnlyPaths=%s\n' "$bad" >"$D/bad.conf"
                out=$(as_worker "$RUN" --config "$D/bad.conf" --state-dir "$STATE" --task-id x \
                        --worktree "$WT1" --home "$H1" -- true 2>&1) && fail "[$AS] ReadOnlyPaths=$bad was accepted"
                echo "$out" | grep -q "would expose" || fail "[$AS] ReadOnlyPaths=$bad: $out"
        done
        printf '[Sandbox]\nReadWritePaths=%s\n' "$STATE/makima.db" >"$D/bad.conf"
        as_worker "$RUN" --config "$D/bad.conf" --state-dir "$STATE" --task-id x \
                --worktree "$WT1" --home "$H1" -- true 2>/dev/null && fail "[$AS] ReadWritePaths= the store was accepted"
        pass "[$AS] paths that would expose the state directory or another task are refused"
}

run_all() {
        AS=$1
        worker_prefix
        setup
        test_probe
        test_git
        test_npm_program
        # (bash's "Killed" notices go to stderr.)
        test_cancel bwrap-killed 2>/dev/null
        test_cancel worker-dies 2>/dev/null
        test_bwrap_missing
        test_disabled
        test_config
}

run_all "$me"
if [ "$(id -u)" = 0 ]; then
        test_filter_alone
        # The worker's real life: an unprivileged user (with user namespaces).
        id makima >/dev/null 2>&1 && worker=makima || worker=nobody
        run_all "$worker"
fi

echo "$failures failures"
[ "$failures" -eq 0 ]
