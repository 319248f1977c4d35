/*
 * readlink on what the emulated kernel owns: the links of the emulated /sys (iommu_group, driver,
 * /sys/bus/pci/devices/BDF, /sys/class/vfio-dev/vfioN...) and /proc/self/fd/N of an emulated fd,
 * which shows the emulated file (/dev/vfio/devices/vfio0, anon_inode:[vfio-device]) rather than
 * the pipe standing in for it. The daemon answers both (EMU_READLINK, EMU_FD_LINK); readlink's
 * rules are kept: the target is not NUL-terminated and is cut to the buffer's size.
 *
 * Not covered: realpath and the links glibc follows internally (no preload library sees those).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol.h"
#include "shim.h"

REAL(ssize_t, readlink, const char *, char *, size_t)
REAL(ssize_t, readlinkat, int, const char *, char *, size_t)

/* The emulated fd that /proc/self/fd/N, /proc/thread-self/fd/N or /proc/<our pid>/fd/N names, or -1. */
static int proc_fd(const char *p)
{
	char *end;
	long fd;

	if (strncmp(p, "/proc/", 6))
		return -1;
	p += 6;
	if (!strncmp(p, "self/", 5)) {
		p += 5;
	} else if (!strncmp(p, "thread-self/", 12)) {
		p += 12;
	} else {
		long pid = strtol(p, &end, 10);
		if (end == p || *end != '/' || pid != getpid())
			return -1;
		p = end + 1;
	}
	if (strncmp(p, "fd/", 3))
		return -1;
	p += 3;
	fd = strtol(p, &end, 10);
	if (end == p || *end || fd < 0 || fd > 0x7fffffff || !is_emulated((int)fd))
		return -1;
	return (int)fd;
}

/* readlink of an emulated link into buf; 1 if path is one (result in *ret), 0 if not ours. */
static int emu_readlink(const char *path, char *buf, size_t n, ssize_t *ret)
{
	int fd = proc_fd(path);
	size_t len;
	char *target;

	if (fd < 0 && !emulated_sysfs_path(path))
		return 0;
	target = fd >= 0 ? emu_fetch(EMU_FD_LINK, fd, NULL, &len) : emu_fetch(EMU_READLINK, -1, path, &len);
	if (!target) {
		*ret = -1;
		return 1;
	}
	if (len > n)
		len = n;
	memcpy(buf, target, len);
	free(target);
	*ret = (ssize_t)len;
	return 1;
}

ssize_t readlink(const char *path, char *buf, size_t n)
{
	ssize_t r;

	if (emu_readlink(path, buf, n, &r))
		return r;
	resolve_readlink();
	return real_readlink(path, buf, n);
}

ssize_t readlinkat(int dirfd, const char *path, char *buf, size_t n)
{
	ssize_t r;

	if (path[0] == '/' && emu_readlink(path, buf, n, &r))
		return r;
	resolve_readlinkat();
	return real_readlinkat(dirfd, path, buf, n);
}

/* _FORTIFY_SOURCE's checked variants. */
extern void __chk_fail(void) __attribute__((noreturn));

ssize_t __readlink_chk(const char *path, char *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return readlink(path, buf, n);
}

ssize_t __readlinkat_chk(int dirfd, const char *path, char *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return readlinkat(dirfd, path, buf, n);
}
