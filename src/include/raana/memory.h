/* memory.h — checking a rank's planned memory against the limits it runs
 * under, before the first large allocation, so that a job that cannot fit
 * stops at once with exit 6 and the sizes instead of failing hours later or
 * hanging inside OpenBLAS (docs/DECISIONS.md, "Memory limits and OpenBLAS").
 *
 * Limits: RLIMIT_AS (ulimit -v) against the process's address space
 * (VmSize), RLIMIT_DATA (ulimit -d) against its private writable memory
 * (VmData), and the memory cgroup (v2 memory.max - memory.current, or v1
 * memory.limit_in_bytes - memory.usage_in_bytes, the smallest room over the
 * cgroup and its ancestors) against resident memory. OpenBLAS takes one
 * buffer of RAANA_OPENBLAS_BUFFER_BYTES per thread on first use and, when it
 * cannot get one, retries forever (0.3.21, Debian bookworm), so its buffers
 * are part of every need. */
#ifndef RAANA_MEMORY_H
#define RAANA_MEMORY_H

#include <stdint.h>

#include "raana/error.h"

/* One OpenBLAS buffer: BUFFER_SIZE (32 << 22 in Debian's DYNAMIC_ARCH build
 * of 0.3.21, measured with strace) plus a page. */
#define RAANA_OPENBLAS_BUFFER_BYTES ((uint64_t)128 * 1024 * 1024 + 4096)

typedef struct {
    uint64_t vm_size, vm_data;     /* now, from /proc/self/status */
    uint64_t as_limit, data_limit; /* UINT64_MAX when unlimited */
    uint64_t cgroup_room;          /* UINT64_MAX when no limit was found */
    char cgroup_path[512];         /* the file that set cgroup_room */
    int blas_threads;              /* openblas_get_num_threads() */
    int blas_buffers_mapped;       /* buffers OpenBLAS already holds */
} raana_memory_state;

/* Reads the current usage, the limits and OpenBLAS's thread count. The
 * cgroup hierarchy is read under $RAANA_CGROUP_ROOT when set (tests), else
 * /sys/fs/cgroup. */
void raana_memory_read(raana_memory_state *m);

/* Fails with RAANA_ERR_NOMEM when planned_bytes more (plus the calling
 * thread's OpenBLAS buffer) do not fit in one of the limits; the message
 * names the rank and host, the limit, and every size. */
raana_status raana_memory_check(const raana_memory_state *m, uint64_t planned_bytes, int rank,
                                raana_error *err);

/* The most a planned allocation may be for raana_memory_check to pass:
 * the smallest room under the limits above, less the calling thread's
 * OpenBLAS buffer (0 when not even that fits); UINT64_MAX when no limit
 * was found. *limit names the limit that sets it (as in the check's
 * message; "" when unlimited). */
uint64_t raana_memory_room(const raana_memory_state *m, const char **limit);

/* Before MPI_Init: fails with RAANA_ERR_NOMEM, naming who and the sizes,
 * when not even one more OpenBLAS buffer fits in the address space, i.e.
 * OpenBLAS would spin (its load-time worker threads may already be doing
 * so: the caller must then leave with _exit, since OpenBLAS's exit handler
 * joins them). */
raana_status raana_memory_check_startup(const char *who, raana_error *err);

#endif
