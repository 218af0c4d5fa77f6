/* tokenizer.h — Hugging Face tokenizer.json BPE tokenizers:
 * - SentencePiece style (Llama-2, Mistral, the fixture): normalizer
 *   Prepend("▁") + Replace(" ", "▁") or a Metaspace pre-tokenizer,
 *   byte_fallback to <0xXX> pieces, fuse_unk;
 * - byte-level style (Llama-3, Qwen2, GPT-2): optional NFC normalizer, the
 *   Split pre-tokenizer's regex (PCRE2 with Unicode properties) and/or
 *   ByteLevel (bytes as GPT-2's printable characters), ignore_merges;
 * merges by rank (lowest first, leftmost on ties), added/special tokens
 * matched before normalization, bos from the post-processor or
 * tokenizer_config.json. Other models (WordPiece, Unigram) are refused by
 * name. */
#ifndef RAANA_TOKENIZER_H
#define RAANA_TOKENIZER_H

#include <stddef.h>

#include "raana/error.h"

typedef struct raana_tokenizer raana_tokenizer;

/* Reads dir/tokenizer.json (and dir/tokenizer_config.json if present). */
raana_status raana_tokenizer_create(raana_tokenizer **tok, const char *dir, raana_error *err);
/* The same from tokenizer.json text; label names it in messages. */
raana_status raana_tokenizer_parse(raana_tokenizer **tok, const char *json, size_t len,
                                   const char *label, raana_error *err);
void raana_tokenizer_free(raana_tokenizer *tok);

/* ids (malloc'd, *n of them) of text[0..len); bos first if add_bos and the
 * tokenizer has one. */
raana_status raana_tokenizer_encode(const raana_tokenizer *tok, const char *text, size_t len,
                                    int add_bos, int **ids, size_t *n, raana_error *err);

/* Text of ids (malloc'd, NUL-terminated), special tokens skipped: for the
 * SentencePiece style "▁" -> " ", <0xXX> pieces -> bytes, the first leading
 * space stripped; for byte-level, characters back to bytes. */
raana_status raana_tokenizer_decode(const raana_tokenizer *tok, const int *ids, size_t n,
                                    char **text, raana_error *err);

int raana_tokenizer_bos(const raana_tokenizer *tok); /* -1 if none */
int raana_tokenizer_vocab_size(const raana_tokenizer *tok);

#endif
