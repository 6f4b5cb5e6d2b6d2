/*
 * sudo.c - dropping root for launched programs and handing output files back to the user who
 * ran `sudo mixspy ...`. mixspy itself stays root: it needs ptrace rights over the child, which
 * root keeps after the child changes its credentials.
 */
#include "sudo.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool parse_id(const char *s, unsigned long *out)
{
	if (!s || !*s)
		return false;
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v > 0x7fffffffUL)
		return false;
	*out = v;
	return true;
}

/* The invoking user's uid and gid when we are root under sudo. */
static bool invoker(uid_t *uid, gid_t *gid)
{
	unsigned long u, g;
	if (geteuid() != 0 || !parse_id(getenv("SUDO_UID"), &u) || u == 0)
		return false;
	if (!parse_id(getenv("SUDO_GID"), &g)) {
		struct passwd *pw = getpwuid((uid_t)u);
		if (!pw)
			return false;
		g = pw->pw_gid;
	}
	*uid = (uid_t)u;
	*gid = (gid_t)g;
	return true;
}

void sudo_user_get(struct sudo_user *u)
{
	memset(u, 0, sizeof(*u));
	if (!invoker(&u->uid, &u->gid))
		return;
	u->active = true;
	u->groups[0] = u->gid;
	u->ngroups = 1;
	/* The user's supplementary groups, as a login would give them. */
	struct passwd *pw = getpwuid(u->uid);
	const char *name = pw ? pw->pw_name : getenv("SUDO_USER");
	if (name) {
		int n = SUDO_MAX_GROUPS;
		if (getgrouplist(name, u->gid, u->groups, &n) >= 0)
			u->ngroups = n;
	}
}

int sudo_user_become(const struct sudo_user *u)
{
	if (!u->active)
		return 0;
	if (setgroups((size_t)u->ngroups, u->groups) < 0 || setgid(u->gid) < 0 || setuid(u->uid) < 0)
		return -errno;
	return 0;
}

void sudo_chown_fd(int fd)
{
	uid_t uid;
	gid_t gid;
	if (fd >= 0 && invoker(&uid, &gid) && fchown(fd, uid, gid) < 0) {
		/* A file system that can't change owners keeps root's: nothing better to do. */
	}
}

void sudo_chown_path(const char *path)
{
	uid_t uid;
	gid_t gid;
	if (invoker(&uid, &gid) && chown(path, uid, gid) < 0) {
		/* as above */
	}
}
