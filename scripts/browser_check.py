"""Look at the running demo as an annotator does, in Chromium (Playwright), and keep screenshots.

    bash scripts/browser_check.sh [--url http://127.0.0.1:8080] [--out docs]

Checks, failing with a message that names what is wrong:
- the Data Manager tab ordered by "Prediction score" lists every task with its score, ascending;
- task 1's labeling view shows the frames and the first question without scrolling (1600 x 1000)
  with the model's choices ticked;
- submitting that view stores the class names (the choices' aliases) in the annotation, which is
  deleted again afterwards so the demo stays as it was.
Writes data-manager-by-score.png and labeling-view.png (palette PNGs) into --out.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import requests
from PIL import Image
from playwright.sync_api import Page, sync_playwright

VIEWPORT = {"width": 1600, "height": 1000}
TAB_TITLE = "Least certain first"
ORDERING = ["tasks:predictions_score"]


class CheckFailed(AssertionError):
    pass


def check(ok: bool, message: str) -> None:
    if not ok:
        raise CheckFailed(message)


class Api:
    """Label Studio's REST API with the demo's legacy token."""

    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {token}"

    def __call__(self, method: str, path: str, **kwargs):
        r = self.http.request(method, self.url + path, timeout=60, **kwargs)
        check(r.ok, f"{method} {path} answered {r.status_code}: {r.text[:300]}")
        return r.json() if r.content else None


def score_tab(api: Api, project: int) -> int:
    """The id of the tab ordered by prediction score (what the UI's "Order by" saves), made once."""
    for view in api("GET", f"/api/dm/views?project={project}"):
        if view["data"].get("title") == TAB_TITLE:
            return view["id"]
    body = {"project": project, "data": {"title": TAB_TITLE, "ordering": ORDERING}}
    return api("POST", "/api/dm/views", json=body)["id"]


def save_png(page: Page, path: Path) -> int:
    """Screenshot as a 256-colour PNG (a fraction of the RGB size); returns its size in bytes."""
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    shot.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path.stat().st_size


def log_in(page: Page, url: str, user: str, password: str) -> None:
    page.goto(f"{url}/user/login/")
    page.fill("input[name=email]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/user/login" not in u, timeout=30_000)


def check_data_manager(page: Page, api: Api, url: str, project: int, tab: int, out: Path) -> list[dict]:
    tasks = api("GET", f"/api/tasks?project={project}&view={tab}&fields=all&page_size=1000")["tasks"]
    scores = [t["predictions_score"] for t in tasks]
    check(bool(tasks) and None not in scores, f"tasks without a prediction score: {[t['id'] for t in tasks if t['predictions_score'] is None]}")
    check(scores == sorted(scores), f"the tab is not ordered by ascending score: {scores}")
    page.goto(f"{url}/projects/{project}/data?tab={tab}")
    page.locator(".lsf-table-row").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1000)  # all rows rendered
    shown = _column_texts(page, "Prediction score")
    check(bool(shown) and all(shown), f"empty score cells in the Data Manager: {shown}")
    check([float(s) for s in shown] == sorted(float(s) for s in shown), f"score cells not ascending: {shown}")
    print(f"data manager: {len(shown)} rows shown, scores {shown[0]} .. {shown[-1]} ascending; "
          f"{save_png(page, out / 'data-manager-by-score.png')} bytes")
    return tasks


def _column_texts(page: Page, title: str) -> list[str]:
    """The cell texts of one Data Manager column, top to bottom (header and rows have the same cells)."""
    texts = page.evaluate("""title => {
        const heads = [...document.querySelectorAll('.lsf-table-head .lsf-table__cell.lsf-th')];
        const i = heads.findIndex(h => h.innerText.trim() === title);
        if (i < 0) return null;
        return [...document.querySelectorAll('.lsf-table-row')].map(
            r => (r.querySelectorAll('.lsf-table__cell')[i] || {innerText: ''}).innerText.trim());
    }""", title)
    check(texts is not None, f"the Data Manager has no column {title!r}")
    return texts


def check_labeling_view(page: Page, api: Api, url: str, project: int, tab: int, out: Path) -> int:
    task = api("GET", f"/api/tasks?project={project}&fields=all&page_size=1")["tasks"][0]  # lowest id first
    page.goto(f"{url}/projects/{project}/data?tab={tab}&task={task['id']}")
    first_question = page.get_by_text("Gender", exact=True).first
    first_question.wait_for(timeout=60_000)
    page.locator("img").first.wait_for()
    page.wait_for_timeout(1500)  # frames and ticks settle
    box = first_question.bounding_box()
    check(box is not None and box["y"] + box["height"] <= VIEWPORT["height"]
          and box["x"] + box["width"] <= VIEWPORT["width"], f"first question not visible without scrolling: {box}")
    predicted = len(task["predictions"][-1]["result"]) if task["predictions"] else 0
    ticked = page.locator("input[type=checkbox]:checked").count()
    check(predicted > 0 and ticked == predicted, f"{ticked} choices ticked, the prediction has {predicted}")
    print(f"labeling view: task {task['id']}, first question at y={box['y']:.0f} px, {ticked} choices ticked; "
          f"{save_png(page, out / 'labeling-view.png')} bytes")
    return task["id"]


def check_stored_values(page: Page, api: Api, task_id: int, classes: dict[str, set[str]]) -> None:
    before = {a["id"] for a in api("GET", f"/api/tasks/{task_id}/annotations")}
    page.get_by_role("button", name="Submit").click()
    for _ in range(40):
        added = [a for a in api("GET", f"/api/tasks/{task_id}/annotations") if a["id"] not in before]
        if added:
            break
        page.wait_for_timeout(250)
    check(bool(added), "submitting the labeling view created no annotation")
    try:
        stored = {r["from_name"]: r["value"]["choices"][0] for r in added[0]["result"]}
        wrong = {k: v for k, v in stored.items() if v not in classes.get(k, ())}
        check(bool(stored) and not wrong, f"stored values that are not class names: {wrong or stored}")
        print(f"submitted: {len(stored)} answers stored as class names, e.g. {sorted(stored.items())[:3]}")
    finally:
        api("DELETE", f"/api/annotations/{added[0]['id']}/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--project", type=int, default=1)
    parser.add_argument("--user", default="admin@example.com")
    parser.add_argument("--password", default="recmeta-demo")
    parser.add_argument("--token", default="recmeta-demo-token")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser binary (Debian's chromium)")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for the screenshots")
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    api = Api(url, args.token)
    args.out.mkdir(parents=True, exist_ok=True)
    parsed = api("GET", f"/api/projects/{args.project}")["parsed_label_config"]
    classes = {name: set(tag.get("labels", ())) for name, tag in parsed.items()}
    tab = score_tab(api, args.project)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport=VIEWPORT)
        try:
            log_in(page, url, args.user, args.password)
            check_data_manager(page, api, url, args.project, tab, args.out)
            task_id = check_labeling_view(page, api, url, args.project, tab, args.out)
            check_stored_values(page, api, task_id, classes)
        except CheckFailed as exc:
            page.screenshot(path=str(args.out / "browser-check-failure.png"))
            print(f"browser check FAILED: {exc} (screenshot: {args.out / 'browser-check-failure.png'})")
            return 1
        finally:
            browser.close()
    print("browser check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
