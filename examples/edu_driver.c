/*
 * A userspace driver for QEMU's edu device through the VFIO device cdev and iommufd: bind, attach
 * to an IOAS, map a buffer, DMA into the device and back out, and take the completion interrupt as
 * an MSI on an eventfd. Prints the same lines under `iommufd-emu run` and on the real kernel
 * (../shared/oracle/run.sh -v), where the edu device is /dev/vfio/devices/vfio0.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

#define CONFIG_OFF (7ULL << 40) /* VFIO_PCI_CONFIG_REGION_INDEX */
#define IOVA_IN 0x100000ULL
#define IOVA_OUT 0x200000ULL
#define LEN 2048 /* QEMU's edu range check rejects a transfer that ends exactly at 0x41000 */

static int dev;

static int check(const char *what, int r)
{
	printf("%-28s %s\n", what, r < 0 ? strerror(errno) : "ok");
	return r;
}

static uint32_t rd32(uint64_t off)
{
	uint32_t v = ~0u;
	if (pread(dev, &v, 4, off) != 4)
		perror("pread");
	return v;
}

static void wr32(uint64_t off, uint32_t v)
{
	if (pwrite(dev, &v, 4, off) != 4)
		perror("pwrite");
}

static void wr64(uint64_t off, uint64_t v)
{
	if (pwrite(dev, &v, 8, off) != 8)
		perror("pwrite");
}

static int wait_dma(void)
{
	for (int i = 0; i < 100000; i++)
		if (!(rd32(0x98) & 1))
			return 0;
	return -1;
}

int main(void)
{
	int iommufd = open("/dev/iommu", O_RDWR);
	dev = open("/dev/vfio/devices/vfio0", O_RDWR);
	if (check("open", iommufd < 0 || dev < 0 ? -1 : 0) < 0)
		return 1;

	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = iommufd };
	if (check("VFIO_DEVICE_BIND_IOMMUFD", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind)) < 0)
		return 1;
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	check("IOMMU_IOAS_ALLOC", ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc));
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach), .pt_id = alloc.out_ioas_id };
	if (check("VFIO_DEVICE_ATTACH_IOMMUFD_PT", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach)) < 0)
		return 1;
	printf("devid %u ioas %u hwpt %u\n", bind.out_devid, alloc.out_ioas_id, attach.pt_id);

	struct vfio_device_info info = { .argsz = sizeof(info) };
	check("VFIO_DEVICE_GET_INFO", ioctl(dev, VFIO_DEVICE_GET_INFO, &info));
	printf("flags %#x regions %u irqs %u\n", info.flags, info.num_regions, info.num_irqs);
	struct vfio_region_info bar0 = { .argsz = sizeof(bar0), .index = VFIO_PCI_BAR0_REGION_INDEX };
	check("VFIO_DEVICE_GET_REGION_INFO", ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &bar0));
	printf("bar0 size %#llx flags %#x\n", (unsigned long long)bar0.size, bar0.flags);

	uint16_t ids[2];
	pread(dev, ids, 4, CONFIG_OFF);
	printf("vendor %04x device %04x\n", ids[0], ids[1]);
	printf("identification %#010x\n", rd32(0x00));
	wr32(0x04, 0x12345678);
	printf("liveness %#010x\n", rd32(0x04));
	wr32(0x08, 10);
	while (rd32(0x20) & 1)
		;
	printf("factorial(10) %u\n", rd32(0x08));

	/* Bus master on, so the device can DMA (and send MSIs). */
	uint16_t cmd;
	pread(dev, &cmd, 2, CONFIG_OFF + 4);
	cmd |= 0x4;
	pwrite(dev, &cmd, 2, CONFIG_OFF + 4);

	/* MSI vector 0 -> eventfd. */
	int efd = eventfd(0, EFD_NONBLOCK);
	char irqbuf[sizeof(struct vfio_irq_set) + sizeof(int)];
	struct vfio_irq_set *irq = (void *)irqbuf;
	*irq = (struct vfio_irq_set){ .argsz = sizeof(irqbuf), .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
				     .index = VFIO_PCI_MSI_IRQ_INDEX, .start = 0, .count = 1 };
	memcpy(irq->data, &efd, sizeof(int));
	check("VFIO_DEVICE_SET_IRQS (MSI)", ioctl(dev, VFIO_DEVICE_SET_IRQS, irq));

	uint8_t *in = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *out = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < LEN; i++)
		in[i] = (uint8_t)(i * 7 + 3);
	struct iommu_ioas_map map = { .size = sizeof(map), .ioas_id = alloc.out_ioas_id, .length = 4096,
				      .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE };
	map.user_va = (uintptr_t)in;
	map.iova = IOVA_IN;
	check("IOMMU_IOAS_MAP in", ioctl(iommufd, IOMMU_IOAS_MAP, &map));
	map.user_va = (uintptr_t)out;
	map.iova = IOVA_OUT;
	check("IOMMU_IOAS_MAP out", ioctl(iommufd, IOMMU_IOAS_MAP, &map));

	/* RAM -> device buffer, then device buffer -> RAM with the completion interrupt. */
	wr64(0x80, IOVA_IN);
	wr64(0x88, 0x40000);
	wr64(0x90, LEN);
	wr64(0x98, 1);
	printf("dma to device %s\n", wait_dma() ? "timed out" : "done");
	wr64(0x80, 0x40000);
	wr64(0x88, IOVA_OUT);
	wr64(0x90, LEN);
	wr64(0x98, 1 | 2 | 4);
	printf("dma to memory %s\n", wait_dma() ? "timed out" : "done");

	struct pollfd pfd = { .fd = efd, .events = POLLIN };
	int n = poll(&pfd, 1, 5000);
	uint64_t count = 0;
	if (n == 1)
		read(efd, &count, 8);
	printf("msi: %s, count %llu, interrupt status %#x\n", n == 1 ? "signalled" : "not signalled", (unsigned long long)count, rd32(0x24));
	wr32(0x64, rd32(0x24));
	printf("buffers %s\n", memcmp(in, out, LEN) ? "differ" : "match");

	struct vfio_device_detach_iommufd_pt detach = { .argsz = sizeof(detach) };
	check("VFIO_DEVICE_DETACH_IOMMUFD_PT", ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &detach));
	close(dev);
	close(iommufd);
	return 0;
}
