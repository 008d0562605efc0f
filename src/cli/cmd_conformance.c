/*
 * cmd_conformance.c - `kiln conformance [--rtol R] [--atol A] [--threads N] PATH...`
 *
 * Runs ONNX backend-test directories (model.onnx beside test_data_set_N
 * folders of input_N.pb and output_N.pb), found recursively under each PATH, and prints
 * one line per test: `PASS name`, `FAIL name: reason` or `SKIP name: reason`,
 * then `N passed, N failed, N skipped`.  Exit 0 when nothing failed.
 *
 * Each test runs in a forked child with a time limit, so a crash or a hang
 * in one kernel is reported as that test's failure and the run goes on.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/compare.h"
#include "core/error.h"
#include "core/session.h"
#include "onnx/model.h"
#include "onnx/tensor_file.h"

#define TEST_TIMEOUT_SECONDS 60

typedef struct conformance_options {
    double rtol, atol;
    int threads;
    int level; /* optimization level of the sessions */
} conformance_options_t;

enum { RESULT_PASS = 0, RESULT_FAIL = 1, RESULT_SKIP = 3 };

/* Ops whose expected outputs come from a random generator, and the
 * training-only domain: listed in tests/conformance/README.md. */
static const char *const random_ops[] = {"Bernoulli", "RandomUniform", "RandomNormal", "RandomUniformLike",
                                         "RandomNormalLike", "Multinomial"};

static const char *skip_reason(const kiln_model_ir_t *ir)
{
    for (int i = 0; i < ir->n_opsets; i++)
        if (!strcmp(ir->opsets[i].domain, "ai.onnx.preview.training"))
            return "training-only op (ai.onnx.preview.training)";
    return NULL;
}

static const char *skip_reason_by_bytes(const char *model_path)
{
    /* Checked before loading: random ops would fail to load only if kiln
     * lacked them; their outputs cannot be compared either way. */
    kiln_mapping_t map;
    if (kiln_map_file(model_path, &map) != KILN_OK) {
        kiln_clear_error();
        return NULL;
    }
    const char *reason = NULL;
    static const char training[] = "ai.onnx.preview.training";
    if (map.size && memmem(map.data, map.size, training, sizeof training - 1))
        reason = "training-only op (ai.onnx.preview.training)";
    for (size_t k = 0; k < sizeof random_ops / sizeof random_ops[0] && !reason; k++) {
        size_t n = strlen(random_ops[k]);
        for (size_t i = 0; i + n + 2 <= map.size; i++) {
            const unsigned char *p = (const unsigned char *)map.data + i;
            /* op_type is field 4 (tag 0x22) followed by its length */
            if (p[0] == 0x22 && p[1] == n && !memcmp(p + 2, random_ops[k], n)) {
                reason = "expected outputs come from a random generator";
                break;
            }
        }
    }
    kiln_unmap(&map);
    return reason;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Lists subdirectory entries of dir matching prefix, sorted; caller frees. */
static int list_entries(const char *dir, const char *prefix, char ***out)
{
    DIR *d = opendir(dir);
    *out = NULL;
    if (!d)
        return 0;
    int n = 0, cap = 0;
    char **names = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, strlen(prefix)))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, (size_t)cap * sizeof *nn);
            if (!nn)
                break;
            names = nn;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(names, (size_t)n, sizeof *names, cmp_str);
    *out = names;
    return n;
}

