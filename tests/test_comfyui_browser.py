"""The pack in ComfyUI's real frontend, in headless Chromium (marker ``comfyui``).

Skipped without COMFYUI_PATH, without the ``playwright`` package, or without a Chromium to
drive. Both real-ComfyUI test files, in one command (from the pack's folder, in the pack's dev
environment: ``pip install -e ".[dev,comfyui-tests]"``)::

    COMFYUI_PATH=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/ComfyUI/venv/bin/python \\
        python -m pytest -q -m comfyui tests/test_comfyui_*.py

Chromium: ``$CHROMIUM_PATH``, else ``chromium`` / ``chromium-browser`` / ``google-chrome`` on the
PATH (Debian's package works; no ``playwright install`` needed), else playwright's own browser
when installed. It runs headless with a fresh profile and no network beyond 127.0.0.1.

One ComfyUI server (started as in tests/test_comfyui_real.py) with an EMPTY ``models/jojogan``,
as after a fresh install. Through the page, the tests

- open Browse Templates -> Custom Nodes -> comfyui-jojogan: every bundled workflow is there with
  its thumbnail;
- load every UI workflow (example_workflows/*.json) by clicking its template: every node type is
  registered, no node is flagged as missing or errored, no missing-nodes dialog; the FFHQ
  workflows open the frontend's missing-models dialog (our loader nodes carry
  ``properties.models``), the toy workflow does not;
- queue the one-shot face workflow: it fails with the pack's message in the frontend's error
  dialog (the missing file, the models folder, ``python -m jojogan download``);
- queue the toy workflow (the shipped toy model, ~1 min alone on two cores): the Finetune node
  shows its live preview while it trains, and the Save Image nodes show the results.

Screenshots (PNG, 1280x800 viewport, each < 400 KB) go to docs/screenshots/ when
``JOJOGAN_SCREENSHOTS=1``, else to a temporary folder (printed with ``-s``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from io import BytesIO
from pathlib import Path

import pytest

pytestmark = pytest.mark.comfyui

ROOT = Path(__file__).resolve().parents[1]
WF_DIR = ROOT / "example_workflows"
if not os.environ.get("COMFYUI_PATH"):
    pytest.skip("COMFYUI_PATH is not set (no ComfyUI to test against)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from test_comfyui_real import Comfy, make_base, server_env  # noqa: E402
from toy_standin import toy_model_dir  # noqa: E402

VIEWPORT = {"width": 1280, "height": 800}
MAX_PNG = 400_000  # bytes
TOY_TIMEOUT = 1800  # s (about 1 min alone on two cores; much more on shared, busy ones)
UI_WORKFLOWS = sorted(p.stem for p in WF_DIR.glob("*.json"))
# what every screenshot should not be cluttered with, and what makes the runs deterministic
SETTINGS = {
    "Comfy.TutorialCompleted": True,  # no template dialog on the first visit
    "Comfy.Minimap.Visible": False,
    "Comfy.Graph.CanvasInfo": False,
    "LiteGraph.Canvas.MinFontSizeForLOD": 0,  # text stays drawn when the view is zoomed out
    "Comfy.Workflow.ShowMissingModelsWarning": True,  # the default, stated
}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    env = os.environ.get("CHROMIUM_PATH")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    if os.environ.get("JOJOGAN_SCREENSHOTS") == "1":
        out = ROOT / "docs" / "screenshots"
        out.mkdir(parents=True, exist_ok=True)
    else:
        out = tmp_path_factory.mktemp("screenshots")
    print(f"screenshots: {out}")
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """ComfyUI with the pack and an empty models/jojogan (nothing downloaded yet)."""
    # named as users' folders are, for the paths the messages show
    base = tmp_path_factory.mktemp("comfy_browser") / "ComfyUI"
    models = make_base(base)
    toy_dir, toy_label = toy_model_dir(base)
    s = Comfy(base, server_env(base, toy_dir))
    try:
        s.wait_ready()
        s.models = models
        s.toy_label = toy_label
        status, _ = s.post("/settings", SETTINGS)
        assert status == 200
        yield s
    finally:
        s.stop()
        print(f"ComfyUI log: {s.log_path}")


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium_profile")
    with sync_api.sync_playwright() as p:
        try:
            ctx = p.chromium.launch_persistent_context(
                str(profile),
                executable_path=_chromium(),
                headless=True,
                args=CHROMIUM_ARGS,
                viewport=VIEWPORT,
            )
        except Exception as e:  # no browser to drive
            pytest.skip(f"cannot start Chromium: {e}")
        # nothing but the server: the frontend must not need the internet
        ctx.route(
            lambda url: not url.startswith(server.url) and not url.startswith(("blob:", "data:")),
            lambda route: route.abort(),
        )
        pg = ctx.pages[0] if ctx.pages else ctx.new_page()
        pg.page_errors = []
        pg.on("pageerror", lambda e: pg.page_errors.append(e.stack or str(e)))
        pg.goto(server.url)
        pg.wait_for_function(
            "window.app && app.graph && window.LiteGraph && app.extensionManager && "
            "Object.keys(LiteGraph.registered_node_types).some(k => k.startsWith('JoJoGAN_'))",
            timeout=120_000,
        )
        pg.wait_for_timeout(1000)
        # the pack's previews, as the frontend receives them
        pg.evaluate(
            """() => {
                window.__previews = [];
                app.api.addEventListener('b_preview_with_metadata', (e) =>
                    window.__previews.push(String(e.detail.displayNodeId)));
            }"""
        )
        try:
            yield pg
        finally:
            if pg.page_errors:
                print("page errors:", *pg.page_errors, sep="\n  ")
            ctx.close()


# ------------------------------------------------------------------------------------- helpers


def screenshot(page, shots: Path, name: str) -> Path:
    """A PNG of the viewport, scaled down to VIEWPORT's size when the page is bigger, and made
    smaller (256 colours) when it is over MAX_PNG."""
    from PIL import Image

    path = shots / f"{name}.png"
    data = page.screenshot(type="png")
    pic = Image.open(BytesIO(data))
    if pic.size != (VIEWPORT["width"], VIEWPORT["height"]):
        pic = pic.convert("RGB").resize(
            (VIEWPORT["width"], VIEWPORT["height"]), Image.Resampling.LANCZOS
        )
        buf = BytesIO()
        pic.save(buf, format="PNG", optimize=True)
        data = buf.getvalue()
    if len(data) > MAX_PNG:
        pic = pic.convert("RGB").quantize(256, dither=Image.Dither.NONE)
        buf = BytesIO()
        pic.save(buf, format="PNG", optimize=True)
        data = buf.getvalue()
    path.write_bytes(data)
    print(f"screenshot {path} ({len(data) // 1024} KB)")
    assert len(data) < MAX_PNG, f"{path} is {len(data)} bytes"
    return path


def dialogs(page) -> list[str]:
    """The text of every dialog on screen."""
    return page.evaluate(
        "() => [...document.querySelectorAll('.p-dialog')]"
        ".filter(d => d.offsetParent !== null).map(d => d.innerText)"
    )


def close_dialogs(page) -> None:
    for _ in range(5):
        if not dialogs(page):
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(300)
    assert not dialogs(page), dialogs(page)


def show(page, bounds: list[float] | None = None, margins=(60, 100, 20, 70), max_scale=1.0):
    """Fit graph-space ``bounds`` [x0, y0, x1, y1] (default: every node, titles included) into
    the canvas, inside ``margins`` (left, top, right, bottom; css px) left for the menus."""
    page.evaluate(
        """([bounds, m, maxScale]) => {
            const c = app.canvas, el = c.canvas;
            const th = LiteGraph.NODE_TITLE_HEIGHT;
            if (!bounds) {
                bounds = [Infinity, Infinity, -Infinity, -Infinity];
                for (const n of app.graph.nodes) {
                    bounds[0] = Math.min(bounds[0], n.pos[0]);
                    bounds[1] = Math.min(bounds[1], n.pos[1] - th);
                    bounds[2] = Math.max(bounds[2], n.pos[0] + n.size[0]);
                    bounds[3] = Math.max(bounds[3], n.pos[1] + n.size[1]);
                }
            }
            const [l, t, r, b] = m;
            const W = el.clientWidth - l - r, H = el.clientHeight - t - b;
            const bw = bounds[2] - bounds[0], bh = bounds[3] - bounds[1];
            const s = Math.min(W / bw, H / bh, maxScale);
            c.ds.scale = s;
            c.ds.offset = [(l + (W - bw * s) / 2) / s - bounds[0], t / s - bounds[1]];
            c.setDirty(true, true);
        }""",
        [bounds, list(margins), max_scale],
    )
    page.wait_for_timeout(500)


def graph_state(page) -> list[dict]:
    return page.evaluate(
        """() => app.graph.nodes.map(n => ({
            id: n.id, type: n.type, title: n.title,
            registered: n.type in LiteGraph.registered_node_types,
            has_errors: !!n.has_errors,
            backend: !!(n.constructor.nodeData),
        }))"""
    )


def open_templates(page) -> None:
    close_dialogs(page)
    page.get_by_role("button", name="Templates", exact=True).click()
    page.get_by_text("comfyui-jojogan", exact=True).first.click()
    page.wait_for_selector('[data-testid^="template-workflow-jojogan_"]', timeout=30_000)


def queue(page) -> None:
    close_dialogs(page)
    page.get_by_role("button", name="Run", exact=True).click()


def load_workflow(page, name: str) -> None:
    """Open a bundled workflow as users do: Templates -> comfyui-jojogan -> its card (then close
    the missing-models dialog, if any)."""
    n_nodes = len(json.loads((WF_DIR / f"{name}.json").read_text())["nodes"])
    open_templates(page)
    page.locator(f'[data-testid="template-workflow-{name}"]').click()
    page.wait_for_function("(n) => app.graph.nodes.length === n", arg=n_nodes, timeout=30_000)
    page.wait_for_timeout(1000)


def history(server: Comfy) -> dict:
    return server.get_json("/history?max_items=1")


# ------------------------------------------------------------------------------------- tests


def test_templates_dialog_shows_the_packs_workflows_with_thumbnails(page, shots):
    # a 1.5x bigger window (scaled back to 1280x800 for the picture) shows all seven cards
    page.set_viewport_size({"width": 1920, "height": 1200})
    open_templates(page)
    sizes = {}
    for name in UI_WORKFLOWS:
        card = page.locator(f'[data-testid="template-workflow-{name}"]')
        assert card.count() == 1, name
        # thumbnails load when their card scrolls into view (example_workflows/<name>.jpg,
        # served by ComfyUI from the pack's folder)
        card.scroll_into_view_if_needed()
        img = card.locator(f'img[alt="{name}"]')
        img.wait_for(timeout=30_000)
        page.wait_for_function(
            "(el) => el.complete && el.naturalWidth > 0", arg=img.element_handle(), timeout=30_000
        )
        sizes[name] = img.evaluate("(el) => el.naturalWidth")
    assert all(w >= 200 for w in sizes.values()), sizes
    page.locator(
        f'[data-testid="template-workflow-{UI_WORKFLOWS[0]}"]'
    ).scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    try:
        screenshot(page, shots, "templates_dialog")
    finally:
        page.set_viewport_size(VIEWPORT)
    close_dialogs(page)


def test_finetune_marks_all_but_the_notebooks_terms_advanced(page):
    """The Finetune node's widgets other than the notebook's terms reach the frontend marked
    advanced (`widget.options.advanced`: frontend 1.27 records the flag but still draws the
    widgets; frontends that implement it hide them behind "Show Advanced")."""
    load_workflow(page, "jojogan_one_shot_face")
    close_dialogs(page)
    flags = page.evaluate(
        """() => {
            const n = app.graph.nodes.find(n => n.type === 'JoJoGAN_Finetune');
            return Object.fromEntries(n.widgets.map(w => [w.name, !!(w.options || {}).advanced]));
        }"""
    )
    plain = {k for k, v in flags.items() if not v}
    assert {"steps", "seed", "strength", "preserve_color", "preview_every"} <= plain
    assert {"lr", "grayscale", "id_weight", "noise_mode", "train_layers"} <= set(flags) - plain


def test_a_workflow_saved_before_the_released_default_opens_with_its_own_values(page):
    """A UI workflow saved by an earlier version of the pack (tests/fixtures/workflows_v0: the
    toy demo as committed before Finetune's released default and new widgets) opens with no red
    node, every widget it saved lands on the widget of the same name, and the widgets added since
    take their defaults."""
    old = json.loads(
        (ROOT / "tests" / "fixtures" / "workflows_v0" / "jojogan_toy_demo.json").read_text()
    )
    api = json.loads(
        (ROOT / "tests" / "fixtures" / "workflows_v0" / "api_jojogan_toy_demo.json").read_text()
    )
    close_dialogs(page)
    page.evaluate("(wf) => app.loadGraphData(wf)", old)
    page.wait_for_function(
        "(n) => app.graph.nodes.length === n", arg=len(old["nodes"]), timeout=30_000
    )
    page.wait_for_timeout(500)
    close_dialogs(page)
    nodes = graph_state(page)
    bad = [n for n in nodes if not n["registered"] or n["has_errors"]]
    assert not bad, bad
    values = page.evaluate(
        """() => Object.fromEntries(app.graph.nodes.map(n => [String(n.id),
            Object.fromEntries((n.widgets || []).map(w => [w.name, w.value]))]))"""
    )
    finetune = values["6"]
    for name, value in api["6"]["inputs"].items():
        if not isinstance(value, list):  # a widget, not a link
            assert finetune[name] == value, (name, finetune[name], value)
    assert finetune["noise_mode"] == "const"  # saved, not the new default
    assert finetune["strength"] == 1.0 and finetune["preserve_color"] is False
    assert finetune["preview_every"] == 25


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_ui_workflow_opens_from_templates_without_red_nodes(page, shots, name):
    expected = json.loads((WF_DIR / f"{name}.json").read_text())
    load_workflow(page, name)
    texts = dialogs(page)
    assert not [t for t in texts if "node types were not found" in t or "Missing Node" in t]
    missing_models = [t for t in texts if "Missing Models" in t]
    wanted = sorted(
        {m["name"] for n in expected["nodes"] for m in n.get("properties", {}).get("models", [])}
    )
    if wanted:  # the models folder is empty: the frontend lists what the loaders name
        assert missing_models, f"{name}: no missing-models dialog; dialogs: {texts}"
        for model in wanted:
            assert model in missing_models[0], (model, missing_models[0])
        if name == "jojogan_one_shot_face":
            screenshot(page, shots, "missing_models_dialog")
    else:
        assert not missing_models, missing_models
    close_dialogs(page)
    nodes = graph_state(page)
    assert sorted((n["id"], n["type"]) for n in nodes) == sorted(
        (n["id"], n["type"]) for n in expected["nodes"]
    )
    bad = [n for n in nodes if not n["registered"] or n["has_errors"]]
    assert not bad, bad
    backend = [n for n in nodes if n["type"] != "MarkdownNote"]
    assert all(n["backend"] for n in backend), [n for n in backend if not n["backend"]]
    # titles as the workflow gives them (the pack's display names)
    titles = {n["id"]: n["title"] for n in nodes}
    assert all(titles[n["id"]] == n["title"] for n in expected["nodes"])
    show(page)
    screenshot(page, shots, f"workflow_{name}")


def test_missing_model_is_the_packs_message_in_the_frontend(page, server, shots):
    """Queue the one-shot face workflow with nothing in models/jojogan: the error dialog shows
    the pack's message (which file, where, the download command)."""
    assert not any(server.models.iterdir()), "models/jojogan is not empty"
    load_workflow(page, "jojogan_one_shot_face")
    queue(page)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.p-dialog')].some(d => "
        "d.innerText.includes('jojogan download'))",
        timeout=300_000,
    )
    page.wait_for_timeout(500)
    (text,) = [t for t in dialogs(page) if "jojogan download" in t]
    print(f"error dialog: {text}")
    assert "stylegan2-ffhq-config-f.pt" in text or "e4e_ffhq_encode.pt" in text
    assert str(server.models) in text
    assert "python -m jojogan download" in text
    entry = next(iter(history(server).values()))
    err = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
    assert err["node_type"] in ("JoJoGAN_LoadStyleGAN2", "JoJoGAN_LoadEncoder"), err
    screenshot(page, shots, "error_missing_model")
    close_dialogs(page)


