/** The uapi surface: struct schemas, ioctl encoding, and the iommufd.h, vfio.h and iommufd_test.h definitions. */

export type * from './abi.js';
export * from './schema.js';
export * from './ioctl.js';
export * from './iommufd.js';
export * from './vfio.js';
export * from './vfio_sva.js';
export * from './iommufd_test.js';
