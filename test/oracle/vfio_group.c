/* The legacy VFIO group/container path for edu (group 3): drivers/vfio/group.c, container.c,
 * vfio_iommu_type1.c, then the same group with an iommufd as its container
 * (drivers/iommu/iommufd/vfio_compat.c). Run with ../shared/oracle/run.sh -v; output in
 * vfio_group.expected. */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

#define R(name, expr) do { errno = 0; long _r = (long)(expr); \
  printf("%-40s ret=%ld errno=%s\n", name, _r, _r < 0 ? strerrorname_np(errno) : "0"); } while (0)
#define CDEV "/dev/vfio/devices/vfio0"
#define GROUP "/dev/vfio/3"
#define DEVNAME "0000:00:03.0"

static void dump(const char *what, const void *p, size_t n) {
  const unsigned char *b = p;
  printf("%s:", what);
  for (size_t i = 0; i < n; i++) printf("%s%02x", i % 8 ? "" : " ", b[i]);
  printf("\n");
}
static struct vfio_device_bind_iommufd bind_arg;
static long bind(int dev, int iommufd) {
  memset(&bind_arg, 0, sizeof bind_arg);
  bind_arg.argsz = sizeof bind_arg; bind_arg.iommufd = iommufd;
  return ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind_arg);
}
static long attach(int dev, uint32_t pt) {
  struct vfio_device_attach_iommufd_pt a = { .argsz = sizeof a, .pt_id = pt };
  return ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a);
}
static long detach(int dev) {
  struct vfio_device_detach_iommufd_pt d = { .argsz = sizeof d };
  return ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &d);
}
static long destroy(int fd, uint32_t id) {
  struct iommu_destroy d = { .size = sizeof d, .id = id };
  return ioctl(fd, IOMMU_DESTROY, &d);
}
static struct vfio_group_status st;
static long status(int grp) {
  st = (struct vfio_group_status){ .argsz = sizeof st, .flags = 0xdead };
  return ioctl(grp, VFIO_GROUP_GET_STATUS, &st);
}
static long set_container(int grp, int fd) { return ioctl(grp, VFIO_GROUP_SET_CONTAINER, &fd); }
static struct vfio_iommu_type1_dma_map mp;
static long map_dma(int c, void *va, uint64_t iova, uint64_t size, uint32_t flags) {
  mp = (struct vfio_iommu_type1_dma_map){ .argsz = sizeof mp, .flags = flags, .vaddr = (uintptr_t)va, .iova = iova, .size = size };
  return ioctl(c, VFIO_IOMMU_MAP_DMA, &mp);
}
static struct vfio_iommu_type1_dma_unmap um;
static long unmap_dma(int c, uint64_t iova, uint64_t size, uint32_t flags) {
  um = (struct vfio_iommu_type1_dma_unmap){ .argsz = sizeof um, .flags = flags, .iova = iova, .size = size };
  return ioctl(c, VFIO_IOMMU_UNMAP_DMA, &um);
}
#define RW (VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)
static void check_ext(int fd, const char *pfx) {
  char n[64];
  for (unsigned long e = 0; e <= 10; e++) {
    snprintf(n, sizeof n, "%s CHECK_EXTENSION %lu", pfx, e);
    R(n, ioctl(fd, VFIO_CHECK_EXTENSION, e));
  }
}
static void get_info(int fd, const char *pfx) {
  unsigned char buf[256];
  char n[64];
  memset(buf, 0xee, sizeof buf);
  ((struct vfio_iommu_type1_info *)buf)->argsz = 16;
  snprintf(n, sizeof n, "%s IOMMU_GET_INFO argsz 16", pfx);
  R(n, ioctl(fd, VFIO_IOMMU_GET_INFO, buf)); dump("info16", buf, 24);
  memset(buf, 0xee, sizeof buf);
  ((struct vfio_iommu_type1_info *)buf)->argsz = sizeof buf;
  snprintf(n, sizeof n, "%s IOMMU_GET_INFO argsz 256", pfx);
  R(n, ioctl(fd, VFIO_IOMMU_GET_INFO, buf));
  struct vfio_iommu_type1_info *in = (void *)buf;
  printf("argsz=%u flags=0x%x iova_pgsizes=0x%llx cap_offset=%u\n", in->argsz, in->flags,
         (unsigned long long)in->iova_pgsizes, in->cap_offset);
  unsigned max = 0;
  for (unsigned off = in->cap_offset; off && off < sizeof buf;) {
    struct vfio_info_cap_header *h = (void *)(buf + off);
    unsigned e = off + 8;
    if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) e = off + 16 + 16 * ((struct vfio_iommu_type1_info_cap_iova_range *)h)->nr_iovas;
    else if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) e = off + sizeof(struct vfio_iommu_type1_info_cap_migration);
    else if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) e = off + sizeof(struct vfio_iommu_type1_info_dma_avail);
    printf("cap at %u: id=%u version=%u next=%u\n", off, h->id, h->version, h->next);
    if (e > max) max = e;
    if (!h->next || h->next <= off) break;
    off = h->next;
  }
  if (max > sizeof buf) max = sizeof buf;
  dump("info", buf, max ? max : 24);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  unsigned char buf[64];
  char *mem = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  memset(mem, 0x5a, 1 << 20);

  printf("# the container, no group\n");
  int c, c2, grp, grp2, dev, dev2, cdev, null, ifd;
  R("open /dev/vfio/vfio", c = open("/dev/vfio/vfio", O_RDWR));
  R("GET_API_VERSION", ioctl(c, VFIO_GET_API_VERSION));
  check_ext(c, "empty");
  R("CHECK_EXTENSION 0x7fffffff", ioctl(c, VFIO_CHECK_EXTENSION, 0x7fffffffUL));
  R("SET_IOMMU TYPE1v2 (no group)", ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
  struct vfio_iommu_type1_info info = { .argsz = sizeof info };
  R("IOMMU_GET_INFO (no iommu)", ioctl(c, VFIO_IOMMU_GET_INFO, &info));
  R("MAP_DMA (no iommu)", map_dma(c, mem, 0x100000, 0x1000, RW));
  R("unknown ioctl (no iommu)", ioctl(c, _IO(';', 200)));
  R("GROUP_GET_STATUS on container", ioctl(c, VFIO_GROUP_GET_STATUS, &st));
  R("read container", read(c, buf, 4));
  R("open /dev/vfio/vfio #2", c2 = open("/dev/vfio/vfio", O_RDWR));

  printf("# the group\n");
  R("open group", grp = open(GROUP, O_RDWR));
  R("open group again", grp2 = open(GROUP, O_RDWR));
  R("open /dev/vfio/4 (no such group)", open("/dev/vfio/4", O_RDWR));
  st.argsz = 4; R("GROUP_GET_STATUS argsz 4", ioctl(grp, VFIO_GROUP_GET_STATUS, &st));
  st.argsz = 7; R("GROUP_GET_STATUS argsz 7", ioctl(grp, VFIO_GROUP_GET_STATUS, &st));
  R("GROUP_GET_STATUS", status(grp)); printf("flags=0x%x\n", st.flags);
  R("unknown ioctl on group", ioctl(grp, _IO(';', 200)));
  R("GET_API_VERSION on group", ioctl(grp, VFIO_GET_API_VERSION));
  R("GET_DEVICE_FD no container", ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME));
  R("GET_DEVICE_FD bad name no container", ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, "0000:00:04.0"));
  R("UNSET_CONTAINER not set", ioctl(grp, VFIO_GROUP_UNSET_CONTAINER));
  R("SET_CONTAINER fd -1", set_container(grp, -1));
  R("SET_CONTAINER fd 1000", set_container(grp, 1000));
  R("open /dev/null", null = open("/dev/null", O_RDWR));
  R("SET_CONTAINER /dev/null", set_container(grp, null));
  R("SET_CONTAINER group fd itself", set_container(grp, grp));
  R("SET_CONTAINER container", set_container(grp, c));
  R("SET_CONTAINER again same", set_container(grp, c));
  R("SET_CONTAINER again other container", set_container(grp, c2));
  R("GROUP_GET_STATUS", status(grp)); printf("flags=0x%x\n", st.flags);
  R("GET_DEVICE_FD before SET_IOMMU", ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME));
  check_ext(c, "group, no iommu");
  R("IOMMU_GET_INFO before SET_IOMMU", ioctl(c, VFIO_IOMMU_GET_INFO, &info));
  R("SET_IOMMU 7 (bad type)", ioctl(c, VFIO_SET_IOMMU, 7));
  R("SET_IOMMU NOIOMMU (8)", ioctl(c, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU));
  R("SET_IOMMU SPAPR (2)", ioctl(c, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_IOMMU));
  R("SET_IOMMU TYPE1v2", ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
  R("SET_IOMMU TYPE1v2 again", ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
  R("SET_IOMMU TYPE1 after v2", ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU));
  check_ext(c, "type1v2");
  R("GROUP_GET_STATUS", status(grp)); printf("flags=0x%x\n", st.flags);

  printf("# GET_DEVICE_FD\n");
  R("GET_DEVICE_FD wrong name", ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, "0000:00:04.0"));
  R("GET_DEVICE_FD empty name", ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, ""));
  int dtmp;
  R("GET_DEVICE_FD name + space", dtmp = ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME " "));
  if (dtmp >= 0) R("close it", close(dtmp));
  R("GET_DEVICE_FD name + 2 spaces", dtmp = ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME "  "));
  if (dtmp >= 0) R("close it", close(dtmp));
  R("GET_DEVICE_FD name prefix 0000:00:03", ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, "0000:00:03"));
  R("GET_DEVICE_FD name + \".1\"", ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME ".1"));
  R("GET_DEVICE_FD name vf_token", ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME " vf_token=00000000-0000-0000-0000-000000000000"));
  R("GET_DEVICE_FD name bogus option", ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME " foo=bar"));
  R("GET_DEVICE_FD NULL", ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, NULL));
  R("GET_DEVICE_FD " DEVNAME, dev = ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME));
  printf("FD_CLOEXEC=%d\n", (fcntl(dev, F_GETFD) & FD_CLOEXEC) ? 1 : 0);
  printf("O_ACCMODE=%d\n", fcntl(dev, F_GETFL) & O_ACCMODE);
  {
    char path[64], link[128] = {0};
    snprintf(path, sizeof path, "/proc/self/fd/%d", dev);
    ssize_t n = readlink(path, link, sizeof link - 1);
    printf("fd link=%s\n", n > 0 ? link : "?");
  }
  R("GET_DEVICE_FD second time", dev2 = ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME));
  R("UNSET_CONTAINER with device fds open", ioctl(grp, VFIO_GROUP_UNSET_CONTAINER));
  R("SET_CONTAINER while device fds open", set_container(grp, c));

  printf("# the cdev while the group has the device\n");
  R("open cdev", cdev = open(CDEV, O_RDWR));
  R("open /dev/iommu", ifd = open("/dev/iommu", O_RDWR));
  R("cdev bind", bind(cdev, ifd));
  R("cdev GET_INFO", ioctl(cdev, VFIO_DEVICE_GET_INFO, &(struct vfio_device_info){ .argsz = 16 }));
  R("close cdev", close(cdev));

  printf("# group-opened device fd\n");
  R("BIND_IOMMUFD on group device fd", bind(dev, ifd));
  R("BIND_IOMMUFD argsz 8 on group dev", (bind_arg.argsz = 8, ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind_arg)));
  R("ATTACH_IOMMUFD_PT on group dev", attach(dev, 1));
  R("DETACH_IOMMUFD_PT on group dev", detach(dev));
  struct vfio_device_info di = { .argsz = sizeof di };
  R("GET_INFO on group dev", ioctl(dev, VFIO_DEVICE_GET_INFO, &di));
  printf("flags=0x%x num_regions=%u num_irqs=%u\n", di.flags, di.num_regions, di.num_irqs);
  R("GET_INFO on second group dev", ioctl(dev2, VFIO_DEVICE_GET_INFO, &di));
  R("pread config on group dev", pread(dev, buf, 4, (off_t)VFIO_PCI_CONFIG_REGION_INDEX << 40));
  printf("vendor/device=0x%08x\n", *(uint32_t *)buf);
  R("pread BAR0 on group dev", pread(dev, buf, 4, 0));
  printf("bar0[0]=0x%08x\n", *(uint32_t *)buf);
  R("GET_PCI_HOT_RESET_INFO group dev", ioctl(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &(struct vfio_pci_hot_reset_info){ .argsz = 16 }));
  R("PCI_HOT_RESET group dev count 0", ioctl(dev, VFIO_DEVICE_PCI_HOT_RESET, &(struct vfio_pci_hot_reset){ .argsz = 12 }));
  R("GET_API_VERSION on group dev", ioctl(dev, VFIO_GET_API_VERSION));
  R("lseek group dev", lseek(dev, 0, SEEK_SET));

  printf("# type1 IOMMU_GET_INFO, MAP_DMA, UNMAP_DMA\n");
  get_info(c, "type1v2");
  info.argsz = 15; R("IOMMU_GET_INFO argsz 15", ioctl(c, VFIO_IOMMU_GET_INFO, &info));
  R("MAP_DMA 16K at 0x100000", map_dma(c, mem, 0x100000, 0x4000, RW));
  R("MAP_DMA same again (overlap)", map_dma(c, mem, 0x100000, 0x4000, RW));
  R("MAP_DMA overlapping tail", map_dma(c, mem, 0x103000, 0x2000, RW));
  R("MAP_DMA unaligned iova", map_dma(c, mem, 0x200800, 0x1000, RW));
  R("MAP_DMA unaligned vaddr", map_dma(c, mem + 0x800, 0x200000, 0x1000, RW));
  R("MAP_DMA unaligned size", map_dma(c, mem, 0x200000, 0x1800, RW));
  R("MAP_DMA size 0", map_dma(c, mem, 0x200000, 0, RW));
  R("MAP_DMA flags 8 (unknown)", map_dma(c, mem, 0x200000, 0x1000, RW | 8));
  R("MAP_DMA no READ/WRITE", map_dma(c, mem, 0x200000, 0x1000, 0));
  R("MAP_DMA VADDR flag with prot", map_dma(c, mem, 0x200000, 0x1000, RW | VFIO_DMA_MAP_FLAG_VADDR));
  R("MAP_DMA argsz 31", (mp.argsz = 31, mp.flags = RW, mp.iova = 0x200000, mp.size = 0x1000, ioctl(c, VFIO_IOMMU_MAP_DMA, &mp)));
  R("MAP_DMA iova in MSI window", map_dma(c, mem, 0xfee00000, 0x1000, RW));
  R("MAP_DMA iova 1<<39", map_dma(c, mem, 1ULL << 39, 0x1000, RW));
  R("MAP_DMA iova wrap", map_dma(c, mem, 0xfffffffffffff000ULL, 0x2000, RW));
  R("MAP_DMA unmapped vaddr", map_dma(c, (void *)0x1000, 0x300000, 0x1000, RW));
  R("MAP_DMA read-only 4K at 0x200000", map_dma(c, mem + 0x10000, 0x200000, 0x1000, VFIO_DMA_MAP_FLAG_READ));
  R("UNMAP_DMA middle of mapping (v2)", unmap_dma(c, 0x101000, 0x1000, 0)); printf("size=0x%llx\n", (unsigned long long)um.size);
  R("UNMAP_DMA unaligned", unmap_dma(c, 0x100800, 0x1000, 0));
  R("UNMAP_DMA size 0", unmap_dma(c, 0x100000, 0, 0));
  R("UNMAP_DMA nothing there", unmap_dma(c, 0x900000, 0x1000, 0)); printf("size=0x%llx\n", (unsigned long long)um.size);
  R("UNMAP_DMA flags 8 (unknown)", unmap_dma(c, 0x100000, 0x4000, 8));
  R("UNMAP_DMA ALL with iova", unmap_dma(c, 0x100000, 0, VFIO_DMA_UNMAP_FLAG_ALL));
  R("UNMAP_DMA whole 16K", unmap_dma(c, 0x100000, 0x4000, 0)); printf("size=0x%llx\n", (unsigned long long)um.size);
  R("MAP_DMA 8K at 0x400000", map_dma(c, mem, 0x400000, 0x2000, RW));
  R("MAP_DMA 8K at 0x500000", map_dma(c, mem, 0x500000, 0x2000, RW));
  R("UNMAP_DMA covering two", unmap_dma(c, 0x400000, 0x200000, 0)); printf("size=0x%llx\n", (unsigned long long)um.size);
  R("MAP_DMA 8K at 0x400000", map_dma(c, mem, 0x400000, 0x2000, RW));
  R("UNMAP_DMA ALL", unmap_dma(c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL)); printf("size=0x%llx\n", (unsigned long long)um.size);
  R("UNMAP_DMA ALL again", unmap_dma(c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL)); printf("size=0x%llx\n", (unsigned long long)um.size);
  R("DIRTY_PAGES argsz 4", ioctl(c, VFIO_IOMMU_DIRTY_PAGES, &(struct vfio_iommu_type1_dirty_bitmap){ .argsz = 4 }));
  R("unknown ioctl on type1 container", ioctl(c, _IO(';', 200)));

  printf("# teardown of the container path\n");
  R("close device fd #2", close(dev2));
  R("UNSET_CONTAINER with one device fd", ioctl(grp, VFIO_GROUP_UNSET_CONTAINER));
  R("close device fd #1", close(dev));
  R("MAP_DMA before UNSET (still type1)", map_dma(c, mem, 0x100000, 0x1000, RW));
  R("UNSET_CONTAINER", ioctl(grp, VFIO_GROUP_UNSET_CONTAINER));
  R("UNSET_CONTAINER again", ioctl(grp, VFIO_GROUP_UNSET_CONTAINER));
  R("GROUP_GET_STATUS", status(grp)); printf("flags=0x%x\n", st.flags);
  R("MAP_DMA after UNSET (iommu released)", map_dma(c, mem, 0x100000, 0x1000, RW));
  R("IOMMU_GET_INFO after UNSET", ioctl(c, VFIO_IOMMU_GET_INFO, &info));
  check_ext(c, "after unset");
  R("SET_CONTAINER container #2", set_container(grp, c2));
  R("SET_IOMMU TYPE1 (v1) on #2", ioctl(c2, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU));
  get_info(c2, "type1v1");
  R("MAP_DMA v1 16K", map_dma(c2, mem, 0x100000, 0x4000, RW));
  R("UNMAP_DMA v1 middle", unmap_dma(c2, 0x101000, 0x1000, 0)); printf("size=0x%llx\n", (unsigned long long)um.size);
  R("UNMAP_DMA v1 first page", unmap_dma(c2, 0x100000, 0x1000, 0)); printf("size=0x%llx\n", (unsigned long long)um.size);
  R("close group with container set", close(grp));
  R("open group again", grp = open(GROUP, O_RDWR));
  R("GROUP_GET_STATUS", status(grp)); printf("flags=0x%x\n", st.flags);
  R("MAP_DMA on #2 after group closed", map_dma(c2, mem, 0x100000, 0x1000, RW));
  R("close container #2", close(c2));
  R("SET_CONTAINER, then close container", set_container(grp, c));
  R("close container", close(c));
  R("GROUP_GET_STATUS (container closed)", status(grp)); printf("flags=0x%x\n", st.flags);
  R("UNSET_CONTAINER (container fd closed)", ioctl(grp, VFIO_GROUP_UNSET_CONTAINER));

  printf("# an iommufd as the container\n");
  R("CHECK_EXTENSION TYPE1v2 on iommufd", ioctl(ifd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
  R("SET_CONTAINER iommufd", set_container(grp, ifd));
  R("GROUP_GET_STATUS", status(grp)); printf("flags=0x%x\n", st.flags);
  R("SET_CONTAINER iommufd again", set_container(grp, ifd));
  struct iommu_vfio_ioas vi = { .size = sizeof vi, .op = IOMMU_VFIO_IOAS_GET };
  R("IOMMU_VFIO_IOAS GET", ioctl(ifd, IOMMU_VFIO_IOAS, &vi)); printf("ioas_id=%u\n", vi.ioas_id);
  uint32_t compat = vi.ioas_id;
  check_ext(ifd, "iommufd");
  R("GET_API_VERSION on iommufd", ioctl(ifd, VFIO_GET_API_VERSION));
  R("GET_DEVICE_FD wrong name", ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, "0000:00:04.0"));
  R("GET_DEVICE_FD " DEVNAME, dev = ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME));
  R("GET_DEVICE_FD second time", dev2 = ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME));
  R("GET_INFO on device", ioctl(dev, VFIO_DEVICE_GET_INFO, &di));
  R("BIND_IOMMUFD on group device fd", bind(dev, ifd));
  R("ATTACH_IOMMUFD_PT on group dev", attach(dev, compat));
  R("DETACH_IOMMUFD_PT on group dev", detach(dev));
  R("IOMMU_DESTROY compat ioas (attached)", destroy(ifd, compat));
  R("IOMMU_DESTROY 2", destroy(ifd, 2));
  R("IOMMU_DESTROY 3", destroy(ifd, 3));
  R("IOMMU_DESTROY 4", destroy(ifd, 4));
  {
    struct iommu_hwpt_alloc ha = { .size = sizeof ha, .dev_id = 2, .pt_id = compat };
    R("HWPT_ALLOC dev_id 2, pt_id compat ioas", ioctl(ifd, IOMMU_HWPT_ALLOC, &ha));
    printf("out_hwpt_id=%u\n", ha.out_hwpt_id);
    R("IOMMU_DESTROY that hwpt", destroy(ifd, ha.out_hwpt_id));
    ha.dev_id = 3;
    R("HWPT_ALLOC dev_id 3", ioctl(ifd, IOMMU_HWPT_ALLOC, &ha));
  }
  R("open cdev", cdev = open(CDEV, O_RDWR));
  R("cdev bind (group path owns device)", bind(cdev, ifd));
  R("close cdev", close(cdev));
  R("SET_IOMMU TYPE1v2 on iommufd", ioctl(ifd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
  get_info(ifd, "iommufd");
  R("MAP_DMA 16K at 0x100000", map_dma(ifd, mem, 0x100000, 0x4000, RW));
  R("MAP_DMA same again (overlap)", map_dma(ifd, mem, 0x100000, 0x4000, RW));
  R("MAP_DMA unaligned iova", map_dma(ifd, mem, 0x200800, 0x1000, RW));
  R("MAP_DMA flags 8 (unknown)", map_dma(ifd, mem, 0x200000, 0x1000, RW | 8));
  R("MAP_DMA iova in MSI window", map_dma(ifd, mem, 0xfee00000, 0x1000, RW));
  R("MAP_DMA iova 1<<39", map_dma(ifd, mem, 1ULL << 39, 0x1000, RW));
  R("UNMAP_DMA middle (v2)", unmap_dma(ifd, 0x101000, 0x1000, 0)); printf("size=0x%llx\n", (unsigned long long)um.size);
  R("UNMAP_DMA whole 16K", unmap_dma(ifd, 0x100000, 0x4000, 0)); printf("size=0x%llx\n", (unsigned long long)um.size);
  R("MAP_DMA 8K at 0x400000", map_dma(ifd, mem, 0x400000, 0x2000, RW));
  R("UNMAP_DMA ALL", unmap_dma(ifd, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL)); printf("size=0x%llx\n", (unsigned long long)um.size);
  R("close device fd #2", close(dev2));
  R("UNSET_CONTAINER with device fd open", ioctl(grp, VFIO_GROUP_UNSET_CONTAINER));
  R("GROUP_GET_STATUS", status(grp)); printf("flags=0x%x\n", st.flags);
  R("GET_DEVICE_FD after unset", ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME));
  R("GET_INFO on device after unset", ioctl(dev, VFIO_DEVICE_GET_INFO, &di));
  R("MAP_DMA on iommufd after unset", map_dma(ifd, mem, 0x100000, 0x1000, RW));
  R("IOMMU_DESTROY compat ioas (dev open)", destroy(ifd, compat));
  R("open /dev/vfio/vfio", c = open("/dev/vfio/vfio", O_RDWR));
  R("SET_CONTAINER legacy (iommufd dev open)", set_container(grp, c));
  R("SET_CONTAINER iommufd (dev open)", set_container(grp, ifd));
  R("GROUP_GET_STATUS", status(grp)); printf("flags=0x%x\n", st.flags);
  R("GET_DEVICE_FD (dev open)", dev2 = ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME));
  R("close it", close(dev2));
  R("UNSET_CONTAINER", ioctl(grp, VFIO_GROUP_UNSET_CONTAINER));
  R("close device fd #1", close(dev));
  R("GROUP_GET_STATUS (dev closed)", status(grp)); printf("flags=0x%x\n", st.flags);
  R("IOMMU_DESTROY compat ioas (dev closed)", destroy(ifd, compat));
  R("IOMMU_VFIO_IOAS GET after destroy", ioctl(ifd, IOMMU_VFIO_IOAS, &vi));
  R("SET_CONTAINER iommufd (again)", set_container(grp, ifd));
  vi.op = IOMMU_VFIO_IOAS_GET;
  R("IOMMU_VFIO_IOAS GET", ioctl(ifd, IOMMU_VFIO_IOAS, &vi)); printf("ioas_id=%u\n", vi.ioas_id);
  R("GET_DEVICE_FD " DEVNAME, dev = ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME));
  R("close group with device fd open", close(grp));
  R("open group (device fd still open)", grp = open(GROUP, O_RDWR));
  R("GROUP_GET_STATUS", status(grp)); printf("flags=0x%x\n", st.flags);
  R("GET_DEVICE_FD (new group fd)", ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME));
  R("GET_INFO on device after group close", ioctl(dev, VFIO_DEVICE_GET_INFO, &di));
  R("close device fd", close(dev));
  R("GROUP_GET_STATUS", status(grp)); printf("flags=0x%x\n", st.flags);
  R("open cdev", cdev = open(CDEV, O_RDWR));
  R("cdev bind while group open", bind(cdev, ifd));
  R("close group", close(grp));
  R("cdev bind after group closed", bind(cdev, ifd));
  printf("out_devid=%u\n", bind_arg.out_devid);
  R("open group while cdev bound", open(GROUP, O_RDWR));
  R("close cdev", close(cdev));
  R("open group after cdev closed", grp = open(GROUP, O_RDWR));
  R("SET_CONTAINER legacy", set_container(grp, c));
  R("SET_IOMMU TYPE1v2", ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
  R("GET_DEVICE_FD " DEVNAME, dev = ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME));
  R("close group (legacy dev fd open)", close(grp));
  R("open group (legacy dev fd open)", grp = open(GROUP, O_RDWR));
  R("close device fd", close(dev));
  R("open group (all closed)", grp = open(GROUP, O_RDWR));
  R("GROUP_GET_STATUS", status(grp)); printf("flags=0x%x\n", st.flags);
  printf("done\n");
  return 0;
}
