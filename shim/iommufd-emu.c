/*
 * libiommufd-emu.so: an LD_PRELOAD shim that routes a program's calls on emulated paths
 * (/dev/iommu, /dev/vfio/..., /proc/.../task/TID/fail-nth, its own /proc/PID/pagemap, whose PFNs
 * must be the emulated machine's) to the iommufd-emu daemon, unchanged
 * program in, emulated kernel out.
 *
 * Each emulated fd is the read end of a real pipe, so the program holds a genuine fd number that
 * poll/epoll/select accept; the shim keeps the write end (at a high number) and keeps the pipe
 * readable, as a file without a poll method is always readable. Calls on such fds go to the daemon
 * synchronously over a Unix socket (protocol.h); the daemon reads and writes this process's memory
 * through /proc/PID/mem, so pointers inside ioctl structs are followed as the kernel follows them.
 *
 * fork: the daemon captures the emulated fd table first, then the child connects on its own
 * socket and claims it, so both sides see the same emulated files afterwards; reaping it: wait.c.
 *
 * Files made inside a call (IOMMU_TEST_OP_CREATE_ACCESS, IOMMU_FAULT_QUEUE_ALLOC, ...): every
 * ioctl offers the daemon a spare real fd at the lowest free number, the number the kernel's
 * get_unused_fd_flags() would pick; the daemon installs the new file there and says so, and the
 * shim keeps the spare as that file's backing fd (or closes it when unused).
 *
 * debugfs: with IOMMUFD_EMU_DEBUGFS set, paths under /sys/kernel/debug are served from that
 * directory (the daemon's fault-injection attribute files), so the fail-nth selftest finds the
 * knobs it configures.
 *
 * Hugetlb memory comes from the emulated machine, not the host: hugetlb.c. The stat family answers
 * for the emulated device nodes: stat.c. The emulated /sys: dir.c; its links and /proc/self/fd/N
 * of emulated fds: readlink.c. mmap of a device file (a vfio-pci BAR), MMIO trapped and served by
 * the daemon: mmio.c. fcntl(F_GETFL/F_SETFL) on an emulated fd is the emulated file's status flags.
 *
 * A real fd of the program's passed where the kernel wants one of its own files (/dev/null as an
 * iommufd, an eventfd for SET_IRQS) needs nothing here: the daemon finds it in /proc/PID/fd.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "protocol.h"
#include "shim.h"

#define MAX_FDS 4096
#define HIGH_FD 800

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int sock = -1;
static int emu_wr[MAX_FDS]; /* write end + 1 of the pipe behind an emulated fd; 0 = not emulated */
static char last_reason[1024];

REAL(int, open, const char *, int, ...)
REAL(int, open64, const char *, int, ...)
REAL(int, openat, int, const char *, int, ...)
REAL(int, openat64, int, const char *, int, ...)
REAL(int, close, int)
REAL(int, ioctl, int, unsigned long, ...)
REAL(ssize_t, read, int, void *, size_t)
REAL(ssize_t, write, int, const void *, size_t)
REAL(int, dup, int)
REAL(int, dup2, int, int)
REAL(int, dup3, int, int, int)
REAL(int, fcntl, int, int, ...)
REAL(pid_t, fork, void)
REAL(ssize_t, pread, int, void *, size_t, off_t)
REAL(ssize_t, pread64, int, void *, size_t, off64_t)
REAL(ssize_t, pwrite, int, const void *, size_t, off_t)
REAL(ssize_t, pwrite64, int, const void *, size_t, off64_t)
REAL(DIR *, opendir, const char *)
REAL(FILE *, fopen, const char *, const char *)
REAL(FILE *, fopen64, const char *, const char *)

/** The reason the daemon gave for the last refused call on an emulated fd. */
const char *iommufd_emu_last_reason(void)
{
	return last_reason;
}

int is_emulated(int fd)
{
	return fd >= 0 && fd < MAX_FDS && emu_wr[fd];
}

