/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What "makima up" prepares before it starts anything: the state directory,
 * the programs it runs and their command lines, and its private D-Bus: a
 * dbus-daemon of its own on DIR/bus, so that makima-api can own
 * org.makima1 and wake the workers with signals without root, a system bus
 * or a session bus. As root, the user its agents run as, if it is missing. */

#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "cli.h"
#include "conf.h"

/* Finds a daemon: $ENV, next to this executable (installed side by side, or
 * the build tree's src/<subdir>/), else LIBEXECDIR. */
int up_find_daemon(const char *name, const char *env, const char *subdir, char **ret) {
        _cleanup_free_ char *self = NULL, *p1 = NULL, *p2 = NULL, *p3 = NULL;
        const char *e = getenv(env);
        char *dir;

        if (!isempty(e)) {
                if (access(e, X_OK) < 0)
                        return log_error_errno(errno, "$%s=%s: %m", env, e);
                return (*ret = strdup(e)) ? 0 : -ENOMEM;
        }

        self = realpath("/proc/self/exe", NULL);
        if (self) {
                dir = strrchr(self, '/');
                *dir = '\0';
                if (asprintf(&p1, "%s/%s", self, name) < 0 || asprintf(&p2, "%s/../%s/%s", self, subdir, name) < 0)
                        return -ENOMEM;
        }
        if (asprintf(&p3, "%s/%s", LIBEXECDIR, name) < 0)
                return -ENOMEM;

        const char *candidates[] = { p1, p2, p3 };
        for (size_t i = 0; i < ELEMENTSOF(candidates); i++)
                if (candidates[i] && access(candidates[i], X_OK) >= 0) {
                        char *p = realpath(candidates[i], NULL);
                        if (!p)
                                return -errno;
                        *ret = p;
                        return 0;
                }
        return -ENOENT;
}

/* A NULL-terminated argv of copies of the arguments (ended by NULL); -ENOMEM if any copy fails. */
int up_make_argv(char ***ret, ...) {
        _cleanup_free_ char **argv = NULL;
        size_t n = 0;
        va_list ap;
        const char *s;
        int r = 0;

        va_start(ap, ret);
        while ((s = va_arg(ap, const char *))) {
                char **b;

                b = reallocarray(argv, n + 2, sizeof(char *));
                if (!b || !(b[n] = strdup(s))) {
                        if (b)
                                argv = b;
                        r = -ENOMEM;
                        break;
                }
                argv = b;
                argv[++n] = NULL;
        }
        va_end(ap);
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        free(argv[i]);
                return r;
        }
        *ret = TAKE_PTR(argv);
        return 0;
}

int up_mkdir_parents(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++)
                if (*s == '/') {
                        *s = '\0';
                        /* Only the directory itself is private; its parents are ordinary ones, like mkdir -p. */
                        if (mkdir(p, 0777) < 0 && errno != EEXIST)
                                return -errno;
                        *s = '/';
                }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}


int up_bus_find(char **ret) {
        _cleanup_free_ char *path = NULL;
        const char *e = getenv("PATH");

        /* Like execvp(): the directories of $PATH, in order. */
        path = strdup(isempty(e) ? "/usr/local/bin:/usr/bin:/bin" : e);
        if (!path)
                return -ENOMEM;
        for (char *dir = strtok(path, ":"); dir; dir = strtok(NULL, ":")) {
                _cleanup_free_ char *p = NULL;

                if (dir[0] != '/')
                        continue;       /* a relative entry would depend on where we happen to be */
                if (asprintf(&p, "%s/dbus-daemon", dir) < 0)
                        return -ENOMEM;
                if (access(p, X_OK) >= 0) {
                        *ret = TAKE_PTR(p);
                        return 0;
                }
        }
        return -ENOENT;
}

/* A D-Bus address value: bytes other than [-0-9A-Za-z_/.\*] are %-escaped.
 * That also keeps it plain in XML and in a shell. */
static char *bus_address_escape(const char *s) {
        return cli_percent_escape(s, "-_/.\\*", true);
}

static int write_file(const char *path, const char *text) {
        _cleanup_close_ int fd = -EBADF;
        size_t n = strlen(text);
        ssize_t k;

        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        k = write(fd, text, n);
        if (k < 0)
                return -errno;
        return (size_t) k == n ? 0 : -EIO;
}

