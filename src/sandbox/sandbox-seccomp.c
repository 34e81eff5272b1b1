/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agents' seccomp deny list (after flatpak's setup_seccomp): one table,
 * compiled by libseccomp for every ABI the kernel will accept from the sandbox,
 * exported as BPF into a sealed memfd for `bwrap --seccomp FD`. */

#include <fcntl.h>
#include <seccomp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "sandbox-seccomp.h"

#define DENY(call, err) { .name = #call, .nr = SCMP_SYS(call), .error = (err), .arg = -1 }
#define DENY_IF(call, err, a, m, v) { .name = #call, .nr = SCMP_SYS(call), .error = (err), .arg = (a), .mask = (m), .match = (v) }
#define DENY_UNLESS(call, err, a, v) { .name = #call, .nr = SCMP_SYS(call), .error = (err), .arg = (a), .match = (v), .unless = true }

#if defined(__s390__) || defined(__s390x__)
/* CONFIG_CLONE_BACKWARDS2: the flags are clone()'s second argument here. */
#define CLONE_FLAGS_ARG 1
#else
#define CLONE_FLAGS_ARG 0
#endif

static const SandboxSyscallRule rules[] = {
        /* Reading or steering another process: with these an agent could reach
         * into the worker's other children or its own supervisor. */
        DENY(ptrace, EPERM),
        DENY(process_vm_readv, EPERM),
        DENY(process_vm_writev, EPERM),
        DENY(pidfd_getfd, EPERM),
        /* perf has a long CVE history and shows what other processes do. */
        DENY(perf_event_open, EPERM),

        /* The kernel itself is not the agent's to change. */
        DENY(kexec_load, EPERM),
        DENY(kexec_file_load, EPERM),
        DENY(init_module, EPERM),
        DENY(finit_module, EPERM),
        DENY(delete_module, EPERM),
        DENY(bpf, EPERM),
        DENY(syslog, EPERM),
        DENY(acct, EPERM),
        DENY(quotactl, EPERM),
        DENY(quotactl_fd, EPERM),
        DENY(uselib, EPERM),
        DENY(modify_ldt, EPERM),
        /* userfaultfd stalls the kernel on a page fault of the caller's
         * choosing: the classic way to win a kernel race. */
        DENY(userfaultfd, EPERM),
        /* Memory placement calls: rarely needed, historically buggy. */
        DENY(move_pages, EPERM),
        DENY(migrate_pages, EPERM),
        DENY(mbind, EPERM),
        DENY(get_mempolicy, EPERM),
        DENY(set_mempolicy, EPERM),

        /* The kernel keyring is shared with the host user: its keys are tokens
         * the agent must not see. */
        DENY(keyctl, EPERM),
        DENY(add_key, EPERM),
        DENY(request_key, EPERM),

        /* The mount table is what keeps the host's files out of reach. The new
         * mount API gets EPERM too, not flatpak's ENOSYS: a program that falls
         * back to mount(2) is refused there anyway, and EPERM says why. */
        DENY(mount, EPERM),
        DENY(umount, EPERM),
        DENY(umount2, EPERM),
        DENY(pivot_root, EPERM),
        DENY(chroot, EPERM),
        DENY(open_tree, EPERM),
        DENY(move_mount, EPERM),
        DENY(fsopen, EPERM),
        DENY(fsconfig, EPERM),
        DENY(fsmount, EPERM),
        DENY(fspick, EPERM),
        DENY(mount_setattr, EPERM),
        /* Shocker: opens any inode of a mounted file system by handle. */
        DENY(open_by_handle_at, EPERM),

        /* A new user namespace would make the agent root again, with mount()
         * and friends at hand; joining another namespace escapes ours. */
        DENY(unshare, EPERM),
        DENY(setns, EPERM),
        DENY_IF(clone, EPERM, CLONE_FLAGS_ARG, CLONE_NEWUSER, CLONE_NEWUSER),

        /* Typing into the terminal of whoever started us (CVE-2017-5226), and
         * the console's copy and paste, which does the same (CVE-2023-28100).
         * The request is an int to the kernel but a long to the filter: only
         * the low 32 bits are compared, or TIOCSTI | 1UL << 32 would slip
         * through (CVE-2019-10063). */
        DENY_IF(ioctl, EPERM, 1, 0xFFFFFFFFu, TIOCSTI),
        DENY_IF(ioctl, EPERM, 1, 0xFFFFFFFFu, TIOCLINUX),

        /* A personality that makes every readable mapping executable, or turns
         * address space randomization off, undoes what protects the agent's
         * programs from their inputs (flatpak refuses them too). Only the
         * default one, PER_LINUX, may be set; the query (0xffffffff) is
         * refused with the rest: libseccomp cannot compare one argument
         * twice in a rule. */
        DENY_UNLESS(personality, EPERM, 0, PER_LINUX),

        /* vsock is no network namespace's: it reaches the hypervisor (and
         * its other guests) whatever Network= says. */
        DENY_IF(socket, EAFNOSUPPORT, 0, 0xFFFFFFFFu, AF_VSOCK),

        /* seccomp cannot look inside clone3()'s struct, so it cannot see
         * CLONE_NEWUSER there. ENOSYS makes glibc fall back to clone(), which
         * the rule above can check. */
        DENY(clone3, ENOSYS),
        /* io_uring runs work in kernel threads the filter never sees, and has
         * been a rich source of kernel exploits; libuv and friends fall back
         * to plain system calls on ENOSYS. */
        DENY(io_uring_setup, ENOSYS),
        DENY(io_uring_enter, ENOSYS),
        DENY(io_uring_register, ENOSYS),
};

