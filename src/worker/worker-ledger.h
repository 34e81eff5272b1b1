/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The worker's ledger of events the store has not taken: a small file of
 * its own under the state directory, <state_dir>/ledger/worker-<N>, written
 * out in full when the worker starts so that later writes to it need no new
 * space, not even on the full disk the store shares. While a task holds
 * events the store refuses, its slot says how many ("held"); once they are
 * stored the slot is cleared. A slot a worker left behind when it stopped
 * or died with such events, or one it wrote for events it knows it lost
 * ("lost"), is what the next one to open the file records as an
 * events_lost event in the task's log (worker-lost.c). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "model.h"

typedef struct Ledger Ledger;

/* A slot's record. */
typedef struct LedgerEntry {
        char task_id[ID_STRING_MAX];
        uint64_t count;                 /* events */
        usec_t since;                   /* when the first of them was refused */
        char reason[256];               /* why, in words */
} LedgerEntry;

/* Opens (and makes) the file with room for n_slots records, and takes what
 * an earlier worker left in it as lost. */
int ledger_open(const char *path, unsigned n_slots, Ledger **ret);
Ledger *ledger_free(Ledger *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(Ledger *, ledger_free);

/* The task holds `count` events the store did not take (count 0 clears its
 * slot). Written through (fdatasync) before it returns. -ENOSPC when every
 * slot is taken. */
int ledger_hold(Ledger *l, const LedgerEntry *e);
void ledger_release(Ledger *l, const char *task_id);
/* Events that will never be stored: a slot of its own, until
 * ledger_lost_done(). */
int ledger_lost(Ledger *l, const LedgerEntry *e);

/* The lost records, for writing them to the store: index i < ledger_n_lost(). */
size_t ledger_n_lost(const Ledger *l);
const LedgerEntry *ledger_lost_entry(const Ledger *l, size_t i);
/* The record is in the store now (or its task is gone): its slot is free. */
void ledger_lost_done(Ledger *l, size_t i);
