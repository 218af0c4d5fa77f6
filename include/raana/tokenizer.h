/* tokenizer.h — Hugging Face tokenizer.json BPE tokenizers of the
 * SentencePiece style (Llama-2, Mistral, the fixture): normalizer
 * Prepend("▁") + Replace(" ", "▁") or a Metaspace pre-tokenizer, merges by
 * rank (lowest first, leftmost on ties), byte_fallback to <0xXX> pieces,
 * fuse_unk, added/special tokens matched before normalization, and bos from
 * tokenizer_config.json / the post-processor. The byte-level style
 * (Llama-3, Qwen2, GPT-2) is refused by name until it is implemented. */
#ifndef RAANA_TOKENIZER_H
#define RAANA_TOKENIZER_H

#include <stddef.h>

#include "raana/error.h"

typedef struct raana_tokenizer raana_tokenizer;

/* Reads dir/tokenizer.json (and dir/tokenizer_config.json if present). */
raana_status raana_tokenizer_load(raana_tokenizer **tok, const char *dir, raana_error *err);
/* The same from tokenizer.json text; label names it in messages. */
raana_status raana_tokenizer_parse(raana_tokenizer **tok, const char *json, size_t len,
                                   const char *label, raana_error *err);
void raana_tokenizer_free(raana_tokenizer *tok);

/* ids (malloc'd, *n of them) of text[0..len); bos first if add_bos and the
 * tokenizer has one. */
raana_status raana_tokenizer_encode(const raana_tokenizer *tok, const char *text, size_t len,
                                    int add_bos, int **ids, size_t *n, raana_error *err);

/* Text of ids (malloc'd, NUL-terminated), as the Llama decoder makes it:
 * "▁" -> " ", <0xXX> pieces -> bytes, the first leading space stripped;
 * special tokens are skipped. */
raana_status raana_tokenizer_decode(const raana_tokenizer *tok, const int *ids, size_t n,
                                    char **text, raana_error *err);

int raana_tokenizer_bos(const raana_tokenizer *tok); /* -1 if none */
int raana_tokenizer_vocab_size(const raana_tokenizer *tok);

#endif
