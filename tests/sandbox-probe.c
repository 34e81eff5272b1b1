/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sandbox-probe: run inside makima's agent sandbox, it tries what an agent
 * must not be able to do (the refused system calls, TIOCSTI, writing or
 * reading outside its own worktree and home) and what it must (write its
 * worktree and home), and prints "ok NAME" or "FAIL NAME: why" per check.
 * Exit status: the number of failures. Harmless when run unsandboxed, even
 * as root: every call gets arguments the kernel refuses, or that do nothing. */

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <getopt.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned failures;

static void report(bool ok, const char *name, const char *format, ...) {
        va_list ap;

        if (ok)
                printf("ok %s\n", name);
        else {
                printf("FAIL %s: ", name);
                va_start(ap, format);
                vprintf(format, ap);
                va_end(ap);
                putchar('\n');
                failures++;
        }
        fflush(stdout);
}

static const char *errname(int e) {
        return e == 0 ? "success" : strerrorname_np(e) ?: "unknown errno";
}

/* Runs f in a child, which reports an errno (or 0) as its exit status: for
 * calls that would change the caller for good if they succeeded. A child
 * killed by a signal gives -signal. */
static int in_child(int (*f)(void)) {
        int status;
        pid_t pid;

        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return errno;
        if (pid == 0)
                _exit(f());
        if (waitpid(pid, &status, 0) < 0)
                return errno;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

static int do_unshare_user(void) {
        return unshare(CLONE_NEWUSER) < 0 ? errno : 0;
}

static int do_clone_newuser(void) {
        long pid = syscall(SYS_clone, (unsigned long) (CLONE_NEWUSER | SIGCHLD), NULL, NULL, NULL, NULL);

        if (pid < 0)
                return errno;
        if (pid == 0)
                _exit(0);
        (void) waitpid((pid_t) pid, NULL, 0);
        return 0;
}

/* Opens a pty and makes it our controlling terminal, so that TIOCSTI would
 * work if the filter let it through. */
static int open_ctty(void) {
        int master, slave;
        char *name;

        if (setsid() < 0)
                return -1;
        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 || !(name = ptsname(master)))
                return -1;
        slave = open(name, O_RDWR | O_CLOEXEC);
        if (slave < 0)
                return -1;
        (void) ioctl(slave, TIOCSCTTY, 0);
        return slave;
}

static int do_tiocsti(unsigned long request) {
        char c = ' ';
        int fd = open_ctty();

        if (fd < 0)
                return 200;
        return syscall(SYS_ioctl, fd, request, &c) < 0 ? errno : 0;
}

static int do_tiocsti_plain(void) {
        return do_tiocsti(TIOCSTI);
}

/* The filter must look at the low 32 bits only, as the kernel does. */
static int do_tiocsti_high_bits(void) {
        return do_tiocsti(TIOCSTI | (1UL << 32));
}

static int do_tioclinux(void) {
        char subcode = 0;       /* no such subcode */
        int fd = open_ctty();

        if (fd < 0)
                return 200;
        return syscall(SYS_ioctl, fd, (unsigned long) TIOCLINUX, &subcode) < 0 ? errno : 0;
}

#if defined(__x86_64__)
/* ptrace through the i386 entry point (int 0x80): the compat ABI must be
 * filtered as well as the native one. */
static int do_i386_ptrace(void) {
        long ret;

        __asm__ volatile("int $0x80"
                         : "=a"(ret)
                         : "a"(26 /* i386 __NR_ptrace */), "b"(2 /* PTRACE_PEEKDATA */), "c"(0), "d"(0), "S"(0)
                         : "memory");
        return ret < 0 ? (int) -ret : 0;
}
#endif

typedef struct SyscallCheck {
        const char *name;
        int expected;                   /* the filter's answer */
        long (*call)(void);             /* returns -1 and sets errno, like syscall() */
        int (*child)(void);             /* or: run in a child, which returns the errno */
} SyscallCheck;

static const char fs_nothing[] = "";

