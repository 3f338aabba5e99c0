// DuckDB's side of bench/lake.sh: the same normalized events (JSON lines, as the log
// holds them) to date-partitioned Parquet with one thread, timing only the
// `COPY ... TO (FORMAT parquet, PARTITION_BY (event_date))`, in wall and CPU seconds.
// Usage: node bench/lake_duckdb.mjs EVENTS.jsonl OUTDIR codec
import { createRequire } from 'node:module';
const require = createRequire(new URL('../tests/node/package.json', import.meta.url));
const { DuckDBInstance } = require('@duckdb/node-api');

const [src, outdir, codec] = process.argv.slice(2);
const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
await con.run('SET threads = 1');
const cols = `{event_id: 'VARCHAR', timestamp: 'TIMESTAMPTZ', received_at: 'TIMESTAMPTZ',
  channel: 'VARCHAR', platform: 'VARCHAR', event_type: 'VARCHAR', event_category: 'VARCHAR',
  resource_id: 'VARCHAR', resource_title: 'VARCHAR', interaction_target: 'VARCHAR',
  session_id: 'VARCHAR', user_id: 'VARCHAR', device_id: 'VARCHAR', user_agent: 'VARCHAR',
  client_version: 'VARCHAR', interaction_value: 'DOUBLE', interaction_text: 'VARCHAR',
  metadata: 'JSON'}`;
await con.run("SET TimeZone = 'UTC'");
const t0 = process.hrtime.bigint();
const cpu0 = process.cpuUsage();
await con.run(`COPY (SELECT *, CAST(timestamp AS DATE) AS event_date
                    FROM read_json('${src}', format = 'newline_delimited', columns = ${cols}))
               TO '${outdir}' (FORMAT parquet, COMPRESSION ${codec}, PARTITION_BY (event_date))`);
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
const cpuSecs = (cpu.user + cpu.system) / 1e6;
const n = Number((await con.runAndReadAll(
  `SELECT count(*) FROM read_parquet('${outdir}/*/*.parquet')`)).getRows()[0][0]);
console.log(JSON.stringify({ rows: n, seconds: secs, rows_per_s: Math.round(n / secs),
                             rows_per_cpu_s: Math.round(n / cpuSecs) }));
