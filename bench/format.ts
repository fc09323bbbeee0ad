// Figures as the report and the benchmark's own lines print them. A figure that cannot be computed (0 / 0 or
// x / 0: a smoke run's phase can hold no CPU tick) prints as "–", never as NaN or Infinity.

export const KIB = 1024;

/** A target's figure with its unit; a count (no unit) as a whole number. */
export function figure(v: number, unit: string): string {
  return unit === "" ? int(v) : `${num(v)} ${unit}`;
}

/**
 * A number with `digits` decimals and its unit, or "–" for one that is not a number: a smoke run's figures
 * can be 0 / 0 or x / 0 (no CPU tick in a phase that short), and nothing reads "NaN" or "Infinity".
 */
export function fixed(v: number, digits: number, unit = ""): string {
  if (!Number.isFinite(v)) return "–";
  return unit === "" ? v.toFixed(digits) : `${v.toFixed(digits)} ${unit}`;
}

export function num(v: number): string {
  if (!Number.isFinite(v)) return "–";
  if (Math.abs(v) >= 1e6) return `${(v / 1e6).toFixed(2)} M`;
  if (Math.abs(v) >= 1e4) return `${(v / 1e3).toFixed(1)} k`;
  return v.toFixed(v < 10 ? 2 : 0);
}

export function int(v: number): string {
  return Number.isFinite(v) ? String(Math.round(v)) : "–";
}

export function ms(v: number): string {
  return Number.isFinite(v) ? `${v.toFixed(v < 10 ? 2 : 1)} ms` : "–";
}

export function micros(v: number): string {
  return fixed(v, 2, "µs");
}

export function micros3(v: number): string {
  return fixed(v, 3, "µs");
}

/** A Redis figure: "–" for 0, which is what a node without Redis shows. */
export function orDash(format: (v: number) => string): (v: number) => string {
  return (v) => (v === 0 ? "–" : format(v));
}

export function signedMs(v: number): string {
  return Number.isFinite(v) ? `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(2)} ms` : "–";
}

export function pct(v: number): string {
  return Number.isFinite(v) ? `${Math.round(v * 100)} %` : "–";
}

export function bytes(n: number): string {
  return n >= KIB ? `${n / KIB} KiB` : `${n} B`;
}
