#!/usr/bin/env node
// Starts @vercel/cosmosdb-server (a Cosmos DB wire-protocol server, in memory) with one fix applied:
// a point read of a document that does not exist must answer 404 NotFound, as Cosmos DB does; the package
// crashes into a 500 there ("Cannot read properties of undefined"). The handler is patched before the router
// captures it. Usage: node cosmos-server.js --port 8081 [--host 127.0.0.1]
"use strict";
const path = require("path");
const lib = path.join(path.dirname(require.resolve("@vercel/cosmosdb-server/package.json")), "lib");
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
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const host = opt("--host", "127.0.0.1");
const port = parseInt(opt("--port", "8081"), 10);
const server = createHttpServer().listen(port, host, () => {
  console.log(`Cosmos DB wire-protocol server on http://${host}:${port}`);
});
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
