/*
 * top.c - `mixspy top`: a live table of the functions using the most time, as py-spy's top,
 * plus a GIL column.
 *
 * Columns: %Own and %Total (this refresh window, divided by ticks, so with several threads they
 * may pass 100%), OwnTime and TotalTime (the whole run, count / rate), %GIL (of the samples with
 * the function on the stack, the share where the thread held the GIL), then the function. The
 * header: samples, %GIL and %Active (ticks of the window where some thread held the GIL / was
 * not idle), threads in the last tick, processes with --subprocesses.
 *
 * On a terminal it draws with ncurses and reads keys while the sampler waits for its next tick
 * (the sampler's idle hook): 1-5 sort by column, L lines/functions, R reset, P pause, ? help,
 * Q quit. Ctrl-C, SIGTERM and the target's exit end it too, always through endwin(). With stdout
 * not a terminal it prints one plain table per refresh instead (the same rows; for scripts and
 * tests), keys off.
 */
#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "sampler.h"

enum sort_col { SORT_OWN = 0, SORT_TOTAL, SORT_OWNTIME, SORT_TOTALTIME, SORT_GIL, NSORT };

struct top_entry {
	const char *name;
	const char *file;        /* as shown: short unless --full-filenames */
	int line;                /* 0 when aggregating by function */
	uint64_t own, total;     /* whole run */
	uint64_t own_w, total_w; /* this refresh window */
	uint64_t total_gil;      /* samples with it on the stack and the GIL held */
	uint64_t stamp;          /* last sample that counted it in total (recursion counts once) */
};

struct top {
	const struct config *c;
	struct interner *strs;
	VEC(struct top_entry) entries;
	struct hmap index;       /* key hash -> entry index + 1, open addressing on collisions */
	uint64_t stamp;

	bool curses;             /* the screen is ours (endwin pending) */
	int saved_stderr;        /* stderr while the screen is ours, else -1 */
	bool plain;              /* stdout is not a terminal */
	bool by_line;
	bool paused;
	bool help;
	bool quit;
	enum sort_col sort;

	uint64_t ticks, samples;           /* whole run (since the last reset) */
	uint64_t ticks_w, gil_ticks_w, active_ticks_w;
	bool tick_gil, tick_active;        /* seen in the current tick */
	size_t tick_samples, threads_last;
	size_t nprocs;
	uint64_t errors;
	char last_error[512];
	uint64_t late_ticks;
	double behind;         /* seconds lost to overruns (sampler's max_lateness) */

	const char *cmdline;     /* of the first process sampled, interned (outlives the spy) */
	char version[32];
	double last_refresh;     /* monotonic */
	uint64_t refreshes;
	VEC(size_t) order;       /* scratch for sorting */
};

/* ---- statistics ---------------------------------------------------------------------------- */

static uint64_t key_hash(const char *name, const char *file, int line)
{
	uint64_t h = (uint64_t)(uintptr_t)name * 0x9E3779B97F4A7C15ULL;
	h ^= (uint64_t)(uintptr_t)file * 0xC2B2AE3D27D4EB4FULL;
	h ^= (uint64_t)(unsigned)line * 0x165667B19E3779F9ULL;
	return h ^ (h >> 29);
}

static size_t entry_of(struct top *t, const struct frame *f)
{
	const char *file = t->c->full_filenames || !f->short_file ? f->file : f->short_file;
	if (!file)
		file = "";
	int line = t->by_line ? f->line : 0;
	const char *name = f->name ? f->name : "?";
	uint64_t h = key_hash(name, file, line), idx;
	while (hmap_get(&t->index, h, &idx)) {
		struct top_entry *e = &t->entries.v[idx - 1];
		if (e->name == name && e->file == file && e->line == line)
			return idx - 1;
		h = h * 31 + 1;
	}
	struct top_entry e = { .name = name, .file = file, .line = line };
	vec_push(&t->entries, e);
	hmap_put(&t->index, h, t->entries.n);
	return t->entries.n - 1;
}

static void reset_stats(struct top *t)
{
	t->entries.n = 0;
	hmap_clear(&t->index);
	t->ticks = t->samples = 0;
	t->ticks_w = t->gil_ticks_w = t->active_ticks_w = 0;
}

static void on_samples(void *ctx, struct sampler *sm, struct spy *spy, struct sample *s, size_t n)
{
	struct top *t = ctx;
	if (!t->cmdline) {
		t->cmdline = intern(t->strs, spy->t.cmdline ? spy->t.cmdline : "");
		snprintf(t->version, sizeof t->version, "%s", py_get_version(spy->py)->str);
	}
	t->tick_samples += n;
	if (t->paused)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct sample *smp = &s[i];
		bool gil = smp->gil == GIL_HELD;
		t->tick_gil |= gil;
		t->tick_active |= smp->gil != GIL_IDLE;
		t->samples++;
		t->stamp++;
		for (size_t k = 0; k < smp->nframes; k++) {
			size_t idx = entry_of(t, &smp->frames[k]);
			struct top_entry *e = &t->entries.v[idx];
			if (k == 0) {
				e->own++;
				e->own_w++;
			}
			if (e->stamp != t->stamp) {
				e->stamp = t->stamp;
				e->total++;
				e->total_w++;
				e->total_gil += gil;
			}
		}
	}
}

