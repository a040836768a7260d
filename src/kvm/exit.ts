// A vCPU exit, decoded into a tagged union (see Vcpu.exit).
export type VcpuExit =
  | { kind: "io"; direction: "in" | "out"; size: number; port: number; count: number; dataOffset: number }
  | { kind: "mmio"; address: bigint; length: number; isWrite: boolean }
  | { kind: "hlt" }
  | { kind: "shutdown" }
  | { kind: "fail_entry"; hardwareReason: bigint }
  | { kind: "internal_error"; suberror: number }
  | { kind: "system_event"; type: number }
  | { kind: "interrupted" }
  | { kind: "other"; reason: number; name: string };
