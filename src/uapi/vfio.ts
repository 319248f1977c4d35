/**
 * include/uapi/linux/vfio.h of Linux 6.12: the parts that container, group and device users
 * need (type1 IOMMU, groups, devices incl. the iommufd cdev ioctls, PCI indexes, device
 * features), each exported under its exact C name. sPAPR, EEH, s390 (CCW/AP/zPCI structs) and the
 * deprecated v1 migration region are left out.
 *
 * Every VFIO ioctl is `_IO(';', VFIO_BASE + n)` with no size or direction bits; structs carry
 * `argsz` first. Numbers 12..21 mean different things on a container fd and on a device fd.
 * Layouts are computed by the schemas and checked against gcc by test/abi.test.ts.
 */

import type { UapiAbi } from './abi.js';
import { _IO } from './ioctl.js';
import { flex, nested, ptr, s32, struct, u16, u32, u64, u8 } from './schema.js';

export const VFIO_API_VERSION = 0;

// Extensions (VFIO_CHECK_EXTENSION arguments; IOMMU types for VFIO_SET_IOMMU)
export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_SPAPR_TCE_IOMMU = 2;
export const VFIO_TYPE1v2_IOMMU = 3;
export const VFIO_DMA_CC_IOMMU = 4;
export const VFIO_EEH = 5;
export const VFIO_TYPE1_NESTING_IOMMU = 6;
export const VFIO_SPAPR_TCE_v2_IOMMU = 7;
export const VFIO_NOIOMMU_IOMMU = 8;
export const VFIO_UNMAP_ALL = 9;
export const VFIO_UPDATE_VADDR = 10;

/** The ioctl type byte, `';'` (shared with iommufd). */
export const VFIO_TYPE = 0x3b;
export const VFIO_BASE = 100;

/** The header of every capability in a capability chain; `next` is an offset from the info struct. */
export const vfio_info_cap_header = struct('vfio_info_cap_header', {
  id: u16,
  version: u16,
  next: u32,
});

// Container ioctls
export const VFIO_GET_API_VERSION = _IO(VFIO_TYPE, VFIO_BASE + 0);
export const VFIO_CHECK_EXTENSION = _IO(VFIO_TYPE, VFIO_BASE + 1);
export const VFIO_SET_IOMMU = _IO(VFIO_TYPE, VFIO_BASE + 2);

// Group

export const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
export const VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;

export const vfio_group_status = struct('vfio_group_status', {
  argsz: u32,
  flags: u32,
});
export const VFIO_GROUP_GET_STATUS = _IO(VFIO_TYPE, VFIO_BASE + 3);
/** Argument: pointer to an `int` container (or iommufd) fd. */
export const VFIO_GROUP_SET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 4);
export const VFIO_GROUP_UNSET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 5);
/** Argument: pointer to a NUL-terminated device name; returns a device fd. */
export const VFIO_GROUP_GET_DEVICE_FD = _IO(VFIO_TYPE, VFIO_BASE + 6);

// Device

export const VFIO_DEVICE_FLAGS_RESET = 1 << 0;
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;
export const VFIO_DEVICE_FLAGS_PLATFORM = 1 << 2;
export const VFIO_DEVICE_FLAGS_AMBA = 1 << 3;
export const VFIO_DEVICE_FLAGS_CCW = 1 << 4;
export const VFIO_DEVICE_FLAGS_AP = 1 << 5;
export const VFIO_DEVICE_FLAGS_FSL_MC = 1 << 6;
export const VFIO_DEVICE_FLAGS_CAPS = 1 << 7;
export const VFIO_DEVICE_FLAGS_CDX = 1 << 8;

export const vfio_device_info = struct('vfio_device_info', {
  argsz: u32,
  flags: u32,
  num_regions: u32,
  num_irqs: u32,
  cap_offset: u32,
  pad: u32,
});
export const VFIO_DEVICE_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 7);

// Device info capability IDs
export const VFIO_DEVICE_INFO_CAP_ZPCI_BASE = 1;
export const VFIO_DEVICE_INFO_CAP_ZPCI_GROUP = 2;
export const VFIO_DEVICE_INFO_CAP_ZPCI_UTIL = 3;
export const VFIO_DEVICE_INFO_CAP_ZPCI_PFIP = 4;
export const VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP = 5;

