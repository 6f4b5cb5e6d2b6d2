/*
 * cli.c - the py-spy compatible command line: subcommands (with unambiguous prefixes, as py-spy
 * accepts `py-spy r`), short and long flags, `--flag=value` and `--flag value`, `--` before a
 * program to launch, per-command help, and py-spy's messages for bad combinations.
 */
#include "cli.h"
#include "upload.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One flag: which commands take it, whether it takes a value, and its help line. */
enum { F_RECORD = 1, F_TOP = 2, F_DUMP = 4, F_MERGE = 8 };

struct flag {
	const char *lng;
	char shrt;
	const char *value;   /* NULL: a switch */
	int cmds;
	const char *help;
};

static const struct flag flags[] = {
	{ "pid", 'p', "pid", F_RECORD | F_TOP | F_DUMP, "PID of a running python program to spy on, in decimal or hex" },
	{ "output", 'o', "filename", F_RECORD | F_MERGE, "Output filename" },
	{ "format", 'f', "format", F_RECORD | F_MERGE,
	  "Output file format [default: flamegraph] [possible values: flamegraph, raw, speedscope, chrometrace, pprof, pstats, callgrind]" },
	{ "duration", 'd', "duration", F_RECORD, "The number of seconds to sample for [default: unlimited]" },
	{ "rate", 'r', "rate", F_RECORD | F_TOP | F_MERGE, "The number of samples to collect per second [default: 100]; for merge, the rate of inputs that record none (raw)" },
	{ "subprocesses", 's', NULL, F_RECORD | F_TOP | F_DUMP, "Profile subprocesses of the original process" },
	{ "function", 'F', NULL, F_RECORD, "Aggregate samples by function's first line number, instead of current line number" },
	{ "nolineno", 0, NULL, F_RECORD, "Do not show line numbers" },
	{ "threads", 't', NULL, F_RECORD, "Show thread ids in the output" },
	{ "gil", 'g', NULL, F_RECORD | F_TOP, "Only include traces that are holding on to the GIL" },
	{ "gil-split", 0, NULL, F_RECORD, "Add the GIL state (held, released, waiting, idle) as the root frame of each stack" },
	{ "idle", 'i', NULL, F_RECORD | F_TOP, "Include stack traces for idle threads" },
	{ "native", 'n', NULL, F_RECORD | F_TOP | F_DUMP, "Collect stack traces from native extensions written in Cython, C or C++" },
	{ "nonblocking", 0, NULL, F_RECORD | F_TOP | F_DUMP,
	  "Don't pause the python process when collecting samples. Setting this option will reduce the performance impact of sampling, but may lead to inaccurate results" },
	{ "bpf", 0, NULL, F_RECORD | F_TOP,
	  "Copy each running thread's frames (and, with --native, its registers and stack) inside the kernel (eBPF, at a tick of the thread's own CPU clock) instead of pausing it with ptrace; needs root (a thread the tick misses is paused as usual)" },
	{ "full-filenames", 0, NULL, F_RECORD | F_TOP | F_DUMP, "Show full Python filenames, instead of shortening to show only the package part" },
	{ "hideprogress", 0, NULL, F_RECORD, "Hide the live progress line" },
	{ "capture", 0, NULL, F_RECORD, "Capture output from the launched process instead of passing it through" },
	{ "delay", 0, "seconds", F_TOP, "Delay between 'top' refreshes [default: 1.0]" },
	{ "locals", 'l', NULL, F_DUMP, "Show local variables for each frame. Passing multiple times (-ll) increases verbosity" },
	{ "json", 'j', NULL, F_DUMP, "Format output as JSON" },
	{ "upload", 0, "url", F_RECORD,
	  "While recording, send each --interval window to a Pyroscope-compatible server (http:// only; POST <url>/ingest)" },
	{ "interval", 0, "seconds", F_RECORD, "Length of each uploaded window, in whole seconds [default: 10]" },
	{ "app-name", 0, "name", F_RECORD, "Application name for --upload [default: the program's name, or pid-<pid>]" },
	{ "tag", 0, "key=value", F_RECORD, "Label every uploaded window with key=value (repeatable)" },
	{ "rotate", 0, "seconds", F_RECORD,
	  "Write a new time-stamped file every <seconds> instead of one file for the whole run" },
	{ "help", 'h', NULL, F_RECORD | F_TOP | F_DUMP | F_MERGE, "Print help" },
};

struct command_info {
	const char *name;
	enum command cmd;
	int bit;
	const char *about;
	const char *usage;
};

