// One live reader of the node's `/stream`: an EventSource that knows the stream's event names,
// remembers the last offset it delivered, pauses and resumes from there, and comes back by
// itself after the node or the connection went away.
//
// Event names handled (docs/streaming.md, and the contract's next version):
//   record                                  one committed record, id = its offset
//   snapshot                                the whole image at once, id = its offset
//   snapshot_begin / snapshot_chunk / snapshot_end
//                                           the image in pieces; delivered once, at the end
//   progress                                nothing to deliver; id = the node's applied offset
//   error (with data) / stream_error        the node ended the stream and says why
//   shutdown                                the node is stopping

import { readUrl } from './api.js';

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 8000;

export class LiveStream {
  /**
   * handlers: onRecord(record), onSnapshot({offset, epoch, metadata}), onProgress(data),
   * onState(state, message) with state one of connecting, live, reconnecting, paused,
   * unauthorized, rejected, stopped.
   */
  constructor(handlers) {
    this.h = handlers;
    this.es = null;
    this.timer = null;
    this.failures = 0;
    this.lastId = null;
    this.from = 0;
    this.names = '';
    this.paused = false;
    this.pending = null;
  }

  /** Starts reading at `from` (an offset, 'start' or 'end') with an optional names filter. */
  start(from, names = '') {
    this.from = from;
    this.names = names;
    this.lastId = null;
    this.paused = false;
    this.open();
  }

  /** Stops reading, keeping the position. */
  pause() {
    this.paused = true;
    this.close();
    this.state('paused', this.lastId === null ? '' : `after offset ${this.lastId}`);
  }

  /** Reads on from the first offset after the last one delivered. */
  resume() {
    this.paused = false;
    this.open();
  }

  /** Stops for good (until the next start). */
  stop() {
    this.paused = true;
    this.close();
    this.state('stopped', '');
  }

  /** Reconnects now from where it is (after the token changed, say). */
  restart() {
    if (!this.paused) this.open();
  }

  /** Where the next connection starts: after the last offset seen, or the chosen start. */
  nextFrom() {
    return this.lastId === null ? this.from : this.lastId + 1;
  }

  close() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.es) {
      this.es.close();
      this.es = null;
    }
    this.pending = null;
  }

  state(s, message) {
    if (this.h.onState) this.h.onState(s, message);
  }

  noteId(ev) {
    const id = Number(ev.lastEventId);
    if (ev.lastEventId !== '' && Number.isSafeInteger(id) && (this.lastId === null || id > this.lastId)) {
      this.lastId = id;
    }
  }

  open() {
    this.close();
    const url = readUrl('stream', {
      offset: this.nextFrom(),
      names: this.names,
      // Keep showing what this node has while it sees no leader; the banner says so.
      require_leader: 'false',
    });
    const es = new EventSource(url);
    this.es = es;
    this.state(this.failures ? 'reconnecting' : 'connecting', '');
    const mine = (f) => (ev) => {
      if (this.es !== es) return;
      try {
        f(ev);
      } catch (e) {
        console.error('yakt console: could not handle a stream event', ev.type, e);
      }
    };
    es.onopen = mine(() => {
      this.failures = 0;
      this.state('live', '');
    });
    es.addEventListener('record', mine((ev) => {
      const rec = JSON.parse(ev.data);
      if (this.lastId !== null && rec.offset <= this.lastId) return; // already delivered
      this.lastId = rec.offset;
      this.h.onRecord(rec);
    }));
    es.addEventListener('snapshot', mine((ev) => {
      const snap = JSON.parse(ev.data);
      this.noteId(ev);
      this.h.onSnapshot(snap);
    }));
    es.addEventListener('snapshot_begin', mine((ev) => {
      const d = JSON.parse(ev.data);
      this.pending = { offset: d.offset, epoch: d.epoch, metadata: {} };
    }));
    es.addEventListener('snapshot_chunk', mine((ev) => {
      if (!this.pending) return;
      const d = JSON.parse(ev.data);
      for (const [name, list] of Object.entries(d.metadata || {})) {
        const into = this.pending.metadata[name] || (this.pending.metadata[name] = []);
        for (const item of list) into.push(item);
      }
    }));
    es.addEventListener('snapshot_end', mine((ev) => {
      const snap = this.pending;
      this.pending = null;
      if (!snap) return;
      this.noteId(ev);
      if (ev.lastEventId !== '') snap.offset = Number(ev.lastEventId);
      this.h.onSnapshot(snap);
    }));
    es.addEventListener('progress', mine((ev) => {
      this.noteId(ev);
      if (this.h.onProgress) this.h.onProgress(JSON.parse(ev.data));
    }));
    es.addEventListener('shutdown', mine(() => {
      this.state('reconnecting', 'the node is shutting down');
    }));
    es.addEventListener('stream_error', mine((ev) => this.serverEnded(ev)));
    // EventSource's own `error` (no data: the connection) shares its name with the old in-band
    // `event: error` (data: why the node ended the stream).
    es.addEventListener('error', mine((ev) => {
      if (typeof ev.data === 'string') this.serverEnded(ev);
      else this.connectionLost(es);
    }));
  }

  serverEnded(ev) {
    let why = '';
    try {
      const d = JSON.parse(ev.data);
      why = `${d.error}: ${d.message}`;
    } catch {
      why = String(ev.data);
    }
    // The browser reconnects by itself with Last-Event-ID once the node closes the stream.
    this.state('reconnecting', `the node ended the stream (${why})`);
  }

  connectionLost(es) {
    if (es.readyState !== EventSource.CLOSED) {
      // The browser is retrying by itself, with Last-Event-ID.
      this.failures += 1;
      this.state('reconnecting', 'lost the connection; retrying');
      return;
    }
    // The browser gave up (an HTTP error status): find out why, then retry if it can help.
    this.es = null;
    es.close();
    this.failures += 1;
    this.diagnose();
  }

  async diagnose() {
    const url = readUrl('fetch', { offset: this.nextFrom(), max_records: 1, names: this.names });
    let status = 0;
    let body = null;
    try {
      const resp = await fetch(url, { cache: 'no-store' });
      status = resp.status;
      body = await resp.json().catch(() => null);
    } catch {
      status = 0;
    }
    if (this.paused || this.es) return;
    const message = body && body.message ? body.message : '';
    if (status === 401) {
      this.state('unauthorized', message || 'the token is missing or wrong');
      return; // a new token restarts the stream
    }
    if (status === 400 || status === 416) {
      this.state('rejected', message || `the node answered ${status}`);
      return;
    }
    const wait = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(this.failures, 5));
    this.state('reconnecting', status === 0 ? 'the node does not answer' : `the node answered ${status}`);
    this.timer = setTimeout(() => {
      if (!this.paused) this.open();
    }, wait);
  }
}
