/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests of json-util.c: what the strict parser accepts and refuses, the
 * dispatcher and its callbacks, timestamps, and the JSON forms of tasks,
 * contracts and events. */

#include <float.h>
#include <limits.h>

#include "conf.h"
#include "json-util.h"
#include "tests.h"

static json_object *parse_ok_len(const char *text, size_t len) {
        json_object *o = NULL;
        const char *error = NULL;
        int r;

        r = json_parse_strict(text, len, &o, &error);
        if (r < 0) {
                fprintf(stderr, "refused %.*s: %s\n", (int) len, text, strna(error));
                abort();
        }
        return o;
}

static json_object *parse_ok(const char *text) {
        return parse_ok_len(text, strlen(text));
}

/* Expects a refusal; when `why` is given the error description must contain it. */
static void parse_bad_len(const char *text, size_t len, const char *why) {
        json_object *o = (json_object *) 0x1;
        const char *error = NULL;
        int r;

        r = json_parse_strict(text, len, &o, &error);
        if (r != -EBADMSG || !error || (why && !strstr(error, why))) {
                fprintf(stderr, "input '%.*s': r=%d error='%s', expected -EBADMSG with '%s'\n", (int) len, text, r,
                        strna(error), strna(why));
                abort();
        }
        assert_se(o == (json_object *) 0x1);   /* untouched on failure */
}

static void parse_bad(const char *text, const char *why) {
        parse_bad_len(text, strlen(text), why);
}

static char *nested(const char *open, const char *inner, const char *close, unsigned n) {
        size_t lo = strlen(open), li = strlen(inner), lc = strlen(close);
        char *s = malloc(n * (lo + lc) + li + 1), *p = s;

        assert_se(s);
        for (unsigned i = 0; i < n; i++)
                p = mempcpy(p, open, lo);
        p = mempcpy(p, inner, li);
        for (unsigned i = 0; i < n; i++)
                p = mempcpy(p, close, lc);
        *p = '\0';
        return s;
}

