/* Oracle probe: kernel-chosen IOVAs for sub-page user_va offsets. 6.12.117 printed 0x1000, 0x1200, 0x1110, 0x1800, 0x2f00. */
#include <stdio.h>
#include <stdint.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/iommufd.h>
int main(void) {
  int fd = open("/dev/iommu", O_RDWR);
  struct iommu_ioas_alloc a = { .size = sizeof(a) };
  ioctl(fd, IOMMU_IOAS_ALLOC, &a);
  char *buf = mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  unsigned long offs[] = { 0, 0x200, 0x10, 0x800, 0x1f00 };
  unsigned long lens[] = { 0x100, 0x100, 0x30, 0x900, 0x200 };
  for (int i = 0; i < 5; i++) {
    struct iommu_ioas_map m = { .size = sizeof(m), .flags = 6, .ioas_id = a.out_ioas_id, .user_va = (uintptr_t)buf + offs[i], .length = lens[i] };
    int r = ioctl(fd, IOMMU_IOAS_MAP, &m);
    printf("map +0x%lx len 0x%lx -> %d iova 0x%llx\n", offs[i], lens[i], r, (unsigned long long)m.iova);
  }
  return 0;
}
