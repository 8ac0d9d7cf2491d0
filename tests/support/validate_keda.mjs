// Validates KEDA objects (a JSON list on stdin) against KEDA's own CRD schemas, as packaged by
// @kubernetes-models/keda (its folder in KEDA_MODELS); prints a JSON list of "<kind>/<name>: <error>", empty when
// all are valid.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const model = async (kind) =>
  (await import(pathToFileURL(join(process.env.KEDA_MODELS, "keda.sh", "v1alpha1", `${kind}.js`))))[kind];
const models = { ScaledObject: await model("ScaledObject"), TriggerAuthentication: await model("TriggerAuthentication") };
const errors = [];
for (const doc of JSON.parse(readFileSync(0, "utf8"))) {
  const Model = models[doc.kind];
  if (!Model) { errors.push(`${doc.kind}/${doc.metadata.name}: no schema for this kind`); continue; }
  try { new Model(doc).validate(); } catch (e) { errors.push(`${doc.kind}/${doc.metadata.name}: ${e.message}`); }
}
console.log(JSON.stringify(errors));
