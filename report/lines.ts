/**
 * Splits a text stream into lines (`\n` or `\r\n`), holding at most one partial line.
 *
 * @module
 */

/** A TransformStream of text chunks into lines, without their line breaks. */
export function lineSplitter(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream<string, string>({
    transform(chunk, controller) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const p of parts) controller.enqueue(p.endsWith("\r") ? p.slice(0, -1) : p);
    },
    flush(controller) {
      if (rest !== "") controller.enqueue(rest.endsWith("\r") ? rest.slice(0, -1) : rest);
    },
  });
}
