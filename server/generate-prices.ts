import { writeFileSync } from 'node:fs';
import { buildPriceTable, installedVersion } from './price-catalogue';

/**
 * `npm run prices`: writes lib/cost/prices.json from the pinned price package, with the prices in effect today. The
 * proxy imports only that small file (the package's whole catalogue is ~800 KB: far too much for the edge bundle),
 * and tests/cost.test.ts fails when the file and the package disagree, so a bump of the package comes with a rerun.
 */
const asOf = process.argv[2] ?? new Date().toISOString().slice(0, 10);
const table = buildPriceTable(installedVersion(), asOf);
const out = new URL('../lib/cost/prices.json', import.meta.url);
writeFileSync(out, `${JSON.stringify(table, null, 2)}\n`);
console.log(
  `Wrote ${Object.keys(table.models).length} model prices to lib/cost/prices.json (${table.source}).`,
);
