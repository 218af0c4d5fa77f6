/* wait.c — MPI waits with nanosleep back-off instead of Open MPI's busy
 * polling (see wait.h). */
#include "raana/wait.h"

#include <time.h>

typedef struct {
    int polls;
    long sleep_ns;
} backoff;

static int (*wait_hook)(void *);
static void *wait_hook_ctx;
static int in_hook;

void raana_wait_set_hook(int (*hook)(void *ctx), void *ctx)
{
    wait_hook = hook, wait_hook_ctx = ctx;
}

/* Called after each unsuccessful poll: runs the hook (starting the
 * back-off over when it did work), else spins a few times, then sleeps,
 * doubling the sleep up to the maximum. */
static void backoff_step(backoff *b)
{
    if (wait_hook && !in_hook) {
        in_hook = 1;
        int worked = wait_hook(wait_hook_ctx);
        in_hook = 0;
        if (worked) {
            *b = (backoff){0, RAANA_WAIT_MIN_SLEEP_NS};
            return;
        }
    }
    if (b->polls++ < RAANA_WAIT_SPIN_POLLS)
        return;
    struct timespec ts = {0, b->sleep_ns};
    nanosleep(&ts, NULL);
    b->sleep_ns =
        b->sleep_ns * 2 > RAANA_WAIT_MAX_SLEEP_NS ? RAANA_WAIT_MAX_SLEEP_NS : b->sleep_ns * 2;
}

int raana_wait_idle(MPI_Request *request, MPI_Status *status)
{
    backoff b = {0, RAANA_WAIT_MIN_SLEEP_NS};
    for (;;) {
        int done = 0, rc = MPI_Test(request, &done, status);
        if (rc != MPI_SUCCESS || done)
            return rc;
        backoff_step(&b);
    }
}

int raana_recv_idle(void *buf, int count, MPI_Datatype type, int source, int tag, MPI_Comm comm,
                    MPI_Status *status)
{
    backoff b = {0, RAANA_WAIT_MIN_SLEEP_NS};
    MPI_Status probed;
    for (;;) {
        int found = 0, rc = MPI_Iprobe(source, tag, comm, &found, &probed);
        if (rc != MPI_SUCCESS)
            return rc;
        /* The probed message is the next one from its source with its tag
         * (MPI's non-overtaking rule), so this receives exactly it. */
        if (found)
            return MPI_Recv(buf, count, type, probed.MPI_SOURCE, probed.MPI_TAG, comm, status);
        backoff_step(&b);
    }
}

int raana_send_idle(const void *buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm)
{
    MPI_Request req;
    int rc = MPI_Isend(buf, count, type, dest, tag, comm, &req);
    return rc != MPI_SUCCESS ? rc : raana_wait_idle(&req, MPI_STATUS_IGNORE);
}

int raana_barrier_idle(MPI_Comm comm)
{
    MPI_Request req;
    int rc = MPI_Ibarrier(comm, &req);
    return rc != MPI_SUCCESS ? rc : raana_wait_idle(&req, MPI_STATUS_IGNORE);
}
