/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The completion gate an agent in the autonomous loop ends its output with:
 * finding the last <COMPLETION_GATE>…</COMPLETION_GATE> block in an
 * iteration's output, parsing it (YAML-like "key: value" lines or a JSON
 * object) into a CompletionGate, and its JSON and one-line forms. */
#pragma once

#include <json-c/json.h>

#include "macro.h"

#define COMPLETION_GATE_OPEN "<COMPLETION_GATE>"
#define COMPLETION_GATE_CLOSE "</COMPLETION_GATE>"
#define COMPLETION_GATE_SIZE_MAX (64U * 1024U)  /* bytes between the tags */
#define COMPLETION_GATE_BLOCKERS_MAX 100U

typedef struct CompletionGate {
        bool ready;
        char *reason;           /* NULL when absent, null or empty */
        char *progress;         /* likewise */
        char **blockers;        /* NULL-terminated, trimmed, none empty; never NULL from completion_gate_find() */
        json_object *extra;     /* an object with the other keys as written; never NULL from completion_gate_find() */
} CompletionGate;

/* Finds the last complete gate block in text[0..len) (the iteration's
 * assistant text and final result text, concatenated; NUL bytes outside the
 * block do not matter) and parses it.
 *
 * Returns 1 and the gate in *ret when the block parses; 0 when there is no
 * complete block; -EBADMSG when the last block is malformed; -ENOMEM.
 * *ret_error (may be NULL) is set on 0 and -EBADMSG: on 0 it is NULL, or
 * "unterminated <COMPLETION_GATE> block" when an opening tag had no closing
 * tag after it; on -EBADMSG it says why in words ("ready: expected
 * true/false, got 'maybe'", "invalid JSON: …", "missing 'ready'", YAML-like
 * errors with "line N: ", line 1 being the block's first line of text). On
 * 1 it is NULL.
 *
 * Finding the block:
 *  - Tags are matched exactly and case-sensitively; they may sit anywhere,
 *    inside a fenced code block too (agents often wrap the gate in one).
 *  - The block is the last opening tag that has a closing tag after it, up
 *    to that closing tag. Opening tags after it with no closing tag are
 *    ignored (agents name the tag in prose: "the <COMPLETION_GATE> above"),
 *    and so are closing tags with no opening tag before them.
 *  - Opening tags with no closing tag between them and the block's opening
 *    tag ("I end with a <COMPLETION_GATE> block: <COMPLETION_GATE>…") are
 *    prose too, except that when one of them starts a valid JSON object that
 *    runs up to the closing tag, the earliest such one is the block: its
 *    text contains the tag inside a JSON string. (A closing tag inside a
 *    JSON string cannot be told from a real one: it ends the block.)
 *  - A malformed last block is reported as malformed: an earlier block is
 *    stale (it describes an earlier state of the work) and is not used.
 *
 * The block's text (at most COMPLETION_GATE_SIZE_MAX bytes, valid UTF-8, no
 * NUL; a ``` fence line at its start and end is dropped) is:
 *  - a JSON object when it starts with '{': "ready" is a boolean (or a string
 *    or 0/1 as below), "reason" and "progress" strings (other values are kept
 *    as their JSON text), "blockers" an array (strings, other values as JSON
 *    text, nulls skipped), a single string, or null; other keys go to extra.
 *  - otherwise YAML-like lines, each indented freely, CRLF or LF:
 *      key: value        keys are [A-Za-z_][A-Za-z0-9_.-]*, matched
 *                        case-insensitively for the four known ones
 *      # comment         a whole line; '#' inside a value is text ("fixes
 *                        #12"), except after ready's value ("true # done")
 *      - item / * item   after "key:" with no value: a list
 *      other text        continues the previous plain (unquoted) value or
 *                        list item, joined with a space (a wrapped reason),
 *                        or is the value of a "key:" just before it
 *      --- / ...         YAML's document markers, ignored
 *    Values may be "double-quoted" (\" \\ \n \t \/ escapes; others are kept
 *    as written) or 'single-quoted' ('' is a quote); unquoted null and ~ are
 *    null. A list given for reason or progress is joined with "; ". A
 *    duplicate key is malformed.
 *
 * Values: ready is true/false, yes/no or 1/0, case-insensitively; a
 * missing ready is malformed (the agent must say whether it is done, so
 * silence does not read as "not ready" and loop on). blockers is a list, a
 * JSON array written on the line ("blockers: [\"a\", \"b\"]"), or a single
 * string; [], none, null and "" are no blockers; more than
 * COMPLETION_GATE_BLOCKERS_MAX is malformed. In the YAML-like form the other
 * keys are kept in extra as strings (lists as arrays of strings, null as
 * null). */
int completion_gate_find(const char *text, size_t len, CompletionGate **ret, char **ret_error);

CompletionGate *completion_gate_free(CompletionGate *g);
DEFINE_TRIVIAL_CLEANUP_FUNC(CompletionGate *, completion_gate_free);

/* {"ready":…,"reason":…|null,"progress":…|null,"blockers":[…], <extra keys>}:
 * the gate as an event payload. An extra key that collides with one of the
 * four is left out. Between the tags, the result's text parses back to the
 * same gate (when escaping leaves it within COMPLETION_GATE_SIZE_MAX). */
int completion_gate_to_json(const CompletionGate *g, json_object **ret);

/* One line for the journal and the task's status:
 * "ready: no — <reason's first line> (2 blockers: <first blocker>)", each
 * quoted text cut (UTF-8 safe) with "…" when anything was left out. */
int completion_gate_summary(const CompletionGate *g, char **ret);

/* The first blocker, or NULL when there is none. */
const char *completion_gate_first_blocker(const CompletionGate *g) _pure_;
