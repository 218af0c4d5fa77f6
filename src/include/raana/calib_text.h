/* calib_text.h — the calibration text and its windows: the built-in
 * zero-shot sentence (repeated) or [calibration] text_file, tokenized into
 * windows of seq_len tokens (DESIGN section 4, docs/CALIBRATION.md). */
#ifndef RAANA_CALIB_TEXT_H
#define RAANA_CALIB_TEXT_H

#include <stddef.h>

#include "raana/config.h"
#include "raana/error.h"
#include "raana/tokenizer.h"

/* The built-in zero-shot calibration text (one sentence, repeated). */
extern const char raana_zeroshot_sentence[];

typedef struct {
    int n, len;  /* n windows of len tokens */
    int *tokens; /* [n][len] */
} raana_windows;

/* Calibration windows: up to max_windows windows of len tokens, each bos
 * followed by the next len - 1 tokens of the text (tokenized without bos).
 * Fails if the text is shorter than one window. */
raana_status raana_windows_calib(const raana_tokenizer *tok, const char *text, size_t n, int len,
                                 int max_windows, raana_windows *w, raana_error *err);
void raana_windows_free(raana_windows *w);

/* The calibration text of cfg: text_file's bytes ([calibration] source =
 * text; a read failure is an input error), else the zero-shot sentence
 * repeated enough times for n_samples windows of seq_len tokens. *text is
 * NUL-terminated; free it. */
raana_status raana_calib_text(const raana_config *cfg, int seq_len, char **text, size_t *len,
                              raana_error *err);

/* raana_calib_text cut into raana_windows_calib's windows (n_samples of
 * seq_len tokens); errors are prefixed with the text's name. */
raana_status raana_calib_windows(const raana_config *cfg, const raana_tokenizer *tok, int seq_len,
                                 raana_windows *w, raana_error *err);

#endif
