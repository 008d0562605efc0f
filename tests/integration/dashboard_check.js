// dashboard_check.js - drives headless Chromium (Debian's /usr/bin/chromium,
// through playwright-core from web/node_modules; never a downloaded browser)
// over kiln's /dashboard and checks what a person would look at: the page
// loads with no console errors, charts are drawn with data, the alert table
// shows the firing alert, the range picker reloads, and the GPU part says
// "no GPU" or draws GPU charts as expected.  Prints "ok NAME" / "FAIL NAME:
// why" per check and saves a screenshot.
//
// usage: node dashboard_check.js URL SCREENSHOT.png EXPECT_GPU(0|1) PROFILE_DIR [EXPECT_MODELS(0|1)]
"use strict";
const path = require("path");
const { chromium } = require(path.join(__dirname, "..", "..", "web", "node_modules", "playwright-core"));

const [url, shot, expectGpu, profile, expectModels] = process.argv.slice(2);
let failed = 0;
function check(name, ok, why) {
  if (ok) console.log("ok " + name);
  else { failed++; console.log("FAIL " + name + ": " + (why || "")); }
}

(async () => {
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1400, height: 1300 },
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  const errors = [];
  const outside = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("response", (r) => { if (r.status() >= 400) errors.push(r.status() + " " + r.url()); });
  page.on("request", (r) => { if (!r.url().startsWith(new URL(url).origin)) outside.push(r.url()); });
  try {
    const resp = await page.goto(url, { waitUntil: "load", timeout: 20000 });
    check("page answers 200", resp && resp.status() === 200, resp && resp.status());
    await page.waitForFunction(() => document.body.dataset.state === "ready" || document.body.dataset.state === "error",
                               null, { timeout: 20000 });
    // Wait until the host charts have at least a few points (the sampler runs fast in tests).
    await page.waitForFunction(() => window.kiln.charts.cpu_util && window.kiln.charts.cpu_util.points >= 2,
                               null, { timeout: 20000, polling: 500 }).catch(() => {});
    const k = await page.evaluate(() => window.kiln);
    check("page state ready", await page.evaluate(() => document.body.dataset.state) === "ready", JSON.stringify(k.errors));
    check("cpu chart has data", k.charts.cpu_util && k.charts.cpu_util.points >= 2, JSON.stringify(k.charts.cpu_util));
    check("memory chart has data", k.charts.host_mem && k.charts.host_mem.series === 2 && k.charts.host_mem.points >= 2,
          JSON.stringify(k.charts.host_mem));
    const canvases = await page.locator("canvas").count();
    check("charts drawn (canvas elements)", canvases >= 2, "canvases=" + canvases);
    if (expectGpu === "1") {
      await page.waitForFunction(() => window.kiln.charts.gpu_temp && window.kiln.charts.gpu_temp.points >= 2,
                                 null, { timeout: 15000, polling: 500 }).catch(() => {});
      const g = await page.evaluate(() => window.kiln);
      check("gpu charts drawn", g.gpus >= 1 && g.charts.gpu_util && g.charts.gpu_temp && g.charts.gpu_temp.points >= 2,
            JSON.stringify(g.charts));
      check("no-gpu notice hidden", await page.locator("#no-gpu").isHidden());
    } else {
      check("no-gpu notice shown", await page.locator("#no-gpu").isVisible());
      check("no gpu charts", (await page.locator("#gpu-charts canvas").count()) === 0);
    }
    if (expectModels === "1") {
      await page.waitForFunction(() => window.kiln.charts.throughput && window.kiln.charts.throughput.points >= 2 &&
                                       window.kiln.charts.latency && window.kiln.charts.latency.points >= 2,
                                 null, { timeout: 20000, polling: 500 }).catch(() => {});
      const m = await page.evaluate(() => window.kiln.charts);
      check("throughput chart has data", m.throughput && m.throughput.points >= 2, JSON.stringify(m.throughput));
      check("latency chart has p50 and p99", m.latency && m.latency.series >= 2 && m.latency.points >= 2,
            JSON.stringify(m.latency));
      check("queue-time chart has data", m.queue && m.queue.points >= 1, JSON.stringify(m.queue));
      check("no-models notice hidden", await page.locator("#no-models").isHidden());
    }
    await page.waitForFunction(() => window.kiln.alerts >= 1, null, { timeout: 15000, polling: 500 }).catch(() => {});
    const rows = await page.locator("#alerts tbody td.state-firing").count();
    check("firing alert listed", rows >= 1, "firing rows=" + rows);
    const loads = await page.evaluate(() => window.kiln.loads);
    await page.click('#ranges button[data-range="3600"]');
    await page.waitForFunction((n) => window.kiln.loads > n, loads, { timeout: 15000 }).catch(() => {});
    check("range picker reloads", (await page.evaluate(() => window.kiln.loads)) > loads);
    await page.click('#ranges button[data-range="300"]');
    await page.waitForFunction((n) => window.kiln.loads > n + 1, loads, { timeout: 15000 }).catch(() => {});
    await page.waitForTimeout(300);
    await page.screenshot({ path: shot, fullPage: true });
    check("no console errors", errors.length === 0, errors.join(" | "));
    check("nothing fetched from elsewhere", outside.length === 0, outside.join(" "));
  } catch (e) {
    check("dashboard run", false, String(e));
  } finally {
    await ctx.close();
  }
  process.exit(failed ? 1 : 0);
})();
