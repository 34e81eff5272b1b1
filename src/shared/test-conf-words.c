/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests of the value helpers conf.h exports on their own: word splitting
 * with its quoting and escapes, sizes, booleans, and string vectors. */

#include "conf.h"
#include "tests.h"

static void test_split_words(void) {
        char **l = NULL;

        assert_se(config_split_words("", &l) == 0);
        assert_se(l && strv_length(l) == 0);
        l = strv_free(l);
        assert_se(config_split_words(" \t ", &l) == 0);
        assert_se(l && strv_length(l) == 0);
        l = strv_free(l);

        assert_se(config_split_words("  a  b\tc  ", &l) == 0);
        assert_strv(l, "a", "b", "c");
        l = strv_free(l);
        assert_se(config_split_words("\"a b\" 'c d' e\\ f", &l) == 0);
        assert_strv(l, "a b", "c d", "e f");
        l = strv_free(l);
        assert_se(config_split_words("x\"y z\"w 'it''s'", &l) == 0);
        assert_strv(l, "xy zw", "its");
        l = strv_free(l);
        assert_se(config_split_words("\\n\\t\\\\ \\\" \\' \"\\\"in\\\"\" '\\'in\\''", &l) == 0);
        assert_strv(l, "\n\t\\", "\"", "'", "\"in\"", "'in'");
        l = strv_free(l);
        assert_se(config_split_words("\"\" ''", &l) == 0);
        assert_strv(l, "", "");
        l = strv_free(l);
        assert_se(config_split_words("'\"' \"'\"", &l) == 0);
        assert_strv(l, "\"", "'");
        l = strv_free(l);
        assert_se(config_split_words("caf\xc3\xa9 $HOME *", &l) == 0);
        assert_strv(l, "caf\xc3\xa9", "$HOME", "*");
        l = strv_free(l);

        assert_se(config_split_words("\"open", &l) == -EINVAL);
        assert_se(config_split_words("'open", &l) == -EINVAL);
        assert_se(config_split_words("a \"b' c", &l) == -EINVAL);
        assert_se(config_split_words("trailing\\", &l) == -EINVAL);
        assert_se(config_split_words("\"trailing\\", &l) == -EINVAL);
        assert_se(config_split_words("bad\\x41", &l) == -EINVAL);
        assert_se(config_split_words("\\0", &l) == -EINVAL);
        assert_se(l == NULL);
}

static void test_parse_size(void) {
        uint64_t v = 0;

        assert_se(config_parse_size("0", &v) == 0 && v == 0);
        assert_se(config_parse_size("1024", &v) == 0 && v == 1024);
        assert_se(config_parse_size("64K", &v) == 0 && v == 64 * 1024);
        assert_se(config_parse_size("1M", &v) == 0 && v == 1024 * 1024);
        assert_se(config_parse_size("2G", &v) == 0 && v == UINT64_C(2) * 1024 * 1024 * 1024);
        assert_se(config_parse_size("18446744073709551615", &v) == 0 && v == UINT64_MAX);
        assert_se(config_parse_size("17179869183G", &v) == 0 && v == UINT64_C(17179869183) << 30);

        v = 7;
        assert_se(config_parse_size("", &v) == -EINVAL);
        assert_se(config_parse_size("K", &v) == -EINVAL);
        assert_se(config_parse_size("1k", &v) == -EINVAL);
        assert_se(config_parse_size("1KB", &v) == -EINVAL);
        assert_se(config_parse_size("1T", &v) == -EINVAL);
        assert_se(config_parse_size("-1", &v) == -EINVAL);
        assert_se(config_parse_size(" 1", &v) == -EINVAL);
        assert_se(config_parse_size("1 K", &v) == -EINVAL);
        assert_se(config_parse_size("1.5M", &v) == -EINVAL);
        assert_se(config_parse_size("18446744073709551616", &v) == -ERANGE);
        assert_se(config_parse_size("17179869184G", &v) == -ERANGE);
        assert_se(config_parse_size(NULL, &v) == -EINVAL);
        assert_se(v == 7);
}

static void test_parse_bool(void) {
        static const char *const yes[] = { "yes", "YES", "true", "True", "on", "ON", "1" };
        static const char *const no[] = { "no", "No", "false", "FALSE", "off", "oFf", "0" };
        static const char *const bad[] = { "", "y", "n", "2", "yes ", "enable", "truee", "-1" };
        bool b;

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                b = false;
                assert_se(config_parse_bool(yes[i], &b) == 0 && b);
        }
        for (size_t i = 0; i < ELEMENTSOF(no); i++) {
                b = true;
                assert_se(config_parse_bool(no[i], &b) == 0 && !b);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                b = true;
                assert_se(config_parse_bool(bad[i], &b) == -EINVAL && b);
        }
        assert_se(config_parse_bool(NULL, &b) == -EINVAL && b);
}

static void test_strv(void) {
        char **l = NULL;

        assert_se(strv_length(NULL) == 0);
        assert_se(strv_free(NULL) == NULL);
        assert_se(strv_extend(&l, "a") == 0);
        assert_se(strv_push(&l, strdup("b")) == 0);
        assert_se(strv_extend(&l, "") == 0);
        assert_strv(l, "a", "b", "");
        /* A NULL value (a failed strdup) is -ENOMEM and leaves the vector alone. */
        assert_se(strv_push(&l, NULL) == -ENOMEM);
        assert_se(strv_length(l) == 3);
        assert_se(strv_free(l) == NULL);
}

int main(void) {
        test_split_words();
        test_parse_size();
        test_parse_bool();
        test_strv();
        printf("test-conf-words: ok\n");
        return EXIT_SUCCESS;
}
