/* vfio noiommu (drivers/vfio/group.c vfio_noiommu_group_alloc, container.c vfio-noiommu, the
 * iommufd compat no-iommu mode): edu at 0000:00:03.0 with no IOMMU, in /dev/vfio/noiommu-0.
 * Run with test/oracle/noiommu.sh; output in vfio_noiommu.expected. With argument "nocap" the
 * program first drops CAP_SYS_RAWIO from its effective set and prints only the refusals. */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

#define R(name, expr) do { errno = 0; long _r = (long)(expr); \
  printf("%-44s ret=%ld errno=%s\n", name, _r, _r < 0 ? strerrorname_np(errno) : "0"); } while (0)
#define GROUP "/dev/vfio/noiommu-0"
#define DEVNAME "0000:00:03.0"
#define SYSDEV "/sys/bus/pci/devices/" DEVNAME

static void cat(const char *path) {
  char b[256] = {0};
  int fd = open(path, O_RDONLY);
  ssize_t n = fd < 0 ? -1 : read(fd, b, sizeof b - 1);
  if (fd >= 0) close(fd);
  if (n < 0) { printf("%s: %s\n", path, strerrorname_np(errno)); return; }
  while (n > 0 && b[n - 1] == '\n') b[--n] = 0;
  printf("%s = \"%s\"\n", path, b);
}
static void link_of(const char *path) {
  char b[256] = {0};
  ssize_t n = readlink(path, b, sizeof b - 1);
  printf("%s -> %s\n", path, n < 0 ? strerrorname_np(errno) : b);
}
static void exists(const char *path) {
  struct stat s;
  int r = stat(path, &s);
  if (r < 0) printf("stat %s: %s\n", path, strerrorname_np(errno));
  else printf("stat %s: mode 0%o%s\n", path, s.st_mode, S_ISCHR(s.st_mode) ? " chr" : "");
}
static void ls(const char *path) {
  DIR *d = opendir(path);
  if (!d) { printf("ls %s: %s\n", path, strerrorname_np(errno)); return; }
  char names[64][64]; int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 64) if (e->d_name[0] != '.') snprintf(names[n++], 64, "%s", e->d_name);
  closedir(d);
  qsort(names, n, 64, (int (*)(const void *, const void *))strcmp);
  printf("ls %s:", path);
  for (int i = 0; i < n; i++) printf(" %s", names[i]);
  printf("\n");
}
static struct vfio_group_status st;
static long status(int grp) {
  st = (struct vfio_group_status){ .argsz = sizeof st, .flags = 0xdead };
  return ioctl(grp, VFIO_GROUP_GET_STATUS, &st);
}
static long set_container(int grp, int fd) { return ioctl(grp, VFIO_GROUP_SET_CONTAINER, &fd); }
static void check_ext(int fd, const char *pfx) {
  char n[64];
  for (unsigned long e = 1; e <= 9; e++) {
    snprintf(n, sizeof n, "%s CHECK_EXTENSION %lu", pfx, e);
    R(n, ioctl(fd, VFIO_CHECK_EXTENSION, e));
  }
}
static long attach(int dev, uint32_t pt) {
  struct vfio_device_attach_iommufd_pt a = { .argsz = sizeof a, .pt_id = pt };
  return ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a);
}
static long detach(int dev) {
  struct vfio_device_detach_iommufd_pt d = { .argsz = sizeof d };
  return ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &d);
}
static long bind(int dev, int iommufd) {
  struct vfio_device_bind_iommufd b = { .argsz = sizeof b, .iommufd = iommufd };
  return ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &b);
}
static void device_info(int dev) {
  struct vfio_device_info di = { .argsz = sizeof di };
  R("DEVICE_GET_INFO", ioctl(dev, VFIO_DEVICE_GET_INFO, &di));
  printf("flags=0x%x num_regions=%u num_irqs=%u\n", di.flags, di.num_regions, di.num_irqs);
  uint32_t id = 0;
  R("pread config", pread(dev, &id, 4, (off_t)VFIO_PCI_CONFIG_REGION_INDEX << 40));
  printf("vendor/device=0x%08x\n", id);
  R("pread BAR0 id register", pread(dev, &id, 4, 0));
  printf("bar0[0]=0x%08x\n", id);
}

