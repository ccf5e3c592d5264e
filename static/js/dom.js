/* dom.js: small page-wide DOM helpers: `$`, keyboard focus moves out of the editor or
 * the terminal, safe opening of links printed by programs, and the top banner. */

export const $ = (selector) => document.querySelector(selector);

/** Open a link from program output only if it is http(s), without giving it our window. */
export function openLink(uri) {
  let url;
  try {
    url = new URL(uri);
  } catch (err) {
    return;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return;
  const win = window.open(url.href, "_blank", "noopener,noreferrer");
  if (win) win.opener = null;
}

/** Focusable controls in document order, for leaving the editor or terminal by keyboard. */
export function moveFocus(from, backwards) {
  const all = Array.from(
    document.querySelectorAll(
      'button:not([disabled]), input:not([disabled]), a[href], [tabindex]:not([tabindex="-1"]), textarea:not([disabled])'
    )
  ).filter((el) => el.offsetParent !== null || el === document.activeElement);
  const container = from.closest("[data-focus-group]") || from;
  let index;
  if (backwards) {
    const before = all.filter(
      (el) => !container.contains(el) && el.compareDocumentPosition(container) & Node.DOCUMENT_POSITION_FOLLOWING
    );
    index = before.length ? before[before.length - 1] : null;
  } else {
    index = all.find(
      (el) => !container.contains(el) && el.compareDocumentPosition(container) & Node.DOCUMENT_POSITION_PRECEDING
    );
  }
  if (index) index.focus();
}

export function showBanner(html) {
  const banner = $("#banner");
  banner.innerHTML = html;
  banner.hidden = false;
}
