package deno

import (
	"testing"

	"vane"
	jobrt "vane/runtime"
	"vane/sandbox/attacktest"
)

// attackCode is the TypeScript of every attack of the sandbox's attack
// suite. Deno has no fork(): the process-spawning attacks try
// Deno.Command (refused: no --allow-run) and then what Deno can do
// instead (a bomb of Web Workers, i.e. threads and isolates). Each file
// attack tries the named route first and, when Deno refuses it, falls back
// to reading the path directly, so that the suite's control cases (reading
// the job's own file) stay meaningful.
var attackCode = map[attacktest.Attack]string{
	attacktest.Sanity: `export function main(marker: string) {
  console.log("sane");
  return "sane";
}`,
	attacktest.ForkBomb: `export async function main(marker: string) {
  try {
    new Deno.Command("/bin/bash", { args: ["-c", "exec -a " + marker + " bash -c 'f() { f | f & }; f; wait'"] }).spawn();
    console.log("spawned a bash fork bomb");
  } catch (e) {
    console.log("spawn refused: " + e);
  }
  const url = URL.createObjectURL(new Blob(["setInterval(() => {}, 1000);"], { type: "application/javascript" }));
  const workers: Worker[] = [];
  for (;;) {
    workers.push(new Worker(url, { type: "module" }));
    if (workers.length % 100 === 0) console.log("workers", workers.length);
    await new Promise((r) => setTimeout(r, 0));
  }
}`,
	attacktest.InfiniteLoop: `export function main(marker: string) {
  console.log("looping");
  let x = 0;
  for (;;) { x = (x * 31 + 7) % 1000003; }
}`,
	attacktest.Allocate8GiB: `export function main(marker: string) {
  const keep: Uint8Array[] = [];
  for (let i = 0; i < 8 * 16; i++) {
    keep.push(new Uint8Array(64 << 20).fill(1));
  }
  return keep.length;
}`,
	attacktest.ReadFile: `export function main(marker: string, path: string) {
  return Deno.readTextFileSync(path);
}`,
	attacktest.ReadViaSymlink: `export function main(marker: string, path: string) {
  try {
    Deno.symlinkSync(path, "link");
    return Deno.readTextFileSync("link");
  } catch (e) {
    console.log("symlink refused: " + e);
  }
  return Deno.readTextFileSync(path);
}`,
	attacktest.ReadViaSymlinkChain: `export function main(marker: string, path: string) {
  try {
    Deno.mkdirSync("d");
    Deno.symlinkSync("d", "ld");
    Deno.symlinkSync("ld/../" + path, "link");
    return Deno.readTextFileSync("link");
  } catch (e) {
    console.log("symlink chain refused: " + e);
  }
  return Deno.readTextFileSync(path);
}`,
	attacktest.ReadViaHardlink: `export function main(marker: string, path: string) {
  try {
    Deno.linkSync(path, "hardlink");
    return Deno.readTextFileSync("hardlink");
  } catch (e) {
    console.log("hard link refused: " + e);
  }
  return Deno.readTextFileSync(path);
}`,
	attacktest.PlantResult: `export function main(marker: string, path: string) {
  for (const plant of [() => Deno.symlinkSync(path, "result.json"), () => Deno.linkSync(path, "result.json")]) {
    try {
      try { Deno.removeSync("result.json"); } catch (_) { /* absent */ }
      plant();
      console.log("planted");
      break;
    } catch (e) {
      console.log("plant refused: " + e);
    }
  }
  return undefined;
}`,
	attacktest.DumpEnv: `export function main(marker: string) {
  try {
    console.log(JSON.stringify(Deno.env.toObject()));
  } catch (e) {
    console.log("env dump refused: " + e);
  }
  console.log("WM_JOB_ID=" + Deno.env.get("WM_JOB_ID"));
  for (const name of ["VANE_ATTACK_CANARY", "PATH", "HOME", "DENO_DIR"]) {
    try { console.log(name + "=" + Deno.env.get(name)); } catch (e) { console.log(name + ": " + e); }
  }
  const environs = ["/proc/self/environ", "/proc/1/environ"];
  try {
    for (const e of Deno.readDirSync("/proc")) if (/^[0-9]+$/.test(e.name)) environs.push("/proc/" + e.name + "/environ");
  } catch (e) {
    console.log("/proc listing refused: " + e);
  }
  for (const p of environs) {
    try { console.log(p + ": " + Deno.readTextFileSync(p).replaceAll("\0", "\n")); } catch (e) { console.log(p + ": " + e); }
  }
}`,
	attacktest.Connect: `export async function main(marker: string, host: string, port: string) {
  const conn = await Deno.connect({ hostname: host, port: Number(port) });
  conn.close();
  return "connected";
}`,
	attacktest.Flood: `export function main(marker: string) {
  const chunk = new Uint8Array(1 << 20).fill(120);
  for (let i = 0; i < 1024; i++) {
    let off = 0;
    while (off < chunk.length) off += Deno.stdout.writeSync(chunk.subarray(off));
  }
  return "flooded";
}`,
	attacktest.Background: `export function main(marker: string) {
  try {
    const child = new Deno.Command("/bin/bash", { args: ["-c", "exec -a " + marker + " sleep 1000"], stdin: "null", stdout: "null", stderr: "null", detached: true }).spawn();
    child.unref();
    console.log("spawned a background sleep");
  } catch (e) {
    console.log("spawn refused: " + e);
  }
  // What Deno itself could leave behind: a timer keeping the event loop alive.
  setInterval(() => {}, 1000);
  console.log("left");
  return "left";
}`,
	attacktest.FillDisk: `export function main(marker: string) {
  const chunk = new Uint8Array(16 << 20).fill(48);
  for (let i = 0; ; i++) {
    Deno.writeFileSync("fill-" + i, chunk);
  }
}`,
	attacktest.NestedNamespace: `export function main(marker: string) {
  // Deno has no unshare(2): it would need a subprocess or FFI, both refused.
  try {
    const out = new Deno.Command("/usr/bin/unshare", { args: ["-U", "true"] }).outputSync();
    if (out.success) return "created";
    console.log("refused: unshare exited " + out.code);
  } catch (e) {
    console.log("refused: " + e);
  }
  try {
    const libc = Deno.dlopen("libc.so.6", { unshare: { parameters: ["i32"], result: "i32" } });
    if (libc.symbols.unshare(0x10000000) === 0) return "created";
    console.log("refused: unshare(CLONE_NEWUSER) failed");
  } catch (e) {
    console.log("refused: " + e);
  }
  return "refused";
}`,
	attacktest.WriteOutside: `export function main(marker: string, path: string) {
  Deno.writeTextFileSync(path, "planted by a job");
  return "written";
}`,
	attacktest.WriteViaSymlink: `export function main(marker: string, path: string) {
  try {
    Deno.symlinkSync(path, "w");
    Deno.writeTextFileSync("w", "planted by a job");
    return "written";
  } catch (e) {
    console.log("write through a symlink refused: " + e);
  }
  Deno.writeTextFileSync(path, "planted by a job");
  return "written";
}`,
	// Deno's --allow-read refuses /proc/self/fd (listing and reading through
	// it) on its own; the script tries every route anyway, guessing the
	// descriptor numbers it cannot list, and counts the refusals.
	attacktest.InheritedFDs: `export function main(marker: string, name: string) {
  const fds: string[] = [];
  try {
    for (const e of Deno.readDirSync("/proc/self/fd")) fds.push(e.name);
    fds.sort((a, b) => Number(a) - Number(b));
  } catch (e) {
    console.log("listing /proc/self/fd refused: " + e);
  }
  console.log("fds: " + (fds.length > 0 ? fds.join(" ") : "(not listed; trying 0-63)"));
  const ns = fds.length > 0 ? fds : Array.from({ length: 64 }, (_, i) => String(i));
  for (const n of fds) {
    try { console.log("fd " + n + " -> " + Deno.readLinkSync("/proc/self/fd/" + n)); } catch (_) { /* refused */ }
  }
  let tried = 0, got = 0;
  const refused = new Map<string, number>();
  let sample = "";
  for (const dir of ["/proc/self/fd", "/proc/" + Deno.pid + "/fd", "/proc/1/fd"]) {
    for (const n of ns) {
      for (let up = 0; up <= 4; up++) {
        for (const rest of [name, "tmp/" + name, "var/tmp/" + name]) {
          const p = dir + "/" + n + "/" + "../".repeat(up) + rest;
          tried++;
          try {
            const text = Deno.readTextFileSync(p);
            got++;
            console.log("read " + p + ": " + text);
          } catch (e) {
            const kind = e instanceof Error ? e.name : String(e);
            refused.set(kind, (refused.get(kind) ?? 0) + 1);
            if (sample === "") sample = String(e);
          }
        }
      }
    }
  }
  console.log("tried " + tried + " paths through descriptors, read " + got + "; refused: " + JSON.stringify(Object.fromEntries(refused)) + "; first refusal: " + sample);
  console.log("scanned");
  return "scanned";
}`,
}

// TestAttacks runs the sandbox's attack suite with Deno jobs in the jail.
func TestAttacks(t *testing.T) {
	attacktest.Run(t, attacktest.Harness{
		Language: vane.LangDeno,
		// An APIAddr, as vane always has: the API forwarder's directory
		// descriptor (an O_PATH of the sandbox's state directory, outside
		// the jail's root) is then handed to every jail's init, which the
		// inherited_fds attack aims at. Nothing listens there: no attack
		// needs the API.
		New:  func(tb testing.TB) jobrt.Executor { return MustNewJailedDeno(tb, "127.0.0.1:1") },
		Code: attackCode,
	})
}

// TestAttacks_NoJail runs the same attacks with Deno as a plain subprocess
// (--insecure-no-jail): Deno's permission flags, the clean environment, the
// process group and the memory watchdog must stop them on their own.
func TestAttacks_NoJail(t *testing.T) {
	attacktest.Run(t, attacktest.Harness{
		Language: vane.LangDeno,
		New:      func(tb testing.TB) jobrt.Executor { return MustNewDeno(tb) },
		Code:     attackCode,
	})
}
