// <moteplass-registration event="slug"> — the registration form of a møteplass, on any page allowed by
// CORS_ORIGINS: seats left or the waiting list, the møteplass's questions, the one-guest rule, the service's
// messages per field. A guest's invitation code comes from the page address (?invite=…).

const TEXT = {
  nn: {
    heading: "Meld deg på", seats: (n, of) => `${n} av ${of} plassar er ledige.`,
    waitlist: (n) => `Det er fullt. Meld deg på venteliste${n ? ` (${n} ventar før deg)` : ""}: du får plass når nokon melder seg av.`,
    full: "Det er fullt, og møteplassen har inga venteliste.", closed: "Påmeldinga er stengd.",
    name: "Namn", email: "E-postadresse", emailHint: "Her får du stadfestinga og ei lenkje for å endre eller melde deg av.",
    phone: "Telefon", organisation: "Arbeidsstad eller organisasjon", organisationType: "Kva slags organisasjon?",
    municipalityNumber: "Kommunenummer", municipalityNumberHint: "Fire siffer, til dømes 3201 for Bærum.",
    municipalityName: "Kommune",
    guestRule: (n) => `Kvar kommune kan ta med ${n === 1 ? "éin person" : `${n} personar`} frå sitt eige nettverk utanfor kommunen. Den som er påmeld frå kommunen, inviterer gjesten frå lenkja i stadfestinga si.`,
    invited: "Du er invitert som gjest. Bruk e-postadressa invitasjonen kom til.",
    consent: "Eg samtykkjer til at opplysningane blir lagra til møteplassen er over.", submit: "Meld på",
    submitWaitlist: "Meld på venteliste",
    done: { confirmed: "Du er påmeld! Stadfestinga kjem på e-post.",
            waitlisted: (p) => `Du står på venteliste${p ? ` som nummer ${p}` : ""}. Du får e-post når du får plass.`,
            pending_confirmation: "Nesten ferdig: opne lenkja vi sende til e-postadressa di for å stadfeste påmeldinga." },
    types: { kommune: "Kommune", fylkeskommune: "Fylkeskommune", "statleg verksemd": "Statleg verksemd",
             "privat verksemd": "Privat verksemd", "frivillig organisasjon": "Frivillig organisasjon",
             "sosial entreprenør": "Sosial entreprenør", akademia: "Akademia", anna: "Anna" },
    when: "Tid", where: "Stad",
  },
  nb: {
    heading: "Meld deg på", seats: (n, of) => `${n} av ${of} plasser er ledige.`,
    waitlist: (n) => `Det er fullt. Meld deg på venteliste${n ? ` (${n} venter før deg)` : ""}: du får plass når noen melder seg av.`,
    full: "Det er fullt, og møteplassen har ingen venteliste.", closed: "Påmeldingen er stengt.",
    name: "Navn", email: "E-postadresse", emailHint: "Her får du bekreftelsen og en lenke for å endre eller melde deg av.",
    phone: "Telefon", organisation: "Arbeidssted eller organisasjon", organisationType: "Hva slags organisasjon?",
    municipalityNumber: "Kommunenummer", municipalityNumberHint: "Fire sifre, for eksempel 3201 for Bærum.",
    municipalityName: "Kommune",
    guestRule: (n) => `Hver kommune kan ta med ${n === 1 ? "én person" : `${n} personer`} fra sitt eget nettverk utenfor kommunen. Den som er påmeldt fra kommunen, inviterer gjesten fra lenken i bekreftelsen sin.`,
    invited: "Du er invitert som gjest. Bruk e-postadressen invitasjonen kom til.",
    consent: "Jeg samtykker til at opplysningene lagres til møteplassen er over.", submit: "Meld på",
    submitWaitlist: "Meld på venteliste",
    done: { confirmed: "Du er påmeldt! Bekreftelsen kommer på e-post.",
            waitlisted: (p) => `Du står på venteliste${p ? ` som nummer ${p}` : ""}. Du får e-post når du får plass.`,
            pending_confirmation: "Nesten ferdig: åpne lenken vi sendte til e-postadressen din for å bekrefte påmeldingen." },
    types: { kommune: "Kommune", fylkeskommune: "Fylkeskommune", "statleg verksemd": "Statlig virksomhet",
             "privat verksemd": "Privat virksomhet", "frivillig organisasjon": "Frivillig organisasjon",
             "sosial entreprenør": "Sosial entreprenør", akademia: "Akademia", anna: "Annet" },
    when: "Tid", where: "Sted",
  },
  en: {
    heading: "Register", seats: (n, of) => `${n} of ${of} seats are free.`,
    waitlist: (n) => `It is full. Join the waiting list${n ? ` (${n} waiting before you)` : ""}: you get a seat when someone cancels.`,
    full: "It is full, and there is no waiting list.", closed: "Registration is closed.",
    name: "Name", email: "Email address", emailHint: "You get the confirmation here, with a link to change or cancel.",
    phone: "Phone", organisation: "Workplace or organisation", organisationType: "Type of organisation",
    municipalityNumber: "Municipality number", municipalityNumberHint: "Four digits, e.g. 3201 for Bærum.",
    municipalityName: "Municipality",
    guestRule: (n) => `Each municipality may bring ${n === 1 ? "one person" : `${n} people`} from its own network outside the municipality. A participant from the municipality invites the guest from the link in their confirmation.`,
    invited: "You are invited as a guest. Use the email address the invitation came to.",
    consent: "I agree that my details are stored until the event is over.", submit: "Register",
    submitWaitlist: "Join the waiting list",
    done: { confirmed: "You are registered! The confirmation is on its way by email.",
            waitlisted: (p) => `You are on the waiting list${p ? ` as number ${p}` : ""}. We email you when you get a seat.`,
            pending_confirmation: "Almost done: open the link we sent to your email address to confirm." },
    types: { kommune: "Municipality", fylkeskommune: "County", "statleg verksemd": "State agency",
             "privat verksemd": "Private company", "frivillig organisasjon": "Voluntary organisation",
             "sosial entreprenør": "Social entrepreneur", akademia: "Academia", anna: "Other" },
    when: "When", where: "Where",
  },
};
// The service writes its field messages in Nynorsk; the kinds a form meets most are said here in nb and en too.
const FIELD_TEXT = {
  nb: { missing: "Feltet må fylles ut.", email: "E-postadressen er ikke gyldig.",
        consent_required: "Du må samtykke til at vi lagrer opplysningene dine.",
        municipality_required: "Velg kommunen du kommer fra.", string_too_short: "Feltet må fylles ut.",
        string_pattern_mismatch: "Verdien har feil format." },
  en: { missing: "This field is required.", email: "The email address is not valid.",
        consent_required: "You must agree to us storing your details.",
        municipality_required: "Give the municipality you come from.", string_too_short: "This field is required.",
        string_pattern_mismatch: "The value has the wrong format." },
};

