// Brokers, topics and partitions, drawn from the image the page folds from the stream. Lists
// are virtual (only the rows in view exist), and redrawn at most once a frame.

import { VirtualList } from './vlist.js';

const ROW = 30;

function show(v) {
  if (v === null || v === undefined) return '–';
  if (Array.isArray(v)) return `[${v.join(', ')}]`;
  return String(v);
}

export class BrokersView {
  constructor(image) {
    this.image = image;
    this.seen = -1;
    this.list = new VirtualList(document.getElementById('brokers'), {
      rowHeight: ROW,
      columns: 7,
      render: (b, c, row) => {
        row.className = 'vrow brokers-grid';
        row.dataset.brokerId = String(b.brokerId);
        row.dataset.status = b.brokerStatus;
        c[0].textContent = show(b.brokerId);
        c[1].textContent = `${b.brokerHost}:${b.brokerPort}`;
        c[2].textContent = show(b.brokerStatus);
        c[2].className = `status status-${String(b.brokerStatus).toLowerCase()}`;
        c[3].textContent = show(b.epoch);
        c[4].textContent = show(b.securityProtocol);
        c[5].textContent = show(b.rackId);
        c[6].textContent = show(b.internalUUID);
        c[6].className = 'wide mono';
      },
    });
  }

  draw() {
    if (this.seen === this.image.brokersVersion) {
      this.list.refresh();
      return;
    }
    this.seen = this.image.brokersVersion;
    const brokers = [...this.image.brokers.values()].sort((a, b) => a.brokerId - b.brokerId);
    this.list.setItems(brokers);
  }
}

export class TopicsView {
  constructor(image) {
    this.image = image;
    this.seen = -1;
    this.filter = '';
    this.selected = null;
    this.sorted = [];
    this.sortedAt = -1;
    this.filterInput = document.getElementById('topic-filter');
    this.shown = document.getElementById('topic-shown');
    this.filterInput.addEventListener('input', () => {
      this.filter = this.filterInput.value.trim().toLowerCase();
      this.seen = -1;
      this.draw();
    });
    this.list = new VirtualList(document.getElementById('topics'), {
      rowHeight: ROW,
      columns: 4,
      render: (t, c, row) => {
        const health = this.image.topicHealth(t.topicUUID);
        row.className = 'vrow topics-grid topic-row';
        row.dataset.name = t.name;
        row.classList.toggle('selected', t.topicUUID === this.selected);
        c[0].textContent = t.name;
        c[0].title = t.name;
        c[1].textContent = String(health.count);
        c[2].textContent = health.under || health.leaderless
          ? `${health.under}${health.leaderless ? ` (${health.leaderless} without leader)` : ''}`
          : '0';
        c[2].className = health.under || health.leaderless ? 'warn' : '';
        c[3].textContent = t.topicUUID;
        c[3].className = 'wide mono';
      },
      onPick: (t) => {
        this.selected = t.topicUUID;
        this.drawDetail();
        this.list.refresh();
      },
    });
    this.parts = new VirtualList(document.getElementById('partitions'), {
      rowHeight: ROW,
      columns: 6,
      render: (p, c, row) => {
        row.className = 'vrow partitions-grid';
        row.dataset.partition = String(p.partitionId);
        c[0].textContent = show(p.partitionId);
        c[1].textContent = show(p.leader);
        c[2].textContent = show(p.ISR);
        c[2].className = (p.ISR || []).length < (p.replicas || []).length ? 'warn' : '';
        c[3].textContent = show(p.replicas);
        c[4].textContent = show(p.leaderEpoch);
        c[5].textContent = show(p.partitionEpoch);
      },
    });
  }

  draw() {
    if (this.seen === this.image.topicsVersion) {
      this.list.refresh();
      return;
    }
    this.seen = this.image.topicsVersion;
    if (this.sortedAt !== this.image.topics.size || this.sorted.length !== this.image.topics.size) {
      this.sorted = [...this.image.topics.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      this.sortedAt = this.image.topics.size;
    }
    const f = this.filter;
    const items = f ? this.sorted.filter((t) => t.name.toLowerCase().includes(f)) : this.sorted;
    this.shown.textContent = f ? `${items.length} of ${this.sorted.length} shown` : '';
    this.list.setItems(items);
    this.drawDetail();
  }

  drawDetail() {
    const t = this.selected && this.image.topics.get(this.selected);
    document.getElementById('topic-detail-empty').hidden = Boolean(t);
    document.getElementById('topic-detail-body').hidden = !t;
    if (!t) return;
    document.getElementById('topic-detail-name').textContent = t.name;
    document.getElementById('topic-detail-uuid').textContent = `topicUUID ${t.topicUUID}`;
    const of = this.image.partitions.get(t.topicUUID);
    const parts = of ? [...of.values()].sort((a, b) => a.partitionId - b.partitionId) : [];
    this.parts.setItems(parts);
  }
}
