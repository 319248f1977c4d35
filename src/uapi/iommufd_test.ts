/**
 * The IOMMUFD_TEST interface (drivers/iommu/iommufd/iommufd_test.h, Linux 6.12): IOMMU_TEST_CMD
 * and its per-op argument structs, which the kernel's selftest drives. Not uapi proper, but ABI all
 * the same: the ABI test checks these layouts against the header too.
 */

import { IOMMUFD_CMD_BASE, IOMMUFD_TYPE } from './iommufd.js';
import { _IO } from './ioctl.js';
import type { UapiAbi } from './abi.js';
import { bytes, struct, u32, u64 } from './schema.js';

export const IOMMU_TEST_OP_ADD_RESERVED = 1;
export const IOMMU_TEST_OP_MOCK_DOMAIN = 2;
export const IOMMU_TEST_OP_MD_CHECK_MAP = 3;
export const IOMMU_TEST_OP_MD_CHECK_REFS = 4;
export const IOMMU_TEST_OP_CREATE_ACCESS = 5;
export const IOMMU_TEST_OP_DESTROY_ACCESS_PAGES = 6;
export const IOMMU_TEST_OP_ACCESS_PAGES = 7;
export const IOMMU_TEST_OP_ACCESS_RW = 8;
export const IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT = 9;
export const IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE = 10;
export const IOMMU_TEST_OP_ACCESS_REPLACE_IOAS = 11;
export const IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS = 12;
export const IOMMU_TEST_OP_DIRTY = 13;
export const IOMMU_TEST_OP_MD_CHECK_IOTLB = 14;
export const IOMMU_TEST_OP_TRIGGER_IOPF = 15;

export const MOCK_APERTURE_START = 1n << 24n;
export const MOCK_APERTURE_LAST = (1n << 31n) - 1n;
export const MOCK_FLAGS_ACCESS_WRITE = 1 << 0;
export const MOCK_FLAGS_ACCESS_SYZ = 1 << 16;
export const MOCK_ACCESS_RW_WRITE = 1 << 0;
export const MOCK_ACCESS_RW_SLOW_PATH = 1 << 2;
export const MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES = 1 << 0;
export const MOCK_FLAGS_DEVICE_NO_DIRTY = 1 << 0;
export const MOCK_FLAGS_DEVICE_HUGE_IOVA = 1 << 1;
export const MOCK_NESTED_DOMAIN_IOTLB_ID_MAX = 3;
export const MOCK_NESTED_DOMAIN_IOTLB_NUM = 4;

/** struct iommu_test_cmd: the union is raw bytes, read with the op's own struct below. */
export const iommu_test_cmd = struct(
  'iommu_test_cmd',
  { size: u32, op: u32, id: u32, __reserved: u32, u: bytes(48, 8), last: u32 },
  // C names no union: its largest member, `dirty`, has the union's offset and size.
  { cFieldNames: { u: 'dirty' } },
);
export const IOMMU_TEST_CMD = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 32);

export const test_add_reserved = struct('test_add_reserved', { start: u64, length: u64 }, { cName: '__typeof__(((struct iommu_test_cmd *)0)->add_reserved)' });
export const test_mock_domain = struct('test_mock_domain', { out_stdev_id: u32, out_hwpt_id: u32, out_idev_id: u32 }, { cName: '__typeof__(((struct iommu_test_cmd *)0)->mock_domain)' });
export const test_mock_domain_flags = struct('test_mock_domain_flags', { out_stdev_id: u32, out_hwpt_id: u32, out_idev_id: u32, dev_flags: u32 }, { cName: '__typeof__(((struct iommu_test_cmd *)0)->mock_domain_flags)' });
export const test_mock_domain_replace = struct('test_mock_domain_replace', { pt_id: u32 }, { cName: '__typeof__(((struct iommu_test_cmd *)0)->mock_domain_replace)' });
export const test_check_map = struct('test_check_map', { iova: u64, length: u64, uptr: u64 }, { cName: '__typeof__(((struct iommu_test_cmd *)0)->check_map)' });
export const test_check_refs = struct('test_check_refs', { length: u64, uptr: u64, refs: u32 }, { cName: '__typeof__(((struct iommu_test_cmd *)0)->check_refs)' });
export const test_create_access = struct('test_create_access', { out_access_fd: u32, flags: u32 }, { cName: '__typeof__(((struct iommu_test_cmd *)0)->create_access)' });
export const test_destroy_access_pages = struct('test_destroy_access_pages', { access_pages_id: u32 }, { cName: '__typeof__(((struct iommu_test_cmd *)0)->destroy_access_pages)' });
export const test_access_pages = struct('test_access_pages', { flags: u32, out_access_pages_id: u32, iova: u64, length: u64, uptr: u64 }, { cName: '__typeof__(((struct iommu_test_cmd *)0)->access_pages)' });
export const test_access_rw = struct('test_access_rw', { iova: u64, length: u64, uptr: u64, flags: u32 }, { cName: '__typeof__(((struct iommu_test_cmd *)0)->access_rw)' });
export const test_memory_limit = struct('test_memory_limit', { limit: u32 }, { cName: '__typeof__(((struct iommu_test_cmd *)0)->memory_limit)' });
export const test_access_replace_ioas = struct('test_access_replace_ioas', { ioas_id: u32 }, { cName: '__typeof__(((struct iommu_test_cmd *)0)->access_replace_ioas)' });
export const test_dirty = struct('test_dirty', { flags: u32, iova: u64, length: u64, page_size: u64, uptr: u64, out_nr_dirty: u64 }, { cName: '__typeof__(((struct iommu_test_cmd *)0)->dirty)' });
export const test_check_iotlb = struct('test_check_iotlb', { id: u32, iotlb: u32 }, { cName: '__typeof__(((struct iommu_test_cmd *)0)->check_iotlb)' });
export const test_trigger_iopf = struct('test_trigger_iopf', { dev_id: u32, pasid: u32, grpid: u32, perm: u32, addr: u64 }, { cName: '__typeof__(((struct iommu_test_cmd *)0)->trigger_iopf)' });

