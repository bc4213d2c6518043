// Small DOM helpers. Text only ever goes in through textContent or attributes.

export const $ = (id) => document.getElementById(id);

/**
 * A new element: el('button', {class: 'edit', title: 'Edit', data: {id: 'x'}}, 'Edit').
 * Children are elements or strings (made text nodes); null children are skipped.
 */
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'data') Object.entries(value).forEach(([k, v]) => { node.dataset[k] = v; });
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

/** 'Ann', 'Ann and Bob', 'Ann, Bob and Cy', 'Ann, Bob and 3 others'. */
export function nameList(names, most = 3) {
  if (names.length <= 1) return names.join('');
  if (names.length > most) {
    return names.slice(0, most - 1).join(', ') + ' and ' + (names.length - most + 1) + ' others';
  }
  return names.slice(0, -1).join(', ') + ' and ' + names[names.length - 1];
}

/** A message's text (the demo's messages are {text}; anything else shows as empty). */
export function textOf(data) {
  return data && typeof data.text === 'string' ? data.text : '';
}

/** What a refusal says: the handler's reason, or the client's error name. */
export function why(meta, fallback) {
  if (meta && meta.reason) return meta.reason;
  if (meta && meta.code === 4010) return 'Slow down a little.';
  if (meta && meta.error === 'not_connected') return 'Not connected right now.';
  return (meta && meta.error) || fallback;
}
