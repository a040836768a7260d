// The _IOC encoding of ioctl request numbers (asm-generic/ioctl.h): direction in bits 30-31, the
// argument's size in bits 16-29, the type ("magic") in bits 8-15 and the number in bits 0-7.
const IOC_NRBITS = 8;
const IOC_TYPEBITS = 8;
const IOC_SIZEBITS = 14;
const IOC_NRSHIFT = 0;
const IOC_TYPESHIFT = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT = IOC_SIZESHIFT + IOC_SIZEBITS;
const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;

function ioc(dir: number, type: number, nr: number, size: number): number {
  if (size >= 1 << IOC_SIZEBITS) throw new RangeError(`ioctl argument size ${size} does not fit _IOC`);
  // `>>> 0` keeps the result an unsigned 32-bit number (the direction bits reach bit 31).
  return ((dir << IOC_DIRSHIFT) | (size << IOC_SIZESHIFT) | (type << IOC_TYPESHIFT) | (nr << IOC_NRSHIFT)) >>> 0;
}

export const IO = (type: number, nr: number) => ioc(IOC_NONE, type, nr, 0);
export const IOR = (type: number, nr: number, size: number) => ioc(IOC_READ, type, nr, size);
export const IOW = (type: number, nr: number, size: number) => ioc(IOC_WRITE, type, nr, size);
export const IOWR = (type: number, nr: number, size: number) => ioc(IOC_READ | IOC_WRITE, type, nr, size);