export const VFIO_PCI_ATOMIC_COMP32 = 1 << 0;
export const VFIO_PCI_ATOMIC_COMP64 = 1 << 1;
export const VFIO_PCI_ATOMIC_COMP128 = 1 << 2;

export const vfio_device_info_cap_pci_atomic_comp = struct('vfio_device_info_cap_pci_atomic_comp', {
  header: nested(vfio_info_cap_header),
  flags: u32,
  reserved: u32,
});

export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
export const VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;

export const vfio_region_info = struct('vfio_region_info', {
  argsz: u32,
  flags: u32,
  index: u32,
  cap_offset: u32,
  size: u64,
  offset: u64,
});
export const VFIO_DEVICE_GET_REGION_INFO = _IO(VFIO_TYPE, VFIO_BASE + 8);

// Region info capability IDs
export const VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;
export const VFIO_REGION_INFO_CAP_TYPE = 2;
export const VFIO_REGION_INFO_CAP_MSIX_MAPPABLE = 3;
export const VFIO_REGION_INFO_CAP_NVLINK2_SSATGT = 4;
export const VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD = 5;

export const vfio_region_sparse_mmap_area = struct('vfio_region_sparse_mmap_area', {
  offset: u64,
  size: u64,
});

export const vfio_region_info_cap_sparse_mmap = struct('vfio_region_info_cap_sparse_mmap', {
  header: nested(vfio_info_cap_header),
  nr_areas: u32,
  reserved: u32,
  areas: flex(nested(vfio_region_sparse_mmap_area)),
});

export const vfio_region_info_cap_type = struct('vfio_region_info_cap_type', {
  header: nested(vfio_info_cap_header),
  type: u32,
  subtype: u32,
});

/**
 * Region types and subtypes for VFIO_REGION_INFO_CAP_TYPE. The vendor bit is C's `(1 << 31)`,
 * an `int` (negative), exactly as JS evaluates it; compare `type` fields with `>>> 0` or `&`.
 */
export const VFIO_REGION_TYPE_PCI_VENDOR_TYPE = 1 << 31;
export const VFIO_REGION_TYPE_PCI_VENDOR_MASK = 0xffff;
export const VFIO_REGION_TYPE_GFX = 1;
export const VFIO_REGION_TYPE_CCW = 2;
export const VFIO_REGION_TYPE_MIGRATION_DEPRECATED = 3;
export const VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION = 1;
export const VFIO_REGION_SUBTYPE_INTEL_IGD_HOST_CFG = 2;
export const VFIO_REGION_SUBTYPE_INTEL_IGD_LPC_CFG = 3;
export const VFIO_REGION_SUBTYPE_NVIDIA_NVLINK2_RAM = 1;
export const VFIO_REGION_SUBTYPE_IBM_NVLINK2_ATSD = 1;
export const VFIO_REGION_SUBTYPE_GFX_EDID = 1;
export const VFIO_REGION_SUBTYPE_CCW_ASYNC_CMD = 1;
export const VFIO_REGION_SUBTYPE_CCW_SCHIB = 2;
export const VFIO_REGION_SUBTYPE_CCW_CRW = 3;
export const VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED = 1;

export const VFIO_IRQ_INFO_EVENTFD = 1 << 0;
export const VFIO_IRQ_INFO_MASKABLE = 1 << 1;
export const VFIO_IRQ_INFO_AUTOMASKED = 1 << 2;
export const VFIO_IRQ_INFO_NORESIZE = 1 << 3;

export const vfio_irq_info = struct('vfio_irq_info', {
  argsz: u32,
  flags: u32,
  index: u32,
  count: u32,
});
export const VFIO_DEVICE_GET_IRQ_INFO = _IO(VFIO_TYPE, VFIO_BASE + 9);

