/* rss.h — this process's resident memory from /proc/self/status: the peak
 * (VmHWM, what a node's memory limit must hold), and now, split into
 * anonymous (heap, buffers) and file-backed (mapped checkpoint pages)
 * memory. Linux only; zeros elsewhere. No MPI here: memory_report.h
 * gathers it over the ranks. */
#ifndef RAANA_RSS_H
#define RAANA_RSS_H

#include <stdint.h>

typedef struct {
    uint64_t hwm;  /* VmHWM: peak resident set, bytes */
    uint64_t rss;  /* VmRSS: resident now */
    uint64_t anon; /* RssAnon */
    uint64_t file; /* RssFile */
} raana_rss;

/* The "NAME:  1234 kB" field of a /proc/PID/status text in bytes; 0 when
 * absent. Pure. */
uint64_t raana_rss_status_field(const char *status_text, const char *name);

/* This process's numbers (zeros when /proc/self/status cannot be read). */
void raana_rss_read(raana_rss *r);

#endif
