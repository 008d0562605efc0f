/*
 * cmd_bench.c - `kiln bench MODEL [--threads N] [--warmup N] [--iters N]
 *               [--input NAME=FILE]... [--shape NAME=DIMS]... [--profile] [--json]`
 *
 * Measures one model the way trtexec does: load time (model load plus
 * session creation, comparable to ONNX Runtime's session creation), then
 * warm-up runs, then timed runs; prints latency percentiles, throughput,
 * peak resident memory and the activation memory of a run: the peak of live
 * intermediate tensors, the sum of all of them, and the planned arena that
 * holds them (see core/session.h).  MODEL is an
 * .onnx file or a backend-test directory (its test_data_set_0 inputs are
 * used).  Inputs not given are filled with fixed-seed random data of the
 * declared shape (--shape NAME=1x3x224x224 sets symbolic dims).  --profile
 * times every node over the timed runs and adds a table by operator type
 * and the slowest nodes (bench/profile.h): where an optimization should go.
 *
 * With --url the command measures a KServe v2 server instead, the way
 * perf_analyzer does: see bench/loadgen.h.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/loadgen.h"
#include "bench/inputs.h"
#include "bench/profile.h"
#include "bench/stats.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/session.h"
#include "onnx/model.h"
#include "onnx/tensor_file.h"

typedef struct bench_args {
    const char *model;
    int threads, warmup, iters;
    int level; /* session optimization level (default 3) */
    bool json;
    bool profile;
    int n_inputs;
    char **input_names;
    char **input_files;
    int n_shapes;
    char **shape_names;
    int64_t (*shape_dims)[KILN_MAX_RANK];
    int *shape_ranks;
} bench_args_t;

static void usage(FILE *out)
{
    fprintf(out, "usage: kiln bench MODEL [--threads N] [--warmup N] [--iters N] [--input NAME=FILE]...\n"
                 "                  [--shape NAME=DIMS]... [--level 0-3] [--profile] [--json]\n"
                 "  MODEL is an .onnx file or a test directory (test_data_set_0 inputs are used).\n"
                 "  Inputs not given get fixed-seed random values; --shape NAME=1x3x224x224 sets\n"
                 "  the shape of an input whose declared dims are symbolic.\n"
                 "       kiln bench --url http://HOST:PORT --model NAME [--concurrency 1,4,16] [--duration S] [--json]\n"
                 "  measures a KServe v2 server (kiln's or Triton's) the way perf_analyzer does;\n"
                 "  `kiln bench --url URL --help` lists its options.\n");
}

static bool parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static int find_shape(const bench_args_t *a, const char *name)
{
    for (int i = 0; i < a->n_shapes; i++)
        if (!strcmp(a->shape_names[i], name))
            return i;
    return -1;
}

/* Builds the inputs: from files, from the test directory, or random. */
static kiln_status_t make_inputs(const bench_args_t *a, kiln_session_t *s, const char *test_dir,
                                 const char **names, kiln_tensor_t **tensors, int *count)
{
    int n = kiln_session_input_count(s);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    *count = 0;
    for (int i = 0; i < n; i++) {
        kiln_io_info_t info;
        kiln_session_input_info(s, i, &info);
        names[i] = info.name;
        kiln_status_t st = KILN_OK;
        int given = -1;
        for (int k = 0; k < a->n_inputs; k++)
            if (!strcmp(a->input_names[k], info.name))
                given = k;
        char path[4096];
        snprintf(path, sizeof path, "%s/test_data_set_0/input_%d.pb", test_dir ? test_dir : "", i);
        if (given >= 0) {
            st = kiln_tensor_read_file(a->input_files[given], &tensors[i]);
        } else if (test_dir && access(path, R_OK) == 0) {
            st = kiln_tensor_read_file(path, &tensors[i]);
        } else {
            int64_t dims[KILN_MAX_RANK];
            int rank = info.rank;
            int sh = find_shape(a, info.name);
            if (sh >= 0) {
                rank = a->shape_ranks[sh];
                memcpy(dims, a->shape_dims[sh], sizeof dims);
            } else {
                if (rank < 0)
                    return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                                     "input '%s' has an unknown rank: give --shape %s=DIMS or --input", info.name,
                                     info.name);
                for (int d = 0; d < rank; d++) {
                    if (info.dims[d] < 0)
                        return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                                         "input '%s' dim %d is symbolic (%s): give --shape %s=DIMS", info.name, d,
                                         info.dim_names[d] ? info.dim_names[d] : "?", info.name);
                    dims[d] = info.dims[d];
                }
            }
            tensors[i] = kiln_bench_random_tensor(info.dtype == KILN_DTYPE_UNDEFINED ? KILN_DTYPE_FLOAT32 : info.dtype, rank,
                                       dims, &seed);
            if (!tensors[i])
                st = KILN_ERR_NO_MEMORY;
        }
        if (st)
            return kiln_fail_prefix(st, "input '%s'", info.name);
        *count = i + 1;
    }
    return KILN_OK;
}

