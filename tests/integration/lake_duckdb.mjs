// DuckDB (@duckdb/node-api, from tests/node) as the lake tests' independent reader: reads
// a JSON array of SQL queries on stdin and prints a JSON array with each query's rows (as
// objects, values in DuckDB's JSON form), or {"error": message} for a query that failed.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
const require = createRequire(new URL('../node/package.json', import.meta.url));
const { DuckDBInstance } = require('@duckdb/node-api');

const queries = JSON.parse(readFileSync(0, 'utf8'));
const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
const out = [];
for (const q of queries) {
  try {
    const r = await con.runAndReadAll(q);
    out.push(r.getRowObjectsJson());
  } catch (e) {
    out.push({ error: String(e.message || e) });
  }
}
process.stdout.write(JSON.stringify(out));
