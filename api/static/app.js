/* irtcat learner page: choose a public test, answer it item by item, see the result.
 *
 * Talks to the v1 API on the same origin. It never holds a delivery or admin key:
 * a session is started through POST /v1/public/sessions, which returns the session's
 * own token, and every later call (GET the session, POST an answer) carries that token.
 * The session id, the token and the answer being chosen are kept in sessionStorage,
 * so a reload in the middle of a test resumes at the current item.
 *
 * Plain JavaScript, no framework, no build step, nothing fetched from elsewhere.
 * All server text is inserted with textContent, never as HTML.
 */
(function () {
  "use strict";

  var SESSION_KEY = "irtcat.learner.session";  // {session_id, token, test_id, title, max_items}
  var CHOICE_KEY = "irtcat.learner.choice";    // {session_id, item_id, option}
  var TIMEOUT_MS = 20000;
  var METHODS = {
    sprt: "sequential probability ratio test",
    ci: "confidence interval around θ",
    "confidence-interval": "confidence interval around θ"
  };

  var $ = function (id) { return document.getElementById(id); };
  var memory = {};       // fallback when sessionStorage is unavailable (some private modes)
  var saved = null;      // the session this tab is taking, as stored
  var shown = null;      // the SessionState on screen
  var busy = false;      // an answer is being sent
  var lastTests = null;  // the public tests, once listed

  // --- storage ---------------------------------------------------------------------

  function readStored(key) {
    var text;
    try { text = window.sessionStorage.getItem(key); } catch (e) { text = memory[key]; }
    if (!text) { return null; }
    try { return JSON.parse(text); } catch (e) { return null; }
  }

  function writeStored(key, value) {
    var text = value === null ? null : JSON.stringify(value);
    try {
      if (text === null) { window.sessionStorage.removeItem(key); }
      else { window.sessionStorage.setItem(key, text); }
    } catch (e) {
      if (text === null) { delete memory[key]; } else { memory[key] = text; }
    }
  }

  function saveSession(value) {
    saved = value;
    writeStored(SESSION_KEY, value);
  }

  function forgetSession() {
    saved = null;
    shown = null;
    writeStored(SESSION_KEY, null);
    writeStored(CHOICE_KEY, null);
  }

  // --- the API ---------------------------------------------------------------------

  function ApiError(status, code, message, details) {
    this.status = status;
    this.code = code;
    this.message = message;
    this.details = details || {};
  }

  function NetworkError(message) {
    this.message = message;
  }

  // A failure worth retrying as is: no answer from the server, or a server-side error.
  function retryable(error) {
    return error instanceof NetworkError
      || (error instanceof ApiError && (error.status >= 500 || error.status === 429));
  }

  // Why a session can no longer go on, in the learner's words.
  function endedText(error) {
    if (error.code === "token_expired") {
      return "Your test session has expired, so it cannot be continued. Your answers up "
        + "to now were kept. Choose a test to start again.";
    }
    return "Your test can no longer be continued (" + error.message
      + "). Choose a test to start again.";
  }

  function api(method, path, body, token) {
    var headers = { Accept: "application/json" };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    if (token) { headers.Authorization = "Bearer " + token; }
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = controller ? setTimeout(function () { controller.abort(); }, TIMEOUT_MS) : null;
    return fetch(path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
      signal: controller ? controller.signal : undefined
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!response.ok) {
          var error = (data && data.error) || {};
          throw new ApiError(response.status, error.code || "error",
                             error.message || "the server answered " + response.status,
                             error.details);
        }
        if (data === null) {
          throw new ApiError(502, "bad_response", "the server's answer was not readable");
        }
        return data;
      });
    }, function () {
      throw new NetworkError("the server could not be reached");
    }).finally(function () {
      if (timer) { clearTimeout(timer); }
    });
  }

  function sessionPath(suffix) {
    return "/v1/sessions/" + encodeURIComponent(saved.session_id) + (suffix || "");
  }

  // --- views -----------------------------------------------------------------------

  var VIEWS = ["view-loading", "view-tests", "view-item", "view-result", "view-error"];

  function show(view) {
    VIEWS.forEach(function (id) { $(id).hidden = id !== view; });
    $("start-over").hidden = !saved;
    document.body.setAttribute("data-view", view.replace("view-", ""));
  }

  function announce(text) {
    var region = $("announce");
    region.textContent = "";
    // A fresh text node after a tick makes screen readers announce a repeated message.
    setTimeout(function () { region.textContent = text; }, 60);
  }

  function focusHeading(id) {
    var heading = $(id);
    heading.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }

  function message(id, text) {
    var box = $(id);
    box.textContent = text || "";
    box.hidden = !text;
  }

  function fmt(value) {
    if (value === null || value === undefined || !isFinite(value)) { return "—"; }
    var text = Math.abs(value).toFixed(2);
    return (value < 0 && text !== "0.00" ? "−" : "") + text;
  }

  function capitalize(text) {
    return text ? text.charAt(0).toUpperCase() + text.slice(1) : text;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function failureText(error, doing) {
    if (error instanceof NetworkError) {
      return "Could not reach the server while " + doing + ". Check your connection.";
    }
    if (error instanceof ApiError && error.status >= 500) {
      return "The server had a problem while " + doing + " (" + error.message + ").";
    }
    return capitalize((error.message || "something went wrong").replace(/\.$/, "")) + ".";
  }

  function showError(text, retry) {
    show("view-error");
    message("error-message", text);
    $("error-retry").onclick = retry;
    focusHeading("error-heading");
    announce(text);
  }

  // --- choosing a test ---------------------------------------------------------------

  function listTests(notice) {
    show("view-loading");
    return api("GET", "/v1/public/tests").then(function (tests) {
      lastTests = tests;
      renderTests(tests, notice);
    }, function (error) {
      showError(failureText(error, "listing the tests"), function () { listTests(notice); });
    });
  }

  function renderTests(tests, notice) {
    var list = $("test-list");
    list.textContent = "";
    tests.forEach(function (test, index) {
      var card = el("li", "card");
      var headingId = "test-" + index + "-title";
      var heading = el("h2", null, test.title || test.id);
      heading.id = headingId;
      card.appendChild(heading);
      var about = el("p", "muted");
      about.id = "test-" + index + "-about";
      var standards = test.standards || [];
      var sameAsTitle = standards.length === 1
        && (standards[0].title || standards[0].code) === (test.title || test.id);
      about.textContent = (test.max_items ? "At most " + test.max_items + " questions"
                                          : "Adaptive length")
        + (standards.length > 1 ? " across " + standards.length + " standards:"
                                : sameAsTitle || !standards.length ? "" : " on:");
      card.appendChild(about);
      if (standards.length && !sameAsTitle) {
        var names = el("ul", "standard-names");
        standards.forEach(function (standard) {
          names.appendChild(el("li", null, standard.title || standard.code));
        });
        card.appendChild(names);
      }
      var start = el("button", "primary");
      start.type = "button";
      startLabel(start, "Start", test);
      start.setAttribute("data-test-id", test.id);
      start.setAttribute("aria-describedby", "test-" + index + "-about");
      start.addEventListener("click", function () { startTest(test, start); });
      card.appendChild(start);
      list.appendChild(card);
    });
    if (!tests.length) {
      list.appendChild(el("li", "card muted", "No test is open to the public right now."));
    }
    show("view-tests");
    message("tests-message", notice);
    focusHeading("tests-heading");
    if (notice) { announce(notice); }
  }

  // "Start", and the test's title for screen readers (every card has a Start button).
  function startLabel(button, text, test) {
    button.textContent = text;
    button.appendChild(el("span", "visually-hidden", " " + (test.title || test.id)));
  }

  function startTest(test, button) {
    if (busy) { return; }
    busy = true;
    var buttons = document.querySelectorAll("#test-list button");
    buttons.forEach(function (b) { b.disabled = true; });
    startLabel(button, "Starting…", test);
    message("tests-message", "");
    api("POST", "/v1/public/sessions", { test_id: test.id }).then(function (state) {
      busy = false;
      saveSession({ session_id: state.session_id, token: state.token, test_id: test.id,
                    title: test.title || test.id,
                    max_items: state.max_items || test.max_items || null });
      writeStored(CHOICE_KEY, null);
      render(state);
    }, function (error) {
      busy = false;
      buttons.forEach(function (b) { b.disabled = false; });
      startLabel(button, "Start", test);
      var text = failureText(error, "starting the test");
      message("tests-message", retryable(error) ? text + " Press Start to try again." : text);
      announce(text);
      button.focus();
    });
  }

  // --- taking the test ---------------------------------------------------------------

  function resume() {
    show("view-loading");
    // The listing names the tests' standards (and their levels, when it gives them);
    // the session is shown whether or not it answers.
    var listing = lastTests ? Promise.resolve(lastTests) : api("GET", "/v1/public/tests").then(
      function (tests) { lastTests = tests; }, function () { return null; });
    listing.then(function () {
      return api("GET", sessionPath(), undefined, saved.token);
    }).then(render, function (error) {
      if (retryable(error)) {
        showError(failureText(error, "resuming your test")
                  + " Your answers so far are saved on the server.", resume);
      } else {
        forgetSession();
        listTests(error.code === "token_expired" ? endedText(error)
                  : "Your earlier test could not be resumed (" + error.message
                    + "). Choose a test to start again.");
      }
    });
  }

  function render(state, notice) {
    if (state.max_items && saved && saved.max_items !== state.max_items) {
      saved.max_items = state.max_items;
      saveSession(saved);
    }
    if (state.status === "finished" || !state.item) {
      renderResult(state, notice);
    } else {
      renderItem(state, notice);
    }
  }

  function renderItem(state, notice) {
    var item = state.item;
    var same = shown && shown.item && shown.item.item_id === item.item_id
      && !$("view-item").hidden;
    shown = state;
    var number = item.position || state.position;
    var most = state.max_items || (saved && saved.max_items);
    var progressText = most ? "Question " + number + " of at most " + most : "Question " + number;
    $("item-test-title").textContent = saved ? saved.title : "";
    var heading = $("progress-text");
    heading.textContent = "Question " + number;
    if (most) { heading.appendChild(el("span", "of", " of at most " + most)); }
    var bar = $("progress-bar");
    bar.max = most || number;
    bar.value = Math.min(number, most || number);
    if (!same) {
      buildOptions(item);
    }
    var form = $("item-form");
    form.setAttribute("data-item-id", item.item_id);
    form.setAttribute("data-position", number);
    showSending(false);
    show("view-item");
    message("item-message", notice || "");
    if (!same) {
      focusHeading("item-heading");
      announce(progressText + (notice ? ". " + notice : ""));
    } else if (notice) {
      announce(notice);
    }
  }

  function buildOptions(item) {
    $("item-stem").textContent = item.stem;
    var box = $("item-options");
    box.textContent = "";
    var choice = readStored(CHOICE_KEY);
    var kept = choice && saved && choice.session_id === saved.session_id
      && choice.item_id === item.item_id ? choice.option : null;
    (item.options || []).forEach(function (option, index) {
      var label = el("label", "option");
      var input = document.createElement("input");
      input.type = "radio";
      input.name = "answer";
      input.value = option.id;
      input.id = "option-" + index;
      input.checked = option.id === kept;
      label.appendChild(input);
      if (String(option.id).length <= 2) {
        label.appendChild(el("span", "option-id", option.id));
      }
      label.appendChild(el("span", "option-text", option.text));
      box.appendChild(label);
    });
  }

  function chosen() {
    var checked = document.querySelector('#item-options input[name="answer"]:checked');
    return checked ? checked.value : null;
  }

  function rememberChoice() {
    if (!saved || !shown || !shown.item) { return; }
    writeStored(CHOICE_KEY, { session_id: saved.session_id, item_id: shown.item.item_id,
                              option: chosen() });
  }

  function showSending(sending) {
    var submit = $("submit-answer");
    submit.disabled = sending;
    submit.textContent = sending ? "Sending…" : "Submit answer";
    $("retry").disabled = sending;
    $("item-form").setAttribute("aria-busy", sending ? "true" : "false");
    if (!sending) {
      $("retry").hidden = true;
      submit.hidden = false;
    }
  }

  function submitAnswer(event) {
    if (event) { event.preventDefault(); }
    if (busy || !shown || !shown.item) { return; }
    var answer = chosen();
    if (answer === null) {
      message("item-message", "Choose an answer first.");
      announce("Choose an answer first.");
      var first = document.querySelector('#item-options input[name="answer"]');
      if (first) { first.focus(); }
      return;
    }
    busy = true;
    var item = shown.item;
    rememberChoice();
    showSending(true);
    api("POST", sessionPath("/responses"), { item_id: item.item_id, response: answer },
        saved.token).then(function (state) {
      busy = false;
      writeStored(CHOICE_KEY, null);
      render(state);
    }, function (error) {
      busy = false;
      answerFailed(error, answer);
    });
  }

  function answerFailed(error, answer) {
    if (retryable(error)) {
      showSending(false);
      var text = failureText(error, "sending your answer") + " Your answer " + answer
        + " is kept; press Retry to send it again.";
      message("item-message", text);
      $("submit-answer").hidden = true;
      $("retry").hidden = false;
      $("retry").focus();
      announce(text);
    } else if (error.code === "time_limit") {
      // The time ran out: the server finished the session on the answers given.
      api("GET", sessionPath(), undefined, saved.token).then(function (state) {
        render(state, "Time is up: your test has ended and was scored on the answers you "
                      + "gave before the time limit.");
      }, function (again) { answerFailed(again, answer); });
    } else if (error.status === 409) {
      // Not the current item any more (answered in another tab, or a double submit):
      // show where the session really is.
      api("GET", sessionPath(), undefined, saved.token).then(function (state) {
        var moved = !state.item || state.item.item_id !== shown.item.item_id;
        render(state, moved ? "That question had already been answered, so here is your "
                              + "current question." : "The server was busy; please submit again.");
      }, function (again) { answerFailed(again, answer); });
    } else if (error.status === 401 || error.status === 403 || error.status === 404) {
      forgetSession();
      listTests(endedText(error));
    } else {
      showSending(false);
      message("item-message", failureText(error, "sending your answer"));
      announce(failureText(error, "sending your answer"));
      var checked = document.querySelector('#item-options input[name="answer"]:checked');
      if (checked) { checked.focus(); }
    }
  }

  // --- the result --------------------------------------------------------------------

  function levelsOf(code) {
    // The public test listing may say which levels a standard has; without that, a null
    // level means the estimate is below the first level.
    var test = lastTests && saved && lastTests.filter(function (t) {
      return t.id === saved.test_id;
    })[0];
    var standard = test && (test.standards || []).filter(function (s) {
      return s.code === code;
    })[0];
    return standard && Array.isArray(standard.levels) ? standard.levels : null;
  }

  function levelText(standard) {
    if (standard.theta === null || standard.theta === undefined) {
      return { text: "Not measured: no question of this standard was given", kind: "none" };
    }
    if (standard.level) {
      return { text: "Level: " + capitalize(standard.level), kind: "level" };
    }
    var levels = Array.isArray(standard.levels) ? standard.levels : levelsOf(standard.code);
    if (levels && !levels.length) {
      return { text: "No proficiency levels are defined for this standard", kind: "none" };
    }
    return { text: "Below the first level", kind: "below" };
  }

  function summaryText(result, answered) {
    // A multidimensional test measures every standard at once (each θ borrows strength
    // from the others through their correlation); its overall θ is the composite.
    var after = " after " + answered + (answered === 1 ? " question." : " questions.");
    var composite = result.composite;
    if (!composite) {
      return "Overall ability θ = " + fmt(result.theta) + " (SE " + fmt(result.se) + ")" + after;
    }
    var weights = Object.keys(composite.weights || {}).map(function (code) {
      return code + " " + fmt(composite.weights[code]);
    });
    return "Overall ability θ = " + fmt(composite.theta) + " (SE " + fmt(composite.se)
      + "), the weighted sum of your standards' θ (" + weights.join(", ") + "), all measured "
      + "together" + after;
  }

  function renderResult(state, notice) {
    shown = state;
    writeStored(CHOICE_KEY, null);
    $("result-test-title").textContent = saved ? saved.title : "";
    var result = state.result;
    var decisionBox = $("result-decision");
    var list = $("result-standards");
    list.textContent = "";
    decisionBox.textContent = "";
    decisionBox.hidden = true;
    decisionBox.className = "decision";
    var answered = state.position;
    var spoken = "Test finished.";
    if (!result) {
      $("result-summary").textContent = "Your " + answered + " answers are recorded. This test "
        + "does not show results here; your organisation will tell you your result.";
    } else {
      $("result-summary").textContent = summaryText(result, answered);
      var decision = result.decision;
      if (decision) {
        decisionBox.hidden = false;
        decisionBox.classList.add(decision.pass ? "pass" : "fail");
        decisionBox.setAttribute("data-pass", decision.pass ? "true" : "false");
        var verdict = decision.pass ? "Passed" : "Not passed";
        decisionBox.appendChild(el("p", "decision-label", "Credential decision"));
        decisionBox.appendChild(el("p", "decision-verdict", verdict));
        var method = METHODS[decision.method] || decision.method;
        decisionBox.appendChild(el("p", "decision-why",
          "Your overall θ = " + fmt(result.theta) + " is " + (decision.pass ? "at or above" : "below")
          + " the cut score θ = " + fmt(decision.cut)
          + (method ? ", decided by " + method : "") + "."));
        spoken += " Credential decision: " + verdict + ".";
        if (decision.pass && window.irtcatBadges && saved) {   // badges.js: the download link
          window.irtcatBadges.offer(decisionBox, saved.session_id, saved.token);
        }
      }
      (result.standards || []).forEach(function (standard) {
        var card = el("li", "card standard");
        card.setAttribute("data-code", standard.code);
        var heading = el("h3", null, standard.title || standard.code);
        if (standard.title) { heading.appendChild(el("span", "code", " " + standard.code)); }
        card.appendChild(heading);
        var level = levelText(standard);
        var badge = el("p", "level level-" + level.kind, level.text);
        badge.setAttribute("data-level", standard.level || level.kind);
        card.appendChild(badge);
        if (standard.theta !== null && standard.theta !== undefined) {
          card.appendChild(el("p", "estimate", "θ = " + fmt(standard.theta) + " (SE "
                                                + fmt(standard.se) + ")"));
        }
        list.appendChild(card);
      });
    }
    if (window.irtcatCareers) { window.irtcatCareers.render(state, saved); }  // careers.js
    show("view-result");
    message("result-message", notice || "");
    focusHeading("result-heading");
    announce(notice ? notice + " " + spoken : spoken);
  }

  // --- starting over -----------------------------------------------------------------

  function startOver() {
    var active = shown && shown.status === "active";
    if (active && !window.confirm("Leave this test? Your answers so far will not be "
                                  + "continued on this page.")) {
      return;
    }
    forgetSession();
    listTests();
  }

  function init() {
    $("item-form").addEventListener("submit", submitAnswer);
    $("retry").addEventListener("click", submitAnswer);
    $("item-options").addEventListener("change", function () {
      rememberChoice();
      message("item-message", "");
    });
    $("start-over").addEventListener("click", startOver);
    $("another-test").addEventListener("click", function () {
      forgetSession();
      listTests();
    });
    saved = readStored(SESSION_KEY);
    if (saved && saved.session_id && saved.token) {
      resume();
    } else {
      forgetSession();
      listTests();
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
}());
