/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The logging backend described in log.h. */

#include <stdarg.h>
#include <stdlib.h>

#include "log.h"

static int max_level = LOG_INFO;
static const char *program = "makima";
static int use_prefix = -1;

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

void log_setup(const char *program_name) {
        const char *e;

        if (program_name)
                program = program_name;
        /* Under systemd stderr is a stream to journald, which reads "<N>" as the priority. */
        use_prefix = !!getenv("JOURNAL_STREAM");
        e = getenv("MAKIMA_LOG_LEVEL");
        if (e) {
                static const char *const names[] = { "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug" };
                for (size_t i = 0; i < ELEMENTSOF(names); i++)
                        if (streq(e, names[i]))
                                max_level = (int) i;
        }
}

int log_internal(int level, int error, const char *file, int line, const char *format, ...) {
        char buf[4096];
        va_list ap;
        int saved_errno = errno;

        if (error < 0)
                error = -error;
        if (level > max_level)
                return -error;

        /* Make %m print the error we were given, not whatever errno happens to be. */
        errno = error;
        va_start(ap, format);
        (void) vsnprintf(buf, sizeof(buf), format, ap);
        va_end(ap);

        if (use_prefix < 0)
                use_prefix = !!getenv("JOURNAL_STREAM");
        if (use_prefix > 0)
                fprintf(stderr, "<%d>%s\n", level, buf);
        else if (max_level >= LOG_DEBUG)
                fprintf(stderr, "%s: %s (%s:%d)\n", program, buf, file, line);
        else
                fprintf(stderr, "%s: %s\n", program, buf);

        errno = saved_errno;
        return -error;
}
