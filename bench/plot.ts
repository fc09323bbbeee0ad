// The growth plot, written as SVG by hand: six small log-log panels, one per growth axis (columns) and figure
// (rows: server CPU per delivery, server memory at the end of the run), floor and pinghub as two lines.

import { medianOf, type PerServer } from "./compare.ts";
import type { GrowthAxis, GrowthPoint, GrowthRun } from "./scenarios/growth.ts";

interface Series {
  xs: number[];
  floor: number[];
  pinghub: number[];
}

const PANEL_W = 240;
const PANEL_H = 150;
const MARGIN = { left: 58, right: 14, top: 28, bottom: 40 };
const CELL_W = MARGIN.left + PANEL_W + MARGIN.right;
const CELL_H = MARGIN.top + PANEL_H + MARGIN.bottom;
const LEGEND_H = 28;
const COLOURS = { floor: "#4477aa", pinghub: "#ee6677" } as const;

const AXES: { axis: GrowthAxis; title: string }[] = [
  { axis: "subscribers", title: "subscribers on one channel" },
  { axis: "channels", title: "channels, one subscriber each" },
  { axis: "size", title: "message size (bytes)" },
];

const FIGURES: { title: string; unit: string; value: (r: GrowthRun) => number }[] = [
  { title: "server CPU per delivery", unit: "ns", value: (r) => r.serverCpuMicrosPerDelivery * 1000 },
  { title: "server RSS at the end, above baseline", unit: "MiB", value: (r) => r.loadedRssBytes / 2 ** 20 },
];

export function renderGrowthSvg(points: { point: GrowthPoint; runs: PerServer<GrowthRun[]> }[]): string {
  const width = CELL_W * AXES.length;
  const height = LEGEND_H + CELL_H * FIGURES.length;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    legend(),
  ];
  FIGURES.forEach((figure, row) => {
    AXES.forEach(({ axis, title }, column) => {
      const chosen = points.filter((p) => p.point.axis === axis);
      const series: Series = {
        xs: chosen.map((p) => p.point.value),
        floor: chosen.map((p) => medianOf(p.runs.floor, figure.value)),
        pinghub: chosen.map((p) => medianOf(p.runs.pinghub, figure.value)),
      };
      const x = column * CELL_W + MARGIN.left;
      const y = LEGEND_H + row * CELL_H + MARGIN.top;
      parts.push(panel(x, y, `${figure.title} (${figure.unit})`, title, series));
    });
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}

function legend(): string {
  return (["floor", "pinghub"] as const)
    .map(
      (kind, i) =>
        `<line x1="${MARGIN.left + i * 110}" y1="14" x2="${MARGIN.left + i * 110 + 24}" y2="14" stroke="${COLOURS[kind]}" stroke-width="2"/>` +
        `<text x="${MARGIN.left + i * 110 + 30}" y="18">${kind}</text>`,
    )
    .join("\n");
}

/** One log-log panel with its frame, decade grid and two lines; (x0, y0) is the plot area's top left. */
function panel(x0: number, y0: number, yTitle: string, xTitle: string, s: Series): string {
  const out: string[] = [];
  const values = [...s.floor, ...s.pinghub].filter((v) => Number.isFinite(v) && v > 0);
  if (s.xs.length === 0 || values.length === 0) return "";
  // Memory can come out at or below zero for small points; a log axis starts at a floor of its own.
  const lowest = Math.max(Math.min(...values), 1e-3);
  const yLo = Math.floor(Math.log10(lowest));
  const yHi = Math.max(Math.ceil(Math.log10(Math.max(...values))), yLo + 1);
  const xLo = Math.log10(Math.min(...s.xs));
  const xHi = Math.max(Math.log10(Math.max(...s.xs)), xLo + 1);
  const px = (v: number) => x0 + ((Math.log10(v) - xLo) / (xHi - xLo)) * PANEL_W;
  const py = (v: number) => y0 + PANEL_H - ((Math.log10(Math.max(v, 10 ** yLo)) - yLo) / (yHi - yLo)) * PANEL_H;

  out.push(`<text x="${x0}" y="${y0 - 10}" font-weight="bold">${escapeXml(yTitle)}</text>`);
  out.push(`<rect x="${x0}" y="${y0}" width="${PANEL_W}" height="${PANEL_H}" fill="none" stroke="#888"/>`);
  for (let d = yLo; d <= yHi; d++) {
    const y = py(10 ** d);
    out.push(`<line x1="${x0}" y1="${y}" x2="${x0 + PANEL_W}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${x0 - 6}" y="${y + 4}" text-anchor="end">${label(10 ** d)}</text>`);
  }
  for (const v of s.xs) {
    const x = px(v);
    out.push(`<line x1="${x}" y1="${y0 + PANEL_H}" x2="${x}" y2="${y0 + PANEL_H + 4}" stroke="#888"/>`);
    out.push(`<text x="${x}" y="${y0 + PANEL_H + 16}" text-anchor="middle">${label(v)}</text>`);
  }
  out.push(`<text x="${x0 + PANEL_W / 2}" y="${y0 + PANEL_H + 32}" text-anchor="middle">${escapeXml(xTitle)}</text>`);
  for (const kind of ["floor", "pinghub"] as const) {
    const pts = s.xs
      .map((v, i) => [v, s[kind][i] as number] as const)
      .filter(([, y]) => Number.isFinite(y))
      .map(([v, y]) => `${px(v).toFixed(1)},${py(y).toFixed(1)}`);
    out.push(`<polyline points="${pts.join(" ")}" fill="none" stroke="${COLOURS[kind]}" stroke-width="2"/>`);
    for (const p of pts) {
      const [cx, cy] = p.split(",");
      out.push(`<circle cx="${cx}" cy="${cy}" r="2.5" fill="${COLOURS[kind]}"/>`);
    }
  }
  return out.join("\n");
}

/** 0.001 … 1, 10, 1k, 64k: short tick labels, powers of 1024 for byte sizes that are powers of two. */
function label(v: number): string {
  if (v >= 1024 && Number.isInteger(Math.log2(v))) return `${v / 1024}Ki`;
  if (v >= 1000) return `${v / 1000}k`;
  if (v >= 1) return String(v);
  return String(Number(v.toPrecision(1)));
}

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;");
}
