/* test_hostile_inputs.c — the input cases of issue 15, each with its exact
 * input: tokenizer.json ids of 10^9 and 2^31 - 1 (and their relatives),
 * config.json sizes of 1e9, infinite floats and duplicated keys (last wins,
 * as Python's json), config.ini's seq_len = 1, long lines, seed = 010 and
 * paths INI cannot hold, non-regular files given for reading, mmap's
 * ENOMEM, and the memory-limit check (RLIMIT_AS arithmetic, a fake cgroup).
 * alarm() turns any hang into a failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "raana/config.h"
#include "raana/file.h"
#include "raana/memory.h"
#include "raana/model.h"
#include "raana/safetensors.h"
#include "raana/tokenizer.h"

#define FIXTURE RAANA_SOURCE_DIR "/tests/data/kjv-tiny"

static char tmpdir[] = "/tmp/raana-test-hostile-XXXXXX";

/* ---- tokenizer.json ---------------------------------------------------------- */

static raana_status parse_tokenizer(const char *vocab, const char *added, raana_error *err)
{
    char json[1024];
    raana_tokenizer *t = NULL;
    snprintf(json, sizeof json,
             "{\"model\": {\"type\": \"BPE\", \"vocab\": {%s}, \"merges\": []}, "
             "\"added_tokens\": [%s]}",
             vocab, added);
    raana_status st = raana_tokenizer_parse(&t, json, strlen(json), "tokenizer.json", err);
    if (st == RAANA_OK)
        CHECK(t != NULL);
    raana_tokenizer_free(t);
    return st;
}

