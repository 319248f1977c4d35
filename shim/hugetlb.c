/*
 * Hugetlb memory for shim clients. Huge pages are the emulated machine's (a pool of 64, as on the
 * oracle), not the host's (often none, and not the emulated kernel's to count): an anonymous
 * MAP_HUGETLB mapping is made of ordinary pages, 2 MiB aligned, and registered with the daemon,
 * which charges the machine's pool (ENOMEM when it is short) and treats the range as huge pages
 * (src/server/remote_mm.ts). munmap, or a MAP_FIXED mapping over it, gives them back; neither may
 * split a huge page (EINVAL, as hugetlb_vm_op_split). MAP_POPULATE is dropped: ordinary pages
 * fault in on first touch, and the daemon faults whole huge pages in when the kernel pins them.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "protocol.h"
#include "shim.h"

REAL(void *, mmap, void *, size_t, int, int, int, off_t)
REAL(void *, mmap64, void *, size_t, int, int, int, off64_t)
REAL(int, munmap, void *, size_t)

/* This process's emulated hugetlb mappings: [start, end), 2 MiB aligned. */
#define HPAGE_SIZE (2UL << 20)
#define MAX_HUGE 256
static pthread_mutex_t huge_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uintptr_t start, end;
} huge[MAX_HUGE];
static int nhuge;

/* Whether [a, b) touches an emulated hugetlb mapping; with `edges`, whether it splits a huge page. */
static int huge_hit(uintptr_t a, uintptr_t b, int edges)
{
	int i, hit = 0;

	pthread_mutex_lock(&huge_lock);
	for (i = 0; i < nhuge; i++) {
		if (huge[i].end <= a || b <= huge[i].start)
			continue;
		hit = 1;
		if (edges && ((a > huge[i].start && a % HPAGE_SIZE) || (b < huge[i].end && b % HPAGE_SIZE)))
			hit = 2;
	}
	pthread_mutex_unlock(&huge_lock);
	return hit;
}

/* [a, b) is no longer mapped as it was: drop it from the table and tell the daemon. */
static void huge_forget(uintptr_t a, uintptr_t b)
{
	int i, n = 0;

	if (!huge_hit(a, b, 0))
		return;
	pthread_mutex_lock(&huge_lock);
	for (i = 0; i < nhuge; i++) {
		uintptr_t s = huge[i].start, e = huge[i].end;
		if (e <= a || b <= s) {
			huge[n++] = huge[i];
			continue;
		}
		if (s < a)
			huge[n].start = s, huge[n++].end = a;
		if (b < e && n < MAX_HUGE)
			huge[n].start = b, huge[n++].end = e;
	}
	nhuge = n;
	pthread_mutex_unlock(&huge_lock);
	emu_rpc(EMU_MUNMAP, -1, -1, a, b - a, NULL, 0);
}

static void *emu_mmap_huge(void *addr, size_t len, int prot, int flags)
{
	size_t hlen = (len + HPAGE_SIZE - 1) & ~(HPAGE_SIZE - 1);
	int size_shift = (flags >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK;
	int rflags = flags & ~(MAP_HUGETLB | (MAP_HUGE_MASK << MAP_HUGE_SHIFT) | MAP_POPULATE);
	uintptr_t p;
	int e;

	if (!len || (size_shift && size_shift != 21) || ((flags & MAP_FIXED) && (uintptr_t)addr % HPAGE_SIZE)) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	pthread_mutex_lock(&huge_lock);
	e = nhuge == MAX_HUGE;
	pthread_mutex_unlock(&huge_lock);
	if (e) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	if (flags & MAP_FIXED) {
		huge_forget((uintptr_t)addr, (uintptr_t)addr + hlen);
		p = (uintptr_t)real_mmap(addr, hlen, prot, rflags, -1, 0);
		if (p == (uintptr_t)MAP_FAILED)
			return MAP_FAILED;
	} else {
		/* Over-map by a huge page and trim to a 2 MiB aligned range. */
		uintptr_t raw = (uintptr_t)real_mmap(NULL, hlen + HPAGE_SIZE, prot,
						     rflags & ~MAP_FIXED_NOREPLACE, -1, 0);
		if (raw == (uintptr_t)MAP_FAILED)
			return MAP_FAILED;
		p = (raw + HPAGE_SIZE - 1) & ~(HPAGE_SIZE - 1);
		if (p > raw)
			real_munmap((void *)raw, p - raw);
		real_munmap((void *)(p + hlen), raw + HPAGE_SIZE - p);
	}
	if (emu_rpc_flags(EMU_MMAP_HUGE, -1, -1, p, hlen, (uint32_t)flags, NULL, 0, NULL) < 0) {
		e = errno;
		real_munmap((void *)p, hlen);
		errno = e;
		return MAP_FAILED;
	}
	pthread_mutex_lock(&huge_lock);
	huge[nhuge].start = p;
	huge[nhuge++].end = p + hlen;
	pthread_mutex_unlock(&huge_lock);
	return (void *)p;
}

static int emulates_huge(int flags)
{
	return (flags & (MAP_HUGETLB | MAP_ANONYMOUS)) == (MAP_HUGETLB | MAP_ANONYMOUS) &&
	       getenv("IOMMUFD_EMU_SOCKET");
}

/* mmap and mmap64 share one body: on x86-64 off_t is already 64 bits. */
static void *mmap_common(void *addr, size_t len, int prot, int flags, int fd, off64_t off, int is64)
{
	void *p;

	resolve_mmap();
	resolve_mmap64();
	resolve_munmap();
	if (emulates_huge(flags))
		return emu_mmap_huge(addr, len, prot, flags);
	if ((flags & MAP_FIXED) && huge_hit((uintptr_t)addr, (uintptr_t)addr + len, 1) == 2) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	if (!(flags & MAP_ANONYMOUS) && is_emulated(fd))
		p = emu_mmap_io(addr, len, prot, flags, fd, off);
	else
		p = is64 ? real_mmap64(addr, len, prot, flags, fd, off) : real_mmap(addr, len, prot, flags, fd, off);
	if (p != MAP_FAILED && (flags & MAP_FIXED))
		huge_forget((uintptr_t)p, (uintptr_t)p + len);
	if (p != MAP_FAILED && (flags & MAP_FIXED) && !is_emulated(fd))
		io_forget((uintptr_t)p, (uintptr_t)p + len);
	return p;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mmap_common(addr, len, prot, flags, fd, off, 0);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	return mmap_common(addr, len, prot, flags, fd, off, 1);
}

int munmap(void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr, b = a + len;
	int r, hit;

	resolve_munmap();
	hit = huge_hit(a, b, 1);
	if (hit == 2) {
		/* A huge page cannot be split (hugetlb_vm_op_split). */
		errno = EINVAL;
		return -1;
	}
	r = real_munmap(addr, len);
	if (!r && hit)
		huge_forget(a, b);
	if (!r && io_hit(a, b))
		io_forget(a, b);
	return r;
}
