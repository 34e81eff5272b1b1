/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Strict UTF-8 validation, shared by the JSON parser and the completion gate:
 * both hand text to the store, and PostgreSQL refuses anything else. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. */
bool utf8_is_valid(const void *s, size_t n);
