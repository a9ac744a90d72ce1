/**
 * The data stage's one error type: every problem with the user's data stops the run with a
 * single line that names the file, the position and the problem, before any training starts.
 *
 * @module
 */

/**
 * Bad input data. The message is one line, `<file>: <position>: <problem>`, for example
 * `data/x.csv: line 17: expected 785 cells, found 784`. Positions are `header`, `record N`
 * (0-based, the example's index in its file), `line N` (1-based, as editors count) or
 * `line N, column M` (1-based), a split (`train split`, `held-out split`), or `labels` (the
 * labels as a whole, e.g. only one class).
 */
export class DataError extends Error {
  /** The file or folder the problem is in. */
  readonly file: string;
  /** Where: `header`, `record N`, `line N`, `line N, column M`, a split name, or `labels`. */
  readonly position: string;
  /** What is wrong. */
  readonly problem: string;

  /** Builds the one-line message from its three parts; newlines in any part become spaces. */
  constructor(file: string, position: string, problem: string) {
    const oneLine = (s: string) => s.replace(/\s*[\r\n]+\s*/g, " ");
    super(`${oneLine(file)}: ${oneLine(position)}: ${oneLine(problem)}`);
    this.name = "DataError";
    this.file = file;
    this.position = position;
    this.problem = problem;
  }
}
