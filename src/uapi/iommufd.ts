/**
 * include/uapi/linux/iommufd.h of Linux 6.12: every ioctl, struct, enum member and flag, each
 * exported under its exact C name.
 *
 * Every iommufd ioctl is `_IO(';', nr)` with no size or direction bits; the caller's struct size
 * travels in the leading `size` field. Layouts are computed by the schemas and checked against gcc
 * by test/abi.test.ts.
 */

import type { UapiAbi } from './abi.js';
import { _IO } from './ioctl.js';
import { array, struct, u16, u32, u64, u8 } from './schema.js';

/** The ioctl type byte, `';'`. */
export const IOMMUFD_TYPE = 0x3b;

// enum (anonymous): command numbers
export const IOMMUFD_CMD_BASE = 0x80;
export const IOMMUFD_CMD_DESTROY = IOMMUFD_CMD_BASE;
export const IOMMUFD_CMD_IOAS_ALLOC = 0x81;
export const IOMMUFD_CMD_IOAS_ALLOW_IOVAS = 0x82;
export const IOMMUFD_CMD_IOAS_COPY = 0x83;
export const IOMMUFD_CMD_IOAS_IOVA_RANGES = 0x84;
export const IOMMUFD_CMD_IOAS_MAP = 0x85;
export const IOMMUFD_CMD_IOAS_UNMAP = 0x86;
export const IOMMUFD_CMD_OPTION = 0x87;
export const IOMMUFD_CMD_VFIO_IOAS = 0x88;
export const IOMMUFD_CMD_HWPT_ALLOC = 0x89;
export const IOMMUFD_CMD_GET_HW_INFO = 0x8a;
export const IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING = 0x8b;
export const IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP = 0x8c;
export const IOMMUFD_CMD_HWPT_INVALIDATE = 0x8d;
export const IOMMUFD_CMD_FAULT_QUEUE_ALLOC = 0x8e;

/** Destroy any object by ID. */
export const iommu_destroy = struct('iommu_destroy', {
  size: u32,
  id: u32,
});
export const IOMMU_DESTROY = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY);

/** Create an IOAS; returns its ID. */
export const iommu_ioas_alloc = struct('iommu_ioas_alloc', {
  size: u32,
  flags: u32,
  out_ioas_id: u32,
});
export const IOMMU_IOAS_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC);

/** An inclusive IOVA range `[start, last]`. */
export const iommu_iova_range = struct('iommu_iova_range', {
  start: u64,
  last: u64,
});

/** Report the usable IOVA ranges of an IOAS into a user array of `iommu_iova_range`. */
export const iommu_ioas_iova_ranges = struct('iommu_ioas_iova_ranges', {
  size: u32,
  ioas_id: u32,
  num_iovas: u32,
  __reserved: u32,
  allowed_iovas: u64,
  out_iova_alignment: u64,
});
export const IOMMU_IOAS_IOVA_RANGES = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_IOVA_RANGES);

/** Replace the list of IOVA ranges that automatic IOVA allocation may use. */
export const iommu_ioas_allow_iovas = struct('iommu_ioas_allow_iovas', {
  size: u32,
  ioas_id: u32,
  num_iovas: u32,
  __reserved: u32,
  allowed_iovas: u64,
});
export const IOMMU_IOAS_ALLOW_IOVAS = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOW_IOVAS);

// enum iommufd_ioas_map_flags
export const IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0;
export const IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
export const IOMMU_IOAS_MAP_READABLE = 1 << 2;

/** Map a range of user memory into an IOAS, at a fixed or an allocated IOVA. */
export const iommu_ioas_map = struct('iommu_ioas_map', {
  size: u32,
  flags: u32,
  ioas_id: u32,
  __reserved: u32,
  user_va: u64,
  length: u64,
  iova: u64,
});
export const IOMMU_IOAS_MAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP);

/** Map pages already mapped in one IOAS into another, without pinning them again. */
export const iommu_ioas_copy = struct('iommu_ioas_copy', {
  size: u32,
  flags: u32,
  dst_ioas_id: u32,
  src_ioas_id: u32,
  length: u64,
  dst_iova: u64,
  src_iova: u64,
});
export const IOMMU_IOAS_COPY = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_COPY);

