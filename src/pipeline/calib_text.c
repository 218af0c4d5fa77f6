/* calib_text.c — the calibration text (the zero-shot sentence or a file)
 * and its tokenization into windows (see calib_text.h). */
#include "raana/calib_text.h"

#include <stdlib.h>
#include <string.h>

#include "raana/file.h"

const char raana_zeroshot_sentence[] =
    "The curious fox leaped over the quiet stream, its reflection rippling in the golden "
    "afternoon light. ";

void raana_windows_free(raana_windows *w)
{
    free(w->tokens);
    memset(w, 0, sizeof *w);
}

raana_status raana_windows_calib(const raana_tokenizer *tok, const char *text, size_t n, int len,
                                 int max_windows, raana_windows *w, raana_error *err)
{
    raana_status st = RAANA_OK;
    int *ids = NULL, bos = raana_tokenizer_bos(tok), body = bos >= 0 ? len - 1 : len;
    size_t count;
    memset(w, 0, sizeof *w);
    RAANA_CHECK(raana_tokenizer_encode(tok, text, n, 0, &ids, &count, err));
    size_t available = body > 0 ? count / (size_t)body : 0;
    if (available == 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT,
                        "the calibration text has %zu tokens, fewer than one window of %d "
                        "(seq_len)",
                        count, len);
    w->n = (int)(available < (size_t)max_windows ? available : (size_t)max_windows);
    w->len = len;
    w->tokens = malloc((size_t)w->n * len * sizeof *w->tokens);
    if (!w->tokens)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for calibration windows");
    for (int i = 0; i < w->n; i++) {
        int *dst = w->tokens + (size_t)i * len;
        if (bos >= 0)
            *dst++ = bos;
        memcpy(dst, ids + (size_t)i * body, (size_t)body * sizeof *ids);
    }
cleanup:
    free(ids);
    return st;
}

/* The zero-shot sentence repeated reps times. */
static raana_status repeated_sentence(size_t reps, char **text, size_t *len, raana_error *err)
{
    size_t one = strlen(raana_zeroshot_sentence);
    *text = malloc(one * reps + 1);
    if (!*text)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for the calibration text");
    for (size_t r = 0; r < reps; r++)
        memcpy(*text + r * one, raana_zeroshot_sentence, one);
    (*text)[one * reps] = '\0';
    *len = one * reps;
    return RAANA_OK;
}

raana_status raana_calib_text(const raana_config *cfg, int seq_len, char **text, size_t *len,
                              raana_error *err)
{
    if (cfg->calib_source != RAANA_CALIB_TEXT)
        return repeated_sentence((size_t)cfg->n_samples * seq_len / 8 + 1, text, len, err);
    if (raana_read_file(cfg->text_file, text, len, err) != RAANA_OK)
        return raana_error_restatus(err, RAANA_ERR_INPUT);
    return RAANA_OK;
}

raana_status raana_calib_windows(const raana_config *cfg, const raana_tokenizer *tok, int seq_len,
                                 raana_windows *w, raana_error *err)
{
    raana_status st = RAANA_OK;
    char *text = NULL;
    size_t len;
    RAANA_CHECK(raana_calib_text(cfg, seq_len, &text, &len, err));
    st = raana_windows_calib(tok, text, len, seq_len, cfg->n_samples, w, err);
    if (st != RAANA_OK)
        raana_error_prefix(err, "%s",
                           cfg->calib_source == RAANA_CALIB_TEXT ? cfg->text_file
                                                                 : "zero-shot calibration text");
cleanup:
    free(text);
    return st;
}
