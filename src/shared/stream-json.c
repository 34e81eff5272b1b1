/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Claude Code CLI's stream-json lines: parsing stdout lines into
 * StreamEvents and summarising them in one line for the journal (the stdin
 * lines makima writes are in stream-json-write.c). Lenient by design: a
 * field with an unexpected type reads as absent, an unknown type is an
 * event of its own. */

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <time.h>

#include "json-util.h"
#include "stream-json.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_tokener *, json_tokener_free);

/* Compact, and "a/b" stays "a/b": the CLI's own JSON.stringify style. */
#define JSON_PLAIN (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Deep enough for any tool input a model may produce nested five levels down
 * in message.content[].input; json-c's default of 32 is not. */
#define STREAM_JSON_MAX_DEPTH 256

static const char *const stream_event_type_table[_STREAM_EVENT_TYPE_MAX] = {
        [STREAM_EVENT_SYSTEM_INIT] = "system_init",
        [STREAM_EVENT_SYSTEM_OTHER] = "system_other",
        [STREAM_EVENT_ASSISTANT] = "assistant",
        [STREAM_EVENT_USER] = "user",
        [STREAM_EVENT_RESULT] = "result",
        [STREAM_EVENT_RATE_LIMIT] = "rate_limit",
        [STREAM_EVENT_CONTROL_REQUEST] = "control_request",
        [STREAM_EVENT_CONTROL_RESPONSE] = "control_response",
        [STREAM_EVENT_STREAM_EVENT] = "stream_event",
        [STREAM_EVENT_UNKNOWN] = "unknown",
};

const char *stream_event_type_to_string(StreamEventType t) {
        if (t < 0 || t >= _STREAM_EVENT_TYPE_MAX)
                return NULL;
        return stream_event_type_table[t];
}

StreamEventType stream_event_type_from_string(const char *s) {
        if (!s)
                return _STREAM_EVENT_TYPE_INVALID;
        for (StreamEventType t = 0; t < _STREAM_EVENT_TYPE_MAX; t++)
                if (streq(stream_event_type_table[t], s))
                        return t;
        return _STREAM_EVENT_TYPE_INVALID;
}

StreamEvent *stream_event_free(StreamEvent *e) {
        if (!e)
                return NULL;
        for (size_t i = 0; i < e->n_tool_uses; i++) {
                free(e->tool_uses[i].input);
                free(e->tool_uses[i].summary);
        }
        free(e->tool_uses);
        for (size_t i = 0; i < e->n_tool_results; i++)
                free(e->tool_results[i].content);
        free(e->tool_results);
        free(e->text);
        free(e->thinking);
        if (e->json)
                json_object_put(e->json);
        return mfree(e);
}

/* ---- typed field access: the wrong type reads as absent ---- */

static json_object *get(json_object *o, const char *key) {
        json_object *v;

        if (!o || !json_object_is_type(o, json_type_object))
                return NULL;
        if (!json_object_object_get_ex(o, key, &v))
                return NULL;
        return v;
}

static json_object *get_typed(json_object *o, const char *key, json_type type) {
        json_object *v = get(o, key);
        return v && json_object_is_type(v, type) ? v : NULL;
}

static const char *get_string(json_object *o, const char *key) {
        json_object *v = get_typed(o, key, json_type_string);
        return v ? json_object_get_string(v) : NULL;
}

static bool get_bool(json_object *o, const char *key) {
        json_object *v = get_typed(o, key, json_type_boolean);
        return v && json_object_get_boolean(v);
}

static double get_double(json_object *o, const char *key) {
        json_object *v = get(o, key);
        double d;

        if (!v || !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
                return 0;
        d = json_object_get_double(v);
        return isfinite(d) ? d : 0;
}

/* A count: negative, non-numeric or absent values read as 0, huge ones
 * saturate. */
static uint64_t get_u64(json_object *o, const char *key) {
        json_object *v = get(o, key);

        if (!v)
                return 0;
        if (json_object_is_type(v, json_type_int)) {
                int64_t i = json_object_get_int64(v);
                /* json-c keeps values above INT64_MAX unsigned, and says INT64_MAX here */
                if (i == INT64_MAX)
                        return json_object_get_uint64(v);
                return i > 0 ? (uint64_t) i : 0;
        }
        if (json_object_is_type(v, json_type_double)) {
                double d = json_object_get_double(v);
                if (!isfinite(d) || d <= 0)
                        return 0;
                return d >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t) d;
        }
        return 0;
}