/** Unmap whole areas within `[iova, iova + length)`; `length` returns the bytes unmapped. */
export const iommu_ioas_unmap = struct('iommu_ioas_unmap', {
  size: u32,
  ioas_id: u32,
  iova: u64,
  length: u64,
});
export const IOMMU_IOAS_UNMAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP);

// enum iommufd_option
export const IOMMU_OPTION_RLIMIT_MODE = 0;
export const IOMMU_OPTION_HUGE_PAGES = 1;

// enum iommufd_option_ops
export const IOMMU_OPTION_OP_SET = 0;
export const IOMMU_OPTION_OP_GET = 1;

/** Get or set a global or per-object option. */
export const iommu_option = struct('iommu_option', {
  size: u32,
  option_id: u32,
  op: u16,
  __reserved: u16,
  object_id: u32,
  val64: u64,
});
export const IOMMU_OPTION = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_OPTION);

// enum iommufd_vfio_ioas_op
export const IOMMU_VFIO_IOAS_GET = 0;
export const IOMMU_VFIO_IOAS_SET = 1;
export const IOMMU_VFIO_IOAS_CLEAR = 2;

/** Get, set or clear the IOAS that the VFIO container compatibility layer uses. */
export const iommu_vfio_ioas = struct('iommu_vfio_ioas', {
  size: u32,
  ioas_id: u32,
  op: u16,
  __reserved: u16,
});
export const IOMMU_VFIO_IOAS = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VFIO_IOAS);

// enum iommufd_hwpt_alloc_flags
export const IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0;
export const IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1;
export const IOMMU_HWPT_FAULT_ID_VALID = 1 << 2;

// enum iommu_hwpt_vtd_s1_flags
export const IOMMU_VTD_S1_SRE = 1 << 0;
export const IOMMU_VTD_S1_EAFE = 1 << 1;
export const IOMMU_VTD_S1_WPE = 1 << 2;

/** Intel VT-d stage-1 page table description (HWPT_ALLOC data for IOMMU_HWPT_DATA_VTD_S1). */
export const iommu_hwpt_vtd_s1 = struct('iommu_hwpt_vtd_s1', {
  flags: u64,
  pgtbl_addr: u64,
  addr_width: u32,
  __reserved: u32,
});

// enum iommu_hwpt_data_type
export const IOMMU_HWPT_DATA_NONE = 0;
export const IOMMU_HWPT_DATA_VTD_S1 = 1;

/** Allocate a hardware page table: paging from an IOAS, or nested under a paging parent. */
export const iommu_hwpt_alloc = struct('iommu_hwpt_alloc', {
  size: u32,
  flags: u32,
  dev_id: u32,
  pt_id: u32,
  out_hwpt_id: u32,
  __reserved: u32,
  data_type: u32,
  data_len: u32,
  data_uptr: u64,
  fault_id: u32,
  __reserved2: u32,
});
export const IOMMU_HWPT_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_ALLOC);

// enum iommu_hw_info_vtd_flags
export const IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17 = 1 << 0;

/** Intel VT-d hardware information (GET_HW_INFO data for IOMMU_HW_INFO_TYPE_INTEL_VTD). */
export const iommu_hw_info_vtd = struct('iommu_hw_info_vtd', {
  flags: u32,
  __reserved: u32,
  cap_reg: u64,
  ecap_reg: u64,
});

// enum iommu_hw_info_type
export const IOMMU_HW_INFO_TYPE_NONE = 0;
export const IOMMU_HW_INFO_TYPE_INTEL_VTD = 1;

// enum iommufd_hw_capabilities
export const IOMMU_HW_CAP_DIRTY_TRACKING = 1 << 0;
export const IOMMU_HW_CAP_PCI_PASID_EXEC = 1 << 1;
export const IOMMU_HW_CAP_PCI_PASID_PRIV = 1 << 2;

/** Query the IOMMU behind a bound device: driver data, PASID width and capabilities. */
export const iommu_hw_info = struct('iommu_hw_info', {
  size: u32,
  flags: u32,
  dev_id: u32,
  data_len: u32,
  data_uptr: u64,
  out_data_type: u32,
  out_max_pasid_log2: u8,
  __reserved: array(u8, 3),
  out_capabilities: u64,
});
export const IOMMU_GET_HW_INFO = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_GET_HW_INFO);

