// HERE's own generated blob v2 client (@here/olp-sdk-dataservice-api,
// ObjectStoreApi) against examples/here_server.rs.
//
//   cd tests/here && npm ci && HERE_SERVER=../../target/debug/examples/here_server node --test
//   node tests/here/here_server.test.js --server target/debug/examples/here_server
//
// The test starts the server binary itself (--server PATH, else HERE_SERVER,
// else debug/examples/here_server under $CARGO_TARGET_DIR or ../../target) on a
// free loopback port with a fresh store, drives every route through the
// client's functions with a small RequestBuilder subclass that adds the
// bearer token, and stops the server with SIGINT (it must exit 0), then
// reopens the same store to check that what was acknowledged is there.
//
// Where the generated client cannot say something, the test says it
// through the builder's extra headers (X-HERE-Digest, Content-Encoding,
// X-Correlation-ID: the client has no parameter for them) or, for the
// `range` query parameters and lying Content-Length headers, with plain
// fetch / node:http requests; those places are marked "raw".
//
// One quirk of the generated client, not of the server: putBlobByKey sends
// JSON.stringify(body) with Content-Type application/json, so the object a
// put stores is the JSON text of the string given (its quotes included);
// the checks compare against exactly those bytes. uploadPartByKey sends its
// body as is.

"use strict";

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const crypto = require("node:crypto");
const fs = require("node:fs");
const http = require("node:http");
const os = require("node:os");
const path = require("node:path");
const zlib = require("node:zlib");

const { ObjectStoreApi, RequestBuilder } = require("@here/olp-sdk-dataservice-api");

const MIB = 1 << 20;
const TOKEN = "test-secret-token";
const DEFAULT_TOKEN = "partstore-token";
const LAYER = "maps";
const OTHER = "other";

const serverArg = process.argv.indexOf("--server");
const SERVER = path.resolve(
  (serverArg > 0 && process.argv[serverArg + 1]) ||
    process.env.HERE_SERVER ||
    path.join(process.env.CARGO_TARGET_DIR || path.join(__dirname, "..", "..", "target"), "debug", "examples", "here_server"),
);

// ----- the client's transport --------------------------------------------

/** A non-2xx answer, as the HERE SDK's own request builders throw it. */
class HttpError extends Error {
  constructor(status, headers, text) {
    super(`HTTP ${status}: ${text}`);
    this.status = status;
    this.headers = headers;
    this.text = text;
    try {
      this.body = text ? JSON.parse(text) : undefined;
    } catch {
      this.body = undefined;
    }
  }
}

/**
 * The RequestBuilder the generated functions call: fetch with
 * `Authorization: Bearer TOKEN` (and any extra headers), throwing HttpError
 * on a non-2xx status. `last` is the last response (for its headers).
 */
class BearerRequestBuilder extends RequestBuilder {
  constructor(baseUrl, token, extraHeaders = {}) {
    super(baseUrl);
    this.token = token;
    this.extraHeaders = extraHeaders;
    this.last = undefined;
  }

  /** The same builder with more headers on every request. */
  with(headers) {
    return new BearerRequestBuilder(this.baseUrl, this.token, { ...this.extraHeaders, ...headers });
  }

  async send(url, init = {}) {
    const headers = { ...(init.headers || {}), ...this.extraHeaders };
    if (this.token !== undefined) headers.Authorization = `Bearer ${this.token}`;
    const res = await fetch(url, { ...init, headers });
    this.last = res;
    if (!res.ok) throw new HttpError(res.status, res.headers, await res.text());
    return res;
  }

  async download(url, init) {
    const res = await this.send(url, init);
    const text = await res.text();
    return text ? JSON.parse(text) : undefined;
  }

  async downloadBlob(url, init) {
    return this.send(url, init);
  }
}

// ----- helpers -------------------------------------------------------------

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32c(buf) {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC32C_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return ((c ^ 0xffffffff) >>> 0).toString(16).padStart(8, "0");
}

/** `X-HERE-Digest` values of `buf`, right, for every algorithm. */
function digests(buf) {
  const h = (alg) => crypto.createHash(alg).update(buf).digest("hex");
  return {
    "CRC-32C": `CRC-32C:${crc32c(buf)}`,
    MD5: `MD5:${h("md5")}`,
    SHA1: `SHA1:${h("sha1")}`,
    SHA256: `SHA256:${h("sha256")}`,
  };
}

/** The same digest with its last hex digit changed. */
function wrong(d) {
  const last = d[d.length - 1];
  return d.slice(0, -1) + (last === "0" ? "1" : "0");
}

/** The bytes putBlobByKey stores for a string body. */
function putBytes(s) {
  return Buffer.from(JSON.stringify(s));
}

async function bytesOf(res) {
  return Buffer.from(await res.arrayBuffer());
}

function sameBytes(actual, expected, what) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  assert.ok(actual.equals(expected), `${what}: bytes differ`);
}

const checked = { errors: 0 };

/**
 * Awaits a call that must fail with `status` and, unless the response has
 * no body (HEAD), the error code `code`; checks the error body's shape and
 * that its correlationId is the X-Correlation-ID header.
 */
