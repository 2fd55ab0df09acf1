"""The pod annotation grammar, with the Neu.ro scenarios and fuzzing."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from usersecrets.rules.references import (
    _KEY,
    EnvEntry,
    FileEntry,
    References,
    SecretRef,
    _key_reasons,
    key_error,
    normalize_path,
    parse,
    parse_containers,
    parse_ref,
    requests_secrets,
)

CLUSTER = "neuro-compute"
VOLUMES, ENV, CONTAINERS = (
    "usersecrets.io/volumes",
    "usersecrets.io/env",
    "usersecrets.io/containers",
)
#: A key is a DNS subdomain of at most a DNS label's length.
KEY_MAX_LENGTH = 63
BOB = SecretRef("bob", "db")


def parse_text(volumes: str = "", env: str = "", containers: str | None = None) -> References:
    annotations = {VOLUMES: volumes, ENV: env}
    if containers is not None:
        annotations[CONTAINERS] = containers
    return parse(annotations, user="bob", cluster=CLUSTER)


def ok(volumes: str = "", env: str = "") -> References:
    result = parse_text(volumes, env)
    assert result.errors == ()
    return result


def errors(volumes: str = "", env: str = "") -> list[str]:
    return list(parse_text(volumes, env).errors)


# Neu.ro scenarios


def test_one_env() -> None:
    assert ok(env="mypass:secret:secret-password").env == (
        EnvEntry("mypass", SecretRef("bob", "secret-password")),
    )


def test_one_env_cli_form() -> None:
    assert ok(env="MYPASS=secret:secret-password").env == (
        EnvEntry("MYPASS", SecretRef("bob", "secret-password")),
    )


def test_one_file() -> None:
    result = ok("secret:secret-password:/var/secrets/secret-password.txt")
    assert result.files == (
        FileEntry(SecretRef("bob", "secret-password"), "/var/secrets/secret-password.txt"),
    )
    assert result.env == ()
    assert result.containers is None


def test_env_and_file_together() -> None:
    result = ok("secret:a:/a.txt", "A=secret:b")
    assert result.files == (FileEntry(SecretRef("bob", "a"), "/a.txt"),)
    assert result.env == (EnvEntry("A", SecretRef("bob", "b")),)
    assert result.refs == {SecretRef("bob", "a"), SecretRef("bob", "b")}


def test_same_secret_as_env_and_file() -> None:
    result = ok("secret:db:/etc/db", "DB=secret:db")
    assert result.refs == {BOB}
    assert len(result.files) == len(result.env) == 1


def test_same_secret_in_two_env_vars() -> None:
    result = ok(env="A=secret:db\nB=secret:db")
    assert result.env == (EnvEntry("A", BOB), EnvEntry("B", BOB))


def test_same_secret_in_two_files_and_two_directories() -> None:
    result = ok("secret:db:/etc/a, secret:db:/etc/b, secret:db:/opt/x/a, secret:db:/srv/a")
    assert [f.path for f in result.files] == ["/etc/a", "/etc/b", "/opt/x/a", "/srv/a"]


def test_nested_directories_and_same_name_in_different_directories() -> None:
    result = ok("secret:a:/a/b/c/d/key\nsecret:b:/a/b/key\nsecret:c:/x/key")
    assert [(f.ref.key, f.path) for f in result.files] == [
        ("a", "/a/b/c/d/key"),
        ("b", "/a/b/key"),
        ("c", "/x/key"),
    ]


def test_the_design_example() -> None:
    result = parse(
        {
            VOLUMES: "secret:secret-password:/var/secrets/secret-password.txt\n"
            "secret:/alice/aws-key:/root/.aws/credentials\n",
            ENV: "mypass:secret:secret-password\n"
            "WANDB_API_KEY=secret://neuro-compute/alice/wandb-token\n",
        },
        user="bob",
        cluster=CLUSTER,
    )
    assert result == References(
        files=(
            FileEntry(SecretRef("bob", "secret-password"), "/var/secrets/secret-password.txt"),
            FileEntry(SecretRef("alice", "aws-key"), "/root/.aws/credentials"),
        ),
        env=(
            EnvEntry("mypass", SecretRef("bob", "secret-password")),
            EnvEntry("WANDB_API_KEY", SecretRef("alice", "wandb-token")),
        ),
    )


def test_wrong_scheme() -> None:
    assert errors("storage:db:/etc/db", "A=image:db") == [
        "Invalid URI scheme: 'storage' != 'secret'",
        "Invalid URI scheme: 'image' != 'secret'",
    ]


def test_wrong_cluster() -> None:
    assert errors("secret://other/alice/db:/etc/db") == [
        "Invalid URI cluster: 'other' != 'neuro-compute'"
    ]


def test_dotdot() -> None:
    assert errors("secret:db:/etc/../db, secret:db:/..") == [
        "Invalid path: '/etc/../db'",
        "Invalid path: '/..'",
    ]


def test_relative_path() -> None:
    assert errors("secret:db:etc/db") == ["Mount path must be absolute: 'etc/db'"]


def test_relative_path_with_dotdot_reports_both() -> None:
    assert errors("secret:db:../db") == [
        "Mount path must be absolute: '../db'",
        "Invalid path: '../db'",
    ]


def test_duplicate_mount_path() -> None:
    result = parse_text("secret:a:/etc/x\nsecret:b:/etc/x\nsecret:c:/etc/x")
    assert result.errors == ("destination path '/etc/x' was encountered multiple times",)
    assert result.files == (FileEntry(SecretRef("bob", "a"), "/etc/x"),)


def test_duplicate_mount_path_spelled_differently() -> None:
    assert errors("secret:a:/etc/x, secret:b://etc/./x/") == [
        "destination path '/etc/x' was encountered multiple times"
    ]


def test_file_inside_another_file() -> None:
    assert errors("secret:a:/etc/x/y/z, secret:b:/etc/x, secret:c:/etc/x-y, secret:d:/etc/x/w") == [
        "destination path '/etc/x/w' is inside the secret file '/etc/x'",
        "destination path '/etc/x/y/z' is inside the secret file '/etc/x'",
    ]


RULE = (
    " (keys are Kubernetes object names: lowercase letters, digits, '-' and '.', starting and "
    "ending with a letter or digit, at most 63 characters)"
)
NEURO = "Secret key '{}' is valid on Neu.ro but cannot be stored here: "


# References


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("secret:db", SecretRef("bob", "db")),
        ("secret:/alice/db", SecretRef("alice", "db")),
        ("secret:/bob/db", SecretRef("bob", "db")),
        ("secret://neuro-compute/alice/db", SecretRef("alice", "db")),
        ("secret://neuro-compute/Alice_1.x/a.b-c", SecretRef("Alice_1.x", "a.b-c")),
        ("secret:" + "a" * KEY_MAX_LENGTH, SecretRef("bob", "a" * KEY_MAX_LENGTH)),
    ],
)
def test_reference_forms(text: str, ref: SecretRef) -> None:
    assert parse_ref(text, user="bob", cluster=CLUSTER) == ref


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        (
            "db",
            [
                "Invalid secret reference 'db': " + "expected " + "secret:KEY, secret:/USER/KEY "
                "or secret://CLUSTER/USER/KEY"
            ],
        ),
        (
            "secret:/alice",
            [
                "Invalid secret reference 'secret:/alice': expected secret:KEY, "
                "secret:/USER/KEY or secret://CLUSTER/USER/KEY"
            ],
        ),
        (
            "secret:/alice/x/y",
            [
                "Invalid secret reference 'secret:/alice/x/y': expected "
                "secret:KEY, secret:/USER/KEY or secret://CLUSTER/USER/KEY"
            ],
        ),
        (
            "secret:///alice/db",
            [
                "Invalid secret reference 'secret:///alice/db': expected "
                "secret:KEY, secret:/USER/KEY or secret://CLUSTER/USER/KEY"
            ],
        ),
        ("secret:db#x", ["Invalid secret reference 'secret:db#x': '#' and '?' are not allowed"]),
        (
            "secret:db?x=1",
            ["Invalid secret reference 'secret:db?x=1': '#' and '?' are not allowed"],
        ),
        ("Secret:db", ["Invalid URI scheme: 'Secret' != 'secret'"]),
        (":db", ["Invalid URI scheme: '' != 'secret'"]),
        (
            "secret:/-alice/db",
            ["Invalid user name '-alice' in secret reference 'secret:/-alice/db'"],
        ),
        (
            "secret://other/al ice/DB",
            [
                "Invalid URI cluster: 'other' != 'neuro-compute'",
                "Invalid user name 'al ice' in secret reference 'secret://other/al ice/DB'",
                "Secret key 'DB' is valid on Neu.ro but cannot be stored here: it contains "
                "uppercase letters (keys are Kubernetes object names: lowercase letters, digits, "
                "'-' and '.', starting and ending with a letter or digit, at most 63 characters)",
            ],
        ),
        ("secret:", ["Invalid secret key '': the key is empty"]),
        (  # most likely secret:/alice/db: say which forms there are
            "secret:alice/db",
            [
                "Invalid secret reference 'secret:alice/db': expected secret:KEY, "
                "secret:/USER/KEY or secret://CLUSTER/USER/KEY"
            ],
        ),
    ],
)
def test_reference_errors(text: str, problems: list[str]) -> None:
    assert parse_ref(text, user="bob", cluster=CLUSTER) == problems


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("db", None),
        ("a.b-c.0", None),
        ("0", None),
        ("MyKey", NEURO.format("MyKey") + "it contains uppercase letters" + RULE),
        ("my_key", NEURO.format("my_key") + "it contains '_'" + RULE),
        (
            "My_Key",
            NEURO.format("My_Key") + "it contains uppercase letters, it contains '_'" + RULE,
        ),
        ("a" * 64, NEURO.format("a" * 64) + "it is longer than 63 characters" + RULE),
        (
            "-a",
            NEURO.format("-a")
            + "it and each of its '.'-separated parts must start and end with a letter or digit"
            + RULE,
        ),
        (
            "a..b",
            NEURO.format("a..b")
            + "it and each of its '.'-separated parts must start and end with a letter or digit"
            + RULE,
        ),
        (
            ".",
            "Invalid secret key '.': it and each of its '.'-separated parts must start and end "
            "with a letter or digit" + RULE,
        ),
        (
            "..a",
            "Invalid secret key '..a': it and each of its '.'-separated parts must start and end "
            "with a letter or digit" + RULE,
        ),
        ("a b:é", "Invalid secret key 'a b:é': it contains ' ', ':', 'é'" + RULE),
        ("a\x00", "Invalid secret key 'a\x00': it contains '\\x00'" + RULE),
        ("", "Invalid secret key '': the key is empty"),
    ],
)
def test_key_error(key: str, message: str | None) -> None:
    assert key_error(key) == message


_LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)


@given(
    st.text(alphabet="abZ09-._é\n", max_size=70)
    | st.lists(_LABEL, min_size=1, max_size=6).map(".".join)
)
@example("a" * KEY_MAX_LENGTH)
@example("a" * (KEY_MAX_LENGTH + 1))
def test_the_quick_check_of_keys_agrees_with_the_reasons(key: str) -> None:
    """The webhook accepts keys with one regex; only a rejected key is explained."""
    assert (_KEY.fullmatch(key) is not None) == (key != "" and not list(_key_reasons(key)))
    assert (key_error(key) is None) == (_KEY.fullmatch(key) is not None)


# Paths


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        ("/a", "/a"),
        ("//a//b", "/a/b"),
        ("/a/./b/.", "/a/b"),
        ("/a/b/", "/a/b"),
        ("/a.txt/.b/..c", "/a.txt/.b/..c"),
        ("/", ["Mount path must name a file, not the root directory: '/'"]),
        ("/./", ["Mount path must name a file, not the root directory: '/./'"]),
        ("a", ["Mount path must be absolute: 'a'"]),
        ("/a\tb", ["Invalid path: '/a\tb'"]),
        ("/a/../", ["Invalid path: '/a/../'"]),
    ],
)
def test_normalize_path(path: str, normal: str | list[str]) -> None:
    assert normalize_path(path) == normal


def test_ro_suffix_is_refused() -> None:
    assert errors("secret:db:/etc/db:ro, secret:db:/x:rw") == [
        "Invalid secret file specification 'secret:db:/etc/db:ro': secret files are always "
        "read-only, remove the ':ro'/':rw' suffix",
        "Invalid secret file specification 'secret:db:/x:rw': secret files are always "
        "read-only, remove the ':ro'/':rw' suffix",
    ]


@pytest.mark.parametrize(
    "entry", ["secret-db", "secret:db:", ":/etc/db", " : ", "secret:db", "db:/etc/db"]
)
def test_invalid_file_specification(entry: str) -> None:
    assert errors(entry) == [f"Invalid secret file specification '{entry.strip()}'"]


# Entries


def test_separators_and_whitespace() -> None:
    result = ok(
        "\n  secret:a:/a  ,,\r\n\t secret:b : /b ,\n\n",
        " A = secret:a ,B:secret:b\r\n,\n",
    )
    assert [f.path for f in result.files] == ["/a", "/b"]
    assert [(e.name, e.ref.key) for e in result.env] == [("A", "a"), ("B", "b")]


def test_env_first_separator_decides() -> None:
    assert ok(env="A=secret://neuro-compute/alice/db").env == (
        EnvEntry("A", SecretRef("alice", "db")),
    )
    assert ok(env="A:secret://neuro-compute/alice/db").env == (
        EnvEntry("A", SecretRef("alice", "db")),
    )


def test_env_errors() -> None:
    assert errors(env="JUSTNAME\n1A=secret:db\n=secret:db\nA=secret:Bad") == [
        "Invalid secret environment variable specification 'JUSTNAME': "
        "expected NAME=secret:KEY or NAME:secret:KEY",
        "Invalid environment variable name '1A' in '1A=secret:db': letters, digits, '_', '-' "
        "and '.', not starting with a digit",
        "Invalid environment variable name '' in '=secret:db': letters, digits, '_', '-' "
        "and '.', not starting with a digit",
        NEURO.format("Bad") + "it contains uppercase letters" + RULE,
    ]


def test_duplicate_env_names() -> None:
    result = parse_text(env="A=secret:a\nA=secret:b\nA:secret:a\nB=secret:a")
    assert result.errors == ("environment variable 'A' was encountered multiple times",)
    assert result.env == (
        EnvEntry("A", SecretRef("bob", "a")),
        EnvEntry("B", SecretRef("bob", "a")),
    )


def test_all_problems_are_collected() -> None:
    result = parse_text(
        "secret:db:rel, secret:Bad:/x, nope, secret:db:/a/../b, secret:ok:/fine",
        "1=secret:db, X=storage:y, Y=secret://zz/bob/db",
    )
    assert result.errors == (
        "Mount path must be absolute: 'rel'",
        NEURO.format("Bad") + "it contains uppercase letters" + RULE,
        "Invalid secret file specification 'nope'",
        "Invalid path: '/a/../b'",
        "Invalid environment variable name '1' in '1=secret:db': letters, digits, '_', '-' "
        "and '.', not starting with a digit",
        "Invalid URI scheme: 'storage' != 'secret'",
        "Invalid URI cluster: 'zz' != 'neuro-compute'",
    )
    assert result.files == (FileEntry(SecretRef("bob", "ok"), "/fine"),)
    assert result.env == ()


def test_identical_problems_are_reported_once() -> None:
    assert errors("storage:a:/a, storage:b:/b") == ["Invalid URI scheme: 'storage' != 'secret'"]


def test_containers() -> None:
    assert parse_text(containers="main, sidecar\nmain\n").containers == ("main", "sidecar")
    assert parse_text(containers=" , \n").containers is None
    assert parse_containers([]) is None


def test_an_annotation_past_the_bounds_is_not_read() -> None:
    """Admission runs before the apiserver's size checks: one pod must not buy unbounded work."""
    long = "secret:k:/a," * 3000  # 36,000 characters
    assert parse_text(volumes=long).errors == (
        "Annotation 'usersecrets.io/volumes' is 36000 characters long; at most 32768 are read",
    )
    assert parse_text(volumes=long).files == ()
    many = ",".join(f"V{i}=secret:k" for i in range(257))
    assert parse_text(env=many).errors == (
        "Annotation 'usersecrets.io/env' has more than 256 entries",
    )
    enough = ",".join(f"V{i}=secret:k" for i in range(256))
    assert len(parse_text(env=enough).env) == 256
    names = ",".join(f"c{i}" for i in range(300))
    assert parse_text(env="A=secret:k", containers=names).errors == (
        "Annotation 'usersecrets.io/containers' has more than 256 entries",
    )