class MoteplassRegistration extends Widget {
  static texts = TEXT;

  async start() {
    this.slug = this.getAttribute("event") || "";
    this.invite = new URLSearchParams(location.search).get("invite");
    this.root = h("section", { class: "mp mp-registration", "aria-busy": "true" }, h("p", {}, KIT[this.language].loading));
    this.replaceChildren(this.root);
    try {
      this.event = await call(this.api, `/events/${encodeURIComponent(this.slug)}`, { language: this.language });
      this.render();
    } catch (error) {
      this.root.replaceChildren(h("p", { role: "alert" }, error.message));
    }
    this.root.removeAttribute("aria-busy");
  }

  render() {
    const { event, t } = this;
    const headingId = uid("mp-reg");
    const open = this.isOpen();
    const full = event.seats_left === 0;
    this.form = new Form(uid("mp-reg-f"), this.language, FIELD_TEXT);
    this.availability = h("p", { class: "mp-seats" }, !open ? t.closed
      : full ? (event.waitlist_enabled ? t.waitlist(event.waitlist_length) : t.full)
      : t.seats(event.seats_left, event.capacity));
    const format = (value) => new Intl.DateTimeFormat(LOCALE[this.language], {
      dateStyle: "full", timeStyle: "short", timeZone: event.timezone }).format(new Date(value));
    this.root.setAttribute("aria-labelledby", headingId);
    this.root.replaceChildren(
      h(`h${this.getAttribute("heading-level") || 2}`, { id: headingId }, `${t.heading}: ${event.title}`),
      h("dl", {}, h("dt", {}, t.when), h("dd", {}, format(event.starts_at)),
        h("dt", {}, t.where), h("dd", {}, [event.venue, event.address].filter(Boolean).join(", "))),
      this.availability, this.status,
      open && (!full || event.waitlist_enabled) ? this.renderForm(full) : null);
  }

