import { writeFileAtomic } from "./files.ts";

Deno.test("writeFileAtomic: replaces a file whole; writes a device in place, never replacing it", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/out.json`;
  await Deno.writeTextFile(path, "old");
  await writeFileAtomic(path, "new");
  if ((await Deno.readTextFile(path)) !== "new") throw new Error("not replaced");
  const names = [...Deno.readDirSync(dir)].map((e) => e.name);
  if (names.join() !== "out.json") throw new Error(`left behind: ${names}`);
  await writeFileAtomic("/dev/null", "x");
  const info = await Deno.stat("/dev/null");
  if (info.isFile || !info.isCharDevice) throw new Error("/dev/null was replaced by a file");
  await Deno.remove(dir, { recursive: true });
});