static void test_parse_accepts(void) {
        json_object *o;

        o = parse_ok("{\"a\": [1, -2.5e3, true, false, null, \"x\"], \"b\": {}}");
        assert_se(json_object_is_type(o, json_type_object));
        assert_se(json_object_object_length(o) == 2);
        json_object_put(o);

        o = parse_ok(" \t\r\n[] \n");
        assert_se(json_object_is_type(o, json_type_array));
        json_object_put(o);

        o = parse_ok("42");
        assert_se(json_object_get_int64(o) == 42);
        json_object_put(o);
        o = parse_ok("-0");
        json_object_put(o);
        o = parse_ok("0.5e-3");
        json_object_put(o);
        o = parse_ok("1E+2");
        json_object_put(o);
        o = parse_ok("\"str\"");
        assert_streq(json_object_get_string(o), "str");
        json_object_put(o);
        o = parse_ok("true");
        assert_se(json_object_get_boolean(o));
        json_object_put(o);

        /* JSON null is a NULL object in json-c. */
        assert_se(parse_ok("null") == NULL);
        assert_se(parse_ok(" null ") == NULL);

        o = parse_ok("-9223372036854775808");
        assert_se(json_object_get_int64(o) == INT64_MIN);
        json_object_put(o);
        o = parse_ok("18446744073709551615");
        assert_se(json_object_get_uint64(o) == UINT64_MAX);
        json_object_put(o);

        /* Escapes, a surrogate pair, and raw UTF-8 of every length. */
        o = parse_ok("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\ud83d\\ude00 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
        assert_streq(json_object_get_string(o),
                     "\"\\/\b\f\n\r\tA\xc3\xa9\xf0\x9f\x98\x80 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
        json_object_put(o);

        o = parse_ok("\"\\u00C9\\u00e9\\uD83D\\uDE00\"");
        assert_streq(json_object_get_string(o), "\xc3\x89\xc3\xa9\xf0\x9f\x98\x80");
        json_object_put(o);

        /* Only len bytes count: what follows in memory is not looked at. */
        o = parse_ok_len("{}garbage", 2);
        assert_se(json_object_is_type(o, json_type_object));
        json_object_put(o);
        o = parse_ok_len("123456", 3);
        assert_se(json_object_get_int64(o) == 123);
        json_object_put(o);

        /* 64 levels is the limit: containers and the innermost value count alike. */
        {
                _cleanup_free_ char *a = nested("[", "", "]", 64), *b = nested("[", "1", "]", 63),
                                    *c = nested("{\"k\":", "1", "}", 63);
                json_object_put(parse_ok(a));
                json_object_put(parse_ok(b));
                json_object_put(parse_ok(c));
        }

        /* The last of duplicate keys wins, as in json-c. */
        o = parse_ok("{\"a\":1,\"a\":2}");
        assert_se(json_object_get_int(json_object_object_get(o, "a")) == 2);
        json_object_put(o);

        /* ret may be NULL to only validate. */
        assert_se(json_parse_strict("[1]", 3, NULL, NULL) == 0);
}

static void test_parse_refuses(void) {
        parse_bad("", "empty");
        parse_bad("   ", "end of input");
        parse_bad("\n", "end of input");

        /* Trailing garbage, including a second value. */
        parse_bad("1 2", "trailing");
        parse_bad("{} {}", "trailing");
        parse_bad("{}x", "trailing");
        parse_bad("[]]", "trailing");
        parse_bad("\"a\"\"b\"", "trailing");
        parse_bad("null null", "trailing");
        parse_bad("{}\xef\xbb\xbf", "trailing");

        /* NUL bytes inside, even where white space would be allowed. */
        parse_bad_len("{}\0", 3, "NUL");
        parse_bad_len("\"a\0b\"", 5, "NUL");
        parse_bad_len("\0", 1, "NUL");

        /* Invalid UTF-8: overlong, surrogate, above U+10FFFF, truncated, stray continuation, 0xFE. */
        parse_bad("\"\xc0\xaf\"", "UTF-8");
        parse_bad("\"\xe0\x80\xaf\"", "UTF-8");
        parse_bad("\"\xf0\x80\x80\xaf\"", "UTF-8");
        parse_bad("\"\xed\xa0\x80\"", "UTF-8");
        parse_bad("\"\xf4\x90\x80\x80\"", "UTF-8");
        parse_bad("\"\xc3\"", "UTF-8");
        parse_bad("\"\xe2\x82\"", "UTF-8");
        parse_bad("\"\x80\"", "UTF-8");
        parse_bad("\"\xfe\"", "UTF-8");
        parse_bad_len("\"\xf0\x9f\x98", 4, "UTF-8");

        /* What json-c would take even in strict mode. */
        parse_bad("NaN", NULL);
        parse_bad("Infinity", NULL);
        parse_bad("-Infinity", NULL);
        parse_bad("1.", "number");
        parse_bad("01", "leading zero");
        parse_bad("-01", "leading zero");
        parse_bad("\"tab\there\"", "control character");
        parse_bad("\"new\nline\"", "control character");
        parse_bad("\"\\ud800\"", "surrogate");
        parse_bad("\"\\udc00\"", "surrogate");
        parse_bad("\"\\ud800\\u0041\"", "surrogate");
        parse_bad("\"\\ud800x\"", "surrogate");
        parse_bad("\"\\ud800\\u12\"", "escape");
        parse_bad("\"\\ud800\\", "surrogate");
        parse_bad("18446744073709551616", "out of range");
        parse_bad("-9223372036854775809", "out of range");
        parse_bad("100000000000000000000000000000", "out of range");

        /* The length is checked before the buffer is looked at. */
        parse_bad_len("", (size_t) INT_MAX + 1, "too large");

        /* Plain syntax errors. */
        parse_bad("[1,]", NULL);
        parse_bad("{\"a\":1,}", NULL);
        parse_bad("[,1]", NULL);
        parse_bad("'a'", NULL);
        parse_bad("{a:1}", "key");
        parse_bad("{1:1}", "key");
        parse_bad("{\"\x01\":1}", "control character");
        parse_bad("{\"a", "unterminated");
        parse_bad("{\"a\"}", "':'");
        parse_bad("{\"a\":}", NULL);
        parse_bad("{\"a\" 1}", "':'");
        parse_bad("[1 2]", "','");
        parse_bad("{\"a\":1 \"b\":2}", "','");
        parse_bad("0x10", "trailing");
        parse_bad("+1", NULL);
        parse_bad(".5", NULL);
        parse_bad("1e", "number");
        parse_bad("1e+", "number");
        parse_bad("-", "number");
        parse_bad("--1", "number");
        parse_bad("TRUE", NULL);
        parse_bad("tru", "literal");
        parse_bad("nul", "literal");
        parse_bad("nulll", "trailing");
        parse_bad("/*c*/1", NULL);
        parse_bad("[1]//c", "trailing");
        parse_bad("\"\\x41\"", "escape");
        parse_bad("\"\\u12\"", "escape");
        parse_bad("\"\\u12g4\"", "escape");
        parse_bad("\"\\", "unterminated");
        parse_bad("\"abc", "unterminated");
        parse_bad("[", "end of input");
        parse_bad("{", "key");
        parse_bad("[1", "end of input");
        parse_bad("{\"a\":1", "end of input");
        parse_bad("\xef\xbb\xbf{}", "unexpected character");

        {
                _cleanup_free_ char *a = nested("[", "", "]", 65), *b = nested("[", "1", "]", 64),
                                    *c = nested("{\"k\":", "1", "}", 64), *d = nested("[", "", "]", 100000);
                parse_bad(a, "too deep");
                parse_bad(b, "too deep");
                parse_bad(c, "too deep");
                parse_bad(d, "too deep");
        }
}

static void test_round_trip(void) {
        static const char *const docs[] = {
                "{\"name\":\"t\",\"n\":[1,2,{\"x\":null}],\"f\":1.5,\"b\":false,\"u\":\"\\u00e9\\ud83d\\ude00\"}",
                "[]",
                "\"\\\"quoted\\\" \\\\ \\/ \\n\"",
                "-9223372036854775808",
                "[true,false,null,0,-1,1e-7]",
        };

        for (size_t i = 0; i < ELEMENTSOF(docs); i++) {
                _cleanup_json_ json_object *a = NULL, *b = NULL;
                const char *text;

                a = parse_ok(docs[i]);
                text = json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN);
                b = parse_ok(text);
                assert_se(json_object_equal(a, b));
        }
}

typedef struct Sample {
        char *name;
        char *note;
        bool flag;
        int count;
        int64_t big;
        double ratio;
        TaskState state;
        ContractPhase phase;
        ContractType type;
        ContractStatus status;
} Sample;

static const JsonDispatchField sample_table[] = {
        { "name", json_dispatch_string, offsetof(Sample, name), JSON_MANDATORY },
        { "note", json_dispatch_string, offsetof(Sample, note), JSON_NULLABLE },
        { "flag", json_dispatch_bool, offsetof(Sample, flag), 0 },
        { "count", json_dispatch_uint, offsetof(Sample, count), JSON_NULLABLE },
        { "big", json_dispatch_int64, offsetof(Sample, big), 0 },
        { "ratio", json_dispatch_double, offsetof(Sample, ratio), 0 },
        { "state", json_dispatch_task_state, offsetof(Sample, state), 0 },
        { "phase", json_dispatch_contract_phase, offsetof(Sample, phase), 0 },
        { "type", json_dispatch_contract_type, offsetof(Sample, type), 0 },
        { "status", json_dispatch_contract_status, offsetof(Sample, status), JSON_MANDATORY | JSON_NULLABLE },
        {}
};

static void sample_done(Sample *s) {
        free(s->name);
        free(s->note);
        *s = (Sample) {};
}

static int dispatch_text(const char *text, JsonDispatchFlags flags, Sample *s, const char **ret_bad) {
        _cleanup_json_ json_object *o = parse_ok(text);

        return json_dispatch(o, sample_table, flags, s, ret_bad);
}

/* Expects -EINVAL naming `field` (NULL: no field, the value was not an object). */
static void dispatch_bad(const char *text, JsonDispatchFlags flags, const char *field) {
        _cleanup_json_ json_object *o = parse_ok(text);   /* the bad field's name may be owned by o */
        const char *bad = "untouched";
        Sample s = {};
        int r;

        r = json_dispatch(o, sample_table, flags, &s, &bad);
        if (r != -EINVAL || !streq_ptr(bad, field)) {
                fprintf(stderr, "%s: r=%d bad=%s, expected -EINVAL naming %s\n", text, r, strna(bad), strna(field));
                abort();
        }
        sample_done(&s);
}

static void test_dispatch(void) {
        const char *bad = NULL;
        Sample s = {};

        assert_se(dispatch_text("{\"name\":\"n\",\"note\":\"hi\",\"flag\":true,\"count\":2147483647,"
                                "\"big\":-9223372036854775808,\"ratio\":0.25,\"state\":\"iteration_limit_reached\","
                                "\"phase\":\"review\",\"type\":\"simple\",\"status\":\"paused\"}",
                                0, &s, &bad) == 0);
        assert_streq(s.name, "n");
        assert_streq(s.note, "hi");
        assert_se(s.flag);
        assert_se(s.count == INT_MAX);
        assert_se(s.big == INT64_MIN);
        assert_se(s.ratio == 0.25);
        assert_se(s.state == TASK_ITERATION_LIMIT_REACHED);
        assert_se(s.phase == PHASE_REVIEW);
        assert_se(s.type == CONTRACT_TYPE_SIMPLE);
        assert_se(s.status == CONTRACT_PAUSED);
        sample_done(&s);

        /* Fields not present are left alone; null resets a nullable one. */
        s.count = 7;
        s.ratio = 2;
        s.note = strdup("old");
        assert_se(s.note);
        assert_se(dispatch_text("{\"name\":\"x\",\"note\":null,\"count\":null,\"status\":null,\"ratio\":3}", 0, &s,
                                &bad) == 0);
        assert_se(s.note == NULL);
        assert_se(s.count == 0);
        assert_se(s.status == _CONTRACT_STATUS_INVALID);
        assert_se(s.ratio == 3.0);     /* an integer is a fine double */
        sample_done(&s);

        /* Unknown fields, unless the table allows extras. */
        dispatch_bad("{\"name\":\"x\",\"status\":\"active\",\"bogus\":1}", 0, "bogus");
        assert_se(dispatch_text("{\"name\":\"x\",\"status\":\"active\",\"bogus\":1}", JSON_ALLOW_EXTRA, &s, &bad) == 0);
        sample_done(&s);

        /* Mandatory fields. */
        dispatch_bad("{\"status\":\"active\"}", 0, "name");
        dispatch_bad("{\"name\":\"x\"}", 0, "status");
        dispatch_bad("{}", JSON_ALLOW_EXTRA, "name");

        /* null where it is not allowed. */
        dispatch_bad("{\"name\":null,\"status\":\"active\"}", 0, "name");
        dispatch_bad("{\"name\":\"x\",\"status\":\"active\",\"flag\":null}", 0, "flag");

        /* Wrong types, each named. */
#define OBJ(field_and_value) "{\"name\":\"x\",\"status\":\"active\"," field_and_value "}"
        dispatch_bad(OBJ("\"note\":1"), 0, "note");
        dispatch_bad(OBJ("\"note\":[]"), 0, "note");
        dispatch_bad(OBJ("\"note\":\"a\\u0000b\""), 0, "note");
        dispatch_bad(OBJ("\"flag\":1"), 0, "flag");
        dispatch_bad(OBJ("\"flag\":\"true\""), 0, "flag");
        dispatch_bad(OBJ("\"count\":-1"), 0, "count");
        dispatch_bad(OBJ("\"count\":2147483648"), 0, "count");
        dispatch_bad(OBJ("\"count\":18446744073709551615"), 0, "count");
        dispatch_bad(OBJ("\"count\":1.0"), 0, "count");
        dispatch_bad(OBJ("\"count\":1e2"), 0, "count");
        dispatch_bad(OBJ("\"count\":\"3\""), 0, "count");
        dispatch_bad(OBJ("\"count\":true"), 0, "count");
        dispatch_bad(OBJ("\"big\":9223372036854775808"), 0, "big");
        dispatch_bad(OBJ("\"big\":0.5"), 0, "big");
        dispatch_bad(OBJ("\"big\":{}"), 0, "big");
        dispatch_bad(OBJ("\"ratio\":\"0.5\""), 0, "ratio");
        dispatch_bad(OBJ("\"ratio\":1e400"), 0, "ratio");
        dispatch_bad(OBJ("\"ratio\":-1e400"), 0, "ratio");
        dispatch_bad(OBJ("\"state\":\"sleeping\""), 0, "state");
        dispatch_bad(OBJ("\"state\":0"), 0, "state");
        dispatch_bad(OBJ("\"phase\":\"RESEARCH\""), 0, "phase");
        dispatch_bad(OBJ("\"type\":\"\""), 0, "type");
        dispatch_bad("{\"name\":\"x\",\"status\":\"done\"}", 0, "status");
        dispatch_bad("{\"name\":7,\"status\":\"active\"}", 0, "name");
#undef OBJ

        /* Not an object at all: no field to name. */
        dispatch_bad("[]", 0, NULL);
        dispatch_bad("\"name\"", 0, NULL);
        assert_se(json_dispatch(NULL, sample_table, 0, &s, NULL) == -EINVAL);

        /* null (allowed by JSON_NULLABLE) resets each kind of member. */
        {
                bool b = true;
                int i = 1;
                int64_t i64 = 1;
                double d = 1;
                TaskState ts = TASK_DONE;
                ContractPhase cp = PHASE_PLAN;
                ContractType ct = CONTRACT_TYPE_SIMPLE;
                char *str = strdup("x");

                assert_se(str);
                assert_se(json_dispatch_bool("b", NULL, &b) == 0 && !b);
                assert_se(json_dispatch_uint("i", NULL, &i) == 0 && i == 0);
                assert_se(json_dispatch_int64("i64", NULL, &i64) == 0 && i64 == 0);
                assert_se(json_dispatch_double("d", NULL, &d) == 0 && d == 0);
                assert_se(json_dispatch_task_state("ts", NULL, &ts) == 0 && ts == _TASK_STATE_INVALID);
                assert_se(json_dispatch_contract_phase("cp", NULL, &cp) == 0 && cp == _PHASE_INVALID);
                assert_se(json_dispatch_contract_type("ct", NULL, &ct) == 0 && ct == _CONTRACT_TYPE_INVALID);
                assert_se(json_dispatch_string("s", NULL, &str) == 0 && str == NULL);
        }

        /* Range edges of int64 and uint (int). */
        assert_se(dispatch_text("{\"name\":\"x\",\"status\":\"active\",\"big\":9223372036854775807,\"count\":0}", 0, &s,
                                &bad) == 0);
        assert_se(s.big == INT64_MAX && s.count == 0);
        sample_done(&s);
}

/* The vector json_dispatch_strv() makes of text, as "3:a|b|c", or the error. */
static int strv_dispatch(const char *text, char **ret) {
        _cleanup_json_ json_object *o = parse_ok(text);
        char **l = NULL, *joined = NULL;
        int r;

        r = json_dispatch_strv("l", o, &l);
        if (r < 0) {
                assert_se(!l);
                return r;
        }
        assert_se(l);
        for (size_t i = 0; l[i]; i++) {
                char *t = NULL;

                assert_se(asprintf(&t, "%s%s%s", strempty(joined), i > 0 ? "|" : "", l[i]) >= 0);
                free(joined);
                joined = t;
        }
        assert_se(asprintf(ret, "%zu:%s", strv_length(l), strempty(joined)) >= 0);
        free(joined);
        strv_free(l);
        return 0;
}

static void test_dispatch_strv(void) {
        typedef struct Files {
                char **files;
        } Files;
        static const JsonDispatchField table[] = {
                { "files", json_dispatch_strv, offsetof(Files, files), JSON_NULLABLE },
                {}
        };
        _cleanup_json_ json_object *o = NULL, *a = NULL;
        const char *bad = NULL;
        Files f = {};
        char *s = NULL;

        assert_se(strv_dispatch("[\".env\", \"config/local.yml\", \"\\u00fcn\\u00efc\\u00f8d\\u00e9 \\ud83d\\ude00\"]", &s) == 0);
        assert_streq(s, "3:.env|config/local.yml|ünïcødé 😀");
        s = mfree(s);
        /* [] is an empty vector, not NULL: the store keeps the two apart. */
        assert_se(strv_dispatch("[]", &s) == 0);
        assert_streq(s, "0:");
        s = mfree(s);
        assert_se(strv_dispatch("[\"\"]", &s) == 0);
        assert_streq(s, "1:");
        s = mfree(s);

        /* Only an array of strings, and no string a C string would cut short. */
        assert_se(strv_dispatch("\".env\"", &s) == -EINVAL);
        assert_se(strv_dispatch("{}", &s) == -EINVAL);
        assert_se(strv_dispatch("[\"a\", 1]", &s) == -EINVAL);
        assert_se(strv_dispatch("[\"a\", null]", &s) == -EINVAL);
        assert_se(strv_dispatch("[[\"a\"]]", &s) == -EINVAL);
        assert_se(strv_dispatch("[\"a\", true]", &s) == -EINVAL);
        assert_se(strv_dispatch("[\"a\\u0000b\"]", &s) == -EINVAL);
        assert_se(!s);

        /* Through the dispatcher: a value replaces the old one, null clears
         * it, and a bad one names the field and leaves the member alone. */
        o = parse_ok("{\"files\":[\"x\",\"y\"]}");
        assert_se(json_dispatch(o, table, 0, &f, &bad) == 0);
        assert_se(strv_length(f.files) == 2 && streq(f.files[1], "y"));
        o = (json_object_put(o), NULL);
        o = parse_ok("{\"files\":[\"z\",7]}");
        assert_se(json_dispatch(o, table, 0, &f, &bad) == -EINVAL);
        assert_streq(bad, "files");
        assert_se(strv_length(f.files) == 2 && streq(f.files[0], "x"));
        o = (json_object_put(o), NULL);
        o = parse_ok("{\"files\":null}");
        assert_se(json_dispatch(o, table, 0, &f, &bad) == 0);
        assert_se(!f.files);

        /* And back: NULL and the empty vector both make []. */
        assert_se(json_new_strv(NULL, &a) == 0);
        assert_streq(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN), "[]");
        a = (json_object_put(a), NULL);
        assert_se(json_new_strv((char *[]) { NULL }, &a) == 0);
        assert_streq(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN), "[]");
        a = (json_object_put(a), NULL);
        assert_se(json_new_strv((char *[]) { (char *) "a/b", (char *) "\"q\"", NULL }, &a) == 0);
        assert_streq(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                     "[\"a/b\",\"\\\"q\\\"\"]");
}

