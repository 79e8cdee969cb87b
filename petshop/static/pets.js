// The pets list: filters (species, age range), the table and paging over GET /pets.

import { api } from './api.js';
import { $, el } from './dom.js';

export class PetList {
  /** `onEdit(pet)` and `onDelete(pet)` run when a row's buttons are pressed. */
  constructor({ onEdit, onDelete }) {
    this.onEdit = onEdit;
    this.onDelete = onDelete;
    this.query = { species: '', min_age: '', max_age: '', limit: 10, offset: 0 };
    this.highlight = null;
    this.seq = 0;

    const filters = $('filters');
    filters.addEventListener('submit', (e) => {
      e.preventDefault();
      const form = new FormData(filters);
      for (const key of ['species', 'min_age', 'max_age']) this.query[key] = form.get(key).trim();
      this.query.limit = Number(form.get('limit'));
      this.query.offset = 0;
      this.load();
    });
    // `reset` fires before the fields are cleared: read the defaults, not the fields.
    filters.addEventListener('reset', () => {
      Object.assign(this.query, { species: '', min_age: '', max_age: '', limit: 10, offset: 0 });
      this.load();
    });
    $('reload').addEventListener('click', () => this.load());
    $('prev').addEventListener('click', () => this.move(-1));
    $('next').addEventListener('click', () => this.move(+1));
  }

  move(pages) {
    this.query.offset = Math.max(0, this.query.offset + pages * this.query.limit);
    this.load();
  }

  /** Fetches the current page; `highlight` marks a pet's row (just created or saved). */
  async load({ highlight = null } = {}) {
    // Only the latest load may render: an older answer arriving late is dropped.
    const seq = ++this.seq;
    this.highlight = highlight;
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(this.query)) {
      if (value !== '') params.set(key, value);
    }
    const error = $('list-error');
    let json;
    try {
      ({ json } = await api('GET', `/pets?${params}`));
    } catch (e) {
      if (seq === this.seq) {
        error.textContent = `Could not load the pets: ${e.describe()}`;
        error.hidden = false;
      }
      return;
    }
    if (seq !== this.seq) return;
    // A delete can empty the last page: step back to the last one with pets.
    if (json.pets.length === 0 && json.total > 0 && this.query.offset > 0) {
      this.query.offset = Math.floor((json.total - 1) / this.query.limit) * this.query.limit;
      await this.load({ highlight });
      return;
    }
    error.hidden = true;
    this.render(json);
  }

  /** Says `text` in the list's status line. */
  say(text) {
    $('list-status').textContent = text;
  }

  render(page) {
    const rows = page.pets.map((pet) => {
      const row = el('tr', {},
        el('td', { className: 'num' }, String(pet.id)),
        el('td', { className: 'name' }, pet.name),
        el('td', {}, el('span', { className: 'tag' }, pet.species)),
        el('td', { className: 'num' }, String(pet.age)),
        el('td', { className: 'happiness' }, el('div', {},
          el('meter', { min: 0, max: 100, low: 34, high: 67, optimum: 100, value: pet.happiness,
            title: `${pet.happiness} / 100` }),
          el('span', {}, String(pet.happiness)))),
        el('td', { className: 'actions' },
          button('Edit', `Edit ${pet.name}`, () => this.onEdit(pet)),
          button('Delete', `Delete ${pet.name}`, () => this.onDelete(pet), 'danger')));
      if (pet.id === this.highlight) row.className = 'fresh';
      return row;
    });
    document.querySelector('#pets-table tbody').replaceChildren(...rows);
    $('empty').hidden = rows.length > 0;

    const first = page.total === 0 ? 0 : page.offset + 1;
    const last = page.offset + page.pets.length;
    const source = page.cached ? 'from the cache' : 'from the database';
    $('page-info').textContent = `${first}–${last} of ${page.total} · ${source}`;
    $('prev').disabled = page.offset === 0;
    $('next').disabled = last >= page.total;
  }
}

function button(text, label, onClick, className = 'ghost') {
  const b = el('button', { type: 'button', className, textContent: text });
  b.setAttribute('aria-label', label);
  b.addEventListener('click', onClick);
  return b;
}
