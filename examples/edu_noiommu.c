/*
 * A userspace driver for QEMU's edu device with no IOMMU at all: vfio's noiommu mode (root with
 * CAP_SYS_RAWIO, a kernel booted with vfio.enable_unsafe_noiommu_mode=1). The device is reached
 * through its noiommu group and a container set to VFIO_NOIOMMU_IOMMU; nothing translates its
 * DMA, so the driver locks its buffers in memory, looks their physical addresses up in
 * /proc/self/pagemap (PFNs need CAP_SYS_ADMIN) and programs those. edu masks DMA addresses to 28
 * bits, so the buffers must sit below 256 MiB. Prints the same lines under
 * `iommufd-emu run --root --noiommu` and under test/oracle/noiommu.sh (the oracle guest without VT-d).
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
#include <linux/vfio.h>

#define CONFIG_OFF (7ULL << 40) /* VFIO_PCI_CONFIG_REGION_INDEX */
#define LEN 2048
#define EDU_DMA_LIMIT (1ULL << 28)
#define CHUNK (256 * 4096)

static int dev;

static int check(const char *what, int r)
{
	printf("%-32s %s\n", what, r < 0 ? strerror(errno) : "ok");
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

/* The physical address of the page at va (locked, so it stays put), or 0. */
static uint64_t phys_of(int pagemap, void *va)
{
	uint64_t e = 0;
	if (pread(pagemap, &e, 8, (uintptr_t)va / 4096 * 8) != 8 || !(e >> 63))
		return 0;
	return (e & ((1ULL << 55) - 1)) * 4096;
}

/* Two locked pages the device can reach (below 28 bits), from chunks of anonymous memory. */
static int dma_pages(int pagemap, uint8_t **va, uint64_t *pa)
{
	int found = 0;
	for (int tries = 0; tries < 64 && found < 2; tries++) {
		uint8_t *m = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_LOCKED, -1, 0);
		if (m == MAP_FAILED)
			return -1;
		for (int i = 0; i < CHUNK / 4096 && found < 2; i++) {
			uint64_t p = phys_of(pagemap, m + i * 4096);
			if (p && p + 4096 <= EDU_DMA_LIMIT) {
				va[found] = m + i * 4096;
				pa[found++] = p;
			}
		}
	}
	return found == 2 ? 0 : -1;
}

int main(void)
{
	int container = open("/dev/vfio/vfio", O_RDWR);
	int group = open("/dev/vfio/noiommu-0", O_RDWR);
	if (check("open container and group", container < 0 || group < 0 ? -1 : 0) < 0)
		return 1;
	printf("noiommu extension %d\n", ioctl(container, VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU));
	check("VFIO_GROUP_SET_CONTAINER", ioctl(group, VFIO_GROUP_SET_CONTAINER, &container));
	if (check("VFIO_SET_IOMMU (noiommu)", ioctl(container, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU)) < 0)
		return 1;
	dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, "0000:00:03.0");
	if (check("VFIO_GROUP_GET_DEVICE_FD", dev) < 0)
		return 1;

	struct vfio_device_info info = { .argsz = sizeof(info) };
	check("VFIO_DEVICE_GET_INFO", ioctl(dev, VFIO_DEVICE_GET_INFO, &info));
	printf("flags %#x regions %u irqs %u\n", info.flags, info.num_regions, info.num_irqs);
	printf("identification %#010x\n", rd32(0x00));
	wr32(0x08, 12);
	while (rd32(0x20) & 1)
		;
	printf("factorial(12) %u\n", rd32(0x08));

	uint16_t cmd;
	pread(dev, &cmd, 2, CONFIG_OFF + 4);
	cmd |= 0x4;
	pwrite(dev, &cmd, 2, CONFIG_OFF + 4);

	int efd = eventfd(0, EFD_NONBLOCK);
	char irqbuf[sizeof(struct vfio_irq_set) + sizeof(int)];
	struct vfio_irq_set *irq = (void *)irqbuf;
	*irq = (struct vfio_irq_set){ .argsz = sizeof(irqbuf), .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
				     .index = VFIO_PCI_MSI_IRQ_INDEX, .start = 0, .count = 1 };
	memcpy(irq->data, &efd, sizeof(int));
	check("VFIO_DEVICE_SET_IRQS (MSI)", ioctl(dev, VFIO_DEVICE_SET_IRQS, irq));

	int pagemap = open("/proc/self/pagemap", O_RDONLY);
	uint8_t *va[2];
	uint64_t pa[2];
	if (check("physical pages below 256 MiB", pagemap < 0 ? -1 : dma_pages(pagemap, va, pa)) < 0)
		return 1;
	uint8_t *in = va[0], *out = va[1];
	for (int i = 0; i < LEN; i++)
		in[i] = (uint8_t)(i * 5 + 1);
	memset(out, 0, LEN);

	wr64(0x80, pa[0]);
	wr64(0x88, 0x40000);
	wr64(0x90, LEN);
	wr64(0x98, 1);
	printf("dma to device %s\n", wait_dma() ? "timed out" : "done");
	wr64(0x80, 0x40000);
	wr64(0x88, pa[1]);
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

	close(dev);
	close(group);
	close(container);
	return 0;
}
