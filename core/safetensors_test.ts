import { createRng } from "./prng.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  type SafeTensor,
  SafetensorsError,
} from "./safetensors.ts";

const SRC = "model.safetensors";

function fail(message: string): never {
  throw new Error(message);
}

function assertEq(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual, (_k, v) => typeof v === "bigint" ? `${v}n` : v);
  const e = JSON.stringify(expected, (_k, v) => typeof v === "bigint" ? `${v}n` : v);
  if (a !== e) fail(`${what}: got ${a}, expected ${e}`);
}

/** Throws unless `fn` throws a one-line SafetensorsError starting with SRC containing `fragment`. */
function assertBad(fn: () => unknown, fragment: string): SafetensorsError {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof SafetensorsError)) fail(`expected a SafetensorsError, got ${e}`);
    const m = e.message;
    if (!m.startsWith(`${SRC}: `)) fail(`message does not start with the source: "${m}"`);
    if (/[\r\n]/.test(m)) fail(`message is not one line: "${m}"`);
    if (!m.includes(fragment)) fail(`expected "${fragment}" in "${m}"`);
    return e;
  }
  return fail(`expected a SafetensorsError with "${fragment}"`);
}

/** A file with a hand-written header (space-padded to 8) and `data` as the buffer. */
function rawFile(header: unknown, data: Uint8Array | number = 0): Uint8Array {
  const json = new TextEncoder().encode(
    typeof header === "string" ? header : JSON.stringify(header),
  );
  const buf = typeof data === "number" ? new Uint8Array(data) : data;
  const n = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + n + buf.length).fill(0x20, 8, 8 + n);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(json, 8);
  out.set(buf, 8 + n);
  return out;
}

function sampleTensors(): Map<string, SafeTensor> {
  return new Map<string, SafeTensor>([
    ["w", { dtype: "F32", shape: [2, 3], data: new Float32Array([1, -2, 3.5, 0, 1e-7, -0]) }],
    ["scalar", { dtype: "F64", shape: [], data: new Float64Array([Math.PI]) }],
    ["empty", { dtype: "F32", shape: [0], data: new Float32Array(0) }],
    ["idx", { dtype: "I32", shape: [3], data: new Int32Array([-1, 0, 2147483647]) }],
    ["u", { dtype: "U32", shape: [1, 2], data: new Uint32Array([0, 4294967295]) }],
    ["big", { dtype: "I64", shape: [2], data: new BigInt64Array([-(2n ** 63n), 42n]) }],
    ["mask", { dtype: "U8", shape: [2, 2, 1], data: new Uint8Array([0, 1, 254, 255]) }],
  ]);
}

Deno.test("safetensors: round-trip of several dtypes and shapes, incl. scalar and empty", () => {
  const tensors = sampleTensors();
  const bytes = encodeSafetensors(tensors, {});
  const back = decodeSafetensors(bytes, SRC);
  assertEq([...back.tensors.keys()], [...tensors.keys()], "names in order");
  for (const [name, t] of tensors) {
    const b = back.tensors.get(name)!;
    assertEq(b.dtype, t.dtype, `${name} dtype`);
    assertEq(b.shape, t.shape, `${name} shape`);
    if (b.data.constructor !== t.data.constructor) fail(`${name}: wrong array type`);
    assertEq([...b.data], [...t.data], `${name} data`);
    if (b.data.buffer === bytes.buffer) fail(`${name}: data aliases the input bytes`);
  }
  if (!Object.is(back.tensors.get("w")!.data[5], -0)) fail("-0 not preserved");
  assertEq(back.metadata, {}, "no metadata");
  // Decoding a copy at an odd byte offset still works (alignment does not matter).
  const shifted = new Uint8Array(bytes.length + 1);
  shifted.set(bytes, 1);
  assertEq([...decodeSafetensors(shifted.subarray(1), SRC).tensors.keys()], [
    ...tensors.keys(),
  ], "shifted");
  // Writing what was read gives the same bytes.
  assertEq([...encodeSafetensors(back.tensors, back.metadata)], [...bytes], "re-encode");
});

Deno.test("safetensors: metadata round-trip", () => {
  const metadata = { format: "pt", note: "line1\nline2 ✓", "": "empty key" };
  const t = new Map<string, SafeTensor>([
    ["x", { dtype: "F32", shape: [1], data: new Float32Array([7]) }],
  ]);
  assertEq(decodeSafetensors(encodeSafetensors(t, metadata), SRC).metadata, metadata, "metadata");
  const none = decodeSafetensors(encodeSafetensors(new Map(), { a: "b" }), SRC);
  assertEq(none.tensors.size, 0, "no tensors");
  assertEq(none.metadata, { a: "b" }, "metadata only");
});