static const struct command_info commands[] = {
	{ "record", CMD_RECORD, F_RECORD, "Records stack trace information to a flamegraph, speedscope or raw file",
	  "mixspy record [OPTIONS] --pid <pid> | [python_program]..." },
	{ "top", CMD_TOP, F_TOP, "Displays a top like view of functions consuming CPU",
	  "mixspy top [OPTIONS] --pid <pid> | [python_program]..." },
	{ "dump", CMD_DUMP, F_DUMP, "Dumps stack traces for a target program to stdout", "mixspy dump [OPTIONS] --pid <pid>" },
	{ "merge", CMD_MERGE, F_MERGE, "Combines profiles (raw, speedscope or pprof) from several runs into one",
	  "mixspy merge --output <filename> [--format <format>] <input>..." },
	{ "completions", CMD_COMPLETIONS, 0, "Generate shell completions", "mixspy completions <shell>" },
};

static void print_main_help(void)
{
	printf("mixspy %s\nSampling profiler for Python programs, down through C extensions, Cython and numpy\n\n"
	       "Usage: mixspy <COMMAND>\n\nCommands:\n", MIXSPY_VERSION);
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		printf("  %-12s %s\n", commands[i].name, commands[i].about);
	printf("  %-12s %s\n\nOptions:\n  -h, --help     Print help\n  -V, --version  Print version\n",
	       "help", "Print this message or the help of the given subcommand(s)");
}

static void print_command_help(const struct command_info *ci)
{
	printf("%s\n\nUsage: %s\n", ci->about, ci->usage);
	if (ci->cmd == CMD_RECORD || ci->cmd == CMD_TOP)
		printf("\nArguments:\n  [python_program]...  commandline of a python program to run\n");
	if (ci->cmd == CMD_MERGE)
		printf("\nArguments:\n  <input>...  profiles to merge (raw, speedscope or pprof)\n");
	if (ci->cmd == CMD_COMPLETIONS) {
		printf("\nArguments:\n  <shell>  bash, zsh or fish\n");
		return;
	}
	printf("\nOptions:\n");
	for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
		const struct flag *f = &flags[i];
		if (!(f->cmds & ci->bit))
			continue;
		char left[64];
		if (f->shrt)
			snprintf(left, sizeof left, "-%c, --%s%s%s%s", f->shrt, f->lng, f->value ? " <" : "",
				 f->value ? f->value : "", f->value ? ">" : "");
		else
			snprintf(left, sizeof left, "    --%s%s%s%s", f->lng, f->value ? " <" : "", f->value ? f->value : "",
				 f->value ? ">" : "");
		printf("  %-28s %s\n", left, f->help);
	}
}

static const struct command_info *find_command(const char *name)
{
	const struct command_info *match = NULL;
	size_t n = strlen(name);
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
		if (n && strncmp(commands[i].name, name, n) == 0) {
			if (match)
				return NULL;   /* ambiguous prefix */
			match = &commands[i];
		}
	}
	return match;
}

static int parse_pid(const char *s, pid_t *out)
{
	char *end;
	errno = 0;
	long v = (strncmp(s, "0x", 2) == 0 || strncmp(s, "0X", 2) == 0) ? strtol(s + 2, &end, 16) : strtol(s, &end, 10);
	if (errno || *end || end == s || v <= 0 || v > INT_MAX)
		return -1;
	*out = (pid_t)v;
	return 0;
}

