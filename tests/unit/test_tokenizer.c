/* test_tokenizer.c — the tokenizer against the fixture: the 30 strings of
 * tokenizer_tests.json (ids from SentencePiece and their decoding), the
 * token ids in reference.json (first 64 of the held-out stream, the
 * calibration text), the held-out stream's length; bad tokenizer files. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "check.h"
#include "raana/file.h"
#include "raana/tokenizer.h"

#define FIXTURE RAANA_SOURCE_DIR "/tests/data/kjv-tiny"

static cJSON *load_json(const char *path)
{
    char *text;
    size_t len;
    raana_error err;
    if (raana_read_file(path, &text, &len, &err) != RAANA_OK)
        return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    return j;
}

static int same_ids(const int *ids, size_t n, const cJSON *want)
{
    if ((int)n != cJSON_GetArraySize(want))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] != cJSON_GetArrayItem(want, (int)i)->valueint)
            return 0;
    return 1;
}

static void test_fixture_strings(const raana_tokenizer *tok)
{
    cJSON *tests = load_json(FIXTURE "/tokenizer_tests.json");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(tests, "tests");
    int n_ok = 0, n_dec = 0, total = 0;
    for (const cJSON *it = list ? list->child : NULL; it; it = it->next, total++) {
        const char *text = cJSON_GetObjectItemCaseSensitive(it, "text")->valuestring;
        int *ids;
        size_t n;
        char *dec;
        raana_error err;
        CHECK_INT(raana_tokenizer_encode(tok, text, strlen(text), 0, &ids, &n, &err), RAANA_OK);
        int ok = same_ids(ids, n, cJSON_GetObjectItemCaseSensitive(it, "ids"));
        if (!ok)
            fprintf(stderr, "  ids differ for \"%s\"\n", text);
        n_ok += ok;
        CHECK_INT(raana_tokenizer_decode(tok, ids, n, &dec, &err), RAANA_OK);
        int dok = strcmp(dec, cJSON_GetObjectItemCaseSensitive(it, "decoded")->valuestring) == 0;
        if (!dok)
            fprintf(stderr, "  decoding differs for \"%s\": \"%s\"\n", text, dec);
        n_dec += dok;
        free(ids);
        free(dec);
    }
    CHECK_INT(total, 30);
    CHECK_INT(n_ok, total);
    CHECK_INT(n_dec, total);
    cJSON_Delete(tests);
}

static void test_reference_ids(const raana_tokenizer *tok)
{
    cJSON *ref = load_json(FIXTURE "/reference.json");
    char *held;
    size_t len, n;
    int *ids;
    raana_error err;
    CHECK_INT(raana_tokenizer_bos(tok), 1);
    CHECK_INT(raana_read_file(FIXTURE "/heldout.txt", &held, &len, &err), RAANA_OK);
    CHECK_INT(raana_tokenizer_encode(tok, held, len, 1, &ids, &n, &err), RAANA_OK);
    const cJSON *hp = cJSON_GetObjectItemCaseSensitive(ref, "heldout_ppl");
    CHECK_INT(n, cJSON_GetObjectItemCaseSensitive(hp, "stream_tokens")->valueint); /* 48141 */
    const cJSON *fwd = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(ref, "forward_check"), "input_ids");
    CHECK(n >= 64 && same_ids(ids, 64, fwd));
    free(ids);
    free(held);
    const cJSON *cc = cJSON_GetObjectItemCaseSensitive(ref, "calibration_check");
    const char *text = cJSON_GetObjectItemCaseSensitive(cc, "text")->valuestring;
    int repeat = cJSON_GetObjectItemCaseSensitive(cc, "repeat")->valueint;
    size_t tl = strlen(text);
    char *rep = malloc(tl * (size_t)repeat + 1);
    for (int r = 0; r < repeat; r++)
        memcpy(rep + (size_t)r * tl, text, tl);
    rep[tl * (size_t)repeat] = '\0';
    CHECK_INT(raana_tokenizer_encode(tok, rep, strlen(rep), 1, &ids, &n, &err), RAANA_OK);
    CHECK(same_ids(ids, n, cJSON_GetObjectItemCaseSensitive(cc, "input_ids")));
    free(ids);
    free(rep);
    /* added tokens in text are matched before normalization */
    CHECK_INT(raana_tokenizer_encode(tok, "In</s>the", 9, 0, &ids, &n, &err), RAANA_OK);
    CHECK(n >= 3 && ids[0] != 2);
    int has_eos = 0;
    for (size_t i = 0; i < n; i++)
        has_eos |= ids[i] == 2;
    CHECK(has_eos);
    free(ids);
    cJSON_Delete(ref);
}

