/* memory.c — the process's memory use and limits, and whether a planned
 * allocation fits them (see memory.h). */
#define _GNU_SOURCE
#include "raana/memory.h"

#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)

/* "VmSize:  77244 kB" -> bytes; 0 when absent. */
static uint64_t status_field(const char *text, const char *name)
{
    const char *p = strstr(text, name);
    unsigned long long kb = 0;
    if (p && sscanf(p + strlen(name), ": %llu kB", &kb) == 1)
        return (uint64_t)kb * 1024;
    return 0;
}

static void read_status(raana_memory_state *m)
{
    char text[4096];
    FILE *f = fopen("/proc/self/status", "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[n] = '\0';
    m->vm_size = status_field(text, "\nVmSize");
    m->vm_data = status_field(text, "\nVmData");
}

static uint64_t rlimit_bytes(int resource)
{
    struct rlimit rl;
    if (getrlimit(resource, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return UINT64_MAX;
    return (uint64_t)rl.rlim_cur;
}

/* A number from a cgroup file; UINT64_MAX for "max" or no file. */
static uint64_t cgroup_number(const char *path)
{
    char buf[64] = "";
    FILE *f = fopen(path, "r");
    if (!f)
        return UINT64_MAX;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (end == buf || errno == ERANGE)
        return UINT64_MAX;
    return (uint64_t)v;
}

/* Room left in the cgroup at dir and its ancestors (up to root): the
 * smallest limit - usage. */
static void cgroup_room(raana_memory_state *m, const char *root, const char *rel,
                        const char *limit_file, const char *usage_file)
{
    char dir[256], path[512];
    snprintf(dir, sizeof dir, "%s", rel);
    for (;;) {
        snprintf(path, sizeof path, "%s%s/%s", root, dir, limit_file);
        uint64_t limit = cgroup_number(path);
        /* v1 writes "no limit" as a huge page-aligned number */
        if (limit < ((uint64_t)1 << 62)) {
            char usage_path[512];
            snprintf(usage_path, sizeof usage_path, "%s%s/%s", root, dir, usage_file);
            uint64_t usage = cgroup_number(usage_path);
            uint64_t room = usage == UINT64_MAX ? limit : usage < limit ? limit - usage : 0;
            if (room < m->cgroup_room) {
                m->cgroup_room = room;
                snprintf(m->cgroup_path, sizeof m->cgroup_path, "%s", path);
            }
        }
        char *slash = strrchr(dir, '/');
        if (!slash || dir[0] == '\0')
            break;
        *slash = '\0'; /* "/a/b" -> "/a" -> "" (the root itself) */
    }
}

/* /proc/self/cgroup: "0::/path" (v2) and "N:memory:/path" or
 * "N:...,memory,...:/path" (v1). */
static void read_cgroups(raana_memory_state *m)
{
    const char *root = getenv("RAANA_CGROUP_ROOT");
    char line[512], v1_root[300];
    root = root && root[0] ? root : "/sys/fs/cgroup";
    snprintf(v1_root, sizeof v1_root, "%s/memory", root);
    FILE *f = fopen("/proc/self/cgroup", "r");
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        const char *rel = strcmp(c2 + 1, "/") == 0 ? "" : c2 + 1;
        *c2 = '\0';
        const char *controllers = c1 + 1;
        char padded[300];
        snprintf(padded, sizeof padded, ",%s,", controllers);
        if (controllers[0] == '\0')
            cgroup_room(m, root, rel, "memory.max", "memory.current");
        else if (strstr(padded, ",memory,"))
            cgroup_room(m, v1_root, rel, "memory.limit_in_bytes", "memory.usage_in_bytes");
    }
    if (f)
        fclose(f);
}

void raana_memory_read(raana_memory_state *m)
{
    memset(m, 0, sizeof *m);
    read_status(m);
    m->as_limit = rlimit_bytes(RLIMIT_AS);
    m->data_limit = rlimit_bytes(RLIMIT_DATA);
    m->cgroup_room = UINT64_MAX;
    read_cgroups(m);
    m->blas_threads = openblas_get_num_threads();
}

static raana_status too_big(const char *who, const char *limit_name, uint64_t limit, uint64_t used,
                            uint64_t planned, raana_error *err)
{
    return raana_fail(err, RAANA_ERR_NOMEM,
                      "%s: out of memory before starting: needs %.0f MiB more (the plan's peak "
                      "%.0f MiB + one OpenBLAS buffer %.0f MiB) but %s allows %.0f MiB and %.0f "
                      "MiB are in use; raise the limit or use more ranks (see --dry-run)",
                      who, (double)(planned + RAANA_OPENBLAS_BUFFER_BYTES) / MIB,
                      (double)planned / MIB, (double)RAANA_OPENBLAS_BUFFER_BYTES / MIB, limit_name,
                      (double)limit / MIB, (double)used / MIB);
}

raana_status raana_memory_check(const raana_memory_state *m, uint64_t planned_bytes, int rank,
                                raana_error *err)
{
    char who[320], host[256] = "";
    gethostname(host, sizeof host - 1);
    snprintf(who, sizeof who, "rank %d on %s", rank, host[0] ? host : "this host");
    /* OpenBLAS's worker threads took their buffers when the library was
     * loaded (had they failed, MPI_Init's fork would never have returned);
     * the calling thread takes one more on its first level-3 call. */
    uint64_t need = planned_bytes + RAANA_OPENBLAS_BUFFER_BYTES;
    if (m->as_limit != UINT64_MAX && m->vm_size + need > m->as_limit)
        return too_big(who, "the address-space limit (ulimit -v, RLIMIT_AS)", m->as_limit,
                       m->vm_size, planned_bytes, err);
    if (m->data_limit != UINT64_MAX && m->vm_data + need > m->data_limit)
        return too_big(who, "the data limit (ulimit -d, RLIMIT_DATA)", m->data_limit, m->vm_data,
                       planned_bytes, err);
    if (m->cgroup_room != UINT64_MAX && need > m->cgroup_room)
        return raana_fail(err, RAANA_ERR_NOMEM,
                          "%s: out of memory before starting: needs %.0f MiB more (the plan's "
                          "peak %.0f MiB + one OpenBLAS buffer %.0f MiB) but the memory cgroup "
                          "(%s) has only %.0f MiB free; raise the limit or use more ranks (see "
                          "--dry-run)",
                          who, (double)need / MIB, (double)planned_bytes / MIB,
                          (double)RAANA_OPENBLAS_BUFFER_BYTES / MIB, m->cgroup_path,
                          (double)m->cgroup_room / MIB);
    return RAANA_OK;
}

/* limit - used, 0 when used is already over it. */
static uint64_t headroom(uint64_t limit, uint64_t used)
{
    return used < limit ? limit - used : 0;
}

uint64_t raana_memory_room(const raana_memory_state *m, const char **limit)
{
    uint64_t room = UINT64_MAX;
    *limit = "";
    if (m->as_limit != UINT64_MAX && headroom(m->as_limit, m->vm_size) < room)
        room = headroom(m->as_limit, m->vm_size),
        *limit = "the address-space limit (ulimit -v, RLIMIT_AS)";
    if (m->data_limit != UINT64_MAX && headroom(m->data_limit, m->vm_data) < room)
        room = headroom(m->data_limit, m->vm_data),
        *limit = "the data limit (ulimit -d, RLIMIT_DATA)";
    if (m->cgroup_room != UINT64_MAX && m->cgroup_room < room)
        room = m->cgroup_room, *limit = "the memory cgroup";
    if (room == UINT64_MAX)
        return room;
    return headroom(room, RAANA_OPENBLAS_BUFFER_BYTES);
}

raana_status raana_memory_check_startup(const char *who, raana_error *err)
{
    /* Whatever the job, the calling thread will need one OpenBLAS buffer;
     * if even that does not fit, OpenBLAS would retry forever. Probe for it
     * (reserving address space only: MAP_NORESERVE, never touched). */
    void *p = mmap(NULL, RAANA_OPENBLAS_BUFFER_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) {
        munmap(p, RAANA_OPENBLAS_BUFFER_BYTES);
        return RAANA_OK;
    }
    raana_memory_state m;
    raana_memory_read(&m);
    uint64_t limit = m.as_limit < m.data_limit ? m.as_limit : m.data_limit;
    return raana_fail(err, RAANA_ERR_NOMEM,
                      "%s: out of memory at start-up: OpenBLAS needs a buffer of %.0f MiB per "
                      "thread (%d thread%s) and the process already uses %.0f MiB, but the "
                      "memory limit (ulimit -v / -d) is %.0f MiB; raise it (and set "
                      "OPENBLAS_NUM_THREADS=1 under MPI)",
                      who, (double)RAANA_OPENBLAS_BUFFER_BYTES / MIB, m.blas_threads,
                      m.blas_threads == 1 ? "" : "s", (double)m.vm_size / MIB, (double)limit / MIB);
}