export const IOMMU_HW_INFO_TYPE_SELFTEST = 0xfeedbeef;
export const IOMMU_HW_INFO_SELFTEST_REGVAL = 0xdeadbeef;
export const iommu_test_hw_info = struct('iommu_test_hw_info', { flags: u32, test_reg: u32 });
export const IOMMU_HWPT_DATA_SELFTEST = 0xdead;
export const IOMMU_TEST_IOTLB_DEFAULT = 0xbadbeef;
export const iommu_hwpt_selftest = struct('iommu_hwpt_selftest', { iotlb: u32 });
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;
export const IOMMU_TEST_INVALIDATE_FLAG_ALL = 1 << 0;
export const iommu_hwpt_invalidate_selftest = struct('iommu_hwpt_invalidate_selftest', { flags: u32, iotlb_id: u32 });

/** The iommufd_test.h registry, checked against the 6.12 header by the ABI test. */
export const iommufdTestAbi: UapiAbi = {
  header: 'iommufd_test.h',
  structs: [iommu_test_cmd, iommu_test_hw_info, iommu_hwpt_selftest, iommu_hwpt_invalidate_selftest],
  unionMembers: [
    test_add_reserved,
    test_mock_domain,
    test_mock_domain_flags,
    test_mock_domain_replace,
    test_check_map,
    test_check_refs,
    test_create_access,
    test_destroy_access_pages,
    test_access_pages,
    test_access_rw,
    test_memory_limit,
    test_access_replace_ioas,
    test_dirty,
    test_check_iotlb,
    test_trigger_iopf,
  ],
  ioctls: { IOMMU_TEST_CMD },
  constants: {
    IOMMU_TEST_OP_ADD_RESERVED,
    IOMMU_TEST_OP_MOCK_DOMAIN,
    IOMMU_TEST_OP_MD_CHECK_MAP,
    IOMMU_TEST_OP_MD_CHECK_REFS,
    IOMMU_TEST_OP_CREATE_ACCESS,
    IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
    IOMMU_TEST_OP_ACCESS_PAGES,
    IOMMU_TEST_OP_ACCESS_RW,
    IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,
    IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
    IOMMU_TEST_OP_ACCESS_REPLACE_IOAS,
    IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
    IOMMU_TEST_OP_DIRTY,
    IOMMU_TEST_OP_MD_CHECK_IOTLB,
    IOMMU_TEST_OP_TRIGGER_IOPF,
    MOCK_APERTURE_START,
    MOCK_APERTURE_LAST,
    MOCK_FLAGS_ACCESS_WRITE,
    MOCK_FLAGS_ACCESS_SYZ,
    MOCK_ACCESS_RW_WRITE,
    MOCK_ACCESS_RW_SLOW_PATH,
    MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES,
    MOCK_FLAGS_DEVICE_NO_DIRTY,
    MOCK_FLAGS_DEVICE_HUGE_IOVA,
    MOCK_NESTED_DOMAIN_IOTLB_ID_MAX,
    MOCK_NESTED_DOMAIN_IOTLB_NUM,
    IOMMU_HW_INFO_TYPE_SELFTEST,
    IOMMU_HW_INFO_SELFTEST_REGVAL,
    IOMMU_HWPT_DATA_SELFTEST,
    IOMMU_TEST_IOTLB_DEFAULT,
    IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
    IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID,
    IOMMU_TEST_INVALIDATE_FLAG_ALL,
  },
};
