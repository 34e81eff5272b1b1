/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests of the completion gate parser: both forms, which block counts when
 * there are several or none, every kind of malformed block with its message,
 * the edge cases agents produce (fences, CRLF, unicode, tags in prose and in
 * JSON strings), and the JSON and summary forms. */

#include "completion-gate.h"
#include "conf.h"
#include "json-util.h"
#include "tests.h"

#define OPEN COMPLETION_GATE_OPEN
#define CLOSE COMPLETION_GATE_CLOSE

static CompletionGate *find_ok(const char *text) {
        CompletionGate *g = NULL;
        char *error = (char *) "untouched";
        int r;

        r = completion_gate_find(text, strlen(text), &g, &error);
        if (r != 1) {
                fprintf(stderr, "expected a gate (r=%d, error=%s) in:\n%s\n", r,
                        r == -EBADMSG ? error : "-", text);
                abort();
        }
        assert_se(!error);
        assert_se(g);
        assert_se(g->blockers);
        assert_se(json_object_is_type(g->extra, json_type_object));
        return g;
}

/* Returns the error message of a malformed block. */
static char *find_bad(const char *text) {
        CompletionGate *g = NULL;
        char *error = NULL;
        int r;

        r = completion_gate_find(text, strlen(text), &g, &error);
        if (r != -EBADMSG) {
                fprintf(stderr, "expected a malformed block (r=%d) in:\n%s\n", r, text);
                abort();
        }
        assert_se(!g);
        assert_se(error);
        return error;
}

static void assert_bad(const char *text, const char *message) {
        _cleanup_free_ char *error = find_bad(text);

        if (!streq(error, message)) {
                fprintf(stderr, "got \"%s\", expected \"%s\" for:\n%s\n", error, message, text);
                abort();
        }
}

static void assert_none(const char *text, const char *message) {
        CompletionGate *g = NULL;
        _cleanup_free_ char *error = (char *) "untouched";

        assert_se(completion_gate_find(text, strlen(text), &g, &error) == 0);
        assert_se(!g);
        assert_streq(error, message);
}

static const char *extra_string(const CompletionGate *g, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(g->extra, key, &v))
                return NULL;
        return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

static void test_yaml(void) {
        _cleanup_(completion_gate_freep) CompletionGate *g = NULL;

        g = find_ok("I fixed the parser; the CLI still fails.\n"
                    OPEN "\n"
                    "ready: false\n"
                    "reason: the CLI test fails\n"
                    "progress: wrote the parser and its tests\n"
                    "blockers:\n"
                    "  - make check fails in test-cli\n"
                    "  - \"missing fixture: a.json\"\n"
                    "next_step: write the docs\n"
                    CLOSE "\n");
        assert_se(!g->ready);
        assert_streq(g->reason, "the CLI test fails");
        assert_streq(g->progress, "wrote the parser and its tests");
        assert_strv(g->blockers, "make check fails in test-cli", "missing fixture: a.json");
        assert_streq(completion_gate_first_blocker(g), "make check fails in test-cli");
        assert_streq(json_object_to_json_string_ext(g->extra, JSON_C_TO_STRING_PLAIN),
                     "{\"next_step\":\"write the docs\"}");
        g = completion_gate_free(g);

        /* Only ready is required; the rest reads as absent. */
        g = find_ok(OPEN "ready: yes" CLOSE);
        assert_se(g->ready);
        assert_se(!g->reason && !g->progress);
        assert_strv(g->blockers, NULL);
        assert_se(!completion_gate_first_blocker(g));
        assert_se(json_object_object_length(g->extra) == 0);
}

