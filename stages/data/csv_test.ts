import { join } from "node:path";
import { type CsvOptions, loadCsv } from "./csv.ts";
import { assertDataError, assertEquals, tempDir, writeData } from "./test_fixtures.ts";

const text = (s: string) => new TextEncoder().encode(s);

/** Writes `content` as `name` in a temp folder and loads it. */
async function load(dir: string, name: string, content: string, options: CsvOptions = {}) {
  const path = await writeData(join(dir, name), text(content));
  return { path, ds: await loadCsv(path, options, name) };
}

for (const ext of ["", ".gz"]) {
  const kind = ext ? " (gzip)" : " (raw)";

  Deno.test(`csv: header, label column by name, exact values${kind}`, async () => {
    await using tmp = await tempDir();
    const { path, ds } = await load(
      tmp.dir,
      `a.csv${ext}`,
      "f1,label,f2\n0.5,2,-3\n\n1e2, 0 ,4.25\r\n",
    );
    assertEquals(
      { n: ds.n, dim: ds.dim, classes: ds.classes, channels: ds.channels, source: ds.source },
      { n: 2, dim: 2, classes: 3, channels: 2, source: path },
    );
    assertEquals(ds.x, [0.5, -3, 100, 4.25], "features");
    assertEquals(ds.y, [2, 0], "labels");
  });

  Deno.test(`csv: ragged row names its line${kind}`, async () => {
    await using tmp = await tempDir();
    await assertDataError(
      () => load(tmp.dir, `r.csv${ext}`, "label,a,b\n1,2,3\n\n1,2\n"),
      join(tmp.dir, `r.csv${ext}`),
      "line 4",
      /^expected 3 cells, found 2$/,
    );
  });

  Deno.test(`csv: non-numeric cell names line and column${kind}`, async () => {
    await using tmp = await tempDir();
    await assertDataError(
      () => load(tmp.dir, `n.csv${ext}`, "label,a,b\n1,2,3\n0,abc,3\n"),
      join(tmp.dir, `n.csv${ext}`),
      "line 3, column 2",
      /^not a number: "abc" in column "a"$/,
    );
  });

  Deno.test(`csv: NaN and infinite cells${kind}`, async () => {
    await using tmp = await tempDir();
    const cases: [string, string, RegExp][] = [
      ["1,2,NaN\n", "line 2, column 3", /^NaN value "NaN"/],
      ["1,-inf,2\n", "line 2, column 2", /^infinite value "-inf"/],
      ["1,Infinity,2\n", "line 2, column 2", /^infinite value "Infinity"/],
      ["1,1e39,2\n", "line 2, column 2", /^value "1e39" is outside the float32 range/],
      ["1,,2\n", "line 2, column 2", /^empty cell/],
    ];
    for (const [row, position, problem] of cases) {
      const name = `bad.csv${ext}`;
      await assertDataError(
        () => load(tmp.dir, name, `1,2,3\n${row}`),
        join(tmp.dir, name),
        position,
        problem,
      );
    }
  });

  Deno.test(`csv: bad labels${kind}`, async () => {
    await using tmp = await tempDir();
    for (const label of ["-1", "1.5", "x", "70000"]) {
      const name = `l.csv${ext}`;
      await assertDataError(
        () => load(tmp.dir, name, `label,a\n0,1\n${label},2\n`),
        join(tmp.dir, name),
        "line 3, column 1",
        /^label ".*" is not an integer in 0\.\.65535$/,
      );
    }
  });

  Deno.test(`csv: empty dataset${kind}`, async () => {
    await using tmp = await tempDir();
    await assertDataError(
      () => load(tmp.dir, `h.csv${ext}`, "label,a,b\n\n"),
      join(tmp.dir, `h.csv${ext}`),
      "line 1",
      /^empty dataset: no data rows$/,
    );
    await assertDataError(
      () => load(tmp.dir, `e.csv${ext}`, ""),
      join(tmp.dir, `e.csv${ext}`),
      "line 1",
      /^empty dataset: no data rows$/,
    );
  });
}

