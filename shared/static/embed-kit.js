// What both widgets share (served in front of each: no build step, no third party). Plain modern JS.
const SCRIPT = document.currentScript;
// The service that served this script answers the widget's calls, unless the element names another (api="…").
const ORIGIN = SCRIPT ? new URL(SCRIPT.src).origin : location.origin;

const KIT = {
  nn: { required: "* obligatorisk felt", problems: "Rett opp dette:", failed: "Noko gjekk gale. Prøv igjen om litt.",
        loading: "Lastar …", offline: "Fekk ikkje kontakt med tenesta. Prøv igjen om litt." },
  nb: { required: "* obligatorisk felt", problems: "Rett opp dette:", failed: "Noe gikk galt. Prøv igjen om litt.",
        loading: "Laster …", offline: "Fikk ikke kontakt med tjenesten. Prøv igjen om litt." },
  en: { required: "* required field", problems: "Please correct the following:",
        failed: "Something went wrong. Please try again shortly.", loading: "Loading …",
        offline: "Could not reach the service. Please try again shortly." },
};
const LOCALE = { nn: "nn-NO", nb: "nb-NO", en: "en-GB" };

// The page's language (the element's nearest lang attribute): nn, nb or en; Norwegian without a variant is nb.
function languageOf(element) {
  const tag = (element.closest("[lang]")?.getAttribute("lang") || "nn").toLowerCase();
  if (tag.startsWith("nn")) return "nn";
  if (tag.startsWith("nb") || tag === "no" || tag.startsWith("no-")) return "nb";
  return tag.startsWith("en") ? "en" : "nn";
}

// h("p", {class: "x", onclick: f}, "text", child, …): an element; attributes with a false/null value are left out.
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name in element && typeof value !== "string") element[name] = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  element.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

let counter = 0;
const uid = (prefix) => `${prefix}-${++counter}`;

class ApiError extends Error {
  constructor(status, message, details = []) {
    super(message);
    this.status = status;
    this.details = details;
  }
}