def test_requests_secrets() -> None:
    assert not requests_secrets({})
    assert not requests_secrets({VOLUMES: " \n, ", ENV: ""})
    assert not requests_secrets({CONTAINERS: "main"})
    assert not requests_secrets({VOLUMES: 3})
    assert requests_secrets({ENV: "x"})
    assert requests_secrets({VOLUMES: "\n,nonsense"})


def test_non_string_annotations_count_as_absent() -> None:
    assert parse({VOLUMES: None, ENV: 5}, user="b", cluster="c") == (References())


# Fuzzing

TOKENS = [*"secret:/,\n=.-_#?aAb0 \t\r\x00é", "secret:", "secret://", "..", "//", "/alice/"]
GRAMMAR = st.lists(st.sampled_from(TOKENS), max_size=60).map("".join)
ANY_TEXT = st.text(max_size=300) | GRAMMAR
VALID_KEY = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def check_invariants(result: References) -> None:
    assert all(isinstance(e, str) and e for e in result.errors)
    assert len(set(result.errors)) == len(result.errors)
    paths = [f.path for f in result.files]
    assert len(set(paths)) == len(paths)
    for path in paths:
        assert normalize_path(path) == path
    names = [e.name for e in result.env]
    assert len(set(names)) == len(names)
    for ref in result.refs:
        assert VALID_KEY.fullmatch(ref.key)
        assert len(ref.key) <= KEY_MAX_LENGTH


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(volumes=ANY_TEXT, env=ANY_TEXT, containers=ANY_TEXT, user=st.text(max_size=10))
def test_any_text_never_crashes(volumes: str, env: str, containers: str, user: str) -> None:
    result = parse(
        {VOLUMES: volumes, ENV: env, CONTAINERS: containers},
        user=user,
        cluster=CLUSTER,
    )
    check_invariants(result)
    if not (volumes.strip(" \t\r\n,") or env.strip(" \t\r\n,")):
        assert result == References(containers=result.containers)


