/* tokenizer.c — BPE from tokenizer.json (see tokenizer.h): parsing with
 * cJSON, hash tables for pieces and merges, the rank-ordered merge loop (a
 * heap over adjacent pairs, O(n log n) so that a whole document can be one
 * word), byte fallback, added tokens; byte-level BPE with the Split regex
 * run by PCRE2 (Unicode properties) and NFC by utf8proc; decoding. */
#include "raana/tokenizer.h"

#include <cjson/cJSON.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "raana/file.h"

#define SPACE_MARK "\xe2\x96\x81" /* U+2581 "▁" */

/* ---- hash tables ------------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

typedef struct {
    size_t cap; /* power of two */
    int *slot;  /* piece id or -1 */
} piece_table;

typedef struct {
    size_t cap;
    uint64_t *key; /* left << 32 | right, UINT64_MAX = empty */
    int *rank, *merged;
} pair_table;

struct raana_tokenizer {
    int n_pieces;
    char **piece; /* by id */
    size_t *piece_len;
    piece_table pieces;
    pair_table pairs;
    int byte_piece[256]; /* id of <0xXX>, or -1 */
    int byte_fallback, fuse_unk, ignore_merges, unk, bos;
    /* normalization */
    int prepend_space; /* normalizer Prepend("▁") or Metaspace prepend */
    int prepend_first_only;
    int replace_space;  /* " " -> "▁" */
    int split_on_space; /* Metaspace split */
    int metaspace;      /* Metaspace: no prepend when the text starts with a space */
    int n_added;
    int *added_id, *added_special;
    /* byte-level BPE (Llama-3, Qwen2, GPT-2) */
    int nfc;              /* normalizer NFC */
    pcre2_code *split_re; /* Split(Regex, Isolated), or ByteLevel's own regex */
    int byte_level, byte_prefix_space;
    char byte_char[256][3]; /* byte -> UTF-8 of its byte-level character */
    unsigned char byte_char_len[256];
    int char_byte[324]; /* byte-level code point -> byte, -1 if none */
};

/* GPT-2's regex, used by ByteLevel(use_regex = true). */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int piece_find(const raana_tokenizer *t, const char *s, size_t n)
{
    size_t mask = t->pieces.cap - 1;
    for (size_t i = hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        int id = t->pieces.slot[i];
        if (id < 0)
            return -1;
        if (t->piece_len[id] == n && memcmp(t->piece[id], s, n) == 0)
            return id;
    }
}

static void piece_insert(raana_tokenizer *t, int id)
{
    size_t mask = t->pieces.cap - 1;
    size_t i = hash_bytes(t->piece[id], t->piece_len[id]) & mask;
    while (t->pieces.slot[i] >= 0)
        i = (i + 1) & mask;
    t->pieces.slot[i] = id;
}

static int pair_find(const pair_table *p, int a, int b, int *merged)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t mask = p->cap - 1;
    for (size_t i = (key * 0x9E3779B97F4A7C15ull >> 20) & mask;; i = (i + 1) & mask) {
        if (p->key[i] == UINT64_MAX)
            return -1;
        if (p->key[i] == key) {
            *merged = p->merged[i];
            return p->rank[i];
        }
    }
}

static void pair_insert(pair_table *p, int a, int b, int rank, int merged)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t mask = p->cap - 1, i = (key * 0x9E3779B97F4A7C15ull >> 20) & mask;
    while (p->key[i] != UINT64_MAX) {
        if (p->key[i] == key)
            return; /* first (lowest) rank wins */
        i = (i + 1) & mask;
    }
    p->key[i] = key, p->rank[i] = rank, p->merged[i] = merged;
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n)
        c *= 2;
    return c;
}

/* The vocabulary: every piece's text, their lengths and the lookup table. */
static void free_pieces(raana_tokenizer *t)
{
    for (int i = 0; t->piece && i < t->n_pieces; i++)
        free(t->piece[i]);
    free(t->piece);
    free(t->piece_len);
    free(t->pieces.slot);
}

static void pair_table_free(pair_table *pairs)
{
    free(pairs->key);
    free(pairs->rank);
    free(pairs->merged);
}

void raana_tokenizer_free(raana_tokenizer *t)
{
    if (!t)
        return;
    free_pieces(t);
    pair_table_free(&t->pairs);
    free(t->added_id);
    free(t->added_special);
    pcre2_code_free(t->split_re);
    free(t);
}

/* ---- parsing ------------------------------------------------------------------ */

