/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store's schema, as an ordered list of migrations. Each is applied once,
 * in its own transaction, and recorded in schema_version. Never edit a
 * migration that has shipped: add the next one. */

#include "store-internal.h"

/* Migration 1 is written once for both backends: they differ only in how a
 * boolean is spelled. Timestamps are µs since the epoch; enums are their
 * model.h strings. The lease columns of tasks belong to the worker's claim
 * (see DESIGN.md); no record field maps to them. */
#define MIGRATION_1(BOOL, FALSE)                                                        \
        "CREATE TABLE contracts ("                                                      \
        " id TEXT PRIMARY KEY NOT NULL,"                                                \
        " owner TEXT,"                                                                  \
        " name TEXT,"                                                                   \
        " description TEXT,"                                                            \
        " type TEXT NOT NULL,"                                                          \
        " phase TEXT NOT NULL,"                                                         \
        " status TEXT NOT NULL,"                                                        \
        " autonomous_loop " BOOL " NOT NULL DEFAULT " FALSE ","                         \
        " supervisor_task_id TEXT,"                                                     \
        " created_at BIGINT NOT NULL,"                                                  \
        " updated_at BIGINT NOT NULL,"                                                  \
        " version BIGINT NOT NULL DEFAULT 1);"                                          \
        "CREATE INDEX contracts_owner ON contracts (owner, created_at, id);"            \
        "CREATE INDEX contracts_status ON contracts (status, created_at, id);"          \
        "CREATE INDEX contracts_created ON contracts (created_at, id);"                 \
                                                                                        \
        "CREATE TABLE tasks ("                                                          \
        " id TEXT PRIMARY KEY NOT NULL,"                                                \
        " owner TEXT,"                                                                  \
        " name TEXT,"                                                                   \
        " plan TEXT,"                                                                   \
        " repo TEXT,"                                                                   \
        " base_branch TEXT,"                                                            \
        " target_branch TEXT,"                                                          \
        " parent_task_id TEXT,"                                                         \
        " contract_id TEXT REFERENCES contracts (id) ON DELETE CASCADE,"                \
        " is_supervisor " BOOL " NOT NULL DEFAULT " FALSE ","                           \
        " autonomous_loop " BOOL " NOT NULL DEFAULT " FALSE ","                         \
        " max_iterations BIGINT NOT NULL DEFAULT 0,"                                    \
        " iteration_count BIGINT NOT NULL DEFAULT 0,"                                   \
        " status TEXT NOT NULL,"                                                        \
        " error TEXT,"                                                                  \
        " worktree TEXT,"                                                               \
        " branch TEXT,"                                                                 \
        " session_id TEXT,"                                                             \
        " cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,"                                \
        " created_at BIGINT NOT NULL,"                                                  \
        " updated_at BIGINT NOT NULL,"                                                  \
        " started_at BIGINT,"                                                           \
        " completed_at BIGINT,"                                                         \
        " version BIGINT NOT NULL DEFAULT 1,"                                           \
        " worker_id TEXT,"                                                              \
        " lease_token TEXT,"                                                            \
        " lease_expires_at BIGINT);"                                                    \
        "CREATE INDEX tasks_owner ON tasks (owner, created_at, id);"                    \
        "CREATE INDEX tasks_contract ON tasks (contract_id, created_at, id);"           \
        "CREATE INDEX tasks_parent ON tasks (parent_task_id, created_at, id);"          \
        "CREATE INDEX tasks_status ON tasks (status, created_at, id);"                  \
        "CREATE INDEX tasks_created ON tasks (created_at, id);"                         \
        "CREATE INDEX tasks_lease ON tasks (lease_expires_at);"                         \
                                                                                        \
        "CREATE TABLE task_events ("                                                    \
        " task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,"               \
        " seq BIGINT NOT NULL,"                                                         \
        " type TEXT NOT NULL,"                                                          \
        " payload TEXT,"                                                                \
        " created_at BIGINT NOT NULL,"                                                  \
        " PRIMARY KEY (task_id, seq));"                                                 \
        "CREATE INDEX task_events_created ON task_events (created_at);"                 \
                                                                                        \
        "CREATE TABLE contract_events ("                                                \
        " contract_id TEXT NOT NULL REFERENCES contracts (id) ON DELETE CASCADE,"       \
        " seq BIGINT NOT NULL,"                                                         \
        " type TEXT NOT NULL,"                                                          \
        " payload TEXT,"                                                                \
        " created_at BIGINT NOT NULL,"                                                  \
        " PRIMARY KEY (contract_id, seq));"                                             \
        "CREATE INDEX contract_events_created ON contract_events (created_at);"         \
                                                                                        \
        "CREATE TABLE api_tokens ("                                                     \
        " id TEXT PRIMARY KEY NOT NULL,"                                                \
        " owner TEXT NOT NULL,"                                                         \
        " token_hash TEXT NOT NULL UNIQUE,"                                             \
        " description TEXT,"                                                            \
        " created_at BIGINT NOT NULL,"                                                  \
        " revoked_at BIGINT);"                                                          \
        "CREATE INDEX api_tokens_owner ON api_tokens (owner, created_at);"              \
                                                                                        \
        "CREATE TABLE questions ("                                                      \
        " id TEXT PRIMARY KEY NOT NULL,"                                                \
        " contract_id TEXT REFERENCES contracts (id) ON DELETE CASCADE,"                \
        " task_id TEXT REFERENCES tasks (id) ON DELETE CASCADE,"                        \
        " owner TEXT,"                                                                  \
        " question TEXT NOT NULL,"                                                      \
        " choices TEXT,"                                                                \
        " answer TEXT,"                                                                 \
        " created_at BIGINT NOT NULL,"                                                  \
        " answered_at BIGINT,"                                                          \
        " version BIGINT NOT NULL DEFAULT 1);"                                          \
        "CREATE INDEX questions_owner ON questions (owner, created_at, id);"            \
        "CREATE INDEX questions_contract ON questions (contract_id, created_at, id);"   \
        "CREATE INDEX questions_task ON questions (task_id, created_at, id);"           \
                                                                                        \
        "CREATE TABLE notifications ("                                                  \
        " id TEXT PRIMARY KEY NOT NULL,"                                                \
        " owner TEXT,"                                                                  \
        " task_id TEXT,"                                                                \
        " contract_id TEXT,"                                                            \
        " level TEXT NOT NULL,"                                                         \
        " message TEXT NOT NULL,"                                                       \
        " created_at BIGINT NOT NULL,"                                                  \
        " read_at BIGINT);"                                                             \
        "CREATE INDEX notifications_owner ON notifications (owner, created_at, id);"    \
                                                                                        \
        "CREATE TABLE control_requests ("                                               \
        " id TEXT PRIMARY KEY NOT NULL,"                                                \
        " task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,"               \
        " kind TEXT NOT NULL,"                                                          \
        " payload TEXT,"                                                                \
        " created_at BIGINT NOT NULL,"                                                  \
        " delivered_at BIGINT,"                                                         \
        " done_at BIGINT,"                                                              \
        " result TEXT);"                                                                \
        "CREATE INDEX control_requests_task ON control_requests (task_id, created_at, id);"

