/*
 * registry.c - the kernel registry: one table of (domain, op, opset range,
 * input dtypes, provider) -> kernel, filled once by every op family.
 *
 * Lookup picks, among the entries for the op whose opset range holds the
 * model's opset and whose dtype mask accepts the input dtype, the one with
 * the highest `since` (the newest definition in force).  The table is small
 * (a few hundred entries) and lookups happen once per node at load, so a
 * linear scan is enough.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"

struct kiln_registry {
    kiln_kernel_t *kernels;
    int count, cap;
};

kiln_status_t kiln_register(kiln_registry_t *reg, const kiln_kernel_t *k)
{
    if (reg->count == reg->cap) {
        int cap = reg->cap ? reg->cap * 2 : 256;
        kiln_kernel_t *ks = realloc(reg->kernels, (size_t)cap * sizeof *ks);
        if (!ks)
            return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory registering kernel %s", k->op);
        reg->kernels = ks;
        reg->cap = cap;
    }
    kiln_kernel_t *dst = &reg->kernels[reg->count++];
    *dst = *k;
    if (!dst->domain)
        dst->domain = "";
    return KILN_OK;
}

const kiln_kernel_t *kiln_registry_find(const kiln_registry_t *reg, kiln_provider_t provider,
                                        const char *domain, const char *op, int opset,
                                        kiln_dtype_t dtype, bool *op_known)
{
    const kiln_kernel_t *best = NULL;
    if (!strcmp(domain, "ai.onnx"))
        domain = "";
    if (op_known)
        *op_known = false;
    for (int i = 0; i < reg->count; i++) {
        const kiln_kernel_t *k = &reg->kernels[i];
        if (k->provider != provider || strcmp(k->op, op) || strcmp(k->domain, domain))
            continue;
        if (op_known)
            *op_known = true;
        if (opset < k->since || (k->until && opset > k->until))
            continue;
        if (dtype != KILN_DTYPE_UNDEFINED && k->dtypes && !(k->dtypes & KILN_DTYPE_BIT(dtype)))
            continue;
        if (!best || k->since > best->since)
            best = k;
    }
    return best;
}

static kiln_registry_t default_registry;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void build_default(void)
{
    kiln_registry_t *reg = &default_registry;
    kiln_ops_register_elementwise(reg);
    kiln_ops_register_activation(reg);
    kiln_ops_register_reduce(reg);
    kiln_ops_register_normalize(reg);
    kiln_ops_register_nn(reg);
    kiln_ops_register_quant(reg);
    kiln_ops_register_tensor(reg);
    kiln_ops_register_image(reg);
    kiln_ops_register_control(reg);
    kiln_ops_register_sequence(reg);
    kiln_ops_register_rnn(reg);
    kiln_ops_register_signal(reg);
    kiln_ops_register_text(reg);
    kiln_ops_register_misc(reg);
    kiln_ops_register_fused(reg);
    kiln_ops_register_attention(reg);
}

const kiln_registry_t *kiln_registry_default(void)
{
    pthread_once(&default_once, build_default);
    return &default_registry;
}