Deno.test("csv: no header, label column by index (also negative), header auto and forced", async () => {
  await using tmp = await tempDir();
  const plain = "1,2,3\n4,5,6\n";
  assertEquals((await load(tmp.dir, "p.csv", plain)).ds.y, [1, 4], "default label column 0");
  const last = await load(tmp.dir, "p.csv", plain, { labelColumn: -1 });
  assertEquals([last.ds.y, last.ds.x], [[3, 6], [1, 2, 4, 5]], "label column -1");
  const mid = await load(tmp.dir, "p.csv", plain, { labelColumn: 1, header: false });
  assertEquals([mid.ds.y, mid.ds.x], [[2, 5], [1, 3, 4, 6]], "label column 1");
  // Numeric column names are only a header when told so.
  const forced = await load(tmp.dir, "f.csv", "9,8,7\n1,2,3\n", { header: true });
  assertEquals([forced.ds.n, forced.ds.y], [1, [1]], "forced header");
  const named = await load(tmp.dir, "n.csv", "x,y,class\n1,2,0\n", { labelColumn: "class" });
  assertEquals(named.ds.y, [0], "label column by name");
});

Deno.test("csv: label column errors and csv-parse errors are DataErrors at line", async () => {
  await using tmp = await tempDir();
  const path = join(tmp.dir, "c.csv");
  await assertDataError(
    () => load(tmp.dir, "c.csv", "a,b\n1,2\n", { labelColumn: "label" }),
    path,
    "line 1",
    /^no column named "label" \(columns: "a", "b"\)$/,
  );
  await assertDataError(
    () => load(tmp.dir, "c.csv", "1,2\n", { labelColumn: "label" }),
    path,
    "line 1",
    /has no header row/,
  );
  await assertDataError(
    () => load(tmp.dir, "c.csv", "1,2\n", { labelColumn: 5 }),
    path,
    "line 1",
    /^label column 5 does not exist: rows have 2 cells$/,
  );
  await assertDataError(
    () => load(tmp.dir, "c.csv", '1,2\n\n3,"4\n5,6\n'),
    path,
    "line 3", // where the quote opens, not the end of the file that csv-parse names
    /^a quote opens here and is never closed$/,
  );
  const binary = await writeData(path, new Uint8Array([0x31, 0x2c, 0x32, 0x0a, 0x33, 0x2c, 0xff]));
  await assertDataError(() => loadCsv(binary, {}, "c"), path, "encoding", /^not UTF-8 text/);
});

Deno.test("csv: a test file must match its train file's width", async () => {
  await using tmp = await tempDir();
  const path = await writeData(join(tmp.dir, "test.csv"), text("label,a\n1,2\n"));
  await assertDataError(
    () => loadCsv(path, {}, "t", 3),
    path,
    "line 1",
    /^expected 3 cells as in the training file, found 2$/,
  );
});

Deno.test("csv: corrupt gzip, and a .gz name on plain text, are DataErrors without a line", async () => {
  await using tmp = await tempDir();
  const rows = Array.from({ length: 2000 }, (_, i) => `${i % 7},${i},${(i * 37) % 101}`).join("\n");
  const path = await writeData(join(tmp.dir, "big.csv.gz"), text(`label,a,b\n${rows}\n`));
  const gz = await Deno.readFile(path);
  gz[Math.floor(gz.length / 2)] ^= 0xff;
  await Deno.writeFile(path, gz);
  await assertDataError(
    () => loadCsv(path, {}, "g"),
    path,
    "gzip data",
    /^corrupt or truncated \(.+\)$/,
  );
  const fake = join(tmp.dir, "fake.csv.gz");
  await Deno.writeFile(fake, text("label,a\n1,2\n"));
  await assertDataError(() => loadCsv(fake, {}, "f"), fake, "gzip data", /^corrupt or truncated/);
});