// JSON in and out; a refusal becomes an ApiError with the service's message and per-field details.
async function call(base, path, { method = "GET", body, language } = {}) {
  let response;
  try {
    response = await fetch(base + path, {
      method, headers: { ...(body ? { "Content-Type": "application/json" } : {}), "Accept-Language": language },
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new ApiError(0, KIT[language].offline);
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = data?.error || {};
    throw new ApiError(response.status, error.message || KIT[language].failed, error.details || []);
  }
  return data;
}

const STYLE = `
.mp { font: inherit; color: inherit; max-width: 40rem; }
.mp :focus-visible { outline: 3px solid #ffbf47; outline-offset: 2px; box-shadow: 0 0 0 5px #1a1a1a; }
.mp label, .mp legend { display: block; font-weight: 600; margin: .75rem 0 .25rem; }
.mp fieldset { border: 0; padding: 0; margin: 0; }
.mp fieldset label, .mp .mp-check label { display: inline; font-weight: 400; margin: 0 1rem 0 .25rem; }
.mp input[type=text], .mp input[type=email], .mp input[type=tel], .mp select, .mp textarea {
  font: inherit; width: 100%; padding: .5rem; border: 2px solid #595959; border-radius: 4px; background: #fff; color: #1a1a1a; }
.mp textarea { min-height: 7rem; }
.mp [aria-invalid=true] { border-color: #a4000f; }
.mp button { font: inherit; min-height: 44px; padding: .5rem 1rem; border: 2px solid #0b4f8a; border-radius: 4px;
  background: #0b4f8a; color: #fff; cursor: pointer; }
.mp button.mp-link { background: #fff; color: #0b4f8a; }
.mp .mp-hint { color: #4a4a4a; margin: .25rem 0; }
.mp .mp-error { color: #a4000f; font-weight: 600; margin: .25rem 0; }
.mp .mp-summary { border: 3px solid #a4000f; padding: .5rem 1rem; margin: 1rem 0; }
.mp .mp-summary a { color: #a4000f; }
.mp .mp-status:not(:empty) { border-left: 6px solid #1c6b2a; background: #eef7ef; padding: .5rem 1rem; margin: 1rem 0; }
.mp .mp-trap { display: none; }
.mp ol { list-style: none; padding-left: 0; }
.mp ol ol { padding-left: 1.25rem; border-left: 3px solid #d0d0d0; }
.mp article { margin: 1rem 0; }
.mp .mp-meta { color: #4a4a4a; font-size: .95em; margin: 0; }
`;

function addStyle() {
  if (document.getElementById("moteplass-embed-style")) return;
  document.head.append(h("style", { id: "moteplass-embed-style" }, STYLE));
}

// A widget's element. It starts once, on its first connection (moving it in the page connects it again), in the
// page's language with its class's `static texts` in that language, calling the service at its origin.
class Widget extends HTMLElement {
  connectedCallback() {
    if (this.started) return;
    this.started = true;
    addStyle();
    this.language = languageOf(this);
    this.t = this.constructor.texts[this.language];
    this.api = this.getAttribute("api") || ORIGIN;
    this.status = h("div", { class: "mp-status", role: "status", "aria-live": "polite" });
    return this.start();
  }
}

// A form's fields, each a label, the control, a hint and a place for its error; `id` of a field is by its API path.
// The service's field messages are said in `fieldTexts` (by language and type) where it has them.
class Form {
  constructor(prefix, language, fieldTexts = {}) {
    this.prefix = prefix;
    this.language = language;
    this.fieldTexts = fieldTexts[language] || {};
    this.summary = h("div", { class: "mp-summary", tabindex: "-1", hidden: true });
  }

  // The form itself: the error summary and the note on required fields first.
  element(attributes, ...children) {
    return h("form", { novalidate: true, ...attributes }, this.summary,
             h("p", { class: "mp-hint" }, KIT[this.language].required), ...children);
  }

  id(path) {
    return `${this.prefix}-${path.replace(/[^a-zA-Z0-9_-]/g, "-")}`;
  }

  label(path, text, required) {
    return h("label", { for: this.id(path) }, text, required ? " *" : "");
  }

  // A text-like control with its label, hint and error slot.
  field(path, text, { required = false, type = "text", hint, autocomplete, multiline = false, value = "" } = {}) {
    const id = this.id(path);
    const control = multiline
      ? h("textarea", { id, name: path, required, "aria-describedby": hint ? `${id}-hint` : null })
      : h("input", { id, name: path, type, required, autocomplete, value,
                     "aria-describedby": hint ? `${id}-hint` : null });
    return h("div", { class: "mp-field" }, this.label(path, text, required),
             hint ? h("p", { class: "mp-hint", id: `${id}-hint` }, hint) : null, control);
  }

  // One checkbox, its label beside it.
  check(path, text, { required = false } = {}) {
    return h("div", { class: "mp-check" }, h("input", { type: "checkbox", id: this.id(path), name: path, required }),
             h("label", { for: this.id(path) }, text));
  }

  // Radio buttons or checkboxes under a legend; the group's first control takes the group's id (for links).
  choices(path, text, options, { required = false, multiple = false } = {}) {
    const id = this.id(path);
    return h("fieldset", { id: `${id}-group` }, h("legend", {}, text, required ? " *" : ""),
      options.map((option, i) => h("span", {},
        h("input", { type: multiple ? "checkbox" : "radio", name: path, value: option,
                     id: i === 0 ? id : `${id}-${i}` }),
        h("label", { for: i === 0 ? id : `${id}-${i}` }, option))));
  }

  clear(root) {
    this.summary.hidden = true;
    this.summary.replaceChildren();
    for (const element of root.querySelectorAll("[aria-invalid]")) {
      element.removeAttribute("aria-invalid");
      const described = (element.getAttribute("aria-describedby") || "").split(" ").filter((d) => !d.endsWith("-error"));
      if (described.length) element.setAttribute("aria-describedby", described.join(" "));
      else element.removeAttribute("aria-describedby");
    }
    for (const message of root.querySelectorAll(".mp-error")) message.remove();
  }

  // The service's refusal: a summary linked to each field it names (its message beside the field too), focused.
  showErrors(root, error, fieldOf = (detail) => detail.field) {
    this.clear(root);
    const items = [];
    for (const detail of error.details) {
      const path = fieldOf(detail);
      const control = path && root.querySelector(`#${CSS.escape(this.id(path))}`);
      const message = this.fieldTexts[detail.type] || detail.message;
      if (!control) {
        items.push(h("li", {}, message));
        continue;
      }
      const errorId = `${control.id}-error`;
      control.setAttribute("aria-invalid", "true");
      control.setAttribute("aria-describedby", [control.getAttribute("aria-describedby"), errorId].filter(Boolean).join(" "));
      const anchor = control.closest("fieldset") || control;
      anchor.parentElement.insertBefore(h("p", { class: "mp-error", id: errorId }, message),
        anchor === control ? control : anchor.nextSibling);
      items.push(h("li", {}, h("a", { href: `#${control.id}`, onclick: (event) => {
        event.preventDefault();
        control.focus();
      } }, message)));
    }
    if (!items.length) items.push(h("li", {}, error.message));
    this.summary.replaceChildren(h("p", {}, h("strong", {}, KIT[this.language].problems)), h("ul", {}, items));
    this.summary.hidden = false;
    this.summary.focus();
  }
}

// Disable a form's button while its request runs.
async function busy(form, work) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    return await work();
  } finally {
    button.disabled = false;
  }
}
