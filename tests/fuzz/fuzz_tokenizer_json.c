/* fuzz_tokenizer_json.c — libFuzzer target: arbitrary bytes as
 * tokenizer.json text (raana_tokenizer_parse), then, when it parses, an
 * encode and decode of a fixed string and of the input's first bytes. Any
 * crash, hang, leak or sanitizer report is a bug; errors are expected. */
#include <stdint.h>
#include <stdlib.h>

#include "raana/tokenizer.h"

static void round_trip(const raana_tokenizer *tok, const char *text, size_t len)
{
    int *ids = NULL;
    size_t n = 0;
    char *back = NULL;
    raana_error err;
    if (raana_tokenizer_encode(tok, text, len, 1, &ids, &n, &err) == RAANA_OK)
        (void)raana_tokenizer_decode(tok, ids, n, &back, &err);
    free(back);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    raana_tokenizer *tok = NULL;
    raana_error err;
    if (raana_tokenizer_parse(&tok, (const char *)data, size, "fuzz.json", &err) != RAANA_OK)
        return 0;
    static const char sample[] =
        "In the beginning God created the heaven and the earth. \xc3\xa9\xe2\x96\x81";
    round_trip(tok, sample, sizeof sample - 1);
    round_trip(tok, (const char *)data, size < 64 ? size : 64);
    raana_tokenizer_free(tok);
    return 0;
}
