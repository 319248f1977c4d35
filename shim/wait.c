/*
 * Reaping: a connected parent whose wait*() reaps a child tells the daemon, so the child's
 * emulated exit (its files released, its address space gone) has happened before the parent's
 * next call, as the kernel's exit_mm and exit_files precede the parent's waitpid. Without this the
 * child's exit would wait for the daemon to notice its closed socket, racing the parent.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "protocol.h"
#include "shim.h"

REAL(pid_t, wait, int *)
REAL(pid_t, waitpid, pid_t, int *, int)
REAL(pid_t, wait3, int *, int, struct rusage *)
REAL(pid_t, wait4, pid_t, int *, int, struct rusage *)
REAL(int, waitid, idtype_t, id_t, siginfo_t *, int)

/* The real process `pid` is gone (its parent reaped it): end its emulated process now. */
static void reaped(pid_t pid, int gone)
{
	if (pid > 0 && gone && emu_connected())
		emu_rpc(EMU_REAPED, -1, -1, (uint64_t)pid, 0, NULL, 0);
}

pid_t wait(int *status)
{
	int st = 0, e;
	pid_t r;

	resolve_wait();
	r = real_wait(&st);
	e = errno;
	if (r > 0 && status)
		*status = st;
	reaped(r, WIFEXITED(st) || WIFSIGNALED(st));
	errno = e;
	return r;
}

pid_t waitpid(pid_t pid, int *status, int options)
{
	int st = 0, e;
	pid_t r;

	resolve_waitpid();
	r = real_waitpid(pid, &st, options);
	e = errno;
	if (r > 0 && status)
		*status = st;
	reaped(r, WIFEXITED(st) || WIFSIGNALED(st));
	errno = e;
	return r;
}

pid_t wait3(int *status, int options, struct rusage *ru)
{
	int st = 0, e;
	pid_t r;

	resolve_wait3();
	r = real_wait3(&st, options, ru);
	e = errno;
	if (r > 0 && status)
		*status = st;
	reaped(r, WIFEXITED(st) || WIFSIGNALED(st));
	errno = e;
	return r;
}

pid_t wait4(pid_t pid, int *status, int options, struct rusage *ru)
{
	int st = 0, e;
	pid_t r;

	resolve_wait4();
	r = real_wait4(pid, &st, options, ru);
	e = errno;
	if (r > 0 && status)
		*status = st;
	reaped(r, WIFEXITED(st) || WIFSIGNALED(st));
	errno = e;
	return r;
}

int waitid(idtype_t idtype, id_t id, siginfo_t *info, int options)
{
	int r, e;

	resolve_waitid();
	r = real_waitid(idtype, id, info, options);
	e = errno;
	if (!r && info && !(options & WNOWAIT))
		reaped(info->si_pid, info->si_code == CLD_EXITED || info->si_code == CLD_KILLED ||
					     info->si_code == CLD_DUMPED);
	errno = e;
	return r;
}