static int nocap(void) {
  struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
  struct __user_cap_data_struct d[2];
  syscall(SYS_capget, &h, d);
  d[CAP_SYS_RAWIO / 32].effective &= ~(1u << (CAP_SYS_RAWIO % 32));
  R("capset without CAP_SYS_RAWIO", syscall(SYS_capset, &h, d));
  int c, ifd;
  R("open group", open(GROUP, O_RDWR));
  R("open /dev/vfio/vfio", c = open("/dev/vfio/vfio", O_RDWR));
  R("container CHECK_EXTENSION NOIOMMU", ioctl(c, VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU));
  R("container SET_IOMMU NOIOMMU (no group)", ioctl(c, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU));
  R("open /dev/iommu", ifd = open("/dev/iommu", O_RDWR));
  struct vfio_iommu_type1_info info = { .argsz = sizeof info };
  R("iommufd IOMMU_GET_INFO", ioctl(ifd, VFIO_IOMMU_GET_INFO, &info));
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc > 1 && !strcmp(argv[1], "nocap")) return nocap();

  printf("# nodes and sysfs\n");
  ls("/dev/vfio");
  exists("/dev/vfio/devices");
  exists(GROUP);
  link_of(SYSDEV "/iommu_group");
  exists(SYSDEV "/iommu");
  ls("/sys/kernel/iommu_groups");
  ls("/sys/kernel/iommu_groups/0");
  ls("/sys/kernel/iommu_groups/0/devices");
  cat("/sys/kernel/iommu_groups/0/name");
  cat("/sys/kernel/iommu_groups/0/type");
  cat("/sys/kernel/iommu_groups/0/reserved_regions");
  ls(SYSDEV "/vfio-dev");
  ls(SYSDEV "/vfio-dev/vfio0");
  exists(SYSDEV "/vfio-dev/vfio0/dev");
  ls("/sys/class/vfio");
  ls("/sys/class/vfio-dev");
  cat("/sys/class/vfio/noiommu-0/dev");
  link_of("/sys/class/vfio/noiommu-0");
  cat("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode");
  link_of(SYSDEV "/driver");

  printf("# the group\n");
  int c, c2, grp, dev, ifd, ifd2;
  R("open /dev/vfio/0", open("/dev/vfio/0", O_RDWR));
  R("open group", grp = open(GROUP, O_RDWR));
  R("open group again", open(GROUP, O_RDWR));
  R("GROUP_GET_STATUS", status(grp)); printf("flags=0x%x\n", st.flags);
  R("GET_DEVICE_FD no container", ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME));

  printf("# the container\n");
  R("open /dev/vfio/vfio", c = open("/dev/vfio/vfio", O_RDWR));
  check_ext(c, "empty");
  R("SET_IOMMU NOIOMMU (no group)", ioctl(c, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU));
  R("SET_CONTAINER", set_container(grp, c));
  R("GROUP_GET_STATUS", status(grp)); printf("flags=0x%x\n", st.flags);
  check_ext(c, "noiommu group");
  R("GET_DEVICE_FD before SET_IOMMU", ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME));
  R("SET_IOMMU TYPE1v2", ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
  R("SET_IOMMU TYPE1", ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU));
  R("SET_IOMMU NOIOMMU", ioctl(c, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU));
  R("SET_IOMMU NOIOMMU again", ioctl(c, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU));
  check_ext(c, "noiommu set");
  R("GROUP_GET_STATUS", status(grp)); printf("flags=0x%x\n", st.flags);
  struct vfio_iommu_type1_info info = { .argsz = sizeof info };
  R("IOMMU_GET_INFO", ioctl(c, VFIO_IOMMU_GET_INFO, &info));
  struct vfio_iommu_type1_dma_map mp = { .argsz = sizeof mp, .flags = 3, .vaddr = (uintptr_t)&info, .iova = 0x100000, .size = 0x1000 };
  R("MAP_DMA", ioctl(c, VFIO_IOMMU_MAP_DMA, &mp));
  R("unknown container ioctl", ioctl(c, _IO(';', 200)));
  R("open /dev/vfio/vfio #2", c2 = open("/dev/vfio/vfio", O_RDWR));
  R("GET_DEVICE_FD", dev = ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME));
  {
    char path[64], l[128] = {0};
    snprintf(path, sizeof path, "/proc/self/fd/%d", dev);
    ssize_t n = readlink(path, l, sizeof l - 1);
    printf("fd link=%s\n", n > 0 ? l : "?");
  }
  device_info(dev);
  R("open /dev/iommu", ifd = open("/dev/iommu", O_RDWR));
  R("BIND_IOMMUFD on group device fd", bind(dev, ifd));
  R("ATTACH_IOMMUFD_PT on group device fd", attach(dev, 1));
  R("DETACH_IOMMUFD_PT on group device fd", detach(dev));
  R("DEVICE_RESET", ioctl(dev, VFIO_DEVICE_RESET));
  R("UNSET_CONTAINER with the device open", ioctl(grp, VFIO_GROUP_UNSET_CONTAINER));
  R("close device", close(dev));
  R("UNSET_CONTAINER", ioctl(grp, VFIO_GROUP_UNSET_CONTAINER));
  check_ext(c, "after unset");
  R("IOMMU_GET_INFO after unset", ioctl(c, VFIO_IOMMU_GET_INFO, &info));

  printf("# the group with an iommufd as its container\n");
  R("SET_CONTAINER iommufd", set_container(grp, ifd));
  R("GROUP_GET_STATUS", status(grp)); printf("flags=0x%x\n", st.flags);
  check_ext(ifd, "iommufd");
  R("iommufd IOMMU_GET_INFO", ioctl(ifd, VFIO_IOMMU_GET_INFO, &info));
  R("iommufd MAP_DMA", ioctl(ifd, VFIO_IOMMU_MAP_DMA, &mp));
  R("iommufd SET_IOMMU NOIOMMU", ioctl(ifd, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU));
  R("iommufd SET_IOMMU TYPE1v2", ioctl(ifd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
  struct iommu_vfio_ioas vi = { .size = sizeof vi, .op = IOMMU_VFIO_IOAS_GET };
  R("IOMMU_VFIO_IOAS GET", ioctl(ifd, IOMMU_VFIO_IOAS, &vi)); printf("ioas_id=%u\n", vi.ioas_id);
  R("GET_DEVICE_FD", dev = ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME));
  device_info(dev);
  R("BIND_IOMMUFD", bind(dev, ifd));
  R("ATTACH_IOMMUFD_PT", attach(dev, 1));
  struct iommu_ioas_alloc a = { .size = sizeof a };
  R("IOMMU_IOAS_ALLOC", ioctl(ifd, IOMMU_IOAS_ALLOC, &a)); printf("ioas=%u\n", a.out_ioas_id);
  R("ATTACH_IOMMUFD_PT to it", attach(dev, a.out_ioas_id));
  R("close device", close(dev));
  R("UNSET_CONTAINER", ioctl(grp, VFIO_GROUP_UNSET_CONTAINER));

  printf("# an iommufd that has a compat IOAS\n");
  R("open /dev/iommu #2", ifd2 = open("/dev/iommu", O_RDWR));
  R("IOMMU_IOAS_ALLOC", ioctl(ifd2, IOMMU_IOAS_ALLOC, &a));
  vi = (struct iommu_vfio_ioas){ .size = sizeof vi, .op = IOMMU_VFIO_IOAS_SET, .ioas_id = a.out_ioas_id };
  R("IOMMU_VFIO_IOAS SET", ioctl(ifd2, IOMMU_VFIO_IOAS, &vi));
  R("SET_CONTAINER iommufd #2", set_container(grp, ifd2));
  R("GET_DEVICE_FD", dev = ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME));
  if (dev >= 0) close(dev);
  R("UNSET_CONTAINER", ioctl(grp, VFIO_GROUP_UNSET_CONTAINER));

  printf("# back to the legacy container\n");
  R("SET_CONTAINER", set_container(grp, c2));
  R("SET_IOMMU NOIOMMU", ioctl(c2, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU));
  R("GET_DEVICE_FD", dev = ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, DEVNAME));
  R("close group with the device open", close(grp));
  device_info(dev);
  R("close device", close(dev));
  R("open group", grp = open(GROUP, O_RDWR));
  R("GROUP_GET_STATUS", status(grp)); printf("flags=0x%x\n", st.flags);
  return 0;
}