/* Each call gets arguments the kernel itself answers with another error than
 * EPERM, or that do nothing: so a caller with the privilege (root outside any
 * namespace), or on a kernel without the call, gets EPERM from the filter
 * only. Inside the sandbox some calls would be refused for lack of
 * privilege anyway; test-sandbox.sh shows the filter alone refuses them. */
static long try_ptrace(void) {
        return syscall(SYS_ptrace, 2 /* PTRACE_PEEKDATA */, 0, NULL, NULL);
}

static long try_process_vm_readv(void) {
        return syscall(SYS_process_vm_readv, getpid(), NULL, 0, NULL, 0, 0);
}

static long try_process_vm_writev(void) {
        return syscall(SYS_process_vm_writev, getpid(), NULL, 0, NULL, 0, 0);
}

static long try_perf_event_open(void) {
        return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
}

static long try_kexec_load(void) {
        return syscall(SYS_kexec_load, 0, 1000 /* > KEXEC_SEGMENT_MAX */, NULL, 0);
}

static long try_kexec_file_load(void) {
        return syscall(SYS_kexec_file_load, -1, -1, 0, NULL, ~0UL);
}

static long try_init_module(void) {
        return syscall(SYS_init_module, NULL, 0, fs_nothing);
}

static long try_finit_module(void) {
        return syscall(SYS_finit_module, -1, fs_nothing, 0);
}

static long try_delete_module(void) {
        return syscall(SYS_delete_module, "makima_probe_no_such_module", O_NONBLOCK);
}

static long try_keyctl(void) {
        return syscall(SYS_keyctl, 0x7fff, 0, 0, 0, 0);
}

static long try_add_key(void) {
        return syscall(SYS_add_key, NULL, NULL, NULL, 0, 0);
}

static long try_request_key(void) {
        return syscall(SYS_request_key, NULL, NULL, NULL, 0);
}

static long try_mount(void) {
        return syscall(SYS_mount, fs_nothing, fs_nothing, fs_nothing, 0, NULL);
}

static long try_umount2(void) {
        return syscall(SYS_umount2, fs_nothing, 0x100 /* no such flag */);
}

static long try_pivot_root(void) {
        return syscall(SYS_pivot_root, fs_nothing, fs_nothing);
}

static long try_chroot(void) {
        return syscall(SYS_chroot, fs_nothing);
}

static long try_open_tree(void) {
        return syscall(SYS_open_tree, -1, fs_nothing, ~0U);
}

static long try_move_mount(void) {
        return syscall(SYS_move_mount, -1, fs_nothing, -1, fs_nothing, ~0U);
}

static long try_fsopen(void) {
        return syscall(SYS_fsopen, NULL, ~0U);
}

static long try_fsconfig(void) {
        return syscall(SYS_fsconfig, -1, 0x7fff, NULL, NULL, 0);
}

static long try_fsmount(void) {
        return syscall(SYS_fsmount, -1, ~0U, 0);
}

static long try_fspick(void) {
        return syscall(SYS_fspick, -1, fs_nothing, ~0U);
}

static long try_mount_setattr(void) {
        return syscall(SYS_mount_setattr, -1, fs_nothing, ~0U, NULL, 0);
}

static long try_unshare(void) {
        return syscall(SYS_unshare, 0);
}

static long try_setns(void) {
        return syscall(SYS_setns, -1, 0);
}

static long try_bpf(void) {
        return syscall(SYS_bpf, 0x7fff, NULL, 0);
}

static long try_userfaultfd(void) {
        return syscall(SYS_userfaultfd, UFFD_USER_MODE_ONLY | 0x2 /* no such flag */);
}

static long try_clone3(void) {
        return syscall(SYS_clone3, NULL, 0);
}

/* These would change the caller's personality for good: in a child. The
 * kernel itself allows both to anybody. */
static int do_personality(unsigned long p) {
        return syscall(SYS_personality, p) < 0 ? errno : 0;
}

static int do_personality_read_implies_exec(void) {
        return do_personality(0x0400000 /* READ_IMPLIES_EXEC */);
}

