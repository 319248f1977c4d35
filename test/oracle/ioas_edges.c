#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/iommufd.h>
#define R(name, expr) do { int _r = (expr); printf("%-28s ret=%d errno=%s\n", name, _r, _r < 0 ? strerrorname_np(errno) : "0"); } while (0)
int main(void) {
  int fd = open("/dev/iommu", O_RDWR);
  printf("fd=%d\n", fd);
  struct iommu_ioas_alloc a = { .size = sizeof(a) };
  R("alloc", ioctl(fd, IOMMU_IOAS_ALLOC, &a)); printf("ioas=%u\n", a.out_ioas_id);
  struct iommu_ioas_map m = { .size = sizeof(m), .flags = IOMMU_IOAS_MAP_READABLE|IOMMU_IOAS_MAP_WRITEABLE, .ioas_id = a.out_ioas_id, .user_va = 0x12345000, .length = 0x2000 };
  R("map unmapped va auto", ioctl(fd, IOMMU_IOAS_MAP, &m)); printf("iova=0x%llx\n", (unsigned long long)m.iova);
  char *buf = mmap(0, 1<<20, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  m.user_va = (uintptr_t)buf + 0x800; m.length = 0x1000;
  R("map offset 0x800 auto", ioctl(fd, IOMMU_IOAS_MAP, &m)); printf("iova=0x%llx\n", (unsigned long long)m.iova);
  m.user_va = (uintptr_t)buf; m.length = 0x10000;
  R("map 64k auto", ioctl(fd, IOMMU_IOAS_MAP, &m)); printf("iova=0x%llx\n", (unsigned long long)m.iova);
  m.user_va = (uintptr_t)buf + 0x3000; m.length = 0x3000;
  R("map 12k at +0x3000 auto", ioctl(fd, IOMMU_IOAS_MAP, &m)); printf("iova=0x%llx\n", (unsigned long long)m.iova);
  struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = a.out_ioas_id, .iova = 0x800000, .length = 0x1000 };
  R("unmap nothing", ioctl(fd, IOMMU_IOAS_UNMAP, &u));
  struct iommu_ioas_iova_ranges r = { .size = sizeof(r), .ioas_id = a.out_ioas_id };
  R("iova_ranges num0", ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &r)); printf("num=%u align=%llu\n", r.num_iovas, (unsigned long long)r.out_iova_alignment);
  struct iommu_option o = { .size = sizeof(o), .option_id = IOMMU_OPTION_RLIMIT_MODE, .op = IOMMU_OPTION_OP_SET, .val64 = 1 };
  R("rlimit set busy", ioctl(fd, IOMMU_OPTION, &o));
  o.op = IOMMU_OPTION_OP_GET; o.val64 = 77;
  R("rlimit get", ioctl(fd, IOMMU_OPTION, &o)); printf("val=%llu\n", (unsigned long long)o.val64);
  unsigned char big[48] = {0}; memcpy(big, &a, sizeof(a)); ((struct iommu_ioas_alloc*)big)->size = 13; big[12] = 1;
  R("alloc size13 nonzero", ioctl(fd, IOMMU_IOAS_ALLOC, big));
  big[12] = 0; R("alloc size13 zero", ioctl(fd, IOMMU_IOAS_ALLOC, big)); printf("id=%u\n", ((struct iommu_ioas_alloc*)big)->out_ioas_id);
  R("nr 0x8f", ioctl(fd, _IO(';', 0x8f), &a));
  R("nr 0xa1", ioctl(fd, _IO(';', 0xa1), &a));
  R("nr 0x7f", ioctl(fd, _IO(';', 0x7f), &a));
  R("bad ptr 0x85", ioctl(fd, IOMMU_IOAS_MAP, (void*)8));
  R("bad ptr 0x8f", ioctl(fd, _IO(';', 0x8f), (void*)8));
  struct iommu_ioas_copy c = { .size = sizeof(c), .flags = IOMMU_IOAS_MAP_READABLE, .dst_ioas_id = ((struct iommu_ioas_alloc*)big)->out_ioas_id, .src_ioas_id = a.out_ioas_id, .length = 0x1000, .src_iova = 0x2000 + 0x1000 };
  R("copy subrange", ioctl(fd, IOMMU_IOAS_COPY, &c)); printf("dst_iova=0x%llx\n", (unsigned long long)c.dst_iova);
  struct iommu_iova_range ar[2] = { { 0x10000, 0x10000 } };
  struct iommu_ioas_allow_iovas al = { .size = sizeof(al), .ioas_id = a.out_ioas_id, .num_iovas = 1, .allowed_iovas = (uintptr_t)ar };
  R("allow start==last", ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &al));
  struct iommu_destroy d = { .size = sizeof(d), .id = a.out_ioas_id };
  R("destroy busy ioas w/ maps", ioctl(fd, IOMMU_DESTROY, &d));
  d.id = 0; R("destroy 0", ioctl(fd, IOMMU_DESTROY, &d));
  u.ioas_id = 2; u.iova = 0; u.length = UINT64_MAX; R("unmap all ioas2", ioctl(fd, IOMMU_IOAS_UNMAP, &u)); printf("len=0x%llx\n", (unsigned long long)u.length);
  R("unmap all ioas2 again", ioctl(fd, IOMMU_IOAS_UNMAP, &u)); printf("len=0x%llx\n", (unsigned long long)u.length);
  struct iommu_ioas_alloc a3 = { .size = sizeof(a3) };
  R("alloc after destroy", ioctl(fd, IOMMU_IOAS_ALLOC, &a3)); printf("id=%u\n", a3.out_ioas_id);
  return 0;
}
