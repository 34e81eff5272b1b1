/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Runs a fuzzer's LLVMFuzzerTestOneInput over the files named on the command
 * line, so every fuzzer's corpus is a regression test in ordinary builds
 * (with -Dfuzzing=true, libFuzzer supplies main instead). */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char *argv[]) {
        for (int i = 1; i < argc; i++) {
                FILE *f = fopen(argv[i], "re");
                char *buf = NULL;
                size_t n = 0, cap = 0;

                if (!f) {
                        perror(argv[i]);
                        return EXIT_FAILURE;
                }
                for (;;) {
                        if (n == cap) {
                                cap = cap ? cap * 2 : 4096;
                                buf = realloc(buf, cap);
                                if (!buf)
                                        return EXIT_FAILURE;
                        }
                        size_t k = fread(buf + n, 1, cap - n, f);
                        if (k == 0)
                                break;
                        n += k;
                }
                fclose(f);
                /* Hand over an exactly-sized copy so ASan sees reads past the end. */
                uint8_t *exact = malloc(n ? n : 1);
                if (!exact)
                        return EXIT_FAILURE;
                if (n)
                        memcpy(exact, buf, n);
                free(buf);
                (void) LLVMFuzzerTestOneInput(exact, n);
                free(exact);
                printf("ok %s (%zu bytes)\n", argv[i], n);
        }
        return EXIT_SUCCESS;
}
