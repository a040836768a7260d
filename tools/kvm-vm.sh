#!/usr/bin/env bash
# kvm-vm.sh CMD [ARG...]: run CMD, in the current directory and environment, inside a QEMU-emulated
# x86-64 machine whose Linux has a real /dev/kvm (kvm_amd over QEMU's emulated SVM).
#
# For machines without /dev/kvm (a VM whose own hypervisor offers no nested virtualization): wasp's
# tests need a real KVM and never skip, so there they run here. The whole host file system is shared
# with the emulated machine (9p), so CMD sees the same files.
# Everything is emulated by QEMU's TCG: it is slow (a KVM exit costs about a millisecond), so use it
# for correctness, never for figures.
#
# Needs (as root, from Debian's packages): qemu-system-x86 busybox-static cpio kmod, and apt access to
# download linux-image-amd64 (cached in $WASP_VM_CACHE). Exit status: CMD's; 125 if the machine failed.
# Settings: WASP_VM_MEM (default 8G), WASP_VM_CPUS (default 1: with two, the emulated machine
# wedged now and then, all its CPUs spinning, seemingly an IPI lost to the emulated SVM), WASP_VM_TIMEOUT (seconds, default
# 5000), WASP_VM_NPT (kvm_amd nested paging, default 0: shadow paging, as on PVM), WASP_VM_WATCH
# (seconds: every so often print what each thread of bun and wasp waits in, to find a hang; default 0).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: kvm-vm.sh CMD [ARG...]" >&2; exit 2; }
# the kernel and initrd are kept per version of this script: a changed init is never a stale one
cache=${WASP_VM_CACHE:-/var/cache/wasp-kvm-vm}/$(sha256sum "$0" | cut -c1-12)
mem=${WASP_VM_MEM:-8G}
cpus=${WASP_VM_CPUS:-1}
npt=${WASP_VM_NPT:-0}
die() { echo "kvm-vm: $*" >&2; exit 125; }
for tool in qemu-system-x86_64 busybox cpio depmod modprobe dpkg-deb apt-get; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install qemu-system-x86 busybox-static cpio kmod)"
done
mkdir -p "$cache"

