/* What the shim's source files share: the daemon round trip and the libc symbols they wrap. */
#ifndef IOMMUFD_EMU_SHIM_H
#define IOMMUFD_EMU_SHIM_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* `real_NAME`, the next definition of NAME after the shim's, looked up once by `resolve_NAME()`. */
#define REAL(ret, name, ...)                                                   \
	static ret (*real_##name)(__VA_ARGS__);                                \
	static void resolve_##name(void)                                       \
	{                                                                      \
		if (!real_##name)                                              \
			real_##name = dlsym(RTLD_NEXT, #name);                 \
	}

/* Internal to the shim: never interposed on the program's own symbols. */
#define SHIM_INTERNAL __attribute__((visibility("hidden")))

/*
 * One request to the daemon (protocol.h), connecting first if this process has not yet. Returns
 * the call's result, or -1 with errno; the response's flags go to *flags when asked for.
 */
SHIM_INTERNAL int64_t emu_rpc_flags(uint32_t op, int fd, int fd2, uint64_t a0, uint64_t a1, uint64_t a2,
		  const void *payload, uint32_t plen, uint32_t *flags);
/* Whether this process has a connection to the daemon (has used an emulated file). */
SHIM_INTERNAL int emu_connected(void);
SHIM_INTERNAL int64_t emu_rpc(uint32_t op, int fd, int fd2, uint64_t a0, uint64_t a1, const void *payload,
	    uint32_t plen);

/* Read (wr = 0) or write exactly len bytes, retrying on EINTR; 0, or -1 on error or EOF. */
SHIM_INTERNAL int emu_full_io(int fd, void *buf, size_t len, int wr);
/* A new connection to the daemon that has said `op` (HELLO-like: a0, a1): its fd, or -1. */
SHIM_INTERNAL int emu_socket(uint32_t op, uint64_t a0, uint64_t a1);
/* notify.c: pin one of the process's eventfds as its next token. */
SHIM_INTERNAL void notify_pin(int fd);
/* notify.c: open the notify connection and start its thread, once. 0 or -1 with errno. */
SHIM_INTERNAL int notify_start(void);
/* notify.c: wait until the notes up to seq are applied. */
SHIM_INTERNAL void notify_wait(uint64_t seq);
/* notify.c: in a forked child, forget the parent's pins and notify connection. */
SHIM_INTERNAL void notify_forked_child(void);

/* Whether fd is an emulated file (the read end of the pipe standing in for it). */
SHIM_INTERNAL int is_emulated(int fd);
/* Whether open() of the absolute path p goes to the daemon (/dev/iommu, /dev/vfio/..., fail-nth). */
SHIM_INTERNAL int emulated_path(const char *p);
/* Whether p is at or below an emulated /sys directory (dir.c). */
SHIM_INTERNAL int emulated_sysfs_path(const char *p);
SHIM_INTERNAL int emulated_dev_dir(const char *p);
/* opendir of an emulated /sys directory. */
#include <dirent.h>
SHIM_INTERNAL DIR *emu_opendir(const char *name);
/* open of an emulated /sys attribute: a real memfd with its text, or -1 with errno. */
SHIM_INTERNAL int sysfs_open(const char *path, int flags);
/*
 * dir.c: the whole answer of a sized request (LISTDIR, SYSFS_READ, READLINK with path; FD_LINK
 * with fd) in a malloc'ed buffer of *len bytes, or NULL with errno.
 */
SHIM_INTERNAL char *emu_fetch(uint32_t op, int fd, const char *path, size_t *len);

/* mmio.c: mmap of an emulated fd (device MMIO trapped and served by the daemon). */
SHIM_INTERNAL void *emu_mmap_io(void *addr, size_t len, int prot, int flags, int fd, off_t off);
/* mmio.c: whether [a, b) overlaps an MMIO mapping; and forgetting what [a, b) held. */
SHIM_INTERNAL int io_hit(uintptr_t a, uintptr_t b);
SHIM_INTERNAL void io_forget(uintptr_t a, uintptr_t b);

#endif
