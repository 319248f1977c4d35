/*
 * The stat family on emulated device nodes: QEMU and other VMMs stat /dev/iommu and /dev/vfio/...
 * and check S_ISCHR and st_rdev before they open them. For an emulated /dev path, or an fd opened
 * from one, the daemon gives the node's mode and major:minor (EMU_STAT/EMU_FSTAT, protocol.h) and
 * the shim answers as the real node would: /dev/null's struct (a devtmpfs node's st_dev and times)
 * with st_mode = S_IFCHR | mode, st_rdev = makedev(major, minor), owner root, one link, size 0,
 * st_ino stable per node (from its major:minor), st_blksize 4096. A /dev/vfio/ path that is no
 * node of the machine is ENOENT, without looking at the host's filesystem. Emulated files that are
 * not nodes (fault and access fds, fail-nth) and every other path or fd: the real call.
 *
 * Both the stat symbols (glibc >= 2.33) and the _STAT_VER wrappers older programs call (__xstat &
 * co., compat symbols since 2.33) are wrapped. A symbol the C library lacks is never called by a
 * program that runs against it, so its real counterpart missing is ENOSYS.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "protocol.h"
#include "shim.h"

/* Not declared by glibc >= 2.33 headers. */
int __xstat(int, const char *, struct stat *);
int __xstat64(int, const char *, struct stat64 *);
int __lxstat(int, const char *, struct stat *);
int __lxstat64(int, const char *, struct stat64 *);
int __fxstat(int, int, struct stat *);
int __fxstat64(int, int, struct stat64 *);
int __fxstatat(int, int, const char *, struct stat *, int);
int __fxstatat64(int, int, const char *, struct stat64 *, int);

REAL(int, stat, const char *, struct stat *)
REAL(int, stat64, const char *, struct stat64 *)
REAL(int, lstat, const char *, struct stat *)
REAL(int, lstat64, const char *, struct stat64 *)
REAL(int, fstat, int, struct stat *)
REAL(int, fstat64, int, struct stat64 *)
REAL(int, fstatat, int, const char *, struct stat *, int)
REAL(int, fstatat64, int, const char *, struct stat64 *, int)
REAL(int, statx, int, const char *, int, unsigned int, struct statx *)
REAL(int, __xstat, int, const char *, struct stat *)
REAL(int, __xstat64, int, const char *, struct stat64 *)
REAL(int, __lxstat, int, const char *, struct stat *)
REAL(int, __lxstat64, int, const char *, struct stat64 *)
REAL(int, __fxstat, int, int, struct stat *)
REAL(int, __fxstat64, int, int, struct stat64 *)
REAL(int, __fxstatat, int, int, const char *, struct stat *, int)
REAL(int, __fxstatat64, int, int, const char *, struct stat64 *, int)

/* Call the real `name`, or fail with ENOSYS if the C library has none. */
#define CALL_REAL(name, ...)                                                   \
	do {                                                                   \
		resolve_##name();                                              \
		if (!real_##name) {                                            \
			errno = ENOSYS;                                        \
			return -1;                                             \
		}                                                              \
		return real_##name(__VA_ARGS__);                               \
	} while (0)

/* A path whose node the daemon answers for: an emulated path under /dev, or /dev/vfio itself. */
static int node_path(const char *p)
{
	return p && !strncmp(p, "/dev/", 5) && (emulated_path(p) || emulated_dev_dir(p));
}

/* The packed node metadata for path (protocol.h), or -1 with errno (ENOENT: no such node). */
static int64_t path_node(const char *p)
{
	return emu_rpc(EMU_STAT, -1, -1, 0, 0, p, strlen(p));
}

/* The packed node metadata for an emulated fd, or 0 if the real fd is to be statted. */
static int64_t fd_node(int fd)
{
	int e = errno;
	int64_t r;

	if (!is_emulated(fd))
		return 0;
	r = emu_rpc(EMU_FSTAT, fd, -1, 0, 0, NULL, 0);
	errno = e;
	return r > 0 && (r & EMU_STAT_NODE) ? r : 0;
}

/* The node's inode number: stable per node, and the same for stat and fstat. */
static uint64_t node_ino(int64_t r)
{
	return 0x10000000ULL + ((uint64_t)EMU_STAT_MAJOR(r) << 20 | EMU_STAT_MINOR(r));
}

/* Fill *st (struct stat or struct stat64: the same fields) for the node r describes. */
#define FILL_STAT(st, r)                                                       \
	do {                                                                   \
		memset((st), 0, sizeof(*(st)));                                \
		fill_base((st), sizeof(*(st)));                                \
		(st)->st_mode = ((r) & EMU_STAT_DIR ? S_IFDIR : S_IFCHR) | EMU_STAT_MODE(r); \
		(st)->st_rdev = (r) & EMU_STAT_DIR ? 0 : makedev(EMU_STAT_MAJOR(r), EMU_STAT_MINOR(r)); \
		(st)->st_uid = 0;                                              \
		(st)->st_gid = 0;                                              \
		(st)->st_nlink = (r) & EMU_STAT_DIR ? 2 : 1;                   \
		(st)->st_size = 0;                                             \
		(st)->st_blocks = 0;                                           \
		(st)->st_ino = node_ino(r);                                    \
		(st)->st_blksize = 4096;                                       \
		return 0;                                                      \
	} while (0)

/* /dev/null's struct stat64 into buf (n bytes; stat and stat64 agree on LP64), if it can be had. */
static void fill_base(void *buf, size_t n)
{
	struct stat64 st;
	int e = errno;

	resolve_stat64();
	if (real_stat64 && !real_stat64("/dev/null", &st))
		memcpy(buf, &st, n < sizeof(st) ? n : sizeof(st));
	errno = e;
}

