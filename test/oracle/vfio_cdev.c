/* The VFIO device cdev /dev/vfio/devices/vfio0 (edu, vfio-pci) and its iommufd binding:
 * drivers/vfio/device_cdev.c, vfio_main.c, iommufd.c, drivers/iommu/iommufd/device.c.
 * Run with ../shared/oracle/run.sh -v; output in vfio_cdev.expected. */
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
#define REGION(i) ((off_t)(i) << 40)

static long mm(void *p, size_t len) {
  if (p == MAP_FAILED) return -1;
  munmap(p, len);
  return 0;
}

static struct vfio_device_bind_iommufd bind_arg;
static long bind(int dev, int iommufd) {
  memset(&bind_arg, 0, sizeof bind_arg);
  bind_arg.argsz = sizeof bind_arg; bind_arg.iommufd = iommufd; bind_arg.out_devid = 0xdeadbeef;
  return ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind_arg);
}
static struct vfio_device_attach_iommufd_pt att;
static long attach(int dev, uint32_t pt) {
  att = (struct vfio_device_attach_iommufd_pt){ .argsz = sizeof att, .pt_id = pt };
  return ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &att);
}
static long detach(int dev) {
  struct vfio_device_detach_iommufd_pt d = { .argsz = sizeof d };
  return ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &d);
}
static uint32_t ioas_alloc(int fd) {
  struct iommu_ioas_alloc a = { .size = sizeof a };
  if (ioctl(fd, IOMMU_IOAS_ALLOC, &a)) { printf("ioas_alloc failed %s\n", strerrorname_np(errno)); return 0; }
  return a.out_ioas_id;
}
static long destroy(int fd, uint32_t id) {
  struct iommu_destroy d = { .size = sizeof d, .id = id };
  return ioctl(fd, IOMMU_DESTROY, &d);
}
static long ioas_map(int fd, uint32_t ioas, void *va, uint64_t len, uint64_t iova) {
  struct iommu_ioas_map m = { .size = sizeof m, .ioas_id = ioas,
    .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
    .user_va = (uintptr_t)va, .length = len, .iova = iova };
  return ioctl(fd, IOMMU_IOAS_MAP, &m);
}
static uint32_t read32(int dev, off_t off) {
  uint32_t v = 0xdeadbeef;
  if (pread(dev, &v, 4, off) != 4) printf("pread failed %s\n", strerrorname_np(errno));
  return v;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  char name[64];
  unsigned char buf[64];

  printf("# open, and everything before BIND_IOMMUFD\n");
  int ifd;
  R("open /dev/iommu", ifd = open("/dev/iommu", O_RDWR));
  int dev;
  R("open cdev", dev = open(CDEV, O_RDWR));
  struct vfio_device_info di = { .argsz = sizeof di };
  R("GET_INFO before bind", ioctl(dev, VFIO_DEVICE_GET_INFO, &di));
  struct vfio_region_info ri = { .argsz = sizeof ri, .index = 0 };
  R("GET_REGION_INFO before bind", ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &ri));
  struct vfio_irq_info ii = { .argsz = sizeof ii, .index = 0 };
  R("GET_IRQ_INFO before bind", ioctl(dev, VFIO_DEVICE_GET_IRQ_INFO, &ii));
  struct vfio_irq_set is = { .argsz = sizeof is, .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, .index = 0 };
  R("SET_IRQS before bind", ioctl(dev, VFIO_DEVICE_SET_IRQS, &is));
  R("RESET before bind", ioctl(dev, VFIO_DEVICE_RESET));
  R("ATTACH_IOMMUFD_PT before bind", attach(dev, 1));
  R("DETACH_IOMMUFD_PT before bind", detach(dev));
  struct vfio_device_feature feat = { .argsz = sizeof feat, .flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION };
  R("FEATURE before bind", ioctl(dev, VFIO_DEVICE_FEATURE, &feat));
  R("unknown ioctl before bind", ioctl(dev, _IO(';', 200)));
  R("GET_API_VERSION on cdev before bind", ioctl(dev, VFIO_GET_API_VERSION));
  R("read before bind", read(dev, buf, 4));
  R("pread config before bind", pread(dev, buf, 4, REGION(VFIO_PCI_CONFIG_REGION_INDEX)));
  R("pwrite config before bind", pwrite(dev, buf, 4, REGION(VFIO_PCI_CONFIG_REGION_INDEX) + 0x3c));
  R("mmap BAR0 before bind", mm(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, dev, 0), 4096));
  R("lseek cdev", lseek(dev, 0, SEEK_SET));

  printf("# BIND_IOMMUFD refusals\n");
  struct { struct vfio_device_bind_iommufd b; uint32_t extra[4]; } big;
  memset(&big, 0, sizeof big);
  big.b.iommufd = ifd;
  big.b.argsz = 0; R("bind argsz 0", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &big));
  big.b.argsz = 12; R("bind argsz 12", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &big));
  big.b.argsz = 15; R("bind argsz 15", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &big));
  big.b.argsz = 16; big.b.flags = 1; R("bind flags 1", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &big));
  big.b.flags = 0x80000000; R("bind flags 1<<31", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &big));
  big.b.flags = 0; big.b.iommufd = -1; R("bind iommufd -1", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &big));
  big.b.argsz = 8; R("bind argsz 8 + iommufd -1", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &big));
  int closed = open("/dev/null", O_RDWR); close(closed);
  R("bind iommufd closed fd", bind(dev, closed));
  R("bind iommufd 1000 (never open)", bind(dev, 1000));
  int null = open("/dev/null", O_RDWR);
  R("bind iommufd /dev/null", bind(dev, null));
  R("bind iommufd = cdev itself", bind(dev, dev));
  int cont = open("/dev/vfio/vfio", O_RDWR);
  R("bind iommufd = /dev/vfio/vfio", bind(dev, cont));
  close(cont);
  int grp;
  R("open group (cdev open, unbound)", grp = open(GROUP, O_RDWR));
  R("bind iommufd = group fd (group open)", bind(dev, grp));
  R("bind valid iommufd while group open", bind(dev, ifd));
  R("close group", close(grp));
  R("bind /dev/null after group closed", bind(dev, null));
  R("open group after failed binds", grp = open(GROUP, O_RDWR));
  R("close group", close(grp));

  printf("# successful bind (argsz 24, non-zero trailing bytes)\n");
  memset(&big, 0, sizeof big);
  big.b.argsz = sizeof big; big.b.iommufd = ifd; big.b.out_devid = 0xdeadbeef;
  big.extra[0] = 0xffffffff; big.extra[1] = 0x12345678;
  R("bind argsz 32 trailing garbage", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &big));
  printf("out_devid=%u extra0=0x%x\n", big.b.out_devid, big.extra[0]);
  uint32_t devid = big.b.out_devid;
  R("bind again same fd", bind(dev, ifd));
  R("bind again same fd, flags 1", (big.b.argsz = 16, big.b.flags = 1, ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &big)));
  R("bind again same fd, /dev/null", bind(dev, null));
  int ifd2;
  R("open /dev/iommu #2", ifd2 = open("/dev/iommu", O_RDWR));
  R("bind again same fd, other iommufd", bind(dev, ifd2));
  R("open group while cdev bound", grp = open(GROUP, O_RDWR));
  if (grp >= 0) close(grp);
  int cont2;
  R("open container while cdev bound", cont2 = open("/dev/vfio/vfio", O_RDWR));
  close(cont2);

  printf("# a second open of the cdev\n");
  int dev2;
  R("open cdev #2 while #1 bound", dev2 = open(CDEV, O_RDWR));
  R("cdev #2 GET_INFO (unbound)", ioctl(dev2, VFIO_DEVICE_GET_INFO, &di));
  R("cdev #2 bind same iommufd", bind(dev2, ifd));
  printf("out_devid=0x%x\n", bind_arg.out_devid);
  R("cdev #2 bind other iommufd", bind(dev2, ifd2));
  R("cdev #2 bind /dev/null", bind(dev2, null));
  R("cdev #2 pread config", pread(dev2, buf, 4, REGION(VFIO_PCI_CONFIG_REGION_INDEX)));

  printf("# bound, not attached\n");
  di.argsz = 15; R("GET_INFO argsz 15", ioctl(dev, VFIO_DEVICE_GET_INFO, &di));
  di.argsz = 16; R("GET_INFO argsz 16", ioctl(dev, VFIO_DEVICE_GET_INFO, &di));
  printf("flags=0x%x num_regions=%u num_irqs=%u\n", di.flags, di.num_regions, di.num_irqs);
  ri.argsz = 31; R("GET_REGION_INFO argsz 31", ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &ri));
  ri.argsz = 32; ri.index = 0; R("GET_REGION_INFO BAR0", ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &ri));
  printf("flags=0x%x size=0x%llx offset=0x%llx\n", ri.flags, (unsigned long long)ri.size, (unsigned long long)ri.offset);
  R("unknown ioctl after bind", ioctl(dev, _IO(';', 200)));
  R("GET_API_VERSION on cdev after bind", ioctl(dev, VFIO_GET_API_VERSION));
  R("pread config vendor (unattached)", pread(dev, buf, 4, REGION(VFIO_PCI_CONFIG_REGION_INDEX)));
  printf("vendor/device=0x%08x\n", *(uint32_t *)buf);
  printf("bar0[0] (unattached)=0x%08x\n", read32(dev, REGION(0)));
  R("lseek cdev after bind", lseek(dev, 0, SEEK_SET));
  R("read() at file pos 0 = BAR0+0", read(dev, buf, 4));
  printf("value=0x%08x\n", *(uint32_t *)buf);
  R("DETACH while not attached", detach(dev));
  R("IOMMU_DESTROY device id", destroy(ifd, devid));

  printf("# ATTACH_IOMMUFD_PT\n");
  uint32_t ioas1 = ioas_alloc(ifd);
  printf("ioas1=%u\n", ioas1);
  struct { struct vfio_device_attach_iommufd_pt a; uint32_t extra; } ab;
  memset(&ab, 0, sizeof ab); ab.a.pt_id = ioas1;
  ab.a.argsz = 8; R("attach argsz 8", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &ab));
  ab.a.argsz = 11; R("attach argsz 11", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &ab));
  ab.a.argsz = 12; ab.a.flags = 1; R("attach flags 1", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &ab));
  R("attach pt_id 0", attach(dev, 0));
  R("attach pt_id 999 (none)", attach(dev, 999));
  R("attach pt_id = device id", attach(dev, devid));
  R("attach ioas1", attach(dev, ioas1));
  uint32_t hwpt1 = att.pt_id;
  printf("pt_id written back=%u\n", att.pt_id);
  R("attach ioas1 again", attach(dev, ioas1));
  printf("pt_id written back=%u\n", att.pt_id);
  memset(&ab, 0, sizeof ab); ab.a.argsz = sizeof ab; ab.a.pt_id = ioas1; ab.extra = 0xffffffff;
  R("attach argsz 16 trailing garbage", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &ab));
  printf("pt_id written back=%u\n", ab.a.pt_id);
  R("cdev #2 attach (unbound)", attach(dev2, ioas1));
  {
    struct { struct iommu_ioas_iova_ranges r; struct iommu_iova_range a[8]; } rg;
    memset(&rg, 0, sizeof rg); rg.r.size = sizeof rg.r; rg.r.ioas_id = ioas1; rg.r.num_iovas = 8;
    rg.r.allowed_iovas = (uintptr_t)rg.a;
    R("IOAS_IOVA_RANGES ioas1 (attached)", ioctl(ifd, IOMMU_IOAS_IOVA_RANGES, &rg));
    printf("num_iovas=%u alignment=0x%llx\n", rg.r.num_iovas, (unsigned long long)rg.r.out_iova_alignment);
    for (unsigned i = 0; i < rg.r.num_iovas && i < 8; i++)
      printf("  range 0x%llx-0x%llx\n", (unsigned long long)rg.a[i].start, (unsigned long long)rg.a[i].last);
  }
  char *mem = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  memset(mem, 0x5a, 1 << 20);
  R("IOAS_MAP 16K at 0x100000 (attached)", ioas_map(ifd, ioas1, mem, 0x4000, 0x100000));
  R("IOAS_MAP 4K at 0xfee00000 (MSI window)", ioas_map(ifd, ioas1, mem, 0x1000, 0xfee00000));
  R("IOAS_MAP 4K at 1<<39 (beyond aperture)", ioas_map(ifd, ioas1, mem, 0x1000, 1ULL << 39));
  R("IOMMU_DESTROY ioas1 (attached)", destroy(ifd, ioas1));
  R("IOMMU_DESTROY auto hwpt (attached)", destroy(ifd, hwpt1));
  R("IOMMU_DESTROY device id (attached)", destroy(ifd, devid));

  printf("# replace\n");
  uint32_t ioas2 = ioas_alloc(ifd);
  printf("ioas2=%u\n", ioas2);
  R("attach ioas2 (replace)", attach(dev, ioas2));
  uint32_t hwpt2 = att.pt_id;
  printf("pt_id written back=%u\n", att.pt_id);
  R("IOMMU_DESTROY old auto hwpt", destroy(ifd, hwpt1));
  R("IOMMU_DESTROY ioas1 (no longer attached)", destroy(ifd, ioas1));
  struct iommu_hwpt_alloc ha = { .size = sizeof ha, .dev_id = devid, .pt_id = ioas2 };
  R("HWPT_ALLOC dev, ioas2", ioctl(ifd, IOMMU_HWPT_ALLOC, &ha));
  uint32_t hwpt3 = ha.out_hwpt_id;
  printf("out_hwpt_id=%u\n", hwpt3);
  ha.pt_id = hwpt2; R("HWPT_ALLOC on auto hwpt (not an ioas)", ioctl(ifd, IOMMU_HWPT_ALLOC, &ha));
  R("attach explicit hwpt", attach(dev, hwpt3));
  printf("pt_id written back=%u\n", att.pt_id);
  R("IOMMU_DESTROY auto hwpt of ioas2", destroy(ifd, hwpt2));
  R("IOMMU_DESTROY explicit hwpt (attached)", destroy(ifd, hwpt3));
  R("IOMMU_DESTROY ioas2 (hwpt on it)", destroy(ifd, ioas2));

  printf("# DETACH_IOMMUFD_PT\n");
  struct { struct vfio_device_detach_iommufd_pt d; uint32_t extra; } db;
  memset(&db, 0, sizeof db);
  db.d.argsz = 4; R("detach argsz 4", ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &db));
  db.d.argsz = 7; R("detach argsz 7", ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &db));
  db.d.argsz = 8; db.d.flags = 1; R("detach flags 1", ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &db));
  db.d.argsz = 12; db.d.flags = 0; db.extra = 0xffffffff; R("detach argsz 12 trailing garbage", ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &db));
  R("detach again", detach(dev));
  R("cdev #2 detach (unbound)", detach(dev2));
  R("IOMMU_DESTROY explicit hwpt (detached)", destroy(ifd, hwpt3));
  R("IOMMU_DESTROY ioas2 (detached)", destroy(ifd, ioas2));
  R("IOMMU_DESTROY device id (detached)", destroy(ifd, devid));

  printf("# close of a bound+attached cdev undoes everything\n");
  uint32_t ioas3 = ioas_alloc(ifd);
  printf("ioas3=%u\n", ioas3);
  R("attach ioas3", attach(dev, ioas3));
  printf("pt_id written back=%u\n", att.pt_id);
  R("IOAS_MAP 16K at 0x100000", ioas_map(ifd, ioas3, mem, 0x4000, 0x100000));
  R("IOMMU_DESTROY ioas3 (attached)", destroy(ifd, ioas3));
  R("close cdev #1", close(dev));
  R("IOMMU_DESTROY device id (after close)", destroy(ifd, devid));
  R("IOMMU_DESTROY ioas3 (after close)", destroy(ifd, ioas3));
  R("cdev #2 bind now that #1 is closed", bind(dev2, ifd));
  printf("out_devid=%u\n", bind_arg.out_devid);
  int dev3;
  R("open cdev #3", dev3 = open(CDEV, O_RDWR));
  R("cdev #3 bind while #2 bound", bind(dev3, ifd));
  R("close cdev #2", close(dev2));
  R("cdev #3 bind after #2 closed", bind(dev3, ifd));
  printf("out_devid=%u\n", bind_arg.out_devid);
  uint32_t devid3 = bind_arg.out_devid;

  printf("# close the iommufd before the cdev\n");
  uint32_t ioas4 = ioas_alloc(ifd);
  printf("ioas4=%u\n", ioas4);
  R("attach ioas4", attach(dev3, ioas4));
  printf("pt_id written back=%u\n", att.pt_id);
  R("close iommufd", close(ifd));
  di.argsz = sizeof di; R("GET_INFO after iommufd closed", ioctl(dev3, VFIO_DEVICE_GET_INFO, &di));
  R("detach after iommufd closed", detach(dev3));
  R("attach ioas4 after iommufd closed", attach(dev3, ioas4));
  printf("pt_id written back=%u\n", att.pt_id);
  R("close cdev #3", close(dev3));
  (void)devid3;

  printf("# bind to iommufd A, close, reopen, bind to iommufd B\n");
  int ifdA;
  R("open iommufd A", ifdA = open("/dev/iommu", O_RDWR));
  int d;
  R("open cdev", d = open(CDEV, O_RDWR));
  R("bind A", bind(d, ifdA));
  printf("out_devid=%u\n", bind_arg.out_devid);
  uint32_t ioasA = ioas_alloc(ifdA);
  R("attach A ioas", attach(d, ioasA));
  printf("ioas=%u pt_id written back=%u\n", ioasA, att.pt_id);
  R("close cdev", close(d));
  R("reopen cdev", d = open(CDEV, O_RDWR));
  R("bind B (iommufd #2)", bind(d, ifd2));
  printf("out_devid=%u\n", bind_arg.out_devid);
  R("attach B ioas of A (wrong ctx)", attach(d, ioasA));
  uint32_t ioasB = ioas_alloc(ifd2);
  R("attach B ioas", attach(d, ioasB));
  printf("ioas=%u pt_id written back=%u\n", ioasB, att.pt_id);
  R("close cdev", close(d));
  R("reopen cdev", d = open(CDEV, O_RDWR));
  R("bind A again", bind(d, ifdA));
  printf("out_devid=%u\n", bind_arg.out_devid);
  R("close cdev", close(d));
  R("open group after all cdevs closed", grp = open(GROUP, O_RDWR));
  R("open cdev while group open", d = open(CDEV, O_RDWR));
  R("bind while group open", bind(d, ifdA));
  R("close group", close(grp));
  R("bind after group closed", bind(d, ifdA));
  printf("out_devid=%u\n", bind_arg.out_devid);
  R("close cdev", close(d));
  R("open cdev O_RDONLY", d = open(CDEV, O_RDONLY));
  R("O_RDONLY bind", bind(d, ifdA));
  R("O_RDONLY pread config", pread(d, buf, 4, REGION(VFIO_PCI_CONFIG_REGION_INDEX)));
  R("O_RDONLY pwrite config", pwrite(d, buf, 4, REGION(VFIO_PCI_CONFIG_REGION_INDEX) + 0x3c));
  R("O_RDONLY mmap BAR0 PROT_READ", mm(mmap(NULL, 4096, PROT_READ, MAP_SHARED, d, 0), 4096));
  R("O_RDONLY mmap BAR0 PROT_WRITE", mm(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0), 4096));
  R("close cdev", close(d));
  snprintf(name, sizeof name, "done");
  printf("%s\n", name);
  return 0;
}
