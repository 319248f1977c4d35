/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * compat.h — what Debian's 6.12 selftest sources need from headers newer than their own tree.
 *
 * tools/testing/selftests/iommu/ in linux-source-6.12 was updated by a stable backport past the
 * kernel it ships with (../shared/oracle/README.md; reference notes §e): it uses five symbols that
 * the 6.12 uapi and iommufd_test.h do not define. scripts/conformance.mjs builds the UNMODIFIED
 * iommufd.c and iommufd_fail_nth.c with `-include` of this file, ahead of everything else, against
 * 6.12's include/uapi/linux/{iommufd,vfio}.h installed into .cache/ as `make headers_install` would
 * (annotations like __user stripped, nothing else changed). Each symbol below has the value it
 * has upstream (include/uapi/linux/iommufd.h and drivers/iommu/iommufd/iommufd_test.h after 6.12),
 * so the binaries send exactly the bytes the newer tests mean to send; a 6.12 kernel then refuses
 * the post-6.12 requests (real kernel and emulator alike), which is why `get_hw_info` and the
 * mock_domain variant fail on the oracle.
 */
#ifndef IOMMUFD_EMU_CONFORMANCE_COMPAT_H
#define IOMMUFD_EMU_CONFORMANCE_COMPAT_H

/*
 * struct iommu_hw_info: post-6.12 turns `out_data_type` into a union with the input
 * `in_data_type` (iommufd_utils.h:_test_cmd_get_hw_info sets .in_data_type). The layout is
 * unchanged (both are the u32 at offset 24), so 6.12's header is included with its struct renamed
 * out of the way and the newer definition takes the name. The rename is a macro on the single
 * token `iommu_hw_info`; enum iommu_hw_info_type and struct iommu_hw_info_vtd are other tokens.
 */
#define iommu_hw_info iommu_hw_info__6_12
#include <linux/iommufd.h>
#undef iommu_hw_info

#include <stddef.h>

struct iommu_hw_info {
	__u32 size;
	__u32 flags;
	__u32 dev_id;
	__u32 data_len;
	__aligned_u64 data_uptr;
	union {
		__u32 in_data_type;
		__u32 out_data_type;
	};
	__u8 out_max_pasid_log2;
	__u8 __reserved[3];
	__aligned_u64 out_capabilities;
};
_Static_assert(sizeof(struct iommu_hw_info) == sizeof(struct iommu_hw_info__6_12),
	       "the post-6.12 iommu_hw_info keeps 6.12's size");
_Static_assert(offsetof(struct iommu_hw_info, in_data_type) ==
		       offsetof(struct iommu_hw_info__6_12, out_data_type),
	       "in_data_type overlays 6.12's out_data_type");

/*
 * IOMMU_HW_INFO_TYPE_DEFAULT: post-6.12 alias of IOMMU_HW_INFO_TYPE_NONE (0) in
 * enum iommu_hw_info_type, meaning "the driver's own type"; with it the tests leave flags 0.
 */
#define IOMMU_HW_INFO_TYPE_DEFAULT 0

/*
 * IOMMU_HW_INFO_FLAG_INPUT_TYPE: post-6.12 flag of struct iommu_hw_info saying in_data_type is an
 * input. 6.12's iommufd_get_hw_info() refuses any non-zero flags with EOPNOTSUPP.
 */
#define IOMMU_HW_INFO_FLAG_INPUT_TYPE (1 << 0)

/*
 * MOCK_FLAGS_DEVICE_PASID: post-6.12 IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS dev_flags bit asking for a
 * PASID-capable mock device (iommufd_ioas mock_domain variant's setup). 6.12's mock_dev_create()
 * accepts only NO_DIRTY | HUGE_IOVA and answers EINVAL.
 */
#define MOCK_FLAGS_DEVICE_PASID (1 << 2)

/*
 * MOCK_PASID_WIDTH: post-6.12 iommufd_test.h's PASID width of the mock device, compared with
 * iommu_hw_info.out_max_pasid_log2 by get_hw_info.
 */
#define MOCK_PASID_WIDTH 20

#endif
