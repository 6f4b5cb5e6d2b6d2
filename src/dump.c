/*
 * dump.c - `mixspy dump --pid PID [--locals] [--json] [--native] [--subprocesses]`: the stacks
 * of every Python thread, innermost frame first, in py-spy's text layout or as JSON.
 */
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "python/python.h"
#include "native.h"
#include "spy.h"

static bool use_color(void)
{
	const char *force = getenv("CLICOLOR_FORCE");
	if (force && *force && strcmp(force, "0") != 0)
		return true;
	return isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
}

struct style {
	const char *bold_yellow, *dim, *green, *cyan, *reset;
};

static struct style style_for(bool color)
{
	if (color)
		return (struct style){ "\033[1;33m", "\033[2m", "\033[32m", "\033[36m", "\033[0m" };
	return (struct style){ "", "", "", "", "" };
}

static void thread_status(const struct sample *s, char *buf, size_t n)
{
	snprintf(buf, n, "%s%s", s->active ? "active" : "idle", s->owns_gil ? "+gil" : "");
}

/* The frame a sample's frame i came from, for --locals: match Python frames by code identity. */
static const struct py_frame *python_frame_for(const struct py_thread *th, const struct frame *f, size_t *cursor)
{
	for (size_t k = *cursor; k < th->frames.n; k++)
		if (th->frames.v[k].name == f->name && th->frames.v[k].file == f->file) {
			*cursor = k + 1;
			return &th->frames.v[k];
		}
	return NULL;
}

static void print_locals(struct spy *s, const struct py_frame *pf, int level, const struct style *st, bool json,
			 struct strbuf *out)
{
	struct py_local *locals = NULL;
	size_t n = 0;
	if (py_frame_locals(s->py, pf, (size_t)level * 128, &locals, &n, NULL)) {
		if (json)
			sb_adds(out, "null");
		return;
	}
	if (json) {
		sb_addc(out, '[');
		for (size_t i = 0; i < n; i++) {
			sb_adds(out, i ? ", {\"name\": \"" : "{\"name\": \"");
			sb_add_json(out, locals[i].name);
			sb_addf(out, "\", \"addr\": %llu, \"arg\": %s, \"repr\": \"", (unsigned long long)locals[i].addr,
				locals[i].is_arg ? "true" : "false");
			sb_add_json(out, locals[i].repr);
			sb_adds(out, "\"}");
		}
		sb_addc(out, ']');
	} else {
		for (int pass = 0; pass < 2; pass++) {
			bool header = false;
			for (size_t i = 0; i < n; i++) {
				if (locals[i].is_arg != (pass == 0))
					continue;
				if (!header) {
					sb_addf(out, "        %s\n", pass == 0 ? "Arguments:" : "Locals:");
					header = true;
				}
				sb_addf(out, "            %s: %s\n", locals[i].name, locals[i].repr);
			}
		}
	}
	(void)st;
	py_locals_free(locals, n);
}

