/**
 * The ioctl request encoding of include/uapi/asm-generic/ioctl.h (x86-64): 8 bits number,
 * 8 bits type, 14 bits size, 2 bits direction.
 */

export const IOC_NRBITS = 8;
export const IOC_TYPEBITS = 8;
export const IOC_SIZEBITS = 14;
export const IOC_DIRBITS = 2;

export const IOC_NRSHIFT = 0;
export const IOC_TYPESHIFT = IOC_NRSHIFT + IOC_NRBITS;
export const IOC_SIZESHIFT = IOC_TYPESHIFT + IOC_TYPEBITS;
export const IOC_DIRSHIFT = IOC_SIZESHIFT + IOC_SIZEBITS;

export const IOC_NONE = 0;
export const IOC_WRITE = 1;
export const IOC_READ = 2;

export function _IOC(dir: number, type: number, nr: number, size: number): number {
  if (size >= 1 << IOC_SIZEBITS) throw new RangeError(`ioctl size ${size} does not fit in ${IOC_SIZEBITS} bits`);
  return ((dir << IOC_DIRSHIFT) | (type << IOC_TYPESHIFT) | (nr << IOC_NRSHIFT) | (size << IOC_SIZESHIFT)) >>> 0;
}

export const _IO = (type: number, nr: number): number => _IOC(IOC_NONE, type, nr, 0);
export const _IOR = (type: number, nr: number, size: number): number => _IOC(IOC_READ, type, nr, size);
export const _IOW = (type: number, nr: number, size: number): number => _IOC(IOC_WRITE, type, nr, size);
export const _IOWR = (type: number, nr: number, size: number): number => _IOC(IOC_READ | IOC_WRITE, type, nr, size);

export const _IOC_DIR = (cmd: number): number => (cmd >>> IOC_DIRSHIFT) & ((1 << IOC_DIRBITS) - 1);
export const _IOC_TYPE = (cmd: number): number => (cmd >>> IOC_TYPESHIFT) & ((1 << IOC_TYPEBITS) - 1);
export const _IOC_NR = (cmd: number): number => (cmd >>> IOC_NRSHIFT) & ((1 << IOC_NRBITS) - 1);
export const _IOC_SIZE = (cmd: number): number => (cmd >>> IOC_SIZESHIFT) & ((1 << IOC_SIZEBITS) - 1);
