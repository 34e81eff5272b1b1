#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs the pinned Claude Code CLI from the npm registry into a fixed
# prefix, for the end-to-end tests that drive the real agent against
# tests/fake-anthropic. Idempotent: a prefix that already holds the pinned
# version is left alone. Prints the path of the claude binary on stdout.
#
# Usage: tests/install-claude.sh [PREFIX]   (default /opt/makima-test/claude,
#        or $MAKIMA_CLAUDE_PREFIX)
set -euo pipefail

# The version the tests were written against; its stream-json lines are the
# ones recorded in tests/fake-anthropic/README.md and the fuzz corpus.
CLAUDE_VERSION="${MAKIMA_CLAUDE_VERSION:-2.1.197}"
PREFIX="${1:-${MAKIMA_CLAUDE_PREFIX:-/opt/makima-test/claude}}"
BIN="$PREFIX/node_modules/.bin/claude"

installed_version() {
        local pkg="$PREFIX/node_modules/@anthropic-ai/claude-code/package.json"
        [ -f "$pkg" ] || return 0
        sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pkg" | head -n1
}

if [ "$(installed_version)" = "$CLAUDE_VERSION" ] && [ -x "$BIN" ] &&
   "$BIN" --version >/dev/null 2>&1; then
        echo "$BIN"
        exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
        echo "install-claude: npm missing, installing it with apt-get" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update >&2
        apt-get install -y --no-install-recommends nodejs npm >&2
fi

mkdir -p "$PREFIX"
# --no-save with no package.json of our own keeps the prefix to exactly this
# one package; the native binary comes in an optional per-platform package.
npm install --prefix "$PREFIX" --no-audit --no-fund --no-save \
        "@anthropic-ai/claude-code@$CLAUDE_VERSION" >&2

if [ ! -x "$BIN" ]; then
        echo "install-claude: $BIN missing after npm install" >&2
        exit 1
fi

# The CLI must start without the network: nothing below may leave the machine.
got="$(env -i PATH=/usr/bin:/bin HOME="$(mktemp -d)" DISABLE_TELEMETRY=1 \
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 "$BIN" --version)"
case "$got" in
        "$CLAUDE_VERSION"*) ;;
        *)
                echo "install-claude: $BIN --version says '$got', expected $CLAUDE_VERSION" >&2
                exit 1
                ;;
esac

echo "$BIN"
