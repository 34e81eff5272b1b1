/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes the makima.conf parser: the input is one configuration file's text,
 * parsed into a fresh Config, finalized and freed; the helpers a value goes
 * through are fed the same text directly. */

#include "conf.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL;
        char **words = NULL;
        uint64_t u;
        bool b;
        Config c;

        /* Every bad input logs an error; that is expected and only slows fuzzing down. */
        log_set_max_level(-1);

        /* The parser takes a C string, so a NUL ends the text as it would end a file's read. */
        text = strndup((const char *) data, size);
        if (!text)
                return 0;

        if (config_init(&c) < 0)
                return 0;
        if (config_parse_string(&c, "fuzz.conf", text) >= 0)
                (void) config_finalize(&c);
        config_done(&c);

        if (config_split_words(text, &words) >= 0)
                strv_free(words);
        (void) config_parse_size(text, &u);
        (void) config_parse_bool(text, &b);
        return 0;
}