static raana_status set_piece(raana_tokenizer *t, int id, const char *s, const char *label,
                              raana_error *err)
{
    if (id < 0 || id >= t->n_pieces)
        return raana_fail(err, RAANA_ERR_INPUT, "%s: token id %d out of range", label, id);
    if (t->piece[id])
        return RAANA_OK; /* added tokens repeat vocab entries */
    t->piece[id] = strdup(s);
    t->piece_len[id] = strlen(s);
    return t->piece[id] ? RAANA_OK : raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
}

/* A token id from tokenizer.json: an integer in [0, limit). limit is the
 * number of entries (vocab + added tokens), so the id table is never larger
 * than the file's own entries. */
static raana_status token_id(const cJSON *it, int limit, const char *what, const char *name,
                             const char *label, int *out, raana_error *err)
{
    double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
    if (!cJSON_IsNumber(it) || v != floor(v) || v < 0 || v >= limit)
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: %s '%.64s' has id %.17g, not an integer in [0, %d) (the number of "
                          "vocab and added entries)",
                          label, what, name ? name : "?", cJSON_IsNumber(it) ? v : -1.0, limit);
    *out = (int)v;
    return RAANA_OK;
}

/* The largest id in vocab and added_tokens, each checked. */
static raana_status max_token_id(const cJSON *vocab, const cJSON *added, const char *label,
                                 int *max_id, raana_error *err)
{
    int given, entries = cJSON_GetArraySize(vocab) + cJSON_GetArraySize(added);
    *max_id = -1;
    for (const cJSON *it = vocab->child; it; it = it->next) {
        if (!cJSON_IsNumber(it))
            return raana_fail(err, RAANA_ERR_INPUT, "%s: vocab entry '%s' is not an id", label,
                              it->string);
        RAANA_CALL(token_id(it, entries, "vocab entry", it->string, label, &given, err));
        *max_id = given > *max_id ? given : *max_id;
    }
    for (const cJSON *it = added ? added->child : NULL; it; it = it->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsNumber(id))
            continue; /* refused below, with its index */
        RAANA_CALL(token_id(id, entries, "added token",
                            cJSON_IsString(content) ? content->valuestring : NULL, label, &given,
                            err));
        *max_id = given > *max_id ? given : *max_id;
    }
    return RAANA_OK;
}

static raana_status parse_added(raana_tokenizer *t, const cJSON *added, const char *label,
                                raana_error *err)
{
    t->n_added = added ? cJSON_GetArraySize(added) : 0;
    t->added_id = calloc((size_t)t->n_added + 1, sizeof *t->added_id);
    t->added_special = calloc((size_t)t->n_added + 1, sizeof *t->added_special);
    if (!t->added_id || !t->added_special)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    int k = 0;
    for (const cJSON *it = added ? added->child : NULL; it; it = it->next, k++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content) || content->valuestring[0] == '\0')
            return raana_fail(err, RAANA_ERR_INPUT, "%s: added_tokens[%d] needs an id and content",
                              label, k);
        RAANA_CALL(set_piece(t, id->valueint, content->valuestring, label, err));
        t->added_id[k] = id->valueint;
        t->added_special[k] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special"));
    }
    return RAANA_OK;
}

/* The tables live in t, which the caller frees on failure. */
static raana_status parse_vocab(raana_tokenizer *t, const cJSON *vocab, const cJSON *added,
                                const char *label, raana_error *err)
{
    int max_id;
    RAANA_CALL(max_token_id(vocab, added, label, &max_id, err));
    t->n_pieces = max_id + 1;
    t->piece = calloc((size_t)t->n_pieces + 1, sizeof *t->piece);
    t->piece_len = calloc((size_t)t->n_pieces + 1, sizeof *t->piece_len);
    t->pieces.cap = pow2_at_least(2 * (size_t)t->n_pieces);
    t->pieces.slot = malloc(t->pieces.cap * sizeof *t->pieces.slot);
    if (!t->piece || !t->piece_len || !t->pieces.slot)
        return raana_fail(err, RAANA_ERR_NOMEM, "%s: out of memory for %d token ids", label,
                          t->n_pieces);
    memset(t->pieces.slot, 0xff, t->pieces.cap * sizeof *t->pieces.slot);
    for (const cJSON *it = vocab->child; it; it = it->next)
        RAANA_CALL(set_piece(t, it->valueint, it->string, label, err));
    RAANA_CALL(parse_added(t, added, label, err));
    for (int i = 0; i < t->n_pieces; i++) {
        if (!t->piece[i] && !(t->piece[i] = strdup("")))
            return raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
        if (t->piece_len[i] > 0)
            piece_insert(t, i);
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_piece[b] = piece_find(t, name, 6);
    }
    return RAANA_OK;
}

