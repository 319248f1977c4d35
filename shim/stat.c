/*
 * The stat family on emulated device nodes: QEMU and other VMMs stat /dev/iommu and /dev/vfio/...
 * and check S_ISCHR and st_rdev before they open them. For an emulated /dev path, or an fd opened
 * from one, the daemon gives the node's mode and major:minor (EMU_STAT/EMU_FSTAT, protocol.h) and
 * the shim answers as the real node would: /dev/null's struct (a devtmpfs node's st_dev and times)
 * with st_mode = S_IFCHR | mode, st_rdev = makedev(major, minor), owner root, one link, size 0,
 * st_ino stable per node (from its major:minor), st_blksize 4096. /dev/vfio and
 * /dev/vfio/devices are directories (0755, while a node lives below them, as devtmpfs keeps
 * them). Paths are resolved lexically first ("//", ".", ".."). A /dev/vfio/ path that is no node of
 * the machine is ENOENT, without looking at the host's filesystem. Emulated nodes have no extended
 * attributes (getxattr: ENODATA; listxattr: none). Emulated files that are not nodes (fault and
 * access fds, fail-nth) and every other path or fd: the real call.
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
#include <sys/xattr.h>
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

/*
 * An absolute path with "//", "." and ".." resolved lexically (the /dev/vfio tree has no links),
 * into out; NULL when p is not absolute or does not fit.
 */
static const char *canon(const char *p, char *out, size_t n)
{
	size_t len = 0;

	if (!p || p[0] != '/')
		return NULL;
	while (*p) {
		while (*p == '/')
			p++;
		const char *e = strchrnul(p, '/');
		size_t c = e - p;
		if (c == 1 && p[0] == '.') {
			/* nothing */
		} else if (c == 2 && p[0] == '.' && p[1] == '.') {
			while (len > 0 && out[len - 1] != '/')
				len--;
			if (len > 0)
				len--;
		} else if (c) {
			if (len + 1 + c >= n)
				return NULL;
			out[len++] = '/';
			memcpy(out + len, p, c);
			len += c;
		}
		p = e;
	}
	if (!len)
		out[len++] = '/';
	out[len] = 0;
	return out;
}

/* A path whose node the daemon answers for: an emulated path under /dev, or /dev/vfio itself. */
static int node_path(const char *p)
{
	char buf[PATH_MAX];
	const char *c = canon(p, buf, sizeof(buf));
	return c && !strncmp(c, "/dev/", 5) && (emulated_path(c) || emulated_dev_dir(c));
}

/* p names a directory by its form: it ends in "/", "/." or "/..". */
static int dir_form(const char *p)
{
	size_t n = strlen(p);
	return (n && p[n - 1] == '/') || (n >= 2 && !strcmp(p + n - 2, "/.")) || (n >= 3 && !strcmp(p + n - 3, "/.."));
}

/*
 * The packed node metadata for path (protocol.h), or -1 with errno (ENOENT: no such node;
 * ENOTDIR: a node named as a directory).
 */
static int64_t path_node(const char *p)
{
	char buf[PATH_MAX];
	const char *c = canon(p, buf, sizeof(buf));
	int64_t r = emu_rpc(EMU_STAT, -1, -1, 0, 0, c, strlen(c));
	if (r >= 0 && !(r & EMU_STAT_DIR) && dir_form(p)) {
		errno = ENOTDIR;
		return -1;
	}
	return r;
}

/*
 * The path to give the host for p: under /dev/vfio (which the host may lack), its lexical form, so
 * "/dev/vfio/.." is the host's /dev; p itself otherwise.
 */
static const char *host_path(const char *p)
{
	static __thread char buf[PATH_MAX];
	const char *c = p && !strncmp(p, "/dev/vfio", 9) ? canon(p, buf, sizeof(buf)) : NULL;
	return c ? c : p;
}

/*
 * Extended attributes of the emulated nodes: they have none (ls -l asks for ACLs and reports
 * any error but "no attribute").
 */
#define XATTR_NONE(path)                                                       \
	do {                                                                   \
		if (node_path(path)) {                                         \
			errno = ENODATA;                                       \
			return -1;                                             \
		}                                                              \
	} while (0)

