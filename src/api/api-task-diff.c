/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GET /api/v1/tasks/{id}/diff: what the task's agent changed in its worktree
 * (commits, staged, unstaged and untracked files) against the commit it
 * started from. git runs, sandboxed, in a forked child, so the event loop keeps serving meanwhile: the
 * connection is suspended until the child has written its answer into a
 * pipe, or is killed when it takes longer than DIFF_TIMEOUT. */

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "api-http.h"
#include "api-manager.h"
#include "git-util.h"
#include "json-util.h"
#include "log.h"
#include "sandbox-task.h"

#define DIFF_MAX_BYTES (16U * 1024U * 1024U)
#define DIFF_TIMEOUT (30 * USEC_PER_SEC)
#define DIFF_ERROR_MAX 4096U

/* What the child writes into the pipe, followed by the error text and the diff. */
typedef struct DiffHeader {
        int32_t result;                 /* 0 or -errno */
        uint32_t truncated;
        uint32_t error_size;
        uint32_t diff_size;
} DiffHeader;

typedef struct DiffJob {
        Request *request;
        bool json;
        pid_t pid;
        int fd;
        sd_event_source *io_source, *child_source, *timer_source;
        char *buf;
        size_t size, allocated;
        bool eof, exited, timed_out, overflow;
        siginfo_t status;
        char *scratch;                  /* where git's snapshot goes; removed with the job */
        const SandboxIdentity *agent;
} DiffJob;

static void diff_job_free(void *userdata) {
        DiffJob *j = userdata;

        if (!j)
                return;
        /* Killed with git under it (its process group); sd-event reaps what it owns. */
        if (j->pid > 0 && !j->exited)
                (void) kill(-j->pid, SIGKILL);
        sd_event_source_disable_unref(j->child_source);
        sd_event_source_disable_unref(j->io_source);
        sd_event_source_disable_unref(j->timer_source);
        if (j->fd >= 0)
                (void) close(j->fd);
        if (j->scratch) {
                int r = task_dir_remove(j->scratch, j->agent);

                if (r < 0)
                        log_warning_errno(r, "Failed to remove %s: %m", j->scratch);
                free(j->scratch);
        }
        free(j->buf);
        free(j);
}

static int write_all(int fd, const void *p, size_t n) {
        const char *s = p;

        while (n > 0) {
                ssize_t k = write(fd, s, n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                s += k;
                n -= (size_t) k;
        }
        return 0;
}

/* The child: computes the diff and writes header, error and diff; never
 * returns. git runs in a sandbox of its own, as the agents' user. */
_noreturn_ static void diff_child(int fd, pid_t parent, const GitContext *ctx, const GitTaskRepo *repo,
                                  const char *base) {
        _cleanup_free_ char *diff = NULL, *error = NULL;
        DiffHeader h = {};
        bool truncated = false;
        int r;

        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
                _exit(EXIT_FAILURE);
        /* Its own process group, so that a timeout kills git with it. */
        (void) setpgid(0, 0);

        r = git_worktree_diff(ctx, repo, base, DIFF_MAX_BYTES, &diff, &truncated, &error);

        h.result = r < 0 ? r : 0;
        h.truncated = truncated;
        h.error_size = error ? (uint32_t) strnlen(error, DIFF_ERROR_MAX) : 0;
        h.diff_size = r >= 0 && diff ? (uint32_t) strnlen(diff, DIFF_MAX_BYTES) : 0;
        if (write_all(fd, &h, sizeof(h)) < 0 ||
            write_all(fd, strempty(error), h.error_size) < 0 ||
            write_all(fd, strempty(diff), h.diff_size) < 0)
                _exit(EXIT_FAILURE);
        /* _exit, not exit: nothing of the API's (atexit, stdio, sanitizers) runs in here. */
        _exit(EXIT_SUCCESS);
}

static void diff_job_check_done(DiffJob *j) {
        if ((j->eof || j->timed_out) && j->exited)
                suspension_resume(&j->request->suspension);
}

static int on_diff_output(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        DiffJob *j = userdata;

        for (;;) {
                ssize_t n;

                if (j->allocated - j->size < 65536) {
                        /* Up to all the child may write (header, error, a whole cut diff) and
                         * a little more, so that more than that is seen as such. */
                        const size_t most = sizeof(DiffHeader) + DIFF_ERROR_MAX + DIFF_MAX_BYTES + 65536;
                        size_t a = MIN(MAX(j->allocated * 2, (size_t) 65536), most);
                        char *b;

                        if (a <= j->allocated) {
                                if (j->size < j->allocated)
                                        goto fill;
                                /* More than the child may write: it is not telling the truth. */
                                j->overflow = true;
                                (void) kill(-j->pid, SIGKILL);
                                break;
                        }
                        b = realloc(j->buf, a);
                        if (!b) {
                                j->overflow = true;
                                (void) kill(-j->pid, SIGKILL);
                                break;
                        }
                        j->buf = b;
                        j->allocated = a;
                }
        fill:
                n = read(fd, j->buf + j->size, j->allocated - j->size);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n <= 0)
                        break;
                j->size += (size_t) n;
        }
        j->eof = true;
        j->io_source = sd_event_source_disable_unref(j->io_source);
        diff_job_check_done(j);
        return 0;
}

