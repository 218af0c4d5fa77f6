/* link.h — the point-to-point messages of a pipeline pass over MPI ranks
 * (calibration, evaluation): rank r holds a contiguous range of decoder
 * blocks; one window's activations travel r -> r+1 (and, in calibration,
 * their gradients r+1 -> r). Every message carries one extra float, a
 * failure flag: a rank that fails (out of memory) keeps passing flagged
 * messages so that no rank waits forever, and all ranks agree on the
 * outcome afterwards (raana_comm_agree). */
#ifndef RAANA_LINK_H
#define RAANA_LINK_H

#include <mpi.h>
#include <stdio.h>

#include "raana/error.h"
#include "raana/llama.h"

typedef struct {
    MPI_Comm comm;
    int rank, size;
    size_t count; /* floats of one message's payload; the flag follows */
} raana_link;

/* This rank's end of comm, for messages of count floats (+ the flag). */
void raana_link_init(raana_link *l, MPI_Comm comm, size_t count);
/* buf holds count + 1 floats; buf[count] becomes the flag. */
void raana_link_send(const raana_link *l, int to, int tag, float *buf, int failed);
/* Returns nonzero if the sender had failed. */
int raana_link_recv(const raana_link *l, int from, int tag, float *buf);

/* One progress line ("WHAT: window D/N (P%), T s, ETA E s"); out may be NULL. */
void raana_progress_line(FILE *out, const char *what, int done, int total, double t0);

/* One window through this rank's blocks of n_nets nets side by side (all
 * with the same block range and hidden size), forward. hidden holds n_nets
 * activations of t x H one after the other, plus the flag; rank 0 embeds
 * tokens with each net, the others receive, the last one does not send.
 * traces (n_nets of them, or NULL to record none) get each net's trace.
 * Returns nonzero once this rank or an earlier one has failed. */
int raana_link_forward(const raana_link *l, const raana_llama *const *nets, int n_nets,
                       const int *tokens, int t, int tag, float *hidden, raana_llama_trace **traces,
                       int failed, raana_error *err);

#endif
