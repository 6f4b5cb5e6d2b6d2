/*
 * upload.c - the `record --upload` sender: a background thread that posts finished windows to
 * a Pyroscope-compatible `POST /ingest?name=..&from=..&until=..&format=..` endpoint over plain
 * HTTP/1.1 (one connection per window, `Connection: close`; no TLS).
 *
 * The sampling thread never touches the network: it serializes a window itself and only appends
 * the bytes to a bounded queue under a lock that the sender holds for a few instructions at a
 * time. Windows go out in order; a window is retried with exponential backoff on transient
 * failures and given up after max_attempts, so one dead server costs bounded memory and time.
 */
#include "upload.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define UPLOAD_IO_TIMEOUT_MS 10000

struct upload_item {
	int64_t from, until;
	char *body;
	size_t len;
	int attempts;          /* failed so far */
};

struct uploader {
	char host[256];
	char port[8];
	char *target;            /* "/prefix/ingest?name=...&" (from/until follow) */
	char hostport[300];      /* the Host header */
	bool pprof;
	int max_attempts;
	double backoff;
	size_t queue_max;

	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;     /* work arrived, or closing */
	VEC(struct upload_item) queue;   /* FIFO: head at index `head` */
	size_t head;
	bool closing;
	bool sending;          /* the head is on the wire: it can't be dropped or moved */
	double deadline;         /* monotonic; valid once closing */
	struct upload_stats st;
};

/* ---- URL, name and tags ------------------------------------------------------------------ */

struct url {
	char host[256];
	char port[8];
	char path[512];
};

static int url_parse(const char *url, struct url *u, struct err *e)
{
	memset(u, 0, sizeof(*u));
	if (!strncmp(url, "https://", 8))
		return err_set(e, E_ARG, "error: invalid value '%s' for '--upload <url>': https is not supported, use an "
				      "http:// URL (put a TLS proxy in front of the server if it needs one)", url);
	if (strncmp(url, "http://", 7))
		return err_set(e, E_ARG, "error: invalid value '%s' for '--upload <url>': expected http://HOST[:PORT][/PATH]", url);
	const char *p = url + 7, *h = p, *hend;
	if (strchr(p, '@'))
		return err_set(e, E_ARG, "error: invalid value '%s' for '--upload <url>': user names and passwords in the URL are not supported", url);
	if (*p == '[') {   /* [IPv6] */
		const char *close = strchr(p, ']');
		if (!close)
			return err_set(e, E_ARG, "error: invalid value '%s' for '--upload <url>': unterminated '['", url);
		h = p + 1;
		hend = close;
		p = close + 1;
	} else {
		hend = p + strcspn(p, ":/?#");
		p = hend;
	}
	if (hend == h || (size_t)(hend - h) >= sizeof u->host)
		return err_set(e, E_ARG, "error: invalid value '%s' for '--upload <url>': missing or overlong host", url);
	memcpy(u->host, h, (size_t)(hend - h));
	strcpy(u->port, "80");
	if (*p == ':') {
		p++;
		size_t n = strspn(p, "0123456789");
		long port = n && n < 6 ? strtol(p, NULL, 10) : 0;
		if (port <= 0 || port > 65535)
			return err_set(e, E_ARG, "error: invalid value '%s' for '--upload <url>': bad port", url);
		snprintf(u->port, sizeof u->port, "%ld", port);
		p += n;
	}
	if (*p && *p != '/')
		return err_set(e, E_ARG, "error: invalid value '%s' for '--upload <url>': expected a path after the host, "
				      "without a query or fragment", url);
	size_t n = strcspn(p, "?#");
	if (p[n])
		return err_set(e, E_ARG, "error: invalid value '%s' for '--upload <url>': the URL can't have a query or fragment", url);
	while (n && p[n - 1] == '/')
		n--;
	if (n + sizeof "/ingest" >= sizeof u->path)
		return err_set(e, E_ARG, "error: invalid value '%s' for '--upload <url>': path too long", url);
	memcpy(u->path, p, n);
	if (!(n >= 7 && !strcmp(u->path + n - 7, "/ingest")))
		strcat(u->path, "/ingest");
	return 0;
}

