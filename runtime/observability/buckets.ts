/** `count` log-spaced histogram bucket bounds from `min` to `max` (inclusive). */
export function exponentialBuckets(min: number, max: number, count: number): number[] {
  if (count < 2) return [min];
  const factor = Math.pow(max / min, 1 / (count - 1));
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(Number((min * Math.pow(factor, i)).toPrecision(4)));
  return out;
}
