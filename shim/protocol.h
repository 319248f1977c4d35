/* The shim <-> daemon wire protocol; src/server/protocol.ts is the other half. */
#ifndef IOMMUFD_EMU_PROTOCOL_H
#define IOMMUFD_EMU_PROTOCOL_H
#include <stdint.h>

enum {
	EMU_HELLO = 1,
	EMU_OPEN = 2,
	EMU_CLOSE = 3,
	EMU_DUP2 = 4,
	EMU_IOCTL = 5,
	EMU_READ = 6,
	EMU_WRITE = 7,
	EMU_POLL = 8,
	EMU_FORK_PREPARE = 9,
	EMU_FORK_CHILD = 10,
	EMU_FORK_ABORT = 11,
	EMU_PREAD = 12,
	EMU_PWRITE = 13,
	EMU_REAPED = 14,
	EMU_MMAP_HUGE = 15,
	EMU_MUNMAP = 16,
	EMU_STAT = 17,
	EMU_FSTAT = 18,
	EMU_LISTDIR = 19,
	EMU_SYSFS_READ = 20,
	EMU_NOTIFY = 21,
	EMU_READLINK = 22,
	EMU_FD_LINK = 23,
	EMU_FCNTL = 24,
	EMU_MMAP = 25,
	EMU_MMIO = 26,
	EMU_MUNMAP_IO = 27,
};

/*
 * MMAP (fd, a0 = length, a1 = prot | flags << 32, a2 = offset): ret = a mapping id. MMIO (a0 = id,
 * a1 = byte offset in the mapping, a2 = size | write << 8, payload = the u64 to write): ret = the
 * value read; failure (errno set, ret -1) means SIGBUS. MUNMAP_IO (a0 = id): the mapping is gone.
 */

/*
 * NOTIFY (a0 = pid) opens a process's notify connection (notify.c): after its response the daemon
 * only sends notes on it, each a struct emu_note. SIGNAL adds 1 to the eventfd pinned as `token`;
 * PUT drops that pin; WATCH/UNWATCH start and stop watching it for writes, each reported back
 * with a FIRED note. `seq` counts the process's notes from 1.
 */
enum {
	EMU_NOTE_SIGNAL = 1,
	EMU_NOTE_PUT = 2,
	/* Watch the pin: whenever it is readable, read (consume) its count and send FIRED back. */
	EMU_NOTE_WATCH = 3,
	EMU_NOTE_UNWATCH = 4,
	/* Shim to daemon on the notify connection: the watched pin `token` was written (seq 0). */
	EMU_NOTE_FIRED = 5,
};

struct emu_note {
	uint32_t op;
	uint32_t token;
	uint32_t seq;
	uint32_t pad;
};

/*
 * STAT (payload = path) and FSTAT (fd) answer a device node's metadata packed into ret:
 * bits 0-11 the mode's permission bits, 12-31 the minor, 32-43 the major, and EMU_STAT_NODE set.
 * STAT of a path that is no node fails with ENOENT; FSTAT of a file that is no device node (a fault
 * or access fd, fail-nth) answers 0: the shim stats the backing fd instead. A STAT of an emulated
 * /dev directory (/dev/vfio, /dev/vfio/devices) answers EMU_STAT_DIR with its permission bits; of
 * an emulated /sys path (a0 = 1: do not follow a final link, as lstat), EMU_STAT_DIR, _REG or _LNK
 * with the permission bits and st_size in bits 12-43.
 */
#define EMU_STAT_NODE (1ULL << 62)
#define EMU_STAT_DIR (1ULL << 61)
#define EMU_STAT_REG (1ULL << 60)
#define EMU_STAT_LNK (1ULL << 59)
#define EMU_STAT_SIZE(r) ((off_t)(((r) >> 12) & 0xffffffffULL))
#define EMU_STAT_MODE(r) ((unsigned)((r) & 07777))
#define EMU_STAT_MINOR(r) ((unsigned)(((r) >> 12) & 0xfffff))
#define EMU_STAT_MAJOR(r) ((unsigned)(((r) >> 32) & 0xfff))

/*
 * LISTDIR (payload = path, a0 = buffer, a1 = its size): an emulated /sys or /dev directory's entries as
 * d_type byte, name, NUL each; ret is the listing's size (nothing written if it exceeds a1).
 * SYSFS_READ (same arguments): an emulated /sys attribute's content, likewise. READLINK (same
 * arguments): an emulated /sys link's target, likewise. FD_LINK (fd, a0, a1): what
 * /proc/PID/fd/FD shows for an emulated fd, likewise.
 * FCNTL (fd, a0 = F_GETFL or F_SETFL, a1 = argument): the emulated file's status flags (F_GETFL's
 * answer; F_SETFL changes the settable ones and answers 0).
 */

/* emu_resp.flags */
enum {
	/* The call made a new file and installed it at the spare fd the request offered (fd2). */
	EMU_RESP_SPARE_USED = 1 << 0,
	/*
	 * The payload starts with u32 n and n i32 fds (before the reason): eventfds of the process the
	 * call took references to. Each is pinned and becomes the process's next token.
	 */
	EMU_RESP_PINS = 1 << 1,
	/* The call emitted notes for this process: apply those up to `seq` before returning. */
	EMU_RESP_SYNC = 1 << 2,
};

struct emu_req {
	uint32_t len;
	uint32_t op;
	int32_t fd;
	int32_t fd2;
	uint64_t a0;
	uint64_t a1;
	uint64_t a2;
};

struct emu_resp {
	uint32_t len;
	uint32_t flags;
	int64_t ret;
	int32_t err;
	uint32_t seq;
};

_Static_assert(sizeof(struct emu_req) == 40, "request header is 40 bytes");
_Static_assert(sizeof(struct emu_resp) == 24, "response header is 24 bytes");
_Static_assert(sizeof(struct emu_note) == 16, "a note is 16 bytes");
#endif