static int set_value(struct config *c, const struct flag *f, const char *v, struct err *e)
{
	char *end;
	if (!strcmp(f->lng, "pid")) {
		if (parse_pid(v, &c->pid))
			return err_set(e, E_ARG, "error: invalid value '%s' for '--pid <pid>': invalid digit found in string", v);
	} else if (!strcmp(f->lng, "output")) {
		c->output = v;
		c->output_is_default = false;
	} else if (!strcmp(f->lng, "format")) {
		int fmt = format_parse(v);
		if (fmt < 0)
			return err_set(e, E_ARG,
				       "error: invalid value '%s' for '--format <format>' [possible values: flamegraph, raw, speedscope, chrometrace, pprof, pstats, callgrind]",
				       v);
		c->format = (enum format)fmt;
	} else if (!strcmp(f->lng, "duration")) {
		if (!strcmp(v, "unlimited")) {
			c->duration = 0;
		} else {
			errno = 0;
			double d = strtod(v, &end);
			if (errno || *end || end == v || !(d > 0) || d > 1e9)
				return err_set(e, E_ARG, "error: invalid value '%s' for '--duration <duration>': expected a positive number of seconds", v);
			c->duration = d;
		}
	} else if (!strcmp(f->lng, "rate")) {
		errno = 0;
		long r = strtol(v, &end, 10);
		if (errno || *end || end == v || r <= 0 || r > 1000000)
			return err_set(e, E_ARG, "error: invalid value '%s' for '--rate <rate>': expected a positive integer", v);
		c->rate = (int)r;
	} else if (!strcmp(f->lng, "upload")) {
		int rc = upload_check_url(v, e);
		if (rc)
			return rc;
		c->upload = v;
	} else if (!strcmp(f->lng, "interval") || !strcmp(f->lng, "rotate")) {
		errno = 0;
		long s = strtol(v, &end, 10);
		if (errno || *end || end == v || s <= 0 || s > 86400)
			return err_set(e, E_ARG, "error: invalid value '%s' for '--%s <seconds>': expected a whole number of seconds from 1 to 86400",
				       v, f->lng);
		if (f->lng[0] == 'i')
			c->interval = (int)s;
		else
			c->rotate = (int)s;
	} else if (!strcmp(f->lng, "app-name")) {
		if (!*v || strpbrk(v, "{},="))
			return err_set(e, E_ARG, "error: invalid value '%s' for '--app-name <name>': it must be non-empty, without '{', '}', ',' or '='", v);
		c->app_name = v;
	} else if (!strcmp(f->lng, "tag")) {
		int rc = upload_check_tag(v, e);
		if (rc)
			return rc;
		size_t n = 0;
		while (c->tags && c->tags[n])
			n++;
		c->tags = xrealloc(c->tags, (n + 2) * sizeof(*c->tags));
		c->tags[n] = (char *)v;
		c->tags[n + 1] = NULL;
	} else if (!strcmp(f->lng, "delay")) {
		errno = 0;
		double d = strtod(v, &end);
		if (errno || *end || end == v || !(d > 0) || d > 1e6)
			return err_set(e, E_ARG, "error: invalid value '%s' for '--delay <seconds>': expected a positive number", v);
		c->delay = d;
	}
	return 0;
}

static void set_switch(struct config *c, const struct flag *f)
{
	const char *n = f->lng;
	if (!strcmp(n, "subprocesses")) c->subprocesses = true;
	else if (!strcmp(n, "function")) c->function = true;
	else if (!strcmp(n, "nolineno")) c->nolineno = true;
	else if (!strcmp(n, "threads")) c->threads = true;
	else if (!strcmp(n, "gil")) c->gil = true;
	else if (!strcmp(n, "gil-split")) c->gil_split = true;
	else if (!strcmp(n, "idle")) c->idle = true;
	else if (!strcmp(n, "native")) c->native = true;
	else if (!strcmp(n, "nonblocking")) c->nonblocking = true;
	else if (!strcmp(n, "bpf")) c->bpf = true;
	else if (!strcmp(n, "full-filenames")) c->full_filenames = true;
	else if (!strcmp(n, "hideprogress")) c->hideprogress = true;
	else if (!strcmp(n, "capture")) c->capture = true;
	else if (!strcmp(n, "locals")) c->locals++;
	else if (!strcmp(n, "json")) c->json = true;
}

static const struct flag *find_long(const char *name, size_t len, int bit)
{
	for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
		if ((flags[i].cmds & bit) && strlen(flags[i].lng) == len && !strncmp(flags[i].lng, name, len))
			return &flags[i];
	return NULL;
}

static const struct flag *find_short(char ch, int bit)
{
	for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
		if ((flags[i].cmds & bit) && flags[i].shrt == ch)
			return &flags[i];
	return NULL;
}

static char *join_args(int argc, char **argv)
{
	struct strbuf sb;
	sb_init(&sb);
	for (int i = 0; i < argc; i++) {
		if (i)
			sb_addc(&sb, ' ');
		sb_adds(&sb, argv[i]);
	}
	return sb_detach(&sb);
}

