/* fuzz_safetensors_header.c — libFuzzer target: arbitrary bytes as a whole
 * .safetensors file (through an in-memory file, so the length field, the
 * mmap path and the header validation all run). Any crash, leak or
 * sanitizer report is a bug; errors are expected. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "raana/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz.safetensors", 0);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        char path[64];
        raana_st_file f;
        raana_error err;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        if (raana_st_open(&f, path, &err) == RAANA_OK) {
            float value;
            for (size_t i = 0; i < f.n_tensors; i++)
                if (f.tensors[i].numel == 1)
                    (void)raana_st_read_f32(&f, &f.tensors[i], &value, &err);
            raana_st_close(&f);
        }
    }
    close(fd);
    return 0;
}
