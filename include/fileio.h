/* fileio.h - reading a whole file (or stdin) under a size limit. */
#ifndef ODS_FILEIO_H
#define ODS_FILEIO_H

#include <stddef.h>

#include "buf.h"
#include "err.h"

/* Appends the contents of path ("-" for stdin) to out, failing with E_TOO_BIG (before
 * reading, when the size is known) if it holds more than max bytes. E_IO on read errors.
 * err names the file and the limit. */
int file_read_all(const char *path, size_t max, struct buf *out, struct err *err) ODS_MUST_CHECK;

#endif
