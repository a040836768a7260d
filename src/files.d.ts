// `import path from "x.bin" with { type: "file" }` gives the file's path (embedded by bun build --compile):
// the guests (.bin) and the guest SDK (.zig, .ld).
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