static void test_json(void) {
        _cleanup_(completion_gate_freep) CompletionGate *g = NULL;

        g = find_ok(OPEN "\n{\"ready\": true, \"reason\": \"all done\", \"progress\": \"100%\", \"blockers\": [],\n"
                    " \"files\": [\"a.c\", \"b.c\"], \"score\": 3, \"note\": null}\n" CLOSE);
        assert_se(g->ready);
        assert_streq(g->reason, "all done");
        assert_streq(g->progress, "100%");
        assert_strv(g->blockers, NULL);
        assert_streq(extra_string(g, "files"), "[\"a.c\",\"b.c\"]");
        assert_streq(extra_string(g, "score"), "3");
        assert_streq(extra_string(g, "note"), "null");
        g = completion_gate_free(g);

        g = find_ok(OPEN "{\"ready\": false, \"blockers\": [\"tests fail\", \"docs\"]}" CLOSE);
        assert_se(!g->ready);
        assert_strv(g->blockers, "tests fail", "docs");
        g = completion_gate_free(g);

        /* ready as a string or 0/1, blockers as one string, null, or with
         * values that are not strings (kept as their JSON text) */
        g = find_ok(OPEN "{\"ready\": \"Yes\", \"blockers\": \"the build\"}" CLOSE);
        assert_se(g->ready);
        assert_strv(g->blockers, "the build");
        g = completion_gate_free(g);
        g = find_ok(OPEN "{\"ready\": 0, \"blockers\": null, \"reason\": null}" CLOSE);
        assert_se(!g->ready);
        assert_strv(g->blockers, NULL);
        assert_se(!g->reason);
        g = completion_gate_free(g);
        g = find_ok(OPEN "{\"ready\": 1, \"blockers\": [1, {\"file\": \"x.c\"}, null, \" \", \" y \"],"
                    " \"reason\": 42, \"progress\": [\"parser\", \"tests\"]}" CLOSE);
        assert_se(g->ready);
        assert_strv(g->blockers, "1", "{\"file\":\"x.c\"}", "y");
        assert_streq(g->reason, "42");
        assert_streq(g->progress, "parser; tests");
        g = completion_gate_free(g);
        g = find_ok(OPEN "{\"ready\": false, \"blockers\": \"None\"}" CLOSE);
        assert_strv(g->blockers, NULL);
        g = completion_gate_free(g);

        /* Known keys in any case. */
        g = find_ok(OPEN "{\"Ready\": true, \"REASON\": \"done\"}" CLOSE);
        assert_se(g->ready);
        assert_streq(g->reason, "done");
        assert_se(json_object_object_length(g->extra) == 0);
}

static void test_last_of_several(void) {
        _cleanup_(completion_gate_freep) CompletionGate *g = NULL;

        g = find_ok(OPEN "ready: false\nreason: first" CLOSE "\nmore work\n"
                    OPEN "ready: true\nreason: second" CLOSE "\nbye\n");
        assert_se(g->ready);
        assert_streq(g->reason, "second");
        g = completion_gate_free(g);

        g = find_ok(OPEN "{\"ready\": true}" CLOSE OPEN "ready: no\nreason: third" CLOSE);
        assert_se(!g->ready);
        assert_streq(g->reason, "third");
        g = completion_gate_free(g);

        /* The iteration's assistant text and its result text, concatenated:
         * an earlier turn's gate is superseded by the result's. */
        g = find_ok("Working on it.\n" OPEN "\nready: false\nblockers: tests\n" CLOSE "\n"
                    "Fixed the tests.\n" OPEN "\nready: true\nreason: tests pass\n" CLOSE "\n"
                    "Fixed the tests.\n" OPEN "\nready: true\nreason: tests pass\n" CLOSE "\n");
        assert_se(g->ready);
        assert_streq(g->reason, "tests pass");
        g = completion_gate_free(g);

        /* … and a result text without a gate leaves the assistant's. */
        g = find_ok("Done.\n" OPEN "\nready: true\n" CLOSE "\nDone, see above.");
        assert_se(g->ready);
        g = completion_gate_free(g);

        /* A malformed last block is malformed: the earlier one is stale. */
        assert_bad(OPEN "ready: true" CLOSE OPEN "ready: maybe" CLOSE, "ready: expected true/false, got 'maybe'");
        assert_bad(OPEN "ready: true" CLOSE OPEN "reason: forgot it" CLOSE, "missing 'ready'");
}