static raana_status parse_merges(raana_tokenizer *t, const cJSON *merges, const char *label,
                                 raana_error *err)
{
    int n = cJSON_GetArraySize(merges);
    t->pairs.cap = pow2_at_least(2 * (size_t)(n > 0 ? n : 1));
    t->pairs.key = malloc(t->pairs.cap * sizeof *t->pairs.key);
    t->pairs.rank = malloc(t->pairs.cap * sizeof *t->pairs.rank);
    t->pairs.merged = malloc(t->pairs.cap * sizeof *t->pairs.merged);
    if (!t->pairs.key || !t->pairs.rank || !t->pairs.merged)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    memset(t->pairs.key, 0xff, t->pairs.cap * sizeof *t->pairs.key);
    int rank = 0;
    for (const cJSON *it = merges->child; it; it = it->next, rank++) {
        const char *left, *right;
        size_t left_len;
        if (cJSON_IsString(it) && strchr(it->valuestring, ' ')) {
            left = it->valuestring;
            right = strchr(left, ' ') + 1;
            left_len = (size_t)(right - 1 - left);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) &&
                   cJSON_IsString(it->child->next)) {
            left = it->child->valuestring, right = it->child->next->valuestring;
            left_len = strlen(left);
        } else
            return raana_fail(err, RAANA_ERR_INPUT, "%s: merges[%d] is not \"left right\"", label,
                              rank);
        size_t right_len = strlen(right);
        char *joined = malloc(left_len + right_len + 1);
        if (!joined)
            return raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
        memcpy(joined, left, left_len);
        memcpy(joined + left_len, right, right_len + 1);
        int a = piece_find(t, left, left_len), b = piece_find(t, right, right_len),
            m = piece_find(t, joined, left_len + right_len);
        free(joined);
        if (a < 0 || b < 0 || m < 0)
            return raana_fail(err, RAANA_ERR_INPUT,
                              "%s: merges[%d] uses a piece that is not in the vocab", label, rank);
        pair_insert(&t->pairs, a, b, rank, m);
    }
    return RAANA_OK;
}

static const cJSON *obj(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* o's "type", or "?" when it has none (a normalizer's, a pre-tokenizer's). */
static const char *type_name(const cJSON *o)
{
    const cJSON *type = obj(o, "type");
    return cJSON_IsString(type) ? type->valuestring : "?";
}

/* The one message for a component of kind `what` named `name` that raana does not implement. */
static raana_status unsupported_component(raana_error *err, const char *label, const char *what,
                                          const char *name, const char *supported)
{
    return raana_fail(err, RAANA_ERR_UNSUPPORTED, "%s: %s '%s' is not supported (supported: %s)",
                      label, what, name, supported);
}

static raana_status parse_normalizer(raana_tokenizer *t, const cJSON *norm, const char *label,
                                     raana_error *err)
{
    if (!norm || cJSON_IsNull(norm))
        return RAANA_OK;
    const char *name = type_name(norm);
    if (strcmp(name, "Sequence") == 0) {
        for (const cJSON *it = obj(norm, "normalizers") ? obj(norm, "normalizers")->child : NULL;
             it; it = it->next) {
            RAANA_CALL(parse_normalizer(t, it, label, err));
        }
        return RAANA_OK;
    }
    if (strcmp(name, "NFC") == 0) {
        t->nfc = 1;
        return RAANA_OK;
    }
    if (strcmp(name, "Prepend") == 0 && cJSON_IsString(obj(norm, "prepend")) &&
        strcmp(obj(norm, "prepend")->valuestring, SPACE_MARK) == 0) {
        t->prepend_space = 1;
        return RAANA_OK;
    }
    if (strcmp(name, "Replace") == 0 && cJSON_IsString(obj(obj(norm, "pattern"), "String")) &&
        strcmp(obj(obj(norm, "pattern"), "String")->valuestring, " ") == 0 &&
        cJSON_IsString(obj(norm, "content")) &&
        strcmp(obj(norm, "content")->valuestring, SPACE_MARK) == 0) {
        t->replace_space = 1;
        return RAANA_OK;
    }
    return unsupported_component(
        err, label, "normalizer", name,
        "Prepend(\"\xe2\x96\x81\"), Replace(\" \", \"\xe2\x96\x81\"), NFC, "
        "Sequence of those");
}

static raana_status compile_split(raana_tokenizer *t, const char *pattern, const char *label,
                                  raana_error *err)
{
    int code;
    PCRE2_SIZE at;
    t->split_re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                &code, &at, NULL);
    if (!t->split_re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return raana_fail(err, RAANA_ERR_UNSUPPORTED,
                          "%s: Split pattern does not compile (PCRE2, offset %zu): %s", label,
                          (size_t)at, (const char *)msg);
    }
    (void)pcre2_jit_compile(t->split_re, PCRE2_JIT_COMPLETE); /* faster when available */
    return RAANA_OK;
}

