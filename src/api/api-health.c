/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GET /api/v1/health: is makima-api up and does its store answer. No
 * authentication, so load balancers and `makima up` can ask. */

#include "api-http.h"
#include "api-manager.h"
#include "json-util.h"
#include "log.h"

int api_health_get(Request *r) {
        _cleanup_json_ json_object *o = NULL;
        _cleanup_free_ char *owner = NULL;
        Store *s = r->manager->store;
        int k;

        /* A real query, the cheapest the store has: looking up a token hash that
         * no token has. The store must answer, not just be open. */
        k = store_token_lookup(s, "0000000000000000000000000000000000000000000000000000000000000000", &owner);
        if (k == -ENOENT || k >= 0)
                k = store_schema_version(s);
        if (k < 0) {
                log_warning_errno(k, "Health check: the store does not answer: %m: %s", strna(store_last_error(s)));
                return request_reply_error(r, 503, "unavailable", "The store does not answer.");
        }

        o = json_object_new_object();
        if (!o ||
            json_add_string(o, "status", "ok") < 0 ||
            json_add_string(o, "version", PACKAGE_VERSION) < 0 ||
            json_add_string(o, "store", store_backend_to_string(store_backend(s))) < 0 ||
            json_object_object_add(o, "schema_version", json_object_new_int(k)) < 0)
                return -ENOMEM;
        return request_reply_json(r, 200, o);
}
