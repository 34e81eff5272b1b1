/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The YAML-like form of a completion gate ("key: value" lines, lists, quoted
 * and wrapped values) read into a JSON object, line by line. */

#include "completion-gate-internal.h"
#include "json-util.h"

/* ---- the YAML-like form → a JSON object ---- */

typedef enum ValueKind {
        VALUE_EMPTY,            /* "key:" alone: a list or a value on the next line may follow */
        VALUE_PLAIN,            /* unquoted: a wrapped line continues it */
        VALUE_QUOTED,
        VALUE_NULL,
} ValueKind;

typedef struct Yaml {
        json_object *obj;       /* the keys read so far */
        char *key;              /* the key being read, until the next key line */
        unsigned key_line;
        ValueKind kind;
        Buf value;
        json_object *list;      /* its list items, if it has any */
        Buf item;               /* the last item, until the next one starts */
        bool item_plain;
} Yaml;

static void yaml_reset(Yaml *y) {
        y->key = mfree(y->key);
        gate_buf_done(&y->value);
        gate_buf_done(&y->item);
        if (y->list)
                json_object_put(y->list);
        y->list = NULL;
        y->kind = VALUE_EMPTY;
}

static void yaml_done(Yaml *y) {
        yaml_reset(y);
        if (y->obj)
                json_object_put(y->obj);
}

/* Parses a 'single' or "double" quoted value at s[0..n); only white space or
 * a comment may follow the closing quote. */
static int parse_quoted(const char *s, size_t n, unsigned line, Buf *ret, char **error) {
        _cleanup_free_ char *buf = NULL;
        char q = s[0], qbuf[LINE_BUF(QUOTE_MAX)];
        const char *rest;
        size_t i, k = 0, rest_len;

        buf = malloc(n);        /* the text between the quotes, plus a NUL, is at most n bytes */
        if (!buf)
                return -ENOMEM;
        for (i = 1; i < n; i++) {
                char c = s[i];

                if (c == q && q == '\'' && i + 1 < n && s[i + 1] == '\'')
                        i++;                    /* '' is a quote */
                else if (c == q)
                        break;
                else if (q == '"' && c == '\\' && i + 1 < n) {
                        c = s[++i];
                        if (c == 'n')
                                c = '\n';
                        else if (c == 't')
                                c = '\t';
                        else if (!IN_SET(c, '"', '\\', '/'))
                                buf[k++] = '\\';        /* not an escape we know: keep it as written */
                }
                buf[k++] = c;
        }
        if (i >= n)
                return gate_fail(error, "line %u: unterminated quote", line);
        buf[k] = '\0';

        rest = s + i + 1;
        rest_len = n - i - 1;
        trim(&rest, &rest_len);
        if (rest_len > 0 && rest[0] != '#')
                return gate_fail(error, "line %u: text after the closing quote: '%s'", line,
                            gate_first_line(qbuf, rest, rest_len, QUOTE_MAX));

        gate_buf_done(ret);
        *ret = (Buf) { .s = TAKE_PTR(buf), .len = k, .cap = n };
        return 0;
}

