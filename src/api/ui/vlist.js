// A virtual list: rows of one fixed height in a scrolling box, of which only the rows in view
// (and a few around them) exist in the DOM, so that 10,000 topics or 100,000 records scroll as
// smoothly as ten.

const OVERSCAN = 6;

export class VirtualList {
  /**
   * box: the scrolling element. opts: rowHeight (px), columns (cells per row),
   * render(item, cells, row) fills a row's cells, onPick(item) when a row is clicked.
   */
  constructor(box, { rowHeight, columns, render, onPick }) {
    this.box = box;
    this.rowHeight = rowHeight;
    this.columns = columns;
    this.render = render;
    this.items = [];
    this.scheduled = false;
    box.classList.add('vlist');
    this.spacer = document.createElement('div');
    this.spacer.className = 'vlist-spacer';
    this.rows = document.createElement('div');
    this.rows.className = 'vlist-rows';
    this.spacer.append(this.rows);
    box.append(this.spacer);
    box.addEventListener('scroll', () => this.refresh(), { passive: true });
    if (onPick) {
      this.rows.addEventListener('click', (ev) => {
        const row = ev.target.closest('.vrow');
        if (row && row.dataset.index !== undefined) {
          const item = this.items[Number(row.dataset.index)];
          if (item !== undefined) onPick(item);
        }
      });
    }
    new ResizeObserver(() => this.refresh()).observe(box);
  }

  /** Shows these items (the array is kept, not copied). */
  setItems(items) {
    this.items = items;
    this.spacer.style.height = `${items.length * this.rowHeight}px`;
    this.refresh();
  }

  /** Redraws the rows in view at the next frame. */
  refresh() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.draw();
    });
  }

  /** Whether the view is scrolled to (near) the end. */
  atEnd() {
    return this.box.scrollTop + this.box.clientHeight >= this.box.scrollHeight - this.rowHeight * 2;
  }

  scrollToEnd() {
    this.box.scrollTop = this.box.scrollHeight;
  }

  draw() {
    const h = this.box.clientHeight;
    const n = this.items.length;
    const first = Math.max(0, Math.floor(this.box.scrollTop / this.rowHeight) - OVERSCAN);
    const last = Math.min(n, Math.ceil((this.box.scrollTop + h) / this.rowHeight) + OVERSCAN);
    const want = Math.max(0, last - first);
    while (this.rows.children.length < want) {
      const row = document.createElement('div');
      row.className = 'vrow';
      row.style.height = `${this.rowHeight}px`;
      for (let c = 0; c < this.columns; c++) row.append(document.createElement('span'));
      this.rows.append(row);
    }
    while (this.rows.children.length > want) this.rows.lastChild.remove();
    this.rows.style.transform = `translateY(${first * this.rowHeight}px)`;
    for (let i = 0; i < want; i++) {
      const row = this.rows.children[i];
      row.dataset.index = String(first + i);
      this.render(this.items[first + i], row.children, row);
    }
  }
}
