/* rss.c — this process's resident memory from /proc/self/status (see
 * rss.h). */
#include "raana/rss.h"

#include <stdio.h>
#include <string.h>

uint64_t raana_rss_status_field(const char *status_text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = status_text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        unsigned long long kb = 0;
        if (strncmp(p, name, n) == 0 && p[n] == ':' && sscanf(p + n + 1, " %llu kB", &kb) == 1)
            return (uint64_t)kb * 1024;
    }
    return 0;
}

void raana_rss_read(raana_rss *r)
{
    char text[8192];
    memset(r, 0, sizeof *r);
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    r->hwm = raana_rss_status_field(text, "VmHWM");
    r->rss = raana_rss_status_field(text, "VmRSS");
    r->anon = raana_rss_status_field(text, "RssAnon");
    r->file = raana_rss_status_field(text, "RssFile");
}