int upload_check_url(const char *url, struct err *e)
{
	struct url u;
	return url_parse(url, &u, e);
}

/* Pyroscope label names: letters, digits, '_' and '.'; values: anything but the characters
 * that delimit the `name{k=v,...}` syntax. */
int upload_check_tag(const char *tag, struct err *e)
{
	const char *eq = strchr(tag, '=');
	if (!eq || eq == tag || !eq[1])
		return err_set(e, E_ARG, "error: invalid value '%s' for '--tag <key=value>': expected KEY=VALUE", tag);
	for (const char *k = tag; k < eq; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') || *k == '_' || *k == '.'))
			return err_set(e, E_ARG, "error: invalid value '%s' for '--tag <key=value>': a key has only letters, digits, '_' and '.'", tag);
	if (strpbrk(eq + 1, "{},="))
		return err_set(e, E_ARG, "error: invalid value '%s' for '--tag <key=value>': a value can't contain '{', '}', ',' or '='", tag);
	return 0;
}

static void sb_add_urlenc(struct strbuf *sb, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-_.~", *p)) {
			sb_addc(sb, (char)*p);
		} else {
			sb_addc(sb, '%');
			sb_addc(sb, hex[*p >> 4]);
			sb_addc(sb, hex[*p & 15]);
		}
	}
}

/* ---- one HTTP POST ----------------------------------------------------------------------- */

static double mono(void)
{
	return now_monotonic();
}

