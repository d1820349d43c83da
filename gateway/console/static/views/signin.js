import { api, session } from "../api.js";
import { field, form, h } from "../dom.js";

export function signInView(main, done) {
  const key = h("input", { type: "password", name: "apikey", autocomplete: "off", required: true });
  const signIn = form(
    "Sign in",
    [field("API key", key, "A tenant key or the admin key. It stays in this browser tab only.")],
    "Sign in",
    async () => {
      session.signIn(key.value.trim());
      try {
        await api("GET", "/whoami");
      } catch (error) {
        session.signOut();
        throw error;
      }
      done();
    },
  );
  main.replaceChildren(h("h1", {}, "Sign in"), h("section", { class: "card narrow" }, signIn));
}
