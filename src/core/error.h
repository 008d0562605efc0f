/*
 * error.h - the engine's error reporting.
 *
 * Every failing function sets a thread-local message and returns a status.
 * The message names the object at fault (file, node, op, tensor, shape) and
 * what was expected; kiln_last_error() in the public API reads it back.
 */
#ifndef KILN_CORE_ERROR_H
#define KILN_CORE_ERROR_H

#include "kiln.h"

/* Sets the thread's last error to the printf-formatted message and returns
 * status, so a failing path reads `return kiln_fail(KILN_ERR_..., "...")`. */
kiln_status_t kiln_fail(kiln_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to the current message (used to add context such as
 * the file name as an error travels up). Returns status unchanged. */
kiln_status_t kiln_fail_prefix(kiln_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void kiln_clear_error(void);

#endif
