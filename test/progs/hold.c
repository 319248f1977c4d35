/* Opens /dev/iommu, makes an IOAS with one mapping, says "ready", then waits to be killed. */
#include <fcntl.h>
#include <linux/iommufd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(void)
{
	static char buf[8192] __attribute__((aligned(4096)));
	int fd = open("/dev/iommu", O_RDWR);
	struct iommu_ioas_alloc a = { .size = sizeof(a) };
	if (fd < 0 || ioctl(fd, IOMMU_IOAS_ALLOC, &a))
		return 1;
	struct iommu_ioas_map m = { .size = sizeof(m), .flags = IOMMU_IOAS_MAP_READABLE, .ioas_id = a.out_ioas_id,
				    .user_va = (uintptr_t)buf, .length = sizeof(buf) };
	if (ioctl(fd, IOMMU_IOAS_MAP, &m))
		return 2;
	printf("ready %d\n", getpid());
	fflush(stdout);
	for (;;)
		pause();
}
