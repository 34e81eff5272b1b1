/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The makima.conf parser: systemd-style INI driven by one table of
 * (section, key, parser, member, limits, default), so defaults, empty
 * assignments and parsing share a single description of every key. */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "conf.h"
#include "log.h"

#define WHITESPACE " \t\n\r"
#define COMMENTS "#;"
/* No sane configuration comes close; this stops us from slurping /dev/zero. */
#define CONFIG_FILE_MAX (4U * 1024U * 1024U)
/* List keys end up in one process's argv or environment, which the kernel
 * caps anyway; a cap here also keeps appending and de-duplication cheap. */
#define CONFIG_LIST_MAX 4096U

static char *strstrip(char *s) {
        size_t n;

        s += strspn(s, WHITESPACE);
        n = strlen(s);
        while (n > 0 && strchr(WHITESPACE, s[n - 1]))
                s[--n] = '\0';
        return s;
}

static int parse_decimal(const char *s, uint64_t *ret) {
        uint64_t v = 0;

        if (!s || !(*s >= '0' && *s <= '9'))
                return -EINVAL;
        for (; *s >= '0' && *s <= '9'; s++) {
                if (v > (UINT64_MAX - (uint64_t) (*s - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        if (*s != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

int config_parse_size(const char *value, uint64_t *ret) {
        _cleanup_free_ char *digits = NULL;
        uint64_t v, factor = 1;
        size_t n;
        int r;

        if (!value)
                return -EINVAL;
        n = strlen(value);
        if (n > 0)
                switch (value[n - 1]) {
                case 'K':
                        factor = UINT64_C(1) << 10;
                        break;
                case 'M':
                        factor = UINT64_C(1) << 20;
                        break;
                case 'G':
                        factor = UINT64_C(1) << 30;
                        break;
                }
        digits = strndup(value, factor > 1 ? n - 1 : n);
        if (!digits)
                return -ENOMEM;
        r = parse_decimal(digits, &v);
        if (r < 0)
                return r;
        if (v > UINT64_MAX / factor)
                return -ERANGE;
        *ret = v * factor;
        return 0;
}

int config_parse_bool(const char *value, bool *ret) {
        static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };

        if (!value)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcaseeq(value, yes[i])) {
                        *ret = true;
                        return 0;
                }
                if (strcaseeq(value, no[i])) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

typedef struct ConfigItem ConfigItem;

/* A parser stores rvalue into data (the member the item names), or logs an
 * error naming file, line, key and value and returns -EINVAL. An empty rvalue
 * resets the member to the item's default: for lists that is empty. */
typedef int (*ConfigParser)(const char *filename, unsigned line, const ConfigItem *item, const char *rvalue,
                            void *data);

struct ConfigItem {
        const char *section;
        const char *lvalue;
        ConfigParser parse;
        size_t offset;
        uint64_t min, max;              /* inclusive limits of a number */
        uint64_t def;                   /* default of a number, bool or enum */
        const char *def_str;            /* default of a string */
};

#define log_bad_value(filename, line, item, rvalue, fmt, ...)                                   \
        log_error_errno(EINVAL, "%s:%u: Invalid value for %s= in [%s]: '%s': " fmt,              \
                        (filename), (line), (item)->lvalue, (item)->section, (rvalue), ##__VA_ARGS__)

static int parse_backend(const char *filename, unsigned line, const ConfigItem *item, const char *rvalue, void *data) {
        StoreBackend *b = data, v;

        if (isempty(rvalue)) {
                *b = (StoreBackend) item->def;
                return 0;
        }
        v = store_backend_from_string(rvalue);
        if (v < 0)
                return log_bad_value(filename, line, item, rvalue, "expected 'sqlite' or 'postgresql'.");
        *b = v;
        return 0;
}

static int parse_string(const char *filename, unsigned line, const ConfigItem *item, const char *rvalue, void *data) {
        return free_and_strdup(data, isempty(rvalue) ? item->def_str : rvalue);
}

static bool path_is_absolute(const char *p) {
        return p && p[0] == '/';
}

static int parse_path(const char *filename, unsigned line, const ConfigItem *item, const char *rvalue, void *data) {
        if (!isempty(rvalue) && !path_is_absolute(rvalue))
                return log_bad_value(filename, line, item, rvalue, "not an absolute path.");
        return parse_string(filename, line, item, rvalue, data);
}

/* Group names as shadow-utils accepts them by default, so AdminGroup= is caught here rather than at first use. */
static bool group_name_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 32 || !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!(s[i] == '_' || s[i] == '-' || s[i] == '.' || (s[i] >= 'a' && s[i] <= 'z') ||
                      (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

/* A user or group name (the rules are the same). */
static int parse_name(const char *filename, unsigned line, const ConfigItem *item, const char *rvalue, void *data) {
        if (!isempty(rvalue) && !group_name_is_valid(rvalue))
                return log_bad_value(filename, line, item, rvalue, "not a valid %s name.",
                                     streq(item->lvalue, "User") ? "user" : "group");
        return parse_string(filename, line, item, rvalue, data);
}

/* The member is an unsigned, or with seconds set a usec_t the value (whole
 * seconds) is converted into. */
static int parse_number(const char *filename, unsigned line, const ConfigItem *item, const char *rvalue,
                        bool seconds, void *data) {
        uint64_t v = item->def;
        int r;

        if (!isempty(rvalue)) {
                r = parse_decimal(rvalue, &v);
                if (r < 0 || v < item->min || v > item->max)
                        return log_bad_value(filename, line, item, rvalue,
                                             "expected an integer in %" PRIu64 "..%" PRIu64 ".", item->min, item->max);
        }
        if (seconds)
                *(usec_t *) data = v * USEC_PER_SEC;
        else
                *(unsigned *) data = (unsigned) v;
        return 0;
}

static int parse_unsigned(const char *filename, unsigned line, const ConfigItem *item, const char *rvalue, void *data) {
        return parse_number(filename, line, item, rvalue, /* seconds= */ false, data);
}

/* Whole seconds only: a suffix like "30s" or "1min" is refused rather than
 * half-understood, because the key's name already says the unit. */
static int parse_sec(const char *filename, unsigned line, const ConfigItem *item, const char *rvalue, void *data) {
        return parse_number(filename, line, item, rvalue, /* seconds= */ true, data);
}

static int parse_size(const char *filename, unsigned line, const ConfigItem *item, const char *rvalue, void *data) {
        uint64_t v;
        int r;

        if (isempty(rvalue)) {
                *(uint64_t *) data = item->def;
                return 0;
        }
        r = config_parse_size(rvalue, &v);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0 || v < item->min || v > item->max)
                return log_bad_value(filename, line, item, rvalue,
                                     "expected a size in %" PRIu64 "..%" PRIu64 " bytes (K, M, G suffixes allowed).",
                                     item->min, item->max);
        *(uint64_t *) data = v;
        return 0;
}

static int parse_boolean(const char *filename, unsigned line, const ConfigItem *item, const char *rvalue, void *data) {
        if (isempty(rvalue)) {
                *(bool *) data = item->def;
                return 0;
        }
        if (config_parse_bool(rvalue, data) < 0)
                return log_bad_value(filename, line, item, rvalue, "expected a boolean (yes/no).");
        return 0;
}

/* What makima-api's --listen takes: "unix:PATH", an absolute PATH, "HOST:PORT",
 * "[V6]:PORT", or ":PORT" / "*:PORT" for every address. */
static bool listen_address_is_valid(const char *s) {
        const char *colon;
        uint64_t port;

        if (s[strcspn(s, WHITESPACE)] != '\0')
                return false;
        if (startswith(s, "unix:"))
                return s[5] != '\0';
        if (path_is_absolute(s))
                return true;
        colon = strrchr(s, ':');
        if (!colon || parse_decimal(colon + 1, &port) < 0 || port < 1 || port > 65535)
                return false;
        if (s[0] == '[')
                return colon - s > 2 && colon[-1] == ']';
        /* A bare IPv6 address would be ambiguous about where its port starts. */
        return memchr(s, ':', (size_t) (colon - s)) == NULL;
}

/* Appends a copy of value to the list the item names, within CONFIG_LIST_MAX. */
static int list_append(const char *filename, unsigned line, const ConfigItem *item, char ***l, const char *value) {
        if (strv_length(*l) >= CONFIG_LIST_MAX)
                return log_error_errno(EINVAL, "%s:%u: Too many entries for %s= in [%s], at most %u are allowed.",
                                       filename, line, item->lvalue, item->section, CONFIG_LIST_MAX);
        if (strv_extend(l, value) < 0)
                return log_oom();
        return 0;
}

static int parse_listen(const char *filename, unsigned line, const ConfigItem *item, const char *rvalue, void *data) {
        char ***l = data;

        if (isempty(rvalue)) {
                *l = strv_free(*l);
                return 0;
        }
        if (!listen_address_is_valid(rvalue))
                return log_bad_value(filename, line, item, rvalue, "expected unix:PATH, /PATH or HOST:PORT.");
        return list_append(filename, line, item, l, rvalue);
}

static int split_words_or_log(const char *filename, unsigned line, const ConfigItem *item, const char *rvalue,
                              char ***ret) {
        int r;

        r = config_split_words(rvalue, ret);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_bad_value(filename, line, item, rvalue,
                                     "unbalanced quotes, a trailing backslash or an unknown escape.");
        return 0;
}

static int parse_words(const char *filename, unsigned line, const ConfigItem *item, const char *rvalue, void *data) {
        _cleanup_(strv_freep) char **words = NULL;
        char ***l = data;
        int r;

        if (isempty(rvalue)) {
                *l = strv_free(*l);
                return 0;
        }
        r = split_words_or_log(filename, line, item, rvalue, &words);
        if (r < 0)
                return r;
        for (char **w = words; *w; w++) {
                r = list_append(filename, line, item, l, *w);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_paths(const char *filename, unsigned line, const ConfigItem *item, const char *rvalue, void *data) {
        _cleanup_(strv_freep) char **words = NULL;
        int r;

        r = split_words_or_log(filename, line, item, rvalue, &words);
        if (r < 0)
                return r;
        for (char **w = words; *w; w++)
                if (!path_is_absolute(*w))
                        return log_bad_value(filename, line, item, rvalue, "'%s' is not an absolute path.", *w);
        return parse_words(filename, line, item, rvalue, data);
}

/* The rules of systemd's env_name_is_valid(): what a shell would accept. */
static bool env_name_is_valid(const char *s, size_t n) {
        if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

static int parse_environment(const char *filename, unsigned line, const ConfigItem *item, const char *rvalue,
                             void *data) {
        _cleanup_(strv_freep) char **words = NULL;
        char ***l = data;
        int r;

        if (isempty(rvalue)) {
                *l = strv_free(*l);
                return 0;
        }
        r = split_words_or_log(filename, line, item, rvalue, &words);
        if (r < 0)
                return r;
        for (char **w = words; *w; w++) {
                const char *eq = strchr(*w, '=');

                if (!eq || !env_name_is_valid(*w, (size_t) (eq - *w)))
                        return log_bad_value(filename, line, item, rvalue,
                                             "'%s' is not a NAME=VALUE assignment with a valid name.", *w);
        }

        /* A later assignment to the same name replaces the earlier one, like systemd's Environment=. */
        for (char **w = words; *w; w++) {
                size_t n = (size_t) (strchr(*w, '=') - *w) + 1;
                char **i;

                for (i = *l; i && *i; i++)
                        if (strneq(*i, *w, n))
                                break;
                if (i && *i)
                        r = free_and_strdup(i, *w) < 0 ? log_oom() : 0;
                else
                        r = list_append(filename, line, item, l, *w);
                if (r < 0)
                        return r;
        }
        return 0;
}

#define ITEM(s, k, p, member, ...) \
        { .section = s, .lvalue = k, .parse = p, .offset = offsetof(Config, member), __VA_ARGS__ }

static const ConfigItem config_items[] = {
        ITEM("Store", "Backend", parse_backend, store_backend, .def = STORE_BACKEND_SQLITE),
        ITEM("Store", "Path", parse_path, store_path),
        ITEM("Store", "URL", parse_string, store_url),

        ITEM("API", "Listen", parse_listen, api_listen),
        ITEM("API", "MaxBodyBytes", parse_size, api_max_body_bytes,
             .min = 1, .max = UINT64_C(1) << 30, .def = UINT64_C(1) << 20),
        ITEM("API", "MaxHeaderBytes", parse_size, api_max_header_bytes,
             .min = 256, .max = UINT64_C(64) << 20, .def = UINT64_C(16) << 10),
        ITEM("API", "MaxConnections", parse_unsigned, api_max_connections, .min = 1, .max = 65536, .def = 256),
        ITEM("API", "MaxConnectionsPerIP", parse_unsigned, api_max_connections_per_ip, .min = 0, .max = 65536, .def = 64),
        ITEM("API", "ConnectionTimeoutSec", parse_sec, api_connection_timeout, .min = 1, .max = 86400, .def = 30),
        ITEM("API", "RequestHeadTimeoutSec", parse_sec, api_request_head_timeout, .min = 1, .max = 3600, .def = 10),
        ITEM("API", "AdminGroup", parse_name, api_admin_group, .def_str = "makima"),

        ITEM("Worker", "MaxConcurrentTasks", parse_unsigned, worker_max_concurrent_tasks,
             .min = 1, .max = 1024, .def = 2),
        ITEM("Worker", "WorktreeDir", parse_path, worker_worktree_dir),
        ITEM("Worker", "PollIntervalSec", parse_sec, worker_poll_interval, .min = 1, .max = 86400, .def = 30),
        ITEM("Worker", "LeaseSec", parse_sec, worker_lease, .min = 1, .max = 86400, .def = 60),
        ITEM("Worker", "StoreRetrySec", parse_sec, worker_store_retry, .min = 1, .max = 86400, .def = 30),

        ITEM("Agent", "Command", parse_string, agent_command, .def_str = "claude"),
        ITEM("Agent", "Environment", parse_environment, agent_environment),
        ITEM("Agent", "ExtraArgs", parse_words, agent_extra_args),

        ITEM("Sandbox", "Enabled", parse_boolean, sandbox_enabled, .def = true),
        ITEM("Sandbox", "Network", parse_boolean, sandbox_network, .def = true),
        ITEM("Sandbox", "ReadOnlyPaths", parse_paths, sandbox_read_only_paths),
        ITEM("Sandbox", "ReadWritePaths", parse_paths, sandbox_read_write_paths),
        ITEM("Sandbox", "User", parse_name, sandbox_user, .def_str = "makima-agent"),
        ITEM("Sandbox", "TasksMax", parse_unsigned, sandbox_tasks_max, .min = 1, .max = 4194304, .def = 512),
        ITEM("Sandbox", "MemoryMax", parse_size, sandbox_memory_max,
             .min = UINT64_C(1) << 20, .max = UINT64_C(1) << 50, .def = UINT64_C(4) << 30),
        ITEM("Sandbox", "CPUWeight", parse_unsigned, sandbox_cpu_weight, .min = 1, .max = 10000, .def = 100),

        /* Task.max_iterations is an int, so the limits stay within INT_MAX. */
        ITEM("AutonomousLoop", "DefaultMaxIterations", parse_unsigned, loop_default_max_iterations,
             .min = 1, .max = INT_MAX, .def = 10),
        ITEM("AutonomousLoop", "HardLimit", parse_unsigned, loop_hard_limit, .min = 1, .max = INT_MAX, .def = 50),
        ITEM("AutonomousLoop", "NoChangeThreshold", parse_unsigned, loop_no_change_threshold,
             .min = 1, .max = INT_MAX, .def = 3),
        ITEM("AutonomousLoop", "SameErrorThreshold", parse_unsigned, loop_same_error_threshold,
             .min = 1, .max = INT_MAX, .def = 5),
};

int config_init(Config *c) {
        int r;

        *c = (Config) {};
        /* Every parser resets its member to the default on an empty value. */
        for (size_t i = 0; i < ELEMENTSOF(config_items); i++) {
                r = config_items[i].parse("(defaults)", 0, &config_items[i], "", (uint8_t *) c + config_items[i].offset);
                if (r < 0) {
                        config_done(c);
                        return r;
                }
        }
        return 0;
}

void config_done(Config *c) {
        if (!c)
                return;
        free(c->state_dir);
        free(c->config_file);
        free(c->store_path);
        free(c->store_url);
        strv_free(c->api_listen);
        free(c->api_admin_group);
        free(c->worker_worktree_dir);
        free(c->agent_command);
        strv_free(c->agent_environment);
        strv_free(c->agent_extra_args);
        strv_free(c->sandbox_read_only_paths);
        strv_free(c->sandbox_read_write_paths);
        free(c->sandbox_user);
        *c = (Config) {};
}

static int parse_line(Config *c, const char *filename, unsigned line, char *l, char **section) {
        const ConfigItem *item = NULL;
        char *eq, *key, *value;

        l = strstrip(l);
        if (*l == '\0' || strchr(COMMENTS, *l))
                return 0;

        if (*l == '[') {
                size_t n = strlen(l);

                if (n < 3 || l[n - 1] != ']' || strcspn(l + 1, "[]") != n - 2)
                        return log_error_errno(EINVAL, "%s:%u: Invalid section header '%s'.", filename, line, l);
                l[n - 1] = '\0';
                return free_and_strdup(section, l + 1) < 0 ? log_oom() : 0;
        }

        eq = strchr(l, '=');
        if (!eq)
                return log_error_errno(EINVAL, "%s:%u: Expected a Key=value assignment, got '%s'.", filename, line, l);
        *eq = '\0';
        key = strstrip(l);
        value = strstrip(eq + 1);
        if (*key == '\0')
                return log_error_errno(EINVAL, "%s:%u: Assignment without a key: '=%s'.", filename, line, value);
        if (!*section)
                return log_error_errno(EINVAL, "%s:%u: Assignment %s=%s outside of any section.",
                                       filename, line, key, value);

        for (size_t i = 0; i < ELEMENTSOF(config_items); i++)
                if (streq(config_items[i].section, *section) && streq(config_items[i].lvalue, key)) {
                        item = &config_items[i];
                        break;
                }
        if (!item) {
                /* An older makima may read a newer config: warn, and carry on. */
                log_warning("%s:%u: Unknown key '%s' in section [%s], ignoring.", filename, line, key, *section);
                return 0;
        }

        return item->parse(filename, line, item, value, (uint8_t *) c + item->offset);
}

/* The number of backslashes before the end decides whether the last one is an
 * escape (\\) or a continuation, as in systemd. */
static bool ends_with_continuation(const char *l, size_t n) {
        size_t k = 0;

        while (k < n && l[n - 1 - k] == '\\')
                k++;
        return k % 2 == 1;
}

int config_parse_string(Config *c, const char *name, const char *text) {
        _cleanup_free_ char *section = NULL, *buf = NULL;
        size_t len = 0, cap = 0;
        unsigned line = 0, first_line = 0;
        const char *p = text;
        int r;

        if (!name)
                name = "(string)";
        if (!text)
                return -EINVAL;

        /* buf collects one logical line: a physical line plus any continuations. */
        while (*p != '\0') {
                const char *eol = strchrnul(p, '\n');
                size_t n = (size_t) (eol - p);

                line++;
                if (n > 0 && p[n - 1] == '\r')
                        n--;

                /* Comment lines are never continued, and are skipped inside a continuation. */
                if (strchr(COMMENTS, p[strspn(p, " \t")]) && p[strspn(p, " \t")] != '\0') {
                        p = *eol ? eol + 1 : eol;
                        continue;
                }

                if (len + n + 1 > cap) {
                        size_t want = MAX(len + n + 1, cap * 2);
                        char *t = realloc(buf, want);
                        if (!t)
                                return log_oom();
                        buf = t, cap = want;
                }
                memcpy(buf + len, p, n);
                len += n;
                buf[len] = '\0';
                if (first_line == 0)
                        first_line = line;
                p = *eol ? eol + 1 : eol;

                if (ends_with_continuation(buf, len)) {
                        buf[len - 1] = ' ';
                        continue;
                }

                r = parse_line(c, name, first_line, buf, &section);
                if (r < 0)
                        return r;
                len = 0, first_line = 0;
        }

        /* A continuation at the end of the text just ends there. */
        if (len > 0)
                return parse_line(c, name, first_line, buf, &section);
        return 0;
}

static int read_config_file(const char *path, char **ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t n = 0;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        /* "--config /dev/null" is the usual way to say "defaults only". */
        if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3)
                return (*ret = strdup("")) ? 0 : -ENOMEM;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;

        buf = malloc(CONFIG_FILE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(fd, buf + n, CONFIG_FILE_MAX + 1 - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > CONFIG_FILE_MAX)
                        return -EFBIG;
        }
        /* The parser works on C strings; a NUL would silently cut the file short. */
        if (memchr(buf, '\0', n))
                return -EBADMSG;
        buf[n] = '\0';

        *ret = TAKE_PTR(buf);
        return 0;
}

static int config_load_file(Config *c, const char *path, bool missing_ok) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = read_config_file(path, &text);
        if (r == -ENOENT && missing_ok) {
                log_debug("Configuration file %s does not exist, using defaults.", path);
                return 0;
        }
        if (r == -EBADMSG)
                return log_error_errno(EINVAL, "Configuration file %s contains a NUL byte.", path);
        if (r < 0)
                return log_error_errno(r, "Failed to read configuration file %s: %m", path);

        return config_parse_string(c, path, text);
}

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int config_load_dropins(Config *c, const char *dir) {
        _cleanup_(strv_freep) char **names = NULL;
        _cleanup_(closedirp) DIR *d = NULL;
        int r;

        d = opendir(dir);
        if (!d) {
                if (IN_SET(errno, ENOENT, ENOTDIR))
                        return 0;
                return log_error_errno(errno, "Failed to open drop-in directory %s: %m", dir);
        }
        for (;;) {
                const struct dirent *de;
                size_t n;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                return log_error_errno(errno, "Failed to read drop-in directory %s: %m", dir);
                        break;
                }
                n = strlen(de->d_name);
                if (de->d_name[0] == '.' || n <= 5 || !streq(de->d_name + n - 5, ".conf"))
                        continue;
                r = strv_extend(&names, de->d_name);
                if (r < 0)
                        return log_oom();
        }

        /* Plain byte order, not the locale's collation, so the order is the same everywhere. */
        if (names)
                qsort(names, strv_length(names), sizeof(char *), compare_strings);

        for (char **i = names; i && *i; i++) {
                _cleanup_free_ char *path = NULL;

                if (asprintf(&path, "%s/%s", dir, *i) < 0)
                        return log_oom();
                /* A drop-in removed between readdir() and open() is simply gone. */
                r = config_load_file(c, path, /* missing_ok= */ true);
                if (r < 0)
                        return r;
        }
        return 0;
}

int config_load(Config *c, const char *path, bool dropins) {
        _cleanup_free_ char *dir = NULL;
        int r;

        if (!path) {
                path = MAKIMA_CONF_FILE;
                dropins = true;
        }

        r = free_and_strdup(&c->config_file, path);
        if (r < 0)
                return log_oom();
        r = config_load_file(c, path, /* missing_ok= */ true);
        if (r < 0)
                return r;
        if (!dropins)
                return 0;

        if (asprintf(&dir, "%s.d", path) < 0)
                return log_oom();
        return config_load_dropins(c, dir);
}

static int set_default_path(char **p, const char *dir, const char *name) {
        char *t;

        if (*p)
                return 0;
        if (asprintf(&t, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        *p = t;
        return 0;
}

int config_finalize(Config *c) {
        int r;

        if (!c->state_dir) {
                /* systemd passes every StateDirectory= colon-separated; ours is the first. */
                const char *e = getenv("STATE_DIRECTORY");
                size_t n = e ? strcspn(e, ":") : 0;

                c->state_dir = n > 0 ? strndup(e, n) : strdup(MAKIMA_STATE_DIR);
                if (!c->state_dir)
                        return log_oom();
        }

        r = set_default_path(&c->store_path, c->state_dir, "makima.db");
        if (r < 0)
                return log_oom();
        r = set_default_path(&c->worker_worktree_dir, c->state_dir, "worktrees");
        if (r < 0)
                return log_oom();

        if (c->store_backend == STORE_BACKEND_POSTGRESQL && isempty(c->store_url))
                return log_error_errno(EINVAL, "[Store] Backend=postgresql needs URL= (a libpq connection string).");
        if (c->loop_default_max_iterations > c->loop_hard_limit)
                return log_error_errno(EINVAL, "[AutonomousLoop] DefaultMaxIterations=%u is above HardLimit=%u.",
                                       c->loop_default_max_iterations, c->loop_hard_limit);
        return 0;
}
