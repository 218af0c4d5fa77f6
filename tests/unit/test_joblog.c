/* test_joblog.c — the log's formats (joblog.h) against hand-computed
 * values, the CPU list against /proc/self/status, and the preemption flag
 * (preempt.h) with a real signal (the OpenBLAS kernel check: test_blas_info). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "raana/joblog.h"
#include "raana/preempt.h"

static void test_duration_and_eta(void)
{
    char b[32];
    raana_log_duration(b, sizeof b, 0);
    CHECK(strcmp(b, "0:00:00") == 0);
    raana_log_duration(b, sizeof b, 3723.4); /* 1 h 2 min 3 s */
    CHECK(strcmp(b, "1:02:03") == 0);
    raana_log_duration(b, sizeof b, 59.6); /* rounds to a minute */
    CHECK(strcmp(b, "0:01:00") == 0);
    raana_log_duration(b, sizeof b, -1);
    CHECK(strcmp(b, "?") == 0);
    CHECK_NEAR(raana_log_eta(1, 4, 10), 30, 1e-12); /* 3 more at 10 s each */
    CHECK_NEAR(raana_log_eta(4, 4, 10), 0, 1e-12);
    CHECK(raana_log_eta(0, 4, 10) < 0); /* unknown */
}

static void test_progress_line(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    time_t before = time(NULL);
    raana_log_progress(f, "quantize", "layer.q", 3, 12, "layers", 65, 195);
    time_t after = time(NULL);
    fclose(f);
    /* "YYYY-MM-DDTHH:MM:SSZ " then the rest */
    CHECK(len > 21 && text[4] == '-' && text[10] == 'T' && text[19] == 'Z' && text[20] == ' ');
    CHECK(strcmp(text + 21,
                 "quantize: layer.q [3/12 layers, 25%, elapsed 0:01:05, ETA 0:03:15]\n") == 0);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    CHECK(strptime(text, "%Y-%m-%dT%H:%M:%SZ", &tm) == text + 20);
    time_t stamp = timegm(&tm); /* UTC, between the clock readings around the call */
    CHECK(before <= stamp && stamp <= after);
    free(text);
}

static void test_cpu_list(void)
{
    char mine[256], line[512], want[256] = "";
    raana_log_cpu_list(mine, sizeof mine);
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Cpus_allowed_list: %255s", want) == 1)
            break;
    if (f)
        fclose(f);
    CHECK(want[0] != '\0');
    CHECK(strcmp(mine, want) == 0);
}

static void test_preempt_flag(void)
{
    raana_preempt_install();
    CHECK_INT(raana_preempt_signal(), 0);
    raise(SIGUSR1); /* handled: the process goes on */
    CHECK_INT(raana_preempt_signal(), SIGUSR1);
    raise(SIGTERM); /* the first signal is kept */
    CHECK_INT(raana_preempt_signal(), SIGUSR1);
    raana_preempt_wait(); /* returns at once once signalled */
    CHECK(1);
}

int main(void)
{
    test_duration_and_eta();
    test_progress_line();
    test_cpu_list();
    test_preempt_flag();
    return check_summary("test_joblog");
}