static void free_list(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The ONNX test data of older releases stores bfloat16 tensors as uint16
 * (the same bits); read them as the bfloat16 the graph declares. */
static void retag_bfloat16(kiln_value_t *v, kiln_dtype_t declared)
{
    if (v && v->kind == KILN_VALUE_TENSOR && v->tensor && declared == KILN_DTYPE_BFLOAT16 &&
        v->tensor->dtype == KILN_DTYPE_UINT16)
        v->tensor->dtype = KILN_DTYPE_BFLOAT16;
}

/* Runs one data set; returns RESULT_PASS or RESULT_FAIL with why filled. */
static int run_data_set(kiln_session_t *s, const char *set_dir, const conformance_options_t *o, char *why,
                        size_t why_len)
{
    const kiln_graph_t *g = s->graph;
    char path[4096];
    int result = RESULT_FAIL;
    int n_feed = 0;
    for (int i = 0; i < g->n_inputs; i++)
        n_feed += g->values[g->inputs[i]].initializer < 0;
    kiln_value_t **inputs = calloc((size_t)n_feed + 1, sizeof *inputs);
    kiln_value_t **outputs = calloc((size_t)g->n_outputs + 1, sizeof *outputs);
    kiln_value_t **expected = calloc((size_t)g->n_outputs + 1, sizeof *expected);
    int n_inputs = 0;
    if (!inputs || !outputs || !expected) {
        snprintf(why, why_len, "out of memory");
        goto done;
    }
    for (int i = 0, k = 0; i < g->n_inputs; i++) {
        const kiln_value_info_t *vi = &g->values[g->inputs[i]];
        if (vi->initializer >= 0)
            continue;
        snprintf(path, sizeof path, "%s/input_%d.pb", set_dir, k);
        if (access(path, R_OK) != 0)
            break;
        kiln_value_kind_t kind = vi->type.kind == KILN_VALUE_SEQUENCE ? KILN_VALUE_SEQUENCE : KILN_VALUE_TENSOR;
        if (kiln_value_read_pb_file(path, kind, vi->type.optional, &inputs[k]) != KILN_OK) {
            snprintf(why, why_len, "%s", kiln_last_error());
            goto done;
        }
        retag_bfloat16(inputs[k], vi->type.dtype);
        n_inputs = ++k;
    }
    if (kiln_session_run_values(s, n_inputs, (const kiln_value_t *const *)inputs, outputs) != KILN_OK) {
        snprintf(why, why_len, "%s", kiln_last_error());
        goto done;
    }
    for (int k = 0; k < g->n_outputs; k++) {
        const kiln_value_info_t *vi = &g->values[g->outputs[k]];
        snprintf(path, sizeof path, "%s/output_%d.pb", set_dir, k);
        if (access(path, R_OK) != 0) {
            snprintf(why, why_len, "missing %s", path);
            goto done;
        }
        kiln_value_kind_t kind = vi->type.kind == KILN_VALUE_SEQUENCE ? KILN_VALUE_SEQUENCE : KILN_VALUE_TENSOR;
        if (kiln_value_read_pb_file(path, kind, vi->type.optional, &expected[k]) != KILN_OK) {
            snprintf(why, why_len, "%s", kiln_last_error());
            goto done;
        }
        retag_bfloat16(expected[k], vi->type.dtype);
        char inner[512];
        if (!kiln_value_allclose(outputs[k], expected[k], o->rtol, o->atol, inner, sizeof inner)) {
            snprintf(why, why_len, "output %d ('%s'): %s", k, vi->name, inner);
            goto done;
        }
    }
    result = RESULT_PASS;
done:
    for (int k = 0; inputs && k < n_feed; k++)
        kiln_value_free(inputs[k]);
    for (int k = 0; outputs && k < g->n_outputs; k++) {
        kiln_value_free(outputs[k]);
        kiln_value_free(expected[k]);
    }
    free(inputs);
    free(outputs);
    free(expected);
    return result;
}

/* The body of one test, run in the child.  Prints its line. */
static int run_test(const char *dir, const char *name, const conformance_options_t *o)
{
    char path[4096], why[1024] = "";
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    const char *skip = skip_reason_by_bytes(path);
    if (skip) {
        printf("SKIP %s: %s\n", name, skip);
        return RESULT_SKIP;
    }
    kiln_model_t *model = NULL;
    if (kiln_model_load(path, &model) != KILN_OK) {
        printf("FAIL %s: %s\n", name, kiln_last_error());
        return RESULT_FAIL;
    }
    skip = skip_reason(&model->ir);
    if (skip) {
        kiln_model_free(model);
        printf("SKIP %s: %s\n", name, skip);
        return RESULT_SKIP;
    }
    kiln_session_options_t opts;
    kiln_session_options_init(&opts);
    opts.threads = o->threads;
    opts.optimization_level = o->level;
    kiln_session_t *s = NULL;
    if (kiln_session_create(model, &opts, &s) != KILN_OK) {
        printf("FAIL %s: %s\n", name, kiln_last_error());
        kiln_model_free(model);
        return RESULT_FAIL;
    }
    char **sets;
    int n_sets = list_entries(dir, "test_data_set_", &sets);
    int result = n_sets ? RESULT_PASS : RESULT_FAIL;
    if (!n_sets)
        snprintf(why, sizeof why, "no test_data_set_* directories");
    for (int i = 0; i < n_sets && result == RESULT_PASS; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, sets[i]);
        char inner[900];
        if (run_data_set(s, path, o, inner, sizeof inner) != RESULT_PASS) {
            snprintf(why, sizeof why, "%s: %s", sets[i], inner);
            result = RESULT_FAIL;
        }
    }
    free_list(sets, n_sets);
    kiln_session_free(s);
    kiln_model_free(model);
    if (result == RESULT_PASS)
        printf("PASS %s\n", name);
    else
        printf("FAIL %s: %s\n", name, why);
    return result;
}

typedef struct tally {
    int passed, failed, skipped;
} tally_t;

