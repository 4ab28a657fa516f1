/**
 * Draws the benchmark's results as a small SVG (grouped bars, one panel per workload), written
 * by the bench itself so the README can show a picture with no charting dependency. Values are
 * printed on the bars; a panel where lower is better uses a log scale, since one slow peer
 * would otherwise flatten every other bar.
 */

export interface ChartPanel {
  title: string;
  unit: string;
  lowerIsBetter: boolean;
  /** One group of bars per size (subscribers), one bar per server. */
  groups: Array<{ label: string; bars: Array<{ name: string; value: number | undefined }> }>;
}

export interface ChartSpec {
  title: string;
  servers: readonly string[];
  panels: ChartPanel[];
}

const WIDTH = 760;
const PANEL_HEIGHT = 210;
const TOP = 64;
const LEFT = 16;
const PLOT_HEIGHT = 140;
/** Ours stands out; the peers are told apart by shade, one colour each for up to nine servers. */
const COLORS = ['#e8590c', '#1971c2', '#74b816', '#868e96', '#be4bdb', '#f59f00', '#0ca678', '#c2255c', '#5f3dc4'];
/** The legend wraps onto as many rows as it needs, this wide an entry. */
const LEGEND_ENTRY = 130;
const LEGEND_PER_ROW = Math.floor((WIDTH - 2 * LEFT) / LEGEND_ENTRY);

export function chartSvg(spec: ChartSpec): string {
  // A server with no figure in any panel (nchan runs neither fan-out nor latency) has no legend entry.
  const servers = spec.servers.filter((name) =>
    spec.panels.some((panel) => panel.groups.some((group) => group.bars.some((bar) => bar.name === name && bar.value !== undefined))),
  );
  const top = TOP + (Math.ceil(servers.length / LEGEND_PER_ROW) - 1) * 18;
  const height = top + spec.panels.length * PANEL_HEIGHT + 8;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="${LEFT}" y="22" font-size="15" font-weight="bold">${escape(spec.title)}</text>`,
  ];
  servers.forEach((name, index) => {
    const x = LEFT + (index % LEGEND_PER_ROW) * LEGEND_ENTRY;
    const y = 34 + Math.floor(index / LEGEND_PER_ROW) * 18;
    parts.push(`<rect x="${x}" y="${y}" width="12" height="12" fill="${color(index)}"/>`, `<text x="${x + 17}" y="${y + 10}">${escape(name)}</text>`);
  });
  spec.panels.forEach((panel, index) => parts.push(drawPanel(panel, servers, top + index * PANEL_HEIGHT)));
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

function drawPanel(panel: ChartPanel, servers: readonly string[], top: number): string {
  const values = panel.groups.flatMap((group) => group.bars.map((bar) => bar.value ?? 0)).filter((value) => value > 0);
  const max = Math.max(1, ...values);
  const min = Math.min(max, ...values);
  // Log scale from a power of ten below the smallest value, when lower is better.
  const floor = 10 ** Math.floor(Math.log10(min));
  const scale = (value: number) =>
    panel.lowerIsBetter
      ? (Math.log10(value / floor) / Math.log10((max * 1.05) / floor)) * PLOT_HEIGHT
      : (value / (max * 1.05)) * PLOT_HEIGHT;
  const baseline = top + 24 + PLOT_HEIGHT;
  const parts = [
    `<text x="${LEFT}" y="${top + 12}" font-size="13" font-weight="bold">${escape(panel.title)}${panel.lowerIsBetter ? ' (lower is better, log scale)' : ''}</text>`,
    `<line x1="${LEFT}" y1="${baseline}" x2="${WIDTH - LEFT}" y2="${baseline}" stroke="#333"/>`,
  ];
  const groupWidth = (WIDTH - 2 * LEFT) / Math.max(1, panel.groups.length);
  panel.groups.forEach((group, groupIndex) => {
    const barWidth = Math.min(56, (groupWidth - 24) / servers.length);
    const start = LEFT + groupIndex * groupWidth + (groupWidth - barWidth * servers.length) / 2;
    servers.forEach((name, serverIndex) => {
      const value = group.bars.find((bar) => bar.name === name)?.value;
      if (value === undefined) return;
      const barHeight = Math.max(1, scale(value));
      const x = start + serverIndex * barWidth;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${(baseline - barHeight).toFixed(1)}" width="${(barWidth - 3).toFixed(1)}" height="${barHeight.toFixed(1)}" fill="${color(serverIndex)}"><title>${escape(`${name}: ${format(value)} ${panel.unit}`)}</title></rect>`,
        `<text x="${(x + (barWidth - 3) / 2).toFixed(1)}" y="${(baseline - barHeight - 3).toFixed(1)}" text-anchor="middle" font-size="9">${format(value)}</text>`,
      );
    });
    parts.push(`<text x="${(LEFT + (groupIndex + 0.5) * groupWidth).toFixed(1)}" y="${baseline + 15}" text-anchor="middle">${escape(group.label)} subscribers</text>`);
  });
  return parts.join('\n');
}

function color(index: number): string {
  return COLORS[index % COLORS.length]!;
}

/** 1,234,567 → 1.23M, 45,600 → 45.6k, 12.3 → 12.3: short enough to sit on a bar. */
function format(value: number): string {
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (value >= 1e4) return `${Math.round(value / 1e3)}k`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
