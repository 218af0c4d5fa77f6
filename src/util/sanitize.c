/* sanitize.c — run-time defaults of the sanitizers, compiled into every
 * program of a RAANA_SANITIZE build (an INTERFACE source of libraana in
 * CMakeLists.txt) and into no other build. ASAN_OPTIONS and LSAN_OPTIONS
 * still override them.
 *
 * intercept_tls_get_addr=0: LeakSanitizer's __tls_get_addr interceptor (GCC
 * up to 13, LLVM up to 16) takes a dynamic TLS block that starts at page
 * offset 16 for a glibc 2.19-2.24 block with a 16-byte header in front, and
 * reads the block's bounds from that "header". With glibc >= 2.25 the block
 * comes from malloc, so under ASan those 16 bytes are ASan's chunk header:
 * the leak check scans a garbage range and dies ("Tracer caught signal 11
 * ... LeakSanitizer has encountered a fatal error"). In raana this is the
 * 4-byte TLS of libOpenCL, which hwloc loads in MPI_Init when a program runs
 * without mpirun: one chunk position in 128, so it fails at random, mostly
 * on a loaded machine (docs/DECISIONS.md, "LeakSanitizer's tracer crash").
 * With glibc >= 2.25 the interceptor records no block it can scan anyway
 * (every correct guess has size 0), so turning it off loses no leak check;
 * raana's own thread-local data is static TLS, scanned as before. */
const char *__asan_default_options(void);

const char *__asan_default_options(void)
{
    return "intercept_tls_get_addr=0";
}
