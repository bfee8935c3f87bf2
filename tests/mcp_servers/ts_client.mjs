// The official TypeScript SDK client through a toolbox: list tools, call one. argv: url key tool
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, key, tool] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const client = new Client({ name: "ts-sdk-test", version: "1.0.0" });
await client.connect(transport);
const tools = await client.listTools();
const result = await client.callTool({ name: tool, arguments: { a: 2, b: 3 } });
await transport.terminateSession();
await client.close();
console.log(JSON.stringify({ tools: tools.tools.map((t) => t.name), result }));
