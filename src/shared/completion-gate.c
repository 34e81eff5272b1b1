/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Completion gates: finding the last block in an iteration's output, reading
 * its YAML-like or JSON form into one JSON object, checking that object's
 * values into a CompletionGate, and the gate's JSON and one-line forms. The
 * input is the agent's own text, so every bad input is an error message,
 * never a crash (see fuzz-completion-gate). */

#include <stdarg.h>

#include "completion-gate-internal.h"
#include "conf.h"
#include "json-util.h"
#include "utf8.h"

/* Compact, and "a/b" stays "a/b". */
#define JSON_PLAIN (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

#define OPEN_LEN (sizeof(COMPLETION_GATE_OPEN) - 1)
#define CLOSE_LEN (sizeof(COMPLETION_GATE_CLOSE) - 1)

/* Opening tags tried as the start of a JSON object that has the tag inside a
 * string: enough for any real output, and it bounds the work on hostile
 * input to a few parses of COMPLETION_GATE_SIZE_MAX bytes. */
#define JSON_CANDIDATES_MAX 8U

#define SUMMARY_REASON_MAX 200U
#define SUMMARY_BLOCKER_MAX 100U

static const char *const gate_key_table[_KEY_MAX] = {
        [KEY_READY] = "ready",
        [KEY_REASON] = "reason",
        [KEY_PROGRESS] = "progress",
        [KEY_BLOCKERS] = "blockers",
};

GateKey gate_key_from_string(const char *s) {
        for (GateKey k = 0; k < _KEY_MAX; k++)
                if (strcaseeq(gate_key_table[k], s))
                        return k;
        return _KEY_INVALID;
}

/* ---- spans and strings (the character classes are in completion-gate-internal.h) ---- */

static bool span_startswith(const char *s, size_t n, const char *prefix) {
        size_t l = strlen(prefix);
        return n >= l && memcmp(s, prefix, l) == 0;
}

/* The first line of s[0..n), trimmed, at most max bytes (not splitting a
 * UTF-8 sequence), and "…" when anything was left out, in buf (of
 * LINE_BUF(max) bytes): errors and summaries stay one short line. */
const char *gate_first_line(char *buf, const char *s, size_t n, size_t max) {
        const char *nl;
        size_t cut;

        trim(&s, &n);
        nl = memchr(s, '\n', n);
        cut = nl ? (size_t) (nl - s) : n;
        if (cut > max)
                for (cut = max; cut > 0 && ((unsigned char) s[cut] & 0xC0) == 0x80;)
                        cut--;
        while (cut > 0 && is_space(s[cut - 1]))
                cut--;
        memcpy(buf, s, cut);
        strcpy(buf + cut, cut < n ? "…" : "");
        return buf;
}

void gate_buf_done(Buf *b) {
        *b = (Buf) { .s = mfree(b->s) };
}

int gate_buf_put(Buf *b, const char *s, size_t n) {
        if (n >= b->cap - b->len) {
                size_t cap;
                char *p;

                if (n > SIZE_MAX / 4 - b->len)
                        return -ENOMEM;
                cap = MAX(MAX(b->len + n + 1, b->cap * 2), (size_t) 64);
                p = realloc(b->s, cap);
                if (!p)
                        return -ENOMEM;
                b->s = p;
                b->cap = cap;
        }
        memcpy(b->s + b->len, s, n);
        b->len += n;
        b->s[b->len] = '\0';
        return 0;
}

/* Sets *error to a new message and returns -EBADMSG (-ENOMEM if there is no
 * memory for the message). */
int gate_fail(char **error, const char *fmt, ...) {
        va_list ap;
        char *s;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        free(*error);
        *error = s;
        return -EBADMSG;
}

/* ---- a JSON object (from either form) → CompletionGate ---- */

