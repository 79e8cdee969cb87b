// Scenario 2, Swagger UI at /docs: "Try it out" and "Execute" POST /pets (201), then
// GET /pets (200, the body shows the `cached` field).
//
//   node docs.mjs http://127.0.0.1:<port>

import { check, run } from './lib.mjs';

const NEW_PET = { name: 'Swagger', species: 'cat', age: 4, happiness: 88 };

await run('docs', async ({ page, base, shot }) => {
  await page.goto(`${base}/docs`);
  await page.getByRole('heading', { name: /Pet shop/ }).first().waitFor();

  /** Opens one operation, "Try it out", optionally fills the body, "Execute"; returns the live response. */
  async function tryOut(operationId, body) {
    const op = page.locator(`[id$="-${operationId}"].opblock`);
    await op.locator('.opblock-summary').first().click();
    await op.getByRole('button', { name: 'Try it out' }).click();
    if (body) await op.locator('textarea.body-param__text').fill(JSON.stringify(body, null, 2));
    await op.getByRole('button', { name: 'Execute' }).click();
    const live = op.locator('.live-responses-table .response');
    await live.first().waitFor();
    await live.first().evaluate((el) => el.scrollIntoView({ block: 'center' }));
    return { op, live };
  }

  const post = await tryOut('create_pet', NEW_PET);
  const postStatus = (await post.live.locator('.response-col_status').first().textContent()).trim();
  check(postStatus === '201', `POST /pets from Swagger UI answered ${postStatus}`);
  const postBody = await post.live.locator('.response-col_description pre').first().textContent();
  check(postBody.includes('"Swagger"'), 'the created pet is shown in the response body');
  await shot('docs-post.png', { fullPage: false });

  const get = await tryOut('list_pets');
  const getStatus = (await get.live.locator('.response-col_status').first().textContent()).trim();
  check(getStatus === '200', `GET /pets from Swagger UI answered ${getStatus}`);
  const getBody = await get.live.locator('.response-col_description pre').first().textContent();
  check(/"cached":\s*(true|false)/.test(getBody), 'the GET response body shows the `cached` field');
  check(getBody.includes('"Swagger"'), 'the pet created from Swagger UI is listed');
  const headers = await get.live.locator('.response-col_description').first().textContent();
  check(/x-cache: (MISS|HIT-L1)/i.test(headers), 'the response headers show X-Cache');
  await shot('docs-get.png', { fullPage: false });
});