static void test_none(void) {
        CompletionGate *g = (CompletionGate *) 0x1;
        char *error = (char *) "untouched";

        assert_none("", NULL);
        assert_none("All done, no gate.", NULL);
        assert_none("<COMPLETION GATE>ready: true</COMPLETION GATE>", NULL);
        assert_none("<completion_gate>ready: true</completion_gate>", NULL);    /* tags are case-sensitive */
        assert_none(CLOSE "ready: true" CLOSE, NULL);                         /* no opening tag */
        assert_none("<COMPLETION_GATE", NULL);

        assert_se(completion_gate_find(NULL, 0, &g, &error) == 0);
        assert_se(!error);
        assert_se(g == (CompletionGate *) 0x1);          /* not written */
        assert_se(completion_gate_find(NULL, 1, &g, &error) == -EINVAL);
        assert_se(completion_gate_find("x", 1, NULL, NULL) == 0);
}

static void test_unterminated(void) {
        _cleanup_(completion_gate_freep) CompletionGate *g = NULL;

        assert_none(OPEN "\nready: true\nreason: cut off", "unterminated <COMPLETION_GATE> block");
        assert_none("text " OPEN, "unterminated <COMPLETION_GATE> block");
        assert_none(CLOSE " then " OPEN "ready: true", "unterminated <COMPLETION_GATE> block");

        /* An opening tag after a complete block is the agent naming it in prose. */
        g = find_ok(OPEN "ready: true" CLOSE "\nThe " OPEN " above says I am done.");
        assert_se(g->ready);
        g = completion_gate_free(g);

        /* … and so is a closing tag with nothing to close. */
        g = find_ok(OPEN "ready: true" CLOSE "\nI closed it with " CLOSE ".");
        assert_se(g->ready);
}