Deno.test("safetensors: byte layout of a small example, checked by hand", () => {
  const bytes = encodeSafetensors(
    new Map<string, SafeTensor>([
      ["a", { dtype: "F32", shape: [2], data: new Float32Array([1.5, -2]) }],
      ["b", { dtype: "I64", shape: [1, 1], data: new BigInt64Array([-3n]) }],
      ["c", { dtype: "U8", shape: [3], data: new Uint8Array([9, 8, 7]) }],
    ]),
    { k: "v" },
  );
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  assertEq(n % 8, 0, "header length multiple of 8");
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  const json = '{"__metadata__":{"k":"v"},' +
    '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"I64","shape":[1,1],"data_offsets":[8,16]},' +
    '"c":{"dtype":"U8","shape":[3],"data_offsets":[16,19]}}';
  assertEq(text.trimEnd(), json, "header JSON");
  assertEq(n, Math.ceil(json.length / 8) * 8, "padding is minimal");
  assertEq(text.slice(json.length), " ".repeat(n - json.length), "padding is spaces");
  const d = 8 + n;
  assertEq(bytes.length, d + 19, "file length");
  assertEq(view.getFloat32(d, true), 1.5, "a[0]");
  assertEq(view.getFloat32(d + 4, true), -2, "a[1]");
  assertEq(view.getBigInt64(d + 8, true), -3n, "b[0]");
  assertEq([...bytes.subarray(d + 16)], [9, 8, 7], "c");
});

Deno.test("safetensors: encode rejects invalid tensors", () => {
  const enc = (name: string, t: SafeTensor, meta: Record<string, string> = {}) => () =>
    encodeSafetensors(new Map([[name, t]]), meta);
  const f32 = (shape: number[], n: number): SafeTensor => ({
    dtype: "F32",
    shape,
    data: new Float32Array(n),
  });
  const cases: [() => unknown, string][] = [
    [enc("", f32([1], 1)), "invalid tensor name"],
    [enc("__metadata__", f32([1], 1)), "invalid tensor name"],
    [enc("x", f32([2, 3], 5)), "5 elements do not match shape [2,3]"],
    [enc("x", f32([-1], 0)), "is not non-negative integers"],
    [enc("x", f32([1.5], 1)), "is not non-negative integers"],
    [enc("x", { dtype: "F8", shape: [1], data: new Uint8Array(1) } as unknown as SafeTensor), "F8"],
    [
      enc("x", { dtype: "F64", shape: [1], data: new Float32Array(1) } as unknown as SafeTensor),
      "not the typed array for F64",
    ],
    [enc("x", f32([1], 1), { n: 1 } as unknown as Record<string, string>), "not a string"],
  ];
  for (const [fn, fragment] of cases) {
    let caught: unknown;
    try {
      fn();
    } catch (e) {
      caught = e;
    }
    if (!(caught instanceof SafetensorsError) || !caught.message.includes(fragment)) {
      fail(`expected a SafetensorsError with "${fragment}", got ${caught}`);
    }
  }
});

Deno.test("safetensors: truncation at every point is a SafetensorsError naming the problem", () => {
  const bytes = encodeSafetensors(sampleTensors(), { a: "b" });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  for (let len = 0; len < bytes.length; len++) {
    const cut = bytes.slice(0, len);
    const fragment = len < 9
      ? "not a safetensors file"
      : len < 8 + n
      ? "runs past the end of the file"
      : "past the end of the data";
    assertBad(() => decodeSafetensors(cut, SRC), fragment);
  }
});

