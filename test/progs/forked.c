/* An iommufd shared across fork: the child allocates through the inherited fd, the parent sees it. */
#include <errno.h>
#include <fcntl.h>
#include <linux/iommufd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	int fd = open("/dev/iommu", O_RDWR);
	struct iommu_ioas_alloc a = { .size = sizeof(a) };
	int st;
	if (fd < 0 || ioctl(fd, IOMMU_IOAS_ALLOC, &a))
		return 1;
	printf("parent ioas %u\n", a.out_ioas_id);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct iommu_ioas_alloc b = { .size = sizeof(b) };
		int r = ioctl(fd, IOMMU_IOAS_ALLOC, &b);
		printf("child alloc %s ioas %u\n", r ? strerror(errno) : "ok", b.out_ioas_id);
		int dfd = dup(fd);
		close(fd);
		struct iommu_destroy d = { .size = sizeof(d), .id = a.out_ioas_id };
		printf("child destroy via dup %s\n", ioctl(dfd, IOMMU_DESTROY, &d) ? strerror(errno) : "ok");
		return 0;
	}
	waitpid(pid, &st, 0);
	struct iommu_destroy d = { .size = sizeof(d), .id = 2 };
	printf("parent destroy child's ioas %s\n", ioctl(fd, IOMMU_DESTROY, &d) ? strerror(errno) : "ok");
	d.id = a.out_ioas_id;
	printf("parent destroy own ioas %s\n", ioctl(fd, IOMMU_DESTROY, &d) ? strerror(errno) : "ok");
	return WEXITSTATUS(st);
}