/* A path stat: the node's metadata into *st, or -1 with errno. */
#define PATH_STAT(path, st)                                                    \
	do {                                                                   \
		int64_t r_ = path_node(path);                                  \
		if (r_ < 0)                                                    \
			return -1;                                             \
		FILL_STAT(st, r_);                                             \
	} while (0)

/* The *at forms name an emulated node by an absolute path, or an emulated fd by AT_EMPTY_PATH. */
static int at_is_fd(int dirfd, const char *path, int flags)
{
	return (flags & AT_EMPTY_PATH) && path && !path[0] && is_emulated(dirfd);
}

int stat(const char *path, struct stat *st)
{
	if (node_path(path))
		PATH_STAT(path, st);
	CALL_REAL(stat, path, st);
}

int stat64(const char *path, struct stat64 *st)
{
	if (node_path(path))
		PATH_STAT(path, st);
	CALL_REAL(stat64, path, st);
}

int lstat(const char *path, struct stat *st)
{
	if (node_path(path))
		PATH_STAT(path, st);
	CALL_REAL(lstat, path, st);
}

int lstat64(const char *path, struct stat64 *st)
{
	if (node_path(path))
		PATH_STAT(path, st);
	CALL_REAL(lstat64, path, st);
}

int fstat(int fd, struct stat *st)
{
	int64_t r = fd_node(fd);
	if (r)
		FILL_STAT(st, r);
	CALL_REAL(fstat, fd, st);
}

int fstat64(int fd, struct stat64 *st)
{
	int64_t r = fd_node(fd);
	if (r)
		FILL_STAT(st, r);
	CALL_REAL(fstat64, fd, st);
}

int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	int64_t r;
	if (node_path(path))
		PATH_STAT(path, st);
	if (at_is_fd(dirfd, path, flags) && (r = fd_node(dirfd)))
		FILL_STAT(st, r);
	CALL_REAL(fstatat, dirfd, path, st, flags);
}

int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
	int64_t r;
	if (node_path(path))
		PATH_STAT(path, st);
	if (at_is_fd(dirfd, path, flags) && (r = fd_node(dirfd)))
		FILL_STAT(st, r);
	CALL_REAL(fstatat64, dirfd, path, st, flags);
}

static int fill_statx(struct statx *stx, int64_t r)
{
	int e = errno;

	memset(stx, 0, sizeof(*stx));
	resolve_statx();
	if (real_statx)
		real_statx(AT_FDCWD, "/dev/null", 0, STATX_BASIC_STATS | STATX_BTIME, stx);
	errno = e;
	stx->stx_mask = (stx->stx_mask & (STATX_ATIME | STATX_MTIME | STATX_CTIME | STATX_BTIME)) |
			STATX_TYPE | STATX_MODE | STATX_NLINK | STATX_UID | STATX_GID | STATX_INO |
			STATX_SIZE | STATX_BLOCKS;
	stx->stx_mode = S_IFCHR | EMU_STAT_MODE(r);
	stx->stx_rdev_major = EMU_STAT_MAJOR(r);
	stx->stx_rdev_minor = EMU_STAT_MINOR(r);
	stx->stx_uid = 0;
	stx->stx_gid = 0;
	stx->stx_nlink = 1;
	stx->stx_size = 0;
	stx->stx_blocks = 0;
	stx->stx_ino = node_ino(r);
	stx->stx_blksize = 4096;
	return 0;
}

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *stx)
{
	int64_t r;
	if (node_path(path)) {
		r = path_node(path);
		return r < 0 ? -1 : fill_statx(stx, r);
	}
	if (at_is_fd(dirfd, path, flags) && (r = fd_node(dirfd)))
		return fill_statx(stx, r);
	CALL_REAL(statx, dirfd, path, flags, mask, stx);
}

/* The _STAT_VER wrappers: LP64 struct stat is the kernel's, whatever version the caller names. */
int __xstat(int ver, const char *path, struct stat *st)
{
	if (node_path(path))
		PATH_STAT(path, st);
	CALL_REAL(__xstat, ver, path, st);
}

int __xstat64(int ver, const char *path, struct stat64 *st)
{
	if (node_path(path))
		PATH_STAT(path, st);
	CALL_REAL(__xstat64, ver, path, st);
}

int __lxstat(int ver, const char *path, struct stat *st)
{
	if (node_path(path))
		PATH_STAT(path, st);
	CALL_REAL(__lxstat, ver, path, st);
}

int __lxstat64(int ver, const char *path, struct stat64 *st)
{
	if (node_path(path))
		PATH_STAT(path, st);
	CALL_REAL(__lxstat64, ver, path, st);
}

int __fxstat(int ver, int fd, struct stat *st)
{
	int64_t r = fd_node(fd);
	if (r)
		FILL_STAT(st, r);
	CALL_REAL(__fxstat, ver, fd, st);
}

int __fxstat64(int ver, int fd, struct stat64 *st)
{
	int64_t r = fd_node(fd);
	if (r)
		FILL_STAT(st, r);
	CALL_REAL(__fxstat64, ver, fd, st);
}

int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags)
{
	int64_t r;
	if (node_path(path))
		PATH_STAT(path, st);
	if (at_is_fd(dirfd, path, flags) && (r = fd_node(dirfd)))
		FILL_STAT(st, r);
	CALL_REAL(__fxstatat, ver, dirfd, path, st, flags);
}

int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags)
{
	int64_t r;
	if (node_path(path))
		PATH_STAT(path, st);
	if (at_is_fd(dirfd, path, flags) && (r = fd_node(dirfd)))
		FILL_STAT(st, r);
	CALL_REAL(__fxstatat64, ver, dirfd, path, st, flags);
}