static void test_timestamp(void) {
        char buf[TIMESTAMP_STRING_MAX];

        assert_se(format_timestamp(buf, 0) == NULL);
        assert_streq(format_timestamp(buf, 1), "1970-01-01T00:00:00.000001Z");
        assert_streq(format_timestamp(buf, 1700000000123456), "2023-11-14T22:13:20.123456Z");
        assert_streq(format_timestamp(buf, 951782400000000), "2000-02-29T00:00:00.000000Z");
        assert_streq(format_timestamp(buf, 253402300799999999), "9999-12-31T23:59:59.999999Z");
        /* The largest value still fits the buffer. */
        assert_se(format_timestamp(buf, UINT64_MAX - 1) == NULL || strlen(buf) < TIMESTAMP_STRING_MAX);
}

static const char *get_string(json_object *o, const char *key) {
        json_object *v;

        assert_se(json_object_object_get_ex(o, key, &v));
        return v ? json_object_get_string(v) : NULL;
}

static bool is_null(json_object *o, const char *key) {
        json_object *v = (json_object *) 0x1;

        assert_se(json_object_object_get_ex(o, key, &v));
        return v == NULL;
}

static void assert_keys(json_object *o, const char *const *keys, size_t n) {
        assert_se(json_object_object_length(o) == (int) n);
        for (size_t i = 0; i < n; i++)
                if (!json_object_object_get_ex(o, keys[i], NULL)) {
                        fprintf(stderr, "missing key %s\n", keys[i]);
                        abort();
                }
}

