#!/usr/bin/env node
// Starts @vercel/cosmosdb-server (a Cosmos DB wire-protocol server, in memory) with two additions:
// 1. a point read of a document that does not exist answers 404 NotFound, as Cosmos DB does (the package crashes
//    into a 500 there); the handler is patched before the router captures it;
// 2. with --data FILE, databases, containers and documents survive a restart: a JSON snapshot is written (atomically)
//    when the data changed, every second and on SIGTERM/SIGINT, and loaded at start. Restored documents get new
//    ETags, as after any server-side rewrite.
// Usage: node cosmos-server.js --port 8081 [--host 127.0.0.1] [--data .local/cosmos.json]
"use strict";
const fs = require("fs");
const path = require("path");
const lib = path.join(path.dirname(require.resolve("@vercel/cosmosdb-server/package.json")), "lib");
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const dataFile = opt("--data", null);

const strip = (d) => Object.fromEntries(Object.entries(d).filter(([k]) => !k.startsWith("_")));
function snapshot(account) {
  return [...account.databases._data.values()].map((db) => ({
    db: strip(db.read()),
    colls: [...db.collections._data.values()].map((c) => ({
      coll: strip(c.read()),
      docs: [...c.documents._data.values()].map((d) => strip(d.read())),
    })),
  }));
}
function restore(account, snap) {
  for (const { db, colls } of snap) {
    account.databases.create(db);
    for (const { coll, docs } of colls) {
      account.database(db.id).collections.create(coll);
      const target = account.database(db.id).collection(coll.id);
      for (const doc of docs) target.documents.create(doc);
    }
  }
}
// The package creates its Account lazily on the first request; hook the class to restore and to keep a handle.
const accountModule = require(path.join(lib, "account"));
const BaseAccount = accountModule.default;
let liveAccount = null;
accountModule.default = class PersistentAccount extends BaseAccount {
  constructor(...a) {
    super(...a);
    liveAccount = this;
    if (dataFile && fs.existsSync(dataFile)) restore(this, JSON.parse(fs.readFileSync(dataFile, "utf8")));
  }
};
let lastWritten = null;
function save() {
  if (!dataFile || !liveAccount) return;
  const text = JSON.stringify(snapshot(liveAccount));
  if (text === lastWritten) return;
  fs.writeFileSync(dataFile + ".tmp", text);
  fs.renameSync(dataFile + ".tmp", dataFile);
  lastWritten = text;
}
const readDocument = require(path.join(lib, "handler", "read-document"));
const original = readDocument.default;
readDocument.default = (account, req, res, params) => {
  const collection = account.database(params.dbId).collection(params.collId);
  try {
    return original(account, req, res, params);
  } catch (err) {
    if (err instanceof TypeError && collection.read()) {
      res.statusCode = 404;
      return { code: "NotFound", message: "Entity with the specified id does not exist in the system." };
    }
    throw err;
  }
};
const { createHttpServer } = require(lib);
const host = opt("--host", "127.0.0.1");
const port = parseInt(opt("--port", "8081"), 10);
// keepAlive: the library answers `Connection: close` by default, so every Cosmos call of a local gateway opened a
// new TCP connection (~1 ms of CPU per call; 90 of 120 catalog queries in bench) — the real service keeps them
// alive. The idle timeout outlives aiohttp's 15 s pool timeout: the client always closes an idle connection first,
// never reusing one the server has just dropped.
const server = createHttpServer({ keepAlive: true });
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.listen(port, host, () => {
  console.log(`Cosmos DB wire-protocol server on http://${host}:${port}` + (dataFile ? ` (data: ${dataFile})` : ""));
  // Touch the server once so the Account (and the snapshot restore) exists before the first client call.
  require("http").get({ host, port, path: "/" }, (r) => r.resume()).on("error", () => {});
});
if (dataFile) setInterval(save, 1000).unref();
const stop = () => {
  save();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
