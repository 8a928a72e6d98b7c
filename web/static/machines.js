// Live machine states: every element [data-machine="<id>"] holding a
// [data-state-label] badge shows its machine's status (free, in use,
// maintenance, device offline) from GET /api/v1/machines/status, read
// again whenever the event stream says something changed. The words come
// from the data-msg-state-<status> attributes of the [data-state-labels]
// element (translated by the server).
(function () {
  'use strict';
  var FG = window.FabGate;
  var labels = document.querySelector('[data-state-labels]');
  if (!FG || !labels) { return; }
  var states = ['available', 'in_use', 'maintenance', 'retired', 'offline'];

  function show(list) {
    list.forEach(function (st) {
      document.querySelectorAll('[data-machine="' + st.machine_id + '"] [data-state-label]').forEach(function (badge) {
        var word = labels.getAttribute('data-msg-state-' + st.status) || st.status;
        if (badge.textContent !== word) { badge.textContent = word; }
        states.forEach(function (s) { badge.classList.toggle('state-' + s, s === st.status); });
        var holder = badge.closest('[data-state]');
        if (holder) { holder.dataset.state = st.status; }
      });
    });
  }

  var loading = false, again = false;
  function load() {
    if (loading) { again = true; return; }
    loading = true;
    FG.api('GET', '/api/v1/machines/status').then(function (res) {
      loading = false;
      if (res.ok && Array.isArray(res.data)) { show(res.data); }
      if (again) { again = false; load(); }
    });
  }

  load();
  FG.live(function () { load(); });
})();