static void test_task_to_json(void) {
        static const char *const keys[] = {
                "id", "owner", "name", "plan", "repo", "base_branch", "target_branch", "copy_files", "parent_task_id",
                "contract_id", "is_supervisor", "autonomous_loop", "max_iterations", "iteration_count", "status",
                "error", "worktree", "branch", "session_id", "cost_usd", "max_cost_usd", "base_commit", "tasks_max",
                "memory_max", "cpu_weight", "created_at", "updated_at", "started_at", "completed_at", "version",
        };
        _cleanup_(task_freep) Task *t = task_new(), *back = task_new();
        _cleanup_json_ json_object *o = NULL, *parsed = NULL;
        const char *text, *bad = NULL;
        json_object *v;

        assert_se(t && back);
        /* A fresh task: the unset strings, max_iterations and timestamps are null. */
        assert_se(task_to_json(t, &o) == 0);
        assert_keys(o, keys, ELEMENTSOF(keys));
        assert_se(is_null(o, "id") && is_null(o, "owner") && is_null(o, "plan") && is_null(o, "repo"));
        assert_se(is_null(o, "error") && is_null(o, "worktree") && is_null(o, "session_id"));
        assert_se(is_null(o, "max_iterations") && is_null(o, "max_cost_usd"));
        /* No limits of its own: null, the configuration's apply. */
        assert_se(is_null(o, "tasks_max") && is_null(o, "memory_max") && is_null(o, "cpu_weight"));
        assert_se(is_null(o, "base_commit"));
        assert_se(is_null(o, "created_at") && is_null(o, "updated_at") && is_null(o, "started_at") &&
                  is_null(o, "completed_at"));
        assert_streq(get_string(o, "status"), "pending");
        assert_se(json_object_object_get_ex(o, "iteration_count", &v) && json_object_get_int(v) == 0);
        assert_se(json_object_object_get_ex(o, "is_supervisor", &v) && json_object_is_type(v, json_type_boolean));
        /* No files to copy is an empty array, never null. */
        assert_se(json_object_object_get_ex(o, "copy_files", &v) && json_object_is_type(v, json_type_array) &&
                  json_object_array_length(v) == 0);
        o = (json_object_put(o), NULL);

        t->id = strdup("0b7f3c1e-2d4a-4f6b-8c9d-0e1f2a3b4c5d");
        t->owner = strdup("alice");
        t->name = strdup("fix \"the\" bug");
        t->plan = strdup("line 1\nline 2 \xc3\xa9");
        t->repo = strdup("/srv/repo.git");
        t->base_branch = strdup("main");
        t->target_branch = strdup("feature");
        assert_se(strv_extend(&t->copy_files, ".env") == 0);
        assert_se(strv_extend(&t->copy_files, "config/m\xc3\xa9t\xc3\xa9o.yml") == 0);
        t->error = strdup("boom");
        t->is_supervisor = true;
        t->autonomous_loop = true;
        t->max_iterations = 25;
        t->iteration_count = 3;
        t->status = TASK_RUNNING;
        t->cost_usd = 1.25;
        t->max_cost_usd = 2.5;
        t->base_commit = strdup("0123456789abcdef0123456789abcdef01234567");
        t->tasks_max = 64;
        t->memory_max = INT64_C(3) << 30;
        t->cpu_weight = 50;
        t->admin = true;
        t->created_at = 1700000000000000;
        t->completed_at = 1700000000000001;
        t->version = 9;

        assert_se(task_to_json(t, &o) == 0);
        assert_keys(o, keys, ELEMENTSOF(keys));
        assert_streq(get_string(o, "name"), "fix \"the\" bug");
        assert_streq(get_string(o, "status"), "running");
        assert_streq(get_string(o, "created_at"), "2023-11-14T22:13:20.000000Z");
        assert_streq(get_string(o, "completed_at"), "2023-11-14T22:13:20.000001Z");
        assert_se(is_null(o, "parent_task_id") && is_null(o, "started_at"));
        assert_se(json_object_object_get_ex(o, "max_iterations", &v) && json_object_get_int(v) == 25);
        assert_se(json_object_object_get_ex(o, "cost_usd", &v) && json_object_get_double(v) == 1.25);
        assert_se(json_object_object_get_ex(o, "max_cost_usd", &v) && json_object_is_type(v, json_type_double) &&
                  json_object_get_double(v) == 2.5);
        assert_se(json_object_object_get_ex(o, "version", &v) && json_object_get_int64(v) == 9);
        assert_streq(get_string(o, "base_commit"), "0123456789abcdef0123456789abcdef01234567");
        assert_se(json_object_object_get_ex(o, "tasks_max", &v) && json_object_get_int64(v) == 64);
        assert_se(json_object_object_get_ex(o, "memory_max", &v) && json_object_get_int64(v) == INT64_C(3) << 30);
        assert_se(json_object_object_get_ex(o, "cpu_weight", &v) && json_object_get_int64(v) == 50);
        /* Whether an administrator made it is for the worker, not for clients. */
        assert_se(!json_object_object_get_ex(o, "admin", NULL));
        assert_se(json_object_object_get_ex(o, "copy_files", &v) && json_object_array_length(v) == 2);
        assert_streq(json_object_get_string(json_object_array_get_idx(v, 1)), "config/m\xc3\xa9t\xc3\xa9o.yml");

        /* Through text and back into a Task by the dispatcher: the same values. */
        static const JsonDispatchField task_table[] = {
                { "id", json_dispatch_string, offsetof(Task, id), JSON_NULLABLE },
                { "owner", json_dispatch_string, offsetof(Task, owner), JSON_NULLABLE },
                { "name", json_dispatch_string, offsetof(Task, name), JSON_MANDATORY },
                { "plan", json_dispatch_string, offsetof(Task, plan), JSON_NULLABLE },
                { "repo", json_dispatch_string, offsetof(Task, repo), JSON_NULLABLE },
                { "base_branch", json_dispatch_string, offsetof(Task, base_branch), JSON_NULLABLE },
                { "target_branch", json_dispatch_string, offsetof(Task, target_branch), JSON_NULLABLE },
                { "copy_files", json_dispatch_strv, offsetof(Task, copy_files), JSON_NULLABLE },
                { "parent_task_id", json_dispatch_string, offsetof(Task, parent_task_id), JSON_NULLABLE },
                { "is_supervisor", json_dispatch_bool, offsetof(Task, is_supervisor), 0 },
                { "autonomous_loop", json_dispatch_bool, offsetof(Task, autonomous_loop), 0 },
                { "max_iterations", json_dispatch_uint, offsetof(Task, max_iterations), JSON_NULLABLE },
                { "iteration_count", json_dispatch_uint, offsetof(Task, iteration_count), 0 },
                { "status", json_dispatch_task_state, offsetof(Task, status), 0 },
                { "error", json_dispatch_string, offsetof(Task, error), JSON_NULLABLE },
                { "cost_usd", json_dispatch_double, offsetof(Task, cost_usd), 0 },
                { "max_cost_usd", json_dispatch_double, offsetof(Task, max_cost_usd), JSON_NULLABLE },
                { "version", json_dispatch_int64, offsetof(Task, version), 0 },
                {}
        };
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        parsed = parse_ok(text);
        assert_se(json_dispatch(parsed, task_table, JSON_ALLOW_EXTRA, back, &bad) == 0);
        assert_streq(back->id, t->id);
        assert_streq(back->owner, t->owner);
        assert_streq(back->name, t->name);
        assert_streq(back->plan, t->plan);
        assert_streq(back->repo, t->repo);
        assert_streq(back->base_branch, t->base_branch);
        assert_streq(back->target_branch, t->target_branch);
        assert_se(back->parent_task_id == NULL);
        assert_se(strv_length(back->copy_files) == 2);
        assert_streq(back->copy_files[0], ".env");
        assert_streq(back->copy_files[1], t->copy_files[1]);
        assert_se(back->is_supervisor && back->autonomous_loop);
        assert_se(back->max_iterations == 25 && back->iteration_count == 3);
        assert_se(back->status == TASK_RUNNING);
        assert_streq(back->error, "boom");
        assert_se(back->cost_usd == 1.25);
        assert_se(back->max_cost_usd == 2.5);
        assert_se(back->version == 9);
        /* Without ALLOW_EXTRA the fields the table lacks are named. */
        bad = NULL;
        assert_se(json_dispatch(parsed, task_table, 0, back, &bad) == -EINVAL);
        assert_se(bad);
        for (const JsonDispatchField *f = task_table; f->name; f++)
                assert_se(!streq(f->name, bad));
        assert_se(json_object_object_get_ex(parsed, bad, NULL));
}