static unsigned get_unsigned(json_object *o, const char *key) {
        return (unsigned) MIN(get_u64(o, key), (uint64_t) UINT_MAX);
}

/* ---- small string builders ---- */

/* Length of s cut to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t len, size_t max) {
        if (len <= max)
                return len;
        while (max > 0 && ((unsigned char) s[max] & 0xC0) == 0x80)
                max--;
        return max;
}

/* Appends s[0..n) to *buf (NUL-terminated, length *len). */
static int append(char **buf, size_t *len, const char *s, size_t n) {
        char *p;

        if (n > SIZE_MAX - *len - 1)
                return -ENOMEM;
        p = realloc(*buf, *len + n + 1);
        if (!p)
                return -ENOMEM;
        memcpy(p + *len, s, n);
        *len += n;
        p[*len] = '\0';
        *buf = p;
        return 0;
}

static int append_str(char **buf, size_t *len, const char *s) {
        return append(buf, len, s, strlen(s));
}

static int appendf(char **buf, size_t *len, const char *fmt, ...) _printf_(3, 4);
static int appendf(char **buf, size_t *len, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        return append(buf, len, s, (size_t) r);
}

/* Appends the first line of s, at most max bytes, "…" when anything was
 * left out: the journal wants one readable line. */
static int append_line(char **buf, size_t *len, const char *s, size_t max) {
        size_t n;
        bool more;
        int r;

        s += strspn(s, " \t\r\n");
        n = strcspn(s, "\n");
        more = n > max || (s[n] == '\n' && s[n + strspn(s + n, " \t\r\n")] != '\0');
        n = utf8_cut(s, n, max);
        while (n > 0 && IN_SET(s[n - 1], ' ', '\t', '\r'))
                n--;
        r = append(buf, len, s, n);
        if (r < 0)
                return r;
        return more ? append_str(buf, len, "…") : 0;
}

/* Appends sep and the first line of s, if s has any text. */
static int append_part(char **buf, size_t *len, const char *sep, const char *s, size_t max) {
        int r;

        if (isempty(s))
                return 0;
        r = append_str(buf, len, sep);
        if (r < 0)
                return r;
        return append_line(buf, len, s, max);
}

/* Values a summary names even when absent or empty. */
static const char *or_na(const char *s) {
        return isempty(s) ? "n/a" : s;
}

/* Control characters (a session id or tool name may hold anything) become
 * spaces, so a summary is always one line. */
static void strip_controls(char *s) {
        for (; s && *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7F)
                        *s = ' ';
}

/* Joins the "field" strings of the content blocks of the given type. */
static int join_blocks(json_object *content, const char *type, const char *field, size_t max, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, n;
        int r;

        if (json_object_is_type(content, json_type_string) && streq(type, "text")) {
                /* A user message's content may be a plain string. */
                const char *s = json_object_get_string(content);
                n = json_object_get_string_len(content);
                buf = strndup(s, utf8_cut(s, n, max));
                if (!buf)
                        return -ENOMEM;
                *ret = TAKE_PTR(buf);
                return 0;
        }
        if (!json_object_is_type(content, json_type_array)) {
                *ret = NULL;
                return 0;
        }
        for (size_t i = 0; i < json_object_array_length(content); i++) {
                json_object *b = json_object_array_get_idx(content, i);
                json_object *v;

                if (!streq_ptr(get_string(b, "type"), type))
                        continue;
                v = get_typed(b, field, json_type_string);
                if (!v)
                        continue;
                if (buf && len < max) {
                        r = append_str(&buf, &len, "\n");
                        if (r < 0)
                                return r;
                }
                if (len >= max)
                        break;
                n = utf8_cut(json_object_get_string(v), json_object_get_string_len(v), max - len);
                r = append(&buf, &len, json_object_get_string(v), n);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(buf);
        return 0;
}

/* ---- tool summaries ---- */

/* A path as the journal shows it: relative to the agent's cwd when below it,
 * else its basename. */
static const char *short_path(const char *path, const char *cwd) {
        const char *slash;

        if (!isempty(cwd)) {
                size_t l = strlen(cwd);
                while (l > 1 && cwd[l - 1] == '/')
                        l--;
                if (strneq(path, cwd, l) && path[l] == '/' && path[l + 1] != '\0')
                        return path + l + 1;
        }
        slash = strrchr(path, '/');
        return slash && slash[1] != '\0' ? slash + 1 : path;
}

/* The input field that best says what a tool call does, in order of
 * preference; paths are shortened. Grep's pattern says more than its path. */
static const struct {
        const char *key;
        bool is_path;
} tool_arg_keys[] = {
        { "file_path", true }, { "notebook_path", true }, { "command", false }, { "pattern", false },
        { "url", false },      { "query", false },        { "description", false }, { "skill", false },
        { "path", true },      { "prompt", false },
};

static int tool_summary(const char *name, json_object *input, const char *cwd, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r;

        r = append_str(&buf, &len, isempty(name) ? "?" : name);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(tool_arg_keys); i++) {
                const char *arg = get_string(input, tool_arg_keys[i].key);

                if (isempty(arg))
                        continue;
                r = append_part(&buf, &len, " ", tool_arg_keys[i].is_path ? short_path(arg, cwd) : arg,
                                STREAM_JSON_TOOL_ARG_MAX);
                if (r < 0)
                        return r;
                break;
        }
        strip_controls(buf);
        *ret = TAKE_PTR(buf);
        return 0;
}

