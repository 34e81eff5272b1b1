#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The sandbox attacked as a hostile agent would attack it, through the real
# makima-api, the real makima-worker and the real bubblewrap sandbox. The
# agent is tests/fake-agent, whose "fake: sh" lines are its Bash tool: the
# attacks are shell scripts committed to the repository the tasks work on.
# Each section is a hole that was once open (docs/SECURITY.md lists them):
#
#   1. git run by the worker and the API on what the agent wrote: filter
#      drivers and fsmonitor in a nested repository, in the task's own
#      config, config.worktree, info/attributes and a forged commondir
#   2. the user's repository and other tasks' branches: refs moved, objects
#      deleted, another task's branch read
#   3. owners: a path not granted, a symbolic link out of a granted one, a
#      granted repository owned by someone else
#   4. the agent's identity: never host root; /proc/sys, /etc/shadow,
#      makima's configuration and state out of reach
#   5. cancel at every moment of a sandbox's start, and a worker SIGKILLed:
#      nothing the agent started survives
#   6. limits: TasksMax=, MemoryMax=, CPUWeight= in the agent's cgroup
#  11. /proc/keys and personality()
#
# Run as root (as CI does) the worker switches to makima-agent, as it does
# under `makima up` as root; as another user the agent runs as that user and
# the checks that need root are skipped.
#
# Usage: test-escape.sh makima-api makima-worker fake-agent SYSCONFDIR
set -euo pipefail

# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

WORKER_BIN=${2:?usage: $0 makima-api makima-worker fake-agent sysconfdir}
FAKE_AGENT=$(realpath "${3:?usage: $0 makima-api makima-worker fake-agent sysconfdir}")
SYSCONFDIR=${4:?usage: $0 makima-api makima-worker fake-agent sysconfdir}
lib_init "$1"

for tool in bwrap git dbus-daemon setarch setsid; do
        command -v "$tool" >/dev/null || { say "$tool is missing, skipping"; exit 77; }
done

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1}
STATE="$TMP/state"
REPO="$TMP/repo"
MARKS="$TMP/marks"              # what a command run outside a sandbox would leave
UNIQ=$((RANDOM % 9000 + 1000))$((RANDOM % 9000 + 1000))   # in the agents' sleeps, to find them
ROOT=0
[[ $(id -u) == 0 ]] && ROOT=1
AGENT_UID=$(id -u)
((ROOT)) && AGENT_UID=$(id -u makima-agent)
CONF_CREATED=''
WORKER_PID=''
mkdir -p "$MARKS"

