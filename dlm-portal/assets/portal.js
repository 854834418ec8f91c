// DLM portal: live updates and plots. Plain JavaScript, no framework, nothing loaded from
// elsewhere. It polls the portal's own JSON routes:
// - the Interactive page (#clusters): /api/clusters every 1.5 s, updating each node's and
//   server's cells in place (a node's radio button keeps its choice); when the clusters' nodes
//   change, the section is fetched again from the page itself;
// - a job's page (#job-live): /api/jobs/ID?after=T every second until the job has ended,
//   updating its state, elapsed time, logs, memory bar and server bars, and adding the new
//   points to the plots (#faults-plot, #traffic-plot; each canvas's data-points attribute is
//   the number of points it draws).
// Every text it shows comes from the portal (sizes are printed there); it formats no size.
'use strict';

(function () {
  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  // GET a JSON route; a 401 throws an error with `session` set (the session has ended).
  async function getJson(url) {
    const response = await fetch(url, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } });
    if (response.status === 401) {
      const error = new Error('your session has ended');
      error.session = true;
      throw error;
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || 'HTTP ' + response.status);
    return body;
  }

  // Runs `step` now and then every `ms` milliseconds after it finishes, until it returns false.
  function every(ms, step) {
    const run = async () => {
      let again = true;
      try {
        again = await step();
      } catch (error) {
        console.error(error);
      }
      if (again !== false) setTimeout(run, ms);
    };
    run();
  }

  function setText(element, text) {
    if (element && element.textContent !== String(text)) element.textContent = String(text);
    return element;
  }

  function field(root, name) {
    return root.querySelector('[data-field="' + name + '"]');
  }

  function showError(element, message) {
    if (!element) return;
    setText(element, message || '');
    element.hidden = !message;
  }

  // --- The Interactive page ---

  async function refetchClusters() {
    const chosen = $('input[name=place]:checked');
    const response = await fetch(location.pathname, { credentials: 'same-origin', cache: 'no-store' });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), 'text/html').getElementById('clusters');
    const section = $('#clusters');
    if (!fresh || !section) return;
    section.replaceWith(document.importNode(fresh, true));
    if (chosen) {
      const again = $$('input[name=place]').find((input) => input.value === chosen.value);
      if (again) again.checked = true;
    }
  }

  function updateClusters(data) {
    const section = $('#clusters');
    const boxes = $$('.cluster', section);
    const shown = $$('tr.node', section).map((row) => row.dataset.place).join('\n');
    const sent = data.clusters.flatMap((c) => c.nodes.map((n) => n.place)).join('\n');
    const servers = $$('tr.server', section).length;
    const sentServers = data.clusters.reduce((sum, c) => sum + c.servers.length, 0);
    if (boxes.length !== data.clusters.length || shown !== sent || servers !== sentServers) return refetchClusters();
    setText($('#queued'), data.queued);
    for (const cluster of data.clusters) {
      const box = boxes.find((b) => b.dataset.cluster === cluster.name);
      if (!box) return refetchClusters();
      setText(field(box, 'reach'), cluster.reach).dataset.reach = cluster.reach;
      setText(field(box, 'clients'), cluster.clients);
      setText(field(box, 'pool_available'), cluster.pool_available);
      showError(field(box, 'error'), cluster.error);
      for (const node of cluster.nodes) {
        const row = $$('tr.node', box).find((r) => r.dataset.place === node.place);
        if (!row) return refetchClusters();
        for (const name of ['available', 'free', 'load', 'jobs']) setText(field(row, name), node[name]);
        setText(field(row, 'busy'), node.busy ? 'busy' : '-');
        row.classList.toggle('busy', node.busy);
      }
      for (const server of cluster.servers) {
        const row = $$('tr.server', box).find((r) => r.dataset.server === server.key);
        if (!row) return refetchClusters();
        setText(field(row, 'state'), server.state);
        setText(field(row, 'used'), server.used);
        const meter = field(row, 'meter');
        meter.max = Math.max(1, server.cap_bytes);
        meter.value = server.used_bytes;
      }
    }
    section.dataset.updated = String(Date.now());
  }

  function clustersLive() {
    every(1500, async () => {
      if (!$('#clusters')) return false;
      try {
        updateClusters(await getJson('/api/clusters'));
        showError($('#live-error'), '');
      } catch (error) {
        if (error.session) {
          showError($('#live-error'), 'Your session has ended: log in again to see the clusters live.');
          return false;
        }
        showError($('#live-error'), 'The clusters could not be updated: ' + error.message);
      }
      return true;
    });
  }

  // --- A job's page ---

  // Draws the series `ys` (each [values, colour]) against `xs` (seconds) on `canvas`, with the
  // top of the y axis labelled `top` (the largest value, printed by the portal).
  function plot(canvas, xs, ys, top) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 560;
    const height = canvas.clientHeight || 200;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const left = 8, right = width - 8, topY = 18, bottom = height - 20;
    const xMax = Math.max(1, xs.length ? xs[xs.length - 1] : 0);
    let yMax = 0;
    for (const [values] of ys) for (const v of values) yMax = Math.max(yMax, v);
    yMax = yMax || 1;
    ctx.strokeStyle = '#c9ced6';
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(left, topY);
    ctx.lineTo(left, bottom);
    ctx.lineTo(right, bottom);
    ctx.moveTo(left, topY);
    ctx.lineTo(right, topY);
    ctx.stroke();
    ctx.fillStyle = '#5b6472';
    ctx.font = '12px system-ui, sans-serif';
    ctx.textBaseline = 'bottom';
    ctx.fillText(top, left + 4, topY - 2);
    ctx.textBaseline = 'top';
    ctx.fillText('0 s', left, bottom + 4);
    const end = Math.round(xMax) + ' s';
    ctx.fillText(end, right - ctx.measureText(end).width, bottom + 4);
    for (const [values, colour] of ys) {
      ctx.strokeStyle = colour;
      ctx.lineWidth = 2;
      ctx.beginPath();
      values.forEach((v, i) => {
        const x = left + (xs[i] / xMax) * (right - left);
        const y = bottom - (v / yMax) * (bottom - topY);
        if (i === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      });
      if (values.length === 1) ctx.arc(left + (xs[0] / xMax) * (right - left), bottom - (values[0] / yMax) * (bottom - topY), 2, 0, 2 * Math.PI);
      ctx.stroke();
    }
    canvas.dataset.points = String(xs.length);
  }

  function setTail(element, text) {
    if (!element || element.textContent === text) return;
    const atEnd = element.scrollHeight - element.scrollTop - element.clientHeight < 8;
    element.textContent = text;
    if (atEnd) element.scrollTop = element.scrollHeight;
  }

  function serverBars(servers) {
    const box = $('#servers-bars');
    const most = Math.max(1, ...servers.map((s) => s.bytes));
    const rows = servers.map((server) => {
      const row = document.createElement('div');
      row.className = 'bar';
      row.dataset.server = server.host;
      const host = document.createElement('span');
      host.className = 'host';
      host.textContent = server.host;
      const meter = document.createElement('meter');
      meter.max = most;
      meter.value = server.bytes;
      const text = document.createElement('span');
      text.className = 'text';
      text.textContent = server.text;
      row.append(host, meter, text);
      return row;
    });
    box.replaceChildren(...rows);
  }

  function jobLive(section) {
    // A log's tail starts at its end.
    for (const log of $$('pre.log', section)) log.scrollTop = log.scrollHeight;
    const points = { t: [], faults: [], fetched: [], written: [] };
    let after = null;
    every(1000, async () => {
      let data;
      try {
        data = await getJson(section.dataset.poll + (after === null ? '' : '?after=' + after));
      } catch (error) {
        if (error.session) {
          $('#session-expired').hidden = false;
          return false;
        }
        showError($('#live-error'), 'The job could not be updated: ' + error.message);
        return true;
      }
      showError($('#live-error'), '');
      setText($('#job-state'), data.state).dataset.state = data.state;
      setText($('#job-elapsed'), data.elapsed);
      setText($('#job-place'), data.place);
      setText($('#job-outcome'), data.outcome);
      setTail($('#stdout-tail'), data.stdout);
      setTail($('#stderr-tail'), data.stderr);
      const stats = data.stats;
      if (stats) {
        $('#stats-none').hidden = true;
        const bar = $('#memory-bar');
        bar.max = Math.max(1, stats.budget);
        bar.value = stats.resident;
        setText($('#memory-text'), stats.memory);
        setText($('#faults-total'), stats.faults);
        setText($('#fetched-text'), stats.fetched_text);
        setText($('#written-back-text'), stats.written_back_text);
        points.t.push(...stats.t);
        points.faults.push(...stats.faults_per_s);
        points.fetched.push(...stats.fetched);
        points.written.push(...stats.written_back);
        after = stats.last_t_ms;
        const rate = Math.max(0, ...points.faults);
        plot($('#faults-plot'), points.t, [[points.faults, '#2f9e44']], Math.round(rate) + ' faults/s');
        const last = points.t.length - 1;
        const top = last < 0 ? '' : points.fetched[last] >= points.written[last] ? stats.fetched_text : stats.written_back_text;
        plot($('#traffic-plot'), points.t, [[points.fetched, '#1c7ed6'], [points.written, '#e8590c']], top);
        serverBars(stats.servers);
      }
      section.dataset.updated = String(Date.now());
      if (data.final) {
        section.dataset.final = 'true';
        const cancel = $('#cancel-form');
        if (cancel) cancel.remove();
        return false;
      }
      return true;
    });
  }

  // --- Forms ---

  // A job form is sent once: its button says that the upload is under way.
  function oneSubmission(form) {
    const button = $('button[type=submit]', form);
    if (!button) return;
    const label = button.textContent;
    form.addEventListener('submit', () => {
      button.disabled = true;
      button.textContent = 'Uploading…';
    });
    // Back to this page from the browser's history: the form can be sent again.
    window.addEventListener('pageshow', () => {
      button.disabled = false;
      button.textContent = label;
    });
  }

  document.addEventListener('DOMContentLoaded', () => {
    if ($('#clusters')) clustersLive();
    const job = $('#job-live');
    if (job) jobLive(job);
    for (const form of $$('#autorun-form, #interactive-form')) oneSubmission(form);
  });
})();