/* ---- per-type parsers ---- */

static int parse_message_content(StreamEvent *e, json_object *content, const char *cwd) {
        size_t n_uses = 0, n_results = 0, n;
        int r;

        r = join_blocks(content, "text", "text", SIZE_MAX - 1, &e->text);
        if (r < 0)
                return r;
        r = join_blocks(content, "thinking", "thinking", SIZE_MAX - 1, &e->thinking);
        if (r < 0)
                return r;
        if (!json_object_is_type(content, json_type_array))
                return 0;

        n = json_object_array_length(content);
        for (size_t i = 0; i < n; i++) {
                const char *t = get_string(json_object_array_get_idx(content, i), "type");
                n_uses += streq_ptr(t, "tool_use");
                n_results += streq_ptr(t, "tool_result");
        }
        if (n_uses > 0) {
                e->tool_uses = calloc(n_uses, sizeof(StreamToolUse));
                if (!e->tool_uses)
                        return -ENOMEM;
        }
        if (n_results > 0) {
                e->tool_results = calloc(n_results, sizeof(StreamToolResult));
                if (!e->tool_results)
                        return -ENOMEM;
        }

        for (size_t i = 0; i < n; i++) {
                json_object *b = json_object_array_get_idx(content, i);
                const char *t = get_string(b, "type");

                if (streq_ptr(t, "tool_use")) {
                        StreamToolUse *u = &e->tool_uses[e->n_tool_uses++];
                        json_object *input = get(b, "input");

                        u->id = get_string(b, "id");
                        u->name = get_string(b, "name");
                        u->input = strdup(input ? json_object_to_json_string_ext(input, JSON_PLAIN) : "{}");
                        if (!u->input)
                                return -ENOMEM;
                        r = tool_summary(u->name, input, cwd, &u->summary);
                        if (r < 0)
                                return r;
                } else if (streq_ptr(t, "tool_result")) {
                        StreamToolResult *res = &e->tool_results[e->n_tool_results++];
                        json_object *c = get(b, "content");

                        res->tool_use_id = get_string(b, "tool_use_id");
                        res->is_error = get_bool(b, "is_error");
                        /* content is a string, or a list of text (and image) blocks */
                        if (c && json_object_is_type(c, json_type_string)) {
                                const char *s = json_object_get_string(c);
                                res->content = strndup(s, utf8_cut(s, json_object_get_string_len(c),
                                                                   STREAM_JSON_TOOL_RESULT_MAX));
                                if (!res->content)
                                        return -ENOMEM;
                        } else if (c) {
                                r = join_blocks(c, "text", "text", STREAM_JSON_TOOL_RESULT_MAX, &res->content);
                                if (r < 0)
                                        return r;
                        }
                }
        }
        return 0;
}

static void parse_usage(StreamUsage *u, json_object *o) {
        u->input_tokens = get_u64(o, "input_tokens");
        u->output_tokens = get_u64(o, "output_tokens");
        u->cache_creation_input_tokens = get_u64(o, "cache_creation_input_tokens");
        u->cache_read_input_tokens = get_u64(o, "cache_read_input_tokens");
}

