/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The stream-json lines makima writes to the Claude Code CLI's stdin: a user
 * message, an interrupt, and the answer to a control request it refuses. */

#include "json-util.h"
#include "stream-json.h"

/* Compact, and "a/b" stays "a/b": the CLI's own JSON.stringify style. */
#define JSON_PLAIN (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Serialises o as one line ending in "\n". */
static int to_line(json_object *o, char **ret) {
        const char *s;
        char *line;

        /* Plain output escapes newlines inside strings, so this is one line. */
        s = json_object_to_json_string_ext(o, JSON_PLAIN);
        if (!s || asprintf(&line, "%s\n", s) < 0)
                return -ENOMEM;
        *ret = line;
        return 0;
}

/* json_object_object_add() that owns v even when it fails, so calls chain. */
static int add(json_object *o, const char *key, json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

int stream_json_user_message(const char *text, char **ret) {
        _cleanup_json_ json_object *o = NULL, *msg = NULL;

        if (!text)
                return -EINVAL;

        msg = json_object_new_object();
        o = json_object_new_object();
        if (!msg || !o)
                return -ENOMEM;
        if (add(msg, "role", json_object_new_string("user")) < 0 ||
            add(msg, "content", json_object_new_string(text)) < 0 ||
            add(o, "type", json_object_new_string("user")) < 0 ||
            add(o, "message", TAKE_PTR(msg)) < 0)
                return -ENOMEM;
        return to_line(o, ret);
}

int stream_json_interrupt_request(const char *request_id, char **ret) {
        _cleanup_json_ json_object *o = NULL, *req = NULL;

        if (isempty(request_id))
                return -EINVAL;

        req = json_object_new_object();
        o = json_object_new_object();
        if (!req || !o)
                return -ENOMEM;
        if (add(req, "subtype", json_object_new_string("interrupt")) < 0 ||
            add(o, "type", json_object_new_string("control_request")) < 0 ||
            add(o, "request_id", json_object_new_string(request_id)) < 0 ||
            add(o, "request", TAKE_PTR(req)) < 0)
                return -ENOMEM;
        return to_line(o, ret);
}

int stream_json_control_error_response(const char *request_id, const char *message, char **ret) {
        _cleanup_json_ json_object *o = NULL, *resp = NULL;

        if (isempty(request_id))
                return -EINVAL;

        resp = json_object_new_object();
        o = json_object_new_object();
        if (!resp || !o)
                return -ENOMEM;
        if (add(resp, "subtype", json_object_new_string("error")) < 0 ||
            add(resp, "request_id", json_object_new_string(request_id)) < 0 ||
            add(resp, "error", json_object_new_string(message ?: "not supported")) < 0 ||
            add(o, "type", json_object_new_string("control_response")) < 0 ||
            add(o, "response", TAKE_PTR(resp)) < 0)
                return -ENOMEM;
        return to_line(o, ret);
}