int cli_parse(struct config *c, int argc, char **argv, struct err *e)
{
	memset(c, 0, sizeof(*c));
	c->rate = 100;
	c->delay = 1.0;
	c->format = FORMAT_FLAMEGRAPH;
	c->output_is_default = true;
	c->title = join_args(argc, argv);
	if (argc < 2) {
		print_main_help();
		c->cmd = CMD_HELP;
		return 0;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
		const struct command_info *ci = argc > 2 ? find_command(argv[2]) : NULL;
		if (ci)
			print_command_help(ci);
		else
			print_main_help();
		c->cmd = CMD_HELP;
		return 0;
	}
	if (!strcmp(sub, "-V") || !strcmp(sub, "--version")) {
		printf("mixspy %s\n", MIXSPY_VERSION);
		c->cmd = CMD_VERSION;
		return 0;
	}
	const struct command_info *ci = find_command(sub);
	if (!ci || sub[0] == '-')
		return err_set(e, E_ARG, "error: unrecognized subcommand '%s' (expected record, top, dump, merge or completions)", sub);
	c->cmd = ci->cmd;
	if (ci->cmd == CMD_COMPLETIONS) {
		if (argc != 3)
			return err_set(e, E_ARG, "error: usage: mixspy completions <bash|zsh|fish>");
		if (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help")) {
			print_command_help(ci);
			c->cmd = CMD_HELP;
			return 0;
		}
		c->shell = argv[2];
		return 0;
	}

	VEC(char *) inputs = { 0 };
	int i = 2;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == 0) {
			if (ci->cmd == CMD_MERGE) {
				vec_push(&inputs, argv[i]);
				continue;
			}
			break;   /* the program to launch starts here */
		}
		if (a[1] == '-') {
			const char *name = a + 2, *eq = strchr(name, '=');
			size_t len = eq ? (size_t)(eq - name) : strlen(name);
			const struct flag *f = find_long(name, len, ci->bit);
			if (!f) {
				vec_free(&inputs);
				return err_set(e, E_ARG, "error: unexpected argument '%s' found (see 'mixspy %s --help')", a, ci->name);
			}
			if (!strcmp(f->lng, "help")) {
				print_command_help(ci);
				vec_free(&inputs);
				c->cmd = CMD_HELP;
				return 0;
			}
			if (f->value) {
				const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
				if (!v) {
					vec_free(&inputs);
					return err_set(e, E_ARG, "error: a value is required for '--%s <%s>' but none was supplied", f->lng, f->value);
				}
				int rc = set_value(c, f, v, e);
				if (rc) {
					vec_free(&inputs);
					return rc;
				}
			} else if (eq) {
				vec_free(&inputs);
				return err_set(e, E_ARG, "error: unexpected value for '--%s'", f->lng);
			} else {
				set_switch(c, f);
			}
			continue;
		}
		/* Bundled short flags: -ll, -ni, -p1234, -p 1234 */
		for (const char *s = a + 1; *s; s++) {
			const struct flag *f = find_short(*s, ci->bit);
			if (!f) {
				vec_free(&inputs);
				return err_set(e, E_ARG, "error: unexpected argument '-%c' found (see 'mixspy %s --help')", *s, ci->name);
			}
			if (!strcmp(f->lng, "help")) {
				print_command_help(ci);
				vec_free(&inputs);
				c->cmd = CMD_HELP;
				return 0;
			}
			if (f->value) {
				const char *v = s[1] ? s + 1 : (i + 1 < argc ? argv[++i] : NULL);
				if (!v) {
					vec_free(&inputs);
					return err_set(e, E_ARG, "error: a value is required for '-%c <%s>' but none was supplied", f->shrt, f->value);
				}
				int rc = set_value(c, f, v, e);
				if (rc) {
					vec_free(&inputs);
					return rc;
				}
				break;
			}
			set_switch(c, f);
		}
	}
	if (ci->cmd == CMD_MERGE) {
		for (; i < argc; i++)
			vec_push(&inputs, argv[i]);
		vec_push(&inputs, NULL);
		c->inputs = inputs.v;
		if (inputs.n < 2)
			return err_set(e, E_ARG, "error: merge needs at least one input file");
		if (!c->output)
			return err_set(e, E_ARG, "error: merge needs --output <filename>");
		return 0;
	}
	vec_free(&inputs);
	if (i < argc) {
		if (ci->cmd == CMD_DUMP)
			return err_set(e, E_ARG, "error: unexpected argument '%s' found (dump needs --pid; it can't launch a program)", argv[i]);
		c->program = &argv[i];
	}
	if (c->pid && c->program)
		return err_set(e, E_ARG, "error: the argument '--pid <pid>' cannot be used with '[python_program]...'");
	if (!c->pid && !c->program)
		return err_set(e, E_ARG, ci->cmd == CMD_DUMP ? "error: the following required arguments were not provided: --pid <pid>"
							 : "error: the following required arguments were not provided: <--pid <pid>|python_program>");
	if (c->native && c->nonblocking)
		return err_set(e, E_ARG, "Can't get native stack traces with the --nonblocking option.");
	if (c->bpf && c->nonblocking)
		return err_set(e, E_ARG, "--bpf and --nonblocking can't be used together (--bpf never stops the process either)");
	if (c->function && c->nolineno)
		return err_set(e, E_ARG, "--function & --nolinenos can't be used together");
	if (!c->upload && (c->interval || c->app_name || c->tags))
		return err_set(e, E_ARG, "error: '--%s' needs '--upload <url>'",
			       c->interval ? "interval" : c->app_name ? "app-name" : "tag");
	if (c->upload && !c->interval)
		c->interval = 10;
	return 0;
}

