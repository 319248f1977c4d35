/*
 * What the kernel's selftests need from the shim beyond open/ioctl/close, one section per
 * argv[1]: a file made inside an ioctl gets the lowest free fd (spare), pread/pwrite on an
 * emulated file (pread), the emulated debugfs (debugfs), hugetlb memory from the machine's pool
 * (hugetlb), a reaped child's emulated exit before the parent's next call (reaped), and a
 * privileged option (rlimit_mode: CAP_SYS_RESOURCE, which `run --root` grants), and the stat family
 * on emulated device nodes and on everything else (stat), and the emulated /sys/kernel/iommu_groups
 * through opendir/readdir/fopen/open (sysfs).
 * Prints one line per check; the test compares them.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include "iommufd_test.h"

#define HPAGE (2UL << 20)

static const char *err(int r)
{
	return r ? strerror(errno) : "ok";
}

static uint32_t ioas_alloc(int fd)
{
	struct iommu_ioas_alloc a = { .size = sizeof(a) };
	if (ioctl(fd, IOMMU_IOAS_ALLOC, &a))
		exit(10);
	return a.out_ioas_id;
}

static int create_access(int fd, uint32_t ioas, uint32_t flags, int *out)
{
	struct iommu_test_cmd c = { .size = sizeof(c), .op = IOMMU_TEST_OP_CREATE_ACCESS, .id = ioas,
				    .create_access = { .flags = flags } };
	int r = ioctl(fd, _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 32), &c);
	*out = c.create_access.out_access_fd;
	return r;
}

static int destroy(int fd, uint32_t id)
{
	struct iommu_destroy d = { .size = sizeof(d), .id = id };
	return ioctl(fd, IOMMU_DESTROY, &d);
}

/* The number the next new fd gets. */
static int lowest_free(void)
{
	int n = dup(0);
	close(n);
	return n;
}

static void spare(int fd)
{
	uint32_t ioas = ioas_alloc(fd);
	int expect = lowest_free(), afd = -1, again;

	printf("create_access %s\n", err(create_access(fd, ioas, 0, &afd)));
	printf("access fd is the lowest free: %s\n", afd == expect ? "yes" : "no");
	printf("access fd is close-on-exec: %s\n", fcntl(afd, F_GETFD) & FD_CLOEXEC ? "yes" : "no");
	printf("destroy ioas with access: %s\n", err(destroy(fd, ioas)));
	printf("close access fd: %s\n", err(close(afd)));
	printf("destroy ioas after close: %s\n", err(destroy(fd, ioas)));
	expect = lowest_free();
	printf("create_access on a missing ioas: %s\n", err(create_access(fd, 9999, 0, &afd)));
	again = lowest_free();
	printf("no fd left behind: %s\n", again == expect ? "yes" : "no");
}

