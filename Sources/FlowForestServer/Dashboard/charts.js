// Small SVG charts for the overview: a line over a time window and stacked
// severity bars per minute. The SVG is drawn in a fixed 1000x100 coordinate
// space stretched to its box; labels are HTML on top, so text never stretches.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 1000, H = 100;

  function el(name, attrs) {
    const e = document.createElementNS(NS, name);
    // A style goes through the CSSOM: the Content-Security-Policy refuses style attributes.
    for (const [k, v] of Object.entries(attrs || {})) k === "style" ? (e.style.cssText = v) : e.setAttribute(k, v);
    return e;
  }

  function frame(box, label) {
    box.textContent = "";
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": label });
    for (const y of [0, 50, 100]) svg.append(el("line", { class: "gridline", x1: 0, x2: W, y1: y, y2: y }));
    box.append(svg);
    return svg;
  }

  function axis(box, cls, text) {
    const s = document.createElement("span");
    s.className = "axis " + cls;
    s.textContent = text;
    box.append(s);
  }

  /** Round up to 1, 2 or 5 times a power of ten, so the scale reads easily. */
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  /**
   * Line of `points` ([{t: ms, v}]) over the `windowMs` ending now.
   * `format` renders the scale label.
   */
  function line(box, points, windowMs, format, label) {
    const now = Date.now(), start = now - windowMs;
    const svg = frame(box, label);
    const visible = points.filter(p => p.t >= start);
    const max = niceMax(Math.max(0, ...visible.map(p => p.v)));
    if (visible.length > 1) {
      const xy = visible.map(p => [((p.t - start) / windowMs) * W, H - (p.v / max) * H]);
      const d = xy.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join("");
      svg.append(el("path", { class: "area", d: `${d}L${xy[xy.length - 1][0].toFixed(1)},${H}L${xy[0][0].toFixed(1)},${H}Z` }));
      svg.append(el("path", { class: "line", d }));
    }
    axis(box, "ymax", format(max));
    axis(box, "xl", `−${Math.round(windowMs / 60000)} min`);
    axis(box, "xr", "now");
  }

  const SEVERITIES = ["low", "medium", "high", "critical"];

  /**
   * Stacked bars of anomaly counts per minute over the last hour;
   * `times` is [{t: ms, severity}].
   */
  function severityBars(box, items, label) {
    const minutes = 60, now = Date.now(), bucketMs = 60000;
    const end = Math.ceil(now / bucketMs) * bucketMs, start = end - minutes * bucketMs;
    const counts = Array.from({ length: minutes }, () => ({ low: 0, medium: 0, high: 0, critical: 0 }));
    for (const a of items) {
      const i = Math.floor((a.t - start) / bucketMs);
      if (i >= 0 && i < minutes && a.severity in counts[i]) counts[i][a.severity]++;
    }
    const max = niceMax(Math.max(0, ...counts.map(c => c.low + c.medium + c.high + c.critical)));
    const svg = frame(box, label);
    const bw = W / minutes;
    counts.forEach((c, i) => {
      let y = H;
      for (const s of SEVERITIES) {
        if (!c[s]) continue;
        const h = (c[s] / max) * H;
        y -= h;
        const r = el("rect", { class: s, x: (i * bw + 1).toFixed(1), y: y.toFixed(2), width: (bw - 2).toFixed(1), height: h.toFixed(2) });
        const tip = el("title");
        tip.textContent = `${c[s]} ${s}`;
        r.append(tip);
        svg.append(r);
      }
    });
    axis(box, "ymax", `${max}/min`);
    axis(box, "xl", "−60 min");
    axis(box, "xr", "now");
  }

  return { line, severityBars };
})();
