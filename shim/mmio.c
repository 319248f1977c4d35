/*
 * mmap of an emulated device file (a vfio-pci BAR): MMIO the program touches with plain loads and
 * stores. The daemon checks the mapping as do_mmap and the driver would (EMU_MMAP) and names it;
 * the shim reserves the address range with no access, so every load or store faults. The SIGSEGV
 * handler finds the mapping, decodes the faulting instruction, does the access through the daemon
 * (EMU_MMIO: the driver's fault path, then the device model's register), puts a load's value in
 * the destination register and resumes after the instruction. An access the kernel would answer
 * with SIGBUS (memory decoding off) raises SIGBUS; a store to a read-only mapping is SIGSEGV.
 *
 * Decoded (x86-64): mov between a general register and memory in every width (88/89/8A/8B, with
 * 66/REX prefixes), mov of an immediate to memory (C6/C7), movzx/movsx from memory (0F B6/B7/BE/BF)
 * and movsxd (REX.W 63) — what compilers emit for volatile MMIO accesses. Anything else (string
 * moves, SSE, read-modify-write instructions) is reported on stderr and kills the program with
 * SIGSEGV rather than guessing.
 *
 * Faults outside these mappings go to the handler the program had before (or the default action).
 * A program that installs its own SIGSEGV handler afterwards takes the faults itself. A forked
 * child has the mappings too (the daemon copies them at fork, as the kernel copies VMAs), whatever
 * its parent does with its own; munmap, or a mapping placed over one, gives a mapping back (when
 * none of it is left).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "protocol.h"
#include "shim.h"

REAL(void *, mmap, void *, size_t, int, int, int, off_t)
REAL(int, munmap, void *, size_t)

#define MAX_IO 64

/* [start, end) maps bytes [base, base + end - start) of daemon mapping `id`. */
static struct {
	uintptr_t start, end, base;
	uint64_t id;
	int prot;
} io[MAX_IO];
static int nio;
static pthread_mutex_t io_lock = PTHREAD_MUTEX_INITIALIZER;


int io_hit(uintptr_t a, uintptr_t b)
{
	int i, hit = 0;

	pthread_mutex_lock(&io_lock);
	for (i = 0; i < nio; i++)
		if (io[i].start < b && a < io[i].end)
			hit = 1;
	pthread_mutex_unlock(&io_lock);
	return hit;
}

/* [a, b) is no longer mapped as it was: trim the table; mappings left with nothing go back. */
void io_forget(uintptr_t a, uintptr_t b)
{
	uint64_t gone[MAX_IO];
	int i, n = 0, ngone = 0;

	pthread_mutex_lock(&io_lock);
	for (i = 0; i < nio; i++) {
		uintptr_t s = io[i].start, e = io[i].end;
		int kept = 0;
		if (e <= a || b <= s) {
			io[n++] = io[i];
			continue;
		}
		if (s < a) {
			io[n] = io[i];
			io[n++].end = a;
			kept = 1;
		}
		if (b < e && n < MAX_IO) {
			io[n] = io[i];
			io[n].base += b - s;
			io[n++].start = b;
			kept = 1;
		}
		if (!kept)
			gone[ngone++] = io[i].id;
	}
	nio = n;
	/* A mapping split in two stays one daemon mapping until both halves are gone. */
	for (i = 0; i < ngone; i++) {
		int j, still = 0;
		for (j = 0; j < nio; j++)
			still |= io[j].id == gone[i];
		if (still)
			gone[i] = 0;
	}
	pthread_mutex_unlock(&io_lock);
	for (i = 0; i < ngone; i++)
		if (gone[i])
			emu_rpc(EMU_MUNMAP_IO, -1, -1, gone[i], 0, NULL, 0);
}

#if !defined(__x86_64__)
/* The fault handler decodes x86-64 instructions; elsewhere device files cannot be mapped. */
void *emu_mmap_io(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	(void)addr, (void)len, (void)prot, (void)flags, (void)fd, (void)off;
	errno = ENODEV;
	return MAP_FAILED;
}
#else
static struct sigaction old_segv;
static int handler_installed;

static void segv(int sig, siginfo_t *si, void *uc);

static int install_handler(void)
{
	struct sigaction sa;

	if (handler_installed)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = segv;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, &old_segv))
		return -1;
	handler_installed = 1;
	return 0;
}

