/*
 * error.c - thread-local last-error text (see error.h).
 */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define KILN_ERROR_TEXT_MAX 1024

static _Thread_local char last_error_text[KILN_ERROR_TEXT_MAX];

kiln_status_t kiln_fail(kiln_status_t status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error_text, sizeof last_error_text, fmt, ap);
    va_end(ap);
    return status;
}

kiln_status_t kiln_fail_prefix(kiln_status_t status, const char *fmt, ...)
{
    char prefix[KILN_ERROR_TEXT_MAX];
    char old[KILN_ERROR_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error_text, sizeof old);
    snprintf(last_error_text, sizeof last_error_text, "%s: %s", prefix, old);
    return status;
}

void kiln_clear_error(void) { last_error_text[0] = '\0'; }

const char *kiln_last_error(void) { return last_error_text; }

const char *kiln_status_name(kiln_status_t status)
{
    switch (status) {
    case KILN_OK: return "ok";
    case KILN_ERR_INVALID_ARGUMENT: return "invalid argument";
    case KILN_ERR_INVALID_MODEL: return "invalid model";
    case KILN_ERR_UNSUPPORTED: return "unsupported";
    case KILN_ERR_NO_MEMORY: return "out of memory";
    case KILN_ERR_IO: return "i/o error";
    case KILN_ERR_RUNTIME: return "runtime error";
    }
    return "unknown status";
}