/* GPT-2's byte -> printable character map. */
static void byte_level_tables(raana_tokenizer *t)
{
    int n = 0;
    for (int c = 0; c < 324; c++)
        t->char_byte[c] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        int cp = printable ? b : 256 + n++;
        t->char_byte[cp] = b;
        if (cp < 128) {
            t->byte_char[b][0] = (char)cp;
            t->byte_char_len[b] = 1;
        } else {
            t->byte_char[b][0] = (char)(0xc0 | (cp >> 6));
            t->byte_char[b][1] = (char)(0x80 | (cp & 0x3f));
            t->byte_char_len[b] = 2;
        }
    }
}

static raana_status parse_one_pre_tokenizer(raana_tokenizer *t, const cJSON *pre, int in_sequence,
                                            const char *label, raana_error *err)
{
    const char *name = type_name(pre);
    if (strcmp(name, "Metaspace") == 0 && !in_sequence) {
        const cJSON *scheme = obj(pre, "prepend_scheme"), *add = obj(pre, "add_prefix_space");
        t->replace_space = 1;
        t->prepend_space = cJSON_IsString(scheme) ? strcmp(scheme->valuestring, "never") != 0
                                                  : !cJSON_IsFalse(add);
        t->prepend_first_only = cJSON_IsString(scheme) && strcmp(scheme->valuestring, "first") == 0;
        t->split_on_space = !cJSON_IsFalse(obj(pre, "split"));
        t->metaspace = 1;
        return RAANA_OK;
    }
    if (strcmp(name, "Split") == 0 && !t->split_re) {
        const cJSON *re = obj(obj(pre, "pattern"), "Regex"), *behavior = obj(pre, "behavior");
        if (!cJSON_IsString(re) || !cJSON_IsString(behavior) ||
            strcmp(behavior->valuestring, "Isolated") != 0 || cJSON_IsTrue(obj(pre, "invert")))
            return raana_fail(err, RAANA_ERR_UNSUPPORTED,
                              "%s: only Split with a Regex pattern, behavior Isolated and no "
                              "invert is supported",
                              label);
        return compile_split(t, re->valuestring, label, err);
    }
    if (strcmp(name, "ByteLevel") == 0) {
        t->byte_level = 1;
        byte_level_tables(t);
        t->byte_prefix_space = cJSON_IsTrue(obj(pre, "add_prefix_space"));
        if (t->byte_prefix_space && t->split_re)
            return raana_fail(err, RAANA_ERR_UNSUPPORTED,
                              "%s: ByteLevel with add_prefix_space after a Split is not supported",
                              label);
        if (!cJSON_IsFalse(obj(pre, "use_regex")) && !t->split_re)
            return compile_split(t, gpt2_pattern, label, err);
        return RAANA_OK;
    }
    return unsupported_component(
        err, label, "pre_tokenizer", name,
        "Metaspace; Split(Regex, Isolated) and ByteLevel, alone or in a Sequence");
}

static raana_status parse_pre_tokenizer(raana_tokenizer *t, const cJSON *pre, const char *label,
                                        raana_error *err)
{
    if (!pre || cJSON_IsNull(pre))
        return RAANA_OK;
    if (strcmp(type_name(pre), "Sequence") != 0)
        return parse_one_pre_tokenizer(t, pre, 0, label, err);
    const cJSON *list = obj(pre, "pretokenizers");
    for (const cJSON *it = list ? list->child : NULL; it; it = it->next)
        RAANA_CALL(parse_one_pre_tokenizer(t, it, 1, label, err));
    if (t->split_re && !t->byte_level)
        return raana_fail(err, RAANA_ERR_UNSUPPORTED,
                          "%s: a Split pre-tokenizer without ByteLevel is not supported", label);
    return RAANA_OK;
}

