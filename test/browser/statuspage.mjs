// The status page as a person sees it, in Debian's chromium (headless),
// driven by playwright-core. Run by cmd/volgw TestStatusPageInBrowser,
// which starts volgw, creates the volumes and the snapshot, and passes:
// VOLGW_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, VOLUME_IDS
// (comma-separated), SNAPSHOT_ID, SCREENSHOT (a PNG path), CHROMIUM.
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = process.env;
const endpoint = env.VOLGW_ENDPOINT;
const volumes = env.VOLUME_IDS.split(',');
const snapshot = env.SNAPSHOT_ID;
const secrets = [...volumes, snapshot];

function check(cond, what) {
  if (!cond) {
    throw new Error('FAIL: ' + what);
  }
  console.log('ok: ' + what);
}

// The flags that keep chromium off a network this machine does not have.
const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'volgw-chromium-')), {
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
  viewport: { width: 1100, height: 900 },
});
try {
  const page = browser.pages()[0] || await browser.newPage();
  const text = () => page.locator('body').innerText();
  // The JSON endpoint with the browser's cookies (the page itself may not
  // fetch: its Content-Security-Policy allows no connection at all).
  const jsonStatus = async () => (await browser.request.get(endpoint + '/status/status.json')).status();
  const showsNothing = async (when) => {
    const body = await text();
    for (const id of secrets) {
      check(!body.includes(id), `${when}: the page does not show ${id}`);
    }
    check(await page.locator('table.volumes, svg').count() === 0, `${when}: no volume table or chart`);
    check(await jsonStatus() === 401, `${when}: status.json answers 401`);
  };

  // Not signed in: the form, nothing else.
  let resp = await page.goto(endpoint + '/status');
  check(resp.status() === 200, 'GET /status answers 200');
  check(resp.headers()['cache-control'] === 'no-store', 'Cache-Control: no-store');
  check(await page.locator('form#signin').isVisible(), 'the sign-in form is shown');
  await showsNothing('before sign-in');

  // A wrong secret: refused, still nothing.
  await page.fill('#access_key_id', env.AWS_ACCESS_KEY_ID);
  await page.fill('#secret_access_key', 'not-the-secret');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  check((await page.locator('#problem').innerText()).includes('wrong'), 'a wrong secret is refused');
  await showsNothing('after a wrong secret');

  // The right key pair: the gateway's state.
  await page.fill('#access_key_id', env.AWS_ACCESS_KEY_ID);
  await page.fill('#secret_access_key', env.AWS_SECRET_ACCESS_KEY);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  check(page.url() === endpoint + '/status', 'sign-in lands on /status');
  check((await page.locator('h1').innerText()) === 'volgw status', 'the status page is shown');
  const cookies = await browser.cookies(endpoint + '/status');
  const session = cookies.find((c) => c.name === 'volgw_session');
  check(session && session.httpOnly && session.sameSite === 'Strict' && session.path === '/status',
    'the session cookie is HttpOnly, SameSite=Strict, Path=/status');
  check(!cookies.some((c) => c.value.includes(env.AWS_SECRET_ACCESS_KEY)), 'no cookie holds the secret');

  for (const id of volumes) {
    const row = page.locator(`tr.volume[id="${id}"]`);
    check(await row.count() === 1, `volume ${id} has a row`);
    check((await row.innerText()).includes('AVAILABLE'), `volume ${id} is AVAILABLE`);
    const line = page.locator(`figure[id="lag-${id}"] svg polyline.lagline`);
    check(await line.count() === 1, `volume ${id} has a lag chart with a line`);
    const points = (await line.getAttribute('points')).trim().split(/\s+/);
    check(points.length >= 2, `the chart of ${id} has ${points.length} points`);
    for (const p of points) {
      const [x, y] = p.split(',').map(Number);
      check(x >= 48 && x <= 600 && y >= 0 && y <= 102, `point ${p} of ${id} is inside the plot`);
    }
  }
  check(await page.locator(`tr.snapshot[id="${snapshot}"]`).count() === 1, `snapshot ${snapshot} is listed`);
  check((await text()).includes('Upload backlog'), 'the upload backlog is shown');
  check(await jsonStatus() === 200, 'status.json answers 200 once signed in');
  const view = await (await browser.request.get(endpoint + '/status/status.json')).json();
  const listed = view.gateways.flatMap((g) => g.Volumes.map((v) => v.ID));
  check(volumes.every((id) => listed.includes(id)), 'status.json lists the volumes');
  await page.screenshot({ path: env.SCREENSHOT, fullPage: true });

  // Signed out: nothing again, and the old cookie is worthless.
  await Promise.all([page.waitForNavigation(), page.click('#signout')]);
  check(await page.locator('form#signin').isVisible(), 'sign-out shows the form');
  await showsNothing('after sign-out');
  await browser.addCookies([{ ...session }]);
  resp = await page.goto(endpoint + '/status');
  await showsNothing('with the signed-out session cookie put back');
  console.log('PASS');
} finally {
  await browser.close();
}