static void test_tokenizer_ids(void)
{
    raana_error err;
    /* issue 15: 10^9 (a 16 GB table, then a crash freeing it) and 2^31 - 1
     * (signed overflow, pow2_at_least never returning) */
    CHECK_INT(parse_tokenizer("\"a\": 0, \"b\": 1000000000", "", &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, "tokenizer.json", "vocab entry 'b'", "1000000000", "[0, 2)");
    CHECK_INT(parse_tokenizer("\"a\": 0, \"b\": 2147483647", "", &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, "vocab entry 'b'", "2147483647");
    CHECK_INT(parse_tokenizer("\"a\": 0, \"b\": -1", "", &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, "vocab entry 'b'", "-1");
    CHECK_INT(parse_tokenizer("\"a\": 0, \"b\": 1.5", "", &err), RAANA_ERR_INPUT);
    CHECK_INT(parse_tokenizer("\"a\": 0, \"b\": 1e999", "", &err), RAANA_ERR_INPUT);
    CHECK_INT(parse_tokenizer("\"a\": 0", "{\"id\": 2147483647, \"content\": \"<x>\"}", &err),
              RAANA_ERR_INPUT);
    CHECK_MSG(err, "added token '<x>'", "2147483647");
    /* ids up to the number of entries are fine, holes included */
    raana_tokenizer *t = NULL;
    const char *ok = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": "
                     "[]}, \"added_tokens\": [{\"id\": 2, \"content\": \"<x>\"}]}";
    CHECK_INT(raana_tokenizer_parse(&t, ok, strlen(ok), "t", &err), RAANA_OK);
    if (t)
        CHECK_INT(raana_tokenizer_vocab_size(t), 3);
    raana_tokenizer_free(t);
    CHECK_INT(parse_tokenizer("\"a\": 0, \"c\": 2", "{\"id\": 0, \"content\": \"a\"}", &err),
              RAANA_OK);
}

/* ---- config.json ------------------------------------------------------------- */

/* The fixture's config.json with `extra` inserted after the opening brace
 * (a duplicated key put there comes first, so the fixture's value is the
 * last) or, with at_end, before the closing brace. */
static raana_status parse_config_with(const char *extra, int at_end, raana_model_config *cfg,
                                      raana_error *err)
{
    char base[2048] = "", json[4096];
    FILE *f = fopen(FIXTURE "/config.json", "r");
    size_t n = f ? fread(base, 1, sizeof base - 1, f) : 0;
    if (f)
        fclose(f);
    base[n] = '\0';
    const char *close = strrchr(base, '}');
    if (!close || base[0] != '{')
        return RAANA_ERR_INTERNAL;
    if (at_end)
        snprintf(json, sizeof json, "%.*s, %s}", (int)(close - base), base, extra);
    else
        snprintf(json, sizeof json, "{%s, %s", extra, base + 1);
    return raana_model_config_parse(json, strlen(json), "config.json", cfg, err);
}

static void test_model_config(void)
{
    raana_model_config cfg;
    raana_error err;
    /* issue 15: 1e9 heads / head_dim overflowed heads * head_dim */
    const char *huge[] = {"num_attention_heads", "head_dim", "num_key_value_heads"};
    for (int i = 0; i < 3; i++) {
        char extra[128];
        snprintf(extra, sizeof extra, "\"%s\": 1000000000", huge[i]);
        CHECK_INT(parse_config_with(extra, 1, &cfg, &err), RAANA_ERR_INPUT);
        CHECK_MSG(err, "config.json", huge[i]);
    }
    /* every size fits, the product does not */
    CHECK_INT(parse_config_with("\"num_attention_heads\": 65536, \"num_key_value_heads\": 65536, "
                                "\"head_dim\": 512",
                                1, &cfg, &err),
              RAANA_ERR_INPUT);
    CHECK_MSG(err, "num_attention_heads 65536 x head_dim 512 = 33554432");
    /* issue 15: infinities were accepted */
    CHECK_INT(parse_config_with("\"rope_theta\": 1e999", 1, &cfg, &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, "'rope_theta'", "finite");
    CHECK_INT(parse_config_with("\"rms_norm_eps\": 1e999", 1, &cfg, &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, "'rms_norm_eps'", "finite");
    CHECK_INT(parse_config_with("\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 1e999}",
                                1, &cfg, &err),
              RAANA_ERR_INPUT);
    CHECK_MSG(err, "'factor'", "finite");
    CHECK_INT(parse_config_with("\"bos_token_id\": 1e999", 1, &cfg, &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, "'bos_token_id'");
    /* issue 15: a duplicated key kept its first value; Python's json (and
     * so Hugging Face) keeps the last */
    CHECK_INT(parse_config_with("\"rope_theta\": 500000.0", 1, &cfg, &err), RAANA_OK);
    CHECK_NEAR(cfg.rope_theta, 500000.0, 0);
    CHECK_INT(parse_config_with("\"rope_theta\": 500000.0", 0, &cfg, &err), RAANA_OK);
    CHECK_NEAR(cfg.rope_theta, 10000.0, 0);
    CHECK_INT(parse_config_with("\"num_hidden_layers\": 2", 1, &cfg, &err), RAANA_OK);
    CHECK_INT(cfg.num_layers, 2);
    CHECK_INT(parse_config_with("\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 2.0, "
                                "\"factor\": 4.0}",
                                1, &cfg, &err),
              RAANA_OK);
    CHECK_NEAR(cfg.rope_factor, 4.0, 0);
}

/* ---- config.ini --------------------------------------------------------------- */

static raana_status parse_ini(raana_config *cfg, const char *text, const char *base,
                              raana_error *err)
{
    raana_config_defaults(cfg);
    return raana_config_parse(cfg, text, strlen(text), "job.ini", base, err);
}

static void test_config_ini(void)
{
    raana_config cfg;
    raana_error err;
    /* issue 15: seq_len = 1 failed later with exit 4 */
    CHECK_INT(parse_ini(&cfg, "[model]\npath = m\n[calibration]\nseq_len = 1\n", "/b", &err),
              RAANA_ERR_CONFIG);
    CHECK_MSG(err, "job.ini:4:", "seq_len", "too short");
    CHECK_INT(parse_ini(&cfg, "[calibration]\nseq_len = 2\n", "/b", &err), RAANA_OK);
    /* issue 15: a long line was reported as "avg_bits: 0 is out of range" */
    char text[512] = "[quantize]\navg_bits = 0.";
    memset(text + strlen(text), '0', 300);
    strcat(text, "3\n");
    CHECK_INT(parse_ini(&cfg, text, "/b", &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "job.ini:2: line longer than 198 characters");
    CHECK(strstr(err.msg, "out of range") == NULL);
    /* issue 15: seed = 010 was octal (8) */
    CHECK_INT(parse_ini(&cfg, "[quantize]\nseed = 010\n", "/b", &err), RAANA_OK);
    CHECK_INT(cfg.seed, 10);
    CHECK_INT(parse_ini(&cfg, "[quantize]\nseed = 08\n", "/b", &err), RAANA_OK);
    CHECK_INT(cfg.seed, 8);
    CHECK_INT(parse_ini(&cfg, "[quantize]\nseed = 0x10\n", "/b", &err), RAANA_OK);
    CHECK_INT(cfg.seed, 16);
    CHECK_INT(parse_ini(&cfg, "[quantize]\nseed = 0x0x10\n", "/b", &err), RAANA_ERR_CONFIG);
    CHECK_INT(parse_ini(&cfg, "[quantize]\nseed = 18446744073709551616\n", "/b", &err),
              RAANA_ERR_CONFIG);
    /* issue 15: --print-config did not read back a path with " ;" or a
     * line break: such paths are refused, by --set and through the base */
    raana_config_defaults(&cfg);
    CHECK_INT(raana_config_set(&cfg, "output.path=/tmp/a ;b.h5", &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "output.path", "' ;'");
    CHECK_INT(raana_config_set(&cfg, "output.path=/tmp/a\nb.h5", &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "line break");
    CHECK_INT(parse_ini(&cfg, "[model]\npath = m\n", "/data/x ;y", &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "job.ini:2:", "' ;'");
    /* what is accepted reads back: ';' without a space before it, '#' */
    CHECK_INT(raana_config_set(&cfg, "output.path=/tmp/a;b #c.h5", &err), RAANA_OK);
    CHECK_INT(raana_config_set(&cfg, "model.path=/m", &err), RAANA_OK);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    raana_config_write(mem, &cfg);
    fclose(mem);
    raana_config back;
    CHECK_INT(parse_ini(&back, buf, "/elsewhere", &err), RAANA_OK);
    CHECK(strcmp(back.output_path, "/tmp/a;b #c.h5") == 0);
    free(buf);
}

/* ---- non-regular files ---------------------------------------------------------- */

static void test_non_regular_files(void)
{
    char fifo[256], *data;
    size_t len;
    raana_error err;
    raana_st_file f;
    snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
    CHECK_INT(mkfifo(fifo, 0600), 0);
    /* issue 15: open() of a FIFO with no writer blocked forever */
    CHECK_INT(raana_read_file(fifo, &data, &len, &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, fifo, "FIFO", "not a regular file");
    CHECK_INT(raana_st_open(&f, fifo, &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, fifo, "FIFO");
    CHECK_INT(raana_read_file(tmpdir, &data, &len, &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, "a directory");
    CHECK_INT(raana_read_file("/dev/zero", &data, &len, &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, "/dev/zero", "character device");
    raana_config cfg;
    CHECK_INT(raana_config_load(&cfg, fifo, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "FIFO");
    /* a symbolic link to a regular file is read (Hugging Face caches) */
    char link_path[256];
    snprintf(link_path, sizeof link_path, "%s/config.json", tmpdir);
    CHECK_INT(symlink(FIXTURE "/config.json", link_path), 0);
    CHECK_INT(raana_read_file(link_path, &data, &len, &err), RAANA_OK);
    if (len)
        free(data);
    unlink(link_path);
    unlink(fifo);
}

/* ---- memory --------------------------------------------------------------------- */

/* issue 15: under ulimit -v, mmap's ENOMEM was "cannot mmap", exit 5. */
static void test_mmap_enomem(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        raana_memory_state m;
        raana_memory_read(&m);
        struct rlimit rl = {m.vm_size + (1 << 20), m.vm_size + (1 << 20)};
        raana_st_file f;
        raana_error err;
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(10);
        raana_status st = raana_st_open(&f, FIXTURE "/model.safetensors", &err);
        _exit(st == RAANA_ERR_NOMEM && strstr(err.msg, "cannot map 5021128 bytes") ? 0
                                                                                   : 20 + (int)st);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK_INT(WEXITSTATUS(status), 0);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void make_dirs(char *path)
{
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0700);
            *p = '/';
        }
    mkdir(path, 0700);
}

/* A fake cgroup tree under tmpdir, mirroring /proc/self/cgroup, with a
 * 100 MiB limit of which 10 MiB are used (v2 and v1 files both). */
static void fake_cgroup(const char *root)
{
    char line[512], dir[1024], file[1100];
    FILE *f = fopen("/proc/self/cgroup", "r");
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        const char *rel = c2 + 1;
        int v2 = c2 == c1 + 1;
        snprintf(dir, sizeof dir, "%s%s%s", root, v2 ? "" : "/memory", rel);
        make_dirs(dir);
        snprintf(file, sizeof file, "%s/%s", dir, v2 ? "memory.max" : "memory.limit_in_bytes");
        write_text(file, "104857600\n");
        snprintf(file, sizeof file, "%s/%s", dir, v2 ? "memory.current" : "memory.usage_in_bytes");
        write_text(file, "10485760\n");
    }
    if (f)
        fclose(f);
}

static void test_memory_check(void)
{
    raana_memory_state m;
    raana_error err;
    memset(&m, 0, sizeof m);
    m.as_limit = m.data_limit = m.cgroup_room = UINT64_MAX;
    m.vm_size = (uint64_t)400 << 20;
    m.as_limit = (uint64_t)500 << 20;
    /* 400 MiB used + 54 MiB planned + a 128 MiB OpenBLAS buffer > 500 MiB */
    CHECK_INT(raana_memory_check(&m, (uint64_t)54 << 20, 3, &err), RAANA_ERR_NOMEM);
    CHECK_MSG(err, "rank 3", "RLIMIT_AS", "needs 182 MiB", "allows 500 MiB", "400 MiB are in use");
    m.as_limit = (uint64_t)600 << 20;
    CHECK_INT(raana_memory_check(&m, (uint64_t)54 << 20, 3, &err), RAANA_OK);
    m.data_limit = (uint64_t)100 << 20;
    m.vm_data = (uint64_t)50 << 20;
    CHECK_INT(raana_memory_check(&m, 0, 0, &err), RAANA_ERR_NOMEM);
    CHECK_MSG(err, "RLIMIT_DATA");

    char root[256];
    snprintf(root, sizeof root, "%s/cgroup", tmpdir);
    fake_cgroup(root);
    setenv("RAANA_CGROUP_ROOT", root, 1);
    raana_memory_read(&m);
    unsetenv("RAANA_CGROUP_ROOT");
    CHECK_INT(m.cgroup_room, (uint64_t)90 << 20);
    CHECK(strncmp(m.cgroup_path, root, strlen(root)) == 0);
    CHECK(m.blas_threads >= 1);
    CHECK_INT(raana_memory_check(&m, 0, 1, &err), RAANA_ERR_NOMEM);
    CHECK_MSG(err, "rank 1", "memory cgroup", "90 MiB free");
}

int main(void)
{
    alarm(60); /* a hang (a FIFO, OpenBLAS) is a failure, not a stuck test */
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_tokenizer_ids();
    test_model_config();
    test_config_ini();
    test_non_regular_files();
    test_mmap_enomem();
    test_memory_check();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary("test_hostile_inputs");
}