REAL(ssize_t, getxattr, const char *, const char *, void *, size_t)
REAL(ssize_t, lgetxattr, const char *, const char *, void *, size_t)
REAL(ssize_t, listxattr, const char *, char *, size_t)
REAL(ssize_t, llistxattr, const char *, char *, size_t)

ssize_t getxattr(const char *path, const char *name, void *value, size_t size)
{
	XATTR_NONE(path);
	CALL_REAL(getxattr, host_path(path), name, value, size);
}

ssize_t lgetxattr(const char *path, const char *name, void *value, size_t size)
{
	XATTR_NONE(path);
	CALL_REAL(lgetxattr, host_path(path), name, value, size);
}

ssize_t listxattr(const char *path, char *list, size_t size)
{
	if (node_path(path))
		return 0;
	CALL_REAL(listxattr, host_path(path), list, size);
}

ssize_t llistxattr(const char *path, char *list, size_t size)
{
	if (node_path(path))
		return 0;
	CALL_REAL(llistxattr, host_path(path), list, size);
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
	CALL_REAL(stat, host_path(path), st);
}

int stat64(const char *path, struct stat64 *st)
{
	if (node_path(path))
		PATH_STAT(path, st);
	CALL_REAL(stat64, host_path(path), st);
}

int lstat(const char *path, struct stat *st)
{
	if (node_path(path))
		PATH_STAT(path, st);
	CALL_REAL(lstat, host_path(path), st);
}

int lstat64(const char *path, struct stat64 *st)
{
	if (node_path(path))
		PATH_STAT(path, st);
	CALL_REAL(lstat64, host_path(path), st);
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
	CALL_REAL(fstatat, dirfd, host_path(path), st, flags);
}

int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
	int64_t r;
	if (node_path(path))
		PATH_STAT(path, st);
	if (at_is_fd(dirfd, path, flags) && (r = fd_node(dirfd)))
		FILL_STAT(st, r);
	CALL_REAL(fstatat64, dirfd, host_path(path), st, flags);
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
	stx->stx_mode = (r & EMU_STAT_DIR ? S_IFDIR : S_IFCHR) | EMU_STAT_MODE(r);
	stx->stx_rdev_major = r & EMU_STAT_DIR ? 0 : EMU_STAT_MAJOR(r);
	stx->stx_rdev_minor = r & EMU_STAT_DIR ? 0 : EMU_STAT_MINOR(r);
	stx->stx_uid = 0;
	stx->stx_gid = 0;
	stx->stx_nlink = r & EMU_STAT_DIR ? 2 : 1;
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
	CALL_REAL(statx, dirfd, host_path(path), flags, mask, stx);
}

/* The _STAT_VER wrappers: LP64 struct stat is the kernel's, whatever version the caller names. */
int __xstat(int ver, const char *path, struct stat *st)
{
	if (node_path(path))
		PATH_STAT(path, st);
	CALL_REAL(__xstat, ver, host_path(path), st);
}

int __xstat64(int ver, const char *path, struct stat64 *st)
{
	if (node_path(path))
		PATH_STAT(path, st);
	CALL_REAL(__xstat64, ver, host_path(path), st);
}

int __lxstat(int ver, const char *path, struct stat *st)
{
	if (node_path(path))
		PATH_STAT(path, st);
	CALL_REAL(__lxstat, ver, host_path(path), st);
}

int __lxstat64(int ver, const char *path, struct stat64 *st)
{
	if (node_path(path))
		PATH_STAT(path, st);
	CALL_REAL(__lxstat64, ver, host_path(path), st);
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
	CALL_REAL(__fxstatat, ver, dirfd, host_path(path), st, flags);
}

int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags)
{
	int64_t r;
	if (node_path(path))
		PATH_STAT(path, st);
	if (at_is_fd(dirfd, path, flags) && (r = fd_node(dirfd)))
		FILL_STAT(st, r);
	CALL_REAL(__fxstatat64, ver, dirfd, host_path(path), st, flags);
}