static int do_personality_addr_no_randomize(void) {
        return do_personality(0x0040000 /* ADDR_NO_RANDOMIZE */);
}

static void check_syscalls(void) {
        const SyscallCheck checks[] = {
                { "ptrace", EPERM, .call = try_ptrace },
                { "process_vm_readv", EPERM, .call = try_process_vm_readv },
                { "process_vm_writev", EPERM, .call = try_process_vm_writev },
                { "perf_event_open", EPERM, .call = try_perf_event_open },
                { "kexec_load", EPERM, .call = try_kexec_load },
                { "kexec_file_load", EPERM, .call = try_kexec_file_load },
                { "init_module", EPERM, .call = try_init_module },
                { "finit_module", EPERM, .call = try_finit_module },
                { "delete_module", EPERM, .call = try_delete_module },
                { "keyctl", EPERM, .call = try_keyctl },
                { "add_key", EPERM, .call = try_add_key },
                { "request_key", EPERM, .call = try_request_key },
                { "mount", EPERM, .call = try_mount },
                { "umount2", EPERM, .call = try_umount2 },
                { "pivot_root", EPERM, .call = try_pivot_root },
                { "chroot", EPERM, .call = try_chroot },
                { "open_tree", EPERM, .call = try_open_tree },
                { "move_mount", EPERM, .call = try_move_mount },
                { "fsopen", EPERM, .call = try_fsopen },
                { "fsconfig", EPERM, .call = try_fsconfig },
                { "fsmount", EPERM, .call = try_fsmount },
                { "fspick", EPERM, .call = try_fspick },
                { "mount_setattr", EPERM, .call = try_mount_setattr },
                { "unshare", EPERM, .call = try_unshare },
                { "unshare-newuser", EPERM, .child = do_unshare_user },
                { "setns", EPERM, .call = try_setns },
                { "clone-newuser", EPERM, .child = do_clone_newuser },
                { "bpf", EPERM, .call = try_bpf },
                { "userfaultfd", EPERM, .call = try_userfaultfd },
                { "ioctl-TIOCSTI", EPERM, .child = do_tiocsti_plain },
                { "ioctl-TIOCSTI-high-bits", EPERM, .child = do_tiocsti_high_bits },
                { "ioctl-TIOCLINUX", EPERM, .child = do_tioclinux },
                { "clone3", ENOSYS, .call = try_clone3 },
                { "personality-READ_IMPLIES_EXEC", EPERM, .child = do_personality_read_implies_exec },
                { "personality-ADDR_NO_RANDOMIZE", EPERM, .child = do_personality_addr_no_randomize },
#if defined(__x86_64__)
                { "i386-ptrace", EPERM, .child = do_i386_ptrace },
#endif
        };

        for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
                const SyscallCheck *c = checks + i;
                int e;

                if (c->child) {
                        e = in_child(c->child);
                        if (e < 0 && strncmp(c->name, "i386-", 5) == 0) {
                                /* No IA32 emulation, or a filter that kills foreign ABIs. */
                                printf("skip %s: the i386 ABI killed the caller with signal %d\n", c->name, -e);
                                continue;
                        }
                        if (e == 200) {
                                report(false, c->name, "could not open a pty as controlling terminal");
                                continue;
                        }
                } else {
                        errno = 0;
                        e = c->call() < 0 ? errno : 0;
                }
                if (e < 0)
                        report(false, c->name, "killed by signal %d", -e);
                else
                        report(e == c->expected, c->name, "got %s, expected %s", errname(e), errname(c->expected));
        }
}

static void check_writable(const char *dir) {
        char path[4096], name[4200];
        int fd;

        snprintf(path, sizeof(path), "%s/.sandbox-probe-%d", dir, (int) getpid());
        snprintf(name, sizeof(name), "write %s", dir);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
                report(false, name, "%s", strerror(errno));
                return;
        }
        (void) close(fd);
        report(unlink(path) >= 0, name, "unlink: %s", strerror(errno));
}

