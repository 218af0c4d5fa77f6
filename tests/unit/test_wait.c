/* test_wait.c — the back-off waits of wait.h deliver exactly what MPI_Recv
 * and MPI_Send would, under mpiexec with 1..4 ranks: a ring of large
 * messages (rendezvous protocol) with every value checked, a receiver that
 * waits (and sleeps) for a late sender with MPI_ANY_SOURCE / MPI_ANY_TAG and
 * gets the right status, source, tag and count, empty messages, a gather
 * through MPI_ANY_SOURCE where each sender is seen once, and a barrier that
 * no rank leaves before rank 0 has reached it. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "raana/wait.h"

static float value(int from, size_t i)
{
    return (float)(from * 1000003 + (int)(i % 999983));
}

static void test_ring(int rank, int size)
{
    const size_t n = 1 << 20; /* 4 MiB: well above the eager limit */
    float *out = malloc(n * 4), *in = malloc(n * 4);
    for (size_t i = 0; i < n; i++)
        out[i] = value(rank, i), in[i] = -1;
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    MPI_Status st;
    if (size == 1) {
        MPI_Request req;
        MPI_Irecv(in, (int)n, MPI_FLOAT, 0, 7, MPI_COMM_WORLD, &req);
        CHECK_INT(raana_send_idle(out, (int)n, MPI_FLOAT, 0, 7, MPI_COMM_WORLD), MPI_SUCCESS);
        CHECK_INT(raana_wait_idle(&req, &st), MPI_SUCCESS);
    } else if (rank % 2 == 0) {
        CHECK_INT(raana_send_idle(out, (int)n, MPI_FLOAT, next, 7, MPI_COMM_WORLD), MPI_SUCCESS);
        CHECK_INT(raana_recv_idle(in, (int)n, MPI_FLOAT, prev, 7, MPI_COMM_WORLD, &st),
                  MPI_SUCCESS);
    } else {
        CHECK_INT(raana_recv_idle(in, (int)n, MPI_FLOAT, prev, 7, MPI_COMM_WORLD, &st),
                  MPI_SUCCESS);
        CHECK_INT(raana_send_idle(out, (int)n, MPI_FLOAT, next, 7, MPI_COMM_WORLD), MPI_SUCCESS);
    }
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += in[i] != value(prev, i);
    CHECK_INT((int)bad, 0);
    CHECK_INT(st.MPI_SOURCE, prev);
    free(out), free(in);
}

/* The last rank sleeps before sending, so rank 0 goes through the back-off. */
static void test_late_sender(int rank, int size)
{
    int last = size - 1;
    if (rank == last) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        double msg[3] = {1.5, -2.5, (double)last};
        CHECK_INT(raana_send_idle(msg, 3, MPI_DOUBLE, 0, 40 + last, MPI_COMM_WORLD), MPI_SUCCESS);
        CHECK_INT(raana_send_idle(NULL, 0, MPI_DOUBLE, 0, 99, MPI_COMM_WORLD), MPI_SUCCESS);
    }
    if (rank == 0) {
        double got[8] = {0};
        MPI_Status st;
        int count = -1;
        CHECK_INT(
            raana_recv_idle(got, 8, MPI_DOUBLE, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st),
            MPI_SUCCESS);
        MPI_Get_count(&st, MPI_DOUBLE, &count);
        CHECK_INT(count, 3);
        CHECK_INT(st.MPI_SOURCE, last);
        CHECK_INT(st.MPI_TAG, 40 + last);
        CHECK(got[0] == 1.5 && got[1] == -2.5 && got[2] == last && got[3] == 0);
        CHECK_INT(raana_recv_idle(got, 8, MPI_DOUBLE, last, 99, MPI_COMM_WORLD, &st), MPI_SUCCESS);
        MPI_Get_count(&st, MPI_DOUBLE, &count);
        CHECK_INT(count, 0);
    }
}

static void test_gather_any_source(int rank, int size)
{
    if (rank != 0) {
        int msg[2] = {rank, rank * rank};
        CHECK_INT(raana_send_idle(msg, 2, MPI_INT, 0, 5, MPI_COMM_WORLD), MPI_SUCCESS);
        return;
    }
    int seen[4] = {0};
    for (int k = 1; k < size; k++) {
        int msg[2];
        MPI_Status st;
        CHECK_INT(raana_recv_idle(msg, 2, MPI_INT, MPI_ANY_SOURCE, 5, MPI_COMM_WORLD, &st),
                  MPI_SUCCESS);
        CHECK(msg[0] == st.MPI_SOURCE && msg[1] == msg[0] * msg[0]);
        if (st.MPI_SOURCE > 0 && st.MPI_SOURCE < 4)
            seen[st.MPI_SOURCE]++;
    }
    for (int r = 1; r < size; r++)
        CHECK_INT(seen[r], 1);
}

/* Rank 0 creates a file just before the barrier; nobody may find it
 * missing after the barrier. */
static void test_barrier(int rank)
{
    char path[64];
    int pid = (int)getpid();
    MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
    snprintf(path, sizeof path, "/tmp/raana-test-wait-%d", pid);
    if (rank == 0) {
        struct timespec ts = {0, 30 * 1000 * 1000};
        nanosleep(&ts, NULL);
        FILE *f = fopen(path, "w");
        CHECK(f != NULL);
        if (f)
            fclose(f);
    }
    CHECK_INT(raana_barrier_idle(MPI_COMM_WORLD), MPI_SUCCESS);
    CHECK(access(path, F_OK) == 0);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        unlink(path);
}

int main(int argc, char **argv)
{
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    /* barriers between the parts: a wildcard receive must not take the
     * next part's messages */
    test_ring(rank, size);
    MPI_Barrier(MPI_COMM_WORLD);
    test_late_sender(rank, size);
    MPI_Barrier(MPI_COMM_WORLD);
    if (size <= 4)
        test_gather_any_source(rank, size);
    MPI_Barrier(MPI_COMM_WORLD);
    test_barrier(rank);
    int failed = check_summary("test_wait") != 0, any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any;
}