/* bos: the post-processor's leading special token, else none. */
static void parse_bos(raana_tokenizer *t, const cJSON *post)
{
    t->bos = -1;
    const cJSON *single = obj(post, "single");
    const cJSON *first = single ? cJSON_GetArrayItem(single, 0) : NULL;
    const cJSON *special = first ? obj(obj(first, "SpecialToken"), "id") : NULL;
    if (cJSON_IsString(special))
        t->bos = piece_find(t, special->valuestring, strlen(special->valuestring));
}

/* model.type is "BPE", with a vocab object and a merges list. */
static raana_status check_model(const cJSON *model, const char *label, raana_error *err)
{
    const cJSON *type = obj(model, "type");
    if (!cJSON_IsString(type))
        return raana_fail(err, RAANA_ERR_INPUT, "%s: model.type is missing", label);
    if (strcmp(type->valuestring, "BPE") != 0)
        return unsupported_component(err, label, "tokenizer model type", type->valuestring, "BPE");
    if (!cJSON_IsObject(obj(model, "vocab")) || !cJSON_IsArray(obj(model, "merges")))
        return raana_fail(err, RAANA_ERR_INPUT, "%s: model needs a vocab object and a merges list",
                          label);
    return RAANA_OK;
}

static void parse_model_flags(raana_tokenizer *t, const cJSON *model)
{
    const cJSON *unk = obj(model, "unk_token");
    t->unk = cJSON_IsString(unk) ? piece_find(t, unk->valuestring, strlen(unk->valuestring)) : -1;
    t->byte_fallback = cJSON_IsTrue(obj(model, "byte_fallback"));
    t->fuse_unk = cJSON_IsTrue(obj(model, "fuse_unk"));
    t->ignore_merges = cJSON_IsTrue(obj(model, "ignore_merges"));
}

raana_status raana_tokenizer_parse(raana_tokenizer **out, const char *json, size_t len,
                                   const char *label, raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_tokenizer *t = NULL;
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: not valid JSON", label);
    t = calloc(1, sizeof *t);
    if (!t)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory");
    const cJSON *model = obj(root, "model");
    RAANA_CHECK(check_model(model, label, err));
    RAANA_CHECK(parse_vocab(t, obj(model, "vocab"), obj(root, "added_tokens"), label, err));
    RAANA_CHECK(parse_merges(t, obj(model, "merges"), label, err));
    RAANA_CHECK(parse_normalizer(t, obj(root, "normalizer"), label, err));
    RAANA_CHECK(parse_pre_tokenizer(t, obj(root, "pre_tokenizer"), label, err));
    parse_model_flags(t, model);
    parse_bos(t, obj(root, "post_processor"));
    *out = t;
    t = NULL; /* the caller's now */
cleanup:
    cJSON_Delete(root);
    raana_tokenizer_free(t);
    return st;
}

/* bos from tokenizer_config.json when the post-processor names none. */
static void config_bos(raana_tokenizer *t, const char *dir)
{
    char path[4200], *text;
    size_t len;
    raana_error err;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (t->bos >= 0 || raana_read_file(path, &text, &len, &err) != RAANA_OK)
        return;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *add = obj(root, "add_bos_token"), *bos = obj(root, "bos_token");
    if (cJSON_IsObject(bos))
        bos = obj(bos, "content");
    if (cJSON_IsTrue(add) && cJSON_IsString(bos))
        t->bos = piece_find(t, bos->valuestring, strlen(bos->valuestring));
    cJSON_Delete(root);
}

raana_status raana_tokenizer_create(raana_tokenizer **tok, const char *dir, raana_error *err)
{
    raana_status st = RAANA_OK;
    char path[4200], *text = NULL;
    size_t len;
    *tok = NULL;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (raana_read_file(path, &text, &len, err) != RAANA_OK)
        RAANA_CHECK(raana_error_restatus(err, RAANA_ERR_INPUT));
    RAANA_CHECK(raana_tokenizer_parse(tok, text, len, path, err));
    config_bos(*tok, dir);
cleanup:
    free(text);
    return st;
}

int raana_tokenizer_bos(const raana_tokenizer *t)
{
    return t->bos;
}

int raana_tokenizer_vocab_size(const raana_tokenizer *t)
{
    return t->n_pieces;
}

/* ---- encoding ------------------------------------------------------------------- */

typedef struct {
    int *v;
    size_t n, cap;
} int_vec;

/* Doubles *cap (the first time to 64) and reallocates the array whose
 * pointer is at array_ptr (an int ** or a heap_item **) to it: 0, or -1 with
 * the array unchanged when out of memory. */
