// `import path from "x.bin" with { type: "file" }` gives the file's path (embedded by bun build --compile).
declare module "*.bin" {
  const path: string;
  export default path;
}