# 1. a Debian kernel with its modules, once
if [ ! -s "$cache/initrd.gz" ]; then
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$pkg" ] || die "apt knows no linux-image-amd64 (run apt-get update)"
  rm -rf "$cache/kernel" "$cache/initrd" && mkdir -p "$cache/kernel" "$cache/initrd"/{bin,dev,proc,sys,mnt,mods}
  (cd "$cache" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  dpkg-deb -x "$cache/${pkg}"_*.deb "$cache/kernel"
  rm -f "$cache/${pkg}"_*.deb
  release=$(ls "$cache/kernel/lib/modules")
  depmod -b "$cache/kernel" "$release"
  cp "$cache/kernel/boot/vmlinuz-$release" "$cache/vmlinuz"
  # the modules the machine needs, dependencies first, in load order
  for m in kvm_amd virtio_pci 9pnet_virtio 9p; do
    modprobe -d "$cache/kernel" -S "$release" --show-depends "$m" | awk '$1=="insmod"{print $2}'
  done | awk '!seen[$0]++' > "$cache/modules.list"
  while read -r ko; do cp "$ko" "$cache/initrd/mods/"; basename "$ko" >> "$cache/initrd/mods/order"; done < "$cache/modules.list"
  cp "$(command -v busybox)" "$cache/initrd/bin/busybox"
  for applet in sh mount insmod cat chroot poweroff mkdir sed sleep cut ip; do ln -s busybox "$cache/initrd/bin/$applet"; done
  cat > "$cache/initrd/init" <<'EOF'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
# the loopback interface (wasp serve's tests talk HTTP over 127.0.0.1); no other network
ip link set lo up
job=$(sed -n 's/.*wasp\.job=\([^ ]*\).*/\1/p' /proc/cmdline)
npt=$(sed -n 's/.*wasp\.npt=\([01]\).*/\1/p' /proc/cmdline)
for m in $(cat /mods/order); do
  if [ "$m" = kvm-amd.ko ]; then insmod /mods/$m npt=$npt; else insmod /mods/$m; fi
done
watch=$(sed -n 's/.*wasp\.watch=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ "${watch:-0}" -gt 0 ]; then
  # what every thread of bun and wasp waits in, every $watch seconds: where a hung test hangs
  (while sleep "$watch"; do
    echo "kvm-vm: threads of bun and wasp, after another ${watch}s (task, name, wchan, syscall)"
    for p in /proc/[0-9]*; do
      case "$(cat $p/comm 2>/dev/null)" in bun|wasp) for t in $p/task/*; do echo "  $t $(cat $t/comm) $(cat $t/wchan) $(cut -d' ' -f1-3 $t/syscall)"; done;; esac
    done
  done) > /dev/console 2>&1 &
fi
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose host /mnt
for d in proc sys dev; do mount --bind /$d /mnt/$d; done
# (the host's /tmp stays: the command's folder may be there; TMPDIR is the job's own folder)
mkdir -p /mnt/dev/pts /mnt/dev/shm; mount -t devpts devpts /mnt/dev/pts; mount -t tmpfs tmpfs /mnt/dev/shm
# the job's folder again, without caching: what the host writes there is seen at once
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 job /mnt$job
# programs that run on the host instead (see WASP_VM_HOST_EXEC): their wrappers over them
if [ -s /mnt$job/binds ]; then
  while read -r wrapper target; do mount --bind "/mnt$wrapper" "/mnt$target"; done < /mnt$job/binds
fi
if [ -c /dev/kvm ]; then chroot /mnt /bin/bash "$job/run.sh"; echo $? > /mnt$job/rc; else echo "kvm-vm: no /dev/kvm in the emulated machine" > /dev/console; fi
poweroff -f
EOF
  chmod +x "$cache/initrd/init"
  (cd "$cache/initrd" && find . | cpio -o -H newc --quiet | gzip -1 > "$cache/initrd.gz.tmp") && mv "$cache/initrd.gz.tmp" "$cache/initrd.gz"
fi

# 2. the job: the command, its directory and environment, in a folder the emulated machine sees
mkdir -p "$cache/jobs"
job=$(mktemp -d "$cache/jobs/job.XXXXXX")
trap 'rm -rf "$job"' EXIT
mkdir -p "$job/exec"
# temporary files where the host sees them under the same path, on the cached share: on the
# uncached one an inode is new at every lookup, and Landlock (wasp invoke's sandbox) then refused
# the very files it had been told to allow
tmp=$(mktemp -d "$cache/jobs/tmp.XXXXXX")
trap 'rm -rf "$job" "$tmp"' EXIT
{
  echo "set -e"
  export -p | grep -v -E '^declare -x (PWD|OLDPWD|SHLVL|_|TMPDIR)='
  printf 'export TMPDIR=%q\n' "$tmp"
  printf 'cd %q\n' "$PWD"
  printf 'exec'; printf ' %q' "$@"; printf ' < /dev/null\n'
} > "$job/run.sh"

# Programs named in WASP_VM_HOST_EXEC (absolute paths, space-separated) run natively on the host,
# with the same arguments, directory and environment: a compiler (zig, gcc) whose minutes of
# emulated work would otherwise dominate; its files land where the emulated machine reads them (the
# shared file system, temporary folders too). Inside, a wrapper is
# mounted over each program; it leaves a request in $job/exec and waits for the host's answer.
n=0
for target in ${WASP_VM_HOST_EXEC:-}; do
  [ -x "$target" ] && [ -f "$target" ] || die "WASP_VM_HOST_EXEC: $target is not an executable file"
  n=$((n + 1))
  printf '#!/bin/bash\nexec /bin/bash %q %q "$@"\n' "$job/host-exec-client.sh" "$target" > "$job/wrapper.$n"
  chmod +x "$job/wrapper.$n"
  echo "$job/wrapper.$n $target" >> "$job/binds"
done
cat > "$job/host-exec-client.sh" <<'CLIENT'
req=$(mktemp -d "$JOB/exec/req.XXXXXX")
printf '%s\0' "$@" > "$req/argv"
printf '%s' "$PWD" > "$req/cwd"
env -0 > "$req/env"
: > "$req/go"
# wait without a process per look: read with a timeout from a FIFO no one writes
fifo=$(mktemp -u /dev/shm/host-exec.XXXXXX); mkfifo "$fifo"; exec 3<> "$fifo"; rm -f "$fifo"
until [ -e "$req/rc" ]; do read -r -t 0.02 -u 3 || true; done
cat "$req/stdout"; cat "$req/stderr" >&2
rc=$(cat "$req/rc"); rm -rf "$req"; exit "$rc"
CLIENT
sed -i "1i JOB=$(printf %q "$job")" "$job/host-exec-client.sh"
serve_host_exec() {
  while :; do
    for go in "$job"/exec/*/go; do
      [ -e "$go" ] || continue
      req=${go%/go}; rm -f "$go"
      ( set +e; mapfile -d '' -t argv < "$req/argv"; mapfile -d '' -t envv < "$req/env"
        cd "$(cat "$req/cwd")" && env -i "${envv[@]}" "${argv[@]}" < /dev/null > "$req/stdout" 2> "$req/stderr"
        echo $? > "$req/rc.tmp"; mv "$req/rc.tmp" "$req/rc" ) &
    done
    sleep 0.02
  done
}
if [ "$n" -gt 0 ]; then serve_host_exec & server=$!; trap 'kill $server 2>/dev/null; rm -rf "$job" "$tmp"' EXIT; fi

# 3. the machine: the host's / shared read-write, the console on our stdout
timeout "${WASP_VM_TIMEOUT:-5000}" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp "$cpus" -m "$mem" \
  -nodefaults -no-user-config -display none -serial stdio -no-reboot \
  -kernel "$cache/vmlinuz" -initrd "$cache/initrd.gz" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 wasp.job=$job wasp.npt=$npt wasp.watch=${WASP_VM_WATCH:-0}" \
  -virtfs local,path=/,mount_tag=host,security_model=passthrough,id=host,multidevs=remap \
  -virtfs local,path="$job",mount_tag=job,security_model=passthrough,id=job \
  | sed -u 's/\r$//' || true
[ -s "$job/rc" ] || die "the emulated machine stopped before the command finished"
exit "$(cat "$job/rc")"