@settings(max_examples=10, deadline=None)
@given(chunk=st.text(min_size=1, max_size=20), repeat=st.integers(1000, 50_000))
def test_huge_text_never_crashes(chunk: str, repeat: int) -> None:
    check_invariants(parse_text(chunk * repeat, chunk * repeat, chunk * repeat))


def test_huge_entries() -> None:
    deep = "/a" * 8_000
    check_invariants(parse_text(f"secret:db:{deep}, secret:db:/a, secret:{'x' * 10_000}:/b"))
    result = parse_text(f"secret:db:{deep}, secret:db:/a")
    assert result.errors == (f"destination path '{deep}' is inside the secret file '/a'",)


KEYS = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?", fullmatch=True).filter(
    lambda k: ".." not in k and ".-" not in k and "-." not in k
)
PARTS = st.lists(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,8}", fullmatch=True), min_size=1)


@given(
    files=st.dictionaries(PARTS.map(lambda p: "/" + "/".join(p)), KEYS, max_size=5),
    env=st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True), KEYS),
    sep=st.sampled_from(["\n", ",", " ,\r\n "]),
)
def test_valid_entries_round_trip(files: dict[str, str], env: dict[str, str], sep: str) -> None:
    paths = [p for p in files if normalize_path(p) == p]
    nested = any(q.startswith(p + "/") for p in paths for q in paths)
    result = parse_text(
        sep.join(f"secret:{files[p]}:{p}" for p in paths),
        sep.join(f"{n}=secret:/alice/{k}" for n, k in env.items()),
    )
    assert result.files == tuple(FileEntry(SecretRef("bob", files[p]), p) for p in paths)
    assert result.env == tuple(EnvEntry(n, SecretRef("alice", k)) for n, k in env.items())
    assert bool(result.errors) == nested


