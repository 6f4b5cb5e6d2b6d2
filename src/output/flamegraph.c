/*
 * flamegraph.c - a self-contained interactive SVG flame graph, drawn as an icicle (root at the
 * top) like py-spy's. Frames are merged by label as in the collapsed format and coloured by kind
 * (Python, native, Cython, pseudo). The embedded script gives tooltips in the status line, click
 * to zoom, "Reset Zoom", and a regex search (Ctrl-F, F3 or the Search button, or ?s=REGEX in the
 * URL) that reports "Matched: NN.N%". Frames narrower than 0.1% of all samples are dropped.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define FG_WIDTH 1200
#define FG_PAD 10
#define FG_FRAME_H 16
#define FG_TOP 40
#define FG_CHAR_W 7.2          /* average advance of a 12px monospace glyph */
#define FG_MIN_PERMILLE 1      /* drop frames under 0.1% of the total */

static const char *const fg_kind_name[4] = { "Python", "native", "Cython", "thread/process" };

/* The script is ours; it reads each frame's sample offset, width and depth from data-*
 * attributes and lays frames out again in percent of the frames area when zooming. */
static const char fg_script[] =
	"var fg = {};\n"
	"function init(evt) {\n"
	"  fg.svg = document.documentElement;\n"
	"  fg.frames = [];\n"
	"  fg.total = parseFloat(document.getElementById('frames').getAttribute('data-total')) || 1;\n"
	"  fg.details = document.getElementById('details').firstChild;\n"
	"  fg.matched = document.getElementById('matched');\n"
	"  fg.unzoom = document.getElementById('unzoom');\n"
	"  fg.search = document.getElementById('search');\n"
	"  var gs = document.querySelectorAll('g.fr');\n"
	"  for (var i = 0; i < gs.length; i++) {\n"
	"    var g = gs[i], t = g.querySelector('title').textContent;\n"
	"    var m = /^([\\s\\S]*) \\([0-9,]+ samples?, [0-9.]+%\\)$/.exec(t);\n"
	"    fg.frames.push({g: g, rect: g.querySelector('rect'), text: g.querySelector('text'),\n"
	"      x: parseFloat(g.getAttribute('data-x')), w: parseFloat(g.getAttribute('data-w')),\n"
	"      d: parseInt(g.getAttribute('data-d'), 10), label: m ? m[1] : t, tip: t,\n"
	"      fill: g.querySelector('rect').getAttribute('fill')});\n"
	"  }\n"
	"  fg.root = fg.frames.length ? fg.frames[0] : null;\n"
	"  fg.byG = new Map();\n"
	"  for (var k = 0; k < fg.frames.length; k++) fg.byG.set(fg.frames[k].g, fg.frames[k]);\n"
	"  var area = document.getElementById('frames');\n"
	"  area.addEventListener('mouseover', function (e) { var f = fg_of(e.target); if (f) fg.details.nodeValue = f.tip; });\n"
	"  area.addEventListener('mouseout', function () { fg.details.nodeValue = ' '; });\n"
	"  area.addEventListener('click', function (e) { var f = fg_of(e.target); if (f) fg_zoom(f); });\n"
	"  fg.unzoom.addEventListener('click', function () { if (fg.root) fg_zoom(fg.root); });\n"
	"  fg.search.addEventListener('click', function () { fg.re ? fg_reset_search() : fg_ask(); });\n"
	"  window.addEventListener('keydown', function (e) {\n"
	"    if (e.keyCode === 114 || ((e.ctrlKey || e.metaKey) && (e.key === 'f' || e.key === 'F'))) {\n"
	"      e.preventDefault(); fg_ask();\n"
	"    }\n"
	"  });\n"
	"  var s = null;\n"
	"  try { s = new URLSearchParams(window.location.search).get('s'); } catch (err) {}\n"
	"  if (s) fg_search(s);\n"
	"}\n"
	"function fg_of(node) {\n"
	"  while (node && node !== document) {\n"
	"    if (node.classList && node.classList.contains('fr')) {\n"
	"      return fg.byG.get(node) || null;\n"
	"    }\n"
	"    node = node.parentNode;\n"
	"  }\n"
	"  return null;\n"
	"}\n"
	"function fg_fit(f, pct) {\n"
	"  var px = pct / 100 * parseFloat(document.getElementById('frames').getAttribute('width'));\n"
	"  var n = Math.floor((px - 6) / 7.2);\n"
	"  var chars = Array.from(f.label);\n"
	"  if (n < 3) f.text.textContent = '';\n"
	"  else if (chars.length <= n) f.text.textContent = f.label;\n"
	"  else f.text.textContent = chars.slice(0, n - 2).join('') + '..';\n"
	"}\n"
	"function fg_place(f, x, w) {\n"
	"  f.rect.setAttribute('x', x + '%'); f.rect.setAttribute('width', w + '%');\n"
	"  f.text.setAttribute('x', x + '%'); fg_fit(f, w);\n"
	"}\n"
	"function fg_zoom(z) {\n"
	"  for (var i = 0; i < fg.frames.length; i++) {\n"
	"    var f = fg.frames[i];\n"
	"    f.g.classList.remove('hide'); f.g.classList.remove('parent');\n"
	"    if (f.d < z.d && f.x <= z.x && f.x + f.w >= z.x + z.w) {\n"
	"      f.g.classList.add('parent'); fg_place(f, 0, 100);\n"
	"    } else if (f.d >= z.d && f.x >= z.x && f.x + f.w <= z.x + z.w && z.w > 0) {\n"
	"      fg_place(f, (f.x - z.x) / z.w * 100, f.w / z.w * 100);\n"
	"    } else {\n"
	"      f.g.classList.add('hide');\n"
	"    }\n"
	"  }\n"
	"  if (z === fg.root) fg.unzoom.classList.add('hide'); else fg.unzoom.classList.remove('hide');\n"
	"}\n"
	"function fg_ask() {\n"
	"  var s = window.prompt('Search for (regular expression):', fg.re ? fg.re.source : '');\n"
	"  if (s) fg_search(s);\n"
	"}\n"
	"function fg_reset_search() {\n"
	"  fg.re = null;\n"
	"  for (var i = 0; i < fg.frames.length; i++) fg.frames[i].rect.setAttribute('fill', fg.frames[i].fill);\n"
	"  fg.matched.textContent = ' '; fg.search.textContent = 'Search';\n"
	"  try { history.replaceState(null, '', window.location.pathname); } catch (err) {}\n"
	"}\n"
	"function fg_search(s) {\n"
	"  var re;\n"
	"  try { re = new RegExp(s); } catch (err) { fg.matched.textContent = 'Bad regex'; return; }\n"
	"  fg.re = re;\n"
	"  var spans = [];\n"
	"  for (var i = 0; i < fg.frames.length; i++) {\n"
	"    var f = fg.frames[i];\n"
	"    if (f !== fg.root && re.test(f.label)) { f.rect.setAttribute('fill', 'rgb(230,0,230)'); spans.push([f.x, f.x + f.w]); }\n"
	"    else f.rect.setAttribute('fill', f.fill);\n"
	"  }\n"
	"  spans.sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });\n"
	"  var covered = 0, end = -Infinity;\n"
	"  for (var j = 0; j < spans.length; j++) {\n"
	"    var a = Math.max(spans[j][0], end);\n"
	"    if (spans[j][1] > a) covered += spans[j][1] - a;\n"
	"    end = Math.max(end, spans[j][1]);\n"
	"  }\n"
	"  fg.matched.textContent = 'Matched: ' + (covered / fg.total * 100).toFixed(1) + '%';\n"
	"  fg.search.textContent = 'Reset Search';\n"
	"  try { history.replaceState(null, '', '?s=' + encodeURIComponent(s)); } catch (err) {}\n"
	"}\n";

