// Writes the password sign-in cookie (or, with an expiry in the past, deletes it). ui/session.py puts this script
// on the page right after a sign-in or a logout, with the cookie's value and expiry in data- attributes. A file
// served by the console itself (Streamlit's static serving), not an inline script, so that a
// Content-Security-Policy of `script-src 'self'` runs it. It writes that one cookie and nothing else.
(function () {
  var script = document.currentScript;
  if (!script) return;
  var value = script.dataset.value || "";
  var expires = script.dataset.expires || "";
  var date = /^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/;
  if (!/^[A-Za-z0-9._-]*$/.test(value) || !date.test(expires)) return;
  var secure = script.dataset.secure === "1" || location.protocol === "https:";
  document.cookie = "billing_desk_auth=" + value + "; expires=" + expires + "; path=/; SameSite=Strict" +
    (secure ? "; Secure" : "");
})();
