/**
 * `npm run bench [-- name]`: benchmarks print ratios against baselines
 * measured in the same run. None exist yet: the benchmark issue adds upload,
 * memory, concurrency and API benchmarks here.
 */
const benchmarks: Record<string, () => Promise<void>> = {};

const wanted = process.argv.slice(2);
const names = wanted.length > 0 ? wanted : Object.keys(benchmarks);
if (names.length === 0) {
  console.log('bxchange bench: no benchmarks yet (see the benchmark issue)');
}
for (const name of names) {
  const bench = benchmarks[name];
  if (bench === undefined) {
    console.error(`bxchange bench: unknown benchmark "${name}"`);
    process.exitCode = 2;
    continue;
  }
  await bench();
}
