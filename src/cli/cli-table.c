/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Output of the makima client: aligned tables for lists, "key: value" blocks
 * for single objects, one line per event, times as "3m ago" or local time,
 * and colors only when stdout is a terminal. */

#include <stdarg.h>
#include <time.h>

#include "cli.h"

struct Table {
        Cli *cli;
        size_t n_columns;
        char **headers;
        char ***rows;                   /* n_rows × n_columns, NULL cells allowed */
        const char **colors;            /* per row: the color of color_columns[row] */
        int *color_columns;
        size_t n_rows;
};

/* Terminal cells a UTF-8 string takes, assuming one per code point (good enough for names and plans). */
static size_t text_width(const char *s) {
        size_t w = 0;

        for (; *s; s++)
                if (((unsigned char) *s & 0xC0) != 0x80)
                        w++;
        return w;
}

Table *table_new(Cli *cli, const char *first_header, ...) {
        _cleanup_(table_freep) Table *t = NULL;
        va_list ap;

        t = calloc(1, sizeof(Table));
        if (!t)
                return NULL;
        t->cli = cli;

        va_start(ap, first_header);
        for (const char *h = first_header; h; h = va_arg(ap, const char *)) {
                char **a = reallocarray(t->headers, t->n_columns + 1, sizeof(char *));
                if (!a) {
                        va_end(ap);
                        return NULL;
                }
                t->headers = a;
                a[t->n_columns] = strdup(h);
                if (!a[t->n_columns]) {
                        va_end(ap);
                        return NULL;
                }
                t->n_columns++;
        }
        va_end(ap);
        return TAKE_PTR(t);
}

static char **row_free(char **row, size_t n) {
        if (row)
                for (size_t i = 0; i < n; i++)
                        free(row[i]);
        return mfree(row);
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_columns; i++)
                free(t->headers[i]);
        free(t->headers);
        for (size_t r = 0; r < t->n_rows; r++)
                row_free(t->rows[r], t->n_columns);
        free(t->rows);
        free(t->colors);
        free(t->color_columns);
        return mfree(t);
}

/* A cell holds one line: control characters (newlines in a plan) become spaces. */
static char *cell_text(const char *s) {
        char *c = strdup(s ?: "-");

        if (!c)
                return NULL;
        for (char *p = c; *p; p++)
                if ((unsigned char) *p < ' ' || *p == 0x7f)
                        *p = ' ';
        return c;
}

/* Grows the per-row arrays to hold one more row. */
static int table_reserve(Table *t) {
        char ***rows = reallocarray(t->rows, t->n_rows + 1, sizeof(char **));
        if (!rows)
                return -ENOMEM;
        t->rows = rows;
        const char **colors = reallocarray(t->colors, t->n_rows + 1, sizeof(char *));
        if (!colors)
                return -ENOMEM;
        t->colors = colors;
        int *cc = reallocarray(t->color_columns, t->n_rows + 1, sizeof(int));
        if (!cc)
                return -ENOMEM;
        t->color_columns = cc;
        return 0;
}

int table_add_row(Table *t, int color_column, const char *color, ...) {
        char **row;
        va_list ap;
        bool oom = false;

        row = calloc(t->n_columns, sizeof(char *));
        if (!row)
                return -ENOMEM;
        va_start(ap, color);
        for (size_t i = 0; i < t->n_columns; i++) {
                row[i] = cell_text(va_arg(ap, const char *));
                oom = oom || !row[i];
        }
        va_end(ap);
        if (oom || table_reserve(t) < 0) {
                row_free(row, t->n_columns);
                return -ENOMEM;
        }

        t->colors[t->n_rows] = color;
        t->color_columns[t->n_rows] = color_column;
        t->rows[t->n_rows++] = row;
        return 0;
}

