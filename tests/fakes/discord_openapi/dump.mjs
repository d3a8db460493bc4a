// Writes the JSON Schema of every request body in Discord's API spec, for the fake Discord to validate with.
//
//   node dump.mjs INSTALL_DIR OUT.json   (tests/fakes/discord_spec.py runs it once per machine)
//
// INSTALL_DIR holds node_modules with the exact versions of package.json (`npm ci --prefix INSTALL_DIR`).
// The npm package discord-api-spec (MIT, generated daily from github.com/discord/discord-api-spec) ships the
// schemas as zod; the route -> body table exists only as TypeScript types, so it is read from the .ts file.
import { readFileSync, writeFileSync, renameSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [installDir, outFile] = process.argv.slice(2);
if (!installDir || !outFile) {
  console.error("usage: node dump.mjs INSTALL_DIR OUT.json   (tests/fakes/discord_spec.py runs it once per machine)");
  process.exit(2);
}
const modules = resolve(installDir, "node_modules");
const load = (path) => import(pathToFileURL(join(modules, path)).href);
const z = await load("zod/mini/index.js");
const spec = await load("discord-api-spec/build/discord-api-spec.zod.js");
const version = (name) => JSON.parse(readFileSync(join(modules, name, "package.json"), "utf8")).version;

// Every exported schema under its own name, so the output shares one $defs table (recursive components).
const registry = z.registry();
for (const [name, schema] of Object.entries(spec)) {
  if (name.endsWith("Schema") && schema && typeof schema === "object") registry.add(schema, { id: name.slice(0, -6) });
}
const { schemas } = z.toJSONSchema(registry, {
  io: "input", // what a client may send (defaults optional), not what Discord answers
  target: "draft-2020-12",
  unrepresentable: "any",
  uri: (id) => `#/$defs/${id}`,
});
const defs = {};
for (const [id, schema] of Object.entries(schemas)) {
  const { $schema, $id, ...rest } = schema;
  defs[id] = rest;
}

// The route table: `requestBody?: A | B[] | null;` of each method of each path in `interface Paths`.
const ts = readFileSync(join(modules, "discord-api-spec/build/discord-api-spec.ts"), "utf8");
const paths = ts.slice(ts.indexOf("export interface Paths {"), ts.indexOf("// Paths list"));
const routes = {};
const inline = [];
for (const [, path, block] of paths.matchAll(/\n  "(\/[^"]+)": \{(.*?)\n  \};/gs)) {
  for (const [, method, operation] of block.matchAll(/\n    (get|put|post|patch|delete): \{(.*?)\n    \};/gs)) {
    const key = `${method.toUpperCase()} ${path}`;
    const body = /\n      requestBody\??:\s*(.*?);\n      responses:/s.exec(operation)?.[1].trim();
    routes[key] = bodySchema(body, key);
  }
}

function bodySchema(text, key) {
  if (text === undefined || text === "undefined" || text === "never") return null; // the route takes no body
  const options = [];
  for (const raw of text.split("|").map((part) => part.trim()).filter(Boolean)) {
    const match = /^([A-Za-z0-9_]+)(\[\])?$/.exec(raw);
    if (raw === "null") options.push({ type: "null" });
    else if (match && defs[match[1]]) {
      const ref = { $ref: `#/$defs/${match[1]}` };
      options.push(match[2] ? { type: "array", items: ref } : ref);
    } else {
      inline.push(key); // an inline object type: not translated, the fake then accepts any JSON there
      return true;
    }
  }
  return options.length === 1 ? options[0] : { anyOf: options };
}

// The routes the bot uses must have a real schema, or validation would silently accept anything.
const required = [
  "PUT /applications/{application_id}/commands",
  "PUT /applications/{application_id}/guilds/{guild_id}/commands",
  "POST /channels/{channel_id}/messages",
  "PATCH /channels/{channel_id}/messages/{message_id}",
  "POST /interactions/{interaction_id}/{interaction_token}/callback",
  "POST /webhooks/{webhook_id}/{webhook_token}",
  "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original",
  "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
  "POST /channels/{channel_id}/threads",
  "POST /channels/{channel_id}/messages/{message_id}/threads",
  "POST /users/@me/channels",
];
const bodyless = [
  "GET /channels/{channel_id}/messages/{message_id}",
  "DELETE /channels/{channel_id}/messages/{message_id}",
  "DELETE /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
  "PUT /channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}/@me",
  "DELETE /channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}/@me",
  "GET /users/@me",
  "GET /oauth2/applications/@me",
];
const missing = required.filter((key) => !routes[key] || routes[key] === true);
missing.push(...bodyless.filter((key) => !(key in routes)));
if (missing.length) {
  console.error(`discord-api-spec lacks schemas for: ${missing.join(", ")}`);
  process.exit(1);
}

const out = {
  source: { "discord-api-spec": version("discord-api-spec"), zod: version("zod") },
  untranslated: inline,
  $defs: defs,
  routes,
};
writeFileSync(`${outFile}.tmp`, JSON.stringify(out));
renameSync(`${outFile}.tmp`, outFile); // readers never see half a file
console.error(`wrote ${Object.keys(routes).length} routes, ${Object.keys(defs).length} schemas to ${outFile}`);