static const char fg_style[] =
	"text { font-family: monospace; font-size: 12px; fill: rgb(0,0,0); }\n"
	"#title { font-size: 17px; }\n"
	"#search, #unzoom { cursor: pointer; }\n"
	"#search:hover, #unzoom:hover { fill: rgb(0,0,200); }\n"
	"g.fr { cursor: pointer; }\n"
	"g.fr text { pointer-events: none; }\n"
	"g.fr:hover rect { stroke: rgb(40,40,40); stroke-width: 0.5; }\n"
	"g.parent { opacity: 0.5; }\n"
	".hide { display: none; }\n";

struct fg_writer {
	const struct profile *p;
	const struct out_tree *t;
	struct strbuf sb;
	FILE *out;
	uint64_t total;
	double area_w;
	bool failed;
};

static void fg_flush(struct fg_writer *w, bool force)
{
	if (!w->sb.len || (!force && w->sb.len < 64 * 1024))
		return;
	if (fwrite(w->sb.buf, 1, w->sb.len, w->out) != w->sb.len)
		w->failed = true;
	sb_reset(&w->sb);
}

/* "1234567" -> "1,234,567" */
static void fg_add_count(struct strbuf *sb, uint64_t n)
{
	char digits[32];
	int len = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)n);
	for (int i = 0; i < len; i++) {
		if (i && (len - i) % 3 == 0)
			sb_addc(sb, ',');
		sb_addc(sb, digits[i]);
	}
}

