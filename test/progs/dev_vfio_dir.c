/* /dev/vfio as a program sees it: the directory listing (sorted, with d_type), stat of the
 * directories and nodes (lexical "." and ".." too), extended attributes, and the sysfs module
 * parameters' and vfio-dev entries' metadata. Output compared with the real 6.12 guest (-v). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

static void ls(const char *path)
{
	DIR *d = opendir(path);
	if (!d) {
		printf("opendir %s: %s\n", path, strerrorname_np(errno));
		return;
	}
	char names[32][80];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 32)
		snprintf(names[n++], 80, "%s(%d)", e->d_name, e->d_type);
	closedir(d);
	qsort(names, n, 80, (int (*)(const void *, const void *))strcmp);
	printf("ls %s:", path);
	for (int i = 0; i < n; i++)
		printf(" %s", names[i]);
	printf("\n");
}

static void st(const char *path)
{
	struct stat s;
	if (stat(path, &s)) {
		printf("stat %s: %s\n", path, strerrorname_np(errno));
		return;
	}
	printf("stat %s: %s mode 0%o uid %u", path, S_ISDIR(s.st_mode) ? "dir" : S_ISCHR(s.st_mode) ? "chr" : "other", s.st_mode & 07777, s.st_uid);
	if (S_ISCHR(s.st_mode))
		printf(" rdev %u:%u", major(s.st_rdev), minor(s.st_rdev));
	printf("\n");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	ls("/dev/vfio");
	ls("/dev/vfio/devices");
	ls("/dev/vfio/");
	ls("/dev/vfio/nonexistent");
	ls("/dev/vfio/3");
	st("/dev/vfio");
	st("/dev/vfio/");
	st("/dev/vfio/.");
	st("/dev/vfio/devices");
	st("/dev/vfio/devices/../3");
	st("/dev/vfio//vfio");
	st("/dev/vfio/devices/vfio0");
	st("/dev/vfio/4");
	st("/dev/vfio/3/");
	char v[64];
	errno = 0;
	ssize_t r = getxattr("/dev/vfio/3", "user.x", v, sizeof(v));
	printf("getxattr user.x: %zd %s\n", r, r < 0 ? strerrorname_np(errno) : "0");
	r = getxattr("/dev/vfio/3", "security.selinux", v, sizeof(v));
	printf("getxattr security.selinux: %zd %s\n", r, r < 0 ? strerrorname_np(errno) : "0");
	r = getxattr("/dev/vfio/3", "system.posix_acl_access", v, sizeof(v));
	printf("getxattr system.posix_acl_access: %zd %s\n", r, r < 0 ? strerrorname_np(errno) : "0");
	r = listxattr("/dev/vfio/3", v, sizeof(v));
	printf("listxattr: %zd %s\n", r, r < 0 ? strerrorname_np(errno) : "0");
	r = listxattr("/dev/vfio", v, sizeof(v));
	printf("listxattr dir: %zd %s\n", r, r < 0 ? strerrorname_np(errno) : "0");
	return 0;
}
