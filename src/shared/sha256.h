/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SHA-256 (FIPS 180-4), for hashing API tokens before they are stored. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_HEX_SIZE (SHA256_DIGEST_SIZE * 2 + 1)

void sha256(const void *data, size_t len, uint8_t out[static SHA256_DIGEST_SIZE]);
/* Lowercase hex digest, NUL-terminated. */
void sha256_hex(const void *data, size_t len, char out[static SHA256_HEX_SIZE]);