void cli_free(struct config *c)
{
	free((char *)c->title);
	free(c->inputs);
	free(c->tags);
	c->tags = NULL;
	c->title = NULL;
	c->inputs = NULL;
}

/* A flag's help up to its first " [" (the defaults), with the characters a shell's completion
 * syntax treats specially escaped: zsh _arguments descriptions ([, ], :, ') or fish -d ('). */
static void print_desc(const char *help, bool zsh)
{
	const char *end = strstr(help, " [");
	size_t n = end ? (size_t)(end - help) : strlen(help);
	for (size_t i = 0; i < n; i++) {
		char ch = help[i];
		if (ch == '\'')
			fputs(zsh ? "'\\''" : "\\'", stdout);
		else if (zsh && (ch == '[' || ch == ']' || ch == ':' || ch == '\\'))
			printf("\\%c", ch);
		else
			putchar(ch);
	}
}

int cli_completions(const char *shell, struct err *e)
{
	const char *cmds = "record top dump merge completions help";
	if (!strcmp(shell, "bash")) {
		printf("_mixspy() {\n"
		       "    local cur=\"${COMP_WORDS[COMP_CWORD]}\" cmd=\"${COMP_WORDS[1]}\"\n"
		       "    if [ \"$COMP_CWORD\" -eq 1 ]; then COMPREPLY=($(compgen -W \"%s\" -- \"$cur\")); return; fi\n"
		       "    case \"$cmd\" in\n", cmds);
		for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++) {
			if (!commands[k].bit)
				continue;
			printf("    %s) COMPREPLY=($(compgen -W \"", commands[k].name);
			for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
				if (flags[i].cmds & commands[k].bit)
					printf("--%s ", flags[i].lng);
			printf("\" -- \"$cur\")) ;;\n");
		}
		printf("    completions) COMPREPLY=($(compgen -W \"bash zsh fish\" -- \"$cur\")) ;;\n"
		       "    esac\n}\ncomplete -o default -F _mixspy mixspy\n");
		return 0;
	}
	if (!strcmp(shell, "zsh")) {
		printf("#compdef mixspy\n_mixspy() {\n  local -a cmds\n  cmds=(");
		for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
			printf("'%s:%s' ", commands[k].name, commands[k].about);
		printf(")\n  if (( CURRENT == 2 )); then _describe 'command' cmds; return; fi\n  case $words[2] in\n");
		for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++) {
			if (!commands[k].bit)
				continue;
			printf("    %s) _arguments", commands[k].name);
			for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
				if (flags[i].cmds & commands[k].bit)
				{
					printf(" '--%s[", flags[i].lng);
					print_desc(flags[i].help, true);
					printf("]%s'", flags[i].value ? ":value:" : "");
				}
			printf(" '*:file:_files' ;;\n");
		}
		printf("    completions) _values 'shell' bash zsh fish ;;\n  esac\n}\n_mixspy \"$@\"\n");
		return 0;
	}
	if (!strcmp(shell, "fish")) {
		for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
			printf("complete -c mixspy -n '__fish_use_subcommand' -a %s -d '%s'\n", commands[k].name, commands[k].about);
		for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
			for (size_t i = 0; commands[k].bit && i < sizeof flags / sizeof flags[0]; i++)
				if (flags[i].cmds & commands[k].bit) {
					printf("complete -c mixspy -n '__fish_seen_subcommand_from %s' -l %s", commands[k].name, flags[i].lng);
					if (flags[i].shrt)
						printf(" -s %c", flags[i].shrt);
					printf("%s -d '", flags[i].value ? " -r" : "");
					print_desc(flags[i].help, false);
					printf("'\n");
				}
		printf("complete -c mixspy -n '__fish_seen_subcommand_from completions' -f -a 'bash zsh fish'\n");
		return 0;
	}
	return err_set(e, E_ARG, "error: invalid value '%s' for '<shell>' [possible values: bash, zsh, fish]", shell);
}
