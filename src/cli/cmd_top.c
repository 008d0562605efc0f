/*
 * cmd_top.c - `kiln top`: a live terminal view of GPUs, host, models and
 * alerts, in the spirit of nvtop.
 *
 *   kiln top [--url http://127.0.0.1:8002] [--local] [--interval-ms N] [--once]
 *
 * With --url it reads a running kiln's /metrics and /api/v1/alerts; with
 * --local it samples this host itself (the same monitor `kiln monitor` runs,
 * without an HTTP server); with neither it tries the default URL and falls
 * back to local sampling.  Both paths produce Prometheus text that goes
 * through one parser (src/monitor/top.c), so what top shows is what
 * /metrics says.  `q` (or Esc, or Ctrl-C) quits; --once prints one plain
 * text snapshot and exits (for scripts and tests).
 */
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <ncurses.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/error.h"
#include "monitor/http_client.h"
#include "monitor/monitor.h"
#include "monitor/top.h"

#define DEFAULT_URL "http://127.0.0.1:8002"
#define HISTORY 240 /* samples kept for the sparklines */

typedef struct source {
    int local;
    kiln_http_url_t metrics, alerts;
    kiln_monitor_t *mon;
    char label[600]; /* shown in the header */
} source_t;

typedef struct history {
    double v[HISTORY];
    size_t n; /* how many are valid, newest last */
} history_t;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: kiln top [--url URL] [--local] [--interval-ms N] [--once]\n"
                 "  A live view of GPUs (utilization, memory, temperature, power), the host,\n"
                 "  models (throughput, p50/p99 latency, queue time) and active alerts.\n"
                 "  --url URL       read a running kiln's /metrics and /api/v1/alerts\n"
                 "                  (default " DEFAULT_URL "; without --url and --local, local\n"
                 "                  sampling is used when nothing answers there)\n"
                 "  --local         sample this host directly (GPUs through NVML, /proc)\n"
                 "  --interval-ms N refresh period, 100..60000 (default 1000)\n"
                 "  --once          print one text snapshot and exit\n"
                 "  Keys: q or Esc quits.\n");
}

/* ---- Sources ------------------------------------------------------------------- */