async function fails(promise, status, code) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected HTTP ${status} ${code || ""}, got success`);
  assert.ok(err instanceof HttpError, `expected an HttpError, got ${err && err.stack}`);
  assert.equal(err.status, status, `status (body: ${err.text})`);
  const cid = err.headers.get("x-correlation-id");
  assert.ok(cid, "X-Correlation-ID on an error");
  if (code !== undefined) {
    const b = err.body;
    assert.ok(b, `a JSON error body, got ${JSON.stringify(err.text)}`);
    assert.deepEqual(Object.keys(b).sort(), ["code", "correlationId", "message", "status", "title"]);
    assert.equal(b.status, status);
    assert.equal(b.code, code, `code (message: ${b.message})`);
    assert.equal(b.correlationId, cid);
    assert.equal(typeof b.title, "string");
    assert.ok(b.title.length > 0);
    assert.equal(typeof b.message, "string");
    assert.equal(err.headers.get("content-type"), "application/json");
  }
  checked.errors++;
  return err;
}

// ----- the server ------------------------------------------------------------

// Servers still running when this process ends (a crash, a kill) go too.
const running = new Set();
process.on("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});

function startServer(args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(SERVER, args, { stdio: ["ignore", "pipe", "inherit"] });
    running.add(proc);
    proc.once("exit", () => running.delete(proc));
    let out = "";
    const onData = (chunk) => {
      out += chunk;
      const m = /^listening on (http:\/\/\S+)$/m.exec(out);
      if (m) {
        proc.stdout.off("data", onData);
        resolve({ proc, url: m[1] });
      }
    };
    proc.stdout.setEncoding("utf8");
    proc.stdout.on("data", onData);
    proc.on("error", reject);
    proc.on("exit", (code, sig) => reject(new Error(`server exited (${code ?? sig}) before listening: ${out}`)));
  });
}

/** SIGINT, and the exit code (null if it had to be killed). */
function stopServer(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      resolve(proc.exitCode);
      return;
    }
    const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    proc.kill("SIGINT");
  });
}

/** A request node:http sends as told (a Content-Length it does not keep). */
function rawRequest(base, method, urlPath, headers, body) {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, method, path: urlPath, headers, agent: false },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode, headers: res.headers, text, body: text ? JSON.parse(text) : undefined });
          req.destroy();
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    if (body !== undefined) {
      req.write(body);
      req.end();
    } else {
      // Headers only: the server must answer without the body.
      req.flushHeaders();
    }
  });
}

// ----- the checks ----------------------------------------------------------------

describe("here_server with HERE's ObjectStoreApi", () => {
  let server;
  let base;
  let api; // a builder with the token
  let storeDir;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "here-test-"));

  // Objects (and a completed upload) later checks read again after a restart.
  const persisted = new Map();
  let completedToken;

  before(async () => {
    storeDir = path.join(tmp, "store");
    // Flags in any order.
    server = await startServer(["--layer", LAYER, "--dir", storeDir, "--token", TOKEN, "--addr", "127.0.0.1:0", "--layer", OTHER]);
    base = server.url;
    api = new BearerRequestBuilder(base, TOKEN);
  });

  after(async () => {
    if (server) await stopServer(server.proc);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  describe("auth", () => {
    it("401 without a token, with a wrong one, and before a 404", async () => {
      const none = new BearerRequestBuilder(base, undefined);
      const bad = new BearerRequestBuilder(base, "not-the-token");
      let e = await fails(ObjectStoreApi.listKeys(none, { layerId: LAYER }), 401, "Unauthorized");
      assert.equal(e.headers.get("www-authenticate"), "Bearer");
      await fails(ObjectStoreApi.listKeys(bad, { layerId: LAYER }), 401, "Unauthorized");
      // An unknown layer, an unknown key, an unknown upload: 401 first.
      await fails(ObjectStoreApi.getBlobByKey(none, { layerId: "nope", key: "k" }), 401, "Unauthorized");
      await fails(ObjectStoreApi.checkKeyExists(bad, { layerId: "nope", key: "k" }), 401);
      await fails(
        ObjectStoreApi.getMultipartUploadStatusByKey(none, { layerId: "nope", multipartToken: "x" }),
        401,
        "Unauthorized",
      );
      await fails(ObjectStoreApi.putBlobByKey(none, { layerId: LAYER, key: "k", body: "x", contentLength: 3 }), 401, "Unauthorized");
      // Nothing was stored.
      await fails(ObjectStoreApi.checkKeyExists(api, { layerId: LAYER, key: "k" }), 404);
    });

    it("every response has X-Correlation-ID; a client's is echoed", async () => {
      const res = await ObjectStoreApi.deleteBlobByKey(api, { layerId: LAYER, key: "nothing/here" });
      assert.equal(res.status, 202);
      const a = res.headers.get("x-correlation-id");
      assert.ok(a && a.length >= 16);
      const res2 = await ObjectStoreApi.deleteBlobByKey(api, { layerId: LAYER, key: "nothing/here" });
      assert.notEqual(res2.headers.get("x-correlation-id"), a);
      const mine = api.with({ "X-Correlation-ID": "my-request-42" });
      const e = await fails(ObjectStoreApi.getBlobByKey(mine, { layerId: LAYER, key: "nothing/here" }), 404, "UnknownKey");
      assert.equal(e.body.correlationId, "my-request-42");
      await ObjectStoreApi.listKeys(mine, { layerId: LAYER });
      assert.equal(mine.last.headers.get("x-correlation-id"), "my-request-42");
    });
  });

  describe("objects", () => {
    it("put, get, head, delete (202 twice), byte-exact", async () => {
      const text = crypto.randomBytes(150_000).toString("base64");
      const stored = putBytes(text);
      const put = await ObjectStoreApi.putBlobByKey(api, {
        layerId: LAYER,
        key: "docs/readme.txt",
        body: text,
        contentLength: stored.length,
      });
      assert.equal(put.status, 200);
      assert.ok(put.headers.get("x-correlation-id"));
      const get = await ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key: "docs/readme.txt" });
      assert.equal(get.status, 200);
      sameBytes(await bytesOf(get), stored, "get");
      assert.equal(get.headers.get("content-type"), "application/json");
      assert.equal(get.headers.get("content-length"), String(stored.length));
      assert.ok(get.headers.get("x-correlation-id"));
      const lm = Date.parse(get.headers.get("last-modified"));
      assert.ok(Math.abs(Date.now() - lm) < 120_000, "Last-Modified is now");
      const head = await ObjectStoreApi.checkKeyExists(api, { layerId: LAYER, key: "docs/readme.txt" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), String(stored.length));
      assert.equal(head.headers.get("content-type"), "application/json");
      assert.equal(head.headers.get("last-modified"), get.headers.get("last-modified"));
      assert.equal((await head.arrayBuffer()).byteLength, 0);

      // Replace (no conflict), then delete.
      const text2 = "second version";
      await ObjectStoreApi.putBlobByKey(api, { layerId: LAYER, key: "docs/readme.txt", body: text2, contentLength: putBytes(text2).length });
      sameBytes(await bytesOf(await ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key: "docs/readme.txt" })), putBytes(text2), "replaced");
      const del = await ObjectStoreApi.deleteBlobByKey(api, { layerId: LAYER, key: "docs/readme.txt" });
      assert.equal(del.status, 202);
      await fails(ObjectStoreApi.checkKeyExists(api, { layerId: LAYER, key: "docs/readme.txt" }), 404);
      await fails(ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key: "docs/readme.txt" }), 404, "UnknownKey");
      assert.equal((await ObjectStoreApi.deleteBlobByKey(api, { layerId: LAYER, key: "docs/readme.txt" })).status, 202);
    });

    it("keys with every allowed character; invalid keys are 400", async () => {
      const key = "x/Az09.[b]=(c){d}_-e";
      const body = "odd key";
      await ObjectStoreApi.putBlobByKey(api, { layerId: LAYER, key, body, contentLength: putBytes(body).length });
      sameBytes(await bytesOf(await ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key })), putBytes(body), "odd key");
      const page = await ObjectStoreApi.listKeys(api, { layerId: LAYER, parent: "x" });
      assert.deepEqual(page.items.map((i) => i.name), [key]);
      await ObjectStoreApi.deleteBlobByKey(api, { layerId: LAYER, key });
      await fails(ObjectStoreApi.putBlobByKey(api, { layerId: LAYER, key: "a b", body: "x", contentLength: 3 }), 400, "InvalidKey");
      await fails(ObjectStoreApi.putBlobByKey(api, { layerId: LAYER, key: "dir/", body: "x", contentLength: 3 }), 400, "InvalidKey");
      await fails(ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key: "a*b" }), 400, "InvalidKey");
    });

    it("Content-Type and Content-Encoding are stored (raw put of gzip bytes)", async () => {
      const plain = crypto.randomBytes(300_000);
      const gz = zlib.gzipSync(plain);
      // raw: the generated putBlobByKey always sends application/json text.
      const res = await fetch(`${base}/layers/${LAYER}/keys/enc/data.bin`, {
        method: "PUT",
        headers: {
          Authorization: `Bearer ${TOKEN}`,
          "Content-Type": "application/x-protobuf",
          "Content-Encoding": "gzip",
          "X-HERE-Digest": digests(gz).SHA256,
        },
        body: gz,
      });
      assert.equal(res.status, 200, await res.text());
      const head = await ObjectStoreApi.checkKeyExists(api, { layerId: LAYER, key: "enc/data.bin" });
      assert.equal(head.headers.get("content-type"), "application/x-protobuf");
      assert.equal(head.headers.get("content-encoding"), "gzip");
      assert.equal(head.headers.get("content-length"), String(gz.length));
      // fetch undoes the gzip the object was stored with.
      const get = await ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key: "enc/data.bin" });
      assert.equal(get.headers.get("content-encoding"), "gzip");
      sameBytes(await bytesOf(get), plain, "gunzipped");
      // Through the client, with the encoding as an extra header.
      const text = "encoded via the client";
      await ObjectStoreApi.putBlobByKey(api.with({ "Content-Encoding": "identity" }), {
        layerId: LAYER,
        key: "enc/identity",
        body: text,
        contentLength: putBytes(text).length,
      });
      const h2 = await ObjectStoreApi.checkKeyExists(api, { layerId: LAYER, key: "enc/identity" });
      assert.equal(h2.headers.get("content-encoding"), "identity");
      persisted.set("enc/data.bin", { size: gz.length, body: plain });
    });

    it("copy with source=KEY: 200, same bytes and type; 404 missing source; 400 with a body", async () => {
      const text = crypto.randomBytes(20_000).toString("hex");
      await ObjectStoreApi.putBlobByKey(api, { layerId: LAYER, key: "copy/src", body: text, contentLength: putBytes(text).length });
      const res = await ObjectStoreApi.putBlobByKey(api, { layerId: LAYER, key: "copy/dst", source: "copy/src", contentLength: 0 });
      assert.equal(res.status, 200);
      const got = await ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key: "copy/dst" });
      sameBytes(await bytesOf(got), putBytes(text), "copy");
      assert.equal(got.headers.get("content-type"), "application/json");
      // The copy keeps the source's type and encoding.
      await ObjectStoreApi.putBlobByKey(api, { layerId: LAYER, key: "copy/enc", source: "enc/data.bin", contentLength: 0 });
      const h = await ObjectStoreApi.checkKeyExists(api, { layerId: LAYER, key: "copy/enc" });
      assert.equal(h.headers.get("content-type"), "application/x-protobuf");
      assert.equal(h.headers.get("content-encoding"), "gzip");
      // The copy is independent of its source.
      await ObjectStoreApi.deleteBlobByKey(api, { layerId: LAYER, key: "copy/src" });
      sameBytes(await bytesOf(await ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key: "copy/dst" })), putBytes(text), "copy after source deleted");
      await fails(
        ObjectStoreApi.putBlobByKey(api, { layerId: LAYER, key: "copy/x", source: "copy/missing", contentLength: 0 }),
        404,
        "UnknownKey",
      );
      await fails(
        ObjectStoreApi.putBlobByKey(api, { layerId: LAYER, key: "copy/x", source: "copy/dst", body: "x", contentLength: 3 }),
        400,
        "InvalidArgument",
      );
      await fails(ObjectStoreApi.checkKeyExists(api, { layerId: LAYER, key: "copy/x" }), 404);
    });

    it("X-HERE-Digest on put: every algorithm right (200) and wrong (400, nothing stored)", async () => {
      const text = crypto.randomBytes(70_000).toString("base64");
      const stored = putBytes(text);
      const d = digests(stored);
      for (const [alg, value] of Object.entries(d)) {
        const key = `digest/put-${alg}`;
        await fails(
          ObjectStoreApi.putBlobByKey(api.with({ "X-HERE-Digest": wrong(value) }), { layerId: LAYER, key, body: text, contentLength: stored.length }),
          400,
          "DigestMismatch",
        );
        await fails(ObjectStoreApi.checkKeyExists(api, { layerId: LAYER, key }), 404);
        const ok = await ObjectStoreApi.putBlobByKey(api.with({ "X-HERE-Digest": value }), {
          layerId: LAYER,
          key,
          body: text,
          contentLength: stored.length,
        });
        assert.equal(ok.status, 200, alg);
        sameBytes(await bytesOf(await ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key })), stored, alg);
      }
      // Lowercase names and hyphen variants are accepted too.
      const alt = `sha-256:${d.SHA256.split(":")[1].toUpperCase()}`;
      await ObjectStoreApi.putBlobByKey(api.with({ "X-HERE-Digest": alt }), { layerId: LAYER, key: "digest/alt", body: text, contentLength: stored.length });
      // A wrong digest leaves the old object in place.
      await fails(
        ObjectStoreApi.putBlobByKey(api.with({ "X-HERE-Digest": wrong(digests(putBytes("new")).MD5) }), {
          layerId: LAYER,
          key: "digest/alt",
          body: "new",
          contentLength: putBytes("new").length,
        }),
        400,
        "DigestMismatch",
      );
      sameBytes(await bytesOf(await ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key: "digest/alt" })), stored, "kept");
      await fails(
        ObjectStoreApi.putBlobByKey(api.with({ "X-HERE-Digest": "CRC32:1234" }), { layerId: LAYER, key: "digest/bad", body: "x", contentLength: 3 }),
        400,
        "InvalidDigest",
      );
      await fails(
        ObjectStoreApi.putBlobByKey(api.with({ "X-HERE-Digest": d.MD5 }), { layerId: LAYER, key: "digest/copy", source: "digest/alt", contentLength: 0 }),
        400,
        "InvalidArgument",
      );
    });

    it("413 for a put declared over 192 MiB (raw: before any byte is sent)", async () => {
      const r = await rawRequest(base, "PUT", `/layers/${LAYER}/keys/huge`, {
        Authorization: `Bearer ${TOKEN}`,
        "Content-Length": String(192 * MIB + 1),
      });
      assert.equal(r.status, 413);
      assert.equal(r.body.code, "ObjectTooLarge");
      assert.equal(r.body.status, 413);
      assert.equal(r.body.correlationId, r.headers["x-correlation-id"]);
      await fails(ObjectStoreApi.checkKeyExists(api, { layerId: LAYER, key: "huge" }), 404);
    });

    it("411 for a chunked put (raw: no Content-Length)", async () => {
      const r = await rawRequest(
        base,
        "PUT",
        `/layers/${LAYER}/keys/chunked`,
        { Authorization: `Bearer ${TOKEN}`, "Transfer-Encoding": "chunked" },
        "some bytes",
      );
      assert.equal(r.status, 411);
      assert.equal(r.body.code, "LengthRequired");
    });
  });

  describe("multipart", () => {
    const key = "tiles/big.bin";
    const p1 = crypto.randomBytes(5 * MIB);
    const p2old = crypto.randomBytes(5 * MIB);
    const p2 = crypto.randomBytes(5 * MIB);
    const p3 = crypto.randomBytes(123_457);
    const whole = Buffer.concat([p1, p2, p3]);
    const CT = "application/octet-stream";
    let token;
    const ids = {};

    const upload = (b, n, body, extra = {}) =>
      ObjectStoreApi.uploadPartByKey(b, {
        layerId: LAYER,
        multipartToken: token,
        partNumber: n,
        body,
        contentLength: body.length,
        contentType: CT,
        ...extra,
      });

    it("start → 200 {multipartToken}", async () => {
      const r = await ObjectStoreApi.startMultipartUploadByKey(api, { layerId: LAYER, key, body: { contentType: CT } });
      assert.deepEqual(Object.keys(r), ["multipartToken"]);
      token = r.multipartToken;
      assert.ok(/^[0-9a-f]{32}$/.test(token), token);
      assert.ok(api.last.headers.get("x-correlation-id"));
    });

    it("parts 5 MiB + 5 MiB + short, part 2 overwritten → new id", async () => {
      ids[1] = (await upload(api, 1, p1)).id;
      ids.old2 = (await upload(api, 2, p2old)).id;
      ids[3] = (await upload(api, 3, p3)).id;
      ids[2] = (await upload(api, 2, p2)).id;
      assert.notEqual(ids[2], ids.old2);
      for (const v of [ids[1], ids[2], ids[3]]) assert.equal(typeof v, "string");
      assert.equal(new Set([ids[1], ids[2], ids[3]]).size, 3);
    });

    it("status of an open upload is 404", async () => {
      await fails(ObjectStoreApi.getMultipartUploadStatusByKey(api, { layerId: LAYER, multipartToken: token }), 404, "UploadNotCompleted");
    });

    it("part errors: wrong Content-Type, part number, 413, digests", async () => {
      await fails(upload(api, 4, Buffer.from("x"), { contentType: "text/plain" }), 400, "ContentTypeMismatch");
      // The generated client's default Content-Type is application/json.
      await fails(upload(api, 4, Buffer.from("x"), { contentType: undefined }), 400, "ContentTypeMismatch");
      await fails(upload(api, 0, Buffer.from("x")), 400, "InvalidPartNumber");
      await fails(upload(api, 10001, Buffer.from("x")), 400, "InvalidPartNumber");
      await fails(upload(api, "two", Buffer.from("x")), 400, "InvalidPartNumber");
      // raw: a declared length over 96 MiB fails before the body is read.
      const r = await rawRequest(base, "POST", `/layers/${LAYER}/keysMultipart/${token}/parts?partNumber=4`, {
        Authorization: `Bearer ${TOKEN}`,
        "Content-Type": CT,
        "Content-Length": String(96 * MIB + 1),
      });
      assert.equal(r.status, 413);
      assert.equal(r.body.code, "PartTooLarge");
      assert.equal(r.body.correlationId, r.headers["x-correlation-id"]);
      // raw: a client that waits (Expect: 100-continue) gets the 400 without
      // sending its body.
      const w = await rawRequest(base, "POST", `/layers/${LAYER}/keysMultipart/${token}/parts?partNumber=4`, {
        Authorization: `Bearer ${TOKEN}`,
        "Content-Type": "text/plain",
        "Content-Length": String(5 * MIB),
        Expect: "100-continue",
      });
      assert.equal(w.status, 400);
      assert.equal(w.body.code, "ContentTypeMismatch");
    });

    it("stale part id at complete → 400, the upload stays open", async () => {
      const parts = [
        { id: ids[1], number: 1 },
        { id: ids.old2, number: 2 },
        { id: ids[3], number: 3 },
      ];
      await fails(ObjectStoreApi.completeMultipartUploadByKey(api, { layerId: LAYER, multipartToken: token, body: { parts } }), 400, "StalePartId");
      await fails(ObjectStoreApi.getMultipartUploadStatusByKey(api, { layerId: LAYER, multipartToken: token }), 404, "UploadNotCompleted");
      await fails(ObjectStoreApi.checkKeyExists(api, { layerId: LAYER, key }), 404);
      // Still accepting parts.
      ids[3] = (await upload(api, 3, p3)).id;
      // Other complete-time rules, each leaving it open.
      await fails(
        ObjectStoreApi.completeMultipartUploadByKey(api, {
          layerId: LAYER,
          multipartToken: token,
          body: { parts: [{ id: ids[1], number: 1 }, { id: ids[3], number: 3 }] },
        }),
        400,
        "PartsNotConsecutive",
      );
      await fails(
        ObjectStoreApi.completeMultipartUploadByKey(api, {
          layerId: LAYER,
          multipartToken: token,
          body: { parts: [{ id: ids[1], number: 1 }, { id: ids[1], number: 1 }] },
        }),
        400,
        "PartListedTwice",
      );
      await fails(
        ObjectStoreApi.completeMultipartUploadByKey(api, {
          layerId: LAYER,
          multipartToken: token,
          body: { parts: [{ id: ids[1], number: 1 }, { id: ids[2], number: 4 }] },
        }),
        400,
        "PartNotUploaded",
      );
      await fails(
        ObjectStoreApi.completeMultipartUploadByKey(api, {
          layerId: LAYER,
          multipartToken: token,
          body: { parts: [{ id: ids[1], number: "one" }] },
        }),
        400,
        "InvalidArgument",
      );
    });

    it("complete with the current ids → 204; object byte-exact; status completed", async () => {
      const parts = [
        { id: ids[3], number: 3 },
        { id: ids[1], number: 1 },
        { id: ids[2], number: 2 },
      ];
      const res = await ObjectStoreApi.completeMultipartUploadByKey(api, { layerId: LAYER, multipartToken: token, body: { parts } });
      assert.equal(res.status, 204);
      const get = await ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key });
      assert.equal(get.status, 200);
      assert.equal(get.headers.get("content-type"), CT);
      sameBytes(await bytesOf(get), whole, "multipart object");
      const st = await ObjectStoreApi.getMultipartUploadStatusByKey(api, { layerId: LAYER, multipartToken: token });
      assert.deepEqual(st, { status: "completed" });
      persisted.set(key, { size: whole.length, body: whole });
      completedToken = token;
    });

    it("after completion: part, complete and cancel are 400 UploadCompleted", async () => {
      await fails(upload(api, 1, p1), 400, "UploadCompleted");
      await fails(ObjectStoreApi.completeMultipartUploadByKey(api, { layerId: LAYER, multipartToken: token, body: {} }), 400, "UploadCompleted");
      await fails(ObjectStoreApi.cancelMultipartUploadByKey(api, { layerId: LAYER, multipartToken: token }), 400, "UploadCompleted");
    });

    it("ranges across part boundaries: 206 with Content-Range, byte-exact", async () => {
      const size = whole.length;
      const cases = [
        [`bytes=${5 * MIB - 10}-${5 * MIB + 9}`, 5 * MIB - 10, 5 * MIB + 10],
        [`bytes=${10 * MIB - 1}-${10 * MIB}`, 10 * MIB - 1, 10 * MIB + 1],
        [`bytes=${MIB}-${11 * MIB}`, MIB, size], // clamped to the end
        [`bytes=${4 * MIB}-`, 4 * MIB, size],
        ["bytes=-200000", size - 200000, size],
        [`bytes=-${size + 5}`, 0, size],
        ["bytes=0-0", 0, 1],
      ];
      for (const [range, start, end] of cases) {
        const res = await ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key, range });
        assert.equal(res.status, 206, range);
        assert.equal(res.headers.get("content-range"), `bytes ${start}-${end - 1}/${size}`, range);
        assert.equal(res.headers.get("content-length"), String(end - start), range);
        sameBytes(await bytesOf(res), whole.subarray(start, end), range);
      }
      // raw: the `range` query parameter (the client sends only the header).
      const q = await fetch(`${base}/layers/${LAYER}/keys/${key}?range=${encodeURIComponent(`bytes=${5 * MIB - 3}-${5 * MIB + 2}`)}`, {
        headers: { Authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(q.status, 206);
      assert.equal(q.headers.get("content-range"), `bytes ${5 * MIB - 3}-${5 * MIB + 2}/${size}`);
      sameBytes(await bytesOf(q), whole.subarray(5 * MIB - 3, 5 * MIB + 3), "range query");
    });

    it("416 for ranges the object cannot satisfy, with Content-Range: bytes */size", async () => {
      const size = whole.length;
      for (const range of [`bytes=${size}-`, `bytes=${size}-${size + 10}`, "bytes=5-4", "bytes=-0", "bytes=0-1,3-4", "bytes=abc", "items=0-1"]) {
        const e = await fails(ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key, range }), 416, "InvalidRange");
        assert.equal(e.headers.get("content-range"), `bytes */${size}`, range);
      }
      // Any range of an empty object (raw: the client cannot send an empty body).
      const res = await fetch(`${base}/layers/${LAYER}/keys/empty`, {
        method: "PUT",
        headers: { Authorization: `Bearer ${TOKEN}`, "Content-Length": "0" },
      });
      assert.equal(res.status, 200);
      const g = await ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key: "empty" });
      assert.equal(g.status, 200);
      assert.equal((await bytesOf(g)).length, 0);
      assert.equal(g.headers.get("content-type"), "application/octet-stream");
      const e = await fails(ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key: "empty", range: "bytes=0-" }), 416, "InvalidRange");
      assert.equal(e.headers.get("content-range"), "bytes */0");
    });

    it("copy parts from aligned ranges of an existing object (source=, Range)", async () => {
      const size = whole.length;
      const r = await ObjectStoreApi.startMultipartUploadByKey(api, { layerId: LAYER, key: "tiles/copied.bin", body: { contentType: "application/x-tile" } });
      const t = r.multipartToken;
      // Part 1: 5 MiB from 1 MiB on (across source parts 1 and 2);
      // the client's Content-Type (application/json) is not checked in copy mode.
      const copy = (b, n, range, extra = {}) =>
        ObjectStoreApi.uploadPartByKey(b, { layerId: LAYER, multipartToken: t, partNumber: n, source: key, range, ...extra });
      const a = await copy(api, 1, `bytes=${MIB}-${6 * MIB - 1}`);
      // Part 2: from 6 MiB to the end (across source parts 2 and 3), with
      // its right SHA-256; a wrong one first.
      const rest = whole.subarray(6 * MIB);
      await fails(copy(api.with({ "X-HERE-Digest": wrong(digests(rest).SHA256) }), 2, `bytes=${6 * MIB}-${size - 1}`), 400, "DigestMismatch");
      const b = await copy(api.with({ "X-HERE-Digest": digests(rest).SHA256 }), 2, `bytes=${6 * MIB}-${size - 1}`);
      assert.notEqual(a.id, b.id);
      // Range errors of copies.
      await fails(copy(api, 3, `bytes=${MIB + 1}-${2 * MIB}`), 416, "CopyRangeUnaligned");
      await fails(copy(api, 3, `bytes=${MIB}-`), 416, "CopyRangeOpen");
      await fails(copy(api, 3, "bytes=-100"), 416, "CopyRangeOpen");
      await fails(copy(api, 3, undefined), 416, "CopyRangeOpen");
      await fails(copy(api, 3, `bytes=0-${size}`), 416, "InvalidRange");
      await fails(
        ObjectStoreApi.uploadPartByKey(api, { layerId: LAYER, multipartToken: t, partNumber: 3, source: "tiles/none", range: "bytes=0-9" }),
        404,
        "UnknownKey",
      );
      // No body allowed in copy mode.
      await fails(
        ObjectStoreApi.uploadPartByKey(api, { layerId: LAYER, multipartToken: t, partNumber: 3, source: key, range: "bytes=0-9", body: Buffer.from("abc"), contentLength: 3 }),
        400,
        "InvalidArgument",
      );
      // raw: the `range` query parameter of copy mode, for part 3.
      const q = await fetch(`${base}/layers/${LAYER}/keysMultipart/${t}/parts?partNumber=3&source=${encodeURIComponent(key)}&range=${encodeURIComponent(`bytes=0-${MIB - 1}`)}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(q.status, 200);
      assert.ok((await q.json()).id);
      // Complete with every current part (no body): part 2 (4 MiB + a bit)
      // is not last, so too small.
      await fails(ObjectStoreApi.completeMultipartUploadByKey(api, { layerId: LAYER, multipartToken: t }), 400, "PartTooSmall");
      // Drop part 3 by naming 1 and 2 only.
      const res = await ObjectStoreApi.completeMultipartUploadByKey(api, {
        layerId: LAYER,
        multipartToken: t,
        body: { parts: [{ id: a.id, number: 1 }, { id: b.id, number: 2 }] },
      });
      assert.equal(res.status, 204);
      const got = await ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key: "tiles/copied.bin" });
      assert.equal(got.headers.get("content-type"), "application/x-tile");
      sameBytes(await bytesOf(got), whole.subarray(MIB), "copied parts");
    });

    it("X-HERE-Digest on parts: every algorithm right and wrong; the part keeps its old bytes", async () => {
      const r = await ObjectStoreApi.startMultipartUploadByKey(api, {
        layerId: LAYER,
        key: "digest/multi",
        body: { contentType: CT, contentEncoding: "identity" },
      });
      token = r.multipartToken;
      const algs = ["CRC-32C", "MD5", "SHA1", "SHA256"];
      const bodies = [crypto.randomBytes(5 * MIB), crypto.randomBytes(5 * MIB), crypto.randomBytes(5 * MIB), crypto.randomBytes(1000)];
      for (let i = 0; i < algs.length; i++) {
        const d = digests(bodies[i])[algs[i]];
        const n = i + 1;
        await fails(upload(api.with({ "X-HERE-Digest": wrong(d) }), n, bodies[i]), 400, "DigestMismatch");
        await upload(api.with({ "X-HERE-Digest": d }), n, bodies[i]);
        // A wrong digest on a replacement leaves the part as it was.
        const other = crypto.randomBytes(bodies[i].length);
        await fails(upload(api.with({ "X-HERE-Digest": wrong(digests(other)[algs[i]]) }), n, other), 400, "DigestMismatch");
      }
      await fails(upload(api.with({ "X-HERE-Digest": "SHA256:xyz" }), 1, bodies[0]), 400, "InvalidDigest");
      // `parts: []` means every current part.
      const res = await ObjectStoreApi.completeMultipartUploadByKey(api, { layerId: LAYER, multipartToken: token, body: { parts: [] } });
      assert.equal(res.status, 204);
      const get = await ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key: "digest/multi" });
      assert.equal(get.headers.get("content-encoding"), "identity");
      sameBytes(await bytesOf(get), Buffer.concat(bodies), "digest-checked parts");
    });

    it("parts uploaded in parallel", async () => {
      const r = await ObjectStoreApi.startMultipartUploadByKey(api, { layerId: LAYER, key: "parallel.bin", body: { contentType: CT } });
      token = r.multipartToken;
      const bodies = [0, 1, 2, 3].map((i) => crypto.randomBytes(i < 3 ? 6 * MIB : 777));
      const got = await Promise.all(bodies.map((b, i) => upload(api, i + 1, b)));
      const parts = got.map((p, i) => ({ id: p.id, number: i + 1 })).reverse();
      await ObjectStoreApi.completeMultipartUploadByKey(api, { layerId: LAYER, multipartToken: token, body: { parts } });
      sameBytes(await bytesOf(await ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key: "parallel.bin" })), Buffer.concat(bodies), "parallel");
    });

    it("non-last parts too small or not a MiB multiple → 400", async () => {
      const r = await ObjectStoreApi.startMultipartUploadByKey(api, { layerId: LAYER, key: "small", body: { contentType: CT } });
      token = r.multipartToken;
      await upload(api, 1, Buffer.from("aaaa"));
      await upload(api, 2, Buffer.from("bbbb"));
      await fails(ObjectStoreApi.completeMultipartUploadByKey(api, { layerId: LAYER, multipartToken: token }), 400, "PartTooSmall");
      await upload(api, 1, crypto.randomBytes(5 * MIB + 1));
      await fails(ObjectStoreApi.completeMultipartUploadByKey(api, { layerId: LAYER, multipartToken: token }), 400, "PartNotMibMultiple");
      assert.equal((await ObjectStoreApi.cancelMultipartUploadByKey(api, { layerId: LAYER, multipartToken: token })).status, 202);
    });

    it("cancel → 202; the token is then unknown and the key unchanged", async () => {
      const r = await ObjectStoreApi.startMultipartUploadByKey(api, { layerId: LAYER, key, body: { contentType: CT } });
      token = r.multipartToken;
      await upload(api, 1, Buffer.from("replacement that never lands"));
      const res = await ObjectStoreApi.cancelMultipartUploadByKey(api, { layerId: LAYER, multipartToken: token });
      assert.equal(res.status, 202);
      await fails(ObjectStoreApi.getMultipartUploadStatusByKey(api, { layerId: LAYER, multipartToken: token }), 404, "UnknownUpload");
      await fails(ObjectStoreApi.cancelMultipartUploadByKey(api, { layerId: LAYER, multipartToken: token }), 404, "UnknownUpload");
      await fails(upload(api, 2, Buffer.from("x")), 404, "UnknownUpload");
      await fails(ObjectStoreApi.completeMultipartUploadByKey(api, { layerId: LAYER, multipartToken: token }), 404, "UnknownUpload");
      sameBytes(await bytesOf(await ObjectStoreApi.getBlobByKey(api, { layerId: LAYER, key })), whole, "unchanged after cancel");
    });

    it("unknown and malformed tokens, and a token of another layer → 404", async () => {
      const r = await ObjectStoreApi.startMultipartUploadByKey(api, { layerId: LAYER, key: "elsewhere", body: { contentType: CT } });
      for (const [layerId, t] of [
        [LAYER, "0123456789abcdef0123456789abcdef"],
        [LAYER, "not-a-token"],
        [OTHER, r.multipartToken],
      ]) {
        const p = { layerId, multipartToken: t };
        await fails(ObjectStoreApi.getMultipartUploadStatusByKey(api, p), 404, "UnknownUpload");
        await fails(ObjectStoreApi.cancelMultipartUploadByKey(api, p), 404, "UnknownUpload");
        await fails(ObjectStoreApi.completeMultipartUploadByKey(api, { ...p, body: {} }), 404, "UnknownUpload");
        await fails(
          ObjectStoreApi.uploadPartByKey(api, { ...p, partNumber: 1, body: Buffer.from("x"), contentLength: 1, contentType: CT }),
          404,
          "UnknownUpload",
        );
      }
      await ObjectStoreApi.cancelMultipartUploadByKey(api, { layerId: LAYER, multipartToken: r.multipartToken });
    });

    it("start errors: no contentType, bad JSON, bad key → 400", async () => {
      await fails(ObjectStoreApi.startMultipartUploadByKey(api, { layerId: LAYER, key: "k", body: {} }), 400, "InvalidArgument");
      await fails(ObjectStoreApi.startMultipartUploadByKey(api, { layerId: LAYER, key: "k", body: undefined }), 400, "InvalidArgument");
      await fails(ObjectStoreApi.startMultipartUploadByKey(api, { layerId: LAYER, key: "k", body: { contentType: 7 } }), 400, "InvalidArgument");
      await fails(ObjectStoreApi.startMultipartUploadByKey(api, { layerId: LAYER, key: "bad key", body: { contentType: CT } }), 400, "InvalidKey");
    });
  });

  describe("listing", () => {
    const keys = ["a.bin", "dir/sub/y", "dir/x1", "dir/x2", "dir2/q", "z"];
    const bodies = new Map();

    before(async () => {
      for (const k of keys) {
        const text = `content of ${k} `.repeat(k.length);
        bodies.set(k, putBytes(text));
        await ObjectStoreApi.putBlobByKey(api, { layerId: OTHER, key: k, body: text, contentLength: putBytes(text).length });
      }
    });

    it("hierarchical: objects with size and RFC 3339 lastModified, prefixes without", async () => {
      const page = await ObjectStoreApi.listKeys(api, { layerId: OTHER });
      assert.deepEqual(
        page.items.map((i) => [i.name, i.type]),
        [
          ["a.bin", "object"],
          ["dir", "commonPrefix"],
          ["dir2", "commonPrefix"],
          ["z", "object"],
        ],
      );
      assert.equal(page.pageToken, undefined);
      for (const item of page.items) {
        if (item.type === "object") {
          assert.equal(item.size, bodies.get(item.name).length);
          assert.match(item.lastModified, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
          assert.ok(Math.abs(Date.parse(item.lastModified) - Date.now()) < 120_000);
        } else {
          assert.deepEqual(Object.keys(item).sort(), ["name", "type"]);
        }
      }
      for (const parent of ["dir", "dir/"]) {
        const sub = await ObjectStoreApi.listKeys(api, { layerId: OTHER, parent, deep: "false" });
        assert.deepEqual(
          sub.items.map((i) => [i.name, i.type]),
          [
            ["dir/sub", "commonPrefix"],
            ["dir/x1", "object"],
            ["dir/x2", "object"],
          ],
        );
      }
      const empty = await ObjectStoreApi.listKeys(api, { layerId: OTHER, parent: "nothing" });
      assert.deepEqual(empty.items, []);
    });

    it("deep: every object, no prefixes", async () => {
      const page = await ObjectStoreApi.listKeys(api, { layerId: OTHER, deep: "true" });
      assert.deepEqual(page.items.map((i) => i.name), keys);
      assert.ok(page.items.every((i) => i.type === "object"));
      const sub = await ObjectStoreApi.listKeys(api, { layerId: OTHER, parent: "dir", deep: "true" });
      assert.deepEqual(sub.items.map((i) => i.name), ["dir/sub/y", "dir/x1", "dir/x2"]);
    });

    it("paging: pageToken present exactly while items remain; every item once", async () => {
      for (const deep of ["true", "false"]) {
        const full = (await ObjectStoreApi.listKeys(api, { layerId: OTHER, deep })).items.map((i) => i.name);
        for (const limit of [1, 2, 3, full.length, full.length + 1]) {
          const seen = [];
          let pageToken;
          let pages = 0;
          do {
            const page = await ObjectStoreApi.listKeys(api, { layerId: OTHER, deep, limit, pageToken });
            assert.ok(page.items.length <= limit);
            seen.push(...page.items.map((i) => i.name));
            pageToken = page.pageToken;
            pages++;
            assert.equal(pageToken !== undefined, seen.length < full.length, `deep=${deep} limit=${limit} page ${pages}`);
          } while (pageToken !== undefined && pages < 100);
          assert.deepEqual(seen, full, `deep=${deep} limit=${limit}`);
        }
      }
    });

    it("bad limit, page token, deep → 400", async () => {
      await fails(ObjectStoreApi.listKeys(api, { layerId: OTHER, limit: 0 }), 400, "InvalidListLimit");
      await fails(ObjectStoreApi.listKeys(api, { layerId: OTHER, limit: 1001 }), 400, "InvalidListLimit");
      await fails(ObjectStoreApi.listKeys(api, { layerId: OTHER, limit: "ten" }), 400, "InvalidListLimit");
      await fails(ObjectStoreApi.listKeys(api, { layerId: OTHER, pageToken: "deadbeef" }), 400, "InvalidPageToken");
      // A token of another listing.
      const page = await ObjectStoreApi.listKeys(api, { layerId: OTHER, limit: 1 });
      await fails(ObjectStoreApi.listKeys(api, { layerId: OTHER, limit: 1, deep: "true", pageToken: page.pageToken }), 400, "InvalidPageToken");
      await fails(ObjectStoreApi.listKeys(api, { layerId: OTHER, deep: "maybe" }), 400, "InvalidArgument");
    });
  });

  describe("unknown layer → 404 on every route", () => {
    it("all ten functions", async () => {
      const l = "no-such-layer";
      const t = "0123456789abcdef0123456789abcdef";
      const calls = [
        () => ObjectStoreApi.putBlobByKey(api, { layerId: l, key: "k", body: "x", contentLength: 3 }),
        () => ObjectStoreApi.putBlobByKey(api, { layerId: l, key: "k", source: "s", contentLength: 0 }),
        () => ObjectStoreApi.getBlobByKey(api, { layerId: l, key: "k" }),
        () => ObjectStoreApi.getBlobByKey(api, { layerId: l, key: "k", range: "garbage" }),
        () => ObjectStoreApi.deleteBlobByKey(api, { layerId: l, key: "k" }),
        () => ObjectStoreApi.startMultipartUploadByKey(api, { layerId: l, key: "k", body: { contentType: "a/b" } }),
        () => ObjectStoreApi.startMultipartUploadByKey(api, { layerId: l, key: "k", body: {} }),
        () => ObjectStoreApi.uploadPartByKey(api, { layerId: l, multipartToken: t, partNumber: 1, body: Buffer.from("x"), contentLength: 1 }),
        () => ObjectStoreApi.uploadPartByKey(api, { layerId: l, multipartToken: t, partNumber: 0, source: "s", range: "bytes=0-" }),
        () => ObjectStoreApi.completeMultipartUploadByKey(api, { layerId: l, multipartToken: t, body: { parts: [] } }),
        () => ObjectStoreApi.getMultipartUploadStatusByKey(api, { layerId: l, multipartToken: t }),
        () => ObjectStoreApi.cancelMultipartUploadByKey(api, { layerId: l, multipartToken: t }),
        () => ObjectStoreApi.listKeys(api, { layerId: l, limit: 0 }),
      ];
      for (const call of calls) await fails(call(), 404, "UnknownLayer");
      await fails(ObjectStoreApi.checkKeyExists(api, { layerId: l, key: "k" }), 404);
    });

    it("routes that do not exist → 404 JSON, wrong method → 405 JSON", async () => {
      await fails(api.downloadBlob(`${base}/layers/${LAYER}/nothing`, { method: "GET" }), 404, "UnknownRoute");
      await fails(api.downloadBlob(`${base}/layers/${LAYER}/keys/k`, { method: "PATCH" }), 405, "MethodNotAllowed");
    });
  });

  describe("shutdown and restart", () => {
    it("SIGINT exits 0; the store reopens with what was acknowledged (default token)", async (t) => {
      const code = await stopServer(server.proc);
      assert.equal(code, 0, "clean exit on SIGINT");
      server = await startServer(["--dir", storeDir, "--addr", "127.0.0.1:0"]);
      base = server.url;
      const again = new BearerRequestBuilder(base, DEFAULT_TOKEN);
      await fails(ObjectStoreApi.listKeys(new BearerRequestBuilder(base, TOKEN), { layerId: LAYER }), 401, "Unauthorized");
      assert.equal(persisted.size, 2);
      for (const [key, { size, body }] of persisted) {
        const head = await ObjectStoreApi.checkKeyExists(again, { layerId: LAYER, key });
        assert.equal(head.headers.get("content-length"), String(size), key);
        // (fetch gunzips the gzip-encoded one.)
        sameBytes(await bytesOf(await ObjectStoreApi.getBlobByKey(again, { layerId: LAYER, key })), body, key);
      }
      const list = await ObjectStoreApi.listKeys(again, { layerId: OTHER, deep: "true" });
      assert.equal(list.items.length, 6);
      const st = await ObjectStoreApi.getMultipartUploadStatusByKey(again, { layerId: LAYER, multipartToken: completedToken });
      assert.deepEqual(st, { status: "completed" });
      assert.equal(await stopServer(server.proc), 0, "clean exit on SIGINT");
      server = undefined;
      assert.ok(checked.errors > 100, `error responses checked: ${checked.errors}`);
      t.diagnostic(`error responses checked: ${checked.errors}`);
    });
  });
});
