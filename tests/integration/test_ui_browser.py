"""The web UI in a real browser (Playwright driving Debian's chromium) against the real control
plane and operator: two users in two browser contexts, jobs admitted and refused by the
webhook, tampered URLs and forms, the keyboard, and axe-core's accessibility rules.

Screenshots of the main pages are saved in build/ui-screenshots/ (README shows two).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from conftest import CLUSTER_NAME, skip_or_fail, wait_for
from fakes import copy_name
from kube import copy_value, create_usersecret, wait_copy
from usersecrets_dev import ui_process
from usersecrets_dev.controlplane import REPO, ControlPlane
from usersecrets_dev.operator_process import OperatorProcess
from usersecrets_dev.ui_process import UiProcess

pytestmark = pytest.mark.integration

UserMaker = Callable[[str], tuple[str, str]]
CHROMIUM = os.environ.get("USERSECRETS_CHROMIUM", ui_process.CHROMIUM)
CHROMIUM_ARGS = ui_process.CHROMIUM_ARGS
AXE = REPO / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / "build" / "ui-screenshots"
WEBHOOK = "pods.usersecrets.io"


def _missing(what: str) -> None:
    skip_or_fail(f"{what} is missing: run `make test`, which installs it")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file() or not shutil.which(CHROMIUM):
        _missing(f"Debian's chromium ({CHROMIUM})")
    # A fresh profile (user-data-dir) per launch: Playwright makes one in a temporary folder.
    launched = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.is_file():
        _missing(f"axe-core ({AXE})")
    return AXE.read_text()


class Person:
    """One user in their own browser context, noting every console complaint."""

    def __init__(self, browser: Browser, ui: UiProcess, axe: str) -> None:
        self.context: BrowserContext = browser.new_context(viewport={"width": 1280, "height": 800})
        self.page: Page = self.context.new_page()
        self.ui, self.axe = ui, axe
        self.complaints: list[str] = []
        self.page.on("console", self._console)
        self.page.set_default_timeout(30_000)

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.complaints.append(message.text)

    def goto(self, path: str) -> Page:
        self.page.goto(self.ui.url + path)
        return self.page

    def sign_in(self, token: str) -> None:
        """With the keyboard only: Tab to the token field, type, Enter."""
        page = self.goto("/sign-in")
        page.keyboard.press("Tab")  # the skip link
        page.keyboard.press("Tab")
        expect(page.locator("#token")).to_be_focused()
        page.keyboard.type(token)
        with page.expect_navigation():
            page.keyboard.press("Enter")

    def accessible(self) -> None:
        """axe-core's WCAG 2.x A/AA rules and best practices find nothing on this page."""
        self.page.evaluate(self.axe)
        found = self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".map(v => `${v.id}: ${v.help} (${v.nodes.map(n => n.target.join(' ')).join(', ')})`)"
        )
        assert found == [], f"{self.page.url}: {found}"

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        assert self.complaints == [], self.complaints
        self.context.close()


@pytest.fixture
def people(browser: Browser, ui: UiProcess, axe_source: str) -> Iterator[Callable[[], Person]]:
    made: list[Person] = []

    def make() -> Person:
        made.append(Person(browser, ui, axe_source))
        return made[-1]

    yield make
    for person in made:
        person.close()


def reload_until(page: Page, selector: str, text: str, timeout: float = 30.0) -> None:
    """Reloads until `selector` shows `text`: the operator works while the page is open."""
    deadline = time.monotonic() + timeout
    while True:
        found = page.locator(selector)
        if found.count() and text in found.first.inner_text():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{page.url}: {selector} never showed {text!r}")
        time.sleep(0.3)
        page.reload()


def refused_by_webhook(
    admin: client.ApiClient, namespace: str, annotations: dict[str, str]
) -> bool:
    """Whether the webhook now refuses a pod with these annotations in `namespace` (dry run)."""
    pod = {
        "metadata": {"generateName": "probe-", "annotations": annotations},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }
    try:
        client.CoreV1Api(admin).create_namespaced_pod(namespace, pod, dry_run="All")
    except ApiException as error:
        status: int | None = error.status  # the client is not type-checked (Any)
        return status == 403
    return False


