/* link.c — point-to-point messages of the pipeline passes (see link.h). */
#include "raana/link.h"

#include "raana/joblog.h"
#include "raana/wait.h"

void raana_link_init(raana_link *l, MPI_Comm comm, size_t count)
{
    l->comm = comm;
    l->count = count;
    MPI_Comm_rank(comm, &l->rank);
    MPI_Comm_size(comm, &l->size);
}

void raana_link_send(const raana_link *l, int to, int tag, float *buf, int failed)
{
    buf[l->count] = failed ? 1.0f : 0.0f;
    raana_send_idle(buf, (int)l->count + 1, MPI_FLOAT, to, tag, l->comm);
}

int raana_link_recv(const raana_link *l, int from, int tag, float *buf)
{
    raana_recv_idle(buf, (int)l->count + 1, MPI_FLOAT, from, tag, l->comm, MPI_STATUS_IGNORE);
    return buf[l->count] != 0.0f;
}

void raana_progress_line(FILE *out, const char *what, int done, int total, double t0)
{
    if (!out)
        return;
    double el = MPI_Wtime() - t0;
    raana_log_progress(out, what, "", done, total, "windows", el, raana_log_eta(done, total, el));
}

int raana_link_forward(const raana_link *l, const raana_llama *const *nets, int n_nets,
                       const int *tokens, int t, int tag, float *hidden, raana_llama_trace **traces,
                       int failed, raana_error *err)
{
    size_t one = (size_t)t * (size_t)nets[0]->cfg.hidden_size;
    if (l->rank > 0)
        failed |= raana_link_recv(l, l->rank - 1, tag, hidden);
    for (int k = 0; k < n_nets; k++) {
        float *h = hidden + (size_t)k * one;
        raana_llama_trace *trace = NULL;
        if (!failed && l->rank == 0)
            failed |= raana_llama_embed(nets[k], tokens, t, h, err) != RAANA_OK;
        if (!failed)
            failed |= raana_llama_forward_blocks(nets[k], h, t, &trace, err) != RAANA_OK;
        if (traces)
            traces[k] = trace;
        else
            raana_llama_trace_free(trace);
    }
    if (l->rank < l->size - 1)
        raana_link_send(l, l->rank + 1, tag, hidden, failed);
    return failed;
}