static int grow(void *array_ptr, size_t *cap, size_t elem_size)
{
    void *array;
    memcpy(&array, array_ptr, sizeof array);
    size_t want = *cap ? 2 * *cap : 64;
    void *p = realloc(array, want * elem_size);
    if (!p)
        return -1;
    memcpy(array_ptr, &p, sizeof p);
    *cap = want;
    return 0;
}

static int push(int_vec *v, int x)
{
    if (v->n == v->cap && grow(&v->v, &v->cap, sizeof *v->v) != 0)
        return -1;
    v->v[v->n++] = x;
    return 0;
}

typedef struct {
    int rank, left;
} heap_item;

typedef struct {
    heap_item *a;
    size_t n, cap;
} pair_heap;

static int item_less(heap_item x, heap_item y)
{
    return x.rank < y.rank || (x.rank == y.rank && x.left < y.left);
}

static int heap_push(pair_heap *h, heap_item it)
{
    if (h->n == h->cap && grow(&h->a, &h->cap, sizeof *h->a) != 0)
        return -1;
    size_t i = h->n++;
    while (i > 0 && item_less(it, h->a[(i - 1) / 2])) {
        h->a[i] = h->a[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->a[i] = it;
    return 0;
}

static heap_item heap_pop(pair_heap *h)
{
    heap_item top = h->a[0], last = h->a[--h->n];
    size_t i = 0;
    for (;;) { /* sift `last` down from the root */
        size_t l = 2 * i + 1, r = l + 1, m = i;
        heap_item cur = last;
        if (l < h->n && item_less(h->a[l], cur))
            m = l, cur = h->a[l];
        if (r < h->n && item_less(h->a[r], cur))
            m = r;
        if (m == i)
            break;
        h->a[i] = h->a[m];
        i = m;
    }
    if (h->n)
        h->a[i] = last;
    return top;
}

static size_t utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : c >> 5 == 6 ? 2 : c >> 4 == 14 ? 3 : c >> 3 == 30 ? 4 : 1;
}

/* Symbols of one word: a piece per character, else its bytes, else unk. */
static int initial_symbols(const raana_tokenizer *t, const char *w, size_t n, int_vec *sym)
{
    int last_unk = 0;
    for (size_t i = 0; i < n;) {
        size_t cl = utf8_len((unsigned char)w[i]);
        cl = i + cl > n ? n - i : cl;
        int id = piece_find(t, w + i, cl);
        if (id >= 0) {
            if (push(sym, id))
                return -1;
            last_unk = 0;
        } else if (t->byte_fallback && t->byte_piece[(unsigned char)w[i]] >= 0) {
            for (size_t b = 0; b < cl; b++)
                if (push(sym, t->byte_piece[(unsigned char)w[i + b]]))
                    return -1;
            last_unk = 0;
        } else if (t->unk >= 0 && !(t->fuse_unk && last_unk)) {
            if (push(sym, t->unk))
                return -1;
            last_unk = 1;
        } /* no unk token: the character is dropped */
        i += cl;
    }
    return 0;
}

/* Merges adjacent symbols of sym (linked by next/prev) in rank order,
 * through a heap of candidate pairs. 0, or -1 when out of memory. */
static int merge_symbols(const raana_tokenizer *t, int_vec *sym, int *next, int *prev)
{
    pair_heap heap = {0};
    int rc = -1;
    for (size_t i = 0; i + 1 < sym->n; i++) {
        int merged = -1, r = pair_find(&t->pairs, sym->v[i], sym->v[i + 1], &merged);
        if (r >= 0 && heap_push(&heap, (heap_item){r, (int)i}))
            goto cleanup;
    }
    while (heap.n) {
        heap_item it = heap_pop(&heap);
        int i = it.left, j, merged = -1;
        if (sym->v[i] < 0 || (j = next[i]) < 0)
            continue; /* stale: i was merged away or is now last */
        if (pair_find(&t->pairs, sym->v[i], sym->v[j], &merged) != it.rank)
            continue; /* stale: a neighbour changed */
        sym->v[i] = merged;
        sym->v[j] = -1;
        next[i] = next[j];
        if (next[j] >= 0)
            prev[next[j]] = i;
        int r;
        if (prev[i] >= 0 && (r = pair_find(&t->pairs, sym->v[prev[i]], sym->v[i], &merged)) >= 0 &&
            heap_push(&heap, (heap_item){r, prev[i]}))
            goto cleanup;
        if (next[i] >= 0 && (r = pair_find(&t->pairs, sym->v[i], sym->v[next[i]], &merged)) >= 0 &&
            heap_push(&heap, (heap_item){r, i}))
            goto cleanup;
    }
    rc = 0;
cleanup:
    free(heap.a);
    return rc;
}

/* BPE over one word, appending its ids to out. 0, or -1 when out of
 * memory. */
static int encode_word(const raana_tokenizer *t, const char *w, size_t n, int_vec *out)
{
    int whole;
    if (t->ignore_merges && (whole = piece_find(t, w, n)) >= 0)
        return push(out, whole);
    int_vec sym = {0};
    int *next = NULL, *prev = NULL, rc = -1;
    if (initial_symbols(t, w, n, &sym))
        goto cleanup;
    size_t m = sym.n;
    next = malloc((m + 1) * sizeof *next), prev = malloc((m + 1) * sizeof *prev);
    if (!next || !prev)
        goto cleanup;
    for (size_t i = 0; i < m; i++)
        next[i] = (int)i + 1 < (int)m ? (int)i + 1 : -1, prev[i] = (int)i - 1;
    if (merge_symbols(t, &sym, next, prev))
        goto cleanup;
    rc = 0;
    for (int i = m ? 0 : -1; i >= 0 && rc == 0; i = next[i])
        rc = push(out, sym.v[i]);
cleanup:
    free(sym.v);
    free(next);
    free(prev);
    return rc;
}

/* One regex piece: its bytes as byte-level characters, then BPE. */
static int encode_byte_piece(const raana_tokenizer *t, const char *s, size_t n, int_vec *out)
{
    char *mapped = malloc(2 * n + 1);
    size_t k = 0;
    if (!mapped)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        memcpy(mapped + k, t->byte_char[b], t->byte_char_len[b]);
        k += t->byte_char_len[b];
    }
    int rc = encode_word(t, mapped, k, out);
    free(mapped);
    return rc;
}