int emulated_path(const char *p)
{
	if (!p)
		return 0;
	if (!strcmp(p, "/dev/iommu") || !strncmp(p, "/dev/vfio/", 10) || emulated_sysfs_path(p))
		return 1;
	if (!strncmp(p, "/proc/", 6)) {
		size_t n = strlen(p);
		char own[40];
		if (n > 9 && !strcmp(p + n - 9, "/fail-nth") && strstr(p, "/task/"))
			return 1;
		/* Our own pagemap: PFNs must be the emulated machine's, for noiommu DMA. */
		snprintf(own, sizeof(own), "/proc/%d/pagemap", (int)getpid());
		return !strcmp(p, "/proc/self/pagemap") || !strcmp(p, own);
	}
	return 0;
}

/*
 * The path to really open for `p`: under /sys/kernel/debug, the daemon's debugfs directory
 * (IOMMUFD_EMU_DEBUGFS); otherwise `p` itself.
 */
static const char *debugfs_path(const char *p, char *buf, size_t n)
{
	static const char root[] = "/sys/kernel/debug";
	const char *dir = getenv("IOMMUFD_EMU_DEBUGFS");
	size_t rl = sizeof(root) - 1;

	if (!p || !dir || strncmp(p, root, rl) || (p[rl] && p[rl] != '/'))
		return p;
	if ((size_t)snprintf(buf, n, "%s%s", dir, p + rl) >= n)
		return p;
	return buf;
}