static void run_isolated(const char *dir, const char *name, const conformance_options_t *o, tally_t *t)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        int r = run_test(dir, name, o);
        t->passed += r == RESULT_PASS;
        t->failed += r == RESULT_FAIL;
        t->skipped += r == RESULT_SKIP;
        return;
    }
    if (pid == 0) {
        alarm(TEST_TIMEOUT_SECONDS);
        int r = run_test(dir, name, o);
        fflush(stdout);
        _exit(r);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && (WEXITSTATUS(status) == RESULT_PASS || WEXITSTATUS(status) == RESULT_FAIL ||
                              WEXITSTATUS(status) == RESULT_SKIP)) {
        int r = WEXITSTATUS(status);
        t->passed += r == RESULT_PASS;
        t->failed += r == RESULT_FAIL;
        t->skipped += r == RESULT_SKIP;
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        printf("FAIL %s: %s (signal %d)\n", name,
               sig == SIGALRM ? "timed out" : strsignal(sig), sig);
        t->failed++;
    } else {
        printf("FAIL %s: exited with status %d\n", name, WEXITSTATUS(status));
        t->failed++;
    }
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The display name: the test directory with its parent ("node/test_abs"). */
static void test_name(const char *dir, char *out, size_t len)
{
    const char *last = strrchr(dir, '/');
    if (!last) {
        snprintf(out, len, "%s", dir);
        return;
    }
    const char *p = last - 1;
    while (p > dir && *p != '/')
        p--;
    snprintf(out, len, "%s", *p == '/' ? p + 1 : p);
}

static void walk(const char *dir, const conformance_options_t *o, tally_t *t, int depth)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    if (access(path, R_OK) == 0) {
        char name[512];
        test_name(dir, name, sizeof name);
        run_isolated(dir, name, o, t);
        return;
    }
    if (depth > 16)
        return;
    char **names;
    int n = list_entries(dir, "", &names);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (is_dir(path))
            walk(path, o, t, depth + 1);
    }
    free_list(names, n);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: kiln conformance [--rtol R] [--atol A] [--threads N] [--level 0-3] PATH...\n"
                 "  Runs ONNX backend-test directories (model.onnx + test_data_set_*) under each PATH.\n"
                 "  --rtol R     relative tolerance (default 1e-3)\n"
                 "  --atol A     absolute tolerance (default 1e-7)\n"
                 "  --threads N  intra-op threads per test (default 1)\n");
}

static bool parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return s[0] && !*end && !errno && *out >= 0;
}

int kiln_cmd_conformance(int argc, char **argv)
{
    conformance_options_t o = {.rtol = 1e-3, .atol = 1e-7, .threads = 1, .level = 3};
    int first_path = 0;
    char **paths = calloc((size_t)argc + 1, sizeof *paths);
    if (!paths)
        return KILN_EXIT_BAD_INPUT;
    int n_paths = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            free(paths);
            return KILN_EXIT_OK;
        }
        if ((!strcmp(a, "--rtol") || !strcmp(a, "--atol") || !strcmp(a, "--threads") || !strcmp(a, "--level")) &&
            i + 1 >= argc) {
            fprintf(stderr, "kiln conformance: %s needs a value\n", a);
            free(paths);
            return KILN_EXIT_BAD_INPUT;
        }
        if (!strcmp(a, "--rtol") || !strcmp(a, "--atol")) {
            double v;
            if (!parse_double(argv[++i], &v)) {
                fprintf(stderr, "kiln conformance: %s must be a non-negative number, not '%s'\n", a, argv[i]);
                free(paths);
                return KILN_EXIT_BAD_INPUT;
            }
            if (!strcmp(a, "--rtol"))
                o.rtol = v;
            else
                o.atol = v;
        } else if (!strcmp(a, "--threads")) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 0 || v > 1024) {
                fprintf(stderr, "kiln conformance: --threads must be 0..1024, not '%s'\n", argv[i]);
                free(paths);
                return KILN_EXIT_BAD_INPUT;
            }
            o.threads = (int)v;
        } else if (!strcmp(a, "--level")) {
            const char *v = argv[++i];
            if (strlen(v) != 1 || v[0] < '0' || v[0] > '3') {
                fprintf(stderr, "kiln conformance: --level must be 0, 1, 2 or 3, not '%s'\n", v);
                free(paths);
                return KILN_EXIT_BAD_INPUT;
            }
            o.level = v[0] - '0';
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "kiln conformance: unknown option '%s'\n", a);
            usage(stderr);
            free(paths);
            return KILN_EXIT_BAD_INPUT;
        } else {
            paths[n_paths++] = argv[i];
        }
    }
    (void)first_path;
    if (n_paths == 0) {
        usage(stderr);
        free(paths);
        return KILN_EXIT_BAD_INPUT;
    }
    tally_t t = {0};
    for (int i = 0; i < n_paths; i++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", paths[i]);
        size_t len = strlen(dir);
        while (len > 1 && dir[len - 1] == '/')
            dir[--len] = '\0';
        if (!is_dir(dir)) {
            fprintf(stderr, "kiln conformance: %s is not a directory\n", dir);
            free(paths);
            return KILN_EXIT_BAD_INPUT;
        }
        walk(dir, &o, &t, 0);
    }
    free(paths);
    printf("%d passed, %d failed, %d skipped\n", t.passed, t.failed, t.skipped);
    return t.failed ? KILN_EXIT_CHECK_FAILED : KILN_EXIT_OK;
}