static int parse_ready(json_object *v, bool *ret, char **error) {
        static const char *const words[] = { "false", "true", "no", "yes", "0", "1" };
        char qbuf[LINE_BUF(QUOTE_MAX)];
        const char *s;
        size_t n;

        if (json_object_is_type(v, json_type_boolean)) {
                *ret = json_object_get_boolean(v);
                return 0;
        }
        if (!v)
                return gate_fail(error, "ready: expected true/false, got null");

        s = json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                     : json_object_to_json_string_ext(v, JSON_PLAIN);
        if (!s)
                return -ENOMEM;
        n = strlen(s);
        trim(&s, &n);
        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (n == strlen(words[i]) && strncasecmp(s, words[i], n) == 0) {
                        *ret = i % 2;
                        return 0;
                }
        return gate_fail(error, "ready: expected true/false, got '%s'", gate_first_line(qbuf, s, n, QUOTE_MAX));
}

/* The text of a value: a string trimmed, an array's texts joined with "; ",
 * anything else as JSON. NULL for null and empty text. */
static int value_text(json_object *v, char **ret) {
        _cleanup_free_ char *buf = NULL;
        const char *s;
        size_t len;
        int r = 0;

        if (json_object_is_type(v, json_type_array)) {
                _cleanup_(gate_buf_done) Buf b = {};

                for (size_t i = 0; i < json_object_array_length(v); i++) {
                        _cleanup_free_ char *t = NULL;

                        r = value_text(json_object_array_get_idx(v, i), &t);
                        if (t && b.s && r >= 0)
                                r = gate_buf_put(&b, "; ", 2);
                        if (t && r >= 0)
                                r = gate_buf_put(&b, t, strlen(t));
                        if (r < 0)
                                return r;
                }
                *ret = TAKE_PTR(b.s);
                return 0;
        }

        if (!v) {
                *ret = NULL;
                return 0;
        }
        s = json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                     : json_object_to_json_string_ext(v, JSON_PLAIN);
        if (!s)
                return -ENOMEM;
        len = strlen(s);
        trim(&s, &len);
        if (len > 0) {
                buf = strndup(s, len);
                if (!buf)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(buf);
        return 0;
}

/* An array's items, or a single value as the only one; "none" means none. */
static int parse_blockers(json_object *v, char ***ret, char **error) {
        _cleanup_(strv_freep) char **l = NULL;
        bool array = json_object_is_type(v, json_type_array);
        size_t n = array ? json_object_array_length(v) : 1, count = 0;
        int r;

        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                char *t;

                r = value_text(array ? json_object_array_get_idx(v, i) : v, &t);
                if (r < 0)
                        return r;
                if (t && (strcaseeq(t, "none") || streq(t, "[]")))
                        t = mfree(t);
                if (!t)
                        continue;
                if (++count > COMPLETION_GATE_BLOCKERS_MAX) {
                        free(t);
                        return gate_fail(error, "blockers: more than %u", COMPLETION_GATE_BLOCKERS_MAX);
                }
                r = strv_push(&l, t);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(l);
        return 0;
}

static int gate_from_object(json_object *obj, CompletionGate **ret, char **error) {
        _cleanup_(completion_gate_freep) CompletionGate *g = NULL;
        bool seen[_KEY_MAX] = {};
        int r;

        g = calloc(1, sizeof(CompletionGate));
        if (!g)
                return -ENOMEM;
        g->extra = json_object_new_object();
        if (!g->extra)
                return -ENOMEM;

        json_object_object_foreach(obj, key, v) {
                GateKey k = gate_key_from_string(key);

                if (k < 0) {
                        if (json_object_object_add(g->extra, key, json_object_get(v)) < 0) {
                                json_object_put(v);
                                return -ENOMEM;
                        }
                        continue;
                }
                /* "Ready" and "ready" are one key said twice: which one counts is anyone's guess. */
                if (seen[k])
                        return gate_fail(error, "duplicate key '%s'", gate_key_table[k]);
                seen[k] = true;

                if (k == KEY_READY)
                        r = parse_ready(v, &g->ready, error);
                else if (k == KEY_BLOCKERS)
                        r = parse_blockers(v, &g->blockers, error);
                else
                        r = value_text(v, k == KEY_REASON ? &g->reason : &g->progress);
                if (r < 0)
                        return r;
        }

        if (!seen[KEY_READY])
                return gate_fail(error, "missing 'ready'");
        if (!g->blockers) {
                g->blockers = calloc(1, sizeof(char *));
                if (!g->blockers)
                        return -ENOMEM;
        }

        *ret = TAKE_PTR(g);
        return 0;
}

/* ---- finding the block ---- */

/* The block's text without surrounding white space and without a ``` fence
 * line at its start and end (a gate wrapped in a code block inside the tags). */
static void block_text(const char **s, size_t *n) {
        const char *nl;

        trim(s, n);
        if (span_startswith(*s, *n, "```")) {
                nl = memchr(*s, '\n', *n);
                *n = nl ? *n - (size_t) (nl + 1 - *s) : 0;
                *s = nl ? nl + 1 : *s;
                trim(s, n);
        }
        if (*n >= 3 && memcmp(*s + *n - 3, "```", 3) == 0) {
                const char *l;
                size_t ln;

                nl = memrchr(*s, '\n', *n);
                l = nl ? nl + 1 : *s;
                ln = *n - (size_t) (l - *s);
                trim(&l, &ln);
                if (span_startswith(l, ln, "```")) {
                        *n = nl ? (size_t) (nl - *s) : 0;
                        trim(s, n);
                }
        }
}

static int parse_block(const char *s, size_t n, CompletionGate **ret, char **error) {
        _cleanup_json_ json_object *obj = NULL;
        const char *e = NULL;
        int r;

        if (n > COMPLETION_GATE_SIZE_MAX)
                return gate_fail(error, "block larger than %u KiB", COMPLETION_GATE_SIZE_MAX / 1024);
        if (memchr(s, '\0', n))
                return gate_fail(error, "NUL byte in the block");
        if (!utf8_is_valid(s, n))
                return gate_fail(error, "invalid UTF-8 in the block");

        block_text(&s, &n);
        if (n == 0)
                return gate_fail(error, "empty block (missing 'ready')");

        if (s[0] == '{') {
                r = json_parse_strict(s, n, &obj, &e);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return gate_fail(error, "invalid JSON: %s", e);
        } else {
                r = gate_parse_yaml(s, n, &obj, error);
                if (r < 0)
                        return r;
        }

        return gate_from_object(obj, ret, error);
}

/* Is the text from this opening tag to the closing tag one JSON object?
 * 1 if so, 0 if not, -ENOMEM. */
static int is_json_block(const char *s, size_t n) {
        _cleanup_json_ json_object *obj = NULL;
        int r;

        if (n > COMPLETION_GATE_SIZE_MAX)
                return 0;
        block_text(&s, &n);
        if (n < 2 || s[0] != '{' || s[n - 1] != '}')
                return 0;
        r = json_parse_strict(s, n, &obj, NULL);
        if (r == -ENOMEM)
                return r;
        return r >= 0;
}

typedef struct TagGroup {
        size_t first[JSON_CANDIDATES_MAX];      /* offsets just after the group's first opening tags */
        size_t n;
        size_t last;                            /* … and after its last one */
} TagGroup;

int completion_gate_find(const char *text, size_t len, CompletionGate **ret, char **ret_error) {
        _cleanup_(completion_gate_freep) CompletionGate *g = NULL;
        _cleanup_free_ char *error = NULL;
        TagGroup group = {}, block = {};
        size_t close = 0, start;
        int r;

        if (!text && len > 0)
                return -EINVAL;

        /* Opening tags gather into a group until a closing tag ends it: the
         * group's tags all share that closing tag, and a closing tag with no
         * group has nothing to close. */
        for (const char *p = text, *end = text + len; p && p < end; p = memchr(p, '<', (size_t) (end - p))) {
                if (span_startswith(p, (size_t) (end - p), COMPLETION_GATE_OPEN)) {
                        p += OPEN_LEN;
                        if (group.n < JSON_CANDIDATES_MAX)
                                group.first[group.n] = (size_t) (p - text);
                        group.n++;
                        group.last = (size_t) (p - text);
                } else if (span_startswith(p, (size_t) (end - p), COMPLETION_GATE_CLOSE)) {
                        if (group.n > 0) {
                                block = group;
                                close = (size_t) (p - text);
                                group = (TagGroup) {};
                        }
                        p += CLOSE_LEN;
                } else
                        p++;
        }

        if (block.n == 0) {
                if (ret_error) {
                        error = group.n > 0 ? strdup("unterminated " COMPLETION_GATE_OPEN " block") : NULL;
                        if (group.n > 0 && !error)
                                return -ENOMEM;
                        *ret_error = TAKE_PTR(error);
                }
                return 0;
        }

        /* The tag inside a JSON string: the earliest opening tag that starts
         * a JSON object running up to the closing tag wins over the prose
         * reading (the last opening tag). */
        start = block.last;
        for (size_t i = 0; i < MIN(block.n, (size_t) JSON_CANDIDATES_MAX); i++) {
                r = is_json_block(text + block.first[i], close - block.first[i]);
                if (r < 0)
                        return r;
                if (r > 0) {
                        start = block.first[i];
                        break;
                }
        }

        r = parse_block(text + start, close - start, &g, &error);
        if (r == -EBADMSG && ret_error)
                *ret_error = TAKE_PTR(error);
        if (r < 0)
                return r;

        if (ret)
                *ret = TAKE_PTR(g);
        if (ret_error)
                *ret_error = NULL;
        return 1;
}

CompletionGate *completion_gate_free(CompletionGate *g) {
        if (!g)
                return NULL;
        free(g->reason);
        free(g->progress);
        strv_free(g->blockers);
        if (g->extra)
                json_object_put(g->extra);
        return mfree(g);
}

const char *completion_gate_first_blocker(const CompletionGate *g) {
        return g && g->blockers ? g->blockers[0] : NULL;
}

int completion_gate_to_json(const CompletionGate *g, json_object **ret) {
        _cleanup_json_ json_object *o = NULL, *blockers = NULL;
        int r;

        o = json_object_new_object();
        blockers = json_object_new_array();
        if (!o || !blockers)
                return -ENOMEM;

        if (json_object_object_add(o, "ready", json_object_new_boolean(g->ready)) < 0)
                return -ENOMEM;
        r = json_add_string(o, "reason", g->reason);
        if (r >= 0)
                r = json_add_string(o, "progress", g->progress);
        if (r < 0)
                return r;
        for (char **b = g->blockers; b && *b; b++) {
                json_object *s = json_object_new_string(*b);

                if (!s || json_object_array_add(blockers, s) < 0) {
                        json_object_put(s);
                        return -ENOMEM;
                }
        }
        if (json_object_object_add(o, "blockers", blockers) < 0)
                return -ENOMEM;
        TAKE_PTR(blockers);

        if (json_object_is_type(g->extra, json_type_object)) {
                json_object_object_foreach(g->extra, key, v) {
                        if (gate_key_from_string(key) >= 0)
                                continue;
                        if (json_object_object_add(o, key, json_object_get(v)) < 0) {
                                json_object_put(v);
                                return -ENOMEM;
                        }
                }
        }

        *ret = TAKE_PTR(o);
        return 0;
}

int completion_gate_summary(const CompletionGate *g, char **ret) {
        char reason[LINE_BUF(SUMMARY_REASON_MAX)] = "", blocker[LINE_BUF(SUMMARY_BLOCKER_MAX)] = "";
        _cleanup_free_ char *blockers = NULL;
        size_t n = strv_length(g->blockers);
        char *s;

        if (g->reason)
                (void) gate_first_line(reason, g->reason, strlen(g->reason), SUMMARY_REASON_MAX);
        if (n > 0 && asprintf(&blockers, " (%zu blocker%s: %s)", n, n == 1 ? "" : "s",
                              gate_first_line(blocker, g->blockers[0], strlen(g->blockers[0]), SUMMARY_BLOCKER_MAX)) < 0)
                return -ENOMEM;
        if (asprintf(&s, "ready: %s%s%s%s", g->ready ? "yes" : "no", reason[0] ? " — " : "", reason,
                     strempty(blockers)) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}
