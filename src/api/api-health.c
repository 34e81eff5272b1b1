/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GET /api/v1/health: is makima-api up, does its store answer, and does it
 * take writes. No authentication, so load balancers, monitors and `makima
 * up` can ask; anything but 200 means makima cannot do its work. */

#include "api-http.h"
#include "api-manager.h"
#include "json-util.h"
#include "log.h"

/* At most one write check this often; answers in between reuse its
 * outcome. Each check is a committed transaction. */
#define WRITABLE_CHECK_INTERVAL USEC_PER_SEC

static int store_writable(Manager *m) {
        usec_t now = now_usec();
        int k;

        if (m->writable_checked_at > 0 && now - m->writable_checked_at < WRITABLE_CHECK_INTERVAL)
                return m->writable;
        k = store_check_writable(m->store);
        if (k < 0 && (m->writable_checked_at == 0 || m->writable >= 0))
                log_warning_errno(k, "Health check: the store does not take writes: %m: %s",
                                  strna(store_last_error(m->store)));
        else if (k >= 0 && m->writable < 0)
                log_info("Health check: the store takes writes again.");
        m->writable_checked_at = now;
        m->writable = k;
        return k;
}

int api_health_get(Request *r) {
        _cleanup_json_ json_object *o = NULL, *e = NULL;
        _cleanup_free_ char *owner = NULL;
        Store *s = r->manager->store;
        int k, w;

        /* A real query, the cheapest the store has: looking up a token hash that
         * no token has. The store must answer, not just be open. */
        k = store_token_lookup(s, "0000000000000000000000000000000000000000000000000000000000000000", &owner);
        if (k == -ENOENT || k >= 0)
                k = store_schema_version(s);
        if (k < 0) {
                log_warning_errno(k, "Health check: the store does not answer: %m: %s", strna(store_last_error(s)));
                return request_reply_error(r, 503, "unavailable", "The store does not answer.");
        }
        w = store_writable(r->manager);

        o = json_object_new_object();
        if (!o ||
            json_add_string(o, "status", w >= 0 ? "ok" : "unavailable") < 0 ||
            json_add_string(o, "version", PACKAGE_VERSION) < 0 ||
            json_add_string(o, "store", store_backend_to_string(store_backend(s))) < 0 ||
            json_object_object_add(o, "schema_version", json_object_new_int(k)) < 0 ||
            json_object_object_add(o, "store_writable", json_object_new_boolean(w >= 0)) < 0)
                return -ENOMEM;
        if (w >= 0)
                return request_reply_json(r, 200, o);

        /* Not ok: the error every failed answer has, with the fields of a good one. */
        e = json_object_new_object();
        if (!e ||
            json_add_string(e, "code", w == -ENOSPC ? "store_full" : "store_not_writable") < 0 ||
            json_add_string(e, "message", w == -ENOSPC ? API_STORE_FULL_MESSAGE :
                                          "The store answers but does not take writes; makima-api's log says why.") < 0 ||
            json_object_object_add(o, "error", json_object_get(e)) < 0)
                return -ENOMEM;
        return request_reply_json(r, 503, o);
}
