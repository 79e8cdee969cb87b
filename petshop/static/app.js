// The page's entry point: the create/edit form, deletes, and wiring the list and the
// live panel together.

import { api } from './api.js';
import { $ } from './dom.js';
import { startPanel } from './panel.js';
import { PetList } from './pets.js';

const FIELDS = ['name', 'species', 'age', 'happiness'];
const NUMBERS = new Set(['age', 'happiness']);

const form = $('pet-form');
let editing = null; // the pet being edited, as the list showed it

const list = new PetList({ onEdit: edit, onDelete: remove });

/** The form's fields as an API body; numbers parsed, empty fields left out. */
function values() {
  const body = {};
  for (const name of FIELDS) {
    const raw = form.elements[name].value.trim();
    if (raw !== '') body[name] = NUMBERS.has(name) ? Number(raw) : raw;
  }
  return body;
}

function showError(error) {
  const box = $('form-error');
  box.textContent = error.describe?.() ?? String(error);
  box.hidden = false;
  $('form-status').textContent = '';
  const field = error.field && form.elements[error.field];
  if (field) {
    field.setAttribute('aria-invalid', 'true');
    field.focus();
  }
}

function clearMessages() {
  $('form-error').hidden = true;
  for (const name of FIELDS) form.elements[name].removeAttribute('aria-invalid');
}

function setMode(pet) {
  editing = pet;
  $('form-title').textContent = pet ? `Edit ${pet.name} (#${pet.id})` : 'Add a pet';
  $('submit').textContent = pet ? 'Save changes' : 'Create pet';
  $('cancel').hidden = !pet;
  form.classList.toggle('editing', Boolean(pet));
  clearMessages();
  if (pet) {
    for (const name of FIELDS) form.elements[name].value = pet[name];
    form.elements.name.focus();
  } else {
    form.reset();
  }
}

function edit(pet) {
  setMode(pet);
  $('form-status').textContent = '';
  form.scrollIntoView({ behavior: 'smooth', block: 'nearest' });
}

async function remove(pet) {
  if (!window.confirm(`Delete ${pet.name} (#${pet.id})?`)) return;
  try {
    await api('DELETE', `/pets/${pet.id}`);
    list.say(`Deleted ${pet.name} (#${pet.id}).`);
    if (editing?.id === pet.id) setMode(null);
  } catch (e) {
    list.say(`Could not delete ${pet.name}: ${e.describe()}`);
  }
  await list.load();
}

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  clearMessages();
  const body = values();
  try {
    let pet;
    if (editing) {
      // A PATCH carries only what changed; nothing changed is the API's 422 to tell.
      const patch = Object.fromEntries(
        Object.entries(body).filter(([name, value]) => value !== editing[name]));
      pet = (await api('PATCH', `/pets/${editing.id}`, patch)).json;
      $('form-status').textContent = `Saved ${pet.name} (#${pet.id}).`;
    } else {
      pet = (await api('POST', '/pets', body)).json;
      $('form-status').textContent = `Created ${pet.name} (#${pet.id}).`;
    }
    setMode(null);
    await list.load({ highlight: pet.id });
  } catch (error) {
    showError(error);
  }
});

$('cancel').addEventListener('click', () => {
  setMode(null);
  $('form-status').textContent = '';
});

list.load();
startPanel();