export const VFIO_IRQ_SET_DATA_NONE = 1 << 0;
export const VFIO_IRQ_SET_DATA_BOOL = 1 << 1;
export const VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
export const VFIO_IRQ_SET_ACTION_MASK = 1 << 3;
export const VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4;
export const VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;
export const VFIO_IRQ_SET_DATA_TYPE_MASK = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD;
export const VFIO_IRQ_SET_ACTION_TYPE_MASK =
  VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER;

/** `data[]` holds `count` u8 bools or s32 eventfds, per the DATA_* flag. */
export const vfio_irq_set = struct('vfio_irq_set', {
  argsz: u32,
  flags: u32,
  index: u32,
  start: u32,
  count: u32,
  data: flex(u8),
});
export const VFIO_DEVICE_SET_IRQS = _IO(VFIO_TYPE, VFIO_BASE + 10);
export const VFIO_DEVICE_RESET = _IO(VFIO_TYPE, VFIO_BASE + 11);

// PCI region indexes (fixed ABI; device-specific regions follow VFIO_PCI_NUM_REGIONS)
export const VFIO_PCI_BAR0_REGION_INDEX = 0;
export const VFIO_PCI_BAR1_REGION_INDEX = 1;
export const VFIO_PCI_BAR2_REGION_INDEX = 2;
export const VFIO_PCI_BAR3_REGION_INDEX = 3;
export const VFIO_PCI_BAR4_REGION_INDEX = 4;
export const VFIO_PCI_BAR5_REGION_INDEX = 5;
export const VFIO_PCI_ROM_REGION_INDEX = 6;
export const VFIO_PCI_CONFIG_REGION_INDEX = 7;
export const VFIO_PCI_VGA_REGION_INDEX = 8;
export const VFIO_PCI_NUM_REGIONS = 9;

// PCI IRQ indexes
export const VFIO_PCI_INTX_IRQ_INDEX = 0;
export const VFIO_PCI_MSI_IRQ_INDEX = 1;
export const VFIO_PCI_MSIX_IRQ_INDEX = 2;
export const VFIO_PCI_ERR_IRQ_INDEX = 3;
export const VFIO_PCI_REQ_IRQ_INDEX = 4;
export const VFIO_PCI_NUM_IRQS = 5;

/** `devid` values when VFIO_PCI_HOT_RESET_FLAG_DEV_ID is set; NOT_OWNED is C's `-1` (u32 all-ones). */
export const VFIO_PCI_DEVID_OWNED = 0;
export const VFIO_PCI_DEVID_NOT_OWNED = -1;

/**
 * One device affected by a hot reset. `group_id` is an anonymous union with `devid` (the iommufd
 * device ID, reported instead when the info flags carry VFIO_PCI_HOT_RESET_FLAG_DEV_ID).
 */
export const vfio_pci_dependent_device = struct('vfio_pci_dependent_device', {
  group_id: u32,
  segment: u16,
  bus: u8,
  devfn: u8,
});

export const VFIO_PCI_HOT_RESET_FLAG_DEV_ID = 1 << 0;
export const VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED = 1 << 1;

export const vfio_pci_hot_reset_info = struct('vfio_pci_hot_reset_info', {
  argsz: u32,
  flags: u32,
  count: u32,
  devices: flex(nested(vfio_pci_dependent_device)),
});
export const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 12);

export const vfio_pci_hot_reset = struct('vfio_pci_hot_reset', {
  argsz: u32,
  flags: u32,
  count: u32,
  group_fds: flex(s32),
});
export const VFIO_DEVICE_PCI_HOT_RESET = _IO(VFIO_TYPE, VFIO_BASE + 13);

export const VFIO_GFX_PLANE_TYPE_PROBE = 1 << 0;
export const VFIO_GFX_PLANE_TYPE_DMABUF = 1 << 1;
export const VFIO_GFX_PLANE_TYPE_REGION = 1 << 2;

