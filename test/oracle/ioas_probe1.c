/* Oracle probe behind the expectations marked (oracle) in test/iommufd_dispatch.test.ts and test/iommufd_ioas.test.ts; run with ../shared/oracle/run.sh. */
#define _GNU_SOURCE
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
#define R(name, expr) do { long _r = (expr); printf("%-34s ret=%ld errno=%s\n", name, _r, _r < 0 ? strerrorname_np(errno) : "0"); } while (0)
#define X(v) (unsigned long long)(v)
static int fd; static unsigned ioas;
static int mapf(unsigned id, void *va, uint64_t len, uint64_t *iova, unsigned flags) {
  struct iommu_ioas_map m = { .size = sizeof(m), .flags = flags, .ioas_id = id, .user_va = (uintptr_t)va, .length = len, .iova = *iova };
  int r = ioctl(fd, IOMMU_IOAS_MAP, &m); *iova = m.iova; return r; }
static int unmapf(unsigned id, uint64_t iova, uint64_t len, uint64_t *out) {
  struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = id, .iova = iova, .length = len };
  int r = ioctl(fd, IOMMU_IOAS_UNMAP, &u); if (out) *out = u.length; return r; }
#define RW (IOMMU_IOAS_MAP_READABLE|IOMMU_IOAS_MAP_WRITEABLE)
#define FX IOMMU_IOAS_MAP_FIXED_IOVA
static unsigned alloc(void) { struct iommu_ioas_alloc a = { .size = sizeof(a) }; if (ioctl(fd, IOMMU_IOAS_ALLOC, &a)) return 0; return a.out_ioas_id; }
int main(void) {
  fd = open("/dev/iommu", O_RDWR);
  ioas = alloc();
  char *buf = mmap((void*)0x7e0000000000, 16*4096, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS|MAP_FIXED, -1, 0);
  uint64_t iova, len;
  /* 1: E2BIG with trailing non-zero word before unmapped memory */
  char *two = mmap(0, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  munmap(two + 4096, 4096);
  struct iommu_ioas_alloc *pa = (void*)(two + 4096 - 16);
  memset(pa, 0, 16); pa->size = 12 + 0x2000; ((char*)pa)[12] = 1;
  R("e2big before unmapped", ioctl(fd, IOMMU_IOAS_ALLOC, pa));
  ((char*)pa)[12] = 0;
  R("zero trailing into unmapped", ioctl(fd, IOMMU_IOAS_ALLOC, pa));
  pa->size = 0xffffffff; ((char*)pa)[12] = 1;
  R("size 0xffffffff nonzero", ioctl(fd, IOMMU_IOAS_ALLOC, pa));
  /* struct straddling into unmapped */
  struct iommu_ioas_map *pm = (void*)(two + 4096 - 8); memset(pm, 0, 8); pm->size = sizeof(*pm);
  R("map struct into unmapped", ioctl(fd, IOMMU_IOAS_MAP, pm));
  /* 2: partial unmap */
  for (int i = 0; i < 3; i++) { iova = 0x100000 + i * 0x2000; mapf(ioas, buf, 0x2000, &iova, RW|FX); }
  len = 0;
  struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = ioas, .iova = 0x100000, .length = 0x5000 };
  R("partial unmap", ioctl(fd, IOMMU_IOAS_UNMAP, &u)); printf("len=0x%llx\n", X(u.length));
  R("unmap first again", unmapf(ioas, 0x100000, 0x2000, &len));
  R("unmap second again", unmapf(ioas, 0x102000, 0x2000, &len));
  R("unmap third", unmapf(ioas, 0x104000, 0x2000, &len)); printf("len=0x%llx\n", X(len));
  /* 3: map write-back fault */
  char *ro = mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  struct iommu_ioas_map *rm = (void*)ro; memset(rm, 0, sizeof(*rm));
  rm->size = sizeof(*rm); rm->flags = RW; rm->ioas_id = ioas; rm->user_va = (uintptr_t)buf; rm->length = 0x1000;
  mprotect(ro, 4096, PROT_READ);
  R("map ro struct", ioctl(fd, IOMMU_IOAS_MAP, rm));
  R("unmap all after", unmapf(ioas, 0, UINT64_MAX, &len)); printf("len=0x%llx\n", X(len));
  mprotect(ro, 4096, PROT_READ|PROT_WRITE);
  struct iommu_ioas_alloc *ra = (void*)ro; memset(ra, 0, 16); ra->size = sizeof(*ra);
  mprotect(ro, 4096, PROT_READ);
  R("alloc ro struct", ioctl(fd, IOMMU_IOAS_ALLOC, ra));
  printf("next id=%u\n", alloc());
  /* 5: small auto iovas */
  unsigned s = alloc(); printf("s=%u\n", s);
  iova = 0; R("auto 0x10", mapf(s, buf, 0x10, &iova, RW)); printf("iova=0x%llx\n", X(iova));
  iova = 0; R("auto 0x10 +8", mapf(s, buf + 8, 0x10, &iova, RW)); printf("iova=0x%llx\n", X(iova));
  iova = 0; R("auto 0x1000 +0x800", mapf(s, buf + 0x800, 0x1000, &iova, RW)); printf("iova=0x%llx\n", X(iova));
  /* 6: copy sub-range offset */
  unsigned d = alloc();
  iova = 0x200000; mapf(s, buf, 0x4000, &iova, RW|FX);
  struct iommu_ioas_copy c = { .size = sizeof(c), .flags = RW, .dst_ioas_id = d, .src_ioas_id = s, .length = 0x800, .src_iova = 0x200123 };
  R("copy sub offset", ioctl(fd, IOMMU_IOAS_COPY, &c)); printf("dst=0x%llx\n", X(c.dst_iova));
  /* 7: fixed map at the top */
  iova = 0xfffffffffffff000ULL; R("map top page", mapf(s, buf, 0x1000, &iova, RW|FX));
  R("unmap top page", unmapf(s, 0xfffffffffffff000ULL, 0x1000, &len));
  iova = 0xfffffffffffff000ULL; R("map top overflow", mapf(s, buf, 0x2000, &iova, RW|FX));
  iova = 0; R("map len 2^64-2", mapf(s, buf, 0xfffffffffffffffeULL, &iova, RW));
  iova = 0; R("map uva overflow", mapf(s, (void*)0xfffffffffffff000ULL, 0x2000, &iova, RW));
  iova = 0; R("auto len 2^63-1", mapf(s, 0, 0x7fffffffffffffffULL, &iova, RW));
  /* 8 ranges bad ptr */
  struct iommu_ioas_iova_ranges rr = { .size = sizeof(rr), .ioas_id = s, .num_iovas = 4, .allowed_iovas = 8 };
  R("ranges bad ptr", ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &rr)); printf("num=%u\n", rr.num_iovas);
  /* 10/11 */
  struct iommu_option o = { .size = sizeof(o), .option_id = IOMMU_OPTION_HUGE_PAGES, .op = 2, .object_id = s };
  R("huge op 2", ioctl(fd, IOMMU_OPTION, &o));
  o.object_id = 9999; R("huge op 2 missing", ioctl(fd, IOMMU_OPTION, &o));
  struct iommu_vfio_ioas v = { .size = sizeof(v), .op = 3 };
  R("vfio op 3", ioctl(fd, IOMMU_VFIO_IOAS, &v));
  /* 12 allow atomic */
  struct iommu_iova_range ranges[2] = { { 0x10000, 0x1ffff } };
  struct iommu_ioas_allow_iovas al = { .size = sizeof(al), .ioas_id = d, .num_iovas = 1, .allowed_iovas = (uintptr_t)ranges };
  R("allow ok", ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &al));
  ranges[0].start = 0x30000; ranges[0].last = 0x3ffff; ranges[1].start = 0x38000; ranges[1].last = 0x48000; al.num_iovas = 2;
  R("allow overlap", ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &al));
  iova = 0; R("auto after failed allow", mapf(d, buf, 0x1000, &iova, RW)); printf("iova=0x%llx\n", X(iova));
  /* vfio compat */
  R("vfio api", ioctl(fd, VFIO_GET_API_VERSION));
  R("vfio ext t1v2", ioctl(fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
  R("vfio ext 99", ioctl(fd, VFIO_CHECK_EXTENSION, 99));
  R("vfio dirty", ioctl(fd, VFIO_IOMMU_DIRTY_PAGES, 0));
  R("nr 0xa0 null", ioctl(fd, _IO(IOMMUFD_TYPE, 0xa0), 0));
  R("nr 0x89 size0", ({ uint32_t z[16] = {0}; ioctl(fd, IOMMU_HWPT_ALLOC, z); }));
  R("wrong dir 0x85 null", ioctl(fd, _IOWR(IOMMUFD_TYPE, 0x85, struct iommu_ioas_map), 0));
  R("wrong dir 0x85", ioctl(fd, _IOWR(IOMMUFD_TYPE, 0x85, struct iommu_ioas_map), rm));
  /* rlimit as non-root */
  int fd2 = open("/dev/iommu", O_RDWR);
  if (setuid(1000)) perror("setuid");
  struct iommu_option o2 = { .size = sizeof(o2), .option_id = IOMMU_OPTION_RLIMIT_MODE, .op = IOMMU_OPTION_OP_SET, .val64 = 1 };
  int sv = fd; fd = fd2;
  R("rlimit set nonroot", ioctl(fd, IOMMU_OPTION, &o2));
  o2.op = 2; R("rlimit op2 nonroot", ioctl(fd, IOMMU_OPTION, &o2));
  o2.op = IOMMU_OPTION_OP_GET; o2.val64 = 55; R("rlimit get nonroot", ioctl(fd, IOMMU_OPTION, &o2)); printf("val=%llu\n", X(o2.val64));
  fd = sv;
  return 0;
}