static int parse_event(StreamEvent *e, const char *cwd) {
        json_object *o = e->json, *v;
        const char *t = e->type_string;

        e->session_id = get_string(o, "session_id");
        e->uuid = get_string(o, "uuid");

        if (streq_ptr(t, "system")) {
                e->subtype = get_string(o, "subtype");
                if (streq_ptr(e->subtype, "init")) {
                        e->type = STREAM_EVENT_SYSTEM_INIT;
                        e->model = get_string(o, "model");
                        e->cwd = get_string(o, "cwd");
                        e->permission_mode = get_string(o, "permissionMode");
                        e->claude_code_version = get_string(o, "claude_code_version");
                } else {
                        e->type = STREAM_EVENT_SYSTEM_OTHER;
                        e->retry_attempt = get_unsigned(o, "attempt");
                        e->retry_max = get_unsigned(o, "max_retries");
                        e->error_status = get_unsigned(o, "error_status");
                        e->error = get_string(o, "error");
                }
                return 0;
        }

        if (streq_ptr(t, "assistant") || streq_ptr(t, "user")) {
                json_object *msg = get_typed(o, "message", json_type_object);

                e->type = streq(t, "assistant") ? STREAM_EVENT_ASSISTANT : STREAM_EVENT_USER;
                e->error = get_string(o, "error");
                e->parent_tool_use_id = get_string(o, "parent_tool_use_id");
                e->model = get_string(msg, "model");
                v = get(msg, "content");
                return v ? parse_message_content(e, v, cwd) : 0;
        }

        if (streq_ptr(t, "result")) {
                json_object *d = get_typed(o, "permission_denials", json_type_array);

                e->type = STREAM_EVENT_RESULT;
                e->subtype = get_string(o, "subtype");
                e->is_error = get_bool(o, "is_error");
                e->result = get_string(o, "result");
                e->num_turns = get_unsigned(o, "num_turns");
                e->duration_ms = get_u64(o, "duration_ms");
                e->total_cost_usd = MAX(get_double(o, "total_cost_usd"), 0.0);
                e->api_error_status = get_unsigned(o, "api_error_status");
                e->terminal_reason = get_string(o, "terminal_reason");
                e->stop_reason = get_string(o, "stop_reason");
                e->n_permission_denials = d ? json_object_array_length(d) : 0;
                parse_usage(&e->usage, get_typed(o, "usage", json_type_object));
                return 0;
        }

        if (streq_ptr(t, "rate_limit_event")) {
                json_object *info = get_typed(o, "rate_limit_info", json_type_object);

                e->type = STREAM_EVENT_RATE_LIMIT;
                e->status = get_string(info, "status");
                e->resets_at = get_u64(info, "resetsAt");
                e->rate_limit_type = get_string(info, "rateLimitType");
                return 0;
        }

        if (streq_ptr(t, "control_request")) {
                json_object *req = get_typed(o, "request", json_type_object);

                e->type = STREAM_EVENT_CONTROL_REQUEST;
                e->request_id = get_string(o, "request_id");
                e->subtype = get_string(req, "subtype");
                e->tool_name = get_string(req, "tool_name");
                return 0;
        }

        if (streq_ptr(t, "control_response")) {
                json_object *resp = get_typed(o, "response", json_type_object);

                e->type = STREAM_EVENT_CONTROL_RESPONSE;
                e->request_id = get_string(resp, "request_id");
                e->subtype = get_string(resp, "subtype");
                e->error = get_string(resp, "error");
                return 0;
        }

        if (streq_ptr(t, "stream_event")) {
                e->type = STREAM_EVENT_STREAM_EVENT;
                e->subtype = get_string(get_typed(o, "event", json_type_object), "type");
                e->parent_tool_use_id = get_string(o, "parent_tool_use_id");
                return 0;
        }

        e->type = STREAM_EVENT_UNKNOWN;
        e->subtype = get_string(o, "subtype");
        return 0;
}