/* ABIs a native process can switch to without exec: int 0x80 reaches the
 * i386 table from a 64-bit process, and the x32 bit a third table. Each gets
 * the same list, so that none is a way around it. */
static const uint32_t compat_arches[] = {
#if defined(__x86_64__)
        SCMP_ARCH_X86,
        SCMP_ARCH_X32,
#elif defined(__aarch64__)
        SCMP_ARCH_ARM,
#endif
        0,
};

const SandboxSyscallRule *sandbox_seccomp_rules(size_t *ret_n) {
        *ret_n = ELEMENTSOF(rules);
        return rules;
}

static void seccomp_releasep(scmp_filter_ctx *ctx) {
        if (*ctx)
                seccomp_release(*ctx);
}

static int filter_new(scmp_filter_ctx *ret) {
        _cleanup_(seccomp_releasep) scmp_filter_ctx ctx = NULL;
        int r;

        ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx)
                return -ENOMEM;

        for (size_t i = 0; compat_arches[i] != 0; i++) {
                r = seccomp_arch_add(ctx, compat_arches[i]);
                if (r < 0 && r != -EEXIST)
                        return r;
        }

        for (size_t i = 0; i < ELEMENTSOF(rules); i++) {
                const SandboxSyscallRule *rule = rules + i;

                /* A call missing from one ABI (umount on x86-64) is skipped
                 * there by libseccomp; an error means the table is wrong. */
                if (rule->arg >= 0 && rule->unless)
                        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(rule->error), rule->nr, 1,
                                             SCMP_CMP((unsigned) rule->arg, SCMP_CMP_NE, rule->match));
                else if (rule->arg >= 0)
                        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(rule->error), rule->nr, 1,
                                             SCMP_CMP((unsigned) rule->arg, SCMP_CMP_MASKED_EQ, rule->mask, rule->match));
                else
                        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(rule->error), rule->nr, 0);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(ctx);
        return 0;
}

int sandbox_seccomp_export_fd(int *ret_fd) {
        _cleanup_(seccomp_releasep) scmp_filter_ctx ctx = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = filter_new(&ctx);
        if (r < 0)
                return r;

        fd = memfd_create("makima-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                return r;
        /* Sealed, so that nothing holding the fd can change the program
         * between now and the moment bwrap reads it. */
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return -errno;
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;

        *ret_fd = TAKE_FD(fd);
        return 0;
}

int sandbox_seccomp_load_fd(int fd) {
        _cleanup_free_ struct sock_filter *program = NULL;
        struct sock_fprog prog;
        struct stat st;
        ssize_t n;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) != 0 ||
            st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
                return -EBADMSG;

        program = malloc(st.st_size);
        if (!program)
                return -ENOMEM;
        n = pread(fd, program, st.st_size, 0);
        if (n < 0)
                return -errno;
        if (n != st.st_size)
                return -EIO;

        prog = (struct sock_fprog) {
                .len = (unsigned short) (st.st_size / sizeof(struct sock_filter)),
                .filter = program,
        };
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
                return -errno;
        return 0;
}
