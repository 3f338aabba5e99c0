// Reads a Parquet file with two independent readers, for tests/integration/test_parquet.py.
// Usage: node read_parquet.mjs FILE SCHEMA_JSON. Prints one JSON object:
//   duckdb:    { rows, metadata (parquet_metadata()), schema (parquet_schema()), types }
//   hyparquet: { rows, doubleStats: per row group, per DOUBLE column {min, max, nulls} }
// Values are normalized so Python can compare them exactly: integers, timestamps (micros)
// and dates (days) as decimal strings, doubles as strings that parse back to the same
// double ("nan", "inf", "-0"...), BYTE_ARRAY without a logical type as upper-case hex.
import { readFileSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';

const [file, schemaJson] = process.argv.slice(2);
const schema = JSON.parse(schemaJson);
const q = (s) => `'${s.replaceAll("'", "''")}'`;
const ident = (s) => `"${s.replaceAll('"', '""')}"`;

function duckExpr(c) {
  const col = ident(c.name);
  if (c.logical === 'TIMESTAMP') return `CAST(epoch_us(${col}) AS VARCHAR)`;
  if (c.logical === 'DATE') return `CAST(${col} - DATE '1970-01-01' AS VARCHAR)`;
  if (c.type === 'BYTE_ARRAY' && !['STRING', 'JSON'].includes(c.logical)) return `hex(${col})`;
  if (c.type === 'BOOLEAN') return col;
  return `CAST(${col} AS VARCHAR)`;
}

const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
const all = async (sql) => (await con.runAndReadAll(sql)).getRowObjectsJson();
const src = `read_parquet(${q(file)})`;
const exprs = schema.map((c, i) => `${duckExpr(c)} AS c${i}`).join(', ');
const duckRows = (await con.runAndReadAll(`SELECT ${exprs} FROM ${src}`)).getRowsJson();
const duck = {
  rows: duckRows,
  metadata: await all(`SELECT * FROM parquet_metadata(${q(file)})`),
  schema: await all(`SELECT * FROM parquet_schema(${q(file)})`),
  types: await all(`DESCRIBE SELECT * FROM ${src}`),
};

function dbl(v) {
  if (Number.isNaN(v)) return 'nan';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  if (Object.is(v, -0)) return '-0';
  return String(v);
}

const hex = (b) => Buffer.from(b).toString('hex').toUpperCase();
const buf = readFileSync(file);
const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
const hyRows = await parquetReadObjects({
  file: ab,
  compressors,
  utf8: false, // strings arrive as bytes: decoded below per logical type
  parsers: {
    timestampFromMicroseconds: (us) => String(us),
    dateFromDays: (d) => String(d),
    jsonFromBytes: (b) => new TextDecoder('utf-8', { fatal: true }).decode(b),
    stringFromBytes: (b) => new TextDecoder('utf-8', { fatal: true }).decode(b),
  },
});
const meta = parquetMetadata(ab);
const doubleStats = meta.row_groups.map((rg) => Object.fromEntries(rg.columns
  .filter((cc) => cc.meta_data.type === 'DOUBLE')
  .map((cc) => {
    const st = cc.meta_data.statistics ?? {};
    const b = (v) => (v === undefined ? null : dbl(Number(v)));
    return [cc.meta_data.path_in_schema.join('.'),
            { min: b(st.min_value), max: b(st.max_value), nulls: String(st.null_count) }];
  })));
const hyparquet = {
  doubleStats,
  rows: hyRows.map((r) => schema.map((c) => {
    const v = r[c.name];
    if (v === null || v === undefined) return null;
    if (c.type === 'DOUBLE') return dbl(v);
    if (c.type === 'BYTE_ARRAY' && !['STRING', 'JSON'].includes(c.logical))
      return typeof v === 'string' ? hex(new TextEncoder().encode(v)) : hex(v);
    if (c.type === 'BOOLEAN') return v;
    return String(v);
  })),
};
console.log(JSON.stringify({ duckdb: duck, hyparquet }, (k, v) =>
  typeof v === 'bigint' ? v.toString() : v));
