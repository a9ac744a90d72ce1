/** The tool's version, written into checkpoints and summaries. */
export const VERSION = "0.6.0";