/* Migration 2: the autonomous loop's budget, on tasks and on contracts
 * (model.h). Both backends spell it the same; rows that exist get 0, no
 * limit, which is what they ran with. */
#define MIGRATION_2                                                                     \
        "ALTER TABLE tasks ADD COLUMN max_cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0;" \
        "ALTER TABLE contracts ADD COLUMN max_cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0;"

/* Migration 3: the untracked files a task's worktree gets copies of
 * (model.h), as a JSON array of strings; NULL, what rows that exist get, is
 * none. */
#define MIGRATION_3                                                                     \
        "ALTER TABLE tasks ADD COLUMN copy_files TEXT;"

/* Migration 4: the one row store_check_writable() writes to learn whether
 * the store takes writes (store-health.c). No key and no index: on
 * PostgreSQL the check empties the table, and an index would be one more
 * file to rebuild each time. */
#define MIGRATION_4                                                                     \
        "CREATE TABLE store_probe (written_at BIGINT NOT NULL);"                        \
        "INSERT INTO store_probe (written_at) VALUES (0);"

/* Migration 5: what a task's sandbox needs to know of it (model.h): the
 * commit its own repository started from, whether an administrator made it
 * (its repository needs no grant), the agent's limits (0: the
 * configuration's); and the local repositories an administrator granted
 * to an owner. Rows that exist get no base commit (their diffs use the base
 * branch), no administrator (their repositories are checked against the
 * grants: an upgrade adds no right), and the configured limits. */
#define MIGRATION_5(BOOL, FALSE)                                                        \
        "ALTER TABLE tasks ADD COLUMN base_commit TEXT;"                                \
        "ALTER TABLE tasks ADD COLUMN admin " BOOL " NOT NULL DEFAULT " FALSE ";"        \
        "ALTER TABLE tasks ADD COLUMN tasks_max BIGINT NOT NULL DEFAULT 0;"             \
        "ALTER TABLE tasks ADD COLUMN memory_max BIGINT NOT NULL DEFAULT 0;"            \
        "ALTER TABLE tasks ADD COLUMN cpu_weight BIGINT NOT NULL DEFAULT 0;"            \
        "CREATE TABLE repo_grants ("                                                    \
        " id TEXT PRIMARY KEY NOT NULL,"                                                \
        " path TEXT NOT NULL,"                                                          \
        " owner TEXT NOT NULL,"                                                         \
        " created_at BIGINT NOT NULL,"                                                  \
        " UNIQUE (path, owner));"                                                       \
        "CREATE INDEX repo_grants_owner ON repo_grants (owner, path);"

const StoreMigration store_migrations[] = {
        {
                .version = 1,
                .sql = {
                        [STORE_BACKEND_SQLITE] = MIGRATION_1("INTEGER", "0"),
                        [STORE_BACKEND_POSTGRESQL] = MIGRATION_1("BOOLEAN", "FALSE"),
                },
        },
        {
                .version = 2,
                .sql = {
                        [STORE_BACKEND_SQLITE] = MIGRATION_2,
                        [STORE_BACKEND_POSTGRESQL] = MIGRATION_2,
                },
        },
        {
                .version = 3,
                .sql = {
                        [STORE_BACKEND_SQLITE] = MIGRATION_3,
                        [STORE_BACKEND_POSTGRESQL] = MIGRATION_3,
                },
        },
        {
                .version = 4,
                .sql = {
                        [STORE_BACKEND_SQLITE] = MIGRATION_4,
                        [STORE_BACKEND_POSTGRESQL] = MIGRATION_4,
                },
        },
        {
                .version = 5,
                .sql = {
                        [STORE_BACKEND_SQLITE] = MIGRATION_5("INTEGER", "0"),
                        [STORE_BACKEND_POSTGRESQL] = MIGRATION_5("BOOLEAN", "FALSE"),
                },
        },
};

const size_t store_n_migrations = ELEMENTSOF(store_migrations);
