/* h5zstd.c — the Zstandard HDF5 filter (see h5zstd.h). Compiled into
 * libraana and, with RAANA_H5ZSTD_PLUGIN defined, into the plugin, which
 * exports H5PLget_plugin_type / H5PLget_plugin_info and links only libzstd.
 * Buffers are malloc'd, as in HDF5's own filter examples: HDF5 frees them
 * with free(), and a plugin loaded by h5py cannot see HDF5's symbols (h5py
 * loads its HDF5 with local scope), so H5allocate_memory is not an option. */
#include <hdf5.h>
#include <stdlib.h>
#include <zstd.h>

#ifdef RAANA_H5ZSTD_PLUGIN
#include <H5PLextern.h>
#else
#include "raana/h5zstd.h"
#endif

#define FILTER_ID     32015
#define DEFAULT_LEVEL 3

static size_t zstd_filter(unsigned int flags, size_t cd_nelmts, const unsigned int cd_values[],
                          size_t nbytes, size_t *buf_size, void **buf)
{
    if (flags & H5Z_FLAG_REVERSE) {
        unsigned long long size = ZSTD_getFrameContentSize(*buf, nbytes);
        if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN)
            return 0;
        void *out = malloc(size ? (size_t)size : 1);
        if (!out)
            return 0;
        size_t got = ZSTD_decompress(out, (size_t)size, *buf, nbytes);
        if (ZSTD_isError(got) || got != size) {
            free(out);
            return 0;
        }
        free(*buf);
        *buf = out;
        *buf_size = (size_t)size;
        return got;
    }
    int level = cd_nelmts > 0 ? (int)cd_values[0] : DEFAULT_LEVEL;
    size_t bound = ZSTD_compressBound(nbytes);
    void *out = malloc(bound);
    if (!out)
        return 0;
    size_t n = ZSTD_compress(out, bound, *buf, nbytes, level);
    if (ZSTD_isError(n)) {
        free(out);
        return 0;
    }
    free(*buf);
    *buf = out;
    *buf_size = bound;
    return n;
}

static const H5Z_class2_t zstd_class = {
    H5Z_CLASS_T_VERS, (H5Z_filter_t)FILTER_ID, 1, 1, "zstd (raana)", NULL, NULL, zstd_filter,
};

#ifdef RAANA_H5ZSTD_PLUGIN
H5PL_type_t H5PLget_plugin_type(void)
{
    return H5PL_TYPE_FILTER;
}

const void *H5PLget_plugin_info(void)
{
    return &zstd_class;
}
#else
raana_status raana_h5zstd_register(raana_error *err)
{
    htri_t avail = H5Zfilter_avail(FILTER_ID);
    if (avail > 0)
        return RAANA_OK;
    if (H5Zregister(&zstd_class) < 0)
        return RAANA_INTERNAL(err, "cannot register the zstd HDF5 filter (%d)", FILTER_ID);
    return RAANA_OK;
}
#endif
