/** The uapi surface: struct schemas, ioctl encoding, and the iommufd.h and vfio.h definitions. */

export type * from './abi.js';
export * from './schema.js';
export * from './ioctl.js';
export * from './iommufd.js';
export * from './vfio.js';
