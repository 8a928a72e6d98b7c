// A member's page: the password reset link the API issues is shown once,
// as a full address to hand over, with when it stops working.
(function () {
  'use strict';
  var FG = window.FabGate;
  if (!FG) { return; }
  document.addEventListener('fabgate:done', function (ev) {
    if (!ev.target.matches || !ev.target.matches('[data-reset-link]') || !ev.detail) { return; }
    var scope = ev.target.closest('[data-api-scope]');
    var out = scope.querySelector('[data-reset-out]');
    var url = scope.querySelector('[data-reset-url]');
    url.value = window.location.origin + '/reset?token=' + encodeURIComponent(ev.detail.token);
    scope.querySelector('[data-reset-expires]').textContent = FG.formatLab(new Date(ev.detail.expires_at));
    out.hidden = false;
    url.focus();
    url.select();
  });
})();