/* A colour in the kind's family, varied by the label so neighbours stay distinguishable. */
static void fg_add_colour(struct strbuf *sb, enum frame_kind kind, const char *label)
{
	uint64_t h = hash_bytes(label, strlen(label), 0);
	unsigned a = (unsigned)(h & 0xff), b = (unsigned)((h >> 8) & 0xff);
	unsigned r, g, bl;
	switch (kind) {
	case FRAME_PYTHON: r = 235 + a % 20; g = 150 + b % 70; bl = 40 + a % 40; break;
	case FRAME_NATIVE: r = 215 + a % 40; g = 80 + b % 55; bl = 60 + a % 35; break;
	case FRAME_CYTHON: r = 90 + a % 60; g = 190 + b % 50; bl = 90 + a % 40; break;
	default: r = 140 + a % 30; g = 165 + a % 30; bl = 215 + b % 30; break;
	}
	sb_addf(sb, "rgb(%u,%u,%u)", r, g, bl);
}

/* Fit the label in px pixels: whole, cut with "..", or nothing; never split a UTF-8 sequence. */
static void fg_add_fitted(struct strbuf *sb, const char *label, double px)
{
	long n = (long)((px - 6) / FG_CHAR_W);
	if (n < 3)
		return;
	size_t chars = 0, cut = 0, len = strlen(label);
	for (size_t i = 0; i < len; i++) {
		if (((unsigned char)label[i] & 0xc0) == 0x80)
			continue;
		if ((long)chars == n - 2)
			cut = i;
		chars++;
	}
	if ((long)chars <= n) {
		out_add_xml(sb, label);
		return;
	}
	char *head = xstrndup(label, cut);
	out_add_xml(sb, head);
	free(head);
	sb_adds(sb, "..");
}

static bool fg_kept(const struct fg_writer *w, const struct out_node *n)
{
	return n->total * 1000 >= w->total * FG_MIN_PERMILLE;
}

