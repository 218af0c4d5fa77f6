/* tokenize_lines.c — test helper: raana's tokenizer on a JSON list of
 * strings, printing one JSON array of id arrays (no bos), the same shape
 * tests/js/tokenize.mjs prints. Usage: tokenize_lines MODEL_DIR LINES.json */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raana/file.h"
#include "raana/tokenizer.h"

int main(int argc, char **argv)
{
    raana_tokenizer *tok;
    raana_error err;
    char *text;
    size_t len;
    if (argc != 3) {
        fprintf(stderr, "usage: tokenize_lines MODEL_DIR LINES.json\n");
        return 2;
    }
    if (raana_tokenizer_create(&tok, argv[1], &err) != RAANA_OK ||
        raana_read_file(argv[2], &text, &len, &err) != RAANA_OK) {
        fprintf(stderr, "tokenize_lines: %s\n", err.msg);
        return 1;
    }
    cJSON *lines = cJSON_ParseWithLength(text, len), *out = cJSON_CreateArray();
    free(text);
    for (const cJSON *it = lines ? lines->child : NULL; it; it = it->next) {
        int *ids;
        size_t n;
        if (raana_tokenizer_encode(tok, it->valuestring, strlen(it->valuestring), 0, &ids, &n,
                                   &err) != RAANA_OK) {
            fprintf(stderr, "tokenize_lines: %s\n", err.msg);
            return 1;
        }
        cJSON_AddItemToArray(out, cJSON_CreateIntArray(ids, (int)n));
        free(ids);
    }
    char *s = cJSON_PrintUnformatted(out);
    fputs(s, stdout);
    free(s);
    cJSON_Delete(out);
    cJSON_Delete(lines);
    raana_tokenizer_free(tok);
    return 0;
}