static int connect_to(struct uploader *u, char *msg, size_t msz)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	int rc = getaddrinfo(u->host, u->port, &hints, &res);
	if (rc) {
		snprintf(msg, msz, "can't resolve %.200s: %.100s", u->host, gai_strerror(rc));
		return -1;
	}
	int fd = -1;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			if (poll(&pfd, 1, UPLOAD_IO_TIMEOUT_MS) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
			    soerr == 0)
				break;
			errno = soerr ? soerr : ETIMEDOUT;
		}
		snprintf(msg, msz, "can't connect to %.200s:%s: %.100s", u->host, u->port, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* Write or read with a timeout on a non-blocking socket: >0 bytes, 0 EOF, -1 error/timeout. */
static ssize_t io_wait(int fd, bool out, void *buf, size_t len)
{
	for (;;) {
		ssize_t r = out ? send(fd, buf, len, MSG_NOSIGNAL) : recv(fd, buf, len, 0);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		struct pollfd pfd = { .fd = fd, .events = out ? POLLOUT : POLLIN };
		if (poll(&pfd, 1, UPLOAD_IO_TIMEOUT_MS) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
}

static int send_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t w = io_wait(fd, true, (void *)p, len);
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* POST one window. Returns the HTTP status, or -1 for a transport failure (msg says why). */
static int http_post(struct uploader *u, const struct upload_item *it, char *msg, size_t msz)
{
	int fd = connect_to(u, msg, msz);
	if (fd < 0)
		return -1;
	struct strbuf req;
	sb_init(&req);
	sb_addf(&req, "POST %sfrom=%lld&until=%lld HTTP/1.1\r\n", u->target, (long long)it->from, (long long)it->until);
	sb_addf(&req, "Host: %s\r\nUser-Agent: mixspy/%s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		      "Connection: close\r\n\r\n",
		u->hostport, MIXSPY_VERSION, u->pprof ? "application/octet-stream" : "binary/octet-stream", it->len);
	int status = -1;
	if (send_all(fd, req.buf, req.len) || (it->len && send_all(fd, it->body, it->len))) {
		snprintf(msg, msz, "sending to %.200s:%s failed: %.100s", u->host, u->port, strerror(errno));
		goto out;
	}
	/* Only the status line matters; read until it is complete. */
	char resp[512];
	size_t got = 0;
	while (got < sizeof resp - 1 && !memchr(resp, '\n', got)) {
		ssize_t r = io_wait(fd, false, resp + got, sizeof resp - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	resp[got] = 0;
	int code;
	if (sscanf(resp, "HTTP/%*d.%*d %d", &code) == 1 && code >= 100 && code < 600) {
		status = code;
		if (code < 200 || code >= 300) {
			char *eol = strpbrk(resp, "\r\n");
			if (eol)
				*eol = 0;
			snprintf(msg, msz, "server answered '%.120s' for window %lld-%lld", resp, (long long)it->from,
				 (long long)it->until);
		}
	} else {
		snprintf(msg, msz, "no HTTP response from %.200s:%s%s%.100s", u->host, u->port, got ? "" : ": ",
			 got ? "" : strerror(errno ? errno : ECONNRESET));
	}
out:
	sb_free(&req);
	close(fd);
	return status;
}

static bool transient(int status)
{
	return status < 0 || status == 408 || status == 429 || status >= 500;
}

/* ---- the thread -------------------------------------------------------------------------- */

/* Sleep until `until` (monotonic) unless closing makes the deadline come first. Lock held. */
static void nap(struct uploader *u, double until)
{
	for (;;) {
		double now = mono(), end = until;
		if (u->closing && u->deadline < end)
			end = u->deadline;
		if (now >= end)
			return;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		double wait = end - now, t = (double)ts.tv_sec + ts.tv_nsec / 1e9 + wait;
		ts.tv_sec = (time_t)t;
		ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
		pthread_cond_timedwait(&u->cond, &u->lock, &ts);
	}
}

/* Drop consumed entries at the front once they are half the array. Lock held. */
static void compact(struct uploader *u)
{
	if (u->head == u->queue.n) {
		u->head = u->queue.n = 0;
	} else if (u->head > 16 && u->head * 2 >= u->queue.n) {
		memmove(u->queue.v, u->queue.v + u->head, (u->queue.n - u->head) * sizeof(*u->queue.v));
		u->queue.n -= u->head;
		u->head = 0;
	}
}

static void *upload_thread(void *arg)
{
	struct uploader *u = arg;
	pthread_mutex_lock(&u->lock);
	for (;;) {
		while (u->head == u->queue.n && !u->closing)
			pthread_cond_wait(&u->cond, &u->lock);
		if (u->head == u->queue.n)
			break;   /* closing and drained */
		if (u->closing && mono() >= u->deadline) {
			u->st.dropped += u->queue.n - u->head;
			for (; u->head < u->queue.n; u->head++)
				free(u->queue.v[u->head].body);
			break;
		}
		/* The head stays queued while it is sent; the pusher never drops it (u->sending). */
		struct upload_item it = u->queue.v[u->head];
		u->sending = true;
		pthread_mutex_unlock(&u->lock);

		char msg[512] = "";
		int status = http_post(u, &it, msg, sizeof msg);

		pthread_mutex_lock(&u->lock);
		u->sending = false;
		bool done = true;
		if (status >= 200 && status < 300) {
			u->st.sent++;
		} else {
			snprintf(u->st.last_error, sizeof u->st.last_error, "%s", msg);
			int tries = ++u->queue.v[u->head].attempts;
			if (transient(status) && tries < u->max_attempts) {
				u->st.retries++;
				int shift = tries - 1 < 8 ? tries - 1 : 8;
				nap(u, mono() + u->backoff * (double)(1u << shift));
				done = false;
			} else {
				u->st.failed++;
			}
		}
		if (done) {
			free(u->queue.v[u->head].body);
			u->head++;
			compact(u);
		}
	}
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

/* ---- public API ------------------------------------------------------------------------- */

int uploader_start(struct uploader **out, const struct upload_opts *o, struct err *e)
{
	struct url url;
	int rc = url_parse(o->url, &url, e);
	if (rc)
		return rc;
	for (char *const *t = o->tags; t && *t; t++)
		if ((rc = upload_check_tag(*t, e)))
			return rc;
	const char *app = o->app_name && *o->app_name ? o->app_name : "mixspy";
	if (strpbrk(app, "{},="))
		return err_set(e, E_ARG, "error: invalid value '%s' for '--app-name <name>': it can't contain '{', '}', ',' or '='", app);

	struct uploader *u = xcalloc(1, sizeof(*u));
	memcpy(u->host, url.host, sizeof u->host);
	memcpy(u->port, url.port, sizeof u->port);
	snprintf(u->hostport, sizeof u->hostport, strchr(u->host, ':') ? "[%s]:%s" : "%s:%s", u->host, u->port);
	u->pprof = o->pprof;
	u->max_attempts = o->max_attempts > 0 ? o->max_attempts : 5;
	u->backoff = o->backoff > 0 ? o->backoff : 0.5;
	u->queue_max = o->queue_max >= 2 ? o->queue_max : 64;

	struct strbuf name, t;
	sb_init(&name);
	sb_adds(&name, app);
	size_t alen = strlen(app);
	if (!(alen >= 4 && !strcmp(app + alen - 4, ".cpu")))
		sb_adds(&name, ".cpu");
	sb_addc(&name, '{');
	for (char *const *tg = o->tags; tg && *tg; tg++) {
		if (tg != o->tags)
			sb_addc(&name, ',');
		sb_adds(&name, *tg);
	}
	sb_addc(&name, '}');
	sb_init(&t);
	sb_addf(&t, "%s?name=", url.path);
	sb_add_urlenc(&t, name.buf);
	sb_addf(&t, "&format=%s&sampleRate=%d&spyName=pyspy&units=samples&aggregationType=sum&",
		o->pprof ? "pprof" : "folded", o->rate > 0 ? o->rate : 100);
	u->target = sb_detach(&t);
	sb_free(&name);

	pthread_mutex_init(&u->lock, NULL);
	pthread_cond_init(&u->cond, NULL);
	/* The sampling thread takes every signal (SIGINT/SIGTERM stop it, SIGCHLD forwards signals
	 * to seized threads): the upload thread blocks them all. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&u->thread, NULL, upload_thread, u);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		free(u->target);
		free(u);
		return err_set(e, E_INTERNAL, "can't start the upload thread: %s", strerror(rc));
	}
	*out = u;
	return 0;
}

void uploader_push(struct uploader *u, int64_t from, int64_t until, char *body, size_t len)
{
	pthread_mutex_lock(&u->lock);
	u->st.queued++;
	if (u->queue.n - u->head >= u->queue_max) {
		/* Full: the oldest window that is not being sent right now goes. */
		size_t victim = u->head + (u->sending ? 1 : 0);
		free(u->queue.v[victim].body);
		memmove(u->queue.v + victim, u->queue.v + victim + 1, (u->queue.n - victim - 1) * sizeof(*u->queue.v));
		u->queue.n--;
		u->st.dropped++;
	}
	if (!u->sending)
		compact(u);
	struct upload_item it = { .from = from, .until = until, .body = body, .len = len };
	vec_push(&u->queue, it);
	pthread_cond_signal(&u->cond);
	pthread_mutex_unlock(&u->lock);
}

void uploader_finish(struct uploader *u, double deadline, struct upload_stats *st)
{
	pthread_mutex_lock(&u->lock);
	u->closing = true;
	u->deadline = mono() + deadline;
	pthread_cond_broadcast(&u->cond);
	pthread_mutex_unlock(&u->lock);
	pthread_join(u->thread, NULL);
	for (size_t i = u->head; i < u->queue.n; i++)
		free(u->queue.v[i].body);
	if (st)
		*st = u->st;
	vec_free(&u->queue);
	pthread_mutex_destroy(&u->lock);
	pthread_cond_destroy(&u->cond);
	free(u->target);
	free(u);
}
