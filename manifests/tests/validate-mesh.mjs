// Validates the service-mesh objects of rendered manifests offline.
//
//   node validate-mesh.mjs FILE.yaml ...
//
// - Istio kinds (networking.istio.io, security.istio.io): the
//   @kubernetes-models/istio validators (required fields, types, enums),
//   then unknown fields are rejected, reading the allowed fields from the same
//   package's TypeScript declarations with the TypeScript compiler
//   (argocd/tests/strict-fields.mjs).
// - Linkerd kinds (policy.linkerd.io): no package ships their schemas, so
//   tests/schemas/linkerd-policy.json (written from the upstream CRDs and the
//   policy controller's types, stricter than both) is applied with ajv.
//
// Other custom groups (cert-manager) are left to validate-crds.mjs and core
// kinds to validate_core.py; a mesh group with a kind or version not listed
// here fails. Prints one line per object and
// "mesh resources: N checked, M failed"; exit 1 when any fails (or none was
// checked), 2 on a usage error. Needs NODE_PATH (scripts/tools.sh env).
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { importDep, requireDep } from "../../argocd/tests/deps.mjs";
import { createStrictChecker } from "../../argocd/tests/strict-fields.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const YAML = requireDep("yaml");
const Ajv = requireDep("ajv").default;

const ISTIO = "@kubernetes-models/istio";
const ISTIO_KINDS = {
  "networking.istio.io/v1/VirtualService": `${ISTIO}/networking.istio.io/v1/VirtualService`,
  "networking.istio.io/v1/DestinationRule": `${ISTIO}/networking.istio.io/v1/DestinationRule`,
  "security.istio.io/v1/PeerAuthentication": `${ISTIO}/security.istio.io/v1/PeerAuthentication`,
};
const MESH_GROUPS = new Set(["networking.istio.io", "security.istio.io", "policy.linkerd.io"]);

const strict = createStrictChecker(
  Object.fromEntries(Object.entries(ISTIO_KINDS).map(([k, rel]) => [k.split("/").pop(), `${rel}.d.ts`])),
);

// A CIDR as Linkerd reads it: an IPv4 or IPv6 address and a prefix length.
function isCidr(value) {
  const [addr, prefix, ...rest] = String(value).split("/");
  const family = net.isIP(addr);
  if (!family || rest.length || prefix === undefined || !/^\d+$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}
const linkerdSchema = JSON.parse(fs.readFileSync(path.join(HERE, "schemas", "linkerd-policy.json"), "utf8"));
const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false });
ajv.addFormat("cidr", isCidr);
const linkerd = Object.fromEntries(
  Object.entries(linkerdSchema.kinds).map(([key, schema]) => [
    key,
    ajv.compile({ ...schema, definitions: linkerdSchema.definitions }),
  ]),
);

async function validate(obj) {
  const key = `${obj.apiVersion}/${obj.kind}`;
  if (ISTIO_KINDS[key]) {
    const errors = [];
    const mod = await importDep(`${ISTIO_KINDS[key]}.js`);
    try {
      new mod[obj.kind](structuredClone(obj)).validate();
    } catch (err) {
      errors.push(`schema: ${err.message}`);
    }
    return errors.concat(strict.check(obj));
  }
  if (linkerd[key]) {
    const check = linkerd[key];
    return check(obj) ? [] : check.errors.map((e) => `schema: ${e.instancePath || "/"} ${e.message}${e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : ""}`);
  }
  return [`no schema for ${key} (known: ${[...Object.keys(ISTIO_KINDS), ...Object.keys(linkerd)].join(", ")})`];
}

async function main() {
  const files = process.argv.slice(2);
  if (!files.length) {
    console.error("usage: validate-mesh.mjs FILE.yaml ...");
    process.exit(2);
  }
  let checked = 0;
  let failed = 0;
  for (const file of files) {
    for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))) {
      const obj = doc.toJS();
      if (!obj?.apiVersion) continue;
      const group = obj.apiVersion.includes("/") ? obj.apiVersion.split("/")[0] : "";
      if (!MESH_GROUPS.has(group)) continue;
      checked++;
      const id = `${file}: ${obj.kind}/${obj.metadata?.name}`;
      const errors = await validate(obj);
      if (errors.length) {
        failed++;
        for (const e of errors) console.log(`FAIL ${id}: ${e}`);
      } else {
        console.log(`ok   ${id}`);
      }
    }
  }
  console.log(`mesh resources: ${checked} checked, ${failed} failed`);
  process.exit(failed || !checked ? 1 : 0);
}

await main();