static int on_diff_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        DiffJob *j = userdata;

        j->exited = true;
        j->status = *si;
        diff_job_check_done(j);
        return 0;
}

static int on_diff_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        DiffJob *j = userdata;

        j->timed_out = true;
        (void) kill(-j->pid, SIGKILL);
        diff_job_check_done(j);
        return 0;
}

/* The length of the valid UTF-8 sequence at s[0..n), or 0 if there is none. */
static size_t utf8_sequence(const unsigned char *s, size_t n) {
        size_t len;
        uint32_t c;

        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                len = 2, c = s[0] & 0x1f;
        else if (s[0] >= 0xe0 && s[0] <= 0xef)
                len = 3, c = s[0] & 0x0f;
        else if (s[0] >= 0xf0 && s[0] <= 0xf4)
                len = 4, c = s[0] & 0x07;
        else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                c = (c << 6) | (s[i] & 0x3f);
        }
        /* Overlong forms, surrogates and beyond U+10FFFF are not UTF-8. */
        if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) || (c >= 0xd800 && c <= 0xdfff))
                return 0;
        return len;
}

/* A diff need not be UTF-8, a JSON string must be: other bytes become U+FFFD. */
static json_object *json_string_from_bytes(const char *s, size_t n) {
        _cleanup_free_ char *t = NULL;
        size_t o = 0;

        t = malloc(n * 3 + 1);
        if (!t)
                return NULL;
        for (size_t i = 0; i < n;) {
                size_t l = utf8_sequence((const unsigned char *) s + i, n - i);

                if (l == 0) {
                        memcpy(t + o, "\xef\xbf\xbd", 3);
                        o += 3;
                        i++;
                } else {
                        memcpy(t + o, s + i, l);
                        o += l;
                        i += l;
                }
        }
        return json_object_new_string_len(t, (int) o);
}

/* Called when the request is resumed: the child is done, or we are stopping. */
static int diff_answer(Request *r) {
        DiffJob *j = r->job;
        const DiffHeader *h = (const DiffHeader *) j->buf;
        _cleanup_free_ char *error = NULL, *diff = NULL;
        _cleanup_json_ json_object *o = NULL;
        const char *truncated;

        if (r->suspension.stopping)
                return request_reply_error(r, 503, "unavailable", "makima-api is shutting down.");
        if (j->timed_out)
                return request_reply_error(r, 503, "unavailable", "Computing the diff took longer than %u s.",
                                           (unsigned) (DIFF_TIMEOUT / USEC_PER_SEC));
        if (j->overflow || j->size < sizeof(DiffHeader) || j->status.si_code != CLD_EXITED ||
            j->status.si_status != 0 || h->error_size > DIFF_ERROR_MAX || h->diff_size > DIFF_MAX_BYTES ||
            j->size != sizeof(DiffHeader) + h->error_size + h->diff_size) {
                log_warning("The diff child of %s %s failed (code %d, status %d, %zu bytes).", r->method, r->url,
                            j->status.si_code, j->status.si_status, j->size);
                return request_reply_error(r, 500, "internal", "Internal error.");
        }

        error = strndup(j->buf + sizeof(DiffHeader), h->error_size);
        if (!error)
                return -ENOMEM;
        if (h->result < 0) {
                log_debug("%s %s: git: %s", r->method, r->url, error);
                if (h->result == -ENOMEM)
                        return -ENOMEM;
                /* The worktree is the owner's, and so are git's words about it. */
                return request_reply_error(r, 409, "diff_failed", "git could not diff the worktree: %s",
                                           isempty(error) ? strerror(-h->result) : error);
        }

        truncated = h->truncated ? "1" : "0";
        if (!j->json) {
                diff = malloc(h->diff_size + 1);
                if (!diff)
                        return -ENOMEM;
                memcpy(diff, j->buf + sizeof(DiffHeader) + h->error_size, h->diff_size);
                return request_reply_take(r, 200, "text/x-diff; charset=utf-8", TAKE_PTR(diff), h->diff_size,
                                          (const char *const[]) { "Makima-Diff-Truncated", truncated, NULL });
        }

        o = json_object_new_object();
        if (!o ||
            json_object_object_add(o, "diff", json_string_from_bytes(j->buf + sizeof(DiffHeader) + h->error_size,
                                                                     h->diff_size)) < 0 ||
            json_object_object_add(o, "truncated", json_object_new_boolean(h->truncated)) < 0)
                return -ENOMEM;
        return request_reply_json(r, 200, o);
}