/** `region_index` is an anonymous union with `dmabuf_id`. */
export const vfio_device_gfx_plane_info = struct('vfio_device_gfx_plane_info', {
  argsz: u32,
  flags: u32,
  drm_plane_type: u32,
  drm_format: u32,
  drm_format_mod: u64,
  width: u32,
  height: u32,
  stride: u32,
  size: u32,
  x_pos: u32,
  y_pos: u32,
  x_hot: u32,
  y_hot: u32,
  region_index: u32,
  reserved: u32,
});
export const VFIO_DEVICE_QUERY_GFX_PLANE = _IO(VFIO_TYPE, VFIO_BASE + 14);
/** Argument: pointer to a `__u32` dmabuf_id; returns a dma-buf fd. */
export const VFIO_DEVICE_GET_GFX_DMABUF = _IO(VFIO_TYPE, VFIO_BASE + 15);

export const VFIO_DEVICE_IOEVENTFD_8 = 1 << 0;
export const VFIO_DEVICE_IOEVENTFD_16 = 1 << 1;
export const VFIO_DEVICE_IOEVENTFD_32 = 1 << 2;
export const VFIO_DEVICE_IOEVENTFD_64 = 1 << 3;
export const VFIO_DEVICE_IOEVENTFD_SIZE_MASK = 0xf;

export const vfio_device_ioeventfd = struct('vfio_device_ioeventfd', {
  argsz: u32,
  flags: u32,
  offset: u64,
  data: u64,
  fd: s32,
  reserved: u32,
});
export const VFIO_DEVICE_IOEVENTFD = _IO(VFIO_TYPE, VFIO_BASE + 16);

export const VFIO_DEVICE_FEATURE_MASK = 0xffff;
export const VFIO_DEVICE_FEATURE_GET = 1 << 16;
export const VFIO_DEVICE_FEATURE_SET = 1 << 17;
export const VFIO_DEVICE_FEATURE_PROBE = 1 << 18;

/** The low 16 bits of `flags` select a feature; `data[]` is that feature's struct. */
export const vfio_device_feature = struct('vfio_device_feature', {
  argsz: u32,
  flags: u32,
  data: flex(u8),
});
export const VFIO_DEVICE_FEATURE = _IO(VFIO_TYPE, VFIO_BASE + 17);

/** cdev only: bind the device fd to an iommufd; returns the iommufd device ID. */
export const vfio_device_bind_iommufd = struct('vfio_device_bind_iommufd', {
  argsz: u32,
  flags: u32,
  iommufd: s32,
  out_devid: u32,
});
export const VFIO_DEVICE_BIND_IOMMUFD = _IO(VFIO_TYPE, VFIO_BASE + 18);

/** cdev only: attach to an IOAS or HWPT; `pt_id` returns the HWPT actually attached. */
export const vfio_device_attach_iommufd_pt = struct('vfio_device_attach_iommufd_pt', {
  argsz: u32,
  flags: u32,
  pt_id: u32,
});
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT = _IO(VFIO_TYPE, VFIO_BASE + 19);

export const vfio_device_detach_iommufd_pt = struct('vfio_device_detach_iommufd_pt', {
  argsz: u32,
  flags: u32,
});
export const VFIO_DEVICE_DETACH_IOMMUFD_PT = _IO(VFIO_TYPE, VFIO_BASE + 20);

// Device feature indexes (VFIO_DEVICE_FEATURE_MASK part of vfio_device_feature.flags)
export const VFIO_DEVICE_FEATURE_PCI_VF_TOKEN = 0;
export const VFIO_DEVICE_FEATURE_MIGRATION = 1;
export const VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE = 2;
export const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY = 3;
export const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP = 4;
export const VFIO_DEVICE_FEATURE_LOW_POWER_EXIT = 5;
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_START = 6;
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP = 7;
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT = 8;
export const VFIO_DEVICE_FEATURE_MIG_DATA_SIZE = 9;
export const VFIO_DEVICE_FEATURE_BUS_MASTER = 10;

export const VFIO_MIGRATION_STOP_COPY = 1 << 0;
export const VFIO_MIGRATION_P2P = 1 << 1;
export const VFIO_MIGRATION_PRE_COPY = 1 << 2;

export const vfio_device_feature_migration = struct('vfio_device_feature_migration', {
  flags: u64,
});

export const vfio_device_feature_mig_state = struct('vfio_device_feature_mig_state', {
  device_state: u32,
  data_fd: s32,
});

