// DuckDB's side of bench/parquet.sh: loads the benchmark rows (from sluice's uncompressed
// file, so both writers get the very same values) into an in-memory table with one
// thread, then times only `COPY ... TO (FORMAT parquet, COMPRESSION <codec>)`.
// Then (untimed) checks that sluice's files in OUTDIR (sluice_*.parquet) hold exactly the
// table's rows. Usage: node bench/parquet_duckdb.mjs SOURCE.parquet OUTDIR codec...
import { createRequire } from 'node:module';
import { readdirSync, statSync } from 'node:fs';
const require = createRequire(new URL('../tests/node/package.json', import.meta.url));
const { DuckDBInstance } = require('@duckdb/node-api');

const [src, outdir, ...codecs] = process.argv.slice(2);
const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
await con.run('SET threads = 1');
await con.run(`CREATE TABLE events AS SELECT * FROM read_parquet('${src}')`);
const n = Number((await con.runAndReadAll('SELECT count(*) FROM events')).getRows()[0][0]);
for (const codec of codecs) {
  const out = `${outdir}/duckdb_${codec}.parquet`;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await con.run(`COPY events TO '${out}' (FORMAT parquet, COMPRESSION ${codec})`);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const c1 = process.cpuUsage(c0);
  console.log(JSON.stringify({ codec, rows: n, seconds: secs, cpu_seconds: (c1.user + c1.system) / 1e6,
                               rows_per_s: Math.round(n / secs), bytes: statSync(out).size }));
}
for (const f of readdirSync(outdir).filter((n) => /^sluice_.*\.parquet$/.test(n))) {
  const other = `read_parquet('${outdir}/${f}')`;
  const diff = async (a, b) =>
    Number((await con.runAndReadAll(`SELECT count(*) FROM (SELECT * FROM ${a} EXCEPT ALL SELECT * FROM ${b})`)).getRows()[0][0]);
  console.log(JSON.stringify({ verify: f, missing: await diff('events', other), extra: await diff(other, 'events') }));
}