RULE_TEXT = (
    "keys are Kubernetes object names: lowercase letters, digits, '-' and '.', starting and "
    "ending with a letter or digit, at most 63 characters"
)


def test_what_is_cut_where() -> None:
    """An env entry is cut at its first ':' or '=', a reference at its first ':'."""
    assert errors(env="A=b=secret:db") == ["Invalid URI scheme: 'b=secret' != 'secret'"]
    assert parse_ref("secret:a:b", user="bob", cluster=CLUSTER) == [
        f"Invalid secret key 'a:b': it contains ':' ({RULE_TEXT})"
    ]
    assert key_error("A b") == (
        f"Invalid secret key 'A b': it contains uppercase letters, it contains ' ' ({RULE_TEXT})"
    )


def test_a_path_may_hold_what_is_not_printable_but_no_control_character() -> None:
    assert normalize_path("/a\u00a0b") == "/a\u00a0b"
    assert normalize_path("/a\u0085b") == ["Invalid path: '/a\u0085b'"]


def test_an_annotation_at_its_bound_is_read() -> None:
    at = "secret:db:/a" + " " * (32 * 1024 - len("secret:db:/a"))
    assert ok(at).files == (FileEntry(BOB, "/a"),)
    assert errors(at + " ") == [
        f"Annotation 'usersecrets.io/volumes' is {32 * 1024 + 1} characters long; at most "
        f"{32 * 1024} are read"
    ]