/* Byte-level: optional NFC and prefix space, the Split regex (matches and
 * the gaps between them are pieces), each piece encoded on its own. */
static int encode_byte_level(const raana_tokenizer *t, const char *s, size_t n, int_vec *out)
{
    char *text = malloc(n + 2);
    if (!text)
        return -1;
    size_t k = 0;
    if (t->byte_prefix_space && s[0] != ' ')
        text[k++] = ' ';
    memcpy(text + k, s, n);
    k += n;
    text[k] = '\0';
    if (t->nfc) {
        utf8proc_uint8_t *nfc = utf8proc_NFC((const utf8proc_uint8_t *)text);
        if (nfc) { /* invalid UTF-8 is left as it is */
            free(text);
            text = (char *)nfc;
            k = strlen(text);
        }
    }
    int rc = 0;
    if (!t->split_re) {
        rc = encode_byte_piece(t, text, k, out);
        free(text);
        return rc;
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->split_re, NULL);
    PCRE2_SIZE pos = 0, gap = 0;
    while (md && rc == 0 && pos < k) {
        int m = pcre2_match(t->split_re, (PCRE2_SPTR)text, k, pos, 0, md, NULL);
        if (m < 0)
            break; /* no more matches (or invalid UTF-8: the rest is one piece) */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] == ov[0]) { /* empty match: step one character */
            pos = ov[0] + 1;
            while (pos < k && ((unsigned char)text[pos] & 0xc0) == 0x80)
                pos++;
            continue;
        }
        if (ov[0] > gap)
            rc = encode_byte_piece(t, text + gap, ov[0] - gap, out);
        if (rc == 0)
            rc = encode_byte_piece(t, text + ov[0], ov[1] - ov[0], out);
        gap = pos = ov[1];
    }
    if (rc == 0 && gap < k)
        rc = encode_byte_piece(t, text + gap, k - gap, out);
    if (!md)
        rc = -1;
    pcre2_match_data_free(md);
    free(text);
    return rc;
}

