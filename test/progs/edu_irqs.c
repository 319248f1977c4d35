/*
 * The edu device's MSI routed to the program's own eventfds: SET_IRQS refusals for a closed fd and
 * a non-eventfd, an interrupt raised by a BAR write visible to poll() at once, one raised by a
 * forked child landing on the parent's eventfd, and the references vfio-pci holds dropped when MSI
 * is disabled and when the device file closes. Prints the same lines on the real kernel (oracle
 * -v) and under `iommufd-emu run`.
 *
 * Under the shim, the eventfds vfio-pci holds are dups the shim keeps at fd 900 and up; they are
 * left out of the count and checked against the shim's own tally instead (a leak prints a line the
 * real kernel never prints).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define BAR0 0ULL
#define CONFIG_OFF (7ULL << 40)

static int dev;

/* The shim's tally of pinned eventfds; absent on the real kernel. */
extern int iommufd_emu_pinned_eventfds(void) __attribute__((weak));
#define PIN_FD_BASE 900

static void wr32(uint64_t off, uint32_t v)
{
	if (pwrite(dev, &v, 4, BAR0 + off) != 4)
		perror("pwrite");
}

static uint32_t rd32(uint64_t off)
{
	uint32_t v = 0;
	if (pread(dev, &v, 4, BAR0 + off) != 4)
		perror("pread");
	return v;
}

static int msi(int fd, uint32_t flags, uint32_t count)
{
	char buf[sizeof(struct vfio_irq_set) + sizeof(int)];
	struct vfio_irq_set *s = (void *)buf;

	*s = (struct vfio_irq_set){ .argsz = sizeof(buf), .flags = flags | VFIO_IRQ_SET_ACTION_TRIGGER,
				   .index = VFIO_PCI_MSI_IRQ_INDEX, .start = 0, .count = count };
	memcpy(s->data, &fd, sizeof(fd));
	return ioctl(dev, VFIO_DEVICE_SET_IRQS, s) ? -errno : 0;
}

/* How many of this process's own fds are eventfds; `held` of them are vfio-pci's references. */
static int eventfds(int held)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char path[64], link[64];
	int n = 0;

	while ((e = readdir(d))) {
		ssize_t l;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		l = readlink(path, link, sizeof(link) - 1);
		if (l > 0 && atoi(e->d_name) < PIN_FD_BASE) {
			link[l] = 0;
			n += !strcmp(link, "anon_inode:[eventfd]");
		}
	}
	closedir(d);
	if (iommufd_emu_pinned_eventfds && iommufd_emu_pinned_eventfds() != held)
		printf("the shim pins %d eventfds, vfio-pci holds %d\n", iommufd_emu_pinned_eventfds(), held);
	return n;
}

/* The eventfd's count after waiting up to `ms` for it, 0 if it never fired. */
static uint64_t wait_count(int efd, int ms)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint64_t c = 0;

	if (poll(&p, 1, ms) == 1 && read(efd, &c, 8) != 8)
		c = 0;
	return c;
}

int main(void)
{
	int iommufd = open("/dev/iommu", O_RDWR);
	int p[2];
	uint16_t cmd;

	dev = open("/dev/vfio/devices/vfio0", O_RDWR);
	if (iommufd < 0 || dev < 0 || pipe(p)) {
		printf("open failed\n");
		return 1;
	}
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = iommufd };
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind);
	ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc);
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach), .pt_id = alloc.out_ioas_id };
	printf("attach %d\n", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach));
	pread(dev, &cmd, 2, CONFIG_OFF + 4);
	cmd |= 0x4;
	pwrite(dev, &cmd, 2, CONFIG_OFF + 4);

	int efd = eventfd(0, EFD_NONBLOCK);
	printf("msi to closed fd 999: %d\n", msi(999, VFIO_IRQ_SET_DATA_EVENTFD, 1));
	printf("msi to a pipe: %d\n", msi(p[0], VFIO_IRQ_SET_DATA_EVENTFD, 1));
	printf("msi to the eventfd: %d\n", msi(efd, VFIO_IRQ_SET_DATA_EVENTFD, 1));
	printf("eventfds open: %d\n", eventfds(1));

	wr32(0x60, 0x10);
	printf("raised here: count %llu at once, status %#x\n", (unsigned long long)wait_count(efd, 0), rd32(0x24));
	wr32(0x64, 0x10);

	pid_t child = fork();
	if (child == 0) {
		wr32(0x60, 0x20);
		_exit(0);
	}
	waitpid(child, NULL, 0);
	printf("raised by a child: count %llu, status %#x\n", (unsigned long long)wait_count(efd, 5000), rd32(0x24));
	wr32(0x64, 0x20);

	printf("msi disabled: %d\n", msi(-1, VFIO_IRQ_SET_DATA_NONE, 0));
	printf("eventfds open: %d\n", eventfds(0));
	wr32(0x60, 0x40);
	printf("raised while disabled: count %llu\n", (unsigned long long)wait_count(efd, 100));
	wr32(0x64, 0x40);

	int efd2 = eventfd(0, EFD_NONBLOCK);
	printf("msi to a second eventfd: %d\n", msi(efd2, VFIO_IRQ_SET_DATA_EVENTFD, 1));
	printf("eventfds open: %d\n", eventfds(1));
	close(dev);
	printf("device closed, eventfds open: %d\n", eventfds(0));
	close(iommufd);
	return 0;
}