static void pread_pwrite(void)
{
	char path[64], buf[16] = { 0 };
	int pfd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/fail-nth", getpid());
	pfd = open(path, O_RDWR);
	printf("pwrite %zd\n", pwrite(pfd, "5", 1, 0));
	printf("pread %zd %s", pread(pfd, buf, sizeof(buf), 0), buf);
	memset(buf, 0, sizeof(buf));
	printf("pread again %zd %s", pread(pfd, buf, sizeof(buf), 0), buf);
	printf("pwrite 0: %zd\n", pwrite(pfd, "0", 1, 0));
	close(pfd);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void debugfs(void)
{
	DIR *d = opendir("/sys/kernel/debug/");
	struct dirent *e;
	char *names[16], buf[16] = { 0 };
	int n = 0, i, wfd;
	FILE *f;

	if (!d) {
		printf("opendir: %s\n", strerror(errno));
		return;
	}
	while ((e = readdir(d)) && n < 16)
		if (!strncmp(e->d_name, "fail", 4))
			names[n++] = strdup(e->d_name);
	qsort(names, n, sizeof(*names), by_name);
	printf("debugfs:");
	for (i = 0; i < n; i++)
		printf(" %s", names[i]);
	printf("\n");
	wfd = openat(dirfd(d), "failslab/ignore-gfp-wait", O_WRONLY);
	printf("write failslab/ignore-gfp-wait: %zd\n", write(wfd, "N", 1));
	close(wfd);
	closedir(d);
	f = fopen("/sys/kernel/debug/fail_iommufd/times", "r");
	printf("fail_iommufd/times: %s", f && fgets(buf, sizeof(buf), f) ? buf : "?\n");
	if (f)
		fclose(f);
}

static void *huge(size_t n)
{
	return mmap(NULL, n * HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
}

static void hugetlb(int fd)
{
	uint32_t ioas = ioas_alloc(fd);
	char *a = huge(2), *b;
	struct iommu_ioas_map map = { .size = sizeof(map), .ioas_id = ioas,
				      .flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
				      .user_va = (uintptr_t)a, .length = 2 * HPAGE };
	struct iommu_test_cmd refs = { .size = sizeof(refs), .op = IOMMU_TEST_OP_MD_CHECK_REFS,
				       .check_refs = { .length = 2 * HPAGE, .uptr = (uintptr_t)a } };

	printf("map 2 huge pages: %s, 2M aligned: %s\n", a == MAP_FAILED ? strerror(errno) : "ok",
	       (uintptr_t)a % HPAGE ? "no" : "yes");
	a[0] = 1;
	printf("IOAS_MAP of them: %s\n", err(ioctl(fd, IOMMU_IOAS_MAP, &map)));
	printf("MD_CHECK_REFS (compound pages are skipped): %s\n",
	       err(ioctl(fd, _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 32), &refs)));
	b = huge(63);
	printf("63 more (62 free): %s\n", b == MAP_FAILED ? strerror(errno) : "mapped");
	printf("munmap half a huge page: %s\n", err(munmap(a, HPAGE / 2)));
	printf("munmap: %s\n", err(munmap(a, 2 * HPAGE)));
	b = huge(63);
	printf("63 after munmap (64 free): %s\n", b == MAP_FAILED ? strerror(errno) : "mapped");
	munmap(b, 63 * HPAGE);
}

static void reaped(void)
{
	int st;
	pid_t pid = fork();
	char *p;

	if (pid == 0) {
		/* Take every huge page of the machine and exit without giving them back. */
		p = huge(64);
		_exit(p == MAP_FAILED ? 1 : 0);
	}
	waitpid(pid, &st, 0);
	printf("child took 64 huge pages: %s\n", WIFEXITED(st) && !WEXITSTATUS(st) ? "yes" : "no");
	p = huge(64);
	printf("after reaping it, 64 are free again: %s\n", p == MAP_FAILED ? strerror(errno) : "yes");
}

static void rlimit_mode(int fd)
{
	struct iommu_option o = { .size = sizeof(o), .option_id = IOMMU_OPTION_RLIMIT_MODE,
				  .op = IOMMU_OPTION_OP_SET, .val64 = 1 };

	printf("set RLIMIT_MODE: %s\n", err(ioctl(fd, IOMMU_OPTION, &o)));
}

static void node(const char *what, int r, const struct stat *st)
{
	if (r) {
		printf("%s: %s\n", what, strerror(errno));
		return;
	}
	printf("%s: chr %s, %u:%u, mode %o, uid %u, ino %s\n", what, S_ISCHR(st->st_mode) ? "yes" : "no",
	       major(st->st_rdev), minor(st->st_rdev), st->st_mode & 07777, st->st_uid,
	       st->st_ino ? "set" : "0");
}

static void stats(int fd, const char *self)
{
	struct stat st, fst, raw;
	struct statx sx;
	char path[64];
	int r, pfd;

	r = stat("/dev/iommu", &st);
	node("stat /dev/iommu", r, &st);
	r = fstat(fd, &fst);
	node("fstat", r, &fst);
	printf("same inode as stat: %s\n", st.st_ino == fst.st_ino && st.st_dev == fst.st_dev ? "yes" : "no");
	r = lstat("/dev/iommu", &st);
	node("lstat", r, &st);
	r = fstatat(AT_FDCWD, "/dev/iommu", &st, 0);
	node("fstatat", r, &st);
	r = fstatat(fd, "", &st, AT_EMPTY_PATH);
	node("fstatat AT_EMPTY_PATH", r, &st);
	r = statx(AT_FDCWD, "/dev/iommu", 0, STATX_BASIC_STATS, &sx);
	printf("statx: %s, chr %s, %u:%u, mode %o, mask has type|mode|ino: %s\n", err(r),
	       S_ISCHR(sx.stx_mode) ? "yes" : "no", sx.stx_rdev_major, sx.stx_rdev_minor, sx.stx_mode & 07777,
	       (sx.stx_mask & (STATX_TYPE | STATX_MODE | STATX_INO)) == (STATX_TYPE | STATX_MODE | STATX_INO) ? "yes" : "no");
	memset(&sx, 0, sizeof(sx));
	r = statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx);
	printf("statx fd: %s, chr %s, %u:%u\n", err(r), S_ISCHR(sx.stx_mode) ? "yes" : "no", sx.stx_rdev_major,
	       sx.stx_rdev_minor);
	r = stat("/dev/vfio/nonexistent", &st);
	node("stat /dev/vfio/nonexistent", r, &st);
	r = statx(AT_FDCWD, "/dev/vfio/nonexistent", 0, STATX_BASIC_STATS, &sx);
	printf("statx /dev/vfio/nonexistent: %s\n", err(r));
	/* Everything else is the host's: compare with the raw syscall, which the shim cannot see. */
	if (syscall(SYS_newfstatat, AT_FDCWD, self, &raw, 0))
		exit(11);
	r = stat(self, &st);
	printf("stat of this program unchanged: %s\n",
	       !r && !memcmp(&st, &raw, sizeof(st)) ? "yes" : "no");
	r = fstatat(AT_FDCWD, self, &st, 0);
	printf("fstatat of this program unchanged: %s\n",
	       !r && st.st_ino == raw.st_ino && st.st_dev == raw.st_dev && st.st_size == raw.st_size ? "yes" : "no");
	r = statx(AT_FDCWD, self, 0, STATX_BASIC_STATS, &sx);
	printf("statx of this program unchanged: %s\n",
	       !r && sx.stx_ino == raw.st_ino && sx.stx_size == (uint64_t)raw.st_size ? "yes" : "no");
	snprintf(path, sizeof(path), "/proc/self/task/%d/fail-nth", getpid());
	pfd = open(path, O_RDWR);
	r = fstat(pfd, &st);
	printf("fstat of emulated fail-nth (no node): %s, chr %s\n", err(r), S_ISCHR(st.st_mode) ? "yes" : "no");
	close(pfd);
	r = stat("/dev/null", &st);
	printf("stat /dev/null (the host's): %s\n",
	       !r && S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3 ? "1:3" : "?");
}

