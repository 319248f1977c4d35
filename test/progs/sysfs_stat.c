/* stat and lstat of the emulated sysfs: kernfs's modes and sizes (directories 0755, attributes
 * 0444/0644 at PAGE_SIZE or their binary size, links 0777 unless followed), ".." through links,
 * a file named as a directory, a missing entry. Output compared with the real 6.12 guest (-v). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *kind(mode_t m)
{
	return S_ISDIR(m) ? "dir" : S_ISREG(m) ? "reg" : S_ISLNK(m) ? "lnk" : S_ISCHR(m) ? "chr" : "?";
}

int main(void)
{
	static const char *const paths[] = {
		"/sys/kernel/iommu_groups", "/sys/kernel/iommu_groups/3", "/sys/kernel/iommu_groups/3/type",
		"/sys/kernel/iommu_groups/3/reserved_regions", "/sys/kernel/iommu_groups/3/devices/0000:00:03.0",
		"/sys/bus/pci/devices/0000:00:03.0", "/sys/bus/pci/devices/0000:00:03.0/",
		"/sys/bus/pci/devices/0000:00:03.0/config", "/sys/bus/pci/devices/0000:00:03.0/vendor",
		"/sys/bus/pci/devices/0000:00:03.0/enable", "/sys/bus/pci/devices/0000:00:03.0/driver_override",
		"/sys/bus/pci/devices/0000:00:03.0/iommu_group", "/sys/bus/pci/devices/0000:00:03.0/iommu",
		"/sys/bus/pci/devices/0000:00:03.0/driver", "/sys/bus/pci/devices/0000:00:03.0/vfio-dev/vfio0",
		"/sys/bus/pci/devices/0000:00:03.0/vfio-dev/vfio0/dev", "/sys/bus/pci/devices/0000:00:03.0/vfio-dev/vfio0/uevent",
		"/sys/bus/pci/devices/0000:00:03.0/vfio-dev/vfio0/power/control", "/sys/class/vfio/3", "/sys/class/vfio/3/dev",
		"/sys/class/vfio-dev/vfio0", "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "/sys/module/vfio/version",
		"/sys/module/iommufd/parameters/allow_unsafe_interrupts", "/sys/bus/pci/drivers/vfio-pci",
		"/sys/bus/pci/devices/0000:00:03.0/vendor/", "/sys/bus/pci/devices/0000:00:03.0/../0000:00:03.0/device",
		"/sys/bus/pci/devices/0000:00:03.0/iommu_group/devices/0000:00:03.0/vendor", "/sys/bus/pci/devices/0000:00:09.0",
	};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct stat s, l;
		printf("%s:", paths[i]);
		if (stat(paths[i], &s))
			printf(" stat %s", strerrorname_np(errno));
		else
			printf(" stat %s %o %lld", kind(s.st_mode), s.st_mode & 07777, (long long)s.st_size);
		if (lstat(paths[i], &l))
			printf(", lstat %s\n", strerrorname_np(errno));
		else
			printf(", lstat %s %o %lld\n", kind(l.st_mode), l.st_mode & 07777, (long long)l.st_size);
	}
	return 0;
}
