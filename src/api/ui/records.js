// The record stream view: the log from an offset the user picks, filtered by record name on
// the node (`?names=`), with a snapshot shown as one row of its own. Pause closes the stream;
// resume opens it again after the last offset shown.

import { LiveStream } from './events.js';
import { VirtualList } from './vlist.js';

/** The names the filter offers before the stream has shown any other. */
const KNOWN_NAMES = [
  'RegisterBrokerRecord',
  'TopicRecord',
  'PartitionRecord',
  'ProducerIdsRecord',
  'BrokerRegistrationChangeBrokerRecord',
  'PartitionChangeRecord',
];

/** Rows kept in memory; older ones are dropped past this. */
const MAX_ROWS = 200000;

function utc(ms) {
  if (typeof ms !== 'number') return '–';
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

export class RecordsView {
  /** onChange: asks the page to draw at the next frame. */
  constructor(onChange) {
    this.onChange = onChange;
    this.rows = [];
    this.dropped = 0;
    this.names = new Set(KNOWN_NAMES);
    this.state = document.getElementById('stream-state');
    this.offsetInput = document.getElementById('stream-offset');
    this.namesBox = document.getElementById('stream-names');
    this.startBtn = document.getElementById('stream-start');
    this.pauseBtn = document.getElementById('stream-pause');
    this.follow = document.getElementById('stream-follow');
    this.started = false;
    this.dirty = false;
    this.drawNames();

    this.list = new VirtualList(document.getElementById('records'), {
      rowHeight: 28,
      columns: 5,
      render: (r, c, row) => {
        row.className = `vrow records-grid record-row${r.snapshot ? ' snapshot' : ''}`;
        row.dataset.offset = String(r.offset);
        row.dataset.name = r.name;
        c[0].textContent = String(r.offset);
        c[1].textContent = r.epoch === undefined ? '–' : String(r.epoch);
        c[2].textContent = r.snapshot ? '' : utc(r.timestamp);
        c[3].textContent = r.name;
        c[4].textContent = r.summary;
        c[4].title = r.summary;
        c[4].className = 'wide mono';
      },
    });

    this.stream = new LiveStream({
      onRecord: (rec) => this.add({
        offset: rec.offset,
        epoch: rec.epoch,
        timestamp: rec.timestamp,
        name: rec.name,
        summary: JSON.stringify(rec.fields),
      }),
      onSnapshot: (snap) => {
        const m = snap.metadata || {};
        const counts = Object.entries(m).map(([name, list]) => `${list.length} ${name}`).join(', ');
        this.add({
          offset: snap.offset,
          epoch: snap.epoch,
          name: 'snapshot',
          snapshot: true,
          summary: `the whole image at offset ${snap.offset} (the log below it was compacted): ${counts || 'empty'}`,
        });
      },
      onState: (s, message) => {
        this.state.dataset.state = s;
        const at = this.stream && this.stream.lastId !== null ? ` · last offset ${this.stream.lastId}` : '';
        this.state.textContent = `${s}${message ? ` – ${message}` : ''}${at}`;
      },
    });

    document.getElementById('stream-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.startFromForm();
    });
    this.pauseBtn.addEventListener('click', () => this.togglePause());
  }

  drawNames() {
    const checked = new Set(
      [...this.namesBox.querySelectorAll('input:checked')].map((i) => i.value),
    );
    const fresh = this.namesBox.querySelectorAll('input').length === 0;
    const labels = [...this.names].sort().map((name) => {
      const label = document.createElement('label');
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.value = name;
      box.checked = fresh || checked.has(name);
      label.append(box, ` ${name.replace(/Record$/, '')}`);
      label.title = name;
      return label;
    });
    const legend = this.namesBox.querySelector('legend');
    this.namesBox.replaceChildren(legend, ...labels);
  }

  /** A name seen in the image stream joins the filter's choices. */
  learnName(name) {
    if (this.names.has(name)) return;
    this.names.add(name);
    this.drawNames();
  }

  /** The `names=` value: empty (everything) when every name is ticked. */
  selectedNames() {
    const boxes = [...this.namesBox.querySelectorAll('input')];
    const on = boxes.filter((b) => b.checked).map((b) => b.value);
    return on.length === boxes.length ? '' : on.join(',');
  }

  startFromForm() {
    const raw = this.offsetInput.value.trim() || '0';
    if (!/^(\d+|start|end|earliest|latest)$/.test(raw)) {
      this.state.textContent = `"${raw}" is not an offset (a number, start or end)`;
      return;
    }
    const names = this.selectedNames();
    if (names === '' && this.namesBox.querySelectorAll('input:checked').length === 0) {
      this.state.textContent = 'tick at least one record name';
      return;
    }
    this.rows = [];
    this.dropped = 0;
    this.list.setItems(this.rows);
    this.onChange();
    this.started = true;
    this.pauseBtn.disabled = false;
    this.pauseBtn.textContent = 'Pause';
    this.stream.start(raw, names);
  }

  togglePause() {
    if (!this.started) return;
    if (this.stream.paused) {
      this.pauseBtn.textContent = 'Pause';
      this.stream.resume();
    } else {
      this.pauseBtn.textContent = 'Resume';
      this.stream.pause();
    }
  }

  /** Reconnects (after the token changed) from where it is. */
  restart() {
    if (this.started) this.stream.restart();
  }

  add(row) {
    this.rows.push(row);
    if (this.rows.length > MAX_ROWS) {
      const cut = this.rows.length - MAX_ROWS + Math.floor(MAX_ROWS / 10);
      this.rows.splice(0, cut);
      this.dropped += cut;
    }
    this.dirty = true;
    this.onChange();
  }

  draw() {
    if (!this.dirty) {
      this.list.refresh();
      return;
    }
    this.dirty = false;
    const stick = this.follow.checked;
    this.list.setItems(this.rows);
    if (stick) requestAnimationFrame(() => this.list.scrollToEnd());
  }
}
