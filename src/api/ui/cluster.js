// The cluster view: every member with its own role, term and offsets, polled from the node that
// served the page (`/ui/api/members`, which gathers each member's `/cluster`), with a banner
// when there is no leader or the node cannot be reached.

import { getJson } from './api.js';

const POLL_MS = 1500;

function text(v) {
  return v === null || v === undefined ? '–' : String(v);
}

function cell(tr, value, title) {
  const td = document.createElement('td');
  td.textContent = text(value);
  if (title) td.title = title;
  tr.append(td);
  return td;
}

export class ClusterView {
  /** onAuth(status) is told when the node answers 401 (or stops doing so). */
  constructor({ onAuth }) {
    this.tbody = document.querySelector('#members tbody');
    this.summary = document.getElementById('cluster-summary');
    this.talkingTo = document.getElementById('talking-to');
    this.banner = document.getElementById('banner');
    this.onAuth = onAuth;
    this.timer = null;
    this.last = null;
  }

  start() {
    this.poll();
  }

  /** Polls again now (after the token changed). */
  now() {
    clearTimeout(this.timer);
    this.poll();
  }

  async poll() {
    clearTimeout(this.timer);
    const { status, body } = await getJson('ui/api/members');
    if (status === 200 && body) {
      this.onAuth(false);
      this.render(body);
    } else if (status === 401) {
      this.onAuth(true);
      this.showBanner('auth', 'This cluster protects reads: enter its token above.');
    } else {
      this.unreachable(status, body);
    }
    this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  showBanner(kind, message) {
    this.banner.hidden = !message;
    this.banner.dataset.kind = kind;
    this.banner.textContent = message;
  }

  unreachable(status, body) {
    const where = window.location.host;
    const why = status === 0 ? 'it does not answer' : `it answered ${status}${body && body.message ? `: ${body.message}` : ''}`;
    this.showBanner('unreachable', `Cannot reach the node at ${where} (${why}). Showing what it last said; retrying.`);
    this.talkingTo.dataset.reachable = 'false';
    for (const tr of this.tbody.children) tr.classList.add('stale');
  }

  render(body) {
    this.last = body;
    const own = body.cluster || {};
    this.talkingTo.dataset.reachable = 'true';
    this.talkingTo.dataset.nodeId = text(own.node_id);
    this.talkingTo.textContent = `node ${text(own.node_id)} · ${window.location.host} · ${text(own.role)}`;

    const views = body.members.map((m) => m.view).filter(Boolean);
    const commit = Math.max(-1, ...views.map((v) => (typeof v.commit_offset === 'number' ? v.commit_offset : -1)));

    const rows = [];
    for (const m of body.members) {
      const v = m.view;
      const tr = document.createElement('tr');
      const role = v ? v.role : 'unreachable';
      tr.dataset.memberId = text(m.id);
      tr.dataset.role = role;
      if (m.id === own.node_id) tr.classList.add('self');
      cell(tr, m.id);
      cell(tr, m.addr, m.id === own.node_id ? 'the node this page talks to' : '');
      const roleCell = cell(tr, role, v ? '' : m.error || '');
      roleCell.className = `role role-${role}`;
      cell(tr, m.voter ? 'voter' : 'learner');
      const inc = m.incarnation || (v && v.incarnation) || null;
      const incCell = cell(tr, inc ? String(inc).slice(0, 8) : null, inc || '');
      if (v && m.incarnation && v.incarnation && m.incarnation !== v.incarnation) {
        incCell.classList.add('warn');
        incCell.title = `membership lists ${m.incarnation}, the node says ${v.incarnation}: its data directory is new`;
      }
      cell(tr, v ? v.term : null);
      cell(tr, v ? v.commit_offset : null);
      cell(tr, v ? v.applied_offset : null);
      const lag = v && typeof v.applied_offset === 'number' && commit >= 0 ? Math.max(0, commit - v.applied_offset) : null;
      const lagCell = cell(tr, lag);
      if (lag !== null && lag > 0) lagCell.classList.add('warn');
      cell(tr, v ? v.leader_id : null);
      rows.push(tr);
    }
    this.tbody.replaceChildren(...rows);

    const leaders = body.members.filter((m) => m.view && m.view.role === 'leader').length;
    const down = body.members.filter((m) => !m.view).length;
    this.summary.textContent = `${body.members.length} members · term ${text(own.term)} · leader ${text(own.leader_id)}` +
      (down ? ` · ${down} unreachable` : '');

    if (own.leader_id === null || own.leader_id === undefined) {
      this.showBanner('no-leader', `No leader: node ${text(own.node_id)} sees no leader in term ${text(own.term)}. ` +
        'Writes answer 503 until one is elected; what is shown is what this node has applied.');
    } else if (leaders > 1) {
      this.showBanner('no-leader', `${leaders} members say they lead (an old leader that has not heard of term ${text(own.term)} yet).`);
    } else {
      this.showBanner('', '');
    }
  }
}