static void test_contract_to_json(void) {
        static const char *const keys[] = {
                "id", "owner", "name", "description", "type", "phase", "status", "autonomous_loop",
                "supervisor_task_id", "max_cost_usd", "phases", "created_at", "updated_at", "version",
        };
        static const struct {
                ContractType type;
                const char *phases;
        } types[] = {
                { CONTRACT_TYPE_SPEC, "[\"research\",\"specify\",\"plan\",\"execute\",\"review\"]" },
                { CONTRACT_TYPE_SIMPLE, "[\"plan\",\"execute\",\"review\"]" },
                { CONTRACT_TYPE_EXECUTE, "[\"execute\",\"review\"]" },
        };

        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                _cleanup_(contract_freep) Contract *c = contract_new();
                _cleanup_json_ json_object *o = NULL;
                json_object *v;

                assert_se(c);
                c->type = types[i].type;
                c->phase = contract_type_first_phase(c->type);
                c->name = strdup("c");
                c->supervisor_task_id = i == 0 ? strdup("0b7f3c1e-2d4a-4f6b-8c9d-0e1f2a3b4c5d") : NULL;
                c->status = CONTRACT_PAUSED;
                c->max_cost_usd = i == 1 ? 0.75 : 0;
                c->updated_at = 2 * USEC_PER_SEC;
                c->version = 3;

                assert_se(contract_to_json(c, &o) == 0);
                assert_keys(o, keys, ELEMENTSOF(keys));
                assert_streq(get_string(o, "type"), contract_type_to_string(types[i].type));
                assert_streq(get_string(o, "phase"), contract_phase_to_string(c->phase));
                assert_streq(get_string(o, "status"), "paused");
                assert_se(json_object_object_get_ex(o, "phases", &v));
                assert_streq(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), types[i].phases);
                assert_se(is_null(o, "id") && is_null(o, "description") && is_null(o, "created_at"));
                assert_se(i == 0 ? !is_null(o, "supervisor_task_id") : is_null(o, "supervisor_task_id"));
                /* No limit (0) is null; a limit is its number. */
                if (i == 1)
                        assert_se(json_object_object_get_ex(o, "max_cost_usd", &v) &&
                                  json_object_get_double(v) == 0.75);
                else
                        assert_se(is_null(o, "max_cost_usd"));
                assert_streq(get_string(o, "updated_at"), "1970-01-01T00:00:02.000000Z");
                assert_se(json_object_object_get_ex(o, "autonomous_loop", &v) && !json_object_get_boolean(v));
                assert_se(json_object_object_get_ex(o, "version", &v) && json_object_get_int64(v) == 3);
        }
}