int table_print(Table *t, const char *empty_message) {
        _cleanup_free_ size_t *width = NULL;

        if (t->n_rows == 0) {
                if (empty_message)
                        printf("%s\n", empty_message);
                return 0;
        }

        width = calloc(t->n_columns, sizeof(size_t));
        if (!width)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_columns; i++) {
                width[i] = text_width(t->headers[i]);
                for (size_t r = 0; r < t->n_rows; r++)
                        width[i] = MAX(width[i], text_width(t->rows[r][i]));
        }

        /* The last column is not padded, so a long plan or name does not leave trailing blanks. */
        fputs(cli_ansi(t->cli, ANSI_BOLD), stdout);
        for (size_t i = 0; i < t->n_columns; i++)
                printf("%s%*s", t->headers[i], i + 1 < t->n_columns ? (int) (width[i] - text_width(t->headers[i]) + 2) : 0, "");
        printf("%s\n", cli_ansi(t->cli, ANSI_NORMAL));

        for (size_t r = 0; r < t->n_rows; r++) {
                for (size_t i = 0; i < t->n_columns; i++) {
                        bool colored = (int) i == t->color_columns[r] && !isempty(t->colors[r]);
                        const char *c = t->rows[r][i];

                        printf("%s%s%s%*s", colored ? t->colors[r] : "", c, colored ? ANSI_NORMAL : "",
                               i + 1 < t->n_columns ? (int) (width[i] - text_width(c) + 2) : 0, "");
                }
                putchar('\n');
        }
        return fflush(stdout) == 0 ? 0 : -errno;
}

const char *cli_ansi(Cli *cli, const char *sequence) {
        return cli->color ? sequence : "";
}

const char *cli_status_color(Cli *cli, const char *status) {
        static const struct {
                const char *status;
                const char *color;
        } table[] = {
                { "running",                 ANSI_GREEN   },
                { "active",                  ANSI_GREEN   },
                { "pending",                 ANSI_YELLOW  },
                { "paused",                  ANSI_YELLOW  },
                { "waiting",                 ANSI_YELLOW  },
                { "done",                    ANSI_BLUE    },
                { "completed",               ANSI_BLUE    },
                { "merged",                  ANSI_BLUE    },
                { "failed",                  ANSI_RED     },
                { "interrupted",             ANSI_RED     },
                { "iteration_limit_reached", ANSI_MAGENTA },
                { "cancelled",               ANSI_GREY    },
        };

        if (!cli->color || !status)
                return "";
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(table[i].status, status))
                        return table[i].color;
        return "";
}

const char *json_get_string(json_object *o, const char *key) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

int64_t json_get_int(json_object *o, const char *key, int64_t def) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return def;
        return json_object_get_int64(v);
}

bool json_get_bool(json_object *o, const char *key) {
        json_object *v;

        return o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
                json_object_get_boolean(v);
}

int parse_timestamp(const char *s, usec_t *ret) {
        struct tm tm = {};
        const char *p;
        usec_t frac = 0;
        time_t t;

        if (!s)
                return -EINVAL;
        p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!p)
                return -EINVAL;
        if (*p == '.') {
                usec_t scale = 100000;

                p++;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                for (; *p >= '0' && *p <= '9'; p++) {
                        frac += (usec_t) (*p - '0') * scale;
                        scale /= 10;
                }
        }
        if (!streq(p, "Z"))
                return -EINVAL;
        t = timegm(&tm);
        if (t < 0)
                return -EINVAL;
        *ret = (usec_t) t * USEC_PER_SEC + frac;
        return 0;
}

char *format_relative(const char *timestamp, char *buf, size_t size) {
        static const struct {
                const char *suffix;
                usec_t usec;
        } units[] = {
                { "d", 24 * 60 * 60 * USEC_PER_SEC },
                { "h", 60 * 60 * USEC_PER_SEC },
                { "m", 60 * USEC_PER_SEC },
                { "s", USEC_PER_SEC },
        };
        usec_t t, n = now_usec(), d;
        bool future;

        if (parse_timestamp(timestamp, &t) < 0) {
                snprintf(buf, size, "-");
                return buf;
        }
        future = t > n;
        d = future ? t - n : n - t;
        if (d < USEC_PER_SEC) {
                snprintf(buf, size, "now");
                return buf;
        }
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (d >= units[i].usec || i + 1 == ELEMENTSOF(units)) {
                        snprintf(buf, size, "%s%llu%s%s", future ? "in " : "",
                                 (unsigned long long) (d / units[i].usec), units[i].suffix, future ? "" : " ago");
                        break;
                }
        return buf;
}

