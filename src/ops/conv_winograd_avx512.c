/*
 * conv_winograd_avx512.c - the Winograd F(4x4, 3x3) tile transforms of
 * conv_winograd_xform.h compiled with AVX-512 (the Makefile gives this file
 * the flags), one tile per lane of a 16-float register.  Call only when the
 * CPU has avx512f; conv_winograd.c chooses at run time.
 */
#include "ops/conv_winograd.h"

#define WINO_LINKAGE
#define WINO_FN(name) kiln_winograd_##name##_avx512
#include "ops/conv_winograd_xform.h"
