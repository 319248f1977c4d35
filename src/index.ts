/**
 * iommufd-emu: the Linux 6.12 IOMMUFD and VFIO subsystems emulated in TypeScript.
 *
 *   const m = new Machine();
 *   const p = m.spawn();
 *   const fd = p.openOrThrow('/dev/iommu');
 *   const alloc = iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size });
 *   p.ioctlOrThrow(fd, IOMMU_IOAS_ALLOC, alloc);
 */

export { Errno, KernelError, errnoName } from './errno.js';
export type { ErrnoName } from './errno.js';
export { Machine } from './kernel/machine.js';
export type { MachineOptions, SpawnOptions, UserStruct } from './kernel/machine.js';
export { Process, must, CAP_IPC_LOCK, CAP_SYS_RAWIO, CAP_SYS_PTRACE, CAP_SYS_ADMIN, CAP_SYS_RESOURCE, RLIM_INFINITY } from './kernel/process.js';
export type { SysResult, Cred, Rlimits } from './kernel/process.js';
export { PROT_NONE, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS, MAP_POPULATE, MAP_HUGETLB, HPAGE_SIZE } from './kernel/mm/mm.js';
export { PAGE_SIZE } from './kernel/mm/physmem.js';
export { O_RDONLY, O_WRONLY, O_RDWR, O_CLOEXEC, O_NONBLOCK } from './kernel/vfs.js';
export { toJsonl, fromJsonl, formatEvent } from './kernel/trace.js';
export type { TraceEvent } from './kernel/trace.js';
export { replay } from './kernel/replay.js';
export type { ReplayMismatch } from './kernel/replay.js';
export { checkInvariants } from './kernel/invariants.js';
export * from './uapi/index.js';