/* Creates a file and leaves it, for the caller to look for outside. */
static void check_create(const char *path) {
        char name[4200];
        int fd;

        snprintf(name, sizeof(name), "create %s", path);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        report(fd >= 0, name, "%s", strerror(errno));
        if (fd >= 0)
                (void) close(fd);
}

/* Every way to change what is at path must fail: a new file or directory in
 * it (if a directory), writing, truncating, removing or replacing it. */
static void check_not_writable(const char *path) {
        char p[4096], name[4200];
        struct stat st;
        int fd;

        snprintf(name, sizeof(name), "no-write %s", path);
        if (stat(path, &st) >= 0 && S_ISDIR(st.st_mode)) {
                snprintf(p, sizeof(p), "%s/.sandbox-probe-%d", path, (int) getpid());
                fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                if (fd >= 0) {
                        (void) close(fd);
                        (void) unlink(p);
                        report(false, name, "created %s", p);
                        return;
                }
                if (mkdir(p, 0700) >= 0) {
                        (void) rmdir(p);
                        report(false, name, "created directory %s", p);
                        return;
                }
                report(true, name, NULL);
                return;
        }

        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
                (void) close(fd);
                report(false, name, "opened for writing");
                return;
        }
        snprintf(p, sizeof(p), "%s.sandbox-probe-%d", path, (int) getpid());
        fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
                (void) close(fd);
                if (rename(p, path) >= 0) {
                        report(false, name, "replaced it by rename()");
                        return;
                }
                (void) unlink(p);
        }
        if (access(path, F_OK) >= 0 && unlink(path) >= 0) {
                report(false, name, "removed it");
                return;
        }
        report(true, name, NULL);
}

/* Nothing of what is at path may be read: it is missing, refuses to open,
 * or is empty (a directory hidden under an empty tmpfs). */
static void check_not_readable(const char *path) {
        char name[4200], buf[64];
        struct stat st;
        ssize_t n;
        int fd;

        snprintf(name, sizeof(name), "no-read %s", path);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                report(true, name, NULL);
                return;
        }
        if (fstat(fd, &st) >= 0 && S_ISDIR(st.st_mode)) {
                DIR *d = fdopendir(fd);
                struct dirent *de;
                const char *seen = NULL;

                while (d && (de = readdir(d)))
                        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
                                seen = de->d_name;
                                break;
                        }
                report(!seen, name, "directory lists %s", seen ?: "");
                if (d)
                        closedir(d);
                return;
        }
        n = read(fd, buf, sizeof(buf));
        (void) close(fd);
        report(n <= 0, name, "read %zd bytes", n);
}

static void check_identity(void) {
        char line[256];
        FILE *f;
        bool caps_clear = false;

        report(getuid() != 0 && geteuid() != 0, "non-root", "uid %d euid %d", (int) getuid(), (int) geteuid());
        f = fopen("/proc/self/status", "re");
        while (f && fgets(line, sizeof(line), f))
                if (strncmp(line, "CapEff:", 7) == 0)
                        caps_clear = strspn(line + 7, "\t 0") == strlen(line + 7) - 1;
        if (f)
                fclose(f);
        report(caps_clear, "no-capabilities", "CapEff is not zero");
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "syscalls",     no_argument,       NULL, 's' },
                { "identity",     no_argument,       NULL, 'i' },
                { "writable",     required_argument, NULL, 'w' },
                { "not-writable", required_argument, NULL, 'W' },
                { "not-readable", required_argument, NULL, 'R' },
                { "create",       required_argument, NULL, 'c' },
                {}
        };
        int c;

        /* Checks run in the order given. */
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        check_syscalls();
                        break;
                case 'i':
                        check_identity();
                        break;
                case 'w':
                        check_writable(optarg);
                        break;
                case 'W':
                        check_not_writable(optarg);
                        break;
                case 'R':
                        check_not_readable(optarg);
                        break;
                case 'c':
                        check_create(optarg);
                        break;
                default:
                        return 125;
                }

        return failures > 100 ? 100 : (int) failures;
}
