/* VFIO type1 container ioctls on an iommufd (drivers/iommu/iommufd/vfio_compat.c), no devices. */
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>
#define R(name, expr) do { int _r = (expr); printf("%-30s ret=%d errno=%s\n", name, _r, _r < 0 ? strerrorname_np(errno) : "0"); } while (0)
static void dump(const char *what, const void *p, size_t n) {
  const unsigned char *b = p;
  printf("%s:", what);
  for (size_t i = 0; i < n; i++) printf("%s%02x", i % 8 ? "" : " ", b[i]);
  printf("\n");
}
int main(void) {
  int fd = open("/dev/iommu", O_RDWR);
  R("api version", ioctl(fd, VFIO_GET_API_VERSION));
  for (unsigned long e = 0; e <= 10; e++) { char n[32]; snprintf(n, sizeof n, "check ext %lu", e); R(n, ioctl(fd, VFIO_CHECK_EXTENSION, e)); }
  struct vfio_iommu_type1_info info = { .argsz = sizeof(info) };
  R("get_info no ioas", ioctl(fd, VFIO_IOMMU_GET_INFO, &info));
  R("set_iommu no ioas", ioctl(fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
  R("set_iommu bad type", ioctl(fd, VFIO_SET_IOMMU, 7));
  struct iommu_ioas_alloc a = { .size = sizeof(a) };
  R("alloc", ioctl(fd, IOMMU_IOAS_ALLOC, &a));
  struct iommu_vfio_ioas v = { .size = sizeof(v), .ioas_id = a.out_ioas_id, .op = IOMMU_VFIO_IOAS_SET };
  R("vfio_ioas set", ioctl(fd, IOMMU_VFIO_IOAS, &v));
  R("check ext DMA_CC", ioctl(fd, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU));
  R("set_iommu v2", ioctl(fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
  info.argsz = 15; R("get_info argsz 15", ioctl(fd, VFIO_IOMMU_GET_INFO, &info));
  unsigned char buf[256];
  memset(buf, 0xee, sizeof buf); ((struct vfio_iommu_type1_info *)buf)->argsz = 16;
  R("get_info argsz 16", ioctl(fd, VFIO_IOMMU_GET_INFO, buf)); dump("info16", buf, 32);
  memset(buf, 0xee, sizeof buf); ((struct vfio_iommu_type1_info *)buf)->argsz = 40;
  R("get_info argsz 40", ioctl(fd, VFIO_IOMMU_GET_INFO, buf)); dump("info40", buf, 80);
  memset(buf, 0xee, sizeof buf); ((struct vfio_iommu_type1_info *)buf)->argsz = sizeof buf;
  R("get_info argsz 256", ioctl(fd, VFIO_IOMMU_GET_INFO, buf)); dump("info256", buf, 80);
  char *mem = mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  struct vfio_iommu_type1_dma_map m = { .argsz = sizeof(m), .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, .vaddr = (uintptr_t)mem, .iova = 0x100000, .size = 0x4000 };
  R("map_dma", ioctl(fd, VFIO_IOMMU_MAP_DMA, &m));
  R("map_dma overlap", ioctl(fd, VFIO_IOMMU_MAP_DMA, &m));
  m.flags = 4; R("map_dma vaddr flag", ioctl(fd, VFIO_IOMMU_MAP_DMA, &m));
  m.flags = 0; m.iova = 0x200000; R("map_dma no prot", ioctl(fd, VFIO_IOMMU_MAP_DMA, &m));
  m.argsz = 31; m.iova = 0x300000; R("map_dma argsz 31", ioctl(fd, VFIO_IOMMU_MAP_DMA, &m));
  struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .iova = 0x101000, .size = 0x1000 };
  R("unmap_dma middle v2", ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &u)); printf("size=0x%llx\n", (unsigned long long)u.size);
  u.iova = 0x900000; u.size = 0x1000; R("unmap_dma nothing", ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &u)); printf("size=0x%llx\n", (unsigned long long)u.size);
  u.iova = 0x100000; u.size = 0x4000; R("unmap_dma whole", ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &u)); printf("size=0x%llx\n", (unsigned long long)u.size);
  u.iova = 0x100000; u.size = 0; R("unmap_dma size 0", ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &u)); printf("size=0x%llx\n", (unsigned long long)u.size);
  u.flags = VFIO_DMA_UNMAP_FLAG_ALL; u.iova = 1; u.size = 0; R("unmap_all iova 1", ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &u));
  u.iova = 0; R("unmap_all", ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &u)); printf("size=0x%llx\n", (unsigned long long)u.size);
  u.flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP; R("unmap dirty flag", ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &u));
  R("set_iommu v1", ioctl(fd, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU));
  m.argsz = sizeof(m); m.flags = VFIO_DMA_MAP_FLAG_READ; m.iova = 0x100000; m.size = 0x4000;
  R("map_dma v1", ioctl(fd, VFIO_IOMMU_MAP_DMA, &m));
  u.flags = 0; u.iova = 0x101000; u.size = 0x1000;
  R("unmap_dma middle v1", ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &u)); printf("size=0x%llx\n", (unsigned long long)u.size);
  u.iova = 0x100000; u.size = 0x4000;
  R("unmap_dma rest v1", ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &u)); printf("size=0x%llx\n", (unsigned long long)u.size);
  R("dirty pages", ioctl(fd, VFIO_IOMMU_DIRTY_PAGES, &u));
  R("enable (spapr)", ioctl(fd, VFIO_IOMMU_ENABLE));
  memset(buf, 0xee, sizeof buf); ((struct vfio_iommu_type1_info *)buf)->argsz = sizeof buf;
  R("get_info v1", ioctl(fd, VFIO_IOMMU_GET_INFO, buf)); dump("infov1", buf, 24);
  return 0;
}
