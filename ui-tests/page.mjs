// Scenario 1, the page at `/`: create a pet, see it listed, edit it, see the change;
// an API error shown; filters and paging; a delete; then a repeated read shows a cache
// hit in the live panel. Expects a fresh, empty pet shop on L1 (cache-aside).
//
//   node page.mjs http://127.0.0.1:<port>

import { check, log, run, watchErrors } from './lib.mjs';

await run('page', async ({ page, context, base, shot }) => {
  const errors = watchErrors(page);
  const form = page.locator('#pet-form');
  const table = page.getByRole('table', { name: 'Pets, ordered by id' });
  const row = (name) => table.getByRole('row').filter({ has: page.getByRole('cell', { name, exact: true }) });
  const panel = page.getByRole('complementary', { name: 'Cache, live' });
  const requests = panel.getByRole('list', { name: "This page's last requests" });
  const pageInfo = page.locator('#page-info');

  // Arrange: the page, and its panel polling.
  await page.goto(`${base}/`);
  await page.getByRole('heading', { name: 'Pet shop', level: 1 }).waitFor();
  await panel.getByText('cache-aside').waitFor();
  check((await panel.locator('#topology').textContent()) === 'l1', 'the panel shows topology l1 and strategy cache-aside');
  await page.getByText('No pets match').waitFor();

  // Create through the form.
  await form.getByLabel('Name').fill('Biscuit');
  await form.getByLabel('Species').fill('dog');
  await form.getByLabel('Age').fill('3');
  await form.getByLabel('Happiness').fill('70');
  await form.getByRole('button', { name: 'Create pet' }).click();
  await form.getByRole('status').getByText(/Created Biscuit \(#\d+\)/).waitFor();
  await row('Biscuit').waitFor();
  check((await row('Biscuit').textContent()).includes('dog'), 'the created pet is listed');

  // A refused create shows the API's error body, naming the field.
  await form.getByLabel('Name').fill('Rex');
  await form.getByLabel('Species').fill('Dog!');
  await form.getByLabel('Age').fill('2');
  await form.getByLabel('Happiness').fill('50');
  await form.getByRole('button', { name: 'Create pet' }).click();
  const alert = form.getByRole('alert');
  await alert.waitFor();
  const alertText = await alert.textContent();
  check(/^422 · species: /.test(alertText), `a 422 is shown with its field: "${alertText}"`);
  check((await form.getByLabel('Species').getAttribute('aria-invalid')) === 'true', 'the field at fault is marked invalid');

  // Edit through the page: only the changed field is sent.
  await page.getByRole('button', { name: 'Edit Biscuit' }).click();
  await page.getByRole('heading', { name: /Edit Biscuit \(#\d+\)/ }).waitFor();
  check(await alert.isHidden(), 'starting an edit clears the error');
  await form.getByLabel('Happiness').fill('95');
  await shot('page-edit.png');
  await form.getByRole('button', { name: 'Save changes' }).click();
  await form.getByRole('status').getByText(/Saved Biscuit/).waitFor();
  await row('Biscuit').getByText('95').waitFor();
  await requests.getByText(/PATCH \/pets\/\d+/).waitFor();
  check(true, 'the edit is listed (happiness 95) and the PATCH is in the last requests');

  // More pets, straight through the API, then filters and paging.
  const more = [['Mittens', 'cat', 5], ['Tom', 'cat', 9], ['Nibbles', 'hamster', 1],
    ['Rex', 'dog', 7], ['Luna', 'cat', 2], ['Bubbles', 'fish', 1]];
  for (const [name, species, age] of more) {
    const res = await context.request.post(`${base}/pets`, { data: { name, species, age, happiness: 60 } });
    check(res.status() === 201, `POST /pets ${name} → 201`);
  }
  const filters = page.getByRole('search', { name: 'Filter pets' });
  await filters.getByLabel('Per page').selectOption('5');
  await filters.getByRole('button', { name: 'Apply filters' }).click();
  await pageInfo.getByText(/^1–5 of 7/).waitFor();
  await page.getByRole('button', { name: 'Next →' }).click();
  await pageInfo.getByText(/^6–7 of 7/).waitFor();
  check(await page.getByRole('button', { name: 'Next →' }).isDisabled(), 'paging: 5 per page, page 2 holds 6–7 of 7');

  await filters.getByLabel('Species').fill('cat');
  await filters.getByLabel('Min age').fill('3');
  await filters.getByRole('button', { name: 'Apply filters' }).click();
  await pageInfo.getByText(/^1–2 of 2/).waitFor();
  const names = await table.locator('tbody td.name').allTextContents();
  check(names.join(',') === 'Mittens,Tom', `species=cat, min_age=3 lists Mittens and Tom (got ${names})`);

  await filters.getByLabel('Species').fill('cat9');
  await filters.getByRole('button', { name: 'Apply filters' }).click();
  const listAlert = page.locator('#list-error');
  await listAlert.getByText(/^Could not load the pets: 422 · species: /).waitFor();
  check(true, 'a species with a digit shows the API\'s 422');
  await filters.getByRole('button', { name: 'Clear' }).click();
  await pageInfo.getByText(/^1–7 of 7/).waitFor();

  // Delete through the page (it asks first).
  page.once('dialog', (dialog) => dialog.accept());
  await page.getByRole('button', { name: 'Delete Bubbles' }).click();
  await page.getByRole('status').getByText('Deleted Bubbles').waitFor();
  await pageInfo.getByText(/^1–6 of 6/).waitFor();
  check(await row('Bubbles').count() === 0, 'the deleted pet is gone');

  // A repeated read: of two loads of the same page, one after the other, the second is
  // an L1 hit.
  for (const _ of [1, 2]) {
    const loaded = page.waitForResponse((r) => r.request().method() === 'GET' && r.url().includes('/pets?'));
    await page.getByRole('button', { name: 'Reload list' }).click();
    await loaded;
  }
  await requests.getByText('HIT-L1').first().waitFor();
  await pageInfo.getByText('from the cache').waitFor();
  check(true, 'the last requests show X-Cache: HIT-L1');
  const l1 = panel.getByRole('row', { name: /^L1/ });
  await l1.getByRole('cell').nth(1).filter({ hasText: /^[1-9]\d* %/ }).waitFor({ timeout: 5_000 });
  const ratio = await l1.getByRole('cell').nth(1).textContent();
  check(true, `the L1 hit ratio over the last 30 s is nonzero: ${ratio}`);
  await page.locator('#plot circle.tier-l1').first().waitFor({ state: 'attached' });
  check(true, 'the plot shows L1 points');

  await shot('page.png');

  // Failed requests (the 422s above) are logged by Chromium; nothing else may be.
  const unexpected = errors.filter(
    (e) => !/Failed to load resource: the server responded with a status of 422/.test(e));
  check(unexpected.length === 0, `no console errors or uncaught exceptions ${unexpected.join('; ')}`);
  log('page: every check passed');
});
