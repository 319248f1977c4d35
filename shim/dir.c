/*
 * Emulated /sys (/sys/kernel/iommu_groups, /sys/bus/pci, the PCI device directories, VFIO's
 * classes; src/kernel/sysfs.ts). Directories: the daemon lists one once at
 * opendir (EMU_LISTDIR, protocol.h) and the shim hands the entries out as struct dirent / dirent64
 * from its own DIR stand-in. Attributes: open gives a memfd with the attribute's text. Every DIR* the shim did not make goes to
 * the C library untouched; the shim's own are told apart by their address, kept in a list.
 *
 * Not covered: calls glibc makes internally (scandir, nftw use its private opendir), which no
 * preload library can see.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "protocol.h"
#include "shim.h"

REAL(struct dirent *, readdir, DIR *)
REAL(struct dirent64 *, readdir64, DIR *)
REAL(int, closedir, DIR *)
REAL(void, rewinddir, DIR *)
REAL(int, dirfd, DIR *)

struct emu_dir {
	struct emu_dir *next;
	char *list;      /* d_type, name, NUL; repeated */
	size_t len, pos;
	long off;        /* entries handed out, for d_off */
	struct dirent ent;
	struct dirent64 ent64;
};

static struct emu_dir *dirs;
static pthread_mutex_t dirs_lock = PTHREAD_MUTEX_INITIALIZER;

/* src/kernel/sysfs.ts SYSFS_ROOTS, and the PCI root buses /sys/devices/pciDDDD:BB. */
static const char *const roots[] = {
	"/sys/kernel/iommu_groups", "/sys/bus/pci", "/sys/devices/virtual/vfio",
	"/sys/devices/virtual/iommu", "/sys/class/vfio", "/sys/class/vfio-dev", "/sys/class/iommu",
	"/sys/module/iommufd", "/sys/module/vfio", "/sys/module/vfio_iommu_type1",
};

static int pci_root_bus(const char *p)
{
	static const char pre[] = "/sys/devices/pci";
	const char *q = p + sizeof(pre) - 1;

	if (strncmp(p, pre, sizeof(pre) - 1))
		return 0;
	for (int i = 0; i < 7; i++) {
		int hex = (q[i] >= '0' && q[i] <= '9') || (q[i] >= 'a' && q[i] <= 'f');
		if (i == 4 ? q[i] != ':' : !hex)
			return 0;
	}
	return q[7] == 0 || q[7] == '/';
}

static int sysfs_path(const char *p)
{
	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		size_t n = strlen(roots[i]);
		if (!strncmp(p, roots[i], n) && (p[n] == 0 || p[n] == '/'))
			return 1;
	}
	return pci_root_bus(p);
}

static struct emu_dir *ours(DIR *d)
{
	struct emu_dir *e;
	pthread_mutex_lock(&dirs_lock);
	for (e = dirs; e && (DIR *)e != d; e = e->next)
		;
	pthread_mutex_unlock(&dirs_lock);
	return e;
}

/*
 * The whole answer of a LISTDIR, SYSFS_READ, READLINK (path) or FD_LINK (fd) in a malloc'ed
 * buffer (*len bytes), asking again with a bigger buffer while the answer does not fit; NULL with
 * errno on failure.
 */
char *emu_fetch(uint32_t op, int fd, const char *path, size_t *len)
{
	size_t cap = 4096;
	for (;;) {
		char *buf = malloc(cap);
		if (!buf) {
			errno = ENOMEM;
			return NULL;
		}
		int64_t n = emu_rpc(op, fd, -1, (uintptr_t)buf, cap, path, path ? strlen(path) : 0);
		if (n >= 0 && (size_t)n <= cap) {
			*len = n;
			return buf;
		}
		free(buf);
		if (n < 0)
			return NULL;
		cap = n;
	}
}

