/** The tool's version, written into checkpoints and summaries. */
export const VERSION = "0.5.0";