// enum vfio_device_mig_state
export const VFIO_DEVICE_STATE_ERROR = 0;
export const VFIO_DEVICE_STATE_STOP = 1;
export const VFIO_DEVICE_STATE_RUNNING = 2;
export const VFIO_DEVICE_STATE_STOP_COPY = 3;
export const VFIO_DEVICE_STATE_RESUMING = 4;
export const VFIO_DEVICE_STATE_RUNNING_P2P = 5;
export const VFIO_DEVICE_STATE_PRE_COPY = 6;
export const VFIO_DEVICE_STATE_PRE_COPY_P2P = 7;
export const VFIO_DEVICE_STATE_NR = 8;

export const vfio_precopy_info = struct('vfio_precopy_info', {
  argsz: u32,
  flags: u32,
  initial_bytes: u64,
  dirty_bytes: u64,
});
/** Issued on the migration data fd, not the device fd. */
export const VFIO_MIG_GET_PRECOPY_INFO = _IO(VFIO_TYPE, VFIO_BASE + 21);

export const vfio_device_low_power_entry_with_wakeup = struct('vfio_device_low_power_entry_with_wakeup', {
  wakeup_eventfd: s32,
  reserved: u32,
});

/** `ranges` points at `num_ranges` vfio_device_feature_dma_logging_range entries. */
export const vfio_device_feature_dma_logging_control = struct('vfio_device_feature_dma_logging_control', {
  page_size: u64,
  num_ranges: u32,
  __reserved: u32,
  ranges: u64,
});

export const vfio_device_feature_dma_logging_range = struct('vfio_device_feature_dma_logging_range', {
  iova: u64,
  length: u64,
});

export const vfio_device_feature_dma_logging_report = struct('vfio_device_feature_dma_logging_report', {
  iova: u64,
  length: u64,
  page_size: u64,
  bitmap: u64,
});

export const vfio_device_feature_mig_data_size = struct('vfio_device_feature_mig_data_size', {
  stop_copy_length: u64,
});

export const VFIO_DEVICE_FEATURE_CLEAR_MASTER = 0;
export const VFIO_DEVICE_FEATURE_SET_MASTER = 1;

export const vfio_device_feature_bus_master = struct('vfio_device_feature_bus_master', {
  op: u32,
});

// Type1 IOMMU (container fd)

export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;

export const vfio_iommu_type1_info = struct('vfio_iommu_type1_info', {
  argsz: u32,
  flags: u32,
  iova_pgsizes: u64,
  cap_offset: u32,
  pad: u32,
});

// Type1 info capability IDs (note: the third has no CAP_ in its name)
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
export const VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2;
export const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;

/** An inclusive range: `end` is the last usable IOVA. */
export const vfio_iova_range = struct('vfio_iova_range', {
  start: u64,
  end: u64,
});

export const vfio_iommu_type1_info_cap_iova_range = struct('vfio_iommu_type1_info_cap_iova_range', {
  header: nested(vfio_info_cap_header),
  nr_iovas: u32,
  reserved: u32,
  iova_ranges: flex(nested(vfio_iova_range)),
});

export const vfio_iommu_type1_info_cap_migration = struct('vfio_iommu_type1_info_cap_migration', {
  header: nested(vfio_info_cap_header),
  flags: u32,
  pgsize_bitmap: u64,
  max_dirty_bitmap_size: u64,
});

export const vfio_iommu_type1_info_dma_avail = struct('vfio_iommu_type1_info_dma_avail', {
  header: nested(vfio_info_cap_header),
  avail: u32,
});
export const VFIO_IOMMU_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 12);

export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
export const VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;

export const vfio_iommu_type1_dma_map = struct('vfio_iommu_type1_dma_map', {
  argsz: u32,
  flags: u32,
  vaddr: u64,
  iova: u64,
  size: u64,
});
export const VFIO_IOMMU_MAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 13);

/** A user dirty bitmap: one bit per `pgsize` page; `data` is a user pointer. */
export const vfio_bitmap = struct('vfio_bitmap', {
  pgsize: u64,
  size: u64,
  data: ptr('__u64'),
});

export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0;
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;
export const VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;

