/*
 * Shared Virtual Addressing through a VFIO type1 container (the seed series' VFIO_IOMMU_BIND,
 * never merged upstream): the program binds its own address space, then the edu device's DMA
 * engine, tagged with the PASID, reads and writes ordinary malloc'ed memory at its virtual
 * address. The destination page is never touched by the CPU first: the device's page request
 * makes it present. After unbind the same DMA faults and memory is left alone.
 *
 * Runs under `iommufd-emu run --sva -- ./sva_self` (edu with the PASID-DMA extension at
 * 0000:00:04.0, register 0xa0; see src/hw/edu.ts). Linux 6.12 has no VFIO_IOMMU_BIND.
 */
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* The seed series' uapi. */
struct vfio_iommu_type1_bind {
	__u32 argsz;
	__u32 flags;
#define VFIO_IOMMU_BIND_PROCESS (1 << 0)
	__u8 data[];
};
struct vfio_iommu_type1_bind_process {
	__u32 flags;
#define VFIO_IOMMU_BIND_PID (1 << 0)
	__u32 pasid;
	__s32 pid;
};
#define VFIO_IOMMU_BIND _IO(VFIO_TYPE, VFIO_BASE + 22)
#define VFIO_IOMMU_UNBIND _IO(VFIO_TYPE, VFIO_BASE + 23)

#define BDF "0000:00:04.0"
#define CONFIG_OFF (7ULL << 40)
#define EDU_BUF 0x40000
#define LEN 256

static int dev;

static void wr64(uint64_t off, uint64_t v)
{
	if (pwrite(dev, &v, 8, off) != 8)
		perror("pwrite");
}

static void wr32(uint64_t off, uint32_t v)
{
	if (pwrite(dev, &v, 4, off) != 4)
		perror("pwrite");
}

/* One transfer through PASID `pasid`: RAM -> device buffer, or back when to_ram. */
static void dma(uint32_t pasid, void *ram, int to_ram)
{
	wr32(0xa0, 0x80000000u | pasid);
	wr64(0x80, to_ram ? EDU_BUF : (uintptr_t)ram);
	wr64(0x88, to_ram ? (uintptr_t)ram : EDU_BUF);
	wr64(0x90, LEN);
	wr64(0x98, to_ram ? 3 : 1);
}

/* Whether the page at p is present in this process's page table (/proc/self/pagemap bit 63). */
static int present(void *p)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	pread(fd, &e, 8, (uintptr_t)p / 4096 * 8);
	close(fd);
	return (int)(e >> 63);
}

static int bind(int container, unsigned long cmd, uint32_t *pasid)
{
	struct {
		struct vfio_iommu_type1_bind hdr;
		struct vfio_iommu_type1_bind_process p;
	} b = { { sizeof(b), VFIO_IOMMU_BIND_PROCESS }, { 0, 0, 0 } };
	int r = ioctl(container, cmd, &b);
	if (pasid)
		*pasid = b.p.pasid;
	return r;
}

int main(int argc, char **argv)
{
	const char *group_path = argc > 1 ? argv[1] : "/dev/vfio/5";
	int container = open("/dev/vfio/vfio", O_RDWR);
	int group = open(group_path, O_RDWR);
	uint32_t pasid = 0;
	uint16_t cmd;

	if (container < 0 || group < 0) {
		printf("open failed\n");
		return 1;
	}
	printf("SET_CONTAINER %d\n", ioctl(group, VFIO_GROUP_SET_CONTAINER, &container));
	printf("SET_IOMMU %d\n", ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, BDF);
	printf("GET_DEVICE_FD %s\n", dev >= 0 ? "ok" : "failed");
	pread(dev, &cmd, 2, CONFIG_OFF + 4);
	cmd |= 0x6;
	pwrite(dev, &cmd, 2, CONFIG_OFF + 4);

	int r = bind(container, VFIO_IOMMU_BIND, &pasid);
	printf("VFIO_IOMMU_BIND %d pasid %u\n", r, pasid);

	uint8_t *src = malloc(LEN), *dst;
	if (posix_memalign((void **)&dst, 4096, 4096))
		return 1;
	for (int i = 0; i < LEN; i++)
		src[i] = (uint8_t)(i * 5 + 1);
	printf("destination page present before the DMA: %s\n", present(dst) ? "yes" : "no");
	dma(pasid, src, 0);
	dma(pasid, dst, 1);
	printf("destination page present after the DMA: %s\n", present(dst) ? "yes" : "no");
	printf("malloc'ed memory through the PASID: %s\n", memcmp(src, dst, LEN) ? "differs" : "copied");

	printf("VFIO_IOMMU_UNBIND %d\n", bind(container, VFIO_IOMMU_UNBIND, NULL));
	memset(dst, 0, LEN);
	dma(pasid, dst, 1);
	printf("after unbind: %s\n", dst[0] == 0 && !memcmp(dst, dst + 1, LEN - 1) ? "memory untouched" : "memory written");
	close(dev);
	close(group);
	close(container);
	return 0;
}