// enum iommufd_hwpt_set_dirty_tracking_flags
export const IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1;

/** Start or stop dirty tracking on a paging HWPT. */
export const iommu_hwpt_set_dirty_tracking = struct('iommu_hwpt_set_dirty_tracking', {
  size: u32,
  flags: u32,
  hwpt_id: u32,
  __reserved: u32,
});
export const IOMMU_HWPT_SET_DIRTY_TRACKING = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING);

// enum iommufd_hwpt_get_dirty_bitmap_flags
export const IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1;

/** Read (and by default clear) the dirty bits of an IOVA range into a user bitmap. */
export const iommu_hwpt_get_dirty_bitmap = struct('iommu_hwpt_get_dirty_bitmap', {
  size: u32,
  hwpt_id: u32,
  flags: u32,
  __reserved: u32,
  iova: u64,
  length: u64,
  page_size: u64,
  data: u64,
});
export const IOMMU_HWPT_GET_DIRTY_BITMAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP);

// enum iommu_hwpt_invalidate_data_type
export const IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 = 0;

// enum iommu_hwpt_vtd_s1_invalidate_flags
export const IOMMU_VTD_INV_FLAGS_LEAF = 1 << 0;

/** One Intel VT-d stage-1 invalidation entry. */
export const iommu_hwpt_vtd_s1_invalidate = struct('iommu_hwpt_vtd_s1_invalidate', {
  addr: u64,
  npages: u64,
  flags: u32,
  __reserved: u32,
});

/** Invalidate caches of a nested HWPT from an array of driver-specific entries. */
export const iommu_hwpt_invalidate = struct('iommu_hwpt_invalidate', {
  size: u32,
  hwpt_id: u32,
  data_uptr: u64,
  data_type: u32,
  entry_len: u32,
  entry_num: u32,
  __reserved: u32,
});
export const IOMMU_HWPT_INVALIDATE = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_INVALIDATE);

// enum iommu_hwpt_pgfault_flags
export const IOMMU_PGFAULT_FLAGS_PASID_VALID = 1 << 0;
export const IOMMU_PGFAULT_FLAGS_LAST_PAGE = 1 << 1;

// enum iommu_hwpt_pgfault_perm
export const IOMMU_PGFAULT_PERM_READ = 1 << 0;
export const IOMMU_PGFAULT_PERM_WRITE = 1 << 1;
export const IOMMU_PGFAULT_PERM_EXEC = 1 << 2;
export const IOMMU_PGFAULT_PERM_PRIV = 1 << 3;

/** One I/O page fault as read() from a fault queue fd. */
export const iommu_hwpt_pgfault = struct('iommu_hwpt_pgfault', {
  flags: u32,
  dev_id: u32,
  pasid: u32,
  grpid: u32,
  perm: u32,
  __reserved: u32,
  addr: u64,
  length: u32,
  cookie: u32,
});

// enum iommufd_page_response_code
export const IOMMUFD_PAGE_RESP_SUCCESS = 0;
export const IOMMUFD_PAGE_RESP_INVALID = 1;

/** A response to a fault group, as write()n to a fault queue fd. */
export const iommu_hwpt_page_response = struct('iommu_hwpt_page_response', {
  cookie: u32,
  code: u32,
});

/** Create a fault queue object and its fd. */
export const iommu_fault_alloc = struct('iommu_fault_alloc', {
  size: u32,
  flags: u32,
  out_fault_id: u32,
  out_fault_fd: u32,
});
export const IOMMU_FAULT_QUEUE_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_FAULT_QUEUE_ALLOC);

