/**
 * Files the trainer writes (summaries, checkpoints) appear whole or not at all.
 *
 * @module
 */

/**
 * Writes `data` to `path` through a temporary file in the same folder, flushed to disk and
 * then renamed over `path`: a reader (or a crash) never sees a half-written file under the
 * final name. The temporary file is removed if anything fails. A path that is a device or a
 * pipe is written in place.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  // A device or a pipe (`--summary /dev/stdout`, `/dev/null`) is written, never replaced.
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
