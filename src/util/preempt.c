/* preempt.c — the preemption flag and its signal handler (see preempt.h). */
#include "raana/preempt.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t received;

static void on_signal(int signo)
{
    if (!received)
        received = signo;
}

void raana_preempt_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int raana_preempt_signal(void)
{
    return received;
}

void raana_preempt_wait(void)
{
    struct timespec tick = {0, 20 * 1000 * 1000};
    while (!received)
        nanosleep(&tick, NULL);
}

void raana_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}