int api_task_diff(Request *r) {
        _cleanup_(task_freep) Task *t = NULL;
        _cleanup_(task_paths_done) TaskPaths paths = {};
        _cleanup_(strv_freep) char **borrowed = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_close_ int fd_read = -EBADF, fd_write = -EBADF;
        const char *format;
        Manager *m = r->manager;
        DiffJob *j;
        int k, pipefd[2];
        pid_t parent = getpid();

        format = request_query(r, "format");
        if (format && !streq(format, "json") && !streq(format, "text"))
                return request_reply_error(r, 400, "invalid_parameter", "query parameter 'format': expected json or text");
        k = api_task_load(r, &t);
        if (k < 0)
                return k;
        if (isempty(t->worktree))
                return request_reply_error(r, 409, "no_worktree", "The task has no worktree yet.");
        if (access(t->worktree, F_OK) < 0)
                return request_reply_error(r, 409, "no_worktree", "The task's worktree %s does not exist (any more).",
                                           t->worktree);
        if (!t->repo)
                return request_reply_error(r, 409, "no_repository", "The task has no repository: nothing to diff.");
        if (!m->git_ok)
                return request_reply_error(r, 503, "unavailable",
                                           "makima-api runs as root and the agents' user %s does not exist: it "
                                           "runs no git on what agents wrote.", strna(m->config->sandbox_user));
        k = task_paths(m->config, t->id, t->worktree, &paths);
        if (k < 0)
                return k;
        if (access(paths.git_dir, F_OK) < 0)
                return request_reply_error(r, 409, "no_worktree",
                                           "The task's repository %s does not exist (made by an older makima?).",
                                           paths.git_dir);
        k = task_borrowed_objects(m->config, paths.git_dir, t->owner, &borrowed, &error);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return request_reply_error(r, 409, "diff_failed", "The task's repository cannot be read: %s",
                                           error ?: strerror(-k));

        j = calloc(1, sizeof(DiffJob));
        if (!j)
                return -ENOMEM;
        j->request = r;
        j->fd = -EBADF;
        j->json = streq_ptr(format, "json");
        r->job = j;
        r->job_free = diff_job_free;

        /* git's snapshot goes in a directory of the job's: a child killed at
         * the deadline leaves nothing behind once the job is gone. */
        if (asprintf(&j->scratch, "%s/makima-diff-XXXXXX", getenv("TMPDIR") ?: "/tmp") < 0)
                return -ENOMEM;
        if (!mkdtemp(j->scratch)) {
                j->scratch = mfree(j->scratch);
                return -errno;
        }
        j->agent = m->git.agent;
        k = task_dir_make(j->scratch, j->agent);
        if (k < 0)
                return k;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        fd_read = pipefd[0];
        fd_write = pipefd[1];

        j->pid = fork();
        if (j->pid < 0)
                return -errno;
        if (j->pid == 0) {
                fd_read = -EBADF;
                m->git.scratch_dir = j->scratch;        /* the child's own copy */
                /* The task's memory limit, as address space (at least 512 MiB: git must start). */
                m->git.memory_max = MAX(t->memory_max > 0 ? (uint64_t) t->memory_max : m->config->sandbox_memory_max,
                                        UINT64_C(512) << 20);
                diff_child(fd_write, parent, &m->git,
                           &(GitTaskRepo) { .worktree = t->worktree, .git_dir = paths.git_dir, .borrowed = borrowed },
                           t->base_commit ?: t->base_branch);
        }
        (void) setpgid(j->pid, j->pid);         /* here too, whichever side runs first */

        k = sd_event_add_child(m->event, &j->child_source, j->pid, WEXITED, on_diff_exit, j);
        if (k < 0) {
                /* Unwatched, it could not be reaped through the loop: end it now. */
                (void) kill(-j->pid, SIGKILL);
                (void) waitpid(j->pid, NULL, 0);
                j->exited = true;
                return k;
        }
        (void) sd_event_source_set_child_process_own(j->child_source, true);

        if (fcntl(fd_read, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        j->fd = TAKE_FD(fd_read);
        k = sd_event_add_io(m->event, &j->io_source, j->fd, EPOLLIN, on_diff_output, j);
        if (k < 0)
                return k;
        k = sd_event_add_time_relative(m->event, &j->timer_source, CLOCK_MONOTONIC, DIFF_TIMEOUT, USEC_PER_SEC,
                                       on_diff_timeout, j);
        if (k < 0)
                return k;

        r->resume = diff_answer;
        suspension_suspend(&r->suspension);
        return 0;
}
