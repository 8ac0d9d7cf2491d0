// Compiles every JSON Schema named on the command line with ajv 8 (JSON Schema 2020-12) in strict mode, which
// refuses unknown keywords and formats, with what the README tells subscribers to declare (x-personal-data,
// ajv-formats) unless --undeclared; validates the JSON messages on stdin ({"schema": file, "message": {...}})
// against them. Prints a JSON list of errors, empty when all is well.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(join(process.env.AJV_MODULES, "noop.js"));
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;
const args = process.argv.slice(2);
const declared = !args.includes("--undeclared");
const ajv = new Ajv2020({ strict: true, allErrors: true });
if (declared) {
  ajv.addKeyword({ keyword: "x-personal-data", schemaType: "boolean" });
  addFormats(ajv);
}
const errors = [];
const validators = {};
for (const file of args.filter((arg) => !arg.startsWith("--"))) {
  try { validators[file] = ajv.compile(JSON.parse(readFileSync(file, "utf8"))); }
  catch (e) { errors.push(`${file}: ${e.message}`); }
}
const input = readFileSync(0, "utf8").trim();
for (const { schema, message } of input ? JSON.parse(input) : []) {
  const validate = validators[schema];
  if (validate && !validate(message)) errors.push(`${schema} ${message.id}: ${ajv.errorsText(validate.errors)}`);
}
console.log(JSON.stringify(errors));
