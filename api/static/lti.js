/* An LTI launch hands its session to the learner page (api/lti_pages.py): the tool's
 * launch route redirects here with the session's id and token in the URL fragment, which
 * no request carries. This script, run before app.js, stores them where app.js keeps the
 * session it takes (sessionStorage "irtcat.learner.session") and removes the fragment
 * from the address bar and the history; app.js then resumes that session. */
(function () {
  "use strict";
  var hash = window.location.hash.replace(/^#/, "");
  if (hash.indexOf("lti_session=") === -1) { return; }
  var given = new URLSearchParams(hash);
  var session = {
    session_id: given.get("lti_session"), token: given.get("lti_token"),
    test_id: given.get("lti_test"), title: given.get("lti_title") || "",
    max_items: parseInt(given.get("lti_max_items"), 10) || null
  };
  try {
    window.sessionStorage.setItem("irtcat.learner.session", JSON.stringify(session));
    window.sessionStorage.removeItem("irtcat.learner.choice");
  } catch (e) { /* no storage: app.js lists the tests instead */ }
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
}());