cleanup_escape() {
        local rc=$?

        [[ -z "$CONF_CREATED" ]] || rm -rf "$CONF_CREATED"
        [[ -z "${CONF_FILE:-}" || "$CONF_FILE" != "$SYSCONFDIR"/* ]] || rm -f "$CONF_FILE"
        # Whatever a failed run left of the agents' processes.
        pkill -KILL -f "sleep $UNIQ" 2>/dev/null || true
        lib_cleanup "$rc"
}
trap cleanup_escape EXIT

# ---- the configuration, a bus, makima-api, one worker ----

# As root the configuration lives where the build's sysconfdir says (under
# /usr/local for a /usr/local prefix, inside the sandbox's read-only /usr):
# it must be hidden there as much as in /etc.
CONF_FILE="$TMP/makima.conf"
if ((ROOT)) && [[ "$SYSCONFDIR" == /usr/* || "$SYSCONFDIR" == /etc* || "$SYSCONFDIR" == /opt/* ]]; then
        if [[ ! -d "$SYSCONFDIR/makima" ]]; then
                mkdir -p "$SYSCONFDIR/makima"
                CONF_CREATED="$SYSCONFDIR/makima"
        fi
        CONF_FILE="$SYSCONFDIR/makima/escape-test-$$.conf"
fi
write_config
cat >>"$TMP/makima.conf" <<EOF
# ApiKey=sk-ant-escape-test-secret-$UNIQ

[Worker]
MaxConcurrentTasks=4
PollIntervalSec=2
LeaseSec=6

[Agent]
Command=$FAKE_AGENT
EOF
if [[ "$CONF_FILE" != "$TMP/makima.conf" ]]; then
        install -m 0600 "$TMP/makima.conf" "$CONF_FILE"
        rm "$TMP/makima.conf"
        ln -s "$CONF_FILE" "$TMP/makima.conf"
fi
chmod 0600 "$CONF_FILE"

# The daemons' scratch files (git's snapshots) go here, where the test can
# see that none is left behind.
SCRATCH="$TMP/scratch"
mkdir -m 0755 "$SCRATCH"
export TMPDIR=$SCRATCH
# An fd the worker inherits from whoever starts it, on a file only root may
# read: no agent may get it.
printf 'inherited-secret-%s\n' "$UNIQ" >"$TMP/inherited"
chmod 0600 "$TMP/inherited"
exec 7<"$TMP/inherited"

bus_start || exit 77
api_start

worker_start() {
        local log="$TMP/worker.log" lines=0

        [[ -f "$log" ]] && lines=$(wc -l <"$log")
        "$WORKER_BIN" --config "$CONF_FILE" --state-dir "$STATE" --instance 1 >>"$log" 2>&1 &
        WORKER_PID=$!
        EXTRA_PIDS="${EXTRA_PIDS:-} $WORKER_PID"
        for _ in $(seq 200); do
                tail -n +"$((lines + 1))" "$log" | grep -q "Worker .*: up to" && return 0
                kill -0 "$WORKER_PID" 2>/dev/null || fail "makima-worker exited during start-up"
                sleep 0.05
        done
        fail "makima-worker did not start"
}
worker_start

# ---- helpers ----

# The repository the tasks work on, with the attack scripts in it.
git init -q -b main "$REPO"
mkdir "$REPO/attack"
echo "a repository for makima's escape test" >"$REPO/README"

# out ID NAME: what the agent's script NAME wrote into the task's worktree.
out() {
        cat "$STATE/worktrees/$1/$2.out" 2>/dev/null || true
}

# survivors PATTERN: pids of the agents' processes whose command line has it.
survivors() {
        pgrep -f "sleep $UNIQ$1" || true
}

# wait_gone PATTERN [SECONDS]: until no process matches (default 10 s).
wait_gone() {
        local deadline=$((SECONDS + ${2:-10}))

        while ((SECONDS < deadline)); do
                [[ -z "$(survivors "$1")" ]] && return 0
                sleep 0.1
        done
        fail "agent processes survived: $(for p in $(survivors "$1"); do tr '\0' ' ' <"/proc/$p/cmdline"; echo; done)"
}

# wait_final ID [SECONDS]: until the task has ended, whichever way (default 30 s).
wait_final() {
        local deadline=$((SECONDS + ${2:-30})) got=''

        while ((SECONDS < deadline)); do
                get_task "$1"
                got=$(jqr .status)
                [[ "$got" == @(done|failed|cancelled|iteration_limit_reached) ]] && return 0
                sleep 0.1
        done
        fail "task $1 did not end: $BODY"
}

# task_cgroups ID: the task's cgroup directories, one per hierarchy.
task_cgroups() {
        find /sys/fs/cgroup -type d -name "task-$1" 2>/dev/null || true
}

# Whether this machine lets us make cgroups at all (then the worker must, too).
CGROUPS=0
probe=$(mktemp -u /sys/fs/cgroup/pids/makima-escape-probe.XXXXXX 2>/dev/null || true)
if [[ -n "$probe" ]] && mkdir "$probe" 2>/dev/null; then
        rmdir "$probe"
        CGROUPS=1
elif [[ -w /sys/fs/cgroup/cgroup.subtree_control ]] && grep -qw pids /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
        CGROUPS=1
fi
((CGROUPS)) || say "no cgroup can be made here: the limit checks are skipped"

# ---- 1. git on what the agent wrote runs in a sandbox, never on the host ----
say "1. filters, fsmonitor, config.worktree, commondir"

cat >"$REPO/attack/filters.sh" <<EOF
set -x
M=$MARKS
# A nested repository whose clean and smudge filters and fsmonitor would run
# wherever git looked at it with its config.
git init -q nested
git -C nested config filter.x.clean "touch \$M/nested-clean; cat"
git -C nested config filter.x.smudge "touch \$M/nested-smudge; cat"
git -C nested config core.fsmonitor "touch \$M/nested-fsmonitor; echo"
git -C nested config diff.x.textconv "touch \$M/nested-textconv; cat"
echo '* filter=x diff=x' >nested/.gitattributes
echo one >nested/file
git -C nested add -A
git -C nested -c user.name=a -c user.email=a@example.invalid commit -q -m one
echo two >>nested/file
# The task's own repository: its config, the worktree config git reads with
# extensions.worktreeConfig, info/attributes, and a commondir that would
# send git to a config of the agent's making.
echo '* filter=x diff=x' >.gitattributes
echo three >top.txt
G=\$(git rev-parse --absolute-git-dir)
git config filter.x.clean "touch \$M/top-clean; cat" && echo WROTE-CONFIG
git config diff.x.textconv "touch \$M/top-textconv; cat"
git config core.fsmonitor "touch \$M/top-fsmonitor; echo"
git config extensions.worktreeConfig true && echo WROTE-EXTENSION
printf '[filter "x"]\n\tclean = touch %s/worktree-clean; cat\n' "\$M" >"\$G/config.worktree" &&
        echo WROTE-CONFIG-WORKTREE
echo '* filter=x' >"\$G/info/attributes" && echo WROTE-INFO-ATTRIBUTES
touch "\$M/from-inside" && echo WROTE-MARKS
true
EOF
cat >"$REPO/attack/commondir.sh" <<EOF
set -x
M=$MARKS
G=\$(git rev-parse --absolute-git-dir)
mkdir -p evil/refs evil/objects
printf '[core]\n\trepositoryformatversion = 0\n[filter "x"]\n\tclean = touch %s/commondir-clean; cat\n' "\$M" >evil/config
echo '* filter=x' >.gitattributes
echo "\$PWD/evil" >"\$G/commondir" && echo WROTE-COMMONDIR
echo changed >>README
true
EOF

cat >"$REPO/attack/refs.sh" <<'EOF'
set -x
# The task's own refs are its own; the user's repository and other tasks'
# branches must stay out of reach.
C=$(git rev-parse --path-format=absolute --git-common-dir)
git -c user.name=a -c user.email=a@example.invalid commit -q --allow-empty -m evil
git update-ref refs/heads/main HEAD
git update-ref -d refs/heads/main
git update-ref refs/heads/evil HEAD
for a in $(cat "$C/objects/info/alternates"); do
        echo "ALTERNATE $a"
        find "$a" -type f -name '[0-9a-f]*' -exec rm -f {} + 2>&1 | head -n 3
        rm -rf "$a/pack" "$a/info" 2>&1 | head -n 3
        touch "$a/evil" && echo WROTE-ALTERNATE
        repo=${a%/objects}
        git --git-dir="$repo" update-ref refs/heads/main HEAD && echo MOVED-USER-MAIN
        git --git-dir="$repo" update-ref -d refs/heads/main && echo DELETED-USER-MAIN
        ls "$repo/refs/heads"
done
git show "makima/$1:secret.txt"
git log --all --oneline
git cat-file --batch-all-objects --batch-check
git fetch -q "$2/git/$3" "makima/$1" 2>&1; git show FETCH_HEAD:secret.txt
cat "$2/git/$3/HEAD" "$2/worktrees/$3/secret.txt"
true
EOF

cat >"$REPO/attack/host.sh" <<EOF
set -x
id -u; id -g
cat /etc/shadow && echo READ-SHADOW
v=\$(cat /proc/sys/kernel/printk_ratelimit)
echo "\$v" >/proc/sys/kernel/printk_ratelimit && echo WROTE-SYSCTL
# Only the paths bwrap made for the task's own directories.
echo "STATE-HOLDS \$(ls -A $STATE | tr '\n' ' ')"
for d in git worktrees homes; do echo "\$d-HOLDS \$(ls -A $STATE/\$d | tr '\n' ' ')"; done
cat $CONF_FILE && echo SAW-CONF
cat $TMP/makima.db >/dev/null && echo SAW-STORE
cat $SYSCONFDIR/makima/escape-test-$$.conf && echo SAW-SYSCONF
echo KEYS-BEGIN; cat /proc/keys; echo KEYS-END
setarch -R true && echo PERSONALITY-ADDR-NO-RANDOMIZE
setarch --read-implies-exec true && echo PERSONALITY-READ-IMPLIES-EXEC
setarch "\$(uname -m)" true && echo PERSONALITY-LINUX
cat <&7 && echo READ-INHERITED-FD
ls -l /proc/self/fd
python3 -c 'import socket; socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)' && echo OPENED-VSOCK
true
EOF
git -C "$REPO" add -A
git -C "$REPO" -c user.name=test -c user.email=test@example.invalid commit -q -m "the attacks"
# Alice's copy, made before the repository gets its filters (git here runs
# on the host, and would run them).
ALICE_REPO="$TMP/alice-repo"
git clone -q "$REPO" "$ALICE_REPO"
# The repository's own config names filters too: the worker checks out the
# task's worktree without them.
git -C "$REPO" config filter.x.smudge "touch $MARKS/repo-smudge; cat"
git -C "$REPO" config filter.x.clean "touch $MARKS/repo-clean; cat"
echo '* filter=x' >"$REPO/.git/info/attributes"
REFS_BEFORE=$(git -C "$REPO" for-each-ref)
OBJECTS_BEFORE=$(git -C "$REPO" count-objects -v)

# Two iterations of the loop: the worker looks at the worktree after each.
F=$(create_task $'Attack through git.\nfake: sh sh attack/filters.sh >filters.out 2>&1' \
        '.autonomous_loop = true | .max_iterations = 2')
wait_status "$F" iteration_limit_reached 60
req admin GET "/api/v1/tasks/$F/diff"
expect_status 200 "the diff of $F"
grep -q '^+three' <<<"$BODY" || fail "the diff lacks the agent's change: $BODY"
C=$(create_task $'Attack through commondir.\nfake: sh sh attack/commondir.sh >commondir.out 2>&1' \
        '.autonomous_loop = true | .max_iterations = 2')
wait_final "$C" 60
req admin GET "/api/v1/tasks/$C/diff"
ls -A "$MARKS" | grep -q . && fail "a command the agent planted ran outside a sandbox: $(ls "$MARKS")"
grep -q WROTE-MARKS <<<"$(out "$F" filters)" && fail "the agent could write to the host's $MARKS"
for what in WROTE-CONFIG WROTE-EXTENSION WROTE-INFO-ATTRIBUTES; do
        ! grep -qx "$what" <<<"$(out "$F" filters)" || fail "the agent could do $what: $(out "$F" filters)"
done
git config -f "$STATE/git/$F/config" --get-regexp 'filter|fsmonitor|extensions|textconv' &&
        fail "the task's git config has what the agent put there"
say "1. passed: nothing ran outside a sandbox"

# ---- 2. the user's repository and other tasks' branches ----
say "2. refs, objects and other tasks' branches"

SECRET="alice-secret-$UNIQ"
A=$(create_task "A task with a secret.
fake: write secret.txt $SECRET
fake: commit the secret")
wait_status "$A" done 30
git --git-dir="$STATE/git/$A" show "makima/${A:0:8}:secret.txt" | grep -q "$SECRET" ||
        fail "task $A's branch lacks its commit"
B=$(create_task "Attack the repository.
fake: sh sh attack/refs.sh ${A:0:8} $STATE $A >refs.out 2>&1")
wait_status "$B" done 30
grep -q "ALTERNATE " <<<"$(out "$B" refs)" || fail "the attack did not find the repository's objects: $(out "$B" refs)"
! grep -q "$SECRET" <<<"$(out "$B" refs)" || fail "task $B read task $A's work: $(out "$B" refs)"
for what in WROTE-ALTERNATE MOVED-USER-MAIN DELETED-USER-MAIN; do
        ! grep -qx "$what" <<<"$(out "$B" refs)" || fail "the agent could do $what: $(out "$B" refs)"
done
[[ "$(git -C "$REPO" for-each-ref)" == "$REFS_BEFORE" ]] ||
        fail "the user's refs changed: $(git -C "$REPO" for-each-ref)"
[[ "$(git -C "$REPO" count-objects -v)" == "$OBJECTS_BEFORE" ]] || fail "the user's objects changed"
git -C "$REPO" fsck --strict --no-dangling >/dev/null 2>&1 || fail "the user's repository is broken: $(git -C "$REPO" fsck 2>&1)"
git --git-dir="$STATE/git/$A" show "makima/${A:0:8}:secret.txt" | grep -q "$SECRET" ||
        fail "task $B's attack broke task $A's branch"
git --git-dir="$STATE/git/$A" fsck --no-dangling >/dev/null 2>&1 || fail "task $A's repository is broken"
say "2. passed: the repository and task $A are untouched, its work unseen"

# ---- 2b. the task's git directory: nothing in it leads the worker, the API
# or the next sandbox anywhere ----
say "2b. objects/ renamed, objects/info replaced by links, FIFOs"

# The agent may write in its git directory, but objects/ and objects/info
# (whose alternates list the worker and makima-api read, and the next
# sandbox binds) are neither its to rename nor to replace.
cat >"$REPO/attack/gitdir.sh" <<EOF
set -x
G=\$(git rev-parse --absolute-git-dir)
mv "\$G/objects" "\$G/objects.old" && echo RENAMED-OBJECTS
mv "\$G/objects/info" "\$G/objects/info.old" && echo RENAMED-INFO
rm -rf "\$G/objects/info" && echo REMOVED-INFO
ln -s ../../../worktrees "\$G/objects/info2"
mkfifo "\$G/objects/info/alternates" && echo MADE-FIFO
echo "$MARKS" >"\$G/objects/info/alternates" && echo WROTE-ALTERNATES
true
EOF
git -C "$REPO" -c filter.x.clean=cat add attack/gitdir.sh
git -C "$REPO" -c filter.x.clean=cat -c user.name=test -c user.email=test@example.invalid commit -q -m "the git directory attack"
R=$(create_task $'Attack the git directory.\nfake: sh sh attack/gitdir.sh >gitdir.out 2>&1' \
        '.autonomous_loop = true | .max_iterations = 1')
wait_status "$R" iteration_limit_reached 60
for what in RENAMED-OBJECTS RENAMED-INFO REMOVED-INFO MADE-FIFO WROTE-ALTERNATES; do
        ! grep -qx "$what" <<<"$(out "$R" gitdir)" || fail "the agent could do $what: $(out "$R" gitdir)"
done
G="$STATE/git/$R"
[[ -d "$G/objects/info" && ! -L "$G/objects/info" && -f "$G/objects/info/alternates" ]] ||
        fail "the task's objects/info is not what the worker made: $(ls -la "$G/objects")"
grep -qx "$(realpath "$REPO/.git/objects")" "$G/objects/info/alternates" ||
        fail "the task's alternates changed: $(cat "$G/objects/info/alternates")"
# A repository tampered with before these protections (or by anyone but
# the agent): the worker, resuming the task, follows nothing and refuses.
mv "$G/objects/info" "$G/objects/info.real"
ln -s "$MARKS" "$G/objects/info"
req admin POST "/api/v1/tasks/$R/resume" '{"max_iterations":2}'
[[ "$STATUS" == 20[02] ]] || fail "resume $R: $STATUS $BODY"
wait_status "$R" failed 60
expect_json '.error | test("objects/info.*is not the directory makima made")' true
ls -A "$MARKS" | grep -q . && fail "the worker wrote through a link in the task's git directory: $(ls "$MARKS")"
req admin GET "/api/v1/tasks/$R/diff"
expect_error 409 diff_failed "the diff of a tampered repository"
rm "$G/objects/info"
mv "$G/objects/info.real" "$G/objects/info"
mv "$G/objects/info/alternates" "$G/objects/info/alternates.real"
mkfifo "$G/objects/info/alternates"
# makima-api must not wait on it: the diff is refused, health answers.
req admin GET "/api/v1/tasks/$R/diff"
expect_error 409 diff_failed "the diff with a FIFO for alternates"
req admin GET /api/v1/health
expect_status 200 "health after the FIFO"
rm "$G/objects/info/alternates"
mv "$G/objects/info/alternates.real" "$G/objects/info/alternates"

# A FIFO in the worktree holds git (the fingerprint after an iteration, a
# diff): neither the worker's other tasks, nor this one's cancel, nor
# makima-api wait for it.
FF=$(create_task $'Hold git.\nfake: sh mkfifo .gitignore' '.autonomous_loop = true | .max_iterations = 3')
for _ in $(seq 200); do
        [[ -p "$STATE/worktrees/$FF/.gitignore" ]] && break
        sleep 0.1
done
[[ -p "$STATE/worktrees/$FF/.gitignore" ]] || fail "the agent made no FIFO"
curl -s --max-time 60 --unix-socket "$API_SOCK" -o "$TMP/fifo-diff.body" -w '%{http_code}' \
        "http://localhost/api/v1/tasks/$FF/diff" >"$TMP/fifo-diff.status" &
FIFO_DIFF=$!
EXTRA_PIDS="${EXTRA_PIDS:-} $FIFO_DIFF"
sleep 1
req admin GET /api/v1/health
expect_status 200 "health while a diff waits on a FIFO"
W2=$(create_task "Alongside.")
wait_status "$W2" done 30
req admin POST "/api/v1/tasks/$FF/cancel"
wait_status "$FF" cancelled 15
# A diff larger than the API sends is cut, never refused; git on a worktree
# of millions of short lines is bounded by the task's memory, not the API's.
BIG=$(create_task $'Write a lot.\nfake: sh seq 3000000 >big.txt')
wait_status "$BIG" done 60
req admin GET "/api/v1/tasks/$BIG/diff"
expect_status 200 "a diff over 16 MiB"
expect_header Makima-Diff-Truncated ': 1$'
(( ${#BODY} > 15000000 && ${#BODY} <= 16777216 )) || fail "the cut diff has ${#BODY} bytes"
LINES=$(create_task $'Short lines.\nfake: sh yes a | head -c 60000000 >lines.txt' '.memory_max = 67108864')
wait_status "$LINES" done 60
req admin GET "/api/v1/tasks/$LINES/diff"
expect_error 409 diff_failed "the diff of 30 million lines under MemoryMax=64M"
say "2b. 30 million lines under MemoryMax=64M: $(jqr .error.message)"
say "2b. passed"

# ---- 3. owners: only granted paths, resolved where the worker reads them ----
say "3. owners and grants"

req admin POST /api/v1/tokens '{"owner":"alice"}'
ALICE=$(jqr .token)
req admin POST /api/v1/tokens '{"owner":"bob"}'
BOB=$(jqr .token)
BOB_AREA="$TMP/bob-area"
mkdir "$BOB_AREA"
ln -s "$ALICE_REPO" "$BOB_AREA/alice"
if ((ROOT)); then
        # Somebody else's repository: granted, it must work all the same.
        chown -R nobody:nogroup "$ALICE_REPO"
fi
req admin POST /api/v1/repos "$(jq -nc --arg p "$ALICE_REPO" '{path: $p, owner: "alice"}')"
expect_status 201 "grant alice her repository"
req admin POST /api/v1/repos "$(jq -nc --arg p "$BOB_AREA" '{path: $p, owner: "bob"}')"
expect_status 201 "grant bob his directory"
for path in "$ALICE_REPO" "$TMP/no-such-repo" "$REPO"; do
        req "$BOB" POST /api/v1/tasks "$(jq -nc --arg r "$path" '{plan: "steal", repo: $r}')"
        expect_error 403 forbidden "bob naming $path"
        expect_message "^The repository $path is not granted to bob"
done
req "$BOB" POST /api/v1/tasks "$(jq -nc --arg r "file://$ALICE_REPO" '{plan: "steal", repo: $r}')"
expect_error 403 forbidden "bob naming a file:// URL"
# Below his grant by its spelling, in Alice's repository by where it leads:
# the worker resolves the path before it reads anything.
req "$BOB" POST /api/v1/tasks "$(jq -nc --arg r "$BOB_AREA/alice" '{plan: "fake: sh cat README >r.out", repo: $r}')"
expect_status 201 "bob's task through a symbolic link"
LINKED=$(jqr .id)
wait_status "$LINKED" failed 30
expect_json .error "the repository $BOB_AREA/alice is not granted to bob (makima repo grant)"
[[ ! -e "$STATE/worktrees/$LINKED" ]] || fail "the worker made a worktree from a path it refused"
req "$ALICE" POST /api/v1/tasks "$(jq -nc --arg r "$ALICE_REPO" \
        '{plan: "fake: write mine.txt alice was here\nfake: commit mine", repo: $r}')"
expect_status 201 "alice's task on her granted repository"
MINE=$(jqr .id)
wait_status "$MINE" done 30
git --git-dir="$STATE/git/$MINE" show "makima/${MINE:0:8}:mine.txt" | grep -q "alice was here" ||
        fail "alice's task on a repository of another user did not commit"
req "$ALICE" GET "/api/v1/tasks/$MINE/diff"
expect_status 200 "alice's diff"
grep -q '^+alice was here' <<<"$BODY" || fail "alice's diff: $BODY"
req "$BOB" GET "/api/v1/tasks/$MINE/diff"
expect_error 404 not_found "bob reading alice's diff"
# Bob may write in his granted directory: nothing he puts there reaches
# beyond it, neither alternates naming Alice's objects, nor a .git file
# leading to her git directory, nor a grant below a repository's top.
git init -q -b main "$BOB_AREA/borrowing"
git -C "$BOB_AREA/borrowing" -c user.name=b -c user.email=b@example.invalid commit -q --allow-empty -m bob
echo "$ALICE_REPO/.git/objects" >"$BOB_AREA/borrowing/.git/objects/info/alternates"
mkdir "$BOB_AREA/pointing"
echo "gitdir: $ALICE_REPO/.git" >"$BOB_AREA/pointing/.git"
git init -q -b main "$TMP/big"
git -C "$TMP/big" -c user.name=b -c user.email=b@example.invalid commit -q --allow-empty -m big
mkdir "$TMP/big/bob"
req admin POST /api/v1/repos "$(jq -nc --arg p "$TMP/big/bob" '{path: $p, owner: "bob"}')"
expect_status 201 "grant bob a directory inside a repository"
for path in "$BOB_AREA/borrowing" "$BOB_AREA/pointing" "$TMP/big/bob"; do
        req "$BOB" POST /api/v1/tasks "$(jq -nc --arg r "$path" '{plan: "fake: sh git log --all >log.out", repo: $r}')"
        expect_status 201 "bob's task on $path"
        id=$(jqr .id)
        wait_status "$id" failed 30
        # A grant inside a repository is no repository: git is not let up out of it.
        if [[ "$path" == "$TMP/big/bob" ]]; then
                expect_json '.error | test("is not a git repository")' true
        else
                expect_json '.error | test("reaches beyond what is granted to bob")' true
        fi
done
# Nothing out of a grant is even looked at: a .git file leading to a
# root-only file, to a root-only directory and to nothing at all gives one
# and the same answer, and a shallow file linked to a root-only file is not
# read (its first line would come back in git's complaint).
mkdir -m 0700 "$TMP/rootonly"
echo "TOPSECRET-$UNIQ" >"$TMP/rootonly/secret"
chmod 0600 "$TMP/rootonly/secret"
answers=()
for target in "$TMP/rootonly/secret" "$TMP/rootonly" "$TMP/rootonly/nothing-$UNIQ"; do
        rm -rf "$BOB_AREA/probe"
        mkdir "$BOB_AREA/probe"
        echo "gitdir: $target" >"$BOB_AREA/probe/.git"
        req "$BOB" POST /api/v1/tasks "$(jq -nc --arg r "$BOB_AREA/probe" '{plan: "p", repo: $r}')"
        id=$(jqr .id)
        wait_status "$id" failed 30
        answers+=("$(jqr .error)")
done
[[ "${answers[0]}" == "${answers[1]}" && "${answers[1]}" == "${answers[2]}" ]] ||
        fail "the answers tell paths apart: ${answers[*]}"
say "3. a .git file out of the grant, whatever is there: ${answers[0]}"
git init -q -b main "$BOB_AREA/shallow"
git -C "$BOB_AREA/shallow" -c user.name=b -c user.email=b@example.invalid commit -q --allow-empty -m bob
ln -s "$TMP/rootonly/secret" "$BOB_AREA/shallow/.git/shallow"
req "$BOB" POST /api/v1/tasks "$(jq -nc --arg r "$BOB_AREA/shallow" '{plan: "p", repo: $r}')"
id=$(jqr .id)
wait_status "$id" failed 30
! grep -q TOPSECRET <<<"$BODY" || fail "a root-only file was read for bob: $BODY"
# A FIFO in a granted repository holds no preparation.
git init -q -b main "$BOB_AREA/fifo"
git -C "$BOB_AREA/fifo" -c user.name=b -c user.email=b@example.invalid commit -q --allow-empty -m bob
mkfifo "$BOB_AREA/fifo/.git/objects/info/alternates"
req "$BOB" POST /api/v1/tasks "$(jq -nc --arg r "$BOB_AREA/fifo" '{plan: "p", repo: $r}')"
id=$(jqr .id)
wait_status "$id" failed 30

# A URL is cloned into the owner's cache, by the worker, and works as any
# repository: here an administrator's file:// URL, without a base branch.
U=$(create_task $'From a clone.\nfake: write u.txt cloned\nfake: commit u' ".repo = \"file://$REPO\"")
wait_status "$U" done 60
git --git-dir="$STATE/git/$U" show "makima/${U:0:8}:u.txt" | grep -q cloned || fail "the task on a clone did not commit"
say "3. passed"

# ---- 4 and 11. who the agent is, and what it may see ----
say "4. the agent's identity; /proc/sys, /etc/shadow, makima's files; /proc/keys, personality()"

H=$(create_task "Look around.
fake: sh sh attack/host.sh >host.out 2>&1
fake: sh setsid sleep ${UNIQ}4 >/dev/null 2>&1 &
fake: wait" '.cpu_weight = 50')
wait_file "$STATE/worktrees/$H/host.out" '^\+ true$' 30
for _ in $(seq 100); do [[ -n "$(survivors 4)" ]] && break; sleep 0.1; done
[[ -n "$(survivors 4)" ]] || fail "the agent's sleep did not start"
HOST_OUT=$(out "$H" host)
for what in READ-SHADOW WROTE-SYSCTL SAW-CONF SAW-STORE SAW-SYSCONF READ-INHERITED-FD OPENED-VSOCK \
            PERSONALITY-ADDR-NO-RANDOMIZE PERSONALITY-READ-IMPLIES-EXEC; do
        ! grep -qx "$what" <<<"$HOST_OUT" || fail "the agent could do $what: $HOST_OUT"
done
! grep -q "sk-ant-escape-test-secret" <<<"$HOST_OUT" || fail "the agent read makima's configuration"
! grep -q "inherited-secret" <<<"$HOST_OUT" || fail "the agent read an fd the worker inherited"
grep -qx "PERSONALITY-LINUX" <<<"$HOST_OUT" || fail "personality(PER_LINUX) was refused: $HOST_OUT"
grep -qx "STATE-HOLDS git homes worktrees " <<<"$HOST_OUT" || fail "the agent saw the state directory: $HOST_OUT"
for d in git worktrees homes; do
        grep -qx "$d-HOLDS $H " <<<"$HOST_OUT" || fail "the agent saw more than its own in $STATE/$d: $HOST_OUT"
done
keys=$(sed -n '/^KEYS-BEGIN$/,/^KEYS-END$/p' <<<"$HOST_OUT" | grep -v '^KEYS-\|^+ \|^cat: /proc/keys: ' || true)
[[ -z "$keys" ]] || fail "/proc/keys lists keys inside the sandbox: $keys"
# Every process of the sandbox, bwrap included, as seen from the host.
pids=$(sandbox_pids "$H")
[[ -n "$pids" ]] || fail "no process of task $H found"
if ((CGROUPS)); then
        cgs=$(task_cgroups "$H")
        [[ -n "$cgs" ]] || fail "task $H has no cgroup"
        procs=$(for d in $cgs; do cat "$d/cgroup.procs"; done | sort -u)
        # Everything it started is in its cgroup.
        for pid in $pids $(survivors 4); do
                grep -qx "$pid" <<<"$procs" || fail "process $pid of task $H is not in its cgroup"
        done
        pids+=" $procs"
fi
for pid in $pids $(survivors 4); do
        uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status" 2>/dev/null) || continue
        [[ -z "$uids" || "$uids" == "$AGENT_UID $AGENT_UID $AGENT_UID $AGENT_UID" ]] ||
                fail "process $pid ($(cat "/proc/$pid/comm")) of task $H runs as uids $uids, not $AGENT_UID"
done
if ((ROOT)); then
        [[ "$(stat -c %U "$STATE/worktrees/$H/host.out")" == makima-agent ]] ||
                fail "the agent's file belongs to $(stat -c %U "$STATE/worktrees/$H/host.out"), not makima-agent"
fi
if ((CGROUPS)); then
        # The limits it was given, and the defaults.
        for d in $cgs; do
                [[ ! -f "$d/pids.max" ]] || [[ "$(cat "$d/pids.max")" == 512 ]] || fail "$d/pids.max: $(cat "$d/pids.max")"
                [[ ! -f "$d/memory.limit_in_bytes" ]] || [[ "$(cat "$d/memory.limit_in_bytes")" == $((4 << 30)) ]] ||
                        fail "$d/memory.limit_in_bytes: $(cat "$d/memory.limit_in_bytes")"
                [[ ! -f "$d/memory.max" ]] || [[ "$(cat "$d/memory.max")" == $((4 << 30)) ]] ||
                        fail "$d/memory.max: $(cat "$d/memory.max")"
                [[ ! -f "$d/cpu.shares" ]] || [[ "$(cat "$d/cpu.shares")" == 512 ]] || fail "$d/cpu.shares: $(cat "$d/cpu.shares")"
                [[ ! -f "$d/cpu.weight" ]] || [[ "$(cat "$d/cpu.weight")" == 50 ]] || fail "$d/cpu.weight: $(cat "$d/cpu.weight")"
        done
fi
req admin POST "/api/v1/tasks/$H/send" '{"message":"that is all"}'
wait_status "$H" done 30
wait_gone 4
if ((CGROUPS)); then
        [[ -z "$(task_cgroups "$H")" ]] || fail "task $H's cgroups are left: $(task_cgroups "$H")"
fi
say "4. passed: the agent ran as uid $AGENT_UID and saw none of it"

# ---- 5. cancelled at any moment, killed with its worker: nothing survives ----
say "5. cancel during start-up, 30 times; a worker SIGKILLed"

CANCELLED=()
for i in $(seq 30); do
        id=$(create_task "Hide.
fake: sh setsid sleep ${UNIQ}5 >/dev/null 2>&1 & sleep ${UNIQ}5 >/dev/null 2>&1")
        # 0 to 1 s after the task was made: before it is claimed, while its
        # repository is made, while bwrap sets up, once the agent runs.
        sleep "$(printf '0.%03d' $(( (i * 67) % 1000 )))"
        req admin POST "/api/v1/tasks/$id/cancel"
        [[ "$STATUS" == 20[02] ]] || fail "cancel $id: $STATUS $BODY"
        CANCELLED+=("$id")
done
for id in "${CANCELLED[@]}"; do
        wait_status "$id" cancelled 30
done
wait_gone 5
if ((CGROUPS)); then
        for id in "${CANCELLED[@]}"; do
                [[ -z "$(task_cgroups "$id")" ]] || fail "cancelled task $id's cgroups are left"
        done
fi

K=$(create_task "Outlive the worker.
fake: sh setsid sleep ${UNIQ}6 >/dev/null 2>&1 &
fake: wait")
wait_status "$K" running 30
for _ in $(seq 100); do [[ -n "$(survivors 6)" ]] && break; sleep 0.1; done
[[ -n "$(survivors 6)" ]] || fail "the agent's sleep did not start"
kill -KILL "$WORKER_PID"
wait "$WORKER_PID" 2>/dev/null || true
# A worker that dies takes its agents with it, or its successor kills them
# before it claims anything.
worker_start
wait_gone 6
# Its successor takes the task over once the lease (6 s) has run out, and
# finds the cancel waiting.
req admin POST "/api/v1/tasks/$K/cancel"
wait_status "$K" cancelled 60
wait_gone 6
if ((CGROUPS)); then
        [[ -z "$(task_cgroups "$K")" ]] || fail "the killed worker's task cgroups are left"
fi
say "5. passed"

# ---- 6. limits: an event and a clear error, not a hung worker ----
if ((CGROUPS)); then
        say "6. TasksMax=, MemoryMax="
        T=$(create_task "Fork bomb.
fake: sh for i in \$(seq 100); do sleep 2 & done; wait; echo forked
fake: exit 3" '.tasks_max = 20')
        wait_status "$T" failed 60
        expect_json .error "the agent hit its process limit: [Sandbox] TasksMax=20 ($(jqr '.error | capture("\\((?<n>[0-9]+) forks").n') forks refused)"
        events "$T"
        jq -e 'any(.events[]; .type == "limit" and .data.limit == "tasks" and .data.max == 20 and .data.refused > 0)' \
                <<<"$BODY" >/dev/null || fail "no limit event for task $T: $(jq -c '[.events[].type]' <<<"$BODY")"

        M=$(create_task $'Eat memory.\nfake: alloc 512' '.memory_max = 67108864')
        wait_status "$M" failed 60
        expect_json .error "the agent ran out of memory: [Sandbox] MemoryMax=67108864 bytes (the kernel killed $(jqr '.error | capture("killed (?<n>[0-9]+) of").n') of its processes)"
        events "$M"
        jq -e 'any(.events[]; .type == "limit" and .data.limit == "memory" and .data.max == 67108864 and .data.oom_kills > 0)' \
                <<<"$BODY" >/dev/null || fail "no memory limit event for task $M"
        # The worker goes on working.
        W=$(create_task "Still here.")
        wait_status "$W" done 30
        say "6. passed"
fi

# ---- the commondir attack's end, and the worker's own exit ----
kill -TERM "$WORKER_PID"
wait "$WORKER_PID" || fail "makima-worker exited with $? after SIGTERM"
WORKER_PID=''
api_stop
ls -A "$MARKS" | grep -q . && fail "a command the agent planted ran outside a sandbox: $(ls "$MARKS")"
# The diff that waited on the FIFO was stopped at its deadline; no
# snapshot of it, nor of anything else, is left.
wait "$FIFO_DIFF" || true
[[ "$(cat "$TMP/fifo-diff.status")" == 503 ]] ||
        fail "the diff on a FIFO answered $(cat "$TMP/fifo-diff.status"): $(cat "$TMP/fifo-diff.body")"
leftovers=$(find "$SCRATCH" -mindepth 1 -maxdepth 1)
[[ -z "$leftovers" ]] || fail "scratch directories are left: $leftovers"
say "all attacks failed"