/* ---- drawing ------------------------------------------------------------------------------- */

static double entry_value(const struct top_entry *e, enum sort_col col)
{
	switch (col) {
	case SORT_OWN: return (double)e->own_w;
	case SORT_TOTAL: return (double)e->total_w;
	case SORT_OWNTIME: return (double)e->own;
	case SORT_TOTALTIME: return (double)e->total;
	case SORT_GIL: return e->total ? (double)e->total_gil / (double)e->total : 0;
	default: return 0;
	}
}

static int cmp_entries(const void *a, const void *b, void *ctx)
{
	const struct top *t = ctx;
	const struct top_entry *x = &t->entries.v[*(const size_t *)a], *y = &t->entries.v[*(const size_t *)b];
	double vx = entry_value(x, t->sort), vy = entry_value(y, t->sort);
	if (vx != vy)
		return vx < vy ? 1 : -1;
	if (x->total != y->total)
		return x->total < y->total ? 1 : -1;
	int r = strcmp(x->name, y->name);
	return r ? r : x->line - y->line;
}

static void sort_entries(struct top *t)
{
	t->order.n = 0;
	for (size_t i = 0; i < t->entries.n; i++)
		if (t->entries.v[i].total)
			vec_push(&t->order, i);
	qsort_r(t->order.v, t->order.n, sizeof(size_t), cmp_entries, t);
}

static void fmt_time(char *buf, size_t n, double secs)
{
	if (secs > 1000)
		snprintf(buf, n, "%.0fs", secs);
	else if (secs >= 100)
		snprintf(buf, n, "%.1fs", secs);
	else if (secs >= 1)
		snprintf(buf, n, "%.2fs", secs);
	else
		snprintf(buf, n, "%.3fs", secs);
}