char *format_local(const char *timestamp, char *buf, size_t size) {
        struct tm tm;
        usec_t t;
        time_t sec;

        if (parse_timestamp(timestamp, &t) < 0) {
                snprintf(buf, size, "%s", timestamp ?: "-");
                return buf;
        }
        sec = (time_t) (t / USEC_PER_SEC);
        if (!localtime_r(&sec, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
                snprintf(buf, size, "%s", timestamp);
        return buf;
}

char *short_id(const char *id, char buf[static 9]) {
        snprintf(buf, 9, "%s", strempty(id));
        return buf;
}

char *format_usd(double usd, char *buf, size_t size) {
        size_t n;

        /* Four decimals, and the last two dropped when they are zeros: "$2.50", "$0.0123". */
        snprintf(buf, size, "$%.4f", usd);
        n = strlen(buf);
        if (n >= 7 && streq(buf + n - 2, "00") && buf[n - 5] == '.')
                buf[n - 2] = '\0';
        return buf;
}

int cli_print_json(json_object *o) {
        const char *s;

        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                           JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!s)
                return -ENOMEM;
        puts(s);
        return fflush(stdout) == 0 ? 0 : -errno;
}

static bool ends_with(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && streq(s + a - b, suffix);
}

/* Prints one value of a show block; multi-line strings continue under the first line. */
static void print_value(Cli *cli, const char *key, json_object *v, int indent) {
        char when[64], rel[64];

        if (!v || json_object_is_type(v, json_type_null)) {
                printf("%s-%s\n", cli_ansi(cli, ANSI_GREY), cli_ansi(cli, ANSI_NORMAL));
                return;
        }
        if (json_object_is_type(v, json_type_string)) {
                const char *s = json_object_get_string(v);

                if (ends_with(key, "_at") && parse_timestamp(s, &(usec_t) { 0 }) >= 0) {
                        printf("%s (%s)\n", format_local(s, when, sizeof(when)), format_relative(s, rel, sizeof(rel)));
                        return;
                }
                if (streq(key, "status"))
                        printf("%s%s%s\n", cli_status_color(cli, s), s, cli_ansi(cli, ANSI_NORMAL));
                else {
                        for (const char *p = s; *p;) {
                                size_t l = strcspn(p, "\n");

                                printf("%.*s\n", (int) l, p);
                                p += l;
                                if (*p == '\n' && *++p)
                                        printf("%*s", indent, "");
                        }
                        if (!*s)
                                putchar('\n');
                }
                return;
        }
        if (json_object_is_type(v, json_type_boolean)) {
                printf("%s\n", json_object_get_boolean(v) ? "yes" : "no");
                return;
        }
        if (json_object_is_type(v, json_type_array)) {
                /* Lists of words (a contract's phases) read best on one line. */
                size_t n = json_object_array_length(v);
                bool words = true;

                for (size_t i = 0; i < n; i++)
                        words = words && json_object_is_type(json_object_array_get_idx(v, i), json_type_string);
                if (words) {
                        for (size_t i = 0; i < n; i++)
                                printf("%s%s", i > 0 ? " → " : "", json_object_get_string(json_object_array_get_idx(v, i)));
                        putchar('\n');
                        return;
                }
        }
        printf("%s\n", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

int cli_print_object(Cli *cli, json_object *o, const char *const *keys) {
        int width = 0;

        for (size_t i = 0; keys[i]; i++)
                width = MAX(width, (int) strlen(keys[i]));
        /* Members the API has and we did not list still get shown, after the rest. */
        json_object_object_foreach(o, key, value) {
                (void) value;
                width = MAX(width, (int) strlen(key));
        }

        for (size_t i = 0; keys[i]; i++) {
                json_object *v = NULL;

                if (!json_object_object_get_ex(o, keys[i], &v))
                        continue;
                printf("%*s: ", width, keys[i]);
                print_value(cli, keys[i], v, width + 2);
        }
        json_object_object_foreach(o, k, v) {
                bool listed = false;

                for (size_t i = 0; keys[i] && !listed; i++)
                        listed = streq(keys[i], k);
                if (listed)
                        continue;
                printf("%*s: ", width, k);
                print_value(cli, k, v, width + 2);
        }
        return fflush(stdout) == 0 ? 0 : -errno;
}

/* The text of an agent message: its "text" content blocks, or a tool call's name. */
static const char *message_text(json_object *message) {
        json_object *content;

        if (!message || !json_object_object_get_ex(message, "content", &content))
                return NULL;
        if (json_object_is_type(content, json_type_string))
                return json_object_get_string(content);
        if (!json_object_is_type(content, json_type_array))
                return NULL;
        for (size_t i = 0; i < json_object_array_length(content); i++) {
                json_object *block = json_object_array_get_idx(content, i);
                const char *type = json_get_string(block, "type");

                if (streq_ptr(type, "text"))
                        return json_get_string(block, "text");
                if (streq_ptr(type, "tool_use"))
                        return json_get_string(block, "name");
                if (streq_ptr(type, "tool_result")) {
                        const char *s = json_get_string(block, "content");
                        if (s)
                                return s;
                }
        }
        return NULL;
}

static bool json_get_number(json_object *o, const char *key, double *ret) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) ||
            !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
                return false;
        *ret = json_object_get_double(v);
        return true;
}

/* An "iteration" event of the autonomous loop, {"iteration":3,"max":10,
 * "reason":"…","cost_usd":0.0123,"gate":{…}}: "3/10: <reason> ($0.0123)". */
static char *iteration_summary(json_object *data) {
        _cleanup_free_ char *count = NULL;
        const char *reason = json_get_string(data, "reason");
        int64_t n = json_get_int(data, "iteration", -1), max = json_get_int(data, "max", 0);
        char usd_text[32], cost[40] = "";
        double usd;
        char *out;

        if (n < 0)
                return NULL;
        if (max > 0 ? asprintf(&count, "%" PRIi64 "/%" PRIi64, n, max) < 0 : asprintf(&count, "%" PRIi64, n) < 0)
                return NULL;
        if (!reason) {
                json_object *gate = NULL;

                /* No words from the loop: what the agent said in its gate. */
                if (json_object_object_get_ex(data, "gate", &gate))
                        reason = json_get_string(gate, "reason");
        }
        if (json_get_number(data, "cost_usd", &usd))
                snprintf(cost, sizeof(cost), " (%s)", format_usd(usd, usd_text, sizeof(usd_text)));
        if (asprintf(&out, "%s%s%s%s", count, reason ? ": " : "", strempty(reason), cost) < 0)
                return NULL;
        return out;
}

/* A status change: "running → waiting", with the reason when it has one,
 * and the new limit of a task resumed with a higher one. */
static char *transition_summary(json_object *data, const char *from, const char *to) {
        const char *reason = json_get_string(data, "reason") ?: json_get_string(data, "error");
        int64_t max = json_get_int(data, "max_iterations", 0);
        char limit[64] = "";
        char *out;

        if (max > 0)
                snprintf(limit, sizeof(limit), ", at most %" PRIi64 " iterations", max);
        if (asprintf(&out, "%s → %s%s%s%s", from, to, limit, reason ? ": " : "", strempty(reason)) < 0)
                return NULL;
        return out;
}

/* One line that says what an event was about, whatever its type. */
static char *event_summary(const char *type, json_object *data) {
        static const char *const keys[] = { "summary", "text", "result", "message", "reason", "error", "subtype" };
        _cleanup_free_ char *own = NULL;
        json_object *message = NULL;
        const char *s = NULL;
        char *out;

        if (!data || json_object_is_type(data, json_type_null))
                return strdup("");
        if (json_object_is_type(data, json_type_string))
                s = json_object_get_string(data);
        else if (json_object_is_type(data, json_type_object)) {
                const char *from = json_get_string(data, "from"), *to = json_get_string(data, "to");

                if (from && to)
                        s = own = transition_summary(data, from, to);
                else if (streq_ptr(type, "iteration"))
                        s = own = iteration_summary(data);
                if (!s && json_object_object_get_ex(data, "message", &message) &&
                    json_object_is_type(message, json_type_object))
                        s = message_text(message);
                for (size_t i = 0; !s && i < ELEMENTSOF(keys); i++)
                        s = json_get_string(data, keys[i]);
        }
        if (!s)
                s = json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

        out = cell_text(s);
        if (out && text_width(out) > 200) {
                /* Cut at a character boundary and mark it. */
                size_t cut = 0, w = 0;
                while (out[cut] && w < 199) {
                        cut++;
                        while (((unsigned char) out[cut] & 0xC0) == 0x80)
                                cut++;
                        w++;
                }
                out[cut] = '\0';
                char *t;
                if (asprintf(&t, "%s…", out) < 0)
                        t = NULL;
                free(out);
                out = t;
        }
        return out;
}

int cli_print_event(Cli *cli, json_object *event) {
        _cleanup_free_ char *summary = NULL;
        json_object *data = NULL;
        char when[64];

        (void) json_object_object_get_ex(event, "data", &data);
        summary = event_summary(json_get_string(event, "type"), data);
        if (!summary)
                return -ENOMEM;
        printf("%s#%" PRIi64 "%s %s %s%s%s %s\n",
               cli_ansi(cli, ANSI_GREY), json_get_int(event, "seq", 0), cli_ansi(cli, ANSI_NORMAL),
               format_local(json_get_string(event, "created_at"), when, sizeof(when)),
               cli_ansi(cli, ANSI_BOLD), strna(json_get_string(event, "type")), cli_ansi(cli, ANSI_NORMAL),
               summary);
        return 0;
}