/* Two mock devices in their own IOMMU groups, then /sys/kernel/iommu_groups as a program reads it. */
static void sysfs(int fd)
{
	struct iommu_test_cmd md = { .size = sizeof(md), .op = IOMMU_TEST_OP_MOCK_DOMAIN };
	char line[128], path[128];
	struct dirent *de;
	DIR *d;
	FILE *f;
	int n = 0, afd;

	md.id = ioas_alloc(fd);
	if (ioctl(fd, IOMMU_TEST_CMD, &md) ||
	    ioctl(fd, IOMMU_TEST_CMD, &md))
		exit(12);
	d = opendir("/sys/kernel/iommu_groups");
	printf("opendir iommu_groups: %s\n", d ? "ok" : strerror(errno));
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			printf("group %s%s\n", de->d_name, de->d_type == DT_DIR ? " (dir)" : "");
	rewinddir(d);
	while (d && readdir(d))
		n++;
	printf("entries after rewinddir: %d\n", n);
	closedir(d);
	d = opendir("/sys/kernel/iommu_groups/1/devices");
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			printf("group 1 device %s%s\n", de->d_name, de->d_type == DT_LNK ? " (link)" : "");
	if (d)
		closedir(d);
	f = fopen("/sys/kernel/iommu_groups/0/type", "r");
	printf("fopen type: %s", f && fgets(line, sizeof(line), f) ? line : "failed\n");
	if (f)
		fclose(f);
	afd = open("/sys/kernel/iommu_groups/0/reserved_regions", O_RDONLY);
	n = afd < 0 ? -1 : read(afd, line, sizeof(line));
	printf("read reserved_regions: %d bytes\n", n);
	close(afd);
	snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/9");
	d = opendir(path);
	printf("opendir group 9: %s\n", d ? "ok" : strerror(errno));
	printf("open type for writing: %s\n", open("/sys/kernel/iommu_groups/0/type", O_WRONLY) < 0 ? strerror(errno) : "ok");
	d = opendir("/tmp");
	printf("opendir /tmp (the host's): %s\n", d && readdir(d) ? "ok" : "failed");
	if (d)
		closedir(d);
}

int main(int argc, char **argv)
{
	int fd = open("/dev/iommu", O_RDWR);
	const char *what = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IONBF, 0);
	if (fd < 0)
		return 2;
	if (!strcmp(what, "spare"))
		spare(fd);
	else if (!strcmp(what, "pread"))
		pread_pwrite();
	else if (!strcmp(what, "debugfs"))
		debugfs();
	else if (!strcmp(what, "hugetlb"))
		hugetlb(fd);
	else if (!strcmp(what, "reaped"))
		reaped();
	else if (!strcmp(what, "stat"))
		stats(fd, argv[0]);
	else if (!strcmp(what, "sysfs"))
		sysfs(fd);
	else if (!strcmp(what, "rlimit_mode"))
		rlimit_mode(fd);
	else
		return 3;
	return 0;
}