static double pct(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* The header lines, without the table. */
static void header_lines(struct top *t, struct strbuf *out)
{
	/* py-spy's rule: more than a tenth of the ticks late, and more than a second lost. */
	if (t->late_ticks * 10 > t->ticks && t->ticks > 0 && t->behind > 1.0)
		sb_adds(out, "mixspy is behind in sampling, results may be inaccurate. Try reducing the sampling rate.\n");
	if (t->cmdline)
		sb_addf(out, "Collecting samples from '%s' (python v%s)%s\n", t->cmdline, t->version,
			t->c->subprocesses ? " and subprocesses" : "");
	else
		sb_addf(out, "Collecting samples from 'Pid %d'%s\n", t->c->pid, t->c->subprocesses ? " and subprocesses" : "");
	sb_addf(out, "Total Samples %llu", (unsigned long long)t->samples);
	if (t->samples > 100 && t->errors * 100 >= t->samples)
		sb_addf(out, ", Error Rate %.2f%% (%s)", pct(t->errors, t->samples), t->last_error);
	sb_addc(out, '\n');
	sb_addf(out, "GIL: %.2f%%, Active: %.2f%%, Threads: %zu", pct(t->gil_ticks_w, t->ticks_w),
		pct(t->active_ticks_w, t->ticks_w), t->threads_last);
	if (t->c->subprocesses)
		sb_addf(out, ", Processes %zu", t->nprocs);
	if (t->paused)
		sb_adds(out, "  [paused]");
	sb_addc(out, '\n');
}

static void row_text(struct top *t, const struct top_entry *e, struct strbuf *out)
{
	char own[32], total[32];
	double dt = 1.0 / (double)t->c->rate;
	fmt_time(own, sizeof own, (double)e->own * dt);
	fmt_time(total, sizeof total, (double)e->total * dt);
	sb_addf(out, "%6.2f%% %7.2f%% %8s %10s %7.2f%%  ", pct(e->own_w, t->ticks_w), pct(e->total_w, t->ticks_w), own,
		total, e->total ? pct(e->total_gil, e->total) : 0.0);
	sb_adds(out, e->name);
	if (*e->file) {
		if (e->line > 0)
			sb_addf(out, " (%s:%d)", e->file, e->line);
		else
			sb_addf(out, " (%s)", e->file);
	}
}

static const char *column_header(const struct top *t)
{
	return t->by_line ? "  %Own   %Total  OwnTime  TotalTime    %GIL  Function (filename:line)"
			  : "  %Own   %Total  OwnTime  TotalTime    %GIL  Function (filename)";
}

static void print_plain(struct top *t)
{
	struct strbuf sb;
	sb_init(&sb);
	header_lines(t, &sb);
	sb_addc(&sb, '\n');
	sb_adds(&sb, column_header(t));
	sb_addc(&sb, '\n');
	sort_entries(t);
	for (size_t i = 0; i < t->order.n && i < 200; i++) {
		row_text(t, &t->entries.v[t->order.v[i]], &sb);
		sb_addc(&sb, '\n');
	}
	sb_addc(&sb, '\n');
	fwrite(sb.buf, 1, sb.len, stdout);
	fflush(stdout);
	sb_free(&sb);
}

/* Bytes of s that fit in `cols` columns, cut at a UTF-8 character boundary (one column per
 * character: close enough for function names and paths). */
static size_t fit(const char *s, size_t len, int cols)
{
	size_t i = 0;
	int used = 0;
	while (i < len && used < cols) {
		i++;
		while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
			i++;
		used++;
	}
	return i;
}

static void draw_line(int y, const char *s, size_t len)
{
	if (y >= LINES)
		return;
	move(y, 0);
	addnstr(s, (int)fit(s, len, COLS));
	clrtoeol();
}

static void draw_curses(struct top *t)
{
	struct strbuf sb;
	sb_init(&sb);
	erase();
	header_lines(t, &sb);
	int y = 0;
	for (char *p = sb.buf, *nl; p && *p; p = nl ? nl + 1 : NULL, y++) {
		nl = strchr(p, '\n');
		draw_line(y, p, nl ? (size_t)(nl - p) : strlen(p));
	}
	y++;
	if (t->help) {
		static const char *const help[] = {
			"Keys:",
			"  1  sort by %Own          2  sort by %Total",
			"  3  sort by OwnTime       4  sort by TotalTime",
			"  5  sort by %GIL",
			"  L  toggle aggregation by line / by function",
			"  R  reset statistics      P  pause / resume",
			"  ?  toggle this help      Q  quit (or Control-C)",
			NULL,
		};
		for (int i = 0; help[i]; i++, y++)
			draw_line(y, help[i], strlen(help[i]));
	} else if (y < LINES) {
		/* Column header: reversed, the sort column bold. */
		static const int starts[NSORT] = { 0, 8, 17, 26, 37 };
		static const int widths[NSORT] = { 6, 7, 8, 10, 7 };
		const char *h = column_header(t);
		attron(A_REVERSE);
		draw_line(y, h, strlen(h));
		for (int x = (int)strlen(h); x < COLS; x++)
			mvaddch(y, x, ' ');
		attron(A_BOLD);
		mvaddnstr(y, starts[t->sort], h + starts[t->sort], widths[t->sort] + 1);
		attroff(A_BOLD | A_REVERSE);
		y++;
		sort_entries(t);
		for (size_t i = 0; i < t->order.n && y < LINES - 1; i++, y++) {
			sb_reset(&sb);
			row_text(t, &t->entries.v[t->order.v[i]], &sb);
			draw_line(y, sb.buf, sb.len);
		}
	}
	const char *foot = "Press Control-C or Q to quit, or ? for help.";
	if (LINES > 1)
		draw_line(LINES - 1, foot, strlen(foot));
	refresh();
	sb_free(&sb);
}

static void start_screen(struct top *t)
{
	if (t->curses || t->plain)
		return;
	setlocale(LC_ALL, "");
	if (!initscr()) {
		t->plain = true;
		return;
	}
	t->curses = true;
	/* Nothing else may write on the screen: the sampler's "behind" notices go to stderr
	 * (the header says it instead), so park stderr until endwin. */
	fflush(stderr);
	t->saved_stderr = dup(STDERR_FILENO);
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDERR_FILENO);
		close(null);
	}
	cbreak();        /* Ctrl-C still raises SIGINT: the sampler's handler stops the loop */
	noecho();
	nodelay(stdscr, TRUE);
	keypad(stdscr, TRUE);
	curs_set(0);
}

static void end_screen(struct top *t)
{
	if (!t->curses)
		return;
	t->curses = false;
	curs_set(1);
	endwin();
	if (t->saved_stderr >= 0) {
		dup2(t->saved_stderr, STDERR_FILENO);
		close(t->saved_stderr);
		t->saved_stderr = -1;
	}
}

static void refresh_view(struct top *t)
{
	t->last_refresh = now_monotonic();
	t->refreshes++;
	if (t->plain) {
		print_plain(t);
	} else if (t->curses) {
		clearok(stdscr, TRUE);   /* repaint all of it now and then, whatever happened */
		draw_curses(t);
	}
	for (size_t i = 0; i < t->entries.n; i++)
		t->entries.v[i].own_w = t->entries.v[i].total_w = 0;
	t->ticks_w = t->gil_ticks_w = t->active_ticks_w = 0;
}