/** `data[]` holds a vfio_bitmap with GET_DIRTY_BITMAP; `size` returns the bytes unmapped. */
export const vfio_iommu_type1_dma_unmap = struct('vfio_iommu_type1_dma_unmap', {
  argsz: u32,
  flags: u32,
  iova: u64,
  size: u64,
  data: flex(u8),
});
export const VFIO_IOMMU_UNMAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 14);
export const VFIO_IOMMU_ENABLE = _IO(VFIO_TYPE, VFIO_BASE + 15);
export const VFIO_IOMMU_DISABLE = _IO(VFIO_TYPE, VFIO_BASE + 16);

export const VFIO_IOMMU_DIRTY_PAGES_FLAG_START = 1 << 0;
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP = 1 << 1;
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP = 1 << 2;

/** `data[]` holds a vfio_iommu_type1_dirty_bitmap_get with FLAG_GET_BITMAP. */
export const vfio_iommu_type1_dirty_bitmap = struct('vfio_iommu_type1_dirty_bitmap', {
  argsz: u32,
  flags: u32,
  data: flex(u8),
});

export const vfio_iommu_type1_dirty_bitmap_get = struct('vfio_iommu_type1_dirty_bitmap_get', {
  iova: u64,
  size: u64,
  bitmap: nested(vfio_bitmap),
});
export const VFIO_IOMMU_DIRTY_PAGES = _IO(VFIO_TYPE, VFIO_BASE + 17);