static int yaml_push_item(Yaml *y) {
        json_object *v;

        if (!y->item.s)
                return 0;
        v = json_object_new_string_len(y->item.s, (int) y->item.len);
        if (!v || json_object_array_add(y->list, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        gate_buf_done(&y->item);
        return 0;
}

/* Stores the key being read into the object. */
static int yaml_flush(Yaml *y, char **error) {
        _cleanup_json_ json_object *v = NULL;
        int r;

        if (!y->key)
                return 0;

        r = yaml_push_item(y);
        if (r < 0)
                return r;
        if (y->list)
                v = TAKE_PTR(y->list);
        else if (y->kind == VALUE_PLAIN && gate_key_from_string(y->key) == KEY_BLOCKERS && y->value.s[0] == '[') {
                const char *e = NULL;

                r = json_parse_strict(y->value.s, y->value.len, &v, &e);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return gate_fail(error, "line %u: blockers: invalid JSON array: %s", y->key_line, e);
        } else if (y->kind != VALUE_NULL) {
                v = json_object_new_string(y->value.s ?: "");
                if (!v)
                        return -ENOMEM;
        }

        if (json_object_object_get_ex(y->obj, y->key, NULL))
                return gate_fail(error, "line %u: duplicate key '%s'", y->key_line, y->key);
        if (json_object_object_add(y->obj, y->key, v) < 0)
                return -ENOMEM;
        TAKE_PTR(v);
        yaml_reset(y);
        return 0;
}

/* "key:" followed by white space or the end: returns the key's length, 0
 * when the line is not a key line. White space may precede the colon. */
static size_t key_length(const char *s, size_t n) {
        size_t k = 0, i;

        while (k < n && is_key_char(s[k], k == 0))
                k++;
        for (i = k; i < n && IN_SET(s[i], ' ', '\t'); i++)
                ;
        if (k > 0 && i < n && s[i] == ':' && (i + 1 == n || is_space(s[i + 1])))
                return k;
        return 0;
}

static int yaml_key_line(Yaml *y, unsigned line, const char *s, size_t n, size_t k, char **error) {
        const char *v;
        size_t vn;
        int r;

        r = yaml_flush(y, error);
        if (r < 0)
                return r;

        y->key = strndup(s, k);
        if (!y->key)
                return -ENOMEM;
        y->key_line = line;

        v = (const char *) memchr(s + k, ':', n - k) + 1;
        vn = n - (size_t) (v - s);
        trim(&v, &vn);
        if (vn == 0)
                return 0;

        if (IN_SET(v[0], '"', '\'')) {
                y->kind = VALUE_QUOTED;
                return parse_quoted(v, vn, line, &y->value, error);
        }

        /* A boolean holds no '#', so after ready's value one starts a comment
         * ("ready: false  # tests still fail"); elsewhere it is text ("fixes #12"). */
        if (gate_key_from_string(y->key) == KEY_READY)
                for (size_t i = 1; i < vn; i++)
                        if (v[i] == '#' && is_space(v[i - 1])) {
                                vn = i;
                                trim(&v, &vn);
                                break;
                        }

        if ((vn == 4 && strncasecmp(v, "null", 4) == 0) || (vn == 1 && v[0] == '~')) {
                y->kind = VALUE_NULL;
                return 0;
        }
        y->kind = VALUE_PLAIN;
        return gate_buf_put(&y->value, v, vn);
}

static int yaml_item_line(Yaml *y, unsigned line, const char *s, size_t n, char **error) {
        int r;

        r = yaml_push_item(y);
        if (r < 0)
                return r;
        if (!y->list) {
                y->list = json_object_new_array();
                if (!y->list)
                        return -ENOMEM;
        }

        s++, n--;
        trim(&s, &n);
        y->item_plain = n == 0 || !IN_SET(s[0], '"', '\'');
        if (!y->item_plain)
                r = parse_quoted(s, n, line, &y->item, error);
        else
                r = gate_buf_put(&y->item, s, n);
        if (r < 0)
                return r;
        /* "- " with nothing after it, and "- ''", say nothing; "-" alone may
         * have its text on the next line. */
        if (y->item.len == 0)
                gate_buf_done(&y->item);
        return 0;
}

/* A wrapped line: " " and s[0..n) continue the plain value or list item
 * being read, or start the item when "-" stood alone. */
static int yaml_continue(Yaml *y, const char *s, size_t n) {
        Buf *b = y->list ? &y->item : &y->value;
        int r;

        if (b->s) {
                r = gate_buf_put(b, " ", 1);
                if (r < 0)
                        return r;
        }
        return gate_buf_put(b, s, n);
}

static int yaml_line(Yaml *y, unsigned line, const char *s, size_t n, char **error) {
        char qbuf[LINE_BUF(QUOTE_MAX)];
        size_t k;

        k = key_length(s, n);
        if (k > 0)
                return yaml_key_line(y, line, s, n, k, error);

        if (y->key && y->kind == VALUE_EMPTY && is_list_item(s, n))
                return yaml_item_line(y, line, s, n, error);
        if (y->key && y->kind == VALUE_EMPTY && !y->list) {
                /* "reason:" with the value on the next line */
                y->kind = VALUE_PLAIN;
                return yaml_continue(y, s, n);
        }

        /* Anything else continues the value being read, if it can be continued:
         * agents wrap long reasons, and write "- detail" lines under them. */
        if ((y->list && (!y->item.s || y->item_plain)) || (!y->list && y->kind == VALUE_PLAIN))
                return yaml_continue(y, s, n);

        return gate_fail(error, "line %u: expected 'key: value', got '%s'", line, gate_first_line(qbuf, s, n, QUOTE_MAX));
}

int gate_parse_yaml(const char *s, size_t n, json_object **ret, char **error) {
        _cleanup_(yaml_done) Yaml y = {};
        const char *end = s + n;
        unsigned line = 0;
        int r;

        y.obj = json_object_new_object();
        if (!y.obj)
                return -ENOMEM;

        for (const char *p = s; p < end;) {
                const char *nl = memchr(p, '\n', (size_t) (end - p)), *l = p;
                size_t ln = (size_t) ((nl ?: end) - p);

                p = nl ? nl + 1 : end;
                line++;
                trim(&l, &ln);
                /* blank lines, comments, and YAML's document markers */
                if (ln == 0 || l[0] == '#' || (ln == 3 && (strneq(l, "---", 3) || strneq(l, "...", 3))))
                        continue;
                r = yaml_line(&y, line, l, ln, error);
                if (r < 0)
                        return r;
        }
        r = yaml_flush(&y, error);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(y.obj);
        return 0;
}