static int dump_process(const struct config *c, struct spy *s, bool json, bool first, struct strbuf *out, struct err *e)
{
	struct sample *samples;
	size_t n;
	int rc = spy_sample(s, 0, &samples, &n, e);
	if (rc)
		return rc;
	struct style st = style_for(!json && use_color());
	const struct py_version *v = py_get_version(s->py);
	if (json) {
		for (size_t i = n; i-- > 0;) {
			const struct sample *smp = &samples[i];
			if (!first || i != n - 1)
				sb_adds(out, ",\n");
			sb_addf(out, "  {\n    \"pid\": %d,\n    \"thread_id\": %llu,\n    \"thread_name\": ", smp->pid,
				(unsigned long long)smp->thread_id);
			if (smp->thread_name) {
				sb_addc(out, '"');
				sb_add_json(out, smp->thread_name);
				sb_addc(out, '"');
			} else {
				sb_adds(out, "null");
			}
			if (smp->os_tid)
				sb_addf(out, ",\n    \"os_thread_id\": %d", smp->os_tid);
			else
				sb_adds(out, ",\n    \"os_thread_id\": null");
			sb_addf(out, ",\n    \"active\": %s,\n    \"owns_gil\": %s,\n    \"frames\": [",
				smp->active ? "true" : "false", smp->owns_gil ? "true" : "false");
			const struct py_thread *th = spy_sample_thread(s, i);
			size_t cursor = 0;
			for (size_t k = 0; k < smp->nframes; k++) {
				const struct frame *f = &smp->frames[k];
				sb_adds(out, k ? ",\n      {" : "\n      {");
				sb_adds(out, "\"name\": \"");
				sb_add_json(out, f->name ? f->name : "");
				sb_adds(out, "\", \"filename\": \"");
				sb_add_json(out, f->file ? f->file : "");
				sb_adds(out, "\", \"module\": ");
				if (f->module) {
					sb_addc(out, '"');
					sb_add_json(out, f->module);
					sb_addc(out, '"');
				} else {
					sb_adds(out, "null");
				}
				sb_adds(out, ", \"short_filename\": \"");
				sb_add_json(out, f->short_file ? f->short_file : "");
				sb_addf(out, "\", \"line\": %d, \"kind\": \"%s\", \"locals\": ", f->line,
					f->kind == FRAME_PYTHON ? "python" : f->kind == FRAME_NATIVE ? "native"
					: f->kind == FRAME_CYTHON ? "cython" : "pseudo");
				const struct py_frame *pf = th && c->locals && f->kind == FRAME_PYTHON
							    ? python_frame_for(th, f, &cursor) : NULL;
				if (pf)
					print_locals(s, pf, c->locals, &st, true, out);
				else
					sb_adds(out, "null");
				sb_addf(out, ", \"is_entry\": true, \"is_shim_entry\": true");
				if (f->kind == FRAME_NATIVE && f->addr)
					sb_addf(out, ", \"addr\": %llu", (unsigned long long)f->addr);
				sb_addc(out, '}');
			}
			sb_adds(out, smp->nframes ? "\n    ],\n    \"process_info\": null\n  }" : "],\n    \"process_info\": null\n  }");
		}
		return 0;
	}
	sb_addf(out, "Process %s%d%s: %s\n", st.bold_yellow, s->t.pid, st.reset, s->t.cmdline);
	sb_addf(out, "Python v%s (%s%s%s)\n", v->str, st.dim, s->t.exe, st.reset);
	if (c->subprocesses && !first) {
		pid_t ppid = target_ppid(s->t.pid);
		char *pcmd = ppid > 0 ? target_read_cmdline(ppid) : NULL;
		sb_addf(out, "Parent Process %d: %s\n", ppid, pcmd ? pcmd : "?");
		free(pcmd);
	}
	sb_addc(out, '\n');
	/* py-spy prints threads in reverse order of the interpreter's list: the main thread,
	 * created first and so last in the list, comes first. */
	for (size_t i = n; i-- > 0;) {
		const struct sample *smp = &samples[i];
		char status[32];
		thread_status(smp, status, sizeof status);
		sb_addf(out, "Thread %s0x%llX%s (%s)", st.bold_yellow, (unsigned long long)smp->thread_id, st.reset, status);
		if (smp->thread_name)
			sb_addf(out, ": \"%s\"", smp->thread_name);
		sb_addc(out, '\n');
		const struct py_thread *th = spy_sample_thread(s, i);
		size_t cursor = 0;
		for (size_t k = 0; k < smp->nframes; k++) {
			const struct frame *f = &smp->frames[k];
			const char *file = c->full_filenames ? f->file : f->short_file;
			sb_addf(out, "    %s%s%s", st.green, f->name, st.reset);
			if (file && *file) {
				if (f->line > 0)
					sb_addf(out, " (%s%s%s:%s%d%s)", st.cyan, file, st.reset, st.dim, f->line, st.reset);
				else
					sb_addf(out, " (%s%s%s)", st.cyan, file, st.reset);
			}
			sb_addc(out, '\n');
			/* The instruction the thread was executing, for the innermost native frame. */
			if (c->native && k == 0 && (f->kind == FRAME_NATIVE || f->kind == FRAME_CYTHON) && f->addr) {
				char insn[160];
				if (native_instruction(s, f->addr, insn, sizeof insn) == 0)
					sb_addf(out, "        %s=> 0x%llx: %s%s\n", st.dim, (unsigned long long)f->addr, insn, st.reset);
			}
			const struct py_frame *pf = th && c->locals && f->kind == FRAME_PYTHON ? python_frame_for(th, f, &cursor) : NULL;
			if (pf)
				print_locals(s, pf, c->locals, &st, false, out);
		}
		sb_addc(out, '\n');
	}
	return 0;
}

static int dump_tree(const struct config *c, pid_t pid, int depth, bool json, bool *first, struct strbuf *out,
		     struct interner *strs, struct err *e)
{
	struct spy_opts o = {
		.native = c->native, .nonblocking = c->nonblocking, .idle = true, .full_filenames = c->full_filenames,
		.linemode = PY_LINE_CURRENT, .thread_names = true,
	};
	struct spy s;
	int rc = spy_open(&s, pid, NULL, &o, strs, 0.5, e);
	if (rc && depth == 0 && !(c->subprocesses && rc == E_NOTPY))
		return rc;
	if (!rc) {
		rc = dump_process(c, &s, json, *first, out, e);
		*first = false;
		spy_close(&s);
		if (rc)
			return rc;
	}
	if (!c->subprocesses || json)
		return 0;
	/* Direct children, each dumped below its parent. */
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task/%d/children", pid, pid);
	FILE *fp = fopen(path, "r");
	if (!fp)
		return 0;
	int child;
	while (fscanf(fp, "%d", &child) == 1) {
		struct err ce = { 0 };
		sb_adds(out, "--------------------------------------------------------------------------------\n");
		if (dump_tree(c, child, depth + 1, json, first, out, strs, &ce))
			sb_addf(out, "Process %d: %s\n\n", child, ce.msg);
	}
	fclose(fp);
	return 0;
}

int dump_run(const struct config *c, struct err *e)
{
	struct interner *strs = interner_new();
	struct strbuf out;
	sb_init(&out);
	bool first = true;
	if (c->json)
		sb_adds(&out, "[\n");
	int rc = dump_tree(c, c->pid, 0, c->json, &first, &out, strs, e);
	if (!rc) {
		if (c->json)
			sb_adds(&out, "\n]\n");
		fwrite(out.buf, 1, out.len, stdout);
		fflush(stdout);
	}
	sb_free(&out);
	interner_free(strs);
	return rc;
}
