// The console page: wires the cluster view (polled), the image folded from the node's stream
// (brokers, topics, partitions), the record stream view, the tabs and the token field.

import { getJson, setToken, token } from './api.js';
import { ClusterView } from './cluster.js';
import { BrokersView, TopicsView } from './entities.js';
import { LiveStream } from './events.js';
import { Image } from './fold.js';
import { RecordsView } from './records.js';

const image = new Image();
const brokers = new BrokersView(image);
const topics = new TopicsView(image);
const records = new RecordsView(() => schedule());
const live = document.getElementById('live');
let readsNeedToken = false;

function setLive(state, message) {
  live.dataset.state = state;
  const at = image.offset === null ? '' : ` · image at ${image.offset}`;
  live.textContent = `${state}${at}`;
  live.title = message || '';
}

// The image follows the whole log from its start (a snapshot first when it was compacted).
const imageStream = new LiveStream({
  onRecord: (rec) => {
    image.apply(rec);
    records.learnName(rec.name);
    schedule();
  },
  onSnapshot: (snap) => {
    image.loadSnapshot(snap);
    schedule();
  },
  onState: (state, message) => setLive(state, message),
});

// ---- drawing, at most once a frame, only the tab in view ----

let drawScheduled = false;
function schedule() {
  if (drawScheduled) return;
  drawScheduled = true;
  requestAnimationFrame(draw);
}

function draw() {
  drawScheduled = false;
  const statuses = image.brokerStatuses();
  const live_ = Object.entries(statuses).filter(([s]) => s !== 'CLOSED').reduce((n, [, c]) => n + c, 0);
  document.getElementById('broker-count').textContent = String(live_);
  document.getElementById('topic-count').textContent = String(image.topics.size);
  document.getElementById('image-at').textContent = image.offset === null ? '' :
    `${Object.entries(statuses).map(([s, c]) => `${c} ${s}`).join(' · ')} · ${image.partitionCount} partitions · ` +
    `${image.producerIds} producer ids · folded up to offset ${image.offset}`;
  setLive(live.dataset.state, live.title);
  const tab = currentTab();
  if (tab === 'brokers') brokers.draw();
  if (tab === 'topics') topics.draw();
  if (tab === 'stream') records.draw();
}

// ---- tabs (the hash names the one shown, so a reload keeps it) ----

function currentTab() {
  const t = window.location.hash.replace('#', '');
  return ['brokers', 'topics', 'stream'].includes(t) ? t : 'topics';
}

function showTab() {
  const tab = currentTab();
  for (const el of document.querySelectorAll('.tab')) el.hidden = el.id !== `tab-${tab}`;
  for (const a of document.querySelectorAll('.tabs a')) a.classList.toggle('active', a.dataset.tab === tab);
  brokers.seen = -1;
  topics.seen = -1;
  records.dirty = true;
  schedule();
}
window.addEventListener('hashchange', showTab);

// ---- the token ----

const tokenBox = document.getElementById('token-box');
const tokenInput = document.getElementById('token');
const tokenNote = document.getElementById('token-note');

function noteToken(rejected) {
  if (rejected) tokenNote.textContent = token() ? 'the node refused this token' : 'reads need the token';
  else tokenNote.textContent = token() ? 'kept for this browser tab only' : '';
  tokenBox.classList.toggle('needed', Boolean(rejected));
}

tokenBox.addEventListener('submit', (ev) => {
  ev.preventDefault();
  setToken(tokenInput.value.trim());
  tokenInput.value = '';
});
document.getElementById('token-forget').addEventListener('click', () => setToken(''));

const cluster = new ClusterView({
  onAuth: (rejected) => {
    if (rejected) tokenBox.hidden = false;
    noteToken(rejected);
  },
});

window.addEventListener('yakt-token', () => {
  noteToken(false);
  cluster.now();
  imageStream.restart();
  records.restart();
});

async function main() {
  showTab();
  const { status, body } = await getJson('ui/api/settings');
  const mode = status === 200 && body ? body.token : 'none';
  readsNeedToken = mode === 'reads';
  tokenBox.hidden = mode === 'none';
  tokenBox.title = readsNeedToken
    ? 'This cluster needs its token for reads. It is kept in this browser tab only (sessionStorage).'
    : 'This cluster needs its token for writes only; the console only reads. Kept in this tab only.';
  noteToken(readsNeedToken && !token());
  cluster.start();
  imageStream.start(0);
}

main();