Deno.test("safetensors: each malformed file names its problem", () => {
  const f32 = (shape: number[], offsets: unknown) => ({
    dtype: "F32",
    shape,
    data_offsets: offsets,
  });
  const lengthOnly = (n: bigint, total: number) => {
    const b = new Uint8Array(total).fill(0x20);
    new DataView(b.buffer).setBigUint64(0, n, true);
    b[8] = 0x7b; // "{"
    return b;
  };
  const cases: [Uint8Array, string][] = [
    [new Uint8Array(5), "not a safetensors file (5 bytes, too short for a header)"],
    [new TextEncoder().encode("PK\x03\x04 a zip archive"), "a PyTorch .pt/.pth file?"],
    [new TextEncoder().encode("step,epoch\n0,0\n"), "not a safetensors file (no JSON header"],
    [lengthOnly(100n, 50), "header length 100 runs past the end of the file"],
    [lengthOnly(2n ** 64n - 1n, 16), "runs past the end of the file"],
    [rawFile('{"a": '), "header is not valid JSON"],
    [rawFile('{"a":\n\n{'), "header is not valid JSON"],
    [rawFile("[1, 2]"), "not a safetensors file"],
    [rawFile("null"), "not a safetensors file"],
    [
      (() => {
        const b = rawFile('{"x":"\u00e9"}');
        b[8 + 6] = 0xff; // an invalid UTF-8 byte inside the string
        return b;
      })(),
      "header is not valid UTF-8",
    ],
    [rawFile({ __metadata__: { a: 1 } }), '__metadata__ value for "a" is not a string'],
    [rawFile({ __metadata__: ["a"] }), "__metadata__ is not an object"],
    [
      rawFile({ w: { dtype: "F8", shape: [1], data_offsets: [0, 1] } }, 1),
      'tensor "w": unknown dtype "F8"',
    ],
    [rawFile({ w: 3 }), 'tensor "w": entry is not an object'],
    [rawFile({ w: f32([2, -1], [0, 0]) }), 'tensor "w": shape [2,-1] is not an array'],
    [rawFile({ w: f32([1.5], [0, 0]) }), "shape [1.5] is not an array"],
    [rawFile({ w: f32(3 as unknown as number[], [0, 0]) }), "shape 3 is not an array"],
    [rawFile({ w: f32([1], [0]) }, 4), 'tensor "w": data_offsets [0] are not two integers'],
    [rawFile({ w: f32([1], [4, 0]) }, 4), "data_offsets [4,0] are not two integers begin <= end"],
    [rawFile({ w: f32([1], [0, "4"]) }, 4), 'data_offsets [0,"4"] are not two integers'],
    [
      rawFile({ w: f32([2, 3], [0, 20]) }, 20),
      'tensor "w": byte size 20 != shape [2,3] × F32 = 24',
    ],
    [
      rawFile({ w: f32([2], [0, 8]) }, 4),
      'tensor "w": data_offsets [0, 8] past the end of the data (4)',
    ],
    [
      rawFile({ a: f32([2], [0, 8]), b: f32([2], [4, 12]) }, 12),
      'tensor "b" [4, 12] overlaps tensor "a" [0, 8]',
    ],
    [
      rawFile({ a: f32([2], [0, 8]), z: f32([0], [4, 4]) }, 8),
      'tensor "z" [4, 4] overlaps tensor "a" [0, 8]',
    ],
    [
      rawFile({ a: f32([1], [0, 4]), b: f32([1], [8, 12]) }, 12),
      "data bytes [4, 8) not covered by any tensor",
    ],
    [rawFile({ a: f32([1], [4, 8]) }, 8), "data bytes [0, 4) not covered"],
    [rawFile({ a: f32([1], [0, 4]) }, 6), "data bytes [4, 6) not covered"],
    [rawFile({}, 3), "data bytes [0, 3) not covered"],
    [rawFile({ "": f32([0], [0, 0]) }), "empty tensor name"],
    [
      rawFile({ "a\nb": { dtype: "X\nY", shape: [1], data_offsets: [0, 4] } }, 4),
      'tensor "a\\nb": unknown dtype "X\\nY"',
    ],
  ];
  for (const [bytes, fragment] of cases) assertBad(() => decodeSafetensors(bytes, SRC), fragment);
  // Hand-written files that are fine: zero-size tensors anywhere in order, unpadded header.
  const ok = decodeSafetensors(
    rawFile({ b: f32([1], [4, 8]), e: f32([0, 5], [4, 4]), a: f32([1], [0, 4]) }, 8),
    SRC,
  );
  assertEq([...ok.tensors.keys()], ["a", "e", "b"], "ordered by offsets");
  assertEq(ok.tensors.get("e")!.shape, [0, 5], "zero-size shape");
});

Deno.test("safetensors: random byte flips and truncations only ever throw SafetensorsError", () => {
  const rng = createRng(20240607);
  const valid = encodeSafetensors(sampleTensors(), { key: "value" });
  let rejected = 0;
  for (let trial = 0; trial < 3000; trial++) {
    const b = valid.slice();
    const flips = 1 + rng.int(4);
    for (let i = 0; i < flips; i++) {
      // Mostly in the length field and header, where the structure lives.
      const at = rng.next() < 0.8 ? rng.int(Math.min(b.length, 300)) : rng.int(b.length);
      b[at] = rng.next() < 0.5 ? rng.int(256) : b[at] ^ (1 << rng.int(8));
    }
    const input = rng.next() < 0.3 ? b.subarray(0, rng.int(b.length + 1)) : b;
    try {
      decodeSafetensors(input, SRC);
    } catch (e) {
      if (!(e instanceof SafetensorsError)) fail(`trial ${trial}: non-SafetensorsError ${e}`);
      if (!e.message.startsWith(`${SRC}: `) || /[\r\n]/.test(e.message)) {
        fail(`trial ${trial}: bad message "${e.message}"`);
      }
      rejected++;
    }
  }
  if (rejected < 1000) fail(`only ${rejected} of 3000 corrupted files were rejected`);
});
