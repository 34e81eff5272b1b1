/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Claude Code CLI's stream-json protocol: parsing one stdout line into a
 * typed event with the fields makima acts on, the one-line summary the
 * journal shows for it, and the lines makima writes to the CLI's stdin. The
 * shapes are those recorded in tests/fake-anthropic/README.md. */
#pragma once

#include <json-c/json.h>

#include "macro.h"

typedef enum StreamEventType {
        STREAM_EVENT_SYSTEM_INIT,       /* system/init: session_id, model, cwd */
        STREAM_EVENT_SYSTEM_OTHER,      /* system/api_retry, compact_boundary, status, … */
        STREAM_EVENT_ASSISTANT,
        STREAM_EVENT_USER,
        STREAM_EVENT_RESULT,            /* end of a turn */
        STREAM_EVENT_RATE_LIMIT,        /* rate_limit_event */
        STREAM_EVENT_CONTROL_REQUEST,   /* the CLI asks us something: answer it or it waits */
        STREAM_EVENT_CONTROL_RESPONSE,  /* the CLI answers our control_request */
        STREAM_EVENT_STREAM_EVENT,      /* raw API events, with --include-partial-messages */
        STREAM_EVENT_UNKNOWN,           /* a type this version does not know: not an error */
        _STREAM_EVENT_TYPE_MAX,
        _STREAM_EVENT_TYPE_INVALID = -EINVAL,
} StreamEventType;

const char *stream_event_type_to_string(StreamEventType t) _pure_;
StreamEventType stream_event_type_from_string(const char *s) _pure_;

/* Limits on what is copied out of a line; the full line stays in `json`. */
#define STREAM_JSON_TOOL_RESULT_MAX 4096        /* bytes of a tool_result's content */
#define STREAM_JSON_SUMMARY_TEXT_MAX 200        /* bytes of text quoted in a summary */
#define STREAM_JSON_TOOL_ARG_MAX 80             /* bytes of a tool summary's argument */

typedef struct StreamToolUse {
        const char *id;
        const char *name;
        char *input;            /* the input object as JSON text ("{}" when absent) */
        char *summary;          /* "Write hello.txt", "Bash ls -la", "Read src/x.c" */
} StreamToolUse;

typedef struct StreamToolResult {
        const char *tool_use_id;
        bool is_error;
        char *content;          /* text blocks joined, at most STREAM_JSON_TOOL_RESULT_MAX bytes */
} StreamToolResult;

typedef struct StreamUsage {
        uint64_t input_tokens;
        uint64_t output_tokens;
        uint64_t cache_creation_input_tokens;
        uint64_t cache_read_input_tokens;
} StreamUsage;

/* Every `const char *` points into `json` and lives as long as the event;
 * any field may be NULL (or 0) when the line lacks it or has the wrong type:
 * the CLI adds and drops fields between versions, and makima must keep
 * reading. */
typedef struct StreamEvent {
        StreamEventType type;
        json_object *json;              /* the whole line; take a reference to keep it */
        const char *type_string;        /* "type" as sent */
        const char *subtype;            /* of system, result, control_*; a stream_event's event type */
        const char *session_id;
        const char *uuid;

        /* system/init */
        const char *model;
        const char *cwd;
        const char *permission_mode;
        const char *claude_code_version;

        /* system/api_retry */
        unsigned retry_attempt;
        unsigned retry_max;
        unsigned error_status;          /* HTTP status that caused the retry */

        /* assistant (text also for user lines carrying text, e.g. "[Request interrupted by user]") */
        char *text;                     /* text blocks joined with "\n" */
        char *thinking;                 /* thinking blocks joined with "\n" */
        StreamToolUse *tool_uses;
        size_t n_tool_uses;
        const char *error;              /* assistant "error": "authentication_failed", "rate_limit", …;
                                         * system/api_retry "error"; control_response error message */
        const char *parent_tool_use_id; /* set on a subagent's messages */

        /* user */
        StreamToolResult *tool_results;
        size_t n_tool_results;

        /* result */
        bool is_error;                  /* test this, not subtype: API failures come as "success" */
        const char *result;
        unsigned num_turns;
        uint64_t duration_ms;
        double total_cost_usd;          /* cumulative over this CLI process, not the session */
        unsigned api_error_status;      /* 0 when null */
        const char *terminal_reason;
        const char *stop_reason;
        size_t n_permission_denials;
        StreamUsage usage;

        /* rate_limit_event */
        const char *status;             /* allowed, allowed_warning, rejected */
        uint64_t resets_at;             /* epoch seconds, 0 if not given */
        const char *rate_limit_type;

        /* control_request / control_response */
        const char *request_id;
        const char *tool_name;          /* can_use_tool */
} StreamEvent;

StreamEvent *stream_event_free(StreamEvent *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(StreamEvent *, stream_event_free);

/* Parses one line of the CLI's stdout (a trailing newline is allowed).
 * Returns 0, -EBADMSG if it is not one JSON object, or -ENOMEM. `cwd`, when
 * not NULL, is the agent's working directory: tool summaries show paths
 * below it relative to it (otherwise their basename). */
int stream_json_parse_line_full(const char *line, size_t len, const char *cwd, StreamEvent **ret);
static inline int stream_json_parse_line(const char *line, size_t len, StreamEvent **ret) {
        return stream_json_parse_line_full(line, len, NULL, ret);
}

/* The one-line human summary the journal uses as MESSAGE, e.g.
 * "tool Write hello.txt", "result success $0.0123 3 turns". */
int stream_event_summary(const StreamEvent *e, char **ret);

/* Lines for the CLI's stdin, each ending in "\n". */
int stream_json_user_message(const char *text, char **ret);
int stream_json_interrupt_request(const char *request_id, char **ret);
/* Answers a control_request of the CLI's own (e.g. can_use_tool) with a refusal. */
int stream_json_control_error_response(const char *request_id, const char *message, char **ret);
