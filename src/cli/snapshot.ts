// `wasp snapshot <image> [args...] -o FILE` and `wasp snapshot --verify FILE`.
import { Runner } from "../virtine/runner.ts";
import { SnapshotFile, writeSnapshotFile } from "../snapshot/file.ts";
import { systemKvm } from "../kvm/system.ts";
import { BadArgsError, BadImageError } from "../errors.ts";
import { MIB } from "../image/image.ts";
import { readInput } from "./invoke.ts";
import { isElfPath, isJsPath, isPyPath, isSnapshotPath, loadImage, resolveImage } from "./image-arg.ts";
import { checkWritable, parseCount, parseFiles, parseIntArg, parseList, parseSize } from "./parse.ts";
import { out } from "./output.ts";
import { linuxSnapshot } from "./linux.ts";
import { jsSnapshot } from "./js.ts";
import { pySnapshot } from "./python.ts";

export interface SnapshotFlags {
  output?: string;
  verify?: boolean;
  mem?: string;
  allow?: string;
  timeout?: string;
  /** --raw: any bytes are a raw image */
  raw?: boolean;
  /** the data window and the stack the file will fix */
  dataSize?: string;
  stack?: string;
  /** a Linux program's environment, granted files and first input */
  env?: string[];
  file?: string[];
  /** a Linux program's granted directories (--dir HOST[=GUEST]) */
  dir?: string[];
  input?: string;
  /** a JavaScript module's heap limit and warm-up inputs */
  heap?: string;
  warmup?: string;
  /** a Python module's interpreter */
  python?: string;
}

export function snapshotCommand(target: string, rawArgs: string[], flags: SnapshotFlags): void {
  if (flags.verify) {
    if (rawArgs.length > 0) throw new BadArgsError("--verify takes only the snapshot file");
    using file = new SnapshotFile(target, systemKvm());
    file.verify();
    const i = file.info;
    out(`${target}: ok (format ${i.formatVersion}, written by wasp ${i.waspVersion}, ${i.memSize / MIB} MiB of memory, ${i.populatedPages} pages stored, memory sha256 ${i.memorySha256})\n`);
    return;
  }
  if (!flags.output) throw new BadArgsError("say where to write the snapshot: -o FILE");
  // before the (maybe long) initialization runs: a folder that cannot take the file is said now,
  // naming the file asked for
  checkWritable(flags.output, "-o");
  if (resolveImage(target) === undefined && isSnapshotPath(target)) throw new BadImageError(`${target}: is a snapshot file already; snapshot its image instead`);
  // a JavaScript module: compiled and warmed up (src/cli/js.ts)
  if (resolveImage(target) === undefined && isJsPath(target)) return jsSnapshot(target, rawArgs, { ...flags, output: flags.output });
  // a Python module: imported and warmed up (src/cli/python.ts)
  if (resolveImage(target) === undefined && isPyPath(target)) return pySnapshot(target, rawArgs, { ...flags, output: flags.output });
  if (flags.heap !== undefined || flags.warmup !== undefined) throw new BadArgsError(`--heap and --warmup are for JavaScript and Python modules; ${target} is not one`);
  if (flags.python !== undefined) throw new BadArgsError(`--python is for Python modules (*.py); ${target} is not one`);
  // a static Linux executable: string arguments, stdin, its own snapshot point (wasp_snapshot())
  if (!flags.raw && resolveImage(target) === undefined && isElfPath(target)) return linuxSnapshot(target, rawArgs, { ...flags, output: flags.output });
  if (flags.env?.length) throw new BadArgsError(`--env is for Linux programs (static ELF executables); ${target} is not one`);
  if (flags.dir?.length) throw new BadArgsError(`--dir is for Linux programs (ELF executables); ${target} is not one`);
  // files the initializing call may read (the `file` hypercall); every later call is granted its own
  const { files } = parseFiles(flags.file ?? []);
  const args = rawArgs.map((a, i) => parseIntArg(a, i + 1));
  const memory = flags.mem === undefined ? undefined : parseSize(flags.mem, "--mem");
  const image = loadImage(target, { memory, raw: flags.raw });
  const timeoutMs = flags.timeout === undefined ? 60_000 : parseCount(flags.timeout, "--timeout");
  const dataSize = flags.dataSize === undefined ? undefined : parseSize(flags.dataSize, "--data-size");
  const stackSize = flags.stack === undefined ? undefined : parseSize(flags.stack, "--stack");
  // a native image's first call may take input (main(input)): what it initializes from, such as a key
  const input = flags.input === undefined ? undefined : readInput(flags.input);
  using virtine = new Runner(image, { memory, timeoutMs, dataSize, stackSize, poolSize: 1, allow: flags.allow === undefined ? [] : parseList(flags.allow), ...(flags.file?.length && { files }) });
  if (input) virtine.checkInput(input);
  const result = virtine.run(args, { input });
  if (!virtine.snapshotTaken) {
    throw new BadImageError(`${image.name}: the image made no snapshot hypercall (virtine.snapshot()), so there is no initialized state to write`);
  }
  const info = writeSnapshotFile(flags.output, virtine.pool.snapshot, image.bytes, systemKvm());
  out(
    `wrote ${flags.output}: ${info.memSize / MIB} MiB of guest memory, ${info.populatedPages} pages stored (${((info.populatedPages * 4096) / MIB).toFixed(1)} MiB on disk), first call's result ${result.value}\n`,
  );
}
