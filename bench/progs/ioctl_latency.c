/* Times N round trips of one cheap ioctl (IOMMU_OPTION GET of HUGE_PAGES) and prints p50/p99 in ns. */
#include <fcntl.h>
#include <linux/iommufd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <time.h>

static int cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 20000;
	long *t = calloc(n, sizeof(*t));
	int fd = open("/dev/iommu", O_RDWR);
	struct iommu_ioas_alloc a = { .size = sizeof(a) };
	if (fd < 0 || ioctl(fd, IOMMU_IOAS_ALLOC, &a))
		return 1;
	struct iommu_option o = { .size = sizeof(o), .option_id = IOMMU_OPTION_HUGE_PAGES, .op = IOMMU_OPTION_OP_GET, .object_id = a.out_ioas_id };
	for (int i = 0; i < n; i++) {
		struct timespec s, e;
		clock_gettime(CLOCK_MONOTONIC, &s);
		if (ioctl(fd, IOMMU_OPTION, &o))
			return 2;
		clock_gettime(CLOCK_MONOTONIC, &e);
		t[i] = (e.tv_sec - s.tv_sec) * 1000000000L + (e.tv_nsec - s.tv_nsec);
	}
	qsort(t, n, sizeof(*t), cmp);
	printf("%ld %ld\n", t[n / 2], t[n * 99 / 100]);
	return 0;
}
