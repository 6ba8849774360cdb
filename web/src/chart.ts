// A two-line chart of per-second rates, drawn as SVG (no chart library).

export interface Sample {
  /** ms since epoch */
  at: number;
  joins: number;
  promotions: number;
}

const WIDTH = 600;
const HEIGHT = 160;
const PAD = 24;
const SVG_NS = "http://www.w3.org/2000/svg";

export function drawChart(svg: SVGSVGElement, samples: readonly Sample[], windowMs: number, now = Date.now()): void {
  const max = Math.max(1, ...samples.map((s) => Math.max(s.joins, s.promotions)));
  const x = (at: number): number => PAD + ((at - (now - windowMs)) / windowMs) * (WIDTH - 2 * PAD);
  const y = (v: number): number => HEIGHT - PAD - (v / max) * (HEIGHT - 2 * PAD);
  const line = (pick: (s: Sample) => number, color: string): SVGPolylineElement => {
    const el = document.createElementNS(SVG_NS, "polyline");
    el.setAttribute("points", samples.map((s) => `${x(s.at).toFixed(1)},${y(pick(s)).toFixed(1)}`).join(" "));
    el.setAttribute("fill", "none");
    el.setAttribute("stroke", color);
    el.setAttribute("stroke-width", "2");
    return el;
  };
  const label = (text: string, lx: number, ly: number): SVGTextElement => {
    const el = document.createElementNS(SVG_NS, "text");
    el.setAttribute("x", String(lx));
    el.setAttribute("y", String(ly));
    el.setAttribute("font-size", "12");
    el.setAttribute("fill", "#4d5661");
    el.textContent = text;
    return el;
  };
  const axis = document.createElementNS(SVG_NS, "path");
  axis.setAttribute("d", `M${PAD},${PAD} V${HEIGHT - PAD} H${WIDTH - PAD}`);
  axis.setAttribute("stroke", "#c9d1da");
  axis.setAttribute("fill", "none");
  svg.replaceChildren(
    axis,
    label(`${max}/s`, 2, PAD - 6),
    label("0", 8, HEIGHT - PAD),
    line((s) => s.joins, "#0b57d0"),
    line((s) => s.promotions, "#0f6b36"),
  );
}
