// <moteplass-comments thread="id"> — a comment thread on any page allowed by CORS_ORIGINS: the count, the
// comments with their replies a page at a time, a form to write one or to reply, the service's messages per field,
// and the notice that a comment waits for a moderator.

const TEXT = {
  nn: {
    heading: "Kommentarar", write: "Skriv ny kommentar", replyTo: (name) => `Svar til ${name}`, reply: "Svar",
    replyLabel: (name) => `Svar på kommentaren frå ${name}`, cancel: "Avbryt", more: "Vis fleire kommentarar",
    name: "Namn", email: "E-postadresse", emailHint: "Blir ikkje vist. Vi bruker ho berre om du vil ha e-post om svar.",
    body: "Kommentar", notify: "Send meg e-post når nokon svarar", submit: "Send kommentar", submitReply: "Send svar",
    none: "Ingen kommentarar enno.", closed: "Tråden er stengd for nye kommentarar.",
    hiddenReplies: (n) => `${n} svar til er ikkje viste her.`, edited: "endra", website: "Nettstad (la stå tom)",
    pending: "Takk! Kommentaren blir synleg når ein moderator har godkjent han.", approved: "Takk for kommentaren!",
  },
  nb: {
    heading: "Kommentarer", write: "Skriv ny kommentar", replyTo: (name) => `Svar til ${name}`, reply: "Svar",
    replyLabel: (name) => `Svar på kommentaren fra ${name}`, cancel: "Avbryt", more: "Vis flere kommentarer",
    name: "Navn", email: "E-postadresse", emailHint: "Vises ikke. Vi bruker den bare hvis du vil ha e-post om svar.",
    body: "Kommentar", notify: "Send meg e-post når noen svarer", submit: "Send kommentar", submitReply: "Send svar",
    none: "Ingen kommentarer ennå.", closed: "Tråden er stengt for nye kommentarer.",
    hiddenReplies: (n) => `${n} svar til vises ikke her.`, edited: "endret", website: "Nettsted (la stå tomt)",
    pending: "Takk! Kommentaren blir synlig når en moderator har godkjent den.", approved: "Takk for kommentaren!",
  },
  en: {
    heading: "Comments", write: "Write a comment", replyTo: (name) => `Reply to ${name}`, reply: "Reply",
    replyLabel: (name) => `Reply to the comment by ${name}`, cancel: "Cancel", more: "Show more comments",
    name: "Name", email: "Email address", emailHint: "Not shown. Used only if you want mail about replies.",
    body: "Comment", notify: "Email me when someone replies", submit: "Post comment", submitReply: "Post reply",
    none: "No comments yet.", closed: "This thread is closed for new comments.",
    hiddenReplies: (n) => `${n} more replies are not shown here.`, edited: "edited", website: "Website (leave empty)",
    pending: "Thank you! Your comment will appear once a moderator approves it.", approved: "Thank you for your comment!",
  },
};
const FIELD_TEXT = {
  nb: { missing: "Feltet må fylles ut.", email_invalid: "Skriv en gyldig e-postadresse, for eksempel navn@eksempel.no.",
        name_blank: "Skriv navnet ditt.", body_short: "Skriv en kommentar på minst 2 tegn." },
  en: { missing: "This field is required.", email_invalid: "Enter a valid email address, e.g. name@example.no.",
        name_blank: "Enter your name.", body_short: "Write a comment of at least 2 characters." },
};

class MoteplassComments extends Widget {
  static texts = TEXT;

  async start() {
    this.thread = this.getAttribute("thread") || location.pathname;
    this.sort = this.getAttribute("sort") || "oldest";
    this.headingLevel = Number(this.getAttribute("heading-level") || 2);
    this.headingId = uid("mp-com");
    this.heading = h(`h${this.headingLevel}`, { id: this.headingId }, this.t.heading);
    this.list = h("ol", { class: "mp-comments" });
    this.more = h("button", { type: "button", class: "mp-link", hidden: true, onclick: () => this.load(this.cursor) },
                  this.t.more);
    this.root = h("section", { class: "mp mp-thread", "aria-labelledby": this.headingId },
                  this.heading, this.list, h("p", {}, this.more), this.status);
    this.replaceChildren(this.root);
    await Promise.all([this.load(null), this.count()]);
  }

  path(suffix = "") {
    return `/threads/${encodeURIComponent(this.thread)}${suffix}`;
  }

  async count() {
    try {
      const { counts } = await call(this.api, "/threads/counts",
                                    { method: "POST", body: { threads: [this.thread] }, language: this.language });
      this.heading.textContent = `${this.t.heading} (${counts[this.thread] || 0})`;
    } catch {
      // The heading stays without a count.
    }
  }

