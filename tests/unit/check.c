/*
 * check.c - counters and closing line for check.h.
 */
#include "check.h"

int check_passed;
int check_failed;

int check_finish(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}