static void test_malformed(void) {
        _cleanup_free_ char *big = NULL, *many = NULL, *e = NULL;
        size_t len = 0;

        assert_bad(OPEN "ready: maybe" CLOSE, "ready: expected true/false, got 'maybe'");
        assert_bad(OPEN "ready: maybe later\nwhen the tests pass" CLOSE,
                   "ready: expected true/false, got 'maybe later when the tests pass'");
        assert_bad(OPEN "ready:" CLOSE, "ready: expected true/false, got ''");
        assert_bad(OPEN "ready: null" CLOSE, "ready: expected true/false, got null");
        assert_bad(OPEN "ready:\n - true" CLOSE, "ready: expected true/false, got '[\"true\"]'");
        assert_bad(OPEN "reason: no ready here\nblockers: none" CLOSE, "missing 'ready'");
        assert_bad(OPEN CLOSE, "empty block (missing 'ready')");
        assert_bad(OPEN " \n\t\n" CLOSE, "empty block (missing 'ready')");
        assert_bad(OPEN "```\n```" CLOSE, "empty block (missing 'ready')");
        assert_bad(OPEN "I am done!" CLOSE, "line 1: expected 'key: value', got 'I am done!'");
        assert_bad(OPEN "\n# comment\n\n- item\nready: true" CLOSE, "line 3: expected 'key: value', got '- item'");
        assert_bad(OPEN "ready: true\nready: false" CLOSE, "line 2: duplicate key 'ready'");
        assert_bad(OPEN "ready: true\nnote: a\nnote: b" CLOSE, "line 3: duplicate key 'note'");
        assert_bad(OPEN "ready: true\nReady: true" CLOSE, "duplicate key 'ready'");
        assert_bad(OPEN "ready: true\nreason: \"open" CLOSE, "line 2: unterminated quote");
        assert_bad(OPEN "ready: true\nreason: 'it''s" CLOSE, "line 2: unterminated quote");
        assert_bad(OPEN "ready: true\nreason: \"a\" b" CLOSE, "line 2: text after the closing quote: 'b'");
        assert_bad(OPEN "ready: true\nreason: \"quoted\"\nand wrapped" CLOSE,
                   "line 3: expected 'key: value', got 'and wrapped'");
        assert_bad(OPEN "ready: false\nblockers: [\"a\", b]" CLOSE,
                   "line 2: blockers: invalid JSON array: unexpected character");
        assert_bad(OPEN "{\"ready\": maybe}" CLOSE, "invalid JSON: unexpected character");
        assert_bad(OPEN "{\"ready\": true" CLOSE, "invalid JSON: unexpected end of input");
        assert_bad(OPEN "{\"ready\": true} trailing" CLOSE, "invalid JSON: trailing data after the JSON value");
        assert_bad(OPEN "{\"ready\": \"maybe\"}" CLOSE, "ready: expected true/false, got 'maybe'");
        assert_bad(OPEN "{\"ready\": 2}" CLOSE, "ready: expected true/false, got '2'");
        assert_bad(OPEN "{\"ready\": {\"x\": 1}}" CLOSE, "ready: expected true/false, got '{\"x\":1}'");
        assert_bad(OPEN "{\"reason\": \"x\"}" CLOSE, "missing 'ready'");
        assert_bad(OPEN "{\"ready\": true, \"READY\": true}" CLOSE, "duplicate key 'ready'");
        assert_bad(OPEN "ready: true\xff" CLOSE, "invalid UTF-8 in the block");
        assert_bad(OPEN "ready: \xed\xa0\x80" CLOSE, "invalid UTF-8 in the block");     /* a surrogate */
        assert_bad(OPEN "ready: \xc0\xae" CLOSE, "invalid UTF-8 in the block");         /* overlong */

        /* A long bad value is quoted cut short. */
        e = find_bad(OPEN "ready: maybe" "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee" CLOSE);
        assert_streq(e, "ready: expected true/false, got 'maybe" "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee…'");

        /* a NUL inside the block (text given with its length) */
        {
                static const char t[] = OPEN "ready: true\0" CLOSE;
                CompletionGate *g = NULL;
                _cleanup_free_ char *error = NULL;

                assert_se(completion_gate_find(t, sizeof(t) - 1, &g, &error) == -EBADMSG);
                assert_streq(error, "NUL byte in the block");
                assert_se(!g);
        }

        /* size limits: the block, and the number of blockers */
        big = malloc(COMPLETION_GATE_SIZE_MAX + 100);
        assert_se(big);
        strcpy(big, OPEN "ready: true\nreason: ");
        len = strlen(big);
        memset(big + len, 'x', COMPLETION_GATE_SIZE_MAX);
        strcpy(big + len + COMPLETION_GATE_SIZE_MAX, CLOSE);
        assert_bad(big, "block larger than 64 KiB");

        many = malloc(COMPLETION_GATE_BLOCKERS_MAX * 16 + 100);
        assert_se(many);
        len = (size_t) sprintf(many, OPEN "ready: false\nblockers:\n");
        for (unsigned i = 0; i < COMPLETION_GATE_BLOCKERS_MAX; i++)
                len += (size_t) sprintf(many + len, "- b%u\n", i);
        strcpy(many + len, CLOSE);
        {
                _cleanup_(completion_gate_freep) CompletionGate *g = find_ok(many);
                assert_se(strv_length(g->blockers) == COMPLETION_GATE_BLOCKERS_MAX);
        }
        strcpy(many + len, "- one too many\n" CLOSE);
        assert_bad(many, "blockers: more than 100");
}

static void test_ready_values(void) {
        static const struct {
                const char *value;
                bool ready;
        } table[] = {
                { "true", true },   { "TRUE", true },    { "True", true },    { "yes", true },
                { "Yes", true },    { "YES", true },     { "1", true },       { "false", false },
                { "FALSE", false }, { "no", false },     { "No", false },     { "0", false },
                { "\"true\"", true }, { "'no'", false }, { " yes ", true },   { "true # all done", true },
                { "false\t# tests fail", false },        { "\"yes\" # quoted", true },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                _cleanup_(completion_gate_freep) CompletionGate *g = NULL;
                _cleanup_free_ char *text = NULL;

                assert_se(asprintf(&text, OPEN "ready: %s" CLOSE, table[i].value) > 0);
                g = find_ok(text);
                assert_se(g->ready == table[i].ready);
        }

        assert_bad(OPEN "ready: y" CLOSE, "ready: expected true/false, got 'y'");
        assert_bad(OPEN "ready: on" CLOSE, "ready: expected true/false, got 'on'");
        assert_bad(OPEN "ready: true#x" CLOSE, "ready: expected true/false, got 'true#x'");
}

