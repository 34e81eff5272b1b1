/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* /api/v1/repos: the local repositories an administrator grants to an
 * owner. An owner's task may name only those (or a path below one) and
 * URLs of anonymous transports; administrators may name anything. The
 * check here looks at the path's spelling only, never at the file system,
 * so a refusal tells nothing of whether the path exists; the worker checks
 * the canonical path again before it reads anything. */

#include "api-http.h"
#include "api-manager.h"
#include "git-util.h"
#include "json-util.h"
#include "log.h"
#include "sandbox-paths.h"

#define REPO_PATH_MAX_BYTES 4096

static int grant_to_json(const RepoGrant *g, json_object **ret) {
        _cleanup_json_ json_object *o = NULL;
        int k = 0;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        k = k ?: json_add_string(o, "id", g->id);
        k = k ?: json_add_string(o, "path", g->path);
        k = k ?: json_add_string(o, "owner", g->owner);
        k = k ?: json_add_timestamp(o, "created_at", g->created_at);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(o);
        return 0;
}

static int grant_item_json(const void *items, size_t i, json_object **ret) {
        return grant_to_json((const RepoGrant *) items + i, ret);
}

int api_repos_list(Request *r) {
        const char *owner = request_query(r, "owner");
        RepoGrant *items = NULL;
        size_t n = 0, limit, offset, first, count;
        int k;

        if (owner && !api_owner_name_is_valid(owner))
                return request_reply_error(r, 400, "invalid_parameter", "query parameter 'owner': not an owner name");
        k = request_query_page(r, &limit, &offset);
        if (k < 0)
                return k;
        /* An owner sees the grants that are its own. */
        if (!r->admin)
                owner = r->owner;
        k = store_repo_grant_list(r->manager->store, owner, &items, &n);
        if (k < 0)
                return request_reply_store_error(r, k, "repository grants", NULL);
        /* Grants are few (one per repository and owner): the page is cut here. */
        first = MIN(offset, n);
        count = MIN(limit, n - first);
        k = request_reply_list(r, "repos", items + first, count, grant_item_json);
        repo_grant_array_free(items, n);
        return k;
}

typedef struct GrantRequest {
        char *path;
        char *owner;
} GrantRequest;

static void grant_request_done(GrantRequest *g) {
        free(g->path);
        free(g->owner);
}

static bool text_is_plain(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < ' ' || *s == 0x7f)
                        return false;
        return true;
}

int api_repos_grant(Request *r) {
        static const JsonDispatchField table[] = {
                { "path",  json_dispatch_string, offsetof(GrantRequest, path),  JSON_MANDATORY },
                { "owner", json_dispatch_string, offsetof(GrantRequest, owner), JSON_MANDATORY },
                {}
        };
        _cleanup_(grant_request_done) GrantRequest g = {};
        _cleanup_json_ json_object *o = NULL;
        _cleanup_free_ char *normalized = NULL;
        RepoGrant grant = {};
        int k;

        k = request_dispatch_body(r, table, &g);
        if (k < 0)
                return k;
        if (!api_owner_name_is_valid(g.owner))
                return request_reply_field(r, "owner", "expected 1 to 64 characters from A-Z a-z 0-9 . _ @ -, not starting with -");
        if (isempty(g.path) || g.path[0] != '/' || strlen(g.path) > REPO_PATH_MAX_BYTES || !text_is_plain(g.path))
                return request_reply_field(r, "path", "expected an absolute path of this machine");
        k = path_normalize(g.path, &normalized);
        if (k < 0)
                return k;
        if (streq(normalized, "/"))
                return request_reply_field(r, "path", "granting / would grant every repository");

        grant = (RepoGrant) { .path = normalized, .owner = g.owner };
        k = store_repo_grant_insert(r->manager->store, &grant);
        if (k == -EEXIST)
                return request_reply_error(r, 409, "exists", "%s is granted to %s already.", normalized, g.owner);
        if (k < 0)
                return request_reply_store_error(r, k, "repository grant", NULL);
        log_info("Repository %s granted to %s by %s.", normalized, g.owner, strna(r->owner));

        k = grant_to_json(&grant, &o);
        if (k >= 0)
                k = request_reply_created(r, o, "/api/v1/repos", grant.id);
        free(grant.id);
        return k;
}

int api_repo_revoke(Request *r) {
        int k;

        k = store_repo_grant_delete(r->manager->store, r->id);
        if (k < 0)
                return request_reply_store_error(r, k, "repository grant", NULL);
        log_info("Repository grant %s revoked by %s.", r->id, strna(r->owner));
        return request_reply_no_content(r);
}

/* URLs an owner may name: anonymous transports. ssh would use the worker's
 * own keys, file:// and scp-like forms the worker's own machine and rights:
 * each a way into what another owner (or the host) keeps. */
static bool url_allowed(const char *url) {
        return startswith(url, "https://") || startswith(url, "http://") || startswith(url, "git://");
}

int api_repo_check(Request *r, const char *owner, const char *repo) {
        _cleanup_free_ char *normalized = NULL;
        RepoGrant *items = NULL;
        size_t n = 0;
        bool granted = false;
        int k;

        if (!repo || r->admin)
                return 0;
        if (git_repo_is_url(repo)) {
                if (url_allowed(repo))
                        return 0;
                request_reply_error(r, 403, "forbidden",
                                    "Only an administrator may name %s: owners may use https://, http:// and git:// "
                                    "URLs, and the local repositories granted to them.", repo);
                return -EPERM;
        }
        if (repo[0] != '/') {
                request_reply_field(r, "repo", "expected an absolute path or a git URL");
                return -EINVAL;
        }
        k = path_normalize(repo, &normalized);
        if (k < 0)
                return k;
        k = store_repo_grant_list(r->manager->store, owner, &items, &n);
        if (k < 0) {
                (void) request_reply_store_error(r, k, "repository grants", NULL);
                return k;
        }
        for (size_t i = 0; i < n && !granted; i++)
                granted = path_is_under(normalized, items[i].path);
        repo_grant_array_free(items, n);
        if (granted)
                return 0;
        /* The same answer whether the path exists or not. */
        request_reply_error(r, 403, "forbidden",
                            "The repository %s is not granted to %s: an administrator grants it with "
                            "`makima repo grant %s --owner %s`.", repo, owner, repo, owner);
        return -EPERM;
}
