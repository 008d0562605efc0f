/*
 * labels.c - name checks for metric and label names (see labels.h); the
 * exporter, the store and the selector parser all refuse names Prometheus
 * would refuse, so nothing kiln writes can break a scrape.
 */
#include "monitor/labels.h"

static bool is_alpha_(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool kiln_metric_name_valid(const char *name)
{
    if (!name || !(is_alpha_(name[0]) || name[0] == ':'))
        return false;
    for (const char *p = name + 1; *p; p++)
        if (!(is_alpha_(*p) || is_digit(*p) || *p == ':'))
            return false;
    return true;
}

bool kiln_label_name_valid(const char *name)
{
    if (!name || !is_alpha_(name[0]))
        return false;
    for (const char *p = name + 1; *p; p++)
        if (!(is_alpha_(*p) || is_digit(*p)))
            return false;
    return true;
}
