// `import path from "x.bin" with { type: "file" }` gives the file's path (embedded by bun build --compile):
// the guests (.bin), the JavaScript engine (.elf), the guest SDK (.zig, .ld, .h, .rs), C sources the bench builds (.c) and the Python runner (.py).
declare module "*.bin" {
  const path: string;
  export default path;
}
declare module "*.zig" {
  const path: string;
  export default path;
}
declare module "*.ld" {
  const path: string;
  export default path;
}
declare module "*.h" {
  const path: string;
  export default path;
}
declare module "*.rs" {
  const path: string;
  export default path;
}
declare module "*.elf" {
  const path: string;
  export default path;
}
declare module "*.c" {
  const path: string;
  export default path;
}
declare module "*.page" {
  const path: string;
  export default path;
}
// the AES experiment's native program (a static Linux executable, no extension)
declare module "*/aes_native" {
  const path: string;
  export default path;
}
// the heavy JavaScript handler wasp bench runs (guests/js/markdown.js bundled into dist/guests)
declare module "*/dist/guests/markdown.js" {
  const path: string;
  export default path;
}
declare module "*.py" {
  const path: string;
  export default path;
}
// the minimal Bun program that runs one VM, compiled by wasp bench (start_bun_kvm)
declare module "*/bun-kvm.js" {
  const path: string;
  export default path;
}