def test_alice_shares_bob_runs_a_job_alice_revokes(
    people: Callable[[], Person],
    ui_user: UserMaker,
    users: Callable[[str], str],
    admin: client.ApiClient,
    tmp_path: Path,
) -> None:
    alice, bob = users("alice"), users("bob")
    alice_ns, alice_token = ui_user(alice)
    bob_ns, bob_token = ui_user(bob)

    # -- alice: two secrets, one typed, one from a binary file ----------------------------
    a = people()
    a.sign_in(alice_token)
    page = a.page
    assert page.url == f"{a.ui.url}/n/{alice_ns}/secrets"
    expect(page.locator("#whoami")).to_have_text(f"system:serviceaccount:{alice_ns}:{alice}")
    a.accessible()
    typed = f"s3cr3t-{uuid.uuid4().hex}"
    page.fill("#key", "db-password")
    page.fill("#value", typed)
    page.click("#add-secret button[type=submit]")
    expect(page.locator(".flash")).to_have_text(
        "Secret 'db-password' saved. Its value will not be shown again."
    )
    binary = b"value\xff\x00" + os.urandom(64)
    (tmp_path / "blob.bin").write_bytes(binary)
    page.fill("#key", "blob")
    page.set_input_files("#file", str(tmp_path / "blob.bin"))
    page.click("#add-secret button[type=submit]")
    expect(page.locator(".flash")).to_have_text(
        "Secret 'blob' saved. Its value will not be shown again."
    )
    wait_copy(admin, alice_ns, alice, "blob", binary)
    wait_copy(admin, alice_ns, alice, "db-password", typed.encode())
    reload_until(page, "#secrets tr[data-key='db-password']", "Ready")
    rows = page.locator("#secrets tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("th")).to_have_text("blob")  # sorted
    expect(rows.nth(1).locator("td").nth(0)).to_have_text(
        f"secret://{CLUSTER_NAME}/{alice}/db-password"
    )
    assert typed not in page.content()
    a.screenshot("secrets")

    # -- alice shares db-password with bob ----------------------------------------------------
    page.click("#secrets tr[data-key='db-password'] >> text=Share")
    a.accessible()
    page.fill("#user", bob)
    page.click("#share button[type=submit]")
    expect(page.locator(".flash")).to_have_text(f"Secret 'db-password' shared with {bob}.")
    expect(page.locator("#shares tbody th")).to_have_text(bob)
    a.screenshot("secret")

    # -- bob sees it, and runs a job that uses it as a file and a variable --------------------
    b = people()
    b.sign_in(bob_token)
    bpage = b.page
    reload_until(bpage, "#shared", f"secret:/{alice}/db-password")
    expect(bpage.locator("#shared tbody td").first).to_have_text(alice)
    b.accessible()
    bpage.click("nav >> text=Run a job")
    bpage.fill("#image", "busybox")
    bpage.fill("#command", "sh -c 'cat /var/secrets/pw; echo $PW'")
    row = bpage.locator(f"tr[data-ref='secret:/{alice}/db-password']")
    row.locator("input[name^=path]").fill("/var/secrets/pw")
    row.locator("input[name^=env]").fill("PW")
    b.accessible()
    b.screenshot("jobs")
    bpage.click("#run")
    expect(bpage).to_have_url(re.compile(rf"/n/{bob_ns}/jobs/job-[a-z0-9]+$"))
    # The page follows the job: pending (no node runs pods here), with the secrets injected.
    expect(bpage.locator("#pods")).to_contain_text("/var/secrets/pw")
    expect(bpage.locator("#pods")).to_contain_text("PW")
    expect(bpage.locator("#job-phase")).to_have_text("Pending")
    expect(bpage.locator("#job-message")).to_have_text("Admitted; waiting for a node to run it.")
    job_name = bpage.url.rsplit("/", 1)[1]
    pods = client.CoreV1Api(admin).list_namespaced_pod(
        bob_ns, label_selector=f"batch.kubernetes.io/job-name={job_name}"
    )
    container = pods.items[0].spec.containers[0]
    mounts = {m.mount_path: m for m in container.volume_mounts if m.name.startswith("usersecrets-")}
    assert list(mounts) == ["/var/secrets/pw"]
    assert mounts["/var/secrets/pw"].read_only is True
    env = {e.name: e.value_from.secret_key_ref.name for e in container.env or []}
    assert env == {"PW": copy_name(alice, "db-password")}
    b.accessible()
    b.screenshot("job")
    bpage.click("nav >> text=Run a job")
    expect(bpage.locator("#recent tbody th a")).to_have_text([job_name])

    # -- alice revokes; bob's next job is refused by the webhook, in its words ---------------
    page.click("#shares >> text=Revoke")
    expect(page.locator(".flash")).to_have_text(
        f"Secret 'db-password' is no longer shared with {bob}."
    )
    wait_copy(admin, bob_ns, alice, "db-password", None)
    wanted = {"usersecrets.io/env": f"PW=secret:/{alice}/db-password"}
    wait_for(lambda: refused_by_webhook(admin, bob_ns, wanted), what="the webhook to refuse")
    bpage.goto(f"{b.ui.url}/n/{bob_ns}/secrets")
    expect(bpage.locator("#nothing-shared")).to_have_text("Nobody has shared a secret with you.")
    bpage.goto(f"{b.ui.url}/n/{bob_ns}/jobs/{job_name}")
    bpage.click("#again")
    expect(bpage.locator("#job-error")).to_have_text(
        f'Rejected: admission webhook "{WEBHOOK}" denied the request: Secret '
        f"'secret://{CLUSTER_NAME}/{alice}/db-password' is not shared with user '{bob}'"
    )
    # The refused job's secrets stay on the form, ready to be fixed or sent again.
    row = bpage.locator(f"tr[data-ref='secret:/{alice}/db-password']")
    expect(row.locator("input[name^=path]")).to_have_value("/var/secrets/pw")
    b.accessible()
    b.screenshot("refused")
    assert copy_value(admin, bob_ns, alice, "db-password") is None


def test_bob_cannot_reach_alices_secrets_by_editing_urls_or_forms(
    people: Callable[[], Person],
    ui_user: UserMaker,
    users: Callable[[str], str],
    admin: client.ApiClient,
) -> None:
    alice, bob = users("alice"), users("bob")
    alice_ns, _ = ui_user(alice)
    bob_ns, bob_token = ui_user(bob)
    create_usersecret(admin, alice_ns, "db", b"alice-only")
    b = people()
    b.sign_in(bob_token)
    page = b.goto(f"/n/{alice_ns}/secrets")
    expect(page.locator("h1")).to_have_text("Refused")
    expect(page.locator("#message")).to_contain_text(
        f"Forbidden: you may not list usersecrets.usersecrets.io in namespace '{alice_ns}': "
    )
    b.accessible()
    b.screenshot("forbidden")
    # His own delete form, pointed at alice's secret.
    b.goto(f"/n/{bob_ns}/secrets")
    page.fill("#key", "mine")
    page.fill("#value", "v")
    page.click("#add-secret button[type=submit]")
    page.goto(f"{b.ui.url}/n/{bob_ns}/secrets/mine/delete")
    page.eval_on_selector(
        "form[action$='/delete']",
        "(f, url) => f.setAttribute('action', url)",
        f"/n/{alice_ns}/secrets/db/delete",
    )
    page.click("form[action$='/delete'] button")
    expect(page.locator("#message")).to_contain_text(
        f"Forbidden: you may not delete usersecrets.usersecrets.io 'db' in namespace '{alice_ns}': "
    )
    assert copy_value(admin, alice_ns, alice, "db") == b"alice-only"
    # His job form, given a row for alice's secret that was never shared with him.
    b.goto(f"/n/{bob_ns}/jobs")
    page.fill("#image", "busybox")
    page.eval_on_selector(
        "#run-job",
        """(form, ref) => {
            for (const [name, value] of [["ref-99", ref], ["path-99", "/stolen"]]) {
                const input = document.createElement("input");
                input.type = "hidden"; input.name = name; input.value = value;
                form.appendChild(input);
            }
        }""",
        f"secret:/{alice}/db",
    )
    page.click("#run")
    expect(page.locator("#job-error")).to_have_text(
        f'Rejected: admission webhook "{WEBHOOK}" denied the request: Secret '
        f"'secret://{CLUSTER_NAME}/{alice}/db' is not shared with user '{bob}'"
    )
    jobs = client.BatchV1Api(admin).list_namespaced_job(bob_ns)
    assert jobs.items == []


def test_forms_check_before_sending_and_show_that_they_are_working(
    people: Callable[[], Person], ui_user: UserMaker, users: Callable[[str], str], tmp_path: Path
) -> None:
    namespace, token = ui_user(users("alice"))
    p = people()
    page = p.goto("/sign-in")
    p.accessible()
    p.screenshot("sign-in")
    p.sign_in(token)
    # The key rule, in the server's words, before anything is sent.
    page.fill("#key", "Wandb_Token")
    expect(page.locator("#key-error")).to_have_text(
        "Secret key 'Wandb_Token' is valid on Neu.ro but cannot be stored here: it contains "
        "uppercase letters, it contains '_' (keys are Kubernetes object names: lowercase "
        "letters, digits, '-' and '.', starting and ending with a letter or digit, at most 63 "
        "characters)"
    )
    expect(page.locator("#key")).to_have_attribute("aria-invalid", "true")
    p.accessible()
    # Markup typed as a key is shown as text.
    page.fill("#key", "<img src=x>")
    expect(page.locator("#key-error")).to_contain_text("Invalid secret key '<img src=x>': ")
    assert page.locator("main img").count() == 0
    # A file over the limit is flagged when chosen, and the form is not sent.
    page.fill("#key", "big")
    expect(page.locator("#key-error")).to_have_text("")
    (tmp_path / "big.bin").write_bytes(b"\0" * (1024 * 1024 + 1))
    page.set_input_files("#file", str(tmp_path / "big.bin"))
    expect(page.locator("#value-error")).to_have_text(
        "The value is 1048577 bytes; a secret holds at most 1 MiB (1048576)"
    )
    page.click("#add-secret button[type=submit]")
    # Focus moved to the field to fix (checked in the page: after a file chooser, Playwright
    # reports the page itself as inactive).
    assert page.evaluate("document.activeElement.id") == "file"
    assert page.url == f"{p.ui.url}/n/{namespace}/secrets"
    page.set_input_files("#file", [])
    expect(page.locator("#value-error")).to_have_text("")
    # While the cluster works, the form says so. (Sending is stopped here to look: a held
    # request would hold the page's scripts too.)
    page.eval_on_selector(
        "#add-secret", "f => f.addEventListener('submit', e => e.preventDefault())"
    )
    page.fill("#value", "v")
    page.click("#add-secret button[type=submit]")
    state = page.evaluate(
        """() => {
            const form = document.getElementById("add-secret");
            const button = form.querySelector("button[type=submit]");
            return [button.textContent, button.getAttribute("aria-disabled"),
                    form.getAttribute("aria-busy")];
        }"""
    )
    assert state == ["Working…", "true", "true"]
    page.reload()
    page.fill("#key", "big")
    page.fill("#value", "v")
    page.click("#add-secret button[type=submit]")
    expect(page.locator(".flash")).to_have_text(
        "Secret 'big' saved. Its value will not be shown again."
    )
    # Delete asks first; the confirmation page is a page of its own.
    page.click("#secrets tr[data-key='big'] >> text=Delete")
    expect(page.locator("h1")).to_have_text("Delete secret big?")
    p.accessible()
    page.click("button.danger")
    expect(page.locator(".flash")).to_have_text("Secret 'big' deleted.")
    expect(page.locator("#no-secrets")).to_be_visible()
    # Sign out from the page; the next page asks to sign in.
    page.click("text=Sign out")
    expect(page.locator(".notice")).to_have_text("You are signed out.")
    page.goto(f"{p.ui.url}/n/{namespace}/secrets")
    expect(page.locator(".notice")).to_have_text("Sign in to continue.")


def test_a_cross_site_form_and_an_expired_session_change_nothing(
    browser: Browser,
    axe_source: str,
    cluster: ControlPlane,
    operator: OperatorProcess,
    ui_user: UserMaker,
    users: Callable[[str], str],
    admin: client.ApiClient,
) -> None:
    short = UiProcess(
        cluster, operator.objects, name="ui-browser-short", USERSECRETS_UI_SESSION_IDLE_SECONDS="2"
    ).start()
    try:
        namespace, token = ui_user(users("alice"))
        p = Person(browser, short, axe_source)
        p.sign_in(token)
        # Another site's page, in the same browser, sends a form to the UI.
        attacker = p.context.new_page()
        attacker.set_content(
            f'<form method="post" action="{short.url}/n/{namespace}/secrets">'
            '<input name="key" value="planted"><input name="value" value="x"></form>'
        )
        with attacker.expect_navigation():
            attacker.evaluate("document.forms[0].submit()")
        expect(attacker.locator("#message")).to_have_text("Cross-site request refused.")
        attacker.close()
        listed = client.CustomObjectsApi(admin).list_namespaced_custom_object(
            "usersecrets.io", "v1alpha1", namespace, "usersecrets"
        )
        assert listed["items"] == []
        # Left alone longer than the idle limit, the next click asks to sign in again.
        time.sleep(2.5)
        p.page.click("nav >> text=Run a job")
        expect(p.page.locator(".notice")).to_have_text("Your session has expired: sign in again.")
        p.accessible()
        p.close()
    finally:
        short.stop()
