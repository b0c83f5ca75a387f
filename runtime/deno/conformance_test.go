package deno

import (
	"testing"

	"vane"
	jobrt "vane/runtime"
	"vane/runtime/runtimetest"
)

// conformanceCode is the TypeScript of every conformance case.
var conformanceCode = map[runtimetest.Case]string{
	runtimetest.ReturnsObject: `export async function main(name: string, n: number) {
  return { greeting: "hello " + name, n };
}`,
	runtimetest.ReturnsError: `export async function main() {
  throw new Error("boom");
}`,
	runtimetest.Panics: `export function main() {
  const o: any = undefined;
  try { o.x(); } catch (_) { /* not this one */ }
  throw new TypeError("kaboom");
}`,
	runtimetest.PrintsLogs: `export function main() {
  console.log("log-to-stdout");
  console.error("log-to-stderr");
  return "ok";
}`,
	runtimetest.RunsForever: `export function main() {
  console.log("started");
  let x = 0;
  for (;;) { x = (x + 1) % 1000003; }
}`,
	runtimetest.GrowsMemory: `export function main() {
  const keep: Uint8Array[] = [];
  for (;;) { keep.push(new Uint8Array(1 << 20).fill(7)); }
}`,
	runtimetest.PrintsFlood: `export function main() {
  const line = new TextEncoder().encode("x".repeat(1023) + "\n");
  for (let i = 0; i < 100 * 1024; i++) {
    let off = 0;
    while (off < line.length) off += Deno.stdout.writeSync(line.subarray(off));
  }
  return "done";
}`,
	runtimetest.ReadsFile: `export function main(path: string) {
  return Deno.readTextFileSync(path);
}`,
	runtimetest.SharesFiles: `export function main(secret: string, peek: string) {
  Deno.writeTextFileSync("mine.txt", secret);
  let peeked = "";
  try { peeked = Deno.readTextFileSync(peek); } catch (_) { /* expected */ }
  return { peeked };
}`,
	runtimetest.ReadsEnv: `export function main() {
  let secret = "";
  try { secret = Deno.env.get("VANE_RUNTIMETEST_SECRET") ?? ""; } catch (_) { /* NotCapable */ }
  return { job: Deno.env.get("WM_JOB_ID"), secret, greeting: Deno.env.get("VANE_SCRIPT_GREETING") ?? "" };
}`,
	runtimetest.FreshState: `let counter = 0;
export function main() {
  counter++;
  return counter;
}`,
	runtimetest.Preprocessor: `export async function preprocessor(x: string) {
  return { x: "pre " + x };
}
export async function main(x: string) {
  return "main " + x;
}`,
	runtimetest.FetchesURL: `export async function main(url: string) {
  const r = await fetch(url);
  if (!r.ok) throw new Error("status " + r.status);
  return await r.text();
}`,
}

// TestConformance runs the suite with Deno as a plain subprocess (the
// --insecure-no-jail mode: permission flags, clean env, process group).
// Unjailed, nothing could hold Deno to the egress policy, so it keeps its
// own --allow-net list (vane's API): no network.
func TestConformance(t *testing.T) {
	runtimetest.Run(t, runtimetest.Harness{
		Language:     vane.LangDeno,
		New:          func(tb testing.TB) jobrt.Executor { return MustNewDeno(tb) },
		Code:         conformanceCode,
		Preprocessor: true,
	})
}

// TestConformance_Jailed runs the suite with every Deno process in the
// sandbox's jail, the default.
func TestConformance_Jailed(t *testing.T) {
	runtimetest.Run(t, runtimetest.Harness{
		Language:     vane.LangDeno,
		New:          func(tb testing.TB) jobrt.Executor { return MustNewJailedDeno(tb, "") },
		Code:         conformanceCode,
		Preprocessor: true,
		Network:      true,
	})
}