  isOpen() {
    const now = Date.now(), { event } = this;
    return event.status === "published" && new Date(event.starts_at) > now
      && !(event.registration_opens_at && new Date(event.registration_opens_at) > now)
      && !(event.registration_closes_at && new Date(event.registration_closes_at) <= now);
  }

  renderForm(full) {
    const { t, form, event } = this;
    const municipality = h("fieldset", { class: "mp-municipality" }, h("legend", {}, t.municipalityName),
      form.field("municipality.number", t.municipalityNumber, { required: true, hint: t.municipalityNumberHint,
                                                                 autocomplete: "off" }),
      form.field("municipality.name", t.municipalityName, { required: true }));
    const type = h("select", { id: form.id("organisation_type"), name: "organisation_type",
                               onchange: () => { municipality.hidden = type.value !== "kommune"; } },
      Object.entries(t.types).map(([value, label]) => h("option", { value, selected: value === "anna" }, label)));
    municipality.hidden = true;
    const element = form.element({ onsubmit: (e) => this.submit(e) },
      form.field("name", t.name, { required: true, autocomplete: "name" }),
      form.field("email", t.email, { required: true, type: "email", autocomplete: "email", hint: t.emailHint }),
      form.field("phone", t.phone, { type: "tel", autocomplete: "tel" }),
      form.field("organisation", t.organisation, { required: true, autocomplete: "organization" }),
      h("div", { class: "mp-field" }, form.label("organisation_type", t.organisationType), type),
      municipality,
      event.questions.map((q) => q.kind === "text"
        ? form.field(`answers.${q.id}`, q.text, { required: q.required, multiline: true })
        : form.choices(`answers.${q.id}`, q.text, q.options, { required: q.required, multiple: q.kind === "multiple_choice" })),
      this.invite ? h("p", { class: "mp-hint" }, t.invited)
        : event.guests_per_municipality > 0 ? h("p", { class: "mp-hint" }, t.guestRule(event.guests_per_municipality)) : null,
      form.check("consent", `${t.consent} *`, { required: true }),
      h("p", {}, h("button", { type: "submit" }, full ? t.submitWaitlist : t.submit)));
    return element;
  }

  body(element) {
    const data = new FormData(element);
    const text = (name) => (data.get(name) || "").toString().trim();
    // Empty fields are left out: the service then names each as missing.
    const body = { organisation_type: text("organisation_type"), consent: data.get("consent") === "on",
                   language: this.language, answers: {} };
    for (const name of ["name", "email", "phone", "organisation"]) if (text(name)) body[name] = text(name);
    if (body.organisation_type === "kommune") {
      body.municipality = {};
      for (const part of ["number", "name"]) if (text(`municipality.${part}`)) body.municipality[part] = text(`municipality.${part}`);
    }
    for (const q of this.event.questions) {
      const values = data.getAll(`answers.${q.id}`).map((v) => v.toString().trim()).filter(Boolean);
      if (values.length) body.answers[q.id] = q.kind === "multiple_choice" ? values : values[0];
    }
    if (this.invite) body.invite_code = this.invite;
    return body;
  }

  async submit(e) {
    e.preventDefault();
    const element = e.currentTarget;
    this.status.textContent = "";
    await busy(element, async () => {
      try {
        const done = await call(this.api, `/events/${encodeURIComponent(this.slug)}/registrations`,
                                { method: "POST", body: this.body(element), language: this.language });
        const said = this.t.done[done.status];
        element.remove();
        this.status.textContent = typeof said === "function" ? said(done.position) : said || this.t.done.confirmed;
        this.refreshSeats();
      } catch (error) {
        this.form.showErrors(element, error,
          (d) => (d.type === "municipality_required" ? "municipality.number" : d.field));
      }
    });
  }

  async refreshSeats() {
    try {
      this.event = await call(this.api, `/events/${encodeURIComponent(this.slug)}`, { language: this.language });
      const { event, t } = this;
      this.availability.textContent = event.seats_left ? t.seats(event.seats_left, event.capacity)
        : event.waitlist_enabled ? t.waitlist(event.waitlist_length) : t.full;
    } catch {
      // The counts stay as they were: the registration itself went through.
    }
  }
}

customElements.get("moteplass-registration") || customElements.define("moteplass-registration", MoteplassRegistration);