/** Everything above, keyed by C name, for dispatch tables and the ABI test. */
export const iommufdAbi: UapiAbi = {
  header: 'linux/iommufd.h',
  structs: [
    iommu_destroy,
    iommu_ioas_alloc,
    iommu_iova_range,
    iommu_ioas_iova_ranges,
    iommu_ioas_allow_iovas,
    iommu_ioas_map,
    iommu_ioas_copy,
    iommu_ioas_unmap,
    iommu_option,
    iommu_vfio_ioas,
    iommu_hwpt_vtd_s1,
    iommu_hwpt_alloc,
    iommu_hw_info_vtd,
    iommu_hw_info,
    iommu_hwpt_set_dirty_tracking,
    iommu_hwpt_get_dirty_bitmap,
    iommu_hwpt_vtd_s1_invalidate,
    iommu_hwpt_invalidate,
    iommu_hwpt_pgfault,
    iommu_hwpt_page_response,
    iommu_fault_alloc,
  ],
  ioctls: {
    IOMMU_DESTROY,
    IOMMU_IOAS_ALLOC,
    IOMMU_IOAS_ALLOW_IOVAS,
    IOMMU_IOAS_COPY,
    IOMMU_IOAS_IOVA_RANGES,
    IOMMU_IOAS_MAP,
    IOMMU_IOAS_UNMAP,
    IOMMU_OPTION,
    IOMMU_VFIO_IOAS,
    IOMMU_HWPT_ALLOC,
    IOMMU_GET_HW_INFO,
    IOMMU_HWPT_SET_DIRTY_TRACKING,
    IOMMU_HWPT_GET_DIRTY_BITMAP,
    IOMMU_HWPT_INVALIDATE,
    IOMMU_FAULT_QUEUE_ALLOC,
  },
  constants: {
    IOMMUFD_TYPE,
    IOMMUFD_CMD_BASE,
    IOMMUFD_CMD_DESTROY,
    IOMMUFD_CMD_IOAS_ALLOC,
    IOMMUFD_CMD_IOAS_ALLOW_IOVAS,
    IOMMUFD_CMD_IOAS_COPY,
    IOMMUFD_CMD_IOAS_IOVA_RANGES,
    IOMMUFD_CMD_IOAS_MAP,
    IOMMUFD_CMD_IOAS_UNMAP,
    IOMMUFD_CMD_OPTION,
    IOMMUFD_CMD_VFIO_IOAS,
    IOMMUFD_CMD_HWPT_ALLOC,
    IOMMUFD_CMD_GET_HW_INFO,
    IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING,
    IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP,
    IOMMUFD_CMD_HWPT_INVALIDATE,
    IOMMUFD_CMD_FAULT_QUEUE_ALLOC,
    IOMMU_IOAS_MAP_FIXED_IOVA,
    IOMMU_IOAS_MAP_WRITEABLE,
    IOMMU_IOAS_MAP_READABLE,
    IOMMU_OPTION_RLIMIT_MODE,
    IOMMU_OPTION_HUGE_PAGES,
    IOMMU_OPTION_OP_SET,
    IOMMU_OPTION_OP_GET,
    IOMMU_VFIO_IOAS_GET,
    IOMMU_VFIO_IOAS_SET,
    IOMMU_VFIO_IOAS_CLEAR,
    IOMMU_HWPT_ALLOC_NEST_PARENT,
    IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
    IOMMU_HWPT_FAULT_ID_VALID,
    IOMMU_VTD_S1_SRE,
    IOMMU_VTD_S1_EAFE,
    IOMMU_VTD_S1_WPE,
    IOMMU_HWPT_DATA_NONE,
    IOMMU_HWPT_DATA_VTD_S1,
    IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17,
    IOMMU_HW_INFO_TYPE_NONE,
    IOMMU_HW_INFO_TYPE_INTEL_VTD,
    IOMMU_HW_CAP_DIRTY_TRACKING,
    IOMMU_HW_CAP_PCI_PASID_EXEC,
    IOMMU_HW_CAP_PCI_PASID_PRIV,
    IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
    IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
    IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
    IOMMU_VTD_INV_FLAGS_LEAF,
    IOMMU_PGFAULT_FLAGS_PASID_VALID,
    IOMMU_PGFAULT_FLAGS_LAST_PAGE,
    IOMMU_PGFAULT_PERM_READ,
    IOMMU_PGFAULT_PERM_WRITE,
    IOMMU_PGFAULT_PERM_EXEC,
    IOMMU_PGFAULT_PERM_PRIV,
    IOMMUFD_PAGE_RESP_SUCCESS,
    IOMMUFD_PAGE_RESP_INVALID,
  },
};
