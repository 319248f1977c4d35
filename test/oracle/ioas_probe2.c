/* Oracle probe behind the expectations marked (oracle) in test/iommufd_dispatch.test.ts and test/iommufd_ioas.test.ts; run with ../shared/oracle/run.sh. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/iommufd.h>
#include "iommufd_test.h"
#define R(name, expr) do { long _r = (expr); printf("%-34s ret=%ld errno=%s\n", name, _r, _r < 0 ? strerrorname_np(errno) : "0"); } while (0)
#define X(v) (unsigned long long)(v)
#define PG 4096ULL
static int fd;
static int mapf(unsigned id, void *va, uint64_t len, uint64_t *iova, unsigned flags) {
  struct iommu_ioas_map m = { .size = sizeof(m), .flags = flags, .ioas_id = id, .user_va = (uintptr_t)va, .length = len, .iova = *iova };
  int r = ioctl(fd, IOMMU_IOAS_MAP, &m); *iova = m.iova; return r; }
static int unmapf(unsigned id, uint64_t iova, uint64_t len, uint64_t *out) {
  struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = id, .iova = iova, .length = len };
  int r = ioctl(fd, IOMMU_IOAS_UNMAP, &u); if (out) *out = u.length; return r; }
static int reserve(unsigned id, uint64_t start, uint64_t len) {
  struct iommu_test_cmd c = { .size = sizeof(c), .op = IOMMU_TEST_OP_ADD_RESERVED, .id = id, .add_reserved = { .start = start, .length = len } };
  return ioctl(fd, IOMMU_TEST_CMD, &c); }
static int allow(unsigned id, struct iommu_iova_range *r, unsigned n) {
  struct iommu_ioas_allow_iovas a = { .size = sizeof(a), .ioas_id = id, .num_iovas = n, .allowed_iovas = (uintptr_t)r };
  return ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &a); }
static int huge(unsigned id, uint64_t v) {
  struct iommu_option o = { .size = sizeof(o), .option_id = IOMMU_OPTION_HUGE_PAGES, .op = IOMMU_OPTION_OP_SET, .object_id = id, .val64 = v };
  return ioctl(fd, IOMMU_OPTION, &o); }
#define RW (IOMMU_IOAS_MAP_READABLE|IOMMU_IOAS_MAP_WRITEABLE)
#define FX IOMMU_IOAS_MAP_FIXED_IOVA
static unsigned alloc(void) { struct iommu_ioas_alloc a = { .size = sizeof(a) }; if (ioctl(fd, IOMMU_IOAS_ALLOC, &a)) return 0; return a.out_ioas_id; }
int main(void) {
  fd = open("/dev/iommu", O_RDWR);
  char *buf = mmap((void*)0x7e0000000000, 16*4096, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS|MAP_FIXED, -1, 0);
  uint64_t iova, len; unsigned a;
  a = alloc(); printf("a:");
  for (int i = 0; i < 10; i++) { iova = 0; if (mapf(a, (void*)(1UL<<31), PG*(i+1), &iova, RW)) printf(" err%d", errno); else printf(" 0x%llx", X(iova)); } printf("\n");
  a = alloc(); R("reserve", reserve(a, PG*4, PG*100)); printf("b:");
  for (int i = 0; i < 10; i++) { iova = 0; if (mapf(a, buf, PG*(i+1), &iova, RW)) printf(" err%d", errno); else printf(" 0x%llx", X(iova)); } printf("\n");
  a = alloc(); reserve(a, 0, PG); reserve(a, 0x10000, 0x2000); reserve(a, 0x11000, 0x2000); reserve(a, 0x13000, 0x1000); reserve(a, 1ULL<<63, 1ULL<<63);
  struct iommu_iova_range rg[8] = {0};
  struct iommu_ioas_iova_ranges rq = { .size = sizeof(rq), .ioas_id = a, .num_iovas = 8, .allowed_iovas = (uintptr_t)rg };
  R("ranges merged", ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &rq)); printf("num=%u [0x%llx,0x%llx] [0x%llx,0x%llx]\n", rq.num_iovas, X(rg[0].start), X(rg[0].last), X(rg[1].start), X(rg[1].last));
  a = alloc(); huge(a, 0); rq.ioas_id = a; rq.num_iovas = 0; rq.out_iova_alignment = 77;
  R("ranges emsgsize", ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &rq)); printf("num=%u align=%llu\n", rq.num_iovas, X(rq.out_iova_alignment));
  a = alloc(); struct iommu_iova_range top = { 0xffffffffffff0000ULL, ~0ULL }; R("allow top", allow(a, &top, 1)); printf("c:");
  for (int i = 0; i < 16; i++) { iova = 0; if (mapf(a, buf, PG, &iova, RW)) printf(" err%s", strerrorname_np(errno)); else printf(" 0x%llx", X(iova)); } printf("\n");
  a = alloc(); struct iommu_iova_range one = { 0x10000, 0x10001 }; allow(a, &one, 1);
  iova = 0; R("1-byte first", mapf(a, buf, 1, &iova, RW)); printf("iova=0x%llx\n", X(iova));
  iova = 0; R("1-byte second", mapf(a, buf, 1, &iova, RW));
  iova = 0x10001; R("1-byte fixed", mapf(a, buf, 1, &iova, RW|FX));
  a = alloc(); iova = 0x1800; mapf(a, buf, PG, &iova, RW|FX); R("huge0 misaligned iova", huge(a, 0));
  unmapf(a, 0, ~0ULL, 0); iova = 0x1000; mapf(a, buf, 0x1800, &iova, RW|FX); R("huge0 misaligned len", huge(a, 0));
  a = alloc(); unsigned d = alloc(); iova = 0x400000; mapf(a, buf, PG, &iova, IOMMU_IOAS_MAP_READABLE|FX);
  struct iommu_ioas_copy c = { .size = sizeof(c), .flags = IOMMU_IOAS_MAP_WRITEABLE, .dst_ioas_id = d, .src_ioas_id = a, .length = PG, .src_iova = 0x400000 };
  R("copy W from RO", ioctl(fd, IOMMU_IOAS_COPY, &c)); c.flags = IOMMU_IOAS_MAP_READABLE; R("copy R from RO", ioctl(fd, IOMMU_IOAS_COPY, &c));
  a = alloc(); reserve(a, PG, ~0ULL - PG + 1); iova = 0; R("reserved above page auto", mapf(a, buf, PG, &iova, RW)); iova = 0; R("fixed 0", mapf(a, buf, PG, &iova, RW|FX));
  a = alloc(); reserve(a, 0, ~0ULL - PG + 1); iova = 0; R("only top page auto", mapf(a, buf, 1, &iova, RW)); iova = ~0ULL - PG + 1; R("fixed top", mapf(a, buf, PG, &iova, RW|FX));
  a = alloc(); struct iommu_iova_range z = { 0, 0xfffff }; allow(a, &z, 1); iova = 0; R("allowed from 0", mapf(a, buf, PG, &iova, RW)); printf("iova=0x%llx\n", X(iova));
  /* two adjacent areas copy -> two dst areas */
  a = alloc(); d = alloc(); iova = 0x200000; mapf(a, buf, 4*PG, &iova, RW|FX); iova = 0x204000; mapf(a, buf, 2*PG, &iova, RW|FX);
  struct iommu_ioas_copy c2 = { .size = sizeof(c2), .flags = RW|FX, .dst_ioas_id = d, .src_ioas_id = a, .length = 4*PG, .src_iova = 0x202000, .dst_iova = 0x10000 };
  R("copy straddle", ioctl(fd, IOMMU_IOAS_COPY, &c2)); R("unmap first half", unmapf(d, 0x10000, 2*PG, &len)); printf("len=0x%llx\n", X(len));
  /* page of zeros past struct */
  char *pg = mmap(0, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  struct iommu_ioas_alloc *pa = (void*)pg; pa->size = 4096; R("alloc size 4096", ioctl(fd, IOMMU_IOAS_ALLOC, pa)); printf("id=%u\n", pa->out_ioas_id);
  pa->size = 12 + 64; pg[12+63] = 0x80; R("nonzero far", ioctl(fd, IOMMU_IOAS_ALLOC, pa));
  /* option val64 on failure */
  struct iommu_option o = { .size = sizeof(o), .option_id = IOMMU_OPTION_HUGE_PAGES, .op = IOMMU_OPTION_OP_SET, .object_id = a, .val64 = 7 };
  R("huge set 7", ioctl(fd, IOMMU_OPTION, &o)); printf("val=%llu\n", X(o.val64));
  /* straddling allowed */
  a = alloc(); iova = 0xf000; mapf(a, buf, 2*PG, &iova, RW|FX); iova = 0x1f000; mapf(a, buf, 2*PG, &iova, RW|FX);
  struct iommu_iova_range s1 = { 0x10000, 0x1ffff }; R("allow over areas", allow(a, &s1, 1));
  iova = 0; R("auto 14 pages", mapf(a, buf, 14*PG, &iova, RW)); printf("iova=0x%llx\n", X(iova));
  iova = 0; R("auto after full", mapf(a, buf, PG, &iova, RW));
  /* small auto seq */
  a = alloc(); struct iommu_iova_range two[2] = { {0x10000, 0x10fff}, {0x200000, 0x2fffff} }; allow(a, two, 2);
  iova = 0; mapf(a, buf, 2*PG, &iova, RW); printf("d: 0x%llx", X(iova)); iova = 0; mapf(a, buf, PG, &iova, RW); printf(" 0x%llx", X(iova)); iova = 0; mapf(a, buf, PG, &iova, RW); printf(" 0x%llx\n", X(iova));
  return 0;
}
