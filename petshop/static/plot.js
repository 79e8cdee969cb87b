// A small SVG line plot of hit ratio over time, one line per tier. Polls with no reads
// leave a gap rather than a made-up value.

const NS = 'http://www.w3.org/2000/svg';
const [W, H] = [320, 130];
const PAD = { left: 34, right: 8, top: 18, bottom: 20 };

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Draws `points` (oldest first; each `{tier: ratio 0..1 | null}`) into `target`, with
 * room for `capacity` points; the newest sits at the right edge.
 */
export function drawPlot(target, tiers, points, capacity) {
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (plotW * (capacity - points.length + i)) / (capacity - 1);
  const y = (r) => PAD.top + plotH * (1 - r);

  const nodes = [];
  for (const r of [0, 0.5, 1]) {
    nodes.push(svg('line', { class: 'grid', x1: PAD.left, x2: W - PAD.right, y1: y(r), y2: y(r) }));
    nodes.push(svg('text', { class: 'axis', x: PAD.left - 4, y: y(r) + 3, 'text-anchor': 'end' },
      `${r * 100}%`));
  }
  nodes.push(svg('text', { class: 'axis', x: PAD.left, y: H - 5 }, `−${capacity} s`));
  nodes.push(svg('text', { class: 'axis', x: W - PAD.right, y: H - 5, 'text-anchor': 'end' }, 'now'));

  tiers.forEach((tier, n) => {
    // One path, broken where a poll had no reads; a dot on every measured poll.
    let d = '';
    let pen = false;
    points.forEach((p, i) => {
      const r = p[tier];
      if (r === null || r === undefined) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(r).toFixed(1)}`;
      pen = true;
      nodes.push(svg('circle', { class: `dot tier-${tier}`, cx: x(i), cy: y(r), r: 2 }));
    });
    if (d) nodes.push(svg('path', { class: `line tier-${tier}`, d }));
    const lx = W - PAD.right - 44 * (tiers.length - n);
    nodes.push(svg('rect', { class: `key tier-${tier}`, x: lx, y: 4, width: 10, height: 4, rx: 1 }));
    nodes.push(svg('text', { class: 'axis', x: lx + 13, y: 9 }, tier.toUpperCase()));
  });
  target.replaceChildren(...nodes);
}
