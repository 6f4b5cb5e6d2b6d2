/*
 * sudo.h - running as root under sudo: a launched program runs as the user who invoked sudo
 * (SUDO_UID/SUDO_GID, with that user's groups), and the files mixspy writes belong to that user,
 * so `sudo mixspy record -o out.svg -- python app.py` leaves nothing owned by root behind.
 * Outside sudo (or when not root) all of this does nothing.
 */
#ifndef MIXSPY_SUDO_H
#define MIXSPY_SUDO_H

#include <stdbool.h>
#include <sys/types.h>

#define SUDO_MAX_GROUPS 256

struct sudo_user {
	bool active;              /* root, with a valid SUDO_UID that is not 0 */
	uid_t uid;
	gid_t gid;
	int ngroups;
	gid_t groups[SUDO_MAX_GROUPS];
};

/* Look up the invoking user (before fork: this may read /etc/group through NSS). */
void sudo_user_get(struct sudo_user *u);
/* In the child, between fork and exec: become that user. Only async-signal-safe calls.
 * Returns 0 or -errno. */
int sudo_user_become(const struct sudo_user *u);
/* Give a file we wrote to the invoking user (no-op outside sudo; errors are ignored). */
void sudo_chown_fd(int fd);
void sudo_chown_path(const char *path);

#endif