static void test_bad_files(void)
{
    static const struct {
        const char *json;
        raana_status st;
        const char *part;
    } cases[] = {
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", RAANA_ERR_UNSUPPORTED,
         "tokenizer model type 'Unigram' is not supported"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": "
         "[\"a b\"]}, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
         RAANA_ERR_UNSUPPORTED, "pre_tokenizer 'BertPreTokenizer' is not supported"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(unclosed\"}, "
         "\"behavior\": \"Isolated\"}}",
         RAANA_ERR_UNSUPPORTED, "Split pattern does not compile"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a c\"]}}",
         RAANA_ERR_INPUT, "merges[0] uses a piece that is not in the vocab"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"normalizer\": {\"type\": \"NFKC\"}}",
         RAANA_ERR_UNSUPPORTED, "normalizer 'NFKC' is not supported"},
        {"{\"model\": {\"vocab\": {}}}", RAANA_ERR_INPUT, "model.type is missing"},
        {"{not json", RAANA_ERR_INPUT, "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        raana_tokenizer *tok;
        raana_error err;
        CHECK_INT(raana_tokenizer_parse(&tok, cases[i].json, strlen(cases[i].json),
                                        "tokenizer.json", &err),
                  cases[i].st);
        CHECK_MSG(err, "tokenizer.json", cases[i].part);
    }
    raana_tokenizer *tok;
    raana_error err;
    CHECK_INT(raana_tokenizer_create(&tok, "/nonexistent", &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, "/nonexistent/tokenizer.json");
}

/* A byte-level tokenizer with NFC: every byte's character, plus "é" as one
 * merged piece. Decomposed e + U+0301 must become the same token. */
static void test_byte_level_nfc(void)
{
    char json[8192];
    size_t k = (size_t)snprintf(json, sizeof json, "{\"model\": {\"type\": \"BPE\", \"vocab\": {");
    int n = 0;
    for (int b = 0; b < 256; b++) { /* GPT-2's byte -> character map, in order */
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        int cp = printable ? b : 256 + n++;
        char ch[3] = {0};
        if (cp < 128)
            ch[0] = (char)cp;
        else
            ch[0] = (char)(0xc0 | (cp >> 6)), ch[1] = (char)(0x80 | (cp & 0x3f));
        k += (size_t)snprintf(json + k, sizeof json - k, "%s\"%s%s\": %d", b ? ", " : "",
                              cp == '"' || cp == '\\' ? "\\" : "", ch, b);
    }
    snprintf(json + k, sizeof json - k,
             ", \"\xc3\x83\xc2\xa9\": 256}, \"merges\": [\"\xc3\x83 \xc2\xa9\"]}, "
             "\"normalizer\": {\"type\": \"NFC\"}, \"pre_tokenizer\": {\"type\": \"ByteLevel\", "
             "\"add_prefix_space\": false, \"use_regex\": true}}");
    raana_tokenizer *tok;
    raana_error err;
    CHECK_INT(raana_tokenizer_parse(&tok, json, strlen(json), "bytelevel.json", &err), RAANA_OK);
    int *ids;
    size_t cnt;
    char *text;
    CHECK_INT(raana_tokenizer_encode(tok, "\xc3\xa9", 2, 0, &ids, &cnt, &err), RAANA_OK);
    CHECK(cnt == 1 && ids[0] == 256);
    free(ids);
    CHECK_INT(raana_tokenizer_encode(tok, "e\xcc\x81", 3, 0, &ids, &cnt, &err), RAANA_OK);
    CHECK(cnt == 1 && ids[0] == 256); /* NFC composed it */
    CHECK_INT(raana_tokenizer_decode(tok, ids, cnt, &text, &err), RAANA_OK);
    CHECK(strcmp(text, "\xc3\xa9") == 0);
    free(ids);
    free(text);
    CHECK_INT(raana_tokenizer_encode(tok, "a b", 3, 0, &ids, &cnt, &err), RAANA_OK);
    /* ids are byte values here: "a", " b" -> a, (space), b */
    CHECK(cnt == 3 && ids[0] == 'a' && ids[1] == ' ' && ids[2] == 'b');
    free(ids);
    raana_tokenizer_free(tok);
}

int main(void)
{
    raana_tokenizer *tok;
    raana_error err;
    CHECK_INT(raana_tokenizer_create(&tok, FIXTURE, &err), RAANA_OK);
    test_fixture_strings(tok);
    test_reference_ids(tok);
    raana_tokenizer_free(tok);
    test_bad_files();
    test_byte_level_nfc();
    return check_summary("test_tokenizer");
}