static void fg_frame(struct fg_writer *w, uint32_t id, uint64_t x)
{
	const struct out_node *n = &w->t->nodes.v[id];
	double xp = (double)x * 100.0 / (double)w->total;
	double wp = (double)n->total * 100.0 / (double)w->total;
	sb_addf(&w->sb, "<g class=\"fr\" data-x=\"%llu\" data-w=\"%llu\" data-d=\"%u\" data-k=\"%d\"><title>",
		(unsigned long long)x, (unsigned long long)n->total, n->depth, (int)n->kind);
	out_add_xml(&w->sb, n->label);
	sb_adds(&w->sb, " (");
	fg_add_count(&w->sb, n->total);
	sb_addf(&w->sb, " sample%s, %.2f%%)</title><rect x=\"%.4f%%\" y=\"%u\" width=\"%.4f%%\" height=\"%d\" rx=\"2\" ry=\"2\" fill=\"",
		n->total == 1 ? "" : "s", wp, xp, n->depth * FG_FRAME_H, wp, FG_FRAME_H - 1);
	fg_add_colour(&w->sb, n->kind, n->label);
	sb_addf(&w->sb, "\"/><text x=\"%.4f%%\" dx=\"3\" y=\"%u\">", xp, n->depth * FG_FRAME_H + 11);
	fg_add_fitted(&w->sb, n->label, wp / 100.0 * w->area_w);
	sb_adds(&w->sb, "</text></g>\n");
	fg_flush(w, false);
}

/* Pre-order walk: each child starts where its previous sibling ended. */
static void fg_frames(struct fg_writer *w)
{
	struct fg_item { uint32_t id; uint64_t x; };
	VEC(struct fg_item) todo = { 0 };
	struct fg_item root = { 0, 0 };
	vec_push(&todo, root);
	while (todo.n) {
		struct fg_item it = todo.v[--todo.n];
		fg_frame(w, it.id, it.x);
		/* Push children in reverse so they come out left to right. */
		size_t base = todo.n;
		uint64_t x = it.x;
		for (uint32_t c = w->t->nodes.v[it.id].first_child; c != OUT_NONE; c = w->t->nodes.v[c].next_sibling) {
			const struct out_node *cn = &w->t->nodes.v[c];
			if (fg_kept(w, cn)) {
				struct fg_item ci = { c, x };
				vec_push(&todo, ci);
			}
			x += cn->total;
		}
		for (size_t i = base, j = todo.n; i + 1 < j; i++, j--) {
			struct fg_item tmp = todo.v[i];
			todo.v[i] = todo.v[j - 1];
			todo.v[j - 1] = tmp;
		}
	}
	vec_free(&todo);
}

static uint32_t fg_depth(const struct fg_writer *w)
{
	uint32_t d = 0;
	for (size_t i = 0; i < w->t->nodes.n; i++) {
		const struct out_node *n = &w->t->nodes.v[i];
		if (n->depth > d && fg_kept(w, n))
			d = n->depth;
	}
	return d;
}

static void fg_legend(struct fg_writer *w, unsigned y)
{
	unsigned x = FG_PAD;
	for (int k = 0; k < 4; k++) {
		sb_addf(&w->sb, "<rect x=\"%u\" y=\"%u\" width=\"12\" height=\"12\" rx=\"2\" ry=\"2\" fill=\"", x, y - 10);
		fg_add_colour(&w->sb, (enum frame_kind)k, "");
		sb_addf(&w->sb, "\"/><text x=\"%u\" y=\"%u\">%s</text>\n", x + 16, y, fg_kind_name[k]);
		x += 16 + (unsigned)(strlen(fg_kind_name[k]) * FG_CHAR_W) + 20;
	}
}

/* The title is the whole command line, which can be far wider than the graph: past
 * FG_TITLE_MAX characters keep its start and end around an ellipsis (cut on UTF-8 character
 * boundaries), with the full text as the title's tooltip. */
#define FG_TITLE_MAX 90

static size_t utf8_back(const char *s, size_t i)
{
	while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
		i--;
	return i;
}

