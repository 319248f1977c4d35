/* Finding a VFIO device the way programs do, through the preload shim: /sys/bus/pci/devices/BDF
 * links and attributes, the vfio-dev directory, the device cdev's fd in /proc/self/fd and its
 * status flags, and a BAR mapped and used with ordinary loads and stores (register, immediate,
 * 8-byte, sign-extending). vfio_sysfs.expected is its output on the real 6.12 kernel
 * (../shared/oracle/run.sh -v). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

#define DEV "/sys/bus/pci/devices/0000:00:03.0"

static void link_of(const char *path)
{
	char buf[256];
	ssize_t n = readlink(path, buf, sizeof(buf));
	printf("%s -> %.*s\n", path, n > 0 ? (int)n : 1, n > 0 ? buf : "?");
}

static void attr(const char *path)
{
	char buf[256] = "";
	FILE *f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof(buf), f))
		strcpy(buf, "?\n");
	if (f)
		fclose(f);
	printf("%s = %s", path, buf);
}

int main(void)
{
	char path[256], name[64] = "";
	struct dirent *e;
	DIR *d;

	link_of(DEV);
	link_of(DEV "/iommu_group");
	link_of(DEV "/driver");
	attr(DEV "/vendor");
	attr(DEV "/class");
	d = opendir(DEV "/vfio-dev");
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			snprintf(name, sizeof(name), "%s", e->d_name);
	if (d)
		closedir(d);
	printf("vfio-dev: %s\n", name);
	snprintf(path, sizeof(path), DEV "/vfio-dev/%s/dev", name);
	attr(path);
	attr("/sys/class/vfio/3/dev");
	{
		unsigned char cfg[64];
		int fd = open(DEV "/config", O_RDONLY);
		ssize_t n = pread(fd, cfg, sizeof(cfg), 0);
		printf("config: %zd bytes, vendor %02x%02x class %02x%02x%02x\n", n, cfg[1], cfg[0], cfg[0xb], cfg[0xa], cfg[9]);
		close(fd);
	}

	int ifd = open("/dev/iommu", O_RDWR);
	snprintf(path, sizeof(path), "/dev/vfio/devices/%s", name);
	int dev = open(path, O_RDWR | O_CLOEXEC);
	char fdpath[64], target[128];
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", dev);
	ssize_t n = readlink(fdpath, target, sizeof(target));
	printf("fd link: %.*s\n", n > 0 ? (int)n : 1, n > 0 ? target : "?");
	printf("F_GETFL: 0x%x\n", fcntl(dev, F_GETFL));
	printf("F_SETFL O_NONBLOCK: %d\n", fcntl(dev, F_SETFL, O_NONBLOCK));
	printf("F_GETFL: 0x%x\n", fcntl(dev, F_GETFL));
	printf("readlink truncated to 4: %zd\n", readlink(fdpath, target, 4));

	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = ifd };
	printf("bind: %d\n", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind));
	volatile uint8_t *bar = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, dev, 0);
	if (bar == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	volatile uint32_t *r32 = (volatile uint32_t *)bar;
	volatile uint64_t *r64 = (volatile uint64_t *)bar;
	printf("id: 0x%08x\n", r32[0]);
	r32[1] = 0x0f0f0f0f;
	printf("liveness after imm store: 0x%08x\n", r32[1]);
	uint32_t v = 0x12345678;
	__asm__ volatile("movl %0, 4(%1)" : : "r"(v), "r"(bar) : "memory");
	printf("liveness after reg store: 0x%08x\n", r32[1]);
	r64[0x80 / 8] = 0x1122334455667788ULL;
	printf("dma src (8-byte): 0x%016llx\n", (unsigned long long)r64[0x80 / 8]);
	int64_t s;
	__asm__ volatile("movslq 4(%1), %0" : "=r"(s) : "r"(bar) : "memory");
	printf("movslq of liveness: %lld\n", (long long)s);
	printf("munmap: %d\n", munmap((void *)bar, 4096));
	close(dev);
	close(ifd);
	return 0;
}
