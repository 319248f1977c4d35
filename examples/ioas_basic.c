/*
 * Allocate an IOAS, map a malloc'ed buffer, read the usable IOVA ranges, unmap. Runs unchanged
 * on a real 6.12 kernel and under `iommufd-emu run`, printing the same lines.
 *
 *   cc -o ioas_basic examples/ioas_basic.c && npx iommufd-emu run -- ./ioas_basic
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/iommufd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define CHECK(name, expr)                                                              \
	do {                                                                           \
		int _r = (expr);                                                       \
		printf("%-24s %s\n", name, _r < 0 ? strerror(errno) : "ok");          \
	} while (0)

int main(void)
{
	size_t len = 64 * 1024;
	void *buf = NULL;
	struct iommu_iova_range ranges[8];
	int fd = open("/dev/iommu", O_RDWR);

	if (fd < 0) {
		perror("open /dev/iommu");
		return 1;
	}
	if (posix_memalign(&buf, 4096, len))
		return 1;
	memset(buf, 0x5a, len);

	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	CHECK("IOMMU_IOAS_ALLOC", ioctl(fd, IOMMU_IOAS_ALLOC, &alloc));
	printf("ioas id %u\n", alloc.out_ioas_id);

	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
		.ioas_id = alloc.out_ioas_id,
		.user_va = (uintptr_t)buf,
		.length = len,
		.iova = 0x100000,
	};
	CHECK("IOMMU_IOAS_MAP fixed", ioctl(fd, IOMMU_IOAS_MAP, &map));
	CHECK("IOMMU_IOAS_MAP overlap", ioctl(fd, IOMMU_IOAS_MAP, &map));
	map.flags &= ~IOMMU_IOAS_MAP_FIXED_IOVA;
	map.length = 4096;
	CHECK("IOMMU_IOAS_MAP auto", ioctl(fd, IOMMU_IOAS_MAP, &map));
	printf("auto iova 0x%llx\n", (unsigned long long)map.iova);

	struct iommu_ioas_iova_ranges r = {
		.size = sizeof(r),
		.ioas_id = alloc.out_ioas_id,
		.num_iovas = 8,
		.allowed_iovas = (uintptr_t)ranges,
	};
	CHECK("IOMMU_IOAS_IOVA_RANGES", ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &r));
	for (unsigned int i = 0; i < r.num_iovas && i < 8; i++)
		printf("range [0x%llx, 0x%llx] alignment %llu\n", (unsigned long long)ranges[i].start,
		       (unsigned long long)ranges[i].last, (unsigned long long)r.out_iova_alignment);
	r.allowed_iovas = 16; /* a bad pointer: the kernel faults writing the ranges */
	CHECK("IOVA_RANGES bad ptr", ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &r));

	struct iommu_ioas_unmap unmap = { .size = sizeof(unmap), .ioas_id = alloc.out_ioas_id, .iova = 0x100000, .length = 4096 };
	CHECK("IOAS_UNMAP partial", ioctl(fd, IOMMU_IOAS_UNMAP, &unmap));
	unmap.length = len;
	CHECK("IOMMU_IOAS_UNMAP", ioctl(fd, IOMMU_IOAS_UNMAP, &unmap));
	printf("unmapped %llu bytes\n", (unsigned long long)unmap.length);
	unmap.iova = 0;
	unmap.length = UINT64_MAX;
	CHECK("IOMMU_IOAS_UNMAP all", ioctl(fd, IOMMU_IOAS_UNMAP, &unmap));
	printf("unmapped %llu bytes\n", (unsigned long long)unmap.length);

	struct iommu_destroy d = { .size = sizeof(d), .id = alloc.out_ioas_id };
	CHECK("IOMMU_DESTROY", ioctl(fd, IOMMU_DESTROY, &d));
	CHECK("IOMMU_DESTROY again", ioctl(fd, IOMMU_DESTROY, &d));
	CHECK("close", close(fd));
	free(buf);
	return 0;
}
