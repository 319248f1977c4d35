/*
 * Eventfds the daemon signals. When an ioctl names one of the program's own eventfds (VFIO's
 * SET_IRQS), the daemon checks it through /proc/PID/fd and asks the shim to pin it: the shim dups
 * it to a high close-on-exec number, the kernel's eventfd_ctx reference, and the pin takes the
 * process's next token (1, 2, ...). From then on a notify connection — a second socket, opened
 * with the first pin and read by a thread of its own — carries the daemon's notes: "signal token
 * T" (add 1 to the eventfd, as eventfd_signal does) and "put token T" (close the dup).
 *
 * A note emitted while this process's own call was being served is applied before that call
 * returns: the response names the note's sequence number and the caller waits for the thread to
 * get there. So an interrupt raised by a BAR write is visible to a poll() right after it.
 *
 * fork: the child has no notify thread and its copies of the dups pin nothing the daemon knows
 * about, so it closes them; the parent's pins stay the parent's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol.h"
#include "shim.h"

#define PIN_FD_BASE 900

static pthread_mutex_t pin_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pin_cond = PTHREAD_COND_INITIALIZER;
static int *pins;	  /* pins[token - 1]: the dup, or -1 once put */
static uint32_t npins, cap_pins;
static uint64_t applied;	  /* sequence number of the last note applied */
static int notify_fd = -1;
static int notify_dead;	  /* the connection ended: nobody will apply further notes */

REAL(ssize_t, read, int, void *, size_t)
REAL(ssize_t, write, int, const void *, size_t)
REAL(int, close, int)
REAL(int, fcntl, int, int, ...)

static int read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = real_read(fd, (char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += n;
	}
	return 0;
}

static void apply(const struct emu_note *n)
{
	uint64_t one = 1;

	pthread_mutex_lock(&pin_lock);
	if (n->token >= 1 && n->token <= npins && pins[n->token - 1] >= 0) {
		int fd = pins[n->token - 1];
		if (n->op == EMU_NOTE_SIGNAL) {
			/* A full counter refuses (EAGAIN): eventfd_signal saturates likewise. */
			if (real_write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
				fprintf(stderr, "iommufd-emu: signalling eventfd pin %u: %s\n", n->token,
					strerror(errno));
		} else if (n->op == EMU_NOTE_PUT) {
			real_close(fd);
			pins[n->token - 1] = -1;
		}
	}
	if (n->seq > applied)
		applied = n->seq;
	pthread_cond_broadcast(&pin_cond);
	pthread_mutex_unlock(&pin_lock);
}

static void *notify_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct emu_note n;

	while (!read_full(fd, &n, sizeof(n)))
		apply(&n);
	pthread_mutex_lock(&pin_lock);
	notify_dead = 1;
	pthread_cond_broadcast(&pin_cond);
	pthread_mutex_unlock(&pin_lock);
	return NULL;
}

void notify_pin(int fd)
{
	int dup;

	resolve_fcntl();
	resolve_read();
	resolve_write();
	resolve_close();
	/* The daemon checked fd is an eventfd of ours; a failed dup is remembered as put. */
	dup = real_fcntl(fd, F_DUPFD_CLOEXEC, PIN_FD_BASE);
	if (dup < 0)
		fprintf(stderr, "iommufd-emu: cannot pin eventfd %d: %s\n", fd, strerror(errno));
	pthread_mutex_lock(&pin_lock);
	if (npins == cap_pins) {
		uint32_t c = cap_pins ? cap_pins * 2 : 16;
		int *p = realloc(pins, c * sizeof(*p));
		if (!p) {
			pthread_mutex_unlock(&pin_lock);
			if (dup >= 0)
				real_close(dup);
			abort();
		}
		pins = p;
		cap_pins = c;
	}
	pins[npins++] = dup;
	pthread_mutex_unlock(&pin_lock);
}

int notify_start(void)
{
	pthread_t t;
	pthread_attr_t a;
	int fd;

	if (notify_fd >= 0)
		return 0;
	fd = emu_socket(EMU_NOTIFY, getpid(), 0);
	if (fd < 0)
		return -1;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, notify_thread, (void *)(intptr_t)fd)) {
		pthread_attr_destroy(&a);
		real_close(fd);
		errno = EAGAIN;
		return -1;
	}
	pthread_attr_destroy(&a);
	notify_fd = fd;
	return 0;
}

void notify_wait(uint64_t seq)
{
	pthread_mutex_lock(&pin_lock);
	while (applied < seq && !notify_dead && notify_fd >= 0)
		pthread_cond_wait(&pin_cond, &pin_lock);
	pthread_mutex_unlock(&pin_lock);
}

void notify_forked_child(void)
{
	uint32_t i;

	resolve_close();
	pthread_mutex_init(&pin_lock, NULL);
	pthread_cond_init(&pin_cond, NULL);
	for (i = 0; i < npins; i++)
		if (pins[i] >= 0)
			real_close(pins[i]);
	npins = 0;
	applied = 0;
	notify_dead = 0;
	if (notify_fd >= 0)
		real_close(notify_fd);
	notify_fd = -1;
}

/* For tests: how many eventfd pins this process holds (references the daemon has not put). */
int iommufd_emu_pinned_eventfds(void)
{
	uint32_t i;
	int n = 0;

	pthread_mutex_lock(&pin_lock);
	for (i = 0; i < npins; i++)
		n += pins[i] >= 0;
	pthread_mutex_unlock(&pin_lock);
	return n;
}
