/* figures.js: a figure in the event-API transcript. A `display` event carries Jupyter's
 * display_data content ({index, data: {<mime>: <base64>, "text/plain": ...}, metadata});
 * this turns it into an <img> and a download link, built as DOM nodes: nothing from the
 * event is ever parsed as HTML. */

// The only types shown, with the download's file extension. An SVG in an <img> runs no
// script and loads nothing; text/html and the rest are never shown.
const IMAGE_TYPES = { "image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg" };
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const ALT_LIMIT = 300; // characters of text/plain kept as the alt text
const MAX_SIDE = 16384; // a width or height beyond this is not a size to lay out

/** The data: URL for one entry of `data`, or null if it is not an image we show. */
function dataUrl(mime, value) {
  if (typeof value !== "string" || !value) return null;
  if (BASE64.test(value)) return `data:${mime};base64,${value}`;
  // Jupyter sends SVG as text rather than base64 (it can never match BASE64: it has "<").
  if (mime === "image/svg+xml") return `data:${mime};charset=utf-8,${encodeURIComponent(value)}`;
  return null;
}

function side(value) {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 && n <= MAX_SIDE ? n : 0;
}

/** A <figure> for a `display` event's payload, or null if it holds no image we show. */
export function figureNode(payload) {
  const data = payload && payload.data;
  if (!data || typeof data !== "object") return null;
  let mime = null;
  let url = null;
  for (const type of Object.keys(IMAGE_TYPES)) {
    url = dataUrl(type, data[type]);
    if (url) {
      mime = type;
      break;
    }
  }
  if (!url) return null;
  const index = Number.isInteger(payload.index) && payload.index > 0 ? payload.index : 0;
  const name = `figure-${index || "image"}.${IMAGE_TYPES[mime]}`;
  const meta = (payload.metadata && payload.metadata[mime]) || {};

  const figure = document.createElement("figure");
  figure.className = "figure";
  if (index) figure.dataset.index = String(index);

  const img = document.createElement("img");
  img.decoding = "async";
  // The size from metadata lets the layout reserve the space before the image decodes
  // (the transcript stays scrolled to the bottom); CSS scales it down to the panel.
  const width = side(meta.width);
  const height = side(meta.height);
  if (width && height) {
    img.width = width;
    img.height = height;
  }
  const text = typeof data["text/plain"] === "string" ? data["text/plain"] : "";
  img.alt = text.slice(0, ALT_LIMIT) || name;
  img.src = url;

  const caption = document.createElement("figcaption");
  const link = document.createElement("a");
  link.className = "btn download";
  link.href = url; // the same bytes as GET /api/sessions/<id>/displays/<index>
  link.download = name;
  link.textContent = `Download ${name}`;
  caption.append(link);
  figure.append(img, caption);
  return figure;
}