static int parse_json_object(const char *line, size_t len, json_object **ret) {
        _cleanup_(json_tokener_freep) json_tokener *tok = NULL;
        json_object *o = NULL;
        size_t done = 0;

        /* A JSON text holds no NUL (strings escape it); refuse one here
         * rather than depend on how json-c treats it. */
        if (memchr(line, '\0', len))
                return -EBADMSG;

        tok = json_tokener_new_ex(STREAM_JSON_MAX_DEPTH);
        if (!tok)
                return -ENOMEM;
        /* The CLI writes JSON.stringify output; anything laxer is not from it. */
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);

        /* json-c takes an int length: feed longer lines in pieces. */
        while (!o) {
                size_t chunk = MIN(len - done, (size_t) INT_MAX);
                enum json_tokener_error err;

                o = json_tokener_parse_ex(tok, line + done, (int) chunk);
                err = json_tokener_get_error(tok);
                if (o) {
                        done += json_tokener_get_parse_end(tok);
                        break;
                }
                if (err != json_tokener_continue)
                        return -EBADMSG;
                done += chunk;
                if (done >= len)
                        return -EBADMSG; /* incomplete */
        }

        for (; done < len; done++)
                if (!IN_SET(line[done], ' ', '\t', '\r', '\n')) {
                        json_object_put(o);
                        return -EBADMSG;
                }

        *ret = o;
        return 0;
}

int stream_json_parse_line_full(const char *line, size_t len, const char *cwd, StreamEvent **ret) {
        _cleanup_(stream_event_freep) StreamEvent *e = NULL;
        json_object *o = NULL;
        int r;

        if (!line && len > 0)
                return -EINVAL;

        r = parse_json_object(line ?: "", len, &o);
        if (r < 0)
                return r;
        if (!json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EBADMSG;
        }

        e = calloc(1, sizeof(StreamEvent));
        if (!e) {
                json_object_put(o);
                return -ENOMEM;
        }
        e->json = o;
        e->type_string = get_string(o, "type");

        r = parse_event(e, cwd);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(e);
        return 0;
}

/* ---- summaries ---- */

/* Every string quoted in a summary is cut (append_line), so a summary stays
 * short whatever the line holds. */
static int summary_assistant(const StreamEvent *e, char **buf, size_t *len) {
        int r;

        r = append_part(buf, len, "error ", e->error, STREAM_JSON_TOOL_ARG_MAX);
        if (r < 0)
                return r;
        r = append_part(buf, len, *len > 0 ? ": " : "", e->text, STREAM_JSON_SUMMARY_TEXT_MAX);
        if (r < 0)
                return r;
        for (size_t i = 0; i < e->n_tool_uses; i++) {
                r = append_part(buf, len, *len > 0 ? "; tool " : "tool ", e->tool_uses[i].summary, SIZE_MAX);
                if (r < 0)
                        return r;
        }
        if (*len == 0)
                r = append_part(buf, len, "thinking ", e->thinking, STREAM_JSON_SUMMARY_TEXT_MAX);
        if (r >= 0 && *len == 0)
                r = append_str(buf, len, "assistant");
        return r;
}

static int summary_user(const StreamEvent *e, char **buf, size_t *len) {
        int r;

        for (size_t i = 0; i < e->n_tool_results; i++) {
                const StreamToolResult *t = &e->tool_results[i];

                r = append_str(buf, len, i > 0 ? "; tool_result " : "tool_result ");
                if (r >= 0)
                        r = append_str(buf, len, t->is_error ? "error" : "ok");
                if (r >= 0 && t->is_error)
                        r = append_part(buf, len, ": ", t->content, STREAM_JSON_SUMMARY_TEXT_MAX);
                if (r < 0)
                        return r;
        }
        if (*len > 0)
                return 0;
        r = append_str(buf, len, "user");
        if (r < 0)
                return r;
        return append_part(buf, len, " ", e->text, STREAM_JSON_SUMMARY_TEXT_MAX);
}

static int summary_result(const StreamEvent *e, char **buf, size_t *len) {
        /* An API failure arrives as subtype "success" with is_error set. */
        const char *what = e->is_error && streq_ptr(e->subtype, "success") ? "error" : or_na(e->subtype);
        int r;

        r = append_str(buf, len, "result");
        if (r >= 0)
                r = append_part(buf, len, " ", what, STREAM_JSON_TOOL_ARG_MAX);
        if (r >= 0 && e->api_error_status > 0)
                r = appendf(buf, len, " (HTTP %u)", e->api_error_status);
        if (r >= 0)
                r = appendf(buf, len, " $%.4f %u turn%s", e->total_cost_usd, e->num_turns,
                            e->num_turns == 1 ? "" : "s");
        if (r >= 0 && e->is_error)
                r = append_part(buf, len, ": ", e->result, STREAM_JSON_SUMMARY_TEXT_MAX);
        return r;
}