static int source_remote(source_t *src, const char *url, char *err, size_t errlen)
{
    char base[512], tmp[600], why[256];
    snprintf(base, sizeof base, "%s", url);
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        base[--n] = '\0';
    snprintf(tmp, sizeof tmp, "%s/metrics", base);
    if (kiln_http_url_parse(tmp, &src->metrics, why, sizeof why) != 0) {
        snprintf(err, errlen, "--url %s: %s", url, why);
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s/api/v1/alerts", base);
    if (kiln_http_url_parse(tmp, &src->alerts, why, sizeof why) != 0) {
        snprintf(err, errlen, "--url %s: %s", url, why);
        return -1;
    }
    snprintf(src->label, sizeof src->label, "%s", base);
    return 0;
}

static int source_local(source_t *src, int interval_ms, char *err, size_t errlen)
{
    kiln_monitor_options_t opts = {0};
    opts.interval_ms = interval_ms;
    opts.quiet = 1;
    if (kiln_monitor_start(&opts, NULL, &src->mon) != KILN_OK) {
        snprintf(err, errlen, "local sampling: %s", kiln_last_error());
        return -1;
    }
    src->local = 1;
    snprintf(src->label, sizeof src->label, "local sampling");
    return 0;
}

/* Takes one snapshot.  Returns 0, or -1 with a message (the screen keeps
 * the last good snapshot and shows the message). */
static int take(source_t *src, const kiln_top_snapshot_t *prev, kiln_top_snapshot_t *out, char *err,
                size_t errlen)
{
    kiln_prom_set_t set = {0};
    double t = now_s();
    if (src->local) {
        kiln_metrics_writer_t *w = kiln_exporter_render(kiln_monitor_exporter(src->mon));
        if (!w) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        size_t len;
        const char *text = kiln_metrics_writer_text(w, &len);
        int rc = kiln_prom_parse(text, len, &set, err, errlen);
        kiln_metrics_writer_free(w);
        if (rc != 0) {
            kiln_prom_set_free(&set);
            return -1;
        }
        kiln_top_build(&set, prev, t, out);
        kiln_prom_set_free(&set);
        return 0;
    }
    char *body = NULL;
    size_t len = 0;
    int status = 0;
    if (kiln_http_request(&src->metrics, "GET", NULL, NULL, 0, 3, &status, &body, &len, err, errlen) != 0)
        return -1;
    if (status != 200) {
        snprintf(err, errlen, "%s answered HTTP %d", src->metrics.text, status);
        free(body);
        return -1;
    }
    char perr[256];
    if (kiln_prom_parse(body, len, &set, perr, sizeof perr) != 0) {
        snprintf(err, errlen, "%s: not Prometheus text: %s", src->metrics.text, perr);
        free(body);
        kiln_prom_set_free(&set);
        return -1;
    }
    free(body);
    kiln_top_build(&set, prev, t, out);
    kiln_prom_set_free(&set);
    /* Alerts are optional: an older kiln or another exporter has none. */
    body = NULL;
    if (kiln_http_request(&src->alerts, "GET", NULL, NULL, 0, 3, &status, &body, &len, perr, sizeof perr) ==
            0 &&
        status == 200)
        kiln_top_read_alerts(body, len, out, perr, sizeof perr);
    free(body);
    return 0;
}

/* ---- Drawing -------------------------------------------------------------------- */

enum { C_OK = 1, C_WARN, C_BAD, C_HEAD, C_DIM };

static int utf8;

static void push(history_t *h, double v)
{
    if (h->n == HISTORY) {
        memmove(h->v, h->v + 1, (HISTORY - 1) * sizeof h->v[0]);
        h->n--;
    }
    h->v[h->n++] = v;
}

static int level_color(double frac)
{
    return frac >= 0.9 ? C_BAD : frac >= 0.7 ? C_WARN : C_OK;
}

/* A horizontal bar "[||||||    ] 62%" of `width` cells. */
static void bar(int y, int x, int width, double frac, const char *text)
{
    if (width < 4)
        return;
    if (!(frac >= 0))
        frac = 0;
    if (frac > 1)
        frac = 1;
    int inner = width - 2;
    int fill = (int)lround(frac * inner);
    mvaddch(y, x, '[');
    attron(COLOR_PAIR(level_color(frac)));
    for (int i = 0; i < inner; i++)
        mvaddch(y, x + 1 + i, i < fill ? '|' : ' ');
    attroff(COLOR_PAIR(level_color(frac)));
    mvaddch(y, x + width - 1, ']');
    int tl = (int)strlen(text);
    if (tl < inner)
        mvaddstr(y, x + width - 1 - tl, text);
}

/* "NAME [|||   ] 62%" for a 0..1 value; the bar starts 6 cells after x. */
static void ratio_bar(int y, int x, int width, const char *name, const kiln_top_value_t *v)
{
    char text[32];
    snprintf(text, sizeof text, "%.0f%%", v->ok ? v->v * 100 : 0);
    mvaddstr(y, x, name);
    bar(y, x + 6, width, v->ok ? v->v : 0, v->ok ? text : "-");
}

/* "mem [|||    ] 4.0 GiB / 16.0 GiB". */
static void memory_bar(int y, int x, int width, const kiln_top_value_t *used, const kiln_top_value_t *total)
{
    char a[32], b[32], text[80];
    kiln_top_bytes(used->v, a, sizeof a);
    kiln_top_bytes(total->v, b, sizeof b);
    snprintf(text, sizeof text, "%s / %s", a, b);
    mvaddstr(y, x, "mem");
    bar(y, x + 6, width, total->ok && total->v > 0 ? used->v / total->v : 0, used->ok ? text : "-");
}

/* A sparkline of values in [0, 1] (newest right) over `width` cells. */
static void sparkline(int y, int x, int width, const history_t *h)
{
    static const char *blocks[] = {" ",      "\u2581", "\u2582", "\u2583", "\u2584",
                                   "\u2585", "\u2586", "\u2587", "\u2588"};
    static const char ascii[] = " .:-=+*#@";
    size_t n = h->n < (size_t)width ? h->n : (size_t)width;
    for (size_t i = 0; i < n; i++) {
        double v = h->v[h->n - n + i];
        if (!(v >= 0))
            v = 0;
        if (v > 1)
            v = 1;
        int lvl = (int)lround(v * 8);
        attron(COLOR_PAIR(level_color(v)));
        if (utf8)
            mvaddstr(y, x + width - (int)n + (int)i, blocks[lvl]);
        else
            mvaddch(y, x + width - (int)n + (int)i, ascii[lvl]);
        attroff(COLOR_PAIR(level_color(v)));
    }
}

static void draw(const kiln_top_snapshot_t *s, const source_t *src, const char *error, history_t *cpu_hist,
                 history_t *gpu_hist)
{
    int rows, cols;
    getmaxyx(stdscr, rows, cols);
    erase();
    char line[512];
    time_t t = (time_t)s->time;
    struct tm tm;
    localtime_r(&t, &tm);
    attron(COLOR_PAIR(C_HEAD) | A_BOLD);
    mvhline(0, 0, ' ', cols);
    snprintf(line, sizeof line, " kiln top  %s  %02d:%02d:%02d", src->label, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
    mvaddnstr(0, 0, line, cols);
    mvaddnstr(0, cols > 10 ? cols - 10 : 0, " q: quit ", 9);
    attroff(COLOR_PAIR(C_HEAD) | A_BOLD);
    int y = 1;
    if (error && *error) {
        attron(COLOR_PAIR(C_BAD));
        mvaddnstr(y++, 1, error, cols - 2);
        attroff(COLOR_PAIR(C_BAD));
    }
    int barw = cols > 60 ? (cols - 40) / 2 : 10;

    /* Host */
    y++;
    attron(A_BOLD);
    mvaddstr(y++, 1, "HOST");
    attroff(A_BOLD);
    ratio_bar(y, 2, barw, "cpu", &s->cpu_util);
    sparkline(y, 9 + barw, cols - barw - 11, cpu_hist);
    y++;
    memory_bar(y, 2, barw, &s->mem_used, &s->mem_total);
    y += 2;

    /* GPUs */
    attron(A_BOLD);
    mvaddstr(y++, 1, "GPUS");
    attroff(A_BOLD);
    if (s->ngpus == 0) {
        attron(COLOR_PAIR(C_DIM));
        mvaddnstr(y++, 2, "No GPU found (no NVIDIA driver or NVML library); host and models are shown.",
                  cols - 3);
        attroff(COLOR_PAIR(C_DIM));
    }
    for (size_t i = 0; i < s->ngpus && y < rows - 4; i++) {
        const kiln_top_gpu_t *g = &s->gpus[i];
        snprintf(line, sizeof line, "%zu  %s  %s", i, g->name[0] ? g->name : "GPU", g->uuid);
        mvaddnstr(y++, 2, line, cols - 3);
        ratio_bar(y, 4, barw, "util", &g->util);
        if (i < KILN_TOP_MAX_GPUS)
            sparkline(y, 12 + barw, cols - barw - 14, &gpu_hist[i]);
        y++;
        memory_bar(y, 4, barw, &g->mem_used, &g->mem_total);
        char temp[32] = "-", power[64] = "-";
        if (g->temp.ok)
            snprintf(temp, sizeof temp, "%.0f C", g->temp.v);
        if (g->power.ok)
            snprintf(power, sizeof power, g->power_limit.ok ? "%.0f / %.0f W" : "%.0f W", g->power.v,
                     g->power_limit.v);
        int col = 12 + barw;
        if (g->temp.ok)
            attron(COLOR_PAIR(g->temp.v >= 85 ? C_BAD : g->temp.v >= 75 ? C_WARN : C_OK));
        mvaddstr(y, col, "temp ");
        addstr(temp);
        attroff(COLOR_PAIR(C_BAD) | COLOR_PAIR(C_WARN) | COLOR_PAIR(C_OK));
        mvaddstr(y, col + 14, "power ");
        addstr(power);
        y += 2;
    }
    if (s->gpus_total > s->ngpus)
        mvprintw(y++, 2, "(%zu more GPUs not shown)", s->gpus_total - s->ngpus);

    /* Models */
    if (y < rows - 3) {
        attron(A_BOLD);
        mvaddstr(y++, 1, "MODELS");
        attroff(A_BOLD);
        if (s->nmodels == 0) {
            attron(COLOR_PAIR(C_DIM));
            mvaddstr(y++, 2, "none");
            attroff(COLOR_PAIR(C_DIM));
        } else {
            attron(A_UNDERLINE);
            mvprintw(y++, 2, "%-28s %10s %10s %10s %10s %8s", "model/version", "inf/s", "p50 ms", "p99 ms",
                     "queue ms", "pending");
            attroff(A_UNDERLINE);
        }
        for (size_t i = 0; i < s->nmodels && y < rows - 2; i++) {
            const kiln_top_model_t *m = &s->models[i];
            char name[64], c1[16] = "-", c2[16] = "-", c3[16] = "-", c4[16] = "-", c5[16] = "-";
            snprintf(name, sizeof name, "%s/%s", m->model, m->version[0] ? m->version : "-");
            if (m->rps.ok)
                snprintf(c1, sizeof c1, "%.1f", m->rps.v);
            if (m->p50_ms.ok)
                snprintf(c2, sizeof c2, "%.2f", m->p50_ms.v);
            if (m->p99_ms.ok)
                snprintf(c3, sizeof c3, "%.2f", m->p99_ms.v);
            if (m->queue_ms.ok)
                snprintf(c4, sizeof c4, "%.2f", m->queue_ms.v);
            if (m->pending.ok)
                snprintf(c5, sizeof c5, "%.0f", m->pending.v);
            mvprintw(y++, 2, "%-28.28s %10s %10s %10s %10s %8s", name, c1, c2, c3, c4, c5);
        }
        y++;
    }

    /* Alerts */
    if (y < rows - 1) {
        attron(A_BOLD);
        mvaddstr(y++, 1, "ALERTS");
        attroff(A_BOLD);
        if (!s->alerts_ok || s->nalerts == 0) {
            attron(COLOR_PAIR(C_DIM));
            mvaddstr(y++, 2,
                     s->alerts_ok ? "none active"
                     : src->local ? "not evaluated in local mode"
                                  : "unknown");
            attroff(COLOR_PAIR(C_DIM));
        }
        for (size_t i = 0; i < s->nalerts && y < rows; i++) {
            const kiln_top_alert_t *al = &s->alerts[i];
            attron(COLOR_PAIR(!strcmp(al->state, "firing") ? C_BAD : C_WARN) | A_BOLD);
            mvprintw(y, 2, "%-8s", al->state);
            attroff(COLOR_PAIR(C_BAD) | COLOR_PAIR(C_WARN) | A_BOLD);
            snprintf(line, sizeof line, "%s  %s  %s", al->name, al->labels, al->summary);
            mvaddnstr(y++, 11, line, cols > 12 ? cols - 12 : 0);
        }
    }
    refresh();
}

/* ---- Main ------------------------------------------------------------------------ */

static int run_screen(source_t *src, int interval_ms)
{
    kiln_top_snapshot_t *cur = calloc(1, sizeof *cur), *prev = calloc(1, sizeof *prev);
    history_t *gpu_hist = calloc(KILN_TOP_MAX_GPUS, sizeof *gpu_hist);
    history_t cpu_hist = {0};
    if (!cur || !prev || !gpu_hist) {
        free(cur);
        free(prev);
        free(gpu_hist);
        fprintf(stderr, "kiln top: out of memory\n");
        return KILN_EXIT_BAD_INPUT;
    }
    if (!initscr()) {
        fprintf(stderr, "kiln top: cannot open the terminal (TERM=%s)\n",
                getenv("TERM") ? getenv("TERM") : "");
        free(cur);
        free(prev);
        free(gpu_hist);
        return KILN_EXIT_BAD_INPUT;
    }
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    timeout(100);
    if (has_colors()) {
        start_color();
        use_default_colors();
        init_pair(C_OK, COLOR_GREEN, -1);
        init_pair(C_WARN, COLOR_YELLOW, -1);
        init_pair(C_BAD, COLOR_RED, -1);
        init_pair(C_HEAD, COLOR_BLACK, COLOR_CYAN);
        init_pair(C_DIM, COLOR_CYAN, -1);
    }
    char error[600] = "";
    double next = 0;
    int have = 0;
    while (!interrupted) {
        double t = now_s();
        if (t >= next) {
            char err[512];
            if (take(src, have ? prev : NULL, cur, err, sizeof err) == 0) {
                error[0] = '\0';
                push(&cpu_hist, cur->cpu_util.ok ? cur->cpu_util.v : 0);
                for (size_t i = 0; i < cur->ngpus; i++)
                    push(&gpu_hist[i], cur->gpus[i].util.ok ? cur->gpus[i].util.v : 0);
                kiln_top_snapshot_t *swap = prev;
                prev = cur;
                cur = swap;
                have = 1;
            } else {
                snprintf(error, sizeof error, "cannot read: %s (retrying)", err);
            }
            next = t + interval_ms / 1000.0;
            if (have)
                draw(prev, src, error, &cpu_hist, gpu_hist);
            else {
                erase();
                mvaddnstr(0, 0, error[0] ? error : "kiln top: waiting for the first sample...", COLS);
                refresh();
            }
        }
        int ch = getch();
        if (ch == 'q' || ch == 'Q' || ch == 27)
            break;
        if (ch == KEY_RESIZE && have)
            draw(prev, src, error, &cpu_hist, gpu_hist);
    }
    endwin();
    free(cur);
    free(prev);
    free(gpu_hist);
    return KILN_EXIT_OK;
}

int kiln_cmd_top(int argc, char **argv)
{
    const char *url = NULL;
    int local = 0, once = 0;
    long interval = 1000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return KILN_EXIT_OK;
        } else if (!strcmp(a, "--url") || !strncmp(a, "--url=", 6)) {
            url = a[5] == '=' ? a + 6 : (i + 1 < argc ? argv[++i] : NULL);
            if (!url || !*url) {
                fprintf(stderr, "kiln top: --url needs a URL such as " DEFAULT_URL "\n");
                return KILN_EXIT_BAD_INPUT;
            }
        } else if (!strcmp(a, "--interval-ms") || !strncmp(a, "--interval-ms=", 14)) {
            const char *v = a[13] == '=' ? a + 14 : (i + 1 < argc ? argv[++i] : NULL);
            char *end;
            interval = v ? strtol(v, &end, 10) : -1;
            if (!v || *end || interval < 100 || interval > 60000) {
                fprintf(stderr,
                        "kiln top: --interval-ms must be a whole number from 100 to 60000, not '%s'\n",
                        v ? v : "");
                return KILN_EXIT_BAD_INPUT;
            }
        } else if (!strcmp(a, "--local")) {
            local = 1;
        } else if (!strcmp(a, "--once")) {
            once = 1;
        } else {
            fprintf(stderr, "kiln top: unknown argument '%s'\n", a);
            usage(stderr);
            return KILN_EXIT_BAD_INPUT;
        }
    }
    if (local && url) {
        fprintf(stderr, "kiln top: --local and --url exclude each other\n");
        return KILN_EXIT_BAD_INPUT;
    }
    source_t src = {0};
    char err[600];
    if (local) {
        if (source_local(&src, (int)interval, err, sizeof err) != 0) {
            fprintf(stderr, "kiln top: %s\n", err);
            return KILN_EXIT_BAD_INPUT;
        }
    } else if (source_remote(&src, url ? url : DEFAULT_URL, err, sizeof err) != 0) {
        fprintf(stderr, "kiln top: %s\n", err);
        return KILN_EXIT_BAD_INPUT;
    }
    kiln_top_snapshot_t *snap = calloc(1, sizeof *snap);
    if (!snap) {
        fprintf(stderr, "kiln top: out of memory\n");
        return KILN_EXIT_BAD_INPUT;
    }
    /* Check the source once before the screen opens, so a wrong --url is
     * an error message rather than a screen of retries. */
    if (take(&src, NULL, snap, err, sizeof err) != 0) {
        if (url || src.local) {
            fprintf(stderr, "kiln top: %s\n", err);
            free(snap);
            kiln_monitor_stop(src.mon);
            return KILN_EXIT_CHECK_FAILED;
        }
        if (source_local(&src, (int)interval, err, sizeof err) != 0 ||
            take(&src, NULL, snap, err, sizeof err) != 0) {
            fprintf(stderr, "kiln top: nothing answers at " DEFAULT_URL " and local sampling failed: %s\n",
                    err);
            free(snap);
            kiln_monitor_stop(src.mon);
            return KILN_EXIT_CHECK_FAILED;
        }
        snprintf(src.label, sizeof src.label, "local sampling (nothing at " DEFAULT_URL ")");
    }
    int rc = KILN_EXIT_OK;
    if (once) {
        kiln_top_print(snap, src.label, stdout);
    } else {
        setlocale(LC_ALL, "");
        utf8 = !strcmp(nl_langinfo(CODESET), "UTF-8");
        struct sigaction sa = {0};
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        rc = run_screen(&src, (int)interval);
    }
    free(snap);
    kiln_monitor_stop(src.mon);
    return rc;
}