DIR *emu_opendir(const char *name)
{
	size_t len;
	char *list = emu_fetch(EMU_LISTDIR, -1, name, &len);
	if (!list)
		return NULL;
	struct emu_dir *e = calloc(1, sizeof(*e));
	if (!e) {
		free(list);
		errno = ENOMEM;
		return NULL;
	}
	e->list = list;
	e->len = len;
	pthread_mutex_lock(&dirs_lock);
	e->next = dirs;
	dirs = e;
	pthread_mutex_unlock(&dirs_lock);
	return (DIR *)e;
}

/* The next entry's type and name, or NULL at the end. */
static const char *next_entry(struct emu_dir *e, unsigned char *type)
{
	if (e->pos >= e->len)
		return NULL;
	*type = (unsigned char)e->list[e->pos];
	const char *name = e->list + e->pos + 1;
	e->pos += 2 + strlen(name);
	e->off++;
	return name;
}

struct dirent *readdir(DIR *d)
{
	struct emu_dir *e = ours(d);
	if (!e) {
		resolve_readdir();
		return real_readdir(d);
	}
	unsigned char type;
	const char *name = next_entry(e, &type);
	if (!name)
		return NULL;
	memset(&e->ent, 0, sizeof(e->ent));
	e->ent.d_ino = (ino_t)e->off + 1;
	e->ent.d_off = e->off;
	e->ent.d_reclen = sizeof(e->ent);
	e->ent.d_type = type;
	strncpy(e->ent.d_name, name, sizeof(e->ent.d_name) - 1);
	return &e->ent;
}

struct dirent64 *readdir64(DIR *d)
{
	struct emu_dir *e = ours(d);
	if (!e) {
		resolve_readdir64();
		return real_readdir64(d);
	}
	unsigned char type;
	const char *name = next_entry(e, &type);
	if (!name)
		return NULL;
	memset(&e->ent64, 0, sizeof(e->ent64));
	e->ent64.d_ino = (ino64_t)e->off + 1;
	e->ent64.d_off = e->off;
	e->ent64.d_reclen = sizeof(e->ent64);
	e->ent64.d_type = type;
	strncpy(e->ent64.d_name, name, sizeof(e->ent64.d_name) - 1);
	return &e->ent64;
}

void rewinddir(DIR *d)
{
	struct emu_dir *e = ours(d);
	if (!e) {
		resolve_rewinddir();
		real_rewinddir(d);
		return;
	}
	e->pos = 0;
	e->off = 0;
}

int dirfd(DIR *d)
{
	if (!ours(d)) {
		resolve_dirfd();
		return real_dirfd(d);
	}
	errno = ENOTSUP;
	return -1;
}

int closedir(DIR *d)
{
	struct emu_dir *e = ours(d);
	if (!e) {
		resolve_closedir();
		return real_closedir(d);
	}
	pthread_mutex_lock(&dirs_lock);
	for (struct emu_dir **pp = &dirs; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
	pthread_mutex_unlock(&dirs_lock);
	free(e->list);
	free(e);
	return 0;
}

int emulated_sysfs_path(const char *p)
{
	return p && sysfs_path(p);
}

/* /dev/vfio (with or without a trailing slash): a directory the daemon lists, not a node. */
int emulated_dev_dir(const char *p)
{
	static const char d[] = "/dev/vfio";
	if (!p || strncmp(p, d, sizeof(d) - 1))
		return 0;
	for (p += sizeof(d) - 1; *p == '/'; p++)
		;
	return *p == 0;
}

/*
 * An emulated sysfs attribute opened read-only is a real memfd holding its content (sysfs fixes
 * the text at the first read anyway; config is read at open), so read, fopen and mmap all work
 * natively. (Opens for writing go to the daemon like a device node's.)
 */
int sysfs_open(const char *path, int flags)
{
	size_t len;
	char *text;
	int fd;

	text = emu_fetch(EMU_SYSFS_READ, -1, path, &len);
	if (!text)
		return -1;
	fd = memfd_create("iommufd-emu-sysfs", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		free(text);
		errno = e;
		return -1;
	}
	free(text);
	return fd;
}