static int summary_rate_limit(const StreamEvent *e, char **buf, size_t *len) {
        char ts[64];
        struct tm tm;
        time_t t;
        int r;

        r = append_str(buf, len, "rate_limit");
        if (r >= 0)
                r = append_part(buf, len, " ", or_na(e->status), STREAM_JSON_TOOL_ARG_MAX);
        if (r < 0 || e->resets_at == 0)
                return r;
        t = (time_t) MIN(e->resets_at, (uint64_t) INT64_MAX);
        if (gmtime_r(&t, &tm) && strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
                return appendf(buf, len, " until %s", ts);
        return appendf(buf, len, " until %" PRIu64, e->resets_at);
}

int stream_event_summary(const StreamEvent *e, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r;

        if (!e)
                return -EINVAL;

        switch (e->type) {
        case STREAM_EVENT_SYSTEM_INIT:
                r = append_str(&buf, &len, "init session");
                if (r >= 0)
                        r = append_part(&buf, &len, " ", or_na(e->session_id), STREAM_JSON_TOOL_ARG_MAX);
                if (r >= 0)
                        r = append_part(&buf, &len, " model ", or_na(e->model), STREAM_JSON_TOOL_ARG_MAX);
                break;
        case STREAM_EVENT_SYSTEM_OTHER:
                r = append_str(&buf, &len, "system");
                if (r >= 0)
                        r = append_part(&buf, &len, " ", or_na(e->subtype), STREAM_JSON_TOOL_ARG_MAX);
                if (r >= 0 && streq_ptr(e->subtype, "api_retry"))
                        r = appendf(&buf, &len, " attempt %u/%u status %u", e->retry_attempt, e->retry_max,
                                    e->error_status);
                if (r >= 0 && streq_ptr(e->subtype, "api_retry"))
                        r = append_part(&buf, &len, " ", or_na(e->error), STREAM_JSON_TOOL_ARG_MAX);
                break;
        case STREAM_EVENT_ASSISTANT:
                r = summary_assistant(e, &buf, &len);
                break;
        case STREAM_EVENT_USER:
                r = summary_user(e, &buf, &len);
                break;
        case STREAM_EVENT_RESULT:
                r = summary_result(e, &buf, &len);
                break;
        case STREAM_EVENT_RATE_LIMIT:
                r = summary_rate_limit(e, &buf, &len);
                break;
        case STREAM_EVENT_CONTROL_REQUEST:
        case STREAM_EVENT_CONTROL_RESPONSE:
                r = append_str(&buf, &len, stream_event_type_to_string(e->type));
                if (r >= 0)
                        r = append_part(&buf, &len, " ", or_na(e->subtype), STREAM_JSON_TOOL_ARG_MAX);
                if (r >= 0)
                        r = append_part(&buf, &len, " ", or_na(e->request_id), STREAM_JSON_TOOL_ARG_MAX);
                if (r >= 0)
                        r = append_part(&buf, &len, " tool ", e->tool_name, STREAM_JSON_TOOL_ARG_MAX);
                if (r >= 0)
                        r = append_part(&buf, &len, ": ", e->error, STREAM_JSON_SUMMARY_TEXT_MAX);
                break;
        case STREAM_EVENT_STREAM_EVENT:
                r = append_str(&buf, &len, "stream_event");
                if (r >= 0)
                        r = append_part(&buf, &len, " ", or_na(e->subtype), STREAM_JSON_TOOL_ARG_MAX);
                break;
        default:
                r = append_str(&buf, &len, "unknown");
                if (r >= 0)
                        r = append_part(&buf, &len, " ", e->type_string, STREAM_JSON_TOOL_ARG_MAX);
                if (r >= 0)
                        r = append_part(&buf, &len, " ", e->subtype, STREAM_JSON_TOOL_ARG_MAX);
                break;
        }
        if (r < 0)
                return r;

        strip_controls(buf);
        *ret = TAKE_PTR(buf);
        return 0;
}