/* The mapping that holds address a; 0 if none (its entry copied to *out). */
static int find(uintptr_t a, uintptr_t *off, uint64_t *id, int *prot)
{
	int i, hit = 0;

	pthread_mutex_lock(&io_lock);
	for (i = 0; i < nio; i++) {
		if (a >= io[i].start && a < io[i].end) {
			*off = io[i].base + (a - io[i].start);
			*id = io[i].id;
			*prot = io[i].prot;
			hit = 1;
			break;
		}
	}
	pthread_mutex_unlock(&io_lock);
	return hit;
}

void *emu_mmap_io(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	int64_t id;
	void *p;
	int e;

	resolve_mmap();
	resolve_munmap();
	id = emu_rpc_flags(EMU_MMAP, fd, -1, len, (uint32_t)prot | (uint64_t)(uint32_t)flags << 32, (uint64_t)off,
			   NULL, 0, NULL);
	if (id < 0)
		return MAP_FAILED;
	pthread_mutex_lock(&io_lock);
	e = nio == MAX_IO;
	pthread_mutex_unlock(&io_lock);
	if (e || install_handler()) {
		emu_rpc(EMU_MUNMAP_IO, -1, -1, id, 0, NULL, 0);
		errno = ENOMEM;
		return MAP_FAILED;
	}
	len = (len + 4095) & ~(size_t)4095;
	p = real_mmap(addr, len, PROT_NONE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)), -1, 0);
	if (p == MAP_FAILED) {
		e = errno;
		emu_rpc(EMU_MUNMAP_IO, -1, -1, id, 0, NULL, 0);
		errno = e;
		return MAP_FAILED;
	}
	io_forget((uintptr_t)p, (uintptr_t)p + len);
	pthread_mutex_lock(&io_lock);
	io[nio].start = (uintptr_t)p;
	io[nio].end = (uintptr_t)p + len;
	io[nio].base = 0;
	io[nio].id = (uint64_t)id;
	io[nio++].prot = prot;
	pthread_mutex_unlock(&io_lock);
	return p;
}

/* A decoded memory access: its width, direction, and where the value comes from or goes. */
struct insn {
	int len;	/* instruction bytes */
	int size;	/* access width */
	int store;
	int reg;	/* register operand (0-15), -1 for an immediate */
	int high8;	/* AH/CH/DH/BH */
	uint64_t imm;
	int dst_size;	/* loads: destination register width (movzx/movsx widen) */
	int sign;	/* movsx/movsxd */
};

/* x86 register number -> ucontext gregs index. */
static const int greg[16] = { REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
			      REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15 };

/* ModRM (+SIB, displacement) length from the ModRM byte at p; -1 for a register operand. */
static int modrm_len(const uint8_t *p)
{
	int mod = p[0] >> 6, rm = p[0] & 7, n = 1;

	if (mod == 3)
		return -1;
	if (rm == 4) {
		n++;
		if (mod == 0 && (p[1] & 7) == 5)
			n += 4;
	} else if (mod == 0 && rm == 5) {
		n += 4;
	}
	if (mod == 1)
		n += 1;
	else if (mod == 2)
		n += 4;
	return n;
}