int emu_full_io(int fd, void *buf, size_t len, int wr)
{
	size_t done = 0;
	resolve_read();
	resolve_write();
	while (done < len) {
		ssize_t n = wr ? real_write(fd, (char *)buf + done, len - done) :
				 real_read(fd, (char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += n;
	}
	return 0;
}

static int high_fd(int fd)
{
	int h;
	resolve_fcntl();
	resolve_close();
	h = real_fcntl(fd, F_DUPFD_CLOEXEC, HIGH_FD);
	if (h < 0)
		return fd;
	real_close(fd);
	return h;
}

/* Read and drop `n` bytes of a response payload. */
static int skip_bytes(int s, uint32_t n)
{
	char skip[256];

	while (n) {
		uint32_t k = n < sizeof(skip) ? n : sizeof(skip);
		if (emu_full_io(s, skip, k, 0))
			return -1;
		n -= k;
	}
	return 0;
}

/*
 * The eventfds a response asks to pin (EMU_RESP_PINS): pins them and starts the notify
 * connection. Returns the payload bytes consumed, or -1.
 */
static int64_t take_pins(int s, uint32_t avail)
{
	uint32_t n, i;

	if (avail < sizeof(n) || emu_full_io(s, &n, sizeof(n), 0) || avail - sizeof(n) < (uint64_t)n * 4)
		return -1;
	for (i = 0; i < n; i++) {
		int32_t fd;
		if (emu_full_io(s, &fd, sizeof(fd), 0))
			return -1;
		notify_pin(fd);
	}
	if (n && notify_start())
		fprintf(stderr, "iommufd-emu: no notify connection, eventfds will not be signalled: %s\n",
			strerror(errno));
	return sizeof(n) + (uint64_t)n * 4;
}

/*
 * One round trip on connection s (the process's socket: its lock held by the caller). Returns
 * ret, or -1 with errno on failure; the response's flags go to *flags when asked for.
 */
static int64_t rpc_on(int s, uint32_t op, int fd, int fd2, uint64_t a0, uint64_t a1, uint64_t a2,
		      const void *payload, uint32_t plen, uint32_t *flags)
{
	struct emu_req req = { .len = sizeof(req) + plen, .op = op, .fd = fd, .fd2 = fd2,
			       .a0 = a0, .a1 = a1, .a2 = a2 };
	struct emu_resp resp;
	char reason[sizeof(last_reason)];
	uint32_t rl;

	if (emu_full_io(s, &req, sizeof(req), 1) || (plen && emu_full_io(s, (void *)payload, plen, 1)) ||
	    emu_full_io(s, &resp, sizeof(resp), 0) || resp.len < sizeof(resp))
		goto broken;
	rl = resp.len - sizeof(resp);
	if (resp.flags & EMU_RESP_PINS) {
		int64_t used = take_pins(s, rl);
		if (used < 0)
			goto broken;
		rl -= used;
	}
	if (rl) {
		uint32_t keep = rl < sizeof(reason) - 1 ? rl : sizeof(reason) - 1;
		if (emu_full_io(s, reason, keep, 0) || skip_bytes(s, rl - keep))
			goto broken;
		reason[keep] = 0;
		memcpy(last_reason, reason, keep + 1);
		if (getenv("IOMMUFD_EMU_VERBOSE"))
			fprintf(stderr, "iommufd-emu: %s\n", last_reason);
	}
	if (resp.flags & EMU_RESP_SYNC)
		notify_wait(resp.seq);
	if (flags)
		*flags = resp.flags;
	if (resp.ret < 0)
		errno = resp.err;
	return resp.ret;
broken:
	errno = EIO;
	return -1;
}

static int64_t rpc_locked(uint32_t op, int fd, int fd2, uint64_t a0, uint64_t a1, uint64_t a2,
			  const void *payload, uint32_t plen, uint32_t *flags)
{
	return rpc_on(sock, op, fd, fd2, a0, a1, a2, payload, plen, flags);
}

int emu_socket(uint32_t op, uint64_t a0, uint64_t a1)
{
	const char *path = getenv("IOMMUFD_EMU_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred peer;
	socklen_t plen = sizeof(peer);
	int s;

	resolve_close();
	if (!path || strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENOENT;
		return -1;
	}
	strcpy(sa.sun_path, path);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
		int e = errno;
		real_close(s);
		errno = e;
		return -1;
	}
	/* Let the daemon open /proc/PID/mem under Yama's ptrace_scope=1. */
	if (!getsockopt(s, SOL_SOCKET, SO_PEERCRED, &peer, &plen))
		prctl(PR_SET_PTRACER, peer.pid, 0, 0, 0);
	s = high_fd(s);
	if (rpc_on(s, op, -1, -1, a0, a1, 0, NULL, 0, NULL) < 0) {
		int e = errno;
		real_close(s);
		errno = e;
		return -1;
	}
	return s;
}

static int connect_daemon(uint32_t op, uint64_t a0, uint64_t a1)
{
	int s = emu_socket(op, a0, a1);

	if (s < 0)
		return -1;
	sock = s;
	return 0;
}

int64_t emu_rpc_flags(uint32_t op, int fd, int fd2, uint64_t a0, uint64_t a1, uint64_t a2,
		  const void *payload, uint32_t plen, uint32_t *flags)
{
	int64_t r;
	pthread_mutex_lock(&lock);
	if (sock < 0 && connect_daemon(EMU_HELLO, getpid(), 0)) {
		pthread_mutex_unlock(&lock);
		return -1;
	}
	r = rpc_locked(op, fd, fd2, a0, a1, a2, payload, plen, flags);
	pthread_mutex_unlock(&lock);
	return r;
}

int emu_connected(void)
{
	int c;

	pthread_mutex_lock(&lock);
	c = sock >= 0;
	pthread_mutex_unlock(&lock);
	return c;
}

int64_t emu_rpc(uint32_t op, int fd, int fd2, uint64_t a0, uint64_t a1, const void *payload,
	    uint32_t plen)
{
	return emu_rpc_flags(op, fd, fd2, a0, a1, 0, payload, plen, NULL);
}

/* Forget the shim's half of an emulated fd (the real fd itself is the caller's business). */
static void drop_emulated(int fd)
{
	resolve_close();
	if (is_emulated(fd)) {
		real_close(emu_wr[fd] - 1);
		emu_wr[fd] = 0;
	}
}

/* Make `newfd` (already a real dup of emulated `oldfd`) emulated too. */
static int mirror_dup(int oldfd, int newfd)
{
	int wr;
	resolve_fcntl();
	wr = real_fcntl(emu_wr[oldfd] - 1, F_DUPFD_CLOEXEC, HIGH_FD);
	if (wr < 0 || newfd >= MAX_FDS)
		return -1;
	if (emu_rpc(EMU_DUP2, oldfd, newfd, 0, 0, NULL, 0) < 0) {
		int e = errno;
		real_close(wr);
		errno = e;
		return -1;
	}
	emu_wr[newfd] = wr + 1;
	return 0;
}

static int emu_open(const char *path, int flags)
{
	int p[2];
	int64_t r;

	/* Read-only opens get a memfd copy; a write (a module parameter) goes to the daemon's file. */
	if (emulated_sysfs_path(path) && (flags & O_ACCMODE) == O_RDONLY)
		return sysfs_open(path, flags);
	if (pipe2(p, O_CLOEXEC & flags ? O_CLOEXEC : 0))
		return -1;
	if (p[0] >= MAX_FDS) {
		resolve_close();
		real_close(p[0]);
		real_close(p[1]);
		errno = EMFILE;
		return -1;
	}
	p[1] = high_fd(p[1]);
	resolve_write();
	if (real_write(p[1], "", 1) != 1)
		return -1;
	r = emu_rpc(EMU_OPEN, p[0], -1, (uint32_t)flags, 0, path, strlen(path));
	if (r < 0) {
		int e = errno;
		real_close(p[0]);
		real_close(p[1]);
		errno = e;
		return -1;
	}
	emu_wr[p[0]] = p[1] + 1;
	return p[0];
}

#define OPEN_MODE(flags)                                                       \
	mode_t mode = 0;                                                       \
	if ((flags) & (O_CREAT | __O_TMPFILE)) {                               \
		va_list ap;                                                    \
		va_start(ap, flags);                                           \
		mode = va_arg(ap, mode_t);                                     \
		va_end(ap);                                                    \
	}

int open(const char *path, int flags, ...)
{
	char buf[PATH_MAX];
	OPEN_MODE(flags);
	if (emulated_path(path))
		return emu_open(path, flags);
	resolve_open();
	return real_open(debugfs_path(path, buf, sizeof(buf)), flags, mode);
}

int open64(const char *path, int flags, ...)
{
	char buf[PATH_MAX];
	OPEN_MODE(flags);
	if (emulated_path(path))
		return emu_open(path, flags);
	resolve_open64();
	return real_open64(debugfs_path(path, buf, sizeof(buf)), flags, mode);
}

int __open_2(const char *path, int flags)
{
	return open(path, flags);
}

int __open64_2(const char *path, int flags)
{
	return open64(path, flags);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	char buf[PATH_MAX];
	OPEN_MODE(flags);
	if (path[0] == '/' && emulated_path(path))
		return emu_open(path, flags);
	resolve_openat();
	return real_openat(dirfd, debugfs_path(path, buf, sizeof(buf)), flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	char buf[PATH_MAX];
	OPEN_MODE(flags);
	if (path[0] == '/' && emulated_path(path))
		return emu_open(path, flags);
	resolve_openat64();
	return real_openat64(dirfd, debugfs_path(path, buf, sizeof(buf)), flags, mode);
}

int __openat_2(int dirfd, const char *path, int flags)
{
	return openat(dirfd, path, flags);
}

int __openat64_2(int dirfd, const char *path, int flags)
{
	return openat64(dirfd, path, flags);
}

/* glibc's opendir and fopen open through internal calls the preload cannot see. */
DIR *opendir(const char *path)
{
	char buf[PATH_MAX];
	if (emulated_sysfs_path(path) || emulated_dev_dir(path) || !strncmp(path, "/dev/vfio/", 10))
		return emu_opendir(path);
	resolve_opendir();
	return real_opendir(debugfs_path(path, buf, sizeof(buf)));
}

static ssize_t attr_cookie_read(void *c, char *buf, size_t n)
{
	return read((int)(intptr_t)c, buf, n);
}

static ssize_t attr_cookie_write(void *c, const char *buf, size_t n)
{
	return write((int)(intptr_t)c, buf, n);
}

static int attr_cookie_close(void *c)
{
	return close((int)(intptr_t)c);
}

/*
 * An emulated sysfs attribute as a stream: read-only, its memfd; for writing (a module parameter),
 * a stream over the daemon's file, since glibc's stdio would write an fd with calls the preload
 * cannot see.
 */
static FILE *sysfs_fopen(const char *path, const char *mode)
{
	int cloexec = strchr(mode, 'e') ? O_CLOEXEC : 0;
	if (!strpbrk(mode, "wa+")) {
		int fd = sysfs_open(path, O_RDONLY | cloexec);
		return fd < 0 ? NULL : fdopen(fd, mode);
	}
	int fd = open(path, (strchr(mode, '+') ? O_RDWR : O_WRONLY) | cloexec);
	if (fd < 0)
		return NULL;
	cookie_io_functions_t io = { .read = attr_cookie_read, .write = attr_cookie_write, .close = attr_cookie_close };
	FILE *f = fopencookie((void *)(intptr_t)fd, mode, io);
	if (!f) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return f;
}

FILE *fopen(const char *path, const char *mode)
{
	char buf[PATH_MAX];
	if (emulated_sysfs_path(path))
		return sysfs_fopen(path, mode);
	resolve_fopen();
	return real_fopen(debugfs_path(path, buf, sizeof(buf)), mode);
}

FILE *fopen64(const char *path, const char *mode)
{
	char buf[PATH_MAX];
	if (emulated_sysfs_path(path))
		return sysfs_fopen(path, mode);
	resolve_fopen64();
	return real_fopen64(debugfs_path(path, buf, sizeof(buf)), mode);
}

int close(int fd)
{
	resolve_close();
	if (is_emulated(fd)) {
		emu_rpc(EMU_CLOSE, fd, -1, 0, 0, NULL, 0);
		drop_emulated(fd);
	}
	return real_close(fd);
}

/*
 * A spare real fd at the lowest free number (the read end of a fresh pipe whose write end is moved
 * high), offered with an ioctl for a file the call may make. Returns -1 if none could be made.
 */
static int make_spare(int *wr)
{
	int p[2];

	resolve_close();
	if (pipe2(p, O_CLOEXEC))
		return -1;
	if (p[0] >= MAX_FDS) {
		real_close(p[0]);
		real_close(p[1]);
		return -1;
	}
	*wr = high_fd(p[1]);
	return p[0];
}

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	unsigned long arg;
	uint32_t flags = 0;
	int spare, wr = -1, e;
	int64_t r;

	va_start(ap, req);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	if (!is_emulated(fd)) {
		resolve_ioctl();
		return real_ioctl(fd, req, arg);
	}
	spare = make_spare(&wr);
	r = emu_rpc_flags(EMU_IOCTL, fd, spare, (uint32_t)req, arg, 0, NULL, 0, &flags);
	e = errno;
	if (spare >= 0 && (flags & EMU_RESP_SPARE_USED)) {
		resolve_write();
		if (real_write(wr, "", 1) != 1)
			fprintf(stderr, "iommufd-emu: cannot make fd %d readable\n", spare);
		emu_wr[spare] = wr + 1;
	} else if (spare >= 0) {
		real_close(spare);
		real_close(wr);
	}
	errno = e;
	return (int)r;
}

ssize_t read(int fd, void *buf, size_t count)
{
	if (is_emulated(fd))
		return emu_rpc(EMU_READ, fd, -1, (uintptr_t)buf, count, NULL, 0);
	resolve_read();
	return real_read(fd, buf, count);
}

ssize_t write(int fd, const void *buf, size_t count)
{
	if (is_emulated(fd))
		return emu_rpc(EMU_WRITE, fd, -1, (uintptr_t)buf, count, NULL, 0);
	resolve_write();
	return real_write(fd, buf, count);
}

ssize_t pread(int fd, void *buf, size_t count, off_t off)
{
	if (is_emulated(fd))
		return emu_rpc_flags(EMU_PREAD, fd, -1, (uintptr_t)buf, count, (uint64_t)off, NULL, 0, NULL);
	resolve_pread();
	return real_pread(fd, buf, count, off);
}

ssize_t pread64(int fd, void *buf, size_t count, off64_t off)
{
	if (is_emulated(fd))
		return emu_rpc_flags(EMU_PREAD, fd, -1, (uintptr_t)buf, count, (uint64_t)off, NULL, 0, NULL);
	resolve_pread64();
	return real_pread64(fd, buf, count, off);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t off)
{
	if (is_emulated(fd))
		return emu_rpc_flags(EMU_PWRITE, fd, -1, (uintptr_t)buf, count, (uint64_t)off, NULL, 0, NULL);
	resolve_pwrite();
	return real_pwrite(fd, buf, count, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t off)
{
	if (is_emulated(fd))
		return emu_rpc_flags(EMU_PWRITE, fd, -1, (uintptr_t)buf, count, (uint64_t)off, NULL, 0, NULL);
	resolve_pwrite64();
	return real_pwrite64(fd, buf, count, off);
}

int dup(int fd)
{
	int n;
	resolve_dup();
	n = real_dup(fd);
	if (n >= 0 && is_emulated(fd) && mirror_dup(fd, n)) {
		int e = errno;
		real_close(n);
		errno = e;
		return -1;
	}
	return n;
}

static int dup_to(int oldfd, int newfd, int r)
{
	if (r < 0 || oldfd == newfd)
		return r;
	if (is_emulated(oldfd) && mirror_dup(oldfd, newfd)) {
		int e = errno;
		real_close(newfd);
		errno = e;
		return -1;
	}
	return r;
}

int dup2(int oldfd, int newfd)
{
	resolve_dup2();
	if (oldfd != newfd && is_emulated(newfd)) {
		emu_rpc(EMU_CLOSE, newfd, -1, 0, 0, NULL, 0);
		drop_emulated(newfd);
	}
	return dup_to(oldfd, newfd, real_dup2(oldfd, newfd));
}

int dup3(int oldfd, int newfd, int flags)
{
	resolve_dup3();
	if (oldfd != newfd && is_emulated(newfd)) {
		emu_rpc(EMU_CLOSE, newfd, -1, 0, 0, NULL, 0);
		drop_emulated(newfd);
	}
	return dup_to(oldfd, newfd, real_dup3(oldfd, newfd, flags));
}

static int fcntl_common(int fd, int cmd, unsigned long arg)
{
	int r;

	resolve_fcntl();
	/* The status flags are the emulated file's (its access mode is not the pipe's). */
	if (cmd == F_GETFL && is_emulated(fd))
		return (int)emu_rpc(EMU_FCNTL, fd, -1, F_GETFL, 0, NULL, 0);
	if (cmd == F_SETFL && is_emulated(fd) && emu_rpc(EMU_FCNTL, fd, -1, F_SETFL, arg, NULL, 0) < 0)
		return -1;
	r = real_fcntl(fd, cmd, arg);
	if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && r >= 0 && is_emulated(fd) &&
	    mirror_dup(fd, r)) {
		int e = errno;
		real_close(r);
		errno = e;
		return -1;
	}
	return r;
}

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	unsigned long arg;

	va_start(ap, cmd);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	return fcntl_common(fd, cmd, arg);
}

/* What programs built with _FILE_OFFSET_BITS=64 call; the same on x86-64. */
int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	unsigned long arg;

	va_start(ap, cmd);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	return fcntl_common(fd, cmd, arg);
}

pid_t fork(void)
{
	int64_t token;
	pid_t pid;

	resolve_fork();
	pthread_mutex_lock(&lock);
	if (sock < 0) {
		pthread_mutex_unlock(&lock);
		return real_fork();
	}
	token = rpc_locked(EMU_FORK_PREPARE, -1, -1, 0, 0, 0, NULL, 0, NULL);
	pid = real_fork();
	if (pid == 0) {
		real_close(sock);
		sock = -1;
		notify_forked_child();
		if (token > 0 && connect_daemon(EMU_FORK_CHILD, token, getpid()))
			fprintf(stderr, "iommufd-emu: forked child %d could not reach the daemon: %s\n",
				getpid(), strerror(errno));
		pthread_mutex_init(&lock, NULL);
		return 0;
	}
	if (pid < 0 && token > 0) {
		int e = errno;
		rpc_locked(EMU_FORK_ABORT, -1, -1, token, 0, 0, NULL, 0, NULL);
		errno = e;
	}
	pthread_mutex_unlock(&lock);
	return pid;
}
