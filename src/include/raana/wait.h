/* wait.h — waiting for MPI messages without burning a core. Open MPI's
 * blocking calls spin in opal_progress until the message arrives (and
 * mpi_yield_when_idle only adds sched_yield to that spin: the CPU time is
 * still 100%). These helpers poll with nanosleep back-off instead, and let
 * MPI move the data at full speed once the message is there. They change
 * when a rank wakes up, never what it receives (docs/SCALING.md). */
#ifndef RAANA_WAIT_H
#define RAANA_WAIT_H

#include <mpi.h>

/* Back-off: a few immediate polls, then sleeps doubling from
 * RAANA_WAIT_MIN_SLEEP_NS up to RAANA_WAIT_MAX_SLEEP_NS. The maximum bounds
 * the extra latency per wait. */
#define RAANA_WAIT_SPIN_POLLS   64
#define RAANA_WAIT_MIN_SLEEP_NS 1000L
#define RAANA_WAIT_MAX_SLEEP_NS 500000L

/* MPI_Recv with the same arguments and results: waits idly until a matching
 * message has arrived (MPI_Iprobe), then receives that message with
 * MPI_Recv from its source and tag (single-threaded use: nothing else may
 * receive on comm meanwhile). status may be MPI_STATUS_IGNORE. Returns the
 * MPI error code. */
int raana_recv_idle(void *buf, int count, MPI_Datatype type, int source, int tag, MPI_Comm comm,
                    MPI_Status *status);

/* MPI_Send's effect: MPI_Isend, then raana_wait_idle. */
int raana_send_idle(const void *buf, int count, MPI_Datatype type, int dest, int tag,
                    MPI_Comm comm);

/* MPI_Wait with back-off (any request: sends, MPI_Ibarrier, MPI_Iallreduce). */
int raana_wait_idle(MPI_Request *request, MPI_Status *status);

/* MPI_Barrier with back-off: call it before a collective that some ranks
 * reach much later than others, so that the early ones sleep instead of
 * spinning inside the collective. */
int raana_barrier_idle(MPI_Comm comm);

/* While this process waits in one of the calls above, hook(ctx) runs
 * between polls, never re-entered (an expert team member serves its
 * owners' requests while it waits on its own messages, expert_team.h); it
 * returns nonzero when it did work. NULL removes it. */
void raana_wait_set_hook(int (*hook)(void *ctx), void *ctx);

#endif