int kiln_cmd_bench(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--url"))
            return kiln_loadgen_main(argc, argv);
    bench_args_t a = {.threads = 0, .warmup = 5, .iters = 50, .level = 3};
    int rc = KILN_EXIT_BAD_INPUT;
    a.input_names = calloc((size_t)argc + 1, sizeof(char *));
    a.input_files = calloc((size_t)argc + 1, sizeof(char *));
    a.shape_names = calloc((size_t)argc + 1, sizeof(char *));
    a.shape_dims = calloc((size_t)argc + 1, sizeof *a.shape_dims);
    a.shape_ranks = calloc((size_t)argc + 1, sizeof(int));
    kiln_model_t *model = NULL;
    kiln_session_t *session = NULL;
    const char **names = NULL;
    kiln_tensor_t **inputs = NULL, **outputs = NULL;
    double *lat = NULL;
    int n_in = 0, n_out = 0;
    char model_path[4096];
    const char *test_dir = NULL;
    if (!a.input_names || !a.input_files || !a.shape_names || !a.shape_dims || !a.shape_ranks)
        goto done;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        bool has_value = i + 1 < argc;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage(stdout);
            rc = KILN_EXIT_OK;
            goto done;
        } else if (!strcmp(arg, "--json")) {
            a.json = true;
        } else if (!strcmp(arg, "--profile")) {
            a.profile = true;
        } else if (!strcmp(arg, "--threads") || !strcmp(arg, "--warmup") || !strcmp(arg, "--iters") ||
                   !strcmp(arg, "--level")) {
            int *dst = !strcmp(arg, "--threads")  ? &a.threads
                       : !strcmp(arg, "--warmup") ? &a.warmup
                       : !strcmp(arg, "--level")  ? &a.level
                                                  : &a.iters;
            int lo = !strcmp(arg, "--iters") ? 1 : 0;
            if (!has_value || !parse_int(argv[++i], lo, 1000000, dst)) {
                fprintf(stderr, "kiln bench: %s needs a number (%d or more)\n", arg, lo);
                goto done;
            }
        } else if (!strcmp(arg, "--input") || !strcmp(arg, "--shape")) {
            const char *v = has_value ? argv[++i] : "";
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1]) {
                fprintf(stderr, "kiln bench: %s expects NAME=%s, got '%s'\n", arg,
                        !strcmp(arg, "--input") ? "FILE" : "DIMS", v);
                goto done;
            }
            if (!strcmp(arg, "--input")) {
                a.input_names[a.n_inputs] = strndup(v, (size_t)(eq - v));
                a.input_files[a.n_inputs++] = (char *)eq + 1;
            } else {
                if (!kiln_bench_parse_dims(eq + 1, a.shape_dims[a.n_shapes], &a.shape_ranks[a.n_shapes])) {
                    fprintf(stderr, "kiln bench: --shape dims must look like 1x3x224x224, got '%s'\n", eq + 1);
                    goto done;
                }
                a.shape_names[a.n_shapes++] = strndup(v, (size_t)(eq - v));
            }
        } else if (arg[0] == '-') {
            fprintf(stderr, "kiln bench: unknown option '%s'\n", arg);
            usage(stderr);
            goto done;
        } else if (!a.model) {
            a.model = arg;
        } else {
            fprintf(stderr, "kiln bench: unexpected argument '%s'\n", arg);
            goto done;
        }
    }
    if (!a.model) {
        usage(stderr);
        goto done;
    }
    struct stat st_model;
    if (stat(a.model, &st_model) == 0 && S_ISDIR(st_model.st_mode)) {
        test_dir = a.model;
        snprintf(model_path, sizeof model_path, "%s/model.onnx", a.model);
    } else {
        snprintf(model_path, sizeof model_path, "%s", a.model);
    }

    double t0 = kiln_now_seconds();
    kiln_session_options_t opts;
    kiln_session_options_init(&opts);
    opts.threads = a.threads;
    opts.optimization_level = a.level;
    if (kiln_model_load(model_path, &model) != KILN_OK || kiln_session_create(model, &opts, &session) != KILN_OK) {
        fprintf(stderr, "kiln bench: %s\n", kiln_last_error());
        goto done;
    }
    double load_ms = (kiln_now_seconds() - t0) * 1e3;
    int n_graph_in = kiln_session_input_count(session);
    n_out = kiln_session_output_count(session);
    names = calloc((size_t)n_graph_in + 1, sizeof *names);
    inputs = calloc((size_t)n_graph_in + 1, sizeof *inputs);
    outputs = calloc((size_t)n_out + 1, sizeof *outputs);
    lat = calloc((size_t)a.iters, sizeof *lat);
    if (!names || !inputs || !outputs || !lat)
        goto done;
    if (make_inputs(&a, session, test_dir, names, inputs, &n_in) != KILN_OK) {
        fprintf(stderr, "kiln bench: %s\n", kiln_last_error());
        goto done;
    }
    double first_ms = 0;
    for (int i = 0; i < a.warmup + a.iters; i++) {
        if (a.profile && i == a.warmup && kiln_session_set_profiling(session, 1) != KILN_OK) {
            fprintf(stderr, "kiln bench: %s\n", kiln_last_error());
            goto done;
        }
        double s0 = kiln_now_seconds();
        if (kiln_session_run(session, n_in, names, (const kiln_tensor_t *const *)inputs, n_out, outputs) != KILN_OK) {
            fprintf(stderr, "kiln bench: %s\n", kiln_last_error());
            rc = KILN_EXIT_BAD_INPUT;
            goto done;
        }
        double ms = (kiln_now_seconds() - s0) * 1e3;
        if (i == 0)
            first_ms = ms;
        if (i >= a.warmup)
            lat[i - a.warmup] = ms;
        for (int k = 0; k < n_out; k++) {
            kiln_tensor_free(outputs[k]);
            outputs[k] = NULL;
        }
    }
    kiln_latency_stats_t s;
    kiln_latency_stats(lat, (size_t)a.iters, &s);
    int threads = a.threads ? a.threads : kiln_threadpool_threads(session->pool);
    double throughput = s.mean > 0 ? 1000.0 / s.mean : 0;
    size_t peak_rss = kiln_peak_rss_bytes();
    if (a.json) {
        json_t *j = json_object();
        json_object_set_new(j, "model", json_string(a.model));
        json_object_set_new(j, "threads", json_integer(threads));
        json_object_set_new(j, "warmup", json_integer(a.warmup));
        json_object_set_new(j, "iters", json_integer(a.iters));
        json_object_set_new(j, "load_ms", json_real(load_ms));
        json_object_set_new(j, "first_run_ms", json_real(first_ms));
        json_object_set_new(j, "p50_ms", json_real(s.p50));
        json_object_set_new(j, "p90_ms", json_real(s.p90));
        json_object_set_new(j, "p99_ms", json_real(s.p99));
        json_object_set_new(j, "mean_ms", json_real(s.mean));
        json_object_set_new(j, "min_ms", json_real(s.min));
        json_object_set_new(j, "max_ms", json_real(s.max));
        json_object_set_new(j, "throughput_per_s", json_real(throughput));
        json_object_set_new(j, "peak_rss_bytes", json_integer((json_int_t)peak_rss));
        json_object_set_new(j, "activation_peak_bytes", json_integer((json_int_t)session->last_peak_bytes));
        json_object_set_new(j, "activation_total_bytes", json_integer((json_int_t)session->last_total_bytes));
        json_object_set_new(j, "arena_bytes", json_integer((json_int_t)session->last_arena_bytes));
        json_object_set_new(j, "weights_prepacked_bytes", json_integer((json_int_t)session->packed_bytes));
        json_object_set_new(j, "weights_released_bytes", json_integer((json_int_t)session->released_bytes));
        json_object_set_new(j, "weights_copied_bytes", json_integer((json_int_t)model->copied_bytes));
        if (a.profile)
            json_object_set_new(j, "profile", kiln_profile_json(session));
        char *text = json_dumps(j, JSON_COMPACT);
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(j);
    } else {
        printf("model: %s\nthreads: %d\nload: %.2f ms (first run %.2f ms)\n", a.model, threads, load_ms, first_ms);
        printf("latency over %d runs: p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, mean %.3f ms (min %.3f, max %.3f)\n",
               a.iters, s.p50, s.p90, s.p99, s.mean, s.min, s.max);
        printf("throughput: %.1f inferences/s\n", throughput);
        printf("peak resident memory: %.1f MB; activations: peak %.1f MB live of %.1f MB produced, "
               "planned arena %.1f MB\n",
               (double)peak_rss / 1048576.0, (double)session->last_peak_bytes / 1048576.0,
               (double)session->last_total_bytes / 1048576.0, (double)session->last_arena_bytes / 1048576.0);
        if (a.profile)
            kiln_profile_print(session, stdout, 25);
    }
    rc = KILN_EXIT_OK;
done:
    for (int k = 0; outputs && k < n_out; k++)
        kiln_tensor_free(outputs[k]);
    for (int k = 0; inputs && k < n_in; k++)
        kiln_tensor_free(inputs[k]);
    for (int k = 0; k < a.n_inputs; k++)
        free(a.input_names[k]);
    for (int k = 0; k < a.n_shapes; k++)
        free(a.shape_names[k]);
    free(a.input_names);
    free(a.input_files);
    free(a.shape_names);
    free(a.shape_dims);
    free(a.shape_ranks);
    free(names);
    free(inputs);
    free(outputs);
    free(lat);
    kiln_session_free(session);
    kiln_model_free(model);
    return rc;
}
