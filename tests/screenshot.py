"""Make docs/inspector.png: `listen --ui` with a few sessions' callbacks, one opened, at 1280×800.

Run from the repository root: python tests/screenshot.py docs/inspector.png
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]

from helpers.browser import CHROMIUM_ARGS, require_browser  # noqa: E402
from helpers.env import AUTH_TOKEN, cli_env  # noqa: E402
from helpers.procs import Cli  # noqa: E402
from helpers.receiver import Receiver  # noqa: E402
from helpers.signing import fields, post_signed  # noqa: E402

TOKEN = "screenshot-token-abcdefghijkl"


def main(out: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    folder = Path(tempfile.mkdtemp())
    with Receiver(status=200, body="ok\n") as app:
        cli = Cli(
            ["listen", "--no-tunnel", "--port", "0", "--ui", "--ui-port", "0", "--fail-first"]
            + ["--store", str(folder / "events.sqlite3"), "--forward-to", app.url + "/plivo"],
            cli_env(VERIFYCLI_UI_TOKEN=TOKEN, PLIVO_AUTH_TOKEN=AUTH_TOKEN),
            cwd=folder,
        )
        try:
            url = cli.wait_for(r"inspector: (\S+)").group(1)
            port = int(cli.wait_for(r"local\s+http://127\.0\.0\.1:(\d+)").group(1))

            def post(form: dict[str, str], token: str = AUTH_TOKEN) -> None:
                post_signed(("127.0.0.1", port), "/verify/callback", form, token)

            first = "82d82a96-1c1e-4a3f-9d55-6f1b2c3d4e5f"
            for status in ("queued", "sent", "delivered"):
                post(fields(first, status))
                post(fields(first, status))  # --fail-first: Plivo's retry
            post(fields(first, "delivered", "verified"))
            failing = fields("3fa91c07-5b2e-4e8a-a0c4-1d2e3f4a5b6c", "undelivered", "expired")
            failing["ChannelErrorCode"] = "80"
            post(failing)
            post(fields("c0ffee00-1234-4f00-8a00-0000000000aa", "sent"), token="wrong-token")
            with sync_playwright() as driver:
                browser = driver.chromium.launch(
                    executable_path=str(require_browser()), args=CHROMIUM_ARGS
                )
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(url)
                expect(page.locator("#live")).to_have_text(re.compile("live"))
                page.locator('#events tbody tr[data-id="6"]').click()  # a retry of #5
                expect(page.locator("#detail")).to_contain_text("Deliveries")
                page.screenshot(path=str(out))
                browser.close()
        finally:
            cli.stop()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/inspector.png"))