def test_toy_workflow_runs_with_a_live_preview_in_finetune(page, server, shots):
    load_workflow(page, "jojogan_toy_demo")
    page.evaluate("() => { window.__previews.length = 0; }")
    t0 = time.time()
    queue(page)
    # the Finetune node (id 6) training, showing its current stylization
    page.wait_for_function("() => window.__previews.includes('6')", timeout=TOY_TIMEOUT * 1000)
    print(f"first Finetune preview after {time.time() - t0:.0f} s")
    page.wait_for_function("() => (app.nodePreviewImages['6'] || []).length > 0", timeout=10_000)
    page.wait_for_timeout(1500)  # the image decoded and drawn
    show(page, [740, -40, 2240, 820], max_scale=1.0)
    screenshot(page, shots, "toy_live_preview")
    running = server.get_json("/queue")["queue_running"]
    assert running, "the toy workflow had already finished: not a mid-run picture"
    # the end: both Save Image nodes show their pictures
    page.wait_for_function(
        "() => ['9', '11'].every(id => app.nodeOutputs[id]?.images?.length)",
        timeout=TOY_TIMEOUT * 1000,
    )
    print(f"toy workflow done after {time.time() - t0:.0f} s")
    page.wait_for_timeout(2000)
    entry = next(iter(history(server).values()))
    assert entry["status"]["status_str"] == "success", entry["status"]
    previews = page.evaluate("() => window.__previews")
    assert "7" in previews and "6" in previews, previews
    nodes = graph_state(page)
    assert not [n for n in nodes if n["has_errors"]]
    show(page, [1120, -40, 2240, 1000], max_scale=1.0)
    screenshot(page, shots, "toy_outputs")
