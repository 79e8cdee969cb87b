// Two DOM helpers the other modules share.

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/** Builds an element: `el('td', {className: 'num'}, 'text', child…)`. */
export function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}