/** Everything above, keyed by C name, for dispatch tables and the ABI test. */
export const vfioAbi: UapiAbi = {
  header: 'linux/vfio.h',
  structs: [
    vfio_info_cap_header,
    vfio_group_status,
    vfio_device_info,
    vfio_device_info_cap_pci_atomic_comp,
    vfio_region_info,
    vfio_region_sparse_mmap_area,
    vfio_region_info_cap_sparse_mmap,
    vfio_region_info_cap_type,
    vfio_irq_info,
    vfio_irq_set,
    vfio_pci_dependent_device,
    vfio_pci_hot_reset_info,
    vfio_pci_hot_reset,
    vfio_device_gfx_plane_info,
    vfio_device_ioeventfd,
    vfio_device_feature,
    vfio_device_bind_iommufd,
    vfio_device_attach_iommufd_pt,
    vfio_device_detach_iommufd_pt,
    vfio_device_feature_migration,
    vfio_device_feature_mig_state,
    vfio_precopy_info,
    vfio_device_low_power_entry_with_wakeup,
    vfio_device_feature_dma_logging_control,
    vfio_device_feature_dma_logging_range,
    vfio_device_feature_dma_logging_report,
    vfio_device_feature_mig_data_size,
    vfio_device_feature_bus_master,
    vfio_iommu_type1_info,
    vfio_iova_range,
    vfio_iommu_type1_info_cap_iova_range,
    vfio_iommu_type1_info_cap_migration,
    vfio_iommu_type1_info_dma_avail,
    vfio_iommu_type1_dma_map,
    vfio_bitmap,
    vfio_iommu_type1_dma_unmap,
    vfio_iommu_type1_dirty_bitmap,
    vfio_iommu_type1_dirty_bitmap_get,
  ],
  ioctls: {
    VFIO_GET_API_VERSION,
    VFIO_CHECK_EXTENSION,
    VFIO_SET_IOMMU,
    VFIO_GROUP_GET_STATUS,
    VFIO_GROUP_SET_CONTAINER,
    VFIO_GROUP_UNSET_CONTAINER,
    VFIO_GROUP_GET_DEVICE_FD,
    VFIO_DEVICE_GET_INFO,
    VFIO_DEVICE_GET_REGION_INFO,
    VFIO_DEVICE_GET_IRQ_INFO,
    VFIO_DEVICE_SET_IRQS,
    VFIO_DEVICE_RESET,
    VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
    VFIO_DEVICE_PCI_HOT_RESET,
    VFIO_DEVICE_QUERY_GFX_PLANE,
    VFIO_DEVICE_GET_GFX_DMABUF,
    VFIO_DEVICE_IOEVENTFD,
    VFIO_DEVICE_FEATURE,
    VFIO_DEVICE_BIND_IOMMUFD,
    VFIO_DEVICE_ATTACH_IOMMUFD_PT,
    VFIO_DEVICE_DETACH_IOMMUFD_PT,
    VFIO_MIG_GET_PRECOPY_INFO,
    VFIO_IOMMU_GET_INFO,
    VFIO_IOMMU_MAP_DMA,
    VFIO_IOMMU_UNMAP_DMA,
    VFIO_IOMMU_ENABLE,
    VFIO_IOMMU_DISABLE,
    VFIO_IOMMU_DIRTY_PAGES,
  },
  constants: {
    VFIO_API_VERSION,
    VFIO_TYPE1_IOMMU,
    VFIO_SPAPR_TCE_IOMMU,
    VFIO_TYPE1v2_IOMMU,
    VFIO_DMA_CC_IOMMU,
    VFIO_EEH,
    VFIO_TYPE1_NESTING_IOMMU,
    VFIO_SPAPR_TCE_v2_IOMMU,
    VFIO_NOIOMMU_IOMMU,
    VFIO_UNMAP_ALL,
    VFIO_UPDATE_VADDR,
    VFIO_TYPE,
    VFIO_BASE,
    VFIO_GROUP_FLAGS_VIABLE,
    VFIO_GROUP_FLAGS_CONTAINER_SET,
    VFIO_DEVICE_FLAGS_RESET,
    VFIO_DEVICE_FLAGS_PCI,
    VFIO_DEVICE_FLAGS_PLATFORM,
    VFIO_DEVICE_FLAGS_AMBA,
    VFIO_DEVICE_FLAGS_CCW,
    VFIO_DEVICE_FLAGS_AP,
    VFIO_DEVICE_FLAGS_FSL_MC,
    VFIO_DEVICE_FLAGS_CAPS,
    VFIO_DEVICE_FLAGS_CDX,
    VFIO_DEVICE_INFO_CAP_ZPCI_BASE,
    VFIO_DEVICE_INFO_CAP_ZPCI_GROUP,
    VFIO_DEVICE_INFO_CAP_ZPCI_UTIL,
    VFIO_DEVICE_INFO_CAP_ZPCI_PFIP,
    VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP,
    VFIO_PCI_ATOMIC_COMP32,
    VFIO_PCI_ATOMIC_COMP64,
    VFIO_PCI_ATOMIC_COMP128,
    VFIO_REGION_INFO_FLAG_READ,
    VFIO_REGION_INFO_FLAG_WRITE,
    VFIO_REGION_INFO_FLAG_MMAP,
    VFIO_REGION_INFO_FLAG_CAPS,
    VFIO_REGION_INFO_CAP_SPARSE_MMAP,
    VFIO_REGION_INFO_CAP_TYPE,
    VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
    VFIO_REGION_INFO_CAP_NVLINK2_SSATGT,
    VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD,
    VFIO_REGION_TYPE_PCI_VENDOR_TYPE,
    VFIO_REGION_TYPE_PCI_VENDOR_MASK,
    VFIO_REGION_TYPE_GFX,
    VFIO_REGION_TYPE_CCW,
    VFIO_REGION_TYPE_MIGRATION_DEPRECATED,
    VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION,
    VFIO_REGION_SUBTYPE_INTEL_IGD_HOST_CFG,
    VFIO_REGION_SUBTYPE_INTEL_IGD_LPC_CFG,
    VFIO_REGION_SUBTYPE_NVIDIA_NVLINK2_RAM,
    VFIO_REGION_SUBTYPE_IBM_NVLINK2_ATSD,
    VFIO_REGION_SUBTYPE_GFX_EDID,
    VFIO_REGION_SUBTYPE_CCW_ASYNC_CMD,
    VFIO_REGION_SUBTYPE_CCW_SCHIB,
    VFIO_REGION_SUBTYPE_CCW_CRW,
    VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED,
    VFIO_IRQ_INFO_EVENTFD,
    VFIO_IRQ_INFO_MASKABLE,
    VFIO_IRQ_INFO_AUTOMASKED,
    VFIO_IRQ_INFO_NORESIZE,
    VFIO_IRQ_SET_DATA_NONE,
    VFIO_IRQ_SET_DATA_BOOL,
    VFIO_IRQ_SET_DATA_EVENTFD,
    VFIO_IRQ_SET_ACTION_MASK,
    VFIO_IRQ_SET_ACTION_UNMASK,
    VFIO_IRQ_SET_ACTION_TRIGGER,
    VFIO_IRQ_SET_DATA_TYPE_MASK,
    VFIO_IRQ_SET_ACTION_TYPE_MASK,
    VFIO_PCI_BAR0_REGION_INDEX,
    VFIO_PCI_BAR1_REGION_INDEX,
    VFIO_PCI_BAR2_REGION_INDEX,
    VFIO_PCI_BAR3_REGION_INDEX,
    VFIO_PCI_BAR4_REGION_INDEX,
    VFIO_PCI_BAR5_REGION_INDEX,
    VFIO_PCI_ROM_REGION_INDEX,
    VFIO_PCI_CONFIG_REGION_INDEX,
    VFIO_PCI_VGA_REGION_INDEX,
    VFIO_PCI_NUM_REGIONS,
    VFIO_PCI_INTX_IRQ_INDEX,
    VFIO_PCI_MSI_IRQ_INDEX,
    VFIO_PCI_MSIX_IRQ_INDEX,
    VFIO_PCI_ERR_IRQ_INDEX,
    VFIO_PCI_REQ_IRQ_INDEX,
    VFIO_PCI_NUM_IRQS,
    VFIO_PCI_DEVID_OWNED,
    VFIO_PCI_DEVID_NOT_OWNED,
    VFIO_PCI_HOT_RESET_FLAG_DEV_ID,
    VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED,
    VFIO_GFX_PLANE_TYPE_PROBE,
    VFIO_GFX_PLANE_TYPE_DMABUF,
    VFIO_GFX_PLANE_TYPE_REGION,
    VFIO_DEVICE_IOEVENTFD_8,
    VFIO_DEVICE_IOEVENTFD_16,
    VFIO_DEVICE_IOEVENTFD_32,
    VFIO_DEVICE_IOEVENTFD_64,
    VFIO_DEVICE_IOEVENTFD_SIZE_MASK,
    VFIO_DEVICE_FEATURE_MASK,
    VFIO_DEVICE_FEATURE_GET,
    VFIO_DEVICE_FEATURE_SET,
    VFIO_DEVICE_FEATURE_PROBE,
    VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
    VFIO_DEVICE_FEATURE_MIGRATION,
    VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
    VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
    VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
    VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
    VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
    VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
    VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
    VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
    VFIO_DEVICE_FEATURE_BUS_MASTER,
    VFIO_MIGRATION_STOP_COPY,
    VFIO_MIGRATION_P2P,
    VFIO_MIGRATION_PRE_COPY,
    VFIO_DEVICE_STATE_ERROR,
    VFIO_DEVICE_STATE_STOP,
    VFIO_DEVICE_STATE_RUNNING,
    VFIO_DEVICE_STATE_STOP_COPY,
    VFIO_DEVICE_STATE_RESUMING,
    VFIO_DEVICE_STATE_RUNNING_P2P,
    VFIO_DEVICE_STATE_PRE_COPY,
    VFIO_DEVICE_STATE_PRE_COPY_P2P,
    VFIO_DEVICE_STATE_NR,
    VFIO_DEVICE_FEATURE_CLEAR_MASTER,
    VFIO_DEVICE_FEATURE_SET_MASTER,
    VFIO_IOMMU_INFO_PGSIZES,
    VFIO_IOMMU_INFO_CAPS,
    VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
    VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
    VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
    VFIO_DMA_MAP_FLAG_READ,
    VFIO_DMA_MAP_FLAG_WRITE,
    VFIO_DMA_MAP_FLAG_VADDR,
    VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
    VFIO_DMA_UNMAP_FLAG_ALL,
    VFIO_DMA_UNMAP_FLAG_VADDR,
    VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
    VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
    VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
  },
};