  async load(cursor) {
    this.root.setAttribute("aria-busy", "true");
    try {
      const query = new URLSearchParams({ sort: this.sort, ...(cursor ? { cursor } : {}) });
      const page = await call(this.api, `${this.path("/comments")}?${query}`, { language: this.language });
      if (!cursor) this.list.replaceChildren();
      if (!cursor && !page.comments.length) this.list.append(h("li", { class: "mp-none" }, this.t.none));
      this.list.append(...page.comments.map((c) => this.comment(c)));
      this.cursor = page.next_cursor;
      this.more.hidden = !page.next_cursor;
      if (!this.writer) this.renderWriter(page.thread);
    } catch (error) {
      this.status.textContent = error.message;
    } finally {
      this.root.removeAttribute("aria-busy");
    }
  }

  comment(c) {
    const { t } = this;
    const when = new Intl.DateTimeFormat(LOCALE[this.language], { dateStyle: "long", timeStyle: "short" })
      .format(new Date(c.created_at));
    const text = h("div", { class: "mp-text" });
    text.innerHTML = c.html; // rendered and sanitised by the service (an allowlist of tags; links are nofollow ugc)
    const item = h("li", {});
    const article = h("article", { id: `kommentar-${c.id}`, "aria-label": c.deleted ? null : `${c.author_name}, ${when}` },
      c.deleted ? null : h("p", { class: "mp-meta" }, h("strong", {}, c.author_name), " · ",
        h("time", { datetime: c.created_at }, when), c.edited_at ? ` · ${t.edited}` : ""),
      text,
      c.deleted || this.closed ? null : h("button", { type: "button", class: "mp-link", "aria-label": t.replyLabel(c.author_name),
        onclick: (e) => this.openReply(article, c, e.currentTarget) }, t.reply));
    item.append(article);
    if (c.replies.length) item.append(h("ol", {}, c.replies.map((r) => this.comment(r))));
    if (c.hidden_replies) item.append(h("p", { class: "mp-hint" }, t.hiddenReplies(c.hidden_replies)));
    return item;
  }

  renderWriter(thread) {
    this.closed = thread.closed || thread.hidden;
    if (this.closed) {
      this.writer = h("p", {}, this.t.closed);
      for (const button of this.list.querySelectorAll("article button")) button.remove();
    } else {
      this.writer = h("div", {}, h(`h${this.headingLevel + 1}`, {}, this.t.write), this.commentForm(null));
    }
    this.root.insertBefore(this.writer, this.status);
  }

  commentForm(parent, opener) {
    const { t } = this;
    const form = new Form(uid("mp-com-f"), this.language, FIELD_TEXT);
    const element = form.element({ class: "mp-form", onsubmit: (e) => this.submit(e, form, parent, opener) },
      form.field("author_name", t.name, { required: true, autocomplete: "name" }),
      form.field("email", t.email, { required: true, type: "email", autocomplete: "email", hint: t.emailHint }),
      form.field("body", parent ? t.replyTo(parent.author_name) : t.body, { required: true, multiline: true }),
      form.check("notify_replies", t.notify),
      // A trap for robots: hidden from people (and from assistive technology), filled only by bots.
      h("div", { class: "mp-trap" }, form.field("website", t.website, { autocomplete: "off" })),
      h("p", { class: "mp-actions" }, h("button", { type: "submit" }, parent ? t.submitReply : t.submit), " ",
        parent ? h("button", { type: "button", class: "mp-link", onclick: () => this.closeReply(element, opener) }, t.cancel) : null));
    return element;
  }

  openReply(article, parent, opener) {
    const open = article.querySelector("form");
    if (open) return open.querySelector("textarea").focus();
    const element = this.commentForm(parent, opener);
    article.append(element);
    opener.setAttribute("aria-expanded", "true");
    element.querySelector("textarea").focus();
  }

  closeReply(element, opener) {
    element.remove();
    opener.setAttribute("aria-expanded", "false");
    opener.focus();
  }

  async submit(e, form, parent, opener) {
    e.preventDefault();
    const element = e.currentTarget;
    const data = new FormData(element);
    // Empty fields are left out: the service then names each as missing.
    const body = { notify_replies: data.get("notify_replies") === "on", language: this.language,
                   website: data.get("website") || "", ...(parent ? { parent_id: parent.id } : {}) };
    for (const name of ["author_name", "email", "body"]) if (data.get(name).trim()) body[name] = data.get(name);
    this.status.textContent = "";
    await busy(element, async () => {
      try {
        const created = await call(this.api, this.path("/comments"), { method: "POST", body, language: this.language });
        form.clear(element);
        if (parent) this.closeReply(element, opener);
        else element.reset();
        this.status.textContent = created.status === "approved" ? this.t.approved : this.t.pending;
        if (created.status === "approved") await Promise.all([this.load(null), this.count()]);
      } catch (error) {
        form.showErrors(element, error);
      }
    });
  }
}

customElements.get("moteplass-comments") || customElements.define("moteplass-comments", MoteplassComments);
