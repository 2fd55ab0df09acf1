"""The web UI over HTTP, against the real control plane and operator: sign-in, sessions,
CSRF, headers, escaping, limits and RBAC, each refusal checked by its words.

The browser flows (two users, jobs, accessibility) are in test_ui_browser.py.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from conftest import wait_for
from kube import USERSECRETS, create_grant, create_usersecret, get_object, wait_copy
from usersecrets_dev.controlplane import ControlPlane
from usersecrets_dev.operator_process import OperatorProcess
from usersecrets_dev.ui_process import UiProcess
from webclient import Visitor

pytestmark = pytest.mark.integration

UserMaker = Callable[[str], tuple[str, str]]
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
CSRF_REFUSAL = (
    "This form has expired or did not come from this site (CSRF check failed): "
    "reload the page and try again."
)


def signed_in(ui: UiProcess, token: str) -> tuple[Visitor, str]:
    """A visitor signed in with `token`, and the namespace page it was sent to."""
    visitor = Visitor(ui.url)
    visitor.sign_in(token)
    home = visitor.get("/")
    assert home.status == 303, home.text
    return visitor, home.location


def test_every_page_carries_the_security_headers(ui: UiProcess) -> None:
    for path in ("/sign-in", "/static/app.js", "/n/nobody/secrets", "/no-such-page"):
        answer = Visitor(ui.url).get(path)
        assert answer.headers["Content-Security-Policy"] == CSP, path
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert answer.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert Visitor(ui.url).get("/sign-in").headers["Cache-Control"] == "no-store"


def test_pages_load_nothing_from_other_hosts_and_run_no_inline_script(ui: UiProcess) -> None:
    page = Visitor(ui.url).get("/sign-in").text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources == ["/static/icon.svg", "/static/app.css", "/static/app.js", "#main"]
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/app.js" defer>']
    assert re.findall(r"<[^>]+\son\w+=", page) == []  # no inline event handlers


def test_a_token_the_cluster_rejects_signs_nobody_in(ui: UiProcess) -> None:
    visitor = Visitor(ui.url)
    page = visitor.get("/sign-in")
    answer = visitor.post("/sign-in", {"csrf": page.csrf(), "token": "not-a-real-token"})
    assert answer.status == 401
    assert answer.by_id("token-error") == "The cluster did not accept this token."
    assert visitor.get("/").location == "/sign-in?reason=signin"


def test_sign_in_form_without_its_csrf_cookie_is_refused(ui: UiProcess, ui_user: UserMaker) -> None:
    _, token = ui_user("alice")
    stranger = Visitor(ui.url)  # never loaded the form, so has no pre-session cookie
    token_field = Visitor(ui.url).get("/sign-in").csrf()
    answer = stranger.post("/sign-in", {"csrf": token_field, "token": token})
    assert answer.status == 403
    assert answer.by_id("message") == CSRF_REFUSAL


def test_who_you_are_and_the_namespace_you_act_in(
    ui: UiProcess, ui_user: UserMaker, users: Callable[[str], str]
) -> None:
    namespace, token = ui_user(users("alice"))
    visitor, home = signed_in(ui, token)
    assert home == f"/n/{namespace}/secrets"
    assert str(visitor.cookie("usersecrets-namespaces")).endswith(f".{namespace}")
    page = visitor.get(home)
    assert page.by_id("whoami") == f"system:serviceaccount:{namespace}:{users('alice')}"
    assert page.by_id("namespace") == namespace
    # The choice is remembered: the next visit goes straight there.
    assert visitor.get("/").location == home
    # For this user only: bob, signing in on the same browser, goes to his own.
    bob_ns, bob_token = ui_user(users("bob"))
    visitor.post("/sign-out", {"csrf": page.csrf()})
    visitor.sign_in(bob_token)
    assert visitor.get("/").location == f"/n/{bob_ns}/secrets"


def test_choosing_a_namespace_that_is_not_yours_is_refused(
    ui: UiProcess, ui_user: UserMaker, users: Callable[[str], str]
) -> None:
    alice_ns, _ = ui_user(users("alice"))
    _, token = ui_user(users("bob"))
    visitor, _ = signed_in(ui, token)
    page = visitor.get("/namespaces")
    answer = visitor.post("/namespaces", {"csrf": page.csrf(), "namespace": alice_ns})
    assert answer.status == 403
    assert answer.by_id("namespace-error") == (
        f"You may not manage secrets in namespace '{alice_ns}'"
    )
    answer = visitor.post("/namespaces", {"csrf": page.csrf(), "namespace": "Not_A_Name"})
    assert answer.by_id("namespace-error") == (
        "'Not_A_Name' is not a namespace name (lowercase letters, digits and '-')"
    )


def test_changes_without_the_sessions_csrf_token_are_refused(
    ui: UiProcess, ui_user: UserMaker, users: Callable[[str], str], admin: client.ApiClient
) -> None:
    namespace, token = ui_user(users("alice"))
    visitor, home = signed_in(ui, token)
    other, _ = signed_in(ui, token)
    foreign = other.get(home).csrf()  # a valid token, of another session
    for fields in ({"key": "k1", "value": "v"}, {"csrf": foreign, "key": "k1", "value": "v"}):
        answer = visitor.post(home, fields)
        assert answer.status == 403
        assert answer.by_id("message") == CSRF_REFUSAL
    # A browser's cross-site POST is refused before its form is even read.
    answer = visitor.post(
        home,
        {"csrf": visitor.get(home).csrf(), "key": "k1", "value": "v"},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert answer.status == 403
    assert answer.by_id("message") == "Cross-site request refused."
    listed = client.CustomObjectsApi(admin).list_namespaced_custom_object(
        "usersecrets.io", "v1alpha1", namespace, USERSECRETS
    )
    assert listed["items"] == []
    # The same form with its own token goes through.
    answer = visitor.post(home, {"csrf": visitor.get(home).csrf(), "key": "k1", "value": "v"})
    assert answer.status == 303, answer.text
    assert get_object(admin, USERSECRETS, namespace, "k1")["spec"]["value"] == "dg=="


@pytest.fixture
def short_ui(cluster: ControlPlane, operator: OperatorProcess) -> Iterator[UiProcess]:
    """A UI whose sessions end after one idle second."""
    process = UiProcess(
        cluster, operator.objects, name="ui-short", USERSECRETS_UI_SESSION_IDLE_SECONDS="1"
    ).start()
    try:
        yield process
    finally:
        process.stop()


def test_sessions_expire_and_sign_out_ends_them(
    short_ui: UiProcess, ui_user: UserMaker, users: Callable[[str], str], admin: client.ApiClient
) -> None:
    namespace, token = ui_user(users("alice"))
    visitor, home = signed_in(short_ui, token)
    csrf = visitor.get(home).csrf()
    time.sleep(1.5)  # longer than the idle limit: a lower bound, not a race
    answer = visitor.get(home)
    assert (answer.status, answer.location) == (303, "/sign-in?reason=expired")
    assert "Your session has expired: sign in again." in visitor.get(answer.location).text
    # A change sent with the expired session does nothing.
    answer = visitor.post(home, {"csrf": csrf, "key": "late", "value": "v"})
    assert (answer.status, answer.location) == (303, "/sign-in?reason=expired")
    listed = client.CustomObjectsApi(admin).list_namespaced_custom_object(
        "usersecrets.io", "v1alpha1", namespace, USERSECRETS
    )
    assert listed["items"] == []

    visitor.sign_in(token)
    cookie = visitor.cookie("usersecrets-session")
    page = visitor.get(home)
    assert page.status == 200
    answer = visitor.post("/sign-out", {"csrf": page.csrf()})
    assert (answer.status, answer.location) == (303, "/sign-in?reason=signedout")
    # The old cookie, replayed, is worth nothing.
    answer = Visitor(short_ui.url).get(home, headers={"Cookie": f"usersecrets-session={cookie}"})
    assert (answer.status, answer.location) == (303, "/sign-in?reason=expired")


def test_a_proxys_bearer_token_acts_without_a_session(
    ui: UiProcess, ui_user: UserMaker, users: Callable[[str], str], admin: client.ApiClient
) -> None:
    namespace, token = ui_user(users("alice"))
    proxy = {"Authorization": f"Bearer {token}"}
    visitor = Visitor(ui.url)
    page = visitor.get(f"/n/{namespace}/secrets", headers=proxy)
    assert page.status == 200
    assert page.by_id("whoami") == f"system:serviceaccount:{namespace}:{users('alice')}"
    assert 'href="/oauth2/sign_out"' in page.text
    assert visitor.cookie("usersecrets-session") is None
    fields = {"csrf": page.csrf(), "key": "from-proxy", "value": "v"}
    answer = visitor.post(f"/n/{namespace}/secrets", fields, headers=proxy)
    assert answer.status == 303, answer.text
    get_object(admin, USERSECRETS, namespace, "from-proxy")
    # Its CSRF token is bound to the token: another token's does not fit.
    _, other = ui_user(users("bob"))
    other_csrf = visitor.get("/namespaces", headers={"Authorization": f"Bearer {other}"}).csrf()
    fields = {"csrf": other_csrf, "key": "forged", "value": "v"}
    answer = visitor.post(f"/n/{namespace}/secrets", fields, headers=proxy)
    assert answer.status == 403
    assert answer.by_id("message") == CSRF_REFUSAL


def test_values_never_come_back_nor_reach_the_log(
    ui: UiProcess, ui_user: UserMaker, users: Callable[[str], str], admin: client.ApiClient
) -> None:
    namespace, token = ui_user(users("alice"))
    visitor, home = signed_in(ui, token)
    value = f"hunter2-{uuid.uuid4().hex}"
    encoded = base64.b64encode(value.encode()).decode()
    pages = [visitor.post(home, {"csrf": visitor.get(home).csrf(), "key": "pw", "value": value})]
    wait_copy(admin, namespace, users("alice"), "pw", value.encode())
    # A refused add (bad key) with the value typed: the form comes back without it.
    pages.append(visitor.post(home, {"csrf": visitor.get(home).csrf(), "key": "P", "value": value}))
    assert pages[-1].status == 400
    pages += [visitor.get(home), visitor.get(f"{home.rsplit('/', 1)[0]}/secrets/pw")]
    pages.append(visitor.get(f"/n/{namespace}/jobs"))
    for page in pages:
        assert value not in page.text
        assert encoded not in page.text
    log = ui.log.read_text()
    assert f"POST /n/{namespace}/secrets 303" in log
    assert value not in log
    assert encoded not in log
    assert token not in log


def test_key_rules_and_size_limit_are_told_next_to_the_field(
    ui: UiProcess, ui_user: UserMaker, users: Callable[[str], str]
) -> None:
    _, token = ui_user(users("alice"))
    visitor, home = signed_in(ui, token)
    answer = visitor.post(home, {"csrf": visitor.get(home).csrf(), "key": "My_Key", "value": "v"})
    assert answer.status == 400
    assert answer.by_id("key-error") == (
        "Secret key 'My_Key' is valid on Neu.ro but cannot be stored here: it contains "
        "uppercase letters, it contains '_' (keys are Kubernetes object names: lowercase "
        "letters, digits, '-' and '.', starting and ending with a letter or digit, at most 63 "
        "characters)"
    )
    assert 'value="My_Key"' in answer.text  # the key is kept for correcting, never the value
    big = b"\0" * (1024 * 1024 + 1)
    answer = visitor.post(
        home, {"csrf": visitor.get(home).csrf(), "key": "big"}, files={"file": ("big.bin", big)}
    )
    assert answer.status == 400
    assert answer.by_id("value-error") == (
        "The value is 1048577 bytes; a secret holds at most 1 MiB (1048576)"
    )
    answer = visitor.post(home, {"csrf": visitor.get(home).csrf(), "key": "empty"})
    assert answer.by_id("value-error") == "Type a value or choose a file."
    huge = b"\0" * (2 * 1024 * 1024)
    answer = visitor.post(
        home, {"csrf": visitor.get(home).csrf(), "key": "huge"}, files={"file": ("h.bin", huge)}
    )
    assert answer.status == 413
    assert answer.by_id("message") == (
        "The upload is larger than any secret can be: a secret holds at most 1 MiB (1048576)"
    )
    # The checks the page's script asks for while typing: the same words.
    check = visitor.get("/check/key?key=a..b")
    assert check.text == (
        '{"error": "Secret key \'a..b\' is valid on Neu.ro but cannot be stored here: it and '
        "each of its '.'-separated parts must start and end with a letter or digit (keys are "
        "Kubernetes object names: lowercase letters, digits, '-' and '.', starting and ending "
        'with a letter or digit, at most 63 characters)"}'
    )
    assert visitor.get("/check/value?size=1048577").text == (
        '{"error": "The value is 1048577 bytes; a secret holds at most 1 MiB (1048576)"}'
    )


def test_markup_in_keys_users_and_refusals_is_shown_as_text(
    ui: UiProcess, ui_user: UserMaker, users: Callable[[str], str], admin: client.ApiClient
) -> None:
    namespace, token = ui_user(users("alice"))
    visitor, home = signed_in(ui, token)
    key = "<b>x</b>"
    answer = visitor.post(home, {"csrf": visitor.get(home).csrf(), "key": key, "value": "v"})
    assert "<b>x</b>" not in answer.text
    assert answer.raw("key-error").startswith(
        "Invalid secret key &#39;&lt;b&gt;x&lt;/b&gt;&#39;: it contains "
    )
    visitor.post(home, {"csrf": visitor.get(home).csrf(), "key": "db", "value": "v"})
    share = f"/n/{namespace}/secrets/db/shares"
    user = '<img src=x onerror="alert(1)">'
    answer = visitor.post(share, {"csrf": visitor.get(home).csrf(), "user": user})
    assert answer.status == 400
    assert "<img" not in answer.text
    assert answer.raw("user-error") == (
        "Invalid user &#39;&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&#39;"
    )
    # One the UI lets through, refused by the apiserver: its words, escaped.
    answer = visitor.post(share, {"csrf": visitor.get(home).csrf(), "user": "<i>bob"})
    assert answer.status == 400
    assert "<i>bob" not in answer.text
    error = answer.raw("user-error")
    assert error.startswith("Invalid: SecretGrant.usersecrets.io &#34;")
    assert "spec.user: Invalid value: &#34;&lt;i&gt;bob&#34;" in error
    # The webhook's refusal quotes the job's own text.
    jobs = f"/n/{namespace}/jobs"
    fields = {
        "csrf": visitor.get(jobs).csrf(),
        "action": "run",
        "image": "busybox",
        "ref-1": "secret:db",
        "env-1": "<script>alert(1)</script>",
    }
    answer = visitor.post(jobs, fields)
    assert answer.status == 400
    assert "<script>alert" not in answer.text
    assert answer.raw("job-error") == (
        "Rejected: admission webhook &#34;pods.usersecrets.io&#34; denied the request: Invalid "
        "environment variable name &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39; in "
        "&#39;&lt;script&gt;alert(1)&lt;/script&gt;=secret:db&#39;: letters, digits, &#39;_&#39;, "
        "&#39;-&#39; and &#39;.&#39;, not starting with a digit"
    )


def test_another_users_secrets_stay_out_of_reach(
    ui: UiProcess, ui_user: UserMaker, users: Callable[[str], str], admin: client.ApiClient
) -> None:
    alice, bob = users("alice"), users("bob")
    alice_ns, _ = ui_user(alice)
    _, bob_token = ui_user(bob)
    create_usersecret(admin, alice_ns, "db", b"alice-value")
    visitor, _ = signed_in(ui, bob_token)
    csrf = visitor.get("/namespaces").csrf()
    refused = {
        ("GET", f"/n/{alice_ns}/secrets", None): (
            f"Forbidden: you may not list usersecrets.usersecrets.io in namespace '{alice_ns}'"
        ),
        ("GET", f"/n/{alice_ns}/secrets/db", None): (
            f"Forbidden: you may not get usersecrets.usersecrets.io 'db' in namespace '{alice_ns}'"
        ),
        ("POST", f"/n/{alice_ns}/secrets/db/delete", ()): (
            f"Forbidden: you may not delete usersecrets.usersecrets.io 'db' in namespace "
            f"'{alice_ns}'"
        ),
        ("POST", f"/n/{alice_ns}/secrets", (("key", "db"), ("value", "bob-value"))): (
            f"Forbidden: you may not create usersecrets.usersecrets.io 'db' in namespace "
            f"'{alice_ns}'"
        ),
        ("GET", f"/n/{alice_ns}/jobs", None): (
            f"Forbidden: you may not list usersecrets.usersecrets.io in namespace '{alice_ns}'"
        ),
    }
    for (method, path, fields), message in refused.items():
        if method == "GET":
            answer = visitor.get(path)
        else:
            answer = visitor.post(path, [("csrf", csrf), *(fields or ())])
        assert answer.status == 403, (path, answer.text)
        assert answer.by_id("message").startswith(message + ": "), (path, answer.text)
    answer = visitor.post(f"/n/{alice_ns}/secrets/db/shares", {"csrf": csrf, "user": bob})
    assert answer.status == 403
    assert "Forbidden: you may not get usersecrets.usersecrets.io &#39;db&#39;" in answer.text
    # Alice's secret is untouched, and bob got no copy.
    assert get_object(admin, USERSECRETS, alice_ns, "db")["spec"]["value"] == "YWxpY2UtdmFsdWU="
    grants = client.CustomObjectsApi(admin).list_namespaced_custom_object(
        "usersecrets.io", "v1alpha1", alice_ns, "secretgrants"
    )
    assert grants["items"] == []


def test_revoking_a_share_that_does_not_exist_says_so(
    ui: UiProcess, ui_user: UserMaker, users: Callable[[str], str], admin: client.ApiClient
) -> None:
    namespace, token = ui_user(users("alice"))
    create_usersecret(admin, namespace, "db", b"v")
    create_grant(admin, namespace, "db-carol", "db", "carol")
    visitor, _ = signed_in(ui, token)
    page = f"/n/{namespace}/secrets/db"
    answer = visitor.post(f"{page}/revoke", {"csrf": visitor.get(page).csrf(), "user": "dave"})
    assert answer.status == 404
    assert answer.by_id("revoke-error") == "Secret 'db' is not shared with 'dave'"
    answer = visitor.post(f"{page}/revoke", {"csrf": visitor.get(page).csrf(), "user": "carol"})
    assert answer.location == f"{page}?flash=revoked&key=db&user=carol"
    answer = visitor.post(f"/n/{namespace}/secrets/gone/delete", {"csrf": visitor.get(page).csrf()})
    assert answer.status == 404
    assert answer.by_id("message") == "Secret 'gone' not found"


def test_a_secret_added_from_the_job_form_is_offered_at_once(
    ui: UiProcess, ui_user: UserMaker, users: Callable[[str], str], admin: client.ApiClient
) -> None:
    namespace, token = ui_user(users("alice"))
    visitor, _ = signed_in(ui, token)
    jobs = f"/n/{namespace}/jobs"
    fields = {
        "csrf": visitor.get(jobs).csrf(),
        "action": "add-secret",
        "image": "python:3.12",
        "command": "python -c 'print(1)'",
        "key": "wandb",
        "value": "w-value",
    }
    answer = visitor.post(jobs, fields)
    assert answer.status == 200
    assert answer.by_id("job-notice") == "Secret 'wandb' saved; attach it below."
    assert 'value="python:3.12"' in answer.text  # the job's fields are kept
    assert 'data-ref="secret:wandb"' in answer.text
    assert "w-value" not in answer.text
    assert get_object(admin, USERSECRETS, namespace, "wandb")["spec"]["value"] == "dy12YWx1ZQ=="
    fields |= {"key": "Bad Key", "csrf": visitor.get(jobs).csrf()}
    answer = visitor.post(jobs, fields)
    assert answer.status == 400
    assert answer.by_id("key-error").startswith("Invalid secret key 'Bad Key': ")
    assert 'value="python:3.12"' in answer.text


def test_a_job_made_elsewhere_shows_the_webhooks_refusal_from_its_events(
    ui: UiProcess, ui_user: UserMaker, users: Callable[[str], str], admin: client.ApiClient
) -> None:
    """A Job created with kubectl: its pods are refused when the Job controller creates them,
    and the refusal reaches the page from the Job's FailedCreate Events, word for word."""
    namespace, token = ui_user(users("alice"))
    job = {
        "metadata": {"name": "from-kubectl"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {"usersecrets.io/env": "X=secret:nope"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox"}],
                },
            },
        },
    }
    client.BatchV1Api(admin).create_namespaced_job(namespace, job)
    visitor, _ = signed_in(ui, token)
    page = f"/n/{namespace}/jobs/from-kubectl/state"
    wait_for(
        lambda: "Refused" in visitor.get(page).by_id("job-phase"),
        what="the job page to show the refusal",
    )
    assert visitor.get(page).by_id("job-message") == (
        'Error creating: admission webhook "pods.usersecrets.io" denied the request: '
        "Missing secrets: 'nope'"
    )
    listed = visitor.get(f"/n/{namespace}/jobs")
    assert 'href="/n/' + namespace + '/jobs/from-kubectl"' in listed.text
    missing = visitor.get(f"/n/{namespace}/jobs/no-such-job")
    assert missing.status == 404
    assert missing.by_id("message") == "Job 'no-such-job' not found"