static void fg_title(struct strbuf *sb, const char *title)
{
	size_t n = strlen(title);
	if (n <= FG_TITLE_MAX) {
		out_add_xml(sb, title);
		return;
	}
	size_t head = utf8_back(title, FG_TITLE_MAX / 2), tail = utf8_back(title, n - FG_TITLE_MAX / 2 + 3);
	char *h = xstrndup(title, head);
	out_add_xml(sb, h);
	free(h);
	sb_adds(sb, "...");
	out_add_xml(sb, title + tail);
	sb_adds(sb, "<title>");
	out_add_xml(sb, title);
	sb_adds(sb, "</title>");
}

int write_flamegraph(const struct profile *p, const struct output_opts *o, FILE *out, struct err *e)
{
	struct out_tree t;
	out_tree_build(&t, p, o);
	struct fg_writer w = { .p = p, .t = &t, .out = out, .total = t.nodes.v[0].total,
			       .area_w = FG_WIDTH - 2 * FG_PAD };
	sb_init(&w.sb);

	uint32_t depth = w.total ? fg_depth(&w) : 0;
	unsigned frames_h = (depth + 1) * FG_FRAME_H;
	unsigned bottom = FG_TOP + frames_h;
	unsigned height = bottom + 56;

	sb_adds(&w.sb, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n");
	sb_addf(&w.sb, "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%u\" "
		"viewBox=\"0 0 %d %u\" onload=\"init(evt)\">\n", FG_WIDTH, height, FG_WIDTH, height);
	sb_addf(&w.sb, "<!-- mixspy flame graph (icicle: root at the top). Frames are g elements of class fr with "
		"data-x / data-w in samples and data-d = depth. -->\n");
	sb_addf(&w.sb, "<style type=\"text/css\">\n%s</style>\n", fg_style);
	sb_addf(&w.sb, "<script type=\"text/ecmascript\"><![CDATA[\n%s]]></script>\n", fg_script);
	sb_adds(&w.sb, "<defs><linearGradient id=\"background\" y1=\"0\" y2=\"1\" x1=\"0\" x2=\"0\">"
		"<stop stop-color=\"#eeeeee\" offset=\"5%\"/><stop stop-color=\"#eeeeb0\" offset=\"95%\"/>"
		"</linearGradient></defs>\n");
	sb_adds(&w.sb, "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"url(#background)\"/>\n");
	sb_addf(&w.sb, "<text id=\"title\" x=\"%d\" y=\"24\" text-anchor=\"middle\">", FG_WIDTH / 2);
	fg_title(&w.sb, p->title && *p->title ? p->title : "mixspy");
	sb_adds(&w.sb, "</text>\n");
	sb_addf(&w.sb, "<text id=\"unzoom\" class=\"hide\" x=\"%d\" y=\"24\">Reset Zoom</text>\n", FG_PAD);
	sb_addf(&w.sb, "<text id=\"search\" x=\"%d\" y=\"24\" text-anchor=\"end\">Search</text>\n", FG_WIDTH - FG_PAD);
	sb_addf(&w.sb, "<text id=\"details\" x=\"%d\" y=\"%u\"> </text>\n", FG_PAD, bottom + 20);
	sb_addf(&w.sb, "<text id=\"matched\" x=\"%d\" y=\"%u\" text-anchor=\"end\"> </text>\n",
		FG_WIDTH - FG_PAD, bottom + 20);
	fg_legend(&w, bottom + 44);

	sb_addf(&w.sb, "<svg id=\"frames\" x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%u\" data-total=\"%llu\">\n",
		FG_PAD, FG_TOP, w.area_w, frames_h, (unsigned long long)w.total);
	if (w.total)
		fg_frames(&w);
	else
		sb_addf(&w.sb, "<text x=\"50%%\" y=\"12\" text-anchor=\"middle\">No samples</text>\n");
	sb_adds(&w.sb, "</svg>\n</svg>\n");
	fg_flush(&w, true);

	sb_free(&w.sb);
	out_tree_free(&t);
	if (w.failed)
		return err_set(e, E_IO, "writing flame graph failed");
	return 0;
}