static void test_blockers(void) {
        _cleanup_(completion_gate_freep) CompletionGate *g = NULL;

        /* a JSON array on the line and a YAML list say the same */
        g = find_ok(OPEN "ready: false\nblockers: [\"tests fail\", \"lint: 3 warnings\"]" CLOSE);
        assert_strv(g->blockers, "tests fail", "lint: 3 warnings");
        g = completion_gate_free(g);
        g = find_ok(OPEN "ready: false\nblockers:\n- tests fail\n- 'lint: 3 warnings'" CLOSE);
        assert_strv(g->blockers, "tests fail", "lint: 3 warnings");
        g = completion_gate_free(g);
        g = find_ok(OPEN "ready: false\nblockers:\n  * tests fail\n  *\n  * lint" CLOSE);     /* markdown bullets */
        assert_strv(g->blockers, "tests fail", "lint");
        g = completion_gate_free(g);

        /* a single string, quoted or not; a quoted "[" is not an array */
        g = find_ok(OPEN "ready: false\nblockers: the build is broken" CLOSE);
        assert_strv(g->blockers, "the build is broken");
        g = completion_gate_free(g);
        g = find_ok(OPEN "ready: false\nblockers: \"[not an array\"" CLOSE);
        assert_strv(g->blockers, "[not an array");
        g = completion_gate_free(g);

        /* every way of saying none */
        static const char *const none[] = { "[]", "none", "None", "\"none\"", "null", "~", "", " [ ] ", "\"\"" };
        for (size_t i = 0; i < ELEMENTSOF(none); i++) {
                _cleanup_free_ char *text = NULL;

                assert_se(asprintf(&text, OPEN "ready: true\nblockers: %s" CLOSE, none[i]) > 0);
                g = find_ok(text);
                assert_strv(g->blockers, NULL);
                g = completion_gate_free(g);
        }

        /* a wrapped item continues; a list for reason and progress is joined */
        g = find_ok(OPEN "ready: false\nblockers:\n - the integration test\n   times out on CI\n - lint\n"
                    "progress:\n - parser\n - tests\n" CLOSE);
        assert_strv(g->blockers, "the integration test times out on CI", "lint");
        assert_streq(g->progress, "parser; tests");
}

static void test_extra(void) {
        _cleanup_(completion_gate_freep) CompletionGate *g = NULL;

        g = find_ok(OPEN "ready: true\n"
                    "confidence: high\n"
                    "files_changed:\n - a.c\n - b.c\n"
                    "tests: null\n"
                    "empty:\n"
                    "summary: 'it''s done'\n"
                    "next-step.x: \"say \\\"hi\\\"\\n\"\n" CLOSE);
        assert_streq(json_object_to_json_string_ext(g->extra, JSON_C_TO_STRING_PLAIN),
                     "{\"confidence\":\"high\",\"files_changed\":[\"a.c\",\"b.c\"],\"tests\":null,\"empty\":\"\","
                     "\"summary\":\"it's done\",\"next-step.x\":\"say \\\"hi\\\"\\n\"}");
}

