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
 * attributes (getxattr: ENODATA; listxattr: none). The emulated /sys stats as kernfs has it
 * (directories 0755, attributes 0444/0644 with st_size 4096 or the binary size, links 0777 unless
 * followed; the daemon resolves the path, links and "..", and lstat's nofollow). Emulated files
 * that are not nodes (fault and access fds, fail-nth) and every other path or fd: the real call.
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

/*
 * A path whose metadata the daemon answers for: an emulated path under /dev, /dev/vfio itself, or
 * the emulated /sys (resolved by the daemon, which follows its links as the VFS would).
 */
static int node_path(const char *p)
{
	char buf[PATH_MAX];
	const char *c;

	if (emulated_sysfs_path(p))
		return 1;
	c = canon(p, buf, sizeof(buf));
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
static int64_t path_node(const char *p, int nofollow)
{
	char buf[PATH_MAX];
	const char *c;
	int64_t r;

	if (emulated_sysfs_path(p))
		return emu_rpc(EMU_STAT, -1, -1, nofollow, 0, p, strlen(p));
	c = canon(p, buf, sizeof(buf));
	r = emu_rpc(EMU_STAT, -1, -1, 0, 0, c, strlen(c));
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

/* What a STAT/FSTAT answer says, unpacked: the fields of struct stat the shim sets. */
struct meta {
	mode_t mode;
	dev_t rdev;
	nlink_t nlink;
	off_t size;
	ino_t ino;
};

/*
 * Unpack answer r for path (NULL for an fd). A device node's inode number comes from its
 * major:minor (the same for stat and fstat); a directory's, attribute's or link's from its path.
 */
static struct meta unpack(int64_t r, const char *path)
{
	struct meta m = { .nlink = 1 };
	uint64_t h = 14695981039346656037ULL;
	char buf[PATH_MAX];

	if (r & (EMU_STAT_DIR | EMU_STAT_REG | EMU_STAT_LNK)) {
		path = path ? canon(path, buf, sizeof(buf)) : NULL;
		m.mode = (r & EMU_STAT_DIR ? S_IFDIR : r & EMU_STAT_REG ? S_IFREG : S_IFLNK) | EMU_STAT_MODE(r);
		m.nlink = r & EMU_STAT_DIR ? 2 : 1;
		m.size = EMU_STAT_SIZE(r);
		for (const char *c = path ? path : ""; *c; c++)
			h = (h ^ (unsigned char)*c) * 1099511628211ULL;
		m.ino = 0x20000000ULL + (h & 0xfffffffULL);
	} else {
		m.mode = S_IFCHR | EMU_STAT_MODE(r);
		m.rdev = makedev(EMU_STAT_MAJOR(r), EMU_STAT_MINOR(r));
		m.ino = 0x10000000ULL + ((uint64_t)EMU_STAT_MAJOR(r) << 20 | EMU_STAT_MINOR(r));
	}
	return m;
}

/* Fill *st (struct stat or struct stat64: the same fields) from answer r for path. */
#define FILL_STAT(st, r, path)                                                 \
	do {                                                                   \
		struct meta m_ = unpack((r), (path));                          \
		memset((st), 0, sizeof(*(st)));                                \
		fill_base((st), sizeof(*(st)));                                \
		(st)->st_mode = m_.mode;                                       \
		(st)->st_rdev = m_.rdev;                                       \
		(st)->st_uid = 0;                                              \
		(st)->st_gid = 0;                                              \
		(st)->st_nlink = m_.nlink;                                     \
		(st)->st_size = m_.size;                                       \
		(st)->st_blocks = (m_.size + 511) / 512;                       \
		(st)->st_ino = m_.ino;                                         \
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
#define PATH_STAT(path, st, nofollow)                                          \
	do {                                                                   \
		int64_t r_ = path_node((path), (nofollow));                    \
		if (r_ < 0)                                                    \
			return -1;                                             \
		FILL_STAT(st, r_, path);                                       \
	} while (0)

/* The *at forms name an emulated node by an absolute path, or an emulated fd by AT_EMPTY_PATH. */
static int at_is_fd(int dirfd, const char *path, int flags)
{
	return (flags & AT_EMPTY_PATH) && path && !path[0] && is_emulated(dirfd);
}

int stat(const char *path, struct stat *st)
{
	if (node_path(path))
		PATH_STAT(path, st, 0);
	CALL_REAL(stat, host_path(path), st);
}

int stat64(const char *path, struct stat64 *st)
{
	if (node_path(path))
		PATH_STAT(path, st, 0);
	CALL_REAL(stat64, host_path(path), st);
}

int lstat(const char *path, struct stat *st)
{
	if (node_path(path))
		PATH_STAT(path, st, 1);
	CALL_REAL(lstat, host_path(path), st);
}

int lstat64(const char *path, struct stat64 *st)
{
	if (node_path(path))
		PATH_STAT(path, st, 1);
	CALL_REAL(lstat64, host_path(path), st);
}

int fstat(int fd, struct stat *st)
{
	int64_t r = fd_node(fd);
	if (r)
		FILL_STAT(st, r, NULL);
	CALL_REAL(fstat, fd, st);
}

int fstat64(int fd, struct stat64 *st)
{
	int64_t r = fd_node(fd);
	if (r)
		FILL_STAT(st, r, NULL);
	CALL_REAL(fstat64, fd, st);
}

int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	int64_t r;
	if (node_path(path))
		PATH_STAT(path, st, (flags & AT_SYMLINK_NOFOLLOW) != 0);
	if (at_is_fd(dirfd, path, flags) && (r = fd_node(dirfd)))
		FILL_STAT(st, r, NULL);
	CALL_REAL(fstatat, dirfd, host_path(path), st, flags);
}

int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
	int64_t r;
	if (node_path(path))
		PATH_STAT(path, st, (flags & AT_SYMLINK_NOFOLLOW) != 0);
	if (at_is_fd(dirfd, path, flags) && (r = fd_node(dirfd)))
		FILL_STAT(st, r, NULL);
	CALL_REAL(fstatat64, dirfd, host_path(path), st, flags);
}

static int fill_statx(struct statx *stx, int64_t r, const char *path)
{
	int e = errno;
	struct meta m = unpack(r, path);

	memset(stx, 0, sizeof(*stx));
	resolve_statx();
	if (real_statx)
		real_statx(AT_FDCWD, "/dev/null", 0, STATX_BASIC_STATS | STATX_BTIME, stx);
	errno = e;
	stx->stx_mask = (stx->stx_mask & (STATX_ATIME | STATX_MTIME | STATX_CTIME | STATX_BTIME)) |
			STATX_TYPE | STATX_MODE | STATX_NLINK | STATX_UID | STATX_GID | STATX_INO |
			STATX_SIZE | STATX_BLOCKS;
	stx->stx_mode = m.mode;
	stx->stx_rdev_major = major(m.rdev);
	stx->stx_rdev_minor = minor(m.rdev);
	stx->stx_uid = 0;
	stx->stx_gid = 0;
	stx->stx_nlink = m.nlink;
	stx->stx_size = m.size;
	stx->stx_blocks = (m.size + 511) / 512;
	stx->stx_ino = m.ino;
	stx->stx_blksize = 4096;
	return 0;
}

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *stx)
{
	int64_t r;
	if (node_path(path)) {
		r = path_node(path, (flags & AT_SYMLINK_NOFOLLOW) != 0);
		return r < 0 ? -1 : fill_statx(stx, r, path);
	}
	if (at_is_fd(dirfd, path, flags) && (r = fd_node(dirfd)))
		return fill_statx(stx, r, NULL);
	CALL_REAL(statx, dirfd, host_path(path), flags, mask, stx);
}

/* The _STAT_VER wrappers: LP64 struct stat is the kernel's, whatever version the caller names. */
int __xstat(int ver, const char *path, struct stat *st)
{
	if (node_path(path))
		PATH_STAT(path, st, 0);
	CALL_REAL(__xstat, ver, host_path(path), st);
}

int __xstat64(int ver, const char *path, struct stat64 *st)
{
	if (node_path(path))
		PATH_STAT(path, st, 0);
	CALL_REAL(__xstat64, ver, host_path(path), st);
}

int __lxstat(int ver, const char *path, struct stat *st)
{
	if (node_path(path))
		PATH_STAT(path, st, 1);
	CALL_REAL(__lxstat, ver, host_path(path), st);
}

int __lxstat64(int ver, const char *path, struct stat64 *st)
{
	if (node_path(path))
		PATH_STAT(path, st, 1);
	CALL_REAL(__lxstat64, ver, host_path(path), st);
}

int __fxstat(int ver, int fd, struct stat *st)
{
	int64_t r = fd_node(fd);
	if (r)
		FILL_STAT(st, r, NULL);
	CALL_REAL(__fxstat, ver, fd, st);
}

int __fxstat64(int ver, int fd, struct stat64 *st)
{
	int64_t r = fd_node(fd);
	if (r)
		FILL_STAT(st, r, NULL);
	CALL_REAL(__fxstat64, ver, fd, st);
}

int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags)
{
	int64_t r;
	if (node_path(path))
		PATH_STAT(path, st, (flags & AT_SYMLINK_NOFOLLOW) != 0);
	if (at_is_fd(dirfd, path, flags) && (r = fd_node(dirfd)))
		FILL_STAT(st, r, NULL);
	CALL_REAL(__fxstatat, ver, dirfd, host_path(path), st, flags);
}

int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags)
{
	int64_t r;
	if (node_path(path))
		PATH_STAT(path, st, (flags & AT_SYMLINK_NOFOLLOW) != 0);
	if (at_is_fd(dirfd, path, flags) && (r = fd_node(dirfd)))
		FILL_STAT(st, r, NULL);
	CALL_REAL(__fxstatat64, ver, dirfd, host_path(path), st, flags);
}
