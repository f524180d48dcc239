/* irtcat learner page: the download link of a passed session's Open Badges 3.0 credential.
 *
 * app.js calls irtcatBadges.offer(container, sessionId, token) when a result shows a pass.
 * The credential is fetched with the session's own token (GET /v1/sessions/{id}/credential,
 * JSON with a Data Integrity proof) and offered as a file, badge-<session id>.json, which
 * `irtcat credential verify FILE` checks offline. Nothing is inserted as HTML.
 */
(function () {
  "use strict";

  function offer(container, sessionId, token) {
    var path = "/v1/sessions/" + encodeURIComponent(sessionId) + "/credential";
    var holder = document.createElement("p");
    holder.className = "badge-download";
    container.appendChild(holder);
    fetch(path, { headers: { Authorization: "Bearer " + token, Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("no credential (HTTP " + response.status + ")"); }
        return response.text();
      })
      .then(function (text) {
        var link = document.createElement("a");
        link.id = "badge-download";
        link.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
        link.download = "badge-" + sessionId + ".json";
        link.textContent = "Download your Open Badge (signed credential)";
        holder.appendChild(link);
      })
      .catch(function (error) {
        holder.textContent = "The badge cannot be downloaded now: " + error.message;
      });
  }

  window.irtcatBadges = { offer: offer };
}());