static int decode(const uint8_t *p, struct insn *d)
{
	int i = 0, opsize = 0, rex = 0, op, m;

	memset(d, 0, sizeof(*d));
	for (;; i++) {
		if (p[i] == 0x66)
			opsize = 1;
		else if (p[i] == 0x2e || p[i] == 0x3e || p[i] == 0x26 || p[i] == 0x36 || p[i] == 0x64 ||
			 p[i] == 0x65 || p[i] == 0x67)
			continue;
		else
			break;
	}
	if ((p[i] & 0xf0) == 0x40)
		rex = p[i++];
	op = p[i++];
	d->size = rex & 8 ? 8 : opsize ? 2 : 4;
	d->dst_size = d->size;
	if (op == 0x0f) {
		op = 0x100 | p[i++];
		if (op != 0x1b6 && op != 0x1b7 && op != 0x1be && op != 0x1bf)
			return -1;
		d->size = op & 1 ? 2 : 1;
		d->sign = op >= 0x1be;
	} else if (op == 0x88 || op == 0x8a || op == 0xc6) {
		d->size = 1;
		d->dst_size = 1;
	} else if (op == 0x63) {
		if (!(rex & 8))
			return -1;
		d->size = 4;
		d->sign = 1;
	} else if (op != 0x89 && op != 0x8b && op != 0xc7) {
		return -1;
	}
	m = modrm_len(p + i);
	if (m < 0)
		return -1;
	d->reg = ((p[i] >> 3) & 7) | (rex & 4 ? 8 : 0);
	if ((op == 0xc6 || op == 0xc7) && ((p[i] >> 3) & 7))
		return -1;
	d->high8 = d->dst_size == 1 && !rex && d->reg >= 4 && d->reg < 8;
	if (d->high8 && (op == 0x88 || op == 0x8a))
		d->reg -= 4;
	i += m;
	d->store = op == 0x88 || op == 0x89 || op == 0xc6 || op == 0xc7;
	if (op == 0xc6) {
		d->reg = -1;
		d->imm = p[i++];
	} else if (op == 0xc7) {
		d->reg = -1;
		if (d->size == 2) {
			d->imm = (uint16_t)(p[i] | p[i + 1] << 8);
			i += 2;
		} else {
			int32_t v;
			memcpy(&v, p + i, 4);
			d->imm = d->size == 8 ? (uint64_t)(int64_t)v : (uint32_t)v;
			i += 4;
		}
	}
	d->len = i;
	return 0;
}

static uint64_t mask(int size)
{
	return size == 8 ? ~0ULL : (1ULL << (8 * size)) - 1;
}

/* What the program's SIGSEGV handling would have done with a fault that is not ours. */
static void chain(int sig, siginfo_t *si, void *uc)
{
	if (old_segv.sa_flags & SA_SIGINFO) {
		old_segv.sa_sigaction(sig, si, uc);
	} else if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) {
		old_segv.sa_handler(sig);
	} else {
		/* Back to the default action: the instruction faults again and the program dies. */
		signal(SIGSEGV, SIG_DFL);
		handler_installed = 0;
	}
}

static void segv(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	greg_t *g = uc->uc_mcontext.gregs;
	uintptr_t off;
	uint64_t id, val = 0;
	int prot, e = errno;
	struct insn d;
	int64_t r;

	if (!find((uintptr_t)si->si_addr, &off, &id, &prot)) {
		chain(sig, si, ucv);
		errno = e;
		return;
	}
	if (decode((const uint8_t *)g[REG_RIP], &d)) {
		const uint8_t *ip = (const uint8_t *)g[REG_RIP];
		fprintf(stderr, "iommufd-emu: MMIO access at %p by an instruction the shim does not emulate "
				"(%02x %02x %02x %02x %02x)\n", si->si_addr, ip[0], ip[1], ip[2], ip[3], ip[4]);
		signal(SIGSEGV, SIG_DFL);
		return;
	}
	if ((d.store && !(prot & PROT_WRITE)) || (!d.store && !(prot & PROT_READ))) {
		chain(sig, si, ucv);
		errno = e;
		return;
	}
	if (d.store) {
		uint64_t v = d.reg < 0 ? d.imm : (uint64_t)g[greg[d.reg]] >> (d.high8 ? 8 : 0);
		val = v & mask(d.size);
	}
	errno = 0;
	r = emu_rpc_flags(EMU_MMIO, -1, -1, id, off, (uint64_t)d.size | (d.store ? 0x100 : 0), d.store ? &val : NULL,
			  d.store ? sizeof(val) : 0, NULL);
	if (r == -1 && errno) {
		/* The driver's fault handler said SIGBUS (vfio_pci_mmap_fault with memory decoding off). */
		raise(SIGBUS);
		errno = e;
		return;
	}
	if (!d.store) {
		uint64_t v = (uint64_t)r & mask(d.size);
		uint64_t *dst = (uint64_t *)&g[greg[d.reg]];
		if (d.sign && d.size < 8 && (v >> (8 * d.size - 1)) & 1)
			v |= ~mask(d.size);
		if (d.high8)
			*dst = (*dst & ~0xff00ULL) | (v & 0xff) << 8;
		else if (d.dst_size >= 4)
			*dst = d.dst_size == 4 ? (uint32_t)v : v;
		else
			*dst = (*dst & ~mask(d.dst_size)) | (v & mask(d.dst_size));
	}
	g[REG_RIP] += d.len;
	errno = e;
}
#endif