/* Normalizes a plain segment (no added tokens in it) and encodes it. */
static int encode_segment(const raana_tokenizer *t, const char *s, size_t n, int first,
                          int_vec *out)
{
    if (n == 0)
        return 0;
    if (t->byte_level)
        return encode_byte_level(t, s, n, out);
    size_t cap = 3 * n + 4, k = 0;
    char *norm = malloc(cap);
    if (!norm)
        return -1;
    int starts_with_mark = n >= 3 && memcmp(s, SPACE_MARK, 3) == 0;
    if (t->prepend_space && (!t->prepend_first_only || first) &&
        !(t->metaspace && (starts_with_mark || s[0] == ' ')))
        memcpy(norm, SPACE_MARK, 3), k = 3;
    for (size_t i = 0; i < n; i++) {
        if (t->replace_space && s[i] == ' ')
            memcpy(norm + k, SPACE_MARK, 3), k += 3;
        else
            norm[k++] = s[i];
    }
    int rc = 0;
    if (!t->split_on_space) {
        rc = encode_word(t, norm, k, out);
    } else { /* each word starts at a "▁" */
        size_t start = 0;
        for (size_t i = 3; i + 3 <= k && rc == 0; i++)
            if (memcmp(norm + i, SPACE_MARK, 3) == 0) {
                rc = encode_word(t, norm + start, i - start, out);
                start = i;
            }
        if (rc == 0)
            rc = encode_word(t, norm + start, k - start, out);
    }
    free(norm);
    return rc;
}

/* The added token starting at text[i] (longest), or -1. */
static int added_at(const raana_tokenizer *t, const char *text, size_t len, size_t i,
                    size_t *match_len)
{
    int best = -1;
    *match_len = 0;
    for (int a = 0; a < t->n_added; a++) {
        int id = t->added_id[a];
        size_t pl = t->piece_len[id];
        if (pl > *match_len && pl <= len - i && memcmp(text + i, t->piece[id], pl) == 0)
            best = id, *match_len = pl;
    }
    return best;
}

raana_status raana_tokenizer_encode(const raana_tokenizer *t, const char *text, size_t len,
                                    int add_bos, int **ids, size_t *n, raana_error *err)
{
    int_vec out = {0};
    int rc = add_bos && t->bos >= 0 ? push(&out, t->bos) : 0;
    size_t seg = 0, i = 0, ml;
    int first = 1;
    while (rc == 0 && i < len) {
        int id = added_at(t, text, len, i, &ml);
        if (id < 0) {
            i++;
            continue;
        }
        rc = encode_segment(t, text + seg, i - seg, first, &out);
        first = first && i == seg;
        if (rc == 0)
            rc = push(&out, id);
        i += ml;
        seg = i;
    }
    if (rc == 0)
        rc = encode_segment(t, text + seg, len - seg, first, &out);
    if (rc != 0) {
        free(out.v);
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
    }
    *ids = out.v ? out.v : malloc(sizeof(int));
    *n = out.n;
    return RAANA_OK;
}

raana_status raana_tokenizer_decode(const raana_tokenizer *t, const int *ids, size_t n, char **text,
                                    raana_error *err)
{
    size_t cap = 16, k = 0;
    for (size_t i = 0; i < n; i++)
        cap += ids[i] >= 0 && ids[i] < t->n_pieces ? t->piece_len[ids[i]] + 1 : 0;
    char *s = malloc(cap);
    if (!s)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory decoding");
    for (size_t i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->n_pieces)
            continue;
        int special = 0;
        for (int a = 0; a < t->n_added; a++)
            special |= t->added_id[a] == id && t->added_special[a];
        if (special)
            continue;
        const char *p = t->piece[id];
        size_t pl = t->piece_len[id];
        if (t->byte_level) { /* each character back to its byte */
            for (size_t j = 0; j < pl;) {
                utf8proc_int32_t cp;
                utf8proc_ssize_t used = utf8proc_iterate((const utf8proc_uint8_t *)p + j,
                                                         (utf8proc_ssize_t)(pl - j), &cp);
                if (used <= 0)
                    break;
                if (cp >= 0 && cp < 324 && t->char_byte[cp] >= 0)
                    s[k++] = (char)t->char_byte[cp];
                else
                    memcpy(s + k, p + j, (size_t)used), k += (size_t)used;
                j += (size_t)used;
            }
            continue;
        }
        unsigned byte;
        if (pl == 6 && sscanf(p, "<0x%2X>", &byte) == 1) {
            s[k++] = (char)byte;
            continue;
        }
        for (size_t j = 0; j < pl;)
            if (j + 3 <= pl && memcmp(p + j, SPACE_MARK, 3) == 0)
                s[k++] = ' ', j += 3;
            else
                s[k++] = p[j++];
    }
    s[k] = '\0';
    if (!t->byte_level && k > 0 && s[0] == ' ') /* Strip(" ", 1, 0) */
        memmove(s, s + 1, k);
    *text = s;
    return RAANA_OK;
}
