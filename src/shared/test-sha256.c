/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sha256.c against the NIST example vectors (FIPS 180-4 examples and the
 * "one million a" long message), plus the padding edge lengths. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "tests.h"

static void check(const void *data, size_t len, const char *expected) {
        char hex[SHA256_HEX_SIZE];

        sha256_hex(data, len, hex);
        if (strcmp(hex, expected) != 0) {
                fprintf(stderr, "sha256 of %zu bytes: got %s, expected %s\n", len, hex, expected);
                abort();
        }
}

static void test_nist_vectors(void) {
        const char *s448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        const char *s896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                           "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

        check("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        check("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_se(strlen(s448) == 56);
        check(s448, strlen(s448), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
        assert_se(strlen(s896) == 112);
        check(s896, strlen(s896), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a(void) {
        size_t n = 1000000;
        char *buf = malloc(n);

        assert_se(buf);
        memset(buf, 'a', n);
        check(buf, n, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
        free(buf);
}

static void test_raw_digest(void) {
        uint8_t d[SHA256_DIGEST_SIZE];
        static const uint8_t abc[SHA256_DIGEST_SIZE] = {
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
        };

        sha256("abc", 3, d);
        assert_se(memcmp(d, abc, sizeof(d)) == 0);
}

/* Lengths around the padding boundary (55: one block, 56..63: two blocks, 64:
 * a full block then a padding block), checked against values from sha256sum. */
static void test_padding_boundaries(void) {
        static const struct {
                size_t len;
                const char *hex;
        } v[] = {
                { 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318" },
                { 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a" },
                { 63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34" },
                { 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb" },
                { 65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0" },
        };
        char buf[65];

        memset(buf, 'a', sizeof(buf));
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
                check(buf, v[i].len, v[i].hex);
}

int main(void) {
        test_nist_vectors();
        test_million_a();
        test_raw_digest();
        test_padding_boundaries();
        printf("test-sha256: ok\n");
        return EXIT_SUCCESS;
}
