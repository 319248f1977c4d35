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
 * The kernel can also read a pin (VFIO_DEVICE_IOEVENTFD: a register write each time the program
 * writes the eventfd). "watch token T" adds the pin to what the thread polls; when it is readable
 * the thread reads it, consuming the count as the kernel's wait-queue callback does, and sends
 * "fired T" back on the same connection. (A count already pending when the watch starts is
 * consumed too; the kernel leaves that one in place.) The read never blocks: RWF_NOWAIT, since
 * the dup shares O_NONBLOCK with the program's fd.
 *
 * fork: the child has no notify thread and its copies of the dups pin nothing the daemon knows
 * about, so it closes them; the parent's pins stay the parent's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "protocol.h"
#include "shim.h"

#define PIN_FD_BASE 900

static pthread_mutex_t pin_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pin_cond = PTHREAD_COND_INITIALIZER;
static int *pins;	  /* pins[token - 1]: the dup, or -1 once put */
static char *watched;	  /* watched[token - 1]: the kernel reads the pin */
/* WATCH notes that overtook their pin (the pin comes with the response of the same call). */
#define MAX_EARLY 64
static uint32_t early[MAX_EARLY], nearly;
static uint32_t npins, cap_pins;
static uint64_t applied;	  /* sequence number of the last note applied */
static int notify_fd = -1;
static int wake_fd = -1;	  /* an eventfd the thread polls: its watch set grew */
static int notify_dead;	  /* the connection ended: nobody will apply further notes */

REAL(ssize_t, read, int, void *, size_t)
REAL(ssize_t, write, int, const void *, size_t)
REAL(int, close, int)
REAL(int, fcntl, int, int, ...)

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
			watched[n->token - 1] = 0;
		} else if (n->op == EMU_NOTE_WATCH || n->op == EMU_NOTE_UNWATCH) {
			watched[n->token - 1] = n->op == EMU_NOTE_WATCH;
		}
	} else if (n->token > npins && (n->op == EMU_NOTE_WATCH || n->op == EMU_NOTE_UNWATCH)) {
		uint32_t i, k = 0;
		for (i = 0; i < nearly; i++)
			if (early[i] != n->token)
				early[k++] = early[i];
		nearly = k;
		if (n->op == EMU_NOTE_WATCH && nearly < MAX_EARLY)
			early[nearly++] = n->token;
	}
	if (n->seq > applied)
		applied = n->seq;
	pthread_cond_broadcast(&pin_cond);
	pthread_mutex_unlock(&pin_lock);
}

/* A watched pin is readable: take its count (without blocking) and tell the daemon. */
static int fired(int sock, uint32_t token, int fd)
{
	uint64_t cnt;
	struct iovec iov = { .iov_base = &cnt, .iov_len = sizeof(cnt) };
	struct emu_note n = { .op = EMU_NOTE_FIRED, .token = token };
	ssize_t r = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);

	if (r < 0 && errno == EOPNOTSUPP)
		r = real_read(fd, &cnt, sizeof(cnt));
	if (r != sizeof(cnt))
		return 0;
	return real_write(sock, &n, sizeof(n)) == sizeof(n) ? 0 : -1;
}

/* Wait for a note from the daemon or a watched pin to become readable. */
static void *notify_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct emu_note n;
	struct pollfd *pfd = NULL;
	uint32_t *tok = NULL, cap = 0;

	for (;;) {
		uint32_t i, k;

		pthread_mutex_lock(&pin_lock);
		if (cap < npins + 2) {
			cap = npins + 16;
			pfd = realloc(pfd, cap * sizeof(*pfd));
			tok = realloc(tok, cap * sizeof(*tok));
			if (!pfd || !tok)
				abort();
		}
		pfd[0] = (struct pollfd){ .fd = fd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = wake_fd, .events = POLLIN };
		k = 2;
		for (i = 0; i < npins; i++) {
			if (!watched[i] || pins[i] < 0)
				continue;
			pfd[k] = (struct pollfd){ .fd = pins[i], .events = POLLIN };
			tok[k++] = i + 1;
		}
		pthread_mutex_unlock(&pin_lock);
		if (poll(pfd, k, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents) {
			if (emu_full_io(fd, &n, sizeof(n), 0))
				break;
			apply(&n);
			continue; /* the watch set may have changed */
		}
		if (pfd[1].revents) {
			uint64_t cnt;
			if (real_read(wake_fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
				break;
			continue;
		}
		for (i = 2; i < k; i++)
			if ((pfd[i].revents & POLLIN) && fired(fd, tok[i], pfd[i].fd))
				goto out;
	}
out:
	free(pfd);
	free(tok);
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
		char *w = p ? realloc(watched, c) : NULL;
		if (!w) {
			pthread_mutex_unlock(&pin_lock);
			if (dup >= 0)
				real_close(dup);
			abort();
		}
		pins = p;
		watched = w;
		cap_pins = c;
	}
	watched[npins] = 0;
	pins[npins++] = dup;
	for (uint32_t i = 0; i < nearly; i++) {
		if (early[i] == npins) {
			uint64_t one = 1;
			watched[npins - 1] = 1;
			early[i] = early[--nearly];
			/* The thread's poll set just grew. */
			if (wake_fd >= 0 && real_write(wake_fd, &one, sizeof(one)) < 0)
				fprintf(stderr, "iommufd-emu: waking the notify thread: %s\n", strerror(errno));
			break;
		}
	}
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
	wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (wake_fd >= 0) {
		int h = real_fcntl(wake_fd, F_DUPFD_CLOEXEC, PIN_FD_BASE);
		if (h >= 0) {
			real_close(wake_fd);
			wake_fd = h;
		}
	}
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
	if (wake_fd >= 0)
		real_close(wake_fd);
	wake_fd = -1;
	nearly = 0;
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
