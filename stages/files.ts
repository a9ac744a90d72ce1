/**
 * Files the trainer writes (summaries, checkpoints) appear whole or not at all.
 *
 * @module
 */

/**
 * The devices an output may name. Deno lets a program with `--allow-write` write no file under
 * `/dev`, so these two are served without opening them: `/dev/null` takes nothing, and
 * `/dev/stderr` is the process's stderr (stdout carries the data, so `/dev/stdout` is no output).
 */
export const OUTPUT_DEVICES: ReadonlySet<string> = new Set(["/dev/null", "/dev/stderr"]);

/**
 * Writes `data` to `path` through a temporary file in the same folder, flushed to disk and
 * then renamed over `path`: a reader (or a crash) never sees a half-written file under the
 * final name. The temporary file is removed if anything fails. A named pipe is written in
 * place; an {@link OUTPUT_DEVICES} path is served as its device.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  if (path === "/dev/null") return;
  if (path === "/dev/stderr") {
    for (let done = 0; done < bytes.length;) done += await Deno.stderr.write(bytes.subarray(done));
    return;
  }
  // A named pipe (`mkfifo`) is written, never replaced.
  const existing = await Deno.stat(path).catch(() => undefined);
  if (existing && !existing.isFile && !existing.isDirectory) {
    await Deno.writeFile(path, bytes);
    return;
  }
  const tmp = `${path}.${Deno.pid}.tmp`;
  try {
    const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
