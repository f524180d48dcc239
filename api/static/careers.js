/* irtcat learner page, the career section of a result: the job roles the learner's
 * levels meet and, for the others, the levels short per standard; and, after a passed
 * credential, a form to share it with employers through the talent network (consent
 * with a contact handle the learner chooses, and its withdrawal).
 *
 * app.js calls window.irtcatCareers.render(state, saved) when it shows a result; the
 * consent calls carry the session's own token, like every call of the page. All server
 * text is inserted with textContent, never as HTML.
 */
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function levelName(name) {
    return name ? name.charAt(0).toUpperCase() + name.slice(1) : "no level yet";
  }

  function consentCall(method, saved, body) {
    return fetch("/v1/sessions/" + encodeURIComponent(saved.session_id) + "/consent", {
      method: method,
      headers: { "Authorization": "Bearer " + saved.token,
                 "Content-Type": "application/json", "Accept": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store", credentials: "omit"
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = (data && data.error) || {};
          throw new Error(error.message || "the server answered " + response.status);
        }
        return data;
      });
    });
  }

  function renderRoles(list, roles) {
    roles.forEach(function (role) {
      var card = el("li", "card role");
      card.setAttribute("data-role", role.id);
      card.setAttribute("data-met", role.met ? "true" : "false");
      card.appendChild(el("h3", null, role.title));
      if (role.met) {
        card.appendChild(el("p", "level level-level", "Your levels meet this role"));
      } else {
        var gaps = el("ul", "gaps");
        role.gaps.forEach(function (gap) {
          gaps.appendChild(el("li", null, gap.code + ": " + levelName(gap.required)
            + " needed, you have " + levelName(gap.level).toLowerCase() + " ("
            + gap.short + (gap.short === 1 ? " level" : " levels") + " short)"));
        });
        card.appendChild(el("p", "muted small", "To qualify:"));
        card.appendChild(gaps);
      }
      list.appendChild(card);
    });
  }

  function renderConsent(box, saved) {
    box.textContent = "";
    box.appendChild(el("h3", null, "Share your credential with employers"));
    box.appendChild(el("p", "small", "Employers searching the talent network will see your "
      + "credential, your level per standard and the contact you give here: never your θ, "
      + "your answers or the questions. You can withdraw at any time."));
    var form = el("form");
    form.id = "consent-form";
    form.noValidate = true;
    var label = el("label", null, "How employers may contact you (e-mail or profile link)");
    label.setAttribute("for", "consent-contact");
    var input = el("input");
    input.id = "consent-contact";
    input.type = "text";
    input.maxLength = 200;
    input.autocomplete = "email";
    input.required = true;
    var status = el("p", "notice");
    status.id = "consent-status";
    status.setAttribute("role", "status");
    status.hidden = true;
    var share = el("button", "primary", "Share with employers");
    share.type = "submit";
    var withdraw = el("button", "secondary", "Withdraw consent");
    withdraw.type = "button";
    withdraw.id = "consent-withdraw";
    withdraw.hidden = true;
    var actions = el("div", "actions");
    actions.appendChild(share);
    actions.appendChild(withdraw);
    form.appendChild(label);
    form.appendChild(input);
    form.appendChild(actions);
    box.appendChild(form);
    box.appendChild(status);

    function say(text) {
      status.hidden = !text;
      status.textContent = text;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var contact = input.value.trim();
      if (!contact) {
        say("Please enter how employers may contact you.");
        input.focus();
        return;
      }
      share.disabled = true;
      consentCall("POST", saved, { contact: contact }).then(function (given) {
        say("Shared: employers can now find you, with the contact " + given.contact + ".");
        withdraw.hidden = false;
        withdraw.focus();
      }, function (error) {
        say("Your consent could not be recorded: " + error.message);
      }).finally(function () { share.disabled = false; });
    });
    withdraw.addEventListener("click", function () {
      withdraw.disabled = true;
      consentCall("DELETE", saved).then(function () {
        say("Withdrawn: employers no longer find you.");
        withdraw.hidden = true;
        input.focus();
      }, function (error) {
        say("Your consent could not be withdrawn: " + error.message);
      }).finally(function () { withdraw.disabled = false; });
    });
  }

  function render(state, saved) {
    var section = $("result-careers");
    if (!section) { return; }
    var result = state && state.result;
    var roles = (result && result.roles) || [];
    section.hidden = !roles.length;
    var list = $("careers-roles");
    list.textContent = "";
    renderRoles(list, roles);
    var box = $("careers-consent");
    var passed = result && result.decision && result.decision.pass === true;
    box.hidden = !(roles.length && passed && saved && saved.token);
    if (!box.hidden) { renderConsent(box, saved); }
  }

  window.irtcatCareers = { render: render };
}());
