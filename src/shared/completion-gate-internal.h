/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What completion-gate.c and completion-gate-yaml.c share: the keys, the
 * character classes, a growing string buffer and error messages. Private. */
#pragma once

#include <json-c/json.h>

#include "completion-gate.h"

#define QUOTE_MAX 60U                   /* bytes of a bad value quoted in an error */
/* A buffer for gate_first_line() with at most `max` bytes of text. */
#define LINE_BUF(max) ((max) + sizeof("…"))

typedef enum GateKey {
        KEY_READY,
        KEY_REASON,
        KEY_PROGRESS,
        KEY_BLOCKERS,
        _KEY_MAX,
        _KEY_INVALID = -EINVAL,
} GateKey;

/* Agents capitalise keys now and then; "Ready:" means ready. */
GateKey gate_key_from_string(const char *s);

/* ASCII classes: the locale must not matter. */
static inline bool is_space(char c) {
        return IN_SET(c, ' ', '\t', '\r', '\n', '\v', '\f');
}

static inline bool is_key_char(char c, bool first) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
               (!first && ((c >= '0' && c <= '9') || IN_SET(c, '.', '-')));
}

static inline bool is_list_item(const char *s, size_t n) {
        return IN_SET(s[0], '-', '*') && (n == 1 || is_space(s[1]));
}

static inline void trim(const char **s, size_t *n) {
        while (*n > 0 && is_space(**s))
                (*s)++, (*n)--;
        while (*n > 0 && is_space((*s)[*n - 1]))
                (*n)--;
}

/* A string that grows by doubling: a wrapped value may run over thousands
 * of lines, and copying it whole for each one would take quadratic time. */
typedef struct Buf {
        char *s;        /* NULL until something is put in */
        size_t len, cap;
} Buf;

void gate_buf_done(Buf *b);
int gate_buf_put(Buf *b, const char *s, size_t n);

/* The first line of s[0..n), trimmed, at most max bytes (not splitting a
 * UTF-8 sequence), and "…" when anything was left out, in buf (of
 * LINE_BUF(max) bytes): errors and summaries stay one short line. */
const char *gate_first_line(char *buf, const char *s, size_t n, size_t max);

/* Sets *error to a new message and returns -EBADMSG (-ENOMEM if there is no
 * memory for the message). */
int gate_fail(char **error, const char *fmt, ...) _printf_(2, 3);

/* The YAML-like form of a block, s[0..n), as a JSON object of its keys. */
int gate_parse_yaml(const char *s, size_t n, json_object **ret, char **error);