static void test_layout(void) {
        _cleanup_(completion_gate_freep) CompletionGate *g = NULL;

        /* CRLF */
        g = find_ok(OPEN "\r\nready: yes\r\nreason: ok\r\nblockers:\r\n- a\r\n- b\r\n" CLOSE "\r\n");
        assert_se(g->ready);
        assert_streq(g->reason, "ok");
        assert_strv(g->blockers, "a", "b");
        g = completion_gate_free(g);

        /* indented, with comments, document markers, spaces before the colon, capitalised keys */
        g = find_ok("    " OPEN "\n"
                    "    ---\n"
                    "    # the agent's own comment\n"
                    "    Ready : false\n"
                    "    REASON: issue #12 is still open\n"
                    "    ...\n"
                    "    " CLOSE);
        assert_se(!g->ready);
        assert_streq(g->reason, "issue #12 is still open");
        assert_se(json_object_object_length(g->extra) == 0);
        g = completion_gate_free(g);

        /* tags inside a fenced code block, and a fence inside the tags */
        g = find_ok("Here is my gate:\n```\n" OPEN "\nready: true\n" CLOSE "\n```\n");
        assert_se(g->ready);
        g = completion_gate_free(g);
        g = find_ok(OPEN "\n```yaml\nready: false\nreason: x\n```\n" CLOSE);
        assert_se(!g->ready);
        assert_streq(g->reason, "x");
        g = completion_gate_free(g);
        g = find_ok(OPEN "\n  ```json\n  {\"ready\": true}\n  ```  \n" CLOSE);
        assert_se(g->ready);
        g = completion_gate_free(g);

        /* wrapped values: on the next line, continued, and "- detail" under a value */
        g = find_ok(OPEN "\nready: false\nreason:\n  the tests fail\n  on CI only\n"
                    "progress: parser done:\n  - tests\n  - docs\n"
                    "note: see https://example.com/x#y\n" CLOSE);
        assert_streq(g->reason, "the tests fail on CI only");
        assert_streq(g->progress, "parser done: - tests - docs");
        assert_streq(extra_string(g, "note"), "\"see https:\\/\\/example.com\\/x#y\"");
        g = completion_gate_free(g);

        /* a long wrapped value (thousands of lines) grows in one piece */
        {
                _cleanup_free_ char *text = NULL;
                size_t len;

                text = malloc(5000 * 6 + 100);
                assert_se(text);
                len = (size_t) sprintf(text, OPEN "ready: false\nreason: w0000\n");
                for (unsigned i = 1; i < 5000; i++)
                        len += (size_t) sprintf(text + len, "w%04u\n", i);
                strcpy(text + len, CLOSE);
                g = find_ok(text);
                assert_se(strlen(g->reason) == 5000 * 6 - 1);
                assert_se(strneq(g->reason, "w0000 w0001 w0002", 17));
                assert_streq(g->reason + 5000 * 6 - 7, " w4999");
                g = completion_gate_free(g);
        }

        /* unicode passes through */
        g = find_ok(OPEN "ready: nein\n" CLOSE OPEN "ready: false\nreason: Überprüfung läuft — 完成 ✓\n"
                    "blockers:\n - \"🐛 in ünicode\"\n" CLOSE);
        assert_streq(g->reason, "Überprüfung läuft — 完成 ✓");
        assert_strv(g->blockers, "🐛 in ünicode");
}

static void test_nested_tags(void) {
        _cleanup_(completion_gate_freep) CompletionGate *g = NULL;

        /* The agent names the tag in prose before writing the block. */
        g = find_ok("I will end with a " OPEN " block, as asked.\n" OPEN "\nready: true\nreason: done\n" CLOSE);
        assert_se(g->ready);
        assert_streq(g->reason, "done");
        g = completion_gate_free(g);

        g = find_ok(OPEN " outer " OPEN "\nready: false\n" CLOSE);
        assert_se(!g->ready);
        g = completion_gate_free(g);

        /* … also with the JSON form after it. */
        g = find_ok("My " OPEN ":\n" OPEN "{\"ready\": true}" CLOSE);
        assert_se(g->ready);
        g = completion_gate_free(g);

        /* The tag inside a JSON string is text. */
        g = find_ok(OPEN "{\"ready\": false, \"reason\": \"I still have to print a " OPEN " block\","
                    " \"blockers\": [\"x\"]}" CLOSE);
        assert_se(!g->ready);
        assert_streq(g->reason, "I still have to print a " OPEN " block");
        assert_strv(g->blockers, "x");
        g = completion_gate_free(g);

        /* … but a closing tag inside one ends the block, which is then cut short. */
        assert_bad(OPEN "{\"ready\": false, \"reason\": \"ends with " CLOSE "\"}" CLOSE,
                   "invalid JSON: unterminated string");

        /* more opening tags than are tried as JSON: the last one counts */
        {
                _cleanup_free_ char *text = NULL;
                size_t len = 0;

                text = malloc(20 * sizeof(OPEN) + 100);
                assert_se(text);
                text[0] = '\0';
                for (unsigned i = 0; i < 20; i++)
                        len += (size_t) sprintf(text + len, "%s ", OPEN);
                strcpy(text + len, "{\"ready\": true}" CLOSE);
                g = find_ok(text);
                assert_se(g->ready);
        }
}