int up_bus_prepare(const char *state_dir, const char *binary, char ***ret_argv, char **ret_address,
                   char **ret_socket) {
        _cleanup_free_ char *socket_path = NULL, *escaped = NULL, *address = NULL, *conf = NULL, *text = NULL,
                *config_arg = NULL;
        char **argv = NULL;
        int r;

        if (asprintf(&socket_path, "%s/bus", state_dir) < 0 || asprintf(&conf, "%s/bus.conf", state_dir) < 0)
                return -ENOMEM;
        if (strlen(socket_path) >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                return -ENAMETOOLONG;
        escaped = bus_address_escape(socket_path);
        if (!escaped || asprintf(&address, "unix:path=%s", escaped) < 0)
                return -ENOMEM;

        /* Only our own user may connect (dbus-daemon's default), and on this bus
         * everybody may own and call anything: there is nobody else. No service
         * activation: nothing starts behind our back. */
        if (asprintf(&text,
                     "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                     " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                     "<!-- Written by 'makima up' at every start; changes are lost. -->\n"
                     "<busconfig>\n"
                     "  <listen>%s</listen>\n"
                     "  <auth>EXTERNAL</auth>\n"
                     "  <policy context=\"default\">\n"
                     "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
                     "    <allow eavesdrop=\"true\"/>\n"
                     "    <allow own=\"*\"/>\n"
                     "  </policy>\n"
                     "</busconfig>\n", address) < 0)
                return -ENOMEM;
        r = write_file(conf, text);
        if (r < 0)
                return r;
        /* A socket left by a bus that was killed would be in the way. */
        if (unlink(socket_path) < 0 && errno != ENOENT)
                return -errno;

        if (asprintf(&config_arg, "--config-file=%s", conf) < 0)
                return -ENOMEM;
        argv = calloc(6, sizeof(char *));
        if (!argv)
                return -ENOMEM;
        argv[0] = strdup(binary);
        argv[1] = TAKE_PTR(config_arg);
        argv[2] = strdup("--nofork");
        argv[3] = strdup("--nopidfile");
        argv[4] = strdup("--nosyslog");
        for (size_t i = 0; i < 5; i++)
                if (!argv[i]) {
                        for (size_t j = 0; j < 5; j++)
                                free(argv[j]);
                        free(argv);
                        return -ENOMEM;
                }

        *ret_argv = argv;
        *ret_address = TAKE_PTR(address);
        *ret_socket = TAKE_PTR(socket_path);
        return 0;
}

bool up_bus_ready(const char *socket_path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;

        if (strlen(socket_path) >= sizeof(sa.sun_path))
                return false;
        strcpy(sa.sun_path, socket_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        return fd >= 0 && connect(fd, (struct sockaddr *) &sa, sizeof(sa)) >= 0;
}

/* Runs argv (a system tool, looked up in a fixed PATH) and waits for it. */
static int run_tool(char *const *argv) {
        pid_t pid;
        int status;

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                (void) setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1);
                execvp(argv[0], argv);
                _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                return -ENOENT;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EPROTO;
}

int up_agent_user(const char *config_path) {
        _cleanup_(config_done) Config c = {};
        _cleanup_free_ char *line = NULL;
        const char *user;
        int r, level;

        /* Only root can switch to it, and only root may make it. */
        if (geteuid() != 0)
                return 0;
        r = config_init(&c);
        if (r < 0)
                return log_oom();
        /* Quietly: a configuration that does not load is for the API to
         * report (once, prefixed), and makes it stop us. */
        level = log_get_max_level();
        log_set_max_level(LOG_CRIT);
        r = config_load(&c, config_path, false);
        log_set_max_level(level);
        if (r < 0)
                return 0;
        user = c.sandbox_user;
        if (isempty(user) || getpwnam(user))
                return 0;       /* the worker refuses an empty User= as root itself */

        /* As the package's sysusers.d/makima.conf would make it. */
        if (asprintf(&line, "u %s - \"makima agents\" /nonexistent", user) < 0)
                return log_oom();
        r = run_tool((char *[]) { (char *) "systemd-sysusers", (char *) "--inline", line, NULL });
        if (r == -ENOENT)
                r = run_tool((char *[]) { (char *) "useradd", (char *) "--system", (char *) "--user-group",
                                          (char *) "--no-create-home", (char *) "--home-dir", (char *) "/nonexistent",
                                          (char *) "--shell", (char *) "/usr/sbin/nologin", (char *) "--comment",
                                          (char *) "makima agents", (char *) user, NULL });
        if (r == -ENOENT)
                return log_error_errno(r, "Agents never run as root, and the user %s ([Sandbox] User=) does not "
                                       "exist: neither systemd-sysusers nor useradd is there to make it. Create it, "
                                       "or name another user.", user);
        if (r < 0 || !getpwnam(user))
                return log_error_errno(r < 0 ? r : ENOENT, "Failed to create the user %s ([Sandbox] User=) for the "
                                       "agents. Create it, or name another user.", user);
        log_info("Created the system user %s: agents run as it, never as root.", user);
        return 0;
}