static void redraw(struct top *t)
{
	if (t->curses)
		draw_curses(t);
}

/* ---- keys ---------------------------------------------------------------------------------- */

static void on_key(struct top *t, int ch)
{
	switch (ch) {
	case '1': case '2': case '3': case '4': case '5':
		t->sort = (enum sort_col)(ch - '1');
		break;
	case 'l': case 'L':
		/* The entries are keyed one way: start over the other way. */
		t->by_line = !t->by_line;
		reset_stats(t);
		break;
	case 'r': case 'R':
		reset_stats(t);
		break;
	case 'p': case 'P': case ' ':
		t->paused = !t->paused;
		break;
	case '?': case 'h': case 'H':
		t->help = !t->help;
		break;
	case 'x': case 'X': case 27:
		t->help = false;
		break;
	case 'q': case 'Q':
		t->quit = true;
		break;
	case KEY_RESIZE:
		break;
	default:
		return;
	}
	redraw(t);
}

/* ---- sampler hooks ------------------------------------------------------------------------- */

static bool on_tick(void *ctx, struct sampler *sm, double elapsed)
{
	struct top *t = ctx;
	(void)elapsed;
	if (!t->paused) {
		t->ticks++;
		t->ticks_w++;
		t->gil_ticks_w += t->tick_gil;
		t->active_ticks_w += t->tick_active;
	}
	t->threads_last = t->tick_samples;
	t->tick_samples = 0;
	t->tick_gil = t->tick_active = false;
	t->nprocs = sampler_nprocs(sm);
	t->errors = sm->errors;
	t->late_ticks = sm->late_ticks;
	t->behind = sm->max_lateness;
	snprintf(t->last_error, sizeof t->last_error, "%s", sm->last_error);
	if (sm->reason) {
		/* The final call. Give the terminal back now: the sampler may still wait for a
		 * launched program. Q is our Control-C: pass it on to what we launched. */
		end_screen(t);
		if (sm->reason == STOP_HOOK && sm->launched && !sm->root_exited)
			kill(sm->root_pid, SIGINT);
		return true;
	}
	start_screen(t);
	if (t->curses) {
		/* The sampler skips idle while it is behind: read keys here too. */
		int ch;
		while ((ch = getch()) != ERR)
			on_key(t, ch);
	}
	double now = now_monotonic();
	/* As py-spy: every --delay seconds, and early while the first samples come in. */
	bool early = t->curses && (t->ticks == 10 || t->ticks == 100 || t->ticks == 500);
	if (!t->paused && (now - t->last_refresh >= t->c->delay || early))
		refresh_view(t);
	return t->quit;
}

static bool idle(void *ctx, struct sampler *sm, double until)
{
	struct top *t = ctx;
	for (;;) {
		if (sampler_child_signal)
			sampler_service(sm);
		if (t->quit)
			return true;
		if (sampler_stop_signal)
			return false;   /* the sampler sees the signal and stops */
		double now = now_monotonic();
		if (now >= until)
			return false;
		if (!t->curses) {
			sleep_signalled(NULL, until - now);
			continue;
		}
		struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
		int r = sleep_signalled(&pfd, until - now);
		if (r < 0 && errno != EINTR)
			return false;
		if (r > 0 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL))) {
			/* The terminal went away: nothing more to read, sleep out the gap. */
			sleep_signalled(NULL, until - now);
			continue;
		}
		int ch;
		while ((ch = getch()) != ERR)
			on_key(t, ch);
	}
}

int top_run(const struct config *c, int *status, struct err *e)
{
	struct top t = { .c = c, .sort = SORT_OWNTIME, .saved_stderr = -1 };
	t.strs = interner_new();
	hmap_init(&t.index);
	t.plain = !isatty(STDOUT_FILENO);
	/* py-spy's top starts by function; --function asks for it explicitly. */
	t.by_line = false;
	t.last_refresh = now_monotonic();
	struct sampler_hooks h = { .ctx = &t, .on_samples = on_samples, .on_tick = on_tick, .idle = idle };
	int rc = sampler_run(c, t.strs, &h, status, e);
	end_screen(&t);
	if (!rc && t.plain && t.samples && t.ticks_w)
		print_plain(&t);   /* what came in since the last refresh */
	if (!rc && t.ticks) {
		if (sampler_stop_signal)
			fprintf(stderr, "mixspy> Stopped sampling because Control-C pressed\n");
		else if (!t.quit && c->duration <= 0)
			fprintf(stderr, "mixspy> Stopped sampling because process exited\n");
	}
	vec_free(&t.entries);
	vec_free(&t.order);
	hmap_free(&t.index);
	interner_free(t.strs);
	return rc;
}
