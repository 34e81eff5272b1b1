/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* /api/v1/tokens: administrators hand out and revoke the bearer tokens
 * owners use. A token is shown once, when made; the store keeps its hash. */

#include <sys/random.h>

#include "api-http.h"
#include "api-manager.h"
#include "json-util.h"
#include "log.h"
#include "sha256.h"

#define TOKEN_PREFIX "mk_"
#define TOKEN_RANDOM_BYTES 32

static int token_new(char ret[static sizeof(TOKEN_PREFIX) + TOKEN_RANDOM_BYTES * 2]) {
        uint8_t random[TOKEN_RANDOM_BYTES];
        char *p = ret;
        ssize_t n;

        n = getrandom(random, sizeof(random), 0);
        if (n < 0)
                return -errno;
        if ((size_t) n != sizeof(random))
                return -EIO;

        p = stpcpy(p, TOKEN_PREFIX);
        for (size_t i = 0; i < sizeof(random); i++)
                p += sprintf(p, "%02x", random[i]);
        return 0;
}

typedef struct TokenRequest {
        char *owner;
        char *description;
} TokenRequest;

static void token_request_done(TokenRequest *t) {
        free(t->owner);
        free(t->description);
}

int api_tokens_create(Request *r) {
        static const JsonDispatchField table[] = {
                { "owner",       json_dispatch_string, offsetof(TokenRequest, owner),       JSON_MANDATORY },
                { "description", json_dispatch_string, offsetof(TokenRequest, description), JSON_NULLABLE  },
                {}
        };
        _cleanup_(token_request_done) TokenRequest t = {};
        _cleanup_json_ json_object *o = NULL;
        char token[sizeof(TOKEN_PREFIX) + TOKEN_RANDOM_BYTES * 2];
        char hash[SHA256_HEX_SIZE], id[ID_STRING_MAX];
        int k;

        k = request_dispatch_body(r, table, &t);
        if (k < 0)
                return k;
        if (!api_owner_name_is_valid(t.owner))
                return request_reply_field(r, "owner", "expected 1 to 64 characters from A-Z a-z 0-9 . _ @ -, not starting with -");

        k = token_new(token);
        if (k < 0)
                return log_error_errno(k, "Failed to make a random token: %m");
        sha256_hex(token, strlen(token), hash);

        k = store_token_insert(r->manager->store, t.owner, hash, t.description, id);
        if (k < 0)
                return request_reply_store_error(r, k, "token", NULL);
        log_info("Token %s made for owner %s by %s.", id, t.owner, strna(r->owner));

        o = json_object_new_object();
        if (!o ||
            json_add_string(o, "id", id) < 0 ||
            json_add_string(o, "owner", t.owner) < 0 ||
            json_add_string(o, "description", t.description) < 0 ||
            json_add_string(o, "token", token) < 0)
                return -ENOMEM;
        return request_reply_created(r, o, "/api/v1/tokens", id);
}

int api_token_delete(Request *r) {
        int k;

        k = store_token_revoke(r->manager->store, r->id);
        if (k < 0)
                return request_reply_store_error(r, k, "token", NULL);
        log_info("Token %s revoked by %s.", r->id, strna(r->owner));
        return request_reply_no_content(r);
}