static void test_to_json(void) {
        _cleanup_(completion_gate_freep) CompletionGate *g = NULL, *back = NULL;
        _cleanup_json_ json_object *o = NULL, *o2 = NULL;
        _cleanup_free_ char *text = NULL;
        const char *s;

        g = find_ok(OPEN "ready: false\nreason: tests fail\nblockers:\n- a \"b\"\n- c\nnote: x\nlist:\n- 1\n" CLOSE);
        assert_se(completion_gate_to_json(g, &o) == 0);
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        assert_streq(s, "{\"ready\":false,\"reason\":\"tests fail\",\"progress\":null,"
                        "\"blockers\":[\"a \\\"b\\\"\",\"c\"],\"note\":\"x\",\"list\":[\"1\"]}");

        /* it parses back to the same gate */
        assert_se(asprintf(&text, OPEN "%s" CLOSE, s) > 0);
        back = find_ok(text);
        assert_se(completion_gate_to_json(back, &o2) == 0);
        assert_streq(json_object_to_json_string_ext(o2, JSON_C_TO_STRING_PLAIN), s);
        g = completion_gate_free(g);
        o = (json_object_put(o), NULL);

        /* a hand-made gate: NULL blockers and extra, and an extra key that collides */
        CompletionGate manual = { .ready = true, .progress = (char *) "all" };
        assert_se(completion_gate_to_json(&manual, &o) == 0);
        assert_streq(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                     "{\"ready\":true,\"reason\":null,\"progress\":\"all\",\"blockers\":[]}");
        o = (json_object_put(o), NULL);
        manual.extra = json_object_new_object();
        assert_se(manual.extra);
        assert_se(json_object_object_add(manual.extra, "Ready", json_object_new_boolean(false)) == 0);
        assert_se(json_object_object_add(manual.extra, "kept", json_object_new_int(1)) == 0);
        assert_se(completion_gate_to_json(&manual, &o) == 0);
        assert_streq(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                     "{\"ready\":true,\"reason\":null,\"progress\":\"all\",\"blockers\":[],\"kept\":1}");
        json_object_put(manual.extra);
}

static void assert_summary(const char *text, const char *expected) {
        _cleanup_(completion_gate_freep) CompletionGate *g = find_ok(text);
        _cleanup_free_ char *s = NULL;

        assert_se(completion_gate_summary(g, &s) == 0);
        assert_streq(s, expected);
}

static void test_summary(void) {
        _cleanup_free_ char *long_reason = NULL, *expected = NULL;

        assert_summary(OPEN "ready: true" CLOSE, "ready: yes");
        assert_summary(OPEN "ready: true\nreason: all tests pass" CLOSE, "ready: yes — all tests pass");
        assert_summary(OPEN "ready: false\nreason: tests fail\nblockers: [\"make check fails\", \"lint\"]" CLOSE,
                       "ready: no — tests fail (2 blockers: make check fails)");
        assert_summary(OPEN "ready: false\nblockers: lint" CLOSE, "ready: no (1 blocker: lint)");
        assert_summary(OPEN "{\"ready\": false, \"reason\": \"first line\\nsecond line\","
                       " \"blockers\": [\"a\\nb\"]}" CLOSE,
                       "ready: no — first line… (1 blocker: a…)");

        /* cut at 200 bytes without splitting "é" (2 bytes; 199 + 2 > 200) */
        long_reason = malloc(400);
        assert_se(long_reason);
        memset(long_reason, 'x', 199);
        strcpy(long_reason + 199, "éééé");
        assert_se(asprintf(&expected, OPEN "ready: no\nreason: %s" CLOSE, long_reason) > 0);
        long_reason[199] = '\0';
        {
                _cleanup_free_ char *want = NULL;

                assert_se(asprintf(&want, "ready: no — %s…", long_reason) > 0);
                assert_summary(expected, want);
        }
}

int main(void) {
        test_yaml();
        test_json();
        test_last_of_several();
        test_none();
        test_unterminated();
        test_malformed();
        test_ready_values();
        test_blockers();
        test_extra();
        test_layout();
        test_nested_tags();
        test_to_json();
        test_summary();
        return EXIT_SUCCESS;
}