static void test_event_to_json(void) {
        static const char *const keys[] = { "seq", "type", "created_at", "data" };
        Event e = {
                .object_id = (char *) "0b7f3c1e-2d4a-4f6b-8c9d-0e1f2a3b4c5d",
                .seq = 12,
                .type = (char *) "assistant",
                .payload = (char *) "{\"text\":\"hello\",\"n\":[1,2]}",
                .created_at = 1700000000123456,
        };
        _cleanup_json_ json_object *o = NULL;
        json_object *v;

        assert_se(event_to_json(&e, &o) == 0);
        assert_keys(o, keys, ELEMENTSOF(keys));
        assert_se(json_object_object_get_ex(o, "seq", &v) && json_object_get_int64(v) == 12);
        assert_streq(get_string(o, "type"), "assistant");
        assert_streq(get_string(o, "created_at"), "2023-11-14T22:13:20.123456Z");
        assert_se(json_object_object_get_ex(o, "data", &v) && json_object_is_type(v, json_type_object));
        assert_streq(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), "{\"text\":\"hello\",\"n\":[1,2]}");
        o = (json_object_put(o), NULL);

        /* A payload that is not JSON is shown as a string. */
        e.payload = (char *) "plain text, {not json";
        assert_se(event_to_json(&e, &o) == 0);
        assert_se(json_object_object_get_ex(o, "data", &v) && json_object_is_type(v, json_type_string));
        assert_streq(json_object_get_string(v), "plain text, {not json");
        o = (json_object_put(o), NULL);

        e.payload = NULL;
        e.created_at = 0;
        assert_se(event_to_json(&e, &o) == 0);
        assert_keys(o, keys, ELEMENTSOF(keys));
        assert_se(is_null(o, "data") && is_null(o, "created_at"));
}

static void test_add(void) {
        _cleanup_json_ json_object *o = json_object_new_object();

        assert_se(o);
        assert_se(json_add_string(o, "s", "v") == 0);
        assert_se(json_add_string(o, "n", NULL) == 0);
        assert_se(json_add_timestamp(o, "t", 1) == 0);
        assert_se(json_add_timestamp(o, "z", 0) == 0);
        assert_streq(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                     "{\"s\":\"v\",\"n\":null,\"t\":\"1970-01-01T00:00:00.000001Z\",\"z\":null}");
}

int main(void) {
        test_parse_accepts();
        test_parse_refuses();
        test_round_trip();
        test_dispatch();
        test_dispatch_strv();
        test_timestamp();
        test_task_to_json();
        test_contract_to_json();
        test_event_to_json();
        test_add();
        printf("test-json-util: ok\n");
        return EXIT_SUCCESS;
}
